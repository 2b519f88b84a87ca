//! A stream server for trying the viewer and for scripts/bench-x11.sh:
//! creates FILE if missing (sized for W x H), waits for a client, then puts
//! frames of a moving test pattern as fast as the client takes them (or at
//! --fps), for --seconds or --frames.
//!
//! `cargo run --release -p shmimage-x11 --example pattern_server -- FILE 1920 1080 --seconds 10`

use std::time::{Duration, Instant};

use shmimage::{Error, Server, ServerOptions, StreamFile};

fn pattern(w: u32, h: u32, phase: u32) -> Vec<u8> {
    let mut v = Vec::with_capacity(w as usize * h as usize * 3);
    for y in 0..h {
        for x in 0..w {
            v.extend_from_slice(&[(x + phase) as u8, (y * 3) as u8, (x ^ y).wrapping_add(phase) as u8]);
        }
    }
    v
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: pattern_server FILE WIDTH HEIGHT [--seconds S] [--frames N] [--fps F]";
    let (file, w, h) = match &args[..] {
        [f, w, h, ..] => (f.clone(), w.parse::<u32>()?, h.parse::<u32>()?),
        _ => return Err(usage.into()),
    };
    let opt = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).map(|s| s.parse::<f64>());
    let seconds = opt("--seconds").transpose()?.unwrap_or(f64::INFINITY);
    let frames = opt("--frames").transpose()?.map_or(u64::MAX, |f| f as u64);
    let period = opt("--fps").transpose()?.map(|f| Duration::from_secs_f64(1.0 / f));
    if !std::path::Path::new(&file).exists() {
        let len = shmimage::layout::file_len_for_frame(w, h).ok_or("size must be > 0")?;
        StreamFile::create_at(&file, len)?;
    }
    let frames_data: Vec<Vec<u8>> = (0..4).map(|p| pattern(w, h, p * 16)).collect();
    let server = Server::create(&file, ServerOptions::default())?;
    server.wait_for_client(Some(Duration::from_secs(60)))?;
    let start = Instant::now();
    let (mut n, mut sent) = (0u32, 0u64);
    while start.elapsed().as_secs_f64() < seconds && sent < frames {
        match server.wait_for_buffer(Some(Duration::from_millis(200))) {
            Ok(()) | Err(Error::NoBufferAvailable) => {}
            Err(Error::Unconnected) => break,
            Err(e) => return Err(e.into()),
        }
        n = n.wrapping_add(1);
        match server.put_frame(n, w, h, &frames_data[n as usize % 4]) {
            Ok(()) => sent += 1,
            Err(Error::NoBufferAvailable) => {}
            Err(Error::Unconnected) => break,
            Err(e) => return Err(e.into()),
        }
        if let Some(p) = period {
            std::thread::sleep(p);
        }
    }
    eprintln!("pattern_server: {sent} frames in {:.2} s", start.elapsed().as_secs_f64());
    Ok(())
}
