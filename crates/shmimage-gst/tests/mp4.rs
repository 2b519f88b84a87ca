//! A shmimage writer -> shmimagesrc -> x264enc -> mp4mux -> file: the MP4 is
//! playable (gst-discoverer-1.0) and decodes to as many frames as were sent.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use gst::prelude::*;

use common::{child_args, collect, rgb_pattern, shm_dir, spawn_child};

const CHILD: &str = "child_paced_writer";
const FRAMES: u32 = 60;

/// (child) A native writer that starts once a reader is there and then
/// publishes `FRAMES` I420 frames 20 ms apart; the reader is lossless, so
/// it gets every one (the writer waits for it if it falls behind).
#[test]
fn child_paced_writer() {
    use shmimage::native::{FrameDesc, FrameInfo, PixelFormat, Writer, WriterOptions};
    let Some(path) = child_args(CHILD) else { return };
    let (w, h) = (320, 240);
    let mut options = WriterOptions::for_frame(PixelFormat::I420, w, h).unwrap();
    options.lossless_wait = Some(Duration::from_secs(30));
    let writer = Writer::create(&path, &options).unwrap();
    let end = std::time::Instant::now() + Duration::from_secs(30);
    while writer.readers().is_empty() && std::time::Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
    let desc = FrameDesc::packed(PixelFormat::I420, w, h).unwrap();
    for n in 1..=FRAMES {
        let pixels = rgb_pattern(n, w, h);
        writer.put(&desc, &pixels[..desc.len() as usize], &FrameInfo::default()).unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    // Stay until the reader has left, so it never sees the writer die.
    while !writer.readers().is_empty() && std::time::Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn recording_a_stream_to_mp4_gives_every_frame() {
    if child_args(CHILD).is_some() {
        return;
    }
    common::init();
    assert!(gst::ElementFactory::find("x264enc").is_some(), "x264enc is missing (gstreamer1.0-plugins-ugly)");
    let dir = shm_dir();
    let path = dir.path().join("stream");
    let mp4 = dir.path().join("out.mp4");
    let _writer = spawn_child(CHILD, path.to_str().unwrap());
    let record = format!(
        "shmimagesrc path={} wait-for-writer=true lossless=true num-buffers={FRAMES} ! videoconvert ! x264enc tune=zerolatency \
         speed-preset=ultrafast ! mp4mux ! filesink location={}",
        path.display(),
        mp4.display()
    );
    let pipeline = gst::parse::launch(&record).unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    let msg = bus
        .timed_pop_filtered(gst::ClockTime::from_seconds(60), &[gst::MessageType::Eos, gst::MessageType::Error])
        .expect("the recording did not end");
    pipeline.set_state(gst::State::Null).unwrap();
    assert!(matches!(msg.view(), gst::MessageView::Eos(_)), "{msg:?}");

    let reg = tempfile::tempdir().unwrap();
    let out = common::gst_tool("gst-discoverer-1.0", reg.path()).arg(&mp4).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("H.264") && text.contains("Width: 320"), "{text}");

    let decode = format!(
        "filesrc location={} ! decodebin ! videoconvert ! video/x-raw,format=RGB ! appsink name=out sync=false",
        mp4.display()
    );
    let frames = collect(&decode, FRAMES as usize + 10, Duration::from_secs(60)).unwrap();
    assert_eq!(frames.len(), FRAMES as usize);
    assert!(frames.iter().all(|f| (f.width, f.height) == (320, 240)));
}
