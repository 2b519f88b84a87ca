//! GStreamer shmsink -> shmsrc, with gst-launch-1.0 pipelines as the two
//! peer processes.
//!
//! What is measured: the producer `videotestsrc pattern=black` renders RGB
//! frames (into shmsink's shared-memory allocator when upstream accepts it,
//! else shmsink copies) and shmsink announces each over its control socket;
//! the consumer `shmsrc ! fakesink` receives each frame as a buffer that
//! points into the shared memory and releases it. fakesink does NOT read the
//! pixels, so this flatters GStreamer against shmimage, whose client reads
//! every byte. Frames are counted from fakesink's per-buffer `last-message`
//! (gst-launch -v) as they reach this process.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

pub fn available() -> bool {
    let ok = |args: &[&str]| {
        Command::new("gst-inspect-1.0")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let stdbuf = Command::new("stdbuf").arg("--version").stdout(Stdio::null()).status().is_ok_and(|s| s.success());
    stdbuf && ok(&["shmsink"]) && ok(&["shmsrc"]) && ok(&["videotestsrc"]) && ok(&["fakesink"])
}

pub fn throughput(size: Size, secs: f64) -> Option<Tput> {
    let dir = std::env::temp_dir().join(format!("shmimage-bench-gst-{}-{}", std::process::id(), now_ns()));
    std::fs::create_dir(&dir).ok()?;
    let sock = dir.join("gst.sock");
    let caps = format!("video/x-raw,format=RGB,width={},height={},framerate=0/1", size.w, size.h);
    // shmsink stalls for good when its area holds only a few frames (seen
    // here with 4: three frames, then nothing); 16 frames ran steadily.
    let shm_size = (size.bytes() * 16).min(512 << 20).to_string();
    let mut producer = Command::new("gst-launch-1.0")
        .args(["-q", "videotestsrc", "pattern=black", "!", &caps, "!", "shmsink"])
        .arg(format!("socket-path={}", sock.display()))
        .args(["wait-for-connection=true", "sync=false"])
        .arg(format!("shm-size={shm_size}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let t0 = Instant::now();
    while !sock.exists() && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    // gst-launch prints through stdio, which a pipe makes block-buffered:
    // stamps would arrive in bursts and the tail would die with the process.
    let mut consumer = Command::new("stdbuf")
        .args(["-oL", "gst-launch-1.0", "-v", "shmsrc"])
        .arg(format!("socket-path={}", sock.display()))
        .args(["!", "fakesink", "silent=false", "sync=false"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let out = consumer.stdout.take()?;
    let (tx, rx) = std::sync::mpsc::channel::<Instant>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if line.contains("last-message = chain") && tx.send(Instant::now()).is_err() {
                break;
            }
        }
    });
    // Start-up (caps negotiation, first mapping) is not counted: the window
    // opens a warm-up after the first frame arrives.
    let first = rx.recv_timeout(Duration::from_secs(15)).ok();
    if first.is_some() {
        std::thread::sleep(Duration::from_secs_f64(0.2 + secs));
    }
    // Only the two processes started here are stopped, by their own pids.
    // SIGINT first: gst-launch then shuts the pipeline down and shmsink
    // unlinks its shared memory, which a SIGKILL leaves in /dev/shm.
    for child in [&mut consumer, &mut producer] {
        // SAFETY: kill(2) on the pid of a child we spawned and have not reaped.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    }
    for child in [&mut consumer, &mut producer] {
        let t = Instant::now();
        while child.try_wait().ok().flatten().is_none() {
            if t.elapsed() > Duration::from_secs(3) {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    remove_shm_area(producer.id());
    let _ = reader.join();
    let _ = std::fs::remove_dir_all(&dir);
    let open = first? + Duration::from_millis(200);
    let close = open + Duration::from_secs_f64(secs);
    let all: Vec<Instant> = rx.try_iter().collect();
    if std::env::var_os("BENCH_DEBUG").is_some() {
        eprintln!(
            "gst: {} stamps after the first; last at {:?} from the window start",
            all.len(),
            all.last().map(|l| l.saturating_duration_since(open))
        );
    }
    let stalled = all.last().is_none_or(|l| *l + Duration::from_millis(100) < close);
    let kept = all.into_iter().filter(|x| *x >= open && *x <= close).count() as u64;
    // Frames over the whole window, not first-to-last: shmsink sometimes
    // stops delivering for good (seen after a few hundred frames), and that
    // must show as a lower rate.
    let mut note = "producer renders black (videotestsrc); consumer fakesink does not read the pixels".to_owned();
    if stalled {
        note.push_str("; the pipeline STALLED inside the window");
    }
    Some(Tput {
        transport: "GStreamer shmsink/shmsrc".into(),
        size,
        frames: kept,
        secs,
        producer_ns: None,
        consumer_ns: None,
        note,
    })
}

/// shmsink names its area `shmpipe.<pid %5d>.<n %5d>` in /dev/shm; remove
/// what our producer left if it had to be killed.
fn remove_shm_area(pid: u32) {
    let prefix = format!("shmpipe.{pid:5}.");
    if let Ok(dir) = std::fs::read_dir("/dev/shm") {
        for e in dir.flatten() {
            if e.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}
