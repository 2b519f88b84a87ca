//! The stream end of `shmimagesrc`: opens a stream and turns its frames into
//! GStreamer buffers.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gst_video::prelude::*;
use shmimage::{Client, ClientOptions, Error, Protocol};

use super::native_input::Native;

/// One frame, ready to push.
#[derive(Debug)]
pub(crate) struct Pulled {
    /// Format, size and rate for the caps.
    pub info: gst_video::VideoInfo,
    pub buffer: gst::Buffer,
    /// Time since the writer captured the frame, when the stream says.
    pub age: Option<Duration>,
    /// The writer's frame number.
    pub sequence: u64,
    /// Whether the pixels were copied out of the stream.
    pub copied: bool,
}

/// Why a pull gave no frame.
#[derive(Debug)]
pub(crate) enum PullError {
    /// The writer has gone (exited, or the file was replaced).
    WriterGone(String),
    /// The stream cannot be read any more.
    Failed(String),
}

/// How to read a stream.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadOptions {
    /// Native: take every frame (the writer waits for this reader).
    pub lossless: bool,
    /// Native: slots lent to buffers downstream at once before frames are
    /// copied instead, so the writer always has slots to write into.
    pub max_held: usize,
}

/// An open stream.
#[derive(Debug)]
pub(crate) enum Input {
    Ensight(Ensight),
    Native(Native),
}

impl Input {
    /// Open the stream at `path` as a reader, in the protocol its file holds.
    pub(crate) fn open(path: &Path, o: ReadOptions) -> Result<Input, String> {
        match shmimage::detect_protocol(path).map_err(|e| e.to_string())? {
            Protocol::Native => Native::open(path, o.lossless, o.max_held).map(Input::Native),
            Protocol::Ensight1 => Ensight::open(path).map(Input::Ensight),
        }
    }

    /// Wait up to `wait` for the next frame; `Ok(None)` when none came.
    /// `meta_ok`: downstream reads GstVideoMeta, so padded rows need no copy.
    pub(crate) fn pull(&mut self, wait: Duration, meta_ok: bool) -> Result<Option<Pulled>, PullError> {
        match self {
            Input::Ensight(e) => e.pull(wait, meta_ok),
            Input::Native(n) => n.pull(wait, meta_ok),
        }
    }

    /// The stream's protocol, for logs and messages.
    pub(crate) fn protocol(&self) -> &'static str {
        match self {
            Input::Ensight(_) => "ensight-1.0",
            Input::Native(_) => "native",
        }
    }

    /// Frames the writer published that this reader skipped, and slots
    /// held downstream now (native only).
    pub(crate) fn native_stats(&self) -> Option<(u64, usize)> {
        match self {
            Input::Ensight(_) => None,
            Input::Native(n) => Some(n.stats()),
        }
    }
}

/// A 1.0 stream: RGB, no timestamps. A frame read in place is lent to
/// downstream (no copy) one at a time: a 1.0 client holds at most two of the
/// stream's two buffers, and the server must keep one to write into; while
/// downstream still holds the lent frame, the next ones are copied.
#[derive(Debug)]
pub(crate) struct Ensight {
    client: Client,
    held: Arc<AtomicUsize>,
}

/// A locked 1.0 frame as GStreamer memory; dropping it unlocks the frame.
#[derive(Debug)]
struct Locked {
    frame: shmimage::Frame,
    held: Arc<AtomicUsize>,
}

impl AsRef<[u8]> for Locked {
    fn as_ref(&self) -> &[u8] {
        // Checked before the memory was made; afterwards the frame stays
        // readable until it is unlocked (a close turns it to zeros).
        self.frame.pixels().unwrap_or(&[])
    }
}

impl Drop for Locked {
    fn drop(&mut self) {
        self.held.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Ensight {
    fn open(path: &Path) -> Result<Ensight, String> {
        let client = Client::connect(path, ClientOptions::default()).map_err(|e| e.to_string())?;
        Ok(Ensight { client, held: Arc::new(AtomicUsize::new(0)) })
    }

    fn pull(&mut self, wait: Duration, meta_ok: bool) -> Result<Option<Pulled>, PullError> {
        let frame = match self.client.wait_frame(Some(wait)) {
            Ok(f) => f,
            Err(Error::NoFrameAvailable) => return Ok(None),
            // The server exited, or another one took the file over: the
            // stream goes on only with a new connection.
            Err(
                e @ (Error::ServerGone { .. }
                | Error::Unconnected
                | Error::FileReplaced { .. }
                | Error::StreamReset { .. }),
            ) => return Err(PullError::WriterGone(e.to_string())),
            Err(e) => return Err(PullError::Failed(e.to_string())),
        };
        let (w, h) = (frame.width(), frame.height());
        let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::Rgb, w, h)
            .build()
            .map_err(|e| PullError::Failed(format!("a {w}x{h} RGB frame: {e}")))?;
        let sequence = u64::from(frame.number());
        let row = w as usize * 3;
        let len = frame.pixels().map_err(|e| PullError::Failed(e.to_string()))?.len();
        let packed_is_default = info.stride()[0] as usize == row;
        let lend = len == row * h as usize && (packed_is_default || meta_ok) && self.held.load(Ordering::Acquire) == 0;
        if lend {
            self.held.fetch_add(1, Ordering::AcqRel);
            let mut buffer = gst::Buffer::from_slice(Locked { frame, held: Arc::clone(&self.held) });
            if !packed_is_default {
                let b = buffer.get_mut().ok_or_else(|| PullError::Failed("a new buffer is shared".into()))?;
                gst_video::VideoMeta::add_full(
                    b,
                    gst_video::VideoFrameFlags::empty(),
                    gst_video::VideoFormat::Rgb,
                    w,
                    h,
                    &[0],
                    &[row as i32],
                )
                .map_err(|e| PullError::Failed(format!("video meta: {e}")))?;
            }
            return Ok(Some(Pulled { info, buffer, age: None, sequence, copied: false }));
        }
        let pixels = frame.pixels().map_err(|e| PullError::Failed(e.to_string()))?;
        let buffer =
            copy_rows(&info, pixels, row).map_err(|e| PullError::Failed(format!("copying a {w}x{h} frame: {e}")))?;
        Ok(Some(Pulled { info, buffer, age: None, sequence, copied: true }))
    }
}

/// A buffer in `info`'s default layout holding the one plane `src` whose rows
/// are `src_stride` bytes apart.
fn copy_rows(info: &gst_video::VideoInfo, src: &[u8], src_stride: usize) -> Result<gst::Buffer, gst::glib::BoolError> {
    let buffer = gst::Buffer::with_size(info.size())?;
    let mut frame = gst_video::VideoFrame::from_buffer_writable(buffer, info)
        .map_err(|_| gst::glib::bool_error!("cannot map a new buffer"))?;
    let dst_stride = frame.plane_stride()[0] as usize;
    let row = info.width() as usize * info.format_info().pixel_stride()[0] as usize;
    let dst = frame.plane_data_mut(0)?;
    for (d, s) in dst.chunks_mut(dst_stride).zip(src.chunks(src_stride)).take(info.height() as usize) {
        d[..row].copy_from_slice(&s[..row]);
    }
    Ok(frame.into_buffer())
}
