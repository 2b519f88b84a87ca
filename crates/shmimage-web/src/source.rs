//! Where frames come from: the one place that knows the engine's reading API.
//!
//! Everything else in this crate sees a [`FrameSource`] yielding a [`Picture`]
//! (pixels in a layout the JPEG encoder takes, plus what the page shows), so
//! moving to another reader changes this file only.

use std::path::Path;
use std::time::{Duration, SystemTime};

use shmimage::{Client, ClientOptions, Error};

/// How the bytes of a [`Picture`] are laid out (what the encoder is told).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// 3 bytes per pixel, R G B.
    Rgb,
}

/// One frame, borrowed from the reader until the next call.
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
    /// Rows top-down.
    pub pixels: &'a [u8],
}

/// What waiting for a frame gave.
#[derive(Debug)]
pub enum Next<'a> {
    /// A frame newer than the last one.
    Frame(Picture<'a>),
    /// Nothing new within the timeout.
    Idle,
}

/// Why the source cannot go on; the caller drops it and opens again later.
#[derive(Debug)]
pub enum SourceError {
    /// The writer process has exited (or the file was replaced under us).
    WriterGone,
    /// Anything else, as the engine words it.
    Other(Error),
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
    client: Client,
}

impl FrameSource {
    /// Open the stream at `path` as its reader.
    pub fn open(path: &Path) -> Result<FrameSource, SourceError> {
        let client = Client::connect(path, ClientOptions::default()).map_err(classify)?;
        Ok(FrameSource { client })
    }

    /// Wait up to `timeout` for the newest frame.
    pub fn next(&mut self, timeout: Duration) -> Result<Next<'_>, SourceError> {
        // The frame is read into the JPEG encoder straight from shared memory;
        // a protocol 1.0 frame lock is given back at the next call.
        let _ = self.client.unlock();
        let info = match self.client.wait_frame_unguarded(timeout) {
            Ok(info) => info,
            Err(Error::NoFrameAvailable) => return Ok(Next::Idle),
            Err(e) => return Err(classify(e)),
        };
        let pixels = self.client.pixels().unwrap_or(&[]);
        Ok(Next::Frame(Picture {
            number: u64::from(info.number),
            width: info.width,
            height: info.height,
            pitch: info.width as usize * 3,
            layout: Layout::Rgb,
            format: "RGB8",
            // Protocol 1.0 carries no capture time: the time the frame was
            // read stands in for it (the page says so).
            captured: None,
            pixels,
        }))
    }
}

/// True when `path` is a stream file this source can read (used to list a
/// directory's streams).
pub fn is_stream(path: &Path) -> bool {
    shmimage::inspect(path).is_ok()
}

fn classify(e: Error) -> SourceError {
    match e {
        Error::Unconnected { .. } => SourceError::WriterGone,
        e => SourceError::Other(e),
    }
}
