//! `shmimage view`, `shmimage capture` and `shmimage x11-info`: thin shells
//! over shmimage-x11 that parse arguments, run the loops and report.

use crate::output::{install_stop_handler, stopped};
use std::error::Error as StdError;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use shmimage::{Client, ClientOptions, Error as StreamError, Server, ServerOptions, StreamFile};
use shmimage_x11::capture::{Grabber, GrabberOptions, Target};
use shmimage_x11::info::ShmInfo;
use shmimage_x11::viewer::{Viewer, ViewerEvent, ViewerOptions};
use shmimage_x11::DrawPath;

type Result<T> = std::result::Result<T, Box<dyn StdError>>;

/// `?` for the main loops: leave the loop with the error, so the cleanup
/// after it (completions awaited, segments detached, stats printed) still runs.
macro_rules! or_break {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => break Err(e.into()),
        }
    };
}

/// How `view` draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PathArg {
    /// MIT-SHM ShmPutImage from a shared segment.
    ShmPut,
    /// A shared-memory pixmap, then CopyArea.
    ShmPixmap,
    /// Core PutImage (no shared memory).
    Core,
}

impl From<PathArg> for DrawPath {
    fn from(p: PathArg) -> DrawPath {
        match p {
            PathArg::ShmPut => DrawPath::ShmPut,
            PathArg::ShmPixmap => DrawPath::ShmPixmap,
            PathArg::Core => DrawPath::Core,
        }
    }
}

#[derive(Debug, Args)]
pub struct ViewArgs {
    /// The stream file (its creator sizes it; see `shmimage capture` or any
    /// server of the protocol).
    pub file: PathBuf,
    /// X display (default: $DISPLAY).
    #[arg(long)]
    pub display: Option<String>,
    /// Exit after showing this many frames.
    #[arg(long)]
    pub frames: Option<u64>,
    /// Exit after this many seconds.
    #[arg(long)]
    pub seconds: Option<f64>,
    /// Do not use MIT-SHM (same as --path core).
    #[arg(long)]
    pub no_shm: bool,
    /// Drawing path (default: the fastest measured, see docs/x11.md); falls
    /// back to what the X server supports.
    #[arg(long, value_enum)]
    pub path: Option<PathArg>,
    /// Exit with an error when no frame arrives for this many seconds.
    #[arg(long)]
    pub timeout: Option<f64>,
}

#[derive(Debug, Args)]
pub struct CaptureArgs {
    /// The stream file: used as it is if it exists, else created (mode 0600)
    /// large enough for one grabbed frame per buffer.
    pub file: PathBuf,
    /// X display (default: $DISPLAY).
    #[arg(long)]
    pub display: Option<String>,
    /// Window id to grab (decimal or 0x hex); it must be mapped and on screen.
    #[arg(long, value_parser = parse_xid, conflicts_with = "root")]
    pub window: Option<u32>,
    /// Grab the whole screen (the default).
    #[arg(long)]
    pub root: bool,
    /// Grabs per second; 0 grabs as fast as possible.
    #[arg(long, default_value_t = 30.0)]
    pub fps: f64,
    /// Exit after this many frames were put into the stream.
    #[arg(long)]
    pub frames: Option<u64>,
    /// Exit after this many seconds.
    #[arg(long)]
    pub seconds: Option<f64>,
    /// Do not use MIT-SHM (core GetImage).
    #[arg(long)]
    pub no_shm: bool,
    /// Exit with an error when no client connects for this many seconds.
    #[arg(long)]
    pub timeout: Option<f64>,
}

#[derive(Debug, Args)]
pub struct X11InfoArgs {
    /// X display (default: $DISPLAY).
    #[arg(long)]
    pub display: Option<String>,
}

fn parse_xid(s: &str) -> std::result::Result<u32, String> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => s.parse(),
    };
    r.map_err(|e| format!("not a window id: {e}"))
}

fn secs(what: &str, s: Option<f64>) -> Result<Option<Duration>> {
    s.map(|v| Duration::try_from_secs_f64(v).map_err(|e| format!("--{what} {v}: {e}").into())).transpose()
}

/// A line for the window title and the final report.
struct Rate {
    since: Instant,
    frames: u64,
}

impl Rate {
    fn new() -> Rate {
        Rate { since: Instant::now(), frames: 0 }
    }

    /// Frames per second over the last interval, once it is `every` long.
    fn tick(&mut self, total: u64, every: Duration) -> Option<f64> {
        let dt = self.since.elapsed();
        if dt < every {
            return None;
        }
        let fps = (total - self.frames) as f64 / dt.as_secs_f64();
        *self = Rate { since: Instant::now(), frames: total };
        Some(fps)
    }
}

pub fn view(a: ViewArgs) -> Result<()> {
    install_stop_handler();
    let seconds = secs("seconds", a.seconds)?;
    let timeout = secs("timeout", a.timeout)?;
    let path = if a.no_shm { Some(DrawPath::Core) } else { a.path.map(DrawPath::from) };
    let name = a.file.display().to_string();
    let mut client = Client::connect(&a.file, ClientOptions::default())
        .map_err(|e| format!("{name}: {e} (create the file first, e.g. with the stream's server)"))?;
    let options = ViewerOptions { display: a.display.clone(), path, title: format!("shmimage view {name}") };
    let mut viewer = Viewer::open(&options)?;
    let mut announced = report_path(&viewer, None);
    viewer.set_title(&format!("shmimage view {name} — waiting — {}", viewer.path_description()))?;

    let start = Instant::now();
    let mut last_frame = Instant::now();
    let (mut shown, mut dropped, mut last_number) = (0u64, 0u64, None::<u32>);
    let mut rate = Rate::new();
    let mut server_gone_said = false;
    let mut first: Option<Instant> = None;
    let outcome: Result<()> = loop {
        if stopped() || a.frames.is_some_and(|n| shown >= n) || seconds.is_some_and(|s| start.elapsed() >= s) {
            break Ok(());
        }
        if let Some(t) = timeout {
            if last_frame.elapsed() > t {
                break Err(format!("no frame for {:.1} s (--timeout)", t.as_secs_f64()).into());
            }
        }
        let events = or_break!(viewer.pump(if viewer.ready() { Duration::ZERO } else { Duration::from_millis(20) }));
        if events.contains(&ViewerEvent::CloseRequested) {
            break Ok(());
        }
        if !viewer.ready() {
            continue;
        }
        match client.wait_frame(Duration::from_millis(20)) {
            Ok(frame) => {
                let n = frame.number();
                if let Some(prev) = last_number {
                    dropped += u64::from(n.wrapping_sub(prev).wrapping_sub(1).min(1 << 20));
                }
                last_number = Some(n);
                let events = or_break!(viewer.show(frame.width(), frame.height(), frame.pixels()));
                drop(frame);
                shown += 1;
                first.get_or_insert_with(Instant::now);
                last_frame = Instant::now();
                server_gone_said = false;
                if events.contains(&ViewerEvent::CloseRequested) {
                    break Ok(());
                }
                if viewer.path() != announced {
                    announced = report_path(&viewer, Some(announced));
                }
            }
            Err(StreamError::NoFrameAvailable) => {}
            Err(e @ StreamError::Unconnected { .. }) => {
                if !server_gone_said {
                    eprintln!("shmimage view: {e}; waiting for a server");
                    server_gone_said = true;
                }
                or_break!(viewer.pump(Duration::from_millis(100)));
            }
            Err(e) => break Err(e.into()),
        }
        if let Some(fps) = rate.tick(shown, Duration::from_secs(1)) {
            let (w, h) = viewer.size();
            or_break!(viewer.set_title(&format!(
                "shmimage view {name} — {w}x{h} — {fps:.1} frames/s, {dropped} dropped — {}",
                viewer.path_description()
            )));
        }
    };
    let elapsed = first.map_or(Duration::ZERO, |t| t.elapsed());
    let fps = if shown > 1 && !elapsed.is_zero() { (shown - 1) as f64 / elapsed.as_secs_f64() } else { 0.0 };
    eprintln!(
        "shmimage view: {shown} frames in {:.2} s = {fps:.1} frames/s, {dropped} dropped, path {}",
        elapsed.as_secs_f64(),
        viewer.path()
    );
    let closed = viewer.close();
    client.close();
    outcome?;
    closed?;
    Ok(())
}

/// Say on stderr (and so in logs and tests) which path draws, and why.
fn report_path(v: &Viewer, before: Option<DrawPath>) -> DrawPath {
    let what = if before.is_some() { "switched to path" } else { "path" };
    eprintln!(
        "shmimage view: window {:#x}, {what} {}: {} ({}); pixel format {}",
        v.window(),
        v.path(),
        v.path_description(),
        v.path_reason(),
        v.format().describe()
    );
    v.path()
}

pub fn capture(a: CaptureArgs) -> Result<()> {
    install_stop_handler();
    let seconds = secs("seconds", a.seconds)?;
    let timeout = secs("timeout", a.timeout)?;
    if !(a.fps >= 0.0 && a.fps.is_finite()) {
        return Err(format!("--fps {}: must be 0 or more", a.fps).into());
    }
    let period = (a.fps > 0.0).then(|| Duration::from_secs_f64(1.0 / a.fps));
    let target = match a.window {
        Some(w) => Target::Window(w),
        None => Target::Root,
    };
    let mut grabber = Grabber::open(&GrabberOptions { display: a.display.clone(), target, no_shm: a.no_shm })?;
    eprintln!(
        "shmimage capture: drawable {:#x}, path {}: {} ({})",
        grabber.drawable(),
        grabber.path(),
        grabber.path_description(),
        grabber.path_reason()
    );
    // One grab up front sizes a new file; the stream starts with fresh grabs.
    let mut rgb = Vec::new();
    let mut announced = grabber.path();
    let (w, h) = grabber.grab(&mut rgb)?;
    if !a.file.exists() {
        let len = shmimage::layout::file_len_for_frame(w, h).ok_or("window of size 0")?;
        StreamFile::create_at(&a.file, len)?;
        eprintln!("shmimage capture: created {} ({len} bytes) for {w}x{h} frames", a.file.display());
    }
    let mut server = Server::create(&a.file, ServerOptions::default())?;
    let start = Instant::now();
    let mut waiting_since = Instant::now();
    let mut said_waiting = false;
    let (mut number, mut sent, mut dropped, mut grabs) = (0u32, 0u64, 0u64, 0u64);
    let mut next_grab = Instant::now();
    let mut first_sent: Option<Instant> = None;
    let outcome: Result<()> = loop {
        if stopped() || a.frames.is_some_and(|n| sent >= n) || seconds.is_some_and(|s| start.elapsed() >= s) {
            break Ok(());
        }
        if server.is_unconnected() {
            if !said_waiting {
                eprintln!("shmimage capture: waiting for a client on {}", a.file.display());
                said_waiting = true;
            }
            if timeout.is_some_and(|t| waiting_since.elapsed() > t) {
                break Err("no client connected before --timeout".into());
            }
            let _ = server.wait_for_client(Duration::from_millis(50));
            continue;
        }
        said_waiting = false;
        waiting_since = Instant::now();
        if let Some(p) = period {
            let now = Instant::now();
            if next_grab > now {
                std::thread::sleep((next_grab - now).min(Duration::from_millis(50)));
                continue;
            }
            // Late grabs do not try to catch up: pace from now.
            next_grab = (next_grab + p).max(now);
        }
        let (w, h) = match grabber.grab(&mut rgb) {
            Ok(s) => s,
            Err(e) => break Err(e.into()),
        };
        grabs += 1;
        if grabber.path() != announced {
            announced = grabber.path();
            eprintln!("shmimage capture: switched to path {}: {}", announced, grabber.path_reason());
        }
        number = number.wrapping_add(1);
        match server.put_frame(number, w, h, &rgb) {
            Ok(()) => {
                sent += 1;
                first_sent.get_or_insert_with(Instant::now);
            }
            Err(StreamError::NoBufferAvailable) => dropped += 1,
            Err(StreamError::Unconnected { .. }) => {}
            Err(e) => break Err(e.into()),
        }
    };
    let elapsed = first_sent.map_or(Duration::ZERO, |t| t.elapsed());
    let fps = if sent > 1 && !elapsed.is_zero() { (sent - 1) as f64 / elapsed.as_secs_f64() } else { 0.0 };
    eprintln!(
        "shmimage capture: {sent} frames in {:.2} s = {fps:.1} frames/s, {grabs} grabs, {dropped} dropped, path {}",
        elapsed.as_secs_f64(),
        grabber.path()
    );
    grabber.close();
    drop(server);
    outcome
}

pub fn x11_info(a: X11InfoArgs) -> Result<()> {
    let info = ShmInfo::query(a.display.as_deref())?;
    println!("{info}");
    Ok(())
}
