//! Headless Chromium driven over the DevTools protocol (a WebSocket per tab).

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::PATIENCE;

/// Debian's Chromium.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// A headless Chromium with a fresh profile; the whole process group is
/// killed on drop.
pub struct Browser {
    child: Child,
    devtools: SocketAddr,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub fn launch() -> Browser {
        assert!(
            std::path::Path::new(CHROMIUM).exists(),
            "{CHROMIUM} is missing: install Debian's chromium (scripts/install-deps.sh does)"
        );
        let profile = tempfile::tempdir().unwrap();
        let child = Command::new(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-background-timer-throttling",
                "--disable-renderer-backgrounding",
                "--disable-backgrounding-occluded-windows",
                "--force-device-scale-factor=1",
                "--window-size=1000,600",
                "--remote-debugging-port=0",
                "--remote-allow-origins=*",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, so drop can end every helper process it
            // starts (zygote, renderers) by that one id.
            .process_group(0)
            .spawn()
            .unwrap();
        let mut browser = Browser { child, devtools: "127.0.0.1:1".parse().unwrap(), _profile: profile };
        // Chromium writes the port it picked to DevToolsActivePort.
        let port_file: PathBuf = browser._profile.path().join("DevToolsActivePort");
        let deadline = Instant::now() + PATIENCE;
        let port = loop {
            if let Some(p) =
                std::fs::read_to_string(&port_file).ok().and_then(|s| s.lines().next()?.parse::<u16>().ok())
            {
                break p;
            }
            assert!(Instant::now() < deadline, "Chromium did not open its DevTools port");
            std::thread::sleep(Duration::from_millis(100));
        };
        browser.devtools = SocketAddr::from(([127, 0, 0, 1], port));
        browser
    }

    /// A new tab showing `url`.
    pub async fn open(&self, url: &str) -> Tab {
        let (code, body) = http_put(self.devtools, &format!("/json/new?{url}"));
        assert_eq!(code, 200, "DevTools /json/new: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        let ws = v["webSocketDebuggerUrl"].as_str().unwrap().to_string();
        let (socket, _) = tokio_tungstenite::connect_async(ws).await.unwrap();
        let mut tab = Tab { socket, next_id: 1 };
        tab.call("Page.enable", json!({})).await;
        tab
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let pgid = self.child.id() as i32;
        // SAFETY: kill(2) with a negative pid signals the process group we
        // created for this Chromium (its leader is our child, not yet reaped,
        // so the id cannot have been reused).
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

fn http_put(addr: SocketAddr, target: &str) -> (u16, String) {
    // DevTools wants PUT for /json/new; the helper sends GET, so write it here.
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    write!(s, "PUT {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n").unwrap();
    super::read_response(&mut s)
}

/// One tab's DevTools session.
pub struct Tab {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
}

impl Tab {
    /// Call a DevTools method and return its result (events are skipped).
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let msg = json!({"id": id, "method": method, "params": params}).to_string();
        self.socket.send(Message::Text(msg.into())).await.unwrap();
        let reply = tokio::time::timeout(PATIENCE, async {
            while let Some(m) = self.socket.next().await {
                if let Ok(Message::Text(t)) = m {
                    let v: Value = serde_json::from_str(t.as_str()).unwrap();
                    if v["id"].as_u64() == Some(id) {
                        return v;
                    }
                }
            }
            panic!("DevTools connection closed during {method}");
        })
        .await
        .unwrap_or_else(|_| panic!("DevTools {method} did not answer"));
        assert!(reply.get("error").is_none(), "{method}: {reply}");
        reply["result"].clone()
    }

    /// Evaluate `expr` in the page and return its value.
    pub async fn eval(&mut self, expr: &str) -> Value {
        let r = self.call("Runtime.evaluate", json!({"expression": expr, "returnByValue": true})).await;
        r["result"]["value"].clone()
    }

    /// Poll `expr` until `ok` accepts its value (bounded by PATIENCE).
    pub async fn wait_for(&mut self, what: &str, expr: &str, ok: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let v = self.eval(expr).await;
            if ok(&v) {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what} (last {expr} = {v})");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A PNG screenshot of the viewport.
    pub async fn screenshot(&mut self) -> Vec<u8> {
        let r = self.call("Page.captureScreenshot", json!({"format": "png"})).await;
        base64::engine::general_purpose::STANDARD.decode(r["data"].as_str().unwrap()).unwrap()
    }
}

/// A decoded RGB(A) screenshot.
pub struct Shot {
    pub width: u32,
    pub height: u32,
    channels: usize,
    data: Vec<u8>,
}

impl Shot {
    pub fn decode(png_bytes: &[u8]) -> Shot {
        let mut decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
        decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
        let mut reader = decoder.read_info().unwrap();
        let mut data = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut data).unwrap();
        let channels = info.color_type.samples();
        data.truncate(info.buffer_size());
        Shot { width: info.width, height: info.height, channels, data }
    }

    pub fn rgb(&self, x: u32, y: u32) -> [u8; 3] {
        let i = (y as usize * self.width as usize + x as usize) * self.channels;
        [self.data[i], self.data[i + 1], self.data[i + 2]]
    }
}
