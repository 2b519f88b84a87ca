//! `Frame`: a locked frame of a client, and `client.frames()`.
//!
//! A Frame holds the engine's frame handle, which the engine checks on every
//! use (client open, not forked, the buffer still this frame's): a frame
//! outliving its client answers ClosedError. numpy views count themselves
//! in `views` while they live; release() refuses while any exists, and a
//! frame whose views are all gone (and which nobody references) unlocks when
//! it is garbage.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyTuple};
use shmimage::native::{self as nat, PixelFormat, Timestamps};
use shmimage::Error;

use crate::args::lock;
use crate::client::{Client, WaitEnd};
use crate::errors::{self, closed};
use crate::native::geometries;
use crate::views::{array_from, array_protocol, bytes_from, make_view, Geometry, Lent};

/// The engine's frame handle, of either format.
pub(crate) enum Handle {
    Ensight(shmimage::Frame),
    /// A native frame and its client's closed flag (the native reader's
    /// frames do not answer Closed themselves).
    Native(nat::ReadFrame, Arc<AtomicBool>),
}

/// What a frame says about itself, read once when it is locked.
struct Meta {
    number: u64,
    width: u32,
    height: u32,
    format: PixelFormat,
    stride: u32,
    planes: Vec<Geometry>,
    len: usize,
    in_place: bool,
    timestamps: Option<Timestamps>,
    flags: u32,
    metadata: Vec<u8>,
    missed_before: u64,
}

impl Meta {
    fn of(handle: &Handle) -> Meta {
        match handle {
            Handle::Ensight(f) => {
                let i = f.info();
                Meta {
                    number: u64::from(i.number),
                    width: i.width,
                    height: i.height,
                    format: PixelFormat::Rgb8,
                    stride: i.width * 3,
                    planes: vec![Geometry::rgb(i.width, i.height)],
                    len: i.len(),
                    in_place: i.in_place,
                    timestamps: None,
                    flags: 0,
                    metadata: Vec::new(),
                    missed_before: 0,
                }
            }
            Handle::Native(f, _) => Meta {
                number: f.sequence(),
                width: f.width(),
                height: f.height(),
                format: f.format(),
                stride: f.stride(),
                planes: geometries(f.desc()),
                len: f.pixels().len(),
                in_place: true,
                timestamps: Some(f.timestamps()),
                flags: f.flags(),
                metadata: f.metadata().to_vec(),
                missed_before: f.missed_before(),
            },
        }
    }
}

/// A locked frame. `array()` is a read-only zero-copy view; the frame (and
/// its memory) goes back to the stream on `release()` or at the end of a
/// `with` block, which refuse with BufferError while views exist.
#[pyclass(frozen, module = "shmimage", name = "Frame")]
pub(crate) struct Frame {
    /// The engine's frame; None once released.
    frame: Mutex<Option<Handle>>,
    meta: Meta,
    views: Arc<AtomicUsize>,
}

impl Frame {
    pub(crate) fn new(frame: Handle) -> Frame {
        Frame { meta: Meta::of(&frame), frame: Mutex::new(Some(frame)), views: Arc::new(AtomicUsize::new(0)) }
    }

    /// The pixels' address, counted as a use (a view, or a copy in
    /// progress) until the returned `Lent` drops. The engine checks the
    /// frame is still valid; its pixels stay at that address while the frame
    /// lives, and release() waits for every use to end.
    fn lend(&self, py: Python<'_>) -> PyResult<(usize, Lent)> {
        // The lock is released before any Python code runs (see make_array).
        let guard = lock(&self.frame);
        let frame = guard.as_ref().ok_or_else(|| closed(py, "this frame (already released)"))?;
        match frame {
            Handle::Ensight(f) => match f.pixels() {
                Ok(px) => Ok((px.as_ptr() as usize, Lent::new(&self.views))),
                Err(Error::Closed) => Err(closed(py, "this frame's client")),
                Err(e) => Err(errors::to_py(py, &e)),
            },
            Handle::Native(_, client_closed) if client_closed.load(Ordering::Acquire) => {
                Err(closed(py, "this frame's client"))
            }
            Handle::Native(f, _) => Ok((f.pixels().as_ptr() as usize, Lent::new(&self.views))),
        }
    }

    /// Packed RGB8 rows with no padding (every 1.0 frame): copied with the
    /// GIL released, without numpy's help.
    fn packed_rgb(&self) -> bool {
        self.meta.format == PixelFormat::Rgb8 && self.meta.stride == self.meta.width * 3
    }

    fn has_views(&self) -> bool {
        self.views.load(Ordering::Acquire) > 0
    }
}

#[pymethods]
impl Frame {
    /// The server's frame number (protocol 1.0), or the frame's sequence
    /// number (native streams).
    #[getter]
    fn number(&self) -> u64 {
        self.meta.number
    }

    /// Pixels per row.
    #[getter]
    fn width(&self) -> u32 {
        self.meta.width
    }

    /// Rows.
    #[getter]
    fn height(&self) -> u32 {
        self.meta.height
    }

    /// The pixel format's name: "RGB8" for protocol 1.0; on native streams
    /// any of the engine's formats ("BGRA8", "GRAY16_LE", "GRAY32F", "I420",
    /// "NV12", ...).
    #[getter]
    fn format(&self) -> &'static str {
        self.meta.format.name()
    }

    /// Bytes from one row to the next in plane 0 (rows may be padded).
    #[getter]
    fn stride(&self) -> u32 {
        self.meta.stride
    }

    /// Capture and publish times in ns (`capture_mono_ns`,
    /// `capture_real_ns`, `publish_mono_ns`, `publish_real_ns`: monotonic and
    /// wall clock); None for protocol 1.0, which carries no times.
    #[getter]
    fn timestamps<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let Some(t) = self.meta.timestamps else { return Ok(None) };
        let d = PyDict::new(py);
        d.set_item("capture_mono_ns", t.capture_mono_ns)?;
        d.set_item("capture_real_ns", t.capture_real_ns)?;
        d.set_item("publish_mono_ns", t.publish_mono_ns)?;
        d.set_item("publish_real_ns", t.publish_real_ns)?;
        Ok(Some(d))
    }

    /// The writer's metadata for this frame (b"" for protocol 1.0).
    #[getter]
    fn metadata<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.meta.metadata)
    }

    /// The frame's flags word (native streams; 0 for protocol 1.0).
    #[getter]
    fn flags(&self) -> u32 {
        self.meta.flags
    }

    /// Frames skipped between the previous read and this one (native
    /// streams; 0 for protocol 1.0).
    #[getter]
    fn missed_before(&self) -> u64 {
        self.meta.missed_before
    }

    /// True when the pixels are read in place in shared memory; False for a
    /// frame larger than one buffer, assembled in the client's own memory.
    #[getter]
    fn in_place(&self) -> bool {
        self.meta.in_place
    }

    /// Bytes of the pixels in the stream (width * height * 3 for protocol
    /// 1.0; with row padding and every plane on native streams).
    #[getter]
    fn nbytes(&self) -> usize {
        self.meta.len
    }

    /// True once released (by release(), a with block, or frames()).
    #[getter]
    fn released(&self) -> bool {
        lock(&self.frame).is_none()
    }

    /// A read-only numpy view of the pixels, with no copy, shaped and typed
    /// by the format: (height, width, 3) uint8 for RGB8 (protocol 1.0),
    /// (h, w, 4) for the 4-channel formats, (h, w) uint8/uint16/float32 for
    /// GRAY8/GRAY16_LE/GRAY32F, strided when rows are padded; a tuple of
    /// plane views for I420 (Y, U, V) and NV12 (Y, UV). Valid until the
    /// frame is released, which waits for every view to be deleted
    /// (BufferError otherwise). ClosedError once released or once the
    /// client is closed.
    fn array<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let this = slf.get();
        let mut views = Vec::with_capacity(this.meta.planes.len());
        for g in &this.meta.planes {
            let (addr, lent) = this.lend(slf.py())?;
            views.push(make_view(slf.as_any(), addr, g.clone(), false, lent)?);
        }
        match views.len() {
            1 => Ok(views.remove(0)),
            _ => Ok(PyTuple::new(slf.py(), views)?.into_any()),
        }
    }

    /// The planes as numpy views (a list of one for packed formats).
    fn planes<'py>(slf: &Bound<'py, Self>) -> PyResult<Vec<Bound<'py, PyAny>>> {
        let a = Frame::array(slf)?;
        match a.cast::<PyTuple>() {
            Ok(t) => Ok(t.iter().collect()),
            Err(_) => Ok(vec![a]),
        }
    }

    /// numpy's array protocol: `np.asarray(frame)` is `frame.array()` (no
    /// copy), `np.array(frame)` a copy.
    #[pyo3(signature = (dtype = None, copy = None))]
    fn __array__<'py>(
        slf: &Bound<'py, Self>,
        dtype: Option<&Bound<'py, PyAny>>,
        copy: Option<bool>,
    ) -> PyResult<Bound<'py, PyAny>> {
        array_protocol(|| Frame::array(slf), || Frame::copy(slf), dtype, copy)
    }

    /// True when the rows are stored bottom-up (the last row first): the
    /// native frame's BOTTOM_UP flag. Protocol 1.0 carries no row-order flag:
    /// its rows are top-down (a server opened with flip_vertical reversed
    /// them while writing), so this is False for 1.0 streams.
    #[getter]
    fn bottom_up(&self) -> bool {
        self.meta.flags & nat::flags::BOTTOM_UP != 0
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
    fn copy<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let this = slf.get();
        if this.packed_rgb() {
            let (addr, _lent) = this.lend(slf.py())?;
            return array_from(slf.py(), addr, this.meta.width, this.meta.height);
        }
        let a = Frame::array(slf)?;
        match a.cast::<PyTuple>() {
            Ok(t) => {
                let copies: PyResult<Vec<_>> = t.iter().map(|p| p.call_method0("copy")).collect();
                Ok(PyTuple::new(slf.py(), copies?)?.into_any())
            }
            Err(_) => a.call_method0("copy"),
        }
    }

    /// The pixels as bytes (a copy): rows without padding, planes one after
    /// another.
    fn tobytes<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let this = slf.get();
        if this.packed_rgb() {
            let (addr, _lent) = this.lend(slf.py())?;
            return Ok(bytes_from(slf.py(), addr, this.meta.len)?.into_any());
        }
        let mut out = Vec::new();
        for p in Frame::planes(slf)? {
            out.extend_from_slice(p.call_method0("tobytes")?.cast::<PyBytes>()?.as_bytes());
        }
        Ok(PyBytes::new(slf.py(), &out).into_any())
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
        errors::exit_outcome(self.release(py), t)
    }

    fn __repr__(&self) -> String {
        format!(
            "Frame(number={}, {}x{} {}{})",
            self.meta.number,
            self.meta.width,
            self.meta.height,
            self.meta.format.name(),
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
                let f = Py::new(py, *f)?;
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
