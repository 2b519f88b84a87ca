//! The C face of the native stream, declared by `include/shmimage.h` (our
//! own header, beside EnSight's). No protocol logic: every call translates
//! its arguments for `shmimage::native` and its answer to an int code
//! (`native::Error::code`).
//!
//! Handles (writer, reader, loan, frame) are ids in one registry, never
//! pointers the library dereferences: a destroyed, released or made-up handle
//! answers SHMIMAGE_STALE_HANDLE. Every function may be called from any
//! thread; no panic crosses into C.

use std::collections::HashMap;
use std::ffi::{c_char, c_int, CStr, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use shmimage::native::{
    self, FrameDesc, PixelFormat, ReadFrame, Reader, ReaderOptions, WriteLoan, Writer, WriterOptions,
};
use shmimage::Code;

/// A plane as C sees it (`shmimage_plane`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct CPlane {
    /// Byte offset of the plane from `pixels`.
    pub offset: u64,
    /// Bytes from one row to the next.
    pub stride: u32,
    /// Bytes of pixels in a row.
    pub row_bytes: u32,
    /// Rows.
    pub rows: u32,
    /// Zero.
    pub reserved: u32,
}

/// A frame as C sees it (`shmimage_frame`): a read frame, or a loan's slot.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct CFrame {
    /// The frame (or loan) handle: release it with shmimage_frame_release
    /// (or commit / abandon the loan).
    pub handle: u64,
    /// `shmimage_format`.
    pub format: u32,
    /// Pixels per row.
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// Planes used in `planes`.
    pub plane_count: u32,
    /// Where each plane lies from `pixels`.
    pub planes: [CPlane; 3],
    /// Sequence number (0 for a loan: assigned at commit).
    pub sequence: u64,
    /// Capture time, CLOCK_MONOTONIC ns.
    pub capture_mono_ns: u64,
    /// Capture time, CLOCK_REALTIME ns.
    pub capture_real_ns: u64,
    /// Publish time, CLOCK_MONOTONIC ns.
    pub publish_mono_ns: u64,
    /// Publish time, CLOCK_REALTIME ns.
    pub publish_real_ns: u64,
    /// Frame flags.
    pub flags: u32,
    /// Epoch of the writer that wrote it.
    pub epoch: u32,
    /// Frames skipped before this one by this reader.
    pub missed_before: u64,
    /// The frame's bytes (`len` of them); writable for a loan only.
    pub pixels: *mut u8,
    /// Bytes at `pixels`.
    pub len: u64,
    /// The user metadata (read frames).
    pub metadata: *const u8,
    /// Bytes at `metadata`.
    pub metadata_len: u64,
}

/// `shmimage_writer_options`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct CWriterOptions {
    /// Slots (K), 2..=64; 0 = default (4).
    pub slots: u32,
    /// Metadata bytes per slot; 0 = default (4096).
    pub metadata_bytes: u32,
    /// Pixel bytes of one slot (required for create).
    pub slot_bytes: u64,
    /// Milliseconds a loan waits for lossless readers; -1 = as long as it takes.
    pub lossless_wait_ms: i64,
}

enum Object {
    Writer(Writer),
    Reader(Reader),
    Loan(Mutex<Option<WriteLoan>>),
    /// Kept for its drop: while it is here, its slot stays held.
    Frame(#[allow(dead_code)] ReadFrame),
}

fn registry() -> MutexGuard<'static, HashMap<u64, Arc<Object>>> {
    static REGISTRY: OnceLock<Mutex<HashMap<u64, Arc<Object>>>> = OnceLock::new();
    REGISTRY.get_or_init(Mutex::default).lock().unwrap_or_else(|p| p.into_inner())
}

fn insert(o: Object) -> u64 {
    // Odd, high and never reused: a stale handle cannot name a newer object.
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let id = 0x5348_4e00_0001 + 2 * NEXT.fetch_add(1, Ordering::Relaxed);
    registry().insert(id, Arc::new(o));
    id
}

fn lookup(id: u64) -> Result<Arc<Object>, c_int> {
    registry().get(&id).cloned().ok_or(Code::StaleHandle as c_int)
}

/// Take handle `id` out of the registry if `kind` accepts its object
/// (BAD_ARGS otherwise, and the handle stays; STALE_HANDLE when unknown). The
/// kind is checked under the registry lock, so a handle of another kind is
/// never missing for a moment. The caller drops the object after the lock is
/// released: dropping a frame or a reader touches the stream.
fn remove(id: u64, kind: impl Fn(&Object) -> bool) -> Result<Arc<Object>, c_int> {
    let mut reg = registry();
    match reg.get(&id).map(|o| kind(o)) {
        Some(true) => reg.remove(&id).ok_or(Code::StaleHandle as c_int),
        Some(false) => Err(Code::BadArgs as c_int),
        None => Err(Code::StaleHandle as c_int),
    }
}

fn guarded(body: impl FnOnce() -> Result<(), c_int>) -> c_int {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => 0,
        Ok(Err(c)) => c,
        Err(_) => Code::BadArgs as c_int,
    }
}

fn code(e: native::Error) -> c_int {
    e.code()
}

fn timeout(ms: i64) -> Option<Duration> {
    (ms >= 0).then(|| Duration::from_millis(ms as u64))
}

/// # Safety
/// `path` is NULL or a NUL-terminated string.
unsafe fn path_arg<'a>(path: *const c_char) -> Result<&'a Path, c_int> {
    if path.is_null() {
        return Err(Code::BadArgs as c_int);
    }
    // SAFETY: non-null and NUL-terminated by the caller's contract.
    let bytes = unsafe { CStr::from_ptr(path) }.to_bytes();
    Ok(Path::new(OsStr::from_bytes(bytes)))
}

/// # Safety
/// `out` is NULL or writable for one `T`.
unsafe fn put<T>(out: *mut T, v: T) -> Result<(), c_int> {
    if out.is_null() {
        return Err(Code::BadArgs as c_int);
    }
    // SAFETY: non-null and writable by the caller's contract.
    unsafe { out.write(v) };
    Ok(())
}

fn fill_desc(d: &FrameDesc, f: &mut CFrame) {
    f.format = d.format().code();
    f.width = d.width();
    f.height = d.height();
    f.plane_count = d.planes().len() as u32;
    for (c, p) in f.planes.iter_mut().zip(d.planes()) {
        *c = CPlane { offset: p.offset, stride: p.stride, row_bytes: p.row_bytes, rows: p.rows, reserved: 0 };
    }
    f.len = d.len();
}

const EMPTY_FRAME: CFrame = CFrame {
    handle: 0,
    format: 0,
    width: 0,
    height: 0,
    plane_count: 0,
    planes: [CPlane { offset: 0, stride: 0, row_bytes: 0, rows: 0, reserved: 0 }; 3],
    sequence: 0,
    capture_mono_ns: 0,
    capture_real_ns: 0,
    publish_mono_ns: 0,
    publish_real_ns: 0,
    flags: 0,
    epoch: 0,
    missed_before: 0,
    pixels: ptr::null_mut(),
    len: 0,
    metadata: ptr::null(),
    metadata_len: 0,
};

fn writer_options(o: Option<&CWriterOptions>) -> WriterOptions {
    let mut w = WriterOptions::default();
    if let Some(o) = o {
        if o.slots != 0 {
            w.slots = o.slots;
        }
        if o.metadata_bytes != 0 {
            w.metadata_bytes = o.metadata_bytes;
        }
        w.slot_bytes = o.slot_bytes;
        w.lossless_wait = timeout(o.lossless_wait_ms);
    }
    w
}

/// The body of `shmimage_writer_create` and `shmimage_writer_open`, which
/// differ only in how the engine's writer is made.
///
/// # Safety
/// `path` is a NUL-terminated string; `options` NULL or valid; `out` writable.
unsafe fn new_writer(
    path: *const c_char,
    options: *const CWriterOptions,
    out: *mut u64,
    make: fn(&Path, &WriterOptions) -> shmimage::native::Result<Writer>,
) -> c_int {
    guarded(|| {
        // SAFETY: forwarded from this function's contract.
        let path = unsafe { path_arg(path)? };
        // SAFETY: NULL or a valid options struct, by contract.
        let o = writer_options(unsafe { options.as_ref() });
        let w = make(path, &o).map_err(code)?;
        // SAFETY: forwarded.
        unsafe { put(out, insert(Object::Writer(w))) }
    })
}

/// `shmimage_writer_create`: create a new native stream file and become its writer.
///
/// # Safety
/// `path` is a NUL-terminated string; `options` NULL or valid; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn shmimage_writer_create(
    path: *const c_char,
    options: *const CWriterOptions,
    out: *mut u64,
) -> c_int {
    // SAFETY: forwarded from this function's contract.
    unsafe { new_writer(path, options, out, |p, o| Writer::create(p, o)) }
}

/// `shmimage_writer_open`: become the writer of an existing native stream
/// (taking over a dead writer); a live writer is SHMIMAGE_PEER_BUSY.
///
/// # Safety
/// As for `shmimage_writer_create`.
#[no_mangle]
pub unsafe extern "C" fn shmimage_writer_open(
    path: *const c_char,
    options: *const CWriterOptions,
    out: *mut u64,
) -> c_int {
    // SAFETY: forwarded from this function's contract.
    unsafe { new_writer(path, options, out, |p, o| Writer::open(p, o)) }
}

fn writer(id: u64) -> Result<Arc<Object>, c_int> {
    let o = lookup(id)?;
    match *o {
        Object::Writer(_) => Ok(o),
        _ => Err(Code::BadArgs as c_int),
    }
}

/// `shmimage_writer_put`: publish one frame by copying `len` bytes of
/// `pixels` laid out with `stride` bytes per row of plane 0 (0 = packed;
/// planar formats: packed only). Writes the sequence to `*sequence` if not NULL.
///
/// # Safety
/// `pixels` readable for `len` bytes; `metadata` readable for `metadata_len`
/// (or NULL with 0); `sequence` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmimage_writer_put(
    writer_handle: u64,
    format: u32,
    width: u32,
    height: u32,
    stride: u32,
    pixels: *const u8,
    len: u64,
    metadata: *const u8,
    metadata_len: u64,
    flags: u32,
    sequence: *mut u64,
) -> c_int {
    guarded(|| {
        let o = writer(writer_handle)?;
        let Object::Writer(w) = &*o else { return Err(Code::BadArgs as c_int) };
        let f = PixelFormat::from_code(format).ok_or(native::code::INVALID_DESC)?;
        let desc = if stride == 0 {
            FrameDesc::packed(f, width, height)
        } else {
            FrameDesc::with_strides(f, width, height, &[stride])
        }
        .map_err(|e| code(e.into()))?;
        if pixels.is_null() || (metadata.is_null() && metadata_len != 0) {
            return Err(Code::BadArgs as c_int);
        }
        // SAFETY: readable for len bytes by the caller's contract.
        let px = unsafe { std::slice::from_raw_parts(pixels, len as usize) };
        let meta = if metadata_len == 0 {
            Vec::new()
        } else {
            // SAFETY: readable for metadata_len bytes by the caller's contract.
            unsafe { std::slice::from_raw_parts(metadata, metadata_len as usize) }.to_vec()
        };
        let info = native::FrameInfo { metadata: meta, flags, capture: None };
        let seq = w.put(&desc, px, &info).map_err(code)?;
        if !sequence.is_null() {
            // SAFETY: non-null and writable by contract.
            unsafe { sequence.write(seq) };
        }
        Ok(())
    })
}

/// `shmimage_writer_loan`: loan a slot for a `format` frame of `width` x
/// `height` with rows padded to 64 bytes; `*frame` describes it (`pixels`
/// writable, `handle` the loan). Waits up to `timeout_ms` (-1 forever).
///
/// # Safety
/// `frame` writable.
#[no_mangle]
pub unsafe extern "C" fn shmimage_writer_loan(
    writer_handle: u64,
    format: u32,
    width: u32,
    height: u32,
    timeout_ms: i64,
    frame: *mut CFrame,
) -> c_int {
    guarded(|| {
        let o = writer(writer_handle)?;
        let Object::Writer(w) = &*o else { return Err(Code::BadArgs as c_int) };
        if frame.is_null() {
            return Err(Code::BadArgs as c_int);
        }
        let f = PixelFormat::from_code(format).ok_or(native::code::INVALID_DESC)?;
        let desc = FrameDesc::new(f, width, height).map_err(|e| code(e.into()))?;
        let mut loan = w.loan(&desc, timeout(timeout_ms)).map_err(code)?;
        let mut c = EMPTY_FRAME;
        fill_desc(&desc, &mut c);
        c.pixels = loan.pixels_mut().as_mut_ptr();
        c.handle = insert(Object::Loan(Mutex::new(Some(loan))));
        // SAFETY: non-null and writable by contract.
        unsafe { frame.write(c) };
        Ok(())
    })
}

fn take_loan(handle: u64) -> Result<WriteLoan, c_int> {
    let o = remove(handle, |o| matches!(o, Object::Loan(_)))?;
    match &*o {
        Object::Loan(m) => m.lock().unwrap_or_else(|p| p.into_inner()).take().ok_or(Code::StaleHandle as c_int),
        _ => Err(Code::BadArgs as c_int),
    }
}

/// `shmimage_loan_commit`: publish a loaned frame with its metadata and
/// flags; the loan handle is used up. Writes the sequence if not NULL.
///
/// # Safety
/// `metadata` readable for `metadata_len` (or NULL with 0); `sequence` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmimage_loan_commit(
    loan_handle: u64,
    metadata: *const u8,
    metadata_len: u64,
    flags: u32,
    sequence: *mut u64,
) -> c_int {
    guarded(|| {
        if metadata.is_null() && metadata_len != 0 {
            return Err(Code::BadArgs as c_int);
        }
        let mut loan = take_loan(loan_handle)?;
        if metadata_len != 0 {
            // SAFETY: readable for metadata_len bytes by contract.
            let m = unsafe { std::slice::from_raw_parts(metadata, metadata_len as usize) };
            loan.set_metadata(m).map_err(code)?;
        }
        loan.set_flags(flags);
        let seq = loan.commit().map_err(code)?;
        if !sequence.is_null() {
            // SAFETY: non-null and writable by contract.
            unsafe { sequence.write(seq) };
        }
        Ok(())
    })
}

/// `shmimage_loan_abandon`: give a loaned slot back unpublished.
#[no_mangle]
pub extern "C" fn shmimage_loan_abandon(loan_handle: u64) -> c_int {
    guarded(|| take_loan(loan_handle).map(drop))
}

/// `shmimage_reader_open`: join a native stream (lossless if `lossless` != 0).
///
/// # Safety
/// `path` a NUL-terminated string; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn shmimage_reader_open(path: *const c_char, lossless: c_int, out: *mut u64) -> c_int {
    guarded(|| {
        // SAFETY: forwarded from this function's contract.
        let path = unsafe { path_arg(path)? };
        let r = Reader::open(path, &ReaderOptions { lossless: lossless != 0 }).map_err(code)?;
        // SAFETY: forwarded.
        unsafe { put(out, insert(Object::Reader(r))) }
    })
}

/// `shmimage_reader_read`: the next frame (newest, or next for a lossless
/// reader), held in place until `shmimage_frame_release`. Waits up to
/// `timeout_ms` (-1 forever, 0 poll): SHMIMAGE_NO_FRAME_AVAILABLE.
///
/// # Safety
/// `frame` writable.
#[no_mangle]
pub unsafe extern "C" fn shmimage_reader_read(reader_handle: u64, timeout_ms: i64, frame: *mut CFrame) -> c_int {
    guarded(|| {
        let o = lookup(reader_handle)?;
        let Object::Reader(r) = &*o else { return Err(Code::BadArgs as c_int) };
        if frame.is_null() {
            return Err(Code::BadArgs as c_int);
        }
        let f = r.read(timeout(timeout_ms)).map_err(code)?;
        let mut c = EMPTY_FRAME;
        fill_desc(f.desc(), &mut c);
        let t = f.timestamps();
        c.sequence = f.sequence();
        c.capture_mono_ns = t.capture_mono_ns;
        c.capture_real_ns = t.capture_real_ns;
        c.publish_mono_ns = t.publish_mono_ns;
        c.publish_real_ns = t.publish_real_ns;
        c.flags = f.flags();
        c.epoch = f.epoch();
        c.missed_before = f.missed_before();
        c.pixels = f.pixels().as_ptr().cast_mut();
        c.metadata = f.metadata().as_ptr();
        c.metadata_len = f.metadata().len() as u64;
        c.handle = insert(Object::Frame(f));
        // SAFETY: non-null and writable by contract.
        unsafe { frame.write(c) };
        Ok(())
    })
}

/// `shmimage_reader_missed`: frames this reader missed so far.
///
/// # Safety
/// `out` writable.
#[no_mangle]
pub unsafe extern "C" fn shmimage_reader_missed(reader_handle: u64, out: *mut u64) -> c_int {
    guarded(|| {
        let o = lookup(reader_handle)?;
        let Object::Reader(r) = &*o else { return Err(Code::BadArgs as c_int) };
        // SAFETY: forwarded.
        unsafe { put(out, r.missed()) }
    })
}

/// `shmimage_frame_release`: let the writer have the frame's slot back.
#[no_mangle]
pub extern "C" fn shmimage_frame_release(frame_handle: u64) -> c_int {
    guarded(|| remove(frame_handle, |o| matches!(o, Object::Frame(_))).map(drop))
}

/// `shmimage_close`: end every wait of a writer or reader now (they answer
/// SHMIMAGE_CLOSED); the handle stays valid until destroyed.
#[no_mangle]
pub extern "C" fn shmimage_close(handle: u64) -> c_int {
    guarded(|| {
        match &*lookup(handle)? {
            Object::Writer(w) => w.close(),
            Object::Reader(r) => r.close(),
            _ => return Err(Code::BadArgs as c_int),
        }
        Ok(())
    })
}

/// `shmimage_destroy`: destroy a writer or reader handle (its frames and
/// loans stay usable until released).
#[no_mangle]
pub extern "C" fn shmimage_destroy(handle: u64) -> c_int {
    guarded(|| remove(handle, |o| matches!(o, Object::Writer(_) | Object::Reader(_))).map(drop))
}

/// `shmimage_errorstring`: a static description of any code.
#[no_mangle]
pub extern "C" fn shmimage_errorstring(code: c_int) -> *const c_char {
    let s: &'static CStr = match code {
        native::code::ALREADY_EXISTS => c"the stream file already exists",
        native::code::WRONG_PROTOCOL => c"the file is a stream of the other protocol (EnSight 1.0 vs native)",
        native::code::NOT_A_STREAM => c"the file is not a stream file",
        native::code::UNSUPPORTED_VERSION => c"the native stream's layout version is not supported; upgrade",
        native::code::CORRUPT => c"the stream file holds impossible values (damaged or hostile)",
        native::code::READERS_FULL => c"the stream already has the most readers it holds (64)",
        native::code::METADATA_TOO_LARGE => c"the metadata does not fit in a slot's metadata area",
        native::code::INVALID_DESC => c"invalid frame descriptor (format, size or stride)",
        _ => return crate::SharedMemoryImageStream_errorstring(code),
    };
    s.as_ptr()
}

/// `shmimage_format_name`: "RGB8", ..., or NULL for an unknown code.
#[no_mangle]
pub extern "C" fn shmimage_format_name(format: u32) -> *const c_char {
    const NAMES: [&CStr; 11] = [
        c"RGB8",
        c"BGR8",
        c"RGBA8",
        c"BGRA8",
        c"RGBX8",
        c"BGRX8",
        c"GRAY8",
        c"GRAY16_LE",
        c"GRAY32F",
        c"I420",
        c"NV12",
    ];
    match PixelFormat::from_code(format) {
        Some(f) => NAMES.iter().find(|n| n.to_bytes() == f.name().as_bytes()).map_or(ptr::null(), |n| n.as_ptr()),
        None => ptr::null(),
    }
}
