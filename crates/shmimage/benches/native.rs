//! Native stream micro-benchmarks, each beside its reference in the same run:
//! writer loan+commit with 1, 2, 4 and 8 readers attached (should be flat),
//! and a reader's hold+read+release of a 1080p BGRX frame against a plain
//! read of the same number of bytes from private memory.

#![allow(clippy::unwrap_used)] // a benchmark harness: a failed setup should stop it loudly

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use shmimage::native::{FrameDesc, PixelFormat, Reader, ReaderOptions, Writer, WriterOptions};

/// Sum of the bytes, 8 at a time: touches every byte, as a consumer would.
fn read_all(px: &[u8]) -> u64 {
    let mut s = 0u64;
    let (chunks, rest) = px.split_at(px.len() / 8 * 8);
    for c in chunks.chunks_exact(8) {
        s = s.wrapping_add(u64::from_ne_bytes(c.try_into().unwrap()));
    }
    rest.iter().fold(s, |a, &b| a.wrapping_add(u64::from(b)))
}

/// Readers joined but not reading: the protocol's own cost per commit,
/// without the machine's scheduling of reader threads.
fn loan_commit_vs_idle_readers(cr: &mut Criterion) {
    let mut g = cr.benchmark_group("native_loan_commit_idle_readers");
    let desc = FrameDesc::new(PixelFormat::Bgrx8, 1920, 1080).unwrap();
    for readers in [0usize, 1, 2, 4, 8, 64] {
        let d = tempfile::tempdir_in("/dev/shm").unwrap_or_else(|_| tempfile::tempdir().unwrap());
        let p = d.path().join("s");
        let o = WriterOptions { slots: 4, ..WriterOptions::for_frame(PixelFormat::Bgrx8, 1920, 1080).unwrap() };
        let w = Writer::create(&p, &o).unwrap();
        let _rs: Vec<Reader> = (0..readers).map(|_| Reader::open(&p, &ReaderOptions::default()).unwrap()).collect();
        g.bench_function(BenchmarkId::new("readers", readers), |b| {
            b.iter(|| {
                let loan = w.loan(&desc, None).unwrap();
                black_box(loan.commit().unwrap());
            });
        });
    }
    g.finish();
}

/// Loan+commit at three frame sizes, no readers: the cost does not depend on size.
fn loan_commit_vs_size(cr: &mut Criterion) {
    let mut g = cr.benchmark_group("native_loan_commit_size");
    for (name, w, h) in [("64x64", 64, 64), ("1080p", 1920, 1080), ("4k", 3840, 2160)] {
        let d = tempfile::tempdir_in("/dev/shm").unwrap_or_else(|_| tempfile::tempdir().unwrap());
        let p = d.path().join("s");
        let wr = Writer::create(&p, &WriterOptions::for_frame(PixelFormat::Bgrx8, w, h).unwrap()).unwrap();
        let desc = FrameDesc::new(PixelFormat::Bgrx8, w, h).unwrap();
        g.bench_function(name, |b| {
            b.iter(|| {
                let loan = wr.loan(&desc, None).unwrap();
                black_box(loan.commit().unwrap());
            });
        });
    }
    g.finish();
}

/// Readers each in a thread taking every newest frame (on a 2-core machine
/// 8 reader threads compete with the writer for the cores).
fn loan_commit_vs_readers(cr: &mut Criterion) {
    let mut g = cr.benchmark_group("native_loan_commit");
    let desc = FrameDesc::new(PixelFormat::Bgrx8, 1920, 1080).unwrap();
    for readers in [1usize, 2, 4, 8] {
        let d = tempfile::tempdir_in("/dev/shm").unwrap_or_else(|_| tempfile::tempdir().unwrap());
        let p = d.path().join("s");
        let o = WriterOptions { slots: 4, ..WriterOptions::for_frame(PixelFormat::Bgrx8, 1920, 1080).unwrap() };
        let w = Writer::create(&p, &o).unwrap();
        // Attached readers, each in a thread taking the newest frame and letting it go.
        let stop = Arc::new(AtomicBool::new(false));
        let threads: Vec<_> = (0..readers)
            .map(|_| {
                let r = Reader::open(&p, &ReaderOptions::default()).unwrap();
                let stop = Arc::clone(&stop);
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        if let Ok(f) = r.read(Some(Duration::from_millis(5))) {
                            black_box(f.pixels()[0]);
                        }
                    }
                })
            })
            .collect();
        g.bench_function(BenchmarkId::new("readers", readers), |b| {
            b.iter(|| {
                let loan = w.loan(&desc, None).unwrap();
                black_box(loan.commit().unwrap());
            });
        });
        stop.store(true, Ordering::Relaxed);
        for t in threads {
            t.join().unwrap();
        }
    }
    g.finish();
}

fn hold_read_release_vs_plain_read(cr: &mut Criterion) {
    let mut g = cr.benchmark_group("native_read_1080p");
    let desc = FrameDesc::new(PixelFormat::Bgrx8, 1920, 1080).unwrap();
    g.throughput(Throughput::Bytes(desc.len()));
    let plain = vec![0x5Au8; desc.len() as usize];
    g.bench_function("plain_read", |b| b.iter(|| black_box(read_all(black_box(&plain)))));
    let d = tempfile::tempdir_in("/dev/shm").unwrap_or_else(|_| tempfile::tempdir().unwrap());
    let p = d.path().join("s");
    let w = Writer::create(&p, &WriterOptions::for_frame(PixelFormat::Bgrx8, 1920, 1080).unwrap()).unwrap();
    let mut loan = w.loan(&desc, None).unwrap();
    loan.pixels_mut().fill(0x5A);
    loan.commit().unwrap();
    let r = Reader::open(&p, &ReaderOptions::default()).unwrap();
    g.bench_function("hold_read_release", |b| {
        b.iter(|| {
            let f = r.latest().unwrap();
            black_box(read_all(f.pixels()))
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2)).sample_size(30);
    targets = loan_commit_vs_size, loan_commit_vs_idle_readers, loan_commit_vs_readers, hold_read_release_vs_plain_read
}

/// Commit-to-wake latency against the kernel's floor, for 1, 2 and 4
/// readers. Engine: reader threads asleep in `read`, the writer commits a
/// tiny frame every 2 ms, each reader takes now minus the frame's publish
/// time (both CLOCK_MONOTONIC). Floor: the same number of threads asleep in
/// a bare FUTEX_WAIT on one word, woken by one FUTEX_WAKE after the time is
/// stamped: what any shared-memory wake-up costs on this machine, with no
/// protocol. The two alternate in rounds so a change of load hits both.
fn wake_latency() {
    const ROUNDS: usize = 5;
    const FRAMES: usize = 100;
    println!("\nwake-up p50 / p99 (us), {ROUNDS} alternating rounds of {FRAMES} wakes per reader, commits 2 ms apart:");
    println!("| readers | engine p50 | engine p99 | bare futex p50 | bare futex p99 | engine / futex (p50) |");
    println!("|---:|---:|---:|---:|---:|---:|");
    let mut p50s = Vec::new();
    for readers in [1usize, 2, 4] {
        let (mut engine, mut floor) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            engine.extend(engine_wakes(readers, FRAMES));
            floor.extend(bare_futex_wakes(readers, FRAMES));
        }
        let (e, f) = (quantiles(&mut engine), quantiles(&mut floor));
        println!("| {readers} | {:.1} | {:.1} | {:.1} | {:.1} | {:.2}x |", e.0, e.1, f.0, f.1, e.0 / f.0);
        p50s.push((readers, e.0, f.0));
    }
    if let (Some(one), Some(four)) = (p50s.first(), p50s.last()) {
        println!("4 readers / 1 reader (p50): engine {:.2}x, bare futex {:.2}x", four.1 / one.1, four.2 / one.2);
    }
}

/// p50 and p99 in microseconds.
fn quantiles(ns: &mut [u64]) -> (f64, f64) {
    ns.sort_unstable();
    let q = |f: f64| ns.get(((ns.len() as f64 - 1.0) * f) as usize).copied().unwrap_or(0) as f64 / 1000.0;
    (q(0.5), q(0.99))
}

fn engine_wakes(readers: usize, frames: usize) -> Vec<u64> {
    let d = tempfile::tempdir_in("/dev/shm").unwrap_or_else(|_| tempfile::tempdir().unwrap());
    let p = d.path().join("s");
    let w = Writer::create(&p, &WriterOptions { slots: 4, slot_bytes: 4096, ..Default::default() }).unwrap();
    let desc = FrameDesc::packed(PixelFormat::Gray8, 8, 8).unwrap();
    let threads: Vec<_> = (0..readers)
        .map(|_| {
            let r = Reader::open(&p, &ReaderOptions::default()).unwrap();
            std::thread::spawn(move || {
                let mut lat = Vec::with_capacity(frames);
                while lat.len() < frames {
                    let Ok(f) = r.read(Some(Duration::from_secs(1))) else { break };
                    lat.push(shmimage::native::now_mono_ns().saturating_sub(f.timestamps().publish_mono_ns));
                }
                lat
            })
        })
        .collect();
    while w.readers().len() < readers {
        std::thread::sleep(Duration::from_millis(1));
    }
    for _ in 0..frames {
        std::thread::sleep(Duration::from_millis(2));
        w.put(&desc, &[1; 64], &Default::default()).unwrap();
    }
    threads.into_iter().flat_map(|t| t.join().unwrap()).collect()
}

fn bare_futex_wakes(readers: usize, wakes: usize) -> Vec<u64> {
    use rustix::thread::futex;
    use std::sync::atomic::{AtomicU32, AtomicU64};
    let word = Arc::new((AtomicU32::new(0), AtomicU64::new(0)));
    let threads: Vec<_> = (0..readers)
        .map(|_| {
            let word = Arc::clone(&word);
            std::thread::spawn(move || {
                let mut lat = Vec::with_capacity(wakes);
                let mut seen = 0;
                // Until the last bump (not a sample count: two bumps seen as one give one sample).
                while seen != wakes as u32 {
                    let now = word.0.load(Ordering::SeqCst);
                    if now != seen {
                        lat.push(shmimage::native::now_mono_ns().saturating_sub(word.1.load(Ordering::SeqCst)));
                        seen = now;
                        continue;
                    }
                    let slice = rustix::time::Timespec { tv_sec: 0, tv_nsec: 1_000_000 };
                    let _ = futex::wait(&word.0, futex::Flags::empty(), seen, Some(&slice));
                }
                lat
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(20));
    for _ in 0..wakes {
        std::thread::sleep(Duration::from_millis(2));
        word.1.store(shmimage::native::now_mono_ns(), Ordering::SeqCst);
        word.0.fetch_add(1, Ordering::SeqCst);
        let _ = futex::wake(&word.0, futex::Flags::empty(), i32::MAX as u32);
    }
    threads.into_iter().flat_map(|t| t.join().unwrap()).collect()
}

fn main() {
    benches();
    if std::env::args().skip(1).all(|a| a.starts_with('-') || "native_wake_latency".contains(a.as_str())) {
        wake_latency();
    }
    Criterion::default().configure_from_args().final_summary();
}
