//! Surviving a stream file that another process truncates.
//!
//! Touching a page of a shared file mapping that lies beyond the file's end
//! raises SIGBUS, which kills the process by default. Any process that can
//! open the stream file can truncate it, so this module installs one
//! process-wide SIGBUS handler and keeps a table of the address ranges of
//! every live mapping. A fault inside a registered range is repaired: the
//! pages from the faulting one to the end of the mapping are replaced by
//! anonymous zero pages (`mmap(MAP_FIXED)`), the range is marked truncated,
//! and the faulting access is retried and completes on the new pages. The
//! operation that was in flight then sees the mark and returns an error. Any
//! other SIGBUS goes to the handler that was installed before this one (or
//! the default action, which ends the process as it would have without us).
//!
//! What is guarded: every access to a registered mapping from any thread,
//! including header atomics, the bulk copies, pixels read in place through
//! `Frame::pixels` and a loan's slice. What is not: a handler installed after
//! ours that does not chain to it replaces the guard; a process that blocks
//! SIGBUS gets the kernel's default (death) regardless.

use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Once, OnceLock};

/// Mappings alive at once that can be guarded; more are mapped unguarded
/// (with a warning), never refused.
const SLOTS: usize = 256;

const FREE: u8 = 0;
const CLAIMED: u8 = 1;
const ACTIVE: u8 = 2;

struct Slot {
    state: AtomicU8,
    start: AtomicUsize,
    end: AtomicUsize,
    truncated: AtomicBool,
}

#[allow(clippy::declare_interior_mutable_const)] // used only as an array initialiser
const EMPTY: Slot = Slot {
    state: AtomicU8::new(FREE),
    start: AtomicUsize::new(0),
    end: AtomicUsize::new(0),
    truncated: AtomicBool::new(false),
};

static TABLE: [Slot; SLOTS] = [EMPTY; SLOTS];
static PAGE: AtomicUsize = AtomicUsize::new(4096);
static INSTALL: Once = Once::new();
pub(super) static PREVIOUS: OnceLock<libc::sigaction> = OnceLock::new();

/// Keeps one mapping's range registered; drop it before unmapping.
#[derive(Debug)]
pub(crate) struct Guard {
    slot: Option<usize>,
}

impl Guard {
    /// True once an access to the range faulted because the file had shrunk.
    pub(crate) fn truncated(&self) -> bool {
        self.slot.is_some_and(|i| TABLE[i].truncated.load(Ordering::Acquire))
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(i) = self.slot {
            let s = &TABLE[i];
            // Inactive first, so the handler stops matching before the
            // mapping goes away and its addresses can be reused.
            s.state.store(CLAIMED, Ordering::Release);
            s.truncated.store(false, Ordering::Relaxed);
            s.state.store(FREE, Ordering::Release);
        }
    }
}

/// Register `[start, start + len)`, a shared file mapping this process holds
/// until the returned guard is dropped.
pub(crate) fn guard(start: *const u8, len: usize) -> Guard {
    INSTALL.call_once(install);
    for (i, s) in TABLE.iter().enumerate() {
        if s.state.compare_exchange(FREE, CLAIMED, Ordering::Acquire, Ordering::Relaxed).is_ok() {
            s.start.store(start as usize, Ordering::Relaxed);
            s.end.store(start as usize + len, Ordering::Relaxed);
            s.truncated.store(false, Ordering::Relaxed);
            s.state.store(ACTIVE, Ordering::Release);
            return Guard { slot: Some(i) };
        }
    }
    tracing::warn!(SLOTS, "too many stream mappings; this one is not guarded against truncation");
    Guard { slot: None }
}

fn install() {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if page > 0 {
        PAGE.store(page as usize, Ordering::Relaxed);
    }
    // SAFETY: all-zero bytes are a valid sigaction (SIG_DFL, empty mask, no
    // flags); the fields that matter are set below.
    let mut new: libc::sigaction = unsafe { std::mem::zeroed() };
    let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut c_void) = on_sigbus;
    new.sa_sigaction = handler as usize;
    // ONSTACK: std runs its stack-overflow detection on an alternate stack;
    // a fault chained to it must arrive there too.
    new.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_RESTART;
    // SAFETY: zeroed as above; `old` receives the current action.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointers to initialised sigaction structs that outlive the
    // call; `on_sigbus` has the SA_SIGINFO signature.
    let r = unsafe {
        libc::sigemptyset(&mut new.sa_mask);
        libc::sigaction(libc::SIGBUS, &new, &mut old)
    };
    if r == 0 {
        let _ = PREVIOUS.set(old);
    } else {
        tracing::warn!("cannot install the SIGBUS handler; a truncated stream file would end this process");
    }
}

/// Runs in signal context: only atomics and raw syscalls, no allocation, no locks.
extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut c_void) {
    // SAFETY: an SA_SIGINFO handler receives a valid siginfo; si_addr is the
    // faulting address for a SIGBUS raised by a memory access.
    let (code, addr) = unsafe { ((*info).si_code, (*info).si_addr() as usize) };
    // BUS_ADRERR: an access beyond the end of a mapped file (a SIGBUS sent by
    // kill carries SI_USER and no meaningful address).
    if code == libc::BUS_ADRERR {
        for s in TABLE.iter() {
            if s.state.load(Ordering::Acquire) != ACTIVE {
                continue;
            }
            let (start, end) = (s.start.load(Ordering::Relaxed), s.end.load(Ordering::Relaxed));
            if addr < start || addr >= end {
                continue;
            }
            let from = addr & !(PAGE.load(Ordering::Relaxed) - 1);
            // SAFETY: errno is thread-local; saving it keeps the interrupted
            // code's value intact across our mmap.
            let errno = unsafe { *libc::__errno_location() };
            // SAFETY: [from, end) lies inside a mapping this process made and
            // still holds (the slot is active until just before the unmap,
            // and code touching the range keeps the mapping alive). Replacing
            // those pages with private anonymous memory changes only what the
            // bytes are, never whether the addresses are valid; every byte
            // pattern is valid for the atomics and u8 slices that point there.
            let r = unsafe {
                libc::mmap(
                    from as *mut c_void,
                    end - from,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_FIXED | libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            // SAFETY: as above.
            unsafe { *libc::__errno_location() = errno };
            if r != libc::MAP_FAILED {
                s.truncated.store(true, Ordering::Release);
                return;
            }
            break;
        }
    }
    chain(sig, info, ctx);
}

fn chain(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut c_void) {
    match PREVIOUS.get() {
        Some(old) if old.sa_sigaction != libc::SIG_DFL && old.sa_sigaction != libc::SIG_IGN => {
            if old.sa_flags & libc::SA_SIGINFO != 0 {
                // SAFETY: with SA_SIGINFO the previous action's handler has
                // this signature; it was installed for this very signal.
                let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut c_void) =
                    unsafe { std::mem::transmute(old.sa_sigaction) };
                f(sig, info, ctx);
            } else {
                // SAFETY: without SA_SIGINFO the handler takes the signal number.
                let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(old.sa_sigaction) };
                f(sig);
            }
        }
        _ => {
            // Back to the default action; the access faults again on return
            // and the kernel ends the process with SIGBUS, as without us.
            // SAFETY: signal() with SIG_DFL is async-signal-safe.
            unsafe { libc::signal(sig, libc::SIG_DFL) };
        }
    }
}
