//! The stream end of `shmimagesink`: creates or opens the stream and writes
//! video frames into it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use gst_video::prelude::*;
use shmimage::{layout, Error, Protocol, Server, ServerOptions, StreamFile};

use super::native_output::Native;

/// What became of one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Written {
    /// Published, after copying it once into the stream.
    Copied,
    /// Published without a copy (it was drawn into a loaned slot).
    InPlace,
    /// Not published: no reader wanted it (1.0 without a client, or both
    /// buffers held).
    Dropped,
}

/// An open stream being written.
#[derive(Debug)]
pub(crate) enum Output {
    Ensight(Ensight),
    Native(Native),
}

impl Output {
    /// Open (or create, sized for `info`) the stream at `path`.
    /// `ensight`: a 1.0 stream; else a native one with `slots` slots.
    pub(crate) fn open(path: &Path, info: &gst_video::VideoInfo, ensight: bool, slots: u32) -> Result<Output, String> {
        // Never start one protocol's writer over the other's stream: a 1.0
        // server resets the file's first bytes, which would wreck a native one.
        if path.exists() {
            let found = shmimage::detect_protocol(path).map_err(|e| e.to_string())?;
            match (found, ensight) {
                (Protocol::Native, true) => {
                    return Err(format!("{} is a native stream; ensight=true writes 1.0 streams", path.display()))
                }
                (Protocol::Ensight1, false) => {
                    return Err(format!("{} is an EnSight 1.0 stream: set ensight=true to write it", path.display()))
                }
                _ => {}
            }
        }
        if ensight {
            Ensight::open(path, info).map(Output::Ensight)
        } else {
            Native::open(path, info, slots).map(Output::Native)
        }
    }

    /// Whether `info` can be written to this stream without reopening it.
    pub(crate) fn accepts(&self, info: &gst_video::VideoInfo) -> bool {
        match self {
            Output::Ensight(e) => e.accepts(info),
            Output::Native(n) => n.accepts(info),
        }
    }

    /// The native stream, for lending its slots.
    pub(crate) fn native(&self) -> Option<&Native> {
        match self {
            Output::Native(n) => Some(n),
            Output::Ensight(_) => None,
        }
    }

    /// Write one frame captured `age` ago.
    pub(crate) fn write(
        &mut self,
        frame: &gst_video::VideoFrameRef<&gst::BufferRef>,
        age: Option<Duration>,
        fps: gst::Fraction,
    ) -> Result<Written, String> {
        match self {
            Output::Ensight(e) => e.write(frame),
            Output::Native(n) => n.write(frame, age, fps),
        }
    }

    /// The stream file's path, if this element created it (to remove it).
    pub(crate) fn created(&self) -> Option<&Path> {
        match self {
            Output::Ensight(e) => e.created.as_deref(),
            Output::Native(n) => n.created(),
        }
    }
}

/// A 1.0 stream: RGB rows top-down, frame numbers, nothing else.
#[derive(Debug)]
pub(crate) struct Ensight {
    server: Server,
    created: Option<PathBuf>,
    number: u32,
}

impl Ensight {
    fn open(path: &Path, info: &gst_video::VideoInfo) -> Result<Ensight, String> {
        let mut created = None;
        if !path.exists() {
            let len = layout::file_len_for_frame(info.width(), info.height())
                .ok_or_else(|| format!("frame size {}x{} is too large", info.width(), info.height()))?;
            StreamFile::create_at(path, len).map_err(|e| e.to_string())?;
            created = Some(path.to_owned());
        }
        match Server::create(path, ServerOptions::default()) {
            Ok(server) => Ok(Ensight { server, created, number: 0 }),
            Err(e) => {
                if let Some(p) = created {
                    let _ = std::fs::remove_file(p);
                }
                Err(e.to_string())
            }
        }
    }

    fn accepts(&self, info: &gst_video::VideoInfo) -> bool {
        info.format() == gst_video::VideoFormat::Rgb
    }

    fn write(&mut self, frame: &gst_video::VideoFrameRef<&gst::BufferRef>) -> Result<Written, String> {
        let (w, h) = (frame.width(), frame.height());
        let row = w as usize * 3;
        let stride = usize::try_from(frame.plane_stride()[0]).map_err(|_| "negative stride".to_string())?;
        let src = frame.plane_data(0).map_err(|e| e.to_string())?;
        self.number = self.number.wrapping_add(1);
        let loaned = match self.server.loan(w, h) {
            Ok(mut loan) => {
                let dst = match loan.pixels_mut() {
                    Ok(d) => d,
                    Err(e) => return Err(e.to_string()),
                };
                for (d, s) in dst.chunks_mut(row).zip(src.chunks(stride)) {
                    let Some(s) = s.get(..row) else { return Err("short plane".into()) };
                    d.copy_from_slice(s);
                }
                Some(loan.commit(self.number))
            }
            // Larger than one buffer: the engine sends it in bands (below).
            Err(Error::FrameTooLarge { .. }) => None,
            Err(e) => Some(Err(e)),
        };
        let result = match loaned {
            Some(r) => r,
            None => {
                let mut packed = Vec::with_capacity(row * h as usize);
                for s in src.chunks(stride).take(h as usize) {
                    packed.extend_from_slice(s.get(..row).ok_or("short plane")?);
                }
                self.server.put_frame(self.number, w, h, &packed)
            }
        };
        match result {
            Ok(()) => Ok(Written::Copied),
            Err(Error::Unconnected | Error::NoBufferAvailable) => Ok(Written::Dropped),
            Err(e) => Err(e.to_string()),
        }
    }
}
