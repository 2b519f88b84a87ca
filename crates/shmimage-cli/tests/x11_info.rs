//! `shmimage x11-info` reports MIT-SHM and the visual, present or not.
#![allow(clippy::unwrap_used)] // a test's own setup failing is a test failure

mod x11_support;

use std::process::Command;

use x11_support::*;

fn info(x: &Xvfb) -> String {
    let out =
        Command::new(env!("CARGO_BIN_EXE_shmimage")).args(["x11-info", "--display", &x.display]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "x11-info failed: {}{}", text, String::from_utf8_lossy(&out.stderr));
    text
}

#[test]
fn x11_info_with_and_without_mit_shm() {
    let with = Xvfb::start(&[]);
    let t = info(&with);
    assert!(t.contains("MIT-SHM:          present, version 1."), "{t}");
    assert!(t.contains("shared pixmaps:   yes, ZPixmap"), "{t}");
    assert!(t.contains("fd passing:       yes"), "{t}");
    assert!(t.contains("depth 24, 32 bpp, BGRX"), "{t}");
    drop(with);
    let without = Xvfb::start(&["-extension", "MIT-SHM"]);
    let t = info(&without);
    assert!(t.contains("MIT-SHM:          absent"), "{t}");
    assert!(t.contains("core PutImage"), "{t}");
}

#[test]
fn a_missing_display_is_a_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_shmimage")).args(["x11-info", "--display", ":999"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot open X display :999"), "{err}");
}

#[test]
fn x11_info_speaks_json_and_keeps_quiet() {
    let x = Xvfb::start(&[]);
    let run = |extra: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_shmimage"))
            .args(["x11-info", "--display", &x.display, extra])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let v: serde_json::Value = serde_json::from_str(&run("--json")).unwrap();
    assert_eq!(v["shared_pixmaps"], "ZPixmap", "{v}");
    assert!(v["mit_shm"].as_str().unwrap().starts_with("1."), "{v}");
    assert_eq!(v["pixel_format"], "depth 24, 32 bpp, BGRX", "{v}");
    assert_eq!(run("--quiet"), "");
}

#[test]
fn an_x11_error_reads_as_words_not_a_rust_struct() {
    let x = Xvfb::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("s.shm");
    let out = Command::new(env!("CARGO_BIN_EXE_shmimage"))
        .args(["capture", f.to_str().unwrap(), "--display", &x.display, "--window", "0x7ffffe", "--frames", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("BadWindow") && err.contains("GetWindowAttributes"), "{err}");
    assert!(!err.contains('{') && !err.contains("X11Error"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!f.exists(), "nothing created for a window that does not exist");
}
