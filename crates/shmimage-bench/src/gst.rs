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
    ok(&["shmsink"]) && ok(&["shmsrc"]) && ok(&["videotestsrc"]) && ok(&["fakesink"])
}

pub fn throughput(size: Size, secs: f64) -> Option<Tput> {
    let dir = std::env::temp_dir().join(format!("shmimage-bench-gst-{}-{}", std::process::id(), now_ns()));
    std::fs::create_dir(&dir).ok()?;
    let sock = dir.join("gst.sock");
    let caps = format!("video/x-raw,format=RGB,width={},height={},framerate=0/1", size.w, size.h);
    // Room for a few frames, so the producer is not throttled by the ring.
    let shm_size = (size.bytes() * 4).to_string();
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
    let mut consumer = Command::new("gst-launch-1.0")
        .args(["-v", "shmsrc"])
        .arg(format!("socket-path={}", sock.display()))
        .args(["!", "fakesink", "silent=false", "sync=false"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let out = consumer.stdout.take()?;
    let stamps = std::thread::spawn(move || {
        let mut t = Vec::new();
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if line.contains("last-message = chain") {
                t.push(Instant::now());
            }
        }
        t
    });
    std::thread::sleep(Duration::from_secs_f64(secs + 0.5));
    // Only the two processes started here are stopped, by their own handles.
    let _ = consumer.kill();
    let _ = producer.kill();
    let _ = consumer.wait();
    let _ = producer.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let t = stamps.join().ok()?;
    // The first half second is start-up (caps negotiation, first mapping).
    let start = *t.first()? + Duration::from_millis(500);
    let kept: Vec<_> = t.into_iter().filter(|x| *x >= start).collect();
    let (frames, secs) = rate_from(kept.first().copied(), kept.last().copied(), kept.len() as u64);
    Some(Tput {
        transport: "GStreamer shmsink/shmsrc".into(),
        size,
        frames,
        secs,
        producer_ns: None,
        consumer_ns: None,
        note: "producer renders black (videotestsrc); consumer fakesink does not read the pixels".into(),
    })
}
