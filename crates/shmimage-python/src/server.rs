//! `Server`: the producing end of a stream (put, loans, waits, liveness,
//! close).
//!
//! The engine server is shared by every thread (`Send + Sync`, `&self`
//! methods, its own serialization per stream), so this object adds no lock
//! around it: a `put` waiting for a buffer on one thread does not stop
//! `close()` on another, which wakes that wait at once. The only state kept
//! here is the Python-level rule of one open `Loan` at a time, and the count
//! of numpy views of that loan's memory.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use std::sync::atomic::AtomicBool;

use pyo3::prelude::*;
use pyo3::types::PyDict;
use shmimage::native::{self as nat, FrameDesc, WriterOptions};
use shmimage::{Error, Protocol, ServerOptions};

use crate::args::{dims, liveness_name, lock, this_process};
use crate::buffer;
use crate::buffer::Bytes;
use crate::errors::{self, closed, typed};
use crate::loan::{EngineLoan, Loan};
use crate::native::{infer_format, parse_format};
use crate::pixels_in::{rgb_frame, RgbFrame};
use crate::wait::{duration, engine_wait, timeout as wait_timeout};

/// The engine's writing end, of either format.
enum Engine {
    Ensight(shmimage::Server),
    Native(nat::Writer),
}

/// The producing end of a stream.
#[pyclass(frozen, module = "shmimage", name = "Server")]
pub(crate) struct Server {
    engine: Engine,
    /// Set by close() (the native writer has no is_closed).
    closed_flag: AtomicBool,
    /// The id of the open `Loan`, if any (one at a time).
    open_loan: Mutex<Option<u64>>,
    /// numpy views of the open loan's memory.
    pub(crate) loan_views: Arc<AtomicUsize>,
    next_loan: AtomicU64,
    path: String,
    pid: u32,
}

impl Server {
    /// Closed or inherited across fork: the error for calls the engine
    /// answers without one.
    pub(crate) fn usable(&self, py: Python<'_>) -> PyResult<()> {
        if this_process() != self.pid {
            return Err(errors::to_py(py, &Error::Forked));
        }
        if self.is_closed() {
            return Err(closed(py, "the server"));
        }
        Ok(())
    }

    pub(crate) fn is_closed(&self) -> bool {
        match &self.engine {
            Engine::Ensight(s) => s.is_closed(),
            Engine::Native(_) => self.closed_flag.load(Ordering::Acquire),
        }
    }

    /// The 1.0 server, or a clear error for what only 1.0 streams have.
    fn ensight(&self, py: Python<'_>, what: &str) -> PyResult<&shmimage::Server> {
        match &self.engine {
            Engine::Ensight(s) => Ok(s),
            Engine::Native(_) => {
                Err(typed(py, "BadArgsError", format!("{what} is a protocol 1.0 feature; this is a native stream")))
            }
        }
    }

    /// put() on a native stream: the array's shape and dtype (or `format`
    /// with width/height for a buffer) give the pixel format; one copy into
    /// the slot.
    #[allow(clippy::too_many_arguments)]
    fn put_native(
        &self,
        py: Python<'_>,
        w: &nat::Writer,
        pixels: &Bound<'_, PyAny>,
        size: Option<(i64, i64)>,
        format: Option<&str>,
        layout: Option<&str>,
        stride: Option<u32>,
        info: nat::FrameInfo,
    ) -> PyResult<()> {
        let data = match Bytes::get_shaped(pixels) {
            Ok(b) => b,
            // PIL images, strided arrays: one copy into a contiguous array.
            Err(_) => {
                let a = crate::views::numpy(py)?.getattr("ascontiguousarray")?.call1((pixels,))?;
                Bytes::get_shaped(&a).map_err(|e| typed(py, "BadArgsError", format!("pixels: {e}")))?
            }
        };
        let shape = data.shape();
        let (fmt, width, height) = match (format, size) {
            (Some(f), Some((width, height))) => {
                let (width, height) = dims(py, width, height)?;
                (parse_format(py, f)?, width, height)
            }
            (f, None) => {
                let item = match (shape.format.trim_start_matches(['@', '=', '<']), shape.itemsize) {
                    ("B", 1) => "u1",
                    ("H", 2) => "u2",
                    ("f", 4) => "f4",
                    (other, _) => {
                        return Err(typed(
                            py,
                            "BadArgsError",
                            format!("pixels of item type {other:?}: use uint8, uint16 or float32"),
                        ))
                    }
                };
                let inferred = infer_format(&shape.dims, item, layout);
                let fmt = match (f, inferred) {
                    (Some(name), Some(i)) if parse_format(py, name)? == i => i,
                    (None, Some(i)) => i,
                    _ => {
                        return Err(typed(
                            py,
                            "BadArgsError",
                            format!(
                                "pixels of shape {:?} and item type {item} do not make a {} frame: pass (h, w, 3|4) \
                                 uint8, (h, w) uint8/uint16/float32, or a buffer with format=, width= and height=",
                                shape.dims,
                                f.unwrap_or("known")
                            ),
                        ))
                    }
                };
                let [h, wd, ..] = shape.dims.as_slice() else {
                    return Err(typed(py, "BadArgsError", "pixels must be at least 2-D".into()));
                };
                let (width, height) = dims(py, *wd as i64, *h as i64)?;
                (fmt, width, height)
            }
            (None, Some(_)) => {
                return Err(typed(py, "BadArgsError", "a buffer on a native stream needs format= too".into()))
            }
        };
        let desc = match stride {
            Some(st) => FrameDesc::with_strides(fmt, width, height, &[st]),
            None => FrameDesc::packed(fmt, width, height),
        };
        let desc = desc.map_err(|e| errors::native_to_py(py, &e.into()))?;
        // A padded buffer of stride * height bytes may end before its last
        // row's padding: the frame occupies desc.len() of them.
        let len = usize::try_from(desc.len()).unwrap_or(usize::MAX);
        let r = buffer::with_slice_detached(py, &data, |px| w.put(&desc, px.get(..len).unwrap_or(px), &info));
        r.map(drop).map_err(|e| match e {
            nat::Error::Closed => closed(py, "the server"),
            e => errors::native_to_py(py, &e),
        })
    }

    /// Refuse while a loan is open (one frame at a time).
    fn no_loan(&self, py: Python<'_>) -> PyResult<()> {
        match *lock(&self.open_loan) {
            Some(_) => Err(loan_open(py)),
            None => Ok(()),
        }
    }

    pub(crate) fn error(&self, py: Python<'_>, e: &Error) -> PyErr {
        match e {
            Error::Closed => closed(py, "the server"),
            _ => errors::to_py(py, e),
        }
    }

    /// Forget loan `id` (it ended).
    pub(crate) fn loan_ended(&self, id: u64) {
        let mut open = lock(&self.open_loan);
        if *open == Some(id) {
            *open = None;
        }
    }
}

#[pymethods]
impl Server {
    /// Open an existing stream file as its server (resets both buffers).
    /// Raises PeerBusyError when another live server holds the file.
    #[new]
    #[pyo3(signature = (path, flip_vertical = false))]
    fn new(py: Python<'_>, path: std::path::PathBuf, flip_vertical: bool) -> PyResult<Server> {
        let engine = match py.detach(|| shmimage::detect_protocol(&path)) {
            Ok(Protocol::Native) => {
                let w = py.detach(|| nat::Writer::open(&path, &WriterOptions::default()));
                Engine::Native(w.map_err(|e| errors::native_to_py(py, &e))?)
            }
            _ => {
                let opts = ServerOptions { flip_vertical, ..Default::default() };
                let server = py.detach(|| shmimage::Server::create(&path, opts)).map_err(|e| errors::to_py(py, &e))?;
                Engine::Ensight(server)
            }
        };
        Ok(Server {
            engine,
            closed_flag: AtomicBool::new(false),
            open_loan: Mutex::new(None),
            loan_views: Arc::new(AtomicUsize::new(0)),
            next_loan: AtomicU64::new(1),
            path: path.to_string_lossy().into_owned(),
            pid: this_process(),
        })
    }

    /// Publish one RGB frame. `pixels` is an (h, w, 3) uint8 C-contiguous
    /// array (sent as is; the size comes from its shape), any C-contiguous
    /// bytes-like object with `width` and `height` given, or another image:
    /// a PIL image, a gray (h, w) array, an RGBA/BGR/BGRA array (`layout`
    /// names the channel order: "rgb", "bgr", "rgba", "rgbx", "bgra",
    /// "bgrx", "gray"; None infers it from the shape) or a non-contiguous
    /// array, converted to RGB with one copy first. With `timeout` > 0, wait
    /// that long for a free buffer first (close() from another thread ends
    /// that wait with ClosedError). Raises NoBufferAvailableError (frame
    /// dropped) or UnconnectedError (no client) when the frame was not sent.
    ///
    /// Native streams: the format comes from the array (shape and dtype:
    /// (h, w, 3) uint8 RGB8 or BGR8 with layout="bgr", (h, w, 4) uint8
    /// RGBA8/BGRA8/RGBX8/BGRX8, (h, w) uint8/uint16/float32 GRAY8/GRAY16_LE/
    /// GRAY32F) or from `format` with a buffer and width/height (any format,
    /// planar ones too; `stride` for rows padded in the buffer, packed
    /// formats); `metadata` (bytes) and `bottom_up` travel with the
    /// frame; the stream numbers frames itself (`frame_number` is ignored)
    /// and the wait for a slot is the stream's.
    #[pyo3(signature = (frame_number, pixels, *, width = None, height = None, timeout = 0.0, layout = None,
                        format = None, metadata = None, bottom_up = false, stride = None))]
    #[allow(clippy::too_many_arguments)] // the Python signature
    fn put(
        &self,
        py: Python<'_>,
        frame_number: i64,
        pixels: &Bound<'_, PyAny>,
        width: Option<i64>,
        height: Option<i64>,
        timeout: f64,
        layout: Option<&str>,
        format: Option<&str>,
        metadata: Option<Vec<u8>>,
        bottom_up: bool,
        stride: Option<u32>,
    ) -> PyResult<()> {
        let wait = duration(py, timeout, "timeout")?;
        if let Engine::Native(w) = &self.engine {
            self.usable(py)?;
            let size = match (width, height) {
                (Some(w), Some(h)) => Some((w, h)),
                (None, None) => None,
                _ => return Err(typed(py, "BadArgsError", "give both width and height, or neither".into())),
            };
            let flags = if bottom_up { nat::flags::BOTTOM_UP } else { 0 };
            let info = nat::FrameInfo { capture: None, flags, metadata: metadata.unwrap_or_default() };
            return self.put_native(py, w, pixels, size, format, layout, stride, info);
        }
        if format.is_some_and(|f| !f.eq_ignore_ascii_case("RGB8"))
            || metadata.is_some()
            || bottom_up
            || stride.is_some()
        {
            return Err(typed(
                py,
                "BadArgsError",
                "protocol 1.0 streams carry RGB8 only, without metadata or row-order flags; \
                 use a native stream (create_stream_file(..., protocol=\"native\"))"
                    .into(),
            ));
        }
        let RgbFrame { bytes: data, width: w, height: h } = rgb_frame(pixels, width, height, layout)?;
        self.usable(py)?;
        self.no_loan(py)?;
        // Frame numbers are u32 on the wire and wrap around.
        let number = frame_number as u32;
        let server = self.ensight(py, "put")?;
        let r = buffer::with_slice_detached(py, &data, |px| {
            if !wait.is_zero() {
                server.wait_for_buffer(Some(wait))?;
            }
            server.put_frame(number, w, h, px)
        });
        r.map_err(|e| self.error(py, &e))
    }

    /// Borrow a free buffer to render a whole frame into, with no copy:
    /// `loan.array()` (or `np.asarray(loan)`) is a writable view of shared
    /// memory, `loan.commit(frame_number)` publishes it. On native streams
    /// `format` picks the pixel format (default RGB8; rows padded as the
    /// engine lays them out) and `timeout` how long to wait for a free slot.
    #[pyo3(signature = (width, height, *, format = None, timeout = None))]
    fn loan(
        slf: &Bound<'_, Self>,
        width: i64,
        height: i64,
        format: Option<&str>,
        timeout: Option<f64>,
    ) -> PyResult<Loan> {
        let py = slf.py();
        let this = slf.get();
        let (w, h) = dims(py, width, height)?;
        let t = wait_timeout(py, timeout)?;
        this.usable(py)?;
        let id = this.next_loan.fetch_add(1, Ordering::Relaxed);
        {
            let mut open = lock(&this.open_loan);
            if open.is_some() {
                drop(open);
                return Err(loan_open(py));
            }
            *open = Some(id);
        }
        let loan = match &this.engine {
            Engine::Ensight(server) => {
                if format.is_some_and(|f| !f.eq_ignore_ascii_case("RGB8")) {
                    this.loan_ended(id);
                    return Err(typed(py, "BadArgsError", "protocol 1.0 streams carry RGB8 only".into()));
                }
                py.detach(|| server.loan(w, h)).map(EngineLoan::Ensight).map_err(|e| this.error(py, &e))
            }
            Engine::Native(writer) => {
                let fmt = match format {
                    Some(f) => parse_format(py, f),
                    None => Ok(nat::PixelFormat::Rgb8),
                };
                fmt.and_then(|fmt| FrameDesc::new(fmt, w, h).map_err(|e| errors::native_to_py(py, &e.into()))).and_then(
                    |desc| {
                        py.detach(|| writer.loan(&desc, t))
                            .map(EngineLoan::Native)
                            .map_err(|e| errors::native_to_py(py, &e))
                    },
                )
            }
        };
        match loan {
            Ok(l) => Ok(Loan::new(slf.clone().unbind(), id, l)),
            Err(e) => {
                this.loan_ended(id);
                Err(e)
            }
        }
    }

    /// Wait until a client is connected; False on timeout (None: forever).
    #[pyo3(signature = (timeout = None))]
    fn wait_for_client(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let t = wait_timeout(py, timeout)?;
        let timed_out = |e: &Error| matches!(e, Error::Unconnected);
        let server = self.ensight(py, "wait_for_client()")?;
        match engine_wait(py, t, false, timed_out, |t| server.wait_for_client(t))? {
            Ok(()) => Ok(true),
            Err(Error::Unconnected) => Ok(false),
            Err(e) => Err(self.error(py, &e)),
        }
    }

    /// Wait until a buffer is free; False on timeout (None: forever). Raises
    /// UnconnectedError when no client is connected.
    #[pyo3(signature = (timeout = None))]
    fn wait_for_buffer(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let t = wait_timeout(py, timeout)?;
        self.usable(py)?;
        self.no_loan(py)?;
        let timed_out = |e: &Error| matches!(e, Error::NoBufferAvailable);
        let server = self.ensight(py, "wait_for_buffer()")?;
        match engine_wait(py, t, false, timed_out, |t| server.wait_for_buffer(t))? {
            Ok(()) => Ok(true),
            Err(Error::NoBufferAvailable) => Ok(false),
            Err(e) => Err(self.error(py, &e)),
        }
    }

    /// True while a client is connected.
    #[getter]
    fn is_connected(&self, py: Python<'_>) -> PyResult<bool> {
        self.usable(py)?;
        Ok(match &self.engine {
            Engine::Ensight(s) => !s.is_unconnected(),
            Engine::Native(w) => !w.readers().is_empty(),
        })
    }

    /// False only when the client process is known to have gone.
    fn is_client_alive(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(self.client_liveness(py)? != "gone")
    }

    /// "alive", "gone" or "unknown" (a client that never showed a liveness
    /// lock, e.g. an older implementation).
    fn client_liveness(&self, py: Python<'_>) -> PyResult<&'static str> {
        self.usable(py)?;
        Ok(match &self.engine {
            Engine::Ensight(s) => liveness_name(py.detach(|| s.client_liveness())),
            Engine::Native(w) if !w.readers().is_empty() => "alive",
            Engine::Native(_) => "unknown",
        })
    }

    /// Payload bytes of one buffer.
    #[getter]
    fn capacity(&self) -> u64 {
        match &self.engine {
            Engine::Ensight(s) => s.capacity(),
            Engine::Native(w) => w.slot_capacity(),
        }
    }

    /// "ensight-1.0" or "native": the stream file's format.
    #[getter]
    fn protocol(&self) -> &'static str {
        match self.engine {
            Engine::Ensight(_) => Protocol::Ensight1.name(),
            Engine::Native(_) => Protocol::Native.name(),
        }
    }

    /// The stream file's path.
    #[getter]
    fn path(&self) -> &str {
        &self.path
    }

    /// True once closed.
    #[getter]
    fn closed(&self) -> bool {
        self.is_closed()
    }

    /// Counters since the server was opened.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.usable(py)?;
        let d = PyDict::new(py);
        let s = match &self.engine {
            Engine::Ensight(s) => s.stats(),
            Engine::Native(w) => {
                let s = w.stats();
                d.set_item("frames_sent", s.frames)?;
                d.set_item("no_slot", s.no_slot)?;
                d.set_item("lossless_waits", s.lossless_waits)?;
                d.set_item("lossless_drops", s.lossless_drops)?;
                d.set_item("readers", w.readers().len())?;
                return Ok(d);
            }
        };
        d.set_item("frames_sent", s.frames_sent)?;
        d.set_item("frames_dropped", s.frames_dropped)?;
        d.set_item("frames_unconnected", s.frames_unconnected)?;
        d.set_item("frames_abandoned", s.frames_abandoned)?;
        d.set_item("bands_sent", s.bands_sent)?;
        d.set_item("clients_reclaimed", s.clients_reclaimed)?;
        Ok(d)
    }

    /// Close the stream, from any thread: a wait in progress (put with a
    /// timeout, wait_for_client, wait_for_buffer) ends at once with
    /// ClosedError, an open loan is given back, and every later call answers
    /// ClosedError. Refused (BufferError) while numpy views of an open loan
    /// exist. Idempotent. In a fork child it touches nothing of the parent's.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let n = self.loan_views.load(Ordering::Acquire);
        if n > 0 && lock(&self.open_loan).is_some() && !self.is_closed() {
            return Err(errors::views_alive("cannot close the server", n));
        }
        self.closed_flag.store(true, Ordering::Release);
        match &self.engine {
            Engine::Ensight(s) => py.detach(|| s.close()),
            Engine::Native(w) => py.detach(|| w.close()),
        }
        // The engine gave an open loan's buffer back; its Loan answers
        // ClosedError from now on.
        *lock(&self.open_loan) = None;
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
        errors::exit_outcome(self.close(py), t)
    }

    fn __repr__(&self) -> String {
        format!("Server({:?}{})", self.path, if self.closed() { ", closed" } else { "" })
    }
}

fn loan_open(py: Python<'_>) -> PyErr {
    typed(py, "LockedError", "a loan is open on this server: commit or abandon it first".into())
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Server>()?;
    Ok(())
}
