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
    file: Mutex<Option<Made>>,
    pid: u32,
}

/// A 1.0 stream file (the engine removes it and its directory), or a native
/// one in a private directory of ours.
enum Made {
    Ensight(shmimage::StreamFile),
    Native { dir: PathBuf, file: PathBuf },
}

impl Drop for Made {
    fn drop(&mut self) {
        if let Made::Native { dir, file } = self {
            let _ = std::fs::remove_file(&*file);
            let _ = std::fs::remove_dir(&*dir);
        }
    }
}

/// A new private (0700) directory for a native stream file, in /dev/shm when
/// it exists (memory-backed, as 1.0 files are), else the temp dir.
fn private_dir() -> std::io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let base = if Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    for attempt in 0..100u32 {
        let dir = base.join(format!("shmimage-{}-{nanos:x}-{attempt}", std::process::id()));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::new(std::io::ErrorKind::AlreadyExists, "no free directory name"))
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

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use shmimage::native::{self as nat, FrameDesc, WriterOptions};

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
/// /dev/shm (or the temp dir). `protocol="native"` makes a native stream
/// (many readers, any format) with `slots` slots sized for `format` frames
/// of that size, `metadata_bytes` of metadata each.
#[pyfunction]
#[pyo3(signature = (max_width, max_height, *, protocol = "ensight-1.0", format = "RGB8", slots = 4, metadata_bytes = 4096))]
pub(crate) fn create_stream_file(
    py: Python<'_>,
    max_width: i64,
    max_height: i64,
    protocol: &str,
    format: &str,
    slots: u32,
    metadata_bytes: u32,
) -> PyResult<StreamFile> {
    let (w, h) = dims(py, max_width, max_height)?;
    let made = match protocol {
        "ensight-1.0" | "ensight" | "1.0" => {
            if !format.eq_ignore_ascii_case("RGB8") {
                return Err(errors::typed(py, "BadArgsError", "protocol 1.0 streams carry RGB8 only".into()));
            }
            Made::Ensight(py.detach(|| shmimage::StreamFile::for_frame(w, h)).map_err(|e| errors::to_py(py, &e))?)
        }
        "native" => {
            let fmt = crate::native::parse_format(py, format)?;
            let desc = FrameDesc::new(fmt, w, h).map_err(|e| errors::native_to_py(py, &e.into()))?;
            let opts = WriterOptions { slots, slot_bytes: desc.len(), metadata_bytes, ..Default::default() };
            let made = py.detach(|| -> Result<Made, nat::Error> {
                let dir = private_dir()
                    .map_err(|source| nat::Error::UnableToOpen { path: PathBuf::from("/dev/shm"), source })?;
                let file = dir.join("stream.shm");
                let made = Made::Native { dir, file: file.clone() };
                nat::create(&file, &opts)?;
                Ok(made)
            });
            made.map_err(|e| errors::native_to_py(py, &e))?
        }
        other => {
            return Err(errors::typed(
                py,
                "BadArgsError",
                format!("protocol must be \"ensight-1.0\" or \"native\", not {other:?}"),
            ))
        }
    };
    let path = match &made {
        Made::Ensight(f) => f.path().to_string_lossy().into_owned(),
        Made::Native { file, .. } => file.to_string_lossy().into_owned(),
    };
    let f = made;
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
