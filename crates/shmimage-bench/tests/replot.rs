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

/// SAVED with the native section of a run that measured it (issue 12).
fn with_native() -> String {
    let native = r#",
  "native": {
    "fanout": [
      {"system": "shmimage native", "size": "1080p", "frame_bytes": 6220800, "readers": 1,
       "writer_frames": 900, "writer_frames_per_s": 1800.0, "publish_us": 1.1, "loan_us": 0.4, "commit_us": 0.7,
       "read_us": [320.0], "plain_us": [300.0], "frames_per_s": [1400.0], "note": ""},
      {"system": "iceoryx2 pub/sub", "size": "1080p", "frame_bytes": 6220800, "readers": 1,
       "writer_frames": 900, "writer_frames_per_s": 1800.0, "publish_us": 2.1, "loan_us": 0.5, "commit_us": 1.6,
       "read_us": [330.0], "plain_us": [300.0], "frames_per_s": [1400.0], "note": ""},
      {"system": "shmimage native", "size": "1080p", "frame_bytes": 6220800, "readers": 2,
       "writer_frames": 900, "writer_frames_per_s": 1800.0, "publish_us": 1.5, "loan_us": 0.4, "commit_us": 1.1,
       "read_us": [320.0, 340.0], "plain_us": [300.0, 310.0], "frames_per_s": [700.0, 700.0], "note": ""}
    ],
    "wake": [
      {"system": "shmimage native", "readers": 1, "samples": 100, "p50_us": 14.0, "p99_us": 40.0, "p999_us": 90.0,
       "p50_each_us": [14.0], "publish_us": 1.2, "note": ""},
      {"system": "iceoryx2 event", "readers": 1, "samples": 100, "p50_us": 19.0, "p99_us": 50.0, "p999_us": 99.0,
       "p50_each_us": [19.0], "publish_us": 2.2, "note": ""}
    ]
  }
}
"#;
    SAVED.trim_end().strip_suffix('}').unwrap().trim_end().to_owned() + native
}

fn replot(text: &str) -> (u32, u32) {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    std::fs::write(&json, text).unwrap();
    let out = Command::new(BIN).arg("--replot").arg(&json).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    png_size(&std::fs::read(dir.path().join("bench.png")).unwrap())
}

#[test]
fn replot_draws_the_native_panels_when_the_file_has_them() {
    let (w, plain) = replot(SAVED);
    let (w2, native) = replot(&with_native());
    assert_eq!((w, w2), (1400, 1400));
    // Two panels (5 and 3 bars) and two more latency methods.
    assert!(native > plain + 300, "{native} vs {plain}");
}

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
