//! X11 faces of the shmimage stream: a live viewer and a screen capture
//! server, both over MIT-SHM (SysV segments, mode 0600, removed as soon as the
//! X server has attached them) with a core-protocol fallback.
//!
//! - [`viewer::Viewer`] shows RGB frames in a window: `ShmPutImage` into the
//!   window, or a shared-memory pixmap plus `CopyArea`, or core `PutImage`
//!   strips when MIT-SHM is missing, the display is remote or attaching fails.
//! - [`capture::Grabber`] reads a window (or the root) with `ShmGetImage`,
//!   or core `GetImage` without MIT-SHM, and hands back RGB.
//! - [`info::ShmInfo`] says what the server offers (`shmimage x11-info`).
//! - [`format::PixelFormat`] converts between the stream's RGB and a visual's
//!   pixels; pure, tested without a display.
//! - [`segment::Segment`] is the one home of the SysV calls.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod capture;
mod error;
pub mod format;
pub mod info;
pub mod segment;
mod shm;
pub mod viewer;

pub use error::{Error, Result};
pub use shm::{display_is_local, DrawPath};
/// The X11 binding in use, for callers (and tests) that draw or read windows.
pub use x11rb;

/// Connect to `display` (default: `$DISPLAY`) and describe its default
/// screen: the connection, the screen's number and the screen.
pub(crate) fn connect(
    display: Option<&str>,
) -> Result<(x11rb::rust_connection::RustConnection, usize, x11rb::protocol::xproto::Screen)> {
    use x11rb::connection::Connection;
    let (conn, screen_num) = x11rb::rust_connection::RustConnection::connect(display)
        .map_err(|e| Error::Connect { display: display.map(str::to_owned), reason: e.to_string() })?;
    let screen = conn
        .setup()
        .roots
        .get(screen_num)
        .ok_or_else(|| Error::X(format!("screen {screen_num} does not exist")))?
        .clone();
    Ok((conn, screen_num, screen))
}
