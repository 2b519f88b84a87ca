//! `Loan`: a buffer lent by the server to render one frame into in place.

use std::sync::atomic::Ordering;
use std::sync::Mutex;

use pyo3::prelude::*;

use crate::args::lock;
use crate::errors::{self, closed};
use crate::server::Server;
use crate::views::{array_protocol, make_array, Lent};

/// A buffer lent by the server: write the frame into `array()`, then
/// `commit(frame_number)`. Leaving a `with` block without committing, or
/// `abandon()`, gives the buffer back unpublished.
#[pyclass(frozen, module = "shmimage", name = "Loan")]
pub(crate) struct Loan {
    server: Py<Server>,
    id: u64,
    width: u32,
    height: u32,
    addr: usize,
    open: Mutex<bool>,
}

impl Loan {
    /// The Python side of loan `id` of `server`, over `addr`.
    pub(crate) fn new(server: Py<Server>, id: u64, width: u32, height: u32, addr: usize) -> Loan {
        Loan { server, id, width, height, addr, open: Mutex::new(true) }
    }

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

    /// numpy's array protocol: `np.asarray(loan)` is `loan.array()`, the
    /// writable view (no copy).
    #[pyo3(signature = (dtype = None, copy = None))]
    fn __array__<'py>(
        slf: &Bound<'py, Self>,
        dtype: Option<&Bound<'py, PyAny>>,
        copy: Option<bool>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let copied = || Loan::array(slf)?.call_method0("copy");
        array_protocol(|| Loan::array(slf), copied, dtype, copy)
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

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Loan>()?;
    Ok(())
}
