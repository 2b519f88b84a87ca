//! `Loan`: a buffer lent by the server to render one frame into in place.
//!
//! It holds the engine's loan handle, which the engine checks on every use
//! (server open, not forked, loan still current): a loan outliving its
//! server answers ClosedError, never writes unmapped memory.

use std::sync::atomic::Ordering;
use std::sync::Mutex;

use pyo3::prelude::*;
use shmimage::Error;

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
    /// The engine's loan; None once committed or abandoned.
    loan: Mutex<Option<shmimage::Loan>>,
}

impl Loan {
    /// The Python side of loan `id` of `server`.
    pub(crate) fn new(_py: Python<'_>, server: Py<Server>, id: u64, loan: shmimage::Loan) -> PyResult<Loan> {
        Ok(Loan { server, id, width: loan.width(), height: loan.height(), loan: Mutex::new(Some(loan)) })
    }

    fn ended(py: Python<'_>) -> PyErr {
        closed(py, "this loan (already committed or abandoned)")
    }

    fn error(&self, py: Python<'_>, e: &Error) -> PyErr {
        match e {
            Error::Closed => closed(py, "the loan's server"),
            _ => errors::to_py(py, e),
        }
    }

    /// End the loan (commit or abandon), refusing while views exist.
    fn end(&self, py: Python<'_>, commit: Option<u32>) -> PyResult<()> {
        let server = self.server.get();
        let loan = {
            let mut guard = lock(&self.loan);
            if guard.is_none() {
                return Err(Loan::ended(py));
            }
            let n = server.loan_views.load(Ordering::Acquire);
            if n > 0 {
                return Err(errors::views_alive("cannot end the loan", n));
            }
            guard.take()
        };
        server.loan_ended(self.id);
        let Some(loan) = loan else { return Err(Loan::ended(py)) };
        match commit {
            Some(n) => py.detach(|| loan.commit(n)).map_err(|e| self.error(py, &e)),
            None => {
                // Quiet also when the server is closed: nothing to give back.
                py.detach(|| loan.abandon());
                Ok(())
            }
        }
    }
}

#[pymethods]
impl Loan {
    /// Pixels per row.
    #[getter]
    fn width(&self) -> u32 {
        self.width
    }

    /// Rows.
    #[getter]
    fn height(&self) -> u32 {
        self.height
    }

    /// True until committed or abandoned, and while the server is open.
    #[getter]
    fn is_open(&self) -> bool {
        lock(&self.loan).as_ref().is_some_and(shmimage::Loan::is_valid)
    }

    /// A writable (height, width, 3) uint8 numpy view of the lent buffer.
    /// Delete every view before commit()/abandon() (they refuse otherwise).
    /// ClosedError once the loan ended or its server was closed.
    fn array<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let this = slf.get();
        // The lock is released before any Python code runs (see make_array).
        let (addr, lent) = {
            let mut guard = lock(&this.loan);
            let loan = guard.as_mut().ok_or_else(|| Loan::ended(py))?;
            let px = loan.pixels_mut().map_err(|e| this.error(py, &e))?;
            (px.as_mut_ptr() as usize, Lent::new(&this.server.get().loan_views))
        };
        make_array(slf.as_any(), addr, this.width, this.height, true, lent)
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
        if lock(&self.loan).is_none() {
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
        // Views keep the Loan alive, so none exists now. Dropping the engine
        // loan abandons it (nothing shared is touched in a fork child).
        if lock(&self.loan).take().is_some() {
            self.server.get().loan_ended(self.id);
        }
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Loan>()?;
    Ok(())
}
