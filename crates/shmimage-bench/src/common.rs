//! Pieces every measurement shares: sizes, the clock, reading a frame, the
//! peer process, and the records a run produces.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

/// One frame geometry of the suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    pub name: &'static str,
    pub w: u32,
    pub h: u32,
}

impl Size {
    pub fn bytes(&self) -> usize {
        self.w as usize * self.h as usize * 3
    }
}

pub const SIZES: [Size; 3] = [
    Size { name: "720p", w: 1280, h: 720 },
    Size { name: "1080p", w: 1920, h: 1080 },
    Size { name: "4K", w: 3840, h: 2160 },
];

pub fn size_by_name(s: &str) -> Option<Size> {
    let s = s.trim();
    SIZES.iter().copied().find(|z| z.name.eq_ignore_ascii_case(s)).or_else(|| {
        // Also accept WxH for a geometry outside the presets.
        let (w, h) = s.split_once('x')?;
        let (w, h) = (w.parse().ok()?, h.parse().ok()?);
        let name: &'static str = Box::leak(s.to_owned().into_boxed_str());
        Some(Size { name, w, h })
    })
}

/// CLOCK_MONOTONIC in nanoseconds. Unlike `Instant`, its value means the same
/// in every process on the machine, so a stamp written by one process can be
/// subtracted from a reading taken in another.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Touch every byte of a frame, as cheaply as memory allows: four independent
/// 64-bit accumulators let the compiler vectorise and keep the loop bound by
/// memory bandwidth, which is what "read the frame" should cost.
#[inline(never)]
pub fn digest(bytes: &[u8]) -> u64 {
    let mut acc = [0u64; 4];
    let mut chunks = bytes.chunks_exact(32);
    for c in &mut chunks {
        for (i, a) in acc.iter_mut().enumerate() {
            let word = u64::from_le_bytes(c[i * 8..i * 8 + 8].try_into().unwrap());
            *a ^= word;
        }
    }
    let mut tail = 0u64;
    for (i, &b) in chunks.remainder().iter().enumerate() {
        tail ^= u64::from(b) << ((i % 8) * 8);
    }
    acc[0] ^ acc[1].rotate_left(1) ^ acc[2].rotate_left(2) ^ acc[3].rotate_left(3) ^ tail
}

/// A frame with content that no page-dedup or zero-page trick can shortcut.
pub fn pattern(len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for c in v.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let b = x.to_le_bytes();
        c.copy_from_slice(&b[..c.len()]);
    }
    v
}

/// Small deterministic jitter source for pacing the latency tests.
#[derive(Debug)]
pub struct Jitter(u64);

impl Jitter {
    pub fn new() -> Jitter {
        Jitter(0x2545_F491_4F6C_DD1D)
    }

    /// A gap in [lo, hi) microseconds.
    pub fn gap(&mut self, lo_us: u64, hi_us: u64) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        Duration::from_micros(lo_us + self.0 % (hi_us - lo_us))
    }
}

/// The peer process: this same binary, re-executed in a hidden role.
pub fn peer(args: &[String]) -> Command {
    let exe = std::env::current_exe().expect("cannot find this executable to start the peer");
    let mut c = Command::new(exe);
    c.arg("__peer").args(args).stdout(Stdio::piped()).stderr(Stdio::inherit());
    c
}

/// What a consumer peer reports on its stdout, as `key=value` words after
/// `RESULT`, plus optional `LAT` lines of latency samples in nanoseconds.
#[derive(Debug, Default, Clone)]
pub struct PeerReport {
    pub fields: Vec<(String, String)>,
    pub latencies: Vec<u64>,
}

impl PeerReport {
    pub fn get(&self, key: &str) -> Option<f64> {
        self.fields.iter().find(|(k, _)| k == key).and_then(|(_, v)| v.parse().ok())
    }
}

pub fn print_result(fields: &[(&str, String)]) {
    let words: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!("RESULT {}", words.join(" "));
}

pub fn print_latencies(samples: &[u64]) {
    for chunk in samples.chunks(64) {
        let words: Vec<String> = chunk.iter().map(u64::to_string).collect();
        println!("LAT {}", words.join(" "));
    }
}

/// Read a finished peer's report; panics with its exit status when it failed.
pub fn collect(mut child: Child, what: &str) -> PeerReport {
    let out = child.stdout.take().expect("peer stdout is piped");
    let report = parse_report(out);
    let status = child.wait().expect("wait for peer");
    assert!(status.success(), "{what}: peer process failed ({status})");
    report
}

pub fn parse_report(out: ChildStdout) -> PeerReport {
    let mut r = PeerReport::default();
    for line in BufReader::new(out).lines() {
        let Ok(line) = line else { break };
        if let Some(rest) = line.strip_prefix("RESULT ") {
            for w in rest.split_whitespace() {
                if let Some((k, v)) = w.split_once('=') {
                    r.fields.push((k.to_owned(), v.to_owned()));
                }
            }
        } else if let Some(rest) = line.strip_prefix("LAT ") {
            r.latencies.extend(rest.split_whitespace().filter_map(|w| w.parse::<u64>().ok()));
        }
    }
    r
}

/// Read exactly `buf.len()` bytes; false at a clean or mid-frame end of stream.
pub fn read_frame(src: &mut impl Read, buf: &mut [u8]) -> bool {
    src.read_exact(buf).is_ok()
}

/// Median of durations in nanoseconds (0 for none).
pub fn median_ns(v: &mut [u64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_unstable();
    v[v.len() / 2] as f64
}

/// The p-th quantile (0..1) by nearest rank.
pub fn quantile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64
}

/// One throughput measurement.
#[derive(Debug, Clone)]
pub struct Tput {
    pub transport: String,
    pub size: Size,
    /// Frames delivered (and read in full, unless `note` says otherwise).
    pub frames: u64,
    pub secs: f64,
    /// Median producer cost of one frame, ns (memcpy: the copy).
    pub producer_ns: Option<f64>,
    /// Median consumer cost of one frame, ns.
    pub consumer_ns: Option<f64>,
    pub note: String,
}

impl Tput {
    pub fn fps(&self) -> f64 {
        if self.secs > 0.0 {
            self.frames as f64 / self.secs
        } else {
            0.0
        }
    }

    pub fn gbps(&self) -> f64 {
        self.fps() * self.size.bytes() as f64 / 1e9
    }
}

/// One latency measurement, samples in ns.
#[derive(Debug, Clone)]
pub struct Latency {
    pub method: String,
    pub sorted: Vec<u64>,
    pub note: String,
}

impl Latency {
    pub fn new(method: &str, mut samples: Vec<u64>, note: &str) -> Latency {
        samples.sort_unstable();
        Latency { method: method.to_owned(), sorted: samples, note: note.to_owned() }
    }

    pub fn p(&self, q: f64) -> f64 {
        quantile(&self.sorted, q)
    }
}

/// Frames per second from the completion times of consecutive frames: the
/// first frame only starts the clock, so start-up is not counted.
pub fn rate_from(first: Option<std::time::Instant>, last: Option<std::time::Instant>, frames: u64) -> (u64, f64) {
    match (first, last) {
        (Some(a), Some(b)) if frames > 1 => (frames - 1, (b - a).as_secs_f64()),
        _ => (0, 0.0),
    }
}
