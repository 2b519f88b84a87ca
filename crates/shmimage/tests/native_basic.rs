//! The native stream within one process: formats, descriptors, metadata,
//! loans, holds, lossless, missed counts, refusals. (Two-process behaviour:
//! native_two_process.rs.)

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use shmimage::native::{flags, FrameDesc, FrameInfo, PixelFormat, Reader, ReaderOptions, Writer, WriterOptions};
use shmimage::{detect_protocol, Protocol, StreamFile};

fn dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn opts(slots: u32, bytes: u64) -> WriterOptions {
    WriterOptions { slots, slot_bytes: bytes, ..Default::default() }
}

const NOW: Option<Duration> = Some(Duration::ZERO);
const SOON: Option<Duration> = Some(Duration::from_secs(5));

#[test]
fn a_frame_travels_with_its_descriptor_times_flags_and_metadata() {
    let d = dir();
    let p = d.path().join("s");
    let w = Writer::create(&p, &WriterOptions::for_frame(PixelFormat::I420, 64, 48).unwrap()).unwrap();
    assert_eq!(detect_protocol(&p).unwrap(), Protocol::Native);
    let r = Reader::open(&p, &ReaderOptions::default()).unwrap();
    assert_eq!(r.read(NOW).unwrap_err().code(), 2, "nothing yet: NO_FRAMEAVAILABLE");
    let desc = FrameDesc::new(PixelFormat::I420, 64, 48).unwrap();
    let mut loan = w.loan(&desc, NOW).unwrap();
    for (i, b) in loan.pixels_mut().iter_mut().enumerate() {
        *b = (i % 251) as u8;
    }
    loan.set_metadata(br#"{"pose":[1,2,3]}"#).unwrap();
    loan.set_flags(flags::BOTTOM_UP | 0x0001_0000);
    loan.set_capture_time(11, 22);
    let seq = loan.commit().unwrap();
    assert_eq!(seq, 1);
    let f = r.read(SOON).unwrap();
    assert_eq!((f.format(), f.width(), f.height(), f.sequence()), (PixelFormat::I420, 64, 48, 1));
    assert_eq!(f.desc(), &desc);
    assert_eq!(f.metadata(), br#"{"pose":[1,2,3]}"#);
    assert_eq!(f.flags(), flags::BOTTOM_UP | 0x0001_0000);
    let t = f.timestamps();
    assert_eq!((t.capture_mono_ns, t.capture_real_ns), (11, 22));
    assert!(t.publish_mono_ns > 0 && t.publish_real_ns > 1_600_000_000_000_000_000);
    assert!(f.pixels().iter().enumerate().all(|(i, &b)| b == (i % 251) as u8));
    assert_eq!(f.plane(1).unwrap().len() as u64, f.planes()[1].end() - f.planes()[1].offset);
    assert_eq!(f.epoch(), 1);
    assert_eq!(r.read(NOW).unwrap_err().code(), 2, "each frame is returned once");
    assert_eq!(r.latest().unwrap().sequence(), 1, "latest returns it again");
}

#[test]
fn format_and_size_change_per_frame_up_to_the_slot() {
    let d = dir();
    let p = d.path().join("s");
    let w = Writer::create(&p, &opts(3, 64 * 64 * 4)).unwrap();
    let r = Reader::open(&p, &ReaderOptions::default()).unwrap();
    for (fmt, wd, ht) in [(PixelFormat::Bgrx8, 64, 64), (PixelFormat::Gray16Le, 10, 3), (PixelFormat::Gray32F, 7, 7)] {
        let desc = FrameDesc::packed(fmt, wd, ht).unwrap();
        let px = vec![7u8; desc.len() as usize];
        w.put(&desc, &px, &FrameInfo::default()).unwrap();
        let f = r.read(SOON).unwrap();
        assert_eq!((f.format(), f.width(), f.height(), f.stride()), (fmt, wd, ht, desc.stride()));
        assert_eq!(f.pixels(), &px[..]);
    }
    let big = FrameDesc::new(PixelFormat::Rgba8, 65, 64).unwrap();
    assert_eq!(w.loan(&big, NOW).unwrap_err().code(), -10, "FRAME_TOO_LARGE");
    let e = w.put(&FrameDesc::packed(PixelFormat::Gray8, 2, 2).unwrap(), &[0; 3], &FrameInfo::default());
    assert_eq!(e.unwrap_err().code(), -1);
    let meta = FrameInfo { metadata: vec![0; 4097], ..Default::default() };
    let e = w.put(&FrameDesc::packed(PixelFormat::Gray8, 2, 2).unwrap(), &[0; 4], &meta).unwrap_err();
    assert!(e.to_string().contains("4097"), "{e}");
}

#[test]
fn a_held_frame_keeps_its_slot_and_missed_frames_are_counted() {
    let d = dir();
    let p = d.path().join("s");
    let w = Writer::create(&p, &opts(3, 4096)).unwrap();
    let r = Reader::open(&p, &ReaderOptions::default()).unwrap();
    let desc = FrameDesc::packed(PixelFormat::Gray8, 16, 16).unwrap();
    let put = |v: u8| w.put(&desc, &[v; 256], &FrameInfo::default()).unwrap();
    put(1);
    let held = r.read(SOON).unwrap();
    for v in 2..=10 {
        put(v);
    }
    assert!(held.pixels().iter().all(|&b| b == 1), "a held slot is never written");
    let f = r.read(SOON).unwrap();
    assert_eq!(f.sequence(), 10);
    assert_eq!((f.missed_before(), r.missed()), (8, 8));
    // Frames 1 and 10 held, 11 in the third slot and held: no slot is left.
    put(11);
    let _f11 = r.read(SOON).unwrap();
    assert_eq!(w.loan(&desc, NOW).unwrap_err().code(), 1, "every slot held: NO_BUFFERAVAILABLE");
    drop(held);
    put(12);
}

/// Frames cycle through as few slots as the readers' holds allow (the slot
/// just given back is the one still in the caches), and the newest frame is
/// overwritten only when no other slot is free.
#[test]
fn frames_reuse_the_slot_given_back_and_held_frames_keep_theirs() {
    let d = dir();
    let p = d.path().join("s");
    let w = Writer::create(&p, &opts(8, 4096)).unwrap();
    let r = Reader::open(&p, &ReaderOptions::default()).unwrap();
    let desc = FrameDesc::packed(PixelFormat::Gray8, 4, 4).unwrap();
    let mut used = std::collections::BTreeSet::new();
    for v in 1..=50u8 {
        w.put(&desc, &[v; 16], &FrameInfo::default()).unwrap();
        let f = r.read(SOON).unwrap();
        assert_eq!(f.sequence(), u64::from(v));
        used.insert(f.slot());
    }
    assert_eq!(used.len(), 2, "a reader that gives each frame back keeps the writer on two slots: {used:?}");
    // Held frames keep their slots; the writer moves to a cold one only then.
    let mut held = vec![r.latest().unwrap()];
    for v in 0..3 {
        w.put(&desc, &[v; 16], &FrameInfo::default()).unwrap();
        held.push(r.read(SOON).unwrap());
    }
    let slots: std::collections::BTreeSet<u32> = held.iter().map(|f| f.slot()).collect();
    assert_eq!(slots.len(), 4, "each held frame keeps its own slot");
}

#[test]
fn a_lossless_reader_gets_every_frame_and_the_writer_waits_for_it_bounded() {
    let d = dir();
    let p = d.path().join("s");
    let o = WriterOptions { lossless_wait: Some(Duration::from_millis(50)), ..opts(3, 4096) };
    let w = Writer::create(&p, &o).unwrap();
    let lossless = Reader::open(&p, &ReaderOptions { lossless: true }).unwrap();
    let newest = Reader::open(&p, &ReaderOptions::default()).unwrap();
    let desc = FrameDesc::packed(PixelFormat::Gray8, 4, 4).unwrap();
    let put = |v: u8| w.put(&desc, &[v; 16], &FrameInfo::default()).unwrap();
    put(1);
    assert_eq!(lossless.read(SOON).unwrap().sequence(), 1);
    for v in 2..=4 {
        put(v);
    }
    assert_eq!(newest.read(SOON).unwrap().sequence(), 4);
    // Frames 2..4 fill every slot for the lossless reader: frame 5 waits, then drops 2.
    put(5);
    assert_eq!(w.stats().lossless_drops, 1);
    let seqs: Vec<u64> = (0..3).map(|_| lossless.read(SOON).unwrap().sequence()).collect();
    assert_eq!(seqs, [3, 4, 5]);
    assert_eq!(lossless.missed(), 1);
    for v in 6..=20 {
        put(v);
        assert_eq!(lossless.read(SOON).unwrap().sequence(), u64::from(v));
    }
    assert_eq!(lossless.missed(), 1);
    let infos = w.readers();
    assert_eq!(infos.len(), 2);
    assert!(infos.iter().any(|i| i.lossless && i.last_seq == 20 && i.missed == 1));
    let ins = shmimage::native::inspect(&p).unwrap();
    assert_eq!((ins.readers.len(), ins.latest, ins.slots, ins.epoch, ins.writer_alive), (2, 20, 3, 1, true));
    assert_eq!(ins.slot_info.iter().filter(|s| s.sequence.is_some()).count(), 3);
}

#[test]
fn a_second_live_writer_is_refused_and_a_later_one_takes_over_with_a_new_epoch() {
    let d = dir();
    let p = d.path().join("s");
    let w = Writer::create(&p, &opts(2, 4096)).unwrap();
    let e = Writer::open(&p, &WriterOptions::default()).unwrap_err();
    assert!(e.to_string().contains("live writer"), "{e}");
    assert!(matches!(Writer::create(&p, &opts(2, 4096)).unwrap_err(), shmimage::native::Error::AlreadyExists { .. }));
    let r = Reader::open(&p, &ReaderOptions::default()).unwrap();
    let desc = FrameDesc::packed(PixelFormat::Gray8, 4, 4).unwrap();
    w.put(&desc, &[1; 16], &FrameInfo::default()).unwrap();
    drop(w);
    assert_eq!(r.read(SOON).unwrap().sequence(), 1, "frames left are still read");
    assert!(matches!(r.read(SOON).unwrap_err(), shmimage::native::Error::WriterGone { .. }));
    let w2 = Writer::open(&p, &WriterOptions::default()).unwrap();
    assert_eq!((w2.epoch(), r.epoch()), (2, 2));
    w2.put(&desc, &[2; 16], &FrameInfo::default()).unwrap();
    let f = r.read(SOON).unwrap();
    assert_eq!((f.sequence(), f.epoch()), (2, 2));
}

#[test]
fn protocols_refuse_each_other() {
    let f = StreamFile::with_len(4 << 20).unwrap();
    assert_eq!(detect_protocol(f.path()).unwrap(), Protocol::Ensight1);
    let e = Reader::open(f.path(), &ReaderOptions::default()).unwrap_err();
    assert!(e.to_string().contains("1.0"), "{e}");
    assert!(Writer::open(f.path(), &WriterOptions::default()).is_err());
    let d = dir();
    let small = d.path().join("small");
    std::fs::write(&small, b"hello").unwrap();
    assert!(detect_protocol(&small).is_err());
    assert!(Reader::open(&small, &ReaderOptions::default()).is_err());
    assert!(Reader::open(d.path().join("missing"), &ReaderOptions::default()).is_err());
}

#[test]
fn sixty_four_readers_and_no_more_and_entries_are_reused() {
    let d = dir();
    let p = d.path().join("s");
    let w = Writer::create(&p, &opts(2, 4096)).unwrap();
    let mut rs: Vec<Reader> = (0..64).map(|_| Reader::open(&p, &ReaderOptions::default()).unwrap()).collect();
    let e = Reader::open(&p, &ReaderOptions::default()).unwrap_err();
    assert!(matches!(e, shmimage::native::Error::ReadersFull { max: 64, .. }), "{e}");
    rs.remove(10);
    let again = Reader::open(&p, &ReaderOptions::default()).unwrap();
    assert_eq!(again.index(), 10);
    assert_eq!(w.readers().len(), 64);
    let desc = FrameDesc::packed(PixelFormat::Gray8, 4, 4).unwrap();
    w.put(&desc, &[3; 16], &FrameInfo::default()).unwrap();
    let frames: Vec<_> = rs.iter().map(|r| r.read(SOON).unwrap()).collect();
    assert!(frames.iter().all(|f| f.sequence() == 1));
}

#[test]
fn close_ends_a_wait_from_another_thread() {
    let d = dir();
    let p = d.path().join("s");
    let _w = Writer::create(&p, &opts(2, 4096)).unwrap();
    let r = Reader::open(&p, &ReaderOptions::default()).unwrap();
    let r2 = r.clone();
    let t = std::thread::spawn(move || r2.read(None));
    std::thread::sleep(Duration::from_millis(50));
    r.close();
    assert!(matches!(t.join().unwrap().unwrap_err(), shmimage::native::Error::Closed));
}

#[test]
fn the_unified_api_reads_and_writes_both_formats() {
    // 1.0: RGB8, packed, no metadata.
    let f = StreamFile::for_frame(8, 4).unwrap();
    let w = shmimage::Writer::open(f.path(), &WriterOptions::default()).unwrap();
    let r = shmimage::Reader::open(f.path(), &ReaderOptions::default()).unwrap();
    assert_eq!((w.protocol(), r.protocol()), (Protocol::Ensight1, Protocol::Ensight1));
    let rgb = FrameDesc::packed(PixelFormat::Rgb8, 8, 4).unwrap();
    let px: Vec<u8> = (0..96).collect();
    let bgr = FrameDesc::packed(PixelFormat::Bgr8, 8, 4).unwrap();
    assert_eq!(w.put(&bgr, &px, &FrameInfo::default()).unwrap_err().code(), -1);
    assert_eq!(w.put(&rgb, &px, &FrameInfo::default()).unwrap(), 1);
    let fr = r.read(SOON).unwrap();
    assert_eq!((fr.format(), fr.width(), fr.height(), fr.stride(), fr.sequence()), (PixelFormat::Rgb8, 8, 4, 24, 1));
    assert_eq!((fr.pixels().unwrap(), fr.metadata()), (&px[..], &[][..]));
    drop(fr);
    // Native, through the same calls.
    let d = dir();
    let p = d.path().join("n");
    let w = shmimage::Writer::create_native(&p, &opts(2, 4096)).unwrap();
    let r = shmimage::Reader::open(&p, &ReaderOptions::default()).unwrap();
    assert_eq!((w.protocol(), r.protocol()), (Protocol::Native, Protocol::Native));
    let info = FrameInfo { metadata: b"m".to_vec(), ..Default::default() };
    assert_eq!(w.put(&bgr, &px, &info).unwrap(), 1);
    let fr = r.read(SOON).unwrap();
    assert_eq!((fr.format(), fr.metadata(), fr.pixels().unwrap()), (PixelFormat::Bgr8, &b"m"[..], &px[..]));
}

#[test]
fn objects_used_in_a_fork_child_answer_forked_and_their_drop_touches_nothing() {
    let d = dir();
    let p = d.path().join("s");
    let w = Writer::create(&p, &opts(2, 4096)).unwrap();
    let r = Reader::open(&p, &ReaderOptions::default()).unwrap();
    let desc = FrameDesc::packed(PixelFormat::Gray8, 4, 4).unwrap();
    w.put(&desc, &[5; 16], &FrameInfo::default()).unwrap();
    let held = r.read(SOON).unwrap();
    // SAFETY: the child only calls the engine (which must answer Forked) and _exit.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let ok = matches!(r.read(NOW), Err(shmimage::native::Error::Forked))
            && matches!(w.loan(&desc, NOW), Err(shmimage::native::Error::Forked));
        drop(held);
        drop(r);
        drop(w);
        // SAFETY: ends the child at once, without running the parent's atexit handlers.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    let mut status = 0;
    // SAFETY: waits for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "child saw {status}");
    // The child's drops released nothing of ours: the frame is still held, the reader still joined.
    let ins = shmimage::native::inspect(&p).unwrap();
    assert_eq!(ins.slot_info.iter().map(|s| s.holders).sum::<u32>(), 1);
    assert_eq!((ins.readers.len(), ins.writer_alive), (1, true));
    assert_eq!(held.pixels()[0], 5);
    w.put(&desc, &[6; 16], &FrameInfo::default()).unwrap();
    assert_eq!(r.read(SOON).unwrap().pixels()[0], 6);
}

#[test]
fn a_created_stream_waits_for_its_first_writer() {
    let d = dir();
    let p = d.path().join("s");
    shmimage::native::create(&p, &opts(2, 4096)).unwrap();
    assert!(shmimage::native::create(&p, &opts(2, 4096)).is_err(), "exclusive");
    let r = Reader::open(&p, &ReaderOptions::default()).unwrap();
    assert!(r.writer_alive(), "no writer yet is not a dead writer");
    assert_eq!(r.read(Some(Duration::from_millis(20))).unwrap_err().code(), 2, "it waits: NO_FRAMEAVAILABLE");
    let w = Writer::open(&p, &WriterOptions::default()).unwrap();
    assert_eq!(w.epoch(), 1);
    w.put(&FrameDesc::packed(PixelFormat::Gray8, 2, 2).unwrap(), &[1; 4], &FrameInfo::default()).unwrap();
    assert_eq!(r.read(SOON).unwrap().sequence(), 1);
}

#[test]
fn engine_objects_are_send_and_sync_and_frames_and_loans_are_static() {
    fn send_sync<T: Send + Sync + 'static>() {}
    fn send<T: Send + 'static>() {}
    send_sync::<Writer>();
    send_sync::<Reader>();
    send_sync::<shmimage::native::ReadFrame>();
    send::<shmimage::native::WriteLoan>();
    send_sync::<shmimage::Reader>();
    send_sync::<shmimage::Writer>();
    send_sync::<shmimage::ImageFrame>();
}

#[test]
fn a_file_cut_short_under_a_reader_and_a_writer_is_an_error_not_a_crash() {
    let d = dir();
    let p = d.path().join("s");
    let w = Writer::create(&p, &opts(2, 1 << 16)).unwrap();
    let r = Reader::open(&p, &ReaderOptions::default()).unwrap();
    let desc = FrameDesc::packed(PixelFormat::Gray8, 256, 256).unwrap();
    w.put(&desc, &[7; 65536], &FrameInfo::default()).unwrap();
    let held = r.read(SOON).unwrap();
    // Another process cuts the file to its first page: slots and descriptors are gone.
    std::fs::OpenOptions::new().write(true).open(&p).unwrap().set_len(4096).unwrap();
    // The held frame's pixels read as zeros (the guard's pages), never a SIGBUS.
    assert!(held.pixels().iter().all(|&b| b == 0 || b == 7));
    drop(held);
    let e = r.read(SOON).unwrap_err();
    assert!(matches!(e, shmimage::native::Error::FileTruncated { .. }), "{e}");
    let e = w.loan(&desc, Some(Duration::from_millis(200)));
    assert!(e.is_err());
    // A 1.0 peer refuses the native file with a clear error.
    let d2 = dir();
    let p2 = d2.path().join("n");
    shmimage::native::create(&p2, &opts(2, 4096)).unwrap();
    let e = shmimage::Client::connect(&p2, shmimage::ClientOptions::default()).unwrap_err();
    assert!(e.to_string().contains("native"), "{e}");
    assert!(shmimage::Server::create(&p2, shmimage::ServerOptions::default()).is_err());
    assert_eq!(detect_protocol(&p2).unwrap(), Protocol::Native, "and did not clobber it");
}
