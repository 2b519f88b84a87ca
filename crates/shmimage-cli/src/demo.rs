//! `shmimage demo`: a server process renders an animated pattern straight
//! into shared memory (a zero-copy loan, or `put_frame` with `--copy`), a
//! client process verifies every frame it receives, and this process prints
//! their live stats.
//!
//! Each frame's first row is a stamp: magic, frame number, the publish time
//! (CLOCK_MONOTONIC, the same clock in every process) and an xxh3 checksum of
//! the rest of the frame, so the client detects torn or mixed frames and
//! measures wake-up latency.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{json, Value};
use shmimage::{Client, ClientOptions, Code, Server, ServerOptions, StreamFile};

use crate::output::{
    cancel_on_stop, install_stop_handler, parse_fps, parse_secs, parse_wxh, stopped, Out, OutputArgs, Result,
};

pub(crate) const MAGIC: &[u8; 4] = b"SHMI";
/// Bytes of the stamp in row 0: magic, frame number, publish ns, checksum.
pub(crate) const STAMP_LEN: usize = 4 + 4 + 8 + 8;

/// Options of `shmimage demo`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  shmimage demo\n  shmimage demo --size 3840x2160 --seconds 10\n  shmimage demo --fps 60 --copy"
)]
pub struct DemoArgs {
    /// Frame size, WIDTHxHEIGHT.
    #[arg(long, default_value = "1920x1080", value_parser = parse_wxh)]
    size: (u32, u32),
    /// Frames per second to aim for; 0 = as fast as possible.
    #[arg(long, default_value = "0", value_parser = parse_fps)]
    fps: f64,
    /// How long to run, in seconds.
    #[arg(long, default_value = "5", value_parser = parse_secs, value_name = "SECS")]
    seconds: Duration,
    /// Copy each frame in with put_frame instead of rendering into a loan.
    #[arg(long)]
    copy: bool,
    /// Stream file length in bytes (default: one frame per buffer). A smaller
    /// file makes large frames travel in bands, e.g. 26214400 (EnSight's 25 MiB).
    #[arg(long)]
    file_len: Option<u64>,
    /// Verifying reader processes of the native stream.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=16))]
    readers: u32,
    /// Use an EnSight 1.0 stream (one server, one client) instead of a
    /// native one (implied by --file-len).
    #[arg(long)]
    ensight: bool,
    /// Also show the stream in an X11 window (`shmimage view`); needs $DISPLAY.
    /// The viewer reads a second stream the server feeds as well, because a
    /// stream has one client and that one is verifying every frame.
    #[arg(long)]
    view: bool,
    #[command(flatten)]
    output: OutputArgs,
}

/// Options of the demo's two internal processes.
#[derive(Debug, Args)]
pub struct RoleArgs {
    #[arg(long)]
    file: PathBuf,
    #[arg(long, value_parser = parse_wxh)]
    size: (u32, u32),
    #[arg(long)]
    fps: f64,
    #[arg(long)]
    seconds: f64,
    #[arg(long)]
    copy: bool,
    /// A second stream the server also feeds (for the viewer), without waiting.
    #[arg(long)]
    view_file: Option<PathBuf>,
}

pub(crate) fn now_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

pub fn run(a: DemoArgs) -> Result<()> {
    if !a.ensight && a.file_len.is_none() {
        return crate::demo_native::run(a.size, a.fps, a.seconds, a.copy, a.readers, a.view, &a.output);
    }
    install_stop_handler();
    let out = Out::new(&a.output);
    let (w, h) = a.size;
    let seconds = a.seconds.as_secs_f64();
    if (w as usize) * 3 < STAMP_LEN {
        return Err(format!("frames must be at least {} pixels wide to carry the stamp", STAMP_LEN.div_ceil(3)).into());
    }
    let file = match a.file_len {
        Some(len) => StreamFile::with_len(len)?,
        None => StreamFile::for_frame(w, h)?,
    };
    // A loan is one whole frame in one buffer; frames that travel in bands
    // are copied in with put_frame.
    let file_len = std::fs::metadata(file.path())?.len();
    let banded = shmimage::layout::Layout::for_file_len(file_len).is_some_and(|l| !l.fits_one_band(w, h));
    let copy = a.copy || banded;
    let view_file = if a.view {
        if std::env::var_os("DISPLAY").is_none() {
            return Err(
                "--view needs an X display, and $DISPLAY is not set (run without --view, or under xvfb-run)".into()
            );
        }
        Some(StreamFile::for_frame(w, h)?)
    } else {
        None
    };
    let exe = std::env::current_exe()?;
    let common = |role: &str| {
        let mut c = Command::new(&exe);
        c.arg(role).arg("--file").arg(file.path()).args([
            "--size",
            &format!("{w}x{h}"),
            "--fps",
            &a.fps.to_string(),
            "--seconds",
            &seconds.to_string(),
        ]);
        if copy {
            c.arg("--copy");
        }
        if let Some(v) = &view_file {
            c.arg("--view-file").arg(v.path());
        }
        c
    };
    let mode = match (copy, banded) {
        (_, true) => "put_frame in bands (frames exceed one buffer)",
        (true, false) => "put_frame (one copy)",
        (false, false) => "loan (zero copy)",
    };
    out.event(
        "start",
        format!(
            "shmimage demo: {w}x{h} RGB, {}, {mode}, {seconds} s, stream file {} ({file_len} bytes)",
            if a.fps > 0.0 { format!("{} fps", a.fps) } else { "as fast as possible".into() },
            file.path().display(),
        ),
        json!({"width": w, "height": h, "mode": mode, "seconds": seconds, "path": file.path().display().to_string(),
               "file_len": file_len}),
    );
    let mut viewer = match &view_file {
        Some(v) => Some(
            Command::new(&exe)
                .arg("view")
                .arg(v.path())
                .args(["--quiet", "--seconds", &(seconds + 2.0).to_string()])
                .spawn()?,
        ),
        None => None,
    };
    let mut server = common("demo-server").stdout(Stdio::null()).spawn()?;
    let mut client = common("demo-client").stdout(Stdio::piped()).spawn()?;
    // Ctrl-C (or SIGTERM) here ends the children too: they stop cleanly and
    // the client still prints its summary.
    let finished = Arc::new(AtomicBool::new(false));
    let pids = [server.id(), client.id()];
    let watcher = {
        let finished = Arc::clone(&finished);
        std::thread::spawn(move || {
            while !finished.load(Ordering::Relaxed) {
                if stopped() {
                    for pid in pids {
                        // SAFETY: kill(2) on our own children's pids; no memory is touched.
                        unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
                    }
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let child_out = client.stdout.take().ok_or("no client output")?;
    let mut status = out.status(None);
    let mut summary = None;
    for line in BufReader::new(child_out).lines() {
        let line = line?;
        if let Some(s) = line.strip_prefix("STATUS ") {
            status.update(0, || s.to_owned());
        } else if let Some(s) = line.strip_prefix("SUMMARY ") {
            summary = Some(s.to_owned());
        }
    }
    status.finish();
    if let Some(v) = viewer.as_mut() {
        // The viewer's own exit status is not the demo's verdict.
        let _ = v.kill();
        let _ = v.wait();
    }
    // A process ended by the forwarded Ctrl-C before its own handler was in
    // place (killed by that SIGTERM) did not fail.
    let ended_well = |st: std::process::ExitStatus| {
        st.success() || (stopped() && std::os::unix::process::ExitStatusExt::signal(&st) == Some(libc::SIGTERM))
    };
    let client_ok = ended_well(client.wait()?);
    let server_ok = ended_well(server.wait()?);
    finished.store(true, Ordering::Relaxed);
    let _ = watcher.join();
    let summary = match summary {
        Some(s) => s,
        // Stopped while the processes were still starting: nothing streamed.
        None if stopped() => "frames=0 corrupt=0 stopped_before_start=1".to_owned(),
        None => return Err("the client process ended without a summary".into()),
    };
    let corrupt = field(&summary, "corrupt").unwrap_or(u64::MAX);
    let frames = field(&summary, "frames").unwrap_or(0);
    // A run stopped before any frame streamed did not fail either.
    let outcome: Result<()> = if !client_ok || !server_ok || corrupt != 0 || (frames == 0 && !stopped()) {
        Err(format!(
            "demo failed: {frames} frames, {corrupt} corrupt, server {}, client {}",
            ok(server_ok),
            ok(client_ok)
        )
        .into())
    } else {
        Ok(())
    };
    out.done(format!("summary: {summary}"), summary_json(&summary), &outcome);
    outcome
}

/// The client's `key=value` summary as JSON numbers.
pub(crate) fn summary_json(line: &str) -> Value {
    let mut m = serde_json::Map::new();
    for kv in line.split_whitespace() {
        if let Some((k, v)) = kv.split_once('=') {
            let key = match k {
                "GB/s" => "gb_per_s",
                k => k,
            };
            let val = v.parse::<f64>().map_or(json!(v), |f| json!(f));
            m.insert(key.to_owned(), val);
        }
    }
    Value::Object(m)
}

fn ok(b: bool) -> &'static str {
    if b {
        "ok"
    } else {
        "failed"
    }
}

pub(crate) fn field(line: &str, key: &str) -> Option<u64> {
    line.split_whitespace().find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
}

/// The moving gradient: each row is a window into one precomputed wide row.
pub(crate) struct Pattern {
    w: usize,
    wide: Vec<u8>,
}

const PERIOD: usize = 512;

impl Pattern {
    pub(crate) fn new(w: u32) -> Pattern {
        let w = w as usize;
        let wide = (0..(w + PERIOD) * 3)
            .map(|i| {
                let (px, ch) = (i / 3, i % 3);
                let phase = (px % PERIOD) as f32 / PERIOD as f32 * std::f32::consts::TAU;
                let v = (phase + ch as f32 * 2.1).sin() * 0.5 + 0.5;
                (v * 255.0) as u8
            })
            .collect();
        Pattern { w, wide }
    }

    /// Render frame `n` into `out` (rows top-down), stamp excluded.
    pub(crate) fn render(&self, n: u32, h: u32, out: &mut [u8]) {
        let row = self.w * 3;
        for (r, dst) in out.chunks_exact_mut(row).enumerate() {
            let shift = (r / 2 + n as usize * 6) % PERIOD;
            dst.copy_from_slice(&self.wide[shift * 3..shift * 3 + row]);
        }
        draw_number(out, self.w, h as usize, n);
    }
}

/// Draw `n` in large digits near the top-left corner (visible in `view`).
fn draw_number(out: &mut [u8], w: usize, h: usize, n: u32) {
    // 3x5 glyphs, one bit a cell, rows top-down.
    const GLYPHS: [u16; 10] = [
        0b111_101_101_101_111,
        0b010_110_010_010_111,
        0b111_001_111_100_111,
        0b111_001_111_001_111,
        0b101_101_111_001_001,
        0b111_100_111_001_111,
        0b111_100_111_101_111,
        0b111_001_010_010_010,
        0b111_101_111_101_111,
        0b111_101_111_001_111,
    ];
    let scale = (h / 60).clamp(1, 12);
    let digits = n.to_string();
    let (x0, y0) = (scale * 2, scale * 2 + 1);
    for (k, d) in digits.bytes().enumerate() {
        let glyph = GLYPHS[(d - b'0') as usize];
        for gy in 0..5 {
            for gx in 0..3 {
                let on = glyph >> (14 - (gy * 3 + gx)) & 1 == 1;
                let v = if on { 255 } else { 0 };
                for y in 0..scale {
                    let py = y0 + gy * scale + y;
                    let px0 = x0 + (k * 4 + gx) * scale;
                    if py >= h || px0 + scale > w {
                        continue;
                    }
                    out[(py * w + px0) * 3..(py * w + px0 + scale) * 3].fill(v);
                }
            }
        }
    }
}

pub(crate) fn checksum(frame: &[u8], w: u32) -> u64 {
    xxhash_rust::xxh3::xxh3_64(&frame[w as usize * 3..])
}

pub(crate) fn stamp(frame: &mut [u8], n: u32, sum: u64) {
    frame[..4].copy_from_slice(MAGIC);
    frame[4..8].copy_from_slice(&n.to_le_bytes());
    frame[16..24].copy_from_slice(&sum.to_le_bytes());
    // The publish time goes in last, just before commit.
    frame[8..16].copy_from_slice(&now_ns().to_le_bytes());
}

pub fn server(a: RoleArgs) -> Result<()> {
    install_stop_handler();
    let (w, h) = a.size;
    let s = Server::create(&a.file, ServerOptions::default())?;
    cancel_on_stop(s.canceller());
    let view = match &a.view_file {
        Some(p) => Some(Server::create(p, ServerOptions::default())?),
        None => None,
    };
    match s.wait_for_client(Some(Duration::from_secs(10))) {
        Ok(()) => {}
        Err(_) if stopped() => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    let pattern = Pattern::new(w);
    let len = shmimage::layout::frame_bytes(w, h).and_then(|n| usize::try_from(n).ok()).ok_or("frame too large")?;
    let mut scratch = if a.copy { vec![0u8; len] } else { Vec::new() };
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(a.seconds);
    let period = (a.fps > 0.0).then(|| Duration::from_secs_f64(1.0 / a.fps));
    let mut n = 0u32;
    while Instant::now() < end && !stopped() {
        if let Some(p) = period {
            let due = start + p * n;
            if let Some(d) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(d);
            }
        }
        match s.wait_for_buffer(None) {
            Ok(()) => {}
            Err(_) if stopped() => break,
            Err(e) => return Err(e.into()),
        }
        n += 1;
        if a.copy {
            pattern.render(n, h, &mut scratch);
            let sum = checksum(&scratch, w);
            stamp(&mut scratch, n, sum);
            if let Some(v) = &view {
                let _ = v.put_frame(n, w, h, &scratch);
            }
            s.put_frame(n, w, h, &scratch)?;
        } else {
            let mut loan = s.loan(w, h)?;
            let px = loan.pixels_mut()?;
            pattern.render(n, h, px);
            let sum = checksum(px, w);
            stamp(px, n, sum);
            if let Some(v) = &view {
                // Best effort: a slow or absent viewer only misses frames.
                let _ = v.put_frame(n, w, h, px);
            }
            loan.commit(n)?;
        }
    }
    // Let the client drain the last frames before it sees us gone.
    let _ = s.wait_for_buffer(Some(Duration::from_secs(2)));
    Ok(())
}

#[derive(Default)]
pub(crate) struct Tally {
    pub(crate) frames: u64,
    pub(crate) bytes: u64,
    pub(crate) dropped: u64,
    pub(crate) corrupt: u64,
    pub(crate) last: Option<u32>,
    pub(crate) wake_ns: Vec<u64>,
}

impl Tally {
    pub(crate) fn line(&self, elapsed: f64) -> String {
        let mut v = self.wake_ns.clone();
        v.sort_unstable();
        let pct = |p: f64| v.get(((v.len() as f64 - 1.0) * p).round() as usize).map_or(0.0, |&ns| ns as f64 / 1000.0);
        format!(
            "frames={} fps={:.0} GB/s={:.2} wake_p50_us={:.1} wake_p99_us={:.1} dropped={} corrupt={}",
            self.frames,
            if elapsed > 0.0 { self.frames as f64 / elapsed } else { 0.0 },
            if elapsed > 0.0 { self.bytes as f64 / elapsed / 1e9 } else { 0.0 },
            pct(0.5),
            pct(0.99),
            self.dropped,
            self.corrupt
        )
    }
}

pub fn client(a: RoleArgs) -> Result<()> {
    install_stop_handler();
    let (w, h) = a.size;
    let c = Client::connect(&a.file, ClientOptions::default())?;
    cancel_on_stop(c.canceller());
    let mut t = Tally::default();
    let start = Instant::now();
    // Rates count from the first frame, not from the wait for the server.
    let mut first: Option<Instant> = None;
    let give_up = start + Duration::from_secs_f64(a.seconds + 15.0);
    let mut next_status = start + Duration::from_millis(250);
    let mut out = std::io::stdout().lock();
    loop {
        let waiting_since = now_ns();
        match c.wait_frame(Some(Duration::from_millis(250))) {
            Ok(f) => {
                let woke = now_ns();
                let px = f.pixels()?;
                let ok = f.width() == w
                    && f.height() == h
                    && px.len() >= STAMP_LEN
                    && &px[..4] == MAGIC
                    && u32::from_le_bytes(px[4..8].try_into()?) == f.number()
                    && u64::from_le_bytes(px[16..24].try_into()?) == checksum(px, w);
                let published = u64::from_le_bytes(px[8..16].try_into()?);
                // Only a frame published while we slept measures a wake-up.
                if ok && published >= waiting_since && woke >= published {
                    t.wake_ns.push(woke - published);
                }
                if let Some(last) = t.last {
                    t.dropped += u64::from(f.number().wrapping_sub(last).saturating_sub(1));
                }
                t.last = Some(f.number());
                t.frames += 1;
                first.get_or_insert_with(Instant::now);
                t.bytes += px.len() as u64;
                t.corrupt += u64::from(!ok);
            }
            Err(e) if e.code() == Code::NoFrameAvailable => {}
            Err(_) if stopped() => break,
            Err(shmimage::Error::ServerGone { .. }) if t.frames > 0 => break, // server finished
            Err(e) => return Err(e.into()),
        }
        if Instant::now() >= next_status {
            writeln!(out, "STATUS {}", t.line(first.map_or(0.0, |f| f.elapsed().as_secs_f64())))?;
            next_status += Duration::from_millis(250);
        }
        if Instant::now() > give_up || stopped() {
            break;
        }
    }
    let mut line = t.line(first.map_or(0.0, |f| f.elapsed().as_secs_f64()));
    let mut v = t.wake_ns.clone();
    v.sort_unstable();
    let p999 = v.get(((v.len() as f64 - 1.0) * 0.999).round() as usize).map_or(0.0, |&ns| ns as f64 / 1000.0);
    line.push_str(&format!(" wake_p999_us={p999:.1} wake_samples={}", v.len()));
    writeln!(out, "SUMMARY {line}")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamped_frame_verifies_and_a_changed_byte_does_not() {
        let (w, h) = (64, 40);
        let mut f = vec![0u8; 64 * 40 * 3];
        Pattern::new(w).render(123, h, &mut f);
        let sum = checksum(&f, w);
        stamp(&mut f, 123, sum);
        assert_eq!(u64::from_le_bytes(f[16..24].try_into().unwrap()), checksum(&f, w));
        f[5000] ^= 1;
        assert_ne!(u64::from_le_bytes(f[16..24].try_into().unwrap()), checksum(&f, w));
    }
}
