//! One error type for the X11 side; every variant's text says what to do.

use std::fmt;

/// What went wrong talking to the X server or the OS.
#[derive(Debug)]
pub enum Error {
    /// Could not open the display.
    Connect {
        /// The display asked for (`None`: `$DISPLAY`).
        display: Option<String>,
        /// Why.
        reason: String,
    },
    /// The X connection broke or a request failed.
    X(String),
    /// The screen or window uses a pixel layout this crate cannot convert.
    Unsupported(String),
    /// A SysV shared-memory call failed.
    Os {
        /// The call.
        call: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// A size that does not fit the X protocol's 16-bit fields or memory.
    BadSize(String),
}

/// Result with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Connect { display, reason } => {
                let d = display.clone().or_else(|| std::env::var("DISPLAY").ok()).unwrap_or_else(|| "(unset)".into());
                write!(f, "cannot open X display {d}: {reason} (is an X server running? set DISPLAY or pass --display)")
            }
            Error::X(s) => write!(f, "X11: {s}"),
            Error::Unsupported(s) => write!(f, "unsupported pixel format: {s}"),
            Error::Os { call, source } => write!(f, "{call} failed: {source} (check kernel.shmmax / shmmni)"),
            Error::BadSize(s) => write!(f, "bad size: {s}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Os { source, .. } => Some(source),
            _ => None,
        }
    }
}

macro_rules! from_x {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Error {
                Error::X(e.to_string())
            }
        }
    )*};
}
from_x!(x11rb::errors::ConnectionError, x11rb::errors::ReplyError, x11rb::errors::ReplyOrIdError);

impl From<x11rb::x11_utils::X11Error> for Error {
    fn from(e: x11rb::x11_utils::X11Error) -> Error {
        Error::X(format!("{:?} error (major opcode {}, minor {})", e.error_kind, e.major_opcode, e.minor_opcode))
    }
}
