//! Byte layout of a stream file (protocol 1.0) and validation of the values
//! found in it. Pure arithmetic: no I/O, no unsafe.
//!
//! Everything read from a header is treated as written by an enemy: sizes are
//! computed in `u64` with checked arithmetic and compared with the buffer
//! capacity before anything is copied.

/// Bytes of one buffer header.
pub const HEADER_SIZE: u64 = 24;
/// The shortest file that is a stream (decided by the spec: 64 bytes).
pub const MIN_FILE_SIZE: u64 = 64;
/// RGB, three bytes a pixel.
pub const BYTES_PER_PIXEL: u64 = 3;
/// The file size EnSight's own Python client uses (25 MiB).
pub const ENSIGHT_FILE_SIZE: u64 = 25 * 1024 * 1024;

/// Byte offsets of the header fields, from the start of a header.
pub mod field {
    /// u32: the server's sequence number of the frame.
    pub const FRAME_NUMBER: u64 = 0;
    /// u32: pixels per row of the whole frame.
    pub const WIDTH: u64 = 4;
    /// u32: rows of the whole frame.
    pub const HEIGHT: u64 = 8;
    /// u32: first row held in this payload.
    pub const OFFSET: u64 = 12;
    /// u32: rows held in this payload.
    pub const NUM_SCANLINES: u64 = 16;
    /// u8 state + three zero pad bytes, read and written as one u32 word.
    pub const STATE: u64 = 20;
}

/// Where the two buffers lie in a file of a given length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    file_len: u64,
    capacity: u64,
}

impl Layout {
    /// The layout of a file of `file_len` bytes, or `None` below [`MIN_FILE_SIZE`].
    pub fn for_file_len(file_len: u64) -> Option<Layout> {
        if file_len < MIN_FILE_SIZE {
            return None;
        }
        // n = floor((L - 48) / 2) rounded down to a multiple of 8, so the second
        // header (at 24 + n) stays 8-aligned and its state word can be a futex.
        let capacity = ((file_len - 2 * HEADER_SIZE) / 2) & !7;
        Some(Layout { file_len, capacity })
    }

    /// The file length this layout was computed from.
    pub fn file_len(&self) -> u64 {
        self.file_len
    }

    /// n: payload bytes of one buffer.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Byte offset of buffer `index`'s header (index is 0 or 1).
    pub fn header_offset(&self, index: usize) -> u64 {
        debug_assert!(index < 2);
        index as u64 * (HEADER_SIZE + self.capacity)
    }

    /// Byte offset of buffer `index`'s pixels.
    pub fn payload_offset(&self, index: usize) -> u64 {
        self.header_offset(index) + HEADER_SIZE
    }

    /// Rows of a `width`-pixel frame that fit in one buffer, or `None` when not
    /// even one row fits (FRAME_TOO_LARGE) or width is zero.
    pub fn rows_per_band(&self, width: u32) -> Option<u64> {
        let row = row_bytes(width)?;
        let rows = self.capacity / row;
        (rows > 0).then_some(rows)
    }
}

impl Layout {
    /// Bands a `width` x `height` frame travels in (1: read in place, no
    /// copy); `None` when not even one row fits or a side is zero.
    pub fn bands_for_frame(&self, width: u32, height: u32) -> Option<u64> {
        if height == 0 {
            return None;
        }
        Some(u64::from(height).div_ceil(self.rows_per_band(width)?))
    }

    /// True when a whole `width` x `height` frame fits in one buffer (a loan
    /// can carry it; a client reads it in place).
    pub fn fits_one_band(&self, width: u32, height: u32) -> bool {
        frame_bytes(width, height).is_some_and(|b| b <= self.capacity)
    }

    /// Whole pixels of one buffer (`n / 3`), for display.
    pub fn pixels_per_buffer(&self) -> u64 {
        self.capacity / BYTES_PER_PIXEL
    }
}

impl Corrupt {
    /// Why the header was rejected, in words.
    pub fn describe(&self) -> &'static str {
        match self {
            Corrupt::ZeroSize => "width, height or num_scanlines is 0",
            Corrupt::RowsOutsideFrame => "offset + num_scanlines exceeds height",
            Corrupt::BandExceedsBuffer => "the rows do not fit in the buffer",
            Corrupt::FrameExceedsLimit => "the frame is larger than a client will assemble",
        }
    }
}

/// Bytes of one row of `width` RGB pixels; `None` for width 0.
pub fn row_bytes(width: u32) -> Option<u64> {
    (width > 0).then(|| u64::from(width) * BYTES_PER_PIXEL)
}

/// Bytes of a whole `width` x `height` RGB frame; `None` when either is zero.
pub fn frame_bytes(width: u32, height: u32) -> Option<u64> {
    if height == 0 {
        return None;
    }
    // u32 * u32 * 3 < 2^66 could overflow u64 only in theory; stay checked.
    row_bytes(width)?.checked_mul(u64::from(height))
}

/// The smallest file length that carries `width` x `height` frames one band
/// each (so the client can read them in place, with no copy).
pub fn file_len_for_frame(width: u32, height: u32) -> Option<u64> {
    let bytes = frame_bytes(width, height)?;
    let payload = bytes.checked_add(7)? & !7;
    payload.checked_mul(2)?.checked_add(2 * HEADER_SIZE).map(|l| l.max(MIN_FILE_SIZE))
}

/// The five numeric fields of a buffer header, as read from the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Header {
    /// The server's sequence number of the frame.
    pub frame_number: u32,
    /// Pixels per row of the whole frame.
    pub width: u32,
    /// Rows of the whole frame.
    pub height: u32,
    /// First row held in this payload.
    pub offset: u32,
    /// Rows held in this payload.
    pub num_scanlines: u32,
}

/// A header that passed validation: one band of a frame, with every size
/// known to fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Band {
    /// The frame's sequence number.
    pub frame_number: u32,
    /// Pixels per row of the whole frame.
    pub width: u32,
    /// Rows of the whole frame.
    pub height: u32,
    /// First row carried.
    pub first_row: u32,
    /// Rows carried (at least 1).
    pub rows: u32,
}

impl Band {
    /// True when this band is the whole frame (the common, zero-copy case).
    pub fn is_whole_frame(&self) -> bool {
        self.first_row == 0 && self.rows == self.height
    }

    /// True when this band carries the frame's last row.
    pub fn is_last(&self) -> bool {
        u64::from(self.first_row) + u64::from(self.rows) == u64::from(self.height)
    }

    /// Payload bytes this band occupies (validated to fit in the buffer).
    pub fn payload_len(&self) -> u64 {
        u64::from(self.rows) * u64::from(self.width) * BYTES_PER_PIXEL
    }

    /// Byte offset of this band's first row inside the whole frame.
    pub fn frame_offset(&self) -> u64 {
        u64::from(self.first_row) * u64::from(self.width) * BYTES_PER_PIXEL
    }

    /// Bytes of the whole frame (saturating: a hostile header can claim a
    /// frame larger than u64; validation then rejects it against the limit).
    pub fn frame_len(&self) -> u64 {
        u64::from(self.height).saturating_mul(u64::from(self.width) * BYTES_PER_PIXEL)
    }
}

/// Why a header was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Corrupt {
    /// Width, height or num_scanlines is zero.
    ZeroSize,
    /// offset + num_scanlines runs past the frame's height.
    RowsOutsideFrame,
    /// The band's pixels do not fit in one buffer.
    BandExceedsBuffer,
    /// The whole frame is larger than the client agreed to assemble.
    FrameExceedsLimit,
}

impl Header {
    /// Check every value against the buffer capacity and, for frames sent in
    /// several bands, against `max_frame_bytes` (the most the client will
    /// allocate to assemble one).
    pub fn validate(&self, capacity: u64, max_frame_bytes: u64) -> Result<Band, Corrupt> {
        if self.width == 0 || self.height == 0 || self.num_scanlines == 0 {
            return Err(Corrupt::ZeroSize);
        }
        let end = u64::from(self.offset) + u64::from(self.num_scanlines);
        if end > u64::from(self.height) {
            return Err(Corrupt::RowsOutsideFrame);
        }
        let row = u64::from(self.width) * BYTES_PER_PIXEL;
        if u64::from(self.num_scanlines).saturating_mul(row) > capacity {
            return Err(Corrupt::BandExceedsBuffer);
        }
        let band = Band {
            frame_number: self.frame_number,
            width: self.width,
            height: self.height,
            first_row: self.offset,
            rows: self.num_scanlines,
        };
        if !band.is_whole_frame() && band.frame_len() > max_frame_bytes {
            return Err(Corrupt::FrameExceedsLimit);
        }
        Ok(band)
    }
}

/// True when frame number `a` is newer than `b`, comparing with wrap-around
/// (RFC 1982 serial arithmetic: `a` is newer when it is less than 2^31 ahead).
pub fn is_newer(a: u32, b: u32) -> bool {
    let d = a.wrapping_sub(b);
    d != 0 && d < 0x8000_0000
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn offsets_follow_the_spec_table() {
        let l = Layout::for_file_len(ENSIGHT_FILE_SIZE).unwrap();
        assert_eq!(l.capacity(), (ENSIGHT_FILE_SIZE - 48) / 2);
        assert_eq!(l.header_offset(0), 0);
        assert_eq!(l.payload_offset(0), 24);
        assert_eq!(l.header_offset(1), 24 + l.capacity());
        assert_eq!(l.payload_offset(1), 48 + l.capacity());
        assert!(l.payload_offset(1) + l.capacity() <= ENSIGHT_FILE_SIZE);
    }

    #[test]
    fn capacity_is_rounded_down_to_eight() {
        assert_eq!(Layout::for_file_len(63), None);
        assert_eq!(Layout::for_file_len(64).unwrap().capacity(), 8);
        assert_eq!(Layout::for_file_len(65).unwrap().capacity(), 8);
        assert_eq!(Layout::for_file_len(79).unwrap().capacity(), 8);
        assert_eq!(Layout::for_file_len(80).unwrap().capacity(), 16);
        assert_eq!(Layout::for_file_len(100).unwrap().capacity(), 24);
    }

    #[test]
    fn a_4k_frame_needs_two_bands_in_the_ensight_file() {
        let l = Layout::for_file_len(ENSIGHT_FILE_SIZE).unwrap();
        let rows = l.rows_per_band(3840).unwrap();
        assert_eq!(rows, 1137);
        assert_eq!(2160u64.div_ceil(rows), 2);
        assert_eq!(l.bands_for_frame(3840, 2160), Some(2));
        assert_eq!(l.bands_for_frame(1920, 1080), Some(1));
        assert!(l.fits_one_band(1920, 1080) && !l.fits_one_band(3840, 2160));
        assert!(!l.fits_one_band(0, 1));
        assert_eq!(l.rows_per_band(0), None);
        let tiny = Layout::for_file_len(64).unwrap();
        assert_eq!(tiny.rows_per_band(3), None, "9 bytes do not fit in 8");
        assert_eq!(tiny.rows_per_band(2), Some(1));
    }

    #[test]
    fn file_len_for_frame_fits_one_band() {
        let len = file_len_for_frame(1920, 1080).unwrap();
        let l = Layout::for_file_len(len).unwrap();
        assert_eq!(l.rows_per_band(1920), Some(1080));
        assert_eq!(file_len_for_frame(1, 1), Some(MIN_FILE_SIZE));
        assert_eq!(file_len_for_frame(0, 5), None);
        assert_eq!(file_len_for_frame(u32::MAX, u32::MAX), None, "overflows u64");
        assert!(file_len_for_frame(u32::MAX, 1).is_some());
    }

    #[test]
    fn validation_rejects_each_bad_shape() {
        let ok = Header { frame_number: 7, width: 4, height: 4, offset: 0, num_scanlines: 4 };
        assert!(ok.validate(48, 0).unwrap().is_whole_frame());
        let zero = Header { width: 0, ..ok };
        assert_eq!(zero.validate(48, u64::MAX), Err(Corrupt::ZeroSize));
        let past = Header { offset: 3, num_scanlines: 2, ..ok };
        assert_eq!(past.validate(48, u64::MAX), Err(Corrupt::RowsOutsideFrame));
        let big = Header { offset: u32::MAX, num_scanlines: u32::MAX, height: u32::MAX, ..ok };
        assert_eq!(big.validate(48, u64::MAX), Err(Corrupt::RowsOutsideFrame));
        assert_eq!(ok.validate(47, u64::MAX), Err(Corrupt::BandExceedsBuffer));
        let band = Header { num_scanlines: 2, ..ok };
        assert_eq!(band.validate(48, 47), Err(Corrupt::FrameExceedsLimit));
        let b = band.validate(48, 48).unwrap();
        assert!(!b.is_whole_frame() && !b.is_last());
        assert_eq!((b.payload_len(), b.frame_len()), (24, 48));
    }

    #[test]
    fn frame_order_wraps_around() {
        assert!(is_newer(1, 0));
        assert!(!is_newer(0, 1));
        assert!(!is_newer(5, 5));
        assert!(is_newer(0, u32::MAX));
        assert!(is_newer(3, u32::MAX - 3));
        assert!(!is_newer(u32::MAX, 0));
    }

    proptest! {
        #[test]
        fn a_valid_band_always_fits(fields in any::<[u32; 5]>(), len in 64u64..1u64 << 34, max in any::<u64>()) {
            let h = Header { frame_number: fields[0], width: fields[1], height: fields[2], offset: fields[3], num_scanlines: fields[4] };
            let l = Layout::for_file_len(len).unwrap();
            if let Ok(b) = h.validate(l.capacity(), max) {
                prop_assert!(b.payload_len() <= l.capacity());
                prop_assert!(b.frame_offset() + b.payload_len() <= b.frame_len());
                prop_assert!(b.rows >= 1);
                prop_assert!(b.is_whole_frame() || b.frame_len() <= max);
            }
            prop_assert!(l.payload_offset(1) + l.capacity() <= len);
            prop_assert_eq!(l.header_offset(1) % 8, 0);
        }

        #[test]
        fn newer_is_antisymmetric(a in any::<u32>(), b in any::<u32>()) {
            prop_assert!(!(is_newer(a, b) && is_newer(b, a)));
        }
    }
}
