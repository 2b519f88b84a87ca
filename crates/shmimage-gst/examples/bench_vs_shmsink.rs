//! shmimagesink/shmimagesrc against GStreamer's own shmsink/shmsrc carrying
//! the same frames: frames/s delivered to the reading pipeline and CPU time
//! (both processes) per delivered frame, at 1080p and 4K.
//!
//! The writing pipeline is a `gst-launch-1.0` process (videotestsrc, black,
//! as fast as it goes); the reading pipeline runs in this process and ends
//! in a fakesink that does not read the pixels (the same for both paths).
//!
//! ```text
//! cargo build --release -p shmimage-gst --lib --examples
//! target/release/examples/bench_vs_shmsink [SECONDS] [FORMAT]
//! ```
#![allow(clippy::unwrap_used)] // a benchmark's own setup failing is fatal anyway

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gst::prelude::*;

fn plugin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap().to_owned();
    assert!(
        dir.join("libgstshmimage.so").exists(),
        "build the plugin first: cargo build --release -p shmimage-gst --lib"
    );
    dir
}

/// CPU seconds (user + system) a process has used so far.
fn cpu_of(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(11) + ticks(12)) / hz
}

struct Run {
    fps: f64,
    cpu_ms_per_frame: f64,
    /// (frames copied, frames written) by the writing shmimagesink, and
    /// (frames copied, frames pushed) by the reading shmimagesrc.
    sink_copies: Option<(u64, u64)>,
    src_copies: Option<(u64, u64)>,
}

/// `name=(guint64)N` in a printed structure.
fn field(line: &str, name: &str) -> Option<u64> {
    let rest = line.split(&format!("{name}=(guint64)")).nth(1)?;
    rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

fn measure(writer_args: &str, reader_desc: &str, seconds: f64) -> Run {
    let mut writer: Child = Command::new("gst-launch-1.0")
        .args(["-m"])
        .args(writer_args.split_whitespace())
        .env("GST_PLUGIN_PATH", plugin_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = writer.stdout.take().unwrap();
    let sink_stats = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut last = None;
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if line.contains("shmimagesink-stats") {
                last = field(&line, "copied").zip(field(&line, "frames"));
            }
        }
        last
    });
    std::thread::sleep(Duration::from_millis(700));
    let pipeline = gst::parse::launch(reader_desc).unwrap().downcast::<gst::Pipeline>().unwrap();
    let frames = Arc::new(AtomicU64::new(0));
    let sink = pipeline.by_name("out").unwrap();
    let f = Arc::clone(&frames);
    sink.static_pad("sink").unwrap().add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        f.fetch_add(1, Ordering::Relaxed);
        gst::PadProbeReturn::Ok
    });
    pipeline.set_state(gst::State::Playing).unwrap();
    // Warm up, then count over the window.
    std::thread::sleep(Duration::from_millis(500));
    let (f0, t0) = (frames.load(Ordering::Relaxed), Instant::now());
    let (w0, r0) = (cpu_of(writer.id()), cpu_of(std::process::id()));
    std::thread::sleep(Duration::from_secs_f64(seconds));
    let (f1, dt) = (frames.load(Ordering::Relaxed), t0.elapsed().as_secs_f64());
    let (w1, r1) = (cpu_of(writer.id()), cpu_of(std::process::id()));
    let mut src_copies = None;
    while let Some(m) = pipeline.bus().unwrap().pop() {
        if let Some(s) = m.structure().filter(|s| s.name() == "shmimagesrc-stats") {
            src_copies = s.get::<u64>("copied").ok().zip(s.get::<u64>("frames").ok());
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    // SIGINT lets shmsink remove its socket and shm area.
    // SAFETY: kill has no memory preconditions.
    unsafe { libc::kill(writer.id() as i32, libc::SIGINT) };
    let end = Instant::now() + Duration::from_secs(3);
    while writer.try_wait().unwrap().is_none() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = writer.kill();
    let _ = writer.wait();
    let n = (f1 - f0).max(1) as f64;
    let sink_copies = sink_stats.join().unwrap();
    Run { fps: n / dt, cpu_ms_per_frame: ((w1 - w0) + (r1 - r0)) * 1000.0 / n, sink_copies, src_copies }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seconds = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let format = args.get(2).cloned().unwrap_or_else(|| "RGBA".into());
    gstshmimage::register_static().unwrap();
    let dir = tempfile::Builder::new().prefix("shmimage-bench-").tempdir_in("/dev/shm").unwrap();
    println!("| size | path | frames/s | CPU ms/frame (both processes) | copies per frame |");
    println!("|---|---|---|---|---|");
    for (name, w, h) in [("1080p", 1920u32, 1080u32), ("4K", 3840, 2160)] {
        let caps = format!("video/x-raw,format={format},width={w},height={h},framerate=0/1");
        let src = format!("videotestsrc pattern=black ! {caps}");
        let stream = dir.path().join(format!("stream-{name}"));
        let shm = format!("{}", stream.display());
        let ours = measure(
            &format!("{src} ! shmimagesink path={shm} sync=false stats-interval=200"),
            &format!("shmimagesrc path={shm} stats-interval=200 ! fakesink name=out sync=false"),
            seconds,
        );
        let socket = dir.path().join(format!("socket-{name}"));
        let frame_bytes = u64::from(w) * u64::from(h) * 4;
        let theirs = measure(
            &format!(
                "{src} ! shmsink socket-path={} shm-size={} wait-for-connection=true sync=false",
                socket.display(),
                frame_bytes * 8
            ),
            &format!("shmsrc socket-path={} is-live=true ! {caps} ! fakesink name=out sync=false", socket.display()),
            seconds,
        );
        let copies = |c: Option<(u64, u64)>| match c {
            Some((copied, frames)) => format!("{copied} of {frames} frames copied"),
            None => "?".into(),
        };
        println!(
            "| {name} | shmimagesink -> shmimagesrc | {:.0} | {:.2} | sink: {}; src: {} |",
            ours.fps,
            ours.cpu_ms_per_frame,
            copies(ours.sink_copies),
            copies(ours.src_copies)
        );
        println!(
            "| {name} | shmsink -> shmsrc | {:.0} | {:.2} | sink: 0 (videotestsrc draws into shmsink's shm allocator; 1 copy for memory from elsewhere); src: 0 |",
            theirs.fps, theirs.cpu_ms_per_frame
        );
    }
}
