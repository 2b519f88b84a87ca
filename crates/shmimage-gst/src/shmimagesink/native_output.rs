//! Writing a native stream: each frame copied once into a loaned slot, with
//! its capture time and the frame rate in the metadata.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use gst_video::prelude::*;
use shmimage::native::{self, Error, FrameDesc, PixelFormat, Writer, WriterOptions};

use super::output::Written;
use super::pool::Loans;
use crate::{caps, metadata};

/// A native stream's writer.
#[derive(Debug)]
pub(crate) struct Native {
    writer: Arc<Writer>,
    /// Slots lent to upstream through the sink's buffer pool.
    loans: Arc<Loans>,
    path: PathBuf,
    created: bool,
}

fn format_of(info: &gst_video::VideoInfo) -> Result<PixelFormat, String> {
    caps::pixel_format(info.format()).ok_or_else(|| format!("a native stream cannot carry {:?}", info.format()))
}

fn desc_of(info: &gst_video::VideoInfo) -> Result<FrameDesc, String> {
    FrameDesc::new(format_of(info)?, info.width(), info.height()).map_err(|e| format!("{e:?}"))
}

impl Native {
    /// Open the stream at `path`, or create it sized for `info` (with
    /// `slots` slots).
    pub(crate) fn open(path: &Path, info: &gst_video::VideoInfo, slots: u32) -> Result<Native, String> {
        let mut options =
            WriterOptions::for_frame(format_of(info)?, info.width(), info.height()).map_err(|e| e.to_string())?;
        options.slots = slots;
        let (writer, created) = if path.exists() {
            (Writer::open(path, &options).map_err(|e| e.to_string())?, false)
        } else {
            (Writer::create(path, &options).map_err(|e| e.to_string())?, true)
        };
        Ok(Native { writer: Arc::new(writer), loans: Arc::default(), path: path.to_owned(), created })
    }

    /// Whether frames of `info` fit this stream's slots.
    pub(crate) fn accepts(&self, info: &gst_video::VideoInfo) -> bool {
        desc_of(info).is_ok_and(|d| d.len() <= self.writer.slot_capacity())
    }

    pub(crate) fn created(&self) -> Option<&Path> {
        self.created.then_some(self.path.as_path())
    }

    /// The writer and the registry a slot pool lends from.
    pub(crate) fn lender(&self) -> (Arc<Writer>, Arc<Loans>) {
        (Arc::clone(&self.writer), Arc::clone(&self.loans))
    }

    /// Publish `buffer` in place if it is a slot this stream lent (no copy).
    pub(crate) fn publish_lent(&self, buffer: &gst::BufferRef, age: Option<Duration>, fps: gst::Fraction) -> bool {
        self.loans.publish(buffer, age.map(capture_of), metadata::for_framerate(fps))
    }

    /// Copy `frame` into a slot and publish it as captured `age` ago.
    pub(crate) fn write(
        &mut self,
        frame: &gst_video::VideoFrameRef<&gst::BufferRef>,
        age: Option<Duration>,
        fps: gst::Fraction,
    ) -> Result<Written, String> {
        let desc = desc_of(frame.info())?;
        // Never wait: a pipeline is not held up by a stream whose every
        // slot is held; the frame is dropped instead.
        let mut loan = match self.writer.loan(&desc, Some(Duration::ZERO)) {
            Ok(l) => l,
            Err(Error::NoSlotAvailable) => return Ok(Written::Dropped),
            Err(e) => return Err(e.to_string()),
        };
        for (i, p) in desc.planes().iter().enumerate() {
            let src = frame.plane_data(i as u32).map_err(|e| e.to_string())?;
            let src_stride = usize::try_from(frame.plane_stride()[i]).map_err(|_| "negative stride".to_string())?;
            let dst = loan.plane_mut(i).ok_or_else(|| format!("the slot has no plane {i}"))?;
            let (row, stride) = (p.row_bytes as usize, p.stride as usize);
            for r in 0..p.rows as usize {
                let s = src.get(r * src_stride..r * src_stride + row).ok_or("a plane shorter than its caps")?;
                let d = dst.get_mut(r * stride..r * stride + row).ok_or("a slot plane shorter than its descriptor")?;
                d.copy_from_slice(s);
            }
        }
        if let Some(age) = age {
            let (mono, real) = capture_of(age);
            loan.set_capture_time(mono, real);
        }
        let meta = metadata::for_framerate(fps);
        if !meta.is_empty() {
            loan.set_metadata(&meta).map_err(|e| e.to_string())?;
        }
        loan.commit().map_err(|e| e.to_string())?;
        Ok(Written::Copied)
    }
}

/// The capture time (CLOCK_MONOTONIC, CLOCK_REALTIME ns) of a frame `age` old.
fn capture_of(age: Duration) -> (u64, u64) {
    let ns = u64::try_from(age.as_nanos()).unwrap_or(u64::MAX);
    (native::now_mono_ns().saturating_sub(ns), native::now_real_ns().saturating_sub(ns))
}
