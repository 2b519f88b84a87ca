//! Engine errors as Python exceptions.
//!
//! The modern package's exception classes are plain Python classes
//! (`shmimage/_errors.py`), so they can inherit from both `ShmImageError` and
//! a builtin such as `TimeoutError`; they are looked up when raised, which is
//! rare enough that the import (a dict lookup once loaded) costs nothing.

use pyo3::exceptions::{PyBufferError, PyRuntimeError};
use pyo3::prelude::*;
use pyo3::types::PyType;
use shmimage::{Code, Error};

/// Which exception class of `shmimage._errors` an engine error becomes.
fn class_name(e: &Error, side: Side) -> &'static str {
    match (e.code(), side) {
        (Code::Unconnected, Side::Client) => "ServerGoneError",
        (Code::Unconnected, _) => "UnconnectedError",
        (Code::NoFrameAvailable, _) => "NoFrameAvailableError",
        (Code::NoBufferAvailable, _) => "NoBufferAvailableError",
        (Code::BadArgs, _) => "BadArgsError",
        (Code::NotLocked, _) => "NotLockedError",
        (Code::BadFileSize, _) => "BadFileSizeError",
        (Code::UnableToOpenFile, _) => "UnableToOpenFileError",
        (Code::UnableToMapFile, _) => "UnableToMapFileError",
        (Code::MemoryAllocError, _) => "MemoryAllocError",
        (Code::ThreadCreateError, _) => "ThreadCreateError",
        (Code::IsServer, _) => "IsServerError",
        (Code::IsNotServer, _) => "IsNotServerError",
        (Code::FrameTooLarge, _) => "FrameTooLargeError",
        (Code::Locked, _) => "LockedError",
        // Success codes never reach here; keep a sane class if one does.
        (Code::NoError | Code::Reconnecting, _) => "ShmImageError",
    }
}

/// Where an error surfaced, for the few codes whose meaning depends on it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// A client operation: UNCONNECTED there means the server process has gone.
    Client,
    /// Anything else.
    Other,
}

/// A class from `shmimage._errors`.
pub(crate) fn class<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyType>> {
    let module = py.import("shmimage._errors")?;
    Ok(module.getattr(name)?.cast_into::<PyType>()?)
}

/// The engine error as the modern package's typed exception; `code` is set on
/// the instance so callers can compare with EnSight's values.
pub(crate) fn to_py(py: Python<'_>, e: &Error, side: Side) -> PyErr {
    let name = class_name(e, side);
    let build = || -> PyResult<PyErr> {
        let cls = class(py, name)?;
        let inst = cls.call1((e.to_string(),))?;
        inst.setattr("code", e.code() as i32)?;
        Ok(PyErr::from_value(inst))
    };
    build().unwrap_or_else(|import_err| import_err)
}

/// A view of shared memory still exists, so the memory cannot change hands.
pub(crate) fn views_alive(what: &str, n: usize) -> PyErr {
    PyBufferError::new_err(format!(
        "{what}: {n} numpy view(s) of its shared memory still exist; delete them \
         (del arr) or keep a .copy() instead, then try again"
    ))
}

/// The drop-in module's error: RuntimeError whose text starts with EnSight's
/// error string for the code, followed by the engine's detail.
pub(crate) fn runtime(e: &Error) -> PyErr {
    let desc = shmimage::errorstring(e.code() as i32);
    let detail = e.to_string();
    if detail == desc {
        PyRuntimeError::new_err(desc)
    } else {
        PyRuntimeError::new_err(format!("{desc} ({detail})"))
    }
}

/// The typed exception `class` of `shmimage._errors` with message `msg`.
pub(crate) fn typed(py: Python<'_>, class_name: &str, msg: String) -> PyErr {
    match class(py, class_name) {
        Ok(cls) => PyErr::from_type(cls, msg),
        Err(e) => e,
    }
}

/// Use of an object after close (or of a frame after release).
pub(crate) fn closed(py: Python<'_>, what: &str) -> PyErr {
    typed(py, "ClosedError", format!("{what} is closed"))
}

pub(crate) fn server_gone(py: Python<'_>) -> PyErr {
    typed(py, "ServerGoneError", "the server process has exited".to_owned())
}
