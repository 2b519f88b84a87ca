//! Formats the JPEG encoder cannot take as they are, turned into ones it can:
//! 16-bit and float gray to 8-bit gray, I420 and NV12 to RGB. The packed 8-bit
//! formats (RGB, BGR, RGBA, BGRx, gray...) go to the encoder untouched.

/// 16-bit gray, little-endian, to 8-bit (the high byte).
pub fn gray16_to_gray8(src: &[u8], stride: usize, width: usize, height: usize, out: &mut Vec<u8>) {
    out.clear();
    out.reserve(width * height);
    for row in rows(src, stride, width * 2, height) {
        out.extend(row.chunks_exact(2).map(|p| p[1]));
    }
}

/// Float gray to 8-bit, stretched so the frame's own minimum is black and
/// maximum white (float images have no fixed range); NaN shows black.
pub fn gray32f_to_gray8(src: &[u8], stride: usize, width: usize, height: usize, out: &mut Vec<u8>) {
    let value = |p: &[u8]| f32::from_le_bytes([p[0], p[1], p[2], p[3]]);
    let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
    for row in rows(src, stride, width * 4, height) {
        for v in row.chunks_exact(4).map(value).filter(|v| v.is_finite()) {
            lo = lo.min(v);
            hi = hi.max(v);
        }
    }
    let scale = if hi > lo { 255.0 / (hi - lo) } else { 0.0 };
    out.clear();
    out.reserve(width * height);
    for row in rows(src, stride, width * 4, height) {
        out.extend(row.chunks_exact(4).map(|p| {
            let v = value(p);
            if v.is_finite() {
                ((v - lo) * scale).clamp(0.0, 255.0) as u8
            } else {
                0
            }
        }));
    }
}

/// Where the chroma samples of a 4:2:0 frame are.
#[derive(Debug, Clone, Copy)]
pub enum Chroma<'a> {
    /// Separate U and V planes (I420), each with its stride.
    Planar { u: &'a [u8], u_stride: usize, v: &'a [u8], v_stride: usize },
    /// One interleaved UV plane (NV12).
    Interleaved { uv: &'a [u8], stride: usize },
}

/// 4:2:0 YUV (BT.601, limited range, as video cameras and decoders give) to
/// packed RGB.
pub fn yuv420_to_rgb(y: &[u8], y_stride: usize, chroma: Chroma<'_>, width: usize, height: usize, out: &mut Vec<u8>) {
    out.clear();
    out.resize(width * height * 3, 0);
    for (r, out_row) in out.chunks_exact_mut(width * 3).enumerate().take(height) {
        let Some(y_row) = y.get(r * y_stride..r * y_stride + width) else { break };
        for (c, px) in out_row.chunks_exact_mut(3).enumerate() {
            let (u, v) = match chroma {
                Chroma::Planar { u, u_stride, v, v_stride } => {
                    (sample(u, (r / 2) * u_stride + c / 2), sample(v, (r / 2) * v_stride + c / 2))
                }
                Chroma::Interleaved { uv, stride } => {
                    let i = (r / 2) * stride + (c / 2) * 2;
                    (sample(uv, i), sample(uv, i + 1))
                }
            };
            let yy = (i32::from(y_row[c]) - 16) * 298;
            let (d, e) = (i32::from(u) - 128, i32::from(v) - 128);
            px[0] = clamp((yy + 409 * e + 128) >> 8);
            px[1] = clamp((yy - 100 * d - 208 * e + 128) >> 8);
            px[2] = clamp((yy + 516 * d + 128) >> 8);
        }
    }
}

fn sample(plane: &[u8], i: usize) -> u8 {
    plane.get(i).copied().unwrap_or(128)
}

fn clamp(v: i32) -> u8 {
    v.clamp(0, 255) as u8
}

/// `height` rows of `row_bytes` each, `stride` apart (fewer if `src` is short).
fn rows(src: &[u8], stride: usize, row_bytes: usize, height: usize) -> impl Iterator<Item = &[u8]> {
    (0..height).map_while(move |r| src.get(r * stride..r * stride + row_bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gray16_keeps_the_high_byte_and_skips_row_padding() {
        let src = [0x00, 0x10, 0xff, 0xff, 9, 9, 0x34, 0x80, 0x00, 0x00, 9, 9];
        let mut out = Vec::new();
        gray16_to_gray8(&src, 6, 2, 2, &mut out);
        assert_eq!(out, [0x10, 0xff, 0x80, 0x00]);
    }

    #[test]
    fn float_gray_is_stretched_to_its_range() {
        let src: Vec<u8> = [-1.0f32, 0.0, 1.0, f32::NAN].iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut out = Vec::new();
        gray32f_to_gray8(&src, 16, 4, 1, &mut out);
        assert_eq!(out, [0, 127, 255, 0]);
    }

    #[test]
    fn yuv_white_black_and_red() {
        // 2x2 frames: one chroma sample each.
        let mut out = Vec::new();
        let planar = |u: &'static [u8], v: &'static [u8]| Chroma::Planar { u, u_stride: 1, v, v_stride: 1 };
        yuv420_to_rgb(&[235; 4], 2, planar(&[128], &[128]), 2, 2, &mut out);
        assert!(out.iter().all(|&b| b >= 254), "{out:?}");
        yuv420_to_rgb(&[16; 4], 2, Chroma::Interleaved { uv: &[128, 128], stride: 2 }, 2, 2, &mut out);
        assert!(out.iter().all(|&b| b <= 1), "{out:?}");
        yuv420_to_rgb(&[81; 4], 2, planar(&[90], &[240]), 2, 2, &mut out);
        assert!(out[0] > 240 && out[1] < 10 && out[2] < 10, "{out:?}");
        // A short plane reads as neutral rather than out of bounds.
        yuv420_to_rgb(&[81; 4], 2, Chroma::Interleaved { uv: &[], stride: 2 }, 2, 2, &mut out);
        assert_eq!(out.len(), 12);
    }
}
