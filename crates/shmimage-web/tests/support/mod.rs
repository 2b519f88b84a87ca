//! Test support: a writer process (this test binary run again), the web
//! server in this process, headless Chromium driven over the DevTools
//! protocol, and plain HTTP requests. Every wait is bounded; every process
//! started is killed and reaped on drop.
#![allow(dead_code, clippy::unwrap_used)]

pub mod browser;
pub mod pattern;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use shmimage_web::{Config, Handle, WebServer};

/// How long any one wait in these tests may take before it fails (generous:
/// the machine is shared; no test asserts a time).
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Poll `f` until it returns `Some`, or panic with `what` after [`PATIENCE`].
pub async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A unique stream file name in /dev/shm (the writer creates the file);
/// removed on drop.
pub struct StreamPath(pub PathBuf);

impl StreamPath {
    pub fn new(tag: &str) -> StreamPath {
        let name = format!("shmimage-web-test-{tag}-{}-{}.shm", std::process::id(), unique());
        StreamPath(Path::new("/dev/shm").join(name))
    }

    /// The name the server lists it under.
    pub fn name(&self) -> String {
        self.0.file_name().unwrap().to_string_lossy().into_owned()
    }
}

impl Drop for StreamPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// The env variable that turns this test binary into a writer process.
pub const WRITER_ENV: &str = "SHMIMAGE_WEB_TEST_WRITER";

/// A writer process streaming the test pattern; killed (SIGKILL) on drop.
pub struct Writer {
    child: Child,
}

impl Writer {
    /// Start a writer of `width`x`height` frames at about `fps` into `path`,
    /// in `format` ("ensight" for protocol 1.0, else a native format name).
    pub fn start(path: &Path, width: u32, height: u32, fps: u32, format: &str) -> Writer {
        Writer::start_spec(&format!("{}|{width}|{height}|{fps}|{format}", path.display()))
    }

    /// Start a writer with a raw spec (see `pattern::run_writer`).
    pub fn start_spec(spec: &str) -> Writer {
        let exe = std::env::current_exe().unwrap();
        let child = Command::new(exe)
            .args([
                "--exact",
                "support::pattern::writer_process",
                "--include-ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(WRITER_ENV, spec)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        Writer { child }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `kill -9` it, as a crash would, and reap it.
    pub fn kill(mut self) {
        self.kill_now();
    }

    fn kill_now(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.kill_now();
    }
}

/// The web server running in this process on a free port.
pub struct Served {
    pub addr: SocketAddr,
    pub url: String,
    pub token: Option<String>,
    pub handle: Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Served {
    pub async fn start(streams: Vec<PathBuf>, listen: &str) -> Served {
        let mut config = Config::new(streams);
        config.listen = listen.parse().unwrap();
        Served::start_config(config).await
    }

    pub async fn start_config(config: Config) -> Served {
        let server = WebServer::bind(config).await.unwrap();
        let mut addr = server.local_addr().unwrap();
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        let (url, token, handle) = (server.url().to_string(), server.token().map(String::from), server.catalog());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(async move {
            let _ = rx.await;
        }));
        Served { addr, url, token, handle, stop: Some(tx), task: Some(task) }
    }

    /// The hub counters of the stream called `name`.
    pub fn stats(&self, name: &str) -> (u64, u64, usize) {
        let hub = self.handle.catalog().hub(name).unwrap();
        let s = hub.stats();
        use std::sync::atomic::Ordering::Relaxed;
        (s.readers_opened.load(Relaxed), s.frames_encoded.load(Relaxed), hub.watchers())
    }

    /// Bytes of the newest frame message of the stream called `name`.
    pub fn last_message_len(&self, name: &str) -> usize {
        self.handle.catalog().hub(name).and_then(|h| h.latest_frame_len()).unwrap_or(0)
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(PATIENCE, t).await;
        }
    }
}

/// One raw HTTP/1.1 request (the target is sent byte for byte, so paths a
/// client library would normalise reach the server as written); returns the
/// status code and the body.
pub fn http_get(addr: SocketAddr, target: &str, extra_headers: &[(&str, &str)]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut req = format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in extra_headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    read_response(&mut s)
}

/// Read one HTTP response: headers, then Content-Length bytes of body (or
/// up to end of stream without one). Some servers keep the connection open
/// despite `Connection: close`, so the length is what ends the read.
pub fn read_response(s: &mut TcpStream) -> (u16, String) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break buf.len(),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let code = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let length = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("content-length").then(|| v.trim().parse::<usize>().ok()).flatten()
    });
    loop {
        if length.is_some_and(|n| buf.len() >= head_end + n) {
            break;
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let end = length.map_or(buf.len(), |n| (head_end + n).min(buf.len()));
    (code, String::from_utf8_lossy(&buf[head_end.min(end)..end]).into_owned())
}
