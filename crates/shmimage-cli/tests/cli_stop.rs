//! How runs end: one Ctrl-C (SIGINT) stops every long-running subcommand
//! cleanly with its summary, and `serve --count` gives up on a client that
//! never comes instead of waiting forever.
#![allow(clippy::unwrap_used)] // a test's own setup failing is a test failure

mod cli_support;

use std::process::{Child, Stdio};

use cli_support::*;
use serde_json::Value;

fn sigint_once(c: &Child) {
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(c.id() as i32, libc::SIGINT) };
}

/// One SIGINT, then the exit: status 0 and a `done` event.
fn stops_on_one_sigint(mut child: Child, mut lines: impl Iterator<Item = std::io::Result<String>>) -> Value {
    sigint_once(&child);
    let done = until_event(&mut lines, "done");
    assert!(wait_deadline(&mut child).success(), "{done}");
    done
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(start.elapsed() < DEADLINE, "never: {what}");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[test]
fn one_sigint_stops_serve_while_it_waits_for_a_client() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("s.shm");
    let (child, mut lines) = spawn_json(&["serve", path_str(&f), "--size", "8x8"]);
    until_event(&mut lines, "waiting");
    let done = stops_on_one_sigint(child, lines);
    assert_eq!(done["sent"], 0);
}

#[test]
fn one_sigint_stops_record_and_serve_while_streaming() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("s.shm");
    let (server, mut s_lines) = spawn_json(&["serve", path_str(&f), "--size", "8x8", "--fps", "200"]);
    until_event(&mut s_lines, "waiting");
    let rec = dir.path().join("rec");
    let (client, mut c_lines) = spawn_json(&["record", path_str(&f), "--out", path_str(&rec), "--raw"]);
    until_event(&mut c_lines, "frame");
    let done = stops_on_one_sigint(client, c_lines);
    assert!(done["saved"].as_u64().unwrap() >= 1, "{done}");
    let done = stops_on_one_sigint(server, s_lines);
    assert!(done["sent"].as_u64().unwrap() >= 1, "{done}");
}

#[test]
fn one_sigint_stops_record_while_it_waits_for_frames() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("s.shm");
    ok(&run(&["create", path_str(&f), "--ensight", "--max", "8x8"]));
    let rec = dir.path().join("rec");
    let (child, lines) = spawn_json(&["record", path_str(&f), "--out", path_str(&rec), "--timeout", "600"]);
    wait_until("the client is up", || reader_alive(&f));
    let done = stops_on_one_sigint(child, lines);
    assert_eq!(done["saved"], 0);
}

#[test]
fn one_sigint_stops_inspect_watch() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("s.shm");
    ok(&run(&["create", path_str(&f), "--max", "8x8"]));
    let (child, mut lines) = spawn_json(&["inspect", path_str(&f), "--watch", "--interval", "0.05"]);
    lines.next().unwrap().unwrap();
    stops_on_one_sigint(child, lines);
}

/// Processes whose command line names `needle`.
fn processes_naming(needle: &str) -> Vec<u32> {
    let mut v = Vec::new();
    for p in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        if let Ok(cmd) = std::fs::read(p.path().join("cmdline")) {
            if String::from_utf8_lossy(&cmd).contains(needle) {
                v.push(pid);
            }
        }
    }
    v
}

#[test]
fn one_sigint_stops_the_demo_and_its_processes() {
    let (child, mut lines) = spawn_json(&["demo", "--size", "64x48", "--seconds", "600", "--fps", "100"]);
    let start = until_event(&mut lines, "start");
    let file = start["path"].as_str().unwrap().to_owned();
    // Frames flow: both processes are up (and past their start-up).
    wait_until("frames flow", || newest_frame(std::path::Path::new(&file)) > 0);
    let done = stops_on_one_sigint(child, lines);
    assert_eq!(done["ok"], true, "{done}");
    assert!(done["frames"].as_f64().unwrap() > 0.0, "{done}");
    assert!(processes_naming(&file).is_empty(), "the demo's writer and readers are gone");
}

#[test]
fn one_sigint_right_after_the_demo_starts_still_ends_cleanly() {
    let (child, mut lines) = spawn_json(&["demo", "--size", "64x48", "--seconds", "600"]);
    let start = until_event(&mut lines, "start");
    let file = start["path"].as_str().unwrap().to_owned();
    let done = stops_on_one_sigint(child, lines);
    assert_eq!(done["ok"], true, "{done}");
    assert!(processes_naming(&file).is_empty(), "the demo's writer and readers are gone");
}

#[test]
fn serve_count_without_a_client_gives_up_after_its_wait() {
    // No --wait-client: with --count the wait is bounded (10 s by default).
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("s.shm");
    let o = run(&["serve", path_str(&f), "--size", "8x8", "--count", "3", "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(err.contains("no client connected") && err.contains("--wait-client"), "{err}");
    let last: Value = serde_json::from_str(text(&o.stdout).lines().last().unwrap()).unwrap();
    assert_eq!(
        (last["event"].as_str(), last["ok"].as_bool(), last["sent"].as_u64()),
        (Some("done"), Some(false), Some(0))
    );
    assert!(last["error"].as_str().unwrap().contains("no client connected"), "{last}");
}

#[test]
fn rates_count_the_time_frames_flowed_not_the_wait_before() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("s.shm");
    // The server waits for its client for a while; the rate must not count it.
    let (server, mut s_lines) =
        spawn_json(&["serve", path_str(&f), "--size", "8x8", "--count", "20", "--fps", "0", "--lossless"]);
    until_event(&mut s_lines, "waiting");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let o = run(&["record", path_str(&f), "--out", path_str(&dir.path().join("rec")), "--count", "20", "--json"]);
    ok(&o);
    let done = until_event(&mut s_lines, "done");
    let mut server = server;
    assert!(wait_deadline(&mut server).success());
    assert_eq!(done["sent"], 20);
    // The wait is not part of the flowing time (20 lossless frames take a
    // small fraction of the 1.5 s waited; no speed is asserted).
    assert!(done["seconds"].as_f64().unwrap() < 1.5, "{done}");
    assert!(done["fps"].as_f64().unwrap() > 0.0, "{done}");
    // A single frame has no rate at all, rather than "1 frame in 0.00 s".
    let g = dir.path().join("one.shm");
    let (server, mut s_lines) = spawn_json(&["serve", path_str(&g), "--size", "8x8", "--count", "1", "--lossless"]);
    until_event(&mut s_lines, "waiting");
    ok(&run(&["record", path_str(&g), "--out", path_str(&dir.path().join("rec1")), "--count", "1"]));
    let done = until_event(&mut s_lines, "done");
    let mut server = server;
    assert!(wait_deadline(&mut server).success());
    assert_eq!((done["frames"].as_u64(), done["fps"].is_null()), (Some(1), true), "{done}");
}

#[test]
fn inspect_watch_shows_the_rate_and_time_since_the_last_frame() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("s.shm");
    let (mut server, mut s_lines) = spawn_json(&["serve", path_str(&f), "--size", "8x8", "--fps", "50"]);
    until_event(&mut s_lines, "waiting");
    let (mut client, _c) =
        spawn_json(&["record", path_str(&f), "--out", path_str(&dir.path().join("rec")), "--raw", "--every", "1000"]);
    let (watch, mut w_lines) = spawn_json(&["inspect", path_str(&f), "--watch", "--interval", "0.1"]);
    // While frames flow: a rate and a recent last frame.
    let mut seen_rate = false;
    for _ in 0..200 {
        let v: Value = serde_json::from_str(&w_lines.next().unwrap().unwrap()).unwrap();
        if v["fps"].as_f64().is_some_and(|r| r > 0.0) && v["since_last_frame"].is_number() {
            seen_rate = true;
            break;
        }
    }
    assert!(seen_rate, "no rate while the stream ran");
    // The server stops: the time since the last frame only grows.
    sigint_once(&server);
    assert!(wait_deadline(&mut server).success());
    sigint_once(&client);
    let _ = wait_deadline(&mut client);
    let mut last = -1.0;
    let mut growing = 0;
    for _ in 0..200 {
        let v: Value = serde_json::from_str(&w_lines.next().unwrap().unwrap()).unwrap();
        let Some(s) = v["since_last_frame"].as_f64() else { continue };
        if s > last {
            growing += 1;
        } else {
            growing = 0;
        }
        last = s;
        if growing >= 5 {
            break;
        }
    }
    assert!(growing >= 5, "the time since the last frame does not grow once the server stopped");
    stops_on_one_sigint(watch, w_lines);
}

#[test]
fn status_lines_in_a_pipe_come_at_most_once_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("s.shm");
    // Text mode into a pipe: events, status lines, then the summary.
    let started = std::time::Instant::now();
    let server = shmimage()
        .args(["serve", path_str(&f), "--size", "8x8", "--count", "150", "--fps", "100", "--lossless"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("the server is up", || writer_alive(&f));
    let rec = run(&["record", path_str(&f), "--out", path_str(&dir.path().join("rec")), "--raw", "--count", "150"]);
    ok(&rec);
    let o = finish(server);
    ok(&o);
    let secs = started.elapsed().as_secs_f64();
    for (who, out) in [("serve", text(&o.stdout)), ("record", text(&rec.stdout))] {
        let status = out.lines().filter(|l| l.starts_with("frame ")).count();
        // One per whole second that passed, at most (the first after 1 s).
        assert!(status as f64 <= secs.floor(), "{who}: {status} status lines in {secs:.1} s:\n{out}");
        assert!(out.lines().last().is_some_and(|l| l.contains("frame(s)")), "{who} ends with its summary:\n{out}");
    }
}
