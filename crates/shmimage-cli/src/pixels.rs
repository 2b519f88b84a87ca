//! Turning a frame's packed rows (any packed format the engine names) into
//! what files and pipes carry: PNG colour types, and RGB8 for y4m. The
//! formats' layouts come from the engine's table; here only the channel
//! orders are mapped to what PNG can store.

use std::borrow::Cow;

use shmimage::native::PixelFormat;

/// How a PNG stores `format`: colour type, depth and the rows converted
/// (only where PNG has no such channel order). 16-bit gray is stored as a
/// 16-bit PNG, exactly.
pub fn for_png(format: PixelFormat, packed: &[u8]) -> Result<(png::ColorType, png::BitDepth, Cow<'_, [u8]>), String> {
    use png::{BitDepth as D, ColorType as C};
    let swap3 = |step: usize| packed.chunks_exact(step).flat_map(|p| [p[2], p[1], p[0]]).collect::<Vec<u8>>();
    Ok(match format {
        PixelFormat::Rgb8 => (C::Rgb, D::Eight, Cow::Borrowed(packed)),
        PixelFormat::Rgba8 => (C::Rgba, D::Eight, Cow::Borrowed(packed)),
        PixelFormat::Gray8 => (C::Grayscale, D::Eight, Cow::Borrowed(packed)),
        // PNG samples are big-endian.
        PixelFormat::Gray16Le => {
            (C::Grayscale, D::Sixteen, Cow::Owned(packed.chunks_exact(2).flat_map(|s| [s[1], s[0]]).collect()))
        }
        PixelFormat::Bgr8 => (C::Rgb, D::Eight, Cow::Owned(swap3(3))),
        PixelFormat::Bgrx8 => (C::Rgb, D::Eight, Cow::Owned(swap3(4))),
        PixelFormat::Rgbx8 => {
            (C::Rgb, D::Eight, Cow::Owned(packed.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect()))
        }
        PixelFormat::Bgra8 => {
            (C::Rgba, D::Eight, Cow::Owned(packed.chunks_exact(4).flat_map(|p| [p[2], p[1], p[0], p[3]]).collect()))
        }
        other => return Err(format!("{other} frames have no PNG form; record them with --raw")),
    })
}

/// RGB8 of a packed frame, for y4m (16-bit gray keeps its high byte).
pub fn to_rgb8(format: PixelFormat, packed: &[u8]) -> Result<Cow<'_, [u8]>, String> {
    Ok(match format {
        PixelFormat::Rgb8 => Cow::Borrowed(packed),
        PixelFormat::Gray8 => Cow::Owned(packed.iter().flat_map(|&g| [g, g, g]).collect()),
        PixelFormat::Gray16Le => Cow::Owned(packed.chunks_exact(2).flat_map(|s| [s[1], s[1], s[1]]).collect()),
        PixelFormat::Rgba8 | PixelFormat::Rgbx8 => {
            Cow::Owned(packed.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect())
        }
        PixelFormat::Bgr8 => Cow::Owned(packed.chunks_exact(3).flat_map(|p| [p[2], p[1], p[0]]).collect()),
        PixelFormat::Bgra8 | PixelFormat::Bgrx8 => {
            Cow::Owned(packed.chunks_exact(4).flat_map(|p| [p[2], p[1], p[0]]).collect())
        }
        other => return Err(format!("{other} frames cannot be converted to RGB for y4m; use --raw")),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn channel_orders_map_to_png_and_rgb() {
        let bgrx = [1u8, 2, 3, 0, 4, 5, 6, 0];
        let (c, d, px) = for_png(PixelFormat::Bgrx8, &bgrx).unwrap();
        assert_eq!((c, d, &px[..]), (png::ColorType::Rgb, png::BitDepth::Eight, &[3u8, 2, 1, 6, 5, 4][..]));
        let (c, d, px) = for_png(PixelFormat::Gray16Le, &[0x34, 0x12]).unwrap();
        assert_eq!((c, d, &px[..]), (png::ColorType::Grayscale, png::BitDepth::Sixteen, &[0x12u8, 0x34][..]));
        assert_eq!(&to_rgb8(PixelFormat::Bgrx8, &bgrx).unwrap()[..], &[3, 2, 1, 6, 5, 4]);
        assert!(for_png(PixelFormat::I420, &[]).is_err());
    }
}
