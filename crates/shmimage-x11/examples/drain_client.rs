//! A stream client that takes every frame it can and counts them, for
//! scripts/bench-x11.sh (the consumer of `shmimage capture`).
//!
//! `drain_client FILE SECONDS`

use std::time::{Duration, Instant};

use shmimage::{Client, ClientOptions, Error};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [file, seconds] = &args[..] else { return Err("usage: drain_client FILE SECONDS".into()) };
    let seconds: f64 = seconds.parse()?;
    let client = Client::connect(file, ClientOptions::default())?;
    let start = Instant::now();
    let (mut frames, mut bytes) = (0u64, 0u64);
    while start.elapsed().as_secs_f64() < seconds {
        match client.wait_frame(Some(Duration::from_millis(100))) {
            Ok(f) => {
                frames += 1;
                bytes += f.pixels()?.len() as u64;
            }
            Err(Error::NoFrameAvailable) | Err(Error::ServerGone { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    eprintln!("drain_client: {frames} frames, {bytes} bytes in {:.2} s", start.elapsed().as_secs_f64());
    Ok(())
}
