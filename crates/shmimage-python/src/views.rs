//! Zero-copy numpy views of shared memory, and copies out of it.
//!
//! `Frame.array()` and `Loan.array()` hand numpy a `_PixelView` object
//! exposing `__array_interface__` (numpy keeps it as the array's base). Each
//! view counts itself in its owner's counter while it lives (`Lent`), and the
//! owner refuses to give the memory back (release, commit, abandon, close)
//! while the count is not zero: a numpy array can never see memory that has
//! changed hands.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

/// The numpy view's base object: an address range in shared memory that stays
/// valid while this object lives (it keeps its owner, and so the mapping,
/// alive, and its owner refuses to hand the memory back meanwhile).
#[pyclass(frozen, module = "shmimage", name = "_PixelView")]
pub(crate) struct PixelView {
    addr: usize,
    geometry: Geometry,
    writable: bool,
    _lent: Lent,
    _owner: Py<PyAny>,
}

#[pymethods]
impl PixelView {
    #[getter]
    fn __array_interface__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        let g = &self.geometry;
        d.set_item("shape", pyo3::types::PyTuple::new(py, &g.shape)?)?;
        d.set_item("strides", pyo3::types::PyTuple::new(py, &g.strides)?)?;
        d.set_item("typestr", g.typestr)?;
        d.set_item("data", (self.addr + g.offset, !self.writable))?;
        d.set_item("version", 3)?;
        Ok(d)
    }
}

pub(crate) fn numpy(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    py.import("numpy").map_err(|e| {
        pyo3::exceptions::PyImportError::new_err(format!(
            "numpy is needed for arrays (pip install 'shmimage[numpy]'): {e}"
        ))
    })
}

/// Where one array lies in a frame and how it is shaped: numpy's view of a
/// plane (shape, byte strides, item type), at `offset` from the frame's start.
#[derive(Clone, Debug)]
pub(crate) struct Geometry {
    pub offset: usize,
    pub shape: Vec<usize>,
    pub strides: Vec<isize>,
    pub typestr: &'static str,
}

impl Geometry {
    /// A packed (h, w, 3) uint8 RGB frame (protocol 1.0, loans).
    pub(crate) fn rgb(width: u32, height: u32) -> Geometry {
        let (w, h) = (width as usize, height as usize);
        Geometry { offset: 0, shape: vec![h, w, 3], strides: vec![(w * 3) as isize, 3, 1], typestr: "|u1" }
    }
}

/// A numpy array over `addr` shaped by `geometry`. `lent` was taken under
/// the owner's lock, after checking the memory is still the owner's to lend;
/// the lock is released before this runs, because building the array runs
/// Python code (which may hand the GIL to a thread that wants that lock).
pub(crate) fn make_view<'py>(
    owner: &Bound<'py, PyAny>,
    addr: usize,
    geometry: Geometry,
    writable: bool,
    lent: Lent,
) -> PyResult<Bound<'py, PyAny>> {
    let py = owner.py();
    let np = numpy(py)?;
    let view = Bound::new(py, PixelView { addr, geometry, writable, _lent: lent, _owner: owner.clone().unbind() })?;
    np.getattr("asarray")?.call1((view,))
}

/// One use of an owner's memory (a view, or a copy in progress), counted in
/// the owner's counter while it lives; the owner refuses to hand the memory
/// back while the count is not zero.
pub(crate) struct Lent(Arc<AtomicUsize>);

impl Lent {
    pub(crate) fn new(count: &Arc<AtomicUsize>) -> Lent {
        count.fetch_add(1, Ordering::AcqRel);
        Lent(Arc::clone(count))
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A new bytes object with `len` bytes copied from `addr`, GIL released.
pub(crate) fn bytes_from<'py>(py: Python<'py>, addr: usize, len: usize) -> PyResult<Bound<'py, PyBytes>> {
    PyBytes::new_with(py, len, |dst| {
        py.detach(|| {
            // SAFETY: the caller holds a `Lent` that keeps
            // `len` bytes at `addr` valid and unchanged by this process.
            let src = unsafe { std::slice::from_raw_parts(addr as *const u8, len) };
            dst.copy_from_slice(src);
        });
        Ok(())
    })
}

/// A new writable (h, w, 3) numpy array holding a copy, GIL released.
pub(crate) fn array_from<'py>(py: Python<'py>, addr: usize, width: u32, height: u32) -> PyResult<Bound<'py, PyAny>> {
    let np = numpy(py)?;
    let arr = np.getattr("empty")?.call1(((height, width, 3u32), np.getattr("uint8")?))?;
    let data = arr.getattr("__array_interface__")?.get_item("data")?.get_item(0)?.extract::<usize>()?;
    let len = width as usize * height as usize * 3;
    py.detach(|| {
        // SAFETY: `arr` is a fresh C-contiguous array of exactly `len` bytes
        // that nothing else references yet; the source is kept valid by the
        // caller's `Lent`; the two cannot overlap.
        unsafe { std::ptr::copy_nonoverlapping(addr as *const u8, data as *mut u8, len) };
    });
    Ok(arr)
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PixelView>()?;
    Ok(())
}

/// numpy's `__array__(dtype=None, copy=None)` on top of a zero-copy `view`
/// (or a `copy` when asked): `np.asarray(frame)` is the tracked view.
pub(crate) fn array_protocol<'py>(
    view: impl FnOnce() -> PyResult<Bound<'py, PyAny>>,
    copy: impl FnOnce() -> PyResult<Bound<'py, PyAny>>,
    dtype: Option<&Bound<'py, PyAny>>,
    want_copy: Option<bool>,
) -> PyResult<Bound<'py, PyAny>> {
    let arr = if want_copy == Some(true) { copy()? } else { view()? };
    match dtype {
        Some(d) if !d.is_none() => {
            let same = arr.getattr("dtype")?.eq(d)?;
            if !same && want_copy == Some(false) {
                return Err(pyo3::exceptions::PyValueError::new_err(
                    "the pixels are uint8; converting to another dtype needs a copy (copy=False was given)",
                ));
            }
            if same {
                Ok(arr)
            } else {
                arr.call_method1("astype", (d,))
            }
        }
        _ => Ok(arr),
    }
}
