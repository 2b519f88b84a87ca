//! The test pattern and the writer process that streams it.
//!
//! Four flat quadrants (red, green, blue, white) whose colours survive JPEG,
//! and a strip along the top where a black block moves with the frame number,
//! so two screenshots of different frames differ there. The writer speaks
//! protocol 1.0 ("ensight") or the native stream in any pixel format, with
//! padded rows, so the server's conversions are exercised.

use std::path::Path;
use std::time::{Duration, Instant};

use shmimage::native::{self, FrameDesc, FrameInfo, PixelFormat, WriterOptions};
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

/// How a gray format shows `rgb` (BT.601 luma).
pub fn luma(rgb: [u8; 3]) -> u8 {
    ((299 * u32::from(rgb[0]) + 587 * u32::from(rgb[1]) + 114 * u32::from(rgb[2])) / 1000) as u8
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

/// Frame `n` of a busier picture (gradients and fine diagonal texture that
/// move every frame), closer to rendered content than flat quadrants for
/// measuring the encoder.
pub fn render_textured(width: u32, height: u32, n: u64, out: &mut Vec<u8>) {
    out.resize(width as usize * height as usize * 3, 0);
    let n = n as u32;
    for (y, row) in out.chunks_exact_mut(width as usize * 3).enumerate() {
        let y = y as u32;
        for (x, px) in row.chunks_exact_mut(3).enumerate() {
            let x = x as u32;
            px[0] = ((x + n * 4) * 255 / width.max(1)) as u8;
            px[1] = ((y + n * 2) * 255 / height.max(1)) as u8;
            px[2] = ((x ^ y).wrapping_add(n) & 0xff) as u8;
        }
    }
}

fn yuv(c: &[u8]) -> [u8; 3] {
    let (r, g, b) = (i32::from(c[0]), i32::from(c[1]), i32::from(c[2]));
    let y = ((66 * r + 129 * g + 25 * b + 128) >> 8) + 16;
    let u = ((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128;
    let v = ((112 * r - 94 * g - 18 * b + 128) >> 8) + 128;
    [y as u8, u as u8, v as u8]
}

/// `rgb` (packed, `width` x `height`) laid out as `desc` says.
pub fn to_format(desc: &FrameDesc, rgb: &[u8], out: &mut Vec<u8>) {
    let (w, h) = (desc.width() as usize, desc.height() as usize);
    out.clear();
    out.resize(desc.len() as usize, 0);
    let px = |x: usize, y: usize| &rgb[(y * w + x) * 3..(y * w + x) * 3 + 3];
    let planes = desc.planes().to_vec();
    let at = |p: usize, x: usize, y: usize, size: usize| {
        planes[p].offset as usize + y * planes[p].stride as usize + x * size
    };
    for y in 0..h {
        for x in 0..w {
            let c = px(x, y);
            let gray = luma([c[0], c[1], c[2]]);
            match desc.format() {
                PixelFormat::Rgb8 => out[at(0, x, y, 3)..][..3].copy_from_slice(c),
                PixelFormat::Bgr8 => out[at(0, x, y, 3)..][..3].copy_from_slice(&[c[2], c[1], c[0]]),
                PixelFormat::Rgba8 | PixelFormat::Rgbx8 => {
                    out[at(0, x, y, 4)..][..4].copy_from_slice(&[c[0], c[1], c[2], 255])
                }
                PixelFormat::Bgra8 | PixelFormat::Bgrx8 => {
                    out[at(0, x, y, 4)..][..4].copy_from_slice(&[c[2], c[1], c[0], 255])
                }
                PixelFormat::Gray8 => out[at(0, x, y, 1)] = gray,
                PixelFormat::Gray16Le => {
                    out[at(0, x, y, 2)..][..2].copy_from_slice(&(u16::from(gray) * 257).to_le_bytes())
                }
                PixelFormat::Gray32F => {
                    out[at(0, x, y, 4)..][..4].copy_from_slice(&(f32::from(gray) / 255.0).to_le_bytes())
                }
                PixelFormat::I420 | PixelFormat::Nv12 => {
                    let [yy, u, v] = yuv(c);
                    out[at(0, x, y, 1)] = yy;
                    if x % 2 == 0 && y % 2 == 0 {
                        if desc.format() == PixelFormat::I420 {
                            out[at(1, x / 2, y / 2, 1)] = u;
                            out[at(2, x / 2, y / 2, 1)] = v;
                        } else {
                            out[at(1, x / 2, y / 2, 2)..][..2].copy_from_slice(&[u, v]);
                        }
                    }
                }
                other => panic!("the test pattern has no {other:?}"),
            }
        }
    }
}

/// Not a test: the body of the writer process (see `support::Writer`).
#[test]
#[ignore = "runs only as the writer process of another test"]
fn writer_process() {
    if let Ok(spec) = std::env::var(super::WRITER_ENV) {
        run_writer(&spec);
    }
}

/// Stream the pattern as `spec` says: `PATH|WIDTH|HEIGHT|FPS|FORMAT`, FORMAT
/// "ensight" for protocol 1.0 or a native pixel format name; FPS 0 = as fast
/// as possible.
pub fn run_writer(spec: &str) {
    let parts: Vec<&str> = spec.split('|').collect();
    let (path, w, h, fps, format) = (
        Path::new(parts[0]),
        parts[1].parse::<u32>().expect("width"),
        parts[2].parse::<u32>().expect("height"),
        parts[3].parse::<u32>().expect("fps"),
        parts[4],
    );
    let textured = parts.get(5) == Some(&"textured");
    // Rows stored bottom-up, flagged so (native only).
    let bottom_up = parts.get(5) == Some(&"bottomup");
    let period = if fps == 0 { Duration::ZERO } else { Duration::from_secs_f64(1.0 / f64::from(fps)) };
    let mut rgb = Vec::new();
    let mut out = Vec::new();
    type Put = Box<dyn FnMut(u64, &[u8])>;
    // The put closures take the frame as RGB; with native formats they lay
    // it out first (`pre_laid` skips that for frames laid out in advance).
    let mut pre_laid = false;
    let mut put: Put = if format == "ensight" {
        if !path.exists() {
            let len = shmimage::layout::file_len_for_frame(w, h).expect("frame size");
            StreamFile::create_at(path, len).expect("create the stream file").keep();
        }
        let server = Server::create(path, ServerOptions::default()).expect("open the stream as its writer");
        // Unconnected / no free buffer: nobody watches, or the reader is
        // behind; the frame is dropped, as a live source would.
        Box::new(move |n, rgb| drop(server.put_frame(n as u32, w, h, rgb)))
    } else {
        let format = PixelFormat::from_name(format).expect("a native pixel format");
        let desc = FrameDesc::new(format, w, h).expect("frame description");
        let options = WriterOptions::for_frame(format, w, h).expect("writer options");
        let writer = native::Writer::open_or_create(path, &options).expect("open the stream as its writer");
        pre_laid = textured;
        let mut flipped = Vec::new();
        Box::new(move |_, frame| {
            let frame = if bottom_up {
                flipped.clear();
                for row in frame.chunks_exact(w as usize * 3).rev() {
                    flipped.extend_from_slice(row);
                }
                &flipped[..]
            } else {
                frame
            };
            let pixels = if pre_laid {
                frame
            } else {
                to_format(&desc, frame, &mut out);
                &out
            };
            let capture = (native::now_mono_ns(), native::now_real_ns());
            let flags = if bottom_up { native::flags::BOTTOM_UP } else { 0 };
            let info = FrameInfo { capture: Some(capture), flags, ..Default::default() };
            writer.put(&desc, pixels, &info).expect("put a frame");
        })
    };
    // The busy picture costs more to draw than to send: for the benchmark,
    // draw a cycle of frames once so the writer is never the bottleneck.
    let cycle: Vec<Vec<u8>> = if pre_laid {
        let format = PixelFormat::from_name(format).expect("a native pixel format");
        let desc = FrameDesc::new(format, w, h).expect("frame description");
        (0..12u64)
            .map(|n| {
                render_textured(w, h, n * 3, &mut rgb);
                let mut laid = Vec::new();
                to_format(&desc, &rgb, &mut laid);
                laid
            })
            .collect()
    } else {
        Vec::new()
    };
    let start = Instant::now();
    // Bounded: a writer left behind by a crashed test stops by itself.
    for n in 1u64.. {
        if start.elapsed() > Duration::from_secs(300) {
            break;
        }
        if pre_laid {
            put(n, &cycle[n as usize % cycle.len()]);
        } else {
            if textured {
                render_textured(w, h, n, &mut rgb);
            } else {
                render(w, h, n, &mut rgb);
            }
            put(n, &rgb);
        }
        if !period.is_zero() {
            let next = start + period * n as u32;
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
    }
}
