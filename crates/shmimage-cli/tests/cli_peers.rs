//! A second peer in the same role is refused, by name, while the first goes
//! on undisturbed; absurd sizes fail at once and leave no file.
#![allow(clippy::unwrap_used)] // a test's own setup failing is a test failure

mod cli_support;

use std::path::Path;
use std::process::Stdio;

use cli_support::*;

fn refused(o: &std::process::Output, role: &str, f: &Path, pid: u32) {
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(err.contains(&format!("another {role} is running")) && err.contains(path_str(f)), "{err}");
    assert!(err.contains(&format!("process {pid}")), "the holder's pid is named: {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
}

#[test]
fn a_second_client_or_server_is_refused_and_the_first_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("s.shm");
    // An EnSight 1.0 stream: one client, one server.
    let (mut server, mut s_lines) = spawn_json(&[
        "serve",
        path_str(&f),
        "--ensight",
        "--size",
        "16x8",
        "--count",
        "40",
        "--fps",
        "100",
        "--lossless",
    ]);
    until_event(&mut s_lines, "waiting");
    let rec = dir.path().join("rec");
    let (mut first, mut c_lines) =
        spawn_json(&["record", path_str(&f), "--out", path_str(&rec), "--raw", "--count", "40", "--timeout", "30"]);
    until_event(&mut c_lines, "frame");

    // record, view and serve as second peers: refused, naming the holder.
    let o = run(&["record", path_str(&f), "--out", path_str(&dir.path().join("rec2")), "--count", "1"]);
    refused(&o, "client", &f, first.id());
    assert!(!dir.path().join("rec2").join("frame-000001.png").exists());
    let o = run(&["view", path_str(&f), "--display", ":9999", "--frames", "1"]);
    refused(&o, "client", &f, first.id());
    let o = run(&["serve", path_str(&f), "--size", "16x8", "--count", "1"]);
    refused(&o, "server", &f, server.id());

    // The first pair never noticed: every frame, in order, no skips.
    let done = until_event(&mut c_lines, "done");
    assert!(wait_deadline(&mut first).success(), "{done}");
    assert_eq!((done["saved"].as_u64(), done["skipped"].as_u64()), (Some(40), Some(0)), "{done}");
    assert!(wait_deadline(&mut server).success());
    for n in 1..=40 {
        assert!(rec.join(format!("frame-{n:06}.rgb")).is_file(), "frame {n}");
    }
}

#[test]
fn create_with_an_absurd_size_fails_cleanly_and_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("huge.shm");
    // In /dev/shm (memory): larger than the file system, native or 1.0. The
    // sizes must exceed what /dev/shm has free on this machine (its size
    // varies: half the memory by default, all of it on some machines), or the
    // create would succeed and reserve that much memory: such a case is
    // skipped, never run.
    let shm = std::path::PathBuf::from(format!("/dev/shm/shmimage-cli-huge-{}.shm", std::process::id()));
    let free = rustix::fs::statvfs("/dev/shm").map(|s| s.f_bavail.saturating_mul(s.f_frsize)).unwrap_or(u64::MAX);
    let ensight_len = shmimage::layout::file_len_for_frame(65535, 65535).unwrap();
    let native_len = 4 * 65535 * 65535 * 3; // the default 4 RGB8 slots, at least
    let mut cases = vec![
        (&f, vec!["--ensight", "--max", "99999999x99999999"], "no space"),
        (&f, vec!["--max", "99999999x99999999"], "each side must be"),
    ];
    for (len, args) in
        [(native_len, vec!["--max", "65535x65535"]), (ensight_len, vec!["--ensight", "--max", "65535x65535"])]
    {
        if len > free {
            cases.push((&shm, args, "no space"));
        } else {
            eprintln!("NOTICE: /dev/shm has {free} bytes free, not less than {len}: {args:?} not tried");
        }
    }
    for (file, args, why) in cases {
        let mut a = vec!["create", path_str(file)];
        a.extend_from_slice(&args);
        let o = run(&a);
        if o.status.success() {
            // Do not leave a file of many GiB of memory behind a failure.
            let _ = std::fs::remove_file(file);
        }
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let err = text(&o.stderr);
        assert!(err.contains(why), "{args:?}: {err}");
        assert!(!err.contains("already exists"), "{err}");
        assert!(err.matches(path_str(file)).count() <= 1, "the file is named once: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(!file.exists(), "{args:?}: no file is left behind");
    }
}

#[test]
fn serve_with_an_absurd_size_fails_at_once_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("big.shm");
    let child = shmimage()
        .args(["serve", path_str(&f), "--size", "65536x65536", "--count", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let o = finish(child);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(err.contains("65536x65536") && (err.contains("too large") || err.contains("no space")), "{err}");
    assert!(!f.exists(), "no file is left behind");
    // Nothing near a frame's 12 GiB was ever allocated: the largest resident
    // size of any child this test process waited for (all small) is tiny.
    // SAFETY: getrusage writes into the zeroed struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) }, 0);
    assert!(ru.ru_maxrss < 1 << 20, "a child grew to {} KiB", ru.ru_maxrss);
}
