//! A writer killed with SIGKILL: shmimagesrc posts an error on the bus, or,
//! with wait-for-writer, says so in an element message and resumes with the
//! next writer.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use gst::prelude::*;

use common::{gst_tool, shm_dir, Reaped};

fn writer(path: &Path, reg: &Path) -> Reaped {
    Reaped(
        gst_tool("gst-launch-1.0", reg)
            .args([
                "-q",
                "videotestsrc",
                "is-live=true",
                "!",
                "video/x-raw,format=RGBA,width=64,height=48,framerate=50/1",
            ])
            .args(["!", "shmimagesink", &format!("path={}", path.display()), "remove-on-stop=false"])
            .spawn()
            .unwrap(),
    )
}

struct Reading {
    pipeline: gst::Pipeline,
    sink: gst_app::AppSink,
    bus: gst::Bus,
}

impl Reading {
    fn start(path: &Path, wait: bool) -> Reading {
        let desc = format!("shmimagesrc path={} wait-for-writer={wait} ! appsink name=out sync=false", path.display());
        let pipeline = gst::parse::launch(&desc).unwrap().downcast::<gst::Pipeline>().unwrap();
        let sink = pipeline.by_name("out").unwrap().downcast::<gst_app::AppSink>().unwrap();
        let bus = pipeline.bus().unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        Reading { pipeline, sink, bus }
    }

    fn frame(&self) -> bool {
        self.sink.try_pull_sample(gst::ClockTime::from_seconds(20)).is_some()
    }

    /// The first bus message that `pick` accepts within 20 s.
    fn message(&self, pick: impl Fn(&gst::Message) -> bool) -> Option<gst::Message> {
        let end = Instant::now() + Duration::from_secs(20);
        while Instant::now() < end {
            // Keep the appsink drained so the source is never blocked.
            while self.sink.try_pull_sample(gst::ClockTime::ZERO).is_some() {}
            if let Some(m) = self.bus.timed_pop(gst::ClockTime::from_mseconds(50)) {
                if pick(&m) {
                    return Some(m);
                }
            }
        }
        None
    }
}

impl Drop for Reading {
    fn drop(&mut self) {
        self.pipeline.set_state(gst::State::Null).unwrap();
    }
}

#[test]
fn a_killed_writer_is_an_error_on_the_bus() {
    common::init();
    let (dir, reg) = (shm_dir(), tempfile::tempdir().unwrap());
    let path = dir.path().join("stream");
    let mut w = writer(&path, reg.path());
    let r = Reading::start(&path, true);
    assert!(r.frame(), "no first frame");
    drop(r);
    let r = Reading::start(&path, false);
    assert!(r.frame(), "no frame");
    w.0.kill().unwrap();
    w.0.wait().unwrap();
    let m = r.message(|m| matches!(m.view(), gst::MessageView::Error(_))).expect("no error after the writer died");
    let gst::MessageView::Error(e) = m.view() else { unreachable!() };
    assert!(e.error().to_string().contains("writer has gone"), "{}", e.error());
}

#[test]
fn waiting_for_the_writer_resumes_with_a_new_one() {
    common::init();
    let (dir, reg) = (shm_dir(), tempfile::tempdir().unwrap());
    let path = dir.path().join("stream");
    let mut w = writer(&path, reg.path());
    let r = Reading::start(&path, true);
    assert!(r.frame(), "no first frame");
    w.0.kill().unwrap();
    w.0.wait().unwrap();
    let gone = r.message(|m| m.structure().is_some_and(|s| s.name() == "shmimagesrc-writer-gone"));
    assert!(gone.is_some(), "no shmimagesrc-writer-gone message");
    // Frames of the dead writer still queued are not the new writer's.
    while r.sink.try_pull_sample(gst::ClockTime::ZERO).is_some() {}
    let _w2 = writer(&path, reg.path());
    assert!(r.frame(), "no frame from the new writer");
}
