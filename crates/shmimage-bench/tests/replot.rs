//! `--replot`: the binary redraws bench.png from a saved bench.json without
//! measuring, and refuses a file that is not one with a message.
#![cfg(feature = "plot")]
#![allow(clippy::unwrap_used)]

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_shmimage-bench");

const SAVED: &str = r#"{
  "format": 1,
  "date": "Mon, 30 Nov 2026 17:00:00 GMT",
  "machine": "test",
  "seconds": 0.3,
  "throughput": [
    {"size": "720p", "width": 1280, "height": 720, "frame_bytes": 2764800, "transport": "memcpy (limit)",
     "frames": 5000, "secs": 0.3, "frames_per_s": 16666.7, "producer_us": 60.0, "consumer_us": null, "note": ""},
    {"size": "720p", "width": 1280, "height": 720, "frame_bytes": 2764800, "transport": "shmimage put_frame",
     "frames": 3000, "secs": 0.3, "frames_per_s": 10000.0, "producer_us": 70.0, "consumer_us": 50.0, "note": ""},
    {"size": "4K", "width": 3840, "height": 2160, "frame_bytes": 24883200, "transport": "Unix socket (stream)",
     "frames": 40, "secs": 0.3, "frames_per_s": 133.3, "producer_us": 7000.0, "consumer_us": 7000.0, "note": ""}
  ],
  "latency": [
    {"method": "shmimage wait_frame (futex)", "samples": 100, "p50_us": 14.4, "p99_us": 44.0, "p999_us": 84.1, "note": ""}
  ]
}
"#;

fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let be = |o: usize| u32::from_be_bytes(bytes[o..o + 4].try_into().unwrap());
    (be(16), be(20))
}

#[test]
fn replot_draws_the_png_beside_the_json() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    std::fs::write(&json, SAVED).unwrap();
    let out = Command::new(BIN).arg("--replot").arg(&json).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let png = std::fs::read(dir.path().join("bench.png")).unwrap();
    let (w, h) = png_size(&png);
    assert_eq!(w, 1400);
    // Two size panels and the latency panel, nothing measured.
    assert!(h > 400, "height {h}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrote"));
}

#[test]
fn replot_refuses_what_is_not_a_result() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("other.json");
    std::fs::write(&json, "{\"name\": \"x\"}").unwrap();
    let out = Command::new(BIN).arg("--replot").arg(&json).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not a shmimage-bench result"), "{err}");
    assert!(!dir.path().join("other.png").exists());

    let out = Command::new(BIN).arg("--replot").arg(dir.path().join("missing.json")).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));

    let out = Command::new(BIN).arg("--replot").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--replot needs a value"));
}
