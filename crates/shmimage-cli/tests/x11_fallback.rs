//! The fallback when the X server refuses our segment (ShmAttach BadAccess):
//! an Xvfb running as `nobody` cannot attach a root-owned 0600 segment, so
//! view and capture must switch to the core protocol, say so, still be
//! pixel-exact, and leave no segment behind.
#![allow(clippy::unwrap_used)] // a test's own setup failing is a test failure

mod x11_support;

use std::time::{Duration, Instant};

use shmimage::{Client, ClientOptions};
use x11_support::*;

/// nobody's uid and gid, when this test can switch to them (it runs as root).
fn nobody() -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    // SAFETY: a NUL-terminated name; the returned record is read at once,
    // before any other passwd call in this thread.
    unsafe {
        let pw = libc::getpwnam(c"nobody".as_ptr());
        (!pw.is_null()).then(|| ((*pw).pw_uid, (*pw).pw_gid))
    }
}

#[test]
fn refused_attach_falls_back_to_core_for_view_and_capture() {
    let Some(ids) = nobody() else {
        eprintln!("NOTE: not run: needs root (to start Xvfb as nobody); CI runs as root");
        return;
    };
    let x = Xvfb::start_as(Some(ids), &[]);

    // The viewer starts on shm-put, is refused at the first frame, switches.
    let (w, h) = (120, 90);
    let file = stream_file(w, h);
    let _server = PatternServer::start(file.path(), w, h, pattern(w, h, 5));
    let mut view =
        Shmimage::spawn(&["view", file.path().to_str().unwrap(), "--display", &x.display, "--timeout", "60"]);
    let window = view.window();
    let line = view.wait_line("switched to path core");
    assert!(line.contains("ShmAttach failed"), "{line}");
    let conn = x.connect();
    wait_for_pixels(&conn, window, w, h, &pattern(w, h, 5), &view);

    // A capture of the viewer's window falls back the same way.
    let dst = stream_file(w, h);
    let client = Client::connect(dst.path(), ClientOptions::default()).unwrap();
    let id = format!("{window:#x}");
    let mut cap = Shmimage::spawn(&[
        "capture",
        "--display",
        &x.display,
        "--window",
        &id,
        "--fps",
        "20",
        dst.path().to_str().unwrap(),
    ]);
    cap.wait_line("switched to path core");
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Ok(f) = client.wait_frame(Some(Duration::from_millis(200))) {
            if f.pixels().is_ok_and(|p| p == pattern(w, h, 5)) {
                break;
            }
        }
        assert!(Instant::now() < deadline, "no captured frame equal to the window:\n{}", cap.output());
    }
    let pid = cap.pid();
    let (st, err) = cap.stop();
    assert!(st.success(), "{err}");
    assert!(err.contains("path core"), "{err}");
    eventually("no segment of the capture left", || segments_of(pid).is_empty());

    let pid = view.pid();
    let (st, err) = view.stop();
    assert!(st.success(), "{err}");
    eventually("no segment of the viewer left", || segments_of(pid).is_empty());
}
