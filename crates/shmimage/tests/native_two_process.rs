//! The native stream between real processes: this test binary re-executes
//! itself as the peers (the ignored `child_role` test, selected by
//! SHMIMAGE_TEST_ROLE). Many readers, lossless delivery, a torn-frame check,
//! kill -9 of readers and of the writer, a second writer, hostile bytes.

#![allow(clippy::unwrap_used)] // test harness: peers and fixtures that fail should fail the test

use std::path::Path;
use std::time::{Duration, Instant};

mod peer;
use peer::{stat, Peer};

use shmimage::native::{
    self, flags, Error, FrameDesc, FrameInfo, PixelFormat, Reader, ReaderOptions, Writer, WriterOptions,
};

const LONG: Option<Duration> = Some(Duration::from_secs(20));
/// User flag marking the last frame of a run.
const END: u32 = 0x8000_0000;

/// Pixels of frame `seq`: every byte depends on the sequence and position.
fn pixels_for(seq: u64, len: usize) -> Vec<u8> {
    let mut x = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Metadata of a checksummed frame: the writer's own count and the xxh3 of the pixels.
fn meta_for(count: u64, px: &[u8]) -> Vec<u8> {
    let mut m = count.to_le_bytes().to_vec();
    m.extend_from_slice(&xxhash_rust::xxh3::xxh3_64(px).to_le_bytes());
    m
}

fn wait_for_readers(w: &Writer, n: usize) {
    let t = Instant::now();
    while w.readers().len() < n {
        assert!(t.elapsed() < Duration::from_secs(20), "readers did not join");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
#[ignore = "run as a peer process by the other tests"]
fn child_role() {
    let Ok(role) = std::env::var("SHMIMAGE_TEST_ROLE") else { return };
    let args: Vec<String> = std::env::var("SHMIMAGE_TEST_ARGS").unwrap().split('\n').map(String::from).collect();
    let path = Path::new(&args[0]);
    match role.as_str() {
        // Read checksummed frames until the END frame; report what was seen.
        "verify" => {
            let lossless = args[1] == "lossless";
            let r = Reader::open(path, &ReaderOptions { lossless }).unwrap();
            println!("JOINED");
            let (mut frames, mut torn, mut out_of_order, mut last, mut first) = (0u64, 0u64, 0u64, 0u64, 0u64);
            loop {
                let f = r.read(LONG).unwrap();
                let m = f.metadata();
                let count = u64::from_le_bytes(m[..8].try_into().unwrap());
                let sum = u64::from_le_bytes(m[8..16].try_into().unwrap());
                if xxhash_rust::xxh3::xxh3_64(f.pixels()) != sum || f.pixels() != pixels_for(count, f.pixels().len()) {
                    torn += 1;
                }
                if f.sequence() <= last || (lossless && last != 0 && f.sequence() != last + 1) {
                    out_of_order += 1;
                }
                last = f.sequence();
                if first == 0 {
                    first = last;
                }
                frames += 1;
                if f.flags() & END != 0 {
                    break;
                }
            }
            println!(
                "DONE frames={frames} torn={torn} out_of_order={out_of_order} missed={} first={first}",
                r.missed()
            );
        }
        // Hold one frame and wait to be killed.
        "hold" => {
            let lossless = args.get(1).is_some_and(|a| a == "lossless");
            let r = Reader::open(path, &ReaderOptions { lossless }).unwrap();
            let f = r.read(LONG).unwrap();
            println!("HOLDING seq={} slot={} index={}", f.sequence(), f.slot(), r.index());
            std::thread::sleep(Duration::from_secs(60));
        }
        // Write frames, then stay alive (optionally with an uncommitted loan) until killed.
        "writer" => {
            let w = Writer::open_or_create(path, &WriterOptions { slots: 3, slot_bytes: 4096, ..Default::default() })
                .unwrap();
            let desc = FrameDesc::packed(PixelFormat::Gray8, 8, 8).unwrap();
            for v in 1..=3u8 {
                w.put(&desc, &[v; 64], &FrameInfo::default()).unwrap();
            }
            let _loan = (args[1] == "loaned").then(|| w.loan(&desc, LONG).unwrap());
            println!("READY epoch={}", w.epoch());
            std::thread::sleep(Duration::from_secs(60));
        }
        // A writer that keeps publishing through whatever a hostile process does.
        "steady_writer" => {
            let w =
                Writer::open(path, &WriterOptions { slot_wait: Some(Duration::from_millis(5)), ..Default::default() })
                    .unwrap();
            let desc = FrameDesc::new(PixelFormat::Rgb8, 16, 16).unwrap();
            let px = vec![9u8; desc.len() as usize];
            println!("READY");
            let t = Instant::now();
            let (mut ok, mut err) = (0u64, 0u64);
            while t.elapsed() < Duration::from_millis(args[1].parse().unwrap()) {
                match w.put(&desc, &px, &FrameInfo { metadata: vec![1; 32], ..Default::default() }) {
                    Ok(_) => ok += 1,
                    Err(_) => err += 1,
                }
            }
            println!("DONE ok={ok} err={err}");
        }
        other => panic!("unknown role {other}"),
    }
}

#[test]
fn many_reader_processes_one_lossless_zero_torn_and_in_order() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("s");
    let o = WriterOptions { slots: 6, slot_bytes: 4096, lossless_wait: None, ..Default::default() };
    let w = Writer::create(&p, &o).unwrap();
    let ps = p.to_str().unwrap();
    let mut readers: Vec<Peer> =
        (0..4).map(|i| Peer::spawn("verify", &[ps, if i == 0 { "lossless" } else { "newest" }])).collect();
    for r in &mut readers {
        r.expect("JOINED");
    }
    wait_for_readers(&w, 4);
    const FRAMES: u64 = 100_000;
    let desc = FrameDesc::packed(PixelFormat::Gray8, 16, 4).unwrap();
    for count in 1..=FRAMES {
        let px = pixels_for(count, desc.len() as usize);
        let info = FrameInfo {
            metadata: meta_for(count, &px),
            flags: if count == FRAMES { END } else { 0 },
            ..Default::default()
        };
        let mut loan = w.loan(&desc, LONG).unwrap();
        loan.pixels_mut().copy_from_slice(&px);
        loan.set_metadata(&info.metadata).unwrap();
        loan.set_flags(info.flags);
        assert_eq!(loan.commit().unwrap(), count);
    }
    let mut total_missed = 0;
    for (i, mut r) in readers.into_iter().enumerate() {
        let line = r.expect("DONE");
        assert_eq!(stat(&line, "torn"), 0, "reader {i}: {line}");
        assert_eq!(stat(&line, "out_of_order"), 0, "reader {i}: {line}");
        if i == 0 {
            assert_eq!(stat(&line, "frames"), FRAMES, "the lossless reader gets every frame: {line}");
            assert_eq!(stat(&line, "first"), 1, "{line}");
            assert_eq!(stat(&line, "missed"), 0, "{line}");
        } else {
            let before_first = stat(&line, "first") - 1;
            assert_eq!(
                stat(&line, "frames") + stat(&line, "missed") + before_first,
                FRAMES,
                "every frame counted: {line}"
            );
            total_missed += stat(&line, "missed");
        }
        r.wait_ok();
    }
    eprintln!("newest-mode readers missed {total_missed} of {} frames", 3 * FRAMES);
    assert_eq!(w.stats().lossless_drops, 0);
}

#[test]
fn a_reader_killed_while_holding_a_slot_gives_it_back_and_its_entry_is_reused() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("s");
    let w = Writer::create(&p, &WriterOptions { slots: 2, slot_bytes: 4096, ..Default::default() }).unwrap();
    let desc = FrameDesc::packed(PixelFormat::Gray8, 8, 8).unwrap();
    let mut holder = Peer::spawn("hold", &[p.to_str().unwrap()]);
    wait_for_readers(&w, 1);
    w.put(&desc, &[1; 64], &FrameInfo::default()).unwrap();
    let line = holder.expect("HOLDING");
    let (held_slot, index) = (stat(&line, "slot") as u32, stat(&line, "index") as u32);
    // While it lives, its slot is never loaned: two loans at once find one slot.
    let a = w.loan(&desc, Some(Duration::ZERO)).unwrap();
    assert_ne!(a.slot(), held_slot);
    assert!(matches!(w.loan(&desc, Some(Duration::from_millis(30))), Err(Error::NoSlotAvailable)));
    holder.kill9();
    // The writer reaps it and gets the slot back.
    let b = w.loan(&desc, LONG).unwrap();
    assert_eq!(b.slot(), held_slot);
    assert_eq!(w.stats().readers_reaped, 1);
    drop((a, b));
    let again = Reader::open(&p, &ReaderOptions::default()).unwrap();
    assert_eq!(again.index(), index, "the dead reader's entry is reused");
    assert_eq!(native::inspect(&p).unwrap().slot_info.iter().map(|s| s.holders).sum::<u32>(), 0);
}

#[test]
fn a_reader_joining_takes_back_a_dead_readers_holds_without_a_writer() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("s");
    let w = Writer::create(&p, &WriterOptions { slots: 2, slot_bytes: 4096, ..Default::default() }).unwrap();
    let desc = FrameDesc::packed(PixelFormat::Gray8, 8, 8).unwrap();
    w.put(&desc, &[1; 64], &FrameInfo::default()).unwrap();
    let mut holder = Peer::spawn("hold", &[p.to_str().unwrap()]);
    holder.expect("HOLDING");
    assert_eq!(native::inspect(&p).unwrap().slot_info.iter().map(|s| s.holders).sum::<u32>(), 1);
    holder.kill9();
    let r = Reader::open(&p, &ReaderOptions::default()).unwrap();
    assert_eq!(r.index(), 0);
    assert_eq!(native::inspect(&p).unwrap().slot_info.iter().map(|s| s.holders).sum::<u32>(), 0);
}

#[test]
fn a_killed_writer_is_reported_and_a_new_one_takes_over_with_a_new_epoch() {
    for mode in ["idle", "loaned"] {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s");
        let mut wp = Peer::spawn("writer", &[p.to_str().unwrap(), mode]);
        assert_eq!(stat(&wp.expect("READY"), "epoch"), 1);
        // A second live writer is refused, naming the first.
        match Writer::open(&p, &WriterOptions::default()) {
            Err(Error::WriterBusy { pid, .. }) => assert_eq!(pid, wp.pid()),
            other => panic!("{other:?}"),
        }
        let r = Reader::open(&p, &ReaderOptions::default()).unwrap();
        assert_eq!(r.read(LONG).unwrap().sequence(), 3);
        assert!(r.writer_alive());
        wp.kill9();
        assert!(matches!(r.read(LONG), Err(Error::WriterGone { .. })), "{mode}");
        let ins = native::inspect(&p).unwrap();
        assert!(!ins.writer_alive);
        assert_eq!(ins.slot_info.iter().filter(|s| s.writing).count(), usize::from(mode == "loaned"));
        let w = Writer::open(&p, &WriterOptions::default()).unwrap();
        assert_eq!((w.epoch(), r.epoch()), (2, 2));
        assert!(native::inspect(&p).unwrap().slot_info.iter().all(|s| !s.writing), "half-written slot recovered");
        let desc = FrameDesc::packed(PixelFormat::Gray8, 8, 8).unwrap();
        assert_eq!(w.put(&desc, &[7; 64], &FrameInfo::default()).unwrap(), 4, "sequences go on");
        let f = r.read(LONG).unwrap();
        assert_eq!((f.sequence(), f.epoch(), f.pixels()[0]), (4, 2, 7));
    }
}

/// Random bytes into the live control block while a writer process and a
/// reader run: every call answers (a frame or an error), nothing crashes,
/// hangs or reads outside the mapping, and the writer process survives.
#[test]
fn hostile_bytes_in_a_live_control_block_never_crash_or_hang_either_end() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("s");
    let o = WriterOptions { slots: 3, ..WriterOptions::for_frame(PixelFormat::Rgb8, 16, 16).unwrap() };
    drop(Writer::create(&p, &o).unwrap());
    let mut wp = Peer::spawn("steady_writer", &[p.to_str().unwrap(), "1500"]);
    wp.expect("READY");
    let r = Reader::open(&p, &ReaderOptions::default()).unwrap();
    let control = native::layout::Layout::new(3, o.slot_bytes, o.metadata_bytes).unwrap().control_len() as usize;
    let file = std::fs::OpenOptions::new().read(true).write(true).open(&p).unwrap();
    let map = memmap2::MmapOptions::new().len(control).map_raw(&file).unwrap();
    let mut x = 0x1234_5678_9abc_def1u64;
    let t = Instant::now();
    let (mut frames, mut errors) = (0u64, 0u64);
    while t.elapsed() < Duration::from_millis(1500) {
        for _ in 0..16 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Past the magic and the layout words half of the time: those make
            // the stream refuse to open, not exercise the running ends.
            let off = if x & 1 == 0 { 64 + (x >> 8) as usize % (control - 64) } else { (x >> 8) as usize % control };
            // SAFETY: off < control, the mapping's length; a u8 store into
            // shared memory is what a hostile process does.
            unsafe { map.as_mut_ptr().add(off).write_volatile((x >> 40) as u8) };
        }
        match r.read(Some(Duration::from_millis(2))) {
            Ok(f) => {
                frames += 1;
                // Touch every byte the frame claims: must stay inside the mapping.
                let sum: u64 = f.pixels().iter().map(|&b| u64::from(b)).sum();
                let _ = (sum, f.metadata().len(), f.plane(0).map(<[u8]>::len));
                assert!(f.desc().len() <= r.slot_capacity());
            }
            Err(_) => errors += 1,
        }
    }
    let line = wp.expect("DONE");
    eprintln!("reader: {frames} frames, {errors} errors; writer: {line}");
    wp.wait_ok();
    assert!(frames + errors > 0);
    // The file still opens or is refused with a clear error: never a panic.
    let _ = native::inspect(&p);
    let _ = Reader::open(&p, &ReaderOptions::default());
    let _ = flags::BOTTOM_UP;
}

#[test]
fn a_killed_lossless_reader_does_not_hold_the_writer_back() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("s");
    // A long lossless bound: only reaping can free the slots in time.
    let o = WriterOptions {
        slots: 3,
        slot_bytes: 4096,
        lossless_wait: Some(Duration::from_secs(60)),
        ..Default::default()
    };
    let w = Writer::create(&p, &o).unwrap();
    let desc = FrameDesc::packed(PixelFormat::Gray8, 8, 8).unwrap();
    let mut holder = Peer::spawn("hold", &[p.to_str().unwrap(), "lossless"]);
    wait_for_readers(&w, 1);
    w.put(&desc, &[1; 64], &FrameInfo::default()).unwrap();
    holder.expect("HOLDING");
    // Two more frames are pending for it; with its hold, every slot is taken.
    for v in 2..=3u8 {
        w.put(&desc, &[v; 64], &FrameInfo::default()).unwrap();
    }
    assert!(matches!(w.loan(&desc, Some(Duration::from_millis(30))), Err(Error::NoSlotAvailable)));
    holder.kill9();
    for v in 4..=10u8 {
        w.put(&desc, &[v; 64], &FrameInfo::default()).unwrap();
    }
    // No frame was dropped for it: its marks were reaped, not waited out.
    let st = w.stats();
    assert_eq!((st.readers_reaped, st.lossless_drops), (1, 0), "{st:?}");
    assert!(native::inspect(&p).unwrap().readers.is_empty());
}
