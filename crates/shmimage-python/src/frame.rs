//! `Frame`: a locked frame of a client, and `client.frames()`.
//!
//! A Frame holds the engine's frame handle, which the engine checks on every
//! use (client open, not forked, the buffer still this frame's): a frame
//! outliving its client answers ClosedError. numpy views count themselves
//! in `views` while they live; release() refuses while any exists, and a
//! frame whose views are all gone (and which nobody references) unlocks when
//! it is garbage.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use shmimage::{Error, FrameInfo};

use crate::args::lock;
use crate::client::{Client, WaitEnd};
use crate::errors::{self, closed};
use crate::views::{array_from, array_protocol, bytes_from, make_array, Lent};

/// A locked frame. `array()` is a read-only zero-copy view; the frame (and
/// its memory) goes back to the stream on `release()` or at the end of a
/// `with` block, which refuse with BufferError while views exist.
#[pyclass(frozen, module = "shmimage", name = "Frame")]
pub(crate) struct Frame {
    /// The engine's frame; None once released.
    frame: Mutex<Option<shmimage::Frame>>,
    info: FrameInfo,
    views: Arc<AtomicUsize>,
}

impl Frame {
    pub(crate) fn new(frame: shmimage::Frame) -> Frame {
        Frame { info: frame.info(), frame: Mutex::new(Some(frame)), views: Arc::new(AtomicUsize::new(0)) }
    }

    /// The pixels' address, counted as a use (a view, or a copy in
    /// progress) until the returned `Lent` drops. The engine checks the
    /// frame is still valid; its pixels stay at that address while the frame
    /// lives, and release() waits for every use to end.
    fn lend(&self, py: Python<'_>) -> PyResult<(usize, Lent)> {
        // The lock is released before any Python code runs (see make_array).
        let guard = lock(&self.frame);
        let frame = guard.as_ref().ok_or_else(|| closed(py, "this frame (already released)"))?;
        match frame.pixels() {
            Ok(px) => Ok((px.as_ptr() as usize, Lent::new(&self.views))),
            Err(Error::Closed) => Err(closed(py, "this frame's client")),
            Err(e) => Err(errors::to_py(py, &e)),
        }
    }

    fn has_views(&self) -> bool {
        self.views.load(Ordering::Acquire) > 0
    }
}

#[pymethods]
impl Frame {
    /// The server's frame number.
    #[getter]
    fn number(&self) -> u32 {
        self.info.number
    }

    /// Pixels per row.
    #[getter]
    fn width(&self) -> u32 {
        self.info.width
    }

    /// Rows.
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

    /// True once released (by release(), a with block, or frames()).
    #[getter]
    fn released(&self) -> bool {
        lock(&self.frame).is_none()
    }

    /// A read-only (height, width, 3) uint8 numpy view of the pixels, with no
    /// copy. Valid until the frame is released, which waits for every view
    /// to be deleted (BufferError otherwise). ClosedError once released or
    /// once the client is closed.
    fn array<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let this = slf.get();
        let (addr, lent) = this.lend(slf.py())?;
        make_array(slf.as_any(), addr, this.info.width, this.info.height, false, lent)
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
        let (addr, _lent) = self.lend(py)?;
        array_from(py, addr, self.info.width, self.info.height)
    }

    /// The pixels as bytes (a copy, GIL released during the copy).
    fn tobytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let (addr, _lent) = self.lend(py)?;
        bytes_from(py, addr, self.info.len())
    }

    /// Give the frame back to the stream. Raises BufferError while numpy views
    /// of it exist (delete them, or keep .copy()s instead). Idempotent, and
    /// quiet after the client was closed.
    fn release(&self, py: Python<'_>) -> PyResult<()> {
        let frame = {
            let mut guard = lock(&self.frame);
            if guard.is_none() {
                return Ok(());
            }
            let n = self.views.load(Ordering::Acquire);
            if n > 0 {
                return Err(errors::views_alive("cannot release the frame", n));
            }
            guard.take()
        };
        // Closed or forked: nothing of ours to give back.
        py.detach(move || drop(frame));
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
            // With views alive the frame stays locked until the last one is
            // gone (the engine holds two frames at once); it unlocks when the
            // views and the Frame are garbage.
            if !p.get().has_views() {
                // Only BufferError can come back: a view made meanwhile on
                // another thread, which keeps the frame as above.
                let _ = p.get().release(py);
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
