//! One hub per stream: a single reader thread that runs only while at least
//! one page watches, encodes each frame once, and publishes the newest result
//! on a watch channel that every open page reads (a slow page skips frames
//! instead of queueing them).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use tokio::sync::watch;

use crate::encode::Encoder;
use crate::source::{FrameSource, Picture, SourceError};

/// What pages are told: the newest encoded frame or why there is none.
#[derive(Debug, Clone)]
pub enum Update {
    /// Nothing yet.
    Starting,
    /// A ready WebSocket binary message: header length (u32 LE), JSON
    /// header, JPEG bytes.
    Frame(Bytes),
    /// Why no frames come (e.g. "writer gone"); shown on the page.
    Status(String),
}

/// Settings every hub shares.
#[derive(Debug, Clone)]
pub struct EncodeOptions {
    /// JPEG quality 1..=100.
    pub quality: u8,
    /// Most frames per second to encode; `None` = every frame.
    pub max_fps: Option<f64>,
}

/// Counters for tests and the benchmark.
#[derive(Debug, Default)]
pub struct HubStats {
    /// Times a reader was opened on the stream.
    pub readers_opened: AtomicU64,
    /// Frames encoded.
    pub frames_encoded: AtomicU64,
}

#[derive(Debug)]
struct State {
    watchers: usize,
    reader_running: bool,
}

/// The shared view of one stream.
#[derive(Debug)]
pub struct Hub {
    path: PathBuf,
    options: EncodeOptions,
    tx: watch::Sender<Update>,
    state: Mutex<State>,
    stats: HubStats,
}

/// A page's hold on a hub; the reader stops after the last one drops.
#[derive(Debug)]
pub struct Subscription {
    hub: Arc<Hub>,
    /// The newest update.
    pub rx: watch::Receiver<Update>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.lock().watchers -= 1;
    }
}

/// How long the reader waits for a frame before checking whether anyone
/// still watches.
const SLICE: Duration = Duration::from_millis(100);
/// Pause between attempts to reach a stream that is not there (yet).
const RETRY: Duration = Duration::from_millis(250);

impl Hub {
    /// A hub for the stream at `path`; no reader runs until someone subscribes.
    pub fn new(path: PathBuf, options: EncodeOptions) -> Arc<Hub> {
        let (tx, _) = watch::channel(Update::Starting);
        Arc::new(Hub {
            path,
            options,
            tx,
            state: Mutex::new(State { watchers: 0, reader_running: false }),
            stats: HubStats::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is two plain counters, consistent after any panic.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counters.
    pub fn stats(&self) -> &HubStats {
        &self.stats
    }

    /// Bytes of the newest frame message (header and JPEG), if there is one.
    pub fn latest_frame_len(&self) -> Option<usize> {
        match &*self.tx.borrow() {
            Update::Frame(m) => Some(m.len()),
            _ => None,
        }
    }

    /// Pages watching now.
    pub fn watchers(&self) -> usize {
        self.lock().watchers
    }

    /// Start watching: starts the reader if none runs.
    pub fn subscribe(self: &Arc<Self>) -> Subscription {
        let mut rx = self.tx.subscribe();
        rx.mark_changed();
        let mut s = self.lock();
        s.watchers += 1;
        if !s.reader_running {
            let hub = Arc::clone(self);
            let spawned = std::thread::Builder::new().name("shmimage-web-reader".into()).spawn(move || hub.read());
            match spawned {
                Ok(_) => s.reader_running = true,
                Err(e) => {
                    self.tx.send_replace(Update::Status(format!("cannot start a reader thread: {e}")));
                }
            }
        }
        drop(s);
        Subscription { hub: Arc::clone(self), rx }
    }

    fn publish_status(&self, status: String) {
        self.tx.send_if_modified(|u| match u {
            Update::Status(s) if *s == status => false,
            _ => {
                tracing::info!(path = %self.path.display(), %status, "stream status");
                *u = Update::Status(status);
                true
            }
        });
    }

    /// The reader thread: one reader of the stream while anyone watches.
    fn read(self: Arc<Self>) {
        let mut encoder = match Encoder::new(self.options.quality) {
            Ok(e) => Some(e),
            Err(e) => {
                self.publish_status(e);
                None
            }
        };
        let min_gap = self.options.max_fps.filter(|f| *f > 0.0).map(|f| Duration::from_secs_f64(1.0 / f));
        let mut source: Option<FrameSource> = None;
        let mut last_encode: Option<Instant> = None;
        let mut idle_since = Instant::now();
        loop {
            if self.lock().watchers == 0 {
                // Close the stream before saying the reader has stopped, so a
                // new subscriber never makes a second reader of it.
                drop(source.take());
                let mut s = self.lock();
                if s.watchers == 0 {
                    s.reader_running = false;
                    // The next page starts from a fresh reader, not from
                    // what this one saw last.
                    self.tx.send_replace(Update::Starting);
                    tracing::debug!(path = %self.path.display(), "nobody watches; reader stopped");
                    return;
                }
            }
            if let (Some(gap), Some(t)) = (min_gap, last_encode) {
                let wait = gap.saturating_sub(t.elapsed()).min(SLICE);
                if !wait.is_zero() {
                    std::thread::sleep(wait);
                    continue;
                }
            }
            let Some(src) = source.as_mut() else {
                match FrameSource::open(&self.path) {
                    Ok(s) => {
                        self.stats.readers_opened.fetch_add(1, Ordering::Relaxed);
                        source = Some(s);
                        idle_since = Instant::now();
                    }
                    Err(e) => {
                        self.publish_status(describe(&e));
                        std::thread::sleep(RETRY);
                    }
                }
                continue;
            };
            let Some(enc) = encoder.as_mut() else {
                std::thread::sleep(SLICE);
                continue;
            };
            // The frame stays held in the stream only while it is encoded.
            match src.next(SLICE, |picture| message(enc, picture)) {
                Ok(Some(encoded)) => {
                    idle_since = Instant::now();
                    match encoded {
                        Ok(m) => {
                            last_encode = Some(Instant::now());
                            self.stats.frames_encoded.fetch_add(1, Ordering::Relaxed);
                            self.tx.send_replace(Update::Frame(m));
                        }
                        Err(e) => self.publish_status(e),
                    }
                }
                Ok(None) => {
                    if idle_since.elapsed() > Duration::from_secs(2) {
                        self.publish_status("waiting for frames".into());
                    }
                }
                Err(SourceError::WriterGone) => {
                    // The source stays: it picks up a restarted writer.
                    self.publish_status(describe(&SourceError::WriterGone));
                    std::thread::sleep(RETRY);
                }
                Err(e) => {
                    self.publish_status(describe(&e));
                    source = None;
                    std::thread::sleep(RETRY);
                }
            }
        }
    }
}

fn describe(e: &SourceError) -> String {
    match e {
        SourceError::WriterGone => "writer gone".into(),
        SourceError::Other(e) => format!("cannot read the stream: {e}"),
    }
}

fn unix_ms(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64() * 1e3).unwrap_or(0.0)
}

/// Encode `picture` and frame it for the page.
fn message(encoder: &mut Encoder, picture: &Picture<'_>) -> Result<Bytes, String> {
    let read = SystemTime::now();
    let jpeg = encoder.encode(picture)?;
    let encoded = SystemTime::now();
    let header = serde_json::json!({
        "number": picture.number,
        "width": picture.width,
        "height": picture.height,
        "format": picture.format,
        // Unix milliseconds: the page compares them with its own clock
        // (the same machine's wall clock).
        "captured": picture.captured.map(unix_ms),
        "bottom_up": picture.bottom_up,
        "read": unix_ms(read),
        "encoded": unix_ms(encoded),
    })
    .to_string();
    let mut m = Vec::with_capacity(4 + header.len() + jpeg.len());
    m.extend_from_slice(&(header.len() as u32).to_le_bytes());
    m.extend_from_slice(header.as_bytes());
    m.extend_from_slice(jpeg);
    Ok(Bytes::from(m))
}
