//! Property tests of the native decoder: random descriptors and random
//! layout values never panic and are accepted only when every byte they
//! describe lies inside the slot; random bytes over a real control block
//! never make a reader, a writer or inspect panic, hang or hand out a frame
//! past its slot. (The same logic as fuzz/fuzz_targets/native.rs, on stable.)

#![allow(clippy::unwrap_used)]

mod native_decode;

use std::time::Duration;

use proptest::prelude::*;
use shmimage::native::layout::{HeaderValues, Layout};
use shmimage::native::{
    inspect, FrameDesc, FrameInfo, PixelFormat, Plane, Reader, ReaderOptions, Writer, WriterOptions,
};

fn plane() -> impl Strategy<Value = Plane> {
    (any::<u64>(), any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(o, s, r, n)| Plane {
        offset: o % (1 << 24),
        stride: s % 20_000,
        row_bytes: r % 20_000,
        rows: n % 5_000,
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_descriptors_are_accepted_only_inside_the_slot(
        code in 0u32..14, w in 0u32..5000, h in 0u32..5000, n in 0u32..5,
        planes in proptest::array::uniform3(plane()), capacity in 0u64..(1 << 26),
    ) {
        if let Ok(d) = FrameDesc::from_parts(code, w, h, n, planes, capacity) {
            prop_assert!(d.len() <= capacity);
            let f = d.format();
            for (i, p) in d.planes().iter().enumerate() {
                let s = f.plane_shape(i, w, h).unwrap();
                prop_assert!(p.end() <= capacity && p.stride >= p.row_bytes);
                prop_assert_eq!(u64::from(p.row_bytes), s.row_bytes);
                prop_assert_eq!(p.rows, s.rows);
            }
        }
    }

    #[test]
    fn descriptors_the_library_builds_are_valid(fi in 0usize..11, w in 1u32..3000, h in 1u32..3000, align_pow in 0u32..8) {
        let f = PixelFormat::ALL[fi];
        let d = FrameDesc::with_align(f, w, h, 1 << align_pow).unwrap();
        d.validate(d.len()).unwrap();
        let p = FrameDesc::packed(f, w, h).unwrap();
        prop_assert!(p.len() <= d.len());
    }

    #[test]
    fn random_layout_values_never_panic_and_agree_when_accepted(
        slots in any::<u32>(), readers in 60u32..70, meta in any::<u32>(), page in prop::sample::select(vec![4096u32, 0, 8192]),
        control in any::<u64>(), slot_len in any::<u64>(), file_len in any::<u64>(),
    ) {
        let h = HeaderValues { version: 1, header_bytes: 256, slots, readers, metadata_bytes: meta, page,
            control_len: control, slot_len, file_len };
        if let Ok(l) = Layout::from_header(&h) {
            prop_assert_eq!(l.file_len(), l.control_len() + u64::from(l.slots()) * l.slot_len());
            prop_assert!(l.metadata_offset(l.slots() - 1) + u64::from(l.metadata_bytes()) <= l.control_len());
        }
    }
}

/// Random bytes over a live stream's control block (keeping the magic, or not).
fn scribble(path: &std::path::Path, control: usize, seed: u64, count: usize, keep_layout: bool) {
    use std::io::{Read, Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new().read(true).write(true).open(path).unwrap();
    let mut buf = vec![0u8; control];
    f.read_exact(&mut buf).unwrap();
    let mut x = seed | 1;
    for _ in 0..count {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let lo = if keep_layout { 64 } else { 0 };
        let off = lo + (x >> 8) as usize % (control - lo);
        buf[off] = (x >> 40) as u8;
    }
    f.seek(SeekFrom::Start(0)).unwrap();
    f.write_all(&buf).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn random_control_block_bytes_never_crash_a_reader_writer_or_inspect(
        seed in any::<u64>(), count in 1usize..400, keep_layout in any::<bool>(),
    ) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s");
        let o = WriterOptions { slots: 3, slot_bytes: 8192, metadata_bytes: 256, lossless_wait: Some(Duration::ZERO), ..Default::default() };
        let control = Layout::new(3, 8192, 256).unwrap().control_len() as usize;
        {
            let w = Writer::create(&p, &o).unwrap();
            let _r = Reader::open(&p, &ReaderOptions { lossless: true }).unwrap();
            let desc = FrameDesc::new(PixelFormat::Nv12, 32, 16).unwrap();
            for v in 0..4u8 {
                w.put(&desc, &vec![v; desc.len() as usize], &FrameInfo { metadata: vec![v; 8], ..Default::default() }).unwrap();
            }
        }
        scribble(&p, control, seed, count, keep_layout);
        let _ = inspect(&p);
        if let Ok(r) = Reader::open(&p, &ReaderOptions { lossless: seed & 1 == 0 }) {
            for _ in 0..4 {
                for f in [r.read(Some(Duration::ZERO)), r.latest()].into_iter().flatten() {
                    prop_assert!(f.desc().len() <= r.slot_capacity());
                    prop_assert_eq!(f.pixels().len() as u64, f.desc().len());
                    let _ = f.pixels().iter().map(|&b| u64::from(b)).sum::<u64>();
                    let _ = f.metadata().len();
                }
            }
        }
        let o2 = WriterOptions { slot_wait: Some(Duration::ZERO), lossless_wait: Some(Duration::ZERO), ..o };
        if let Ok(w) = Writer::open(&p, &o2) {
            let desc = FrameDesc::packed(PixelFormat::Gray8, 8, 8).unwrap();
            let _ = w.put(&desc, &[1; 64], &FrameInfo::default());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// The fuzz target's check, on random whole control blocks (magic and layout too).
    #[test]
    fn arbitrary_control_blocks_decode_safely(data in proptest::collection::vec(any::<u8>(), 0..9000)) {
        native_decode::check_bytes(&data).map_err(TestCaseError::fail)?;
    }

    /// The same with a valid header kept and everything after it random.
    #[test]
    fn arbitrary_bytes_after_a_valid_header_decode_safely(tail in proptest::collection::vec(any::<u8>(), 0..9000)) {
        let l = Layout::new(3, 8192, 256).unwrap();
        let mut data = vec![0u8; 64];
        data[..8].copy_from_slice(&shmimage::native::layout::MAGIC);
        let h = l.header_values();
        data[8..12].copy_from_slice(&h.version.to_le_bytes());
        data[12..16].copy_from_slice(&h.header_bytes.to_le_bytes());
        data[16..20].copy_from_slice(&h.slots.to_le_bytes());
        data[20..24].copy_from_slice(&h.readers.to_le_bytes());
        data[24..28].copy_from_slice(&h.metadata_bytes.to_le_bytes());
        data[28..32].copy_from_slice(&h.page.to_le_bytes());
        data[32..40].copy_from_slice(&h.control_len.to_le_bytes());
        data[40..48].copy_from_slice(&h.slot_len.to_le_bytes());
        data[48..56].copy_from_slice(&h.file_len.to_le_bytes());
        data.extend_from_slice(&tail);
        native_decode::check_bytes(&data).map_err(TestCaseError::fail)?;
    }
}
