//! The native stream (shmimage/2): one writer, up to 64 readers each at its
//! own pace (lossless on request), K slots loaned and read in place, any of
//! the formats in [`PixelFormat`], timestamps and user metadata per frame.
//! See `docs/native-protocol.md` for the format as built.

pub mod atomics;
mod desc;
mod error;
mod format;
mod guard;
mod inspect;
pub mod layout;
mod lock;
mod reader;
mod shared;
pub mod slot;
mod wake;
mod writer;

pub use desc::{
    flags, now_mono_ns, now_real_ns, FrameDesc, Invalid, Plane, Timestamps, MAX_PLANES, MAX_SIDE, ROW_ALIGN,
};
pub use error::{code, Error, Result};
pub use format::{PixelFormat, PlaneShape};
pub use inspect::{inspect, Inspection, SlotInfo};
pub use reader::{ReadFrame, Reader, ReaderOptions};
pub use writer::{create, FrameInfo, ReaderInfo, WriteLoan, Writer, WriterOptions, WriterStats};
