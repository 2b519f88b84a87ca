//! The SIGBUS guard of native mappings. Until the engine's guard
//! (`crate::mapping::sigbus`) is visible to this module, this stand-in
//! registers nothing and never reports a truncation; the branch
//! `native-sigbus` replaces this file with a re-export of the engine's guard
//! (and makes the engine's module `pub(crate)`).

/// A registration of one mapping (here: none).
#[derive(Debug)]
pub(crate) struct Guard;

impl Guard {
    /// True once an access found the file shorter than mapped (never, here).
    pub(crate) fn truncated(&self) -> bool {
        false
    }
}

/// Register `[start, start + len)` (here: nothing).
pub(crate) fn guard(_start: *const u8, _len: usize) -> Guard {
    Guard
}
