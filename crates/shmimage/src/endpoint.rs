//! What a server and a client share: the mapping, the closed flag, the
//! cancel word, the fork origin, and the one wait primitive.
//!
//! The wait sleeps with `futex_waitv` on the two state words of the file and
//! on a process-local cancel word. `close` and `cancel` bump that word and
//! wake it, so every waiter of the object returns at once; a peer publishing
//! a frame wakes a state word. Waiters never hold the stream's mutex while
//! they sleep, so `close` from another thread is never blocked by a wait.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::fork::Origin;
use crate::futex;
use crate::mapping::Mapping;

/// The process-local word close and cancel bump (a futex).
#[derive(Debug, Default)]
struct CancelWord {
    word: AtomicU32,
}

impl CancelWord {
    fn word_ref(&self) -> &AtomicU32 {
        &self.word
    }

    fn bump(&self) {
        self.word.fetch_add(1, Ordering::AcqRel);
        futex::wake(&self.word);
    }
}

/// Cancels the waits in progress on one server or client: each returns
/// `Err(Error::Cancelled)`; later waits are not affected. Cloneable, `Send +
/// Sync`, and [`Canceller::cancel`] is async-signal-safe (an atomic add and a
/// futex wake), so a signal handler may call it.
#[derive(Debug, Clone)]
pub struct Canceller {
    word: Arc<CancelWord>,
}

impl Canceller {
    /// End every wait in progress on the stream with `Err(Cancelled)`.
    pub fn cancel(&self) {
        self.word.bump();
    }
}

#[derive(Debug)]
pub(crate) struct Endpoint {
    pub(crate) map: Mapping,
    origin: Origin,
    closed: AtomicBool,
    cancel: Arc<CancelWord>,
}

/// How long a wait with this timeout may last: `None` forever, else a deadline
/// (a timeout too large to add is forever too).
fn deadline(timeout: Option<Duration>) -> Option<Instant> {
    timeout.and_then(|t| Instant::now().checked_add(t))
}

/// Loads before a wait sleeps (only with more than one CPU, where the peer
/// can run meanwhile). About a microsecond on current machines.
const SPIN: u32 = 64;

/// True when a word moved during a short spin.
fn spin_until_changed(words: &[&AtomicU32; 3], expected: &[u32; 3]) -> bool {
    static MULTI_CORE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if !*MULTI_CORE.get_or_init(|| std::thread::available_parallelism().is_ok_and(|n| n.get() > 1)) {
        return false;
    }
    for _ in 0..SPIN {
        if words.iter().zip(expected).any(|(w, e)| w.load(Ordering::Acquire) != *e) {
            return true;
        }
        std::hint::spin_loop();
    }
    false
}

impl Endpoint {
    pub(crate) fn new(map: Mapping) -> Endpoint {
        Endpoint { map, origin: Origin::here(), closed: AtomicBool::new(false), cancel: Arc::default() }
    }

    /// `Err(Forked)` in a fork child, `Err(Closed)` after close; else Ok.
    pub(crate) fn check(&self) -> Result<()> {
        if self.origin.forked() {
            return Err(Error::Forked);
        }
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        Ok(())
    }

    /// True in a fork child (thorough: also compares the process id).
    pub(crate) fn in_fork_child(&self) -> bool {
        self.origin.forked_thorough()
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Mark closed and wake every waiter. True the first time.
    pub(crate) fn mark_closed(&self) -> bool {
        let first = !self.closed.swap(true, Ordering::AcqRel);
        self.cancel.bump();
        first
    }

    pub(crate) fn canceller(&self) -> Canceller {
        Canceller { word: Arc::clone(&self.cancel) }
    }

    /// The one wait: check closed/forked/cancelled, take a snapshot of the
    /// words, let `poll` decide; else sleep until a word changes or the
    /// deadline passes (`None`: forever), which answers `on_timeout()`.
    /// `poll` is called at least every [`futex::POLL_SLICE`].
    pub(crate) fn wait<T>(
        &self,
        timeout: Option<Duration>,
        mut poll: impl FnMut() -> Option<Result<T>>,
        on_timeout: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        let deadline = deadline(timeout);
        let cancels = self.cancel.word.load(Ordering::Acquire);
        loop {
            self.check()?;
            let seen_cancel = self.cancel.word.load(Ordering::Acquire);
            if seen_cancel != cancels {
                return Err(Error::Cancelled);
            }
            let seen = self.map.states();
            if let Some(answer) = poll() {
                return answer;
            }
            let left = match deadline {
                None => futex::POLL_SLICE,
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => left,
                    _ => return on_timeout(),
                },
            };
            let words = [self.map.state_word(0), self.map.state_word(1), self.cancel.word_ref()];
            let expected = [seen[0], seen[1], seen_cancel];
            // Fast path: a peer on another core often answers within a
            // microsecond; a few lock-free loads of the words catch that
            // without the futex system call and its wake-up.
            if !spin_until_changed(&words, &expected) {
                futex::wait_any(&words, &expected, left);
            }
        }
    }

    /// Sleep up to `d` (at most a poll slice) or until close/cancel.
    pub(crate) fn nap(&self, d: Duration) {
        let c = self.cancel.word.load(Ordering::Acquire);
        if !self.is_closed() {
            futex::wait_any(&[&self.cancel.word], &[c], d);
        }
    }
}
