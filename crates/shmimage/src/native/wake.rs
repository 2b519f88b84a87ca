//! Sleeping and waking on the two futex words of the control block: readers
//! sleep on COMMIT_WORD, which every commit bumps (one wake for all readers);
//! a writer waiting for a free slot sleeps on FREE_WORD, which a release
//! bumps. A sleeper registers in a counter first so the other side skips the
//! wake syscall when nobody sleeps; every sleep is capped at
//! [`POLL_SLICE`](crate::POLL_SLICE), so a lost wake costs at most 1 ms.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use rustix::thread::futex;

use crate::futex::wake as futex_wake;
use crate::POLL_SLICE;

/// Sleep while `word` still holds `seen`, at most `timeout` (capped at 1 ms).
/// `sleepers` counts this sleeper for the waking side.
pub(crate) fn sleep(word: &AtomicU32, sleepers: &AtomicU32, seen: u32, timeout: Duration) {
    let timeout = timeout.min(POLL_SLICE);
    if timeout.is_zero() {
        return;
    }
    // SeqCst pairs with `bump`: either the bump sees this sleeper, or this
    // load sees the bump (the Dekker pattern needs a single total order).
    sleepers.fetch_add(1, Ordering::SeqCst);
    if word.load(Ordering::SeqCst) == seen {
        let rel = rustix::time::Timespec { tv_sec: 0, tv_nsec: timeout.as_nanos() as _ };
        // EAGAIN (changed), ETIMEDOUT and EINTR all mean: re-check.
        let _ = futex::wait(word, futex::Flags::empty(), seen, Some(&rel));
    }
    sleepers.fetch_sub(1, Ordering::SeqCst);
}

/// Bump `word` and wake its sleepers, if any registered.
pub(crate) fn bump(word: &AtomicU32, sleepers: &AtomicU32) {
    word.fetch_add(1, Ordering::SeqCst);
    if sleepers.load(Ordering::SeqCst) != 0 {
        futex_wake(word);
    }
}

/// Wake every sleeper on `word` unconditionally (close, takeover).
pub(crate) fn wake_all(word: &AtomicU32) {
    word.fetch_add(1, Ordering::SeqCst);
    futex_wake(word);
}
