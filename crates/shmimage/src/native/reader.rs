//! A reader: joins a stream in a free entry (its liveness lock), takes the
//! newest frame or, lossless, the next one, in place, validated, and tells
//! when the writer died or a new one took over.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::atomics::Word;
use super::desc::{FrameDesc, Plane, Timestamps, MAX_PLANES};
use super::error::{Error, Result};
use super::layout::{self, header, reader as entry, split_latest, READERS};
use super::shared::Shared;
use super::slot::{self, Hold, BUSY, EMPTY};
use super::writer::forget_reader;
use super::{lock, wake, PixelFormat};

/// The longest a reader goes without probing the writer's liveness lock
/// while it waits, however the commit word moves.
const PROBE_AT_LEAST_EVERY: Duration = Duration::from_millis(100);

/// How a reader reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReaderOptions {
    /// Ask for every frame: the writer waits (bounded) for this reader before
    /// reusing a slot holding a frame it has not taken.
    pub lossless: bool,
}

#[derive(Debug, Default)]
struct State {
    last_seq: u64,
    missed: u64,
    frames: u64,
    /// Frames of this reader alive per slot; the slot's hold bit is set while > 0.
    held: Vec<u32>,
    writer_seen: bool,
    /// The commit word when the writer was last known alive (a liveness
    /// probe, or a commit seen since): while the word moves, the writer is
    /// committing and no probe is needed...
    alive_at_word: Option<u32>,
    /// ...for at most [`PROBE_AT_LEAST_EVERY`] after the last probe: the
    /// word is in shared memory, and a process that keeps bumping it must
    /// not hide the writer's death.
    probed_at: Option<Instant>,
}

#[derive(Debug)]
struct Inner {
    sh: Shared,
    index: u32,
    bit: u64,
    lossless: bool,
    state: Mutex<State>,
}

/// The reading end of a native stream. `Send + Sync`.
#[derive(Debug, Clone)]
pub struct Reader {
    inner: Arc<Inner>,
}

impl Reader {
    /// Join the stream at `path` in a free reader entry (the entries of dead
    /// readers are free). A 1.0 file is `WrongProtocol`; 64 live readers are
    /// `ReadersFull`.
    pub fn open(path: impl AsRef<Path>, options: &ReaderOptions) -> Result<Reader> {
        let sh = Shared::open(path.as_ref())?;
        let index = (0..READERS)
            .find(|&i| lock::try_lock(sh.file(), lock::reader_byte(i)))
            .ok_or_else(|| Error::ReadersFull { path: sh.path().to_owned(), max: READERS })?;
        if sh.reader_u32(index, entry::STATE).load(Ordering::Acquire) != 0 {
            // Its last owner died without leaving: take back what it held.
            forget_reader(&sh, index);
            wake::bump(sh.header_u32(header::FREE_WORD), sh.header_u32(header::WRITER_SLEEPERS));
        }
        let bit = 1u64 << index;
        sh.reader_u32(index, entry::PID).store(std::process::id(), Ordering::Relaxed);
        let flags = if options.lossless { entry::FLAG_LOSSLESS } else { 0 };
        sh.reader_u32(index, entry::FLAGS).store(flags, Ordering::Relaxed);
        sh.reader_u32(index, entry::GENERATION).fetch_add(1, Ordering::Relaxed);
        for f in [entry::LAST_SEQ, entry::MISSED, entry::FRAMES] {
            sh.reader_u64(index, f).store(0, Ordering::Relaxed);
        }
        sh.reader_u32(index, entry::STATE).store(1, Ordering::Release);
        if options.lossless {
            sh.header_u64(header::LOSSLESS_MASK).fetch_or(bit, Ordering::AcqRel);
        }
        let held = vec![0; sh.layout().slots() as usize];
        let state = State { held, ..Default::default() };
        tracing::debug!(path = %sh.path().display(), index, lossless = options.lossless, "native reader joined");
        Ok(Reader { inner: Arc::new(Inner { sh, index, bit, lossless: options.lossless, state: Mutex::new(state) }) })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next frame: the newest one newer than the last returned (frames
    /// skipped count as missed), or for a lossless reader the one after the
    /// last returned. Waits up to `timeout` (None = forever) for it; then
    /// `NoFrameAvailable`. When no frame is left and the writer has exited:
    /// `WriterGone` (the reader stays usable: a writer that takes over is seen).
    pub fn read(&self, timeout: Option<Duration>) -> Result<ReadFrame> {
        let sh = &self.inner.sh;
        let start = Instant::now();
        let mut last_intact_check = start;
        loop {
            sh.check()?;
            let seen = sh.header_u32(header::COMMIT_WORD).load(Ordering::SeqCst);
            if let Some(f) = self.take(false)? {
                return Ok(f);
            }
            if !self.writer_alive_at(seen) {
                return Err(Error::WriterGone { path: sh.path().to_owned() });
            }
            let waited = start.elapsed();
            if timeout.is_some_and(|t| waited >= t) {
                return Err(Error::NoFrameAvailable);
            }
            if last_intact_check.elapsed() > Duration::from_millis(100) {
                sh.check_intact()?;
                last_intact_check = Instant::now();
            }
            let left = timeout.map_or(crate::POLL_SLICE, |t| t.saturating_sub(waited));
            wake::sleep(sh.header_u32(header::COMMIT_WORD), sh.header_u32(header::READER_SLEEPERS), seen, left);
        }
    }

    /// The newest committed frame, even if this reader returned it before;
    /// `NoFrameAvailable` when there is none.
    pub fn latest(&self) -> Result<ReadFrame> {
        self.inner.sh.check()?;
        self.take(true)?.ok_or(Error::NoFrameAvailable)
    }

    /// Frames this reader missed so far.
    pub fn missed(&self) -> u64 {
        self.state().missed
    }

    /// The sequence of the last frame returned (0 before the first).
    pub fn last_sequence(&self) -> u64 {
        self.state().last_seq
    }

    /// This reader's entry index (0..64).
    pub fn index(&self) -> u32 {
        self.inner.index
    }

    /// Whether this reader asked for every frame.
    pub fn is_lossless(&self) -> bool {
        self.inner.lossless
    }

    /// The writer epoch in the file now (it goes up with each writer).
    pub fn epoch(&self) -> u32 {
        self.inner.sh.header_u32(header::EPOCH).load(Ordering::Acquire)
    }

    /// [`Reader::writer_alive`], but without the system call when the commit
    /// word moved since the writer was last known alive: a writer that just
    /// committed was alive then, and the probe on the next quiet wait (at
    /// most one poll slice later) sees its death. This keeps the liveness
    /// probe off the path from one frame's wake-up to the next sleep, which
    /// on a machine with fewer cores than readers is time every later reader
    /// waits for.
    fn writer_alive_at(&self, word: u32) -> bool {
        {
            let mut st = self.state();
            let recent = st.probed_at.is_some_and(|t| t.elapsed() < PROBE_AT_LEAST_EVERY);
            if recent && st.alive_at_word.is_some_and(|w| w != word) {
                st.alive_at_word = Some(word);
                return true;
            }
        }
        let alive = self.writer_alive();
        let mut st = self.state();
        st.alive_at_word = alive.then_some(word);
        st.probed_at = Some(Instant::now());
        alive
    }

    /// Whether a writer process holds the stream now.
    pub fn writer_alive(&self) -> bool {
        let sh = &self.inner.sh;
        match lock::held_by_other(sh.file(), lock::writer_byte()) {
            Some(true) => {
                self.state().writer_seen = true;
                true
            }
            // No writer lock: gone if one ever served the file (or was seen), else not yet started.
            Some(false) => {
                sh.header_u32(header::WRITER_STATE).load(Ordering::Acquire) == 0 && !self.state().writer_seen
            }
            None => true,
        }
    }

    /// The stream's slots (K).
    pub fn slots(&self) -> u32 {
        self.inner.sh.layout().slots()
    }

    /// Pixel bytes one slot holds.
    pub fn slot_capacity(&self) -> u64 {
        self.inner.sh.layout().slot_len()
    }

    /// The stream file.
    pub fn path(&self) -> &Path {
        self.inner.sh.path()
    }

    /// End every wait of this reader now (`Closed`); later calls answer
    /// `Closed`. Frames already taken stay valid until dropped.
    pub fn close(&self) {
        self.inner.sh.close();
        wake::wake_all(self.inner.sh.header_u32(header::COMMIT_WORD));
    }

    /// Try once to take a frame: `again` = the newest even if seen.
    fn take(&self, again: bool) -> Result<Option<ReadFrame>> {
        let sh = &self.inner.sh;
        let k = sh.layout().slots();
        let mut st = self.state();
        // A slot reused under a hold attempt means a newer frame exists: retry a few times.
        for _ in 0..64 {
            let (latest, latest_slot) = split_latest(sh.header_u64(header::LATEST).load(Ordering::Acquire));
            if latest == 0 || (!again && latest <= st.last_seq) {
                return Ok(None);
            }
            if latest_slot >= k {
                return Err(self.corrupt(format!("the newest frame is in slot {latest_slot} of {k}")));
            }
            let (target, slot_index) = if self.inner.lossless && !again && st.last_seq != 0 {
                match self.next_for_lossless(&st, latest) {
                    Some(t) => t,
                    None => return Ok(None),
                }
            } else if self.inner.lossless && !again {
                // First read: the oldest frame committed since joining (it
                // carries this reader's pending mark), else the newest.
                self.first_for_lossless(latest).unwrap_or((latest, latest_slot))
            } else {
                (latest, latest_slot)
            };
            let got = if st.held[slot_index as usize] > 0 {
                // Already held by this reader: the slot is stable.
                let s = Word::load(sh.words(slot_index).seq);
                if s == target {
                    Hold::Held { seq: s }
                } else {
                    Hold::Missed { seq: s }
                }
            } else {
                slot::hold(sh.words(slot_index), self.inner.bit, |s| s == target)
            };
            if sh.cut_short() {
                return Err(Error::FileTruncated { path: sh.path().to_owned() });
            }
            let Hold::Held { seq } = got else { continue };
            st.held[slot_index as usize] += 1;
            let frame = self.frame(&mut st, slot_index, seq, again);
            if frame.is_err() {
                self.release_locked(&mut st, slot_index);
            }
            return frame.map(Some);
        }
        Ok(None)
    }

    /// Lossless: the slot with `last_seq + 1`, or if the writer dropped it,
    /// the oldest newer frame.
    fn next_for_lossless(&self, st: &State, latest: u64) -> Option<(u64, u32)> {
        let sh = &self.inner.sh;
        let want = st.last_seq + 1;
        let mut oldest: Option<(u64, u32)> = None;
        for i in 0..sh.layout().slots() {
            let s = Word::load(sh.words(i).seq);
            if s == want {
                return Some((s, i));
            }
            if s != EMPTY && s != BUSY && s > st.last_seq && s <= latest && oldest.map_or(true, |(o, _)| s < o) {
                oldest = Some((s, i));
            }
        }
        oldest
    }

    fn first_for_lossless(&self, latest: u64) -> Option<(u64, u32)> {
        let sh = &self.inner.sh;
        let mut oldest: Option<(u64, u32)> = None;
        for i in 0..sh.layout().slots() {
            let w = sh.words(i);
            let s = Word::load(w.seq);
            let mine = Word::load(w.pending) & self.inner.bit != 0;
            if mine && s != EMPTY && s != BUSY && s <= latest && oldest.map_or(true, |(o, _)| s < o) {
                oldest = Some((s, i));
            }
        }
        oldest
    }

    /// Build the frame of held slot `i` carrying `seq`: validate its descriptor
    /// and account for it.
    fn frame(&self, st: &mut State, i: u32, seq: u64, again: bool) -> Result<ReadFrame> {
        let sh = &self.inner.sh;
        use layout::slot as f;
        let r = Ordering::Relaxed; // the hold's acquire ordered these after the commit
        let mut planes = [Plane::default(); MAX_PLANES];
        for (n, p) in planes.iter_mut().enumerate() {
            let base = f::PLANES + n as u64 * f::PLANE_BYTES;
            *p = Plane {
                offset: sh.slot_u64(i, base).load(r),
                stride: sh.slot_u32(i, base + 8).load(r),
                row_bytes: sh.slot_u32(i, base + 12).load(r),
                rows: sh.slot_u32(i, base + 16).load(r),
            };
        }
        let desc = FrameDesc::from_parts(
            sh.slot_u32(i, f::FORMAT).load(r),
            sh.slot_u32(i, f::WIDTH).load(r),
            sh.slot_u32(i, f::HEIGHT).load(r),
            sh.slot_u32(i, f::PLANE_COUNT).load(r),
            planes,
            sh.layout().slot_len(),
        );
        if !again {
            if self.inner.lossless {
                // Done with this frame and any older one still marked for this reader.
                for s in 0..sh.layout().slots() {
                    slot::skip_pending(sh.words(s), self.inner.bit, |q| q <= seq);
                }
            }
            let missed_before = if st.last_seq != 0 && seq > st.last_seq + 1 { seq - st.last_seq - 1 } else { 0 };
            st.missed += missed_before;
            st.last_seq = seq;
            st.frames += 1;
            let e = self.inner.index;
            sh.reader_u64(e, entry::LAST_SEQ).store(seq, r);
            sh.reader_u64(e, entry::MISSED).store(st.missed, r);
            sh.reader_u64(e, entry::FRAMES).store(st.frames, r);
            let desc = desc.map_err(|why| self.corrupt(format!("frame {seq}: {why}")))?;
            return self.build(i, seq, desc, missed_before);
        }
        let desc = desc.map_err(|why| self.corrupt(format!("frame {seq}: {why}")))?;
        self.build(i, seq, desc, 0)
    }

    fn build(&self, i: u32, seq: u64, desc: FrameDesc, missed_before: u64) -> Result<ReadFrame> {
        let sh = &self.inner.sh;
        use layout::slot as f;
        let r = Ordering::Relaxed;
        let meta_len = sh.slot_u32(i, f::METADATA_LEN).load(r);
        if meta_len > sh.layout().metadata_bytes() {
            return Err(self.corrupt(format!(
                "frame {seq}: {meta_len} metadata bytes in a {}-byte area",
                sh.layout().metadata_bytes()
            )));
        }
        let timestamps = Timestamps {
            capture_mono_ns: sh.slot_u64(i, f::CAPTURE_MONO).load(r),
            capture_real_ns: sh.slot_u64(i, f::CAPTURE_REAL).load(r),
            publish_mono_ns: sh.slot_u64(i, f::PUBLISH_MONO).load(r),
            publish_real_ns: sh.slot_u64(i, f::PUBLISH_REAL).load(r),
        };
        Ok(ReadFrame {
            reader: Arc::clone(&self.inner),
            slot: i,
            seq,
            desc,
            timestamps,
            flags: sh.slot_u32(i, f::FLAGS).load(r),
            epoch: sh.slot_u32(i, f::EPOCH).load(r),
            meta_len: meta_len as usize,
            missed_before,
        })
    }

    fn corrupt(&self, what: String) -> Error {
        Error::Corrupt { path: self.inner.sh.path().to_owned(), what }
    }

    fn release_locked(&self, st: &mut State, i: u32) {
        self.inner.release(st, i);
    }
}

impl Inner {
    fn release(&self, st: &mut State, i: u32) {
        let n = &mut st.held[i as usize];
        *n = n.saturating_sub(1);
        if *n == 0 {
            slot::release(self.sh.words(i), self.bit);
            wake::bump(self.sh.header_u32(header::FREE_WORD), self.sh.header_u32(header::WRITER_SLEEPERS));
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if !self.sh.in_owner() {
            return; // a fork child: the parent's entry is not ours
        }
        forget_reader(&self.sh, self.index);
        wake::bump(self.sh.header_u32(header::FREE_WORD), self.sh.header_u32(header::WRITER_SLEEPERS));
        lock::unlock(self.sh.file(), lock::reader_byte(self.index));
    }
}

/// A frame held in place. While it lives its slot is not reused; dropping it
/// lets the writer have the slot back. Independent of the [`Reader`]'s
/// lifetime (it keeps the mapping alive).
#[derive(Debug)]
pub struct ReadFrame {
    reader: Arc<Inner>,
    slot: u32,
    seq: u64,
    desc: FrameDesc,
    timestamps: Timestamps,
    flags: u32,
    epoch: u32,
    meta_len: usize,
    missed_before: u64,
}

impl ReadFrame {
    /// The validated descriptor.
    pub fn desc(&self) -> &FrameDesc {
        &self.desc
    }

    /// Pixel format.
    pub fn format(&self) -> PixelFormat {
        self.desc.format()
    }

    /// Pixels per row.
    pub fn width(&self) -> u32 {
        self.desc.width()
    }

    /// Rows.
    pub fn height(&self) -> u32 {
        self.desc.height()
    }

    /// Bytes per row of plane 0.
    pub fn stride(&self) -> u32 {
        self.desc.stride()
    }

    /// The planes (offsets into [`ReadFrame::pixels`]).
    pub fn planes(&self) -> &[Plane] {
        self.desc.planes()
    }

    /// The writer's sequence number of this frame.
    pub fn sequence(&self) -> u64 {
        self.seq
    }

    /// The epoch of the writer that wrote it.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// Capture and publish times.
    pub fn timestamps(&self) -> Timestamps {
        self.timestamps
    }

    /// Frame flags.
    pub fn flags(&self) -> u32 {
        self.flags
    }

    /// Frames skipped between the previous read and this one.
    pub fn missed_before(&self) -> u64 {
        self.missed_before
    }

    /// The slot index.
    pub fn slot(&self) -> u32 {
        self.slot
    }

    /// The frame's bytes in place: `desc().len()` bytes, planes at their offsets.
    pub fn pixels(&self) -> &[u8] {
        let len = self.desc.len();
        match self.reader.sh.slot_range(self.slot, 0, len) {
            // SAFETY: the range lies inside the slot (the descriptor was
            // validated against the slot length, and slot_range checks it);
            // the mapping lives as long as `self.reader`. This reader holds
            // the slot, so a writer of this project does not write it; a
            // hostile process could, and any u8 is valid: the worst is wrong
            // pixels, never undefined behaviour in this process.
            Some(p) => unsafe { std::slice::from_raw_parts(p, len as usize) },
            None => &[],
        }
    }

    /// Plane `i`'s bytes, from its offset to the end of its last row.
    pub fn plane(&self, i: usize) -> Option<&[u8]> {
        let p = *self.desc.plane(i)?;
        self.pixels().get(p.offset as usize..p.end() as usize)
    }

    /// The user metadata stored with the frame.
    pub fn metadata(&self) -> &[u8] {
        let p = self.reader.sh.metadata_ptr(self.slot);
        // SAFETY: meta_len was checked against the metadata area's size, which
        // lies inside the control block; see `pixels` for hostile writes.
        unsafe { std::slice::from_raw_parts(p, self.meta_len) }
    }
}

impl Drop for ReadFrame {
    fn drop(&mut self) {
        if !self.reader.sh.in_owner_fast() {
            return;
        }
        let mut st = self.reader.state.lock().unwrap_or_else(|p| p.into_inner());
        self.reader.release(&mut st, self.slot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::native::{Writer, WriterOptions};

    /// A commit word that never stops moving (a process bumping it in
    /// shared memory) does not hide the writer's death: the probe still runs
    /// at least every PROBE_AT_LEAST_EVERY.
    #[test]
    fn a_moving_commit_word_does_not_hide_a_dead_writer() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s");
        let w = Writer::create(&p, &WriterOptions { slots: 2, slot_bytes: 64, ..Default::default() }).unwrap();
        let r = Reader::open(&p, &ReaderOptions::default()).unwrap();
        assert!(r.writer_alive_at(1), "a live writer, probed");
        drop(w);
        let start = Instant::now();
        let mut word = 2;
        while r.writer_alive_at(word) {
            word += 1;
            assert!(start.elapsed() < 10 * PROBE_AT_LEAST_EVERY, "the dead writer was never probed");
            std::thread::sleep(Duration::from_millis(1));
        }
        // While the word moved, no probe ran: the skip is what keeps the
        // liveness check off the wake-up path.
        assert!(start.elapsed() >= PROBE_AT_LEAST_EVERY / 2, "probed at once: the moving word was not trusted");
    }
}
