//! `shmimage serve` and `shmimage record` as two real processes: PNG files
//! in, PNG files out, pixel for pixel; raw RGB on stdin in, raw files out,
//! byte for byte; and the failures a script must be able to detect.
#![allow(clippy::unwrap_used)] // a test's own setup failing is a test failure

mod cli_support;

use std::io::Write;
use std::path::Path;
use std::process::Stdio;

use cli_support::*;
use serde_json::Value;

/// Write a PNG of any colour type and depth; `data` is in the PNG's layout.
fn write_png(
    path: &Path,
    w: u32,
    h: u32,
    color: png::ColorType,
    depth: png::BitDepth,
    data: &[u8],
    palette: Option<&[u8]>,
) {
    let f = std::fs::File::create(path).unwrap();
    let mut e = png::Encoder::new(std::io::BufWriter::new(f), w, h);
    e.set_color(color);
    e.set_depth(depth);
    if let Some(p) = palette {
        e.set_palette(p.to_vec());
    }
    let mut wr = e.write_header().unwrap();
    wr.write_image_data(data).unwrap();
    wr.finish().unwrap();
}

/// Decode a PNG the recorder wrote: it must be RGB8.
fn read_rgb_png(path: &Path) -> (u32, u32, Vec<u8>) {
    let d = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut r = d.read_info().unwrap();
    let mut buf = vec![0; r.output_buffer_size().unwrap()];
    let info = r.next_frame(&mut buf).unwrap();
    assert_eq!((info.color_type, info.bit_depth), (png::ColorType::Rgb, png::BitDepth::Eight));
    buf.truncate(info.width as usize * info.height as usize * 3);
    (info.width, info.height, buf)
}

/// Five source images of different kinds and sizes, and the RGB8 frames
/// they must arrive as.
fn make_pngs(dir: &Path) -> Vec<(u32, u32, Vec<u8>)> {
    use png::{BitDepth as D, ColorType as C};
    let mut expect = Vec::new();
    // 1: plain RGB8.
    let rgb = noise(1, 40 * 30 * 3);
    write_png(&dir.join("a-rgb.png"), 40, 30, C::Rgb, D::Eight, &rgb, None);
    expect.push((40, 30, rgb));
    // 2: RGBA8: alpha is dropped.
    let rgba = noise(2, 40 * 30 * 4);
    write_png(&dir.join("b-rgba.png"), 40, 30, C::Rgba, D::Eight, &rgba, None);
    expect.push((40, 30, rgba.chunks(4).flat_map(|p| [p[0], p[1], p[2]]).collect()));
    // 3: gray, another size: each value becomes r = g = b.
    let gray = noise(3, 23 * 17);
    write_png(&dir.join("c-gray.png"), 23, 17, C::Grayscale, D::Eight, &gray, None);
    expect.push((23, 17, gray.iter().flat_map(|&g| [g, g, g]).collect()));
    // 4: 16-bit RGB (big-endian samples): the high byte is kept.
    let rgb16 = noise(4, 40 * 30 * 6);
    write_png(&dir.join("d-rgb16.png"), 40, 30, C::Rgb, D::Sixteen, &rgb16, None);
    expect.push((40, 30, rgb16.chunks(2).map(|s| s[0]).collect()));
    // 5: palette.
    let palette = noise(5, 16 * 3);
    let idx: Vec<u8> = noise(6, 9 * 5).iter().map(|v| v % 16).collect();
    write_png(&dir.join("e-palette.png"), 9, 5, C::Indexed, D::Eight, &idx, Some(&palette));
    expect.push((9, 5, idx.iter().flat_map(|&i| palette[i as usize * 3..][..3].to_vec()).collect()));
    expect
}

#[test]
fn png_files_round_trip_pixel_for_pixel() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let rec = dir.path().join("rec");
    std::fs::create_dir(&src).unwrap();
    let expect = make_pngs(&src);
    let f = dir.path().join("s.shm");
    ok(&run(&["create", path_str(&f), "--max", "40x30"]));

    let server = shmimage()
        .args(["serve", path_str(&f), "--png", path_str(&src), "--count", "5", "--lossless", "--fps", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let rec_out = run(&["record", path_str(&f), "--out", path_str(&rec), "--count", "5", "--timeout", "30"]);
    let serve_out = finish(server);
    ok(&rec_out);
    ok(&serve_out);
    assert!(text(&serve_out.stdout).contains("served 5 frame(s)"), "{}", text(&serve_out.stdout));
    assert!(text(&rec_out.stdout).contains("recorded 5 frame(s)"), "{}", text(&rec_out.stdout));

    for (i, (w, h, px)) in expect.iter().enumerate() {
        let got = read_rgb_png(&rec.join(format!("frame-{:06}.png", i + 1)));
        assert_eq!((got.0, got.1), (*w, *h), "frame {}", i + 1);
        assert!(got.2 == *px, "frame {} pixels differ", i + 1);
    }
}

#[test]
fn a_glob_with_loop_and_every_k() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let rec = dir.path().join("rec");
    std::fs::create_dir(&src).unwrap();
    let expect = make_pngs(&src);
    let f = dir.path().join("s.shm");
    // The glob matches a-rgb.png and d-rgb16.png. serve creates the file
    // itself; record takes frames 1 to 5, the last one serve sends, so serve
    // never waits for a second client.
    let pattern = format!("{}/[ad]-*.png", path_str(&src));
    let server = shmimage()
        .args(["serve", path_str(&f), "--png", &pattern, "--loop", "--count", "5", "--lossless", "--fps", "0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_server(&f);
    let o = run(&["record", path_str(&f), "--out", path_str(&rec), "--every", "2", "--count", "3", "--json"]);
    ok(&finish(server));
    let lines: Vec<Value> = text(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    ok(&o);
    let numbers: Vec<u64> =
        lines.iter().filter(|v| v["event"] == "frame").map(|v| v["number"].as_u64().unwrap()).collect();
    assert_eq!(numbers, [1, 3, 5], "every 2nd frame of a lossless stream");
    assert_eq!(lines.last().unwrap()["event"], "done");
    // Frames 1, 3, 5 are all a-rgb.png (the glob matched two files, looped).
    for n in numbers {
        let got = read_rgb_png(&rec.join(format!("frame-{n:06}.png")));
        assert!(got.2 == expect[0].2, "frame {n}");
    }
}

fn raw_round_trip(flip: bool) {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("s.shm");
    let rec = dir.path().join("rec");
    let (w, h, n) = (24usize, 10usize, 4usize);
    let input = noise(7, w * h * 3 * n);
    let size = format!("{w}x{h}");
    let mut args = vec!["serve", path_str(&f), "--stdin", "--size", &size, "--lossless"];
    if flip {
        args.push("--flip");
    }
    let mut server = shmimage().args(&args).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    let mut stdin = server.stdin.take().unwrap();
    let data = input.clone();
    // Feed from a thread: the pipe fills while serve waits for a client.
    let feeder = std::thread::spawn(move || {
        stdin.write_all(&data).unwrap();
    });
    wait_for_server(&f);
    let o = run(&["record", path_str(&f), "--out", path_str(&rec), "--raw", "--count", &n.to_string()]);
    feeder.join().unwrap();
    ok(&o);
    let s = finish(server);
    ok(&s);
    for k in 0..n {
        let got = std::fs::read(rec.join(format!("frame-{:06}.rgb", k + 1))).unwrap();
        let frame = &input[k * w * h * 3..][..w * h * 3];
        let want: Vec<u8> = if flip { frame.chunks(w * 3).rev().flatten().copied().collect() } else { frame.to_vec() };
        assert!(got == want, "frame {} (flip {flip}) differs", k + 1);
    }
}

#[test]
fn raw_frames_on_stdin_round_trip_byte_for_byte() {
    raw_round_trip(false);
}

#[test]
fn flip_stores_rows_bottom_up() {
    raw_round_trip(true);
}

#[test]
fn stdin_that_ends_mid_frame_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("s.shm");
    let mut child = shmimage()
        .args(["serve", path_str(&f), "--stdin", "--size", "4x4", "--wait-client", "0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&[1u8; 4 * 4 * 3 + 5]).unwrap();
    drop(stdin);
    let o = finish(child);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("ended inside frame 2"), "{}", text(&o.stderr));
}

#[test]
fn record_without_a_server_times_out_with_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("s.shm");
    ok(&run(&["create", path_str(&f), "--ensight", "--len", "4K"]));
    let o = run(&["record", path_str(&f), "--out", path_str(&dir.path().join("rec")), "--timeout", "0.3"]);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(err.contains("no frame arrived") && err.contains(path_str(&f)), "{err}");
}

#[test]
fn record_reports_a_server_that_exits_before_count() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("s.shm");
    ok(&run(&["create", path_str(&f), "--max", "8x8"]));
    let server = shmimage()
        .args(["serve", path_str(&f), "--size", "8x8", "--count", "2", "--lossless", "--fps", "0"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // The client must see the server alive once to know later that it is
    // gone (a server that takes no lock, like EnSight's own, is never
    // "gone"); a client that connects first can miss a very short-lived one.
    wait_for_server(&f);
    let o =
        run(&["record", path_str(&f), "--out", path_str(&dir.path().join("rec")), "--count", "5", "--timeout", "30"]);
    ok(&finish(server));
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(err.contains("exited after 2 frame(s)") && err.contains("--count"), "{err}");
}

#[test]
fn serve_and_record_fail_clearly_on_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.shm");
    let o = run(&["record", path_str(&missing), "--out", path_str(&dir.path().join("rec"))]);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(err.contains(path_str(&missing)) && err.contains("shmimage create"), "{err}");

    let a_file = dir.path().join("a-file");
    std::fs::write(&a_file, b"x").unwrap();
    let o = run(&["record", path_str(&missing), "--out", path_str(&a_file)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("cannot create the output folder"), "{}", text(&o.stderr));

    let small = dir.path().join("small.shm");
    std::fs::write(&small, [0u8; 20]).unwrap();
    let o = run(&["serve", path_str(&small), "--count", "1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains(path_str(&small)), "{}", text(&o.stderr));

    let o = run(&["serve", path_str(&missing), "--png", path_str(&dir.path().join("nothing-here"))]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("nothing-here"), "{}", text(&o.stderr));

    let not_png = dir.path().join("fake.png");
    std::fs::write(&not_png, b"not a png at all").unwrap();
    let o = run(&["serve", path_str(&missing), "--png", path_str(&not_png)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("fake.png"), "{}", text(&o.stderr));

    // A frame whose row does not fit the existing file's buffers: reported
    // at once, before any client connects (no --wait-client: it would wait
    // forever for one otherwise), naming the problem once.
    let tiny = dir.path().join("tiny.shm");
    ok(&run(&["create", path_str(&tiny), "--ensight", "--len", "64"]));
    let o = run(&["serve", path_str(&tiny), "--size", "100x1"]);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(err.contains("cannot travel through") && err.contains("--max 100x1"), "{err}");
    assert_eq!(err.matches("larger").count() + err.matches("make a file").count(), 1, "one fix, once: {err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn serve_gives_up_when_no_client_comes() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("s.shm");
    let o = run(&["serve", path_str(&f), "--size", "8x8", "--wait-client", "0.2", "--json"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("no client connected"), "{}", text(&o.stderr));
    let events: Vec<Value> = text(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(events.iter().any(|v| v["event"] == "waiting"));
    assert_eq!(events.last().unwrap()["event"], "done");
    assert_eq!(events.last().unwrap()["ok"], false);
}
