//! The copy path against its physical limit, in one run (issue 16):
//!
//! - `put_frame` against a memcpy of the same bytes between two private
//!   buffers, at 720p, 1080p and 4K (criterion rows, and a ratio of medians
//!   from alternating rounds, which a noisy machine moves far less);
//! - the first two frames through a fresh stream, with and without
//!   prefaulting (time and minor page faults of open + frames);
//! - the banded drop-in lock: a 4K frame through an EnSight-sized (25 MiB)
//!   file, locked and copied into the caller's buffer.
//!
//! `cargo bench -p shmimage --bench copy` runs everything; the summary lines
//! at the end are the rows of docs/benchmarks.md. Set
//! `SHMIMAGE_BENCH_HUGE_DIR` to a tmpfs mounted with `huge=within_size` to
//! add rows with the stream file on huge pages.

#![allow(clippy::unwrap_used)] // a benchmark harness: a failed setup should stop it loudly

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use shmimage::{Client, ClientOptions, Server, ServerOptions, StreamFile};

const SIZES: [(&str, u32, u32); 3] = [("720p", 1280, 720), ("1080p", 1920, 1080), ("4k", 3840, 2160)];

fn no_thread() -> ClientOptions {
    ClientOptions { monitor_thread: false, ..Default::default() }
}

fn pair(w: u32, h: u32) -> (StreamFile, Server, Client) {
    let f = StreamFile::for_frame(w, h).unwrap();
    let s = Server::create(f.path(), ServerOptions::default()).unwrap();
    let c = Client::connect(f.path(), no_thread()).unwrap();
    (f, s, c)
}

fn pixels(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn minor_faults() -> i64 {
    // SAFETY: getrusage writes the struct it is given.
    let mut r: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a rusage.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut r) };
    r.ru_minflt
}

/// Lines for the summary printed after criterion's output.
static SUMMARY: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

fn summary(line: String) {
    println!("{line}");
    SUMMARY.lock().unwrap().push(line);
}

/// `rounds` rounds of a heap memcpy of `src` then a put_frame of it (the
/// client frees the buffer, untimed), alternating so both see the same
/// load: the medians in microseconds, (memcpy, put_frame).
fn alternate(s: &Server, c: &Client, dst: &mut [u8], src: &[u8], (w, h): (u32, u32), rounds: u32) -> (f64, f64) {
    let (mut tm, mut tp) = (Vec::new(), Vec::new());
    for i in 0..rounds {
        let t = Instant::now();
        dst.copy_from_slice(black_box(src));
        tm.push(t.elapsed().as_secs_f64() * 1e6);
        let t = Instant::now();
        s.put_frame(i, w, h, black_box(src)).unwrap();
        tp.push(t.elapsed().as_secs_f64() * 1e6);
        drop(c.lock().unwrap());
    }
    (median(tm), median(tp))
}

fn put_frame_vs_memcpy(cr: &mut Criterion) {
    let mut g = cr.benchmark_group("put_frame_vs_memcpy");
    for (name, w, h) in SIZES {
        let len = w as usize * h as usize * 3;
        g.throughput(Throughput::Bytes(len as u64));
        let src = pixels(len);
        let mut dst = vec![0u8; len];
        let (_f, s, c) = pair(w, h);
        g.bench_function(BenchmarkId::new("memcpy", name), |b| {
            b.iter(|| dst.copy_from_slice(black_box(&src)));
        });
        g.bench_function(BenchmarkId::new("put_frame", name), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for i in 0..iters {
                    let t = Instant::now();
                    s.put_frame(i as u32, w, h, black_box(&src)).unwrap();
                    total += t.elapsed();
                    drop(c.lock().unwrap()); // free the buffer, untimed
                }
                total
            });
        });
        // The same two, alternating round by round: both see the same load.
        let rounds = 200;
        let (m, p) = alternate(&s, &c, &mut dst, &src, (w, h), rounds);
        summary(format!(
            "| put_frame / memcpy, {name} | {p:.1} us | {m:.1} us | {:.3}x | alternating, median of {rounds} |",
            p / m
        ));
        if let Some(dir) = huge_dir() {
            // The same with the stream file on huge pages: what 4 KiB pages
            // cost in TLB reach (1080p: 3,038 pages for memcpy, 4,557 with the
            // second buffer, against 3,072 L2 TLB entries on Zen 4).
            let (f, path) = fresh_file(&Place::Dir(dir), shmimage::layout::file_len_for_frame(w, h).unwrap(), 0);
            let s = Server::create(f.path(), ServerOptions::default()).unwrap();
            let c = Client::connect(f.path(), no_thread()).unwrap();
            let (m, p) = alternate(&s, &c, &mut dst, &src, (w, h), rounds);
            summary(format!(
                "| put_frame / memcpy, {name}, stream file on huge pages | {p:.1} us | {m:.1} us | {:.3}x | alternating, median of {rounds} |",
                p / m
            ));
            drop((s, c, f));
            if let Some(p) = path {
                let _ = std::fs::remove_file(p);
            }
        }
    }
    g.finish();
}

/// A tmpfs mounted with huge pages (`huge=within_size` or `always`; with
/// `huge=advise` only sparse files get them, and stream files are created
/// with their pages reserved), from `SHMIMAGE_BENCH_HUGE_DIR`.
fn huge_dir() -> Option<PathBuf> {
    std::env::var_os("SHMIMAGE_BENCH_HUGE_DIR").map(PathBuf::from)
}

/// Where a fresh stream file for the first-frame rows lives.
#[derive(Clone)]
enum Place {
    DevShm,
    Dir(PathBuf),
}

fn fresh_file(place: &Place, len: u64, k: usize) -> (StreamFile, Option<PathBuf>) {
    match place {
        Place::DevShm => (StreamFile::with_len(len).unwrap(), None),
        Place::Dir(d) => {
            let p = d.join(format!("shmimage-bench-{}-{k}", std::process::id()));
            let _ = std::fs::remove_file(&p);
            (StreamFile::create_at(&p, len).unwrap(), Some(p))
        }
    }
}

/// Open a fresh 1080p stream (server and client), then send the first two
/// frames (one into each buffer), the client reading every byte of each:
/// every page of both buffers is touched once by each side, as when a
/// stream starts. Returns the time of the open, of the two frames, and the
/// minor page faults of both.
fn first_frames(place: &Place, prefault: bool, src: &[u8], k: usize) -> (f64, f64, i64) {
    let (w, h) = (1920, 1080);
    let len = shmimage::layout::file_len_for_frame(w, h).unwrap();
    let (f, remove) = fresh_file(place, len, k);
    std::env::set_var("SHMIMAGE_PREFAULT", if prefault { "1" } else { "0" });
    let f0 = minor_faults();
    let t = Instant::now();
    let s = Server::create(f.path(), ServerOptions::default()).unwrap();
    let c = Client::connect(f.path(), no_thread()).unwrap();
    let open = t.elapsed().as_secs_f64() * 1e6;
    let t = Instant::now();
    let mut held = Vec::new();
    for n in 1..=2 {
        s.put_frame(n, w, h, src).unwrap();
        let frame = c.lock().unwrap();
        black_box(frame.pixels().unwrap().iter().step_by(64).fold(0u8, |a, &b| a ^ b));
        held.push(frame); // keep it, so the second frame goes to the other buffer
    }
    let frames = t.elapsed().as_secs_f64() * 1e6;
    let faults = minor_faults() - f0;
    std::env::remove_var("SHMIMAGE_PREFAULT");
    drop(held);
    drop((s, c));
    drop(f);
    if let Some(p) = remove {
        let _ = std::fs::remove_file(p);
    }
    (open, frames, faults)
}

fn first_touch(_cr: &mut Criterion) {
    let src = pixels(1920 * 1080 * 3);
    let mut places = vec![("/dev/shm", Place::DevShm)];
    if let Some(d) = huge_dir() {
        places.push(("huge-page tmpfs", Place::Dir(d)));
    }
    let rounds = 25;
    for (pname, place) in places {
        let mut rows: [(Vec<f64>, Vec<f64>, Vec<f64>); 2] = Default::default();
        for k in 0..rounds {
            for (j, prefault) in [false, true].into_iter().enumerate() {
                let (open, frames, faults) = first_frames(&place, prefault, &src, k);
                rows[j].0.push(open);
                rows[j].1.push(frames);
                rows[j].2.push(faults as f64);
            }
        }
        let mut done = Vec::new();
        for (j, label) in ["without prefault", "with prefault"].into_iter().enumerate() {
            let (o, p, f) = std::mem::take(&mut rows[j]);
            let (o, p, f) = (median(o), median(p), median(f));
            done.push((o + p, p));
            summary(format!(
                "| fresh 1080p stream, {pname}, {label} | open {o:.0} us + first two frames {p:.0} us = {:.0} us | {f:.0} minor faults | median of {rounds} |",
                o + p
            ));
        }
        summary(format!(
            "| fresh 1080p stream, {pname}: with / without prefault | open + frames {:.3}x, frames alone {:.3}x | | |",
            done[1].0 / done[0].0,
            done[1].1 / done[0].1
        ));
    }
}

fn banded_lock(cr: &mut Criterion) {
    let (w, h) = (3840u32, 2160u32);
    let len = w as usize * h as usize * 3;
    let src = pixels(len);
    let mut out = vec![0u8; len];
    // What the drop-in stream_lock does: lock, then copy the frame into the
    // caller's buffer (its `bytes`). By default the client has assembled the
    // two bands in its own memory first (two copies); with two-band frames
    // kept in place the copy into the caller's buffer is the only one.
    let streams = [false, true].map(|in_place| {
        let f = StreamFile::with_len(shmimage::layout::ENSIGHT_FILE_SIZE).unwrap();
        let s = Server::create(f.path(), ServerOptions::default()).unwrap();
        let c = Client::connect(f.path(), no_thread()).unwrap();
        c.set_two_band_frames_in_place(in_place);
        (f, s, c)
    });
    let mut n = 0u32;
    let mut lock_and_copy = |k: usize, out: &mut [u8]| {
        let (_, s, c) = &streams[k];
        n += 1;
        s.put_frame(n, w, h, &src).unwrap();
        let t = Instant::now();
        let frame = c.lock().unwrap();
        frame.copy_to(out).unwrap();
        drop(frame);
        t.elapsed()
    };
    let mut g = cr.benchmark_group("banded_lock_4k_in_25MiB");
    g.throughput(Throughput::Bytes(len as u64));
    g.sample_size(10);
    for (k, name) in ["assembled_then_copied", "two_bands_in_place_one_copy"].into_iter().enumerate() {
        g.bench_function(name, |b| b.iter_custom(|iters| (0..iters).map(|_| lock_and_copy(k, &mut out)).sum()));
    }
    g.finish();
    let rounds = 40;
    let (mut tm, mut ta, mut tp) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let t = Instant::now();
        out.copy_from_slice(black_box(&src));
        tm.push(t.elapsed().as_secs_f64() * 1e6);
        ta.push(lock_and_copy(0, &mut out).as_secs_f64() * 1e6);
        tp.push(lock_and_copy(1, &mut out).as_secs_f64() * 1e6);
    }
    let (m, a, p) = (median(tm), median(ta), median(tp));
    summary(format!(
        "| banded 4K lock + copy to caller (25 MiB file, 2 bands), assembled (before) | {a:.0} us | memcpy {m:.0} us | {:.2}x memcpy | alternating, median of {rounds} |",
        a / m
    ));
    summary(format!(
        "| banded 4K lock + copy to caller (25 MiB file, 2 bands), kept in place (after) | {p:.0} us | memcpy {m:.0} us | {:.2}x memcpy, {:.2}x before | alternating, median of {rounds} |",
        p / m,
        p / a
    ));
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500));
    targets = put_frame_vs_memcpy, first_touch, banded_lock
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    println!("\nsummary (issue 16; ratios within this run):");
    for line in SUMMARY.lock().unwrap().iter() {
        println!("{line}");
    }
}
