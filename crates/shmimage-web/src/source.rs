//! Where frames come from: the one place that knows the engine's reading API
//! (`shmimage::Reader`, which opens a native or a protocol 1.0 stream).
//!
//! Everything else in this crate sees a [`FrameSource`] handing over a
//! [`Picture`]: pixels in a layout the JPEG encoder takes (converted here when
//! the stream's format is not one), plus what the page shows.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use shmimage::native::{self, flags, PixelFormat, ReaderOptions};
use shmimage::{ImageFrame, Protocol, Reader};

use crate::convert::{self, Chroma};

/// How the bytes of a [`Picture`] are laid out (what the encoder is told).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// R G B.
    Rgb,
    /// B G R.
    Bgr,
    /// R G B A.
    Rgba,
    /// B G R A.
    Bgra,
    /// R G B, one unused byte.
    Rgbx,
    /// B G R, one unused byte.
    Bgrx,
    /// One byte of luminance.
    Gray,
}

/// One frame, valid during the callback of [`FrameSource::next`].
#[derive(Debug)]
pub struct Picture<'a> {
    /// The writer's frame number (or sequence).
    pub number: u64,
    /// Pixels per row.
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// Bytes from one row to the next.
    pub pitch: usize,
    /// How the pixel bytes are laid out.
    pub layout: Layout,
    /// The stream's pixel format name, shown on the page.
    pub format: &'static str,
    /// When the writer captured the frame, if the stream says.
    pub captured: Option<SystemTime>,
    /// Rows are stored bottom-up (the page flips them).
    pub bottom_up: bool,
    /// The pixels.
    pub pixels: &'a [u8],
}

/// Why the source cannot go on; the caller drops it and opens again later.
#[derive(Debug)]
pub enum SourceError {
    /// The writer process has exited (or the file was replaced under us).
    WriterGone,
    /// Anything else, as the engine words it.
    Other(native::Error),
}

impl std::fmt::Display for SourceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SourceError::WriterGone => f.write_str("writer gone"),
            SourceError::Other(e) => write!(f, "{e}"),
        }
    }
}

/// A reader of one stream.
#[derive(Debug)]
pub struct FrameSource {
    reader: Reader,
    path: std::path::PathBuf,
    /// A 1.0 client that saw its writer go is replaced before the next read
    /// (a native reader stays usable and sees the next writer itself, unless
    /// the path now names another file).
    reopen: bool,
    /// Device and inode of the file opened.
    identity: Option<(u64, u64)>,
    /// Frames whose format the encoder does not take are converted here.
    scratch: Vec<u8>,
}

impl FrameSource {
    /// Open the stream at `path` as one of its readers.
    pub fn open(path: &Path) -> Result<FrameSource, SourceError> {
        let reader = Reader::open(path, &ReaderOptions::default()).map_err(classify)?;
        Ok(FrameSource {
            reader,
            path: path.to_path_buf(),
            reopen: false,
            identity: identity(path),
            scratch: Vec::new(),
        })
    }

    /// Wait up to `timeout` for a frame newer than the last; hand it to `f`
    /// (in place in shared memory where the format allows) and return what
    /// `f` returns, or `None` when no frame came.
    /// `Err(WriterGone)` leaves the source usable: keep calling, and frames
    /// come again once a writer is back.
    pub fn next<R>(&mut self, timeout: Duration, f: impl FnOnce(&Picture<'_>) -> R) -> Result<Option<R>, SourceError> {
        if self.reopen {
            self.reader = Reader::open(&self.path, &ReaderOptions::default()).map_err(classify)?;
            self.identity = identity(&self.path);
            self.reopen = false;
        }
        // 1.0 carries no capture time (the engine gives the read time): the
        // page is told, and measures from when the server read the frame.
        let has_capture_time = self.reader.protocol() == Protocol::Native;
        let frame = match self.reader.read(Some(timeout)) {
            Ok(frame) => frame,
            Err(native::Error::NoFrameAvailable) => return Ok(None),
            Err(e) => {
                let e = classify(e);
                // A writer that comes back in a new file at the same path
                // (deleted and created again) is only seen by opening again.
                self.reopen = matches!(e, SourceError::WriterGone)
                    && (!has_capture_time || identity(&self.path) != self.identity);
                return Err(e);
            }
        };
        let captured = has_capture_time
            .then(|| UNIX_EPOCH.checked_add(Duration::from_nanos(frame.timestamps().capture_real_ns)))
            .flatten();
        let Some((layout, pitch, pixels)) = display_pixels(&frame, &mut self.scratch).map_err(classify)? else {
            return Err(SourceError::Other(native::Error::BadArgs(format!(
                "frame {} ({} {}x{}) is shorter than its description",
                frame.sequence(),
                frame.format().name(),
                frame.width(),
                frame.height()
            ))));
        };
        let picture = Picture {
            number: frame.sequence(),
            width: frame.width(),
            height: frame.height(),
            pitch,
            layout,
            format: frame.format().name(),
            captured,
            bottom_up: frame.flags() & flags::BOTTOM_UP != 0,
            pixels,
        };
        Ok(Some(f(&picture)))
    }
}

/// Pixels ready for the encoder: layout, bytes per row, bytes.
type Ready<'a> = (Layout, usize, &'a [u8]);

/// The frame's pixels as the encoder takes them: in place for packed 8-bit
/// formats, else converted into `scratch`. `Ok(None)` when a plane is missing.
fn display_pixels<'a>(frame: &'a ImageFrame, scratch: &'a mut Vec<u8>) -> Result<Option<Ready<'a>>, native::Error> {
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    let planes = [frame.plane(0)?, frame.plane(1)?, frame.plane(2)?];
    let stride = |i: usize| frame.desc().plane(i).map(|p| p.stride as usize);
    let in_place = |layout| Some((layout, stride(0)?, planes[0]?));
    Ok(match frame.format() {
        PixelFormat::Rgb8 => in_place(Layout::Rgb),
        PixelFormat::Bgr8 => in_place(Layout::Bgr),
        PixelFormat::Rgba8 => in_place(Layout::Rgba),
        PixelFormat::Bgra8 => in_place(Layout::Bgra),
        PixelFormat::Rgbx8 => in_place(Layout::Rgbx),
        PixelFormat::Bgrx8 => in_place(Layout::Bgrx),
        PixelFormat::Gray8 => in_place(Layout::Gray),
        PixelFormat::Gray16Le => planes[0].zip(stride(0)).map(|(p, s)| {
            convert::gray16_to_gray8(p, s, w, h, scratch);
            (Layout::Gray, w, &scratch[..])
        }),
        PixelFormat::Gray32F => planes[0].zip(stride(0)).map(|(p, s)| {
            convert::gray32f_to_gray8(p, s, w, h, scratch);
            (Layout::Gray, w, &scratch[..])
        }),
        PixelFormat::I420 => match (planes, stride(0), stride(1), stride(2)) {
            ([Some(y), Some(u), Some(v)], Some(ys), Some(us), Some(vs)) => {
                let chroma = Chroma::Planar { u, u_stride: us, v, v_stride: vs };
                convert::yuv420_to_rgb(y, ys, chroma, w, h, scratch);
                Some((Layout::Rgb, w * 3, &scratch[..]))
            }
            _ => None,
        },
        PixelFormat::Nv12 => match (planes, stride(0), stride(1)) {
            ([Some(y), Some(uv), _], Some(ys), Some(uvs)) => {
                convert::yuv420_to_rgb(y, ys, Chroma::Interleaved { uv, stride: uvs }, w, h, scratch);
                Some((Layout::Rgb, w * 3, &scratch[..]))
            }
            _ => None,
        },
        // A format added to the engine after this crate: say so on the page.
        #[allow(unreachable_patterns)]
        _ => None,
    })
}

fn identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// True when `path` holds a stream this source can read (used to list a
/// directory's streams).
pub fn is_stream(path: &Path) -> bool {
    match shmimage::detect_protocol(path) {
        Ok(Protocol::Native) => true,
        // Any file of 64 bytes or more may be a 1.0 stream: check its layout.
        Ok(Protocol::Ensight1) => shmimage::inspect(path).is_ok(),
        Err(_) => false,
    }
}

/// C values of the 1.0 errors that mean the writer went away: UNCONNECTED
/// (4; the engine before the ownership rework), SERVER_GONE (-104) and
/// FILE_REPLACED (-105). By value, so this compiles against either engine.
const ENSIGHT_WRITER_GONE: [i32; 3] = [4, -104, -105];

fn classify(e: native::Error) -> SourceError {
    match e {
        native::Error::WriterGone { .. } => SourceError::WriterGone,
        native::Error::Ensight(ref e1) if ENSIGHT_WRITER_GONE.contains(&(e1.code() as i32)) => SourceError::WriterGone,
        e => SourceError::Other(e),
    }
}
