//! Running the engine's waits from Python.
//!
//! The engine has the one wait primitive (deadline, close, cancel); this
//! module only decides how to call it: always with the GIL released, and on
//! Python's main thread, where Ctrl-C is delivered, in slices of at most
//! `WAIT_SLICE` with a signal check between them (Python runs signal
//! handlers only when the main thread comes back to the interpreter). Other
//! threads wait in one call; close() and cancel() end either kind at once.

use std::time::{Duration, Instant};

use pyo3::prelude::*;

use crate::errors::typed;

/// Longest stretch a main-thread wait spends without looking for signals.
const WAIT_SLICE: Duration = Duration::from_millis(50);

/// A timeout from Python: None waits forever, 0 polls.
pub(crate) fn timeout(py: Python<'_>, seconds: Option<f64>) -> PyResult<Option<Duration>> {
    seconds.map(|s| duration(py, s, "timeout")).transpose()
}

/// Seconds from Python as a Duration (finite, >= 0).
pub(crate) fn duration(py: Python<'_>, seconds: f64, what: &str) -> PyResult<Duration> {
    Duration::try_from_secs_f64(seconds).map_err(|_| {
        typed(py, "BadArgsError", format!("{what} must be a finite number of seconds >= 0, not {seconds}"))
    })
}

fn on_main_thread(py: Python<'_>) -> PyResult<bool> {
    let threading = py.import("threading")?;
    Ok(threading.call_method0("current_thread")?.is(&threading.call_method0("main_thread")?))
}

/// Run the engine wait `wait(timeout)` with the GIL released; `timed_out`
/// recognises its timeout answer (which ends a slice, not the wait). A
/// Python exception from a signal handler (KeyboardInterrupt) ends it too.
/// `always_slice` slices on every thread (for a wait with no cancel of its
/// own, so that a cancellation is seen between slices).
pub(crate) fn engine_wait<T: Send, E: Send>(
    py: Python<'_>,
    timeout: Option<Duration>,
    always_slice: bool,
    timed_out: impl Fn(&E) -> bool,
    wait: impl Fn(Option<Duration>) -> Result<T, E> + Sync,
) -> PyResult<Result<T, E>> {
    if !always_slice && !on_main_thread(py)? {
        return Ok(py.detach(|| wait(timeout)));
    }
    // A deadline past what Instant can hold is as good as none.
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    let forever = deadline.is_none();
    loop {
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let slice = left.map_or(WAIT_SLICE, |l| l.min(WAIT_SLICE));
        match py.detach(|| wait(Some(slice))) {
            Err(e) if timed_out(&e) && (forever || left.is_some_and(|l| l > slice)) => py.check_signals()?,
            r => return Ok(r),
        }
    }
}
