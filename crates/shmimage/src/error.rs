//! Return codes of protocol 1.0 and the engine's error type.
//!
//! [`Code`] is `SharedMemoryImageError` value for value. [`Error`] carries one
//! variant per code other than NOERROR and RECONNECTING (success values), with
//! the context a user needs to act on it; [`Error::code`] maps it back 1:1.

use std::fmt;
use std::path::PathBuf;

/// The protocol's return codes (`SharedMemoryImageError`), with EnSight's values.
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
}

impl Code {
    /// Every code, in table order.
    pub const ALL: [Code; 16] = [
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
/// C API reports with non-negative codes, the rest are failures.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// No peer: the server has no client (or the client died and its buffers
    /// were taken back), or the client's server process has gone.
    Unconnected {
        /// Which situation, in words.
        reason: &'static str,
    },
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
        /// Why, in words.
        reason: String,
    },
    /// mmap of the file failed.
    UnableToMapFile {
        /// The stream file.
        path: PathBuf,
        /// Why, in words.
        reason: String,
    },
    /// Memory for a frame could not be allocated.
    MemoryAlloc {
        /// The size asked for.
        bytes: u64,
    },
    /// The background monitor thread could not be started.
    ThreadCreate(String),
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
    /// A frame is already locked.
    Locked,
}

impl Error {
    /// The protocol code of this error.
    pub fn code(&self) -> Code {
        match self {
            Error::Unconnected { .. } => Code::Unconnected,
            Error::NoFrameAvailable => Code::NoFrameAvailable,
            Error::NoBufferAvailable => Code::NoBufferAvailable,
            Error::BadArgs(_) => Code::BadArgs,
            Error::NotLocked => Code::NotLocked,
            Error::BadFileSize { .. } => Code::BadFileSize,
            Error::UnableToOpenFile { .. } => Code::UnableToOpenFile,
            Error::UnableToMapFile { .. } => Code::UnableToMapFile,
            Error::MemoryAlloc { .. } => Code::MemoryAllocError,
            Error::ThreadCreate(_) => Code::ThreadCreateError,
            Error::IsServer => Code::IsServer,
            Error::IsNotServer => Code::IsNotServer,
            Error::FrameTooLarge { .. } => Code::FrameTooLarge,
            Error::Locked => Code::Locked,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Unconnected { reason } => write!(f, "unconnected: {reason}"),
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
            Error::UnableToOpenFile { path, reason } => {
                write!(f, "cannot open stream file {} read-write: {reason}", path.display())
            }
            Error::UnableToMapFile { path, reason } => {
                write!(f, "cannot memory-map stream file {}: {reason}", path.display())
            }
            Error::MemoryAlloc { bytes } => write!(f, "cannot allocate {bytes} bytes for a frame"),
            Error::ThreadCreate(why) => write!(f, "cannot start the monitor thread: {why}"),
            Error::IsServer => f.write_str("this is a server stream; only a client can lock frames"),
            Error::IsNotServer => f.write_str("this is a client stream; only a server can put frames"),
            Error::FrameTooLarge { needed, capacity, what } => write!(
                f,
                "frame too large: {what} needs {needed} bytes but a buffer holds {capacity}; use a larger stream file"
            ),
            Error::Locked => f.write_str("a frame is already locked; unlock it first"),
        }
    }
}

impl std::error::Error for Error {}

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
        assert_eq!(Error::Unconnected { reason: "x" }.code(), Code::Unconnected);
        let e = Error::BadFileSize { path: "/x/y".into(), len: Some(10) };
        assert_eq!(e.code(), Code::BadFileSize);
        assert!(e.to_string().contains("/x/y") && e.to_string().contains("10 bytes"));
    }
}
