//! A real headless Chromium watches a real writer process's stream through
//! the web server: what it draws, that frames keep coming, that tabs share
//! one reader, and that a killed writer is reported and a restarted one
//! resumes.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use support::browser::{Browser, Shot, Tab};
use support::pattern::{quadrant_colour, STRIP};
use support::{eventually, Served, StreamPath, Writer};
use tokio_tungstenite::tungstenite::Message;

// Not a multiple of 16 pixels: the native writer pads its rows, so the server
// must honour the stride.
const W: u32 = 300;
const H: u32 = 240;

/// One Chromium at a time: the machine is small and shared.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn frames(tab: &mut Tab) -> u64 {
    tab.eval("window.shmimage.frames").await.as_u64().unwrap_or(0)
}

/// Wait until the tab has drawn at least `n` more frames than now.
async fn wait_frames(tab: &mut Tab, n: u64) -> u64 {
    let start = frames(tab).await;
    let f = tab.wait_for("frames in the page", "window.shmimage.frames", |v| v.as_u64().unwrap_or(0) >= start + n);
    f.await.as_u64().unwrap_or(0)
}

fn close(a: [u8; 3], b: [u8; 3]) -> bool {
    a.iter().zip(b).all(|(x, y)| (i16::from(*x) - i16::from(y)).abs() <= 48)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_the_pattern_then_a_later_frame() {
    let _one = ONE_BROWSER.lock().await;
    let stream = StreamPath::new("pattern");
    // A native stream in a format the encoder takes only through conversion.
    let _writer = Writer::start(&stream.0, W, H, 20, "I420");
    let served = Served::start(vec![stream.0.clone()], "127.0.0.1:0").await;
    let browser = Browser::launch();
    let mut tab = browser.open(&served.url).await;
    wait_frames(&mut tab, 3).await;

    let rect = tab
        .eval("(() => { const r = document.getElementById('canvas').getBoundingClientRect(); return [r.left, r.top, r.width, r.height]; })()")
        .await;
    let r: Vec<f64> = rect.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert_eq!((r[2].round() as u32, r[3].round() as u32), (W, H), "the canvas shows the frame at its size");
    let at = |x: u32, y: u32| ((r[0] + f64::from(x)) as u32, (r[1] + f64::from(y)) as u32);

    let first_number = tab.eval("window.shmimage.number").await.as_u64().unwrap();
    let first = Shot::decode(&tab.screenshot().await);
    for (x, y) in [(W / 4, H / 4 + STRIP), (3 * W / 4, H / 4 + STRIP), (W / 4, 3 * H / 4), (3 * W / 4, 3 * H / 4)] {
        let (sx, sy) = at(x, y);
        let want = quadrant_colour(W, H, x, y);
        let got = first.rgb(sx, sy);
        assert!(close(got, want), "frame pixel ({x},{y}) at screen ({sx},{sy}): {got:?}, want {want:?}");
    }
    // The stats beside the picture.
    let text = tab.eval("document.querySelector('dl').innerText").await;
    let text = text.as_str().unwrap();
    assert!(text.contains("300×240") && text.contains("I420"), "stats panel: {text}");
    // A native frame carries its capture time: latency is measured from it.
    let label = tab.eval("document.getElementById('latency-label').textContent").await;
    assert_eq!(label, "latency", "the page measures from the capture time");
    let latency = tab.eval("window.shmimage.latency").await.as_f64().unwrap();
    assert!(latency > 0.0, "latency {latency} ms");

    tab.wait_for("a later frame", "window.shmimage.number", |v| v.as_u64().unwrap_or(0) >= first_number + 5).await;
    let second = Shot::decode(&tab.screenshot().await);
    let strip_differs = (0..W).step_by(4).any(|x| {
        let (sx, sy) = at(x, STRIP / 2);
        !close(first.rgb(sx, sy), second.rgb(sx, sy))
    });
    assert!(strip_differs, "the second screenshot shows the same frame as the first");
    let fps = tab.eval("window.shmimage.fps").await.as_f64().unwrap();
    assert!(fps > 0.0, "the page reports {fps} frames/s");
    let shown = tab.eval("document.getElementById('fps').textContent").await;
    assert!(shown.as_str().unwrap().parse::<f64>().unwrap() > 0.0, "frames/s shown: {shown}");

    drop(tab);
    drop(browser);
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tabs_and_a_socket_share_one_reader() {
    let _one = ONE_BROWSER.lock().await;
    let stream = StreamPath::new("share");
    let name = stream.name();
    let _writer = Writer::start(&stream.0, W, H, 20, "RGB8");
    let served = Served::start(vec![stream.0.clone()], "127.0.0.1:0").await;
    assert_eq!(served.stats(&name).0, 0, "no reader before anyone watches");

    let browser = Browser::launch();
    let mut a = browser.open(&served.url).await;
    let mut b = browser.open(&served.url).await;
    let ws_url = format!("ws://{}/ws/{name}", served.addr);
    let (mut socket, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();
    let mut received = 0;
    tokio::time::timeout(support::PATIENCE, async {
        while received < 10 {
            match socket.next().await {
                Some(Ok(Message::Binary(_))) => {
                    received += 1;
                    socket.send(Message::Text("drawn".into())).await.unwrap();
                }
                Some(Ok(_)) => {}
                other => panic!("the WebSocket client lost its stream: {other:?}"),
            }
        }
    })
    .await
    .expect("the WebSocket client received frames");
    wait_frames(&mut a, 5).await;
    wait_frames(&mut b, 5).await;

    let (readers, encoded, watchers) = served.stats(&name);
    assert_eq!(watchers, 3, "two tabs and one socket watch");
    assert_eq!(readers, 1, "the server opened the stream once for three clients");
    assert!(encoded > 0);
    // The writer's side: one reader is registered in the stream, and it is
    // this process (the server), not one per client.
    let readers = shmimage::native::inspect(&stream.0).unwrap().readers;
    let pids: Vec<u32> = readers.iter().map(|r| r.pid).collect();
    assert_eq!(pids, [std::process::id()], "the writer sees exactly one reader, the server");

    drop(socket);
    drop((a, b));
    drop(browser);
    // With nobody watching, the server stops reading.
    eventually("the reader to stop", || async {
        let (_, _, watchers) = served.stats(&name);
        let readers = shmimage::native::inspect(&stream.0).ok()?.readers.len();
        (watchers == 0 && readers == 0).then_some(())
    })
    .await;
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_writer_is_reported_and_a_restarted_one_resumes() {
    let _one = ONE_BROWSER.lock().await;
    let browser = Browser::launch();
    // A native stream (its reader stays and sees the new writer), one whose
    // file is deleted and made again by the new writer, and a 1.0 one (its
    // one client is replaced).
    for (format, new_file) in [("BGRX8", false), ("BGRX8", true), ("ensight", false)] {
        let stream = StreamPath::new("gone");
        let writer = Writer::start(&stream.0, W, H, 20, format);
        let served = Served::start(vec![stream.0.clone()], "127.0.0.1:0").await;
        let mut tab = browser.open(&served.url).await;
        wait_frames(&mut tab, 3).await;

        writer.kill();
        let shown = "(() => { const s = document.getElementById('status'); return s.classList.contains('show') ? s.textContent : ''; })()";
        tab.wait_for("the page to say the writer is gone", shown, |v| v == "writer gone").await;
        let stalled = frames(&mut tab).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(frames(&mut tab).await, stalled, "{format}: no frames while the writer is gone");

        // A new writer process takes the stream over.
        if new_file {
            std::fs::remove_file(&stream.0).unwrap();
        }
        let _writer = Writer::start(&stream.0, W, H, 20, format);
        wait_frames(&mut tab, 3).await;
        tab.wait_for("the status to clear", "window.shmimage.status", |v| v == "live").await;
        drop(tab);
        served.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_streams_are_offered_in_a_list_to_pick_from() {
    let _one = ONE_BROWSER.lock().await;
    let (colour, gray) = (StreamPath::new("pick-a"), StreamPath::new("pick-b"));
    let _wa = Writer::start(&colour.0, W, H, 20, "RGB8");
    let _wb = Writer::start(&gray.0, W, H, 20, "GRAY16_LE");
    let served = Served::start(vec![colour.0.clone(), gray.0.clone()], "127.0.0.1:0").await;
    let browser = Browser::launch();
    let mut tab = browser.open(&served.url).await;
    wait_frames(&mut tab, 2).await;
    let options = tab.eval("[...document.getElementById('pick').options].map(o => o.value)").await;
    assert_eq!(options, serde_json::json!([colour.name(), gray.name()]));
    assert_eq!(tab.eval("window.shmimage.format").await, "RGB8", "the first stream is shown first");

    let pick = format!(
        "(() => {{ const p = document.getElementById('pick'); p.value = {:?}; p.dispatchEvent(new Event('change')); return 0; }})()",
        gray.name()
    );
    tab.eval(&pick).await;
    tab.wait_for("the second stream", "window.shmimage.format", |v| v == "GRAY16_LE").await;
    wait_frames(&mut tab, 2).await;
    // The first stream lost its only watcher, so its reader stopped.
    let mut stopped = false;
    for _ in 0..100 {
        if served.stats(&colour.name()).2 == 0 && shmimage::native::inspect(&colour.0).unwrap().readers.is_empty() {
            stopped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(stopped, "the reader of the stream no longer shown stops");
    drop(tab);
    drop(browser);
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bottom_up_frames_are_shown_upright() {
    let _one = ONE_BROWSER.lock().await;
    let stream = StreamPath::new("bottomup");
    let _writer = Writer::start_spec(&format!("{}|{W}|{H}|20|RGBX8|bottomup", stream.0.display()));
    let served = Served::start(vec![stream.0.clone()], "127.0.0.1:0").await;
    let browser = Browser::launch();
    let mut tab = browser.open(&served.url).await;
    wait_frames(&mut tab, 2).await;
    let rect = tab
        .eval("(() => { const r = document.getElementById('canvas').getBoundingClientRect(); return [r.left, r.top]; })()")
        .await;
    let (left, top) = (rect[0].as_f64().unwrap(), rect[1].as_f64().unwrap());
    let shot = Shot::decode(&tab.screenshot().await);
    // Red above blue, as written (upside down, red would be at the bottom).
    for (x, y) in [(W / 4, H / 4 + STRIP), (W / 4, 3 * H / 4)] {
        let want = quadrant_colour(W, H, x, y);
        let got = shot.rgb((left + f64::from(x)) as u32, (top + f64::from(y)) as u32);
        assert!(close(got, want), "({x},{y}): {got:?}, want {want:?}: the picture is upside down");
    }
    drop(tab);
    drop(browser);
    served.stop().await;
}
