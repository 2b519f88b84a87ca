//! Return codes of protocol 1.0 and the engine's error type.
//!
//! [`Code`] is `SharedMemoryImageError` value for value. [`Error`] carries one
//! variant per code other than NOERROR and RECONNECTING (success values), with
//! the context a user needs to act on it; [`Error::code`] maps it back 1:1.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::state::Role;

/// The protocol's return codes (`SharedMemoryImageError`), with EnSight's
/// values, and this library's own codes beyond EnSight's range (-100 down).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum Code {
    /// No client is connected; the frame was not queued.
    Unconnected = 4,
    /// The file already carried a stream; the new stream works.
    Reconnecting = 3,
    /// No new frame to read.
    NoFrameAvailable = 2,
    /// No free buffer: the frame was dropped.
    NoBufferAvailable = 1,
    /// Success.
    NoError = 0,
    /// An argument is invalid.
    BadArgs = -1,
    /// Unlock without a lock.
    NotLocked = -2,
    /// File missing or too small.
    BadFileSize = -3,
    /// Cannot open read-write.
    UnableToOpenFile = -4,
    /// mmap failed.
    UnableToMapFile = -5,
    /// Out of memory.
    MemoryAllocError = -6,
    /// Could not start a thread.
    ThreadCreateError = -7,
    /// A client-only call on a server stream.
    IsServer = -8,
    /// A server-only call on a client stream.
    IsNotServer = -9,
    /// One row (width * 3 bytes) does not fit in a buffer.
    FrameTooLarge = -10,
    /// Not allowed while a frame is locked.
    Locked = -11,
    /// Another live process holds this role on the stream file.
    PeerBusy = -100,
    /// The stream was closed (by this process).
    Closed = -101,
    /// The stream was opened before a fork(); it is inert in the child.
    Forked = -102,
    /// The file system has no room for the stream file.
    NoSpace = -103,
    /// The server process has exited.
    ServerGone = -104,
    /// The stream file's path now names another file.
    FileReplaced = -105,
    /// The stream file was truncated by another process.
    FileTruncated = -106,
    /// The stream file changed size (grew) while open.
    FileResized = -107,
    /// A handle that was destroyed or never existed.
    StaleHandle = -108,
    /// A wait was cancelled.
    Cancelled = -109,
    /// Another process reset the buffers under the server.
    StreamReset = -110,
}

impl Code {
    /// Every code, in table order.
    pub const ALL: [Code; 27] = [
        Code::Unconnected,
        Code::Reconnecting,
        Code::NoFrameAvailable,
        Code::NoBufferAvailable,
        Code::NoError,
        Code::BadArgs,
        Code::NotLocked,
        Code::BadFileSize,
        Code::UnableToOpenFile,
        Code::UnableToMapFile,
        Code::MemoryAllocError,
        Code::ThreadCreateError,
        Code::IsServer,
        Code::IsNotServer,
        Code::FrameTooLarge,
        Code::Locked,
        Code::PeerBusy,
        Code::Closed,
        Code::Forked,
        Code::NoSpace,
        Code::ServerGone,
        Code::FileReplaced,
        Code::FileTruncated,
        Code::FileResized,
        Code::StaleHandle,
        Code::Cancelled,
        Code::StreamReset,
    ];

    /// The code with this value, if there is one.
    pub fn from_i32(value: i32) -> Option<Code> {
        Code::ALL.into_iter().find(|c| *c as i32 == value)
    }

    /// The C macro name, e.g. `IMAGESTREAM_NO_FRAMEAVAILABLE`.
    pub fn c_name(self) -> &'static str {
        match self {
            Code::Unconnected => "IMAGESTREAM_UNCONNECTED",
            Code::Reconnecting => "IMAGESTREAM_RECONNECTING",
            Code::NoFrameAvailable => "IMAGESTREAM_NO_FRAMEAVAILABLE",
            Code::NoBufferAvailable => "IMAGESTREAM_NO_BUFFERAVAILABLE",
            Code::NoError => "IMAGESTREAM_NOERROR",
            Code::BadArgs => "IMAGESTREAM_BAD_ARGS",
            Code::NotLocked => "IMAGESTREAM_NOT_LOCKED",
            Code::BadFileSize => "IMAGESTREAM_BAD_FILE_SIZE",
            Code::UnableToOpenFile => "IMAGESTREAM_UNABLE_TO_OPEN_FILE",
            Code::UnableToMapFile => "IMAGESTREAM_UNABLE_TO_MAP_FILE",
            Code::MemoryAllocError => "IMAGESTREAM_MEMORY_ALLOC_ERROR",
            Code::ThreadCreateError => "IMAGESTREAM_THREAD_CREATE_ERROR",
            Code::IsServer => "IMAGESTREAM_IS_SERVER",
            Code::IsNotServer => "IMAGESTREAM_IS_NOTSERVER",
            Code::FrameTooLarge => "IMAGESTREAM_FRAME_TOO_LARGE",
            Code::Locked => "IMAGESTREAM_LOCKED",
            Code::PeerBusy => "IMAGESTREAM_PEER_BUSY",
            Code::Closed => "IMAGESTREAM_CLOSED",
            Code::Forked => "IMAGESTREAM_FORKED",
            Code::NoSpace => "IMAGESTREAM_NO_SPACE",
            Code::ServerGone => "IMAGESTREAM_SERVER_GONE",
            Code::FileReplaced => "IMAGESTREAM_FILE_REPLACED",
            Code::FileTruncated => "IMAGESTREAM_FILE_TRUNCATED",
            Code::FileResized => "IMAGESTREAM_FILE_RESIZED",
            Code::StaleHandle => "IMAGESTREAM_STALE_HANDLE",
            Code::Cancelled => "IMAGESTREAM_CANCELLED",
            Code::StreamReset => "IMAGESTREAM_STREAM_RESET",
        }
    }

    /// A static description (what `SharedMemoryImageStream_errorstring` returns).
    pub fn description(self) -> &'static str {
        match self {
            Code::Unconnected => "no client is connected; the frame was not queued",
            Code::Reconnecting => "the file already carried a stream; the new stream works",
            Code::NoFrameAvailable => "no new frame is available",
            Code::NoBufferAvailable => "no free buffer is available; the frame was dropped",
            Code::NoError => "no error",
            Code::BadArgs => "an argument is invalid",
            Code::NotLocked => "unlock called without a locked frame",
            Code::BadFileSize => "the stream file is missing or too small",
            Code::UnableToOpenFile => "the stream file cannot be opened read-write",
            Code::UnableToMapFile => "the stream file cannot be memory-mapped",
            Code::MemoryAllocError => "out of memory",
            Code::ThreadCreateError => "could not start a thread",
            Code::IsServer => "a client-only call was made on a server stream",
            Code::IsNotServer => "a server-only call was made on a client stream",
            Code::FrameTooLarge => "the frame is too large: one row does not fit in a buffer",
            Code::Locked => "not allowed while a frame is locked",
            Code::PeerBusy => "another live process already holds this role (server or client) on the stream file",
            Code::Closed => "the stream was closed",
            Code::Forked => "the stream was opened before fork(); it cannot be used in the child process",
            Code::NoSpace => "the file system has no room for the stream file",
            Code::ServerGone => "the server process has exited",
            Code::FileReplaced => "the stream file was replaced: its path now names another file",
            Code::FileTruncated => "the stream file was truncated by another process",
            Code::FileResized => "the stream file changed size while open; open the stream again",
            Code::StaleHandle => "the stream handle was destroyed or is not a stream handle",
            Code::Cancelled => "the wait was cancelled",
            Code::StreamReset => "another process reset the stream's buffers",
        }
    }

    /// True for the negative codes, which are failures; the others are outcomes.
    pub fn is_error(self) -> bool {
        (self as i32) < 0
    }
}

/// The description of any integer code; unknown values get one too.
pub fn errorstring(code: i32) -> &'static str {
    match Code::from_i32(code) {
        Some(c) => c.description(),
        None => "unknown shared memory image stream error code",
    }
}

/// Everything an operation can answer other than plain success.
///
/// Each variant is exactly one [`Code`]; the first three are outcomes that the
/// C API reports with non-negative codes, the rest are failures. OS errors are
/// kept as the [`std::error::Error::source`] (an [`io::Error`], with its kind).
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The server has no client: none connected yet, it disconnected, or it
    /// died and its buffers were taken back (a wait for a client that timed
    /// out answers this too).
    Unconnected,
    /// No new complete frame (also the answer of a frame wait that timed out).
    NoFrameAvailable,
    /// Every buffer is held by the client (also the answer of a buffer wait
    /// that timed out); a frame passed to `put_frame` was dropped.
    NoBufferAvailable,
    /// An argument is invalid; the text says which and why.
    BadArgs(String),
    /// `unlock` without a locked frame.
    NotLocked,
    /// The file is missing or shorter than the protocol's minimum.
    BadFileSize {
        /// The stream file.
        path: PathBuf,
        /// Its length, or `None` when it does not exist.
        len: Option<u64>,
    },
    /// The file cannot be opened read-write, or is not a regular file.
    UnableToOpenFile {
        /// The stream file.
        path: PathBuf,
        /// The OS error (or a synthesized one with a fitting kind).
        source: io::Error,
    },
    /// mmap of the file failed.
    UnableToMapFile {
        /// The stream file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Memory for a frame could not be allocated.
    MemoryAlloc {
        /// The size asked for.
        bytes: u64,
    },
    /// The background monitor thread could not be started.
    ThreadCreate {
        /// The OS error.
        source: io::Error,
    },
    /// A client-only call on a server stream.
    IsServer,
    /// A server-only call on a client stream.
    IsNotServer,
    /// One row does not fit in a buffer (or, for a loan, the whole frame does not).
    FrameTooLarge {
        /// Bytes the frame needs in one buffer.
        needed: u64,
        /// Payload bytes of one buffer.
        capacity: u64,
        /// Which limit was hit, in words.
        what: &'static str,
    },
    /// Both buffers are already locked by this client (or, in the one-frame
    /// drop-in API, a frame is already locked).
    Locked,
    /// Another live process holds the same role on this stream file.
    PeerBusy {
        /// The role that is taken.
        role: Role,
        /// The stream file.
        path: PathBuf,
        /// The holder's process id, when the kernel tells it.
        pid: Option<u32>,
    },
    /// The stream (or the stream of this loan or frame) was closed.
    Closed,
    /// The stream was opened before `fork()`; the child may not use it.
    Forked,
    /// The file system cannot hold the stream file.
    NoSpace {
        /// The stream file.
        path: PathBuf,
        /// Bytes the file needs.
        needed: u64,
        /// Bytes free on the file system for this user, when known.
        available: Option<u64>,
        /// The OS error (ENOSPC), when one was reported.
        source: Option<io::Error>,
    },
    /// The server process has exited.
    ServerGone {
        /// The stream file.
        path: PathBuf,
    },
    /// The stream file's path now names another file.
    FileReplaced {
        /// The stream file.
        path: PathBuf,
    },
    /// The stream file is now shorter than when it was mapped.
    FileTruncated {
        /// The stream file.
        path: PathBuf,
        /// Bytes mapped.
        mapped: u64,
        /// Bytes now.
        now: u64,
    },
    /// The stream file is now longer than when it was mapped: a peer that
    /// opens it now would see other buffer offsets.
    FileResized {
        /// The stream file.
        path: PathBuf,
        /// Bytes mapped.
        mapped: u64,
        /// Bytes now.
        now: u64,
    },
    /// A C handle that was destroyed or never was a stream.
    StaleHandle,
    /// A wait was ended by `cancel()`.
    Cancelled,
    /// Another process reset the buffers while this server was writing.
    StreamReset {
        /// The stream file.
        path: PathBuf,
    },
}

impl Error {
    /// The protocol code of this error.
    pub fn code(&self) -> Code {
        match self {
            Error::Unconnected => Code::Unconnected,
            Error::NoFrameAvailable => Code::NoFrameAvailable,
            Error::NoBufferAvailable => Code::NoBufferAvailable,
            Error::BadArgs(_) => Code::BadArgs,
            Error::NotLocked => Code::NotLocked,
            Error::BadFileSize { .. } => Code::BadFileSize,
            Error::UnableToOpenFile { .. } => Code::UnableToOpenFile,
            Error::UnableToMapFile { .. } => Code::UnableToMapFile,
            Error::MemoryAlloc { .. } => Code::MemoryAllocError,
            Error::ThreadCreate { .. } => Code::ThreadCreateError,
            Error::IsServer => Code::IsServer,
            Error::IsNotServer => Code::IsNotServer,
            Error::FrameTooLarge { .. } => Code::FrameTooLarge,
            Error::Locked => Code::Locked,
            Error::PeerBusy { .. } => Code::PeerBusy,
            Error::Closed => Code::Closed,
            Error::Forked => Code::Forked,
            Error::NoSpace { .. } => Code::NoSpace,
            Error::ServerGone { .. } => Code::ServerGone,
            Error::FileReplaced { .. } => Code::FileReplaced,
            Error::FileTruncated { .. } => Code::FileTruncated,
            Error::FileResized { .. } => Code::FileResized,
            Error::StaleHandle => Code::StaleHandle,
            Error::Cancelled => Code::Cancelled,
            Error::StreamReset { .. } => Code::StreamReset,
        }
    }

    /// The kind of the OS error behind this one, if there is one.
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        std::error::Error::source(self).and_then(|s| s.downcast_ref::<io::Error>()).map(io::Error::kind)
    }

    pub(crate) fn open(path: &std::path::Path, source: io::Error) -> Error {
        Error::UnableToOpenFile { path: path.to_owned(), source }
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Unconnected => f.write_str("no client is connected to the stream"),
            Error::NoFrameAvailable => f.write_str("no new frame is available"),
            Error::NoBufferAvailable => {
                f.write_str("no free buffer: the client holds both buffers; the frame was dropped")
            }
            Error::BadArgs(why) => write!(f, "bad argument: {why}"),
            Error::NotLocked => f.write_str("unlock called without a locked frame"),
            Error::BadFileSize { path, len: None } => {
                write!(f, "stream file {} does not exist; create it first (e.g. `shmimage create`)", path.display())
            }
            Error::BadFileSize { path, len: Some(len) } => write!(
                f,
                "stream file {} is {len} bytes; a stream needs at least {} bytes",
                path.display(),
                crate::layout::MIN_FILE_SIZE
            ),
            Error::UnableToOpenFile { path, source } => {
                write!(f, "cannot open stream file {}: {source}", path.display())
            }
            Error::UnableToMapFile { path, source } => {
                write!(f, "cannot memory-map stream file {}: {source}", path.display())
            }
            Error::MemoryAlloc { bytes } => write!(f, "cannot allocate {bytes} bytes for a frame"),
            Error::ThreadCreate { source } => write!(f, "cannot start the monitor thread: {source}"),
            Error::IsServer => f.write_str("this is a server stream; only a client can lock frames"),
            Error::IsNotServer => f.write_str("this is a client stream; only a server can put frames"),
            Error::FrameTooLarge { needed, capacity, what } => write!(
                f,
                "frame too large: {what} needs {needed} bytes but a buffer holds {capacity}; use a larger stream file"
            ),
            Error::Locked => f.write_str("no frame can be locked now: unlock (drop) a frame first"),
            Error::PeerBusy { role, path, pid } => {
                write!(f, "another {role} is running on stream file {}", path.display())?;
                match pid {
                    Some(pid) => write!(f, " (process {pid})")?,
                    None => f.write_str(" (process id unknown)")?,
                }
                write!(f, "; stop it first, or use another stream file")
            }
            Error::Closed => f.write_str("the stream was closed"),
            Error::Forked => f.write_str(
                "this stream was opened before fork(); it belongs to the parent process: open a new one in the child",
            ),
            Error::NoSpace { path, needed, available, .. } => {
                let fs = path.parent().unwrap_or(path);
                write!(f, "no space for stream file {}: it needs {needed} bytes ({})", path.display(), mib(*needed))?;
                match available {
                    Some(a) => write!(f, " but the file system at {} has {a} bytes ({}) free", fs.display(), mib(*a)),
                    None => write!(f, " and the file system at {} is full", fs.display()),
                }
            }
            Error::ServerGone { path } => write!(f, "the server of stream file {} has exited", path.display()),
            Error::FileReplaced { path } => {
                write!(f, "stream file {} was replaced: its path now names another file; connect again", path.display())
            }
            Error::FileTruncated { path, mapped, now } => write!(
                f,
                "stream file {} was truncated by another process (now {now} bytes, {mapped} were mapped); \
                 restore its size and open the stream again",
                path.display()
            ),
            Error::FileResized { path, mapped, now } => write!(
                f,
                "stream file {} changed size while open (now {now} bytes, {mapped} were mapped); \
                 a peer opening it now would not find the buffers where this one writes them: open the stream again",
                path.display()
            ),
            Error::StaleHandle => f.write_str("the stream handle was destroyed or is not a stream handle"),
            Error::Cancelled => f.write_str("the wait was cancelled"),
            Error::StreamReset { path } => write!(
                f,
                "another process reset the buffers of stream file {} while this server was writing",
                path.display()
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::UnableToOpenFile { source, .. }
            | Error::UnableToMapFile { source, .. }
            | Error::ThreadCreate { source } => Some(source),
            Error::NoSpace { source: Some(s), .. } => Some(s),
            _ => None,
        }
    }
}

/// The engine's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_the_spec_values() {
        let expect = [
            (Code::Unconnected, 4),
            (Code::Reconnecting, 3),
            (Code::NoFrameAvailable, 2),
            (Code::NoBufferAvailable, 1),
            (Code::NoError, 0),
            (Code::BadArgs, -1),
            (Code::NotLocked, -2),
            (Code::BadFileSize, -3),
            (Code::UnableToOpenFile, -4),
            (Code::UnableToMapFile, -5),
            (Code::MemoryAllocError, -6),
            (Code::ThreadCreateError, -7),
            (Code::IsServer, -8),
            (Code::IsNotServer, -9),
            (Code::FrameTooLarge, -10),
            (Code::Locked, -11),
        ];
        for (code, value) in expect {
            assert_eq!(code as i32, value, "{code:?}");
            assert_eq!(Code::from_i32(value), Some(code));
        }
        assert_eq!(Code::from_i32(5), None);
        assert_eq!(Code::from_i32(-12), None);
        assert_eq!(Code::PeerBusy as i32, -100);
        assert_eq!(Code::from_i32(-100), Some(Code::PeerBusy));
    }

    #[test]
    fn every_code_has_its_own_string_and_unknown_codes_get_one() {
        let mut seen = std::collections::HashSet::new();
        for c in Code::ALL {
            assert!(seen.insert(errorstring(c as i32)), "duplicate text for {c:?}");
            assert!(c.c_name().starts_with("IMAGESTREAM_"));
        }
        assert!(errorstring(12345).contains("unknown"));
        assert!(errorstring(i32::MIN).contains("unknown"));
    }

    #[test]
    fn errors_map_back_to_their_codes() {
        assert_eq!(Error::Locked.code(), Code::Locked);
        assert_eq!(Error::Unconnected.code(), Code::Unconnected);
        let busy = Error::PeerBusy { role: Role::Client, path: "/s".into(), pid: Some(42) };
        assert_eq!(busy.code(), Code::PeerBusy);
        assert!(busy.to_string().contains("client") && busy.to_string().contains("42"), "{busy}");
        let e = Error::UnableToOpenFile { path: "/p".into(), source: io::Error::from_raw_os_error(libc::EACCES) };
        assert_eq!(e.io_kind(), Some(io::ErrorKind::PermissionDenied));
        let e = Error::BadFileSize { path: "/x/y".into(), len: Some(10) };
        assert_eq!(e.code(), Code::BadFileSize);
        assert!(e.to_string().contains("/x/y") && e.to_string().contains("10 bytes"));
    }
}
