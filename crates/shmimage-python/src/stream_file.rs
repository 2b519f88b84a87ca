//! `StreamFile` and `create_stream_file()`: private stream files this process
//! makes and removes.

use std::sync::Mutex;

use pyo3::prelude::*;

use crate::args::{dims, lock};
use crate::errors::{self, Side};

/// A stream file this process made; closing it removes the file and its
/// private directory.
#[pyclass(frozen, module = "shmimage", name = "StreamFile")]
pub(crate) struct StreamFile {
    inner: Mutex<Option<shmimage::StreamFile>>,
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
        lock(&self.inner).is_none()
    }

    /// Remove the file and its directory (streams already open keep working
    /// on the unlinked file). Idempotent.
    fn close(&self, py: Python<'_>) {
        let f = lock(&self.inner).take();
        py.detach(move || drop(f));
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
    let f = py.detach(|| shmimage::StreamFile::for_frame(w, h)).map_err(|e| errors::to_py(py, &e, Side::Other))?;
    let path = f.path().to_string_lossy().into_owned();
    Ok(StreamFile { inner: Mutex::new(Some(f)), path })
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<StreamFile>()?;
    m.add_function(wrap_pyfunction!(create_stream_file, m)?)?;
    Ok(())
}
