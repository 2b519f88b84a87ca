//! Every pixel format a native stream carries reaches the page as a JPEG
//! showing the right picture, and a directory argument offers the streams in
//! it (and nothing else).
#![allow(clippy::unwrap_used)]

mod support;

use futures_util::{SinkExt, StreamExt};
use shmimage::native::PixelFormat;
use support::pattern::{luma, quadrant_colour, STRIP};
use support::{http_get, Served, StreamPath, Writer, PATIENCE};
use tokio_tungstenite::tungstenite::Message;

const W: u32 = 96;
const H: u32 = 72;

/// The next frame on the stream's WebSocket: its JSON header and its JPEG
/// decoded to RGB.
async fn one_frame(served: &Served, name: &str) -> (serde_json::Value, Vec<u8>) {
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws/{name}", served.addr)).await.unwrap();
    let m = tokio::time::timeout(PATIENCE, async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Binary(m))) => break m,
                Some(Ok(_)) => {}
                other => panic!("{name}: the WebSocket ended: {other:?}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{name}: no frame"));
    socket.send(Message::Text("drawn".into())).await.unwrap();
    let n = u32::from_le_bytes(m[..4].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&m[4..4 + n]).unwrap();
    let image = turbojpeg::decompress(&m[4 + n..], turbojpeg::PixelFormat::RGB).unwrap();
    assert_eq!((image.width as u32, image.height as u32), (W, H));
    (header, image.pixels)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_native_format_is_shown() {
    for format in PixelFormat::ALL {
        let stream = StreamPath::new(&format.name().to_lowercase());
        let _writer = Writer::start(&stream.0, W, H, 30, format.name());
        let served = Served::start(vec![stream.0.clone()], "127.0.0.1:0").await;
        let (header, rgb) = one_frame(&served, &stream.name()).await;
        assert_eq!(header["format"], format.name());
        assert!(header["captured"].as_f64().is_some(), "{format:?}: a native frame has a capture time");
        let gray = format.channels() == 1 && !format.is_planar();
        for (x, y) in
            [(W / 4, H / 4 + STRIP / 2), (3 * W / 4, H / 4 + STRIP / 2), (W / 4, 3 * H / 4), (3 * W / 4, 3 * H / 4)]
        {
            let want = quadrant_colour(W, H, x, y);
            let want = if gray { [luma(want); 3] } else { want };
            let i = ((y * W + x) * 3) as usize;
            let got = [rgb[i], rgb[i + 1], rgb[i + 2]];
            let close = got.iter().zip(want).all(|(g, w)| (i16::from(*g) - i16::from(w)).abs() <= 40);
            assert!(close, "{format:?} at ({x},{y}): {got:?}, want {want:?}");
        }
        served.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_offers_its_streams_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.shm");
    let b = dir.path().join("b.shm");
    std::fs::write(dir.path().join("notes.txt"), "not a stream").unwrap();
    let _wa = Writer::start(&a, W, H, 30, "RGB8");
    let _wb = Writer::start(&b, W, H, 30, "GRAY8");
    support::eventually("both streams", || async { (a.exists() && b.exists()).then_some(()) }).await;
    std::os::unix::fs::symlink(&a, dir.path().join("link.shm")).unwrap();

    let served = Served::start(vec![dir.path().to_path_buf()], "127.0.0.1:0").await;
    let (code, body) = http_get(served.addr, "/api/streams", &[]);
    assert_eq!(code, 200);
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    let names: Vec<&str> = list.as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["a.shm", "b.shm"], "streams only: no text file, no symlink");
    let (header, _) = one_frame(&served, "b.shm").await;
    assert_eq!(header["format"], "GRAY8");
    let (code, _) = http_get(served.addr, "/ws/notes.txt", &[]);
    assert_eq!(code, 404, "a file of the directory that is not a stream");
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quality_and_max_fps_are_applied() {
    let stream = StreamPath::new("options");
    let _writer = Writer::start(&stream.0, W, H, 30, "RGB8");
    let mut sizes = Vec::new();
    for quality in [20, 95] {
        let mut config = shmimage_web::Config::new(vec![stream.0.clone()]);
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.quality = quality;
        let served = Served::start_config(config).await;
        let (header, _) = one_frame(&served, &stream.name()).await;
        assert_eq!(header["width"], W);
        sizes.push(served.last_message_len(&stream.name()));
        served.stop().await;
    }
    assert!(sizes[0] < sizes[1], "quality 20 gives smaller frames than 95: {sizes:?}");

    // At most 4 encodes a second, however fast the writer: the limiter keeps
    // 1/4 s between encodes, so a slow machine can only make fewer.
    let mut config = shmimage_web::Config::new(vec![stream.0.clone()]);
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.max_fps = Some(4.0);
    let served = Served::start_config(config).await;
    let start = std::time::Instant::now();
    let (mut socket, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/ws/{}", served.addr, stream.name())).await.unwrap();
    let mut received = 0u64;
    while received < 6 {
        match tokio::time::timeout(PATIENCE, socket.next()).await.expect("frames at the limited rate") {
            Some(Ok(Message::Binary(_))) => {
                received += 1;
                socket.send(Message::Text("drawn".into())).await.unwrap();
            }
            Some(Ok(_)) => {}
            other => panic!("the WebSocket ended: {other:?}"),
        }
    }
    let (_, encoded, _) = served.stats(&stream.name());
    let bound = (start.elapsed().as_secs_f64() * 4.0).floor() as u64 + 1;
    assert!(encoded <= bound, "{encoded} frames encoded, at most {bound} allowed at --max-fps 4");
    drop(socket);
    served.stop().await;
}
