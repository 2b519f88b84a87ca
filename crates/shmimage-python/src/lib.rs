//! Python faces of the shmimage engine, built into one native module,
//! `shmimage._native`:
//!
//! - the submodule `ensight` backs the drop-in module `ensight_grpc_shmem`
//!   (a thin Python package that re-exports it), EnSight's API call for call
//!   (`dropin`);
//! - the classes back the package `shmimage`, one file per object:
//!   `stream_file` (StreamFile), `server` + `loan` (Server, Loan), `client` +
//!   `frame` (Client, Frame, the frame iterator), `views` (zero-copy numpy
//!   views), `errors` (typed exceptions), `buffer` (reading bytes-like
//!   objects), `args` (timeouts and sizes).
//!
//! No protocol logic lives here: arguments and errors are translated, the
//! engine does the rest.
#![deny(unsafe_op_in_unsafe_fn)]

mod args;
mod buffer;
mod client;
mod dropin;
mod errors;
mod frame;
mod loan;
mod native;
mod pixels_in;
mod server;
mod stream_file;
mod views;
mod wait;

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("API_VERSION", shmimage::API_VERSION)?;
    stream_file::register(m)?;
    server::register(m)?;
    loan::register(m)?;
    client::register(m)?;
    frame::register(m)?;
    views::register(m)?;
    let ensight = PyModule::new(m.py(), "ensight")?;
    dropin::register(&ensight)?;
    m.add_submodule(&ensight)?;
    Ok(())
}
