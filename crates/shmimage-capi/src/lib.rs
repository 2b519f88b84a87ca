//! The C face of shmimage: a drop-in for EnSight's
//! `shared_memory_image_client` library, declared by
//! `include/shared_memory_image_client.h`.
//!
//! No protocol logic lives here: every call translates its arguments for
//! [`shmimage::Stream`] and its answer back to a `SharedMemoryImageError`
//! through [`shmimage::Error::code`]. What this crate adds is the boundary:
//! NULL checks, a frame struct the stream owns, static error strings, and no
//! panic ever unwinding into C.
//!
//! Threads: a stream may be used from any thread, but not from two at once;
//! destroy must not race another call on the same stream; different streams
//! are independent. That holds because a stream is one heap object that owns
//! a [`shmimage::Stream`], which is `Send`, and touches no global state other
//! than the error-string table, which is built once behind a `OnceLock`.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]
#![allow(non_snake_case)] // the exported names and fields are the protocol's

use std::ffi::{c_char, c_int, CStr, CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::ptr;
use std::sync::OnceLock;

use shmimage::{Code, Stream};

/// `SharedMemoryImageError`: a [`Code`] as a C int.
pub type SharedMemoryImageError = c_int;

/// `struct _SharedMemoryFrame`: one RGB frame as C sees it.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct FrameStruct {
    /// The server's frame number.
    pub iFrame: u32,
    /// Pixels per row.
    pub iWidth: u32,
    /// Rows.
    pub iHeight: u32,
    /// `iWidth * iHeight * 3` bytes of RGB, rows top-down.
    pub buffer: *mut u8,
}

impl FrameStruct {
    const EMPTY: FrameStruct = FrameStruct { iFrame: 0, iWidth: 0, iHeight: 0, buffer: ptr::null_mut() };
}

/// `SharedMemoryFrame`: a pointer to a frame struct.
pub type SharedMemoryFrame = *mut FrameStruct;

/// `struct _SharedMemoryImageStream`: what a stream handle points to.
#[derive(Debug)]
pub struct StreamObject {
    stream: Stream,
    /// The struct lock hands out. It lives here so that its address stays
    /// valid until unlock or destroy without the caller freeing anything.
    frame: FrameStruct,
}

// SAFETY: the only non-Send field is `frame.buffer`, which points into memory
// owned by `stream` (its mapping, or the client's assembly buffer), so it is
// valid wherever `stream` is; `Stream` itself is Send (asserted below). The
// header tells C callers not to use one stream from two threads at once.
unsafe impl Send for StreamObject {}

const _: fn() = || {
    fn is_send<T: Send>() {}
    is_send::<Stream>();
};

/// `SharedMemoryImageStream`: an opaque handle.
pub type SharedMemoryImageStream = *mut StreamObject;

/// Runs an exported function's body; a panic (a bug, never expected) becomes
/// BAD_ARGS instead of unwinding into C, which would be undefined behaviour.
fn guarded(body: impl FnOnce() -> Code) -> SharedMemoryImageError {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(Code::BadArgs) as c_int
}

fn outcome<T>(r: shmimage::Result<T>) -> Code {
    match r {
        Ok(_) => Code::NoError,
        Err(e) => e.code(),
    }
}

/// `SharedMemoryImageStream_create`: open `filename` with EnSight's option
/// bits; on NOERROR or RECONNECTING `*stream` is a working stream, otherwise
/// NULL.
///
/// # Safety
/// `filename` is NULL or a NUL-terminated string; `stream` is NULL or points
/// to writable storage for a handle.
#[no_mangle]
pub unsafe extern "C" fn SharedMemoryImageStream_create(
    filename: *const c_char,
    options: u32,
    stream: *mut SharedMemoryImageStream,
) -> SharedMemoryImageError {
    guarded(|| {
        if stream.is_null() {
            return Code::BadArgs;
        }
        // SAFETY: non-null, and the caller promises it is writable. Cleared
        // first so that a failed create never leaves a stale handle behind.
        unsafe { stream.write(ptr::null_mut()) };
        if filename.is_null() {
            return Code::BadArgs;
        }
        // SAFETY: non-null, and the caller promises a NUL-terminated string.
        let name = unsafe { CStr::from_ptr(filename) };
        // File names are bytes on unix; no UTF-8 is required.
        let path = Path::new(OsStr::from_bytes(name.to_bytes()));
        match Stream::create(path, options) {
            Ok((s, code)) => {
                let obj = Box::new(StreamObject { stream: s, frame: FrameStruct::EMPTY });
                // SAFETY: as above.
                unsafe { stream.write(Box::into_raw(obj)) };
                code
            }
            Err(e) => e.code(),
        }
    })
}

/// `SharedMemoryImageStream_lock`: lock the newest complete frame and point
/// `*frame` at the stream's frame struct, valid until unlock or destroy.
/// `*frame` is left unchanged unless the answer is NOERROR.
///
/// # Safety
/// `stream` is NULL or a live handle from create, not in use by another
/// thread; `frame` is NULL or points to writable storage for a pointer.
#[no_mangle]
pub unsafe extern "C" fn SharedMemoryImageStream_lock(
    stream: SharedMemoryImageStream,
    frame: *mut SharedMemoryFrame,
) -> SharedMemoryImageError {
    guarded(|| {
        // SAFETY: the caller promises NULL or a live, unshared handle.
        let Some(obj) = (unsafe { stream.as_mut() }) else { return Code::BadArgs };
        if let Err(e) = obj.stream.client() {
            return e.code();
        }
        if frame.is_null() {
            return Code::BadArgs;
        }
        let info = match obj.stream.lock() {
            Ok(info) => info,
            Err(e) => return e.code(),
        };
        let Some(pixels) = obj.stream.pixels() else {
            // A successful lock always has pixels; should that ever fail,
            // hand the frame back rather than return a struct without them.
            let _ = obj.stream.unlock();
            return Code::NoFrameAvailable;
        };
        obj.frame = FrameStruct {
            iFrame: info.number,
            iWidth: info.width,
            iHeight: info.height,
            // C's struct has a non-const pointer; the header documents the
            // pixels as read-only.
            buffer: pixels.as_ptr().cast_mut(),
        };
        // SAFETY: non-null, and the caller promises it is writable. The
        // pointee lives in the boxed stream object, so it stays put.
        unsafe { frame.write(&mut obj.frame) };
        Code::NoError
    })
}

/// `SharedMemoryImageStream_unlock`: give the locked frame back.
///
/// # Safety
/// `stream` is NULL or a live handle from create, not in use by another thread.
#[no_mangle]
pub unsafe extern "C" fn SharedMemoryImageStream_unlock(stream: SharedMemoryImageStream) -> SharedMemoryImageError {
    guarded(|| {
        // SAFETY: the caller promises NULL or a live, unshared handle.
        let Some(obj) = (unsafe { stream.as_mut() }) else { return Code::BadArgs };
        let r = obj.stream.unlock();
        if r.is_ok() {
            // The pixels may now be overwritten by the server: a caller that
            // still uses the struct reads NULL instead of a changing frame.
            // The numbers stay, as code that logs them after unlock is common.
            obj.frame.buffer = ptr::null_mut();
        }
        outcome(r)
    })
}

/// `SharedMemoryImageStream_destroy`: a client unlocks and disconnects; then
/// the stream is unmapped, closed and freed.
///
/// # Safety
/// `stream` is NULL or a live handle from create that no other thread is
/// using; it must not be used afterwards.
#[no_mangle]
pub unsafe extern "C" fn SharedMemoryImageStream_destroy(stream: SharedMemoryImageStream) -> SharedMemoryImageError {
    guarded(|| {
        if stream.is_null() {
            return Code::BadArgs;
        }
        // SAFETY: a live handle came from Box::into_raw in create, and the
        // caller gives up its use here.
        drop(unsafe { Box::from_raw(stream) });
        Code::NoError
    })
}

/// `SharedMemoryImageStream_putframe`: publish one frame of
/// `frame->iWidth * frame->iHeight * 3` bytes at `frame->buffer`.
///
/// # Safety
/// `stream` is NULL or a live handle from create, not in use by another
/// thread; `frame` is NULL or points to a readable frame struct whose
/// `buffer` is NULL or holds `iWidth * iHeight * 3` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn SharedMemoryImageStream_putframe(
    stream: SharedMemoryImageStream,
    frame: SharedMemoryFrame,
) -> SharedMemoryImageError {
    guarded(|| {
        // SAFETY: the caller promises NULL or a live, unshared handle.
        let Some(obj) = (unsafe { stream.as_mut() }) else { return Code::BadArgs };
        if let Err(e) = obj.stream.server() {
            return e.code();
        }
        // SAFETY: the caller promises NULL or a readable struct; it is copied.
        let Some(f) = (unsafe { frame.as_ref() }).copied() else { return Code::BadArgs };
        if f.buffer.is_null() {
            return Code::BadArgs;
        }
        let len = (f.iWidth as usize)
            .checked_mul(f.iHeight as usize)
            .and_then(|n| n.checked_mul(3))
            .filter(|&n| isize::try_from(n).is_ok());
        let Some(len) = len else { return Code::BadArgs };
        // SAFETY: non-null; the caller promises `len` readable bytes that
        // nothing writes during the call; `len` fits in isize (checked).
        let pixels = unsafe { std::slice::from_raw_parts(f.buffer, len) };
        outcome(obj.stream.put_frame(f.iFrame, f.iWidth, f.iHeight, pixels))
    })
}

/// The error strings as C strings, built once from the engine's text so that
/// there is one source of truth.
#[derive(Debug)]
struct Texts {
    known: Vec<(c_int, CString)>,
    unknown: CString,
}

fn texts() -> &'static Texts {
    static TEXTS: OnceLock<Texts> = OnceLock::new();
    // The engine's texts are literals without NUL bytes; if one ever had
    // one, an empty string is still a valid answer.
    let c = |s: &str| CString::new(s).unwrap_or_default();
    TEXTS.get_or_init(|| Texts {
        known: Code::ALL.iter().map(|&code| (code as c_int, c(code.description()))).collect(),
        // `errorstring` returns a &'static str, so every unknown value shares
        // one text; i32::MIN is not a code.
        unknown: c(shmimage::errorstring(i32::MIN)),
    })
}

/// `SharedMemoryImageStream_errorstring`: a static NUL-terminated description
/// of any code, known or not; never NULL.
#[no_mangle]
pub extern "C" fn SharedMemoryImageStream_errorstring(err: SharedMemoryImageError) -> *const c_char {
    catch_unwind(|| {
        let t = texts();
        t.known.iter().find(|(v, _)| *v == err).map_or(&t.unknown, |(_, s)| s).as_ptr()
    })
    .unwrap_or(c"internal error in the shared memory image stream library".as_ptr())
}
