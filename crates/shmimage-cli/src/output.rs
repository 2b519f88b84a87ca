//! What the everyday subcommands share: output modes (live status on a
//! terminal, plain lines in a pipe, JSON lines, quiet), argument parsers, a
//! stop flag for Ctrl-C, and error texts that say how to fix the problem.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
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
    /// Text; `live` when stdout is a terminal (redrawn status, bars).
    Text {
        live: bool,
    },
}

/// Where a subcommand's reports go. Everything is written to stdout; errors
/// are returned and printed on stderr by `main`.
#[derive(Debug, Clone, Copy)]
pub struct Out {
    mode: Mode,
}

impl Out {
    pub fn new(a: &OutputArgs) -> Out {
        let mode = if a.quiet {
            Mode::Quiet
        } else if a.json {
            Mode::Json
        } else {
            Mode::Text { live: std::io::stdout().is_terminal() }
        };
        Out { mode }
    }

    pub fn json(&self) -> bool {
        self.mode == Mode::Json
    }

    /// True when stdout is a terminal and text is wanted.
    pub fn live(&self) -> bool {
        self.mode == Mode::Text { live: true }
    }

    pub fn text(&self) -> bool {
        matches!(self.mode, Mode::Text { .. })
    }

    /// A line of text (text modes only).
    pub fn line(&self, s: impl AsRef<str>) {
        if self.text() {
            print_line(s.as_ref());
        }
    }

    /// One JSON object on its own line (JSON mode only).
    pub fn record(&self, v: &serde_json::Value) {
        if self.json() {
            print_line(&v.to_string());
        }
    }

    /// A status display: an indicatif bar (with `total`) or spinner on a
    /// terminal, a plain line at most every `every` in a pipe, nothing when
    /// quiet or JSON.
    pub fn status(&self, total: Option<u64>, every: Duration) -> Status {
        let bar = self.live().then(|| {
            let bar = match total {
                Some(n) => ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stdout()),
                None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stdout()),
            };
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
        Status { bar, plain: self.mode == Mode::Text { live: false }, every, last: Instant::now() }
    }
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
    plain: bool,
    every: Duration,
    last: Instant,
}

impl Status {
    /// Show the current state: redraw on a terminal; in a pipe print it only
    /// when `every` has passed since the last plain line, so logs stay short.
    pub fn update(&mut self, position: u64, msg: impl FnOnce() -> String) {
        if let Some(bar) = &self.bar {
            bar.set_position(position);
            bar.set_message(msg());
        } else if self.plain && self.last.elapsed() >= self.every {
            self.last = Instant::now();
            print_line(&msg());
        }
    }

    /// A line that stays (an event), printed above the bar on a terminal.
    pub fn event(&self, s: impl AsRef<str>) {
        match &self.bar {
            Some(bar) => bar.println(s.as_ref()),
            None if self.plain => print_line(s.as_ref()),
            None => {}
        }
    }

    /// A warning on stderr (even with --quiet or --json), kept clear of the bar.
    pub fn warn(&self, s: impl AsRef<str>) {
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln!("shmimage: warning: {}", s.as_ref())),
            None => eprintln!("shmimage: warning: {}", s.as_ref()),
        }
    }

    /// Remove the live display (the caller prints the summary).
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// Make SIGINT and SIGTERM end the loops cleanly, so a server leaves its
/// file consistent, a client gives its buffers back and the summary prints.
pub fn install_stop_handler() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value;
        // the handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

pub fn stopped() -> bool {
    STOP.load(Ordering::Relaxed)
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
        // The engine's text says "read-write", which misleads for inspect's
        // read-only open; say it plainly and hint only at a real cause.
        E::UnableToOpenFile { reason, .. } => {
            let fix = if reason.contains("ermission") {
                format!(" (a server or client needs read and write access: check `ls -l {p}`)")
            } else {
                String::new()
            };
            return format!("cannot open stream file {p}: {reason}{fix}").into();
        }
        E::FrameTooLarge { .. } => {
            format!("; create a larger file, e.g. `shmimage create NEWFILE --max WxH` (see `shmimage inspect {p}`)")
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

/// Frames per second over `frames` frames in `elapsed` (0 when undefined).
pub fn rate(frames: u64, elapsed: Duration) -> f64 {
    let s = elapsed.as_secs_f64();
    if s > 0.0 {
        frames as f64 / s
    } else {
        0.0
    }
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
