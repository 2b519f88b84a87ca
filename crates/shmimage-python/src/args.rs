//! Arguments from Python (frame sizes, liveness names) and the one mutex
//! helper.

use std::sync::{Mutex, MutexGuard, PoisonError};

use pyo3::prelude::*;
use shmimage::Liveness;

use crate::errors::typed;

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section in this crate leaves its data consistent at each
    // step, so a panic elsewhere does not make it unusable.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn dims(py: Python<'_>, width: i64, height: i64) -> PyResult<(u32, u32)> {
    match (u32::try_from(width), u32::try_from(height)) {
        (Ok(w), Ok(h)) if w > 0 && h > 0 => Ok((w, h)),
        _ => {
            Err(typed(py, "BadArgsError", format!("frame size {width}x{height}: width and height must be in 1..2**32")))
        }
    }
}

pub(crate) fn liveness_name(l: Liveness) -> &'static str {
    match l {
        Liveness::Alive => "alive",
        Liveness::Gone => "gone",
        Liveness::Unknown => "unknown",
    }
}

/// The process that made an object: a fork child's copy answers ForkedError
/// from the calls the engine cannot refuse itself (getters without errors).
pub(crate) fn this_process() -> u32 {
    std::process::id()
}
