//! `shmimage view` under a private Xvfb: what the window shows equals what
//! the stream carried, pixel for pixel, on every drawing path.
#![allow(clippy::unwrap_used)] // a test's own setup failing is a test failure

mod x11_support;

use x11_support::*;

/// Serve a pattern, run the viewer with `args`, compare a screenshot of its
/// window with the pattern, then change the frame size and compare again.
fn round_trip(xvfb_args: &[&str], view_args: &[&str], expect_path: &str) -> String {
    let x = Xvfb::start(xvfb_args);
    let (w, h) = (203, 151);
    let file = stream_file(320, 240);
    let server = PatternServer::start(file.path(), w, h, pattern(w, h, 1));
    let f = file.path().to_str().unwrap();
    let mut args = vec!["view", f, "--display", &x.display, "--timeout", "60"];
    args.extend_from_slice(view_args);
    let mut view = Shmimage::spawn(&args);
    let window = view.window();
    let conn = x.connect();
    wait_for_pixels(&conn, window, w, h, &pattern(w, h, 1), &view);

    // A new frame size: the window follows it.
    let (w2, h2) = (320, 97);
    server.set(w2, h2, pattern(w2, h2, 7));
    wait_for_pixels(&conn, window, w2, h2, &pattern(w2, h2, 7), &view);
    let (st, err) = view.stop();
    drop(server);
    assert!(st.success(), "view exited with {st}; output:\n{err}");
    assert!(err.contains(&format!("path {expect_path}")), "expected path {expect_path} on stderr:\n{err}");
    assert!(err.contains("viewed ") && err.contains("frame(s) in"), "no final stats line:\n{err}");
    err
}

#[test]
fn view_shm_put_shows_the_stream_exactly() {
    let err = round_trip(&[], &["--path", "shm-put"], "shm-put");
    assert!(err.contains("ShmPutImage"), "{err}");
}

#[test]
fn view_shared_pixmap_shows_the_stream_exactly() {
    // Xvfb offers shared pixmaps; where a server does not, the viewer falls
    // back to shm-put, which this test would then report.
    round_trip(&[], &["--path", "shm-pixmap"], "shm-pixmap");
}

#[test]
fn view_core_fallback_when_asked() {
    let err = round_trip(&[], &["--no-shm"], "core");
    assert!(err.contains("core PutImage"), "{err}");
}

#[test]
fn view_falls_back_without_mit_shm_and_says_so() {
    let err = round_trip(&["-extension", "MIT-SHM"], &[], "core");
    assert!(err.contains("no MIT-SHM"), "the fallback's reason is missing:\n{err}");
}

#[test]
fn view_closes_cleanly_on_wm_delete_window() {
    use shmimage_x11::x11rb::connection::Connection;
    use shmimage_x11::x11rb::protocol::xproto::{ClientMessageEvent, ConnectionExt as _, EventMask};

    let x = Xvfb::start(&[]);
    let file = stream_file(64, 48);
    let _server = PatternServer::start(file.path(), 64, 48, pattern(64, 48, 4));
    let mut view =
        Shmimage::spawn(&["view", file.path().to_str().unwrap(), "--display", &x.display, "--timeout", "60"]);
    let window = view.window();
    let conn = x.connect();
    wait_for_pixels(&conn, window, 64, 48, &pattern(64, 48, 4), &view);
    let pid = view.pid();
    // What a window manager sends when the close button is pressed; with an
    // empty event mask SendEvent delivers to the window's creator.
    let atom = |n: &[u8]| conn.intern_atom(false, n).unwrap().reply().unwrap().atom;
    let (protocols, delete) = (atom(b"WM_PROTOCOLS"), atom(b"WM_DELETE_WINDOW"));
    let ev = ClientMessageEvent::new(32, window, protocols, [delete, 0, 0, 0, 0]);
    conn.send_event(false, window, EventMask::NO_EVENT, ev).unwrap();
    conn.flush().unwrap();
    let (st, err) = view.wait();
    assert!(st.success(), "{err}");
    assert!(err.contains("viewed "), "{err}");
    eventually("no segment of the closed viewer left", || segments_of(pid).is_empty());
}
