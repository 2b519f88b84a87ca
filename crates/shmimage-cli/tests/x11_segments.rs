//! No SysV segment outlives the viewer or the capture, whether they exit
//! cleanly or are killed with SIGKILL; the segments they hold are 0600 and
//! already marked for removal (IPC_RMID) while in use.
#![allow(clippy::unwrap_used)] // a test's own setup failing is a test failure

mod x11_support;

use x11_support::*;

/// Start a viewer on a served pattern and wait until both its segments are
/// attached and their ids removed.
fn running_viewer(x: &Xvfb, file: &std::path::Path) -> Shmimage {
    let mut view = Shmimage::spawn(&[
        "view",
        file.to_str().unwrap(),
        "--display",
        &x.display,
        "--path",
        "shm-put",
        "--timeout",
        "60",
    ]);
    view.wait_line("path shm-put");
    let pid = view.pid();
    eventually("the viewer's two segments, 0600, ids removed", || {
        let segs = segments_of(pid);
        segs.len() == 2 && segs.iter().all(|&(_, mode)| mode & 0o1000 != 0)
    });
    for (id, mode) in segments_of(pid) {
        assert_eq!(mode & 0o777, 0o600, "segment {id} has mode {mode:o}");
    }
    view
}

#[test]
fn viewer_leaves_no_segment_after_a_clean_exit() {
    let x = Xvfb::start(&[]);
    let file = stream_file(64, 48);
    let _server = PatternServer::start(file.path(), 64, 48, pattern(64, 48, 2));
    let view = running_viewer(&x, file.path());
    let pid = view.pid();
    let (st, err) = view.stop();
    assert!(st.success(), "{err}");
    eventually("no segment of the viewer left", || segments_of(pid).is_empty());
}

#[test]
fn viewer_leaves_no_segment_after_sigkill() {
    let x = Xvfb::start(&[]);
    let file = stream_file(64, 48);
    let _server = PatternServer::start(file.path(), 64, 48, pattern(64, 48, 2));
    let mut view = running_viewer(&x, file.path());
    let pid = view.pid();
    view.signal(libc::SIGKILL);
    let _ = view.wait();
    // The X server detaches when the connection drops; the removed ids then
    // vanish with their last attachment.
    eventually("no segment of the killed viewer left", || segments_of(pid).is_empty());
}

#[test]
fn capture_leaves_no_segment_after_a_clean_exit_or_sigkill() {
    let x = Xvfb::start(&[]);
    for kill in [false, true] {
        let file = stream_file(1280, 1024);
        let _client = shmimage::Client::connect(file.path(), shmimage::ClientOptions::default()).unwrap();
        let mut cap = Shmimage::spawn(&[
            "capture",
            "--display",
            &x.display,
            "--root",
            "--fps",
            "50",
            file.path().to_str().unwrap(),
        ]);
        cap.wait_line("path shm-put");
        let pid = cap.pid();
        eventually("the capture's segment, 0600, id removed", || {
            let segs = segments_of(pid);
            segs.len() == 1 && segs[0].1 & 0o1000 != 0 && segs[0].1 & 0o777 == 0o600
        });
        if kill {
            cap.signal(libc::SIGKILL);
            let _ = cap.wait();
        } else {
            let (st, err) = cap.stop();
            assert!(st.success(), "{err}");
        }
        eventually("no segment of the capture left", || segments_of(pid).is_empty());
    }
}
