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
    /// The X server answered a request with an error.
    Refused {
        /// The request, e.g. `GetGeometry` or `ShmAttach`.
        request: String,
        /// The X error's name, e.g. `BadWindow`.
        kind: String,
        /// The value the server complained about (a window id, ...).
        bad_value: u32,
    },
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
            Error::Refused { request, kind, bad_value } => {
                write!(f, "the X server refused {request}: {kind} (value {bad_value:#x})")?;
                match kind.as_str() {
                    "BadWindow" | "BadDrawable" => write!(f, "; no such window: check the id with xwininfo"),
                    "BadMatch" => write!(f, "; a window to grab must be mapped and entirely on screen"),
                    "BadAccess" => write!(f, "; the X server may not use this memory (another user or container)"),
                    "BadAlloc" => write!(f, "; the X server is out of memory"),
                    _ => Ok(()),
                }
            }
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

impl From<x11rb::errors::ConnectionError> for Error {
    fn from(e: x11rb::errors::ConnectionError) -> Error {
        Error::X(e.to_string())
    }
}

// x11rb's own Display for these prints the X11Error struct with `{:?}`;
// people get the request and the error's name instead.
impl From<x11rb::errors::ReplyError> for Error {
    fn from(e: x11rb::errors::ReplyError) -> Error {
        match e {
            x11rb::errors::ReplyError::X11Error(x) => x.into(),
            x11rb::errors::ReplyError::ConnectionError(c) => c.into(),
        }
    }
}

impl From<x11rb::errors::ReplyOrIdError> for Error {
    fn from(e: x11rb::errors::ReplyOrIdError) -> Error {
        match e {
            x11rb::errors::ReplyOrIdError::X11Error(x) => x.into(),
            x11rb::errors::ReplyOrIdError::ConnectionError(c) => c.into(),
            x11rb::errors::ReplyOrIdError::IdsExhausted => Error::X("the X server has no more resource ids".into()),
        }
    }
}

impl From<x11rb::x11_utils::X11Error> for Error {
    fn from(e: x11rb::x11_utils::X11Error) -> Error {
        use x11rb::protocol::ErrorKind;
        let kind = match e.error_kind {
            ErrorKind::Unknown(code) => format!("X error code {code}"),
            k => format!("Bad{k:?}"),
        };
        let request = match (e.extension_name.as_deref(), e.request_name) {
            (_, Some(r)) => r.to_owned(),
            (Some(ext), None) => format!("a {ext} request (minor opcode {})", e.minor_opcode),
            (None, None) => format!("request {}", e.major_opcode),
        };
        Error::Refused { request, kind, bad_value: e.bad_value }
    }
}
