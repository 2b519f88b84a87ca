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
//! What is guarded: every access to a registered mapping from any thread
//! (any number of mappings),
//! including header atomics, the bulk copies, pixels read in place through
//! `Frame::pixels` and a loan's slice. What is not: a handler installed after
//! ours that does not chain to it replaces the guard; a process that blocks
//! SIGBUS gets the kernel's default (death) regardless.

//!
//! The table has no fixed size: it is a lock-free list of chunks of slots,
//! each chunk allocated (outside the handler) when every slot of the
//! previous ones is in use, and never freed, so the handler can walk it
//! without locks or allocation. A slot's range is one word pair written
//! under a per-slot sequence number (a seqlock): the handler reads the
//! sequence, the range, and the sequence again, and ignores the slot unless
//! both reads match and are even, so a slot being reused is never read torn.

use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Once, OnceLock};

/// Slots per chunk; chunks are added as needed.
const CHUNK: usize = 64;

struct Slot {
    /// Odd while the slot is being written; even when stable. 0: never used.
    seq: AtomicU64,
    /// True while a live mapping owns the slot.
    used: AtomicBool,
    start: AtomicUsize,
    end: AtomicUsize,
    truncated: AtomicBool,
}

struct Chunk {
    slots: [Slot; CHUNK],
    next: AtomicPtr<Chunk>,
}

impl Chunk {
    fn new() -> Box<Chunk> {
        Box::new(Chunk {
            slots: std::array::from_fn(|_| Slot {
                seq: AtomicU64::new(0),
                used: AtomicBool::new(false),
                start: AtomicUsize::new(0),
                end: AtomicUsize::new(0),
                truncated: AtomicBool::new(false),
            }),
            next: AtomicPtr::new(std::ptr::null_mut()),
        })
    }
}

/// The first chunk; later ones hang off `next`. Chunks are leaked on
/// purpose: the handler may walk them at any moment.
static HEAD: OnceLock<&'static Chunk> = OnceLock::new();
static PAGE: AtomicUsize = AtomicUsize::new(4096);
static INSTALL: Once = Once::new();
pub(super) static PREVIOUS: OnceLock<libc::sigaction> = OnceLock::new();

fn head() -> &'static Chunk {
    HEAD.get_or_init(|| Box::leak(Chunk::new()))
}

/// Every chunk, in order. Lock-free and allocation-free: safe in the handler.
fn chunks() -> impl Iterator<Item = &'static Chunk> {
    let first: Option<&'static Chunk> = HEAD.get().copied();
    std::iter::successors(first, |c| {
        let n = c.next.load(Ordering::Acquire);
        // SAFETY: `next` is null or a leaked Box<Chunk>, valid forever.
        (!n.is_null()).then(|| unsafe { &*n })
    })
}

/// Keeps one mapping's range registered; drop it before unmapping.
#[derive(Debug)]
pub(crate) struct Guard {
    slot: &'static Slot,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot").field("start", &self.start).field("end", &self.end).finish()
    }
}

impl Guard {
    /// True once an access to the range faulted because the file had shrunk.
    pub(crate) fn truncated(&self) -> bool {
        self.slot.truncated.load(Ordering::Acquire)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let s = self.slot;
        // Odd first, so the handler stops matching before the mapping goes
        // away and its addresses can be reused; the range is then cleared.
        s.seq.fetch_add(1, Ordering::AcqRel);
        s.start.store(0, Ordering::Release);
        s.end.store(0, Ordering::Release);
        s.truncated.store(false, Ordering::Release);
        s.seq.fetch_add(1, Ordering::AcqRel);
        s.used.store(false, Ordering::Release);
    }
}

/// Claim a free slot, adding a chunk when all are taken.
fn claim() -> &'static Slot {
    let mut chunk = head();
    loop {
        for s in &chunk.slots {
            if s.used.compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                return s;
            }
        }
        let next = chunk.next.load(Ordering::Acquire);
        if !next.is_null() {
            // SAFETY: a leaked Box<Chunk>, valid forever.
            chunk = unsafe { &*next };
            continue;
        }
        let fresh = Box::into_raw(Chunk::new());
        match chunk.next.compare_exchange(std::ptr::null_mut(), fresh, Ordering::AcqRel, Ordering::Acquire) {
            // SAFETY: just published; leaked from here on.
            Ok(_) => chunk = unsafe { &*fresh },
            Err(other) => {
                // Another thread added one first: free ours, use theirs.
                // SAFETY: `fresh` was never published.
                drop(unsafe { Box::from_raw(fresh) });
                // SAFETY: a leaked Box<Chunk>, valid forever.
                chunk = unsafe { &*other };
            }
        }
    }
}

/// Register `[start, start + len)`, a shared file mapping this process holds
/// until the returned guard is dropped. Never fails, never unguarded.
pub(crate) fn guard(start: *const u8, len: usize) -> Guard {
    INSTALL.call_once(install);
    let s = claim();
    s.seq.fetch_add(1, Ordering::AcqRel); // odd: being written
    s.start.store(start as usize, Ordering::Release);
    s.end.store(start as usize + len, Ordering::Release);
    s.truncated.store(false, Ordering::Release);
    s.seq.fetch_add(1, Ordering::AcqRel); // even: stable
    Guard { slot: s }
}

/// The registered range containing `addr`, read consistently (seqlock).
fn find(addr: usize) -> Option<(&'static Slot, usize)> {
    for c in chunks() {
        for s in &c.slots {
            let before = s.seq.load(Ordering::Acquire);
            if before == 0 || before % 2 == 1 {
                continue;
            }
            let (start, end) = (s.start.load(Ordering::Acquire), s.end.load(Ordering::Acquire));
            if s.seq.load(Ordering::Acquire) != before {
                continue; // rewritten meanwhile: not this one
            }
            if start <= addr && addr < end {
                return Some((s, end));
            }
        }
    }
    None
}

#[cfg(test)]
pub(super) fn registered() -> usize {
    chunks().map(|c| c.slots.iter().filter(|s| s.used.load(Ordering::Acquire)).count()).sum()
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
        if let Some((s, end)) = find(addr) {
            let from = addr & !(PAGE.load(Ordering::Relaxed) - 1);
            // SAFETY: errno is thread-local; saving it keeps the interrupted
            // code's value intact across our mmap.
            let errno = unsafe { *libc::__errno_location() };
            // SAFETY: [from, end) lies inside a mapping this process made and
            // still holds (the slot is registered until just before the
            // unmap, read consistently under its sequence number, and code
            // touching the range keeps the mapping alive). Replacing those
            // pages with private anonymous memory changes only what the bytes
            // are, never whether the addresses are valid; every byte pattern
            // is valid for the atomics and u8 slices that point there.
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The handler's lookup never sees a torn range: while one thread keeps
    /// re-registering one slot with different ranges, every range another
    /// thread finds is one that was registered as a whole. (The ranges are
    /// below the kernel's lowest mappable address, so no real fault can ever
    /// land in them.)
    #[test]
    fn a_reused_slot_is_never_read_torn() {
        const PAGE: usize = 4096;
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let current = std::sync::Arc::new(AtomicUsize::new(1));
        let writer = {
            let (stop, current) = (stop.clone(), current.clone());
            std::thread::spawn(move || {
                let mut k = 1usize;
                while !stop.load(Ordering::Relaxed) {
                    // Pages 1..15: range k is [k * PAGE, k * PAGE + PAGE).
                    current.store(k, Ordering::Relaxed);
                    let g = guard((k * PAGE) as *const u8, PAGE);
                    for _ in 0..500 {
                        std::hint::spin_loop();
                    }
                    drop(g);
                    k = k % 14 + 1;
                }
            })
        };
        let mut found = 0u64;
        let start = std::time::Instant::now();
        // Until enough overlaps were seen (a busy machine may run the writer
        // late); the bound only ends a broken run.
        for i in 0usize.. {
            if found >= 20_000 || start.elapsed() > std::time::Duration::from_secs(20) {
                break;
            }
            // Mostly the range being registered now, sometimes a neighbour.
            let k = current.load(Ordering::Relaxed) + usize::from(i % 8 == 0);
            let addr = k * PAGE + 100;
            if let Some((_, end)) = find(addr) {
                assert_eq!(end, (addr & !(PAGE - 1)) + PAGE, "torn range for {addr:#x}");
                found += 1;
            }
        }
        stop.store(true, Ordering::Relaxed);
        writer.join().unwrap();
        assert!(found > 0, "the lookup never overlapped a registration");
    }
}
