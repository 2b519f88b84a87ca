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

/// Which exception class of `shmimage._errors` an engine error becomes: one
/// per situation, as the engine's codes are.
fn class_name(code: Code) -> &'static str {
    match code {
        Code::Unconnected => "UnconnectedError",
        Code::NoFrameAvailable => "NoFrameAvailableError",
        Code::NoBufferAvailable => "NoBufferAvailableError",
        Code::BadArgs => "BadArgsError",
        Code::NotLocked => "NotLockedError",
        Code::BadFileSize => "BadFileSizeError",
        Code::UnableToOpenFile => "UnableToOpenFileError",
        Code::UnableToMapFile => "UnableToMapFileError",
        Code::MemoryAllocError => "MemoryAllocError",
        Code::ThreadCreateError => "ThreadCreateError",
        Code::IsServer => "IsServerError",
        Code::IsNotServer => "IsNotServerError",
        Code::FrameTooLarge => "FrameTooLargeError",
        Code::Locked => "LockedError",
        Code::PeerBusy => "PeerBusyError",
        // A stale handle is the C face's closed stream.
        Code::Closed | Code::StaleHandle => "ClosedError",
        Code::Forked => "ForkedError",
        Code::NoSpace => "NoSpaceError",
        Code::ServerGone => "ServerGoneError",
        Code::FileReplaced => "FileReplacedError",
        Code::FileTruncated => "FileTruncatedError",
        Code::FileResized => "FileResizedError",
        Code::Cancelled => "WaitCancelledError",
        Code::StreamReset => "StreamResetError",
        // Success codes never reach here; keep a sane class if one does.
        _ => "ShmImageError",
    }
}

/// The class of a native-stream error (`shmimage::native::Error`), by its
/// code: the situations both formats share have the same codes and classes.
fn native_class_name(e: &shmimage::native::Error) -> &'static str {
    use shmimage::native::Error as N;
    match e {
        N::NotFound { .. } => "BadFileSizeError",
        N::AlreadyExists { .. } => "AlreadyExistsError",
        N::WrongProtocol { .. } => "WrongProtocolError",
        N::NotAStream { .. } | N::UnsupportedVersion { .. } | N::Corrupt { .. } => "NotAStreamError",
        N::ReadersFull { .. } => "ReadersFullError",
        N::MetadataTooLarge { .. } => "MetadataTooLargeError",
        N::InvalidDesc(_) => "BadArgsError",
        N::NoSlotAvailable => "NoBufferAvailableError",
        _ => match Code::from_i32(e.code()) {
            Some(c) => class_name(c),
            None => "ShmImageError",
        },
    }
}

/// A native-stream error as the package's typed exception.
pub(crate) fn native_to_py(py: Python<'_>, e: &shmimage::native::Error) -> PyErr {
    if let shmimage::native::Error::Ensight(inner) = e {
        return to_py(py, inner);
    }
    let build = || -> PyResult<PyErr> {
        let cls = class(py, native_class_name(e))?;
        let inst = cls.call1((e.to_string(),))?;
        inst.setattr("code", e.code())?;
        if let shmimage::native::Error::WriterBusy { path, pid } = e {
            inst.setattr("role", "server")?;
            inst.setattr("path", path.to_string_lossy())?;
            inst.setattr("pid", (*pid != 0).then_some(*pid))?;
        }
        Ok(PyErr::from_value(inst))
    };
    build().unwrap_or_else(|import_err| import_err)
}

/// A class from `shmimage._errors`.
pub(crate) fn class<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyType>> {
    let module = py.import("shmimage._errors")?;
    Ok(module.getattr(name)?.cast_into::<PyType>()?)
}

/// The engine error as the package's typed exception. `code` is the
/// engine's (and the C API's) value; PeerBusyError carries `role`, `path`
/// and `pid`; the OSError subclasses carry `errno` from the OS error the
/// engine kept as the source.
pub(crate) fn to_py(py: Python<'_>, e: &Error) -> PyErr {
    let build = || -> PyResult<PyErr> {
        let cls = class(py, class_name(e.code()))?;
        let inst = cls.call1((e.to_string(),))?;
        inst.setattr("code", e.code() as i32)?;
        match e {
            Error::PeerBusy { role, path, pid } => {
                inst.setattr("role", role.to_string())?;
                inst.setattr("path", path.to_string_lossy())?;
                inst.setattr("pid", *pid)?;
            }
            // Only errno: setting OSError's filename/strerror would replace
            // the message (which names the file already) in str().
            Error::UnableToOpenFile { source, .. } | Error::UnableToMapFile { source, .. } => {
                inst.setattr("errno", source.raw_os_error())?;
            }
            Error::NoSpace { .. } => inst.setattr("errno", 28)?, // ENOSPC
            _ => {}
        }
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

/// What a `with` block's `__exit__` returns after ending its object
/// (`ended`): never suppress the exception (`False`); an error from ending
/// it is raised, unless an exception is already in flight (`exc_type` not
/// None), which it must not mask: the object then ends when it and its
/// views are garbage.
pub(crate) fn exit_outcome(ended: PyResult<()>, exc_type: &Bound<'_, PyAny>) -> PyResult<bool> {
    match ended {
        Err(_) if !exc_type.is_none() => Ok(false),
        r => r.map(|()| false),
    }
}
