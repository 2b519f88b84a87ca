//! `shmimage create` and `shmimage inspect` as real processes: sizes, modes,
//! refusals, exit codes, and inspection of idle, live and garbage files.
#![allow(clippy::unwrap_used)] // a test's own setup failing is a test failure

mod cli_support;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::Duration;

use cli_support::*;
use serde_json::Value;
use shmimage::layout::file_len_for_frame;
use shmimage::{Client, ClientOptions, Server, ServerOptions};

fn json_line(o: &std::process::Output) -> Value {
    ok(o);
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(&o.stdout)))
}

#[test]
fn create_sizes_the_file_privately_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("s.shm");
    let o = run(&["create", path_str(&f), "--ensight", "--max", "640x480"]);
    ok(&o);
    assert!(text(&o.stdout).contains("created"), "{}", text(&o.stdout));
    let meta = std::fs::metadata(&f).unwrap();
    assert_eq!(meta.len(), file_len_for_frame(640, 480).unwrap());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);

    let again = run(&["create", path_str(&f), "--ensight", "--len", "1M"]);
    assert_eq!(again.status.code(), Some(1));
    let err = text(&again.stderr);
    assert!(err.contains(path_str(&f)) && err.contains("already exists"), "{err}");
    assert_eq!(std::fs::metadata(&f).unwrap().len(), meta.len(), "the existing file is untouched");

    let g = dir.path().join("len.shm");
    ok(&run(&["create", path_str(&g), "--ensight", "--len", "25M"]));
    assert_eq!(std::fs::metadata(&g).unwrap().len(), 25 << 20);

    let j = dir.path().join("j.shm");
    let v = json_line(&run(&["create", path_str(&j), "--ensight", "--max", "4x4", "--json"]));
    assert_eq!(v["file_len"], file_len_for_frame(4, 4).unwrap());
    assert_eq!(v["created"], true);
}

#[test]
fn print_size_creates_nothing() {
    let o = run(&["create", "--print-size", "--ensight", "--max", "1920x1080"]);
    ok(&o);
    assert_eq!(text(&o.stdout).trim(), file_len_for_frame(1920, 1080).unwrap().to_string());
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("not-made.shm");
    ok(&run(&["create", path_str(&f), "--print-size", "--max", "8x8"]));
    assert!(!f.exists());
}

#[test]
fn bad_arguments_are_usage_errors_and_runtime_failures_exit_1() {
    for args in [
        vec!["create", "x.shm", "--max", "0x10"],
        vec!["create", "x.shm", "--max", "wide"],
        vec!["create", "x.shm", "--ensight", "--len", "12"],
        vec!["create", "x.shm", "--ensight", "--max", "4x4", "--len", "1M"],
        vec!["create", "x.shm", "--len", "1M"],
        vec!["create", "x.shm", "--format", "YUV9"],
        vec!["create", "x.shm", "--slots", "1"],
        vec!["create"],
        vec!["inspect"],
        vec!["inspect", "x.shm", "--interval", "-1"],
        vec!["serve", "x.shm", "--fps", "-3"],
        vec!["record", "x.shm"],
        vec!["record", "x.shm", "--out", "d", "--every", "0"],
        vec!["no-such-command"],
    ] {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o.stderr));
        assert!(!o.stderr.is_empty(), "{args:?} explains itself");
    }
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("no/such/dir/s.shm");
    let o = run(&["create", path_str(&nested), "--max", "4x4"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("does not exist"), "{}", text(&o.stderr));
}

#[test]
fn inspect_refuses_missing_small_and_directory_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.shm");
    let small = dir.path().join("small.shm");
    std::fs::write(&small, [0u8; 10]).unwrap();
    for (p, why) in [(&missing, "does not exist"), (&small, "10 bytes"), (&dir.path().to_owned(), "directory")] {
        for json in [false, true] {
            let mut args = vec!["inspect", path_str(p)];
            if json {
                args.push("--json");
            }
            let o = run(&args);
            assert_eq!(o.status.code(), Some(1), "{args:?}");
            let err = text(&o.stderr);
            assert!(err.contains(path_str(p)) && err.contains(why), "{args:?}: {err}");
        }
    }
}

#[test]
fn inspect_an_idle_file_nobody_has_open() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("s.shm");
    ok(&run(&["create", path_str(&f), "--ensight", "--max", "32x8"]));
    let o = run(&["inspect", path_str(&f)]);
    ok(&o);
    let t = text(&o.stdout);
    assert!(t.contains("blank"), "{t}");
    assert!(t.contains("server    not running") && t.contains("client    not running"), "{t}");

    let v = json_line(&run(&["inspect", path_str(&f), "--json"]));
    assert_eq!(v["file_len"], file_len_for_frame(32, 8).unwrap());
    assert_eq!(v["capacity"], 32 * 8 * 3);
    assert_eq!(v["server_alive"], false);
    assert_eq!(v["client_alive"], false);
    assert_eq!(v["buffers"][1]["header_offset"], 24 + 32 * 8 * 3);
}

#[test]
fn inspect_garbage_decodes_without_crashing() {
    let dir = tempfile::tempdir().unwrap();
    for (seed, len) in [(1u64, 64usize), (2, 100), (3, 4097), (4, 1 << 16)] {
        let f = dir.path().join(format!("garbage-{seed}"));
        std::fs::write(&f, noise(seed, len)).unwrap();
        let o = run(&["inspect", path_str(&f)]);
        ok(&o);
        assert!(text(&o.stdout).contains("summary"), "{}", text(&o.stdout));
        let v = json_line(&run(&["inspect", path_str(&f), "--json"]));
        assert_eq!(v["file_len"], len as u64);
        for b in v["buffers"].as_array().unwrap() {
            let word = b["state_word"].as_u64().unwrap();
            assert_eq!(b["state_valid"], word <= 4, "{b}");
            if word > 4 {
                assert!(b["state"].as_str().unwrap().starts_with("INVALID"), "{b}");
            }
        }
    }
}

#[test]
fn inspect_a_live_stream_shows_both_peers_and_the_locked_frame() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("s.shm");
    ok(&run(&["create", path_str(&f), "--ensight", "--max", "16x4"]));
    // This test process is the server and the client; inspect is another
    // process, so it sees their liveness locks as any outsider would.
    let server = Server::create(&f, ServerOptions::default()).unwrap();
    let client = Client::connect(&f, ClientOptions::default()).unwrap();
    server.put_frame(41, 16, 4, &[9u8; 16 * 4 * 3]).unwrap();
    let frame = client.wait_frame(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(frame.number(), 41);

    let v = json_line(&run(&["inspect", path_str(&f), "--json"]));
    assert_eq!(v["server_alive"], true);
    assert_eq!(v["client_alive"], true);
    let locked: Vec<&Value> =
        v["buffers"].as_array().unwrap().iter().filter(|b| b["state"] == "CLIENT_LOCKED").collect();
    assert_eq!(locked.len(), 1, "{v}");
    assert_eq!(locked[0]["frame_number"], 41);
    assert_eq!((locked[0]["width"].as_u64(), locked[0]["height"].as_u64()), (Some(16), Some(4)));
    assert_eq!(locked[0]["whole_frame"], true);
    assert!(v["summary"].as_str().unwrap().starts_with("streaming"), "{v}");

    let t = text(&run(&["inspect", path_str(&f)]).stdout);
    assert!(t.contains("server    alive") && t.contains("client    alive"), "{t}");
    assert!(t.contains("CLIENT_LOCKED") && t.contains("frame 41 16x4"), "{t}");
    drop(frame);
    drop(client);
    drop(server);
}

#[test]
fn inspect_watch_refreshes_until_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("s.shm");
    ok(&run(&["create", path_str(&f), "--ensight", "--len", "4096"]));
    let mut child = shmimage()
        .args(["inspect", path_str(&f), "--watch", "--interval", "0.05", "--json"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for _ in 0..3 {
        let line = lines.next().unwrap().unwrap();
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["file_len"], 4096);
    }
    // SIGTERM ends the watch cleanly with status 0.
    // SAFETY: kill(2) on our own child's pid has no memory effects.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(wait_deadline(&mut child).success());
}
