//! Reading any bytes-like object (bytes, bytearray, memoryview, numpy arrays)
//! without copying it, under the abi3 (CPython >= 3.9) build.
//!
//! `Py_buffer` and `PyObject_GetBuffer` joined the limited API only in 3.11,
//! so pyo3 hides them from an abi3-py39 build. Both have been unchanged since
//! CPython 3.3 (3.11 adopted that exact layout into the stable ABI), and on
//! Linux an extension resolves them from the running interpreter at load
//! time; we declare them here. The wheel is Linux-only anyway (futex, OFD
//! locks), so the Windows `python3.dll` export list is not a concern.

use std::ffi::{c_char, c_int, c_void};
use std::marker::PhantomData;

use pyo3::ffi;
use pyo3::prelude::*;

#[repr(C)]
struct RawBuffer {
    buf: *mut c_void,
    obj: *mut ffi::PyObject,
    len: ffi::Py_ssize_t,
    itemsize: ffi::Py_ssize_t,
    readonly: c_int,
    ndim: c_int,
    format: *mut c_char,
    shape: *mut ffi::Py_ssize_t,
    strides: *mut ffi::Py_ssize_t,
    suboffsets: *mut ffi::Py_ssize_t,
    internal: *mut c_void,
}

extern "C" {
    fn PyObject_GetBuffer(obj: *mut ffi::PyObject, view: *mut RawBuffer, flags: c_int) -> c_int;
    fn PyBuffer_Release(view: *mut RawBuffer);
}

/// Plain contiguous bytes; the exporter refuses when it cannot give them.
const PYBUF_SIMPLE: c_int = 0;
const PYBUF_FORMAT: c_int = 0x0004;
const PYBUF_ND: c_int = 0x0008;
const PYBUF_STRIDES: c_int = 0x0010 | PYBUF_ND;
const PYBUF_C_CONTIGUOUS: c_int = 0x0020 | PYBUF_STRIDES;

/// A held buffer export: the exporter keeps the memory in place (a bytearray
/// cannot resize, a numpy array cannot be resized) until this is dropped.
pub(crate) struct Bytes<'py> {
    view: Box<RawBuffer>,
    _py: PhantomData<Python<'py>>,
}

/// What `Bytes::shape` reports for an n-dimensional export.
pub(crate) struct Shape {
    pub dims: Vec<usize>,
    pub format: String,
    pub itemsize: usize,
}

impl<'py> Bytes<'py> {
    /// The raw bytes of any C-contiguous buffer.
    pub(crate) fn get(obj: &Bound<'py, PyAny>) -> PyResult<Bytes<'py>> {
        Self::get_with(obj, PYBUF_SIMPLE)
    }

    /// The bytes plus shape and item format (for arrays).
    pub(crate) fn get_shaped(obj: &Bound<'py, PyAny>) -> PyResult<Bytes<'py>> {
        Self::get_with(obj, PYBUF_C_CONTIGUOUS | PYBUF_FORMAT)
    }

    fn get_with(obj: &Bound<'py, PyAny>, flags: c_int) -> PyResult<Bytes<'py>> {
        // Boxed so the struct never moves while exported: some exporters keep
        // a pointer to the view they filled.
        // SAFETY: all-zero is a valid (empty) Py_buffer; GetBuffer fills it.
        let mut view: Box<RawBuffer> = Box::new(unsafe { std::mem::zeroed() });
        // SAFETY: obj is a live object (we hold the GIL through `Bound`), and
        // `view` points to writable memory of the right layout.
        let rc = unsafe { PyObject_GetBuffer(obj.as_ptr(), &mut *view, flags) };
        if rc != 0 {
            return Err(PyErr::fetch(obj.py()));
        }
        Ok(Bytes { view, _py: PhantomData })
    }

    /// The exported bytes as an address and length, for use while the GIL is
    /// released (raw pointers are not `Send`; the export keeps the memory).
    pub(crate) fn raw(&self) -> (usize, usize) {
        (self.view.buf as usize, self.len())
    }

    pub(crate) fn len(&self) -> usize {
        usize::try_from(self.view.len).unwrap_or(0)
    }

    /// Shape and format, when the export was requested with them.
    pub(crate) fn shape(&self) -> Shape {
        let ndim = usize::try_from(self.view.ndim).unwrap_or(0);
        let dims = if self.view.shape.is_null() {
            vec![self.len()]
        } else {
            // SAFETY: with PyBUF_ND the exporter provides `ndim` extents.
            unsafe { std::slice::from_raw_parts(self.view.shape, ndim) }
                .iter()
                .map(|&d| usize::try_from(d).unwrap_or(0))
                .collect()
        };
        let format = if self.view.format.is_null() {
            "B".to_owned()
        } else {
            // SAFETY: the exporter gives a NUL-terminated struct format string
            // that lives as long as the export.
            unsafe { std::ffi::CStr::from_ptr(self.view.format) }.to_string_lossy().into_owned()
        };
        Shape { dims, format, itemsize: usize::try_from(self.view.itemsize).unwrap_or(0) }
    }
}

/// Run `f` on the bytes with the GIL released. The caller must not let other
/// Python threads write the object meanwhile (they would see torn pixels; the
/// memory itself stays valid because the export is held).
pub(crate) fn with_slice_detached<T: Send>(py: Python<'_>, bytes: &Bytes<'_>, f: impl FnOnce(&[u8]) -> T + Send) -> T {
    let (addr, len) = bytes.raw();
    py.detach(move || {
        let slice: &[u8] = if len == 0 {
            &[]
        } else {
            // SAFETY: the held export guarantees `len` readable bytes at `addr`
            // until `bytes` is dropped, which cannot happen inside this call.
            unsafe { std::slice::from_raw_parts(addr as *const u8, len) }
        };
        f(slice)
    })
}

impl Drop for Bytes<'_> {
    fn drop(&mut self) {
        // SAFETY: the view was filled by a successful PyObject_GetBuffer and is
        // released exactly once; `Bytes<'py>` proves the GIL is held.
        unsafe { PyBuffer_Release(&mut *self.view) }
    }
}
