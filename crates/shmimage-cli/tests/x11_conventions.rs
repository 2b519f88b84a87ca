//! `view` and `capture` follow the CLI's conventions: JSON events and the
//! closing summary on stdout, nothing with --quiet, one SIGINT stops them.
#![allow(clippy::unwrap_used)] // a test's own setup failing is a test failure

mod x11_support;

use serde_json::Value;
use x11_support::*;

fn json_lines(out: &str) -> Vec<Value> {
    out.lines().filter(|l| l.starts_with('{')).map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn view_speaks_json_and_one_sigint_ends_it_with_a_summary() {
    let x = Xvfb::start(&[]);
    let file = stream_file(64, 48);
    let _server = PatternServer::start(file.path(), 64, 48, pattern(64, 48, 2));
    let f = file.path().to_str().unwrap();
    let mut view = Shmimage::spawn(&["view", f, "--display", &x.display, "--json"]);
    let path_event: Value = serde_json::from_str(&view.wait_line("\"event\":\"path\"")).unwrap();
    let window = path_event["window"].as_u64().unwrap() as u32;
    let pid = view.pid();
    // Frames on the screen, then one Ctrl-C.
    wait_for_pixels(&x.connect(), window, 64, 48, &pattern(64, 48, 2), &view);
    view.signal(libc::SIGINT);
    let (st, out) = view.wait();
    assert!(st.success(), "{out}");
    let events = json_lines(&out);
    assert_eq!(events[0]["event"], "path", "{out}");
    assert_eq!(events[0]["draw_path"], "shm-put", "{out}");
    let done = events.last().unwrap();
    assert_eq!((done["event"].as_str(), done["ok"].as_bool()), (Some("done"), Some(true)), "{out}");
    assert!(done["frames"].as_u64().unwrap() >= 1, "{out}");
    eventually("no segment left", || segments_of(pid).is_empty());
}

#[test]
fn view_quiet_prints_nothing_and_capture_speaks_json() {
    let x = Xvfb::start(&[]);
    let file = stream_file(32, 24);
    let _server = PatternServer::start(file.path(), 32, 24, pattern(32, 24, 5));
    let f = file.path().to_str().unwrap();
    let mut view = Shmimage::spawn(&["view", f, "--display", &x.display, "--quiet", "--frames", "3"]);
    let (st, out) = view.wait();
    assert!(st.success(), "{out}");
    assert_eq!(out, "", "--quiet: nothing at all on a clean run");

    let dst = temp_path("conv.shm");
    let d = dst.to_str().unwrap();
    let mut cap =
        Shmimage::spawn(&["capture", "--display", &x.display, "--root", "--fps", "50", "--json", "--ensight", d]);
    cap.wait_line("\"event\":\"waiting\"");
    let client = shmimage::Client::connect(&dst, shmimage::ClientOptions::default()).unwrap();
    eventually("a grab arrives", || client.wait_frame(Some(std::time::Duration::from_millis(100))).is_ok());
    cap.signal(libc::SIGINT);
    let (st, out) = cap.wait();
    assert!(st.success(), "{out}");
    let events = json_lines(&out);
    let names: Vec<&str> = events.iter().filter_map(|v| v["event"].as_str()).collect();
    assert!(names.starts_with(&["path", "created", "waiting"]), "{names:?}");
    let done = events.last().unwrap();
    assert_eq!((done["event"].as_str(), done["ok"].as_bool()), (Some("done"), Some(true)), "{out}");
    assert!(done["frames"].as_u64().unwrap() >= 1 && done["grabs"].as_u64().unwrap() >= 1, "{out}");
    drop(client);
    let _ = std::fs::remove_file(&dst);
}
