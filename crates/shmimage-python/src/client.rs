//! `Client`: the consuming end of a stream (waits, liveness, close).
//!
//! The engine client is shared by every thread (`Send + Sync`, `&self`), so
//! this object adds no lock: `close()` on one thread wakes a `wait_frame` on
//! another at once (ClosedError), and frames are engine handles that answer
//! ClosedError once their client is closed.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::PyDict;
use shmimage::native::{self as nat, ReaderOptions};
use shmimage::{ClientOptions, Error, Protocol};

use crate::args::{liveness_name, this_process};
use crate::errors::{self, closed, typed};
use crate::frame::{Frame, FrameIter, Handle};
use crate::wait::{engine_wait, timeout as wait_timeout};

/// The engine's reading end, of either format.
enum Engine {
    Ensight(shmimage::Client),
    Native(nat::Reader),
}

/// The consuming end of a stream.
#[pyclass(frozen, module = "shmimage", name = "Client")]
pub(crate) struct Client {
    engine: Engine,
    /// Set by close(): native frames check it (1.0 frames ask the engine).
    closed_flag: Arc<AtomicBool>,
    /// Bumped by `_cancel_waits`: a wait that got a frame just as it was
    /// cancelled gives it back instead of handing it out.
    cancels: AtomicU64,
    path: String,
    reconnected: bool,
    pid: u32,
}

/// How a frame wait ended, short of an exception.
pub(crate) enum WaitEnd {
    Frame(Box<Frame>),
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
        if self.is_closed() {
            return Err(closed(py, "the client"));
        }
        Ok(())
    }

    fn is_closed(&self) -> bool {
        match &self.engine {
            Engine::Ensight(c) => c.is_closed(),
            Engine::Native(_) => self.closed_flag.load(Ordering::Acquire),
        }
    }

    /// The 1.0 client, or a clear error for what only 1.0 streams have.
    fn ensight(&self, py: Python<'_>, what: &str) -> PyResult<&shmimage::Client> {
        match &self.engine {
            Engine::Ensight(c) => Ok(c),
            Engine::Native(_) => {
                Err(typed(py, "BadArgsError", format!("{what} is a protocol 1.0 feature; this is a native stream")))
            }
        }
    }

    fn wait_native(&self, py: Python<'_>, r: &nat::Reader, t: Option<std::time::Duration>) -> PyResult<WaitEnd> {
        let cancels = self.cancels.load(Ordering::Acquire);
        let timed_out = |e: &nat::Error| matches!(e, nat::Error::NoFrameAvailable);
        // Always in slices: the native reader has no cancel of its own, so a
        // cancelled wait (asyncio) ends between two slices.
        let res = engine_wait(py, t, true, timed_out, |t| {
            if self.cancels.load(Ordering::Acquire) != cancels {
                return Err(nat::Error::Closed);
            }
            let frame = match t {
                Some(d) if d.is_zero() => r.read(Some(d))?,
                _ => r.read(t)?,
            };
            Ok(frame)
        })?;
        if self.cancels.load(Ordering::Acquire) != cancels {
            return Err(typed(py, "WaitCancelledError", "the wait was cancelled".to_owned()));
        }
        match res {
            Ok(f) => Ok(WaitEnd::Frame(Box::new(Frame::new(Handle::Native(f, Arc::clone(&self.closed_flag)))))),
            Err(nat::Error::NoFrameAvailable) => Ok(WaitEnd::Timeout),
            Err(nat::Error::WriterGone { .. }) => Ok(WaitEnd::ServerGone),
            Err(nat::Error::Closed) => Err(closed(py, "the client")),
            Err(e) => Err(errors::native_to_py(py, &e)),
        }
    }

    /// Lock a frame, waiting up to `timeout` seconds (None: forever; 0: just
    /// look).
    pub(crate) fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<WaitEnd> {
        let t = wait_timeout(py, timeout)?;
        let client = match &self.engine {
            Engine::Ensight(c) => c,
            Engine::Native(r) => return self.wait_native(py, r, t),
        };
        let cancels = self.cancels.load(Ordering::Acquire);
        let timed_out = |e: &Error| matches!(e, Error::NoFrameAvailable);
        let r = engine_wait(py, t, false, timed_out, |t| {
            if self.cancels.load(Ordering::Acquire) != cancels {
                return Err(Error::Cancelled); // between two slices
            }
            let frame = match t {
                Some(d) if d.is_zero() => client.lock()?,
                _ => client.wait_frame(t)?,
            };
            if self.cancels.load(Ordering::Acquire) != cancels {
                // Cancelled as the frame arrived: a cancelled wait hands none out.
                drop(frame);
                return Err(Error::Cancelled);
            }
            Ok(frame)
        })?;
        match r {
            Ok(frame) => Ok(WaitEnd::Frame(Box::new(Frame::new(Handle::Ensight(frame))))),
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
        errors::to_py(py, &Error::ServerGone { path: self.path.clone().into() })
    }
}

#[pymethods]
impl Client {
    /// Open a stream file as its client, either format (detected from the
    /// file). Protocol 1.0: connect; `reconnected` tells whether the file
    /// already carried a stream (EnSight's RECONNECTING); PeerBusyError when
    /// another live client holds the file. Native streams: join as one of up
    /// to 64 readers; `lossless=True` asks for every frame in order (the
    /// writer waits for this reader, bounded) instead of the newest.
    #[new]
    #[pyo3(signature = (path, *, monitor_thread = true, lossless = false))]
    fn new(py: Python<'_>, path: std::path::PathBuf, monitor_thread: bool, lossless: bool) -> PyResult<Client> {
        let protocol = py.detach(|| shmimage::detect_protocol(&path));
        let engine = match protocol {
            Ok(Protocol::Native) => {
                let opts = ReaderOptions { lossless };
                Engine::Native(py.detach(|| nat::Reader::open(&path, &opts)).map_err(|e| errors::native_to_py(py, &e))?)
            }
            // A 1.0 file, or one the 1.0 opener explains best (missing, too small).
            _ => {
                let opts = ClientOptions { monitor_thread, ..Default::default() };
                let c = py.detach(|| shmimage::Client::connect(&path, opts)).map_err(|e| errors::to_py(py, &e))?;
                Engine::Ensight(c)
            }
        };
        let reconnected = matches!(&engine, Engine::Ensight(c) if c.reconnected());
        Ok(Client {
            engine,
            closed_flag: Arc::new(AtomicBool::new(false)),
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
            WaitEnd::Frame(f) => Ok(*f),
            WaitEnd::Timeout => Err(typed(py, "FrameTimeoutError", no_frame_within(timeout))),
            WaitEnd::ServerGone => Err(self.server_gone(py)),
        }
    }

    /// Lock the newest frame if one is waiting; NoFrameAvailableError if not.
    fn lock(&self, py: Python<'_>) -> PyResult<Frame> {
        match self.wait(py, Some(0.0))? {
            WaitEnd::Frame(f) => Ok(*f),
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
        if let Engine::Ensight(c) = &self.engine {
            c.cancel();
        }
    }

    /// False only when the server process is known to have exited.
    fn is_server_alive(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(self.server_liveness(py)? != "gone")
    }

    /// "alive", "gone" or "unknown" (a server that never showed a liveness
    /// lock, e.g. EnSight itself).
    fn server_liveness(&self, py: Python<'_>) -> PyResult<&'static str> {
        self.usable(py)?;
        Ok(match &self.engine {
            Engine::Ensight(c) => liveness_name(py.detach(|| c.server_liveness())),
            Engine::Native(r) if r.writer_alive() => "alive",
            Engine::Native(_) => "gone",
        })
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
        Ok(self.ensight(py, "capacity")?.capacity())
    }

    /// True once closed.
    #[getter]
    fn closed(&self) -> bool {
        self.is_closed()
    }

    /// "ensight-1.0" or "native": the stream file's format.
    #[getter]
    fn protocol(&self) -> &'static str {
        match self.engine {
            Engine::Ensight(_) => Protocol::Ensight1.name(),
            Engine::Native(_) => Protocol::Native.name(),
        }
    }

    /// Counters since connect.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.usable(py)?;
        let d = PyDict::new(py);
        let c = match &self.engine {
            Engine::Ensight(c) => c,
            Engine::Native(r) => {
                d.set_item("frames_missed", r.missed())?;
                d.set_item("last_sequence", r.last_sequence())?;
                return Ok(d);
            }
        };
        let s = c.stats();
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
        self.closed_flag.store(true, Ordering::Release);
        match &self.engine {
            Engine::Ensight(c) => py.detach(|| c.close()),
            Engine::Native(r) => py.detach(|| r.close()),
        }
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
