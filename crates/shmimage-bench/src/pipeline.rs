//! The copy of a double-buffered pipeline without shmimage: one thread copies
//! a frame into buffer k while another thread reads buffer k-1, in lockstep.
//! It tells what put_frame's copy costs on this machine before any protocol
//! code runs, and whether non-temporal (streaming) stores would help.

use std::hint::black_box;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;

/// Memory shared by the two threads; they never touch the same half at once
/// (the lockstep messages separate the phases).
struct Shared(*mut u8, usize);
// SAFETY: the pointer is to a leaked allocation that outlives both threads,
// and the lockstep keeps writer and reader on different halves.
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

/// Streaming stores bypass the cache: no read-for-ownership of destination
/// lines that the other core holds.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn copy_nt(dst: *mut u8, src: *const u8, len: usize) {
    use std::arch::x86_64::*;
    let head = ((32 - (dst as usize & 31)) & 31).min(len);
    // SAFETY (whole body): the caller passes len valid bytes at src and dst
    // that do not overlap; every access below stays within [0, len).
    unsafe {
        std::ptr::copy_nonoverlapping(src, dst, head);
        let mut i = head;
        while i + 128 <= len {
            let a = _mm256_loadu_si256(src.add(i).cast());
            let b = _mm256_loadu_si256(src.add(i + 32).cast());
            let c = _mm256_loadu_si256(src.add(i + 64).cast());
            let d = _mm256_loadu_si256(src.add(i + 96).cast());
            _mm256_stream_si256(dst.add(i).cast(), a);
            _mm256_stream_si256(dst.add(i + 32).cast(), b);
            _mm256_stream_si256(dst.add(i + 64).cast(), c);
            _mm256_stream_si256(dst.add(i + 96).cast(), d);
            i += 128;
        }
        std::ptr::copy_nonoverlapping(src.add(i), dst.add(i), len - i);
        _mm_sfence();
    }
}

pub fn nt_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

pub fn run(size: Size, secs: f64, streaming: bool) -> Tput {
    let len = size.bytes();
    // Offset 24 like a payload after a header, two buffers back to back.
    let mem: &'static mut [u8] = Box::leak(vec![0u8; 2 * len + 64].into_boxed_slice());
    let shared = Arc::new(Shared(mem.as_mut_ptr(), len));
    let src = pattern(len);
    // Lockstep by messages: the writer tells the reader "read buffer k-1"
    // and copies into buffer k meanwhile, then waits for the reader's "done"
    // before round k+1 writes the buffer that was read. (A barrier with a
    // stop flag read after it raced: a reader preempted past the barrier
    // could see the flag of the next round and leave the writer waiting.)
    let (go_tx, go_rx) = mpsc::channel::<usize>();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let s2 = Arc::clone(&shared);
    let reader = std::thread::spawn(move || {
        let mut acc = 0u64;
        for k in go_rx {
            let off = ((k + 1) % 2) * s2.1 + 24;
            // SAFETY: inside the leaked allocation; the writer is on the other half.
            let s = unsafe { std::slice::from_raw_parts(s2.0.add(off), s2.1) };
            acc ^= digest(s);
            if done_tx.send(()).is_err() {
                break;
            }
        }
        black_box(acc);
    });
    let mut times = Vec::with_capacity(1 << 16);
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs_f64(secs);
    let mut k = 0usize;
    while Instant::now() < end {
        if go_tx.send(k).is_err() {
            break;
        }
        let dst = (k % 2) * len + 24;
        let t = Instant::now();
        // SAFETY: dst..dst+len lies in the allocation; the reader is on the other half.
        unsafe {
            let d = shared.0.add(dst);
            #[cfg(target_arch = "x86_64")]
            if streaming {
                copy_nt(d, src.as_ptr(), len);
            } else {
                std::ptr::copy_nonoverlapping(src.as_ptr(), d, len);
            }
            #[cfg(not(target_arch = "x86_64"))]
            std::ptr::copy_nonoverlapping(src.as_ptr(), d, len);
        }
        times.push(t.elapsed().as_nanos() as u64);
        k += 1;
        if done_rx.recv().is_err() {
            break;
        }
    }
    drop(go_tx);
    let _ = reader.join();
    Tput {
        transport: if streaming {
            "pipeline copy, streaming stores".into()
        } else {
            "pipeline copy (no shmimage)".into()
        },
        size,
        frames: k as u64,
        secs: t0.elapsed().as_secs_f64(),
        producer_ns: Some(median_ns(&mut times)),
        consumer_ns: None,
        note: "threads in lockstep: copy into buffer k while the other core reads k-1".into(),
    }
}
