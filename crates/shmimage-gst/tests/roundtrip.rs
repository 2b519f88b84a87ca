//! videotestsrc -> shmimagesink (one process, gst-launch-1.0 with the built
//! plugin) -> stream -> shmimagesrc -> appsink (this process): every frame
//! read is pixel-exact, in the writer's order.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use gst::prelude::*;

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

/// One native round trip per format, at a size whose rows need padding and
/// whose chroma planes have odd sizes.
macro_rules! native_round_trip {
    ($($name:ident: $format:literal,)*) => {$(
        #[test]
        fn $name() {
            round_trip(concat!("video/x-raw,format=", $format, ",width=322,height=241,framerate=30/1"), "");
        }
    )*};
}

native_round_trip! {
    native_rgb_round_trip_is_pixel_exact: "RGB",
    native_bgr_round_trip_is_pixel_exact: "BGR",
    native_rgba_round_trip_is_pixel_exact: "RGBA",
    native_bgra_round_trip_is_pixel_exact: "BGRA",
    native_rgbx_round_trip_is_pixel_exact: "RGBx",
    native_bgrx_round_trip_is_pixel_exact: "BGRx",
    native_gray8_round_trip_is_pixel_exact: "GRAY8",
    native_gray16_round_trip_is_pixel_exact: "GRAY16_LE",
    native_i420_round_trip_is_pixel_exact: "I420",
    native_nv12_round_trip_is_pixel_exact: "NV12",
}

/// The address of the first frame's bytes as `shmimagesrc` hands it to an
/// appsink, and whether it lies in a mapping of `path`.
fn first_buffer_in_mapping(path: &std::path::Path) -> (usize, bool) {
    let desc = format!("shmimagesrc path={} wait-for-writer=true ! appsink name=out sync=false", path.display());
    let pipeline = gst::parse::launch(&desc).unwrap().downcast::<gst::Pipeline>().unwrap();
    let sink = pipeline.by_name("out").unwrap().downcast::<gst_app::AppSink>().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let sample = sink.try_pull_sample(gst::ClockTime::from_seconds(30)).expect("no frame");
    let buffer = sample.buffer().unwrap();
    let map = buffer.map_readable().unwrap();
    let addr = map.as_ptr() as usize;
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let inside = maps.lines().filter(|l| l.contains(path.to_str().unwrap())).any(|l| {
        let range = l.split_whitespace().next().unwrap();
        let (a, b) = range.split_once('-').unwrap();
        let (a, b) = (usize::from_str_radix(a, 16).unwrap(), usize::from_str_radix(b, 16).unwrap());
        (a..b).contains(&addr)
    });
    drop(map);
    drop(sample);
    pipeline.set_state(gst::State::Null).unwrap();
    (addr, inside)
}

fn writer_process(path: &std::path::Path, reg: &std::path::Path, caps: &str, sink_props: &str) -> Reaped {
    Reaped(
        gst_tool("gst-launch-1.0", reg)
            .args(["-q", "videotestsrc", "is-live=true", "!", caps])
            .args(["!", "shmimagesink", &format!("path={}", path.display())])
            .args(sink_props.split_whitespace())
            .spawn()
            .unwrap(),
    )
}

/// Native frames reach downstream in the stream's own memory: the buffer's
/// bytes lie inside this process's mapping of the stream file.
#[test]
fn native_buffers_are_the_stream_slots_themselves() {
    common::init();
    let dir = shm_dir();
    let path = dir.path().join("stream");
    let reg = tempfile::tempdir().unwrap();
    let _writer = writer_process(&path, reg.path(), "video/x-raw,format=I420,width=640,height=480,framerate=30/1", "");
    let (addr, inside) = first_buffer_in_mapping(&path);
    assert!(inside, "the buffer at {addr:#x} is not in a mapping of {}", path.display());
}

/// A 1.0 frame read in place is lent too (rows of 960 bytes: GStreamer's
/// own stride for RGB 320 wide).
#[test]
fn ensight_buffers_are_the_stream_buffers_themselves() {
    common::init();
    let dir = shm_dir();
    let path = dir.path().join("stream");
    let reg = tempfile::tempdir().unwrap();
    let caps = "video/x-raw,format=RGB,width=320,height=240,framerate=30/1";
    let _writer = writer_process(&path, reg.path(), caps, "ensight=true");
    let (addr, inside) = first_buffer_in_mapping(&path);
    assert!(inside, "the buffer at {addr:#x} is not in a mapping of {}", path.display());
}

#[test]
fn ensight_rgb_round_trip_is_pixel_exact() {
    // 322 wide: rows of 966 bytes, which GStreamer pads to 968.
    round_trip("video/x-raw,format=RGB,width=322,height=240,framerate=30/1", "ensight=true");
}
