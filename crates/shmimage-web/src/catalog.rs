//! The streams this server offers, named from its own command line: stream
//! files, and the stream files found in directories (listed again at every
//! look-up, so streams created later appear). A page addresses a stream by
//! its name in this list; a name from a URL is only ever compared with the
//! list, never made into a path.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::hub::{EncodeOptions, Hub};
use crate::source;

/// One stream on offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The name pages use (the file name, made unique).
    pub name: String,
    /// Where it is.
    pub path: PathBuf,
}

/// The served streams and their hubs.
#[derive(Debug)]
pub struct Catalog {
    roots: Vec<PathBuf>,
    options: EncodeOptions,
    hubs: Mutex<HashMap<PathBuf, Arc<Hub>>>,
}

impl Catalog {
    /// Serve `roots`: each a stream file (which need not exist yet) or a
    /// directory whose stream files are served.
    pub fn new(roots: Vec<PathBuf>, options: EncodeOptions) -> Catalog {
        Catalog { roots, options, hubs: Mutex::new(HashMap::new()) }
    }

    /// The streams on offer now, in command-line order, each directory's in
    /// name order.
    pub fn list(&self) -> Vec<Entry> {
        let mut entries: Vec<Entry> = Vec::new();
        for root in &self.roots {
            if root.is_dir() {
                for path in stream_files(root) {
                    push_unique(&mut entries, path);
                }
            } else {
                push_unique(&mut entries, root.clone());
            }
        }
        entries
    }

    /// The hub of the stream called `name`, if this server offers one.
    pub fn hub(&self, name: &str) -> Option<Arc<Hub>> {
        let entry = self.list().into_iter().find(|e| e.name == name)?;
        let mut hubs = self.hubs.lock().unwrap_or_else(|p| p.into_inner());
        let hub = hubs.entry(entry.path.clone()).or_insert_with(|| Hub::new(entry.path, self.options.clone()));
        Some(Arc::clone(hub))
    }
}

/// The regular files (not symlinks) of `dir` that hold a stream, by name.
fn stream_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(read) = std::fs::read_dir(dir) else {
        tracing::warn!(dir = %dir.display(), "cannot list the directory");
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = read
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .filter(|p| source::is_stream(p))
        .collect();
    files.sort();
    files
}

fn push_unique(entries: &mut Vec<Entry>, path: PathBuf) {
    let base = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "stream".into());
    let mut name = base.clone();
    let mut n = 2;
    while entries.iter().any(|e| e.name == name) {
        name = format!("{base}~{n}");
        n += 1;
    }
    if !entries.iter().any(|e| e.path == path) {
        entries.push(Entry { name, path });
    }
}
