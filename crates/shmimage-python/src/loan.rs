//! `Loan`: a buffer lent by the server to render one frame into in place.
//!
//! It holds the engine's loan handle, which the engine checks on every use
//! (server open, not forked, loan still current): a loan outliving its
//! server answers ClosedError, never writes unmapped memory.

use std::sync::atomic::Ordering;
use std::sync::Mutex;

use pyo3::prelude::*;
use pyo3::types::PyTuple;
use shmimage::native as nat;
use shmimage::Error;

use crate::args::lock;
use crate::errors::{self, closed};
use crate::native::geometries;
use crate::server::Server;
use crate::views::{array_protocol, make_view, Geometry, Lent};

/// The engine's loan, of either format.
pub(crate) enum EngineLoan {
    Ensight(shmimage::Loan),
    Native(nat::WriteLoan),
}

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
    loan: Mutex<Option<EngineLoan>>,
    /// numpy's view of each plane.
    planes: Vec<Geometry>,
    format: &'static str,
}

impl Loan {
    /// The Python side of loan `id` of `server`.
    pub(crate) fn new(server: Py<Server>, id: u64, loan: EngineLoan) -> Loan {
        let (width, height, planes, format) = match &loan {
            EngineLoan::Ensight(l) => (l.width(), l.height(), vec![Geometry::rgb(l.width(), l.height())], "RGB8"),
            EngineLoan::Native(l) => {
                let d = l.desc();
                (d.width(), d.height(), geometries(d), d.format().name())
            }
        };
        Loan { server, id, width, height, loan: Mutex::new(Some(loan)), planes, format }
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
    /// `metadata` and `bottom_up` go with a native frame.
    fn end(&self, py: Python<'_>, commit: Option<u32>, metadata: Option<&[u8]>, bottom_up: bool) -> PyResult<()> {
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
        match (loan, commit) {
            (EngineLoan::Ensight(l), Some(n)) => {
                if metadata.is_some() || bottom_up {
                    return Err(errors::typed(
                        py,
                        "BadArgsError",
                        "protocol 1.0 frames carry no metadata or flags".into(),
                    ));
                }
                py.detach(|| l.commit(n)).map_err(|e| self.error(py, &e))
            }
            (EngineLoan::Native(mut l), Some(_)) => {
                if let Some(m) = metadata {
                    l.set_metadata(m).map_err(|e| errors::native_to_py(py, &e))?;
                }
                if bottom_up {
                    l.set_flags(nat::flags::BOTTOM_UP);
                }
                py.detach(|| l.commit()).map(drop).map_err(|e| match e {
                    nat::Error::Closed => closed(py, "the loan's server"),
                    e => errors::native_to_py(py, &e),
                })
            }
            // Quiet also when the server is closed: nothing to give back.
            (EngineLoan::Ensight(l), None) => {
                py.detach(|| l.abandon());
                Ok(())
            }
            (EngineLoan::Native(l), None) => {
                py.detach(|| drop(l));
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

    /// The pixel format's name ("RGB8" for protocol 1.0).
    #[getter]
    fn format(&self) -> &'static str {
        self.format
    }

    /// True until committed or abandoned, and while the server is open.
    #[getter]
    fn is_open(&self) -> bool {
        match lock(&self.loan).as_ref() {
            Some(EngineLoan::Ensight(l)) => l.is_valid(),
            Some(EngineLoan::Native(_)) => !self.server.get().is_closed(),
            None => false,
        }
    }

    /// A writable numpy view of the lent buffer: (height, width, 3) uint8
    /// for protocol 1.0; shaped by the loan's format on native streams (a
    /// tuple of planes for I420/NV12). Delete every view before
    /// commit()/abandon() (they refuse otherwise). ClosedError once the loan
    /// ended or its server was closed.
    fn array<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let this = slf.get();
        let mut views = Vec::with_capacity(this.planes.len());
        for g in &this.planes {
            // The lock is released before any Python code runs (see make_view).
            let (addr, lent) = {
                let mut guard = lock(&this.loan);
                let addr = match guard.as_mut().ok_or_else(|| Loan::ended(py))? {
                    EngineLoan::Ensight(l) => l.pixels_mut().map_err(|e| this.error(py, &e))?.as_mut_ptr() as usize,
                    EngineLoan::Native(l) => {
                        // The native loan answers no errors itself: closed or
                        // forked is the server's to tell.
                        this.server.get().usable(py)?;
                        l.pixels_mut().as_mut_ptr() as usize
                    }
                };
                (addr, Lent::new(&this.server.get().loan_views))
            };
            views.push(make_view(slf.as_any(), addr, g.clone(), true, lent)?);
        }
        match views.len() {
            1 => Ok(views.remove(0)),
            _ => Ok(PyTuple::new(py, views)?.into_any()),
        }
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

    /// Publish the frame with this number (native streams number frames
    /// themselves, and take `metadata` and `bottom_up` with it).
    #[pyo3(signature = (frame_number = 0, *, metadata = None, bottom_up = false))]
    fn commit(&self, py: Python<'_>, frame_number: i64, metadata: Option<Vec<u8>>, bottom_up: bool) -> PyResult<()> {
        self.end(py, Some(frame_number as u32), metadata.as_deref(), bottom_up)
    }

    /// Give the buffer back without publishing it.
    fn abandon(&self, py: Python<'_>) -> PyResult<()> {
        self.end(py, None, None, false)
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
        errors::exit_outcome(self.abandon(py), t)
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
