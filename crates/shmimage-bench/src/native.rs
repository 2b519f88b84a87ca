//! The native stream (shmimage/2) with several reader processes (issue 12):
//! the writer's loan+commit with 1, 2, 4 and 8 readers reading, each
//! reader's take+read+release of a 1080p frame against a plain read of the
//! same bytes, and wake-up latency with 1, 2 and 4 sleeping readers. The
//! iceoryx2 counterparts are in `ice_native.rs`; both share the reader's
//! bookkeeping here ([`Meter`]) and the writer's loop shape, so the two
//! systems do the same work per frame.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use shmimage::native::{
    now_mono_ns, Error as NativeError, FrameDesc, FrameInfo, PixelFormat, Reader, ReaderOptions, Writer, WriterOptions,
};

use crate::common::*;
use crate::results::{FanoutRow, WakeRow};

/// The frame of the fan-out test: 1080p RGB, as in the suite's other rows.
pub const SIZE: Size = SIZES[1];
/// Reader counts of the fan-out test.
pub const FANOUT_READERS: [u32; 4] = [1, 2, 4, 8];
/// Reader counts of the wake-up test.
pub const WAKE_READERS: [u32; 3] = [1, 2, 4];
/// The wake-up test's writer publishes a tiny frame this often, so every
/// reader is asleep when it comes.
pub const WAKE_GAP: Duration = Duration::from_millis(2);
/// Slots of the fan-out stream for `readers` readers: the fewest with which
/// a loan never waits, so the loan+commit column is the protocol's cost,
/// not back-pressure: each reader holds at most one slot, one more keeps the
/// newest frame and one is loaned. (More would not change the readers'
/// rates: the writer reuses the slot given back last, so the working set is
/// what the readers hold. Before it did, with least-recently-written reuse,
/// 10 slots doubled one reader's time per frame against 3.) iceoryx2 sizes
/// its pool the same way: 2N + 1 samples for N subscribers (`ice_native.rs`).
pub fn slots(readers: u32) -> u32 {
    readers + 2
}
const ATTACH_TIMEOUT: Duration = Duration::from_secs(20);

pub const SYSTEM: &str = "shmimage native";

/// A stream file in /dev/shm removed when the test ends.
struct TempPath(PathBuf);

impl TempPath {
    fn new(what: &str) -> TempPath {
        let dir = if Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
        TempPath(dir.join(format!("shmimage-bench-{what}-{}-{}", std::process::id(), now_ns())))
    }

    fn arg(&self) -> String {
        self.0.to_string_lossy().into_owned()
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Start `n` reader peers and wait until all of them have joined, so no
/// frame is published before every reader can take it.
fn start_readers(w: &Writer, role: &str, path: &str, n: u32, extra: &[String]) -> Vec<Child> {
    let mut args = vec![role.to_owned(), path.to_owned()];
    args.extend_from_slice(extra);
    let children: Vec<Child> = (0..n).map(|_| peer(&args).spawn().expect("spawn native reader peer")).collect();
    let t0 = Instant::now();
    while (w.readers().len() as u32) < n {
        assert!(t0.elapsed() < ATTACH_TIMEOUT, "{n} native readers did not join within {ATTACH_TIMEOUT:?}");
        std::thread::sleep(Duration::from_millis(2));
    }
    children
}

/// What the writer does for every frame of the fan-out tests, shared with
/// iceoryx2: draw the whole frame into the loaned memory (a renderer's or a
/// camera's work, not timed) with the frame number in its first bytes, so
/// every frame differs.
pub fn draw(dst: &mut [u8], frame: &[u8], number: u64) {
    dst.copy_from_slice(frame);
    stamp(dst, number);
}

/// The frame number in a drawn frame's first bytes.
pub fn stamp(dst: &mut [u8], number: u64) {
    dst[..8].copy_from_slice(&number.to_le_bytes());
}

/// Writer: loan, draw, commit, as fast as it goes for `secs`; only loan and
/// commit are timed. Readers take the newest frame each, so the writer is
/// never held back (see `slots`).
pub fn fanout(readers: u32, secs: f64) -> FanoutRow {
    let path = TempPath::new("fanout");
    let desc = FrameDesc::packed(PixelFormat::Rgb8, SIZE.w, SIZE.h).expect("1080p RGB descriptor");
    let options = WriterOptions { slots: slots(readers), slot_bytes: desc.len(), ..WriterOptions::default() };
    let w = Writer::create(&path.0, &options).expect("create the native stream");
    let children = start_readers(&w, "native-read", &path.arg(), readers, &[SIZE.bytes().to_string()]);
    let frame = pattern(SIZE.bytes());
    let mut times = Times::default();
    let (t0, mut sent, mut no_slot) = (Instant::now(), 0u64, 0u64);
    let end = t0 + Duration::from_secs_f64(secs);
    while Instant::now() < end {
        let t = Instant::now();
        let mut loan = match w.loan(&desc, Some(Duration::from_millis(100))) {
            Ok(l) => l,
            Err(NativeError::NoSlotAvailable) => {
                no_slot += 1;
                continue;
            }
            Err(e) => panic!("native loan: {e}"),
        };
        let loaned = t.elapsed();
        draw(loan.pixels_mut(), &frame, sent);
        let c = Instant::now();
        loan.commit().expect("native commit");
        times.push(loaned, c.elapsed());
        sent += 1;
    }
    let writer_secs = t0.elapsed().as_secs_f64();
    // The readers see the writer gone once they have the newest frame.
    drop(w);
    let reports: Vec<PeerReport> = children.into_iter().map(|c| collect(c, "native reader")).collect();
    let note = format!("{} slots, no slot {no_slot}", slots(readers));
    fanout_row(SYSTEM, readers, sent, writer_secs, times, &reports, note)
}

/// The writer's per-frame times: the loan, and the commit (send + notify).
#[derive(Debug, Default)]
pub struct Times {
    loan: Vec<u64>,
    commit: Vec<u64>,
    both: Vec<u64>,
}

impl Times {
    pub fn push(&mut self, loan: Duration, commit: Duration) {
        self.loan.push(loan.as_nanos() as u64);
        self.commit.push(commit.as_nanos() as u64);
        self.both.push((loan + commit).as_nanos() as u64);
    }
}

/// One fan-out row from the writer's numbers and the readers' reports.
pub fn fanout_row(
    system: &str,
    readers: u32,
    sent: u64,
    writer_secs: f64,
    mut times: Times,
    reports: &[PeerReport],
    note: String,
) -> FanoutRow {
    let each = |k: &str| reports.iter().map(|r| r.get(k).unwrap_or(f64::NAN)).collect::<Vec<f64>>();
    let waited: f64 = each("waited").iter().filter(|x| x.is_finite()).sum();
    let read: f64 = each("frames").iter().filter(|x| x.is_finite()).sum();
    FanoutRow {
        system: system.to_owned(),
        size: SIZE.name.to_owned(),
        frame_bytes: SIZE.bytes() as u64,
        readers,
        writer_frames: sent,
        writer_frames_per_s: if writer_secs > 0.0 { sent as f64 / writer_secs } else { 0.0 },
        publish_us: median_ns(&mut times.both) / 1e3,
        loan_us: median_ns(&mut times.loan) / 1e3,
        commit_us: median_ns(&mut times.commit) / 1e3,
        read_us: each("read_ns").into_iter().map(|v| v / 1e3).collect(),
        plain_us: each("plain_ns").into_iter().map(|v| v / 1e3).collect(),
        frames_per_s: each("frames").iter().zip(each("secs")).map(|(f, s)| f / s).collect(),
        note: format!("{note}; sent {sent}, read {read:.0} in all, {waited:.0} reads waited for a frame"),
    }
}

/// A reader's bookkeeping, the same for shmimage and iceoryx2: each frame
/// taken is read in full and released, then a private buffer of the same
/// size is read, so the frame and the plain read are timed in the same
/// process under the same load, alternately.
pub struct Meter {
    plain: Vec<u8>,
    frame_ns: Vec<u64>,
    plain_ns: Vec<u64>,
    first: Option<Instant>,
    last: Option<Instant>,
    frames: u64,
    /// Frames that were not there when asked for: the reader slept for them.
    pub waited: u64,
    acc: u64,
}

impl Meter {
    pub fn new(bytes: usize) -> Meter {
        Meter {
            plain: pattern(bytes),
            frame_ns: Vec::with_capacity(1 << 16),
            plain_ns: Vec::with_capacity(1 << 16),
            first: None,
            last: None,
            frames: 0,
            waited: 0,
            acc: 0,
        }
    }

    /// Time `read` (which reads every byte of a frame it holds and releases
    /// it) from `start`, then one plain read.
    pub fn frame(&mut self, start: Instant, read: impl FnOnce() -> u64) {
        self.acc ^= read();
        let done = Instant::now();
        self.frame_ns.push((done - start).as_nanos() as u64);
        self.first.get_or_insert(done);
        self.last = Some(done);
        self.frames += 1;
        let t = Instant::now();
        self.acc ^= digest(black_box(&self.plain));
        self.plain_ns.push(t.elapsed().as_nanos() as u64);
    }

    pub fn report(mut self) {
        let (frames, secs) = rate_from(self.first, self.last, self.frames);
        print_result(&[
            ("frames", frames.to_string()),
            ("secs", format!("{secs:.6}")),
            ("read_ns", format!("{}", median_ns(&mut self.frame_ns))),
            ("plain_ns", format!("{}", median_ns(&mut self.plain_ns))),
            ("waited", self.waited.to_string()),
            ("digest", black_box(self.acc).to_string()),
        ]);
    }
}

/// Peer: take the newest frame, read every byte, release; until the writer
/// is gone. A frame ready at once is timed from the take; one that had to
/// be waited for from the moment the wait returned it (the wait is not the
/// read's cost).
pub fn peer_read(path: &str, bytes: usize) {
    let r = Reader::open(path, &ReaderOptions::default()).expect("join the native stream");
    let mut m = Meter::new(bytes);
    loop {
        let t = Instant::now();
        let (f, t) = match r.read(Some(Duration::ZERO)) {
            Ok(f) => (f, t),
            Err(NativeError::NoFrameAvailable) => match r.read(Some(Duration::from_secs(10))) {
                Ok(f) => {
                    m.waited += 1;
                    (f, Instant::now())
                }
                Err(NativeError::WriterGone { .. }) => break,
                Err(e) => panic!("native reader wait: {e}"),
            },
            Err(NativeError::WriterGone { .. }) => break,
            Err(e) => panic!("native reader: {e}"),
        };
        if f.pixels().len() != bytes {
            panic!("native reader: a frame of {} bytes, expected {bytes}", f.pixels().len());
        }
        m.frame(t, move || {
            let d = digest(f.pixels());
            drop(f);
            d
        });
    }
    m.report();
}

/// Wake-up: the writer puts an 8x8 grey frame every WAKE_GAP; each reader,
/// asleep in `read`, subtracts the frame's publish time (CLOCK_MONOTONIC,
/// stamped by commit) from its own clock once `read` hands it the frame.
pub fn wake(readers: u32, secs: f64) -> WakeRow {
    let path = TempPath::new("wake");
    let options = WriterOptions { slots: 4, slot_bytes: 4096, ..WriterOptions::default() };
    let w = Writer::create(&path.0, &options).expect("create the native stream");
    let children = start_readers(&w, "native-wait", &path.arg(), readers, &[]);
    let desc = FrameDesc::packed(PixelFormat::Gray8, 8, 8).expect("8x8 descriptor");
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let mut puts = Vec::with_capacity(1 << 12);
    while Instant::now() < end {
        std::thread::sleep(WAKE_GAP);
        let t = Instant::now();
        w.put(&desc, &[1; 64], &FrameInfo::default()).expect("native put");
        puts.push(t.elapsed().as_nanos() as u64);
    }
    drop(w);
    let each: Vec<Vec<u64>> = children.into_iter().map(|c| collect(c, "native wake reader").latencies).collect();
    let note =
        format!("{} frames, one every {} ms; commit -> read returns the frame", puts.len(), WAKE_GAP.as_millis());
    WakeRow::from_samples(SYSTEM, readers, each, median_ns(&mut puts), &note)
}

/// Peer of the wake-up test: sleep in `read`, record now minus the publish
/// time; until the writer is gone.
pub fn peer_wait(path: &str) {
    let r = Reader::open(path, &ReaderOptions::default()).expect("join the native stream");
    let mut lat = Vec::with_capacity(1 << 14);
    loop {
        match r.read(Some(Duration::from_secs(10))) {
            Ok(f) => lat.push(now_mono_ns().saturating_sub(f.timestamps().publish_mono_ns)),
            Err(NativeError::WriterGone { .. }) => break,
            Err(e) => panic!("native wake reader: {e}"),
        }
    }
    print_latencies(&lat);
    print_result(&[("samples", lat.len().to_string())]);
}
