//! Python faces of the shmimage engine, built into one native module,
//! `shmimage._native`:
//!
//! - the submodule `ensight` backs the drop-in module `ensight_grpc_shmem`
//!   (a thin Python package that re-exports it), EnSight's API call for call;
//! - the classes back the package `shmimage` (Server, Client, Frame, Loan,
//!   StreamFile) with typed exceptions, zero-copy numpy views and the GIL
//!   released during waits and copies.
//!
//! No protocol logic lives here: arguments and errors are translated, the
//! engine does the rest.
#![deny(unsafe_op_in_unsafe_fn)]

mod buffer;
mod dropin;
mod errors;
mod modern;

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("API_VERSION", shmimage::API_VERSION)?;
    modern::register(m)?;
    let ensight = PyModule::new(m.py(), "ensight")?;
    dropin::register(&ensight)?;
    m.add_submodule(&ensight)?;
    Ok(())
}
