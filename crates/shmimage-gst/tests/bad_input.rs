//! Paths a user gets wrong and files that are not streams: a clear error on
//! the bus, never a panic or a hang.
#![allow(clippy::unwrap_used)]

mod common;

use gst::prelude::*;

/// Run `desc` to its first error (or EOS) and return the error's text.
fn first_error(desc: &str) -> String {
    let pipeline = gst::parse::launch(desc).unwrap();
    let _ = pipeline.set_state(gst::State::Playing);
    let bus = pipeline.bus().unwrap();
    let msg =
        bus.timed_pop_filtered(gst::ClockTime::from_seconds(20), &[gst::MessageType::Error, gst::MessageType::Eos]);
    pipeline.set_state(gst::State::Null).unwrap();
    match msg.as_ref().map(|m| m.view()) {
        Some(gst::MessageView::Error(e)) => format!("{} {:?}", e.error(), e.debug()),
        other => panic!("{desc}: no error but {other:?}"),
    }
}

#[test]
fn bad_paths_and_garbage_files_are_errors() {
    common::init();
    let dir = common::shm_dir();
    let garbage = dir.path().join("garbage");
    std::fs::write(&garbage, (0..100_000u32).map(|i| (i * 7919 % 251) as u8).collect::<Vec<_>>()).unwrap();
    let tiny = dir.path().join("tiny");
    std::fs::write(&tiny, b"SHMIMG2\0 and then nothing").unwrap();
    let missing = dir.path().join("missing");
    let cases = [
        format!("shmimagesrc path={} ! fakesink", missing.display()),
        format!("shmimagesrc path={} ! fakesink", tiny.display()),
        format!("shmimagesrc path={} ! fakesink", dir.path().display()),
        format!("videotestsrc num-buffers=3 ! shmimagesink path={}/no/such/dir/s", dir.path().display()),
        format!("videotestsrc num-buffers=3 ! shmimagesink path={}", garbage.display()),
        format!("videotestsrc num-buffers=3 ! shmimagesink path={}", dir.path().display()),
        "shmimagesrc ! fakesink".to_string(),
    ];
    for desc in &cases {
        let e = first_error(desc);
        assert!(!e.is_empty(), "{desc}");
    }
    // One protocol's writer never starts over the other's stream.
    let native = dir.path().join("native");
    let options = shmimage::native::WriterOptions::for_frame(shmimage::native::PixelFormat::Rgb8, 64, 48).unwrap();
    drop(shmimage::native::Writer::create(&native, &options).unwrap());
    let before = std::fs::read(&native).unwrap();
    let e = first_error(&format!(
        "videotestsrc num-buffers=3 ! video/x-raw,format=RGB ! shmimagesink path={} ensight=true",
        native.display()
    ));
    assert!(e.contains("is a native stream"), "{e}");
    assert_eq!(std::fs::read(&native).unwrap(), before, "the native stream was touched");

    // Garbage of a 1.0 stream's size is a 1.0 stream whose server has not
    // started (protocol 1.0 lets a client come first): the source waits,
    // and stops at once when asked.
    let pipeline = gst::parse::launch(&format!("shmimagesrc path={} ! fakesink", garbage.display())).unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(pipeline.set_state(gst::State::Null).unwrap(), gst::StateChangeSuccess::Success);
}
