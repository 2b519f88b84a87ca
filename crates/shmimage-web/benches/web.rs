//! What a browser gets from `shmimage web`: frames/s drawn by a real headless
//! Chromium, end-to-end latency measured in the page (writer's capture time
//! to drawn, p50/p99), and the server's CPU time per frame (from
//! /proc/self/stat: the server runs in this process; the writer and the
//! browser are other processes).
//!
//!   cargo bench -p shmimage-web --bench web [-- --seconds 5 --fps 60 --screenshot docs/img/web.png]
//!
//! A measurement, not a test: it asserts nothing about time.
#![allow(clippy::unwrap_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::browser::Browser;
use support::{Served, StreamPath, Writer};

struct Options {
    seconds: f64,
    fps: u32,
    screenshot: Option<String>,
}

fn options() -> Options {
    let mut o = Options { seconds: 5.0, fps: 60, screenshot: None };
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        match (args[i].as_str(), args.get(i + 1)) {
            ("--seconds", Some(v)) => o.seconds = v.parse().expect("--seconds N"),
            ("--fps", Some(v)) => o.fps = v.parse().expect("--fps N (0 = as fast as possible)"),
            ("--screenshot", Some(v)) => o.screenshot = Some(v.clone()),
            _ => {}
        }
        i += 1;
    }
    o
}

/// User + system CPU time of this process.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the line.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Duration::from_secs_f64(ticks as f64 / hz as f64)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn main() {
    if let Ok(spec) = std::env::var(support::WRITER_ENV) {
        support::pattern::run_writer(&spec);
        return;
    }
    // `cargo bench` passes --bench; `cargo test --all-targets` runs bench
    // binaries without it, and this is not a test.
    if !std::env::args().any(|a| a == "--bench") {
        println!("web: a benchmark; run it with cargo bench -p shmimage-web --bench web");
        return;
    }
    let o = options();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    println!("writer: native RGB8, textured pattern, {} frames/s offered; {} s per size", o.fps, o.seconds);
    println!();
    println!("| size | frames/s drawn | latency p50 | latency p99 | server CPU per frame | JPEG bytes |");
    println!("|---|---|---|---|---|---|");
    for (label, w, h) in [("720p", 1280u32, 720u32), ("1080p", 1920, 1080)] {
        runtime.block_on(async {
            let stream = StreamPath::new(&format!("bench-{label}"));
            let _writer = Writer::start_spec(&format!("{}|{w}|{h}|{}|RGB8|textured", stream.0.display(), o.fps));
            let served = Served::start(vec![stream.0.clone()], "127.0.0.1:0").await;
            let browser = Browser::launch();
            let mut tab = browser.open(&served.url).await;
            tab.wait_for("frames", "window.shmimage.frames", |v| v.as_u64().unwrap_or(0) > 10).await;
            // Warm up, then measure a clean window.
            tokio::time::sleep(Duration::from_secs(1)).await;
            tab.eval("window.shmimage.latencies = []; window.shmimage.frames = 0; 0").await;
            let (_, encoded0, _) = served.stats(&stream.name());
            let cpu0 = cpu_time();
            let t0 = Instant::now();
            tokio::time::sleep(Duration::from_secs_f64(o.seconds)).await;
            let frames = tab.eval("window.shmimage.frames").await.as_u64().unwrap();
            let elapsed = t0.elapsed().as_secs_f64();
            let cpu = (cpu_time() - cpu0).as_secs_f64();
            let (_, encoded1, _) = served.stats(&stream.name());
            let mut lat: Vec<f64> = tab
                .eval("window.shmimage.latencies")
                .await
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|v| v.as_f64())
                .collect();
            lat.sort_by(|a, b| a.total_cmp(b));
            let encoded = (encoded1 - encoded0).max(1);
            let jpeg = served.last_message_len(&stream.name());
            println!(
                "| {label} ({w}x{h}) | {:.1} | {:.1} ms | {:.1} ms | {:.2} ms ({} frames encoded) | {} |",
                frames as f64 / elapsed,
                percentile(&lat, 0.5),
                percentile(&lat, 0.99),
                cpu * 1e3 / encoded as f64,
                encoded,
                jpeg,
            );
            if let (Some(path), "720p") = (&o.screenshot, label) {
                std::fs::write(path, tab.screenshot().await).unwrap();
            }
            drop(tab);
            drop(browser);
            served.stop().await;
        });
    }
}
