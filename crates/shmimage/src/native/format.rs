//! The one table of pixel formats: names, GStreamer `video/x-raw` names,
//! NumPy dtypes and shapes, and the geometry of each plane. Pure, no unsafe.

/// A pixel format of the native stream. The discriminant is the value stored
/// in a frame descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
#[non_exhaustive]
pub enum PixelFormat {
    /// Red, green, blue; 3 bytes a pixel (protocol 1.0's only format).
    Rgb8 = 1,
    /// Blue, green, red; 3 bytes a pixel.
    Bgr8 = 2,
    /// Red, green, blue, alpha; 4 bytes a pixel.
    Rgba8 = 3,
    /// Blue, green, red, alpha; 4 bytes a pixel.
    Bgra8 = 4,
    /// Red, green, blue, one unused byte.
    Rgbx8 = 5,
    /// Blue, green, red, one unused byte (MIT-SHM's layout on little-endian X servers).
    Bgrx8 = 6,
    /// One byte of grey.
    Gray8 = 7,
    /// 16-bit grey, little-endian.
    Gray16Le = 8,
    /// 32-bit IEEE float grey (depth maps), little-endian.
    Gray32F = 9,
    /// Planar YUV 4:2:0: Y, then U and V at half width and height.
    I420 = 10,
    /// Semi-planar YUV 4:2:0: Y, then interleaved UV at half width and height.
    Nv12 = 11,
}

/// One row of the table.
struct Row {
    format: PixelFormat,
    name: &'static str,
    gst: Option<&'static str>,
    dtype: &'static str,
    /// Bytes of one sample (one channel value).
    sample: u32,
    /// Channels of plane 0 (for planar formats: the luma plane, 1).
    channels: u32,
    planes: u32,
}

const fn row(
    format: PixelFormat,
    name: &'static str,
    gst: Option<&'static str>,
    dtype: &'static str,
    sample: u32,
    channels: u32,
    planes: u32,
) -> Row {
    Row { format, name, gst, dtype, sample, channels, planes }
}

/// The table. GRAY32F has no GStreamer `video/x-raw` name: GStreamer defines
/// no floating-point grey format.
const TABLE: [Row; 11] = [
    row(PixelFormat::Rgb8, "RGB8", Some("RGB"), "|u1", 1, 3, 1),
    row(PixelFormat::Bgr8, "BGR8", Some("BGR"), "|u1", 1, 3, 1),
    row(PixelFormat::Rgba8, "RGBA8", Some("RGBA"), "|u1", 1, 4, 1),
    row(PixelFormat::Bgra8, "BGRA8", Some("BGRA"), "|u1", 1, 4, 1),
    row(PixelFormat::Rgbx8, "RGBX8", Some("RGBx"), "|u1", 1, 4, 1),
    row(PixelFormat::Bgrx8, "BGRX8", Some("BGRx"), "|u1", 1, 4, 1),
    row(PixelFormat::Gray8, "GRAY8", Some("GRAY8"), "|u1", 1, 1, 1),
    row(PixelFormat::Gray16Le, "GRAY16_LE", Some("GRAY16_LE"), "<u2", 2, 1, 1),
    row(PixelFormat::Gray32F, "GRAY32F", None, "<f4", 4, 1, 1),
    row(PixelFormat::I420, "I420", Some("I420"), "|u1", 1, 1, 3),
    row(PixelFormat::Nv12, "NV12", Some("NV12"), "|u1", 1, 1, 2),
];

/// The geometry of one plane of a `width` x `height` frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlaneShape {
    /// Pixels (samples across) per row of this plane.
    pub width: u32,
    /// Rows of this plane.
    pub rows: u32,
    /// Channels per pixel in this plane.
    pub channels: u32,
    /// Bytes of one channel value.
    pub bytes_per_sample: u32,
    /// Bytes of one row without padding.
    pub row_bytes: u64,
}

impl PixelFormat {
    /// Every format, in table order.
    pub const ALL: [PixelFormat; 11] = [
        PixelFormat::Rgb8,
        PixelFormat::Bgr8,
        PixelFormat::Rgba8,
        PixelFormat::Bgra8,
        PixelFormat::Rgbx8,
        PixelFormat::Bgrx8,
        PixelFormat::Gray8,
        PixelFormat::Gray16Le,
        PixelFormat::Gray32F,
        PixelFormat::I420,
        PixelFormat::Nv12,
    ];

    fn row(self) -> &'static Row {
        // The table is in discriminant order, starting at 1.
        &TABLE[self as usize - 1]
    }

    /// The format stored as `code` in a descriptor; any other value is `None`.
    pub fn from_code(code: u32) -> Option<PixelFormat> {
        TABLE.iter().find(|r| r.format as u32 == code).map(|r| r.format)
    }

    /// The value stored in a descriptor.
    pub fn code(self) -> u32 {
        self as u32
    }

    /// The name used by this project (CLI `--format`, inspect, Python), e.g. `GRAY16_LE`.
    pub fn name(self) -> &'static str {
        self.row().name
    }

    /// The format called `name`: this project's name or the GStreamer one, any case.
    pub fn from_name(name: &str) -> Option<PixelFormat> {
        TABLE
            .iter()
            .find(|r| r.name.eq_ignore_ascii_case(name) || r.gst.is_some_and(|g| g.eq_ignore_ascii_case(name)))
            .map(|r| r.format)
    }

    /// The GStreamer `video/x-raw` `format` string; `None` for GRAY32F.
    pub fn gst_name(self) -> Option<&'static str> {
        self.row().gst
    }

    /// The format with this exact GStreamer `video/x-raw` name.
    pub fn from_gst_name(name: &str) -> Option<PixelFormat> {
        TABLE.iter().find(|r| r.gst == Some(name)).map(|r| r.format)
    }

    /// The NumPy dtype string of one sample (`|u1`, `<u2`, `<f4`).
    pub fn numpy_dtype(self) -> &'static str {
        self.row().dtype
    }

    /// Bytes of one channel value.
    pub fn bytes_per_sample(self) -> u32 {
        self.row().sample
    }

    /// Channels of a pixel of plane 0.
    pub fn channels(self) -> u32 {
        self.row().channels
    }

    /// Bytes of one pixel for packed (one-plane) formats; `None` for planar ones.
    pub fn bytes_per_pixel(self) -> Option<u32> {
        let r = self.row();
        (r.planes == 1).then_some(r.sample * r.channels)
    }

    /// Number of planes (1 for packed formats).
    pub fn planes(self) -> u32 {
        self.row().planes
    }

    /// True for formats with more than one plane.
    pub fn is_planar(self) -> bool {
        self.planes() > 1
    }

    /// The geometry of `plane` of a `width` x `height` frame; `None` when the
    /// plane does not exist or a size is zero.
    pub fn plane_shape(self, plane: usize, width: u32, height: u32) -> Option<PlaneShape> {
        if width == 0 || height == 0 || plane >= self.planes() as usize {
            return None;
        }
        let half = |v: u32| v / 2 + v % 2;
        let sample = self.bytes_per_sample();
        let (w, rows, channels) = match (self, plane) {
            (_, 0) => (width, height, self.channels()),
            (PixelFormat::I420, _) => (half(width), half(height), 1),
            (PixelFormat::Nv12, _) => (half(width), half(height), 2),
            _ => return None,
        };
        let row_bytes = u64::from(w) * u64::from(channels) * u64::from(sample);
        Some(PlaneShape { width: w, rows, channels, bytes_per_sample: sample, row_bytes })
    }

    /// The NumPy shape of `plane`: `(rows, width, channels)`, or `(rows, width)`
    /// for one channel.
    pub fn numpy_shape(self, plane: usize, width: u32, height: u32) -> Option<Vec<usize>> {
        let s = self.plane_shape(plane, width, height)?;
        let mut v = vec![s.rows as usize, s.width as usize];
        if s.channels > 1 {
            v.push(s.channels as usize);
        }
        Some(v)
    }
}

impl std::fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for PixelFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        PixelFormat::from_name(s).ok_or_else(|| {
            let names: Vec<_> = PixelFormat::ALL.iter().map(|f| f.name()).collect();
            format!("unknown pixel format {s:?} (known: {})", names.join(", "))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_in_code_order_and_names_round_trip() {
        for (i, f) in PixelFormat::ALL.iter().enumerate() {
            assert_eq!(f.code() as usize, i + 1);
            assert_eq!(PixelFormat::from_code(f.code()), Some(*f));
            assert_eq!(PixelFormat::from_name(f.name()), Some(*f));
            assert_eq!(f.name().parse::<PixelFormat>(), Ok(*f));
            if let Some(g) = f.gst_name() {
                assert_eq!(PixelFormat::from_gst_name(g), Some(*f));
            }
        }
        assert_eq!(PixelFormat::from_code(0), None);
        assert_eq!(PixelFormat::from_code(12), None);
        assert_eq!(PixelFormat::from_name("bgrx"), Some(PixelFormat::Bgrx8));
        assert!("nope".parse::<PixelFormat>().is_err());
    }

    #[test]
    fn planes_have_the_expected_geometry() {
        let y = PixelFormat::I420.plane_shape(0, 5, 3).unwrap();
        let u = PixelFormat::I420.plane_shape(1, 5, 3).unwrap();
        assert_eq!((y.width, y.rows, y.row_bytes), (5, 3, 5));
        assert_eq!((u.width, u.rows, u.row_bytes), (3, 2, 3));
        let uv = PixelFormat::Nv12.plane_shape(1, 5, 3).unwrap();
        assert_eq!((uv.width, uv.rows, uv.row_bytes), (3, 2, 6));
        assert_eq!(PixelFormat::Gray16Le.plane_shape(0, 10, 1).unwrap().row_bytes, 20);
        assert_eq!(PixelFormat::Gray32F.numpy_shape(0, 4, 2), Some(vec![2, 4]));
        assert_eq!(PixelFormat::Bgrx8.numpy_shape(0, 4, 2), Some(vec![2, 4, 4]));
        assert_eq!(PixelFormat::Nv12.numpy_shape(1, 4, 2), Some(vec![1, 2, 2]));
        assert_eq!(PixelFormat::Rgb8.plane_shape(1, 4, 2), None);
        assert_eq!(PixelFormat::Rgb8.plane_shape(0, 0, 2), None);
    }
}
