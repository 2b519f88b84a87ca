//! `shmimage demo` as a user runs it: three real processes (this one, the
//! server, the verifying client), checked through the summary it prints.

#![allow(clippy::unwrap_used)] // test harness

use std::process::Command;

fn demo(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_shmimage")).arg("demo").args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "demo failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

fn summary_field(out: &str, key: &str) -> f64 {
    let line = out.lines().find(|l| l.starts_with("summary:")).unwrap_or_else(|| panic!("no summary in {out}"));
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {line}"))
}

#[test]
fn the_demo_streams_verified_frames_with_a_loan_and_with_copies() {
    for mode in [&["--size", "320x240", "--seconds", "1"][..], &["--size", "320x240", "--seconds", "1", "--copy"]] {
        let out = demo(mode);
        assert!(summary_field(&out, "frames") > 0.0, "{out}");
        assert_eq!(summary_field(&out, "corrupt"), 0.0, "{out}");
        // Not a terminal: plain status lines, at most one a second.
        assert!(out.lines().filter(|l| l.starts_with("frames=")).count() <= 2, "{out}");
    }
}

#[test]
fn the_demo_speaks_json_and_keeps_quiet() {
    let out = demo(&["--size", "64x48", "--seconds", "0.5", "--json"]);
    let events: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(events[0]["event"], "start", "{out}");
    let done = events.last().unwrap();
    assert_eq!((done["event"].as_str(), done["ok"].as_bool()), (Some("done"), Some(true)), "{out}");
    assert!(done["frames"].as_f64().unwrap() > 0.0 && done["corrupt"] == 0.0, "{out}");
    assert_eq!(demo(&["--size", "64x48", "--seconds", "0.3", "--quiet"]), "");
}

#[test]
fn the_demo_sends_4k_frames_in_bands_through_ensights_25_mib_file() {
    let out = demo(&["--size", "3840x2160", "--seconds", "1", "--file-len", "26214400"]);
    assert!(summary_field(&out, "frames") > 0.0, "{out}");
    assert_eq!(summary_field(&out, "corrupt"), 0.0, "{out}");
}

#[test]
fn the_native_demo_runs_one_writer_and_three_verifying_readers() {
    let out = demo(&["--size", "160x120", "--seconds", "1", "--json"]);
    let events: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!((events[0]["protocol"].as_str(), events[0]["readers"].as_u64()), (Some("native"), Some(3)), "{out}");
    let done = events.last().unwrap();
    assert_eq!(done["ok"], true, "{out}");
    let readers = done["readers"].as_array().unwrap();
    assert_eq!(readers.len(), 3, "{out}");
    for r in readers {
        // Each reader verified frames of its own, none torn, and measured its wake-ups.
        assert!(r["frames"].as_f64().unwrap() > 0.0 && r["corrupt"] == 0.0, "{r}");
        assert!(r["wake_p50_us"].is_number() && r["wake_p99_us"].is_number() && r["missed"].is_number(), "{r}");
    }
    // The same with the copying writer, and with the 1.0 stream.
    for extra in [&["--copy"][..], &["--ensight"]] {
        let out = demo(&[&["--size", "96x64", "--seconds", "0.5"][..], extra].concat());
        assert_eq!(summary_field(&out, "corrupt"), 0.0, "{out}");
        assert!(summary_field(&out, "frames") > 0.0, "{out}");
    }
}

#[test]
fn bad_sizes_are_usage_errors() {
    let out = Command::new(env!("CARGO_BIN_EXE_shmimage")).args(["demo", "--size", "0x10"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 1"));
}
