//! `Frame`: a locked frame of a client, and `client.frames()`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use shmimage::FrameInfo;

use crate::args::lock;
use crate::client::{Client, Core, WaitEnd};
use crate::errors::{self, closed};
use crate::views::{array_from, array_protocol, bytes_from, make_array, Lent};

/// A locked frame. `array()` is a read-only zero-copy view; the frame (and
/// its memory) goes back to the stream on `release()` or at the end of a
/// `with` block, which refuse with BufferError while views exist.
#[pyclass(frozen, module = "shmimage", name = "Frame")]
pub(crate) struct Frame {
    core: Core,
    id: u64,
    info: FrameInfo,
    addr: usize,
    views: Arc<AtomicUsize>,
    released: Mutex<bool>,
}

impl Frame {
    /// A frame whose engine lock is held by `core` under the id `id`.
    pub(crate) fn new(core: Core, id: u64, info: FrameInfo, addr: usize) -> Frame {
        Frame { core, id, info, addr, views: Arc::new(AtomicUsize::new(0)), released: Mutex::new(false) }
    }

    /// Start a copy: fails once released; counts as a view meanwhile.
    fn lend(&self, py: Python<'_>) -> PyResult<Lent> {
        // The lock is released before any Python code runs (see make_array).
        let lent = (!*lock(&self.released)).then(|| Lent::new(&self.views));
        lent.ok_or_else(|| closed(py, "this frame (already released)"))
    }

    /// Give the engine's lock back (if this frame still holds it).
    fn unlock_core(core: &Core, id: u64) {
        let mut c = lock(core);
        if c.held == Some(id) {
            c.held = None;
            let _ = c.client.unlock();
        }
    }
}

#[pymethods]
impl Frame {
    /// The server's frame number.
    #[getter]
    fn number(&self) -> u32 {
        self.info.number
    }

    #[getter]
    fn width(&self) -> u32 {
        self.info.width
    }

    #[getter]
    fn height(&self) -> u32 {
        self.info.height
    }

    /// True when the pixels are read in place in shared memory; False for a
    /// frame larger than one buffer, assembled in the client's own memory.
    #[getter]
    fn in_place(&self) -> bool {
        self.info.in_place
    }

    /// width * height * 3.
    #[getter]
    fn nbytes(&self) -> usize {
        self.info.len()
    }

    #[getter]
    fn released(&self) -> bool {
        *lock(&self.released)
    }

    /// A read-only (height, width, 3) uint8 numpy view of the pixels, with no
    /// copy. Valid until the frame is released, which waits for every view
    /// to be deleted (BufferError otherwise).
    fn array<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let this = slf.get();
        let lent = this.lend(slf.py())?;
        make_array(slf.as_any(), this.addr, this.info.width, this.info.height, false, lent)
    }

    /// numpy's array protocol: `np.asarray(frame)` is `frame.array()` (no
    /// copy), `np.array(frame)` a copy.
    #[pyo3(signature = (dtype = None, copy = None))]
    fn __array__<'py>(
        slf: &Bound<'py, Self>,
        dtype: Option<&Bound<'py, PyAny>>,
        copy: Option<bool>,
    ) -> PyResult<Bound<'py, PyAny>> {
        array_protocol(|| Frame::array(slf), || slf.get().copy(slf.py()), dtype, copy)
    }

    /// True when the rows are stored bottom-up (the last row first).
    /// Protocol 1.0 carries no row-order flag: its rows are top-down (a
    /// server opened with flip_vertical reversed them while writing), so this
    /// is False for 1.0 streams.
    #[getter]
    fn bottom_up(&self) -> bool {
        false
    }

    /// The frame as a new PIL image (a copy; needs Pillow), upright even
    /// for bottom-up frames.
    fn to_pil<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        slf.py().import("shmimage._convert")?.getattr("to_pil")?.call1((slf,))
    }

    /// PNG bytes of the frame, so Jupyter shows it (no Pillow needed).
    fn _repr_png_<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        slf.py().import("shmimage._convert")?.getattr("png")?.call1((slf,))
    }

    /// A writable numpy array holding a copy of the pixels (GIL released
    /// during the copy); it outlives the frame.
    fn copy<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let _lent = self.lend(py)?;
        array_from(py, self.addr, self.info.width, self.info.height)
    }

    /// The pixels as bytes (a copy, GIL released during the copy).
    fn tobytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let _lent = self.lend(py)?;
        bytes_from(py, self.addr, self.info.len())
    }

    /// Give the frame back to the stream. Raises BufferError while numpy views
    /// of it exist (delete them, or keep .copy()s instead). Idempotent.
    fn release(&self, py: Python<'_>) -> PyResult<()> {
        let mut released = lock(&self.released);
        if *released {
            return Ok(());
        }
        let n = self.views.load(Ordering::Acquire);
        if n > 0 {
            return Err(errors::views_alive("cannot release the frame", n));
        }
        *released = true;
        drop(released);
        let (core, id) = (Arc::clone(&self.core), self.id);
        py.detach(move || Frame::unlock_core(&core, id));
        Ok(())
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __exit__(
        &self,
        py: Python<'_>,
        t: &Bound<'_, PyAny>,
        _v: &Bound<'_, PyAny>,
        _tb: &Bound<'_, PyAny>,
    ) -> PyResult<bool> {
        match self.release(py) {
            // Do not mask the exception in flight: the frame is released when
            // it and its views are garbage.
            Err(_) if !t.is_none() => Ok(false),
            r => r.map(|()| false),
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "Frame(number={}, width={}, height={}{})",
            self.info.number,
            self.info.width,
            self.info.height,
            if self.released() { ", released" } else { "" }
        )
    }
}

impl Drop for Frame {
    fn drop(&mut self) {
        // Views keep the Frame alive, so none exists now. The core mutex is
        // never held by a thread waiting for the GIL, so blocking here is safe.
        if !*lock(&self.released) {
            Frame::unlock_core(&self.core, self.id);
        }
    }
}

/// `for frame in client.frames(timeout=...)`.
#[pyclass(frozen, module = "shmimage", name = "_FrameIter")]
pub(crate) struct FrameIter {
    client: Py<Client>,
    timeout: Option<f64>,
    prev: Mutex<Option<Py<Frame>>>,
}

impl FrameIter {
    pub(crate) fn new(client: Py<Client>, timeout: Option<f64>) -> FrameIter {
        FrameIter { client, timeout, prev: Mutex::new(None) }
    }
}

#[pymethods]
impl FrameIter {
    fn __iter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<Frame>>> {
        let prev = lock(&self.prev).take();
        if let Some(p) = prev {
            if let Err(e) = p.get().release(py) {
                *lock(&self.prev) = Some(p);
                return Err(e);
            }
        }
        match self.client.get().wait(py, self.timeout)? {
            WaitEnd::Frame(f) => {
                let f = Py::new(py, f)?;
                *lock(&self.prev) = Some(f.clone_ref(py));
                Ok(Some(f))
            }
            WaitEnd::Timeout | WaitEnd::ServerGone => Ok(None),
        }
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Frame>()?;
    m.add_class::<FrameIter>()?;
    Ok(())
}
