//! Is the peer process alive? Answered without touching the shared bytes.
//!
//! Each side holds an open-file-description (OFD) write lock on one byte of
//! the stream file far beyond its end: the server on [`LOCK_BASE`], the client
//! on `LOCK_BASE + 1`. The kernel drops the lock when the process dies or
//! closes the file, however it ends. A probe asks with `F_OFD_GETLK` whether
//! anyone else holds the peer's byte. A peer never seen holding it (an older
//! implementation, or one not yet started) is "unknown", never "dead".

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

fn lock_byte(role: Role) -> i64 {
    match role {
        Role::Server => LOCK_BASE,
        Role::Client => LOCK_BASE + 1,
    }
}

fn flock(kind: libc::c_int, role: Role) -> libc::flock {
    // SAFETY: flock is a plain C struct for which all-zero bytes are valid.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind as _;
    fl.l_whence = libc::SEEK_SET as _;
    fl.l_start = lock_byte(role) as _;
    fl.l_len = 1;
    fl
}

/// Take this side's liveness lock. False when another live process of the
/// same role holds it (e.g. an old client that has not exited yet).
pub(crate) fn claim(file: &File, role: Role) -> bool {
    let mut fl = flock(libc::F_WRLCK, role);
    // SAFETY: a valid fd and a pointer to an initialised flock that outlives the call.
    unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &mut fl) == 0 }
}

/// Whether any other open file description holds `role`'s byte; `None` when
/// the kernel cannot tell (no OFD lock support).
pub(crate) fn probe(file: &File, role: Role) -> Option<bool> {
    let mut fl = flock(libc::F_WRLCK, role);
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
        assert!(claim(&a, Role::Server));
        assert_eq!(watch.check(&b), Liveness::Alive);
        assert_eq!(probe(&b, Role::Client), Some(false));
        let c = open();
        assert!(!claim(&c, Role::Server), "a second server lock conflicts");
        drop(a);
        assert_eq!(watch.check(&b), Liveness::Gone);
        watch.reset();
        assert_eq!(watch.check(&b), Liveness::Unknown);
    }
}
