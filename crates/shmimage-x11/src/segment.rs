//! SysV shared-memory segments for MIT-SHM: the one home of shmget, shmat,
//! shmdt and shmctl in this crate.
//!
//! Lifecycle: [`Segment::new`] creates a private segment readable and
//! writable by its owner only (0600: the X server learns the client's uid over
//! the local socket, so "other" never needs access) and maps it; once the X
//! server has attached it (confirmed by a round trip), [`Segment::remove_id`]
//! marks the id for removal, so the kernel frees the memory when the last
//! attacher goes, even if this process is killed. Dropping a segment detaches
//! it here and removes the id if that had not happened yet.

use std::io;

use crate::error::{Error, Result};

/// A SysV shared-memory segment mapped into this process.
#[derive(Debug)]
pub struct Segment {
    id: i32,
    addr: *mut u8,
    len: usize,
    removed: bool,
}

// SAFETY: the segment is plain memory owned by this value; the raw pointer is
// only an address, and every access goes through `&self`/`&mut self`.
unsafe impl Send for Segment {}

impl Segment {
    /// Create and map a new private segment of `len` bytes (mode 0600).
    pub fn new(len: usize) -> Result<Segment> {
        if len == 0 {
            return Err(Error::BadSize("a shared-memory segment of 0 bytes".into()));
        }
        // SAFETY: shmget takes plain integers and touches no memory of ours.
        let id = unsafe { libc::shmget(libc::IPC_PRIVATE, len, libc::IPC_CREAT | libc::IPC_EXCL | 0o600) };
        if id < 0 {
            return Err(Error::Os { call: "shmget", source: io::Error::last_os_error() });
        }
        // SAFETY: a null address lets the kernel choose where to map; the
        // segment was just created by us, so nothing else is mapped there.
        let addr = unsafe { libc::shmat(id, std::ptr::null(), 0) };
        if addr as isize == -1 {
            let source = io::Error::last_os_error();
            // SAFETY: removing an id we own; no memory is involved.
            unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
            return Err(Error::Os { call: "shmat", source });
        }
        Ok(Segment { id, addr: addr.cast(), len, removed: false })
    }

    /// The SysV id to hand to `ShmAttach`.
    pub fn id(&self) -> u32 {
        // SysV ids are non-negative (shmget's -1 was turned into an error).
        self.id as u32
    }

    /// Bytes in the segment.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for a zero-length segment (never: `new` refuses one).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Mark the id for removal (IPC_RMID): the memory stays while anyone is
    /// attached, and goes with the last detach, crash or not. Call it as soon
    /// as the X server has attached.
    pub fn remove_id(&mut self) -> Result<()> {
        if self.removed {
            return Ok(());
        }
        // SAFETY: removing an id we created; no memory is involved.
        let r = unsafe { libc::shmctl(self.id, libc::IPC_RMID, std::ptr::null_mut()) };
        if r != 0 {
            return Err(Error::Os { call: "shmctl(IPC_RMID)", source: io::Error::last_os_error() });
        }
        self.removed = true;
        Ok(())
    }

    /// The segment's bytes.
    ///
    /// The X server writes into the segment only while a `ShmGetImage` into
    /// it is outstanding, and reads it only while a `ShmPutImage`, a shared
    /// pixmap's drawing or a `CopyArea` from it is outstanding; callers wait
    /// for the reply or completion event before touching these bytes. The
    /// segment is 0600 and its id removed after attaching, so no other
    /// process can join later.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: addr..addr+len is our live mapping (detached only on drop);
        // see above for why nothing else writes it meanwhile.
        unsafe { std::slice::from_raw_parts(self.addr, self.len) }
    }

    /// The segment's bytes, writable (see [`Segment::as_slice`]).
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as for as_slice; `&mut self` makes this the only view here.
        unsafe { std::slice::from_raw_parts_mut(self.addr, self.len) }
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        // SAFETY: addr came from shmat and is detached exactly once, here; no
        // slice into it can outlive `self`.
        unsafe { libc::shmdt(self.addr.cast()) };
        if !self.removed {
            // SAFETY: removing an id we created; no memory is involved.
            unsafe { libc::shmctl(self.id, libc::IPC_RMID, std::ptr::null_mut()) };
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test's own setup failing is a test failure
mod tests {
    use super::*;

    /// The mode of segment `id` from /proc/sysvipc/shm, with SHM_DEST (01000)
    /// showing whether the id was removed.
    fn proc_mode(id: u32) -> Option<u32> {
        let text = std::fs::read_to_string("/proc/sysvipc/shm").ok()?;
        text.lines().skip(1).find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(1)?.parse::<u32>().ok()? == id).then(|| u32::from_str_radix(f.get(2)?, 8).ok()).flatten()
        })
    }

    #[test]
    fn owner_only_and_gone_after_drop() {
        let mut s = Segment::new(4096).unwrap();
        s.as_mut_slice()[4095] = 7;
        assert_eq!(s.as_slice()[4095], 7);
        let id = s.id();
        assert_eq!(proc_mode(id).map(|m| m & 0o777), Some(0o600));
        s.remove_id().unwrap();
        // Still mapped by us, so still listed, now marked for destruction.
        if let Some(m) = proc_mode(id) {
            assert_eq!(m & 0o1000, 0o1000);
        }
        assert_eq!(s.as_slice()[4095], 7);
        drop(s);
        assert_eq!(proc_mode(id), None);
    }

    #[test]
    fn dropped_without_remove_leaves_nothing() {
        let s = Segment::new(100).unwrap();
        let id = s.id();
        drop(s);
        assert_eq!(proc_mode(id), None);
    }

    #[test]
    fn zero_length_is_an_error() {
        assert!(Segment::new(0).is_err());
    }
}
