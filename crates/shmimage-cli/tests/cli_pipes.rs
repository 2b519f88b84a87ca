//! Pipes in and out, as ffmpeg users write them: `record --out -` as y4m into
//! a real ffmpeg, raw RGB byte for byte, and `serve --stdin` reading y4m made
//! by ffmpeg or by `record` itself.
#![allow(clippy::unwrap_used)] // a test's own setup failing is a test failure

mod cli_support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use cli_support::*;

fn ffmpeg() -> Command {
    let mut c = Command::new("ffmpeg");
    c.args(["-hide_banner", "-loglevel", "error", "-nostdin"]);
    c
}

/// Serve `frames` raw RGB frames of `w`x`h` from `input` (lossless, as fast
/// as the client takes them); returns the server process.
fn serve_raw(f: &Path, w: usize, h: usize, input: Vec<u8>) -> std::process::Child {
    let size = format!("{w}x{h}");
    let mut server = shmimage()
        .args(["serve", path_str(f), "--stdin", "--size", &size, "--lossless", "--quiet"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = server.stdin.take().unwrap();
    std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    wait_for_server(f);
    server
}

#[test]
fn record_to_stdout_feeds_a_real_ffmpeg() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("s.shm");
    let (w, h, n) = (64usize, 48usize, 12usize);
    let server = serve_raw(&f, w, h, noise(3, w * h * 3 * n));
    let mp4 = dir.path().join("out.mp4");
    // The README's pipe: shmimage record S --out - | ffmpeg -i - out.mp4
    let mut rec = shmimage()
        .args(["record", path_str(&f), "--out", "-", "--count", &n.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pipe = rec.stdout.take().unwrap();
    let ff = ffmpeg().args(["-y", "-i", "-"]).arg(&mp4).stdin(pipe).output().unwrap();
    let rec_out = finish(rec);
    ok(&rec_out);
    ok(&finish(server));
    assert!(ff.status.success(), "ffmpeg: {}", text(&ff.stderr));
    // Reports went to stderr, the frames to stdout.
    assert!(text(&rec_out.stderr).contains(&format!("recorded {n} frame(s)")), "{}", text(&rec_out.stderr));
    let probe = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=nb_read_frames,width,height", "-of", "csv=p=0"])
        .arg(&mp4)
        .output()
        .unwrap();
    assert_eq!(text(&probe.stdout).trim(), format!("{w},{h},{n}"), "{}", text(&probe.stderr));
}

#[test]
fn record_raw_to_stdout_is_the_served_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("s.shm");
    let (w, h, n) = (20usize, 6usize, 5usize);
    let input = noise(9, w * h * 3 * n);
    let server = serve_raw(&f, w, h, input.clone());
    let o = run(&["record", path_str(&f), "--out", "-", "--raw", "--count", &n.to_string(), "--json"]);
    ok(&o);
    ok(&finish(server));
    assert!(o.stdout == input, "stdout carries exactly the served frames ({} bytes)", o.stdout.len());
    // --json reports go to stderr too, ending with the summary.
    let last: serde_json::Value = serde_json::from_str(text(&o.stderr).lines().last().unwrap()).unwrap();
    assert_eq!((last["event"].as_str(), last["saved"].as_u64()), (Some("done"), Some(n as u64)));
}

/// A y4m test source from ffmpeg, and ffmpeg's own RGB reading of it.
fn ffmpeg_source(w: u32, h: u32, n: u32, pix_fmt: &str) -> (Vec<u8>, Vec<u8>) {
    let src = format!("testsrc2=size={w}x{h}:rate=25");
    let o = ffmpeg()
        .args(["-f", "lavfi", "-i", &src, "-frames:v", &n.to_string(), "-pix_fmt", pix_fmt, "-f", "yuv4mpegpipe", "-"])
        .output()
        .unwrap();
    assert!(o.status.success(), "ffmpeg: {}", text(&o.stderr));
    let y4m = o.stdout;
    let mut dec = ffmpeg()
        .args(["-f", "yuv4mpegpipe", "-i", "-", "-pix_fmt", "rgb24", "-f", "rawvideo", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = dec.stdin.take().unwrap();
    let input = y4m.clone();
    let feeder = std::thread::spawn(move || stdin.write_all(&input));
    let rgb = finish(dec);
    feeder.join().unwrap().unwrap();
    ok(&rgb);
    (rgb.stdout, y4m)
}

/// Serve `y4m` through `serve --stdin` and record it back as raw RGB.
fn through_the_stream(y4m: Vec<u8>, n: usize) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("s.shm");
    let mut server = shmimage()
        .args(["serve", path_str(&f), "--stdin", "--lossless", "--fps", "0", "--quiet"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = server.stdin.take().unwrap();
    std::thread::spawn(move || {
        let _ = stdin.write_all(&y4m);
    });
    wait_for_server(&f);
    let o = run(&["record", path_str(&f), "--out", "-", "--raw", "--count", &n.to_string(), "--quiet"]);
    ok(&o);
    ok(&finish(server));
    o.stdout
}

fn mean_and_max_diff(a: &[u8], b: &[u8]) -> (f64, u8) {
    assert_eq!(a.len(), b.len());
    let max = a.iter().zip(b).map(|(x, y)| x.abs_diff(*y)).max().unwrap();
    let sum: u64 = a.iter().zip(b).map(|(x, y)| u64::from(x.abs_diff(*y))).sum();
    (sum as f64 / a.len() as f64, max)
}

#[test]
fn serve_reads_y4m_from_ffmpeg_444_and_420() {
    let (w, h, n) = (96u32, 64u32, 4u32);
    // Against ffmpeg's own conversion of the same y4m. 4:4:4 keeps every
    // pixel's colour: only rounding differs.
    let (rgb, y4m) = ffmpeg_source(w, h, n, "yuv444p");
    let got = through_the_stream(y4m, n as usize);
    let (mean, max) = mean_and_max_diff(&got, &rgb);
    eprintln!("4:4:4 vs ffmpeg: mean {mean:.3}, max {max}");
    assert!(mean < 0.2 && max <= 2, "4:4:4: mean {mean:.2}, max {max}");
    // 4:2:0: ffmpeg interpolates the halved chroma, this reader repeats it;
    // they differ only along colour edges.
    let (rgb, y4m) = ffmpeg_source(w, h, n, "yuv420p");
    let got = through_the_stream(y4m, n as usize);
    let (mean, max) = mean_and_max_diff(&got, &rgb);
    eprintln!("4:2:0 vs ffmpeg: mean {mean:.3}, max {max}");
    assert!(mean < 1.5 && max <= 8, "4:2:0: mean {mean:.2}, max {max}");
}

#[test]
fn y4m_from_record_serves_again() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("s.shm");
    let (w, h, n) = (32usize, 16usize, 3usize);
    let input = noise(11, w * h * 3 * n);
    let server = serve_raw(&f, w, h, input.clone());
    let o = run(&["record", path_str(&f), "--out", "-", "--count", &n.to_string(), "--fps", "12.5"]);
    ok(&o);
    ok(&finish(server));
    assert!(o.stdout.starts_with(b"YUV4MPEG2 W32 H16 F12500:1000"), "{:?}", &o.stdout[..40]);
    let back = through_the_stream(o.stdout, n);
    let (_, max) = mean_and_max_diff(&back, &input);
    assert!(max <= 4, "y4m 4:4:4 round trip, worst channel error {max}");
}

#[test]
fn stdin_mistakes_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("s.shm");
    // Raw input without a size.
    let mut child = shmimage()
        .args(["serve", path_str(&f), "--stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&[0u8; 300]).unwrap();
    let o = finish(child);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("needs --size"), "{}", text(&o.stderr));
    assert!(!f.exists(), "no file made for input that was refused");
    // y4m whose size contradicts --size.
    let mut child = shmimage()
        .args(["serve", path_str(&f), "--stdin", "--size", "8x8"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"YUV4MPEG2 W4 H4 F25:1 C444\n").unwrap();
    let o = finish(child);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("differs from the y4m header's 4x4"), "{}", text(&o.stderr));
}

#[test]
fn a_pipe_carries_one_frame_size() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    for (name, w, h) in [("a.png", 8u32, 8u32), ("b.png", 16, 4)] {
        let file = std::fs::File::create(src.join(name)).unwrap();
        let mut e = png::Encoder::new(file, w, h);
        e.set_color(png::ColorType::Rgb);
        let mut wr = e.write_header().unwrap();
        wr.write_image_data(&noise(1, (w * h * 3) as usize)).unwrap();
        wr.finish().unwrap();
    }
    let f = dir.path().join("s.shm");
    let server = shmimage()
        .args(["serve", path_str(&f), "--png", path_str(&src), "--lossless", "--fps", "0", "--quiet"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_server(&f);
    let o = run(&["record", path_str(&f), "--out", "-", "--count", "2"]);
    let _ = finish(server);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("changed its frame size from 8x8 to 16x4"), "{}", text(&o.stderr));
}
