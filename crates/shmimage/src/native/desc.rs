//! Frame descriptors: format, size and where each plane lies in a slot, and
//! the one validation every descriptor passes before its bytes are touched
//! (whether the writer built it or it was read from a hostile file). Pure.

use super::format::PixelFormat;

/// Rows are padded to this many bytes by default (cache lines, SIMD loads,
/// GPU registration and GStreamer's own alignment all like 64).
pub const ROW_ALIGN: u32 = 64;
/// The most planes a format has (I420).
pub const MAX_PLANES: usize = 3;
/// The largest frame side accepted, in pixels.
pub const MAX_SIDE: u32 = 1 << 16;

/// Frame flags stored in a descriptor.
pub mod flags {
    /// Rows are stored bottom-up (the first row in memory is the image's last).
    pub const BOTTOM_UP: u32 = 1;
    /// Bits left to applications; shmimage never sets or interprets them.
    pub const USER_MASK: u32 = 0xffff_0000;
}

/// Where one plane lies inside a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Plane {
    /// Byte offset of the plane's first row from the start of the slot.
    pub offset: u64,
    /// Bytes from one row to the next (>= `row_bytes`).
    pub stride: u32,
    /// Bytes of pixels in one row (without padding).
    pub row_bytes: u32,
    /// Rows of the plane.
    pub rows: u32,
}

impl Plane {
    /// The byte just past the plane's last pixel (the last row carries no
    /// padding, so a tightly packed frame needs no trailing bytes).
    pub fn end(&self) -> u64 {
        if self.rows == 0 {
            return self.offset;
        }
        self.offset + u64::from(self.stride) * u64::from(self.rows - 1) + u64::from(self.row_bytes)
    }
}

/// A frame's format, size and plane layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameDesc {
    format: PixelFormat,
    width: u32,
    height: u32,
    planes: [Plane; MAX_PLANES],
}

/// Why a descriptor was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Invalid {
    /// The format code is not in the table.
    UnknownFormat(u32),
    /// Width or height is zero or above [`MAX_SIDE`].
    BadSize {
        /// Pixels per row.
        width: u32,
        /// Rows.
        height: u32,
    },
    /// The plane count does not match the format.
    PlaneCount {
        /// What the descriptor says.
        found: u32,
        /// What the format has.
        expected: u32,
    },
    /// A plane's rows, row bytes or stride do not match the format and size.
    PlaneGeometry(usize),
    /// Planes overlap, or come out of order.
    PlanesOverlap(usize),
    /// A plane extends past the slot's capacity.
    PastSlot {
        /// Bytes the frame needs.
        needed: u64,
        /// Bytes the slot holds.
        capacity: u64,
    },
    /// A stride is not a multiple of the sample size (numpy views need it).
    Misaligned(usize),
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Invalid::UnknownFormat(c) => write!(f, "unknown pixel format code {c}"),
            Invalid::BadSize { width, height } => {
                write!(f, "frame size {width}x{height}: each side must be 1..={MAX_SIDE}")
            }
            Invalid::PlaneCount { found, expected } => write!(f, "{found} planes where the format has {expected}"),
            Invalid::PlaneGeometry(i) => write!(f, "plane {i}: rows, row bytes or stride do not fit the format"),
            Invalid::PlanesOverlap(i) => write!(f, "plane {i} overlaps the plane before it"),
            Invalid::PastSlot { needed, capacity } => {
                write!(f, "the frame needs {needed} bytes but a slot holds {capacity}")
            }
            Invalid::Misaligned(i) => write!(f, "plane {i}: offset or stride is not a multiple of the sample size"),
        }
    }
}

impl std::error::Error for Invalid {}

fn align_up(v: u64, align: u64) -> Option<u64> {
    let a = align.max(1);
    v.checked_add(a - 1).map(|x| x / a * a)
}

impl FrameDesc {
    /// A descriptor with rows padded to [`ROW_ALIGN`] bytes and planes starting
    /// on [`ROW_ALIGN`] boundaries.
    pub fn new(format: PixelFormat, width: u32, height: u32) -> Result<FrameDesc, Invalid> {
        FrameDesc::with_align(format, width, height, ROW_ALIGN)
    }

    /// A descriptor with no row padding (stride = row bytes), planes back to back.
    pub fn packed(format: PixelFormat, width: u32, height: u32) -> Result<FrameDesc, Invalid> {
        FrameDesc::with_align(format, width, height, 1)
    }

    /// Rows padded to a multiple of `align` bytes (1 = none), planes starting on
    /// `align` boundaries. `align` must be a power of two up to 4096.
    pub fn with_align(format: PixelFormat, width: u32, height: u32, align: u32) -> Result<FrameDesc, Invalid> {
        if !align.is_power_of_two() || align > 4096 {
            return Err(Invalid::Misaligned(0));
        }
        let mut strides = [0u32; MAX_PLANES];
        for (i, s) in strides.iter_mut().enumerate().take(format.planes() as usize) {
            let shape = format.plane_shape(i, width, height).ok_or(Invalid::BadSize { width, height })?;
            let st = align_up(shape.row_bytes, u64::from(align)).ok_or(Invalid::BadSize { width, height })?;
            *s = u32::try_from(st).map_err(|_| Invalid::BadSize { width, height })?;
        }
        FrameDesc::layout(format, width, height, &strides[..format.planes() as usize], u64::from(align))
    }

    /// Planes with the given strides (one per plane), laid out one after
    /// another from offset 0, each starting at a multiple of its sample size.
    pub fn with_strides(format: PixelFormat, width: u32, height: u32, strides: &[u32]) -> Result<FrameDesc, Invalid> {
        FrameDesc::layout(format, width, height, strides, 1)
    }

    fn layout(format: PixelFormat, width: u32, height: u32, strides: &[u32], align: u64) -> Result<FrameDesc, Invalid> {
        check_size(width, height)?;
        let n = format.planes();
        if strides.len() != n as usize {
            return Err(Invalid::PlaneCount { found: strides.len() as u32, expected: n });
        }
        let mut planes = [Plane::default(); MAX_PLANES];
        let mut at = 0u64;
        for (i, (p, &stride)) in planes.iter_mut().zip(strides).enumerate() {
            let shape = format.plane_shape(i, width, height).ok_or(Invalid::BadSize { width, height })?;
            let offset = align_up(at, align.max(u64::from(shape.bytes_per_sample))).ok_or(Invalid::PlanesOverlap(i))?;
            let row_bytes = u32::try_from(shape.row_bytes).map_err(|_| Invalid::PlaneGeometry(i))?;
            *p = Plane { offset, stride, row_bytes, rows: shape.rows };
            at = p.end();
        }
        let d = FrameDesc { format, width, height, planes };
        d.validate(u64::MAX)?;
        Ok(d)
    }

    /// A descriptor from raw values (as read from a slot), fully validated
    /// against a slot of `capacity` bytes.
    pub fn from_parts(
        format_code: u32,
        width: u32,
        height: u32,
        plane_count: u32,
        planes: [Plane; MAX_PLANES],
        capacity: u64,
    ) -> Result<FrameDesc, Invalid> {
        let format = PixelFormat::from_code(format_code).ok_or(Invalid::UnknownFormat(format_code))?;
        if plane_count != format.planes() {
            return Err(Invalid::PlaneCount { found: plane_count, expected: format.planes() });
        }
        let mut planes = planes;
        for p in planes.iter_mut().skip(plane_count as usize) {
            *p = Plane::default();
        }
        let d = FrameDesc { format, width, height, planes };
        d.validate(capacity)?;
        Ok(d)
    }

    /// The one validation of descriptors: sizes in range, every plane shaped as
    /// the format says, strides at least a row and sample-aligned, planes in
    /// order without overlap, and the whole frame inside `capacity` bytes.
    /// All arithmetic in u64 with no overflow possible (values are u32).
    pub fn validate(&self, capacity: u64) -> Result<(), Invalid> {
        check_size(self.width, self.height)?;
        let mut prev_end = 0u64;
        for (i, p) in self.planes().iter().enumerate() {
            let shape = self.format.plane_shape(i, self.width, self.height).ok_or(Invalid::PlaneGeometry(i))?;
            if u64::from(p.row_bytes) != shape.row_bytes || p.rows != shape.rows || p.stride < p.row_bytes {
                return Err(Invalid::PlaneGeometry(i));
            }
            let sample = u64::from(shape.bytes_per_sample);
            if u64::from(p.stride) % sample != 0 || p.offset % sample != 0 {
                return Err(Invalid::Misaligned(i));
            }
            if p.offset < prev_end {
                return Err(Invalid::PlanesOverlap(i));
            }
            // offset < 2^64 from the file, stride * rows < 2^64: checked add only.
            let end = u64::from(p.stride) * u64::from(p.rows - 1) + u64::from(p.row_bytes);
            let end = p.offset.checked_add(end).ok_or(Invalid::PastSlot { needed: u64::MAX, capacity })?;
            if end > capacity {
                return Err(Invalid::PastSlot { needed: end, capacity });
            }
            prev_end = end;
        }
        Ok(())
    }

    /// The pixel format.
    pub fn format(&self) -> PixelFormat {
        self.format
    }

    /// Pixels per row.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Rows.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// The planes the format has (1, 2 or 3).
    pub fn planes(&self) -> &[Plane] {
        &self.planes[..self.format.planes() as usize]
    }

    /// Plane `i`, if the format has it.
    pub fn plane(&self, i: usize) -> Option<&Plane> {
        self.planes().get(i)
    }

    /// Bytes per row of plane 0.
    pub fn stride(&self) -> u32 {
        self.planes[0].stride
    }

    /// Bytes the frame occupies in a slot, from offset 0 to the end of its last plane.
    pub fn len(&self) -> u64 {
        self.planes().iter().map(Plane::end).max().unwrap_or(0)
    }

    /// Never true for a valid descriptor (sizes are at least 1).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when every row is exactly its pixels (no padding), planes back to back.
    pub fn is_packed(&self) -> bool {
        let mut at = 0;
        self.planes().iter().all(|p| {
            let ok = p.stride == p.row_bytes && p.offset == at;
            at = p.end();
            ok
        })
    }
}

fn check_size(width: u32, height: u32) -> Result<(), Invalid> {
    if width == 0 || height == 0 || width > MAX_SIDE || height > MAX_SIDE {
        return Err(Invalid::BadSize { width, height });
    }
    Ok(())
}

/// When a frame was captured and published, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Timestamps {
    /// The writer's capture time, CLOCK_MONOTONIC (same machine only).
    pub capture_mono_ns: u64,
    /// The writer's capture time, CLOCK_REALTIME (Unix epoch; across machines).
    pub capture_real_ns: u64,
    /// The commit time, CLOCK_MONOTONIC.
    pub publish_mono_ns: u64,
    /// The commit time, CLOCK_REALTIME.
    pub publish_real_ns: u64,
}

fn clock_ns(id: rustix::time::ClockId) -> u64 {
    let t = rustix::time::clock_gettime(id);
    (t.tv_sec.max(0) as u64).saturating_mul(1_000_000_000).saturating_add(t.tv_nsec.max(0) as u64)
}

/// CLOCK_MONOTONIC now, in nanoseconds.
pub fn now_mono_ns() -> u64 {
    clock_ns(rustix::time::ClockId::Monotonic)
}

/// CLOCK_REALTIME now, in nanoseconds since the Unix epoch.
pub fn now_real_ns() -> u64 {
    clock_ns(rustix::time::ClockId::Realtime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_rows_are_padded_to_64_and_planes_aligned() {
        let d = FrameDesc::new(PixelFormat::Rgb8, 10, 4).unwrap();
        assert_eq!(d.stride(), 64);
        assert_eq!(d.len(), 64 * 3 + 30);
        let d = FrameDesc::new(PixelFormat::I420, 100, 50).unwrap();
        let p = d.planes();
        assert_eq!((p[0].stride, p[1].stride, p[2].stride), (128, 64, 64));
        assert_eq!(p[1].offset, 128 * 49 + 128);
        assert!(p.iter().all(|p| p.offset % 64 == 0));
        d.validate(d.len()).unwrap();
        assert!(matches!(d.validate(d.len() - 1), Err(Invalid::PastSlot { .. })));
    }

    #[test]
    fn packed_descriptors_have_no_padding() {
        let d = FrameDesc::packed(PixelFormat::Rgb8, 10, 4).unwrap();
        assert_eq!((d.stride(), d.len()), (30, 120));
        assert!(d.is_packed());
        let d = FrameDesc::packed(PixelFormat::Nv12, 5, 3).unwrap();
        assert_eq!(d.len(), 15 + 12);
        assert!(!FrameDesc::new(PixelFormat::Rgb8, 10, 4).unwrap().is_packed());
    }

    #[test]
    fn bad_descriptors_are_refused() {
        assert!(FrameDesc::new(PixelFormat::Rgb8, 0, 4).is_err());
        assert!(FrameDesc::new(PixelFormat::Rgb8, MAX_SIDE + 1, 4).is_err());
        assert!(FrameDesc::with_strides(PixelFormat::Rgb8, 10, 4, &[29]).is_err());
        assert!(FrameDesc::with_strides(PixelFormat::Gray16Le, 10, 4, &[21]).is_err());
        assert!(FrameDesc::with_strides(PixelFormat::I420, 10, 4, &[10]).is_err());
        let p = Plane { offset: u64::MAX - 5, stride: 30, row_bytes: 30, rows: 4 };
        let r = FrameDesc::from_parts(1, 10, 4, 1, [p, Plane::default(), Plane::default()], u64::MAX);
        assert!(matches!(r, Err(Invalid::PastSlot { .. })));
        assert!(FrameDesc::from_parts(99, 10, 4, 1, [Plane::default(); 3], 1 << 20).is_err());
    }
}
