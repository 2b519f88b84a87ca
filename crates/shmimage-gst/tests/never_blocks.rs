//! A reader whose downstream holds on to every buffer never takes the
//! writer's slots away: past max-held-slots the source copies, and the
//! writer's loans keep succeeding without waiting.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use gst::prelude::*;
use shmimage::native::{FrameDesc, PixelFormat, Writer, WriterOptions};

#[test]
fn downstream_holding_buffers_never_blocks_the_writer() {
    common::init();
    let dir = common::shm_dir();
    let path = dir.path().join("stream");
    let mut options = WriterOptions::for_frame(PixelFormat::Rgba8, 64, 48).unwrap();
    options.slots = 4;
    let writer = Writer::create(&path, &options).unwrap();
    let desc = FrameDesc::new(PixelFormat::Rgba8, 64, 48).unwrap();
    // The appsink is never pulled from: it keeps every buffer.
    let reading = format!(
        "shmimagesrc path={} max-held-slots=2 stats-interval=100 ! appsink name=out sync=false max-buffers=0",
        path.display()
    );
    let pipeline = gst::parse::launch(&reading).unwrap().downcast::<gst::Pipeline>().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let end = Instant::now() + Duration::from_secs(30);
    while writer.readers().is_empty() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(5));
    }
    for n in 0..60u8 {
        // Zero timeout: a loan that would have to wait for a slot fails.
        let mut loan = writer.loan(&desc, Some(Duration::ZERO)).unwrap_or_else(|e| panic!("frame {n}: {e}"));
        loan.pixels_mut().fill(n);
        loan.commit().unwrap();
        std::thread::sleep(Duration::from_millis(10));
    }
    let sink = pipeline.by_name("out").unwrap().downcast::<gst_app::AppSink>().unwrap();
    let mut held = Vec::new();
    while let Some(s) = sink.try_pull_sample(gst::ClockTime::from_mseconds(500)) {
        held.push(s);
    }
    // The source says so in its stats: frames copied, at most two slots held.
    let mut stats = None;
    while let Some(m) = pipeline.bus().unwrap().pop() {
        if let Some(s) = m.structure().filter(|s| s.name() == "shmimagesrc-stats") {
            stats = Some((s.get::<u64>("copied").unwrap(), s.get::<u64>("held-slots").unwrap()));
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    assert!(held.len() > 10, "the reader saw {} frames", held.len());
    let (copied, held_slots) = stats.expect("no shmimagesrc-stats message");
    assert!(copied > 0 && held_slots <= 2, "copied {copied}, held {held_slots}");
}
