//! Start and stop a writing and a reading pipeline 100 times: no file
//! descriptors, mappings or stream files are left behind.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use gst::prelude::*;

fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn mappings_of(dir: &std::path::Path) -> usize {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    maps.lines().filter(|l| l.contains(dir.to_str().unwrap())).count()
}

fn cycle(sink_props: &str, path: &std::path::Path) {
    let writer = gst::parse::launch(&format!(
        "videotestsrc is-live=true ! video/x-raw,format=RGB,width=64,height=48,framerate=200/1 ! \
         shmimagesink path={} {sink_props}",
        path.display()
    ))
    .unwrap();
    writer.set_state(gst::State::Playing).unwrap();
    let desc = format!("shmimagesrc path={} wait-for-writer=true ! appsink name=out sync=false", path.display());
    let got = common::collect(&desc, 1, Duration::from_secs(20)).unwrap();
    assert_eq!(got.len(), 1);
    writer.set_state(gst::State::Null).unwrap();
}

/// `sink_props` picks the protocol; 100 cycles each.
fn hundred_cycles(sink_props: &str) {
    common::init();
    let dir = common::shm_dir();
    let path = dir.path().join("stream");
    // One cycle first, so lazily made things (debug categories, the
    // system clock's thread, the registry) are counted in the baseline.
    cycle(sink_props, &path);
    let before = fds();
    for _ in 0..100 {
        cycle(sink_props, &path);
    }
    assert_eq!(fds(), before, "file descriptors leaked");
    assert_eq!(mappings_of(dir.path()), 0, "stream mappings left");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "files left: {left:?}");
}

// One test, both protocols in turn: the fd count is the process's, so two
// tests running at once would see each other's descriptors.
#[test]
fn hundred_start_stop_cycles_leave_nothing_behind() {
    hundred_cycles("ensight=true");
    hundred_cycles("");
}
