//! Sleeping on the two state words until one changes, and waking sleepers.
//!
//! The words live in a shared file mapping, so the futexes are process-shared
//! (no PRIVATE flag). A waiter sleeps on both words at once with
//! `futex_waitv` (Linux 5.16+); where that is missing it sleeps on one word
//! with a timeout of at most [`POLL_SLICE`], so a change to the other is still
//! seen within a millisecond. Callers always re-check the states after a wait:
//! a wake can be spurious, and a peer that only polls never wakes anyone.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use rustix::thread::futex;
use rustix::time::{ClockId, Timespec};

/// The longest a waiter sleeps before re-checking, so that a peer that writes
/// states without waking anyone (an older implementation) is still seen.
pub const POLL_SLICE: Duration = Duration::from_millis(1);

static NO_WAITV: AtomicBool = AtomicBool::new(false);

/// Wake every process sleeping on `word`.
pub(crate) fn wake(word: &AtomicU32) {
    // The kernel reads the count as a signed int: u32::MAX would be -1 and
    // wake exactly one sleeper, leaving the rest to their POLL_SLICE timeout.
    // An error here (never expected) only costs a waiter up to POLL_SLICE.
    let _ = futex::wake(word, futex::Flags::empty(), WAKE_ALL);
}

/// "Every sleeper" as FUTEX_WAKE counts them (INT_MAX).
const WAKE_ALL: u32 = i32::MAX as u32;

/// Sleep until any word differs from its `expected` value, a wake, or
/// `timeout` (capped at [`POLL_SLICE`]) passes. Returns at once if a word
/// already differs. `words` holds the two state words and, for a waiter that
/// can be cancelled, a third process-local word that close and cancel bump.
pub(crate) fn wait_any(words: &[&AtomicU32], expected: &[u32], timeout: Duration) {
    debug_assert!(words.len() == expected.len() && words.len() <= MAX_WORDS);
    let timeout = timeout.min(POLL_SLICE);
    if timeout.is_zero() {
        return;
    }
    if !NO_WAITV.load(Ordering::Relaxed) {
        match waitv(words, expected, timeout) {
            Err(rustix::io::Errno::NOSYS) => NO_WAITV.store(true, Ordering::Relaxed),
            _ => return,
        }
    }
    let rel = to_timespec(timeout);
    // Sleep on the first word, after checking that none changed already.
    for (w, e) in words.iter().zip(expected) {
        if w.load(Ordering::Acquire) != *e {
            return;
        }
    }
    let _ = futex::wait(words[0], futex::Flags::empty(), expected[0], Some(&rel));
}

/// [`wait_any`] on the two state words.
#[cfg(test)]
pub(crate) fn wait_either(words: [&AtomicU32; 2], expected: [u32; 2], timeout: Duration) {
    wait_any(&words, &expected, timeout)
}

const MAX_WORDS: usize = 3;

fn waitv(words: &[&AtomicU32], expected: &[u32], timeout: Duration) -> rustix::io::Result<usize> {
    let mut waiters = [futex::Wait::new(), futex::Wait::new(), futex::Wait::new()];
    let n = words.len().min(MAX_WORDS);
    for (w, (word, e)) in waiters.iter_mut().zip(words.iter().zip(expected)) {
        w.val = u64::from(*e);
        w.uaddr = futex::WaitPtr::new(word.as_ptr().cast());
        w.flags = futex::WaitFlags::SIZE_U32;
    }
    // futex_waitv takes an absolute deadline on the given clock.
    let now = rustix::time::clock_gettime(ClockId::Monotonic);
    let deadline = add(now, timeout);
    match futex::waitv(&waiters[..n], futex::WaitvFlags::empty(), Some(&deadline), ClockId::Monotonic) {
        Ok(n) => Ok(n),
        // EAGAIN: a word already differed; ETIMEDOUT / EINTR: re-check anyway.
        Err(rustix::io::Errno::AGAIN | rustix::io::Errno::TIMEDOUT | rustix::io::Errno::INTR) => Ok(0),
        Err(e) => Err(e),
    }
}

fn to_timespec(d: Duration) -> Timespec {
    Timespec { tv_sec: d.as_secs() as _, tv_nsec: d.subsec_nanos() as _ }
}

fn add(t: Timespec, d: Duration) -> Timespec {
    let mut sec = t.tv_sec + d.as_secs() as i64;
    let mut nsec = t.tv_nsec + i64::from(d.subsec_nanos());
    if nsec >= 1_000_000_000 {
        sec += 1;
        nsec -= 1_000_000_000;
    }
    Timespec { tv_sec: sec, tv_nsec: nsec as _ }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Instant;

    #[test]
    fn a_wait_returns_at_once_when_a_word_already_differs() {
        let a = AtomicU32::new(1);
        let b = AtomicU32::new(2);
        let t = Instant::now();
        for _ in 0..100 {
            wait_either([&a, &b], [1, 3], Duration::from_millis(1));
        }
        // 100 waits that each sleep the full millisecond would take >= 100 ms.
        assert!(t.elapsed() < Duration::from_millis(100));
    }

    /// One wake ends every sleep on the word. Each sleeper waits 20 s
    /// without the 1 ms cap, so one left asleep is not hidden by a timeout;
    /// the word changes before the wake, so a thread that had not yet gone
    /// to sleep returns at once instead of sleeping through it.
    #[test]
    fn one_wake_ends_every_sleep_on_the_word() {
        const SLEEPERS: usize = 4;
        let word = Arc::new(AtomicU32::new(0));
        let threads: Vec<_> = (0..SLEEPERS)
            .map(|_| {
                let w = Arc::clone(&word);
                std::thread::spawn(move || {
                    let rel = Timespec { tv_sec: 20, tv_nsec: 0 };
                    !matches!(futex::wait(&w, futex::Flags::empty(), 0, Some(&rel)), Err(rustix::io::Errno::TIMEDOUT))
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(100));
        word.store(1, Ordering::SeqCst);
        wake(&word);
        let woken = threads.into_iter().map(|t| t.join().unwrap()).filter(|&w| w).count();
        assert_eq!(woken, SLEEPERS, "sleepers left to time out after one wake");
    }

    #[test]
    fn a_wake_ends_a_wait_on_either_word() {
        let words = Arc::new([AtomicU32::new(0), AtomicU32::new(0)]);
        let w2 = Arc::clone(&words);
        let h = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            w2[1].store(7, Ordering::Release);
            wake(&w2[1]);
        });
        let t = Instant::now();
        while words[1].load(Ordering::Acquire) == 0 && t.elapsed() < Duration::from_secs(5) {
            wait_either([&words[0], &words[1]], [0, 0], Duration::from_millis(1));
        }
        h.join().unwrap();
        assert_eq!(words[1].load(Ordering::Acquire), 7);
    }
}
