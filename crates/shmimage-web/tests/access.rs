//! Who can reach what: the token on a non-loopback address, loopback-only
//! names and same-origin WebSockets without one, no path from a URL ever
//! reaching the file system, and a reader that runs only while watched.
#![allow(clippy::unwrap_used)]

mod support;

use futures_util::{SinkExt, StreamExt};
use support::{eventually, http_get, Served, StreamPath, Writer, PATIENCE};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};

const W: u32 = 64;
const H: u32 = 48;

/// The HTTP status a WebSocket upgrade gets (101 when accepted).
async fn ws_status(url: &str, origin: Option<&str>) -> u16 {
    let mut request = url.into_client_request().unwrap();
    if let Some(o) = origin {
        request.headers_mut().insert("Origin", o.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((_, response)) => response.status().as_u16(),
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(e) => panic!("WebSocket to {url}: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_address_but_loopback_needs_the_token() {
    let stream = StreamPath::new("token");
    let name = stream.name();
    let served = Served::start(vec![stream.0.clone()], "0.0.0.0:0").await;
    let token = served.token.clone().expect("a token is made for 0.0.0.0");
    assert!(token.len() >= 32, "token {token}");
    assert!(served.url.ends_with(&format!("/?token={token}")), "the URL printed carries the token: {}", served.url);
    let addr = served.addr; // 127.0.0.1 and the port: tests reach only loopback

    for target in ["/", "/api/streams", &format!("/ws/{name}"), "/?token=", "/?token=0000000000"] {
        let (code, _) = http_get(addr, target, &[]);
        assert_eq!(code, 403, "GET {target} without the token");
    }
    let (code, body) = http_get(addr, &format!("/?token={token}"), &[]);
    assert_eq!(code, 200, "the page with the token");
    assert!(body.contains("<canvas"), "the page: {body}");
    let (code, body) = http_get(addr, &format!("/api/streams?token={token}"), &[]);
    assert_eq!(code, 200);
    assert!(body.contains(&name), "the list names the stream: {body}");
    let (code, _) = http_get(addr, "/api/streams", &[("Authorization", &format!("token {token}"))]);
    assert_eq!(code, 200, "the token in a header");

    let ws = format!("ws://{addr}/ws/{name}");
    assert_eq!(ws_status(&ws, None).await, 403);
    assert_eq!(ws_status(&format!("{ws}?token={token}"), None).await, 101);
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_url_reaches_a_file_outside_the_served_streams() {
    let stream = StreamPath::new("paths");
    let served = Served::start(vec![stream.0.clone()], "0.0.0.0:0").await;
    let token = served.token.clone().unwrap();
    let addr = served.addr;
    let dir_name = stream.0.parent().unwrap().file_name().unwrap().to_string_lossy().into_owned();
    let full = stream.0.display().to_string();
    let attempts = [
        "/../../../../etc/passwd".to_string(),
        "/%2e%2e/%2e%2e/etc/passwd".into(),
        "/ws/..%2F..%2F..%2Fetc%2Fpasswd".into(),
        "/ws/%2Fetc%2Fpasswd".into(),
        "/ws/../../etc/passwd".into(),
        format!("/ws/..%2F{dir_name}%2F{}", stream.name()),
        format!("/ws/{}", full.replace('/', "%2F")),
        "/etc/passwd".into(),
        "/api/../../etc/passwd".into(),
    ];
    for a in &attempts {
        let sep = if a.contains('?') { '&' } else { '?' };
        let (code, body) = http_get(addr, &format!("{a}{sep}token={token}"), &[]);
        assert_eq!(code, 404, "GET {a}: {body}");
        assert!(!body.contains("root:"), "GET {a} served a system file");
    }
    // A WebSocket for a stream name not on the list is refused too.
    let status = ws_status(&format!("ws://{addr}/ws/..%2F..%2Fetc%2Fpasswd?token={token}"), None).await;
    assert_eq!(status, 404);
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_without_a_token_refuses_other_names_and_origins() {
    let stream = StreamPath::new("origin");
    let name = stream.name();
    let served = Served::start(vec![stream.0.clone()], "127.0.0.1:0").await;
    assert!(served.token.is_none());
    let addr = served.addr;
    assert_eq!(http_get(addr, "/", &[]).0, 200);
    // A site whose DNS name was rebound to 127.0.0.1.
    let (code, _) = http_get_host(addr, "/api/streams", "rebound.example:80");
    assert_eq!(code, 403);
    let ws = format!("ws://{addr}/ws/{name}");
    assert_eq!(ws_status(&ws, Some("http://evil.example")).await, 403, "another site's page");
    assert_eq!(ws_status(&ws, Some(&format!("http://{addr}"))).await, 101, "this server's page");
    served.stop().await;
}

fn http_get_host(addr: std::net::SocketAddr, target: &str, host: &str) -> (u16, String) {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    write!(s, "GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").unwrap();
    support::read_response(&mut s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_is_read_only_while_someone_watches() {
    let stream = StreamPath::new("watch");
    let name = stream.name();
    // A protocol 1.0 stream: its one client must be free again after each
    // watching period.
    let _writer = Writer::start(&stream.0, W, H, 30, "ensight");
    let served = Served::start(vec![stream.0.clone()], "127.0.0.1:0").await;
    eventually("the writer to create the stream", || async { stream.0.exists().then_some(()) }).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(shmimage::inspect(&stream.0).unwrap().client_alive, Some(false), "nobody reads yet");
    assert_eq!(served.stats(&name).0, 0);

    for round in 1..=2u64 {
        let (mut socket, _) =
            tokio_tungstenite::connect_async(format!("ws://{}/ws/{name}", served.addr)).await.unwrap();
        let mut got = 0;
        tokio::time::timeout(PATIENCE, async {
            while got < 5 {
                if let Some(Ok(Message::Binary(m))) = socket.next().await {
                    // u32 LE header length, JSON header, JPEG (FF D8 ...).
                    let n = u32::from_le_bytes(m[..4].try_into().unwrap()) as usize;
                    let header: serde_json::Value = serde_json::from_slice(&m[4..4 + n]).unwrap();
                    assert_eq!((header["width"].as_u64(), header["height"].as_u64()), (Some(64), Some(48)));
                    assert_eq!(&m[4 + n..6 + n], &[0xFF, 0xD8], "a JPEG follows the header");
                    got += 1;
                    socket.send(Message::Text("drawn".into())).await.unwrap();
                }
            }
        })
        .await
        .expect("frames over the WebSocket");
        assert_eq!(shmimage::inspect(&stream.0).unwrap().client_alive, Some(true));
        socket.close(None).await.unwrap();
        drop(socket);
        eventually("the reader to stop after the last client left", || async {
            (shmimage::inspect(&stream.0).ok()?.client_alive == Some(false)).then_some(())
        })
        .await;
        assert_eq!(served.stats(&name).0, round, "one reader opened per watching period");
    }
    served.stop().await;
}
