//! Engine micro-benchmarks, each beside its physical limit in the same run:
//! put_frame against a plain memcpy of the same bytes, loan+commit at two
//! frame sizes (should not depend on size), lock+unlock, and the put-to-wake
//! latency between two processes (a ping-pong over two streams).

#![allow(clippy::unwrap_used)] // a benchmark harness: a failed setup should stop it loudly

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use shmimage::{Client, ClientOptions, Server, ServerOptions, StreamFile};

const SIZES: [(&str, u32, u32); 2] = [("1080p", 1920, 1080), ("4k", 3840, 2160)];

fn pair(w: u32, h: u32) -> (StreamFile, Server, Client) {
    let f = StreamFile::for_frame(w, h).unwrap();
    let s = Server::create(f.path(), ServerOptions::default()).unwrap();
    let c = Client::connect(f.path(), ClientOptions { monitor_thread: false, ..Default::default() }).unwrap();
    (f, s, c)
}

fn put_vs_memcpy(cr: &mut Criterion) {
    let mut g = cr.benchmark_group("put_frame_vs_memcpy");
    for (name, w, h) in SIZES {
        let len = w as usize * h as usize * 3;
        g.throughput(Throughput::Bytes(len as u64));
        let src = vec![0x5Au8; len];
        let mut dst = vec![0u8; len];
        g.bench_function(BenchmarkId::new("memcpy", name), |b| {
            b.iter(|| dst.copy_from_slice(black_box(&src)));
        });
        // The same copy into a shared file mapping on /dev/shm, the kind of
        // memory a stream lives in (4 KiB pages, no transparent huge pages):
        // the limit for put_frame itself.
        let shm = StreamFile::with_len(len as u64).unwrap();
        let file = std::fs::OpenOptions::new().read(true).write(true).open(shm.path()).unwrap();
        // SAFETY: the file is private to this benchmark; nobody else maps it.
        let mut map = unsafe { memmap2::MmapMut::map_mut(&file).unwrap() };
        g.bench_function(BenchmarkId::new("memcpy_to_shm", name), |b| {
            b.iter(|| map[..len].copy_from_slice(black_box(&src)));
        });
        // Two buffers written in turn, as a double-buffered stream does: the
        // destination working set doubles, which the single-buffer rows hide.
        let shm2 = StreamFile::with_len(2 * len as u64).unwrap();
        let file2 = std::fs::OpenOptions::new().read(true).write(true).open(shm2.path()).unwrap();
        // SAFETY: as above, private to this benchmark.
        let mut map2 = unsafe { memmap2::MmapMut::map_mut(&file2).unwrap() };
        let mut turn = 0usize;
        g.bench_function(BenchmarkId::new("memcpy_to_shm_two_buffers", name), |b| {
            b.iter(|| {
                turn ^= 1;
                map2[turn * len..(turn + 1) * len].copy_from_slice(black_box(&src));
            });
        });
        let (_f, s, c) = pair(w, h);
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
    }
    g.finish();
}

fn loan_commit(cr: &mut Criterion) {
    let mut g = cr.benchmark_group("loan_commit");
    for (name, w, h) in SIZES {
        let (_f, s, c) = pair(w, h);
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for i in 0..iters {
                    let t = Instant::now();
                    let loan = s.loan(w, h).unwrap();
                    loan.commit(i as u32).unwrap();
                    total += t.elapsed();
                    drop(c.lock().unwrap());
                }
                total
            });
        });
    }
    g.finish();
}

fn lock_unlock(cr: &mut Criterion) {
    let (w, h) = (1920, 1080);
    let (_f, s, c) = pair(w, h);
    cr.bench_function("lock_unlock_1080p", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for i in 0..iters {
                s.loan(w, h).unwrap().commit(i as u32).unwrap();
                let t = Instant::now();
                let f = c.lock().unwrap();
                black_box(f.pixels().map_or(0, <[u8]>::len));
                drop(f);
                total += t.elapsed();
            }
            total
        });
    });
}

const ECHO_ENV: &str = "SHMIMAGE_BENCH_ECHO";

/// The peer of the latency benchmark: whenever a frame arrives on stream A,
/// publish one on stream B.
fn echo(a: &str, b: &str) {
    let c = Client::connect(a, ClientOptions { monitor_thread: false, ..Default::default() }).unwrap();
    let s = Server::create(b, ServerOptions::default()).unwrap();
    println!("READY");
    loop {
        let n = match c.wait_frame(Some(Duration::from_secs(5))) {
            Ok(f) => f.number(),
            Err(_) => return,
        };
        if s.wait_for_buffer(Some(Duration::from_secs(5))).is_err() {
            return;
        }
        s.loan(4, 4).unwrap().commit(n).unwrap();
    }
}

fn wake_latency(cr: &mut Criterion) {
    use std::io::BufRead;
    let fa = StreamFile::for_frame(4, 4).unwrap();
    let fb = StreamFile::for_frame(4, 4).unwrap();
    let s = Server::create(fa.path(), ServerOptions::default()).unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .env(ECHO_ENV, format!("{}\n{}", fa.path().display(), fb.path().display()))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
    let c = Client::connect(fb.path(), ClientOptions { monitor_thread: false, ..Default::default() }).unwrap();
    s.wait_for_client(Some(Duration::from_secs(5))).unwrap();
    cr.bench_function("put_to_wake_round_trip_two_processes", |b| {
        b.iter_custom(|iters| {
            let t = Instant::now();
            for i in 0..iters {
                s.wait_for_buffer(Some(Duration::from_secs(5))).unwrap();
                s.loan(4, 4).unwrap().commit(i as u32).unwrap();
                drop(c.wait_frame(Some(Duration::from_secs(5))).unwrap());
            }
            t.elapsed()
        });
    });
    drop(s);
    let _ = child.kill();
    let _ = child.wait();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = put_vs_memcpy, loan_commit, lock_unlock, wake_latency
}

fn main() {
    if let Ok(paths) = std::env::var(ECHO_ENV) {
        let (a, b) = paths.split_once('\n').unwrap();
        echo(a, b);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
