//! Creating stream files: the right size, private, exclusive.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::layout::file_len_for_frame;

/// A stream file this process created; removed (with its private directory)
/// when dropped unless [`StreamFile::keep`] is called.
#[derive(Debug)]
pub struct StreamFile {
    path: PathBuf,
    dir: Option<tempfile::TempDir>,
}

impl StreamFile {
    /// A file sized so `max_width` x `max_height` frames travel in one band
    /// (read in place, no copy), in a new private directory (0700) under
    /// `/dev/shm` (memory-backed) or, where that is missing, the temp dir.
    pub fn for_frame(max_width: u32, max_height: u32) -> Result<StreamFile> {
        let len = file_len_for_frame(max_width, max_height)
            .ok_or_else(|| Error::BadArgs(format!("frame size {max_width}x{max_height} must be > 0")))?;
        StreamFile::with_len(len)
    }

    /// A file of exactly `len` bytes in a new private directory.
    pub fn with_len(len: u64) -> Result<StreamFile> {
        let dir = private_dir()?;
        let path = dir.path().join("stream.shm");
        create_file(&path, len)?;
        Ok(StreamFile { path, dir: Some(dir) })
    }

    /// A file of `len` bytes at `path`, created exclusively (an existing file
    /// or symlink there is an error) with mode 0600. Not removed on drop.
    pub fn create_at(path: impl AsRef<Path>, len: u64) -> Result<StreamFile> {
        create_file(path.as_ref(), len)?;
        Ok(StreamFile { path: path.as_ref().to_owned(), dir: None })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Keep the file (and its directory) after drop; returns its path.
    pub fn keep(mut self) -> PathBuf {
        if let Some(d) = self.dir.take() {
            let _ = d.keep();
        }
        std::mem::take(&mut self.path)
    }
}

fn private_dir() -> Result<tempfile::TempDir> {
    let make = |base: &Path| {
        tempfile::Builder::new()
            .prefix("shmimage-")
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir_in(base)
    };
    let shm = Path::new("/dev/shm");
    let r = if shm.is_dir() { make(shm).or_else(|_| make(&std::env::temp_dir())) } else { make(&std::env::temp_dir()) };
    r.map_err(|e| {
        Error::open(&std::env::temp_dir(), io::Error::new(e.kind(), format!("cannot create a private directory: {e}")))
    })
}

/// Bytes this user may still allocate on the file system holding `file`.
pub(crate) fn available_bytes(file: &File) -> Option<u64> {
    rustix::fs::fstatvfs(file).ok().map(|s| s.f_bavail.saturating_mul(s.f_frsize))
}

fn available_at(dir: &Path) -> Option<u64> {
    rustix::fs::statvfs(dir).ok().map(|s| s.f_bavail.saturating_mul(s.f_frsize))
}

/// Reserve the pages of `file`'s first `len` bytes (its whole length), so a
/// full file system is NO_SPACE now rather than a fault at some later frame.
/// A file system without `fallocate` is left as it is (sparse).
pub(crate) fn reserve(file: &File, path: &Path, len: u64) -> Result<()> {
    match rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), 0, len) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::NOSYS) => {
            file.set_len(len).map_err(|e| Error::open(path, e))
        }
        Err(rustix::io::Errno::NOSPC | rustix::io::Errno::FBIG) => Err(Error::NoSpace {
            path: path.to_owned(),
            needed: len,
            available: available_bytes(file),
            source: Some(io::Error::from_raw_os_error(libc::ENOSPC)),
        }),
        Err(e) => Err(Error::open(path, e.into())),
    }
}

/// Create the file and reserve its pages, so a full file system is an error
/// now (NoSpace) rather than a SIGBUS or a zero page at the first frame. The
/// size is checked against the free space before anything is created, and a
/// failure after the create removes the file again.
fn create_file(path: &Path, len: u64) -> Result<()> {
    let no_space = |available, source| Error::NoSpace { path: path.to_owned(), needed: len, available, source };
    if usize::try_from(len).is_err() || i64::try_from(len).is_err() {
        return Err(Error::BadArgs(format!("a stream file of {len} bytes cannot be mapped by this process")));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if let Some(free) = available_at(dir) {
        if len > free {
            return Err(no_space(Some(free), None));
        }
    }
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| Error::open(path, e))?;
    let reserved = reserve(&f, path, len);
    if let Err(e) = reserved {
        drop(f);
        let _ = std::fs::remove_file(path);
        return Err(e);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_private_sized_and_removed() {
        let f = StreamFile::for_frame(640, 480).unwrap();
        let p = f.path().to_owned();
        let meta = std::fs::metadata(&p).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(meta.len(), file_len_for_frame(640, 480).unwrap());
        let dir_mode = std::fs::metadata(p.parent().unwrap()).unwrap().permissions().mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        drop(f);
        assert!(!p.exists() && !p.parent().unwrap().exists());
    }

    #[test]
    fn create_at_is_exclusive() {
        let f = StreamFile::with_len(64).unwrap();
        let e = StreamFile::create_at(f.path(), 64).unwrap_err();
        assert_eq!(e.code(), crate::Code::UnableToOpenFile);
        assert_eq!(e.io_kind(), Some(io::ErrorKind::AlreadyExists));
    }

    #[test]
    fn an_absurd_size_is_no_space_at_once_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("huge.shm");
        let len = file_len_for_frame(99_999_999, 99_999_999).unwrap();
        let e = StreamFile::create_at(&p, len).unwrap_err();
        assert_eq!(e.code(), crate::Code::NoSpace, "{e}");
        assert!(e.to_string().contains("free") && e.to_string().contains(&len.to_string()), "{e}");
        assert!(!p.exists(), "a failed create leaves no file");
        let e = StreamFile::for_frame(65536, 65536).unwrap_err();
        assert_eq!(e.code(), crate::Code::NoSpace, "{e}");
    }

    #[test]
    fn the_pages_are_reserved() {
        let f = StreamFile::with_len(1 << 20).unwrap();
        let blocks = std::os::unix::fs::MetadataExt::blocks(&std::fs::metadata(f.path()).unwrap());
        assert!(blocks * 512 >= 1 << 20, "{blocks} blocks: the file is sparse");
    }
}
