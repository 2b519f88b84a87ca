//! shmimage-bench: shmimage between two real processes against the physical
//! limit (memcpy) and what a user would otherwise pick (Unix socket, pipe,
//! TCP loopback, GStreamer shm, iceoryx2), in one run, as a markdown table
//! with ratios and a PNG plot.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

mod common;
mod gst;
#[cfg(feature = "iceoryx2")]
mod ice;
#[cfg(feature = "iceoryx2")]
mod ice_native;
mod native;
mod pipeline;
#[cfg(feature = "plot")]
mod plot;
mod report;
mod results;
mod shm;
mod streams;

use common::*;

const USAGE: &str = "\
usage: shmimage-bench [--quick] [--seconds S] [--sizes 720p,1080p,4K] [--out DIR] [--skip LIST]
       shmimage-bench --replot FILE.json

  --quick        short run for smoke tests (0.3 s per measurement)
  --seconds S    seconds per throughput measurement (default 3); latency tests run 2 S
  --sizes LIST   comma-separated: 720p, 1080p, 4K or WxH (default all three)
  --out DIR      where bench.md, bench.json and bench.png go (default target/bench)
  --skip LIST    comma-separated parts to leave out: latency, gst, iceoryx2, streams, banded, pipeline,
                 native, plot (native: the native stream with 1-8 reader processes at 1080p,
                 against iceoryx2 unless iceoryx2 is skipped too)
  --replot FILE  measure nothing: redraw the plot from a run's saved bench.json into the
                 PNG of the same name beside it (docs/img/bench.json -> docs/img/bench.png)
";

#[derive(Debug)]
pub struct Args {
    pub seconds: f64,
    pub sizes: Vec<Size>,
    pub out: PathBuf,
    pub skip: Vec<String>,
    /// Redraw the plot from this bench.json instead of measuring.
    pub replot: Option<PathBuf>,
}

impl Args {
    fn skips(&self, part: &str) -> bool {
        self.skip.iter().any(|s| s == part)
    }
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut a = Args {
        seconds: 3.0,
        sizes: SIZES.to_vec(),
        out: PathBuf::from("target/bench"),
        skip: Vec::new(),
        replot: None,
    };
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--quick" => a.seconds = 0.3,
            "--seconds" => {
                a.seconds = value("--seconds")?.parse().map_err(|e| format!("--seconds: {e}"))?;
                if a.seconds.is_nan() || a.seconds <= 0.0 {
                    return Err("--seconds must be > 0".into());
                }
            }
            "--sizes" => {
                let v = value("--sizes")?;
                a.sizes = v
                    .split(',')
                    .map(|s| size_by_name(s).ok_or(format!("unknown size {s:?}")))
                    .collect::<Result<_, _>>()?;
            }
            "--out" => a.out = PathBuf::from(value("--out")?),
            "--replot" => a.replot = Some(PathBuf::from(value("--replot")?)),
            "--skip" => a.skip = value("--skip")?.split(',').map(|s| s.trim().to_owned()).collect(),
            "-h" | "--help" => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(a)
}

fn main() {
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some("__peer") {
        args.next();
        let v: Vec<String> = args.collect();
        run_peer(&v);
        return;
    }
    let a = match parse_args(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("shmimage-bench: {e}");
            std::process::exit(2);
        }
    };
    if let Some(json) = &a.replot {
        if let Err(e) = replot(json) {
            eprintln!("shmimage-bench: {e}");
            std::process::exit(1);
        }
        return;
    }
    run(&a);
}

/// The PNG that goes with a bench.json: same place, same name.
#[cfg(feature = "plot")]
fn png_beside(json: &std::path::Path) -> PathBuf {
    json.with_extension("png")
}

#[cfg(feature = "plot")]
fn replot(json: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let r = results::Results::load(json)?;
    let png = png_beside(json);
    plot::draw(&png, &r).map_err(|e| format!("cannot draw {}: {e}", png.display()))?;
    eprintln!("wrote {} from {}", png.display(), json.display());
    Ok(())
}

#[cfg(not(feature = "plot"))]
fn replot(_json: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    Err("--replot: this binary was built without the `plot` feature".into())
}

fn run_peer(v: &[String]) {
    let arg = |i: usize| v.get(i).map(String::as_str).unwrap_or_default();
    match arg(0) {
        "shm-read" => shm::peer_read(arg(1), true),
        "shm-read-nt" => shm::peer_read(arg(1), false),
        "reader" => reader_peer(arg(1).parse().expect("frame bytes")),
        "shm-wait" => shm::peer_latency(arg(1), false, true),
        "shm-wait-nt" => shm::peer_latency(arg(1), false, false),
        "shm-poll" => shm::peer_latency(arg(1), true, true),
        "oneway" => streams::peer_oneway(arg(1)),
        "stream-read" => streams::peer_read(arg(1), arg(2), arg(3).parse().expect("frame bytes")),
        "echo" => streams::peer_echo(arg(1)),
        #[cfg(feature = "iceoryx2")]
        "ice-read" => ice::peer_read(arg(1), arg(2).parse().expect("frame bytes")),
        #[cfg(feature = "iceoryx2")]
        "ice-wait" => ice::peer_latency(arg(1), 1),
        "native-read" => native::peer_read(arg(1), arg(2).parse().expect("frame bytes")),
        "native-wait" => native::peer_wait(arg(1)),
        #[cfg(feature = "iceoryx2")]
        "ice-fan-read" => {
            ice_native::peer_read(arg(1), arg(2).parse().expect("frame bytes"), arg(3).parse().expect("subscribers"))
        }
        #[cfg(feature = "iceoryx2")]
        "ice-fan-wait" => ice::peer_latency(arg(1), arg(2).parse().expect("subscribers")),
        other => panic!("unknown peer role {other:?}"),
    }
}

fn progress(what: &str, size: Option<Size>) {
    match size {
        Some(s) => eprintln!("  {what} @ {} ...", s.name),
        None => eprintln!("  {what} ..."),
    }
}

fn run(a: &Args) {
    let started = Instant::now();
    let secs = a.seconds;
    let mut tput: Vec<Tput> = Vec::new();
    let mut lat: Vec<Latency> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let gst_ok = !a.skips("gst") && gst::available();
    if !a.skips("gst") && !gst_ok {
        notes.push("GStreamer: gst-launch-1.0 or the shm/videotestsrc plugins are missing (apt-get install gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-bad); not measured.".into());
    }
    #[cfg(not(feature = "iceoryx2"))]
    if !a.skips("iceoryx2") {
        notes.push("iceoryx2: this binary was built without the `iceoryx2` feature; not measured.".into());
    }
    eprintln!("shmimage-bench: {} s per throughput measurement", secs);
    for &size in &a.sizes {
        progress("memcpy", Some(size));
        tput.push(memcpy(size, secs));
        progress("memcpy while another process reads", Some(size));
        tput.push(memcpy_loaded(size, secs));
        progress("read (digest)", Some(size));
        tput.push(read_only(size, secs));
        if !a.skips("pipeline") {
            progress("pipeline copy", Some(size));
            tput.push(pipeline::run(size, secs, false));
            if pipeline::nt_available() {
                progress("pipeline copy, streaming stores", Some(size));
                tput.push(pipeline::run(size, secs, true));
            }
        }
        progress("shmimage put_frame", Some(size));
        tput.push(shm::throughput(size, secs, shm::Mode::Put));
        progress("shmimage put+lock+read, one thread", Some(size));
        tput.push(shm::one_thread(size, secs));
        progress("shmimage put_frame, client NOTHREADS", Some(size));
        tput.push(shm::throughput(size, secs, shm::Mode::PutNoMonitor));
        progress("shmimage loan+commit", Some(size));
        tput.push(shm::throughput(size, secs, shm::Mode::Loan));
        if !a.skips("banded") && size.bytes() as u64 * 2 + 48 > shmimage::layout::ENSIGHT_FILE_SIZE {
            progress("shmimage banded", Some(size));
            tput.push(shm::throughput(size, secs, shm::Mode::Banded));
        }
        if !a.skips("streams") {
            for k in [streams::Kind::Unix, streams::Kind::Pipe, streams::Kind::Tcp] {
                progress(k.label(), Some(size));
                tput.push(streams::throughput(size, secs, k));
            }
        }
        if gst_ok {
            progress("GStreamer shmsink/shmsrc", Some(size));
            match gst::throughput(size, secs) {
                Some(t) => tput.push(t),
                None => notes.push(format!("GStreamer at {}: the pipelines produced no frames.", size.name)),
            }
        }
        #[cfg(feature = "iceoryx2")]
        if !a.skips("iceoryx2") {
            progress("iceoryx2", Some(size));
            match ice::throughput(size, secs) {
                Ok(t) => tput.push(t),
                Err(e) => notes.push(format!("iceoryx2 at {}: {e}", size.name)),
            }
        }
    }
    if !a.skips("latency") {
        let lsecs = (secs * 2.0).max(1.0);
        progress("latency: shmimage futex wait", None);
        lat.push(shm::latency(lsecs, shm::LatClient::Wait));
        progress("latency: shmimage futex wait, no monitor thread", None);
        lat.push(shm::latency(lsecs, shm::LatClient::WaitNoThreads));
        progress("latency: shmimage polling client", None);
        lat.push(shm::latency(lsecs, shm::LatClient::Poll));
        progress("latency: Unix socket ping-pong", None);
        lat.push(streams::unix_pingpong(lsecs));
        progress("latency: Unix socket one-way", None);
        lat.push(streams::unix_oneway(lsecs));
        #[cfg(feature = "iceoryx2")]
        if !a.skips("iceoryx2") {
            progress("latency: iceoryx2 event wait", None);
            match ice::latency(lsecs) {
                Ok(l) => lat.push(l),
                Err(e) => notes.push(format!("iceoryx2 latency: {e}")),
            }
        }
    }
    let native = if a.skips("native") { results::Native::default() } else { run_native(a, &mut notes) };
    let md = report::markdown(a, &tput, &lat, &native, &notes, started.elapsed());
    print!("{md}");
    std::fs::create_dir_all(&a.out).expect("create the output directory");
    let md_path = a.out.join("bench.md");
    std::fs::write(&md_path, &md).expect("write bench.md");
    eprintln!("wrote {}", md_path.display());
    let saved = results::Results::from_run(a.seconds, report::machine(), &tput, &lat, native);
    let json = a.out.join("bench.json");
    match saved.save(&json) {
        Ok(()) => eprintln!("wrote {}", json.display()),
        Err(e) => eprintln!("shmimage-bench: {e}"),
    }
    #[cfg(feature = "plot")]
    if !a.skips("plot") {
        let png = png_beside(&json);
        match plot::draw(&png, &saved) {
            Ok(()) => eprintln!("wrote {}", png.display()),
            Err(e) => eprintln!("shmimage-bench: no plot: {e}"),
        }
    }
}

/// The native stream with several reader processes, and iceoryx2 beside it
/// with as many subscribers (issue 12). Fan-out runs half a measurement per
/// reader count, wake-up a whole one (500 wakes a second at 2 ms), so the
/// part takes about 10 measurements in all.
// Without iceoryx2 only the native rows run: `ice` and `notes` go unused.
#[cfg_attr(not(feature = "iceoryx2"), allow(unused_variables, clippy::ptr_arg))]
fn run_native(a: &Args, notes: &mut Vec<String>) -> results::Native {
    let mut n = results::Native::default();
    let fan_secs = a.seconds / 2.0;
    let ice = !a.skips("iceoryx2");
    for readers in native::FANOUT_READERS {
        progress(&format!("native stream, {readers} reader processes"), Some(native::SIZE));
        n.fanout.push(native::fanout(readers, fan_secs));
        #[cfg(feature = "iceoryx2")]
        if ice {
            progress(&format!("iceoryx2 pub/sub, {readers} subscriber processes"), Some(native::SIZE));
            match ice_native::fanout(readers, fan_secs) {
                Ok(r) => n.fanout.push(r),
                Err(e) => notes.push(format!("iceoryx2 pub/sub with {readers} subscribers: {e}")),
            }
        }
    }
    for readers in native::WAKE_READERS {
        progress(&format!("wake-up: native stream, {readers} readers"), None);
        n.wake.push(native::wake(readers, a.seconds));
        #[cfg(feature = "iceoryx2")]
        if ice {
            progress(&format!("wake-up: iceoryx2 event, {readers} listeners"), None);
            match ice_native::wake(readers, a.seconds) {
                Ok(r) => n.wake.push(r),
                Err(e) => notes.push(format!("iceoryx2 event wake-up with {readers} listeners: {e}")),
            }
        }
    }
    n
}

/// The limit for one copy: warm source and destination in this process.
fn memcpy(size: Size, secs: f64) -> Tput {
    let src = pattern(size.bytes());
    let mut dst = pattern(size.bytes());
    dst.copy_from_slice(&src);
    let mut times = Vec::with_capacity(1 << 16);
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs_f64(secs);
    let mut n = 0u64;
    while Instant::now() < end {
        let t = Instant::now();
        dst.copy_from_slice(black_box(&src));
        black_box(&mut dst);
        times.push(t.elapsed().as_nanos() as u64);
        n += 1;
    }
    let elapsed = t0.elapsed().as_secs_f64();
    Tput {
        transport: "memcpy (limit)".into(),
        size,
        frames: n,
        secs: elapsed,
        producer_ns: Some(median_ns(&mut times)),
        consumer_ns: None,
        note: "one copy, warm buffers, one process".into(),
    }
}

/// memcpy while a second process reads a frame-sized buffer of its own in a
/// loop: the memory system as put_frame meets it, with the consumer reading
/// on the other core. The copy limit for a pipeline rather than for a copy
/// alone.
fn memcpy_loaded(size: Size, secs: f64) -> Tput {
    use std::io::Write;
    let mut child = peer(&["reader".into(), size.bytes().to_string()])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("spawn reader peer");
    // Let the reader fault its buffer in and start looping.
    std::thread::sleep(Duration::from_millis(100));
    let mut t = memcpy(size, secs);
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(b"x");
    }
    let rep = collect(child, "reader");
    t.transport = "memcpy while another process reads".into();
    t.note = format!("reader peer: {:.0} reads/s meanwhile", rep.get("reads_per_s").unwrap_or(0.0));
    t
}

/// Peer of memcpy_loaded: read a buffer in a loop until stdin says stop.
fn reader_peer(bytes: usize) {
    use std::io::Read;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = Arc::clone(&stop);
    std::thread::spawn(move || {
        let mut b = [0u8; 1];
        let _ = std::io::stdin().read(&mut b);
        s2.store(true, Ordering::Relaxed);
    });
    let buf = pattern(bytes);
    let (t0, mut n, mut acc) = (Instant::now(), 0u64, 0u64);
    while !stop.load(Ordering::Relaxed) {
        acc ^= digest(black_box(&buf));
        n += 1;
    }
    black_box(acc);
    print_result(&[("reads_per_s", format!("{:.0}", n as f64 / t0.elapsed().as_secs_f64()))]);
}

/// What the consumer's read of a frame costs without any transport.
fn read_only(size: Size, secs: f64) -> Tput {
    let src = pattern(size.bytes());
    let mut times = Vec::with_capacity(1 << 16);
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs_f64(secs);
    let (mut n, mut acc) = (0u64, 0u64);
    while Instant::now() < end {
        let t = Instant::now();
        acc ^= digest(black_box(&src));
        times.push(t.elapsed().as_nanos() as u64);
        n += 1;
    }
    black_box(acc);
    Tput {
        transport: "read only (digest)".into(),
        size,
        frames: n,
        secs: t0.elapsed().as_secs_f64(),
        producer_ns: None,
        consumer_ns: Some(median_ns(&mut times)),
        note: "the consumer's per-frame work, no transport".into(),
    }
}
