//! MIT-SHM plumbing shared by the viewer and the capture: is the extension
//! usable here, and a segment attached on both sides.

use std::fmt;

use x11rb::connection::{Connection, RequestConnection};
use x11rb::protocol::shm::{self, ConnectionExt as _};
use x11rb::rust_connection::RustConnection;

use crate::error::{Error, Result};
use crate::segment::Segment;

/// How the viewer gets pixels to the screen (or the capture gets them back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrawPath {
    /// MIT-SHM `ShmPutImage` (viewer) or `ShmGetImage` (capture).
    ShmPut,
    /// A shared-memory pixmap written in place, then `CopyArea` to the window.
    ShmPixmap,
    /// Core `PutImage`/`GetImage`: every byte through the socket.
    Core,
}

impl DrawPath {
    /// The command-line name: shm-put, shm-pixmap, core.
    pub fn name(self) -> &'static str {
        match self {
            DrawPath::ShmPut => "shm-put",
            DrawPath::ShmPixmap => "shm-pixmap",
            DrawPath::Core => "core",
        }
    }
}

impl fmt::Display for DrawPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// True when `display` (or `$DISPLAY`) names this machine: MIT-SHM shares
/// this machine's memory, so over the network a segment id would name a
/// segment on the wrong host (or none).
pub fn display_is_local(display: Option<&str>) -> bool {
    let Ok(p) = x11rb::reexports::x11rb_protocol::parse_display::parse_display(display) else {
        return false;
    };
    if p.host.is_empty() || p.protocol.as_deref() == Some("unix") {
        return true;
    }
    let host = p.host.to_ascii_lowercase();
    if matches!(host.as_str(), "unix" | "localhost" | "127.0.0.1" | "::1" | "[::1]") {
        return true;
    }
    hostname().is_some_and(|h| h.eq_ignore_ascii_case(&host))
}

fn hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its whole length, which we pass.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if r != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0)?;
    std::str::from_utf8(&buf[..end]).ok().map(str::to_owned)
}

/// MIT-SHM as this connection sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ShmVersion {
    pub major: u16,
    pub minor: u16,
    pub shared_pixmaps: bool,
    pub pixmap_format: u8,
}

/// Ask for MIT-SHM and its version; `Ok(None)` when the server lacks it.
pub(crate) fn query(conn: &RustConnection) -> Result<Option<ShmVersion>> {
    if conn.extension_information(shm::X11_EXTENSION_NAME)?.is_none() {
        return Ok(None);
    }
    let r = conn.shm_query_version()?.reply()?;
    Ok(Some(ShmVersion {
        major: r.major_version,
        minor: r.minor_version,
        shared_pixmaps: r.shared_pixmaps,
        pixmap_format: r.pixmap_format,
    }))
}

/// A segment mapped here and attached by the X server, its id already
/// removed. Give it back with [`Attached::release`]; if the process dies
/// instead, the X server's detach on disconnect frees it.
#[derive(Debug)]
pub(crate) struct Attached {
    pub seg: Segment,
    pub xid: shm::Seg,
}

/// Why attaching failed: the X server refused (fall back to core), or the
/// connection/OS failed (an error).
#[derive(Debug)]
pub(crate) enum AttachError {
    Refused(String),
    Fatal(Error),
}

impl From<Error> for AttachError {
    fn from(e: Error) -> Self {
        AttachError::Fatal(e)
    }
}

impl Attached {
    /// Create a `len`-byte segment and have the X server attach it.
    /// `read_only` suits images the server only reads (ShmPutImage).
    pub fn new(conn: &RustConnection, len: usize, read_only: bool) -> std::result::Result<Attached, AttachError> {
        let mut seg = Segment::new(len)?;
        let xid = conn.generate_id().map_err(Error::from)?;
        // The checked round trip is what makes the early IPC_RMID safe: once
        // it returns, the server holds its own attachment.
        let cookie = conn.shm_attach(xid, seg.id(), read_only).map_err(Error::from)?;
        match cookie.check() {
            Ok(()) => {}
            Err(x11rb::errors::ReplyError::X11Error(e)) => {
                return Err(AttachError::Refused(format!("ShmAttach failed: {:?} error", e.error_kind)));
            }
            Err(e) => return Err(AttachError::Fatal(e.into())),
        }
        if let Err(e) = seg.remove_id() {
            let _ = conn.shm_detach(xid);
            return Err(AttachError::Fatal(e));
        }
        Ok(Attached { seg, xid })
    }

    /// Ask the X server to detach, then unmap here. The caller must have seen
    /// every completion for requests that use the segment.
    pub fn release(self, conn: &RustConnection) {
        if let Ok(c) = conn.shm_detach(self.xid) {
            c.ignore_error();
        }
        let _ = conn.flush();
        drop(self.seg);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test's own setup failing is a test failure
mod tests {
    use super::*;

    #[test]
    fn local_and_remote_displays() {
        assert!(display_is_local(Some(":0")));
        assert!(display_is_local(Some(":12.0")));
        assert!(display_is_local(Some("unix/:3")));
        assert!(display_is_local(Some("localhost:10.0")));
        assert!(!display_is_local(Some("far-away.example:0")));
        assert!(!display_is_local(Some("not a display")));
    }
}
