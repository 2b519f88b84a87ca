//! `shmimage inspect`: decode a stream file's two headers and tell whether a
//! server and a client have it open, once or live (`--watch`).
//!
//! Reads with `pread` through `shmimage::inspect`, never maps or writes, so
//! it is safe on a live stream, on a file nobody has open and on garbage.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{json, Value};
use shmimage::Inspection;

use crate::output::{explain, human_bytes, install_stop_handler, parse_secs, sleep_unless_stopped, stopped, Out};
use crate::output::{OutputArgs, Result};

#[derive(Debug, Args)]
#[command(after_help = "\
Liveness: a server or client of this project holds a lock on the file while it
has it open; \"alive\" means such a lock is held now, \"not running\" that none
is (a peer of another implementation, which takes no lock, may still be there).

Examples:
  shmimage inspect /dev/shm/stream.shm
  shmimage inspect /dev/shm/stream.shm --watch --interval 0.2
  shmimage inspect /dev/shm/stream.shm --json | jq .buffers[0].state")]
pub struct InspectArgs {
    /// The stream file.
    pub file: PathBuf,
    /// Refresh until Ctrl-C (a JSON object per refresh with --json).
    #[arg(long, short)]
    pub watch: bool,
    /// Seconds between refreshes with --watch.
    #[arg(long, default_value = "0.5", value_parser = parse_secs, value_name = "SECS")]
    pub interval: Duration,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// The pace of a watched stream, from the frame numbers seen at each refresh.
#[derive(Debug, Default)]
struct Pace {
    /// (when, newest frame number) over the last couple of seconds.
    samples: std::collections::VecDeque<(Instant, u32)>,
    last_change: Option<Instant>,
    /// Frames that appeared while watched.
    frames: u64,
}

/// The window the live rate is computed over.
const PACE_WINDOW: Duration = Duration::from_secs(2);

impl Pace {
    fn observe(&mut self, newest: Option<u32>) {
        let now = Instant::now();
        let Some(n) = newest else { return };
        if let Some(&(_, prev)) = self.samples.back() {
            let delta = n.wrapping_sub(prev);
            if delta == 0 {
                // The same newest frame: nothing new since the last look.
            } else if shmimage::layout::is_newer(n, prev) {
                self.frames += u64::from(delta);
                self.last_change = Some(now);
            } else {
                // Numbers went back: a new server started over.
                self.samples.clear();
                self.last_change = Some(now);
            }
        }
        self.samples.push_back((now, n));
        while self.samples.len() > 2 && now.duration_since(self.samples[0].0) > PACE_WINDOW {
            self.samples.pop_front();
        }
    }

    /// Frames per second over the window; `None` until two refreshes.
    fn fps(&self) -> Option<f64> {
        let (&(t0, a), &(t1, b)) = (self.samples.front()?, self.samples.back()?);
        let dt = t1.duration_since(t0).as_secs_f64();
        (dt > 0.0).then(|| f64::from(b.wrapping_sub(a)) / dt)
    }

    /// Time since a new frame was last seen; `None` before one was.
    fn since_last(&self) -> Option<Duration> {
        self.last_change.map(|t| t.elapsed())
    }

    fn text(&self) -> [String; 2] {
        let rate = match self.fps() {
            Some(f) => format!("rate      {f:.1} frames/s (last {} s)", PACE_WINDOW.as_secs()),
            None => "rate      (measuring)".to_owned(),
        };
        let last = match self.since_last() {
            Some(d) => format!("last      new frame {:.1} s ago", d.as_secs_f64()),
            None => "last      no new frame since the watch began".to_owned(),
        };
        [rate, last]
    }
}

pub fn run(a: InspectArgs) -> Result<()> {
    let out = Out::new(&a.output);
    // The first look decides the exit code: a wrong path fails at once.
    let first = shmimage::inspect(&a.file).map_err(|e| explain(e, &a.file))?;
    if !a.watch {
        show(&out, &first, None);
        return Ok(());
    }
    install_stop_handler();
    let interval = a.interval.max(Duration::from_millis(10));
    let started = Instant::now();
    let mut pace = Pace::default();
    let mut snap = Ok(first);
    loop {
        if out.live() {
            // Home the cursor and clear, so the table redraws in place.
            print!("\x1b[H\x1b[2J");
        }
        match &snap {
            Ok(s) => {
                pace.observe(crate::list::newest_frame(s));
                show(&out, s, Some(&pace));
            }
            // The file can vanish or shrink while watched; say so and go on.
            Err(e) if out.json() => out.record(&json!({ "path": a.file.display().to_string(), "error": e })),
            Err(e) => out.line(format!("{}: {e}", a.file.display())),
        }
        if !out.live() && out.text() {
            out.line("");
        }
        let _ = std::io::stdout().flush();
        sleep_unless_stopped(interval);
        if stopped() {
            let secs = started.elapsed().as_secs_f64();
            out.done(
                format!("watched {} for {secs:.1} s: {} new frame(s)", a.file.display(), pace.frames),
                json!({"path": a.file.display().to_string(), "frames": pace.frames, "seconds": secs}),
                &Ok(()),
            );
            return Ok(());
        }
        snap = shmimage::inspect(&a.file).map_err(|e| explain(e, &a.file).to_string());
    }
}

fn show(out: &Out, s: &Inspection, pace: Option<&Pace>) {
    if out.json() {
        let mut v = to_json(s);
        if let Some(p) = pace {
            v["fps"] = json!(p.fps());
            v["since_last_frame"] = json!(p.since_last().map(|d| d.as_secs_f64()));
        }
        out.record(&v);
    } else {
        for line in to_text(s) {
            out.line(line);
        }
        if let Some(p) = pace {
            for line in p.text() {
                out.line(line);
            }
        }
    }
}

fn liveness(v: Option<bool>) -> &'static str {
    match v {
        Some(true) => "alive",
        Some(false) => "not running",
        None => "unknown (no OFD locks on this system)",
    }
}

fn to_text(s: &Inspection) -> Vec<String> {
    let len = s.layout.file_len();
    let n = s.layout.capacity();
    let mut lines = vec![
        format!("file      {}", s.path.display()),
        format!(
            "size      {len} bytes ({}); n = {n} bytes per buffer ({} pixels)",
            human_bytes(len),
            s.layout.pixels_per_buffer()
        ),
        format!("server    {}", liveness(s.server_alive)),
        format!("client    {}", liveness(s.client_alive)),
    ];
    for (i, b) in s.buffers.iter().enumerate() {
        lines.push(format!("buffer {i}  @{:<10} {:<13} {}", b.header_offset, b.state_name(), b.describe()));
    }
    lines.push(format!("summary   {}", s.diagnose()));
    lines
}

fn to_json(s: &Inspection) -> Value {
    let buffers: Vec<Value> = s
        .buffers
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let h = b.header;
            json!({
                "index": i,
                "header_offset": b.header_offset,
                "payload_offset": b.header_offset + shmimage::layout::HEADER_SIZE,
                "state": b.state_name(),
                "state_word": b.state_word,
                "state_valid": b.state().is_some(),
                "frame_number": h.frame_number,
                "width": h.width,
                "height": h.height,
                "offset": h.offset,
                "num_scanlines": h.num_scanlines,
                "valid_band": b.band.is_ok(),
                "whole_frame": b.band.is_ok_and(|band| band.is_whole_frame()),
                "problem": b.band.err().map(|c| c.describe()),
            })
        })
        .collect();
    json!({
        "path": s.path.display().to_string(),
        "file_len": s.layout.file_len(),
        "capacity": s.layout.capacity(),
        "server_alive": s.server_alive,
        "client_alive": s.client_alive,
        "blank": s.is_blank(),
        "summary": s.diagnose().to_string(),
        "buffers": buffers,
    })
}
