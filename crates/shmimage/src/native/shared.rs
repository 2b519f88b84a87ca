//! An open, mapped native stream file: opening, creating, validating the
//! header, and the typed access to its words. The one home of the native
//! mapping's unsafety.
//!
//! The mapping is shared with processes that may be hostile: shared words are
//! only ever accessed as atomics at offsets computed from a validated
//! [`Layout`], and pixel and metadata ranges are handed out only after their
//! bounds were checked against it.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use memmap2::{MmapOptions, MmapRaw};

use super::error::{Error, Result};
use super::layout::{self, header, HeaderValues, Layout};
use super::slot::SlotWords;
use crate::Protocol;

/// An open native stream file.
#[derive(Debug)]
pub(crate) struct Shared {
    /// Declared before `map` so it is dropped (unregistered) before the unmap.
    guard: super::guard::Guard,
    map: MmapRaw,
    file: File,
    path: PathBuf,
    layout: Layout,
    /// The process that opened it; any other (a fork child) must not use it.
    origin: crate::fork::Origin,
    closed: AtomicBool,
}

fn open_err(path: &Path, e: crate::Error) -> Error {
    match e {
        crate::Error::BadFileSize { .. } => Error::NotFound { path: path.to_owned() },
        crate::Error::UnableToOpenFile { source, .. } => Error::UnableToOpen { path: path.to_owned(), source },
        other => Error::Ensight(other),
    }
}

fn map_file(file: &File, path: &Path, len: u64) -> Result<MmapRaw> {
    let map_err = |source: std::io::Error| Error::UnableToMap { path: path.to_owned(), source };
    let len = usize::try_from(len).map_err(|_| {
        map_err(std::io::Error::new(
            std::io::ErrorKind::OutOfMemory,
            format!("{len} bytes do not fit in the address space"),
        ))
    })?;
    MmapOptions::new().len(len).map_raw(file).map_err(map_err)
}

impl Shared {
    /// Open an existing native stream read-write and validate its header.
    pub(crate) fn open(path: &Path) -> Result<Shared> {
        let (file, meta) = crate::mapping::open_stream_file(path, true).map_err(|e| open_err(path, e))?;
        let len = meta.len();
        if len < layout::PAGE {
            return Err(if len >= crate::layout::MIN_FILE_SIZE {
                Error::WrongProtocol { path: path.to_owned(), found: Protocol::Ensight1 }
            } else {
                Error::NotAStream { path: path.to_owned(), why: format!("{len} bytes") }
            });
        }
        let map = map_file(&file, path, len)?;
        // A provisional layout for reading the header only: one page is mapped.
        let mut sh = Shared {
            guard: super::guard::guard(map.as_ptr(), map.len()),
            map,
            file,
            path: path.to_owned(),
            layout: Layout::new(2, 1, 0).map_err(|e| Error::Corrupt { path: path.to_owned(), what: e.0 })?,
            origin: crate::fork::Origin::here(),
            closed: AtomicBool::new(false),
        };
        let magic = sh.u64_at(header::MAGIC).load(Ordering::Acquire).to_le_bytes();
        if magic != layout::MAGIC {
            return Err(Error::WrongProtocol { path: path.to_owned(), found: Protocol::Ensight1 });
        }
        let h = sh.header_values();
        if h.version != layout::VERSION {
            return Err(Error::UnsupportedVersion { path: path.to_owned(), version: h.version });
        }
        let l = Layout::from_header(&h).map_err(|e| Error::Corrupt { path: path.to_owned(), what: e.0 })?;
        if l.file_len() > len {
            return Err(Error::Corrupt {
                path: path.to_owned(),
                what: format!("the file is {len} bytes but its layout needs {}", l.file_len()),
            });
        }
        sh.layout = l;
        Ok(sh)
    }

    /// Create a new native stream file at `path` (exclusively, mode 0600) with
    /// `layout`, fully initialised before it appears under its name.
    pub(crate) fn create(path: &Path, layout: Layout) -> Result<Shared> {
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let tmp = dir.join(format!(".{name}.{}.new", std::process::id()));
        let io = |source: std::io::Error| Error::UnableToOpen { path: path.to_owned(), source };
        if std::fs::symlink_metadata(path).is_ok() {
            return Err(Error::AlreadyExists { path: path.to_owned() });
        }
        let _ = std::fs::remove_file(&tmp);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)
            .map_err(io)?;
        let cleanup = |e: Error| {
            let _ = std::fs::remove_file(&tmp);
            e
        };
        file.set_len(layout.file_len()).map_err(io).map_err(cleanup)?;
        let map = map_file(&file, path, layout.file_len()).map_err(cleanup)?;
        let sh = Shared {
            guard: super::guard::guard(map.as_ptr(), map.len()),
            map,
            file,
            path: path.to_owned(),
            layout,
            origin: crate::fork::Origin::here(),
            closed: AtomicBool::new(false),
        };
        sh.write_header(&layout.header_values());
        // Appear under the real name only now, complete; a hard link fails if
        // the name was taken meanwhile (no clobbering).
        let linked = std::fs::hard_link(&tmp, path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok(sh),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(Error::AlreadyExists { path: path.to_owned() })
            }
            Err(e) => Err(io(e)),
        }
    }

    fn write_header(&self, h: &HeaderValues) {
        self.u32_at(header::VERSION).store(h.version, Ordering::Relaxed);
        self.u32_at(header::HEADER_BYTES).store(h.header_bytes, Ordering::Relaxed);
        self.u32_at(header::SLOTS).store(h.slots, Ordering::Relaxed);
        self.u32_at(header::READERS).store(h.readers, Ordering::Relaxed);
        self.u32_at(header::METADATA_BYTES).store(h.metadata_bytes, Ordering::Relaxed);
        self.u32_at(header::PAGE).store(h.page, Ordering::Relaxed);
        self.u64_at(header::CONTROL_LEN).store(h.control_len, Ordering::Relaxed);
        self.u64_at(header::SLOT_LEN).store(h.slot_len, Ordering::Relaxed);
        self.u64_at(header::FILE_LEN).store(h.file_len, Ordering::Relaxed);
        // The magic last, with release: whoever sees it sees the rest.
        self.u64_at(header::MAGIC).store(u64::from_le_bytes(layout::MAGIC), Ordering::Release);
    }

    /// The layout values as the header states them (untrusted).
    pub(crate) fn header_values(&self) -> HeaderValues {
        let r32 = |o| self.u32_at(o).load(Ordering::Relaxed);
        let r64 = |o| self.u64_at(o).load(Ordering::Relaxed);
        HeaderValues {
            version: r32(header::VERSION),
            header_bytes: r32(header::HEADER_BYTES),
            slots: r32(header::SLOTS),
            readers: r32(header::READERS),
            metadata_bytes: r32(header::METADATA_BYTES),
            page: r32(header::PAGE),
            control_len: r64(header::CONTROL_LEN),
            slot_len: r64(header::SLOT_LEN),
            file_len: r64(header::FILE_LEN),
        }
    }

    pub(crate) fn layout(&self) -> &Layout {
        &self.layout
    }

    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Err when closed or used in a process other than the one that opened it.
    pub(crate) fn check(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        if self.origin.forked() {
            return Err(Error::Forked);
        }
        Ok(())
    }

    /// True in the process that opened the stream (false in a fork child;
    /// thorough: for drops, not hot paths).
    pub(crate) fn in_owner(&self) -> bool {
        !self.origin.forked_thorough()
    }

    /// [`Shared::in_owner`] in one atomic load (misses a fork made by a raw
    /// clone syscall): for per-frame drops.
    pub(crate) fn in_owner_fast(&self) -> bool {
        !self.origin.forked()
    }

    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    /// True once an access found the file cut short (one atomic load).
    pub(crate) fn cut_short(&self) -> bool {
        self.guard.truncated()
    }

    /// Err when the file is now shorter than the layout needs (another
    /// process truncated it): touching the missing pages would fault.
    pub(crate) fn check_intact(&self) -> Result<()> {
        if self.guard.truncated() {
            return Err(Error::FileTruncated { path: self.path.clone() });
        }
        match self.file.metadata() {
            Ok(m) if m.len() < self.layout.file_len() => Err(Error::FileTruncated { path: self.path.clone() }),
            _ => Ok(()),
        }
    }

    /// The 4-byte word at control-block offset `off`.
    pub(crate) fn u32_at(&self, off: u64) -> &AtomicU32 {
        assert!(off % 4 == 0 && off + 4 <= self.layout.control_len().max(layout::PAGE), "offset {off}");
        // SAFETY: the offset is 4-aligned and inside the control block, which
        // lies inside the mapping (its length was checked against the layout,
        // or is at least one page while the header is validated); the mapping
        // is page aligned, so the address is aligned for AtomicU32. It lives as
        // long as `self`. Any bit pattern is a valid u32, and the other
        // process only ever changes it atomically or through its own mapping
        // (never a Rust reference in this process).
        unsafe { &*(self.map.as_ptr().add(off as usize) as *const AtomicU32) }
    }

    /// The 8-byte word at control-block offset `off`.
    pub(crate) fn u64_at(&self, off: u64) -> &AtomicU64 {
        assert!(off % 8 == 0 && off + 8 <= self.layout.control_len().max(layout::PAGE), "offset {off}");
        // SAFETY: as for `u32_at`, with 8-byte alignment.
        unsafe { &*(self.map.as_ptr().add(off as usize) as *const AtomicU64) }
    }

    /// The three state words of slot `i`.
    pub(crate) fn words(&self, i: u32) -> SlotWords<'_, AtomicU64> {
        let base = self.layout.slot_desc_offset(i);
        SlotWords {
            seq: self.u64_at(base + layout::slot::SEQ),
            holds: self.u64_at(base + layout::slot::HOLDS),
            pending: self.u64_at(base + layout::slot::PENDING),
        }
    }

    pub(crate) fn slot_u32(&self, i: u32, field: u64) -> &AtomicU32 {
        self.u32_at(self.layout.slot_desc_offset(i) + field)
    }

    pub(crate) fn slot_u64(&self, i: u32, field: u64) -> &AtomicU64 {
        self.u64_at(self.layout.slot_desc_offset(i) + field)
    }

    pub(crate) fn reader_u32(&self, i: u32, field: u64) -> &AtomicU32 {
        self.u32_at(self.layout.reader_offset(i) + field)
    }

    pub(crate) fn reader_u64(&self, i: u32, field: u64) -> &AtomicU64 {
        self.u64_at(self.layout.reader_offset(i) + field)
    }

    pub(crate) fn header_u32(&self, field: u64) -> &AtomicU32 {
        self.u32_at(field)
    }

    pub(crate) fn header_u64(&self, field: u64) -> &AtomicU64 {
        self.u64_at(field)
    }

    /// Pointer to byte `offset` of slot `i`'s pixels, valid for `len` bytes,
    /// or `None` when the range leaves the slot.
    pub(crate) fn slot_range(&self, i: u32, offset: u64, len: u64) -> Option<*mut u8> {
        if i >= self.layout.slots() || offset.checked_add(len)? > self.layout.slot_len() {
            return None;
        }
        let at = self.layout.slot_offset(i) + offset;
        // SAFETY: slot i lies inside the mapping (file_len checked at open) and
        // [offset, offset + len) inside the slot; the result is in bounds.
        Some(unsafe { self.map.as_mut_ptr().add(at as usize) })
    }

    /// Pointer to slot `i`'s metadata area, valid for `metadata_bytes`.
    pub(crate) fn metadata_ptr(&self, i: u32) -> *mut u8 {
        let at = self.layout.metadata_offset(i.min(self.layout.slots() - 1));
        // SAFETY: the metadata areas lie inside the control block (layout),
        // inside the mapping.
        unsafe { self.map.as_mut_ptr().add(at as usize) }
    }
}
