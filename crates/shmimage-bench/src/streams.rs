//! The byte-stream alternatives: Unix domain socket, pipe, TCP on 127.0.0.1,
//! and the Unix-socket one-byte ping-pong that calibrates wake-up latency.

use std::hint::black_box;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Unix,
    Pipe,
    Tcp,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Unix => "Unix socket (stream)",
            Kind::Pipe => "pipe (1 MiB buffer)",
            Kind::Tcp => "TCP 127.0.0.1",
        }
    }
}

/// A private directory for socket files, removed on drop.
struct TmpDir(std::path::PathBuf);

impl TmpDir {
    fn new() -> TmpDir {
        let p = std::env::temp_dir().join(format!("shmimage-bench-{}-{}", std::process::id(), now_ns()));
        std::fs::create_dir(&p).expect("create temp dir");
        TmpDir(p)
    }
}

impl Drop for TmpDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The producer writes whole frames for `secs`, then closes; the consumer
/// peer reads each frame into its own buffer and reads every byte of it.
pub fn throughput(size: Size, secs: f64, kind: Kind) -> Tput {
    let frame = pattern(size.bytes());
    let bytes = size.bytes().to_string();
    let dir = TmpDir::new();
    let (child, mut sink): (_, Box<dyn Write>) = match kind {
        Kind::Unix => {
            let path = dir.0.join("s.sock");
            let l = UnixListener::bind(&path).expect("bind unix socket");
            let c = peer(&["stream-read".into(), "unix".into(), path.to_string_lossy().into_owned(), bytes])
                .spawn()
                .expect("spawn peer");
            (c, Box::new(l.accept().expect("accept").0))
        }
        Kind::Tcp => {
            let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
            let port = l.local_addr().expect("local addr").port().to_string();
            let c = peer(&["stream-read".into(), "tcp".into(), port, bytes]).spawn().expect("spawn peer");
            let (s, _) = l.accept().expect("accept");
            (c, Box::new(s))
        }
        Kind::Pipe => {
            let mut c = peer(&["stream-read".into(), "pipe".into(), "-".into(), bytes])
                .stdin(Stdio::piped())
                .spawn()
                .expect("spawn peer");
            let stdin = c.stdin.take().expect("piped stdin");
            // The default 64 KiB pipe means ~100 wake-ups per 1080p frame; a
            // user moving frames would raise it to the unprivileged maximum.
            // SAFETY: fcntl on a pipe fd this process owns; failure leaves the default.
            unsafe { libc::fcntl(stdin.as_raw_fd(), libc::F_SETPIPE_SZ, 1 << 20) };
            (c, Box::new(stdin))
        }
    };
    let mut times = Vec::with_capacity(1 << 16);
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let mut sent = 0u64;
    while Instant::now() < end {
        let t = Instant::now();
        sink.write_all(&frame).expect("write frame");
        times.push(t.elapsed().as_nanos() as u64);
        sent += 1;
    }
    drop(sink);
    let rep = collect(child, kind.label());
    Tput {
        transport: kind.label().to_owned(),
        size,
        frames: rep.get("frames").unwrap_or(0.0) as u64,
        secs: rep.get("secs").unwrap_or(0.0),
        producer_ns: Some(median_ns(&mut times)),
        consumer_ns: rep.get("med_ns"),
        note: format!("sent {sent}, every frame delivered"),
    }
}

/// Peer: read frames until end of stream.
pub fn peer_read(kind: &str, addr: &str, bytes: usize) {
    let mut src: Box<dyn Read> = match kind {
        "unix" => Box::new(UnixStream::connect(addr).expect("connect unix socket")),
        "tcp" => Box::new(TcpStream::connect(("127.0.0.1", addr.parse::<u16>().expect("port"))).expect("connect tcp")),
        _ => Box::new(std::io::stdin().lock()),
    };
    let mut buf = vec![0u8; bytes];
    let (mut first, mut last, mut n, mut acc) = (None, None, 0u64, 0u64);
    let mut times = Vec::with_capacity(1 << 16);
    loop {
        let t = Instant::now();
        if !read_frame(&mut src, &mut buf) {
            break;
        }
        acc ^= digest(&buf);
        let done = Instant::now();
        // The first read includes waiting for the producer; later ones too
        // when the consumer is faster, so this is an upper bound of the cost.
        times.push((done - t).as_nanos() as u64);
        first.get_or_insert(done);
        last = Some(done);
        n += 1;
    }
    let (frames, secs) = rate_from(first, last, n);
    print_result(&[
        ("frames", frames.to_string()),
        ("secs", format!("{secs:.6}")),
        ("med_ns", format!("{}", median_ns(&mut times))),
        ("digest", black_box(acc).to_string()),
    ]);
}

/// One-byte ping-pong over a Unix stream socket, paced like the shmimage
/// latency test; one-way latency is taken as half the round trip.
pub fn unix_pingpong(secs: f64) -> Latency {
    let dir = TmpDir::new();
    let path = dir.0.join("pp.sock");
    let l = UnixListener::bind(&path).expect("bind unix socket");
    let child = peer(&["echo".into(), path.to_string_lossy().into_owned()]).spawn().expect("spawn peer");
    let (mut s, _) = l.accept().expect("accept");
    let mut jitter = Jitter::new();
    let mut lat = Vec::with_capacity(1 << 16);
    let mut b = [0u8; 1];
    let end = Instant::now() + Duration::from_secs_f64(secs);
    while Instant::now() < end {
        std::thread::sleep(jitter.gap(crate::shm::GAP_US.0, crate::shm::GAP_US.1));
        let t = now_ns();
        s.write_all(&b).expect("ping");
        s.read_exact(&mut b).expect("pong");
        lat.push((now_ns() - t) / 2);
    }
    drop(s);
    collect(child, "echo");
    Latency::new("Unix socket 1-byte ping-pong (RTT/2)", lat, "same pacing as the shmimage tests")
}

pub fn peer_echo(path: &str) {
    let mut s = UnixStream::connect(path).expect("connect");
    let mut b = [0u8; 1];
    while s.read_exact(&mut b).is_ok() {
        if s.write_all(&b).is_err() {
            break;
        }
    }
    print_result(&[("done", "1".into())]);
}

/// One-way over a Unix stream socket measured exactly like shmimage: the
/// sender writes its CLOCK_MONOTONIC stamp, the receiver subtracts it from
/// its own reading when read returns. Unlike the ping-pong, every sample is
/// a wake-up of a receiver that has been asleep for the whole gap.
pub fn unix_oneway(secs: f64) -> Latency {
    let dir = TmpDir::new();
    let path = dir.0.join("ow.sock");
    let l = UnixListener::bind(&path).expect("bind unix socket");
    let child = peer(&["oneway".into(), path.to_string_lossy().into_owned()]).spawn().expect("spawn peer");
    let (mut s, _) = l.accept().expect("accept");
    let mut jitter = Jitter::new();
    let end = Instant::now() + Duration::from_secs_f64(secs);
    while Instant::now() < end {
        std::thread::sleep(jitter.gap(crate::shm::GAP_US.0, crate::shm::GAP_US.1));
        s.write_all(&now_ns().to_le_bytes()).expect("send stamp");
    }
    drop(s);
    let rep = collect(child, "oneway");
    Latency::new("Unix socket one-way (8-byte stamp)", rep.latencies, "same pacing and stamp as shmimage")
}

pub fn peer_oneway(path: &str) {
    let mut s = UnixStream::connect(path).expect("connect");
    let mut b = [0u8; 8];
    let mut lat = Vec::with_capacity(1 << 16);
    while s.read_exact(&mut b).is_ok() {
        lat.push(now_ns().saturating_sub(u64::from_le_bytes(b)));
    }
    print_latencies(&lat);
    print_result(&[("samples", lat.len().to_string())]);
}
