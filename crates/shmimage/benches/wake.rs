//! Wake-up latency against its physical limit, in one run (issue 16): a
//! ping-pong between two processes over two 4x4 streams (the parent commits
//! a frame on A, the child wakes in `wait_frame`, commits on B, the parent
//! wakes) against a one-byte ping-pong over a Unix socket between the same
//! two processes. Both report half a round trip: one wake-up of a sleeping
//! process by the other.
//!
//! `cargo bench -p shmimage --bench wake`; the summary at the end alternates
//! blocks of both so they see the same load, and gives the ratio of medians.

#![allow(clippy::unwrap_used)] // a benchmark harness: a failed setup should stop it loudly

use std::io::{BufRead, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion};
use shmimage::{Client, ClientOptions, Server, ServerOptions, StreamFile};

const PEER_ENV: &str = "SHMIMAGE_BENCH_WAKE_PEER";
const WAIT: Option<Duration> = Some(Duration::from_secs(5));

fn no_thread() -> ClientOptions {
    ClientOptions { monitor_thread: false, ..Default::default() }
}

/// The child: echo frames from stream A to stream B, and bytes on the socket.
fn peer(a: &str, b: &str, sock: &str) {
    let c = Client::connect(a, no_thread()).unwrap();
    let s = Server::create(b, ServerOptions::default()).unwrap();
    let mut u = UnixStream::connect(sock).unwrap();
    std::thread::spawn(move || {
        let mut byte = [0u8];
        while u.read_exact(&mut byte).is_ok() {
            if u.write_all(&byte).is_err() {
                return;
            }
        }
    });
    println!("READY");
    loop {
        let n = match c.wait_frame(WAIT) {
            Ok(f) => f.number(),
            Err(_) => return,
        };
        if s.wait_for_buffer(WAIT).is_err() {
            return;
        }
        s.loan(4, 4).unwrap().commit(n).unwrap();
    }
}

struct Pair {
    s: Server,
    c: Client,
    u: UnixStream,
    child: std::process::Child,
    n: u32,
    _files: (StreamFile, StreamFile, tempfile::TempDir),
}

impl Pair {
    fn new() -> Pair {
        let fa = StreamFile::for_frame(4, 4).unwrap();
        let fb = StreamFile::for_frame(4, 4).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("pingpong.sock");
        let listener = UnixListener::bind(&sock).unwrap();
        let s = Server::create(fa.path(), ServerOptions::default()).unwrap();
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .env(PEER_ENV, format!("{}\n{}\n{}", fa.path().display(), fb.path().display(), sock.display()))
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
        let (u, _) = listener.accept().unwrap();
        let c = Client::connect(fb.path(), no_thread()).unwrap();
        s.wait_for_client(WAIT).unwrap();
        Pair { s, c, u, child, n: 0, _files: (fa, fb, dir) }
    }

    /// One shmimage round trip (two wake-ups).
    fn frame_round_trip(&mut self) {
        self.n += 1;
        self.s.wait_for_buffer(WAIT).unwrap();
        self.s.loan(4, 4).unwrap().commit(self.n).unwrap();
        drop(self.c.wait_frame(WAIT).unwrap());
    }

    /// One Unix-socket round trip (two wake-ups).
    fn socket_round_trip(&mut self) {
        let mut byte = [1u8];
        self.u.write_all(&byte).unwrap();
        self.u.read_exact(&mut byte).unwrap();
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn wake(cr: &mut Criterion) {
    let mut p = Pair::new();
    let mut g = cr.benchmark_group("wake_round_trip_two_processes");
    g.bench_function("shmimage_frame", |b| b.iter(|| p.frame_round_trip()));
    g.bench_function("unix_socket_byte", |b| b.iter(|| p.socket_round_trip()));
    g.finish();
    // Alternating single round trips, so both see the same load.
    let rounds = 4000;
    let (mut tf, mut ts) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    for _ in 0..rounds {
        let t = Instant::now();
        p.frame_round_trip();
        tf.push(t.elapsed().as_secs_f64() * 1e6 / 2.0);
        let t = Instant::now();
        p.socket_round_trip();
        ts.push(t.elapsed().as_secs_f64() * 1e6 / 2.0);
    }
    let (f, s) = (median(tf), median(ts));
    println!("\nsummary (issue 16; ratios within this run):");
    println!(
        "| wake-up, half a round trip: shmimage frame / Unix socket byte | {f:.1} us | {s:.1} us | {:.3}x | alternating, median of {rounds} |",
        f / s
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500));
    targets = wake
}

fn main() {
    if let Ok(args) = std::env::var(PEER_ENV) {
        let mut it = args.split('\n');
        let (a, b, sock) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
        peer(a, b, sock);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
