//! `Client`: the consuming end of a stream (waits, liveness, close).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use pyo3::prelude::*;
use pyo3::types::PyDict;
use shmimage::{ClientOptions, Error};

use crate::args::{duration, liveness_name, lock, WAIT_SLICE};
use crate::errors::{self, closed, server_gone, typed, Side};
use crate::frame::{Frame, FrameIter};

pub(crate) struct ClientCore {
    pub(crate) client: shmimage::Client,
    /// The id of the Frame object holding the engine's lock.
    pub(crate) held: Option<u64>,
}

pub(crate) type Core = Arc<Mutex<ClientCore>>;

/// The consuming end of a stream.
#[pyclass(frozen, module = "shmimage", name = "Client")]
pub(crate) struct Client {
    core: Mutex<Option<Core>>,
    next_frame: AtomicU64,
    /// Bumped by `_cancel_waits`; a wait that sees it change ends.
    cancels: AtomicU64,
    path: String,
    reconnected: bool,
}

pub(crate) enum WaitEnd {
    Frame(Frame),
    Timeout,
    ServerGone,
}

impl Client {
    fn core(&self, py: Python<'_>) -> PyResult<Core> {
        let core = lock(&self.core).clone();
        core.ok_or_else(|| closed(py, "the client"))
    }

    fn with_core<T: Send>(&self, py: Python<'_>, f: impl FnOnce(&mut ClientCore) -> T + Send) -> PyResult<T> {
        let core = self.core(py)?;
        Ok(py.detach(move || f(&mut lock(&core))))
    }

    /// Lock a frame, waiting up to `timeout` (None: forever; 0: just look).
    pub(crate) fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<WaitEnd> {
        let core = self.core(py)?;
        let deadline = match timeout {
            Some(t) => Some(Instant::now() + duration(py, t, "timeout")?),
            None => None,
        };
        let id = self.next_frame.fetch_add(1, Ordering::Relaxed);
        let cancels = self.cancels.load(Ordering::Acquire);
        loop {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let slice = left.map_or(WAIT_SLICE, |l| l.min(WAIT_SLICE));
            let r = py.detach(|| {
                let mut c = lock(&core);
                if c.held.is_some() {
                    return Err(Error::Locked);
                }
                if self.cancels.load(Ordering::Acquire) != cancels {
                    return Err(Error::NoFrameAvailable);
                }
                let info = c.client.wait_frame_unguarded(slice)?;
                if self.cancels.load(Ordering::Acquire) != cancels {
                    // Cancelled while the frame arrived: a cancelled wait
                    // never hands one out.
                    let _ = c.client.unlock();
                    return Err(Error::NoFrameAvailable);
                }
                let addr = c.client.pixels().map_or(0, |p| p.as_ptr() as usize);
                c.held = Some(id);
                Ok((info, addr))
            });
            match r {
                Ok((info, addr)) => return Ok(WaitEnd::Frame(Frame::new(Arc::clone(&core), id, info, addr))),
                Err(Error::NoFrameAvailable) if left.is_some_and(|l| l <= slice) => return Ok(WaitEnd::Timeout),
                Err(Error::NoFrameAvailable) if self.cancels.load(Ordering::Acquire) != cancels => {
                    return Err(typed(py, "WaitCancelledError", "the wait was cancelled".to_owned()))
                }
                Err(Error::NoFrameAvailable) => py.check_signals()?,
                Err(Error::Locked) => {
                    return Err(typed(
                        py,
                        "LockedError",
                        "a frame of this client is still held: release it (frame.release() or a with block) first"
                            .to_owned(),
                    ))
                }
                Err(Error::Unconnected { .. }) => return Ok(WaitEnd::ServerGone),
                Err(e) => return Err(errors::to_py(py, &e, Side::Client)),
            }
        }
    }
}

#[pymethods]
impl Client {
    /// Open a stream file as its client and connect. `reconnected` tells
    /// whether the file already carried a stream (EnSight's RECONNECTING).
    #[new]
    #[pyo3(signature = (path, *, monitor_thread = true))]
    fn new(py: Python<'_>, path: std::path::PathBuf, monitor_thread: bool) -> PyResult<Client> {
        let opts = ClientOptions { monitor_thread, ..Default::default() };
        let client =
            py.detach(|| shmimage::Client::connect(&path, opts)).map_err(|e| errors::to_py(py, &e, Side::Other))?;
        let reconnected = client.reconnected();
        Ok(Client {
            core: Mutex::new(Some(Arc::new(Mutex::new(ClientCore { client, held: None })))),
            next_frame: AtomicU64::new(1),
            cancels: AtomicU64::new(0),
            path: path.to_string_lossy().into_owned(),
            reconnected,
        })
    }

    /// Wait for the newest frame and lock it. Raises FrameTimeoutError (also a
    /// TimeoutError) when none arrives in `timeout` seconds (None: wait
    /// forever), ServerGoneError when the server process has exited. The GIL
    /// is released while waiting.
    #[pyo3(signature = (timeout = None))]
    fn wait_frame(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Frame> {
        match self.wait(py, timeout)? {
            WaitEnd::Frame(f) => Ok(f),
            WaitEnd::Timeout => Err(typed(py, "FrameTimeoutError", no_frame_within(timeout))),
            WaitEnd::ServerGone => Err(server_gone(py)),
        }
    }

    /// Lock the newest frame if one is waiting; NoFrameAvailableError if not.
    fn lock(&self, py: Python<'_>) -> PyResult<Frame> {
        match self.wait(py, Some(0.0))? {
            WaitEnd::Frame(f) => Ok(f),
            WaitEnd::Timeout => Err(typed(py, "NoFrameAvailableError", "no new frame is available".to_owned())),
            WaitEnd::ServerGone => Err(server_gone(py)),
        }
    }

    /// Iterate over frames as they arrive. Each frame is released when the
    /// next is requested (BufferError if views of it still exist). The
    /// iteration ends when no frame arrives within `timeout` seconds (None:
    /// never) or when the server process has gone and every frame it
    /// published has been read (`is_server_alive()` tells which).
    #[pyo3(signature = (timeout = None))]
    fn frames(slf: &Bound<'_, Self>, timeout: Option<f64>) -> PyResult<FrameIter> {
        if let Some(t) = timeout {
            duration(slf.py(), t, "timeout")?;
        }
        Ok(FrameIter::new(slf.clone().unbind(), timeout))
    }

    /// `await client.wait_frame_async(timeout)`: wait_frame for asyncio. The
    /// wait runs in the loop's default executor, so the event loop keeps
    /// running; cancelling the task ends the wait.
    #[pyo3(signature = (timeout = None))]
    fn wait_frame_async<'py>(slf: &Bound<'py, Self>, timeout: Option<f64>) -> PyResult<Bound<'py, PyAny>> {
        if let Some(t) = timeout {
            duration(slf.py(), t, "timeout")?;
        }
        slf.py().import("shmimage._aio")?.getattr("wait_frame_async")?.call1((slf, timeout))
    }

    /// `async for frame in client.aframes(timeout)`: frames() for asyncio,
    /// with the same release rule and the same end (a timeout, or the server
    /// gone).
    #[pyo3(signature = (timeout = None))]
    fn aframes<'py>(slf: &Bound<'py, Self>, timeout: Option<f64>) -> PyResult<Bound<'py, PyAny>> {
        if let Some(t) = timeout {
            duration(slf.py(), t, "timeout")?;
        }
        slf.py().import("shmimage._aio")?.getattr("aframes")?.call1((slf, timeout))
    }

    /// End every wait in progress on this client (they raise
    /// WaitCancelledError); later waits are not affected. Used by the
    /// asyncio methods when their task is cancelled.
    fn _cancel_waits(&self) {
        self.cancels.fetch_add(1, Ordering::AcqRel);
    }

    /// False only when the server process is known to have exited.
    fn is_server_alive(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(self.server_liveness(py)? != "gone")
    }

    /// "alive", "gone" or "unknown" (a server that never showed a liveness
    /// lock, e.g. EnSight itself).
    fn server_liveness(&self, py: Python<'_>) -> PyResult<&'static str> {
        self.with_core(py, |c| liveness_name(c.client.server_liveness()))
    }

    /// True when the file already carried a stream at connect (RECONNECTING).
    #[getter]
    fn reconnected(&self) -> bool {
        self.reconnected
    }

    #[getter]
    fn path(&self) -> &str {
        &self.path
    }

    /// Payload bytes of one buffer.
    #[getter]
    fn capacity(&self, py: Python<'_>) -> PyResult<u64> {
        self.with_core(py, |c| c.client.capacity())
    }

    #[getter]
    fn closed(&self) -> bool {
        lock(&self.core).is_none()
    }

    /// Counters since connect.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.with_core(py, |c| c.client.stats())?;
        let d = PyDict::new(py);
        d.set_item("frames_locked", s.frames_locked)?;
        d.set_item("frames_stale", s.frames_stale)?;
        d.set_item("frames_partial", s.frames_partial)?;
        d.set_item("bands_assembled", s.bands_assembled)?;
        d.set_item("corrupt_headers", s.corrupt_headers)?;
        d.set_item("reconnects", s.reconnects)?;
        Ok(d)
    }

    /// Disconnect (the server then sees UNCONNECTED). A frame still held
    /// keeps the stream open until that frame is released. Idempotent.
    fn close(&self, py: Python<'_>) {
        let core = lock(&self.core).take();
        // Dropping the last reference joins the monitor thread.
        py.detach(move || drop(core));
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

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Client>()?;
    Ok(())
}

/// The message of a frame wait's timeout, in seconds as the caller gave them.
fn no_frame_within(timeout: Option<f64>) -> String {
    match timeout {
        Some(t) => format!("no frame arrived within {t} s"),
        // Only a cancelled endless wait ends without a frame.
        None => "no frame arrived".to_owned(),
    }
}
