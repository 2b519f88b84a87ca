//! Copying a frame into shared memory: ordinary or streaming stores, chosen
//! by measuring both.
//!
//! A frame written into a buffer the reader's core has just read makes every
//! ordinary store fetch its cache line first (a read-for-ownership) and
//! evicts the writer's own working set. Streaming (non-temporal) stores write
//! whole lines straight to memory instead. Which is faster depends on how
//! much of the last-level cache the frame, its source and the second buffer
//! find free: a 1080p frame is 6.2 MB, 18.7 MB with its source and the other
//! buffer, and the C library's memcpy uses ordinary stores up to 99 MiB on
//! the machine measured. With other processes sharing the cache, streaming
//! stores won at every size (docs/benchmarks.md, issue 16); on a quiet
//! machine ordinary stores win while everything fits the cache. No fixed
//! size threshold is right on both, so copies of [`ADAPTIVE_MIN`] bytes and
//! more time themselves: each store type keeps a running cost per byte, the
//! cheaper one is used, and one copy in [`EXPLORE_EVERY`] tries the other so
//! a change of load is followed.
//!
//! Streaming stores go to 64-byte-aligned destinations: a protocol buffer
//! starts 24 or 48 bytes past a cache line, and the 16-byte alignment used
//! before left every line written in two pieces (1.2x slower at 4K). They are
//! 32-byte AVX2 stores where the CPU has them (another 1.1-1.2x).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Copies at least this long choose their store type by measurement; shorter
/// ones fit the core's own cache and always use ordinary stores.
pub(crate) const ADAPTIVE_MIN: usize = 1 << 20;

/// One adaptive copy in this many uses the store type currently judged slower.
pub(crate) const EXPLORE_EVERY: u64 = 64;

/// Running cost of each store type in picoseconds per byte (0 = not yet
/// measured), and the count of adaptive copies. Process-wide: the cache is.
static COST_PS_PER_BYTE: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];
static COPIES: AtomicU64 = AtomicU64::new(0);

/// The store types [`copy`] chooses between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stores {
    /// Ordinary stores (the C library's memcpy).
    Cached = 0,
    /// Non-temporal stores, then a store fence.
    Streaming = 1,
}

/// Copy `len` bytes from `src` to `dst`, with the store type that has been
/// cheaper so far for large copies.
///
/// # Safety
/// `src` is valid for `len` reads, `dst` for `len` writes, and the two ranges
/// do not overlap.
pub(crate) unsafe fn copy(src: *const u8, dst: *mut u8, len: usize) {
    if len < ADAPTIVE_MIN || !streaming_available() {
        // SAFETY: forwarded from this function's contract.
        unsafe { std::ptr::copy_nonoverlapping(src, dst, len) };
        return;
    }
    let n = COPIES.fetch_add(1, Ordering::Relaxed);
    let stores = choose(n, [0, 1].map(|i| COST_PS_PER_BYTE[i].load(Ordering::Relaxed)));
    let t = Instant::now();
    // SAFETY: forwarded from this function's contract.
    unsafe { copy_with(stores, src, dst, len) };
    let ps_per_byte = (t.elapsed().as_nanos() * 1000 / len as u128).min(u128::from(u32::MAX)) as u64;
    let slot = &COST_PS_PER_BYTE[stores as usize];
    slot.store(update(slot.load(Ordering::Relaxed), ps_per_byte), Ordering::Relaxed);
}

/// Which store type copy number `n` uses, given the running costs.
pub(crate) fn choose(n: u64, cost: [u64; 2]) -> Stores {
    let untried = cost.iter().position(|&c| c == 0);
    let cheaper = if cost[1] < cost[0] { Stores::Streaming } else { Stores::Cached };
    match untried {
        Some(0) => Stores::Cached,
        Some(_) => Stores::Streaming,
        None if n % EXPLORE_EVERY == EXPLORE_EVERY - 1 => match cheaper {
            Stores::Cached => Stores::Streaming,
            Stores::Streaming => Stores::Cached,
        },
        None => cheaper,
    }
}

/// The running cost after one more sample: an average over about eight
/// copies, where one sample counts at most twice the running value (a copy
/// preempted by another process must not condemn its store type).
pub(crate) fn update(old: u64, sample: u64) -> u64 {
    let sample = sample.max(1);
    if old == 0 {
        return sample;
    }
    (old * 7 + sample.min(old * 2)) / 8
}

fn streaming_available() -> bool {
    cfg!(target_arch = "x86_64")
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
        let max = ADAPTIVE_MIN + 300;
        let src: Vec<u8> = (0..max).map(|i| (i * 31 % 251) as u8).collect();
        for stores in [Stores::Cached, Stores::Streaming] {
            for (s_off, d_off, len) in
                [(0, 0, ADAPTIVE_MIN), (1, 3, ADAPTIVE_MIN + 17), (5, 15, 63), (16, 0, 64), (7, 9, 200), (3, 40, 0)]
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
    fn the_adaptive_copy_is_exact_whichever_store_type_it_picks() {
        let src: Vec<u8> = (0..ADAPTIVE_MIN + 5).map(|i| (i * 7 % 253) as u8).collect();
        let mut dst = vec![0u8; src.len() + 1];
        for _ in 0..2 * EXPLORE_EVERY {
            // SAFETY: in bounds of both vectors, distinct allocations.
            unsafe { copy(src.as_ptr(), dst.as_mut_ptr().add(1), src.len()) };
            assert!(dst[1..] == src[..] && dst[0] == 0);
        }
        assert!(COST_PS_PER_BYTE.iter().all(|c| c.load(Ordering::Relaxed) > 0), "both store types were measured");
    }

    #[test]
    fn each_store_type_is_tried_then_the_cheaper_wins_and_the_other_is_revisited() {
        assert_eq!(choose(0, [0, 0]), Stores::Cached);
        assert_eq!(choose(1, [500, 0]), Stores::Streaming);
        assert_eq!(choose(2, [500, 300]), Stores::Streaming);
        assert_eq!(choose(2, [300, 500]), Stores::Cached);
        assert_eq!(choose(EXPLORE_EVERY - 1, [300, 500]), Stores::Streaming);
        assert_eq!(choose(2 * EXPLORE_EVERY - 1, [500, 300]), Stores::Cached);
    }

    #[test]
    fn an_outlier_moves_the_running_cost_by_at_most_an_eighth() {
        assert_eq!(update(0, 400), 400);
        assert_eq!(update(400, 400), 400);
        assert_eq!(update(400, 1_000_000), 450);
        assert_eq!(update(400, 0), 350);
        // A lasting change is followed within a few dozen copies.
        let mut c = 400;
        for _ in 0..40 {
            c = update(c, 1200);
        }
        assert!(c > 1150, "{c}");
    }
}
