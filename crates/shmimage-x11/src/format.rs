//! The stream's RGB (3 bytes a pixel, rows packed) against an X visual's
//! ZPixmap pixels (bits per pixel, channel masks, byte order and scanline pad
//! all from the connection setup). Pure: tested without a display.

use x11rb::protocol::xproto::{ImageOrder, Setup, VisualClass, Visualid};

use crate::error::{Error, Result};

/// How a ZPixmap image of one depth and visual lays out its pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PixelFormat {
    /// Significant bits of a pixel (the drawable's depth).
    pub depth: u8,
    /// Bits a pixel occupies in memory: 16, 24 or 32.
    pub bits_per_pixel: u8,
    /// Rows are padded to a multiple of this many bits.
    pub scanline_pad: u8,
    /// Pixel values are stored least significant byte first.
    pub lsb_first: bool,
    /// Mask of red in a pixel value.
    pub red_mask: u32,
    /// Mask of green.
    pub green_mask: u32,
    /// Mask of blue.
    pub blue_mask: u32,
}

/// One channel's position and width inside a pixel value.
#[derive(Debug, Clone, Copy)]
struct Channel {
    shift: u32,
    bits: u32,
}

impl Channel {
    fn of(mask: u32) -> Channel {
        if mask == 0 {
            return Channel { shift: 0, bits: 0 };
        }
        Channel { shift: mask.trailing_zeros(), bits: (mask >> mask.trailing_zeros()).trailing_ones() }
    }

    /// Place an 8-bit value into this channel.
    fn put(self, c: u8) -> u32 {
        let c = u32::from(c);
        let v =
            if self.bits <= 8 { c >> (8 - self.bits) } else { c << (self.bits - 8) | c >> (16 - self.bits.min(16)) };
        v << self.shift
    }

    /// Take this channel out of a pixel as 8 bits, stretching narrow channels
    /// so full scale stays full scale (5-bit 31 -> 255).
    fn get(self, pixel: u32) -> u8 {
        if self.bits == 0 {
            return 0;
        }
        let v = (pixel >> self.shift) & ((1u64 << self.bits) - 1) as u32;
        if self.bits >= 8 {
            (v >> (self.bits - 8)) as u8
        } else {
            let mut out = 0u32;
            let mut have = 0;
            while have < 8 {
                out = out << self.bits | v;
                have += self.bits;
            }
            (out >> (have - 8)) as u8
        }
    }
}

impl PixelFormat {
    /// The format of `depth`/`visual` on this server, or why it cannot be
    /// converted (only TrueColor visuals at 16, 24 or 32 bits per pixel).
    pub fn for_visual(setup: &Setup, depth: u8, visual: Visualid) -> Result<PixelFormat> {
        let vt = setup
            .roots
            .iter()
            .flat_map(|s| s.allowed_depths.iter())
            .filter(|d| d.depth == depth)
            .flat_map(|d| d.visuals.iter())
            .find(|v| v.visual_id == visual)
            .ok_or_else(|| Error::Unsupported(format!("visual {visual:#x} of depth {depth} is not in the setup")))?;
        if vt.class != VisualClass::TRUE_COLOR {
            return Err(Error::Unsupported(format!(
                "visual {visual:#x} is {:?}; only TrueColor is supported",
                vt.class
            )));
        }
        let pf = setup
            .pixmap_formats
            .iter()
            .find(|f| f.depth == depth)
            .ok_or_else(|| Error::Unsupported(format!("no pixmap format for depth {depth}")))?;
        let f = PixelFormat {
            depth,
            bits_per_pixel: pf.bits_per_pixel,
            scanline_pad: pf.scanline_pad,
            lsb_first: setup.image_byte_order == ImageOrder::LSB_FIRST,
            red_mask: vt.red_mask,
            green_mask: vt.green_mask,
            blue_mask: vt.blue_mask,
        };
        f.check()?;
        Ok(f)
    }

    /// Reject layouts the converters cannot handle, so they never index wrong.
    pub fn check(&self) -> Result<()> {
        if !matches!(self.bits_per_pixel, 16 | 24 | 32) {
            return Err(Error::Unsupported(format!(
                "{} bits per pixel (16, 24 or 32 are supported)",
                self.bits_per_pixel
            )));
        }
        if !matches!(self.scanline_pad, 8 | 16 | 32) {
            return Err(Error::Unsupported(format!("scanline pad {}", self.scanline_pad)));
        }
        let all = self.red_mask | self.green_mask | self.blue_mask;
        let fits = u64::from(all) < 1u64 << self.bits_per_pixel;
        for m in [self.red_mask, self.green_mask, self.blue_mask] {
            let c = Channel::of(m);
            let ok = m != 0 && c.bits <= 16 && u64::from(m >> c.shift) == (1u64 << c.bits) - 1;
            if !ok || !fits {
                return Err(Error::Unsupported(format!(
                    "channel masks {:#x}/{:#x}/{:#x}",
                    self.red_mask, self.green_mask, self.blue_mask
                )));
            }
        }
        Ok(())
    }

    /// Bytes a pixel occupies.
    pub fn bytes_per_pixel(&self) -> usize {
        usize::from(self.bits_per_pixel / 8)
    }

    /// Bytes of one padded row of `width` pixels.
    pub fn stride(&self, width: u32) -> Option<usize> {
        let bits = u64::from(width).checked_mul(u64::from(self.bits_per_pixel))?;
        let pad = u64::from(self.scanline_pad);
        usize::try_from(bits.div_ceil(pad) * pad / 8).ok()
    }

    /// Bytes of a `width` x `height` image.
    pub fn image_len(&self, width: u32, height: u32) -> Option<usize> {
        self.stride(width)?.checked_mul(usize::try_from(height).ok()?)
    }

    /// True for the common 32-bit little-endian BGRX layout, which has a
    /// fast converter.
    pub fn is_bgrx(&self) -> bool {
        self.bits_per_pixel == 32
            && self.lsb_first
            && (self.red_mask, self.green_mask, self.blue_mask) == (0xff_0000, 0xff00, 0xff)
    }

    /// A short human description, e.g. "depth 24, 32 bpp, BGRX".
    pub fn describe(&self) -> String {
        let order = if self.is_bgrx() {
            "BGRX".to_string()
        } else {
            format!(
                "masks r {:#x} g {:#x} b {:#x}, {}",
                self.red_mask,
                self.green_mask,
                self.blue_mask,
                if self.lsb_first { "LSB first" } else { "MSB first" }
            )
        };
        format!("depth {}, {} bpp, {order}", self.depth, self.bits_per_pixel)
    }

    fn check_sizes(&self, rgb_len: usize, img_len: usize, width: u32, height: u32) -> Result<usize> {
        let stride = self.stride(width).ok_or_else(|| Error::BadSize(format!("width {width}")))?;
        let need_img = self.image_len(width, height).ok_or_else(|| Error::BadSize(format!("{width}x{height}")))?;
        let need_rgb = (width as usize).checked_mul(height as usize).and_then(|p| p.checked_mul(3));
        match need_rgb {
            Some(n) if n <= rgb_len && need_img <= img_len => Ok(stride),
            _ => Err(Error::BadSize(format!(
                "{width}x{height}: rgb buffer {rgb_len} bytes, image buffer {img_len} bytes ({need_img} needed)"
            ))),
        }
    }

    /// Convert `width` x `height` RGB pixels into this format in `image`
    /// (rows `stride(width)` apart; padding bytes are left as they are).
    pub fn rgb_to_image(&self, rgb: &[u8], width: u32, height: u32, image: &mut [u8]) -> Result<()> {
        let stride = self.check_sizes(rgb.len(), image.len(), width, height)?;
        let w = width as usize;
        let rows = rgb.chunks_exact(w * 3).zip(image.chunks_mut(stride)).take(height as usize);
        if self.is_bgrx() {
            for (src, dst) in rows {
                for (s, d) in src.chunks_exact(3).zip(dst[..w * 4].chunks_exact_mut(4)) {
                    d.copy_from_slice(&[s[2], s[1], s[0], 0]);
                }
            }
            return Ok(());
        }
        let (r, g, b) = (Channel::of(self.red_mask), Channel::of(self.green_mask), Channel::of(self.blue_mask));
        let bpp = self.bytes_per_pixel();
        for (src, dst) in rows {
            for (s, d) in src.chunks_exact(3).zip(dst[..w * bpp].chunks_exact_mut(bpp)) {
                let p = r.put(s[0]) | g.put(s[1]) | b.put(s[2]);
                let bytes = if self.lsb_first { p.to_le_bytes() } else { p.to_be_bytes() };
                if self.lsb_first {
                    d.copy_from_slice(&bytes[..bpp]);
                } else {
                    d.copy_from_slice(&bytes[4 - bpp..]);
                }
            }
        }
        Ok(())
    }

    /// Convert a `width` x `height` image in this format (rows `stride(width)`
    /// apart) into packed RGB in `rgb`.
    pub fn image_to_rgb(&self, image: &[u8], width: u32, height: u32, rgb: &mut [u8]) -> Result<()> {
        let stride = self.check_sizes(rgb.len(), image.len(), width, height)?;
        let w = width as usize;
        let rows = image.chunks(stride).zip(rgb.chunks_exact_mut(w * 3)).take(height as usize);
        if self.is_bgrx() {
            for (src, dst) in rows {
                for (s, d) in src[..w * 4].chunks_exact(4).zip(dst.chunks_exact_mut(3)) {
                    d.copy_from_slice(&[s[2], s[1], s[0]]);
                }
            }
            return Ok(());
        }
        let (r, g, b) = (Channel::of(self.red_mask), Channel::of(self.green_mask), Channel::of(self.blue_mask));
        let bpp = self.bytes_per_pixel();
        for (src, dst) in rows {
            for (s, d) in src[..w * bpp].chunks_exact(bpp).zip(dst.chunks_exact_mut(3)) {
                let mut bytes = [0u8; 4];
                let p = if self.lsb_first {
                    bytes[..bpp].copy_from_slice(s);
                    u32::from_le_bytes(bytes)
                } else {
                    bytes[4 - bpp..].copy_from_slice(s);
                    u32::from_be_bytes(bytes)
                };
                d.copy_from_slice(&[r.get(p), g.get(p), b.get(p)]);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test's own setup failing is a test failure
mod tests {
    use super::*;

    fn fmt(bpp: u8, lsb: bool, masks: (u32, u32, u32)) -> PixelFormat {
        let depth = (masks.0 | masks.1 | masks.2).count_ones() as u8;
        PixelFormat {
            depth,
            bits_per_pixel: bpp,
            scanline_pad: 32,
            lsb_first: lsb,
            red_mask: masks.0,
            green_mask: masks.1,
            blue_mask: masks.2,
        }
    }

    fn pattern(w: u32, h: u32) -> Vec<u8> {
        (0..w * h * 3).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect()
    }

    #[test]
    fn bgrx_layout_and_round_trip() {
        let f = fmt(32, true, (0xff0000, 0xff00, 0xff));
        f.check().unwrap();
        let rgb = [1, 2, 3, 4, 5, 6];
        let mut img = vec![9; 8];
        f.rgb_to_image(&rgb, 2, 1, &mut img).unwrap();
        assert_eq!(img, [3, 2, 1, 0, 6, 5, 4, 0]);
        let (w, h) = (7, 5);
        let rgb = pattern(w, h);
        let mut img = vec![0; f.image_len(w, h).unwrap()];
        f.rgb_to_image(&rgb, w, h, &mut img).unwrap();
        let mut back = vec![0; rgb.len()];
        f.image_to_rgb(&img, w, h, &mut back).unwrap();
        assert_eq!(back, rgb);
    }

    #[test]
    fn every_8bit_layout_round_trips_exactly() {
        let (w, h) = (5, 3);
        let rgb = pattern(w, h);
        for (bpp, masks) in
            [(32, (0xff, 0xff00, 0xff0000)), (24, (0xff0000, 0xff00, 0xff)), (32, (0xff00, 0xff0000, 0xff000000))]
        {
            for lsb in [true, false] {
                let f = fmt(bpp, lsb, masks);
                f.check().unwrap();
                let mut img = vec![0; f.image_len(w, h).unwrap()];
                f.rgb_to_image(&rgb, w, h, &mut img).unwrap();
                let mut back = vec![0; rgb.len()];
                f.image_to_rgb(&img, w, h, &mut back).unwrap();
                assert_eq!(back, rgb, "{f:?}");
            }
        }
    }

    #[test]
    fn msb_first_32bit_is_xrgb() {
        let f = fmt(32, false, (0xff0000, 0xff00, 0xff));
        let mut img = vec![0; 4];
        f.rgb_to_image(&[1, 2, 3], 1, 1, &mut img).unwrap();
        assert_eq!(img, [0, 1, 2, 3]);
    }

    #[test]
    fn rgb565_keeps_full_scale_and_pads_rows() {
        let f = fmt(16, true, (0xf800, 0x07e0, 0x001f));
        assert_eq!(f.stride(3), Some(8), "3 pixels of 16 bits padded to 32-bit units");
        let mut img = vec![0; f.image_len(3, 1).unwrap()];
        f.rgb_to_image(&[255, 255, 255, 0, 0, 0, 255, 0, 0], 3, 1, &mut img).unwrap();
        assert_eq!(&img[..6], &[0xff, 0xff, 0, 0, 0x00, 0xf8]);
        let mut back = vec![0; 9];
        f.image_to_rgb(&img, 3, 1, &mut back).unwrap();
        assert_eq!(back, [255, 255, 255, 0, 0, 0, 255, 0, 0]);
    }

    #[test]
    fn short_buffers_are_errors_not_panics() {
        let f = fmt(32, true, (0xff0000, 0xff00, 0xff));
        let mut img = vec![0; 15];
        assert!(f.rgb_to_image(&[0; 12], 2, 2, &mut img).is_err());
        let mut img = vec![0; 16];
        assert!(f.rgb_to_image(&[0; 11], 2, 2, &mut img).is_err());
        assert!(f.image_to_rgb(&img, 2, 2, &mut [0; 11]).is_err());
        assert!(f.image_to_rgb(&img, u32::MAX, u32::MAX, &mut [0; 12]).is_err());
    }

    #[test]
    fn odd_layouts_are_refused() {
        assert!(fmt(8, true, (0xe0, 0x1c, 0x03)).check().is_err());
        assert!(fmt(32, true, (0xf0f0, 0xff00, 0xff)).check().is_err());
        assert!(fmt(16, true, (0xff0000, 0xff00, 0xff)).check().is_err());
    }
}
