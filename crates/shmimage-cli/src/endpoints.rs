//! Both stream formats behind the one face the subcommands need: a reading
//! end (`record`, `view`) and a writing end (`serve`, `capture`, `bridge`),
//! each opened on whatever format the file carries (the engine detects it).
//! The format rules themselves stay in the engine; this only picks the
//! engine object and maps its answers to what a command loop acts on.

use std::path::Path;
use std::time::{Duration, Instant};

use shmimage::native::{self, FrameDesc, PixelFormat, ReaderOptions};
use shmimage::{Client, ClientOptions, Protocol, Server, ServerOptions};

use crate::output::{cancel_on_stop, explain, on_stop, stopped, Result};

/// How a read or wait ended, when it did not give a frame.
#[derive(Debug)]
pub enum Ended {
    /// The timeout passed.
    Timeout,
    /// The peer (server, writer) is gone.
    PeerGone,
    /// Ctrl-C.
    Stopped,
    /// Anything else: the message for the user.
    Failed(Box<dyn std::error::Error>),
}

fn native_err(e: native::Error, path: &Path) -> Ended {
    match e {
        _ if stopped() => Ended::Stopped,
        native::Error::NoFrameAvailable => Ended::Timeout,
        native::Error::WriterGone { .. } => Ended::PeerGone,
        native::Error::Ensight(e) => ensight_err(e, path),
        e => Ended::Failed(e.to_string().into()),
    }
}

fn ensight_err(e: shmimage::Error, path: &Path) -> Ended {
    match e {
        _ if stopped() => Ended::Stopped,
        shmimage::Error::NoFrameAvailable => Ended::Timeout,
        shmimage::Error::ServerGone { .. } => Ended::PeerGone,
        e => Ended::Failed(explain(e, path)),
    }
}

/// The protocol of an existing stream file; `None` when it is missing (or
/// not a stream: the opener then says why in its own words).
pub fn protocol_of(path: &Path) -> Option<Protocol> {
    shmimage::detect_protocol(path).ok()
}

/// The reading end of a stream of either format.
#[derive(Debug)]
pub enum Input {
    Ensight(Client),
    Native(native::Reader),
}

impl Input {
    /// Join the stream at `path`: as its one client (1.0) or as one more
    /// reader (native; `lossless` asks for every frame). Ctrl-C ends its waits.
    pub fn open(path: &Path, lossless: bool) -> Result<Input> {
        match protocol_of(path) {
            Some(Protocol::Native) => {
                let r = native::Reader::open(path, &ReaderOptions { lossless }).map_err(|e| e.to_string())?;
                let stop = r.clone();
                on_stop(move || stop.close());
                Ok(Input::Native(r))
            }
            // A 1.0 file, or none: the client's own errors name the problem.
            _ => {
                let c = Client::connect(path, ClientOptions::default()).map_err(|e| explain(e, path))?;
                cancel_on_stop(c.canceller());
                Ok(Input::Ensight(c))
            }
        }
    }

    pub fn protocol(&self) -> Protocol {
        match self {
            Input::Ensight(_) => Protocol::Ensight1,
            Input::Native(_) => Protocol::Native,
        }
    }

    /// The next frame, waiting up to `timeout` (None: until one comes, the
    /// peer goes or Ctrl-C).
    pub fn read(&self, path: &Path, timeout: Option<Duration>) -> std::result::Result<InFrame, Ended> {
        match self {
            Input::Ensight(c) => c.wait_frame(timeout).map(InFrame::Ensight).map_err(|e| ensight_err(e, path)),
            Input::Native(r) => r.read(timeout).map(InFrame::Native).map_err(|e| native_err(e, path)),
        }
    }

    pub fn close(&self) {
        match self {
            Input::Ensight(c) => c.close(),
            Input::Native(r) => r.close(),
        }
    }
}

/// A frame held in place until dropped.
#[derive(Debug)]
pub enum InFrame {
    Ensight(shmimage::Frame),
    Native(native::ReadFrame),
}

impl InFrame {
    /// The frame number (1.0) or sequence (native).
    pub fn number(&self) -> u64 {
        match self {
            InFrame::Ensight(f) => u64::from(f.number()),
            InFrame::Native(f) => f.sequence(),
        }
    }

    pub fn format(&self) -> PixelFormat {
        match self {
            InFrame::Ensight(_) => PixelFormat::Rgb8,
            InFrame::Native(f) => f.format(),
        }
    }

    pub fn width(&self) -> u32 {
        match self {
            InFrame::Ensight(f) => f.width(),
            InFrame::Native(f) => f.width(),
        }
    }

    pub fn height(&self) -> u32 {
        match self {
            InFrame::Ensight(f) => f.height(),
            InFrame::Native(f) => f.height(),
        }
    }

    /// Frames the peer published that this reader never saw, since `prev`
    /// (the number of the frame read before).
    pub fn skipped_since(&self, prev: Option<u64>) -> u64 {
        match self {
            InFrame::Native(f) => f.missed_before(),
            InFrame::Ensight(f) => prev.map_or(0, |p| {
                // 1.0 numbers are u32 and wrap.
                u64::from(f.number().wrapping_sub(p as u32).wrapping_sub(1).min(1 << 20))
            }),
        }
    }

    /// The descriptor: where each plane's rows lie in [`InFrame::pixels`].
    pub fn desc(&self) -> std::result::Result<FrameDesc, String> {
        match self {
            InFrame::Ensight(f) => {
                FrameDesc::packed(PixelFormat::Rgb8, f.width(), f.height()).map_err(|e| e.to_string())
            }
            InFrame::Native(f) => Ok(*f.desc()),
        }
    }

    pub fn pixels(&self) -> std::result::Result<&[u8], String> {
        match self {
            InFrame::Ensight(f) => f.pixels().map_err(|e| e.to_string()),
            InFrame::Native(f) => Ok(f.pixels()),
        }
    }

    /// The frame's rows without padding, plane after plane, into `out`.
    pub fn packed_into(&self, out: &mut Vec<u8>) -> std::result::Result<(), String> {
        let desc = self.desc()?;
        let px = self.pixels()?;
        out.clear();
        for p in desc.planes() {
            for r in 0..p.rows as usize {
                let start = p.offset as usize + r * p.stride as usize;
                let row = px.get(start..start + p.row_bytes as usize).ok_or("a row lies outside the frame")?;
                out.extend_from_slice(row);
            }
        }
        Ok(())
    }
}

/// What became of a frame handed to [`Output::put`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    /// Published, with its number or sequence.
    Sent(u64),
    /// No free buffer or slot: dropped.
    Dropped,
    /// No client or reader to take it (1.0 only).
    NoPeer,
}

/// The writing end of a stream of either format.
#[derive(Debug)]
pub enum Output {
    Ensight(Server),
    /// The writer, and whether rows are stored bottom-up (flag BOTTOM_UP).
    Native(native::Writer, bool),
}

impl Output {
    /// Serve the existing stream file at `path` in its format.
    pub fn open(path: &Path, flip: bool) -> Result<Output> {
        match protocol_of(path) {
            Some(Protocol::Native) => {
                // The file's own layout is used; options only size new files.
                let w = native::Writer::open(path, &native::WriterOptions::default()).map_err(|e| e.to_string())?;
                Ok(Output::native(w, flip))
            }
            _ => {
                let options = ServerOptions { flip_vertical: flip, ..ServerOptions::default() };
                let s = Server::create(path, options).map_err(|e| explain(e, path))?;
                cancel_on_stop(s.canceller());
                Ok(Output::Ensight(s))
            }
        }
    }

    /// A new native stream file at `path` with slots for `slot_bytes`.
    pub fn create_native(path: &Path, slots: u32, slot_bytes: u64, flip: bool) -> Result<Output> {
        let options = native::WriterOptions { slots, slot_bytes, ..native::WriterOptions::default() };
        let layout =
            native::layout::Layout::new(options.slots, options.slot_bytes, options.metadata_bytes).map_err(|e| e.0)?;
        check_space(path, layout.file_len())?;
        let w = native::Writer::create(path, &options).map_err(|e| e.to_string())?;
        Ok(Output::native(w, flip))
    }

    fn native(w: native::Writer, flip: bool) -> Output {
        let stop = w.clone();
        on_stop(move || stop.close());
        Output::Native(w, flip)
    }

    pub fn protocol(&self) -> Protocol {
        match self {
            Output::Ensight(_) => Protocol::Ensight1,
            Output::Native(..) => Protocol::Native,
        }
    }

    /// Bytes one buffer (1.0) or slot (native) holds.
    pub fn capacity(&self) -> u64 {
        match self {
            Output::Ensight(s) => s.capacity(),
            Output::Native(w, _) => w.slot_capacity(),
        }
    }

    /// Frames that cannot travel at all: a 1.0 row larger than a buffer, a
    /// native frame larger than a slot.
    pub fn check_fits(&self, w: u32, h: u32, format: PixelFormat) -> std::result::Result<(), String> {
        let cap = self.capacity();
        let needed = match self {
            Output::Ensight(_) => shmimage::layout::row_bytes(w).unwrap_or(u64::MAX),
            Output::Native(..) => FrameDesc::packed(format, w, h).map_err(|e| e.to_string())?.len(),
        };
        if needed > cap {
            let what = match self {
                Output::Ensight(_) => "one row needs",
                Output::Native(..) => "one frame needs",
            };
            return Err(format!("{what} {needed} bytes and a buffer holds {cap}"));
        }
        Ok(())
    }

    /// A client (1.0) or at least one reader (native) is there.
    pub fn has_peer(&self) -> bool {
        match self {
            Output::Ensight(s) => !s.is_unconnected(),
            Output::Native(w, _) => !w.readers().is_empty(),
        }
    }

    /// Wait for a client or reader, up to `timeout` (None: until one comes
    /// or Ctrl-C).
    pub fn wait_for_peer(&self, path: &Path, timeout: Option<Duration>) -> std::result::Result<(), Ended> {
        match self {
            Output::Ensight(s) => match s.wait_for_client(timeout) {
                Ok(()) => Ok(()),
                Err(_) if stopped() => Err(Ended::Stopped),
                Err(shmimage::Error::Unconnected) => Err(Ended::Timeout),
                Err(e) => Err(Ended::Failed(explain(e, path))),
            },
            Output::Native(w, _) => {
                // Readers announce themselves in the control block, not by a
                // wake-up the writer can sleep on: look every 20 ms.
                let start = Instant::now();
                while w.readers().is_empty() {
                    if stopped() {
                        return Err(Ended::Stopped);
                    }
                    if timeout.is_some_and(|t| start.elapsed() >= t) {
                        return Err(Ended::Timeout);
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                Ok(())
            }
        }
    }

    /// Wait until a frame can be put without dropping it (1.0: a free
    /// buffer; native writers wait inside `put`).
    pub fn wait_ready(&self) {
        if let Output::Ensight(s) = self {
            let _ = s.wait_for_buffer(None);
        }
    }

    /// Publish a frame of `desc` (its planes at their offsets in `pixels`).
    pub fn put(&self, path: &Path, number: u32, desc: &FrameDesc, pixels: &[u8]) -> Result<Put> {
        match self {
            Output::Ensight(s) => {
                if desc.format() != PixelFormat::Rgb8 || !desc.is_packed() {
                    return Err(format!("{} is a 1.0 stream, which carries RGB8 frames only", path.display()).into());
                }
                match s.put_frame(number, desc.width(), desc.height(), pixels) {
                    Ok(()) => Ok(Put::Sent(u64::from(number))),
                    Err(shmimage::Error::NoBufferAvailable) => Ok(Put::Dropped),
                    Err(shmimage::Error::Unconnected) => Ok(Put::NoPeer),
                    Err(e) => Err(explain(e, path)),
                }
            }
            Output::Native(w, flip) => {
                let r = if *flip {
                    // Rows stored bottom-up, and the frame says so.
                    let flipped = flip_rows(desc, pixels)?;
                    let info = native::FrameInfo { flags: native::flags::BOTTOM_UP, ..Default::default() };
                    w.put(desc, &flipped, &info)
                } else {
                    w.put(desc, pixels, &native::FrameInfo::default())
                };
                match r {
                    Ok(seq) => Ok(Put::Sent(seq)),
                    Err(native::Error::NoSlotAvailable) => Ok(Put::Dropped),
                    Err(e) => Err(e.to_string().into()),
                }
            }
        }
    }

    /// Wait until the client (1.0) or every reader (native) has taken the
    /// frame `seq`, the peers leave, `limit` passes or Ctrl-C.
    pub fn wait_taken(&self, seq: u64, limit: Option<Duration>) {
        match self {
            Output::Ensight(s) => {
                let _ = s.wait_until_taken(limit);
            }
            Output::Native(w, _) => {
                let start = Instant::now();
                loop {
                    let readers = w.readers();
                    if readers.is_empty() || readers.iter().all(|r| r.last_seq >= seq) || stopped() {
                        return;
                    }
                    if limit.is_some_and(|l| start.elapsed() >= l) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }
}

/// A copy of a frame with each plane's rows in reverse order.
fn flip_rows(desc: &FrameDesc, pixels: &[u8]) -> Result<Vec<u8>> {
    let mut out = pixels.to_vec();
    for p in desc.planes() {
        let (off, stride, rows) = (p.offset as usize, p.stride as usize, p.rows as usize);
        for r in 0..rows {
            let (src, dst) = (off + r * stride, off + (rows - 1 - r) * stride);
            let row = pixels.get(src..src + p.row_bytes as usize).ok_or("a row lies outside the frame")?;
            out[dst..dst + row.len()].copy_from_slice(row);
        }
    }
    Ok(out)
}

/// Refuse a new file its file system cannot hold, before it exists: a native
/// file is made sparse, and a full tmpfs would only show later, as a crash.
pub fn check_space(path: &Path, len: u64) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let Ok(st) = rustix::fs::statvfs(dir) else { return Ok(()) };
    let free = st.f_bavail.saturating_mul(st.f_frsize);
    if len > free {
        return Err(format!(
            "no space for stream file {}: it needs {len} bytes ({}) but the file system at {} has {free} ({}) free",
            path.display(),
            crate::output::human_bytes(len),
            dir.display(),
            crate::output::human_bytes(free)
        )
        .into());
    }
    Ok(())
}
