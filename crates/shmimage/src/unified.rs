//! One API over both formats: opening a file detects whether it is an EnSight
//! 1.0 stream or a native one.

use std::io::Read;
use std::path::Path;

use crate::native::{layout, Error, Result};

/// The wire format of a stream file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// EnSight's protocol 1.0: one client, RGB8, two buffers.
    Ensight1,
    /// This project's native format (shmimage/2).
    Native,
}

impl Protocol {
    /// A short name: `ensight-1.0` or `native`.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Ensight1 => "ensight-1.0",
            Protocol::Native => "native",
        }
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Which format the stream file at `path` carries: the native magic at
/// offset 0 means native (whatever its version; opening a newer one reports
/// it); any other file of at least 64 bytes is a 1.0 stream (1.0 has no magic).
pub fn detect_protocol(path: impl AsRef<Path>) -> Result<Protocol> {
    let path = path.as_ref();
    let (mut file, meta) = crate::mapping::open_stream_file(path, false).map_err(|e| match e {
        crate::Error::BadFileSize { .. } => Error::NotFound { path: path.to_owned() },
        crate::Error::UnableToOpenFile { reason, .. } => Error::UnableToOpen { path: path.to_owned(), reason },
        other => Error::Ensight(other),
    })?;
    let mut head = [0u8; 8];
    let n = file.read(&mut head).map_err(|e| Error::UnableToOpen { path: path.to_owned(), reason: e.to_string() })?;
    if n == 8 && head == layout::MAGIC {
        return Ok(Protocol::Native);
    }
    if meta.len() >= crate::layout::MIN_FILE_SIZE {
        return Ok(Protocol::Ensight1);
    }
    Err(Error::NotAStream {
        path: path.to_owned(),
        why: format!(
            "{} bytes, no native magic, and shorter than a 1.0 stream's {} bytes",
            meta.len(),
            crate::layout::MIN_FILE_SIZE
        ),
    })
}
