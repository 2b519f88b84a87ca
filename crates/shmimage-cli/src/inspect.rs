//! `shmimage inspect`: decode a stream file's two headers and tell whether a
//! server and a client have it open, once or live (`--watch`).
//!
//! Reads with `pread` through `shmimage::inspect`, never maps or writes, so
//! it is safe on a live stream, on a file nobody has open and on garbage.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{json, Value};
use shmimage::native;
use shmimage::{Inspection, Protocol};

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
    samples: std::collections::VecDeque<(Instant, u64)>,
    last_change: Option<Instant>,
    /// Frames that appeared while watched.
    frames: u64,
}

/// The window the live rate is computed over.
const PACE_WINDOW: Duration = Duration::from_secs(2);

impl Pace {
    fn observe(&mut self, newest: Option<u64>) {
        let now = Instant::now();
        let Some(n) = newest else { return };
        if let Some(&(_, prev)) = self.samples.back() {
            if n == prev {
                // The same newest frame: nothing new since the last look.
            } else if n > prev {
                self.frames += n - prev;
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
        (dt > 0.0).then(|| b.saturating_sub(a) as f64 / dt)
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

/// A look at a stream file of either format.
#[derive(Debug)]
enum Snapshot {
    Ensight(Inspection),
    Native(PathBuf, native::Inspection),
}

impl Snapshot {
    fn take(path: &Path) -> Result<Snapshot> {
        match crate::endpoints::protocol_of(path) {
            Some(Protocol::Native) => {
                let n = native::inspect(path).map_err(|e| e.to_string())?;
                Ok(Snapshot::Native(path.to_owned(), n))
            }
            _ => Ok(Snapshot::Ensight(shmimage::inspect(path).map_err(|e| explain(e, path))?)),
        }
    }

    /// The newest frame's number (1.0) or sequence (native).
    fn newest(&self) -> Option<u64> {
        match self {
            Snapshot::Ensight(s) => crate::list::newest_frame(s).map(u64::from),
            Snapshot::Native(_, n) => (n.latest > 0).then_some(n.latest),
        }
    }

    fn text(&self) -> Vec<String> {
        match self {
            Snapshot::Ensight(s) => to_text(s),
            Snapshot::Native(p, n) => native_text(p, n),
        }
    }

    fn json(&self) -> Value {
        match self {
            Snapshot::Ensight(s) => to_json(s),
            Snapshot::Native(p, n) => native_json(p, n),
        }
    }
}

pub fn run(a: InspectArgs) -> Result<()> {
    let out = Out::new(&a.output);
    // The first look decides the exit code: a wrong path fails at once.
    let first = Snapshot::take(&a.file)?;
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
                pace.observe(s.newest());
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
        snap = Snapshot::take(&a.file).map_err(|e| e.to_string());
    }
}

fn show(out: &Out, s: &Snapshot, pace: Option<&Pace>) {
    if out.json() {
        let mut v = s.json();
        if let Some(p) = pace {
            v["fps"] = json!(p.fps());
            v["since_last_frame"] = json!(p.since_last().map(|d| d.as_secs_f64()));
        }
        out.record(&v);
    } else {
        for line in s.text() {
            out.line(line);
        }
        if let Some(p) = pace {
            for line in p.text() {
                out.line(line);
            }
        }
    }
}

/// One sentence on a native stream's state.
pub(crate) fn native_summary(n: &native::Inspection) -> String {
    match (n.writer_alive, n.readers.len(), n.latest) {
        (true, 0, _) => "writer running, no reader yet".to_owned(),
        (true, r, _) => format!("streaming: a writer and {r} reader(s)"),
        (false, 0, 0) => "new: no frame written yet, no writer or reader running".to_owned(),
        (false, 0, _) => "idle: the writer and readers are gone".to_owned(),
        (false, r, _) => format!("{r} reader(s) waiting; no writer running (it exited or has not started)"),
    }
}

fn native_text(p: &Path, n: &native::Inspection) -> Vec<String> {
    let writer = if n.writer_alive {
        format!("alive (pid {}), epoch {}", n.writer_pid, n.epoch)
    } else {
        format!("not running (epoch {})", n.epoch)
    };
    let mut lines = vec![
        format!("file      {}", p.display()),
        "protocol  native".to_owned(),
        format!(
            "size      {} bytes ({}); {} slots of {} bytes, {} bytes of metadata each",
            n.file_len,
            human_bytes(n.file_len),
            n.slots,
            n.slot_bytes,
            n.metadata_bytes
        ),
        format!("writer    {writer}"),
        format!("latest    {}", if n.latest == 0 { "no frame yet".to_owned() } else { format!("frame {}", n.latest) }),
    ];
    for (i, sl) in n.slot_info.iter().enumerate() {
        let what = match (sl.writing, sl.sequence) {
            (true, _) => "being written".to_owned(),
            (false, None) => "empty".to_owned(),
            (false, Some(seq)) => format!(
                "frame {seq} {}x{} {}",
                sl.width,
                sl.height,
                sl.format.map_or_else(|| "(unknown format)".to_owned(), |f| f.name().to_owned())
            ),
        };
        lines.push(format!("slot {i:<4} {what}; held by {}, pending for {}", sl.holders, sl.pending));
    }
    if n.readers.is_empty() {
        lines.push("readers   none".to_owned());
    }
    for r in &n.readers {
        lines.push(format!(
            "reader {:<2} pid {}, {}, read {}, missed {}, last frame {}",
            r.index,
            r.pid,
            if r.lossless { "lossless" } else { "newest" },
            r.frames,
            r.missed,
            r.last_seq
        ));
    }
    lines.push(format!("summary   {}", native_summary(n)));
    lines
}

fn native_json(p: &Path, n: &native::Inspection) -> Value {
    json!({
        "path": p.display().to_string(),
        "protocol": "native",
        "file_len": n.file_len,
        "slots": n.slots,
        "slot_bytes": n.slot_bytes,
        "metadata_bytes": n.metadata_bytes,
        "epoch": n.epoch,
        "writer_alive": n.writer_alive,
        "writer_pid": (n.writer_pid != 0).then_some(n.writer_pid),
        "latest": n.latest,
        "summary": native_summary(n),
        "slot_info": n.slot_info.iter().map(|s| json!({
            "sequence": s.sequence,
            "writing": s.writing,
            "holders": s.holders,
            "pending": s.pending,
            "format": s.format.map(|f| f.name()),
            "width": s.width,
            "height": s.height,
        })).collect::<Vec<_>>(),
        "readers": n.readers.iter().map(|r| json!({
            "index": r.index,
            "pid": r.pid,
            "lossless": r.lossless,
            "last_seq": r.last_seq,
            "missed": r.missed,
            "frames": r.frames,
        })).collect::<Vec<_>>(),
    })
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
    // The one client of a 1.0 stream, when alive, as the readers array.
    let readers: Vec<Value> = if s.client_alive == Some(true) {
        vec![json!({"pid": null, "lossless": null, "missed": null})]
    } else {
        vec![]
    };
    json!({
        "path": s.path.display().to_string(),
        "protocol": "ensight-1.0",
        "readers": readers,
        "file_len": s.layout.file_len(),
        "capacity": s.layout.capacity(),
        "server_alive": s.server_alive,
        "client_alive": s.client_alive,
        "blank": s.is_blank(),
        "summary": s.diagnose().to_string(),
        "buffers": buffers,
    })
}
