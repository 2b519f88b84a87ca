//! `shmimage view`, `shmimage capture` and `shmimage x11-info`: thin shells
//! over shmimage-x11 that parse arguments, run the loops and report.

use crate::output::{explain, install_stop_handler, parse_fps, parse_secs, stopped, Flow, Out, OutputArgs, Result};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use serde_json::json;
use shmimage::native::{FrameDesc, PixelFormat};
use shmimage::{Protocol, StreamFile};
use shmimage_x11::viewer::Pixels;

use crate::endpoints::{Ended, InFrame, Input, Output, Put};
use shmimage_x11::capture::{Grabber, GrabberOptions, Target};
use shmimage_x11::info::ShmInfo;
use shmimage_x11::viewer::{Viewer, ViewerEvent, ViewerOptions};
use shmimage_x11::DrawPath;

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
    #[arg(long, value_name = "N")]
    pub frames: Option<u64>,
    /// Exit after this many seconds.
    #[arg(long, value_parser = parse_secs, value_name = "SECS")]
    pub seconds: Option<Duration>,
    /// Do not use MIT-SHM (same as --path core).
    #[arg(long)]
    pub no_shm: bool,
    /// Drawing path (default: the fastest measured, see docs/x11.md); falls
    /// back to what the X server supports.
    #[arg(long, value_enum)]
    pub path: Option<PathArg>,
    /// Exit with an error when no frame arrives for this many seconds.
    #[arg(long, value_parser = parse_secs, value_name = "SECS")]
    pub timeout: Option<Duration>,
    #[command(flatten)]
    pub output: OutputArgs,
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
    #[arg(long, default_value = "30", value_parser = parse_fps)]
    pub fps: f64,
    /// Exit after this many frames were put into the stream.
    #[arg(long, value_name = "N")]
    pub frames: Option<u64>,
    /// Exit after this many seconds.
    #[arg(long, value_parser = parse_secs, value_name = "SECS")]
    pub seconds: Option<Duration>,
    /// Do not use MIT-SHM (core GetImage).
    #[arg(long)]
    pub no_shm: bool,
    /// Exit with an error when no client connects for this many seconds.
    #[arg(long, value_parser = parse_secs, value_name = "SECS")]
    pub timeout: Option<Duration>,
    /// When FILE does not exist: create an EnSight 1.0 stream (RGB) instead
    /// of a native one (which carries the screen's BGRX as it is).
    #[arg(long)]
    pub ensight: bool,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct X11InfoArgs {
    /// X display (default: $DISPLAY).
    #[arg(long)]
    pub display: Option<String>,
    #[command(flatten)]
    pub output: OutputArgs,
}

fn parse_xid(s: &str) -> std::result::Result<u32, String> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => s.parse(),
    };
    r.map_err(|e| format!("not a window id: {e}"))
}

pub fn view(a: ViewArgs) -> Result<()> {
    install_stop_handler();
    let out = Out::new(&a.output);
    let path = if a.no_shm { Some(DrawPath::Core) } else { a.path.map(DrawPath::from) };
    let name = a.file.display().to_string();
    let client = Input::open(&a.file, false)?;
    let options = ViewerOptions { display: a.display.clone(), path, title: format!("shmimage view {name}") };
    let mut viewer = Viewer::open(&options)?;
    let mut status = out.status(a.frames);
    let mut announced = report_path(&status, &viewer, None);
    viewer.set_title(&format!("shmimage view {name} — waiting — {}", viewer.path_description()))?;
    let outcome = view_loop(&a, &name, client, &mut viewer, &mut status, &mut announced);
    status.finish();
    let (flow, dropped, outcome) = outcome;
    let mut v = flow.json();
    v["path"] = json!(name);
    v["dropped"] = json!(dropped);
    v["draw_path"] = json!(viewer.path().to_string());
    let closed = viewer.close();
    let outcome = outcome.and(closed.map_err(Into::into));
    out.done(format!("viewed {}, {dropped} dropped, path {}", flow.describe(), announced), v, &outcome);
    outcome
}

/// The viewer's frame loop: frames shown, frames dropped and how it ended.
fn view_loop(
    a: &ViewArgs,
    name: &str,
    client: Input,
    viewer: &mut Viewer,
    status: &mut crate::output::Status,
    announced: &mut DrawPath,
) -> (Flow, u64, Result<()>) {
    let start = Instant::now();
    let mut last_frame = Instant::now();
    let (mut dropped, mut last_number) = (0u64, None::<u64>);
    let mut scratch = Vec::new();
    let mut flow = Flow::new();
    let mut title_at = Instant::now();
    let mut server_gone_said = false;
    let outcome: Result<()> = loop {
        if stopped() || a.frames.is_some_and(|n| flow.frames() >= n) || a.seconds.is_some_and(|s| start.elapsed() >= s)
        {
            break Ok(());
        }
        if let Some(t) = a.timeout {
            if last_frame.elapsed() > t {
                break Err(format!("no frame on {name} for {:.1} s (--timeout)", t.as_secs_f64()).into());
            }
        }
        let events = or_break!(viewer.pump(if viewer.ready() { Duration::ZERO } else { Duration::from_millis(20) }));
        if events.contains(&ViewerEvent::CloseRequested) {
            break Ok(());
        }
        if !viewer.ready() {
            continue;
        }
        // A short wait: X events (close button, exposures) need this loop too.
        match client.read(&a.file, Some(Duration::from_millis(20))) {
            Ok(frame) => {
                dropped += frame.skipped_since(last_number);
                last_number = Some(frame.number());
                let events = match show_frame(viewer, &frame, &mut scratch) {
                    Ok(ev) => ev,
                    Err(e) => break Err(e),
                };
                drop(frame);
                flow.tick();
                last_frame = Instant::now();
                server_gone_said = false;
                if events.contains(&ViewerEvent::CloseRequested) {
                    break Ok(());
                }
                if viewer.path() != *announced {
                    *announced = report_path(status, viewer, Some(*announced));
                }
            }
            Err(Ended::Timeout) => {}
            Err(Ended::Stopped) => break Ok(()),
            Err(Ended::PeerGone) => {
                if !server_gone_said {
                    status.event(
                        "server_left",
                        format!("no server or writer runs on {name}; waiting for one"),
                        json!({"path": name}),
                    );
                    server_gone_said = true;
                }
                or_break!(viewer.pump(Duration::from_millis(100)));
            }
            Err(Ended::Failed(e)) => break Err(e),
        }
        status.update(flow.frames(), || {
            format!("{} frame(s) shown, {:.1} frames/s, {dropped} dropped", flow.frames(), flow.live_fps())
        });
        if title_at.elapsed() >= Duration::from_secs(1) {
            title_at = Instant::now();
            let (w, h) = viewer.size();
            or_break!(viewer.set_title(&format!(
                "shmimage view {name} — {w}x{h} — {:.1} frames/s, {dropped} dropped — {}",
                flow.live_fps(),
                viewer.path_description()
            )));
        }
    };
    client.close();
    (flow, dropped, outcome)
}

/// Draw one frame: BGRX as it is (MIT-SHM's own layout: copied, not
/// converted, on a BGRX screen), RGB8 as RGB, other formats through RGB.
fn show_frame(viewer: &mut Viewer, frame: &InFrame, scratch: &mut Vec<u8>) -> Result<Vec<ViewerEvent>> {
    let (w, h) = (frame.width(), frame.height());
    let desc = frame.desc()?;
    let pixels = frame.pixels()?;
    let shown = match frame.format() {
        PixelFormat::Bgrx8 => viewer.show_pixels(w, h, Pixels::Bgrx { data: pixels, stride: desc.stride() as usize }),
        PixelFormat::Rgb8 if desc.is_packed() => viewer.show(w, h, pixels),
        format => {
            frame.packed_into(scratch)?;
            let rgb = crate::pixels::to_rgb8(format, scratch)?;
            viewer.show(w, h, &rgb)
        }
    };
    Ok(shown?)
}

/// Say which path draws, and why: an event at the start; a switch (a
/// fallback after a failure) is also a warning on stderr.
fn report_path(status: &crate::output::Status, v: &Viewer, before: Option<DrawPath>) -> DrawPath {
    let what = if before.is_some() { "switched to path" } else { "path" };
    let line = format!(
        "window {:#x}, {what} {}: {} ({}); pixel format {}",
        v.window(),
        v.path(),
        v.path_description(),
        v.path_reason(),
        v.format().describe()
    );
    let fields = json!({
        "window": v.window(),
        "draw_path": v.path().to_string(),
        "reason": v.path_reason(),
        "pixel_format": v.format().describe(),
    });
    if before.is_some() {
        status.warn(&line);
        status.event("path_switched", line, fields);
    } else {
        status.event("path", line, fields);
    }
    v.path()
}

pub fn capture(a: CaptureArgs) -> Result<()> {
    install_stop_handler();
    let out = Out::new(&a.output);
    let period = (a.fps > 0.0).then(|| Duration::from_secs_f64(1.0 / a.fps));
    let target = match a.window {
        Some(w) => Target::Window(w),
        None => Target::Root,
    };
    let name = a.file.display().to_string();
    let mut grabber = Grabber::open(&GrabberOptions { display: a.display.clone(), target, no_shm: a.no_shm })?;
    let mut status = out.status(a.frames);
    status.event(
        "path",
        format!(
            "drawable {:#x}, path {}: {} ({})",
            grabber.drawable(),
            grabber.path(),
            grabber.path_description(),
            grabber.path_reason()
        ),
        json!({"drawable": grabber.drawable(), "draw_path": grabber.path().to_string(), "reason": grabber.path_reason()}),
    );
    // One grab up front sizes a new file; the stream starts with fresh grabs.
    // A native stream takes the screen's BGRX as it is; 1.0 carries RGB.
    let mut rgb = Vec::new();
    let mut announced = grabber.path();
    let native = match crate::endpoints::protocol_of(&a.file) {
        Some(p) => p == Protocol::Native,
        None => !a.ensight,
    };
    let (w, h, raw) = grabber.grab_as(&mut rgb, native)?;
    let format = if raw { PixelFormat::Bgrx8 } else { PixelFormat::Rgb8 };
    let server = if a.file.exists() {
        Output::open(&a.file, false)?
    } else {
        let server = if native {
            let slot = FrameDesc::packed(format, w, h).map_err(|e| e.to_string())?.len();
            Output::create_native(&a.file, 4, slot, false)?
        } else {
            let len = shmimage::layout::file_len_for_frame(w, h).ok_or("window of size 0")?;
            StreamFile::create_at(&a.file, len).map_err(|e| explain(e, &a.file))?;
            Output::open(&a.file, false)?
        };
        let len = std::fs::metadata(&a.file).map_or(0, |m| m.len());
        status.event(
            "created",
            format!("created {name} ({}, {len} bytes) for {w}x{h} {format} frames", server.protocol()),
            json!({"path": name, "file_len": len, "format": format.name()}),
        );
        server
    };
    if let Err(why) = server.check_fits(w, h, format) {
        return Err(format!("{w}x{h} {format} grabs cannot travel through {name}: {why}").into());
    }
    let start = Instant::now();
    let mut waiting_since = Instant::now();
    let mut said_waiting = false;
    let (mut number, mut dropped, mut grabs) = (0u32, 0u64, 0u64);
    let mut flow = Flow::new();
    let mut next_grab = Instant::now();
    let outcome: Result<()> = loop {
        if stopped() || a.frames.is_some_and(|n| flow.frames() >= n) || a.seconds.is_some_and(|s| start.elapsed() >= s)
        {
            break Ok(());
        }
        if !server.has_peer() {
            if !said_waiting {
                status.event("waiting", format!("waiting for a client on {name}"), json!({"path": name}));
                said_waiting = true;
            }
            let left = a.timeout.map(|t| t.saturating_sub(waiting_since.elapsed()));
            match server.wait_for_peer(&a.file, left) {
                Ok(()) => {}
                Err(Ended::Stopped) => break Ok(()),
                Err(Ended::Failed(e)) => break Err(e),
                Err(_) => break Err(format!("no client connected to {name} within --timeout").into()),
            }
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
        let (w, h, raw) = match grabber.grab_as(&mut rgb, native) {
            Ok(s) => s,
            Err(e) => break Err(e.into()),
        };
        let format = if raw { PixelFormat::Bgrx8 } else { PixelFormat::Rgb8 };
        grabs += 1;
        if grabber.path() != announced {
            announced = grabber.path();
            let line = format!("switched to path {}: {}", announced, grabber.path_reason());
            status.warn(&line);
            status.event(
                "path_switched",
                line,
                json!({"draw_path": announced.to_string(), "reason": grabber.path_reason()}),
            );
        }
        number = number.wrapping_add(1);
        let desc = match FrameDesc::packed(format, w, h) {
            Ok(d) => d,
            Err(e) => break Err(e.to_string().into()),
        };
        match server.put(&a.file, number, &desc, &rgb) {
            Ok(Put::Sent(_)) => flow.tick(),
            Ok(Put::Dropped) => dropped += 1,
            Ok(Put::NoPeer) => {}
            // Ctrl-C closes the stream under a put in flight: a stop, not a failure.
            Err(_) if stopped() => break Ok(()),
            Err(e) => break Err(e),
        }
        status.update(flow.frames(), || {
            format!("{} frame(s) sent, {:.1} frames/s, {dropped} dropped", flow.frames(), flow.live_fps())
        });
    };
    status.finish();
    let mut v = flow.json();
    v["path"] = json!(name);
    v["grabs"] = json!(grabs);
    v["dropped"] = json!(dropped);
    v["draw_path"] = json!(grabber.path().to_string());
    out.done(
        format!("captured {}, {grabs} grabs, {dropped} dropped, path {}", flow.describe(), grabber.path()),
        v,
        &outcome,
    );
    grabber.close();
    drop(server);
    outcome
}

pub fn x11_info(a: X11InfoArgs) -> Result<()> {
    let out = Out::new(&a.output);
    let info = ShmInfo::query(a.display.as_deref())?;
    out.line(info.to_string());
    let (screen, width, height, depth, visual) = info.screen;
    out.record(&json!({
        "display": info.display,
        "local": info.local,
        "mit_shm": info.version.map(|(a, b)| format!("{a}.{b}")),
        "shared_pixmaps": info.shared_pixmaps,
        "fd_passing": info.fd_passing(),
        "screen": screen,
        "width": width,
        "height": height,
        "depth": depth,
        "visual": visual,
        "pixel_format": info.format.as_ref().map(|f| f.describe()).ok(),
        "pixel_format_error": info.format.as_ref().err(),
        "max_request_bytes": info.max_request_bytes,
        "viewer_path": if info.version.is_some() && info.local { "MIT-SHM" } else { "core" },
    }));
    Ok(())
}
