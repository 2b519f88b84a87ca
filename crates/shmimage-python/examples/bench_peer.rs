//! The Rust ends used by `bench/bench_fps.py`:
//!
//!   bench_peer server FILE WIDTH HEIGHT   push frames as fast as the client takes them
//!   bench_peer client FILE SECONDS touch|notouch
//!
//! The server renders through a loan (no copy) and only stamps the frame
//! number into the first row, so it is never the bottleneck of a client
//! measurement. The client prints `frames seconds` when done.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use shmimage::{Client, ClientOptions, Error, Server, ServerOptions};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["server", file, w, h] => match (w.parse(), h.parse()) {
            (Ok(w), Ok(h)) => server(file, w, h),
            _ => Err("WIDTH and HEIGHT must be positive integers".to_owned()),
        },
        ["client", file, secs, mode] => match secs.parse::<f64>() {
            Ok(s) if s > 0.0 => client(file, Duration::from_secs_f64(s), *mode == "touch"),
            _ => Err("SECONDS must be a positive number".to_owned()),
        },
        _ => Err("usage: bench_peer server FILE WIDTH HEIGHT | client FILE SECONDS touch|notouch".to_owned()),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench_peer: {e}");
            ExitCode::FAILURE
        }
    }
}

fn server(file: &str, width: u32, height: u32) -> Result<(), String> {
    let server = Server::create(file, ServerOptions::default()).map_err(|e| e.to_string())?;
    println!("ready");
    let mut number = 0u32;
    loop {
        let step = match server.loan(width, height) {
            Ok(mut loan) => {
                number = number.wrapping_add(1);
                match loan.write(0, &number.to_le_bytes()) {
                    Ok(()) => loan.commit(number),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        };
        let waited = match step {
            Ok(()) => Ok(()),
            Err(Error::NoBufferAvailable) => server.wait_for_buffer(Some(Duration::from_millis(100))),
            Err(Error::Unconnected) => server.wait_for_client(Some(Duration::from_millis(100))),
            Err(e) => return Err(e.to_string()),
        };
        match waited {
            Ok(()) | Err(Error::NoBufferAvailable) | Err(Error::Unconnected) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
}

fn client(file: &str, duration: Duration, touch: bool) -> Result<(), String> {
    let client = Client::connect(file, ClientOptions::default()).map_err(|e| e.to_string())?;
    let start = Instant::now();
    let (mut frames, mut sink) = (0u64, 0u64);
    while start.elapsed() < duration {
        match client.wait_frame(Some(Duration::from_millis(100))) {
            Ok(frame) => {
                if touch {
                    // Read every byte, eight at a time, as the numpy xor-reduce does.
                    let px = frame.pixels().map_err(|e| e.to_string())?;
                    let mut acc = 0u64;
                    for chunk in px.chunks_exact(8) {
                        let mut word = [0u8; 8];
                        word.copy_from_slice(chunk);
                        acc ^= u64::from_ne_bytes(word);
                    }
                    sink ^= acc;
                }
                frames += 1;
            }
            Err(Error::NoFrameAvailable) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    let secs = start.elapsed().as_secs_f64();
    // `sink` is printed so the reads cannot be optimised away.
    println!("{frames} {secs:.3} {sink:x}");
    Ok(())
}
