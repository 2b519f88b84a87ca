//! What the X server offers for shared memory (`shmimage x11-info`).

use std::fmt;

use x11rb::connection::{Connection, RequestConnection};
use x11rb::protocol::xproto::ImageFormat;

use crate::error::Result;
use crate::format::PixelFormat;
use crate::shm;

/// MIT-SHM and the screen, as seen from this client.
#[derive(Debug, Clone)]
pub struct ShmInfo {
    /// The display connected to.
    pub display: String,
    /// MIT-SHM version, if the extension is present.
    pub version: Option<(u16, u16)>,
    /// Shared pixmaps offered, and their format (`ZPixmap`/`XYPixmap`).
    pub shared_pixmaps: Option<&'static str>,
    /// The display is on this machine (MIT-SHM needs that).
    pub local: bool,
    /// Screen number, size, root depth and visual.
    pub screen: (usize, u16, u16, u8, u32),
    /// The root visual's pixel format, or why it cannot be converted.
    pub format: std::result::Result<PixelFormat, String>,
    /// Largest request in bytes (BIG-REQUESTS included).
    pub max_request_bytes: usize,
}

impl ShmInfo {
    /// Ask the X server.
    pub fn query(display: Option<&str>) -> Result<ShmInfo> {
        let (conn, screen_num, s) = crate::connect(display)?;
        conn.prefetch_maximum_request_bytes();
        let v = shm::query(&conn)?;
        let format = PixelFormat::for_visual(conn.setup(), s.root_depth, s.root_visual).map_err(|e| e.to_string());
        Ok(ShmInfo {
            display: display.map(str::to_owned).or_else(|| std::env::var("DISPLAY").ok()).unwrap_or_default(),
            version: v.map(|v| (v.major, v.minor)),
            shared_pixmaps: v.filter(|v| v.shared_pixmaps).map(|v| {
                if v.pixmap_format == u8::from(ImageFormat::Z_PIXMAP) {
                    "ZPixmap"
                } else if v.pixmap_format == u8::from(ImageFormat::XY_PIXMAP) {
                    "XYPixmap"
                } else {
                    "unknown format"
                }
            }),
            local: shm::display_is_local(display),
            screen: (screen_num, s.width_in_pixels, s.height_in_pixels, s.root_depth, s.root_visual),
            format,
            max_request_bytes: conn.maximum_request_bytes(),
        })
    }

    /// MIT-SHM 1.2 added fd passing (ShmAttachFd, ShmCreateSegment).
    pub fn fd_passing(&self) -> bool {
        self.version.is_some_and(|v| v >= (1, 2))
    }
}

impl fmt::Display for ShmInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "display:          {}{}", self.display, if self.local { " (local)" } else { " (remote)" })?;
        match self.version {
            Some((a, b)) => writeln!(f, "MIT-SHM:          present, version {a}.{b}")?,
            None => writeln!(f, "MIT-SHM:          absent")?,
        }
        if self.version.is_some() {
            match self.shared_pixmaps {
                Some(fmt) => writeln!(f, "shared pixmaps:   yes, {fmt}")?,
                None => writeln!(f, "shared pixmaps:   no")?,
            }
            writeln!(
                f,
                "fd passing:       {}",
                if self.fd_passing() { "yes (1.2: ShmAttachFd, ShmCreateSegment)" } else { "no (needs 1.2)" }
            )?;
        }
        let (n, w, h, depth, visual) = self.screen;
        writeln!(f, "screen:           {n}, {w}x{h}, depth {depth}, visual {visual:#x}")?;
        match &self.format {
            Ok(p) => writeln!(f, "pixel format:     {}", p.describe())?,
            Err(e) => writeln!(f, "pixel format:     {e}")?,
        }
        writeln!(f, "max request:      {} bytes", self.max_request_bytes)?;
        let path = if self.version.is_some() && self.local { "MIT-SHM" } else { "core PutImage/GetImage" };
        write!(f, "viewer would use: {path}")
    }
}
