//! Copying a frame into shared memory: ordinary stores for frames that fit
//! the cache, streaming (non-temporal) stores for larger ones.
//!
//! A frame written into a buffer the reader's core has just read makes every
//! ordinary store fetch its cache line first (a read-for-ownership) and
//! evicts the writer's own working set. Streaming stores write whole lines
//! straight to memory instead, so `put_frame` itself gets faster at every
//! size on a loaded machine (0.82x / 0.84x / 0.86x memcpy at 720p / 1080p /
//! 4K, docs/benchmarks.md, issue 16). But the frame then comes to the reader
//! from memory, not from the shared cache: measured end to end, a 720p or
//! 1080p reader took 2.2x as long per frame and frames/s fell 2-4x. Below
//! [`STREAMING_MIN`] a frame (with its source and the second buffer) can stay
//! in the cache for the reader, so ordinary stores are kept there; a 4K frame
//! (25 MB, two buffers and the source 75 MB) does not fit, and streams.
//! `SHMIMAGE_STORES=cached` or `streaming` in the environment imposes one
//! type on every copy of at least 1 MiB instead.
//!
//! Streaming stores go to 64-byte-aligned destinations: a protocol buffer
//! starts 24 or 48 bytes past a cache line, and the 16-byte alignment used
//! before left every line written in two pieces (1.2x slower at 4K). They are
//! 32-byte AVX2 stores where the CPU has them (another 1.1-1.2x).

/// Copies at least this long use streaming stores (where available).
pub(crate) const STREAMING_MIN: usize = 8 << 20;

/// Copies shorter than this always use ordinary stores, whatever the
/// environment says.
pub(crate) const FORCIBLE_MIN: usize = 1 << 20;

/// The store types [`copy`] chooses between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stores {
    /// Ordinary stores (the C library's memcpy).
    Cached,
    /// Non-temporal stores, then a store fence.
    Streaming,
}

/// Copy `len` bytes from `src` to `dst`.
///
/// # Safety
/// `src` is valid for `len` reads, `dst` for `len` writes, and the two ranges
/// do not overlap.
pub(crate) unsafe fn copy(src: *const u8, dst: *mut u8, len: usize) {
    // SAFETY: forwarded from this function's contract.
    unsafe { copy_with(stores_for(len, forced()), src, dst, len) }
}

/// The store type for a copy of `len` bytes.
pub(crate) fn stores_for(len: usize, forced: Option<Stores>) -> Stores {
    match forced {
        Some(s) if len >= FORCIBLE_MIN => s,
        _ if len >= STREAMING_MIN => Stores::Streaming,
        _ => Stores::Cached,
    }
}

/// The store type `SHMIMAGE_STORES` (`cached` or `streaming`) imposes on the
/// large copies of this process, read once; unset (or anything else): none.
fn forced() -> Option<Stores> {
    static FORCED: std::sync::OnceLock<Option<Stores>> = std::sync::OnceLock::new();
    *FORCED.get_or_init(|| parse_forced(std::env::var("SHMIMAGE_STORES").ok().as_deref()))
}

fn parse_forced(value: Option<&str>) -> Option<Stores> {
    match value {
        Some("cached") => Some(Stores::Cached),
        Some("streaming") => Some(Stores::Streaming),
        _ => None,
    }
}

/// Copy with the given store type.
///
/// # Safety
/// As for [`copy`].
pub(crate) unsafe fn copy_with(stores: Stores, src: *const u8, dst: *mut u8, len: usize) {
    match stores {
        #[cfg(target_arch = "x86_64")]
        Stores::Streaming => {
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: forwarded from this function's contract; AVX2 was
                // detected just above.
                unsafe { streaming_avx2(src, dst, len) }
            } else {
                // SAFETY: forwarded from this function's contract.
                unsafe { streaming_sse2(src, dst, len) }
            }
        }
        // SAFETY: forwarded from this function's contract.
        _ => unsafe { std::ptr::copy_nonoverlapping(src, dst, len) },
    }
}

/// Streaming copy with 16-byte stores (SSE2, the x86_64 baseline).
///
/// # Safety
/// As for [`copy`].
#[cfg(target_arch = "x86_64")]
unsafe fn streaming_sse2(src: *const u8, dst: *mut u8, len: usize) {
    use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_stream_si128};
    // SAFETY: forwarded; each step reads and writes [i, i + 64) with
    // i + 64 <= len, dst + i is 64-aligned (see streaming_lines), and SSE2 is
    // part of the x86_64 baseline.
    unsafe {
        streaming_lines(src, dst, len, |s, d| {
            let (s, d) = (s as *const __m128i, d as *mut __m128i);
            let (a, b, c, e) =
                (_mm_loadu_si128(s), _mm_loadu_si128(s.add(1)), _mm_loadu_si128(s.add(2)), _mm_loadu_si128(s.add(3)));
            _mm_stream_si128(d, a);
            _mm_stream_si128(d.add(1), b);
            _mm_stream_si128(d.add(2), c);
            _mm_stream_si128(d.add(3), e);
        })
    }
}

/// Streaming copy with 32-byte stores.
///
/// # Safety
/// As for [`copy`], and the CPU supports AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn streaming_avx2(src: *const u8, dst: *mut u8, len: usize) {
    use std::arch::x86_64::{__m256i, _mm256_loadu_si256, _mm256_stream_si256};
    // SAFETY: forwarded; each step reads and writes [i, i + 64) with
    // i + 64 <= len and dst + i 64-aligned (see streaming_lines); AVX2 is
    // enabled for this function and the caller checked the CPU has it.
    unsafe {
        streaming_lines(src, dst, len, |s, d| {
            let (s, d) = (s as *const __m256i, d as *mut __m256i);
            let (a, b) = (_mm256_loadu_si256(s), _mm256_loadu_si256(s.add(1)));
            _mm256_stream_si256(d, a);
            _mm256_stream_si256(d.add(1), b);
        })
    }
}

/// The frame of a streaming copy: an ordinary copy up to the first 64-byte
/// line boundary of `dst`, `line(src + i, dst + i)` for every whole line,
/// an ordinary copy of the tail, then a store fence.
///
/// # Safety
/// As for [`copy`]; `line` must read 64 bytes at its first argument and
/// write 64 bytes at its second (which is 64-aligned) and nothing else.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn streaming_lines(src: *const u8, dst: *mut u8, len: usize, line: impl Fn(*const u8, *mut u8)) {
    let head = dst.align_offset(64).min(len);
    // SAFETY: head <= len, inside both ranges by the caller's contract.
    unsafe { std::ptr::copy_nonoverlapping(src, dst, head) };
    let mut i = head;
    while i + 64 <= len {
        // SAFETY: [i, i + 64) lies inside both ranges.
        line(unsafe { src.add(i) }, unsafe { dst.add(i) });
        i += 64;
    }
    // SAFETY: the tail [i, len) lies inside both ranges.
    unsafe { std::ptr::copy_nonoverlapping(src.add(i), dst.add(i), len - i) };
    // Streaming stores are weakly ordered: fence them before the caller's
    // release store of the buffer state publishes the frame.
    // SAFETY: SSE2 baseline.
    unsafe { std::arch::x86_64::_mm_sfence() };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_store_type_alignment_and_tail_copies_exactly() {
        let max = STREAMING_MIN + 300;
        let src: Vec<u8> = (0..max).map(|i| (i * 31 % 251) as u8).collect();
        for stores in [Stores::Cached, Stores::Streaming] {
            for (s_off, d_off, len) in
                [(0, 0, STREAMING_MIN), (1, 3, STREAMING_MIN + 17), (5, 15, 63), (16, 0, 64), (7, 9, 200), (3, 40, 0)]
            {
                let mut dst = vec![0u8; len + 128];
                // SAFETY: both ranges are in bounds of their vectors and distinct.
                unsafe { copy_with(stores, src.as_ptr().add(s_off), dst.as_mut_ptr().add(d_off), len) };
                assert!(dst[d_off..d_off + len] == src[s_off..s_off + len], "{stores:?} {s_off} {d_off} {len}");
                assert!(dst[..d_off].iter().all(|&b| b == 0) && dst[d_off + len..].iter().all(|&b| b == 0));
            }
        }
    }

    #[test]
    fn frames_that_fit_the_cache_keep_ordinary_stores() {
        assert_eq!(stores_for(1280 * 720 * 3, None), Stores::Cached);
        assert_eq!(stores_for(1920 * 1080 * 3, None), Stores::Cached);
        assert_eq!(stores_for(3840 * 2160 * 3, None), Stores::Streaming);
        assert_eq!(stores_for(1920 * 1080 * 3, Some(Stores::Streaming)), Stores::Streaming);
        assert_eq!(stores_for(3840 * 2160 * 3, Some(Stores::Cached)), Stores::Cached);
        assert_eq!(stores_for(4096, Some(Stores::Streaming)), Stores::Cached, "a row of a flipped frame");
    }

    #[test]
    fn the_environment_can_impose_a_store_type() {
        assert_eq!(parse_forced(Some("cached")), Some(Stores::Cached));
        assert_eq!(parse_forced(Some("streaming")), Some(Stores::Streaming));
        assert_eq!(parse_forced(Some("auto")), None);
        assert_eq!(parse_forced(None), None);
    }
}
