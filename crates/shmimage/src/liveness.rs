//! Is the peer process alive? Answered without touching the shared bytes.
//!
//! Each side holds an open-file-description (OFD) write lock on one byte of
//! the stream file far beyond its end: the server on [`LOCK_BASE`], the client
//! on `LOCK_BASE + 1`. The kernel drops the lock when the process dies or
//! closes the file, however it ends. A probe asks with `F_OFD_GETLK` whether
//! anyone else holds the peer's byte. A peer never seen holding it (an older
//! implementation, or one not yet started) is "unknown", never "dead".
//!
//! The same lock refuses a second live peer in one role: `claim` fails while
//! another open file description holds the byte. OFD locks do not report
//! their holder's pid (`F_OFD_GETLK` answers `l_pid = -1`), so each side also
//! takes a classic per-process POSIX lock on a second byte (`PID_BASE`), whose
//! `F_GETLK` does name the process. That lock is only a name tag: POSIX locks
//! vanish when the process closes *any* descriptor of the file, so it can be
//! missing, and then the pid is reported as unknown. Liveness itself never
//! depends on it.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::state::Role;

/// First byte offset of the liveness locks (2^50: beyond any stream file).
const LOCK_BASE: i64 = 1 << 50;

/// What is known of a peer process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Liveness {
    /// It holds its liveness lock now.
    Alive,
    /// It held its lock earlier and no longer does: it died or closed the stream.
    Gone,
    /// It never showed a lock (not yet connected, or an implementation that
    /// does not take one): nothing is concluded.
    Unknown,
}

/// First byte offset of the per-process locks that name the holder's pid.
const PID_BASE: i64 = LOCK_BASE + 2;

fn lock_byte(role: Role) -> i64 {
    match role {
        Role::Server => LOCK_BASE,
        Role::Client => LOCK_BASE + 1,
    }
}

fn pid_byte(role: Role) -> i64 {
    lock_byte(role) - LOCK_BASE + PID_BASE
}

fn flock_at(kind: libc::c_int, at: i64) -> libc::flock {
    // SAFETY: flock is a plain C struct for which all-zero bytes are valid.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind as _;
    fl.l_whence = libc::SEEK_SET as _;
    fl.l_start = at as _;
    fl.l_len = 1;
    fl
}

/// Take this side's liveness lock (and its pid tag). `Err(pid)` when another
/// live process of the same role holds it; the pid when known.
pub(crate) fn claim(file: &File, role: Role) -> Result<(), Option<u32>> {
    let mut fl = flock_at(libc::F_WRLCK, lock_byte(role));
    // SAFETY: a valid fd and a pointer to an initialised flock that outlives the call.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &mut fl) } != 0 {
        let e = std::io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::EAGAIN | libc::EACCES) => Err(holder_pid(file, role)),
            // No OFD locks here (EINVAL): liveness is unknown, nothing refused.
            _ => Ok(()),
        };
    }
    let mut tag = flock_at(libc::F_WRLCK, pid_byte(role));
    // SAFETY: as above; a classic POSIX record lock, best effort.
    let _ = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &mut tag) };
    Ok(())
}

/// Give up this side's liveness lock (at close, while handles may keep the
/// file open a while longer), so a new peer can take the role.
pub(crate) fn release(file: &File, role: Role) {
    let mut fl = flock_at(libc::F_UNLCK, lock_byte(role));
    let mut tag = flock_at(libc::F_UNLCK, pid_byte(role));
    // SAFETY: a valid fd and pointers to initialised flocks that outlive the calls.
    unsafe {
        libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &mut fl);
        libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &mut tag);
    }
}

/// The pid of the process holding `role`'s pid tag, if any other does.
pub(crate) fn holder_pid(file: &File, role: Role) -> Option<u32> {
    let mut fl = flock_at(libc::F_WRLCK, pid_byte(role));
    // SAFETY: a valid fd and a pointer to an initialised flock that outlives the call.
    let r = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETLK, &mut fl) };
    (r == 0 && fl.l_type != libc::F_UNLCK as _ && fl.l_pid > 0).then_some(fl.l_pid as u32)
}

/// Whether any other open file description holds `role`'s byte; `None` when
/// the kernel cannot tell (no OFD lock support).
pub(crate) fn probe(file: &File, role: Role) -> Option<bool> {
    let mut fl = flock_at(libc::F_WRLCK, lock_byte(role));
    // SAFETY: a valid fd and a pointer to an initialised flock that outlives the call.
    let r = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_GETLK, &mut fl) };
    (r == 0).then_some(fl.l_type != libc::F_UNLCK as _)
}

/// Remembers whether a peer was ever seen alive, to tell gone from unknown.
#[derive(Debug)]
pub(crate) struct PeerWatch {
    role: Role,
    seen: AtomicBool,
}

impl PeerWatch {
    pub(crate) fn new(peer: Role) -> PeerWatch {
        PeerWatch { role: peer, seen: AtomicBool::new(false) }
    }

    pub(crate) fn seen_alive(&self) -> bool {
        self.seen.load(Ordering::Relaxed)
    }

    /// Forget what was seen (after a reclaim, the next peer is a new one).
    pub(crate) fn reset(&self) {
        self.seen.store(false, Ordering::Relaxed);
    }

    pub(crate) fn check(&self, file: &File) -> Liveness {
        match probe(file, self.role) {
            Some(true) => {
                self.seen.store(true, Ordering::Relaxed);
                Liveness::Alive
            }
            Some(false) if self.seen_alive() => Liveness::Gone,
            _ => Liveness::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;

    #[test]
    fn a_lock_is_seen_from_another_open_and_released_on_close() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, [0u8; 64]).unwrap();
        let open = || OpenOptions::new().read(true).write(true).open(&p).unwrap();
        let (a, b) = (open(), open());
        let watch = PeerWatch::new(Role::Server);
        assert_eq!(watch.check(&b), Liveness::Unknown);
        assert!(claim(&a, Role::Server).is_ok());
        assert_eq!(watch.check(&b), Liveness::Alive);
        assert_eq!(probe(&b, Role::Client), Some(false));
        let c = open();
        // Same process: the POSIX pid tag does not conflict with our own, so the pid is unknown.
        assert_eq!(claim(&c, Role::Server), Err(None), "a second server lock conflicts");
        drop(a);
        assert_eq!(watch.check(&b), Liveness::Gone);
        watch.reset();
        assert_eq!(watch.check(&b), Liveness::Unknown);
    }
}
