//! `Server`: the producing end of a stream (put, waits, liveness, close).
//!
//! The engine server sits behind a `std::sync::Mutex`. No thread ever waits
//! for the GIL while holding it: work under the mutex is pure Rust, and long
//! work runs under `Python::detach`.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use pyo3::types::PyDict;
use shmimage::{Error, ServerOptions};

use crate::args::{dims, duration, liveness_name, lock, WAIT_SLICE};
use crate::buffer;
use crate::errors::{self, closed, typed, Side};
use crate::loan::Loan;
use crate::pixels_in::{rgb_frame, RgbFrame};

/// A server and at most one loan in progress, side by side (the engine's
/// detached loan, which does not borrow the server). `id` tells which Python
/// `Loan` object the loan belongs to.
pub(crate) struct ServerCell {
    server: shmimage::Server,
    loan: Option<(u64, shmimage::DetachedLoan)>,
}

impl ServerCell {
    fn new(server: shmimage::Server) -> ServerCell {
        ServerCell { server, loan: None }
    }

    /// The server, unless a loan holds a buffer (one frame at a time).
    fn server_mut(&mut self) -> Result<&mut shmimage::Server, Error> {
        if self.loan.is_some() {
            return Err(Error::Locked);
        }
        Ok(&mut self.server)
    }

    /// Start a loan; returns the address and length of its pixels, which
    /// stay valid until the loan ends (the mapping lives as long as the server).
    fn start_loan(&mut self, id: u64, width: u32, height: u32) -> Result<(usize, usize), Error> {
        if self.loan.is_some() {
            return Err(Error::Locked);
        }
        let loan = self.server.loan_detached(width, height)?;
        let slice = self.server.detached_pixels(&loan);
        let (addr, len) = (slice.as_mut_ptr() as usize, slice.len());
        self.loan = Some((id, loan));
        Ok((addr, len))
    }

    /// End loan `id`: publish it as frame `commit`, or give it back (`None`).
    /// A loan that is not the current one (already ended) is left alone.
    pub(crate) fn end_loan(&mut self, id: u64, commit: Option<u32>) -> Result<(), Error> {
        match self.loan.take() {
            Some((current, loan)) if current == id => match commit {
                Some(n) => self.server.commit_detached(loan, n),
                None => {
                    self.server.abandon_detached(loan);
                    Ok(())
                }
            },
            other => {
                self.loan = other;
                Ok(())
            }
        }
    }
}

impl Drop for ServerCell {
    fn drop(&mut self) {
        if let Some((_, loan)) = self.loan.take() {
            self.server.abandon_detached(loan);
        }
    }
}

/// The producing end of a stream.
#[pyclass(frozen, module = "shmimage", name = "Server")]
pub(crate) struct Server {
    pub(crate) cell: Mutex<Option<ServerCell>>,
    /// Views of the open loan's memory.
    pub(crate) loan_views: Arc<AtomicUsize>,
    next_loan: AtomicU64,
    path: String,
    capacity: u64,
}

impl Server {
    /// Run `f` on the open cell with the GIL released.
    pub(crate) fn with_cell<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut ServerCell) -> Result<T, Error> + Send,
    ) -> PyResult<T> {
        let r = py.detach(|| match lock(&self.cell).as_mut() {
            Some(cell) => Ok(f(cell)),
            None => Err(()),
        });
        match r {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.error(py, &e)),
            Err(()) => Err(closed(py, "the server")),
        }
    }

    fn error(&self, py: Python<'_>, e: &Error) -> PyErr {
        match e {
            Error::Locked => {
                typed(py, "LockedError", "a loan is open on this server: commit or abandon it first".to_owned())
            }
            _ => errors::to_py(py, e, Side::Other),
        }
    }

    /// Wait in slices so Ctrl-C is seen; `step` returns Some(result) when done.
    fn wait_loop<T: Send>(
        &self,
        py: Python<'_>,
        timeout: Option<f64>,
        step: impl Fn(&mut shmimage::Server, Duration) -> Option<Result<T, Error>> + Sync,
        on_timeout: T,
    ) -> PyResult<T> {
        let deadline = match timeout {
            Some(t) => Some(Instant::now() + duration(py, t, "timeout")?),
            None => None,
        };
        loop {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let slice = left.map_or(WAIT_SLICE, |l| l.min(WAIT_SLICE));
            if let Some(r) = self.with_cell(py, |c| Ok(step(c.server_mut()?, slice)))? {
                return r.map_err(|e| self.error(py, &e));
            }
            if left.is_some_and(|l| l <= slice) {
                return Ok(on_timeout);
            }
            py.check_signals()?;
        }
    }
}

#[pymethods]
impl Server {
    /// Open an existing stream file as its server (resets both buffers).
    #[new]
    #[pyo3(signature = (path, flip_vertical = false))]
    fn new(py: Python<'_>, path: std::path::PathBuf, flip_vertical: bool) -> PyResult<Server> {
        let opts = ServerOptions { flip_vertical, ..Default::default() };
        let server =
            py.detach(|| shmimage::Server::create(&path, opts)).map_err(|e| errors::to_py(py, &e, Side::Other))?;
        let capacity = server.capacity();
        Ok(Server {
            capacity,
            cell: Mutex::new(Some(ServerCell::new(server))),
            loan_views: Arc::new(AtomicUsize::new(0)),
            next_loan: AtomicU64::new(1),
            path: path.to_string_lossy().into_owned(),
        })
    }

    /// Publish one RGB frame. `pixels` is an (h, w, 3) uint8 C-contiguous
    /// array (sent as is; the size comes from its shape), any C-contiguous
    /// bytes-like object with `width` and `height` given, or another image:
    /// a PIL image, a gray (h, w) array, an RGBA/BGR/BGRA array (`layout`
    /// names the channel order: "rgb", "bgr", "rgba", "rgbx", "bgra",
    /// "bgrx", "gray"; None infers it from the shape) or a non-contiguous
    /// array, converted to RGB with one copy first. With `timeout` > 0, wait
    /// that long for a free buffer first. Raises NoBufferAvailableError
    /// (frame dropped) or UnconnectedError (no client) when the frame was not
    /// sent.
    #[pyo3(signature = (frame_number, pixels, *, width = None, height = None, timeout = 0.0, layout = None))]
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
        // Frame numbers are u32 on the wire and wrap around.
        let number = frame_number as u32;
        let r = buffer::with_slice_detached(py, &data, |px| {
            let mut guard = lock(&self.cell);
            let cell = guard.as_mut().ok_or(None)?;
            let server = cell.server_mut().map_err(Some)?;
            if !wait.is_zero() {
                server.wait_for_buffer(wait).map_err(Some)?;
            }
            server.put_frame(number, w, h, px).map_err(Some)
        });
        match r {
            Ok(()) => Ok(()),
            Err(Some(e)) => Err(self.error(py, &e)),
            Err(None) => Err(closed(py, "the server")),
        }
    }

    /// Borrow a free buffer to render a whole frame into, with no copy:
    /// `loan.array()` is a writable (height, width, 3) view of shared memory,
    /// `loan.commit(frame_number)` publishes it.
    fn loan(slf: &Bound<'_, Self>, width: i64, height: i64) -> PyResult<Loan> {
        let py = slf.py();
        let this = slf.get();
        let (w, h) = dims(py, width, height)?;
        let id = this.next_loan.fetch_add(1, Ordering::Relaxed);
        let (addr, len) = this.with_cell(py, |c| c.start_loan(id, w, h))?;
        debug_assert_eq!(len, w as usize * h as usize * 3);
        Ok(Loan::new(slf.clone().unbind(), id, w, h, addr))
    }

    /// Wait until a client is connected; False on timeout (None: forever).
    #[pyo3(signature = (timeout = None))]
    fn wait_for_client(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        self.wait_loop(
            py,
            timeout,
            |s, slice| match s.wait_for_client(slice) {
                Ok(()) => Some(Ok(true)),
                Err(Error::Unconnected { .. }) => None,
                Err(e) => Some(Err(e)),
            },
            false,
        )
    }

    /// Wait until a buffer is free; False on timeout (None: forever). Raises
    /// UnconnectedError when no client is connected.
    #[pyo3(signature = (timeout = None))]
    fn wait_for_buffer(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        self.wait_loop(
            py,
            timeout,
            |s, slice| match s.wait_for_buffer(slice) {
                Ok(()) => Some(Ok(true)),
                Err(Error::NoBufferAvailable) => None,
                Err(e) => Some(Err(e)),
            },
            false,
        )
    }

    /// True while a client is connected.
    #[getter]
    fn is_connected(&self, py: Python<'_>) -> PyResult<bool> {
        self.with_cell(py, |c| Ok(!c.server_mut()?.is_unconnected()))
    }

    /// False only when the client process is known to have gone.
    fn is_client_alive(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(self.client_liveness(py)? != "gone")
    }

    /// "alive", "gone" or "unknown" (a client that never showed a liveness
    /// lock, e.g. an older implementation).
    fn client_liveness(&self, py: Python<'_>) -> PyResult<&'static str> {
        self.with_cell(py, |c| Ok(liveness_name(c.server_mut()?.client_liveness())))
    }

    /// Payload bytes of one buffer.
    #[getter]
    fn capacity(&self) -> u64 {
        self.capacity
    }

    #[getter]
    fn path(&self) -> &str {
        &self.path
    }

    #[getter]
    fn closed(&self) -> bool {
        lock(&self.cell).is_none()
    }

    /// Counters since the server was opened.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.with_cell(py, |c| Ok(c.server_mut()?.stats()))?;
        let d = PyDict::new(py);
        d.set_item("frames_sent", s.frames_sent)?;
        d.set_item("frames_dropped", s.frames_dropped)?;
        d.set_item("frames_unconnected", s.frames_unconnected)?;
        d.set_item("frames_abandoned", s.frames_abandoned)?;
        d.set_item("bands_sent", s.bands_sent)?;
        d.set_item("clients_reclaimed", s.clients_reclaimed)?;
        Ok(d)
    }

    /// Close the stream. Refused (BufferError) while views of an open loan
    /// exist; an open loan without views is abandoned. Idempotent.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let mut guard = lock(&self.cell);
        let n = self.loan_views.load(Ordering::Acquire);
        if n > 0 && guard.as_ref().is_some_and(|c| c.loan.is_some()) {
            return Err(errors::views_alive("cannot close the server", n));
        }
        let cell = guard.take();
        drop(guard);
        py.detach(move || drop(cell));
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
            Err(e) if !t.is_none() => {
                // Do not mask the exception in flight; the server closes when
                // the views and the loan are garbage.
                let _ = e;
                Ok(false)
            }
            r => r.map(|()| false),
        }
    }

    fn __repr__(&self) -> String {
        format!("Server({:?}{})", self.path, if self.closed() { ", closed" } else { "" })
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Server>()?;
    Ok(())
}
