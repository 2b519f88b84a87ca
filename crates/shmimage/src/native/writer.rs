//! The writer: creating a stream or taking over one whose writer died, loans
//! and commits, `put` (one copy), and waiting for slots, bounded for lossless
//! readers.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::desc::{now_mono_ns, now_real_ns, FrameDesc, Timestamps};
use super::error::{Error, Result};
use super::layout::{self, header, join_latest, split_latest, Layout, READERS};
use super::shared::Shared;
use super::slot::{self, Claim, BUSY, EMPTY};
use super::{lock, wake};

/// How a writer creates or serves a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterOptions {
    /// K, the slots of a new stream (2..=64).
    pub slots: u32,
    /// Pixel bytes of one slot of a new stream (rounded up to 4096).
    pub slot_bytes: u64,
    /// Metadata bytes per slot of a new stream (at most 65536).
    pub metadata_bytes: u32,
    /// How long a loan waits when only lossless readers' unread frames block
    /// every slot, before dropping the oldest such frame for them.
    pub lossless_wait: Option<Duration>,
    /// How long [`Writer::put`] waits for a slot held by readers.
    pub slot_wait: Option<Duration>,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            slots: 4,
            slot_bytes: 0,
            metadata_bytes: layout::DEFAULT_METADATA_BYTES,
            lossless_wait: Some(Duration::from_secs(1)),
            slot_wait: Some(Duration::from_secs(1)),
        }
    }
}

impl WriterOptions {
    /// Options whose slots hold one `format` frame of `width` x `height` with
    /// the default row padding.
    pub fn for_frame(format: super::PixelFormat, width: u32, height: u32) -> Result<WriterOptions> {
        let d = FrameDesc::new(format, width, height)?;
        Ok(WriterOptions { slot_bytes: d.len(), ..Default::default() })
    }

    fn layout(&self) -> Result<Layout> {
        Layout::new(self.slots, self.slot_bytes, self.metadata_bytes).map_err(|e| Error::BadArgs(e.0))
    }
}

/// Create a new native stream file at `path` without becoming its writer
/// (`shmimage create`): readers may join and wait, and a writer starts
/// later with [`Writer::open`] (epoch 1). An existing file is `AlreadyExists`.
pub fn create(path: impl AsRef<Path>, options: &WriterOptions) -> Result<()> {
    Shared::create(path.as_ref(), options.layout()?).map(drop)
}

/// What a writer has done since it opened the stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Frames committed.
    pub frames: u64,
    /// Loans that found no slot in time (NoSlotAvailable).
    pub no_slot: u64,
    /// Loans that had to wait for lossless readers.
    pub lossless_waits: u64,
    /// Frames dropped for lossless readers after `lossless_wait` passed.
    pub lossless_drops: u64,
    /// Dead readers whose entries and holds were taken back.
    pub readers_reaped: u64,
}

/// A live reader entry as the writer sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReaderInfo {
    /// Entry index (0..64).
    pub index: u32,
    /// The reader's process id.
    pub pid: u32,
    /// Whether it asked for every frame.
    pub lossless: bool,
    /// The last sequence it took.
    pub last_seq: u64,
    /// Frames it missed.
    pub missed: u64,
    /// Frames it read.
    pub frames: u64,
}

/// Per-frame values for [`Writer::put`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FrameInfo {
    /// Capture time (CLOCK_MONOTONIC ns, CLOCK_REALTIME ns); `None` = now.
    pub capture: Option<(u64, u64)>,
    /// Frame flags (see [`flags`](super::flags)).
    pub flags: u32,
    /// User metadata (at most the stream's metadata bytes).
    pub metadata: Vec<u8>,
}

#[derive(Debug)]
struct State {
    next_seq: u64,
    /// Sequence this writer last wrote into each slot (0: none, or loaned now).
    slot_seq: Vec<u64>,
    /// Slots loaned out now.
    loaned: Vec<bool>,
    stats: WriterStats,
    last_reap: Option<Instant>,
}

#[derive(Debug)]
struct Inner {
    sh: Shared,
    options: WriterOptions,
    epoch: u32,
    state: Mutex<State>,
}

/// The writing end of a native stream. `Send + Sync`; loans may be taken from
/// several threads at once (each gets its own slot).
#[derive(Debug, Clone)]
pub struct Writer {
    inner: Arc<Inner>,
}

impl Writer {
    /// Create a new stream file at `path` and become its writer. An existing
    /// file there is `AlreadyExists`.
    pub fn create(path: impl AsRef<Path>, options: &WriterOptions) -> Result<Writer> {
        let sh = Shared::create(path.as_ref(), options.layout()?)?;
        Writer::start(sh, options)
    }

    /// Become the writer of an existing native stream: one never served, or
    /// one whose writer died or closed (a takeover: the epoch goes up). A live
    /// writer is `WriterBusy`. The stream keeps its layout; `options` only
    /// set the waits.
    pub fn open(path: impl AsRef<Path>, options: &WriterOptions) -> Result<Writer> {
        Writer::start(Shared::open(path.as_ref())?, options)
    }

    /// [`Writer::open`] if `path` exists, else [`Writer::create`].
    pub fn open_or_create(path: impl AsRef<Path>, options: &WriterOptions) -> Result<Writer> {
        match Writer::open(path.as_ref(), options) {
            Err(Error::NotFound { .. }) => match Writer::create(path.as_ref(), options) {
                Err(Error::AlreadyExists { .. }) => Writer::open(path.as_ref(), options),
                r => r,
            },
            r => r,
        }
    }

    fn start(sh: Shared, options: &WriterOptions) -> Result<Writer> {
        if !lock::try_lock(sh.file(), lock::writer_byte()) {
            let pid = sh.header_u32(header::WRITER_PID).load(Ordering::Relaxed);
            return Err(Error::WriterBusy { path: sh.path().to_owned(), pid });
        }
        let k = sh.layout().slots();
        // A dead writer's half-written slots are empty now.
        let mut max_seq = split_latest(sh.header_u64(header::LATEST).load(Ordering::Acquire)).0;
        let mut slot_seq = vec![0; k as usize];
        for i in 0..k {
            let w = sh.words(i);
            if slot::recover(w) {
                tracing::debug!(slot = i, "took back a slot the previous writer left half-written");
            }
            let s = super::atomics::Word::load(w.seq);
            if s != EMPTY && s != BUSY {
                slot_seq[i as usize] = s;
                max_seq = max_seq.max(s);
            }
        }
        // Sequences stay increasing across writers: lossless readers' cursors stay meaningful.
        let next_seq = max_seq.saturating_add(1).min(BUSY >> 9);
        let epoch = sh.header_u32(header::EPOCH).fetch_add(1, Ordering::AcqRel).wrapping_add(1);
        sh.header_u32(header::WRITER_PID).store(std::process::id(), Ordering::Relaxed);
        sh.header_u32(header::WRITER_STATE).store(1, Ordering::Release);
        wake::wake_all(sh.header_u32(header::COMMIT_WORD));
        tracing::debug!(path = %sh.path().display(), epoch, next_seq, "native writer started");
        let state = State {
            next_seq,
            slot_seq,
            loaned: vec![false; k as usize],
            stats: WriterStats::default(),
            last_reap: None,
        };
        Ok(Writer { inner: Arc::new(Inner { sh, options: options.clone(), epoch, state: Mutex::new(state) }) })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain counters; go on with them.
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Loan a free slot shaped by `desc`: write the frame into
    /// [`WriteLoan::pixels_mut`], then [`WriteLoan::commit`]. Waits up to
    /// `timeout` (None = forever) while readers hold every slot, then answers
    /// `NoSlotAvailable`.
    pub fn loan(&self, desc: &FrameDesc, timeout: Option<Duration>) -> Result<WriteLoan> {
        let sh = &self.inner.sh;
        sh.check()?;
        desc.validate(sh.layout().slot_len())?;
        let start = Instant::now();
        let mut lossless_since: Option<Instant> = None;
        let mut last_intact_check = u128::MAX;
        loop {
            sh.check()?;
            let seen = sh.header_u32(header::FREE_WORD).load(Ordering::SeqCst);
            let mut only_pending = false;
            {
                let mut st = self.state();
                // Most recently written first, the newest frame last: the
                // slot just given back is the one still in the caches (the
                // writer's and the readers'), so the frames cycle through
                // as few slots as the readers' holds allow and the rest of K
                // stays cold. Least recently written first put every slot
                // in the working set: one reader's 1080p frame took 614-637
                // us with 10 slots against 319-326 us with 3. The newest
                // frame stays readable until no other slot is free.
                // (A fixed array: K <= 64, and a loan allocates nothing.)
                let mut order = [0u32; layout::MAX_SLOTS as usize];
                let mut n = 0;
                for i in (0..sh.layout().slots()).filter(|&i| !st.loaned[i as usize]) {
                    order[n] = i;
                    n += 1;
                }
                let order = &mut order[..n];
                let newest = st.slot_seq.iter().copied().max().unwrap_or(0);
                let rank = |i: u32| match st.slot_seq[i as usize] {
                    s if s == newest && s != 0 => 0,
                    s => s.saturating_add(1), // a value taken over from the file may be anything
                };
                order.sort_unstable_by_key(|&i| std::cmp::Reverse(rank(i)));
                let mut oldest_pending = None;
                let mut held = false;
                for &mut i in order {
                    match slot::claim(sh.words(i)) {
                        Claim::Claimed { .. } if sh.cut_short() => {
                            // The words were the guard's zero pages: the file is gone under us.
                            return Err(Error::FileTruncated { path: sh.path().to_owned() });
                        }
                        Claim::Claimed { .. } => {
                            st.loaned[i as usize] = true;
                            st.slot_seq[i as usize] = 0;
                            drop(st);
                            let (mono, real) = (now_mono_ns(), now_real_ns());
                            return Ok(WriteLoan {
                                inner: Arc::clone(&self.inner),
                                slot: i,
                                desc: *desc,
                                capture: (mono, real),
                                flags: 0,
                                metadata_len: 0,
                                done: false,
                            });
                        }
                        Claim::Pending => {
                            // The claim order is newest first; the drop takes the oldest.
                            let older = match oldest_pending {
                                Some(o) => st.slot_seq[i as usize] < st.slot_seq[o as usize],
                                None => true,
                            };
                            if older {
                                oldest_pending = Some(i);
                            }
                        }
                        Claim::Held | Claim::Busy => held = true,
                    }
                }
                if let Some(oldest) = oldest_pending {
                    let since = *lossless_since.get_or_insert_with(|| {
                        st.stats.lossless_waits += 1;
                        Instant::now()
                    });
                    let bound = self.lossless_bound();
                    if bound.is_some_and(|b| since.elapsed() >= b) {
                        // The oldest pending frame goes; its readers will count it missed.
                        let i = oldest;
                        let dropped = slot::drop_pending(sh.words(i));
                        st.stats.lossless_drops += 1;
                        tracing::warn!(
                            slot = i,
                            readers = format!("{dropped:#x}"),
                            "lossless readers did not keep up within the wait bound; dropped a frame for them"
                        );
                        lossless_since = None;
                        continue;
                    }
                    only_pending = !held;
                }
                self.reap_dead_readers(&mut st, false);
            }
            let waited = start.elapsed();
            if waited.as_millis() / 100 != last_intact_check {
                // A slow path only: a file cut short under us ends the wait with an error.
                last_intact_check = waited.as_millis() / 100;
                sh.check_intact()?;
            }
            if !only_pending && timeout.is_some_and(|t| waited >= t) {
                self.state().stats.no_slot += 1;
                return Err(Error::NoSlotAvailable);
            }
            let left = timeout.map_or(crate::POLL_SLICE, |t| t.saturating_sub(waited));
            wake::sleep(
                sh.header_u32(header::FREE_WORD),
                sh.header_u32(header::WRITER_SLEEPERS),
                seen,
                left.max(Duration::from_micros(100)),
            );
        }
    }

    fn lossless_bound(&self) -> Option<Duration> {
        self.inner.options.lossless_wait
    }

    /// Publish one frame by copying `pixels` (exactly `desc.len()` bytes, or
    /// the packed size when `desc` is packed) into a slot. Returns its sequence.
    pub fn put(&self, desc: &FrameDesc, pixels: &[u8], info: &FrameInfo) -> Result<u64> {
        if pixels.len() as u64 != desc.len() {
            return Err(Error::BadArgs(format!(
                "{} bytes of pixels for a {}x{} {} frame that occupies {} bytes",
                pixels.len(),
                desc.width(),
                desc.height(),
                desc.format(),
                desc.len()
            )));
        }
        let mut loan = self.loan(desc, self.inner.options.slot_wait)?;
        loan.pixels_mut().copy_from_slice(pixels);
        loan.set_metadata(&info.metadata)?;
        loan.set_flags(info.flags);
        if let Some((m, r)) = info.capture {
            loan.set_capture_time(m, r);
        }
        loan.commit()
    }

    /// Take back the entries and holds of readers that died. `force` ignores
    /// the rate limit (at most every 20 ms otherwise: each probe is a syscall).
    fn reap_dead_readers(&self, st: &mut State, force: bool) {
        if !force && st.last_reap.is_some_and(|t| t.elapsed() < Duration::from_millis(20)) {
            return;
        }
        st.last_reap = Some(Instant::now());
        st.stats.readers_reaped += reap(&self.inner.sh);
    }

    /// Live reader entries (those whose liveness lock is held).
    pub fn readers(&self) -> Vec<ReaderInfo> {
        readers(&self.inner.sh)
    }

    /// This writer's epoch (1 for the first writer of a file).
    pub fn epoch(&self) -> u32 {
        self.inner.epoch
    }

    /// K.
    pub fn slots(&self) -> u32 {
        self.inner.sh.layout().slots()
    }

    /// Pixel bytes one slot holds.
    pub fn slot_capacity(&self) -> u64 {
        self.inner.sh.layout().slot_len()
    }

    /// Metadata bytes one slot holds.
    pub fn metadata_capacity(&self) -> usize {
        self.inner.sh.layout().metadata_bytes() as usize
    }

    /// Counters since open.
    pub fn stats(&self) -> WriterStats {
        self.state().stats
    }

    /// The stream file.
    pub fn path(&self) -> &Path {
        self.inner.sh.path()
    }

    /// End every wait of this writer now (`Closed`); later calls answer
    /// `Closed`. The stream is released when the last clone and loan are gone.
    pub fn close(&self) {
        self.inner.sh.close();
        wake::wake_all(self.inner.sh.header_u32(header::FREE_WORD));
    }
}

/// Reap dead readers of `sh`; returns how many.
pub(crate) fn reap(sh: &Shared) -> u64 {
    let mut n = 0;
    for i in 0..READERS {
        if sh.reader_u32(i, layout::reader::STATE).load(Ordering::Acquire) == 0 {
            continue;
        }
        // Holding the entry's lock while cleaning keeps a joining reader out of it.
        if lock::try_lock(sh.file(), lock::reader_byte(i)) {
            forget_reader(sh, i);
            lock::unlock(sh.file(), lock::reader_byte(i));
            n += 1;
            tracing::info!(entry = i, "took back the holds of a reader that died");
        }
    }
    if n > 0 {
        wake::bump(sh.header_u32(header::FREE_WORD), sh.header_u32(header::WRITER_SLEEPERS));
    }
    n
}

/// Clear every trace of reader entry `i` (its lock must be held by the caller).
pub(crate) fn forget_reader(sh: &Shared, i: u32) {
    let bit = 1u64 << i;
    for s in 0..sh.layout().slots() {
        slot::forget_reader(sh.words(s), bit);
    }
    sh.header_u64(header::LOSSLESS_MASK).fetch_and(!bit, Ordering::AcqRel);
    sh.reader_u32(i, layout::reader::STATE).store(0, Ordering::Release);
}

pub(crate) fn readers(sh: &Shared) -> Vec<ReaderInfo> {
    (0..READERS)
        .filter(|&i| lock::held_by_other(sh.file(), lock::reader_byte(i)) == Some(true))
        .map(|i| ReaderInfo {
            index: i,
            pid: sh.reader_u32(i, layout::reader::PID).load(Ordering::Relaxed),
            lossless: sh.reader_u32(i, layout::reader::FLAGS).load(Ordering::Relaxed) & layout::reader::FLAG_LOSSLESS
                != 0,
            last_seq: sh.reader_u64(i, layout::reader::LAST_SEQ).load(Ordering::Relaxed),
            missed: sh.reader_u64(i, layout::reader::MISSED).load(Ordering::Relaxed),
            frames: sh.reader_u64(i, layout::reader::FRAMES).load(Ordering::Relaxed),
        })
        .collect()
}

impl Drop for Inner {
    fn drop(&mut self) {
        if !self.sh.in_owner() {
            return; // a fork child: the parent's stream is not ours to touch
        }
        self.sh.header_u32(header::WRITER_PID).store(0, Ordering::Relaxed);
        self.sh.header_u32(header::WRITER_STATE).store(2, Ordering::Release);
        // Readers re-check at once and see the writer gone (its lock goes with the file).
        wake::wake_all(self.sh.header_u32(header::COMMIT_WORD));
        lock::unlock(self.sh.file(), lock::writer_byte());
    }
}

/// A slot loaned to the writer: draw into it, then commit. Dropping it
/// without commit gives the slot back empty.
#[derive(Debug)]
pub struct WriteLoan {
    inner: Arc<Inner>,
    slot: u32,
    desc: FrameDesc,
    capture: (u64, u64),
    flags: u32,
    metadata_len: u32,
    done: bool,
}

impl WriteLoan {
    /// The frame's descriptor.
    pub fn desc(&self) -> &FrameDesc {
        &self.desc
    }

    /// The slot index (0..K).
    pub fn slot(&self) -> u32 {
        self.slot
    }

    /// The frame's bytes in the slot: `desc().len()` bytes, planes at their offsets.
    pub fn pixels_mut(&mut self) -> &mut [u8] {
        let len = self.desc.len();
        match self.inner.sh.slot_range(self.slot, 0, len) {
            // SAFETY: the range lies inside the slot (validated when the loan
            // was made), and this writer owns the slot (claimed, seq = BUSY)
            // until commit or drop, so no reader reads it and no other loan
            // aliases it; `&mut self` keeps this slice unique in this process.
            Some(p) => unsafe { std::slice::from_raw_parts_mut(p, len as usize) },
            None => &mut [],
        }
    }

    /// Plane `i`'s bytes, from its offset to the end of its last row.
    pub fn plane_mut(&mut self, i: usize) -> Option<&mut [u8]> {
        let p = *self.desc.plane(i)?;
        let all = self.pixels_mut();
        all.get_mut(p.offset as usize..p.end() as usize)
    }

    /// Store user metadata with the frame (at most the stream's metadata bytes).
    pub fn set_metadata(&mut self, metadata: &[u8]) -> Result<()> {
        let max = self.inner.sh.layout().metadata_bytes() as usize;
        if metadata.len() > max {
            return Err(Error::MetadataTooLarge { len: metadata.len(), max });
        }
        let dst = self.inner.sh.metadata_ptr(self.slot);
        // SAFETY: the metadata area of an owned slot holds `max` bytes inside
        // the control block; `metadata` is this process's memory.
        unsafe { std::ptr::copy_nonoverlapping(metadata.as_ptr(), dst, metadata.len()) };
        self.metadata_len = metadata.len() as u32;
        Ok(())
    }

    /// Set the capture time (default: when the loan was made).
    pub fn set_capture_time(&mut self, mono_ns: u64, real_ns: u64) {
        self.capture = (mono_ns, real_ns);
    }

    /// Set the frame flags.
    pub fn set_flags(&mut self, flags: u32) {
        self.flags = flags;
    }

    /// Publish the frame to every reader; returns its sequence number.
    pub fn commit(mut self) -> Result<u64> {
        let inner = Arc::clone(&self.inner);
        let sh = &inner.sh;
        sh.check()?;
        let mut st = inner.state.lock().unwrap_or_else(|p| p.into_inner());
        let seq = st.next_seq;
        st.next_seq += 1;
        let i = self.slot;
        let ts = Timestamps {
            capture_mono_ns: self.capture.0,
            capture_real_ns: self.capture.1,
            publish_mono_ns: now_mono_ns(),
            publish_real_ns: now_real_ns(),
        };
        write_desc(sh, i, &self.desc, self.flags, self.metadata_len, &ts, inner.epoch);
        let lossless = sh.header_u64(header::LOSSLESS_MASK).load(Ordering::Acquire);
        slot::publish(sh.words(i), seq, lossless);
        sh.header_u64(header::LATEST).store(join_latest(seq, i), Ordering::Release);
        if sh.cut_short() {
            return Err(Error::FileTruncated { path: sh.path().to_owned() });
        }
        st.slot_seq[i as usize] = seq;
        st.loaned[i as usize] = false;
        st.stats.frames += 1;
        drop(st);
        wake::bump(sh.header_u32(header::COMMIT_WORD), sh.header_u32(header::READER_SLEEPERS));
        self.done = true;
        Ok(seq)
    }
}

fn write_desc(sh: &Shared, i: u32, d: &FrameDesc, flags: u32, meta_len: u32, ts: &Timestamps, epoch: u32) {
    use layout::slot as f;
    let r = Ordering::Relaxed; // published by the release store of seq
    sh.slot_u32(i, f::FORMAT).store(d.format().code(), r);
    sh.slot_u32(i, f::FLAGS).store(flags, r);
    sh.slot_u32(i, f::WIDTH).store(d.width(), r);
    sh.slot_u32(i, f::HEIGHT).store(d.height(), r);
    sh.slot_u32(i, f::PLANE_COUNT).store(d.planes().len() as u32, r);
    sh.slot_u32(i, f::METADATA_LEN).store(meta_len, r);
    sh.slot_u64(i, f::CAPTURE_MONO).store(ts.capture_mono_ns, r);
    sh.slot_u64(i, f::CAPTURE_REAL).store(ts.capture_real_ns, r);
    sh.slot_u64(i, f::PUBLISH_MONO).store(ts.publish_mono_ns, r);
    sh.slot_u64(i, f::PUBLISH_REAL).store(ts.publish_real_ns, r);
    sh.slot_u32(i, f::EPOCH).store(epoch, r);
    for (n, p) in d.planes().iter().enumerate() {
        let base = f::PLANES + n as u64 * f::PLANE_BYTES;
        sh.slot_u64(i, base).store(p.offset, r);
        sh.slot_u32(i, base + 8).store(p.stride, r);
        sh.slot_u32(i, base + 12).store(p.row_bytes, r);
        sh.slot_u32(i, base + 16).store(p.rows, r);
    }
}

impl Drop for WriteLoan {
    fn drop(&mut self) {
        if self.done || !self.inner.sh.in_owner_fast() {
            return;
        }
        slot::abandon(self.inner.sh.words(self.slot));
        let mut st = self.inner.state.lock().unwrap_or_else(|p| p.into_inner());
        st.loaned[self.slot as usize] = false;
    }
}
