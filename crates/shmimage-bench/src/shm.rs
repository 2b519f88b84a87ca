//! shmimage between two processes: put_frame, loan/commit, banded frames
//! through EnSight's 25 MiB file, and wake-up latency (futex wait vs polling).

use std::hint::black_box;
use std::time::{Duration, Instant};

use shmimage::layout::ENSIGHT_FILE_SIZE;
use shmimage::{Client, ClientOptions, Error, Server, ServerOptions, StreamFile};

use crate::common::*;

/// How the server produces frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// put_frame from a frame in the server's own memory (one copy).
    Put,
    /// loan a buffer, stamp it, commit: the producer renders in place.
    Loan,
    /// put_frame through a 25 MiB file, so a 4K frame travels in two bands.
    Banded,
    /// put_frame to a client without the monitor thread (NOTHREADS).
    PutNoMonitor,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Mode::Put => "shmimage put_frame",
            Mode::Loan => "shmimage loan+commit",
            Mode::Banded => "shmimage banded (25 MiB file)",
            Mode::PutNoMonitor => "shmimage put_frame, client NOTHREADS",
        }
    }
}

/// A frame of 1x1 pixels ends a run. Its number continues the sequence, so
/// the client's newest-frame rule never drops it as stale.
const END_W: u32 = 1;

fn send_end(server: &Server, number: u32) {
    let px = [0u8; 3];
    for _ in 0..1000 {
        match server.put_frame(number, END_W, 1, &px) {
            Ok(()) => return,
            Err(Error::NoBufferAvailable) => {
                let _ = server.wait_for_buffer(Some(Duration::from_millis(100)));
            }
            Err(e) => panic!("sending the end marker: {e}"),
        }
    }
    panic!("the client never freed a buffer for the end marker");
}

pub fn throughput(size: Size, secs: f64, mode: Mode) -> Tput {
    let file = match mode {
        Mode::Banded => StreamFile::with_len(ENSIGHT_FILE_SIZE),
        _ => StreamFile::for_frame(size.w, size.h),
    }
    .expect("create stream file");
    let server = Server::create(file.path(), ServerOptions::default()).expect("server create");
    let path = file.path().to_string_lossy().into_owned();
    let role = if mode == Mode::PutNoMonitor { "shm-read-nt" } else { "shm-read" };
    let child = peer(&[role.into(), path]).spawn().expect("spawn client peer");
    server.wait_for_client(Some(Duration::from_secs(20))).expect("client connects");

    let frame = pattern(size.bytes());
    let mut times = Vec::with_capacity(1 << 16);
    let mut number = 1u32;
    let end = Instant::now() + Duration::from_secs_f64(secs);
    while Instant::now() < end {
        let t = Instant::now();
        let r = match mode {
            Mode::Put | Mode::Banded | Mode::PutNoMonitor => server.put_frame(number, size.w, size.h, &frame),
            Mode::Loan => server.loan(size.w, size.h).and_then(|mut loan| {
                // Render stand-in: a stamp, so the cost measured is the
                // protocol's, not a renderer's.
                loan.pixels_mut()?[..4].copy_from_slice(&number.to_le_bytes());
                loan.commit(number)
            }),
        };
        match r {
            Ok(()) => {
                times.push(t.elapsed().as_nanos() as u64);
                number = number.wrapping_add(1);
            }
            Err(Error::NoBufferAvailable) => {
                let _ = server.wait_for_buffer(Some(Duration::from_millis(100)));
            }
            Err(e) => panic!("{}: {e}", mode.label()),
        }
    }
    send_end(&server, number);
    let rep = collect(child, mode.label());
    let stats = server.stats();
    let frames = rep.get("frames").unwrap_or(0.0) as u64;
    Tput {
        transport: mode.label().to_owned(),
        size,
        frames,
        secs: rep.get("secs").unwrap_or(0.0),
        producer_ns: Some(median_ns(&mut times)),
        consumer_ns: rep.get("med_ns"),
        note: format!(
            "sent {}, read {}, newer frame replaced {} unread",
            stats.frames_sent,
            frames + 1,
            rep.get("stale").unwrap_or(0.0)
        ),
    }
}

/// Peer: lock every frame, read every byte, unlock; report the rate.
pub fn peer_read(path: &str, monitor_thread: bool) {
    let options = ClientOptions { monitor_thread, ..ClientOptions::default() };
    let client = Client::connect(path, options).expect("client connect");
    let (mut first, mut last, mut n, mut acc) = (None, None, 0u64, 0u64);
    let mut times = Vec::with_capacity(1 << 16);
    loop {
        let frame = match client.wait_frame(Some(Duration::from_secs(10))) {
            Ok(f) => f,
            Err(e) => panic!("client wait: {e}"),
        };
        if frame.width() == END_W {
            break;
        }
        let t = Instant::now();
        acc ^= digest(frame.pixels().expect("frame pixels"));
        drop(frame);
        let done = Instant::now();
        times.push((done - t).as_nanos() as u64);
        first.get_or_insert(done);
        last = Some(done);
        n += 1;
    }
    let stats = client.stats();
    let (frames, secs) = rate_from(first, last, n);
    print_result(&[
        ("frames", frames.to_string()),
        ("secs", format!("{secs:.6}")),
        ("med_ns", format!("{}", median_ns(&mut times))),
        ("stale", stats.frames_stale.to_string()),
        ("partial", stats.frames_partial.to_string()),
        ("digest", black_box(acc).to_string()),
    ]);
}

/// Latency pacing: the server waits a random gap between frames, so the
/// client is asleep (or mid-poll) when each frame is published, as it is for
/// a viewer of a renderer that is slower than the viewer.
pub const GAP_US: (u64, u64) = (200, 1200);

/// Wake-up latency: the server stamps CLOCK_MONOTONIC into a small loaned
/// frame just before commit; the client subtracts it from its own reading
/// once its wait (or poll) hands it the frame.
pub fn latency(secs: f64, client: LatClient) -> Latency {
    let (w, h) = (64u32, 64u32);
    let file = StreamFile::for_frame(w, h).expect("create stream file");
    let server = Server::create(file.path(), ServerOptions::default()).expect("server create");
    let path = file.path().to_string_lossy().into_owned();
    let role = client.role();
    let child = peer(&[role.into(), path]).spawn().expect("spawn client peer");
    server.wait_for_client(Some(Duration::from_secs(20))).expect("client connects");
    let mut jitter = Jitter::new();
    let mut number = 1u32;
    let end = Instant::now() + Duration::from_secs_f64(secs);
    while Instant::now() < end {
        std::thread::sleep(jitter.gap(GAP_US.0, GAP_US.1));
        let r = server.loan(w, h).and_then(|mut loan| {
            loan.pixels_mut()?[..8].copy_from_slice(&now_ns().to_le_bytes());
            loan.commit(number)
        });
        match r {
            Ok(()) => number = number.wrapping_add(1),
            Err(Error::NoBufferAvailable) => {
                let _ = server.wait_for_buffer(Some(Duration::from_millis(100)));
            }
            Err(e) => panic!("latency server: {e}"),
        }
    }
    send_end(&server, number);
    let rep = collect(child, role);
    let (method, note) = match client {
        LatClient::Poll => {
            ("shmimage polling client (lock, else sleep 1 ms)", "what clients of the original library do")
        }
        LatClient::Wait => ("shmimage wait_frame (futex)", "publish (commit) -> wait_frame returns the locked frame"),
        LatClient::WaitNoThreads => (
            "shmimage wait_frame, no monitor thread (futex)",
            "as above with ClientOptions.monitor_thread = false (NOTHREADS)",
        ),
    };
    Latency::new(method, rep.latencies, note)
}

/// The client of a latency test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatClient {
    /// wait_frame with the default options (monitor thread on).
    Wait,
    /// wait_frame without the monitor thread.
    WaitNoThreads,
    /// lock, and sleep 1 ms when there is no frame.
    Poll,
}

impl LatClient {
    fn role(self) -> &'static str {
        match self {
            LatClient::Wait => "shm-wait",
            LatClient::WaitNoThreads => "shm-wait-nt",
            LatClient::Poll => "shm-poll",
        }
    }
}

/// Peer: take frames as soon as the wait (or poll) allows; record latencies.
pub fn peer_latency(path: &str, poll: bool, monitor_thread: bool) {
    let options = ClientOptions { monitor_thread, ..ClientOptions::default() };
    let client = Client::connect(path, options).expect("client connect");
    let mut lat = Vec::with_capacity(1 << 16);
    loop {
        let frame = if poll {
            match client.lock() {
                Ok(f) => f,
                Err(Error::NoFrameAvailable) => {
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                }
                Err(e) => panic!("poll lock: {e}"),
            }
        } else {
            client.wait_frame(Some(Duration::from_secs(10))).expect("client wait")
        };
        let now = now_ns();
        if frame.width() == END_W {
            break;
        }
        let px = frame.pixels().expect("frame pixels");
        let stamp = u64::from_le_bytes(px[..8].try_into().unwrap());
        lat.push(now.saturating_sub(stamp));
    }
    print_latencies(&lat);
    print_result(&[("samples", lat.len().to_string())]);
}

/// put_frame, lock, read, unlock in one thread of one process: the engine's
/// own overhead on top of the copy, without a second core. Set beside the
/// two-process rows it separates what the engine costs from what moving
/// cache lines between cores costs.
pub fn one_thread(size: Size, secs: f64) -> Tput {
    let file = StreamFile::for_frame(size.w, size.h).expect("create stream file");
    let server = Server::create(file.path(), ServerOptions::default()).expect("server create");
    let options = ClientOptions { monitor_thread: false, ..ClientOptions::default() };
    let client = Client::connect(file.path(), options).expect("client connect");
    let frame = pattern(size.bytes());
    let (mut put, mut read) = (Vec::with_capacity(1 << 16), Vec::with_capacity(1 << 16));
    let (t0, mut n, mut acc) = (Instant::now(), 0u32, 0u64);
    let end = t0 + Duration::from_secs_f64(secs);
    while Instant::now() < end {
        let t = Instant::now();
        server.put_frame(n, size.w, size.h, &frame).expect("put_frame");
        let t1 = Instant::now();
        let f = client.lock().expect("lock");
        acc ^= digest(f.pixels().expect("frame pixels"));
        drop(f);
        put.push((t1 - t).as_nanos() as u64);
        read.push(t1.elapsed().as_nanos() as u64);
        n = n.wrapping_add(1);
    }
    black_box(acc);
    Tput {
        transport: "shmimage put+lock+read, one thread".into(),
        size,
        frames: u64::from(n),
        secs: t0.elapsed().as_secs_f64(),
        producer_ns: Some(median_ns(&mut put)),
        consumer_ns: Some(median_ns(&mut read)),
        note: "no second process: engine overhead without cross-core traffic".into(),
    }
}
