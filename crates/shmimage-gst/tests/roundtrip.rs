//! videotestsrc -> shmimagesink (one process, gst-launch-1.0 with the built
//! plugin) -> stream -> shmimagesrc -> appsink (this process): every frame
//! read is pixel-exact, in the writer's order.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{collect, gst_tool, reference, shm_dir, Reaped};

/// The moving test pattern: each frame differs from the last, so a frame
/// matches exactly one reference frame.
const PATTERN: &str = "pattern=smpte horizontal-speed=7";
const REFERENCE_FRAMES: usize = 400;

/// Write `caps` frames into `path` from another process, read 20 back here
/// and check each against the reference frames, in order.
fn round_trip(caps: &str, sink_props: &str) {
    common::init();
    let dir = shm_dir();
    let path = dir.path().join("stream");
    let reg = tempfile::tempdir().unwrap();
    let reference = reference(PATTERN, caps, REFERENCE_FRAMES);
    let _writer = Reaped(
        gst_tool("gst-launch-1.0", reg.path())
            .arg("-q")
            .args(format!("videotestsrc is-live=true {PATTERN} num-buffers={REFERENCE_FRAMES}").split(' '))
            .args(["!", caps, "!", "shmimagesink", &format!("path={}", path.display())])
            .args(sink_props.split_whitespace())
            .spawn()
            .unwrap(),
    );
    let desc = format!("shmimagesrc path={} wait-for-writer=true ! appsink name=out sync=false", path.display());
    let got = collect(&desc, 20, Duration::from_secs(60)).unwrap();
    assert_eq!(got.len(), 20, "frames read");
    let mut last = None;
    for f in &got {
        let i = reference.iter().position(|r| r.bytes == f.bytes && r.format == f.format && r.width == f.width);
        let i = i.unwrap_or_else(|| {
            panic!("frame {} ({:?} {}x{}) matches no written frame", f.offset, f.format, f.width, f.height)
        });
        assert!(last.map_or(true, |l| i > l), "frame {i} read after frame {last:?}");
        last = Some(i);
    }
}

#[test]
fn ensight_rgb_round_trip_is_pixel_exact() {
    // 322 wide: rows of 966 bytes, which GStreamer pads to 968.
    round_trip("video/x-raw,format=RGB,width=322,height=240,framerate=30/1", "ensight=true");
}
