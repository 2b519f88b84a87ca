//! A writer that changes its frame size mid-stream: shmimagesrc sets new
//! caps and the frames of both sizes arrive pixel-exact.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{child_args, collect, rgb_pattern, shm_dir, spawn_child};

const CHILD: &str = "child_ensight_writer";

/// (child) A 1.0 writer: 160x120 frames, then 320x240 ones, 10 ms apart.
#[test]
fn child_ensight_writer() {
    let Some(path) = child_args(CHILD) else { return };
    let file = shmimage::layout::file_len_for_frame(320, 240).unwrap();
    shmimage::StreamFile::create_at(&path, file).unwrap();
    let mut server = shmimage::Server::create(&path, shmimage::ServerOptions::default()).unwrap();
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
