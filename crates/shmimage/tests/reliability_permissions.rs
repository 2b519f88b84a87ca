//! Who may touch a stream: files shmimage creates are private to their user
//! (0600 in a 0700 directory), another user cannot open them, and a path
//! that is not a regular file is refused with a reason, never followed or
//! waited on. The other-user checks need root (to become `nobody`); without
//! it they print a note and pass.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use shmimage::{Client, ClientOptions, Code, Server, ServerOptions, StreamFile};

const NOBODY: u32 = 65534;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).expect("stat").permissions().mode() & 0o7777
}

/// The peer re-executed as another user (SHMIMAGE_PERM_PATH selects it).
#[test]
#[ignore]
fn child_other_user() {
    let Ok(path) = std::env::var("SHMIMAGE_PERM_PATH") else { return };
    let c = Client::connect(&path, ClientOptions { monitor_thread: false, ..Default::default() });
    let s = Server::create(&path, ServerOptions::default());
    let code = |r: Result<(), shmimage::Error>| r.err().map_or(0, |e| e.code() as i32);
    println!("RESULT client={} server={}", code(c.map(drop)), code(s.map(drop)));
}

/// Run `child_other_user` as uid/gid nobody against `path`; `None` when this
/// process cannot change user (not root).
fn as_nobody(path: &Path) -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("not root: the other-user checks are skipped");
        return None;
    }
    // The test binary may sit under a directory nobody cannot enter; a copy
    // in a world-readable directory can be executed by any user.
    let exe = std::env::current_exe().expect("test binary");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let copy = dir.path().join("peer");
    std::fs::copy(&exe, &copy).expect("copy test binary");
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let out = Command::new(&copy)
        .args(["child_other_user", "--exact", "--ignored", "--nocapture", "--test-threads=1", "-q"])
        .env("SHMIMAGE_PERM_PATH", path)
        .uid(NOBODY)
        // std drops the supplementary groups too when root sets a uid.
        .gid(NOBODY)
        .output()
        .expect("run as nobody");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "peer failed: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    stdout.lines().find_map(|l| l.strip_prefix("RESULT ").map(str::to_owned))
}

#[test]
fn created_files_are_private_and_another_user_cannot_open_them() {
    let f = StreamFile::for_frame(64, 64).expect("file");
    assert_eq!(mode(f.path()), 0o600);
    let dir = f.path().parent().expect("dir");
    assert_eq!(mode(dir), 0o700);

    // Case 1: the private directory keeps another user out.
    let _server = Server::create(f.path(), ServerOptions::default()).expect("server");
    let open_err = (Code::UnableToOpenFile as i32).to_string();
    if let Some(r) = as_nobody(f.path()) {
        assert_eq!(r, format!("client={open_err} server={open_err}"));
    }

    // Case 2: the file alone, in a directory anyone may enter (create_at at
    // a path the caller chose), still keeps another user out.
    let open_dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(open_dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let p = open_dir.path().join("stream.shm");
    let g = StreamFile::create_at(&p, 4096).expect("create_at");
    assert_eq!(mode(g.path()), 0o600);
    if let Some(r) = as_nobody(&p) {
        assert_eq!(r, format!("client={open_err} server={open_err}"));
    }
    // Sanity check that the denial is the mode, not the mechanism: a 0666
    // file in the same place is opened by nobody.
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    if let Some(r) = as_nobody(&p) {
        assert_eq!(r, "client=0 server=0");
    }
}

#[test]
fn paths_that_are_not_regular_files_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let real = StreamFile::create_at(dir.path().join("real"), 4096).expect("file");
    let reason = |r: shmimage::Result<Client>| {
        let e = r.expect_err("refused");
        assert_eq!(e.code(), Code::UnableToOpenFile, "{e}");
        e.to_string()
    };
    let connect = |p: &Path| Client::connect(p, ClientOptions { monitor_thread: false, ..Default::default() });

    let link = dir.path().join("link");
    std::os::unix::fs::symlink(real.path(), &link).expect("symlink");
    assert!(reason(connect(&link)).contains("symbolic link"));
    assert_eq!(Server::create(&link, ServerOptions::default()).expect_err("refused").code(), Code::UnableToOpenFile);

    let fifo = dir.path().join("fifo");
    let c = std::ffi::CString::new(fifo.to_string_lossy().as_bytes()).expect("path");
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let t = Instant::now();
    assert!(reason(connect(&fifo)).contains("not a regular file"));
    assert!(t.elapsed() < Duration::from_secs(10), "opening a FIFO must not wait for a writer");

    assert!(reason(connect(dir.path())).contains("directory"));
    assert!(reason(connect(Path::new("/dev/zero"))).contains("not a regular file"));
    // A symlink to a directory, and a dangling one.
    let dlink = dir.path().join("dlink");
    std::os::unix::fs::symlink(dir.path(), &dlink).expect("symlink");
    assert!(reason(connect(&dlink)).contains("symbolic link"));
    let dangling = dir.path().join("dangling");
    std::os::unix::fs::symlink(dir.path().join("nothing"), &dangling).expect("symlink");
    assert!(reason(connect(&dangling)).contains("symbolic link"));
    // create_at never follows a planted symlink either.
    assert_eq!(StreamFile::create_at(&link, 4096).expect_err("refused").code(), Code::UnableToOpenFile);
    assert_eq!(std::fs::metadata(real.path()).expect("stat").len(), 4096, "the link target was not touched");
}
