//! Reliability under real failures, with real peer processes: peers killed
//! at random moments, frames checked for tearing under full-speed streaming.
//! This binary re-executes itself as the peer (the ignored `child_role` test,
//! selected by SHMIMAGE_REL_ROLE). See docs/reliability.md.
//!
//! Random choices come from a seed printed by each test; set SHMIMAGE_SEED to
//! replay one.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shmimage::layout::file_len_for_frame;
use shmimage::{Client, ClientOptions, Code, Server, ServerOptions, StreamFile};

/// Far beyond anything a healthy run needs: only a hang reaches it.
const LONG: Duration = Duration::from_secs(20);

/// splitmix64: enough randomness for delays and sizes, no dependency.
struct Rng(u64);

impl Rng {
    fn from_env(test: &str) -> Rng {
        let seed = std::env::var("SHMIMAGE_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
        });
        eprintln!("{test}: SHMIMAGE_SEED={seed}");
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in lo..=hi.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// A frame that carries its own checksum: bytes 0..4 are the frame number,
/// the last 8 the xxh3 of everything before them; the rest is noise seeded by
/// the frame number. A torn frame (two writes mixed) or a frame whose pixels
/// belong to another header fails `check_frame`.
fn stamped_frame(w: u32, h: u32, n: u32, out: &mut Vec<u8>) {
    let len = w as usize * h as usize * 3;
    out.clear();
    out.resize(len, 0);
    let mut r = Rng(u64::from(n) | 1 << 40);
    for chunk in out[4..len - 8].chunks_mut(8) {
        let v = r.next().to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
    out[..4].copy_from_slice(&n.to_le_bytes());
    let sum = xxhash_rust::xxh3::xxh3_64(&out[..len - 8]);
    out[len - 8..].copy_from_slice(&sum.to_le_bytes());
}

/// None when the frame is intact and is frame `n`; else what is wrong.
fn check_frame(n: u32, px: &[u8]) -> Option<&'static str> {
    if px.len() < 16 {
        return Some("too short");
    }
    let (body, tail) = px.split_at(px.len() - 8);
    if xxhash_rust::xxh3::xxh3_64(body).to_le_bytes() != tail {
        return Some("checksum mismatch (torn)");
    }
    if body[..4] != n.to_le_bytes() {
        return Some("pixels of another frame (mixed)");
    }
    None
}

struct Peer {
    child: Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl Peer {
    fn spawn(role: &str, args: &[String]) -> Peer {
        let exe = std::env::current_exe().expect("test binary path");
        let mut child = Command::new(exe)
            .args(["child_role", "--exact", "--ignored", "--nocapture", "--test-threads=1", "-q"])
            .env("SHMIMAGE_REL_ROLE", role)
            .env("SHMIMAGE_REL_ARGS", args.join("\n"))
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn peer");
        let lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        Peer { child, lines }
    }

    /// The next line starting with `prefix` (the test harness prints others).
    fn expect(&mut self, prefix: &str) -> String {
        for line in self.lines.by_ref() {
            let line = line.expect("peer stdout");
            if let Some(rest) = line.strip_prefix(prefix) {
                return rest.trim().to_owned();
            }
        }
        panic!("peer ended before printing {prefix}");
    }
}

fn arg_u32(args: &[String], i: usize) -> u32 {
    args[i].parse().unwrap_or_else(|_| panic!("argument {i} of {args:?}"))
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// The peer processes. Ignored so it runs only when re-executed.
#[test]
#[ignore]
fn child_role() {
    let Ok(role) = std::env::var("SHMIMAGE_REL_ROLE") else { return };
    let args: Vec<String> =
        std::env::var("SHMIMAGE_REL_ARGS").unwrap_or_default().split('\n').map(String::from).collect();
    let path = Path::new(&args[0]);
    match role.as_str() {
        // Lock frames one after the other, holding each a random while, until killed.
        "client-churn" => {
            let mut rng = Rng(args[1].parse().unwrap_or(1));
            let c = Client::connect(path, ClientOptions::default()).expect("connect");
            let mut first = true;
            loop {
                let f = c.wait_frame(Some(LONG)).expect("frame");
                if first {
                    say(&format!("LOCKED {}", f.number()));
                    first = false;
                }
                std::thread::sleep(Duration::from_micros(rng.range(200, 3000)));
                drop(f);
            }
        }
        // Put frames of one size until killed (or `count` frames when > 0),
        // alternating put_frame and, when the frame fits one buffer, a loan.
        "server-stamped" => {
            let (w, h, count) = (arg_u32(&args, 1), arg_u32(&args, 2), arg_u32(&args, 3));
            let pace = args.get(4).is_some_and(|m| m == "paced");
            let s = Server::create(path, ServerOptions::default()).expect("create");
            say("READY");
            s.wait_for_client(Some(LONG)).expect("a client");
            let fits = u64::from(w) * u64::from(h) * 3 <= s.capacity();
            let mut px = Vec::new();
            let (mut n, mut sent, mut retries) = (0u32, 0u32, 0u64);
            while count == 0 || sent < count {
                n += 1;
                stamped_frame(w, h, n, &mut px);
                loop {
                    let r = if fits && n % 2 == 0 {
                        s.loan(w, h).and_then(|mut loan| {
                            loan.pixels_mut().unwrap().copy_from_slice(&px);
                            loan.commit(n)
                        })
                    } else {
                        s.put_frame(n, w, h, &px)
                    };
                    match r {
                        Ok(()) => break,
                        Err(e) if e.code() == Code::NoBufferAvailable => {
                            retries += 1;
                            // A banded frame abandoned part-way is retried whole.
                            let _ = s.wait_for_buffer(Some(LONG));
                        }
                        Err(e) => panic!("frame {n}: {e}"),
                    }
                }
                sent += 1;
                if pace {
                    std::thread::sleep(Duration::from_micros(300));
                }
            }
            say(&format!("STATS sent={sent} retries={retries} last={n}"));
            // Stay until the client has taken the last frame (or is gone).
            let _ = s.wait_for_buffer(Some(LONG));
            let deadline = Instant::now() + LONG;
            while s.client_liveness() == shmimage::Liveness::Alive && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        // Stream big frames until an operation fails; report it and exit
        // normally (a SIGBUS death would show as a signal exit).
        "server-until-error" => {
            let (w, h) = (arg_u32(&args, 1), arg_u32(&args, 2));
            let s = Server::create(path, ServerOptions::default()).expect("create");
            say("READY");
            let mut px = Vec::new();
            let mut n = 0u32;
            // The cut can come before the client is seen: that error is the
            // one to report, like any later one.
            let e = if let Err(e) = s.wait_for_client(Some(LONG)) {
                e
            } else {
                loop {
                    n += 1;
                    stamped_frame(w, h, n, &mut px);
                    let r = if n % 2 == 0 {
                        s.loan(w, h).and_then(|mut loan| {
                            loan.pixels_mut().unwrap().copy_from_slice(&px);
                            loan.commit(n)
                        })
                    } else {
                        s.put_frame(n, w, h, &px)
                    };
                    match r {
                        Ok(()) => {}
                        Err(e) if e.code() == Code::NoBufferAvailable => {
                            if let Err(e) = s.wait_for_buffer(Some(LONG)) {
                                break e;
                            }
                        }
                        Err(e) => break e,
                    }
                }
            };
            say(&format!("ERR {} {e}", e.code() as i32));
        }
        // Map a file without shmimage, shrink it and touch the lost page: a
        // SIGBUS outside shmimage's mappings must still end the process.
        "foreign-sigbus" => {
            let _guarded = Client::connect(path, ClientOptions::default()).expect("connect");
            let other = Path::new(&args[1]);
            let f = std::fs::OpenOptions::new().read(true).write(true).open(other).expect("open");
            // SAFETY: test-only raw mapping of a file this process owns.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    8192,
                    libc::PROT_READ,
                    libc::MAP_SHARED,
                    std::os::fd::AsRawFd::as_raw_fd(&f),
                    0,
                )
            };
            assert_ne!(p, libc::MAP_FAILED);
            f.set_len(0).expect("truncate");
            say("TOUCHING");
            // SAFETY: the address is mapped; the read faults by design.
            let v = unsafe { std::ptr::read_volatile(p.cast::<u8>().add(4096)) };
            say(&format!("SURVIVED {v}"));
        }
        other => panic!("unknown role {other}"),
    }
}

fn summary(name: &str, v: &mut [Duration]) -> String {
    v.sort();
    let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    format!("{name}: n={} min={:?} median={:?} p90={:?} max={:?}", v.len(), q(0.0), q(0.5), q(0.9), q(1.0))
}

/// A client killed with SIGKILL at a random moment (almost always holding a
/// locked frame): the server takes both buffers back within a bounded number
/// of put_frame calls, and a new client connects to a fresh stream.
#[test]
fn killed_clients_are_reclaimed_within_three_puts() {
    const REPS: usize = 50;
    let mut rng = Rng::from_env("killed_clients");
    let mut latencies = Vec::new();
    let mut max_polls = 0;
    for rep in 0..REPS {
        let (w, h) = (rng.range(1, 200) as u32, rng.range(1, 120) as u32);
        let file = StreamFile::for_frame(w, h).expect("file");
        let s = Server::create(file.path(), ServerOptions::default()).expect("create");
        let p = file.path().to_string_lossy().into_owned();
        let mut peer = Peer::spawn("client-churn", &[p, rng.next().to_string()]);
        s.wait_for_client(Some(LONG)).expect("client connects");
        let px = vec![0x5Au8; w as usize * h as usize * 3];
        s.put_frame(1, w, h, &px).expect("first frame");
        peer.expect("LOCKED");

        // (kill sent at, reaped yet)
        let killed: Arc<Mutex<Option<(Instant, bool)>>> = Arc::default();
        let delay = Duration::from_micros(rng.range(0, 8000));
        let killer = {
            let killed = Arc::clone(&killed);
            let mut child = peer.child;
            std::thread::spawn(move || {
                std::thread::sleep(delay);
                // Marked before the signal: the server may notice the death
                // before this thread runs again.
                let t = Instant::now();
                *killed.lock().unwrap_or_else(|e| e.into_inner()) = Some((t, false));
                child.kill().expect("SIGKILL");
                child.wait().expect("reap");
                *killed.lock().unwrap_or_else(|e| e.into_inner()) = Some((t, true));
            })
        };
        let mut n = 1u32;
        let mut polls_after_reap = 0;
        let deadline = Instant::now() + LONG;
        loop {
            assert!(Instant::now() < deadline, "rep {rep}: the dead client was never noticed");
            let reaped = killed.lock().unwrap_or_else(|e| e.into_inner()).is_some_and(|k| k.1);
            n += 1;
            let r = s.put_frame(n, w, h, &px);
            if reaped {
                polls_after_reap += 1;
            }
            match r {
                Err(e) if e.code() == Code::Unconnected => {
                    let sent = killed.lock().unwrap_or_else(|e| e.into_inner()).is_some();
                    assert!(sent, "rep {rep}: unconnected before the kill: {e}");
                    break;
                }
                Ok(()) | Err(_) => {}
            }
            if !reaped {
                std::thread::sleep(Duration::from_micros(300));
            }
        }
        let noticed = Instant::now();
        killer.join().expect("killer thread");
        let (t, _) = killed.lock().unwrap_or_else(|e| e.into_inner()).expect("kill time");
        latencies.push(noticed - t);
        max_polls = max_polls.max(polls_after_reap);
        // Once the process is reaped its liveness lock is gone, so at most two
        // frames fill the free buffers and the third put finds none and reclaims.
        assert!(polls_after_reap <= 3, "rep {rep}: {polls_after_reap} puts after the death");
        assert_eq!(s.stats().clients_reclaimed, 1, "rep {rep}");

        let c = Client::connect(file.path(), ClientOptions { monitor_thread: false, ..Default::default() })
            .expect("a new client");
        assert!(!c.reconnected(), "rep {rep}: reclaimed file is a fresh stream");
        s.put_frame(n + 1, w, h, &px).expect("frame to the new client");
        assert_eq!(c.lock().expect("the new client's frame").number(), n + 1);
    }
    eprintln!("{} (max puts after reap: {max_polls})", summary("kill -9 client -> server reclaims", &mut latencies));
}

/// A server killed with SIGKILL at a random moment while a client waits:
/// the wait answers UNCONNECTED, never hangs to its timeout.
#[test]
fn a_killed_server_is_reported_to_a_waiting_client() {
    const REPS: usize = 50;
    let mut rng = Rng::from_env("killed_servers");
    let mut latencies = Vec::new();
    for rep in 0..REPS {
        let (w, h) = (rng.range(1, 200) as u32, rng.range(1, 120) as u32);
        // A third of the files are too small for one band, so kills also land
        // between the bands of a frame.
        let len = file_len_for_frame(w, h).expect("size");
        let len = if rng.range(0, 2) == 0 { (len / 3).max(64 + 6 * u64::from(w)) } else { len };
        let file = StreamFile::with_len(len).expect("file");
        let p = file.path().to_string_lossy().into_owned();
        let mut peer = Peer::spawn("server-stamped", &[p, w.to_string(), h.to_string(), "0".into(), "paced".into()]);
        peer.expect("READY");
        let c = Client::connect(file.path(), ClientOptions::default()).expect("connect");
        let killed: Arc<Mutex<Option<Instant>>> = Arc::default();
        let delay = Duration::from_micros(rng.range(0, 8000));
        let killer = {
            let killed = Arc::clone(&killed);
            let mut child = peer.child;
            std::thread::spawn(move || {
                std::thread::sleep(delay);
                let t = Instant::now();
                *killed.lock().unwrap_or_else(|e| e.into_inner()) = Some(t);
                child.kill().expect("SIGKILL");
                child.wait().expect("reap");
            })
        };
        let started = Instant::now();
        let e = loop {
            match c.wait_frame(Some(LONG)) {
                Ok(f) => {
                    assert_eq!(
                        check_frame(f.number(), f.pixels().expect("pixels")),
                        None,
                        "rep {rep}: frame {}",
                        f.number()
                    );
                }
                Err(e) => break e,
            }
        };
        let told = Instant::now();
        killer.join().expect("killer thread");
        assert_eq!(e.code(), Code::ServerGone, "rep {rep}: {e}");
        assert!(told - started < LONG, "rep {rep}: the wait ran to its timeout");
        let t = killed.lock().unwrap_or_else(|e| e.into_inner()).expect("kill time");
        latencies.push(told.saturating_duration_since(t));
    }
    eprintln!("{}", summary("kill -9 server -> waiting client told", &mut latencies));
}

/// Frames stream as fast as both sides go; every frame the client locks must
/// be intact and be the frame its header names.
fn no_torn_frames(w: u32, h: u32, file_len: u64, frames: u32, opts: ClientOptions) {
    let file = StreamFile::with_len(file_len).expect("file");
    let p = file.path().to_string_lossy().into_owned();
    let mut peer = Peer::spawn("server-stamped", &[p, w.to_string(), h.to_string(), frames.to_string()]);
    peer.expect("READY");
    let c = Client::connect(file.path(), opts).expect("connect");
    let t = Instant::now();
    let (mut seen, mut last) = (0u64, 0u32);
    loop {
        match c.wait_frame(Some(LONG)) {
            Ok(f) => {
                let n = f.number();
                assert_eq!((f.width(), f.height()), (w, h));
                if let Some(why) = check_frame(n, f.pixels().expect("pixels")) {
                    panic!("frame {n} after {seen} good frames: {why}");
                }
                assert!(n > last, "frame {n} after {last}");
                last = n;
                seen += 1;
                if n == frames {
                    break;
                }
            }
            Err(e) => panic!("after frame {last}: {e}"),
        }
    }
    let stats = peer.expect("STATS");
    drop(c);
    let _ = peer.child.wait();
    eprintln!(
        "{w}x{h} in a {file_len}-byte file: {frames} frames sent, {seen} locked and checked, {:?}; {stats}",
        t.elapsed()
    );
}

#[test]
fn no_torn_frames_in_place_over_100k_frames() {
    no_torn_frames(64, 64, file_len_for_frame(64, 64).expect("size"), 100_000, ClientOptions::default());
}

#[test]
fn no_torn_frames_in_bands_over_100k_frames() {
    // Room for 40 of 64 rows: two bands a frame, assembled by lock itself.
    let len = 48 + 2 * 40 * 64 * 3;
    no_torn_frames(64, 64, len, 100_000, ClientOptions { monitor_thread: false, ..Default::default() });
}

/// Another process truncates the stream file (to zero, or to half) while a
/// server streams and a client reads in place: neither dies of SIGBUS, both
/// get an error, and the file, once its size is restored, carries a new stream.
#[test]
fn truncation_mid_frame_is_an_error_for_both_sides_and_the_file_can_be_reused() {
    const REPS: usize = 10;
    let mut rng = Rng::from_env("truncation");
    let (w, h) = (1280u32, 720u32);
    let len = file_len_for_frame(w, h).expect("size");
    for rep in 0..REPS {
        let to = if rep % 2 == 0 { 0 } else { len / 2 };
        let file = StreamFile::with_len(len).expect("file");
        let p = file.path().to_string_lossy().into_owned();
        let mut peer = Peer::spawn("server-until-error", &[p, w.to_string(), h.to_string()]);
        peer.expect("READY");
        let c = Client::connect(file.path(), ClientOptions::default()).expect("connect");
        let path = file.path().to_owned();
        let delay = Duration::from_micros(rng.range(0, 20_000));
        let cutter = std::thread::spawn(move || {
            std::thread::sleep(delay);
            let f = std::fs::OpenOptions::new().write(true).open(&path).expect("open to truncate");
            f.set_len(to).expect("truncate");
        });
        let mut frames = 0u64;
        let e = loop {
            match c.wait_frame(Some(LONG)) {
                Ok(f) => {
                    // Read every byte in place: after the cut these reads hit
                    // pages past the end of the file.
                    let sum = f.pixels().expect("pixels").iter().fold(0u64, |a, &b| a.wrapping_add(u64::from(b)));
                    std::hint::black_box(sum);
                    frames += 1;
                }
                Err(e) => break e,
            }
        };
        cutter.join().expect("cutter");
        assert_eq!(e.code(), Code::FileTruncated, "rep {rep}: {e}");
        assert!(e.to_string().contains("truncated"), "rep {rep}: {e}");
        assert!(c.file_truncated());
        let err = peer.expect("ERR");
        assert!(
            err.starts_with(&(Code::FileTruncated as i32).to_string()) && err.contains("truncated"),
            "rep {rep}: server said {err}"
        );
        let st = peer.child.wait().expect("server exit");
        assert!(st.success(), "rep {rep}: server ended with {st}");
        drop(c);

        // Restored to its size, the same path carries a new stream.
        std::fs::OpenOptions::new().write(true).open(file.path()).expect("open").set_len(len).expect("regrow");
        let s = Server::create(file.path(), ServerOptions::default()).expect("server again");
        let c = Client::connect(file.path(), ClientOptions { monitor_thread: false, ..Default::default() })
            .expect("client again");
        let mut px = Vec::new();
        stamped_frame(w, h, 1, &mut px);
        s.put_frame(1, w, h, &px).expect("put after reopen");
        let f = c.lock().expect("lock after reopen");
        assert_eq!(check_frame(1, f.pixels().expect("pixels")), None);
        eprintln!("rep {rep}: cut to {to} after {delay:?}, {frames} frames read before");
    }
}

/// The guard only takes faults in shmimage's own mappings: any other SIGBUS
/// still ends the process, as it would without shmimage.
#[test]
fn a_sigbus_elsewhere_still_ends_the_process() {
    let file = StreamFile::for_frame(16, 16).expect("file");
    let other = StreamFile::with_len(8192).expect("other file");
    let _s = Server::create(file.path(), ServerOptions::default()).expect("server");
    let args = [file.path(), other.path()].map(|p| p.to_string_lossy().into_owned());
    let mut peer = Peer::spawn("foreign-sigbus", &args);
    peer.expect("TOUCHING");
    let st = peer.child.wait().expect("exit");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(st.signal(), Some(libc::SIGBUS), "{st}");
}

/// The stream file is deleted and created again under the same name while a
/// client waits: the client says so instead of waiting on a file nobody
/// writes any more. Deleting alone is not a reason (a server may unlink the
/// file and stream on).
#[test]
fn a_replaced_stream_file_is_reported_to_a_waiting_client() {
    let file = StreamFile::for_frame(32, 32).expect("file");
    let len = std::fs::metadata(file.path()).expect("stat").len();
    let s = Server::create(file.path(), ServerOptions::default()).expect("server");
    let c = Client::connect(file.path(), ClientOptions::default()).expect("client");
    assert!(!c.file_replaced());

    std::fs::remove_file(file.path()).expect("delete");
    assert!(c.file_replaced());
    assert_eq!(c.wait_frame(Some(Duration::from_millis(120))).expect_err("no frame").code(), Code::NoFrameAvailable);
    // The unlinked file still streams.
    s.put_frame(1, 32, 32, &vec![1u8; 32 * 32 * 3]).expect("put to the unlinked file");
    assert_eq!(c.wait_frame(Some(LONG)).expect("frame").number(), 1);

    StreamFile::create_at(file.path(), len).expect("recreate");
    let t = Instant::now();
    let e = c.wait_frame(Some(LONG)).expect_err("told");
    assert_eq!(e.code(), Code::FileReplaced, "{e}");
    assert!(e.to_string().contains("replaced"), "{e}");
    assert!(t.elapsed() < LONG);
    eprintln!("replaced file reported after {:?}", t.elapsed());
    // A new client on the new file works with a new server.
    let s2 = Server::create(file.path(), ServerOptions::default()).expect("new server");
    let c2 = Client::connect(file.path(), ClientOptions::default()).expect("new client");
    s2.put_frame(2, 32, 32, &vec![2u8; 32 * 32 * 3]).expect("put");
    assert_eq!(c2.wait_frame(Some(LONG)).expect("frame").number(), 2);
    drop(s);
}
