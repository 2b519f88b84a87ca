//! Reading a native stream: each frame's slot becomes the buffer's memory
//! (no copy); the slot goes back to the stream when the last buffer
//! referring to it is dropped downstream.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gst_video::prelude::*;
use shmimage::native::{self, flags, Error, ReadFrame, Reader, ReaderOptions};

use super::input::{PullError, Pulled};
use crate::{caps, metadata};

/// A native stream's reader.
#[derive(Debug)]
pub(crate) struct Native {
    reader: Reader,
    /// Slots held by buffers downstream right now.
    held: Arc<AtomicUsize>,
    max_held: usize,
}

/// A frame's slot as GStreamer memory; dropping it releases the slot.
#[derive(Debug)]
struct Slot {
    frame: ReadFrame,
    held: Arc<AtomicUsize>,
}

impl AsRef<[u8]> for Slot {
    fn as_ref(&self) -> &[u8] {
        self.frame.pixels()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.held.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Native {
    pub(crate) fn open(path: &Path, lossless: bool, max_held: usize) -> Result<Native, String> {
        let options = ReaderOptions { lossless };
        let reader = Reader::open(path, &options).map_err(|e| e.to_string())?;
        Ok(Native { reader, held: Arc::new(AtomicUsize::new(0)), max_held })
    }

    /// Wait up to `wait` for the next frame.
    /// `meta_ok`: downstream reads GstVideoMeta (padded rows are then fine).
    pub(crate) fn pull(&mut self, wait: Duration, meta_ok: bool) -> Result<Option<Pulled>, PullError> {
        let frame = match self.reader.read(Some(wait)) {
            Ok(f) => f,
            Err(Error::NoFrameAvailable) => return Ok(None),
            Err(e @ Error::WriterGone { .. }) => return Err(PullError::WriterGone(e.to_string())),
            Err(e) => return Err(PullError::Failed(e.to_string())),
        };
        let desc = *frame.desc();
        let format = caps::video_format(desc.format()).ok_or_else(|| {
            PullError::Failed(format!("GStreamer has no format for the stream's {}", desc.format().name()))
        })?;
        let fps = metadata::framerate(frame.metadata()).unwrap_or(gst::Fraction::new(0, 1));
        let info = gst_video::VideoInfo::builder(format, desc.width(), desc.height())
            .fps(fps)
            .build()
            .map_err(|e| PullError::Failed(format!("{:?} {}x{}: {e}", format, desc.width(), desc.height())))?;
        let ts = frame.timestamps();
        let age = (ts.capture_mono_ns > 0)
            .then(|| Duration::from_nanos(native::now_mono_ns().saturating_sub(ts.capture_mono_ns)));
        let sequence = frame.sequence();
        let planes = desc.planes();
        let offsets: Vec<usize> = planes.iter().map(|p| p.offset as usize).collect();
        let strides: Vec<i32> = planes.iter().map(|p| p.stride as i32).collect();
        // Without a meta, downstream maps GStreamer's whole frame size; a
        // slot ends with the last row's pixels (no padding after them).
        let default_layout = offsets == info.offset()[..planes.len()]
            && strides == info.stride()[..planes.len()]
            && desc.len() >= info.size() as u64;
        let bottom_up = frame.flags() & flags::BOTTOM_UP != 0;
        let wrap = !bottom_up
            && (default_layout || meta_ok)
            && planes.len() == info.n_planes() as usize
            && self.held.load(Ordering::Acquire) < self.max_held;
        let (buffer, copied) = if wrap {
            self.held.fetch_add(1, Ordering::AcqRel);
            let mut buffer = gst::Buffer::from_slice(Slot { frame, held: Arc::clone(&self.held) });
            if !default_layout {
                let b = buffer.get_mut().ok_or_else(|| PullError::Failed("a new buffer is shared".into()))?;
                gst_video::VideoMeta::add_full(
                    b,
                    gst_video::VideoFrameFlags::empty(),
                    format,
                    desc.width(),
                    desc.height(),
                    &offsets,
                    &strides,
                )
                .map_err(|e| PullError::Failed(format!("video meta: {e}")))?;
            }
            (buffer, false)
        } else {
            (copy(&info, &frame, bottom_up).map_err(|e| PullError::Failed(format!("copying a frame: {e}")))?, true)
        };
        Ok(Some(Pulled { info, buffer, age, sequence, copied }))
    }

    pub(crate) fn stats(&self) -> (u64, usize) {
        (self.reader.missed(), self.held.load(Ordering::Acquire))
    }
}

/// The frame in `info`'s default layout, rows flipped for a bottom-up frame
/// (one copy).
fn copy(info: &gst_video::VideoInfo, frame: &ReadFrame, bottom_up: bool) -> Result<gst::Buffer, gst::glib::BoolError> {
    let buffer = gst::Buffer::with_size(info.size())?;
    let mut out = gst_video::VideoFrame::from_buffer_writable(buffer, info)
        .map_err(|_| gst::glib::bool_error!("cannot map a new buffer"))?;
    for (i, p) in frame.desc().planes().iter().enumerate() {
        let src = frame.plane(i).ok_or_else(|| gst::glib::bool_error!("plane {i} is missing"))?;
        let dst_stride = out.plane_stride()[i] as usize;
        let dst = out.plane_data_mut(i as u32)?;
        let (rows, row, stride) = (p.rows as usize, p.row_bytes as usize, p.stride as usize);
        for r in 0..rows {
            let from = if bottom_up { rows - 1 - r } else { r };
            let s = src.get(from * stride..from * stride + row);
            let d = dst.get_mut(r * dst_stride..r * dst_stride + row);
            if let (Some(s), Some(d)) = (s, d) {
                d.copy_from_slice(s);
            }
        }
    }
    Ok(out.into_buffer())
}
