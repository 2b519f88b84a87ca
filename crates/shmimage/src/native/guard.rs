//! The SIGBUS guard of native mappings: the engine's own
//! (`crate::mapping::sigbus`), which turns an access beyond a truncated
//! file's end into zero pages and a mark instead of a crash.

pub(crate) use crate::mapping::sigbus::{guard, Guard};
