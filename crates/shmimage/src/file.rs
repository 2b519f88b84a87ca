//! Creating stream files: the right size, private, exclusive.

use std::fs::OpenOptions;
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
    r.map_err(|e| Error::UnableToOpenFile {
        path: std::env::temp_dir(),
        reason: format!("cannot create a private directory: {e}"),
    })
}

fn create_file(path: &Path, len: u64) -> Result<()> {
    let err = |e: io::Error| Error::UnableToOpenFile { path: path.to_owned(), reason: e.to_string() };
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(err)?;
    f.set_len(len).map_err(err)
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
    }
}
