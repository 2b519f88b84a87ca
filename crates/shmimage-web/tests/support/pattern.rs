//! The test pattern and the writer process that streams it.
//!
//! Four flat quadrants (red, green, blue, white) whose colours survive JPEG,
//! and a strip along the top where a black block moves with the frame number,
//! so two screenshots of different frames differ there.

use std::path::Path;
use std::time::{Duration, Instant};

use shmimage::{Server, ServerOptions, StreamFile};

/// Rows of the moving strip at the top.
pub const STRIP: u32 = 24;

/// The colour of the quadrant holding (x, y), below the strip.
pub fn quadrant_colour(width: u32, height: u32, x: u32, y: u32) -> [u8; 3] {
    match (x < width / 2, y < height / 2) {
        (true, true) => [255, 0, 0],
        (false, true) => [0, 255, 0],
        (true, false) => [0, 0, 255],
        (false, false) => [255, 255, 255],
    }
}

/// Frame `n` of the pattern, RGB rows top-down.
pub fn render(width: u32, height: u32, n: u64, out: &mut Vec<u8>) {
    out.resize(width as usize * height as usize * 3, 0);
    let block = (n * 8 % u64::from(width.max(1))) as u32;
    for y in 0..height {
        for x in 0..width {
            let c = if y < STRIP {
                if x >= block && x < block + 32 {
                    [0, 0, 0]
                } else {
                    [255, 255, 0]
                }
            } else {
                quadrant_colour(width, height, x, y)
            };
            let i = (y as usize * width as usize + x as usize) * 3;
            out[i..i + 3].copy_from_slice(&c);
        }
    }
}

/// Create the stream file for frames up to `width`x`height`.
pub fn create_file(path: &Path, width: u32, height: u32) {
    let len = shmimage::layout::file_len_for_frame(width, height).expect("frame size");
    StreamFile::create_at(path, len).expect("create stream file").keep();
}

/// Not a test: the body of the writer process (see `support::Writer`).
#[test]
#[ignore = "runs only as the writer process of another test"]
fn writer_process() {
    let Ok(spec) = std::env::var(super::WRITER_ENV) else { return };
    let parts: Vec<&str> = spec.split('|').collect();
    let (path, w, h, fps) = (
        Path::new(parts[0]),
        parts[1].parse::<u32>().expect("width"),
        parts[2].parse::<u32>().expect("height"),
        parts[3].parse::<u32>().expect("fps"),
    );
    let mut server = Server::create(path, ServerOptions::default()).expect("open the stream as its writer");
    let period = Duration::from_secs_f64(1.0 / f64::from(fps.max(1)));
    let mut buf = Vec::new();
    let start = Instant::now();
    // Bounded: a writer left behind by a crashed test stops by itself.
    for n in 1u64.. {
        if start.elapsed() > Duration::from_secs(300) {
            break;
        }
        render(w, h, n, &mut buf);
        // Unconnected / no free buffer: nobody watches, or the reader is
        // behind; either way this frame is dropped, as a live source would.
        let _ = server.put_frame(n as u32, w, h, &buf);
        let next = start + period * n as u32;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
}
