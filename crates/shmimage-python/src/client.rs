//! `Client`: the consuming end of a stream (waits, liveness, close).
//!
//! The engine client is shared by every thread (`Send + Sync`, `&self`), so
//! this object adds no lock: `close()` on one thread wakes a `wait_frame` on
//! another at once (ClosedError), and frames are engine handles that answer
//! ClosedError once their client is closed.

use std::sync::atomic::{AtomicU64, Ordering};

use pyo3::prelude::*;
use pyo3::types::PyDict;
use shmimage::{ClientOptions, Error};

use crate::args::{liveness_name, this_process};
use crate::errors::{self, closed, typed};
use crate::frame::{Frame, FrameIter};
use crate::wait::{engine_wait, timeout as wait_timeout};

/// The consuming end of a stream.
#[pyclass(frozen, module = "shmimage", name = "Client")]
pub(crate) struct Client {
    client: shmimage::Client,
    /// Bumped by `_cancel_waits`: a wait that got a frame just as it was
    /// cancelled gives it back instead of handing it out.
    cancels: AtomicU64,
    path: String,
    reconnected: bool,
    pid: u32,
}

/// How a frame wait ended, short of an exception.
pub(crate) enum WaitEnd {
    Frame(Frame),
    Timeout,
    ServerGone,
}

impl Client {
    /// Closed or inherited across fork: the error for calls the engine
    /// answers without one.
    fn usable(&self, py: Python<'_>) -> PyResult<()> {
        if this_process() != self.pid {
            return Err(errors::to_py(py, &Error::Forked));
        }
        if self.client.is_closed() {
            return Err(closed(py, "the client"));
        }
        Ok(())
    }

    /// Lock a frame, waiting up to `timeout` seconds (None: forever; 0: just
    /// look).
    pub(crate) fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<WaitEnd> {
        let t = wait_timeout(py, timeout)?;
        let cancels = self.cancels.load(Ordering::Acquire);
        let timed_out = |e: &Error| matches!(e, Error::NoFrameAvailable);
        let r = engine_wait(py, t, timed_out, |t| {
            if self.cancels.load(Ordering::Acquire) != cancels {
                return Err(Error::Cancelled); // between two slices
            }
            let frame = match t {
                Some(d) if d.is_zero() => self.client.lock()?,
                _ => self.client.wait_frame(t)?,
            };
            if self.cancels.load(Ordering::Acquire) != cancels {
                // Cancelled as the frame arrived: a cancelled wait hands none out.
                drop(frame);
                return Err(Error::Cancelled);
            }
            Ok(frame)
        })?;
        match r {
            Ok(frame) => Ok(WaitEnd::Frame(Frame::new(frame))),
            Err(Error::NoFrameAvailable) => Ok(WaitEnd::Timeout),
            Err(Error::ServerGone { .. }) => Ok(WaitEnd::ServerGone),
            Err(Error::Locked) => Err(typed(
                py,
                "LockedError",
                "two frames of this client are still held (by Frame objects or their numpy views): \
                 release one (frame.release(), a with block, or del the views) first"
                    .to_owned(),
            )),
            Err(Error::Closed) => Err(closed(py, "the client")),
            Err(e) => Err(errors::to_py(py, &e)),
        }
    }

    fn server_gone(&self, py: Python<'_>) -> PyErr {
        errors::to_py(py, &Error::ServerGone { path: self.client.path().to_owned() })
    }
}

#[pymethods]
impl Client {
    /// Open a stream file as its client and connect. `reconnected` tells
    /// whether the file already carried a stream (EnSight's RECONNECTING).
    /// Raises PeerBusyError when another live client holds the file.
    #[new]
    #[pyo3(signature = (path, *, monitor_thread = true))]
    fn new(py: Python<'_>, path: std::path::PathBuf, monitor_thread: bool) -> PyResult<Client> {
        let opts = ClientOptions { monitor_thread, ..Default::default() };
        let client = py.detach(|| shmimage::Client::connect(&path, opts)).map_err(|e| errors::to_py(py, &e))?;
        let reconnected = client.reconnected();
        Ok(Client {
            client,
            cancels: AtomicU64::new(0),
            path: path.to_string_lossy().into_owned(),
            reconnected,
            pid: this_process(),
        })
    }

    /// Wait for the newest frame and lock it. Raises FrameTimeoutError (also a
    /// TimeoutError) when none arrives in `timeout` seconds (None: wait
    /// forever), ServerGoneError when the server process has exited,
    /// ClosedError when close() is called meanwhile (from any thread). The
    /// GIL is released while waiting. Up to two frames may be held at once.
    #[pyo3(signature = (timeout = None))]
    fn wait_frame(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Frame> {
        match self.wait(py, timeout)? {
            WaitEnd::Frame(f) => Ok(f),
            WaitEnd::Timeout => Err(typed(py, "FrameTimeoutError", no_frame_within(timeout))),
            WaitEnd::ServerGone => Err(self.server_gone(py)),
        }
    }

    /// Lock the newest frame if one is waiting; NoFrameAvailableError if not.
    fn lock(&self, py: Python<'_>) -> PyResult<Frame> {
        match self.wait(py, Some(0.0))? {
            WaitEnd::Frame(f) => Ok(f),
            WaitEnd::Timeout => Err(typed(py, "NoFrameAvailableError", "no new frame is available".to_owned())),
            WaitEnd::ServerGone => Err(self.server_gone(py)),
        }
    }

    /// Iterate over frames as they arrive:
    /// `for f in client.frames(): img = f.array()` works, zero-copy. When
    /// the next frame is requested the previous one is released, or, while
    /// numpy views of it still exist, kept locked until the last view is
    /// gone (a frame's view never shows another frame's pixels). The
    /// iteration ends when no frame arrives within `timeout` seconds (None:
    /// never) or when the server process has gone and every frame it
    /// published has been read (`is_server_alive()` tells which).
    #[pyo3(signature = (timeout = None))]
    fn frames(slf: &Bound<'_, Self>, timeout: Option<f64>) -> PyResult<FrameIter> {
        wait_timeout(slf.py(), timeout)?;
        Ok(FrameIter::new(slf.clone().unbind(), timeout))
    }

    /// `await client.wait_frame_async(timeout)`: wait_frame for asyncio. The
    /// wait runs in the loop's default executor, so the event loop keeps
    /// running; cancelling the task ends the wait.
    #[pyo3(signature = (timeout = None))]
    fn wait_frame_async<'py>(slf: &Bound<'py, Self>, timeout: Option<f64>) -> PyResult<Bound<'py, PyAny>> {
        wait_timeout(slf.py(), timeout)?;
        slf.py().import("shmimage._aio")?.getattr("wait_frame_async")?.call1((slf, timeout))
    }

    /// `async for frame in client.aframes(timeout)`: frames() for asyncio,
    /// with the same release rule and the same end (a timeout, or the server
    /// gone).
    #[pyo3(signature = (timeout = None))]
    fn aframes<'py>(slf: &Bound<'py, Self>, timeout: Option<f64>) -> PyResult<Bound<'py, PyAny>> {
        wait_timeout(slf.py(), timeout)?;
        slf.py().import("shmimage._aio")?.getattr("aframes")?.call1((slf, timeout))
    }

    /// End every wait in progress on this client (they raise
    /// WaitCancelledError); later waits are not affected. The asyncio
    /// methods call it when their task is cancelled.
    fn _cancel_waits(&self) {
        self.cancels.fetch_add(1, Ordering::AcqRel);
        self.client.cancel();
    }

    /// False only when the server process is known to have exited.
    fn is_server_alive(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(self.server_liveness(py)? != "gone")
    }

    /// "alive", "gone" or "unknown" (a server that never showed a liveness
    /// lock, e.g. EnSight itself).
    fn server_liveness(&self, py: Python<'_>) -> PyResult<&'static str> {
        self.usable(py)?;
        Ok(liveness_name(py.detach(|| self.client.server_liveness())))
    }

    /// True when the file already carried a stream at connect (RECONNECTING).
    #[getter]
    fn reconnected(&self) -> bool {
        self.reconnected
    }

    /// The stream file's path.
    #[getter]
    fn path(&self) -> &str {
        &self.path
    }

    /// Payload bytes of one buffer.
    #[getter]
    fn capacity(&self, py: Python<'_>) -> PyResult<u64> {
        self.usable(py)?;
        Ok(self.client.capacity())
    }

    /// True once closed.
    #[getter]
    fn closed(&self) -> bool {
        self.client.is_closed()
    }

    /// Counters since connect.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.usable(py)?;
        let s = self.client.stats();
        let d = PyDict::new(py);
        d.set_item("frames_locked", s.frames_locked)?;
        d.set_item("frames_stale", s.frames_stale)?;
        d.set_item("frames_partial", s.frames_partial)?;
        d.set_item("bands_assembled", s.bands_assembled)?;
        d.set_item("corrupt_headers", s.corrupt_headers)?;
        d.set_item("reconnects", s.reconnects)?;
        Ok(d)
    }

    /// Disconnect, from any thread: a wait in progress ends at once with
    /// ClosedError, frames of this client answer ClosedError from now on (a
    /// numpy view made before reads zeros, never another frame), and the
    /// server sees UNCONNECTED. Idempotent. In a fork child it touches
    /// nothing of the parent's.
    fn close(&self, py: Python<'_>) {
        py.detach(|| self.client.close());
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __exit__(&self, py: Python<'_>, _t: &Bound<'_, PyAny>, _v: &Bound<'_, PyAny>, _tb: &Bound<'_, PyAny>) -> bool {
        self.close(py);
        false
    }

    fn __repr__(&self) -> String {
        format!("Client({:?}{})", self.path, if self.closed() { ", closed" } else { "" })
    }
}

/// The message of a frame wait's timeout, in seconds as the caller gave them.
fn no_frame_within(timeout: Option<f64>) -> String {
    match timeout {
        Some(t) => format!("no frame arrived within {t} s"),
        None => "no frame arrived".to_owned(),
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Client>()?;
    Ok(())
}
