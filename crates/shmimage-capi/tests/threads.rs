//! The thread rules of the header, through the exported functions: a stream
//! may move between threads (used from any thread, one at a time), and
//! different streams work concurrently.
#![allow(clippy::unwrap_used)] // a test's own setup failing is a test failure

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::ptr;
use std::time::{Duration, Instant};

use shared_memory_image_client::*;
use shmimage::{options, Code, StreamFile};

/// A handle as something a thread may carry; the header's rules, not the
/// type system, keep it to one thread at a time.
struct Handle(SharedMemoryImageStream);
// SAFETY: the library's stream object is Send; each handle is used by one
// thread at a time below.
unsafe impl Send for Handle {}

fn create(path: &CString, opts: u32) -> Handle {
    let mut s = ptr::null_mut();
    // SAFETY: a NUL-terminated name and a writable handle.
    let rc = unsafe { SharedMemoryImageStream_create(path.as_ptr(), opts, &mut s) };
    assert_eq!(rc, Code::NoError as i32);
    Handle(s)
}

/// Sends frames 1..=n from the thread that runs it, on a stream made elsewhere.
fn serve(h: Handle, n: u32) -> Handle {
    let px = vec![7u8; 32 * 8 * 3];
    for i in 1..=n {
        let mut f = FrameStruct { iFrame: i, iWidth: 32, iHeight: 8, buffer: px.as_ptr().cast_mut() };
        let start = Instant::now();
        loop {
            // SAFETY: a live handle used by this thread only; the frame's
            // buffer holds 32 * 8 * 3 bytes.
            let rc = unsafe { SharedMemoryImageStream_putframe(h.0, &mut f) };
            if rc == Code::NoError as i32 {
                break;
            }
            assert!(rc == Code::NoBufferAvailable as i32 || rc == Code::Unconnected as i32, "{rc}");
            assert!(start.elapsed() < Duration::from_secs(30));
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    h
}

/// Locks until frame n arrives; returns how many frames were seen.
fn consume(h: Handle, n: u32) -> (Handle, u32) {
    let (mut seen, mut last) = (0, 0);
    let start = Instant::now();
    while last != n {
        let mut f: SharedMemoryFrame = ptr::null_mut();
        // SAFETY: a live handle used by this thread only.
        let rc = unsafe { SharedMemoryImageStream_lock(h.0, &mut f) };
        if rc == Code::NoError as i32 {
            // SAFETY: lock succeeded, so f points at the stream's frame struct.
            let fr = unsafe { *f };
            assert!(fr.iFrame > last && !fr.buffer.is_null());
            // SAFETY: the locked frame holds w * h * 3 readable bytes.
            let px = unsafe { std::slice::from_raw_parts(fr.buffer, 32 * 8 * 3) };
            assert!(px.iter().all(|&b| b == 7));
            last = fr.iFrame;
            seen += 1;
            // SAFETY: as above.
            assert_eq!(unsafe { SharedMemoryImageStream_unlock(h.0) }, Code::NoError as i32);
        } else {
            assert_eq!(rc, Code::NoFrameAvailable as i32);
            assert!(start.elapsed() < Duration::from_secs(30));
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    (h, seen)
}

fn destroy(h: Handle) {
    // SAFETY: a live handle, not used afterwards.
    assert_eq!(unsafe { SharedMemoryImageStream_destroy(h.0) }, Code::NoError as i32);
}

#[test]
fn streams_move_between_threads_and_pairs_run_concurrently() {
    let pairs: Vec<_> = (0..3)
        .map(|_| {
            let file = StreamFile::with_len(1 << 16).unwrap();
            let path = CString::new(file.path().as_os_str().as_bytes()).unwrap();
            // Made on this thread, used on others, destroyed here.
            let srv = create(&path, options::SERVER);
            let cli = create(&path, options::NONE);
            (file, srv, cli)
        })
        .collect();
    let handles: Vec<_> = pairs
        .into_iter()
        .map(|(file, srv, cli)| {
            let s = std::thread::spawn(move || serve(srv, 50));
            let c = std::thread::spawn(move || consume(cli, 50));
            (file, s, c)
        })
        .collect();
    for (file, s, c) in handles {
        let (cli, seen) = c.join().unwrap();
        let srv = s.join().unwrap();
        assert!(seen >= 1);
        destroy(cli);
        destroy(srv);
        drop(file);
    }
}

#[test]
fn errorstring_from_many_threads_gives_the_same_static_text() {
    let ptrs: Vec<Vec<usize>> = (0..4)
        .map(|_| {
            std::thread::spawn(|| {
                (-12..=5).map(|c| SharedMemoryImageStream_errorstring(c) as usize).collect::<Vec<_>>()
            })
        })
        .map(|t| t.join().unwrap())
        .collect();
    assert!(ptrs.windows(2).all(|w| w[0] == w[1]));
    for (i, c) in (-12..=5).enumerate() {
        // SAFETY: errorstring returns a static NUL-terminated string.
        let text = unsafe { std::ffi::CStr::from_ptr(ptrs[0][i] as *const std::ffi::c_char) };
        assert_eq!(text.to_str().unwrap(), shmimage::errorstring(c));
    }
}
