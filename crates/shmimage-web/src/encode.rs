//! JPEG encoding (libjpeg-turbo), once per frame whatever the number of tabs.

use turbojpeg::{Compressor, Image, PixelFormat, Subsamp};

use crate::source::{Layout, Picture};

/// A reusable encoder with its quality set.
pub struct Encoder {
    compressor: Compressor,
    out: turbojpeg::OutputBuf<'static>,
    subsamp: Subsamp,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder").finish_non_exhaustive()
    }
}

impl Encoder {
    /// An encoder at `quality` (1..=100), 4:2:0 chroma like a video stream.
    pub fn new(quality: u8) -> Result<Encoder, String> {
        let mut compressor = Compressor::new().map_err(|e| format!("cannot start the JPEG encoder: {e}"))?;
        compressor.set_quality(i32::from(quality.clamp(1, 100)));
        compressor.set_subsamp(Subsamp::Sub2x2);
        let out = turbojpeg::OutputBuf::new_owned();
        Ok(Encoder { compressor, out, subsamp: Subsamp::Sub2x2 })
    }

    /// Encode `picture`; the bytes stay valid until the next call.
    pub fn encode(&mut self, picture: &Picture<'_>) -> Result<&[u8], String> {
        let format = match picture.layout {
            Layout::Rgb => PixelFormat::RGB,
            Layout::Bgr => PixelFormat::BGR,
            Layout::Rgba => PixelFormat::RGBA,
            Layout::Bgra => PixelFormat::BGRA,
            Layout::Rgbx => PixelFormat::RGBX,
            Layout::Bgrx => PixelFormat::BGRX,
            Layout::Gray => PixelFormat::GRAY,
        };
        // libjpeg-turbo makes a grayscale JPEG only from gray subsampling.
        let subsamp = if format == PixelFormat::GRAY { Subsamp::Gray } else { Subsamp::Sub2x2 };
        if subsamp != self.subsamp {
            self.compressor.set_subsamp(subsamp);
            self.subsamp = subsamp;
        }
        // The last row need only hold its pixels, not a whole pitch.
        let row = picture.width as usize * format.size();
        let need = picture
            .pitch
            .checked_mul(picture.height.saturating_sub(1) as usize)
            .and_then(|n| n.checked_add(row))
            .filter(|&n| n <= picture.pixels.len() && picture.width > 0 && picture.height > 0 && picture.pitch >= row);
        if need.is_none() {
            return Err(format!("frame {} is too short for {}x{}", picture.number, picture.width, picture.height));
        }
        let image = Image {
            pixels: picture.pixels,
            width: picture.width as usize,
            pitch: picture.pitch,
            height: picture.height as usize,
            format,
        };
        self.compressor.compress(image, &mut self.out).map_err(|e| format!("JPEG encoding failed: {e}"))?;
        Ok(&self.out)
    }
}
