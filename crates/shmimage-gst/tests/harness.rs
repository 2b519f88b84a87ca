//! The elements driven by gst_check::Harness: shmimagesrc hands out the
//! stream's slots with GstVideoMeta to a peer that reads it; shmimagesink
//! writes the negotiated layout, frame rate and capture times.
#![allow(clippy::unwrap_used)]

mod common;

use gst::prelude::*;
use gst_check::Harness;
use shmimage::native::{self, Reader, ReaderOptions};

use common::{gst_tool, plain, reference, shm_dir, Reaped};

fn in_mapping_of(path: &std::path::Path, addr: usize) -> bool {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    maps.lines().filter(|l| l.contains(path.to_str().unwrap())).any(|l| {
        let (a, b) = l.split_whitespace().next().unwrap().split_once('-').unwrap();
        (usize::from_str_radix(a, 16).unwrap()..usize::from_str_radix(b, 16).unwrap()).contains(&addr)
    })
}

/// Padded rows (322 wide: the stream pads to 64 bytes, GStreamer to 4) go
/// downstream without a copy when the peer reads GstVideoMeta.
#[test]
fn src_lends_padded_slots_with_video_meta() {
    common::init();
    let dir = shm_dir();
    let path = dir.path().join("stream");
    let caps = "video/x-raw,format=I420,width=322,height=241,framerate=30/1";
    let props = "pattern=smpte horizontal-speed=7";
    let frames = reference(props, caps, 300);
    let reg = tempfile::tempdir().unwrap();
    let _writer = Reaped(
        gst_tool("gst-launch-1.0", reg.path())
            .args(["-q", "videotestsrc", "is-live=true", "pattern=smpte", "horizontal-speed=7", "num-buffers=300"])
            .args(["!", caps, "!", "shmimagesink", &format!("path={}", path.display())])
            .spawn()
            .unwrap(),
    );
    let mut h = Harness::new("shmimagesrc");
    {
        let src = h.element().unwrap();
        src.set_property("path", path.to_str().unwrap());
        src.set_property("wait-for-writer", true);
    }
    h.add_propose_allocation_meta(gst_video::VideoMeta::meta_api(), None);
    h.play();
    for _ in 0..5 {
        let buffer = h.pull().unwrap();
        let caps = h.sinkpad().unwrap().current_caps().unwrap();
        let meta = buffer.meta::<gst_video::VideoMeta>().expect("no video meta on a padded frame");
        assert_eq!(meta.stride()[0] % 64, 0, "the stream's own row stride");
        let addr = buffer.map_readable().unwrap().as_ptr() as usize;
        assert!(in_mapping_of(&path, addr), "the buffer was copied");
        let sample = gst::Sample::builder().buffer(&buffer).caps(&caps).build();
        let got = plain(&sample);
        assert!(frames.iter().any(|f| f.bytes == got.bytes), "frame {} matches no written frame", got.offset);
    }
}

/// Frames pushed with PTS and a frame rate land in the stream with that
/// rate in their metadata and capture times no later than publication.
#[test]
fn sink_writes_layout_framerate_and_capture_times() {
    common::init();
    let dir = shm_dir();
    let path = dir.path().join("stream");
    // A harness plays a sink as soon as it has it: set the path first, and
    // no preroll (a harness expects PLAYING at once).
    let sink = gst::ElementFactory::make("shmimagesink")
        .property("path", path.to_str().unwrap())
        .property("sync", false)
        .property("async", false)
        .build()
        .unwrap();
    let mut h = Harness::with_element(&sink, Some("sink"), None);
    let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::Nv12, 100, 51)
        .fps(gst::Fraction::new(25, 1))
        .build()
        .unwrap();
    h.set_src_caps(info.to_caps().unwrap());
    h.play();
    let mut buffer = gst::Buffer::with_size(info.size()).unwrap();
    {
        let b = buffer.get_mut().unwrap();
        let mut map = b.map_writable().unwrap();
        for (i, v) in map.iter_mut().enumerate() {
            *v = (i % 251) as u8;
        }
        drop(map);
        b.set_pts(gst::ClockTime::ZERO);
    }
    h.push(buffer.clone()).unwrap();
    let reader = Reader::open(&path, &ReaderOptions::default()).unwrap();
    let frame = reader.latest().unwrap();
    assert_eq!((frame.format(), frame.width(), frame.height()), (native::PixelFormat::Nv12, 100, 51));
    assert!(String::from_utf8_lossy(frame.metadata()).contains("framerate=25/1"));
    let ts = frame.timestamps();
    assert!(ts.capture_mono_ns > 0 && ts.capture_mono_ns <= ts.publish_mono_ns, "{ts:?}");
    // Plane by plane, the stream holds what was pushed.
    let map = buffer.map_readable().unwrap();
    for (i, p) in frame.desc().planes().iter().enumerate() {
        let plane = frame.plane(i).unwrap();
        let off = info.offset()[i];
        let stride = info.stride()[i] as usize;
        for r in 0..p.rows as usize {
            let want = &map[off + r * stride..off + r * stride + p.row_bytes as usize];
            let got = &plane[r * p.stride as usize..r * p.stride as usize + p.row_bytes as usize];
            assert_eq!(want, got, "plane {i} row {r}");
        }
    }
}

/// Upstream that reads GstVideoMeta draws straight into the stream's slots:
/// no frame is copied, at GStreamer's own layout or the stream's padded one.
#[test]
fn sink_lets_upstream_draw_into_slots() {
    common::init();
    let dir = shm_dir();
    for (i, caps) in
        ["format=I420,width=640,height=480", "format=RGB,width=322,height=241", "format=NV12,width=100,height=51"]
            .iter()
            .enumerate()
    {
        let path = dir.path().join(format!("stream{i}"));
        let desc = format!(
            "videotestsrc num-buffers=30 ! video/x-raw,{caps},framerate=30/1 ! shmimagesink path={} sync=false",
            path.display()
        );
        let pipeline = gst::parse::launch(&desc).unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        let bus = pipeline.bus().unwrap();
        let mut last = None;
        while let Some(m) = bus.timed_pop(gst::ClockTime::from_seconds(30)) {
            match m.view() {
                gst::MessageView::Eos(_) => break,
                gst::MessageView::Error(e) => panic!("{caps}: {}", e.error()),
                gst::MessageView::Element(e) => {
                    let s = e.structure().unwrap();
                    if s.name() == "shmimagesink-stats" {
                        last = Some((s.get::<u64>("frames").unwrap(), s.get::<u64>("in-place").unwrap()));
                    }
                }
                _ => {}
            }
        }
        pipeline.set_state(gst::State::Null).unwrap();
        assert_eq!(last, Some((30, 30)), "{caps}: (frames, in place)");
    }
}
