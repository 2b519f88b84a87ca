//! Liveness locks of the native stream: open-file-description (OFD) write
//! locks on single bytes far beyond the file's end, one for the writer and
//! one per reader entry. The kernel drops them when their holder dies or
//! closes the file, however it ends. The same mechanism as 1.0's
//! (`crate::liveness`), generalised to 65 bytes.

use std::fs::File;
use std::os::fd::AsRawFd;

/// First lock byte (2^50 + 4096: beyond any stream file, apart from 1.0's bytes).
const LOCK_BASE: i64 = (1 << 50) + 4096;

/// The writer's byte.
pub(crate) fn writer_byte() -> i64 {
    LOCK_BASE
}

/// Reader entry `i`'s byte.
pub(crate) fn reader_byte(i: u32) -> i64 {
    LOCK_BASE + 1 + i64::from(i)
}

fn flock(kind: libc::c_int, byte: i64) -> libc::flock {
    // SAFETY: flock is a plain C struct for which all-zero bytes are valid.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind as _;
    fl.l_whence = libc::SEEK_SET as _;
    fl.l_start = byte as _;
    fl.l_len = 1;
    fl
}

fn setlk(file: &File, kind: libc::c_int, byte: i64) -> bool {
    let mut fl = flock(kind, byte);
    // SAFETY: a valid fd and a pointer to an initialised flock that outlives the call.
    unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &mut fl) == 0 }
}

/// Take `byte` for this open file description; false when another holds it.
pub(crate) fn try_lock(file: &File, byte: i64) -> bool {
    setlk(file, libc::F_WRLCK, byte)
}

/// Give `byte` back.
pub(crate) fn unlock(file: &File, byte: i64) {
    setlk(file, libc::F_UNLCK, byte);
}

/// Whether another open file description holds `byte`; `None` when the
/// kernel cannot tell.
pub(crate) fn held_by_other(file: &File, byte: i64) -> Option<bool> {
    let mut fl = flock(libc::F_WRLCK, byte);
    // SAFETY: a valid fd and a pointer to an initialised flock that outlives the call.
    let r = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_GETLK, &mut fl) };
    (r == 0).then_some(fl.l_type != libc::F_UNLCK as _)
}
