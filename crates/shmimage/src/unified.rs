//! One API over both formats: opening a file detects whether it is an EnSight
//! 1.0 stream or a native one.

use std::io::Read;
use std::path::Path;

use crate::native::{layout, Error, Result};

/// The wire format of a stream file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// EnSight's protocol 1.0: one client, RGB8, two buffers.
    Ensight1,
    /// This project's native format (shmimage/2).
    Native,
}

impl Protocol {
    /// A short name: `ensight-1.0` or `native`.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Ensight1 => "ensight-1.0",
            Protocol::Native => "native",
        }
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Which format the stream file at `path` carries: the native magic at
/// offset 0 means native (whatever its version; opening a newer one reports
/// it); any other file of at least 64 bytes is a 1.0 stream (1.0 has no magic).
pub fn detect_protocol(path: impl AsRef<Path>) -> Result<Protocol> {
    let path = path.as_ref();
    let (mut file, meta) = crate::mapping::open_stream_file(path, false).map_err(|e| match e {
        crate::Error::BadFileSize { .. } => Error::NotFound { path: path.to_owned() },
        crate::Error::UnableToOpenFile { source, .. } => Error::UnableToOpen { path: path.to_owned(), source },
        other => Error::Ensight(other),
    })?;
    let mut head = [0u8; 8];
    let n = file.read(&mut head).map_err(|source| Error::UnableToOpen { path: path.to_owned(), source })?;
    if n == 8 && head == layout::MAGIC {
        return Ok(Protocol::Native);
    }
    if meta.len() >= crate::layout::MIN_FILE_SIZE {
        return Ok(Protocol::Ensight1);
    }
    Err(Error::NotAStream {
        path: path.to_owned(),
        why: format!(
            "{} bytes, no native magic, and shorter than a 1.0 stream's {} bytes",
            meta.len(),
            crate::layout::MIN_FILE_SIZE
        ),
    })
}

use std::time::Duration;

use crate::native::{self, FrameDesc, FrameInfo, PixelFormat, Plane, ReaderOptions, Timestamps, WriterOptions};
use crate::{Client, ClientOptions, Server, ServerOptions};

/// A reader of either format: the format is detected from the file. A 1.0
/// stream is read as its one client; its frames are RGB8, packed, with no
/// metadata (the lossless option has no meaning there: 1.0 has one client).
#[derive(Debug)]
pub struct Reader {
    kind: ReaderKind,
}

#[derive(Debug)]
enum ReaderKind {
    Native(native::Reader),
    Ensight(Box<Client>),
}

impl Reader {
    /// Open the stream at `path`, whichever format it carries.
    pub fn open(path: impl AsRef<Path>, options: &ReaderOptions) -> Result<Reader> {
        let path = path.as_ref();
        let kind = match detect_protocol(path)? {
            Protocol::Native => ReaderKind::Native(native::Reader::open(path, options)?),
            Protocol::Ensight1 => ReaderKind::Ensight(Box::new(Client::connect(path, ClientOptions::default())?)),
        };
        Ok(Reader { kind })
    }

    /// The format of the stream.
    pub fn protocol(&self) -> Protocol {
        match self.kind {
            ReaderKind::Native(_) => Protocol::Native,
            ReaderKind::Ensight(_) => Protocol::Ensight1,
        }
    }

    /// The native reader, for what only the native format has.
    pub fn as_native(&self) -> Option<&native::Reader> {
        match &self.kind {
            ReaderKind::Native(r) => Some(r),
            ReaderKind::Ensight(_) => None,
        }
    }

    /// The next frame (see [`native::Reader::read`]); waits up to `timeout`
    /// (None = forever), then `NoFrameAvailable`.
    pub fn read(&self, timeout: Option<Duration>) -> Result<ImageFrame> {
        match &self.kind {
            ReaderKind::Native(r) => Ok(ImageFrame { kind: FrameKind::Native(r.read(timeout)?) }),
            ReaderKind::Ensight(c) => {
                let frame = c.wait_frame(timeout).map_err(|e| match e {
                    crate::Error::NoFrameAvailable => Error::NoFrameAvailable,
                    other => Error::Ensight(other),
                })?;
                let desc = FrameDesc::packed(PixelFormat::Rgb8, frame.width(), frame.height())?;
                let now = (native::now_mono_ns(), native::now_real_ns());
                let timestamps = Timestamps {
                    capture_mono_ns: now.0,
                    capture_real_ns: now.1,
                    publish_mono_ns: now.0,
                    publish_real_ns: now.1,
                };
                Ok(ImageFrame { kind: FrameKind::Ensight { frame, desc, timestamps } })
            }
        }
    }
}

/// A frame of either format, held in place until dropped.
#[derive(Debug)]
pub struct ImageFrame {
    kind: FrameKind,
}

#[derive(Debug)]
enum FrameKind {
    Native(native::ReadFrame),
    Ensight { frame: crate::Frame, desc: FrameDesc, timestamps: Timestamps },
}

impl ImageFrame {
    /// The descriptor (for a 1.0 frame: RGB8, packed).
    pub fn desc(&self) -> &FrameDesc {
        match &self.kind {
            FrameKind::Native(f) => f.desc(),
            FrameKind::Ensight { desc, .. } => desc,
        }
    }

    /// Pixel format.
    pub fn format(&self) -> PixelFormat {
        self.desc().format()
    }

    /// Pixels per row.
    pub fn width(&self) -> u32 {
        self.desc().width()
    }

    /// Rows.
    pub fn height(&self) -> u32 {
        self.desc().height()
    }

    /// Bytes per row of plane 0.
    pub fn stride(&self) -> u32 {
        self.desc().stride()
    }

    /// The planes.
    pub fn planes(&self) -> &[Plane] {
        self.desc().planes()
    }

    /// Sequence number (a 1.0 frame: its frame number).
    pub fn sequence(&self) -> u64 {
        match &self.kind {
            FrameKind::Native(f) => f.sequence(),
            FrameKind::Ensight { frame, .. } => u64::from(frame.number()),
        }
    }

    /// Capture and publish times (a 1.0 frame carries none: the time it was read).
    pub fn timestamps(&self) -> Timestamps {
        match &self.kind {
            FrameKind::Native(f) => f.timestamps(),
            FrameKind::Ensight { timestamps, .. } => *timestamps,
        }
    }

    /// Frames skipped between the previous read and this one (1.0: always 0).
    pub fn missed_before(&self) -> u64 {
        match &self.kind {
            FrameKind::Native(f) => f.missed_before(),
            FrameKind::Ensight { .. } => 0,
        }
    }

    /// Frame flags (0 for a 1.0 frame).
    pub fn flags(&self) -> u32 {
        match &self.kind {
            FrameKind::Native(f) => f.flags(),
            FrameKind::Ensight { .. } => 0,
        }
    }

    /// User metadata (empty for a 1.0 frame).
    pub fn metadata(&self) -> &[u8] {
        match &self.kind {
            FrameKind::Native(f) => f.metadata(),
            FrameKind::Ensight { .. } => &[],
        }
    }

    /// The frame's bytes in place. A 1.0 frame whose stream was closed
    /// answers `Closed` (its mapping was detached).
    pub fn pixels(&self) -> Result<&[u8]> {
        match &self.kind {
            FrameKind::Native(f) => Ok(f.pixels()),
            FrameKind::Ensight { frame, .. } => frame.pixels().map_err(Error::Ensight),
        }
    }

    /// Plane `i`'s bytes (`None` when the format has no plane `i`).
    pub fn plane(&self, i: usize) -> Result<Option<&[u8]>> {
        let Some(p) = self.desc().plane(i).copied() else { return Ok(None) };
        Ok(self.pixels()?.get(p.offset as usize..p.end() as usize))
    }

    /// The native frame, for what only the native format has.
    pub fn as_native(&self) -> Option<&native::ReadFrame> {
        match &self.kind {
            FrameKind::Native(f) => Some(f),
            FrameKind::Ensight { .. } => None,
        }
    }
}

/// A writer of either format.
#[derive(Debug)]
pub struct Writer {
    kind: WriterKind,
    next_number: std::sync::atomic::AtomicU32,
}

#[derive(Debug)]
enum WriterKind {
    Native(native::Writer),
    Ensight(Box<Server>),
}

impl Writer {
    /// Create a new native stream file at `path` and write it.
    pub fn create_native(path: impl AsRef<Path>, options: &WriterOptions) -> Result<Writer> {
        Ok(Writer { kind: WriterKind::Native(native::Writer::create(path, options)?), next_number: 1.into() })
    }

    /// Serve an existing stream file, whichever format it carries: a native
    /// one as its writer (taking over a dead writer), a 1.0 one as its server.
    pub fn open(path: impl AsRef<Path>, options: &WriterOptions) -> Result<Writer> {
        let path = path.as_ref();
        let kind = match detect_protocol(path)? {
            Protocol::Native => WriterKind::Native(native::Writer::open(path, options)?),
            Protocol::Ensight1 => WriterKind::Ensight(Box::new(Server::create(path, ServerOptions::default())?)),
        };
        Ok(Writer { kind, next_number: 1.into() })
    }

    /// The format of the stream.
    pub fn protocol(&self) -> Protocol {
        match self.kind {
            WriterKind::Native(_) => Protocol::Native,
            WriterKind::Ensight(_) => Protocol::Ensight1,
        }
    }

    /// The native writer, for loans and what only the native format has.
    pub fn as_native(&self) -> Option<&native::Writer> {
        match &self.kind {
            WriterKind::Native(w) => Some(w),
            WriterKind::Ensight(_) => None,
        }
    }

    /// Publish one frame (one copy). A 1.0 stream takes packed RGB8 only and
    /// no metadata or flags; its answers (e.g. UNCONNECTED) come as
    /// [`Error::Ensight`]. Returns the frame's sequence number.
    pub fn put(&self, desc: &FrameDesc, pixels: &[u8], info: &FrameInfo) -> Result<u64> {
        match &self.kind {
            WriterKind::Native(w) => w.put(desc, pixels, info),
            WriterKind::Ensight(s) => {
                if desc.format() != PixelFormat::Rgb8 || !desc.is_packed() {
                    return Err(Error::BadArgs(format!(
                        "a 1.0 stream carries packed RGB8 frames only, not {}{}",
                        desc.format(),
                        if desc.is_packed() { "" } else { " with padded rows" }
                    )));
                }
                if !info.metadata.is_empty() || info.flags != 0 {
                    return Err(Error::BadArgs("a 1.0 stream carries no metadata or flags".into()));
                }
                let n = self.next_number.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                s.put_frame(n, desc.width(), desc.height(), pixels)?;
                Ok(u64::from(n))
            }
        }
    }
}
