//! Shared by the x11_* tests: a private Xvfb per test, the `shmimage` binary
//! with its output collected, a pattern server, screenshots, and SysV segment
//! accounting from /proc/sysvipc/shm.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read};
use std::os::fd::FromRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use shmimage::{Server, ServerOptions};
use shmimage_x11::format::PixelFormat;
use shmimage_x11::x11rb::connection::Connection;
use shmimage_x11::x11rb::protocol::xproto::{ConnectionExt as _, ImageFormat};
use shmimage_x11::x11rb::rust_connection::RustConnection;

/// Generous: the CI machine has 2 busy cores.
pub const PATIENCE: Duration = Duration::from_secs(40);

/// An Xvfb on a free display, killed on drop.
pub struct Xvfb {
    child: Child,
    pub display: String,
}

impl Xvfb {
    /// Start `Xvfb -displayfd` (it picks a free display and tells us which)
    /// with `extra` arguments, e.g. `["-extension", "MIT-SHM"]`.
    pub fn start(extra: &[&str]) -> Xvfb {
        Xvfb::start_as(None, extra)
    }

    /// Start Xvfb with uid/gid `ids` (e.g. nobody's), so it cannot attach
    /// our 0600 segments: ShmAttach then fails with BadAccess, as it does
    /// where the X server runs as another user or in another IPC namespace.
    pub fn start_as(ids: Option<(u32, u32)>, extra: &[&str]) -> Xvfb {
        let mut fds = [0; 2];
        // Close-on-exec, so children spawned by other test threads do not
        // inherit the write end; only Xvfb gets it (cleared after its fork).
        // SAFETY: fds has room for the two descriptors pipe2 writes.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0, "pipe failed");
        let (r, w) = (fds[0], fds[1]);
        let mut cmd = Command::new("Xvfb");
        cmd.args(["-displayfd", &w.to_string(), "-screen", "0", "1280x1024x24", "-nolisten", "tcp", "-noreset"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // SAFETY: the closure runs in the forked child and only calls fcntl,
        // which is async-signal-safe.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
                libc::fcntl(w, libc::F_SETFD, 0);
                if let Some((uid, gid)) = ids {
                    if libc::setgroups(0, std::ptr::null()) != 0 || libc::setgid(gid) != 0 || libc::setuid(uid) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let spawned = cmd.spawn();
        // SAFETY: w is our write end; closing it here leaves the child's copy.
        unsafe { libc::close(w) };
        // SAFETY: r is a fresh descriptor that nothing else owns.
        let reader = unsafe { std::fs::File::from_raw_fd(r) };
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => panic!(
                "cannot start Xvfb ({e}): the X11 tests need it; install it with `apt-get install -y xvfb` \
                 (Debian/Ubuntu package xvfb)"
            ),
        };
        let mut line = String::new();
        let _ = BufReader::new(reader).read_line(&mut line);
        let n: u32 = match line.trim().parse() {
            Ok(n) => n,
            Err(_) => {
                let _ = child.kill();
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                let _ = child.wait();
                panic!("Xvfb did not report a display number (got {line:?}); its stderr:\n{err}");
            }
        };
        // Drain Xvfb's stderr so it never blocks on a full pipe.
        if let Some(mut e) = child.stderr.take() {
            std::thread::spawn(move || {
                let mut sink = Vec::new();
                let _ = e.read_to_end(&mut sink);
            });
        }
        Xvfb { child, display: format!(":{n}") }
    }

    pub fn connect(&self) -> RustConnection {
        let (c, _) = RustConnection::connect(Some(&self.display)).expect("connect to Xvfb");
        c
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `shmimage` subcommand whose output lines are collected.
pub struct Shmimage {
    pub child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    readers: Vec<JoinHandle<()>>,
}

impl Shmimage {
    /// Spawn with stdout and stderr collected together, line by line (reports
    /// go to stdout, warnings and errors to stderr).
    pub fn spawn(args: &[&str]) -> Shmimage {
        let mut child = Command::new(env!("CARGO_BIN_EXE_shmimage"))
            .args(args)
            .env_remove("DISPLAY")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn shmimage");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let collect = |r: Box<dyn Read + Send>| {
            let l = Arc::clone(&lines);
            std::thread::spawn(move || {
                for line in BufReader::new(r).lines().map_while(Result::ok) {
                    l.lock().unwrap().push(line);
                }
            })
        };
        let err = collect(Box::new(child.stderr.take().expect("stderr piped")));
        let out = collect(Box::new(child.stdout.take().expect("stdout piped")));
        Shmimage { child, lines, readers: vec![err, out] }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn output(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// Wait until an output line contains `needle`; return that line.
    pub fn wait_line(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(l) = self.lines.lock().unwrap().iter().find(|l| l.contains(needle)) {
                return l.clone();
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                panic!("shmimage exited ({st}) before printing {needle:?}; output:\n{}", self.output());
            }
            assert!(Instant::now() < deadline, "no {needle:?} in the output within {PATIENCE:?}:\n{}", self.output());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The window id the viewer announced.
    pub fn window(&mut self) -> u32 {
        let line = self.wait_line("window 0x");
        let hex = line.split("window 0x").nth(1).and_then(|s| s.split(|c: char| !c.is_ascii_hexdigit()).next());
        u32::from_str_radix(hex.expect("window id"), 16).expect("hex window id")
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill with our own child's pid and a valid signal number.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// SIGTERM, then wait for the exit; returns the stderr.
    pub fn stop(mut self) -> (std::process::ExitStatus, String) {
        self.signal(libc::SIGTERM);
        self.wait()
    }

    pub fn wait(&mut self) -> (std::process::ExitStatus, String) {
        let deadline = Instant::now() + PATIENCE;
        let st = loop {
            if let Some(st) = self.child.try_wait().expect("wait") {
                break st;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("shmimage did not exit within {PATIENCE:?}; output:\n{}", self.output());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        (st, self.output())
    }
}

impl Drop for Shmimage {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A distinctive RGB pattern: every channel varies along both axes.
pub fn pattern(w: u32, h: u32, seed: u32) -> Vec<u8> {
    let mut v = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        for x in 0..w {
            v.extend_from_slice(&[
                (x * 5 + y + seed) as u8,
                ((y * 7) ^ x).wrapping_add(seed * 3) as u8,
                (x * y + 31 * seed) as u8,
            ]);
        }
    }
    v
}

/// A stream file in a private directory, removed on drop.
pub fn stream_file(w: u32, h: u32) -> shmimage::StreamFile {
    shmimage::StreamFile::for_frame(w, h).expect("stream file")
}

/// A thread that serves frames: whatever `frame` holds, every 30 ms, so a
/// viewer that joins late or redraws still gets it.
pub struct PatternServer {
    stop: Arc<AtomicBool>,
    pub frame: Arc<Mutex<(u32, u32, Vec<u8>)>>,
    pub sent: Arc<AtomicU32>,
    handle: Option<JoinHandle<()>>,
}

impl PatternServer {
    pub fn start(path: &Path, w: u32, h: u32, rgb: Vec<u8>) -> PatternServer {
        let stop = Arc::new(AtomicBool::new(false));
        let frame = Arc::new(Mutex::new((w, h, rgb)));
        let sent = Arc::new(AtomicU32::new(0));
        let server = Server::create(path, ServerOptions::default()).expect("server");
        let (s, f, n) = (Arc::clone(&stop), Arc::clone(&frame), Arc::clone(&sent));
        let handle = std::thread::spawn(move || {
            let mut number = 0u32;
            while !s.load(Ordering::Relaxed) {
                let (w, h, rgb) = f.lock().unwrap().clone();
                number += 1;
                if server.put_frame(number, w, h, &rgb).is_ok() {
                    n.fetch_add(1, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(30));
            }
        });
        PatternServer { stop, frame, sent, handle: Some(handle) }
    }

    pub fn set(&self, w: u32, h: u32, rgb: Vec<u8>) {
        *self.frame.lock().unwrap() = (w, h, rgb);
    }
}

impl Drop for PatternServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// The screen's pixel format (root depth and visual).
pub fn screen_format(conn: &RustConnection) -> PixelFormat {
    let s = &conn.setup().roots[0];
    PixelFormat::for_visual(conn.setup(), s.root_depth, s.root_visual).expect("pixel format")
}

/// A core GetImage of `window`'s top-left `w` x `h`, as RGB; `None` while
/// the window is not (yet) that large or not viewable.
pub fn screenshot(conn: &RustConnection, window: u32, w: u32, h: u32) -> Option<Vec<u8>> {
    let r = conn.get_image(ImageFormat::Z_PIXMAP, window, 0, 0, w as u16, h as u16, !0).ok()?.reply().ok()?;
    let mut rgb = vec![0; (w * h * 3) as usize];
    screen_format(conn).image_to_rgb(&r.data, w, h, &mut rgb).ok()?;
    Some(rgb)
}

/// Poll the window until it shows `want` exactly; panics with a diff summary.
pub fn wait_for_pixels(conn: &RustConnection, window: u32, w: u32, h: u32, want: &[u8], who: &Shmimage) {
    let deadline = Instant::now() + PATIENCE;
    let mut last = None;
    loop {
        if let Some(got) = screenshot(conn, window, w, h) {
            if got == want {
                return;
            }
            last = Some(got);
        }
        if Instant::now() > deadline {
            let summary = match last {
                None => "the window was never grabbable at that size".to_string(),
                Some(got) => {
                    let bad = got.iter().zip(want).filter(|(a, b)| a != b).count();
                    let first = got.iter().zip(want).position(|(a, b)| a != b).unwrap_or(0);
                    format!("{bad} of {} bytes differ, first at byte {first}", want.len())
                }
            };
            panic!("window {window:#x} never showed the pattern: {summary}; viewer output:\n{}", who.output());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// SysV segments created by process `pid`: (shmid, mode incl. SHM_DEST 0o1000).
pub fn segments_of(pid: u32) -> Vec<(u32, u32)> {
    let text = std::fs::read_to_string("/proc/sysvipc/shm").expect("/proc/sysvipc/shm");
    let mut head = text.lines();
    let cols: Vec<&str> = head.next().unwrap_or("").split_whitespace().collect();
    let col = |name: &str| cols.iter().position(|c| *c == name).expect("column in /proc/sysvipc/shm");
    let (id, perms, cpid) = (col("shmid"), col("perms"), col("cpid"));
    head.filter_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let p: u32 = f.get(cpid)?.parse().ok()?;
        (p == pid).then(|| Some((f.get(id)?.parse().ok()?, u32::from_str_radix(f.get(perms)?, 8).ok()?))).flatten()
    })
    .collect()
}

/// Poll until `cond` holds; panics with `what` after PATIENCE.
pub fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

pub fn temp_path(name: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    std::env::temp_dir().join(format!(
        "shmimage-x11-test-{}-{}-{name}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}
