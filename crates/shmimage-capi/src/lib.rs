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
//! Handles: a `SharedMemoryImageStream` is an id in a registry, never a
//! pointer the library dereferences, so a destroyed or made-up handle answers
//! IMAGESTREAM_STALE_HANDLE (destroy twice, lock after destroy).
//!
//! Threads: every function may be called from any thread at any time, also
//! on one stream from several threads and destroy racing another call: the
//! registry hands each call its own reference to the stream object, calls on
//! one stream are serialized by its mutex, and the engine's stream is `Send +
//! Sync`. A locked frame belongs to the thread that locked it.
//!
//! Fork: a stream created before fork() answers IMAGESTREAM_FORKED in the
//! child, and destroy there releases it without touching the parent's stream.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]
#![allow(non_snake_case)] // the exported names and fields are the protocol's

use std::collections::HashMap;
use std::ffi::{c_char, c_int, CStr, CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::ThreadId;

use shmimage::{Code, Frame, Stream};

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

/// What a stream handle stands for. A handle is not a pointer to this: it is
/// an id in the registry below, so a destroyed (or made-up) handle is looked
/// up, not dereferenced, and answers IMAGESTREAM_STALE_HANDLE.
#[derive(Debug)]
pub struct StreamObject {
    stream: Stream,
    /// The drop-in's one locked frame, the thread that locked it, and the
    /// struct lock hands out (boxed, so its address stays put until unlock
    /// or destroy). The mutex serializes the calls on one stream.
    locked: Mutex<Locked>,
}

#[derive(Debug)]
struct Locked {
    frame: Option<Frame>,
    owner: Option<ThreadId>,
    record: Box<FrameStruct>,
}

// SAFETY: the only non-Send/Sync field is `record.buffer`, a pointer into
// memory owned by the locked `Frame` (its mapping or its assembled bytes),
// valid wherever the frame is and only written under the mutex. `Stream` and
// `Frame` are Send + Sync (asserted below).
unsafe impl Send for Locked {}

const _: fn() = || {
    fn is_send_sync<T: Send + Sync>() {}
    is_send_sync::<Stream>();
    is_send_sync::<Frame>();
};

/// `SharedMemoryImageStream`: an opaque handle (an id, never dereferenced).
pub type SharedMemoryImageStream = *mut StreamObject;

/// Live streams by handle value. Ids are never reused, so a stale handle
/// cannot name a newer stream.
type Streams = HashMap<usize, Arc<StreamObject>>;
type Registry = Mutex<Streams>;

fn registry_mutex() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        // SAFETY: registers plain extern "C" functions without preconditions.
        unsafe { libc::pthread_atfork(Some(fork_prepare), Some(fork_done), Some(fork_done)) };
        Mutex::default()
    })
}

fn registry() -> MutexGuard<'static, Streams> {
    registry_mutex().lock().unwrap_or_else(|p| p.into_inner())
}

thread_local! {
    /// The registry, held by the forking thread across fork(), so the child
    /// never inherits it locked by a thread that does not exist there.
    static HELD_ACROSS_FORK: std::cell::RefCell<Option<MutexGuard<'static, Streams>>> =
        const { std::cell::RefCell::new(None) };
}

extern "C" fn fork_prepare() {
    let _ = catch_unwind(|| HELD_ACROSS_FORK.with(|h| *h.borrow_mut() = Some(registry())));
}

extern "C" fn fork_done() {
    let _ = catch_unwind(|| HELD_ACROSS_FORK.with(|h| h.borrow_mut().take()));
}

/// Handle values: odd and high, so they never look like small ints or a
/// pointer into this library's memory; never reused.
fn next_id() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    0x5348_0001 + 2 * NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The stream behind a handle, usable in this process (not closed, not
/// inherited across fork).
fn lookup(stream: SharedMemoryImageStream) -> Result<Arc<StreamObject>, Code> {
    if stream.is_null() {
        return Err(Code::BadArgs);
    }
    let obj = registry().get(&(stream as usize)).cloned().ok_or(Code::StaleHandle)?;
    obj.stream.check_usable().map_err(|e| e.code())?;
    Ok(obj)
}

impl StreamObject {
    fn locked(&self) -> MutexGuard<'_, Locked> {
        self.locked.lock().unwrap_or_else(|p| p.into_inner())
    }
}

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
                let obj = StreamObject {
                    stream: s,
                    locked: Mutex::new(Locked { frame: None, owner: None, record: Box::new(FrameStruct::EMPTY) }),
                };
                let id = next_id();
                registry().insert(id, Arc::new(obj));
                // SAFETY: as above.
                unsafe { stream.write(id as SharedMemoryImageStream) };
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
/// `stream` is any value (a destroyed or made-up handle answers
/// STALE_HANDLE); `frame` is NULL or points to writable storage for a pointer.
#[no_mangle]
pub unsafe extern "C" fn SharedMemoryImageStream_lock(
    stream: SharedMemoryImageStream,
    frame: *mut SharedMemoryFrame,
) -> SharedMemoryImageError {
    guarded(|| {
        let obj = match lookup(stream) {
            Ok(o) => o,
            Err(c) => return c,
        };
        if let Err(e) = obj.stream.client() {
            return e.code();
        }
        if frame.is_null() {
            return Code::BadArgs;
        }
        let mut l = obj.locked();
        if l.frame.is_some() {
            return Code::Locked;
        }
        let f = match obj.stream.lock() {
            Ok(f) => f,
            Err(e) => return e.code(),
        };
        let pixels = match f.pixels() {
            Ok(p) => p.as_ptr().cast_mut(),
            Err(e) => return e.code(),
        };
        // C's struct has a non-const pointer; the header documents the
        // pixels as read-only.
        *l.record = FrameStruct { iFrame: f.number(), iWidth: f.width(), iHeight: f.height(), buffer: pixels };
        l.frame = Some(f);
        l.owner = Some(std::thread::current().id());
        // SAFETY: non-null, and the caller promises it is writable. The
        // pointee is boxed in the stream object, so it stays put.
        unsafe { frame.write(&mut *l.record) };
        Code::NoError
    })
}

/// `SharedMemoryImageStream_unlock`: give the locked frame back. Only the
/// thread that locked it may: from another thread it answers NOT_LOCKED, so
/// one thread cannot pull a frame from under another that is reading it.
///
/// # Safety
/// `stream` is any value (a destroyed or made-up handle answers STALE_HANDLE).
#[no_mangle]
pub unsafe extern "C" fn SharedMemoryImageStream_unlock(stream: SharedMemoryImageStream) -> SharedMemoryImageError {
    guarded(|| {
        let obj = match lookup(stream) {
            Ok(o) => o,
            Err(c) => return c,
        };
        if let Err(e) = obj.stream.client() {
            return e.code();
        }
        let mut l = obj.locked();
        if l.frame.is_none() || l.owner != Some(std::thread::current().id()) {
            return Code::NotLocked;
        }
        // The pixels may now be overwritten by the server: a caller that
        // still uses the struct reads NULL instead of a changing frame.
        // The numbers stay, as code that logs them after unlock is common.
        l.record.buffer = ptr::null_mut();
        l.owner = None;
        match l.frame.take() {
            Some(f) => outcome(f.unlock()),
            None => Code::NotLocked,
        }
    })
}

/// `SharedMemoryImageStream_destroy`: a client unlocks and disconnects; then
/// the stream is unmapped, closed and freed. A second destroy of the same
/// handle answers STALE_HANDLE. In a fork() child, a stream of the parent is
/// released here without touching the parent's stream.
///
/// # Safety
/// `stream` is any value.
#[no_mangle]
pub unsafe extern "C" fn SharedMemoryImageStream_destroy(stream: SharedMemoryImageStream) -> SharedMemoryImageError {
    guarded(|| {
        if stream.is_null() {
            return Code::BadArgs;
        }
        let Some(obj) = registry().remove(&(stream as usize)) else { return Code::StaleHandle };
        // Close first: another thread inside a wait on this stream returns
        // now; its Arc keeps the object until that call ends.
        obj.stream.close();
        drop(obj);
        Code::NoError
    })
}

/// `SharedMemoryImageStream_putframe`: publish one frame of
/// `frame->iWidth * frame->iHeight * 3` bytes at `frame->buffer`.
///
/// # Safety
/// `stream` is any value; `frame` is NULL or points to a readable frame
/// struct whose `buffer` is NULL or holds `iWidth * iHeight * 3` readable
/// bytes.
#[no_mangle]
pub unsafe extern "C" fn SharedMemoryImageStream_putframe(
    stream: SharedMemoryImageStream,
    frame: SharedMemoryFrame,
) -> SharedMemoryImageError {
    guarded(|| {
        let obj = match lookup(stream) {
            Ok(o) => o,
            Err(c) => return c,
        };
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
            .and_then(|n| n.checked_mul(shmimage::layout::BYTES_PER_PIXEL as usize))
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
