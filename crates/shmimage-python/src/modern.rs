//! The modern API behind the package `shmimage`: Server, Client, Frame, Loan,
//! StreamFile, zero-copy numpy views and typed exceptions.
//!
//! Locks and the GIL. Every engine object sits behind a `std::sync::Mutex`.
//! No thread ever waits for the GIL while holding one of these mutexes: work
//! under a mutex is pure Rust. So a thread that holds the GIL may block on a
//! mutex without deadlock; long work (waits, copies) runs under
//! `Python::detach` so other Python threads keep running meanwhile.
//!
//! Views. `Frame.array()` and `Loan.array()` hand numpy a `_PixelView`
//! object exposing `__array_interface__` (numpy keeps it as the array's
//! base). Each view counts itself in its owner's counter while it lives, and
//! the owner refuses to give the memory back (release, commit, abandon,
//! close) while the count is not zero: a numpy array can never see memory
//! that has changed hands.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use shmimage::{ClientOptions, Error, FrameInfo, Liveness, ServerOptions};

use crate::buffer::{self, Bytes};
use crate::errors::{self, Side};

/// Longest stretch a wait spends without the GIL before it looks for signals
/// (Ctrl-C) and comes back.
const WAIT_SLICE: Duration = Duration::from_millis(50);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section below leaves its data consistent at each step,
    // so a panic elsewhere does not make it unusable.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn closed(py: Python<'_>, what: &str) -> PyErr {
    typed(py, "ClosedError", format!("{what} is closed"))
}

fn py_err(py: Python<'_>, e: &Error, side: Side) -> PyErr {
    errors::to_py(py, e, side)
}

fn typed(py: Python<'_>, class: &str, msg: String) -> PyErr {
    match errors::class(py, class) {
        Ok(cls) => PyErr::from_type(cls, msg),
        Err(e) => e,
    }
}

fn duration(py: Python<'_>, seconds: f64, what: &str) -> PyResult<Duration> {
    Duration::try_from_secs_f64(seconds).map_err(|_| {
        typed(py, "BadArgsError", format!("{what} must be a finite number of seconds >= 0, not {seconds}"))
    })
}

fn dims(py: Python<'_>, width: i64, height: i64) -> PyResult<(u32, u32)> {
    match (u32::try_from(width), u32::try_from(height)) {
        (Ok(w), Ok(h)) if w > 0 && h > 0 => Ok((w, h)),
        _ => {
            Err(typed(py, "BadArgsError", format!("frame size {width}x{height}: width and height must be in 1..2**32")))
        }
    }
}

fn server_gone(py: Python<'_>) -> PyErr {
    typed(py, "ServerGoneError", "the server process has exited".to_owned())
}

fn liveness_name(l: Liveness) -> &'static str {
    match l {
        Liveness::Alive => "alive",
        Liveness::Gone => "gone",
        Liveness::Unknown => "unknown",
    }
}

// --- views --------------------------------------------------------------------

/// The numpy view's base object: an address range in shared memory that stays
/// valid while this object lives (it keeps its owner, and so the mapping,
/// alive, and its owner refuses to hand the memory back meanwhile).
#[pyclass(frozen, module = "shmimage", name = "_PixelView")]
struct PixelView {
    addr: usize,
    width: u32,
    height: u32,
    writable: bool,
    _lent: Lent,
    _owner: Py<PyAny>,
}

#[pymethods]
impl PixelView {
    #[getter]
    fn __array_interface__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("shape", (self.height, self.width, 3u32))?;
        d.set_item("typestr", "|u1")?;
        d.set_item("data", (self.addr, !self.writable))?;
        d.set_item("version", 3)?;
        Ok(d)
    }
}

fn numpy(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    py.import("numpy").map_err(|e| {
        pyo3::exceptions::PyImportError::new_err(format!("numpy is needed for array views (pip install numpy): {e}"))
    })
}

/// An (h, w, 3) uint8 numpy array over `addr`. `lent` was taken under the
/// owner's lock, after checking the memory is still the owner's to lend; the
/// lock is released before this runs, because building the array runs Python
/// code (which may hand the GIL to a thread that wants that lock).
fn make_array<'py>(
    owner: &Bound<'py, PyAny>,
    addr: usize,
    width: u32,
    height: u32,
    writable: bool,
    lent: Lent,
) -> PyResult<Bound<'py, PyAny>> {
    let py = owner.py();
    let np = numpy(py)?;
    let view =
        Bound::new(py, PixelView { addr, width, height, writable, _lent: lent, _owner: owner.clone().unbind() })?;
    np.getattr("asarray")?.call1((view,))
}

/// One use of an owner's memory (a view, or a copy in progress), counted in
/// the owner's counter while it lives; the owner refuses to hand the memory
/// back while the count is not zero.
struct Lent(Arc<AtomicUsize>);

impl Lent {
    fn new(count: &Arc<AtomicUsize>) -> Lent {
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
fn bytes_from<'py>(py: Python<'py>, addr: usize, len: usize) -> PyResult<Bound<'py, PyBytes>> {
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
fn array_from<'py>(py: Python<'py>, addr: usize, width: u32, height: u32) -> PyResult<Bound<'py, PyAny>> {
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

// --- stream files -------------------------------------------------------------

/// A stream file this process made; closing it removes the file and its
/// private directory.
#[pyclass(frozen, module = "shmimage", name = "StreamFile")]
struct StreamFile {
    inner: Mutex<Option<shmimage::StreamFile>>,
    path: String,
}

#[pymethods]
impl StreamFile {
    /// The file's path.
    #[getter]
    fn path(&self) -> &str {
        &self.path
    }

    fn __fspath__(&self) -> &str {
        &self.path
    }

    /// True once closed (the file is gone).
    #[getter]
    fn closed(&self) -> bool {
        lock(&self.inner).is_none()
    }

    /// Remove the file and its directory (streams already open keep working
    /// on the unlinked file). Idempotent.
    fn close(&self, py: Python<'_>) {
        let f = lock(&self.inner).take();
        py.detach(move || drop(f));
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __exit__(&self, py: Python<'_>, _t: &Bound<'_, PyAny>, _v: &Bound<'_, PyAny>, _tb: &Bound<'_, PyAny>) -> bool {
        self.close(py);
        false
    }

    fn __repr__(&self) -> String {
        format!("StreamFile({:?}{})", self.path, if self.closed() { ", closed" } else { "" })
    }
}

/// Make a stream file big enough for `max_width` x `max_height` frames to
/// travel in one piece (read in place), in a new private directory under
/// /dev/shm (or the temp dir).
#[pyfunction]
fn create_stream_file(py: Python<'_>, max_width: i64, max_height: i64) -> PyResult<StreamFile> {
    let (w, h) = dims(py, max_width, max_height)?;
    let f = py.detach(|| shmimage::StreamFile::for_frame(w, h)).map_err(|e| py_err(py, &e, Side::Other))?;
    let path = f.path().to_string_lossy().into_owned();
    Ok(StreamFile { inner: Mutex::new(Some(f)), path })
}

// --- server -------------------------------------------------------------------

/// A server and at most one loan in progress, side by side (the engine's
/// detached loan, which does not borrow the server). `id` tells which Python
/// `Loan` object the loan belongs to.
struct ServerCell {
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
    fn end_loan(&mut self, id: u64, commit: Option<u32>) -> Result<(), Error> {
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
struct Server {
    cell: Mutex<Option<ServerCell>>,
    /// Views of the open loan's memory.
    loan_views: Arc<AtomicUsize>,
    next_loan: AtomicU64,
    path: String,
    capacity: u64,
}

impl Server {
    /// Run `f` on the open cell with the GIL released.
    fn with_cell<T: Send>(
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
            _ => py_err(py, e, Side::Other),
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
        let server = py.detach(|| shmimage::Server::create(&path, opts)).map_err(|e| py_err(py, &e, Side::Other))?;
        let capacity = server.capacity();
        Ok(Server {
            capacity,
            cell: Mutex::new(Some(ServerCell::new(server))),
            loan_views: Arc::new(AtomicUsize::new(0)),
            next_loan: AtomicU64::new(1),
            path: path.to_string_lossy().into_owned(),
        })
    }

    /// Publish one RGB frame. `pixels` is an (h, w, 3) uint8 array (the size
    /// comes from its shape), or any C-contiguous bytes-like object with
    /// `width` and `height` given. With `timeout` > 0, wait that long for a
    /// free buffer first. Raises NoBufferAvailableError (frame dropped) or
    /// UnconnectedError (no client) when the frame was not sent.
    #[pyo3(signature = (frame_number, pixels, *, width = None, height = None, timeout = 0.0))]
    fn put(
        &self,
        py: Python<'_>,
        frame_number: i64,
        pixels: &Bound<'_, PyAny>,
        width: Option<i64>,
        height: Option<i64>,
        timeout: f64,
    ) -> PyResult<()> {
        let wait = duration(py, timeout, "timeout")?;
        let data = Bytes::get_shaped(pixels).map_err(|e| {
            typed(py, "BadArgsError", format!("pixels must be a C-contiguous bytes-like object or uint8 array: {e}"))
        })?;
        let (w, h) = match (width, height) {
            (Some(w), Some(h)) => dims(py, w, h)?,
            (None, None) => {
                let s = data.shape();
                let byte_format = matches!(s.format.trim_start_matches(['@', '=', '<', '>', '!']), "B");
                match s.dims.as_slice() {
                    [h, w, 3] if byte_format && s.itemsize == 1 => dims(py, *w as i64, *h as i64)?,
                    _ => {
                        return Err(typed(
                            py,
                            "BadArgsError",
                            format!(
                                "pixels has shape {:?} and format {:?}; pass an (h, w, 3) uint8 array, \
                                 or width= and height= with a bytes-like object",
                                s.dims, s.format
                            ),
                        ))
                    }
                }
            }
            _ => return Err(typed(py, "BadArgsError", "give both width and height, or neither".to_owned())),
        };
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
        Ok(Loan { server: slf.clone().unbind(), id, width: w, height: h, addr, open: Mutex::new(true) })
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

/// A buffer lent by the server: write the frame into `array()`, then
/// `commit(frame_number)`. Leaving a `with` block without committing, or
/// `abandon()`, gives the buffer back unpublished.
#[pyclass(frozen, module = "shmimage", name = "Loan")]
struct Loan {
    server: Py<Server>,
    id: u64,
    width: u32,
    height: u32,
    addr: usize,
    open: Mutex<bool>,
}

impl Loan {
    /// End the loan (commit or abandon), refusing while views exist.
    fn end(&self, py: Python<'_>, commit: Option<u32>) -> PyResult<()> {
        let server = self.server.get();
        let mut open = lock(&self.open);
        if !*open {
            drop(open);
            return Err(closed(py, "this loan (already committed or abandoned)"));
        }
        let n = server.loan_views.load(Ordering::Acquire);
        if n > 0 {
            return Err(errors::views_alive("cannot end the loan", n));
        }
        *open = false;
        // Not held across the call below: it re-takes the GIL, and a thread
        // holding the GIL may be waiting for this lock.
        drop(open);
        let id = self.id;
        server.with_cell(py, |c| c.end_loan(id, commit))
    }
}

#[pymethods]
impl Loan {
    #[getter]
    fn width(&self) -> u32 {
        self.width
    }

    #[getter]
    fn height(&self) -> u32 {
        self.height
    }

    /// True until committed or abandoned.
    #[getter]
    fn is_open(&self) -> bool {
        *lock(&self.open)
    }

    /// A writable (height, width, 3) uint8 numpy view of the lent buffer.
    /// Delete every view before commit()/abandon() (they refuse otherwise).
    fn array<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let this = slf.get();
        // The lock is released before any Python code runs (see make_array).
        let lent = (*lock(&this.open)).then(|| Lent::new(&this.server.get().loan_views));
        let lent = lent.ok_or_else(|| closed(slf.py(), "this loan (already committed or abandoned)"))?;
        make_array(slf.as_any(), this.addr, this.width, this.height, true, lent)
    }

    /// Publish the frame with this number.
    fn commit(&self, py: Python<'_>, frame_number: i64) -> PyResult<()> {
        self.end(py, Some(frame_number as u32))
    }

    /// Give the buffer back without publishing it.
    fn abandon(&self, py: Python<'_>) -> PyResult<()> {
        self.end(py, None)
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
        if !self.is_open() {
            return Ok(false);
        }
        match self.abandon(py) {
            Err(_) if !t.is_none() => Ok(false),
            r => r.map(|()| false),
        }
    }

    fn __repr__(&self) -> String {
        format!("Loan({}x{}{})", self.width, self.height, if self.is_open() { "" } else { ", ended" })
    }
}

impl Drop for Loan {
    fn drop(&mut self) {
        if !*lock(&self.open) {
            return;
        }
        // Views keep the Loan alive, so none exists now: abandoning is safe.
        // The cell mutex is never held by a thread waiting for the GIL.
        if let Some(cell) = lock(&self.server.get().cell).as_mut() {
            let _ = cell.end_loan(self.id, None);
        }
    }
}

// --- client -------------------------------------------------------------------

struct ClientCore {
    client: shmimage::Client,
    /// The id of the Frame object holding the engine's lock.
    held: Option<u64>,
}

type Core = Arc<Mutex<ClientCore>>;

/// The consuming end of a stream.
#[pyclass(frozen, module = "shmimage", name = "Client")]
struct Client {
    core: Mutex<Option<Core>>,
    next_frame: AtomicU64,
    path: String,
    reconnected: bool,
}

enum WaitEnd {
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
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<WaitEnd> {
        let core = self.core(py)?;
        let deadline = match timeout {
            Some(t) => Some(Instant::now() + duration(py, t, "timeout")?),
            None => None,
        };
        let id = self.next_frame.fetch_add(1, Ordering::Relaxed);
        loop {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let slice = left.map_or(WAIT_SLICE, |l| l.min(WAIT_SLICE));
            let r = py.detach(|| {
                let mut c = lock(&core);
                if c.held.is_some() {
                    return Err(Error::Locked);
                }
                let info = c.client.wait_frame_unguarded(slice)?;
                let addr = c.client.pixels().map_or(0, |p| p.as_ptr() as usize);
                c.held = Some(id);
                Ok((info, addr))
            });
            match r {
                Ok((info, addr)) => {
                    return Ok(WaitEnd::Frame(Frame {
                        core: Arc::clone(&core),
                        id,
                        info,
                        addr,
                        views: Arc::new(AtomicUsize::new(0)),
                        released: Mutex::new(false),
                    }))
                }
                Err(Error::NoFrameAvailable) if left.is_some_and(|l| l <= slice) => return Ok(WaitEnd::Timeout),
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
                Err(e) => return Err(py_err(py, &e, Side::Client)),
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
        let client = py.detach(|| shmimage::Client::connect(&path, opts)).map_err(|e| py_err(py, &e, Side::Other))?;
        let reconnected = client.reconnected();
        Ok(Client {
            core: Mutex::new(Some(Arc::new(Mutex::new(ClientCore { client, held: None })))),
            next_frame: AtomicU64::new(1),
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
            WaitEnd::Timeout => Err(typed(py, "FrameTimeoutError", format!("no frame arrived within {timeout:?} s"))),
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
        Ok(FrameIter { client: slf.clone().unbind(), timeout, prev: Mutex::new(None) })
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

/// A locked frame. `array()` is a read-only zero-copy view; the frame (and
/// its memory) goes back to the stream on `release()` or at the end of a
/// `with` block, which refuse with BufferError while views exist.
#[pyclass(frozen, module = "shmimage", name = "Frame")]
struct Frame {
    core: Core,
    id: u64,
    info: FrameInfo,
    addr: usize,
    views: Arc<AtomicUsize>,
    released: Mutex<bool>,
}

impl Frame {
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
struct FrameIter {
    client: Py<Client>,
    timeout: Option<f64>,
    prev: Mutex<Option<Py<Frame>>>,
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
    m.add_class::<StreamFile>()?;
    m.add_class::<Server>()?;
    m.add_class::<Loan>()?;
    m.add_class::<Client>()?;
    m.add_class::<Frame>()?;
    m.add_class::<PixelView>()?;
    m.add_class::<FrameIter>()?;
    m.add_function(wrap_pyfunction!(create_stream_file, m)?)?;
    Ok(())
}
