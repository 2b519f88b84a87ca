//! `shmimage capture` under a private Xvfb: the frames it streams equal a
//! window's known content, with MIT-SHM and without.
#![allow(clippy::unwrap_used)] // a test's own setup failing is a test failure

mod x11_support;

use std::time::{Duration, Instant};

use shmimage::{Client, ClientOptions};
use shmimage_x11::x11rb::connection::Connection;
use shmimage_x11::x11rb::protocol::xproto::{
    ConnectionExt as _, CreateGCAux, CreateWindowAux, ImageFormat, WindowClass,
};
use shmimage_x11::x11rb::rust_connection::RustConnection;
use x11_support::*;

/// Map a `w` x `h` window whose background is a pixmap holding `rgb`, so
/// the X server itself repaints it on any exposure.
fn pattern_window(conn: &RustConnection, w: u32, h: u32, rgb: &[u8]) -> u32 {
    pattern_window_at(conn, w, h, rgb, (37, 21))
}

/// The pattern window at `at` on the screen (windows that open later at the
/// top-left corner must not cover one that is being grabbed).
fn pattern_window_at(conn: &RustConnection, w: u32, h: u32, rgb: &[u8], at: (i16, i16)) -> u32 {
    let s = &conn.setup().roots[0];
    let fmt = screen_format(conn);
    let mut img = vec![0; fmt.image_len(w, h).unwrap()];
    fmt.rgb_to_image(rgb, w, h, &mut img).unwrap();
    let pixmap = conn.generate_id().unwrap();
    conn.create_pixmap(s.root_depth, pixmap, s.root, w as u16, h as u16).unwrap();
    let gc = conn.generate_id().unwrap();
    conn.create_gc(gc, pixmap, &CreateGCAux::new()).unwrap();
    conn.put_image(ImageFormat::Z_PIXMAP, pixmap, gc, w as u16, h as u16, 0, 0, 0, s.root_depth, &img).unwrap();
    let win = conn.generate_id().unwrap();
    conn.create_window(
        s.root_depth,
        win,
        s.root,
        at.0,
        at.1,
        w as u16,
        h as u16,
        0,
        WindowClass::INPUT_OUTPUT,
        s.root_visual,
        &CreateWindowAux::new().background_pixmap(pixmap),
    )
    .unwrap();
    conn.map_window(win).unwrap();
    conn.get_input_focus().unwrap().reply().unwrap();
    win
}

/// Read frames until one equals `want`; returns its number.
fn wait_for_frame(client: &mut Client, w: u32, h: u32, want: &[u8], cap: &Shmimage) -> u32 {
    let deadline = Instant::now() + PATIENCE;
    let mut seen = Vec::new();
    loop {
        if let Ok(f) = client.wait_frame(Some(Duration::from_millis(200))) {
            if (f.width(), f.height()) == (w, h) && f.pixels().is_ok_and(|p| p == want) {
                return f.number();
            }
            seen.push((f.number(), f.width(), f.height()));
        }
        assert!(
            Instant::now() < deadline,
            "no frame equal to the window; saw {seen:?}; capture stderr:\n{}",
            cap.output()
        );
    }
}

fn capture_round_trip(xvfb_args: &[&str], extra: &[&str], expect_path: &str) -> String {
    let x = Xvfb::start(xvfb_args);
    let conn = x.connect();
    let (w, h) = (211, 133);
    let want = pattern(w, h, 3);
    let win = pattern_window(&conn, w, h, &want);
    let file = stream_file(w, h);
    let mut client = Client::connect(file.path(), ClientOptions::default()).unwrap();
    let id = format!("{win:#x}");
    let f = file.path().to_str().unwrap();
    let mut args = vec!["capture", "--display", &x.display, "--window", &id, "--fps", "20", "--timeout", "60"];
    args.extend_from_slice(extra);
    args.push(f);
    let mut cap = Shmimage::spawn(&args);
    cap.wait_line("path ");
    let n = wait_for_frame(&mut client, w, h, &want, &cap);
    assert!(n >= 1, "frames are numbered from 1");
    let (st, err) = cap.stop();
    assert!(st.success(), "capture exited with {st}; output:\n{err}");
    assert!(err.contains(&format!("path {expect_path}")), "expected path {expect_path}:\n{err}");
    err
}

#[test]
fn capture_shm_streams_the_window_exactly() {
    let err = capture_round_trip(&[], &[], "shm-put");
    assert!(err.contains("ShmGetImage"), "{err}");
}

#[test]
fn capture_falls_back_to_core_without_mit_shm_and_says_so() {
    let err = capture_round_trip(&["-extension", "MIT-SHM"], &[], "core");
    assert!(err.contains("no MIT-SHM"), "{err}");
}

#[test]
fn capture_of_the_viewer_closes_the_loop() {
    // A pattern -> view -> capture of the view's window -> a client: the
    // whole chain keeps every pixel.
    let x = Xvfb::start(&[]);
    let (w, h) = (160, 120);
    let want = pattern(w, h, 9);
    let src = stream_file(w, h);
    let _server = PatternServer::start(src.path(), w, h, want.clone());
    let mut view = Shmimage::spawn(&["view", src.path().to_str().unwrap(), "--display", &x.display, "--timeout", "60"]);
    let window = view.window();
    let conn = x.connect();
    wait_for_pixels(&conn, window, w, h, &want, &view);

    // A file capture creates itself, sized for the window.
    let dst = temp_path("chain.shm");
    let id = format!("{window:#x}");
    let d = dst.to_str().unwrap();
    let mut cap =
        Shmimage::spawn(&["capture", "--display", &x.display, "--window", &id, "--fps", "20", "--ensight", d]);
    cap.wait_line("waiting for a client");
    let mut client = Client::connect(&dst, ClientOptions::default()).unwrap();
    wait_for_frame(&mut client, w, h, &want, &cap);
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&dst).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let (st, err) = cap.stop();
    assert!(st.success(), "{err}");
    let (st, err) = view.stop();
    assert!(st.success(), "{err}");
    let _ = std::fs::remove_file(&dst);
}

#[test]
fn capture_into_a_native_stream_carries_the_screens_bgrx_untouched_to_two_viewers() {
    use shmimage::native::{PixelFormat, Reader, ReaderOptions};
    let x = Xvfb::start(&[]);
    let conn = x.connect();
    let (w, h) = (97, 61);
    let want = pattern(w, h, 11);
    let win = pattern_window_at(&conn, w, h, &want, (900, 700));
    // A new file: capture makes it native and puts the screen's BGRX in it.
    let dst = temp_path("native.shm");
    let (id, d) = (format!("{win:#x}"), dst.to_str().unwrap().to_owned());
    let mut cap = Shmimage::spawn(&["capture", "--display", &x.display, "--window", &id, "--fps", "30", &d]);
    cap.wait_line("waiting for a client");
    let reader = Reader::open(&dst, &ReaderOptions::default()).unwrap();
    let bgrx: Vec<u8> = want.chunks(3).flat_map(|p| [p[2], p[1], p[0]]).collect();
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        if let Ok(f) = reader.read(Some(std::time::Duration::from_millis(200))) {
            assert_eq!((f.format(), f.width(), f.height()), (PixelFormat::Bgrx8, w, h));
            let rows: Vec<u8> = f
                .pixels()
                .chunks(f.stride() as usize)
                .take(h as usize)
                .flat_map(|r| r[..w as usize * 4].to_vec())
                .collect();
            // The X pad byte is whatever the server keeps there: compare B, G, R.
            let got: Vec<u8> = rows.chunks(4).flat_map(|p| [p[0], p[1], p[2]]).collect();
            if got == bgrx {
                break;
            }
        }
        assert!(std::time::Instant::now() < deadline, "no captured BGRX frame equal to the window:\n{}", cap.output());
    }
    // Two viewers on the one native stream at once, both pixel-exact (each
    // checked while it is the top window: they open at the same place, and
    // GetImage of a covered window shows what covers it).
    let mut views = Vec::new();
    for _ in 0..2 {
        let mut v = Shmimage::spawn(&["view", &d, "--display", &x.display, "--timeout", "60"]);
        let window = v.window();
        wait_for_pixels(&conn, window, w, h, &want, &v);
        views.push(v);
    }
    // This test's reader and the two viewers read at the same time.
    let readers = shmimage::native::inspect(&dst).unwrap().readers;
    assert_eq!(readers.len(), 3, "{readers:?}");
    for v in views {
        let (st, out) = v.stop();
        assert!(st.success(), "{out}");
    }
    drop(reader);
    let (st, out) = cap.stop();
    assert!(st.success(), "{out}");
    let _ = std::fs::remove_file(&dst);
}
