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

use pyo3::prelude::*;
use pyo3::types::PyDict;
use shmimage::{Error, ServerOptions};

use crate::args::{dims, liveness_name, lock, this_process};
use crate::buffer;
use crate::errors::{self, closed, typed};
use crate::loan::Loan;
use crate::pixels_in::{rgb_frame, RgbFrame};
use crate::wait::{duration, engine_wait, timeout as wait_timeout};

/// The producing end of a stream.
#[pyclass(frozen, module = "shmimage", name = "Server")]
pub(crate) struct Server {
    server: shmimage::Server,
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
    fn usable(&self, py: Python<'_>) -> PyResult<()> {
        if this_process() != self.pid {
            return Err(errors::to_py(py, &Error::Forked));
        }
        if self.server.is_closed() {
            return Err(closed(py, "the server"));
        }
        Ok(())
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
        let opts = ServerOptions { flip_vertical, ..Default::default() };
        let server = py.detach(|| shmimage::Server::create(&path, opts)).map_err(|e| errors::to_py(py, &e))?;
        Ok(Server {
            server,
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
    #[pyo3(signature = (frame_number, pixels, *, width = None, height = None, timeout = 0.0, layout = None))]
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
    ) -> PyResult<()> {
        let wait = duration(py, timeout, "timeout")?;
        let RgbFrame { bytes: data, width: w, height: h } = rgb_frame(pixels, width, height, layout)?;
        self.usable(py)?;
        self.no_loan(py)?;
        // Frame numbers are u32 on the wire and wrap around.
        let number = frame_number as u32;
        let server = &self.server;
        let r = buffer::with_slice_detached(py, &data, |px| {
            if !wait.is_zero() {
                server.wait_for_buffer(Some(wait))?;
            }
            server.put_frame(number, w, h, px)
        });
        r.map_err(|e| self.error(py, &e))
    }

    /// Borrow a free buffer to render a whole frame into, with no copy:
    /// `loan.array()` (or `np.asarray(loan)`) is a writable (height, width,
    /// 3) view of shared memory, `loan.commit(frame_number)` publishes it.
    fn loan(slf: &Bound<'_, Self>, width: i64, height: i64) -> PyResult<Loan> {
        let py = slf.py();
        let this = slf.get();
        let (w, h) = dims(py, width, height)?;
        let id = this.next_loan.fetch_add(1, Ordering::Relaxed);
        {
            let mut open = lock(&this.open_loan);
            if open.is_some() {
                drop(open);
                return Err(loan_open(py));
            }
            *open = Some(id);
        }
        match py.detach(|| this.server.loan(w, h)) {
            Ok(loan) => Loan::new(py, slf.clone().unbind(), id, loan),
            Err(e) => {
                this.loan_ended(id);
                Err(this.error(py, &e))
            }
        }
    }

    /// Wait until a client is connected; False on timeout (None: forever).
    #[pyo3(signature = (timeout = None))]
    fn wait_for_client(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let t = wait_timeout(py, timeout)?;
        let timed_out = |e: &Error| matches!(e, Error::Unconnected);
        match engine_wait(py, t, timed_out, |t| self.server.wait_for_client(t))? {
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
        match engine_wait(py, t, timed_out, |t| self.server.wait_for_buffer(t))? {
            Ok(()) => Ok(true),
            Err(Error::NoBufferAvailable) => Ok(false),
            Err(e) => Err(self.error(py, &e)),
        }
    }

    /// True while a client is connected.
    #[getter]
    fn is_connected(&self, py: Python<'_>) -> PyResult<bool> {
        self.usable(py)?;
        Ok(!self.server.is_unconnected())
    }

    /// False only when the client process is known to have gone.
    fn is_client_alive(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(self.client_liveness(py)? != "gone")
    }

    /// "alive", "gone" or "unknown" (a client that never showed a liveness
    /// lock, e.g. an older implementation).
    fn client_liveness(&self, py: Python<'_>) -> PyResult<&'static str> {
        self.usable(py)?;
        Ok(liveness_name(py.detach(|| self.server.client_liveness())))
    }

    /// Payload bytes of one buffer.
    #[getter]
    fn capacity(&self) -> u64 {
        self.server.capacity()
    }

    /// The stream file's path.
    #[getter]
    fn path(&self) -> &str {
        &self.path
    }

    /// True once closed.
    #[getter]
    fn closed(&self) -> bool {
        self.server.is_closed()
    }

    /// Counters since the server was opened.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.usable(py)?;
        let s = self.server.stats();
        let d = PyDict::new(py);
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
        if n > 0 && lock(&self.open_loan).is_some() && !self.server.is_closed() {
            return Err(errors::views_alive("cannot close the server", n));
        }
        py.detach(|| self.server.close());
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
        match self.close(py) {
            // Do not mask the exception in flight; the server closes when the
            // views and the loan are garbage.
            Err(_) if !t.is_none() => Ok(false),
            r => r.map(|()| false),
        }
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
