//! The functions of EnSight's `ensight_grpc_shmem`, call for call.
//!
//! Behaviour kept from the original C module, because code in the wild
//! (ansys-pyensight's EnSightGRPC) depends on it:
//! - stream ids are slots 0..49 and the last free slot is handed out first,
//!   so the first stream is 49: callers test the id for truthiness;
//! - stream_lock returns a real `dict` (callers test `type(img) is dict`)
//!   with a `bytes` copy of the pixels, or the non-negative int code;
//! - a negative code raises RuntimeError with the code's error string;
//! - destroy frees the slot even when the stream reports an error.
//!
//! Deliberate differences (see docs/python.md): RECONNECTING from create
//! returns a stored, usable id instead of the bare code 3; pixeldata may be
//! any bytes-like object; the GIL is released while the engine works.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use pyo3::exceptions::PyRuntimeError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use shmimage::{Code, Error, Frame, Stream};

use crate::buffer;
use crate::errors;

/// How many streams may be open at once (the original's table size).
const MAX_STREAMS: usize = 50;

/// One drop-in stream: the engine stream (shared by every thread; it
/// serializes itself) and the frame `stream_lock` locked, since EnSight's API
/// holds at most one per stream. The frame is shared (`Arc`) with the
/// `stream_lock` call still copying it, so a `stream_unlock` from another
/// thread cannot hand the buffer back under that copy: the buffer goes back
/// when the copy is done, and the dict always holds its own frame's pixels.
struct DropStream {
    stream: Stream,
    locked: Mutex<Option<Arc<Frame>>>,
}

impl DropStream {
    /// Lock the newest frame as this stream's one locked frame.
    fn lock_frame(&self) -> Result<Arc<Frame>, Error> {
        self.stream.client()?;
        let mut held = lock_held(&self.locked);
        if held.is_some() {
            return Err(Error::Locked);
        }
        let frame = Arc::new(self.stream.lock()?);
        *held = Some(Arc::clone(&frame));
        Ok(frame)
    }

    /// Give this stream's locked frame back (at once, or when a copy of it
    /// in flight on another thread ends).
    fn unlock_frame(&self) -> Result<(), Error> {
        self.stream.client()?;
        let frame = lock_held(&self.locked).take().ok_or(Error::NotLocked)?;
        match Arc::try_unwrap(frame) {
            Ok(frame) => frame.unlock(),
            Err(_in_flight) => Ok(()),
        }
    }
}

type Slot = Arc<DropStream>;

/// The open streams.
///
/// Lock order and the GIL: the table mutex is held only for lookups and never
/// across anything that needs the GIL; a stream's `locked` mutex is taken
/// only with the GIL released. So no thread ever waits for the GIL while
/// holding a mutex another thread waits for with the GIL: no deadlock.
static STREAMS: Mutex<[Option<Slot>; MAX_STREAMS]> = Mutex::new([const { None }; MAX_STREAMS]);

fn table() -> MutexGuard<'static, [Option<Slot>; MAX_STREAMS]> {
    // A panic cannot leave the table half-updated: every change is one store.
    STREAMS.lock().unwrap_or_else(PoisonError::into_inner)
}

fn lock_held(m: &Mutex<Option<Arc<Frame>>>) -> MutexGuard<'_, Option<Arc<Frame>>> {
    // One store per change: a panic cannot leave it half-updated.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn unknown_id() -> PyErr {
    PyRuntimeError::new_err("Unknown stream id")
}

fn lookup(stream_id: i64) -> PyResult<Slot> {
    let index = usize::try_from(stream_id).map_err(|_| unknown_id())?;
    table().get(index).and_then(Clone::clone).ok_or_else(unknown_id)
}

/// EnSight's `return_error`: a non-negative code is returned, a negative one raised.
fn outcome(result: Result<(), Error>) -> PyResult<i32> {
    match result {
        Ok(()) => Ok(Code::NoError as i32),
        Err(e) if !e.code().is_error() => Ok(e.code() as i32),
        Err(e) => Err(errors::runtime(&e)),
    }
}

/// The index of the last free slot, which the original hands out first.
fn last_free(slots: &[Option<Slot>]) -> Option<usize> {
    slots.iter().rposition(Option::is_none)
}

fn too_many() -> PyErr {
    PyRuntimeError::new_err("Maximum number of simultaneous streams open")
}

/// Open `filename` as a stream (OPTIONS_SERVER for a server, OPTIONS_NONE for
/// a client) and return its id.
#[pyfunction]
#[pyo3(signature = (filename, options = 0))]
fn stream_create(py: Python<'_>, filename: std::path::PathBuf, options: i64) -> PyResult<i64> {
    if last_free(&*table()).is_none() {
        return Err(too_many());
    }
    let opts = u32::try_from(options)
        .map_err(|_| errors::runtime(&Error::BadArgs(format!("options {options} is not a valid option bit set"))))?;
    let (stream, _code) = py.detach(|| Stream::create(&filename, opts)).map_err(|e| errors::runtime(&e))?;
    // RECONNECTING means the file already carried a stream and the new one
    // works (protocol.md); the original returned the bare code 3 here as if it
    // were an id and lost the stream. We store it and return its real id.
    // A frame that travels in two bands stays in the two buffers and is
    // copied once, straight into the bytes object stream_lock returns.
    // SHMIMAGE_DROPIN_BANDS=assemble restores the old two copies, for the
    // before/after measurement (crates/shmimage-python/bench/bench_banded.py).
    if let Ok(client) = stream.client() {
        let assemble = std::env::var_os("SHMIMAGE_DROPIN_BANDS").is_some_and(|v| v == "assemble");
        client.set_two_band_frames_in_place(!assemble);
    }
    let slot = Arc::new(DropStream { stream, locked: Mutex::new(None) });
    let mut slots = table();
    match last_free(&*slots) {
        Some(i) => {
            slots[i] = Some(slot);
            Ok(i as i64)
        }
        None => {
            drop(slots);
            // Another thread took the last slot meanwhile; close ours quietly.
            py.detach(move || drop(slot));
            Err(too_many())
        }
    }
}

/// Lock the newest frame: a dict with width, height, framenumber and a bytes
/// copy of the pixels, or the int code (e.g. ERROR_NO_FRAMEAVAILABLE).
#[pyfunction]
fn stream_lock(py: Python<'_>, stream_id: i64) -> PyResult<Py<PyAny>> {
    let slot = lookup(stream_id)?;
    let frame = match py.detach(|| slot.lock_frame()) {
        Ok(frame) => frame,
        Err(e) if !e.code().is_error() => return Ok((e.code() as i32).into_pyobject(py)?.into_any().unbind()),
        Err(e) => return Err(errors::runtime(&e)),
    };
    let info = frame.info();
    let pixels = copy_pixels(py, &frame, info.len())?;
    drop(frame);
    let dict = PyDict::new(py);
    dict.set_item("width", info.width)?;
    dict.set_item("height", info.height)?;
    dict.set_item("framenumber", info.number)?;
    dict.set_item("pixeldata", pixels)?;
    Ok(dict.into_any().unbind())
}

/// A new bytes object holding the frame's pixels, copied with the GIL
/// released. `frame` keeps the frame locked until the copy is done, whatever
/// other threads do with the stream meanwhile.
fn copy_pixels<'py>(py: Python<'py>, frame: &Frame, len: usize) -> PyResult<Bound<'py, PyBytes>> {
    let size = ffi::Py_ssize_t::try_from(len).map_err(|_| PyRuntimeError::new_err("frame too large for bytes"))?;
    // Built uninitialised and filled once, instead of PyBytes::new_with, which
    // would first zero the megabytes it is about to overwrite.
    // SAFETY: a NULL source asks CPython for an uninitialised bytes object of
    // `size` bytes; the result is checked for NULL (an exception is then set).
    let raw = unsafe { ffi::PyBytes_FromStringAndSize(std::ptr::null(), size) };
    if raw.is_null() {
        return Err(PyErr::fetch(py));
    }
    // SAFETY: `raw` is a new, owned, non-NULL reference.
    let bytes = unsafe { Bound::from_owned_ptr(py, raw) }.cast_into::<PyBytes>()?;
    // SAFETY: PyBytes_AsString of a bytes object returns its buffer of `len`
    // bytes (plus NUL), valid while `bytes` lives; nobody else has seen the
    // object yet, so writing it does not break bytes' immutability.
    let dst = unsafe { ffi::PyBytes_AsString(bytes.as_ptr()) } as usize;
    py.detach(|| {
        // SAFETY: dst is the new bytes object's buffer of exactly len bytes
        // (see above), which nothing else references yet.
        let dst = unsafe { std::slice::from_raw_parts_mut(dst as *mut u8, len) };
        frame.copy_to(dst)
    })
    .map_err(|e| errors::runtime(&e))?;
    Ok(bytes)
}

/// Give the locked frame back.
#[pyfunction]
fn stream_unlock(py: Python<'_>, stream_id: i64) -> PyResult<i32> {
    let slot = lookup(stream_id)?;
    outcome(py.detach(|| slot.unlock_frame()))
}

/// Publish one RGB frame (a server stream). `pixeldata` is any bytes-like
/// object of at least width*height*3 bytes.
#[pyfunction]
fn stream_putframe(
    py: Python<'_>,
    stream_id: i64,
    width: i64,
    height: i64,
    framenumber: i64,
    pixeldata: &Bound<'_, PyAny>,
) -> PyResult<i32> {
    let slot = lookup(stream_id)?;
    let needed = width.checked_mul(height).and_then(|n| n.checked_mul(3)).filter(|&n| n >= 1);
    let (w, h, needed) = match (u32::try_from(width), u32::try_from(height), needed) {
        (Ok(w), Ok(h), Some(n)) => (w, h, n),
        _ => return Err(PyRuntimeError::new_err("Invalid frame size")),
    };
    let bytes =
        buffer::Bytes::get(pixeldata).map_err(|_| PyRuntimeError::new_err("Pixeldata must be a bytes-like object"))?;
    if (bytes.len() as u64) < needed as u64 {
        return Err(PyRuntimeError::new_err(format!(
            "Pixeldata too small: {} bytes for a {width}x{height} frame that needs {needed}",
            bytes.len()
        )));
    }
    // Frame numbers are u32 in the header and wrap around (the original cast
    // its C int the same way).
    let number = framenumber as u32;
    let result = buffer::with_slice_detached(py, &bytes, |px| slot.stream.put_frame(number, w, h, px));
    outcome(result)
}

/// Close the stream and free its id (even when closing reports an error).
#[pyfunction]
fn stream_destroy(py: Python<'_>, stream_id: i64) -> PyResult<i32> {
    let index = usize::try_from(stream_id).map_err(|_| unknown_id())?;
    let slot = table().get_mut(index).and_then(Option::take).ok_or_else(unknown_id)?;
    // A lock in flight on another thread holds its own Arc; the stream closes
    // when the last one goes. Closing joins the client's monitor thread, so
    // it runs without the GIL.
    py.detach(move || drop(slot));
    Ok(Code::NoError as i32)
}

/// Destroy every open stream (registered with atexit).
#[pyfunction]
fn _destroy_all(py: Python<'_>) {
    let slots: Vec<Slot> = table().iter_mut().filter_map(Option::take).collect();
    py.detach(move || drop(slots));
}

/// The number of open streams (for tests and diagnostics).
#[pyfunction]
fn _open_streams() -> usize {
    table().iter().filter(|s| s.is_some()).count()
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("version", shmimage::API_VERSION)?;
    m.add("OPTIONS_NONE", shmimage::options::NONE)?;
    m.add("OPTIONS_SERVER", shmimage::options::SERVER)?;
    m.add("OPTIONS_FLIPVERTICAL", shmimage::options::FLIPVERTICAL)?;
    m.add("ERROR_NOERROR", Code::NoError as i32)?;
    m.add("ERROR_NO_BUFFERAVAILABLE", Code::NoBufferAvailable as i32)?;
    m.add("ERROR_NO_FRAMEAVAILABLE", Code::NoFrameAvailable as i32)?;
    m.add("ERROR_RECONNECTING", Code::Reconnecting as i32)?;
    m.add("ERROR_UNCONNECTED", Code::Unconnected as i32)?;
    m.add_function(wrap_pyfunction!(stream_create, m)?)?;
    m.add_function(wrap_pyfunction!(stream_lock, m)?)?;
    m.add_function(wrap_pyfunction!(stream_unlock, m)?)?;
    m.add_function(wrap_pyfunction!(stream_putframe, m)?)?;
    m.add_function(wrap_pyfunction!(stream_destroy, m)?)?;
    m.add_function(wrap_pyfunction!(_destroy_all, m)?)?;
    m.add_function(wrap_pyfunction!(_open_streams, m)?)?;
    Ok(())
}
