//! Opening and mapping a stream file: the one home of the mmap unsafety.
//!
//! The mapping is shared with another process that may be hostile, so it is
//! never handed out as a Rust reference to plain data: header fields are read
//! and written as atomics, pixels are copied through raw pointers after every
//! range has been checked against the layout.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use memmap2::{MmapOptions, MmapRaw};

use crate::error::{Error, Result};
use crate::layout::{field, Header, Layout};
use crate::state::{BufferState, Transition};

mod prefault;
pub(crate) mod sigbus;
mod stream_copy;

/// An open, mapped stream file.
#[derive(Debug)]
pub(crate) struct Mapping {
    /// Declared before `map` so it is dropped (unregistered) before the unmap.
    guard: sigbus::Guard,
    map: MmapRaw,
    file: File,
    path: PathBuf,
    layout: Layout,
    identity: (u64, u64),
}

/// Open a stream file (read-write, or read-only to inspect it) and return it
/// with its metadata. Refuses what a stream file must not be: missing
/// (BAD_FILE_SIZE), a symlink, a directory, a FIFO or device
/// (UNABLE_TO_OPEN_FILE). Sizes are the caller's to check.
pub(crate) fn open_stream_file(path: &Path, write: bool) -> Result<(File, std::fs::Metadata)> {
    let refuse = |kind: io::ErrorKind, why: &str| Error::open(path, io::Error::new(kind, why.to_owned()));
    let directory = || refuse(io::ErrorKind::InvalidInput, "it is a directory, not a stream file");
    // O_NOFOLLOW: a symlink planted in place of the file is refused.
    // O_NONBLOCK: opening a FIFO must not hang; it is refused just below.
    let file = OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ENOENT) => Error::BadFileSize { path: path.to_owned(), len: None },
            Some(libc::ELOOP) => Error::open(
                path,
                io::Error::new(e.kind(), "it is a symbolic link; pass the real file (symbolic links are refused)"),
            ),
            Some(libc::EISDIR) => directory(),
            _ => Error::open(path, e),
        })?;
    let meta = file.metadata().map_err(|e| Error::open(path, e))?;
    // Read-only, a directory opens; read-write it fails with EISDIR above.
    if meta.is_dir() {
        return Err(directory());
    }
    if !meta.file_type().is_file() {
        return Err(refuse(io::ErrorKind::InvalidInput, "it is not a regular file"));
    }
    Ok((file, meta))
}

impl Mapping {
    /// Open `path` read-write and map it. Refuses symlinks, FIFOs, devices and
    /// directories (UNABLE_TO_OPEN_FILE) and files under 64 bytes (BAD_FILE_SIZE).
    pub(crate) fn open(path: &Path) -> Result<Mapping> {
        let (file, meta) = open_stream_file(path, true)?;
        let mut head = [0u8; 8];
        if std::os::unix::fs::FileExt::read_at(&file, &mut head, 0).ok() == Some(8)
            && head == crate::native::layout::MAGIC
        {
            return Err(Error::UnableToOpenFile {
                path: path.to_owned(),
                source: io::Error::new(
                    io::ErrorKind::InvalidData,
                    "it is a native shmimage stream, not an EnSight 1.0 one; open it with shmimage::Reader/Writer",
                ),
            });
        }
        let len = meta.len();
        let layout =
            Layout::for_file_len(len).ok_or_else(|| Error::BadFileSize { path: path.to_owned(), len: Some(len) })?;
        let map_len = usize::try_from(len).map_err(|_| Error::UnableToMapFile {
            path: path.to_owned(),
            source: io::Error::new(
                io::ErrorKind::OutOfMemory,
                format!("{len} bytes do not fit in this process's address space"),
            ),
        })?;
        let map = MmapOptions::new()
            .len(map_len)
            .map_raw(&file)
            .map_err(|e| Error::UnableToMapFile { path: path.to_owned(), source: e })?;
        let guard = sigbus::guard(map.as_ptr(), map_len);
        // SAFETY: the whole fresh read-write mapping, with its SIGBUS guard.
        let prepared = unsafe { prefault::prepare(map.as_mut_ptr(), map_len) };
        tracing::trace!(?prepared, map_len, "stream mapping prepared");
        Ok(Mapping { guard, map, file, path: path.to_owned(), layout, identity: (meta.dev(), meta.ino()) })
    }

    /// True once an access to the mapping found the file shorter than when it
    /// was mapped (the SIGBUS guard swapped the missing pages for zeros).
    /// Cheap: one atomic load.
    pub(crate) fn truncated(&self) -> bool {
        self.guard.truncated()
    }

    /// `Err` when the file is no longer the size it was mapped at, or an
    /// access found pages missing. Shorter: another process truncated it
    /// (FileTruncated). Longer: it was grown while open, and a peer opening
    /// it now would see other buffer offsets (FileResized). Same size but an
    /// access faulted: the file system could not supply a page of a sparse
    /// file (NoSpace), never called a truncation.
    pub(crate) fn check_intact(&self) -> Result<()> {
        let mapped = self.layout.file_len();
        let now = match self.file.metadata() {
            Ok(m) => m.len(),
            Err(_) => mapped, // fstat on an open fd does not fail in practice
        };
        if now < mapped {
            return Err(Error::FileTruncated { path: self.path.clone(), mapped, now });
        }
        if now > mapped {
            return Err(Error::FileResized { path: self.path.clone(), mapped, now });
        }
        if self.truncated() {
            return Err(Error::NoSpace {
                path: self.path.clone(),
                needed: mapped,
                available: crate::file::available_bytes(&self.file),
                source: None,
            });
        }
        Ok(())
    }

    /// Replace the whole mapping with private anonymous memory, at the same
    /// addresses: pointers into it held anywhere in this process (a NumPy
    /// view, a C frame pointer, a slice another thread is reading) stay
    /// valid but no longer reach the shared file. Used by close, so that no
    /// handle outliving its stream can touch shared memory.
    pub(crate) fn detach(&self) {
        let len = self.layout.file_len() as usize;
        // SAFETY: the range is exactly this mapping, which `self` owns and
        // unmaps only on drop; MAP_FIXED swaps the pages in one step under
        // the kernel's mmap lock, so other threads see either the file's
        // pages or the new private ones, never a hole. Every byte pattern is
        // valid for the atomics and u8 slices that point there.
        let r = unsafe {
            libc::mmap(
                self.map.as_mut_ptr().cast(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_FIXED | libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if r == libc::MAP_FAILED {
            tracing::warn!(path = %self.path.display(), "cannot detach the mapping at close");
        }
    }

    /// In a fork child, let go of the parent's stream without touching it:
    /// detach the pages (the mapping holds a reference to the open file
    /// description) and point our descriptor at /dev/null (so does the fd).
    /// Both are this process's own tables; the parent's liveness lock, which
    /// lives on that shared open file description, then no longer depends on
    /// this child staying alive.
    pub(crate) fn let_go_in_child(&self) {
        self.detach();
        // SAFETY: plain syscalls on descriptors this object owns; dup3 swaps
        // what `self.file`'s number refers to atomically, so the later close
        // on drop closes /dev/null instead.
        unsafe {
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
            if null >= 0 {
                libc::dup3(null, self.file.as_raw_fd(), libc::O_CLOEXEC);
                libc::close(null);
            }
        }
    }

    pub(crate) fn layout(&self) -> &Layout {
        &self.layout
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    /// The (device, inode) that `path` names now; `None` when it names nothing.
    fn path_identity(&self) -> Option<(u64, u64)> {
        std::fs::symlink_metadata(&self.path).ok().map(|m| (m.dev(), m.ino()))
    }

    /// True when `path` no longer names the file this mapping was made from
    /// (deleted, or replaced by another file).
    pub(crate) fn is_replaced(&self) -> bool {
        self.path_identity() != Some(self.identity)
    }

    /// True when `path` exists and is another file than this mapping's (the
    /// stream file was deleted and created again, or renamed over).
    pub(crate) fn names_other_file(&self) -> bool {
        self.path_identity().is_some_and(|id| id != self.identity)
    }

    fn word(&self, index: usize, offset: u64) -> &AtomicU32 {
        let at = self.layout.header_offset(index) + offset;
        debug_assert!(index < 2 && at % 4 == 0 && at + 4 <= self.layout.file_len());
        // SAFETY: header offsets are multiples of 8 and field offsets multiples
        // of 4, so `at` is 4-aligned inside the mapping (Layout guarantees both
        // headers lie within file_len, which is the mapping's length; the base
        // is page-aligned). The mapping lives as long as `self`. Memory another
        // process writes concurrently is exactly what atomics are for, and every
        // bit pattern is a valid u32.
        unsafe { &*(self.map.as_ptr().add(at as usize) as *const AtomicU32) }
    }

    /// The state word of buffer `index` (the futex the peers sleep on).
    pub(crate) fn state_word(&self, index: usize) -> &AtomicU32 {
        self.word(index, field::STATE)
    }

    /// Both state words, read with acquire ordering.
    pub(crate) fn states(&self) -> [u32; 2] {
        [0, 1].map(|i| self.state_word(i).load(Ordering::Acquire))
    }

    /// Move buffer `index` from `from` to `transition.to()` if it is still in
    /// `from`. Release on success, so the fields and pixels written before are
    /// visible to whoever acquires the new state.
    pub(crate) fn transition(&self, index: usize, from: u32, transition: Transition) -> bool {
        debug_assert!(transition.allowed_from(BufferState::from_word(from)), "{transition:?} from {from}");
        self.state_word(index)
            .compare_exchange(from, transition.to().word(), Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Force buffer `index` to `state` (only for a server resetting its file).
    pub(crate) fn store_state(&self, index: usize, state: BufferState) {
        self.state_word(index).store(state.word(), Ordering::Release);
    }

    /// Read the header fields of buffer `index`. Call after acquiring a state
    /// this side owns; the values are still untrusted.
    pub(crate) fn read_header(&self, index: usize) -> Header {
        let r = |off| self.word(index, off).load(Ordering::Relaxed);
        Header {
            frame_number: r(field::FRAME_NUMBER),
            width: r(field::WIDTH),
            height: r(field::HEIGHT),
            offset: r(field::OFFSET),
            num_scanlines: r(field::NUM_SCANLINES),
        }
    }

    /// Write the header fields of buffer `index` (published by the next
    /// release of its state word).
    pub(crate) fn write_header(&self, index: usize, h: &Header) {
        let w = |off, v| self.word(index, off).store(v, Ordering::Relaxed);
        w(field::FRAME_NUMBER, h.frame_number);
        w(field::WIDTH, h.width);
        w(field::HEIGHT, h.height);
        w(field::OFFSET, h.offset);
        w(field::NUM_SCANLINES, h.num_scanlines);
    }

    /// Pointer to `len` payload bytes of buffer `index`, after checking they
    /// fit in the buffer. Valid while `self` lives.
    pub(crate) fn payload_ptr(&self, index: usize, len: u64) -> Option<*mut u8> {
        if index >= 2 || len > self.layout.capacity() {
            return None;
        }
        let at = self.layout.payload_offset(index);
        // SAFETY: payload_offset(index) + capacity <= file_len (Layout), and the
        // mapping is file_len bytes long, so the pointer stays in bounds.
        Some(unsafe { self.map.as_mut_ptr().add(at as usize) })
    }

    /// Copy `src` into buffer `index`'s payload at byte `at`. False when the
    /// range is outside the buffer or the file was found truncated.
    pub(crate) fn copy_in(&self, index: usize, at: u64, src: &[u8]) -> bool {
        let Some(end) = at.checked_add(src.len() as u64) else { return false };
        let Some(base) = self.payload_ptr(index, end) else { return false };
        // SAFETY: [at, end) lies inside the payload (checked above); `src` is a
        // separate allocation of this process, so the ranges do not overlap.
        unsafe { stream_copy::copy(src.as_ptr(), base.add(at as usize), src.len()) };
        // A copy into a file truncated meanwhile completes on zero pages (see
        // sigbus.rs); the bytes never reached the file.
        !self.truncated()
    }

    /// Copy `dst.len()` bytes of buffer `index`'s payload, from its start, into
    /// `dst`. False when out of range or the file was found truncated (the
    /// missing bytes read as zeros).
    pub(crate) fn copy_out(&self, index: usize, dst: &mut [u8]) -> bool {
        let Some(base) = self.payload_ptr(index, dst.len() as u64) else { return false };
        // SAFETY: the range lies inside the payload (checked by payload_ptr);
        // `dst` is this process's own memory, so the ranges do not overlap. The
        // peer may change the bytes meanwhile; any u8 is valid, so the worst is
        // a garbled frame, never undefined behaviour in this process.
        unsafe { std::ptr::copy_nonoverlapping(base, dst.as_mut_ptr(), dst.len()) };
        !self.truncated()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::file::StreamFile;
    use crate::Code;

    /// Reads and writes of pages beyond a shrunken file's end would be
    /// SIGBUS; the guard turns them into zeros and an error.
    #[test]
    fn truncation_under_a_copy_is_an_error_not_a_crash() {
        let f = StreamFile::with_len(1 << 20).unwrap();
        let m = Mapping::open(f.path()).unwrap();
        let cap = m.layout().capacity() as usize;
        assert!(m.copy_in(1, 0, &vec![7u8; cap]));
        m.check_intact().unwrap();
        std::fs::OpenOptions::new().write(true).open(f.path()).unwrap().set_len(4096).unwrap();
        assert_eq!(m.check_intact().unwrap_err().code(), Code::FileTruncated);
        assert!(!m.truncated(), "nothing touched the missing pages yet");
        let mut out = vec![1u8; cap];
        assert!(!m.copy_out(1, &mut out), "the copy reports the truncation");
        assert!(out.iter().all(|&b| b == 0), "missing bytes read as zeros");
        assert!(!m.copy_in(1, 0, &vec![9u8; cap]));
        assert!(m.truncated());
        let e = m.check_intact().unwrap_err();
        assert!(e.to_string().contains("truncated"), "{e}");
        // The state word of buffer 1 is past the new end too.
        let _ = m.states();
        // A second mapping of the same file, made after the truncation, is refused.
        std::fs::OpenOptions::new().write(true).open(f.path()).unwrap().set_len(0).unwrap();
        assert_eq!(Mapping::open(f.path()).unwrap_err().code(), Code::BadFileSize);
        let _ = m.states();
    }

    /// The old table held 256 mappings and left the rest unguarded: the
    /// 300th mapping's file cut short killed the process with SIGBUS.
    #[test]
    fn more_than_256_mappings_are_all_guarded() {
        let files: Vec<StreamFile> = (0..300).map(|_| StreamFile::with_len(3 * 4096).unwrap()).collect();
        let maps: Vec<Mapping> = files.iter().map(|f| Mapping::open(f.path()).unwrap()).collect();
        assert!(sigbus::registered() >= 300);
        let last = files.len() - 1;
        std::fs::OpenOptions::new().write(true).open(files[last].path()).unwrap().set_len(64).unwrap();
        let mut out = vec![1u8; maps[last].layout().capacity() as usize];
        assert!(!maps[last].copy_out(1, &mut out), "the cut is reported, the process lives");
        assert!(maps[last].truncated() && !maps[0].truncated());
        drop(maps);
        assert!(sigbus::registered() < 300, "slots are given back");
    }

    #[test]
    fn the_guard_is_a_siginfo_handler_and_keeps_the_previous_one() {
        // Installing the guard must leave other SIGBUS handling in place: std's
        // own handler (stack overflow detection) is what we chain to here.
        let f = StreamFile::with_len(64).unwrap();
        let _m = Mapping::open(f.path()).unwrap();
        // SAFETY: reads the current action only.
        let mut cur: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: valid pointer; a null new action only queries.
        assert_eq!(unsafe { libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut cur) }, 0);
        assert!(cur.sa_flags & libc::SA_SIGINFO != 0 && cur.sa_sigaction != libc::SIG_DFL);
        assert!(sigbus::PREVIOUS.get().is_some(), "the action it replaced is kept for chaining");
    }
}
