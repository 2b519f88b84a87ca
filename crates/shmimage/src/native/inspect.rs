//! A look at a native stream without joining it: for `shmimage inspect`.

use std::path::Path;
use std::sync::atomic::Ordering;

use super::atomics::Word;
use super::error::Result;
use super::layout::{self, header, split_latest};
use super::shared::Shared;
use super::slot::{BUSY, EMPTY};
use super::writer::{readers, ReaderInfo};
use super::{lock, PixelFormat};

/// What one slot holds now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotInfo {
    /// The frame's sequence; `None` when empty or being written.
    pub sequence: Option<u64>,
    /// True while the writer owns it.
    pub writing: bool,
    /// Readers holding it.
    pub holders: u32,
    /// Lossless readers that have not taken it.
    pub pending: u32,
    /// The descriptor's format, if it names a known one.
    pub format: Option<PixelFormat>,
    /// Width as the descriptor says (unvalidated).
    pub width: u32,
    /// Height as the descriptor says (unvalidated).
    pub height: u32,
}

/// A snapshot of a native stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    /// Slots (K).
    pub slots: u32,
    /// Pixel bytes per slot.
    pub slot_bytes: u64,
    /// Metadata bytes per slot.
    pub metadata_bytes: u32,
    /// The file length the layout needs.
    pub file_len: u64,
    /// Writer epoch.
    pub epoch: u32,
    /// Whether a writer holds the stream now.
    pub writer_alive: bool,
    /// The writer's pid as recorded (0 when none).
    pub writer_pid: u32,
    /// The newest committed sequence (0 = none yet).
    pub latest: u64,
    /// Each slot.
    pub slot_info: Vec<SlotInfo>,
    /// Each live reader.
    pub readers: Vec<ReaderInfo>,
}

/// Inspect the native stream at `path` (it must be one: a 1.0 file is `WrongProtocol`).
pub fn inspect(path: impl AsRef<Path>) -> Result<Inspection> {
    let sh = Shared::open(path.as_ref())?;
    let l = *sh.layout();
    let slot_info = (0..l.slots())
        .map(|i| {
            let w = sh.words(i);
            let s = Word::load(w.seq);
            SlotInfo {
                sequence: (s != EMPTY && s != BUSY).then_some(s),
                writing: s == BUSY,
                holders: Word::load(w.holds).count_ones(),
                pending: Word::load(w.pending).count_ones(),
                format: PixelFormat::from_code(sh.slot_u32(i, layout::slot::FORMAT).load(Ordering::Relaxed)),
                width: sh.slot_u32(i, layout::slot::WIDTH).load(Ordering::Relaxed),
                height: sh.slot_u32(i, layout::slot::HEIGHT).load(Ordering::Relaxed),
            }
        })
        .collect();
    Ok(Inspection {
        slots: l.slots(),
        slot_bytes: l.slot_len(),
        metadata_bytes: l.metadata_bytes(),
        file_len: l.file_len(),
        epoch: sh.header_u32(header::EPOCH).load(Ordering::Acquire),
        writer_alive: lock::held_by_other(sh.file(), lock::writer_byte()) == Some(true),
        writer_pid: sh.header_u32(header::WRITER_PID).load(Ordering::Relaxed),
        latest: split_latest(sh.header_u64(header::LATEST).load(Ordering::Acquire)).0,
        slot_info,
        readers: readers(&sh),
    })
}
