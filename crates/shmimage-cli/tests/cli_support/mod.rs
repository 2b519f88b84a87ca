//! Helpers shared by the `cli_*` tests: run the real `shmimage` binary,
//! with a safety deadline so a hung child fails the test instead of the
//! whole run (the deadline is generous and never the thing under test).
#![allow(dead_code)] // each test file uses a different subset

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// Far beyond what any step needs; only a hang reaches it.
pub const DEADLINE: Duration = Duration::from_secs(60);

pub fn shmimage() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_shmimage"));
    c.stdin(Stdio::null());
    c
}

/// Run to completion and capture stdout and stderr.
pub fn run(args: &[&str]) -> Output {
    let child = shmimage().args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn shmimage");
    finish(child)
}

/// Wait for a spawned child with captured output, killing it at DEADLINE.
pub fn finish(mut child: Child) -> Output {
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    // Read on threads so a chatty child never blocks on a full pipe.
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(o) = out.as_mut() {
            let _ = o.read_to_end(&mut v);
        }
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(e) = err.as_mut() {
            let _ = e.read_to_end(&mut v);
        }
        v
    });
    let status = wait_deadline(&mut child);
    Output { status, stdout: t_out.join().unwrap_or_default(), stderr: t_err.join().unwrap_or_default() }
}

pub fn wait_deadline(child: &mut Child) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            return s;
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("shmimage child hung for {DEADLINE:?} and was killed");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Assert success, showing the child's output otherwise.
pub fn ok(o: &Output) {
    assert!(o.status.success(), "exit {:?}\nstdout:\n{}\nstderr:\n{}", o.status, text(&o.stdout), text(&o.stderr));
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

/// Deterministic bytes (xorshift): test data without a rand dependency.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A server (1.0) or writer (native) holds `f` now.
pub fn writer_alive(f: &Path) -> bool {
    match shmimage::detect_protocol(f) {
        Ok(shmimage::Protocol::Native) => shmimage::native::inspect(f).is_ok_and(|n| n.writer_alive),
        Ok(shmimage::Protocol::Ensight1) => shmimage::inspect(f).is_ok_and(|s| s.server_alive == Some(true)),
        Err(_) => false,
    }
}

/// A client (1.0) or at least one reader (native) holds `f` now.
pub fn reader_alive(f: &Path) -> bool {
    match shmimage::detect_protocol(f) {
        Ok(shmimage::Protocol::Native) => shmimage::native::inspect(f).is_ok_and(|n| !n.readers.is_empty()),
        Ok(shmimage::Protocol::Ensight1) => shmimage::inspect(f).is_ok_and(|s| s.client_alive == Some(true)),
        Err(_) => false,
    }
}

/// The newest frame's number (1.0) or sequence (native) in `f`, if any.
pub fn newest_frame(f: &Path) -> u64 {
    match shmimage::detect_protocol(f) {
        Ok(shmimage::Protocol::Native) => shmimage::native::inspect(f).map_or(0, |n| n.latest),
        _ => shmimage::inspect(f)
            .map_or(0, |i| i.buffers.iter().map(|b| u64::from(b.header.frame_number)).max().unwrap_or(0)),
    }
}

/// Spawn with --json; return the child and a reader of its JSON lines.
pub fn spawn_json(args: &[&str]) -> (Child, std::io::Lines<BufReader<std::process::ChildStdout>>) {
    let mut child = shmimage().args(args).arg("--json").stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    (child, lines)
}

/// Read JSON lines until one has `"event": name`.
pub fn until_event(lines: &mut impl Iterator<Item = std::io::Result<String>>, name: &str) -> serde_json::Value {
    for line in lines {
        let v: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
        if v["event"] == name {
            return v;
        }
    }
    panic!("the output ended before a {name:?} event");
}

/// Wait until a server holds `f` (serve creates the file, then opens it).
pub fn wait_for_server(f: &Path) {
    let start = Instant::now();
    while !writer_alive(f) {
        assert!(start.elapsed() < DEADLINE, "no server ever opened {f:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}
