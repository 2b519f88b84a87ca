//! YUV4MPEG2 in and out, so frames pipe to and from ffmpeg, x264 and mpv:
//! `record --out -` writes it, `serve --stdin` reads it. The container is the
//! `y4m` crate's; this file only converts between the stream's RGB8 and YUV.
//!
//! The colour conversion is BT.601 with limited ("TV") range, which is what
//! ffmpeg assumes for a y4m stream that names neither. Output is 4:4:4 (no
//! chroma is thrown away); input may be 4:4:4, 4:2:2, 4:2:0 (any siting),
//! mono, and 10 or 12 bits (the high 8 bits are kept).

use std::io::{Read, Write};

use crate::output::Result;

/// The first bytes of every y4m stream.
pub const MAGIC: &[u8] = b"YUV4MPEG2 ";

/// A reader with its first bytes read ahead and put back in front.
pub type Peeked<R> = std::io::Chain<std::io::Cursor<Vec<u8>>, R>;

/// Read the first bytes of `input` and tell whether it is y4m; the reader
/// handed back yields every byte again, the peeked ones first.
pub fn sniff<R: Read>(mut input: R) -> std::io::Result<(bool, Peeked<R>)> {
    let mut head = vec![0; MAGIC.len()];
    let mut got = 0;
    // A pipe may deliver the magic in pieces; read until it is all here.
    while got < head.len() {
        match input.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    head.truncate(got);
    let is_y4m = head == MAGIC;
    Ok((is_y4m, std::io::Cursor::new(head).chain(input)))
}

fn clamp8(v: i32) -> u8 {
    v.clamp(0, 255) as u8
}

/// One RGB pixel to limited-range BT.601 Y, Cb, Cr (8-bit fixed point).
fn rgb_to_yuv(r: u8, g: u8, b: u8) -> (u8, u8, u8) {
    let (r, g, b) = (i32::from(r), i32::from(g), i32::from(b));
    let y = ((66 * r + 129 * g + 25 * b + 128) >> 8) + 16;
    let u = ((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128;
    let v = ((112 * r - 94 * g - 18 * b + 128) >> 8) + 128;
    (clamp8(y), clamp8(u), clamp8(v))
}

fn yuv_to_rgb(y: u8, u: u8, v: u8) -> [u8; 3] {
    let c = i32::from(y) - 16;
    let d = i32::from(u) - 128;
    let e = i32::from(v) - 128;
    [
        clamp8((298 * c + 409 * e + 128) >> 8),
        clamp8((298 * c - 100 * d - 208 * e + 128) >> 8),
        clamp8((298 * c + 516 * d + 128) >> 8),
    ]
}

/// Writes RGB8 frames of one size as y4m 4:4:4.
pub struct Y4mWriter<W: Write> {
    enc: y4m::Encoder<W>,
    width: u32,
    height: u32,
    planes: [Vec<u8>; 3],
}

impl<W: Write> std::fmt::Debug for Y4mWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Y4mWriter({}x{})", self.width, self.height)
    }
}

impl<W: Write> Y4mWriter<W> {
    /// Write the header; `fps` is only the rate the file announces.
    pub fn new(out: W, width: u32, height: u32, fps: f64) -> Result<Y4mWriter<W>> {
        // The header holds a ratio; millihertz keeps 29.97 exact enough.
        let rate = if fps > 0.0 && fps.is_finite() {
            y4m::Ratio::new((fps * 1000.0).round().max(1.0) as usize, 1000)
        } else {
            y4m::Ratio::new(30, 1)
        };
        let enc = y4m::encode(width as usize, height as usize, rate)
            .with_colorspace(y4m::Colorspace::C444)
            .write_header(out)
            .map_err(|e| format!("cannot write the y4m header: {e}"))?;
        let n = width as usize * height as usize;
        Ok(Y4mWriter { enc, width, height, planes: [vec![0; n], vec![0; n], vec![0; n]] })
    }

    /// One frame of `width * height * 3` RGB bytes, rows top-down.
    pub fn write(&mut self, rgb: &[u8]) -> Result<()> {
        let [y, u, v] = &mut self.planes;
        for (i, px) in rgb.chunks_exact(3).enumerate().take(y.len()) {
            (y[i], u[i], v[i]) = rgb_to_yuv(px[0], px[1], px[2]);
        }
        let frame = y4m::Frame::new([y, u, v], None);
        self.enc.write_frame(&frame).map_err(|e| format!("cannot write a y4m frame: {e}").into())
    }
}

/// Reads y4m frames as RGB8.
pub struct Y4mReader<R: Read> {
    dec: y4m::Decoder<R>,
    width: u32,
    height: u32,
}

impl<R: Read> std::fmt::Debug for Y4mReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Y4mReader({}x{})", self.width, self.height)
    }
}

impl<R: Read> Y4mReader<R> {
    /// Read the header.
    pub fn new(input: R) -> Result<Y4mReader<R>> {
        let dec = y4m::decode(input).map_err(|e| format!("standard input is not a readable y4m stream: {e}"))?;
        let (width, height) = (dec.get_width(), dec.get_height());
        let (Ok(w), Ok(h)) = (u32::try_from(width), u32::try_from(height)) else {
            return Err(format!("y4m frame size {width}x{height} is too large").into());
        };
        if w == 0 || h == 0 {
            return Err(format!("y4m frame size {w}x{h}: width and height must be at least 1").into());
        }
        Ok(Y4mReader { dec, width: w, height: h })
    }

    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// Frames per second the header announces.
    pub fn fps(&self) -> f64 {
        let r = self.dec.get_framerate();
        if r.den == 0 {
            0.0
        } else {
            r.num as f64 / r.den as f64
        }
    }

    /// The next frame into `rgb`; false at the end of input. `index` is the
    /// 1-based frame number for messages.
    pub fn read(&mut self, rgb: &mut Vec<u8>, index: u64) -> Result<bool> {
        use y4m::Colorspace as C;
        let cs = self.dec.get_colorspace();
        let bytes = cs.get_bytes_per_sample();
        let shift = cs.get_bit_depth().saturating_sub(8);
        let (w, h) = (self.width as usize, self.height as usize);
        let frame = match self.dec.read_frame() {
            Ok(f) => f,
            Err(y4m::Error::EOF) => return Ok(false),
            Err(e) => return Err(format!("y4m frame {index} on standard input: {e}").into()),
        };
        // Chroma subsampling, as shifts of x and y.
        let (sx, sy, mono) = match cs {
            C::Cmono | C::Cmono12 => (0, 0, true),
            C::C420 | C::C420p10 | C::C420p12 | C::C420jpeg | C::C420paldv | C::C420mpeg2 => (1, 1, false),
            C::C422 | C::C422p10 | C::C422p12 => (1, 0, false),
            _ => (0, 0, false),
        };
        let cw = w.div_ceil(1 << sx);
        let sample = |plane: &[u8], i: usize| -> u8 {
            if bytes == 1 {
                plane.get(i).copied().unwrap_or(128)
            } else {
                let lo = plane.get(2 * i).copied().unwrap_or(0);
                let hi = plane.get(2 * i + 1).copied().unwrap_or(0);
                (u16::from_le_bytes([lo, hi]) >> shift).min(255) as u8
            }
        };
        let (yp, up, vp) = (frame.get_y_plane(), frame.get_u_plane(), frame.get_v_plane());
        rgb.clear();
        rgb.reserve(w * h * 3);
        for row in 0..h {
            for col in 0..w {
                let y = sample(yp, row * w + col);
                let (u, v) = if mono {
                    (128, 128)
                } else {
                    let ci = (row >> sy) * cw + (col >> sx);
                    (sample(up, ci), sample(vp, ci))
                };
                rgb.extend_from_slice(&yuv_to_rgb(y, u, v));
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn rgb_survives_a_round_trip_within_rounding() {
        let mut rgb = Vec::new();
        for i in 0..4096u32 {
            rgb.extend_from_slice(&[(i * 37 % 256) as u8, (i * 101 % 256) as u8, (i * 7 % 256) as u8]);
        }
        let mut out = Vec::new();
        let mut w = Y4mWriter::new(&mut out, 64, 64, 25.0).unwrap();
        w.write(&rgb).unwrap();
        w.write(&rgb).unwrap();
        drop(w);
        assert!(out.starts_with(MAGIC));
        let mut r = Y4mReader::new(&out[..]).unwrap();
        assert_eq!(r.size(), (64, 64));
        assert!((r.fps() - 25.0).abs() < 1e-9);
        let mut back = Vec::new();
        for n in 1..=2 {
            assert!(r.read(&mut back, n).unwrap());
            let worst = rgb.iter().zip(&back).map(|(a, b)| a.abs_diff(*b)).max().unwrap();
            // Limited range quantises 256 levels into 220 (luma) and 225 (chroma).
            assert!(worst <= 4, "worst channel error {worst}");
        }
        assert!(!r.read(&mut back, 3).unwrap());
    }

    #[test]
    fn sniff_tells_y4m_from_raw_and_keeps_every_byte() {
        let (yes, mut rest) = sniff(&b"YUV4MPEG2 W2 H2 F1:1\n"[..]).unwrap();
        assert!(yes);
        let mut all = Vec::new();
        rest.read_to_end(&mut all).unwrap();
        assert_eq!(all, b"YUV4MPEG2 W2 H2 F1:1\n");
        assert!(!sniff(&[0u8; 12][..]).unwrap().0);
        assert!(!sniff(&[][..]).unwrap().0);
    }
}
