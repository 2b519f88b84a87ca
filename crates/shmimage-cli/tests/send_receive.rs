//! `shmimage send` and `shmimage receive` as real processes on 127.0.0.1:
//! raw RTP is pixel-exact, H.264 is above a stated PSNR, a killed sender is
//! reported by the receiver and a restarted sender resumes the stream.
#![cfg(feature = "gst")]
#![allow(clippy::unwrap_used)] // a test's own setup failing is a test failure

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shmimage::native::{self, FrameDesc, PixelFormat, ReaderOptions, WriterOptions};
use shmimage::{Client, ClientOptions};

/// H.264 frames must be at least this close to what was sent.
const MIN_PSNR_DB: f64 = 30.0;
const W: u32 = 320;
const H: u32 = 240;

/// A child killed and reaped on drop; its stderr lines collected.
struct Proc {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    fn spawn(args: &[&str]) -> Proc {
        let mut child = Command::new(env!("CARGO_BIN_EXE_shmimage"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let err = child.stderr.take().unwrap();
        let l = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                l.lock().unwrap().push(line);
            }
        });
        Proc { child, lines }
    }

    fn said(&self, what: &str) -> bool {
        self.lines.lock().unwrap().iter().any(|l| l.contains(what))
    }

    fn log(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// Wait until the process printed `what`, at most `limit`.
    fn wait_for(&self, what: &str, limit: Duration) -> bool {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if self.said(what) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Smooth content (so H.264 and 4:2:0 chroma keep it well) that moves
/// with `n`: triangle waves, no sharp edges.
fn pattern(n: u32) -> Vec<u8> {
    let tri = |t: u32| (255 - ((t % 510) as i32 - 255).abs()) as u8;
    let mut v = Vec::with_capacity((W * H * 3) as usize);
    for y in 0..H {
        for x in 0..W {
            v.push(tri(x + n * 2));
            v.push(tri(y * 2 + n));
            v.push(tri(x + y + n));
        }
    }
    v
}

/// How long ago the writer says its frames were captured: far enough that
/// a receiver stamping its own time instead is caught.
const CAPTURED_AGO: Duration = Duration::from_secs(30);

/// A native writer thread publishing `pattern(n)` every 20 ms until dropped,
/// each frame stamped as captured `CAPTURED_AGO` before it is written.
struct Writer {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    fn start(path: &Path) -> Writer {
        Writer::start_as(path, PixelFormat::Rgb8)
    }

    /// RGB frames are `pattern(n)`; other formats' planes hold `plane_pattern`.
    fn start_as(path: &Path, format: PixelFormat) -> Writer {
        let options = WriterOptions::for_frame(format, W, H).unwrap();
        let writer = native::Writer::create(path, &options).unwrap();
        let desc = FrameDesc::new(format, W, H).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let ago = CAPTURED_AGO.as_nanos() as u64;
            let mut n = 0u32;
            while !s.load(Ordering::Relaxed) {
                n = n.wrapping_add(1);
                let Ok(mut loan) = writer.loan(&desc, Some(Duration::from_millis(100))) else { continue };
                for (i, p) in desc.planes().iter().enumerate() {
                    let px = if format == PixelFormat::Rgb8 { pattern(n % 200) } else { plane_pattern(n % 200, i, p) };
                    let dst = loan.plane_mut(i).unwrap();
                    for (r, row) in px.chunks(p.row_bytes as usize).enumerate() {
                        let stride = p.stride as usize;
                        dst[r * stride..r * stride + row.len()].copy_from_slice(row);
                    }
                }
                loan.set_capture_time(
                    native::now_mono_ns().saturating_sub(ago),
                    native::now_real_ns().saturating_sub(ago),
                );
                let _ = loan.commit();
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Writer { stop, thread: Some(thread) }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Unpadded bytes of plane `i` of frame `n` (any format but RGB).
fn plane_pattern(n: u32, i: usize, p: &native::Plane) -> Vec<u8> {
    let mut v = Vec::new();
    for y in 0..p.rows {
        for x in 0..p.row_bytes {
            v.push((x * 3 + y * 5 + n * 7 + i as u32 * 11) as u8);
        }
    }
    v
}

/// A received frame: format, size, planes' rows unpadded, capture time (CLOCK_REALTIME ns).
type Got = (PixelFormat, u32, u32, Vec<u8>, u64);

/// Read `n` frames from the native stream at `path` (RGB rows unpadded),
/// opening it again if the receiver makes it anew; gives up after `limit`.
fn read_frames(path: &Path, n: usize, limit: Duration) -> Vec<Got> {
    let end = Instant::now() + limit;
    let mut got = Vec::new();
    while got.len() < n && Instant::now() < end {
        let Ok(reader) = native::Reader::open(path, &ReaderOptions::default()) else {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        while got.len() < n && Instant::now() < end {
            match reader.read(Some(Duration::from_millis(200))) {
                Ok(f) => {
                    let mut px = Vec::new();
                    for (i, p) in f.desc().planes().iter().enumerate() {
                        let plane = f.plane(i).unwrap();
                        for r in 0..p.rows as usize {
                            let start = r * p.stride as usize;
                            px.extend_from_slice(&plane[start..start + p.row_bytes as usize]);
                        }
                    }
                    got.push((f.format(), f.width(), f.height(), px, f.timestamps().capture_real_ns));
                }
                Err(native::Error::NoFrameAvailable) => {}
                Err(_) => break,
            }
        }
    }
    got
}

/// Read `n` frames from the 1.0 stream at `path`.
fn read_ensight_frames(path: &Path, n: usize, limit: Duration) -> Vec<(u32, u32, Vec<u8>)> {
    let end = Instant::now() + limit;
    let mut got = Vec::new();
    while got.len() < n && Instant::now() < end {
        let Ok(client) = Client::connect(path, ClientOptions::default()) else {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        while got.len() < n && Instant::now() < end {
            match client.wait_frame(Some(Duration::from_millis(200))) {
                Ok(f) => got.push((f.width(), f.height(), f.pixels().unwrap().to_vec())),
                Err(shmimage::Error::NoFrameAvailable) => {}
                Err(_) => break,
            }
        }
    }
    got
}

fn psnr(a: &[u8], b: &[u8]) -> f64 {
    let mse = a.iter().zip(b).map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2)).sum::<f64>() / a.len() as f64;
    if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0f64 * 255.0 / mse).log10()
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    sent: PathBuf,
    received: PathBuf,
    port: String,
}

fn setup() -> Setup {
    let dir = tempfile::Builder::new().prefix("shmimage-send-test-").tempdir_in("/dev/shm").unwrap();
    let sent = dir.path().join("sent");
    let received = dir.path().join("received");
    Setup { sent, received, port: free_port().to_string(), _dir: dir }
}

fn receiver(s: &Setup, extra: &[&str]) -> Proc {
    let mut args = vec!["receive", s.received.to_str().unwrap(), "--listen", &s.port, "--bind", "127.0.0.1"];
    args.extend_from_slice(extra);
    let r = Proc::spawn(&args);
    assert!(r.wait_for("listening", Duration::from_secs(20)), "receiver: {}", r.log());
    r
}

fn sender(s: &Setup, codec: &str) -> Proc {
    let to = format!("127.0.0.1:{}", s.port);
    Proc::spawn(&["send", s.sent.to_str().unwrap(), "--to", &to, "--codec", codec])
}

#[test]
fn raw_rtp_delivers_pixel_exact_frames() {
    let s = setup();
    let _writer = Writer::start(&s.sent);
    let r = receiver(&s, &[]);
    let _tx = sender(&s, "raw");
    let frames = read_frames(&s.received, 20, Duration::from_secs(60));
    assert_eq!(frames.len(), 20, "receiver: {}", r.log());
    let reference: Vec<Vec<u8>> = (0..200).map(pattern).collect();
    let now = native::now_real_ns();
    for (format, w, h, px, captured) in &frames {
        assert_eq!((*format, *w, *h), (PixelFormat::Rgb8, W, H));
        assert!(reference.iter().any(|r| r == px), "a received frame matches no sent frame");
        // The sender's capture time came along, not the time of arrival
        // (half the margin allows for transit on a loaded machine).
        let ago = Duration::from_nanos(now.saturating_sub(*captured));
        assert!(ago.abs_diff(CAPTURED_AGO) < CAPTURED_AGO / 2, "captured {ago:?} ago, sent as {CAPTURED_AGO:?}");
    }
}

/// NV12 travels as I420 (what rtpvrawpay carries) and is written as NV12
/// again, pixel-exact.
#[test]
fn raw_rtp_restores_the_senders_format() {
    let s = setup();
    let _writer = Writer::start_as(&s.sent, PixelFormat::Nv12);
    let r = receiver(&s, &[]);
    let _tx = sender(&s, "raw");
    let frames = read_frames(&s.received, 10, Duration::from_secs(60));
    assert_eq!(frames.len(), 10, "receiver: {}", r.log());
    let desc = FrameDesc::new(PixelFormat::Nv12, W, H).unwrap();
    let reference: Vec<Vec<u8>> = (0..200)
        .map(|n| desc.planes().iter().enumerate().flat_map(|(i, p)| plane_pattern(n, i, p)).collect())
        .collect();
    for (format, w, h, px, _) in &frames {
        assert_eq!((*format, *w, *h), (PixelFormat::Nv12, W, H));
        assert!(reference.iter().any(|r| r == px), "a received frame matches no sent frame");
    }
}

#[test]
fn receive_ensight_writes_a_1_0_stream() {
    let s = setup();
    let _writer = Writer::start(&s.sent);
    let r = receiver(&s, &["--ensight"]);
    let _tx = sender(&s, "raw");
    let frames = read_ensight_frames(&s.received, 10, Duration::from_secs(60));
    assert_eq!(frames.len(), 10, "receiver: {}", r.log());
    let reference: Vec<Vec<u8>> = (0..200).map(pattern).collect();
    for (w, h, px) in &frames {
        assert_eq!((*w, *h), (W, H));
        assert!(reference.iter().any(|r| r == px), "a received frame matches no sent frame");
    }
}

#[test]
fn h264_delivers_frames_above_the_stated_psnr() {
    let s = setup();
    let _writer = Writer::start(&s.sent);
    let r = receiver(&s, &[]);
    let _tx = sender(&s, "h264");
    let frames = read_frames(&s.received, 20, Duration::from_secs(60));
    assert_eq!(frames.len(), 20, "receiver: {}", r.log());
    let reference: Vec<Vec<u8>> = (0..200).map(pattern).collect();
    let mut worst = f64::INFINITY;
    for (format, w, h, px, _) in &frames {
        assert_eq!((*format, *w, *h), (PixelFormat::Rgb8, W, H), "the sender's format is restored");
        let best = reference.iter().map(|r| psnr(r, px)).fold(0.0, f64::max);
        assert!(best >= MIN_PSNR_DB, "PSNR {best:.1} dB < {MIN_PSNR_DB} dB");
        worst = worst.min(best);
    }
    eprintln!("H.264 at the default bit rate: worst frame {worst:.1} dB PSNR");
}

#[test]
fn a_killed_sender_is_reported_and_a_restarted_one_resumes() {
    let s = setup();
    let _writer = Writer::start(&s.sent);
    let r = receiver(&s, &[]);
    let mut tx = sender(&s, "raw");
    assert_eq!(read_frames(&s.received, 5, Duration::from_secs(60)).len(), 5, "receiver: {}", r.log());
    tx.kill9();
    assert!(r.wait_for("sender disconnected", Duration::from_secs(20)), "receiver: {}", r.log());
    assert!(r.wait_for_count("listening", 2, Duration::from_secs(20)), "receiver: {}", r.log());
    let _tx2 = sender(&s, "raw");
    let frames = read_frames(&s.received, 5, Duration::from_secs(60));
    assert_eq!(frames.len(), 5, "no frames after the restart; receiver: {}", r.log());
}

impl Proc {
    fn wait_for_count(&self, what: &str, count: usize, limit: Duration) -> bool {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if self.lines.lock().unwrap().iter().filter(|l| l.contains(what)).count() >= count {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}
