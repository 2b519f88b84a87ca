//! Byte layout of a native stream file and validation of the values read from
//! its header. Pure arithmetic: no I/O, no unsafe.
//!
//! ```text
//! 0                      header (256 bytes)
//! 256                    reader table: READERS entries of 64 bytes
//! SLOT_DESC_OFFSET       slot descriptors: K entries of 256 bytes
//! meta_offset            metadata areas: K entries of metadata_bytes (rounded up to 64)
//! control_len            (page aligned) slot 0 pixels, then slot 1 ... each slot_len bytes (page multiple)
//! ```

/// The file's first eight bytes: "SHMIMG2\0" (no 1.0 stream starts with
/// them unless its first frame number and width spell it).
pub const MAGIC: [u8; 8] = *b"SHMIMG2\0";
/// The layout version this library writes and reads.
pub const VERSION: u32 = 1;
/// Page size the layout is aligned to (slots start on such boundaries).
pub const PAGE: u64 = 4096;
/// Bytes of the header.
pub const HEADER_BYTES: u64 = 256;
/// Reader entries in a stream (one bit each in a slot's hold word).
pub const READERS: u32 = 64;
/// Bytes of one reader entry.
pub const READER_BYTES: u64 = 64;
/// Bytes of one slot descriptor.
pub const SLOT_DESC_BYTES: u64 = 256;
/// Where the slot descriptors start.
pub const SLOT_DESC_OFFSET: u64 = HEADER_BYTES + READERS as u64 * READER_BYTES;
/// Slots a stream can have.
pub const MIN_SLOTS: u32 = 2;
/// At most this many slots (a lossless reader's pending bits are per slot; 64 keeps scans short).
pub const MAX_SLOTS: u32 = 64;
/// The most metadata bytes per slot a stream may be created with.
pub const MAX_METADATA_BYTES: u32 = 1 << 16;
/// The default metadata bytes per slot.
pub const DEFAULT_METADATA_BYTES: u32 = 4096;
/// The largest slot accepted (1 TiB; beyond that a value is surely hostile).
pub const MAX_SLOT_BYTES: u64 = 1 << 40;

/// Offsets of the header words.
pub mod header {
    /// [u8; 8] MAGIC.
    pub const MAGIC: u64 = 0;
    /// u32 layout version.
    pub const VERSION: u64 = 8;
    /// u32 header bytes (256).
    pub const HEADER_BYTES: u64 = 12;
    /// u32 K, slots.
    pub const SLOTS: u64 = 16;
    /// u32 reader entries (64).
    pub const READERS: u64 = 20;
    /// u32 metadata bytes per slot.
    pub const METADATA_BYTES: u64 = 24;
    /// u32 the layout's page size (4096).
    pub const PAGE: u64 = 28;
    /// u64 bytes of the control block (start of slot 0).
    pub const CONTROL_LEN: u64 = 32;
    /// u64 bytes of one slot (a page multiple).
    pub const SLOT_LEN: u64 = 40;
    /// u64 the file length the layout needs.
    pub const FILE_LEN: u64 = 48;
    /// u32 atomic: writer epoch, bumped by every writer that takes the stream.
    pub const EPOCH: u64 = 64;
    /// u32 atomic: the live writer's pid (informative).
    pub const WRITER_PID: u64 = 68;
    /// u32 futex: bumped by every commit; readers sleep on it.
    pub const COMMIT_WORD: u64 = 72;
    /// u32 futex: bumped when a slot may have become free; the writer sleeps on it.
    pub const FREE_WORD: u64 = 76;
    /// u64 atomic: newest committed frame, `sequence << 8 | slot`; 0 = none yet.
    pub const LATEST: u64 = 80;
    /// u64 atomic: bit i set while reader entry i is a lossless reader.
    pub const LOSSLESS_MASK: u64 = 88;
    /// u32 atomic: readers sleeping on COMMIT_WORD (the writer skips the wake syscall at 0).
    pub const READER_SLEEPERS: u64 = 96;
    /// u32 atomic: 1 while the writer sleeps on FREE_WORD.
    pub const WRITER_SLEEPERS: u64 = 100;
    /// u32 atomic: 0 no writer yet, 1 a writer is live, 2 the last writer closed cleanly.
    pub const WRITER_STATE: u64 = 104;
}

/// Offsets inside one reader entry.
pub mod reader {
    /// u32: 0 free, 1 in use (the OFD lock on its byte is the truth).
    pub const STATE: u64 = 0;
    /// u32: the reader's pid.
    pub const PID: u64 = 4;
    /// u32: 1 = lossless.
    pub const FLAGS: u64 = 8;
    /// u32: bumped at each join.
    pub const GENERATION: u64 = 12;
    /// u64: the last sequence it took.
    pub const LAST_SEQ: u64 = 16;
    /// u64: frames it missed.
    pub const MISSED: u64 = 24;
    /// u64: frames it read.
    pub const FRAMES: u64 = 32;
    /// Reader flag: lossless.
    pub const FLAG_LOSSLESS: u32 = 1;
}

/// Offsets inside one slot descriptor.
pub mod slot {
    /// u64 atomic: the sequence of the frame held; 0 empty, `BUSY` being written.
    pub const SEQ: u64 = 0;
    /// u64 atomic: bit i set while reader entry i holds the slot.
    pub const HOLDS: u64 = 8;
    /// u64 atomic: bit i set while lossless reader i has not taken this frame yet.
    pub const PENDING: u64 = 16;
    /// u32 pixel format code.
    pub const FORMAT: u64 = 24;
    /// u32 frame flags.
    pub const FLAGS: u64 = 28;
    /// u32 width.
    pub const WIDTH: u64 = 32;
    /// u32 height.
    pub const HEIGHT: u64 = 36;
    /// u32 planes.
    pub const PLANE_COUNT: u64 = 40;
    /// u32 metadata bytes used.
    pub const METADATA_LEN: u64 = 44;
    /// u64 capture time, CLOCK_MONOTONIC ns.
    pub const CAPTURE_MONO: u64 = 48;
    /// u64 capture time, CLOCK_REALTIME ns.
    pub const CAPTURE_REAL: u64 = 56;
    /// u64 publish time, CLOCK_MONOTONIC ns.
    pub const PUBLISH_MONO: u64 = 64;
    /// u64 publish time, CLOCK_REALTIME ns.
    pub const PUBLISH_REAL: u64 = 72;
    /// u32 epoch of the writer that wrote the frame.
    pub const EPOCH: u64 = 80;
    /// Planes: 3 entries of 24 bytes: u64 offset, u32 stride, u32 row bytes, u32 rows, u32 zero.
    pub const PLANES: u64 = 88;
    /// Bytes of one plane entry.
    pub const PLANE_BYTES: u64 = 24;
}

/// Where everything lies in one stream file. Built from creation parameters
/// or from a header, always through [`Layout::new`], which checks them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    slots: u32,
    metadata_bytes: u32,
    slot_len: u64,
    meta_offset: u64,
    meta_stride: u64,
    control_len: u64,
    file_len: u64,
}

/// Why a set of layout values is impossible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLayout(pub String);

fn align_up(v: u64, a: u64) -> Option<u64> {
    v.checked_add(a - 1).map(|x| x / a * a)
}

impl Layout {
    /// The layout of `slots` slots of at least `slot_bytes` pixel bytes (rounded
    /// up to pages) with `metadata_bytes` of metadata each.
    pub fn new(slots: u32, slot_bytes: u64, metadata_bytes: u32) -> Result<Layout, BadLayout> {
        if !(MIN_SLOTS..=MAX_SLOTS).contains(&slots) {
            return Err(BadLayout(format!("{slots} slots; a stream has {MIN_SLOTS}..={MAX_SLOTS}")));
        }
        if slot_bytes == 0 || slot_bytes > MAX_SLOT_BYTES {
            return Err(BadLayout(format!("slot size {slot_bytes} bytes; it must be 1..={MAX_SLOT_BYTES}")));
        }
        if metadata_bytes > MAX_METADATA_BYTES {
            return Err(BadLayout(format!("{metadata_bytes} metadata bytes per slot; at most {MAX_METADATA_BYTES}")));
        }
        let k = u64::from(slots);
        // Bounded inputs: none of this can overflow, but stay checked.
        let overflow = || BadLayout("sizes overflow".into());
        let slot_len = align_up(slot_bytes, PAGE).ok_or_else(overflow)?;
        let meta_offset = SLOT_DESC_OFFSET + k * SLOT_DESC_BYTES;
        let meta_stride = align_up(u64::from(metadata_bytes), 64).ok_or_else(overflow)?;
        let control_len = align_up(meta_offset + k * meta_stride, PAGE).ok_or_else(overflow)?;
        let file_len = slot_len.checked_mul(k).and_then(|d| d.checked_add(control_len)).ok_or_else(overflow)?;
        Ok(Layout { slots, metadata_bytes, slot_len, meta_offset, meta_stride, control_len, file_len })
    }

    /// Check the layout values a header declares against the layout they imply.
    pub fn from_header(h: &HeaderValues) -> Result<Layout, BadLayout> {
        if h.header_bytes != HEADER_BYTES as u32 || h.readers != READERS || h.page != PAGE as u32 {
            return Err(BadLayout(format!(
                "header size {}, readers {}, page {} (expected {HEADER_BYTES}, {READERS}, {PAGE})",
                h.header_bytes, h.readers, h.page
            )));
        }
        if h.slot_len % PAGE != 0 {
            return Err(BadLayout(format!("slot length {} is not a multiple of {PAGE}", h.slot_len)));
        }
        let l = Layout::new(h.slots, h.slot_len, h.metadata_bytes)?;
        if l.control_len != h.control_len || l.file_len != h.file_len {
            return Err(BadLayout(format!(
                "control block {} and file length {} do not match the layout ({} and {})",
                h.control_len, h.file_len, l.control_len, l.file_len
            )));
        }
        Ok(l)
    }

    /// The values a writer stores in the header for this layout.
    pub fn header_values(&self) -> HeaderValues {
        HeaderValues {
            version: VERSION,
            header_bytes: HEADER_BYTES as u32,
            slots: self.slots,
            readers: READERS,
            metadata_bytes: self.metadata_bytes,
            page: PAGE as u32,
            control_len: self.control_len,
            slot_len: self.slot_len,
            file_len: self.file_len,
        }
    }

    /// K.
    pub fn slots(&self) -> u32 {
        self.slots
    }

    /// Pixel bytes of one slot.
    pub fn slot_len(&self) -> u64 {
        self.slot_len
    }

    /// Metadata bytes of one slot.
    pub fn metadata_bytes(&self) -> u32 {
        self.metadata_bytes
    }

    /// Bytes of the control block; slot 0's pixels start here.
    pub fn control_len(&self) -> u64 {
        self.control_len
    }

    /// The file length the layout needs.
    pub fn file_len(&self) -> u64 {
        self.file_len
    }

    /// Offset of reader entry `i` (< READERS).
    pub fn reader_offset(&self, i: u32) -> u64 {
        HEADER_BYTES + u64::from(i.min(READERS - 1)) * READER_BYTES
    }

    /// Offset of slot `i`'s descriptor (i < slots).
    pub fn slot_desc_offset(&self, i: u32) -> u64 {
        SLOT_DESC_OFFSET + u64::from(i.min(self.slots - 1)) * SLOT_DESC_BYTES
    }

    /// Offset of slot `i`'s metadata area.
    pub fn metadata_offset(&self, i: u32) -> u64 {
        self.meta_offset + u64::from(i.min(self.slots - 1)) * self.meta_stride
    }

    /// Offset of slot `i`'s pixels (page aligned).
    pub fn slot_offset(&self, i: u32) -> u64 {
        self.control_len + u64::from(i.min(self.slots - 1)) * self.slot_len
    }
}

/// The layout fields of a header, as read from a file (untrusted) or written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HeaderValues {
    /// Layout version.
    pub version: u32,
    /// Header bytes.
    pub header_bytes: u32,
    /// K.
    pub slots: u32,
    /// Reader entries.
    pub readers: u32,
    /// Metadata bytes per slot.
    pub metadata_bytes: u32,
    /// Page size of the layout.
    pub page: u32,
    /// Control block bytes.
    pub control_len: u64,
    /// Bytes per slot.
    pub slot_len: u64,
    /// File length.
    pub file_len: u64,
}

/// Split `latest` into (sequence, slot).
pub fn split_latest(word: u64) -> (u64, u32) {
    (word >> 8, (word & 0xff) as u32)
}

/// Pack (sequence, slot) into a `latest` word.
pub fn join_latest(seq: u64, slot: u32) -> u64 {
    (seq << 8) | u64::from(slot & 0xff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_page_aligned_and_the_header_round_trips() {
        let l = Layout::new(4, 1920 * 1080 * 3, 4096).unwrap();
        assert_eq!(l.control_len() % PAGE, 0);
        for i in 0..4 {
            assert_eq!(l.slot_offset(i) % PAGE, 0);
            assert_eq!(l.slot_desc_offset(i) % 8, 0);
            assert!(l.metadata_offset(i) + 4096 <= l.control_len());
        }
        assert_eq!(l.file_len(), l.slot_offset(3) + l.slot_len());
        assert_eq!(Layout::from_header(&l.header_values()).unwrap(), l);
        let mut h = l.header_values();
        h.file_len += 1;
        assert!(Layout::from_header(&h).is_err());
        assert!(Layout::new(1, 10, 0).is_err());
        assert!(Layout::new(65, 10, 0).is_err());
        assert!(Layout::new(2, 0, 0).is_err());
        assert!(Layout::new(2, 10, MAX_METADATA_BYTES + 1).is_err());
        assert_eq!(split_latest(join_latest(12345, 7)), (12345, 7));
    }
}
