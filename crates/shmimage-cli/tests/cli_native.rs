//! The native stream through the CLI: `create` makes one by default, several
//! `record` processes read one stream at once (one lossless), `inspect
//! --json` shows the protocol and every reader, a second writer is refused,
//! and 16-bit frames record as 16-bit PNG.
#![allow(clippy::unwrap_used)] // a test's own setup failing is a test failure

mod cli_support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::Duration;

use cli_support::*;
use serde_json::Value;
use shmimage::native::{FrameDesc, FrameInfo, PixelFormat, Writer, WriterOptions};

fn spawn(args: &[&str]) -> Child {
    shmimage().args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(start.elapsed() < DEADLINE, "never: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn json_lines(o: &std::process::Output) -> Vec<Value> {
    text(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn three_recorders_read_one_native_stream_and_inspect_lists_them() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("n.shm");
    let v: Value = serde_json::from_slice(&run(&["create", path_str(&f), "--max", "32x16", "--json"]).stdout).unwrap();
    assert_eq!((v["protocol"].as_str(), v["slots"].as_u64()), (Some("native"), Some(4)), "{v}");
    // Three readers first (they wait for frames), then the writer.
    let recs: Vec<(Child, std::path::PathBuf)> = (0..3)
        .map(|k| {
            let out = dir.path().join(format!("rec{k}"));
            let mut args = vec!["record", path_str(&f), "--raw", "--count", "30", "--timeout", "60", "--json"];
            if k == 0 {
                args.push("--lossless");
            }
            let o = out.clone();
            (spawn(&[&args[..], &["--out", path_str(&o)]].concat()), out)
        })
        .collect();
    wait_until("three readers joined", || shmimage::native::inspect(&f).is_ok_and(|n| n.readers.len() == 3));
    let v: Value = serde_json::from_slice(&run(&["inspect", path_str(&f), "--json"]).stdout).unwrap();
    assert_eq!(v["protocol"], "native", "{v}");
    let readers = v["readers"].as_array().unwrap();
    assert_eq!(readers.len(), 3, "{v}");
    let mut pids: Vec<u64> = readers.iter().map(|r| r["pid"].as_u64().unwrap()).collect();
    pids.sort_unstable();
    let mut want: Vec<u64> = recs.iter().map(|(c, _)| u64::from(c.id())).collect();
    want.sort_unstable();
    assert_eq!(pids, want, "{v}");
    assert_eq!(readers.iter().filter(|r| r["lossless"] == true).count(), 1, "{v}");
    assert!(readers.iter().all(|r| r["missed"].is_u64()), "{v}");
    // The writer: every reader has taken each frame before the next.
    let server = spawn(&["serve", path_str(&f), "--size", "32x16", "--count", "30", "--fps", "0", "--lossless"]);
    let mut all = Vec::new();
    for (c, out) in recs {
        let o = finish(c);
        ok(&o);
        let done = json_lines(&o).pop().unwrap();
        assert_eq!((done["saved"].as_u64(), done["skipped"].as_u64()), (Some(30), Some(0)), "{done}");
        assert_eq!(done["protocol"], "native");
        all.push(out);
    }
    ok(&finish(server));
    // Every reader saw the same 30 frames, byte for byte.
    for n in 1..=30 {
        let name = format!("frame-{n:06}.rgb");
        let first = std::fs::read(all[0].join(&name)).unwrap();
        assert_eq!(first.len(), 32 * 16 * 3);
        for d in &all[1..] {
            assert!(std::fs::read(d.join(&name)).unwrap() == first, "{name} differs between readers");
        }
    }
}

#[test]
fn a_second_writer_on_a_live_native_stream_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("n.shm");
    let mut first = spawn(&["serve", path_str(&f), "--size", "8x8", "--fps", "50", "--json"]);
    let mut lines = BufReader::new(first.stdout.take().unwrap()).lines();
    wait_until("the writer runs", || writer_alive(&f));
    let o = run(&["serve", path_str(&f), "--size", "8x8", "--count", "1"]);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(err.contains("live writer") && err.contains(&first.id().to_string()), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(first.id() as i32, libc::SIGINT) };
    assert!(wait_deadline(&mut first).success());
    assert!(lines.any(|l| l.unwrap().contains("\"event\":\"done\"")));
}

#[test]
fn sixteen_bit_frames_record_as_sixteen_bit_png() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("depth.shm");
    ok(&run(&["create", path_str(&f), "--format", "GRAY16_LE", "--max", "40x20"]));
    let rec = dir.path().join("rec");
    let recorder = spawn(&["record", path_str(&f), "--out", path_str(&rec), "--count", "2", "--lossless"]);
    wait_until("the reader joined", || reader_alive(&f));
    // This test process is the writer (the engine's own), record the reader.
    let w = Writer::open(&f, &WriterOptions::default()).unwrap();
    let desc = FrameDesc::new(PixelFormat::Gray16Le, 40, 20).unwrap();
    let mut want = Vec::new();
    for seed in 1..=2u64 {
        let samples: Vec<u16> = noise(seed, 40 * 20 * 2).chunks(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
        let mut px = vec![0u8; desc.len() as usize];
        for (y, row) in samples.chunks(40).enumerate() {
            let start = y * desc.stride() as usize;
            for (x, v) in row.iter().enumerate() {
                px[start + 2 * x..start + 2 * x + 2].copy_from_slice(&v.to_le_bytes());
            }
        }
        w.put(&desc, &px, &FrameInfo::default()).unwrap();
        want.push(samples);
    }
    ok(&finish(recorder));
    for (k, samples) in want.iter().enumerate() {
        let d = png::Decoder::new(std::io::BufReader::new(
            std::fs::File::open(rec.join(format!("frame-{:06}.png", k + 1))).unwrap(),
        ));
        let mut r = d.read_info().unwrap();
        let mut buf = vec![0; r.output_buffer_size().unwrap()];
        let info = r.next_frame(&mut buf).unwrap();
        assert_eq!((info.color_type, info.bit_depth), (png::ColorType::Grayscale, png::BitDepth::Sixteen));
        let got: Vec<u16> = buf[..40 * 20 * 2].chunks(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
        assert!(got == *samples, "frame {} samples differ", k + 1);
    }
}

#[test]
fn bridge_republishes_a_1_0_stream_as_native_frame_for_frame() {
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = (dir.path().join("ensight.shm"), dir.path().join("native.shm"));
    let (w, h, n) = (24usize, 10usize, 6usize);
    let input = noise(21, w * h * 3 * n);
    // The 1.0 server (as EnSight would be), waiting for its one client.
    let mut server = shmimage()
        .args(["serve", path_str(&src), "--ensight", "--stdin", "--size", "24x10", "--lossless", "--quiet"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = server.stdin.take().unwrap();
    let data = input.clone();
    let feeder = std::thread::spawn(move || {
        use std::io::Write;
        let _ = stdin.write_all(&data);
    });
    wait_until("the 1.0 server runs", || writer_alive(&src));
    // The native side exists first, with a lossless reader waiting on it.
    ok(&run(&["create", path_str(&dst), "--max", "24x10"]));
    let rec = dir.path().join("rec");
    let recorder = spawn(&["record", path_str(&dst), "--out", path_str(&rec), "--raw", "--lossless", "--count", "6"]);
    wait_until("the reader joined", || reader_alive(&dst));
    let bridge = spawn(&["bridge", path_str(&src), path_str(&dst), "--count", "6", "--json"]);
    let r = finish(recorder);
    ok(&r);
    let b = finish(bridge);
    ok(&b);
    feeder.join().unwrap();
    ok(&finish(server));
    let done = json_lines(&b).pop().unwrap();
    assert_eq!((done["frames"].as_u64(), done["skipped"].as_u64()), (Some(6), Some(0)), "{done}");
    for k in 0..n {
        let got = std::fs::read(rec.join(format!("frame-{:06}.rgb", k + 1))).unwrap();
        assert!(got == input[k * w * h * 3..][..w * h * 3], "frame {} differs after the bridge", k + 1);
    }
    // A native source is refused by name.
    let o = run(&["bridge", path_str(&dst), path_str(&dir.path().join("x.shm"))]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("already a native stream"), "{}", text(&o.stderr));
}
