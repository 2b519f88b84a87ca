//! What the everyday subcommands share: output modes (live status on a
//! terminal, plain lines in a pipe, JSON lines, quiet), argument parsers, a
//! stop flag for Ctrl-C, and error texts that say how to fix the problem.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// `--quiet` and `--json`, flattened into each subcommand that reports.
#[derive(Debug, Clone, Args)]
pub struct OutputArgs {
    /// Print nothing on stdout; errors still go to stderr.
    #[arg(long, short, conflicts_with = "json")]
    pub quiet: bool,
    /// Print JSON on stdout, one object per line, instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Quiet,
    Json,
    /// Text; `live` when the report stream is a terminal (redrawn status, bars).
    Text {
        live: bool,
    },
}

/// Where reports are written: stdout, or stderr when stdout carries data
/// (`record --out -`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sink {
    Stdout,
    Stderr,
}

/// Where a subcommand's reports go. Everything is written to one stream
/// (normally stdout); errors are returned and printed on stderr by `main`.
#[derive(Debug, Clone, Copy)]
pub struct Out {
    mode: Mode,
    sink: Sink,
}

impl Out {
    pub fn new(a: &OutputArgs) -> Out {
        Out::with_sink(a, Sink::Stdout)
    }

    /// Reports on stderr, because stdout carries the frames themselves.
    pub fn on_stderr(a: &OutputArgs) -> Out {
        Out::with_sink(a, Sink::Stderr)
    }

    fn with_sink(a: &OutputArgs, sink: Sink) -> Out {
        let terminal = match sink {
            Sink::Stdout => std::io::stdout().is_terminal(),
            Sink::Stderr => std::io::stderr().is_terminal(),
        };
        let mode = if a.quiet {
            Mode::Quiet
        } else if a.json {
            Mode::Json
        } else {
            Mode::Text { live: terminal }
        };
        Out { mode, sink }
    }

    pub fn json(&self) -> bool {
        self.mode == Mode::Json
    }

    /// True when the report stream is a terminal and text is wanted.
    pub fn live(&self) -> bool {
        self.mode == Mode::Text { live: true }
    }

    pub fn text(&self) -> bool {
        matches!(self.mode, Mode::Text { .. })
    }

    /// A line of text (text modes only).
    pub fn line(&self, s: impl AsRef<str>) {
        if self.text() {
            self.print(s.as_ref());
        }
    }

    /// One JSON object on its own line (JSON mode only).
    pub fn record(&self, v: &serde_json::Value) {
        if self.json() {
            self.print(&v.to_string());
        }
    }

    /// An event: a text line, or a JSON object with `"event": name` and the
    /// fields of `v` (an object).
    pub fn event(&self, name: &str, text: impl AsRef<str>, v: serde_json::Value) {
        self.line(text);
        if self.json() {
            self.print(&with_event(name, v).to_string());
        }
    }

    /// The closing summary every long-running subcommand prints, on one
    /// scheme: a text line, or `{"event": "done", "ok": .., ...}` with the
    /// fields of `v` (and `"error"` when the run failed).
    pub fn done(&self, text: impl AsRef<str>, v: serde_json::Value, outcome: &Result<()>) {
        self.line(text);
        if self.json() {
            let mut v = with_event("done", v);
            v["ok"] = serde_json::json!(outcome.is_ok());
            if let Err(e) = outcome {
                v["error"] = serde_json::json!(e.to_string());
            }
            self.print(&v.to_string());
        }
    }

    fn print(&self, s: &str) {
        match self.sink {
            Sink::Stdout => print_line(s),
            Sink::Stderr => eprintln!("{s}"),
        }
    }

    /// A status display: an indicatif bar (with `total`) or spinner on a
    /// terminal, a plain line at most once a second in a pipe, nothing when
    /// quiet or JSON.
    pub fn status(&self, total: Option<u64>) -> Status {
        let every = Duration::from_secs(1);
        let bar = self.live().then(|| {
            let target = match self.sink {
                Sink::Stdout => ProgressDrawTarget::stdout(),
                Sink::Stderr => ProgressDrawTarget::stderr(),
            };
            let bar = ProgressBar::with_draw_target(total, target);
            let template = if total.is_some() {
                "{spinner} [{elapsed_precise}] {bar:24} {pos}/{len} {msg}"
            } else {
                "{spinner} [{elapsed_precise}] {msg}"
            };
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        // In a pipe the first line comes after `every`: short runs print only
        // their events and summary.
        Status { bar, out: *self, every, last: Instant::now() }
    }
}

fn with_event(name: &str, v: serde_json::Value) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    m.insert("event".into(), serde_json::json!(name));
    if let serde_json::Value::Object(fields) = v {
        m.extend(fields);
    }
    serde_json::Value::Object(m)
}

fn print_line(s: &str) {
    let mut out = std::io::stdout().lock();
    // A closed stdout (e.g. `| head`) must not turn into a panic mid-stream.
    let _ = writeln!(out, "{s}");
    let _ = out.flush();
}

/// Live status of a long-running subcommand.
#[derive(Debug)]
pub struct Status {
    bar: Option<ProgressBar>,
    out: Out,
    every: Duration,
    last: Instant,
}

impl Status {
    fn plain(&self) -> bool {
        self.out.mode == Mode::Text { live: false }
    }

    /// Show the current state: redraw on a terminal; in a pipe print it only
    /// when a second has passed since the last plain line, so logs stay short.
    pub fn update(&mut self, position: u64, msg: impl FnOnce() -> String) {
        if let Some(bar) = &self.bar {
            bar.set_position(position);
            bar.set_message(msg());
        } else if self.plain() && self.last.elapsed() >= self.every {
            self.last = Instant::now();
            self.out.print(&msg());
        }
    }

    /// A line that stays (an event), printed above the bar on a terminal;
    /// with --json the object `{"event": name, ...v}`.
    pub fn event(&self, name: &str, s: impl AsRef<str>, v: serde_json::Value) {
        match &self.bar {
            Some(bar) => bar.println(s.as_ref()),
            None if self.plain() => self.out.print(s.as_ref()),
            None => {}
        }
        if self.out.json() {
            self.out.print(&with_event(name, v).to_string());
        }
    }

    /// A warning on stderr (even with --quiet or --json), kept clear of the bar.
    pub fn warn(&self, s: impl AsRef<str>) {
        match &self.bar {
            Some(bar) => bar.suspend(|| warn(s)),
            None => warn(s),
        }
    }

    /// Remove the live display (the caller prints the summary).
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// A warning on stderr, whatever the output mode.
pub fn warn(s: impl AsRef<str>) {
    eprintln!("shmimage: warning: {}", s.as_ref());
}

/// Frames counted over the time they actually flowed. A pause much longer
/// than the stream's usual spacing (a wait for a peer, a stalled source)
/// counts as idle, so neither a wait before the first frame nor idle minutes
/// in the middle lower the rate.
#[derive(Debug, Default, Clone)]
pub struct Flow {
    frames: u64,
    /// Gaps counted as flowing, and their total time.
    gaps: u64,
    active: Duration,
    last: Option<Instant>,
    /// Recent frames, for the live rate of the last second or so.
    recent: std::collections::VecDeque<Instant>,
}

/// A pause is idle when it is longer than both of these.
const IDLE_MIN: Duration = Duration::from_secs(2);
const IDLE_FACTOR: u32 = 8;

impl Flow {
    pub fn new() -> Flow {
        Flow::default()
    }

    /// One more frame, now.
    pub fn tick(&mut self) {
        self.tick_at(Instant::now());
    }

    pub fn tick_at(&mut self, now: Instant) {
        self.frames += 1;
        if let Some(last) = self.last {
            let gap = now.saturating_duration_since(last);
            let usual = if self.gaps > 0 { self.active / self.gaps as u32 } else { Duration::ZERO };
            if gap <= IDLE_MIN.max(usual * IDLE_FACTOR) {
                self.gaps += 1;
                self.active += gap;
            }
        }
        self.last = Some(now);
        self.recent.push_back(now);
        while self.recent.len() > 2 && now.saturating_duration_since(self.recent[0]) > Duration::from_secs(1) {
            self.recent.pop_front();
        }
    }

    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// The time frames flowed (the first frame starts it).
    pub fn seconds(&self) -> f64 {
        self.active.as_secs_f64()
    }

    /// Frames per second over the flowing time; `None` before two frames.
    pub fn fps(&self) -> Option<f64> {
        (self.gaps > 0 && !self.active.is_zero()).then(|| self.gaps as f64 / self.active.as_secs_f64())
    }

    /// Frames per second over about the last second; 0 when the stream stopped.
    pub fn live_fps(&self) -> f64 {
        let (Some(first), Some(last)) = (self.recent.front(), self.recent.back()) else { return 0.0 };
        if last.elapsed() > Duration::from_secs(2) || self.recent.len() < 2 {
            return 0.0;
        }
        let span = last.saturating_duration_since(*first).as_secs_f64();
        if span > 0.0 {
            (self.recent.len() - 1) as f64 / span
        } else {
            0.0
        }
    }

    /// `12 frame(s) in 0.40 s (30.0 frames/s)`, or without the rate when
    /// fewer than two frames came.
    pub fn describe(&self) -> String {
        match self.fps() {
            Some(f) => format!("{} frame(s) in {:.2} s ({f:.1} frames/s)", self.frames, self.seconds()),
            None => format!("{} frame(s)", self.frames),
        }
    }

    /// `frames`, `seconds` and `fps` (null before two frames) for JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({ "frames": self.frames, "seconds": self.seconds(), "fps": self.fps() })
    }
}

static STOP: AtomicBool = AtomicBool::new(false);
/// Write end of the pipe the signal handler wakes the canceller thread with.
static STOP_PIPE: AtomicI32 = AtomicI32::new(-1);
/// What one Ctrl-C must do to end the engine's waits: cancel (1.0 ends) or
/// close (native ends, which have no separate cancel).
type StopAction = Box<dyn Fn() + Send>;
static CANCELLERS: Mutex<Vec<StopAction>> = Mutex::new(Vec::new());

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
    let fd = STOP_PIPE.load(Ordering::SeqCst);
    if fd >= 0 {
        let byte = 1u8;
        // SAFETY: write(2) is async-signal-safe; one byte from a live local.
        unsafe { libc::write(fd, (&raw const byte).cast(), 1) };
    }
}

/// Make SIGINT and SIGTERM end the run cleanly on the first signal, so a
/// server leaves its file consistent, a client gives its buffers back and the
/// summary prints: the flag ends loops, and a thread woken through a pipe
/// cancels every engine wait in progress (the handler itself may do neither
/// allocation nor locking).
pub fn install_stop_handler() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let mut fds = [0; 2];
        // SAFETY: fds has room for the two descriptors pipe2 writes.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } == 0 {
            STOP_PIPE.store(fds[1], Ordering::SeqCst);
            let read_end = fds[0];
            let spawned = std::thread::Builder::new().name("stop".into()).spawn(move || {
                let mut byte = 0u8;
                loop {
                    // SAFETY: reads one byte into a live local from our own pipe.
                    let n = unsafe { libc::read(read_end, (&raw mut byte).cast(), 1) };
                    if n == 1 || (n < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted) {
                        break;
                    }
                }
                // A wait started after a cancel is not affected by it, so keep
                // cancelling until the run has wound down.
                loop {
                    cancel_all();
                    std::thread::sleep(Duration::from_millis(50));
                }
            });
            if spawned.is_err() {
                warn("cannot start the Ctrl-C thread; Ctrl-C ends loops only between waits");
            }
        }
        for sig in [libc::SIGINT, libc::SIGTERM] {
            // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value;
            // the handler only stores to an atomic and writes to a pipe, both
            // async-signal-safe.
            unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
                libc::sigemptyset(&mut sa.sa_mask);
                libc::sigaction(sig, &sa, std::ptr::null_mut());
            }
        }
    });
}

fn cancel_all() {
    if let Ok(list) = CANCELLERS.lock() {
        for stop in list.iter() {
            stop();
        }
    }
}

/// Have Ctrl-C end the waits of the object `c` cancels (a server or client).
pub fn cancel_on_stop(c: shmimage::Canceller) {
    on_stop(move || c.cancel());
}

/// Have Ctrl-C run `f` (e.g. close a native reader, which ends its waits).
pub fn on_stop(f: impl Fn() + Send + 'static) {
    if let Ok(mut list) = CANCELLERS.lock() {
        list.push(Box::new(f));
    }
    if stopped() {
        cancel_all();
    }
}

pub fn stopped() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// Sleep up to `d`, waking early on Ctrl-C (checked every 50 ms).
pub fn sleep_unless_stopped(d: Duration) {
    let end = Instant::now() + d;
    while !stopped() {
        let now = Instant::now();
        if now >= end {
            return;
        }
        std::thread::sleep((end - now).min(Duration::from_millis(50)));
    }
}

/// `WIDTHxHEIGHT`, both > 0.
pub fn parse_wxh(s: &str) -> std::result::Result<(u32, u32), String> {
    let (w, h) = s.split_once(['x', 'X']).ok_or_else(|| format!("{s:?}: expected WIDTHxHEIGHT, e.g. 1280x720"))?;
    let num = |v: &str, what| v.trim().parse::<u32>().map_err(|_| format!("{s:?}: the {what} is not a whole number"));
    let (w, h) = (num(w, "width")?, num(h, "height")?);
    if w == 0 || h == 0 {
        return Err(format!("{s:?}: width and height must be at least 1"));
    }
    Ok((w, h))
}

/// Seconds as a decimal number, 0 or more.
pub fn parse_secs(s: &str) -> std::result::Result<Duration, String> {
    let v: f64 = s.trim().parse().map_err(|_| format!("{s:?}: expected seconds, e.g. 2.5"))?;
    Duration::try_from_secs_f64(v).map_err(|_| format!("{s:?}: expected a number of seconds, 0 or more"))
}

/// Frames per second, 0 or more (0: as fast as possible).
pub fn parse_fps(s: &str) -> std::result::Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("{s:?}: expected frames per second, 0 or more (0 = as fast as possible)")),
    }
}

/// A byte count with an optional binary suffix: `26214400`, `25M`, `25MiB`,
/// `64K`, `1G` (K, M, G are 1024-based).
pub fn parse_bytes(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, suffix) = t.split_at(digits);
    let n: u64 = num.parse().map_err(|_| format!("{s:?}: expected a byte count, e.g. 26214400 or 25M"))?;
    let unit: u64 = match suffix.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        _ => return Err(format!("{s:?}: unknown unit {suffix:?}; use K, M or G (1024-based)")),
    };
    n.checked_mul(unit).ok_or_else(|| format!("{s:?}: too large"))
}

/// An engine error, with the next step spelled out where the engine's text
/// does not already say it.
pub fn explain(e: shmimage::Error, path: &Path) -> Box<dyn std::error::Error> {
    use shmimage::Error as E;
    let p = path.display();
    let hint = match &e {
        E::BadFileSize { len: Some(_), .. } => {
            format!("; recreate it larger, e.g. `rm {p} && shmimage create {p} --max 1920x1080`")
        }
        // The OS error's kind, not its text, tells a permission problem.
        E::UnableToOpenFile { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied => {
            format!(" (a server or client needs read and write access: check `ls -l {p}`)")
        }
        // The engine's text ends in a generic fix; name the problem once,
        // with the concrete command.
        E::FrameTooLarge { needed, capacity, what } => {
            return format!(
                "frame too large for {p}: {what} needs {needed} bytes and a buffer holds {capacity}; make a \
                 larger file, e.g. `shmimage create NEWFILE --max WxH` (`shmimage inspect {p}` shows this one)"
            )
            .into();
        }
        _ => String::new(),
    };
    format!("{e}{hint}").into()
}

/// `1.5 MiB`-style sizes for people (exact bytes go in the JSON).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_bytes_and_seconds_parse_and_refuse_with_a_reason() {
        assert_eq!(parse_wxh("1280x720"), Ok((1280, 720)));
        assert_eq!(parse_wxh("4X3"), Ok((4, 3)));
        assert!(parse_wxh("0x3").unwrap_err().contains("at least 1"));
        assert!(parse_wxh("12").unwrap_err().contains("WIDTHxHEIGHT"));
        assert_eq!(parse_bytes("25M"), Ok(25 << 20));
        assert_eq!(parse_bytes("25MiB"), Ok(25 << 20));
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert!(parse_bytes("5 parsecs").is_err());
        assert!(parse_bytes("99999999999999G").unwrap_err().contains("too large"));
        assert_eq!(parse_secs("0.5"), Ok(Duration::from_millis(500)));
        assert!(parse_secs("-1").is_err());
        assert!(parse_fps("inf").is_err());
        assert_eq!(human_bytes(26214400), "25.0 MiB");
    }
}
