//! Wake-up latency against its physical limit, in one run (issue 16): a
//! ping-pong between two processes over two 4x4 streams (the parent commits
//! a frame on A, the child wakes in `wait_frame`, commits on B, the parent
//! wakes), against a one-byte ping-pong over a Unix socket and against the
//! floor of any shared-memory wake-up: a bare futex ping-pong on two words of
//! a shared file (no protocol). All report half a round trip: one wake-up of
//! a sleeping process by the other.
//!
//! The three run between the same two threads, in blocks that alternate on
//! a schedule both processes know: on a 2-vCPU VM a wake-up costs 1-3 us
//! when the two threads share a CPU and 10-25 us when the sleeper's CPU has
//! to leave its idle state, so a comparison between threads placed apart
//! would measure the scheduler's placement, not the mechanism.
//!
//! `cargo bench -p shmimage --bench wake`

#![allow(clippy::unwrap_used)] // a benchmark harness: a failed setup should stop it loudly

use std::io::{BufRead, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use shmimage::{Client, ClientOptions, Server, ServerOptions, StreamFile};

const PEER_ENV: &str = "SHMIMAGE_BENCH_WAKE_PEER";
const WAIT: Option<Duration> = Some(Duration::from_secs(5));
/// Round trips of one kind in a row, and how many times the three kinds take turns.
const BLOCK: usize = 100;
const TURNS: usize = 40;

fn no_thread() -> ClientOptions {
    ClientOptions { monitor_thread: false, ..Default::default() }
}

/// Two futex words at the start of a shared file, mapped by both processes.
struct Words {
    map: memmap2::MmapMut,
}

impl Words {
    fn open(path: &str) -> Words {
        let f = std::fs::OpenOptions::new().read(true).write(true).open(path).unwrap();
        // SAFETY: a private temporary file of this benchmark, never truncated while mapped.
        Words { map: unsafe { memmap2::MmapMut::map_mut(&f) }.unwrap() }
    }

    fn word(&self, i: usize) -> &AtomicU32 {
        assert!(self.map.len() >= 8 && i < 2);
        // SAFETY: in bounds (checked above), 4-byte aligned (a page-aligned
        // mapping), every bit pattern is a valid u32, and this shared memory
        // is only ever accessed through atomics.
        unsafe { &*self.map.as_ptr().add(4 * i).cast::<AtomicU32>() }
    }

    fn bump(&self, i: usize) {
        self.word(i).fetch_add(1, Ordering::SeqCst);
        let _ = rustix::thread::futex::wake(self.word(i), rustix::thread::futex::Flags::empty(), 1);
    }

    /// Sleep until word `i` differs from `seen`; returns its new value.
    fn wait_change(&self, i: usize, seen: u32) -> u32 {
        loop {
            let now = self.word(i).load(Ordering::SeqCst);
            if now != seen {
                return now;
            }
            let _ = rustix::thread::futex::wait(self.word(i), rustix::thread::futex::Flags::empty(), seen, None);
        }
    }
}

/// The child, in one thread: echo frames from stream A to stream B, bytes on
/// the socket, and bumps of word 0 as bumps of word 1, in the parent's order.
fn peer(a: &str, b: &str, sock: &str, words: &str) {
    let words = Words::open(words);
    let c = Client::connect(a, no_thread()).unwrap();
    let s = Server::create(b, ServerOptions::default()).unwrap();
    let mut u = UnixStream::connect(sock).unwrap();
    println!("READY");
    let mut seen = 0;
    for _ in 0..TURNS {
        for _ in 0..BLOCK {
            let n = c.wait_frame(WAIT).unwrap().number();
            s.wait_for_buffer(WAIT).unwrap();
            s.loan(4, 4).unwrap().commit(n).unwrap();
        }
        for _ in 0..BLOCK {
            let mut byte = [0u8];
            u.read_exact(&mut byte).unwrap();
            u.write_all(&byte).unwrap();
        }
        for _ in 0..BLOCK {
            seen = words.wait_change(0, seen);
            words.bump(1);
        }
    }
}

struct Pair {
    s: Server,
    c: Client,
    u: UnixStream,
    words: Words,
    echoed: u32,
    child: std::process::Child,
    n: u32,
    _files: (StreamFile, StreamFile, tempfile::TempDir, tempfile::NamedTempFile),
}

impl Pair {
    fn new() -> Pair {
        let fa = StreamFile::for_frame(4, 4).unwrap();
        let fb = StreamFile::for_frame(4, 4).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("pingpong.sock");
        let words_file =
            tempfile::NamedTempFile::new_in("/dev/shm").unwrap_or_else(|_| tempfile::NamedTempFile::new().unwrap());
        words_file.as_file().set_len(4096).unwrap();
        let words_path = words_file.path().to_str().unwrap().to_owned();
        let listener = UnixListener::bind(&sock).unwrap();
        let s = Server::create(fa.path(), ServerOptions::default()).unwrap();
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .env(
                PEER_ENV,
                format!("{}\n{}\n{}\n{words_path}", fa.path().display(), fb.path().display(), sock.display()),
            )
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
        let (u, _) = listener.accept().unwrap();
        let c = Client::connect(fb.path(), no_thread()).unwrap();
        s.wait_for_client(WAIT).unwrap();
        let words = Words::open(&words_path);
        Pair { s, c, u, words, echoed: 0, child, n: 0, _files: (fa, fb, dir, words_file) }
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

    /// One bare futex round trip (two wake-ups, nothing else).
    fn futex_round_trip(&mut self) {
        self.words.bump(0);
        self.echoed = self.words.wait_change(1, self.echoed);
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

/// Half round trips in microseconds of `BLOCK` calls of `f`.
fn block(p: &mut Pair, out: &mut Vec<f64>, f: fn(&mut Pair)) {
    for _ in 0..BLOCK {
        let t = Instant::now();
        f(p);
        out.push(t.elapsed().as_secs_f64() * 1e6 / 2.0);
    }
}

fn main() {
    if let Ok(args) = std::env::var(PEER_ENV) {
        let mut it = args.split('\n');
        let (a, b, sock, words) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
        peer(a, b, sock, words);
        return;
    }
    if std::env::args().skip(1).any(|a| a == "--list") {
        return; // `cargo bench -- --list` asks a harness for its benchmarks: none to list
    }
    let mut p = Pair::new();
    let (mut frame, mut socket, mut futex) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..TURNS {
        block(&mut p, &mut frame, Pair::frame_round_trip);
        block(&mut p, &mut socket, Pair::socket_round_trip);
        block(&mut p, &mut futex, Pair::futex_round_trip);
    }
    let (f, s, x) = (median(frame), median(socket), median(futex));
    let rounds = TURNS * BLOCK;
    println!("\nsummary (issue 16; ratios within this run, between the same two threads):");
    println!(
        "| wake-up, half a round trip: shmimage frame / Unix socket byte | {f:.1} us | {s:.1} us | {:.3}x | {TURNS} alternating blocks of {BLOCK}, median of {rounds} |",
        f / s
    );
    println!("| wake-up, half a round trip: shmimage frame / bare futex (the floor) | {f:.1} us | {x:.1} us | {:.3}x | same blocks |", f / x);
    println!(
        "| wake-up, half a round trip: bare futex / Unix socket byte | {x:.1} us | {s:.1} us | {:.3}x | same blocks |",
        x / s
    );
}
