//! Telling a fork() child from the process that opened a stream.
//!
//! A `pthread_atfork` child handler bumps a process-wide generation; every
//! stream records the generation it was opened in. In a child the numbers
//! differ, and the stream is inert there: the peer, the states and the
//! liveness locks belong to the parent. A fork made without the C library's
//! `fork()` (a raw `clone` syscall) skips the handler; the process id, checked
//! again where it matters (drop), catches that case.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;

static GENERATION: AtomicU64 = AtomicU64::new(0);
static REGISTER: Once = Once::new();

extern "C" fn in_child() {
    // Async-signal-safe: one atomic add, no allocation, no lock.
    GENERATION.fetch_add(1, Ordering::Relaxed);
}

/// Where a stream was opened: compare with [`Origin::here`] later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Origin {
    generation: u64,
    pid: u32,
}

impl Origin {
    /// The current process, registering the fork handler on first use.
    pub(crate) fn here() -> Origin {
        REGISTER.call_once(|| {
            // SAFETY: registers a plain extern "C" function with no
            // preconditions; it only bumps an atomic.
            let r = unsafe { libc::pthread_atfork(None, None, Some(in_child)) };
            if r != 0 {
                tracing::warn!(r, "pthread_atfork failed; fork children are detected by process id only");
            }
        });
        Origin { generation: GENERATION.load(Ordering::Relaxed), pid: std::process::id() }
    }

    /// True in a fork child of the process that made this origin. One atomic
    /// load: cheap enough for every call.
    pub(crate) fn forked(&self) -> bool {
        GENERATION.load(Ordering::Relaxed) != self.generation
    }

    /// [`Origin::forked`], or a different process id (a fork that skipped the
    /// handler). A syscall: for drop and close, not for hot paths.
    pub(crate) fn forked_thorough(&self) -> bool {
        self.forked() || std::process::id() != self.pid
    }
}
