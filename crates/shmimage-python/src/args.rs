//! Arguments from Python (timeouts, frame sizes) and the one mutex helper.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use pyo3::prelude::*;
use shmimage::Liveness;

use crate::errors::typed;

/// Longest stretch a wait spends without the GIL before it looks for signals
/// (Ctrl-C) and comes back.
pub(crate) const WAIT_SLICE: Duration = Duration::from_millis(50);

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section in this crate leaves its data consistent at each
    // step, so a panic elsewhere does not make it unusable.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn duration(py: Python<'_>, seconds: f64, what: &str) -> PyResult<Duration> {
    Duration::try_from_secs_f64(seconds).map_err(|_| {
        typed(py, "BadArgsError", format!("{what} must be a finite number of seconds >= 0, not {seconds}"))
    })
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
