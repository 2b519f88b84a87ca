//! A writer that changes its frame size mid-stream: shmimagesrc sets new
//! caps and the frames of both sizes arrive pixel-exact.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{child_args, collect, rgb_pattern, shm_dir, spawn_child};

const CHILD: &str = "child_ensight_writer";
const NATIVE_CHILD: &str = "child_native_writer";

/// (child) A native writer: 160x120 RGB frames, then 320x240 I420 ones, in
/// one file sized for the larger, 10 ms apart; frame n's bytes are
/// `rgb_pattern(n, ..)` cut to the frame's length.
#[test]
fn child_native_writer() {
    use shmimage::native::{FrameDesc, FrameInfo, PixelFormat, Writer, WriterOptions};
    let Some(path) = child_args(NATIVE_CHILD) else { return };
    let options = WriterOptions::for_frame(PixelFormat::Rgb8, 320, 240).unwrap();
    let writer = Writer::create(&path, &options).unwrap();
    // Start once the reader is there, so it sees the small frames too.
    let end = std::time::Instant::now() + Duration::from_secs(30);
    while writer.readers().is_empty() && std::time::Instant::now() < end {
        std::thread::sleep(Duration::from_millis(5));
    }
    for n in 1..=3000u32 {
        let desc = if n <= 100 {
            FrameDesc::packed(PixelFormat::Rgb8, 160, 120).unwrap()
        } else {
            FrameDesc::packed(PixelFormat::I420, 320, 240).unwrap()
        };
        let pixels = rgb_pattern(n, 320, 240);
        let _ = writer.put(&desc, &pixels[..desc.len() as usize], &FrameInfo::default());
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn native_writer_changing_size_and_format_renegotiates() {
    if child_args(NATIVE_CHILD).is_some() {
        return;
    }
    common::init();
    let dir = shm_dir();
    let path = dir.path().join("stream");
    let _writer = spawn_child(NATIVE_CHILD, path.to_str().unwrap());
    let desc = format!("shmimagesrc path={} wait-for-writer=true ! appsink name=out sync=false", path.display());
    let got = collect(&desc, 150, Duration::from_secs(60)).unwrap();
    let small = got.iter().filter(|f| f.format == gst_video::VideoFormat::Rgb && f.width == 160).count();
    let large = got.iter().filter(|f| f.format == gst_video::VideoFormat::I420 && f.width == 320).count();
    assert!(small > 0 && large > 0, "{small} small RGB and {large} large I420 frames");
    assert_eq!(small + large, got.len());
    assert!(got.windows(2).all(|p| p[0].width <= p[1].width), "sizes went back and forth");
    let mut sequences: Vec<u64> = got.iter().map(|f| f.offset).collect();
    sequences.dedup();
    assert_eq!(sequences.len(), got.len(), "a frame came twice");
    for f in &got {
        let all = rgb_pattern(0, 320, 240);
        assert!(f.bytes.len() <= all.len());
        // The writer's sequence numbers start at its first frame; the
        // content tells which frame this is.
        let n = (1..=3000u32).find(|&n| rgb_pattern(n, 320, 240)[..f.bytes.len()] == f.bytes[..]);
        assert!(n.is_some(), "frame {} ({:?} {}x{}) matches no written frame", f.offset, f.format, f.width, f.height);
    }
}

/// (child) A 1.0 writer: 160x120 frames, then 320x240 ones, 10 ms apart.
#[test]
fn child_ensight_writer() {
    let Some(path) = child_args(CHILD) else { return };
    let file = shmimage::layout::file_len_for_frame(320, 240).unwrap();
    shmimage::StreamFile::create_at(&path, file).unwrap();
    let server = shmimage::Server::create(&path, shmimage::ServerOptions::default()).unwrap();
    // Start once the reader is there, so it sees the small frames too.
    let _ = server.wait_for_client(Some(Duration::from_secs(30)));
    for n in 1..=3000u32 {
        let (w, h) = if n <= 100 { (160, 120) } else { (320, 240) };
        let _ = server.put_frame(n, w, h, &rgb_pattern(n, w, h));
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn ensight_writer_changing_size_renegotiates() {
    if child_args(CHILD).is_some() {
        return;
    }
    common::init();
    let dir = shm_dir();
    let path = dir.path().join("stream");
    let _writer = spawn_child(CHILD, path.to_str().unwrap());
    let desc = format!(
        "shmimagesrc path={} wait-for-writer=true ! capsfilter name=seen ! appsink name=out sync=false",
        path.display()
    );
    let got = collect(&desc, 150, Duration::from_secs(60)).unwrap();
    let small = got.iter().filter(|f| f.width == 160).count();
    let large = got.iter().filter(|f| f.width == 320).count();
    assert!(small > 0 && large > 0, "{small} small and {large} large frames");
    assert!(got.windows(2).all(|p| p[0].width <= p[1].width), "sizes went back and forth");
    for f in &got {
        assert_eq!(f.bytes, rgb_pattern(f.offset as u32, f.width, f.height), "frame {}", f.offset);
    }
}
