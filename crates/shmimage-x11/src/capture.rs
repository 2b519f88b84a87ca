//! Grabbing a window's (or the root's) pixels as RGB: `ShmGetImage` into a
//! private segment where MIT-SHM works, core `GetImage` otherwise.

use x11rb::connection::Connection;
use x11rb::protocol::shm::ConnectionExt as _;
use x11rb::protocol::xproto::{ConnectionExt as _, ImageFormat, Window};
use x11rb::rust_connection::RustConnection;

use crate::error::{Error, Result};
use crate::format::PixelFormat;
use crate::shm::{self, AttachError, Attached, DrawPath, ShmVersion};

/// What to grab.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The screen's root window (the whole screen).
    Root,
    /// A window by id; it must be mapped and entirely on screen.
    Window(u32),
}

/// How to open a grabber.
#[derive(Debug, Clone)]
pub struct GrabberOptions {
    /// X display (`None`: `$DISPLAY`).
    pub display: Option<String>,
    /// What to grab.
    pub target: Target,
    /// Refuse MIT-SHM and use core GetImage.
    pub no_shm: bool,
}

/// Grabs frames from one drawable.
#[derive(Debug)]
pub struct Grabber {
    conn: RustConnection,
    drawable: Window,
    visual: u32,
    path: DrawPath,
    reason: String,
    shm: Option<ShmVersion>,
    seg: Option<Attached>,
    format: Option<(u8, PixelFormat)>,
}

impl Grabber {
    /// Connect and look up the target.
    pub fn open(options: &GrabberOptions) -> Result<Grabber> {
        let display = options.display.as_deref();
        let (conn, _, screen) = crate::connect(display)?;
        let (drawable, visual) = match options.target {
            Target::Root => (screen.root, screen.root_visual),
            Target::Window(w) => {
                let attrs = conn.get_window_attributes(w)?.reply()?;
                (w, attrs.visual)
            }
        };
        let shm = shm::query(&conn)?;
        let (path, reason) = if options.no_shm {
            (DrawPath::Core, "asked for (--no-shm)".to_string())
        } else if shm.is_none() {
            (DrawPath::Core, "fallback: the X server has no MIT-SHM extension".to_string())
        } else if !shm::display_is_local(display) {
            (DrawPath::Core, "fallback: the display is not on this machine, so it cannot share memory".to_string())
        } else {
            (DrawPath::ShmPut, "default".to_string())
        };
        Ok(Grabber { conn, drawable, visual, path, reason, shm, seg: None, format: None })
    }

    /// The drawable being grabbed.
    pub fn drawable(&self) -> u32 {
        self.drawable
    }

    /// [`DrawPath::ShmPut`] for ShmGetImage, [`DrawPath::Core`] for GetImage.
    pub fn path(&self) -> DrawPath {
        self.path
    }

    /// Why this path (default, asked for, or the fallback's reason).
    pub fn path_reason(&self) -> &str {
        &self.reason
    }

    /// A one-line description of the path.
    pub fn path_description(&self) -> String {
        match (self.path, self.shm) {
            (DrawPath::Core, _) | (_, None) => "core GetImage (no shared memory)".into(),
            (_, Some(v)) => format!("MIT-SHM {}.{} ShmGetImage", v.major, v.minor),
        }
    }

    /// Grab the drawable's current contents as RGB into `rgb` (resized to
    /// `w * h * 3`); returns the size. The size follows the window's.
    pub fn grab(&mut self, rgb: &mut Vec<u8>) -> Result<(u32, u32)> {
        self.grab_as(rgb, false).map(|(w, h, _)| (w, h))
    }

    /// Grab into `out`: the X server's own pixels, untouched, when `bgrx` is
    /// asked for and the screen stores 32-bit little-endian BGRX (`w * h * 4`
    /// bytes; the third value is then true), else RGB as [`Grabber::grab`].
    pub fn grab_as(&mut self, out: &mut Vec<u8>, bgrx: bool) -> Result<(u32, u32, bool)> {
        let g = self.conn.get_geometry(self.drawable)?.reply()?;
        let (w, h) = (u32::from(g.width), u32::from(g.height));
        let format = self.format_for(g.depth)?;
        let len = format.image_len(w, h).ok_or_else(|| Error::BadSize(format!("{w}x{h}")))?;
        // 32 bpp rows are never padded (the pad is at most 32 bits).
        let raw = bgrx && format.is_bgrx();
        let out_len = w as usize * h as usize * if raw { 4 } else { 3 };
        out.resize(out_len, 0);
        let rgb = out;
        let not_viewable = |e: x11rb::errors::ReplyError| {
            Error::X(format!(
                "GetImage of {:#x} failed: {} (the window must be mapped and entirely on screen)",
                self.drawable,
                Error::from(e)
            ))
        };
        if self.path == DrawPath::ShmPut && !matches!(&self.seg, Some(a) if a.seg.len() >= len) {
            if let Some(old) = self.seg.take() {
                old.release(&self.conn);
            }
            match Attached::new(&self.conn, len, false) {
                Ok(a) => self.seg = Some(a),
                Err(AttachError::Refused(why)) => {
                    tracing::warn!(%why, "falling back to core GetImage");
                    self.path = DrawPath::Core;
                    self.reason = format!("fallback: {why}");
                }
                Err(AttachError::Fatal(e)) => return Err(e),
            }
        }
        if let (DrawPath::ShmPut, Some(a)) = (self.path, self.seg.as_mut()) {
            let r = self
                .conn
                .shm_get_image(self.drawable, 0, 0, w as u16, h as u16, !0, ImageFormat::Z_PIXMAP.into(), a.xid, 0)?
                .reply()
                .map_err(not_viewable)?;
            if r.size as usize != len || r.depth != g.depth {
                return Err(Error::X(format!(
                    "ShmGetImage returned {} bytes of depth {}; expected {len} of depth {}",
                    r.size, r.depth, g.depth
                )));
            }
            if raw {
                rgb.copy_from_slice(&a.seg.as_slice()[..len]);
            } else {
                format.image_to_rgb(&a.seg.as_slice()[..len], w, h, rgb)?;
            }
        } else {
            let r = self
                .conn
                .get_image(ImageFormat::Z_PIXMAP, self.drawable, 0, 0, w as u16, h as u16, !0)?
                .reply()
                .map_err(not_viewable)?;
            if raw {
                let data = r.data.get(..len).ok_or_else(|| Error::X("GetImage returned a short image".into()))?;
                rgb.copy_from_slice(data);
            } else {
                format.image_to_rgb(&r.data, w, h, rgb)?;
            }
        }
        Ok((w, h, raw))
    }

    fn format_for(&mut self, depth: u8) -> Result<PixelFormat> {
        match self.format {
            Some((d, f)) if d == depth => Ok(f),
            _ => {
                let f = PixelFormat::for_visual(self.conn.setup(), depth, self.visual)?;
                self.format = Some((depth, f));
                Ok(f)
            }
        }
    }

    /// Detach and remove the segment, and disconnect.
    pub fn close(mut self) {
        if let Some(a) = self.seg.take() {
            a.release(&self.conn);
            if let Ok(c) = self.conn.get_input_focus() {
                let _ = c.reply();
            }
        }
    }
}
