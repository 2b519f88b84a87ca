//! `shmimage list` and `shmimage clean` on real files: a live stream with its
//! peer processes, a stale file left by `kill -9`, an unused new file and a
//! file that is no stream at all.
#![allow(clippy::unwrap_used)] // a test's own setup failing is a test failure

mod cli_support;

use std::path::Path;
use std::process::{Child, Stdio};

use cli_support::*;
use serde_json::Value;

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(start.elapsed() < DEADLINE, "never: {what}");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// A server and a client streaming on `f` (both real processes).
fn stream(f: &Path, out: &Path, extra: &[&str]) -> (Child, Child) {
    let server = shmimage()
        .args(["serve", path_str(f), "--size", "16x8", "--fps", "100", "--quiet"])
        .args(extra)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the server is up", || writer_alive(f));
    let client = shmimage()
        .args(["record", path_str(f), "--out", path_str(out), "--raw", "--every", "1000", "--quiet"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the client is up", || reader_alive(f));
    (server, client)
}

fn list_json(args: &[&str]) -> Vec<Value> {
    let mut a = vec!["list", "--json"];
    a.extend_from_slice(args);
    let o = run(&a);
    ok(&o);
    text(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn entry<'a>(events: &'a [Value], f: &Path) -> Option<&'a Value> {
    events.iter().find(|v| v["event"] == "file" && v["path"] == path_str(f))
}

fn kill9(c: &mut Child) {
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(c.id() as i32, libc::SIGKILL) };
    let _ = c.wait();
}

#[test]
fn list_shows_live_stale_and_unused_files_and_clean_removes_only_the_stale() {
    let dir = tempfile::tempdir().unwrap();
    let d = path_str(dir.path());
    let live = dir.path().join("live.shm");
    let stale = dir.path().join("stale.shm");
    let unused = dir.path().join("unused.shm");
    let other = dir.path().join("notes.txt");
    std::fs::write(&other, noise(5, 4096)).unwrap();
    ok(&run(&["create", path_str(&unused), "--max", "16x8"]));

    // Two streams; then the second's peers are killed as a crash would.
    // One native stream, one EnSight 1.0 stream.
    let (mut s1, mut c1) = stream(&live, &dir.path().join("rec1"), &[]);
    let (mut s2, mut c2) = stream(&stale, &dir.path().join("rec2"), &["--ensight"]);
    wait_until("a frame went through", || newest_frame(&stale) > 0);
    kill9(&mut s2);
    kill9(&mut c2);

    let events = list_json(&[d, "--sample", "0.3"]);
    let l = entry(&events, &live).unwrap_or_else(|| panic!("{events:?}"));
    assert_eq!(l["protocol"], "native");
    assert_eq!(l["writer_alive"], true, "{l}");
    assert_eq!(l["writer_pid"].as_u64(), Some(u64::from(s1.id())), "{l}");
    assert_eq!(l["readers"][0]["pid"].as_u64(), Some(u64::from(c1.id())), "{l}");
    let pids: Vec<u64> = l["pids"].as_array().unwrap().iter().map(|p| p["pid"].as_u64().unwrap()).collect();
    assert!(pids.contains(&u64::from(s1.id())) && pids.contains(&u64::from(c1.id())), "{l}");
    assert!(l["fps"].as_f64().unwrap() > 0.0, "a live stream has a frame rate: {l}");
    assert_eq!(l["stale"], false);
    let st = entry(&events, &stale).unwrap();
    assert_eq!(st["protocol"], "ensight-1.0");
    assert_eq!((st["stale"].as_bool(), st["pids"].as_array().unwrap().len()), (Some(true), 0), "{st}");
    let un = entry(&events, &unused).unwrap();
    assert_eq!((un["unused"].as_bool(), un["stale"].as_bool()), (Some(true), Some(false)), "{un}");
    assert!(entry(&events, &other).is_none(), "a file that is no stream is not listed");
    let done = events.last().unwrap();
    assert_eq!(
        (done["event"].as_str(), done["files"].as_u64(), done["stale"].as_u64()),
        (Some("done"), Some(3), Some(1))
    );

    // Text: the stale file is marked, with the hint to clean.
    let t = text(&run(&["list", d, "--sample", "0"]).stdout);
    assert!(t.contains(&format!("{} [stale]", path_str(&stale))) && t.contains("shmimage clean"), "{t}");

    // --dry-run removes nothing.
    ok(&run(&["clean", d, "--dry-run"]));
    assert!(stale.exists());
    let o = run(&["clean", d, "--json"]);
    ok(&o);
    assert!(text(&o.stdout).contains("\"removed\""), "{}", text(&o.stdout));
    assert!(!stale.exists(), "the stale file is removed");
    assert!(live.exists() && unused.exists() && other.exists(), "everything else stays");

    // Killed peers of the live stream: it becomes stale, and clean takes it.
    kill9(&mut s1);
    kill9(&mut c1);
    ok(&run(&["clean", d, "--quiet"]));
    assert!(!live.exists());
}

#[test]
fn clean_never_removes_a_file_with_a_live_peer_or_an_open_descriptor() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("s.shm");
    let (mut s, mut c) = stream(&f, &dir.path().join("rec"), &["--ensight"]);
    // The client is killed; the server stays, so the file has a live peer.
    kill9(&mut c);
    ok(&run(&["clean", path_str(dir.path())]));
    assert!(f.exists());
    kill9(&mut s);
    // No peer, but another process (not a peer of this project) holds it open.
    let mut holder =
        std::process::Command::new("sleep").arg("60").stdin(std::fs::File::open(&f).unwrap()).spawn().unwrap();
    let events = list_json(&[path_str(dir.path())]);
    let e = entry(&events, &f).unwrap();
    assert_eq!(e["pids"][0]["pid"].as_u64(), Some(u64::from(holder.id())), "{e}");
    assert_eq!(e["pids"][0]["name"], "sleep");
    ok(&run(&["clean", path_str(dir.path())]));
    assert!(f.exists(), "a file some process holds open stays");
    kill9(&mut holder);
    ok(&run(&["clean", path_str(dir.path())]));
    assert!(!f.exists());
}

#[test]
fn list_finds_files_in_dev_shm_by_default() {
    let f = Path::new("/dev/shm").join(format!("shmimage-cli-list-test-{}.shm", std::process::id()));
    ok(&run(&["create", path_str(&f), "--max", "4x4"]));
    let events = list_json(&["--sample", "0"]);
    let found = entry(&events, &f).is_some();
    std::fs::remove_file(&f).unwrap();
    assert!(found, "{events:?}");
}

#[test]
fn list_of_a_missing_folder_is_an_error() {
    let o = run(&["list", "/no/such/folder"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("/no/such/folder"), "{}", text(&o.stderr));
}
