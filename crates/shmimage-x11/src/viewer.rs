//! A window that shows RGB frames, through MIT-SHM where it can.
//!
//! Each frame is converted once, from the stream's RGB straight into an image
//! buffer in the window visual's pixel format. With MIT-SHM that buffer is a
//! SysV segment the X server reads in place (`ShmPutImage`, or a shared pixmap
//! plus `CopyArea`); two segments alternate so converting frame N+1 overlaps
//! the server drawing frame N, and a segment is never written before the
//! server has said it is done with it (ShmCompletion, or the reply to a
//! request queued behind the CopyArea). Without MIT-SHM the buffer goes
//! through the socket in `PutImage` strips that fit the maximum request
//! length (BIG-REQUESTS included).

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use x11rb::connection::{Connection, RequestConnection};
use x11rb::cookie::Cookie;
use x11rb::protocol::shm::ConnectionExt as _;
use x11rb::protocol::xproto::{
    AtomEnum, ConfigureWindowAux, ConnectionExt as _, CreateGCAux, CreateWindowAux, EventMask, GetInputFocusReply,
    ImageFormat, PropMode, Window, WindowClass,
};
use x11rb::protocol::Event;
use x11rb::rust_connection::RustConnection;
use x11rb::wrapper::ConnectionExt as _;

use crate::error::{Error, Result};
use crate::format::PixelFormat;
use crate::shm::{self, AttachError, Attached, DrawPath, ShmVersion};

/// The path used when none is asked for; see docs/x11.md for the numbers
/// behind the choice.
pub const DEFAULT_PATH: DrawPath = DrawPath::ShmPut;

/// A frame's pixels as [`Viewer::show_pixels`] takes them.
#[derive(Debug, Clone, Copy)]
pub enum Pixels<'a> {
    /// RGB8, rows top-down, `width * 3` bytes each, no padding.
    Rgb(&'a [u8]),
    /// 32-bit BGRX (blue in the lowest byte), rows `stride` bytes apart.
    Bgrx {
        /// The rows.
        data: &'a [u8],
        /// Bytes from one row to the next (>= width * 4).
        stride: usize,
    },
}

/// How to open a viewer.
#[derive(Debug, Clone, Default)]
pub struct ViewerOptions {
    /// X display (`None`: `$DISPLAY`).
    pub display: Option<String>,
    /// The drawing path to use; `None` picks [`DEFAULT_PATH`]. Either way
    /// the viewer falls back to what the server supports.
    pub path: Option<DrawPath>,
    /// The initial window title.
    pub title: String,
}

/// Something the window asks of its owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewerEvent {
    /// The user (window manager) asked to close the window.
    CloseRequested,
}

/// One image buffer.
#[derive(Debug, Default)]
struct Slot {
    /// The shared segment (shm paths).
    shm: Option<Attached>,
    /// The image in process memory (core path).
    buf: Vec<u8>,
    /// The shared pixmap over `shm` and its size (shm-pixmap path).
    pixmap: Option<(u32, u32, u32)>,
    /// The frame size held in the buffer.
    size: (u32, u32),
    /// ShmPutImage requests whose completion has not arrived yet.
    pending: u32,
    /// shm-pixmap: a request queued behind the last CopyArea from this slot,
    /// whose reply means the copy is done.
    fence: Option<u64>,
}

/// A window showing frames.
#[derive(Debug)]
pub struct Viewer {
    conn: RustConnection,
    window: Window,
    gc: u32,
    depth: u8,
    format: PixelFormat,
    path: DrawPath,
    reason: String,
    shm: Option<ShmVersion>,
    slots: Vec<Slot>,
    next: usize,
    last: Option<usize>,
    size: (u32, u32),
    wm_protocols: u32,
    wm_delete: u32,
    net_wm_name: u32,
    utf8_string: u32,
}

const COMPLETION_TIMEOUT: Duration = Duration::from_secs(10);

impl Viewer {
    /// Connect, pick the drawing path, and map a small window; it takes each
    /// frame's size when [`Viewer::show`] is called.
    pub fn open(options: &ViewerOptions) -> Result<Viewer> {
        let display = options.display.as_deref();
        let (conn, _, screen) = crate::connect(display)?;
        conn.prefetch_maximum_request_bytes();
        let depth = screen.root_depth;
        let format = PixelFormat::for_visual(conn.setup(), depth, screen.root_visual)?;

        let shm = shm::query(&conn)?;
        let wanted = options.path.unwrap_or(DEFAULT_PATH);
        let (path, reason) = choose_path(wanted, shm, display_local(display), options.path.is_some());

        let window = conn.generate_id()?;
        let aux = CreateWindowAux::new()
            .event_mask(EventMask::EXPOSURE | EventMask::STRUCTURE_NOTIFY)
            .background_pixel(screen.black_pixel);
        let (w, h) = (320u32, 240u32);
        conn.create_window(
            depth,
            window,
            screen.root,
            0,
            0,
            w as u16,
            h as u16,
            0,
            WindowClass::INPUT_OUTPUT,
            screen.root_visual,
            &aux,
        )?;
        let gc = conn.generate_id()?;
        conn.create_gc(gc, window, &CreateGCAux::new().graphics_exposures(0))?;
        let atom = |name: &[u8]| -> Result<u32> { Ok(conn.intern_atom(false, name)?.reply()?.atom) };
        let wm_protocols = atom(b"WM_PROTOCOLS")?;
        let wm_delete = atom(b"WM_DELETE_WINDOW")?;
        let net_wm_name = atom(b"_NET_WM_NAME")?;
        let utf8_string = atom(b"UTF8_STRING")?;
        conn.change_property32(PropMode::REPLACE, window, wm_protocols, AtomEnum::ATOM, &[wm_delete])?;
        conn.change_property8(
            PropMode::REPLACE,
            window,
            AtomEnum::WM_CLASS,
            AtomEnum::STRING,
            b"shmimage\0shmimage\0",
        )?;
        let slots = if path == DrawPath::Core { 1 } else { 2 };
        let v = Viewer {
            conn,
            window,
            gc,
            depth,
            format,
            path,
            reason,
            shm,
            slots: (0..slots).map(|_| Slot::default()).collect(),
            next: 0,
            last: None,
            size: (w, h),
            wm_protocols,
            wm_delete,
            net_wm_name,
            utf8_string,
        };
        v.set_title(&options.title)?;
        v.conn.map_window(window)?;
        v.conn.flush()?;
        Ok(v)
    }

    /// The path in use.
    pub fn path(&self) -> DrawPath {
        self.path
    }

    /// Why this path: the default, asked for, or the reason for a fallback.
    pub fn path_reason(&self) -> &str {
        &self.reason
    }

    /// A one-line description of the path, e.g. "MIT-SHM 1.2 ShmPutImage".
    pub fn path_description(&self) -> String {
        let v = self.shm.map(|s| format!("MIT-SHM {}.{}", s.major, s.minor)).unwrap_or_default();
        match self.path {
            DrawPath::ShmPut => format!("{v} ShmPutImage"),
            DrawPath::ShmPixmap => format!("{v} shared pixmap + CopyArea"),
            DrawPath::Core => "core PutImage (no shared memory)".to_string(),
        }
    }

    /// The size of the last frame shown (the window's size).
    pub fn size(&self) -> (u32, u32) {
        self.size
    }

    /// The window's id.
    pub fn window(&self) -> u32 {
        self.window
    }

    /// The window visual's pixel format.
    pub fn format(&self) -> PixelFormat {
        self.format
    }

    /// Set the window title (WM_NAME and _NET_WM_NAME).
    pub fn set_title(&self, title: &str) -> Result<()> {
        let c = &self.conn;
        c.change_property8(PropMode::REPLACE, self.window, AtomEnum::WM_NAME, AtomEnum::STRING, title.as_bytes())?;
        c.change_property8(PropMode::REPLACE, self.window, self.net_wm_name, self.utf8_string, title.as_bytes())?;
        c.flush()?;
        Ok(())
    }

    /// True when the next buffer is free, so [`Viewer::show`] will not wait
    /// for a completion event. (A shared pixmap's fence is a reply to a
    /// request sent a frame ago; show waits for it, normally not at all.)
    pub fn ready(&self) -> bool {
        self.slots[self.next].pending == 0
    }

    /// Show a `width` x `height` RGB frame (rows top-down, `width * height * 3`
    /// bytes), resizing the window if the size changed. Waits for the X server
    /// only if both buffers are still in use.
    pub fn show(&mut self, width: u32, height: u32, rgb: &[u8]) -> Result<Vec<ViewerEvent>> {
        self.show_pixels(width, height, Pixels::Rgb(rgb))
    }

    /// Show a frame in any of the [`Pixels`] layouts. BGRX frames on a BGRX
    /// screen (MIT-SHM's own layout) are copied row by row, not converted.
    pub fn show_pixels(&mut self, width: u32, height: u32, pixels: Pixels<'_>) -> Result<Vec<ViewerEvent>> {
        if width == 0 || height == 0 || width > u32::from(u16::MAX) || height > u32::from(u16::MAX) {
            return Err(Error::BadSize(format!("frame {width}x{height} does not fit an X window")));
        }
        let len = self.format.image_len(width, height).ok_or_else(|| Error::BadSize(format!("{width}x{height}")))?;
        let mut events = Vec::new();
        let i = self.next;
        self.wait_idle(i, &mut events)?;
        if (width, height) != self.size {
            self.conn.configure_window(self.window, &ConfigureWindowAux::new().width(width).height(height))?;
            self.size = (width, height);
        }
        self.prepare(i, width, height, len)?;
        // A fallback inside prepare leaves a single slot.
        let i = if self.path == DrawPath::Core { 0 } else { i };
        let format = self.format;
        let slot = &mut self.slots[i];
        let image: &mut [u8] = match slot.shm.as_mut() {
            Some(a) => &mut a.seg.as_mut_slice()[..len],
            None => &mut slot.buf[..len],
        };
        match pixels {
            Pixels::Rgb(rgb) => format.rgb_to_image(rgb, width, height, image)?,
            Pixels::Bgrx { data, stride } => {
                let row = width as usize * 4;
                let dst_stride = format.stride(width).ok_or_else(|| Error::BadSize(format!("width {width}")))?;
                if stride < row || data.len() < stride * (height as usize - 1) + row {
                    return Err(Error::BadSize(format!(
                        "BGRX frame {width}x{height}: {} bytes, stride {stride}",
                        data.len()
                    )));
                }
                if format.is_bgrx() {
                    for (src, dst) in data.chunks(stride).zip(image.chunks_mut(dst_stride)).take(height as usize) {
                        dst[..row].copy_from_slice(&src[..row]);
                    }
                } else {
                    // Another screen layout: through RGB, as any frame.
                    let rgb: Vec<u8> = data
                        .chunks(stride)
                        .take(height as usize)
                        .flat_map(|r| r[..row].chunks_exact(4).flat_map(|p| [p[2], p[1], p[0]]).collect::<Vec<u8>>())
                        .collect();
                    format.rgb_to_image(&rgb, width, height, image)?;
                }
            }
        }
        slot.size = (width, height);
        self.draw(i)?;
        self.last = Some(i);
        self.next = (i + 1) % self.slots.len();
        self.conn.flush()?;
        self.collect(&mut events)?;
        Ok(events)
    }

    /// Handle X events, waiting up to `timeout` for the first one.
    pub fn pump(&mut self, timeout: Duration) -> Result<Vec<ViewerEvent>> {
        let mut events = Vec::new();
        if !self.collect(&mut events)? && !timeout.is_zero() && wait_readable(&self.conn, timeout) {
            self.collect(&mut events)?;
        }
        Ok(events)
    }

    /// Wait for every outstanding use of the buffers, free the shared pixmaps,
    /// detach and remove every segment, and close the window.
    pub fn close(mut self) -> Result<()> {
        let mut events = Vec::new();
        let mut first_err = None;
        for i in 0..self.slots.len() {
            if let Err(e) = self.wait_idle(i, &mut events) {
                first_err.get_or_insert(e);
            }
        }
        for i in 0..self.slots.len() {
            self.release_slot(i);
        }
        let _ = self.conn.destroy_window(self.window);
        let _ = self.conn.free_gc(self.gc);
        // A round trip so the detaches are processed before we disconnect
        // (disconnecting would detach too; this way errors are seen).
        if let Ok(c) = self.conn.get_input_focus() {
            let _ = c.reply();
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Make slot `i` able to hold a `width` x `height` image of `len` bytes.
    fn prepare(&mut self, i: usize, width: u32, height: u32, len: usize) -> Result<()> {
        match self.path {
            DrawPath::Core => {
                let buf = &mut self.slots[i].buf;
                if buf.len() < len {
                    buf.try_reserve_exact(len - buf.len()).map_err(|_| Error::BadSize(format!("{len} bytes")))?;
                    buf.resize(len, 0);
                }
                Ok(())
            }
            DrawPath::ShmPut | DrawPath::ShmPixmap => {
                let fits = self.slots[i].shm.as_ref().is_some_and(|a| a.seg.len() >= len);
                let pix_ok = self.path == DrawPath::ShmPut
                    || self.slots[i].pixmap.is_some_and(|(_, w, h)| (w, h) == (width, height));
                if fits && pix_ok {
                    return Ok(());
                }
                self.release_slot(i);
                match Attached::new(&self.conn, len, self.path == DrawPath::ShmPut) {
                    Ok(a) => self.slots[i].shm = Some(a),
                    Err(AttachError::Refused(why)) => return self.fall_back(why, len),
                    Err(AttachError::Fatal(e)) => return Err(e),
                }
                if self.path == DrawPath::ShmPixmap {
                    let pid = self.conn.generate_id()?;
                    let xid = self.slots[i].shm.as_ref().map(|a| a.xid).unwrap_or_default();
                    let c = self.conn.shm_create_pixmap(
                        pid,
                        self.window,
                        width as u16,
                        height as u16,
                        self.depth,
                        xid,
                        0,
                    )?;
                    if let Err(e) = c.check() {
                        self.release_slot(i);
                        return self.fall_back(format!("ShmCreatePixmap failed: {e}"), len);
                    }
                    self.slots[i].pixmap = Some((pid, width, height));
                }
                Ok(())
            }
        }
    }

    /// The X server refused our segment: switch to core PutImage for good.
    fn fall_back(&mut self, why: String, len: usize) -> Result<()> {
        tracing::warn!(%why, "falling back to core PutImage");
        for j in 0..self.slots.len() {
            self.release_slot(j);
        }
        self.path = DrawPath::Core;
        self.reason = format!("fallback: {why}");
        self.slots = vec![Slot::default()];
        self.next = 0;
        self.last = None;
        self.prepare(0, 0, 0, len)
    }

    /// Send slot `i`'s image to the window.
    fn draw(&mut self, i: usize) -> Result<()> {
        let (w, h) = self.slots[i].size;
        if w == 0 {
            return Ok(());
        }
        match self.path {
            DrawPath::ShmPut => {
                let Some(a) = self.slots[i].shm.as_ref() else { return Ok(()) };
                self.conn.shm_put_image(
                    self.window,
                    self.gc,
                    w as u16,
                    h as u16,
                    0,
                    0,
                    w as u16,
                    h as u16,
                    0,
                    0,
                    self.depth,
                    ImageFormat::Z_PIXMAP.into(),
                    true,
                    a.xid,
                    0,
                )?;
                self.slots[i].pending += 1;
            }
            DrawPath::ShmPixmap => {
                let Some((pid, _, _)) = self.slots[i].pixmap else { return Ok(()) };
                self.conn.copy_area(pid, self.window, self.gc, 0, 0, 0, 0, w as u16, h as u16)?;
                // The reply to a request queued behind the copy proves the copy
                // is done; keep its cookie alive by number (see wait_idle).
                let cookie = self.conn.get_input_focus()?;
                let seq = cookie.sequence_number();
                std::mem::forget(cookie);
                if let Some(old) = self.slots[i].fence.replace(seq) {
                    self.finish_fence(old)?;
                }
            }
            DrawPath::Core => {
                let stride = self.format.stride(w).unwrap_or(0);
                // 24 bytes of PutImage header; the rest carries whole rows.
                let max = self.conn.maximum_request_bytes().saturating_sub(24);
                let rows = (max / stride.max(1)).min(h as usize);
                if rows == 0 {
                    return Err(Error::BadSize(format!(
                        "one row of {stride} bytes exceeds the maximum request ({max})"
                    )));
                }
                let buf = &self.slots[i].buf;
                let mut y = 0usize;
                while y < h as usize {
                    let n = rows.min(h as usize - y);
                    self.conn.put_image(
                        ImageFormat::Z_PIXMAP,
                        self.window,
                        self.gc,
                        w as u16,
                        n as u16,
                        0,
                        y as i16,
                        0,
                        self.depth,
                        &buf[y * stride..(y + n) * stride],
                    )?;
                    y += n;
                }
            }
        }
        Ok(())
    }

    /// Wait for the reply that proves a CopyArea is done.
    fn finish_fence(&self, seq: u64) -> Result<()> {
        Cookie::<_, GetInputFocusReply>::new(&self.conn, seq).reply()?;
        Ok(())
    }

    /// Block until the X server no longer uses slot `i`.
    fn wait_idle(&mut self, i: usize, events: &mut Vec<ViewerEvent>) -> Result<()> {
        if let Some(seq) = self.slots[i].fence.take() {
            self.finish_fence(seq)?;
        }
        let deadline = Instant::now() + COMPLETION_TIMEOUT;
        while self.slots[i].pending > 0 {
            self.conn.flush()?;
            if !self.collect(events)? {
                let now = Instant::now();
                if now >= deadline {
                    return Err(Error::X("no ShmCompletion event from the X server within 10 s".into()));
                }
                wait_readable(&self.conn, (deadline - now).min(Duration::from_millis(100)));
            }
        }
        Ok(())
    }

    /// Free slot `i`'s pixmap and segment (the caller made sure it is idle).
    fn release_slot(&mut self, i: usize) {
        let slot = std::mem::take(&mut self.slots[i]);
        if let Some(seq) = slot.fence {
            let _ = self.finish_fence(seq);
        }
        if let Some((pid, _, _)) = slot.pixmap {
            let _ = self.conn.free_pixmap(pid);
        }
        if let Some(a) = slot.shm {
            a.release(&self.conn);
        }
        if self.last == Some(i) {
            self.last = None;
        }
    }

    /// Handle every event already received; true if there was any.
    fn collect(&mut self, out: &mut Vec<ViewerEvent>) -> Result<bool> {
        let mut any = false;
        while let Some(ev) = self.conn.poll_for_event()? {
            any = true;
            match ev {
                Event::ShmCompletion(c) => {
                    if let Some(s) = self.slots.iter_mut().find(|s| s.shm.as_ref().is_some_and(|a| a.xid == c.shmseg)) {
                        s.pending = s.pending.saturating_sub(1);
                    }
                }
                Event::Expose(e) if e.count == 0 => {
                    // Redrawing only reads the buffer, which stays valid until
                    // the slot is reused, so no completion needs to be awaited.
                    if let Some(i) = self.last {
                        self.draw(i)?;
                        self.conn.flush()?;
                    }
                }
                Event::ClientMessage(m)
                    if m.type_ == self.wm_protocols && m.format == 32 && m.data.as_data32()[0] == self.wm_delete =>
                {
                    out.push(ViewerEvent::CloseRequested);
                }
                Event::Error(e) => return Err(e.into()),
                _ => {}
            }
        }
        Ok(any)
    }
}

/// Which path to use, and why, given what the server offers.
fn choose_path(wanted: DrawPath, shm: Option<ShmVersion>, local: bool, asked: bool) -> (DrawPath, String) {
    let how = if asked { "asked for" } else { "default" };
    if wanted == DrawPath::Core {
        return (DrawPath::Core, format!("{how} (--no-shm or --path core)"));
    }
    let Some(v) = shm else {
        return (DrawPath::Core, "fallback: the X server has no MIT-SHM extension".into());
    };
    if !local {
        return (DrawPath::Core, "fallback: the display is not on this machine, so it cannot share memory".into());
    }
    if wanted == DrawPath::ShmPixmap {
        if !v.shared_pixmaps {
            return (DrawPath::ShmPut, "fallback: the X server offers no shared pixmaps".into());
        }
        if v.pixmap_format != u8::from(ImageFormat::Z_PIXMAP) {
            return (DrawPath::ShmPut, "fallback: shared pixmaps are not in ZPixmap format".into());
        }
    }
    (wanted, how.into())
}

fn display_local(display: Option<&str>) -> bool {
    shm::display_is_local(display)
}

/// Wait until the connection's socket has something to read.
fn wait_readable(conn: &RustConnection, timeout: Duration) -> bool {
    let mut pfd = libc::pollfd { fd: conn.stream().as_raw_fd(), events: libc::POLLIN, revents: 0 };
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: one valid pollfd, and we pass its count.
    let r = unsafe { libc::poll(&mut pfd, 1, ms) };
    r > 0
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test's own setup failing is a test failure
mod tests {
    use super::*;

    fn v(pixmaps: bool) -> Option<ShmVersion> {
        Some(ShmVersion { major: 1, minor: 2, shared_pixmaps: pixmaps, pixmap_format: 2 })
    }

    #[test]
    fn path_choice_falls_back_in_order() {
        assert_eq!(choose_path(DrawPath::ShmPut, v(true), true, false).0, DrawPath::ShmPut);
        assert_eq!(choose_path(DrawPath::ShmPixmap, v(true), true, true).0, DrawPath::ShmPixmap);
        assert_eq!(choose_path(DrawPath::ShmPixmap, v(false), true, true).0, DrawPath::ShmPut);
        assert_eq!(choose_path(DrawPath::ShmPut, None, true, false).0, DrawPath::Core);
        assert_eq!(choose_path(DrawPath::ShmPut, v(true), false, false).0, DrawPath::Core);
        assert_eq!(choose_path(DrawPath::Core, v(true), true, true).0, DrawPath::Core);
        assert!(choose_path(DrawPath::ShmPut, None, true, false).1.contains("no MIT-SHM"));
    }
}
