//! `StreamFile` and `create_stream_file()`: private stream files this process
//! makes and removes.
//!
//! Every file made here is also listed (weakly) in `MADE`, and the package
//! registers `_close_stream_files` with `atexit`: a file whose `StreamFile`
//! is still referenced at exit (a daemon thread, a global, a cycle) is
//! removed then. Only the process that made a file removes it: a fork child
//! neither removes its parent's files at exit nor when its copy is dropped.

/// The files this process made and has not closed.
static MADE: Mutex<Vec<Weak<Owned>>> = Mutex::new(Vec::new());

/// A made file and the process that made it.
struct Owned {
    file: Mutex<Option<shmimage::StreamFile>>,
    pid: u32,
}

impl Owned {
    /// Remove the file (idempotent); in a fork child, only forget it.
    fn close(&self) {
        let f = lock(&self.file).take();
        if std::process::id() == self.pid {
            drop(f);
        } else {
            // The parent's file: leave it (and its directory) alone.
            std::mem::forget(f);
        }
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        self.close();
    }
}

use std::sync::{Arc, Mutex, Weak};

use pyo3::prelude::*;

use crate::args::{dims, lock};
use crate::errors;

/// A stream file this process made; closing it removes the file and its
/// private directory.
#[pyclass(frozen, module = "shmimage", name = "StreamFile")]
pub(crate) struct StreamFile {
    inner: Arc<Owned>,
    path: String,
}

#[pymethods]
impl StreamFile {
    /// The file's path.
    #[getter]
    fn path(&self) -> &str {
        &self.path
    }

    fn __fspath__(&self) -> &str {
        &self.path
    }

    /// True once closed (the file is gone).
    #[getter]
    fn closed(&self) -> bool {
        lock(&self.inner.file).is_none()
    }

    /// Remove the file and its directory (streams already open keep working
    /// on the unlinked file). Idempotent.
    fn close(&self, py: Python<'_>) {
        py.detach(|| self.inner.close());
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __exit__(&self, py: Python<'_>, _t: &Bound<'_, PyAny>, _v: &Bound<'_, PyAny>, _tb: &Bound<'_, PyAny>) -> bool {
        self.close(py);
        false
    }

    fn __repr__(&self) -> String {
        format!("StreamFile({:?}{})", self.path, if self.closed() { ", closed" } else { "" })
    }
}

/// Make a stream file big enough for `max_width` x `max_height` frames to
/// travel in one piece (read in place), in a new private directory under
/// /dev/shm (or the temp dir).
#[pyfunction]
pub(crate) fn create_stream_file(py: Python<'_>, max_width: i64, max_height: i64) -> PyResult<StreamFile> {
    let (w, h) = dims(py, max_width, max_height)?;
    let f = py.detach(|| shmimage::StreamFile::for_frame(w, h)).map_err(|e| errors::to_py(py, &e))?;
    let path = f.path().to_string_lossy().into_owned();
    let inner = Arc::new(Owned { file: Mutex::new(Some(f)), pid: std::process::id() });
    let mut made = lock(&MADE);
    made.retain(|w| w.strong_count() > 0);
    made.push(Arc::downgrade(&inner));
    Ok(StreamFile { inner, path })
}

/// Remove every stream file this process made and has not closed (run by
/// `atexit`; a fork child removes nothing of its parent's).
#[pyfunction]
fn _close_stream_files(py: Python<'_>) {
    let made: Vec<Weak<Owned>> = std::mem::take(&mut *lock(&MADE));
    py.detach(|| made.iter().filter_map(Weak::upgrade).for_each(|f| f.close()));
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<StreamFile>()?;
    m.add_function(wrap_pyfunction!(create_stream_file, m)?)?;
    m.add_function(wrap_pyfunction!(_close_stream_files, m)?)?;
    Ok(())
}
