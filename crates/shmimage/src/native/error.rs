//! The native stream's errors: one variant per situation, each with the
//! context a user needs, and a stable integer code for the C and Python faces.

use std::fmt;
use std::path::PathBuf;

use super::desc::Invalid;
use crate::Protocol;

/// Codes of the native stream beyond EnSight's (which keep their values).
pub mod code {
    /// The stream file already exists.
    pub const ALREADY_EXISTS: i32 = -200;
    /// The file is a stream of the other protocol.
    pub const WRONG_PROTOCOL: i32 = -201;
    /// The file is not a stream at all.
    pub const NOT_A_STREAM: i32 = -202;
    /// A native stream of a version this library does not read.
    pub const UNSUPPORTED_VERSION: i32 = -203;
    /// The control block holds values no writer of this format writes.
    pub const CORRUPT: i32 = -204;
    /// Every reader entry is taken by a live reader.
    pub const READERS_FULL: i32 = -205;
    /// User metadata larger than a slot's metadata area.
    pub const METADATA_TOO_LARGE: i32 = -206;
    /// A frame descriptor failed validation.
    pub const INVALID_DESC: i32 = -207;
    /// A live writer already serves the stream (the engine's PEER_BUSY).
    pub const WRITER_BUSY: i32 = crate::Code::PeerBusy as i32;
    /// The writer process is gone (the engine's SERVER_GONE).
    pub const WRITER_GONE: i32 = crate::Code::ServerGone as i32;
    /// The object was closed (the engine's CLOSED).
    pub const CLOSED: i32 = crate::Code::Closed as i32;
    /// The object was created in the parent of this forked process (the engine's FORKED).
    pub const FORKED: i32 = crate::Code::Forked as i32;
    /// The file was truncated under the mapping (the engine's FILE_TRUNCATED).
    pub const FILE_TRUNCATED: i32 = crate::Code::FileTruncated as i32;
}

/// Everything a native stream operation can answer other than success.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// An argument is invalid; the text says which and why.
    BadArgs(String),
    /// The stream file does not exist.
    NotFound {
        /// The path given.
        path: PathBuf,
    },
    /// The file cannot be opened (permissions, a symlink, not a regular file).
    UnableToOpen {
        /// The stream file.
        path: PathBuf,
        /// The OS error (or a synthesized one with a fitting kind).
        source: std::io::Error,
    },
    /// mmap of the file failed.
    UnableToMap {
        /// The stream file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A new stream file was asked for where a file exists.
    AlreadyExists {
        /// The path given.
        path: PathBuf,
    },
    /// The file is a stream of the other protocol.
    WrongProtocol {
        /// The stream file.
        path: PathBuf,
        /// What the file is.
        found: Protocol,
    },
    /// Neither a native stream nor usable as a 1.0 stream.
    NotAStream {
        /// The file.
        path: PathBuf,
        /// Why, in words.
        why: String,
    },
    /// A native stream of a newer (or unknown) layout version.
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version in the file.
        version: u32,
    },
    /// The control block holds impossible values (a damaged or hostile file).
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Which value, in words.
        what: String,
    },
    /// A live writer serves this stream already.
    WriterBusy {
        /// The file.
        path: PathBuf,
        /// Its process id, as the file records it (0 when unknown).
        pid: u32,
    },
    /// Every reader entry is held by a live reader.
    ReadersFull {
        /// The file.
        path: PathBuf,
        /// Readers a stream holds.
        max: u32,
    },
    /// A frame does not fit in a slot.
    FrameTooLarge {
        /// Bytes the frame needs.
        needed: u64,
        /// Bytes one slot holds.
        capacity: u64,
    },
    /// User metadata does not fit in a slot's metadata area.
    MetadataTooLarge {
        /// Bytes given.
        len: usize,
        /// Bytes a slot holds.
        max: usize,
    },
    /// A frame descriptor is invalid.
    InvalidDesc(Invalid),
    /// No new frame (also the answer of a read whose timeout passed).
    NoFrameAvailable,
    /// Every slot is held by readers (also the answer of a loan whose timeout passed).
    NoSlotAvailable,
    /// The writer process ended (died or closed); the reader stays usable and
    /// sees a writer that takes over.
    WriterGone {
        /// The file.
        path: PathBuf,
    },
    /// The object was closed (by `close()`, possibly from another thread).
    Closed,
    /// Used in a child process after fork; only the creating process may use it.
    Forked,
    /// The stream file was truncated by another process.
    FileTruncated {
        /// The file.
        path: PathBuf,
    },
    /// An error of the 1.0 engine, passed through by the unified API.
    Ensight(crate::Error),
}

impl Error {
    /// The integer code: EnSight's for the situations 1.0 has, the native
    /// range (-200 down) for the others, the 1.0 code for [`Error::Ensight`].
    pub fn code(&self) -> i32 {
        use crate::Code;
        match self {
            Error::BadArgs(_) => Code::BadArgs as i32,
            Error::NotFound { .. } => Code::BadFileSize as i32,
            Error::UnableToOpen { .. } => Code::UnableToOpenFile as i32,
            Error::UnableToMap { .. } => Code::UnableToMapFile as i32,
            Error::FrameTooLarge { .. } => Code::FrameTooLarge as i32,
            Error::NoFrameAvailable => Code::NoFrameAvailable as i32,
            Error::NoSlotAvailable => Code::NoBufferAvailable as i32,
            Error::AlreadyExists { .. } => code::ALREADY_EXISTS,
            Error::WrongProtocol { .. } => code::WRONG_PROTOCOL,
            Error::NotAStream { .. } => code::NOT_A_STREAM,
            Error::UnsupportedVersion { .. } => code::UNSUPPORTED_VERSION,
            Error::Corrupt { .. } => code::CORRUPT,
            Error::ReadersFull { .. } => code::READERS_FULL,
            Error::MetadataTooLarge { .. } => code::METADATA_TOO_LARGE,
            Error::InvalidDesc(_) => code::INVALID_DESC,
            Error::WriterBusy { .. } => code::WRITER_BUSY,
            Error::WriterGone { .. } => code::WRITER_GONE,
            Error::Closed => code::CLOSED,
            Error::Forked => code::FORKED,
            Error::FileTruncated { .. } => code::FILE_TRUNCATED,
            Error::Ensight(e) => e.code() as i32,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::BadArgs(why) => write!(f, "bad argument: {why}"),
            Error::NotFound { path } => {
                write!(f, "stream file {} does not exist; create it first (e.g. `shmimage create`)", path.display())
            }
            Error::UnableToOpen { path, source } => write!(f, "cannot open stream file {}: {source}", path.display()),
            Error::UnableToMap { path, source } => {
                write!(f, "cannot memory-map stream file {}: {source}", path.display())
            }
            Error::AlreadyExists { path } => {
                write!(f, "{} already exists; open it, or remove it to create a new stream", path.display())
            }
            Error::WrongProtocol { path, found: Protocol::Ensight1 } => write!(
                f,
                "{} is an EnSight protocol 1.0 stream, not a native one; open it with the format-detecting \
                 shmimage::Reader/Writer (or the 1.0 Client/Server)",
                path.display()
            ),
            Error::WrongProtocol { path, found: Protocol::Native } => write!(
                f,
                "{} is a native shmimage stream, not an EnSight 1.0 one; open it with the format-detecting \
                 shmimage::Reader/Writer (or shmimage::native)",
                path.display()
            ),
            Error::NotAStream { path, why } => write!(f, "{} is not a stream file: {why}", path.display()),
            Error::UnsupportedVersion { path, version } => write!(
                f,
                "{} is a native stream of layout version {version}; this library reads version {}: upgrade shmimage",
                path.display(),
                super::layout::VERSION
            ),
            Error::Corrupt { path, what } => write!(f, "stream file {} is damaged: {what}", path.display()),
            Error::WriterBusy { path, pid } => {
                write!(f, "stream {} already has a live writer", path.display())?;
                if *pid != 0 {
                    write!(f, " (pid {pid})")?;
                }
                Ok(())
            }
            Error::ReadersFull { path, max } => {
                write!(f, "stream {} already has {max} live readers, the most it holds", path.display())
            }
            Error::FrameTooLarge { needed, capacity } => write!(
                f,
                "frame too large: it needs {needed} bytes but a slot holds {capacity}; create the stream with larger slots"
            ),
            Error::MetadataTooLarge { len, max } => {
                write!(f, "metadata of {len} bytes does not fit; a slot holds {max} bytes of metadata")
            }
            Error::InvalidDesc(why) => write!(f, "invalid frame descriptor: {why}"),
            Error::NoFrameAvailable => f.write_str("no new frame is available"),
            Error::NoSlotAvailable => f.write_str("no free slot: readers hold every slot; the frame was not written"),
            Error::WriterGone { path } => write!(f, "the writer of stream {} has exited", path.display()),
            Error::Closed => f.write_str("the stream was closed"),
            Error::Forked => f.write_str("this stream object belongs to the parent process (used after fork)"),
            Error::FileTruncated { path } => {
                write!(f, "stream file {} was truncated by another process", path.display())
            }
            Error::Ensight(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::InvalidDesc(i) => Some(i),
            Error::UnableToOpen { source, .. } | Error::UnableToMap { source, .. } => Some(source),
            Error::Ensight(e) => Some(e),
            _ => None,
        }
    }
}

impl From<Invalid> for Error {
    fn from(i: Invalid) -> Error {
        match i {
            Invalid::PastSlot { needed, capacity } => Error::FrameTooLarge { needed, capacity },
            other => Error::InvalidDesc(other),
        }
    }
}

impl From<crate::Error> for Error {
    fn from(e: crate::Error) -> Error {
        Error::Ensight(e)
    }
}

/// The native stream's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
