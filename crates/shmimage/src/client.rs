//! The consumer: connect (or reconnect), lock the newest frame in place,
//! assemble banded frames, unlock, wait, and the background monitor.
//!
//! A [`Client`] is a handle over an `Arc`-shared inner object: `Send +
//! Sync`, every method takes `&self`, one mutex per stream serializes the
//! state changes. A [`Frame`] holds the same `Arc`, its buffer index and a
//! generation: up to two frames can be locked at once (one per buffer), and
//! a frame's pixels are its own until it is dropped.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::endpoint::{Canceller, Endpoint};
use crate::error::{Error, Result};
use crate::futex;
use crate::layout::{is_newer, Band};
use crate::liveness::{self, Liveness, PeerWatch};
use crate::mapping::Mapping;
use crate::state::{self, BufferState, LockChoice, Role, Transition};

mod pair;

const INIT: u32 = BufferState::Init as u32;
const CLIENT: u32 = BufferState::Client as u32;
const CLIENT_LOCKED: u32 = BufferState::ClientLocked as u32;

/// How often a frame wait that sees no frame checks whether the stream file's
/// path was given to another file.
pub(crate) const REPLACED_CHECK: Duration = Duration::from_millis(50);

/// How a client stream behaves.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Run the background monitor that drains bands while the application is
    /// not calling lock (EnSight's default; `NOTHREADS` turns it off, and the
    /// same work then happens inside lock and the waits).
    pub monitor_thread: bool,
    /// The largest banded frame the client will allocate memory to assemble.
    /// A header claiming more is treated as corrupt.
    pub max_frame_bytes: u64,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions { monitor_thread: true, max_frame_bytes: 512 << 20 }
    }
}

/// What a client has seen so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Frames returned by lock.
    pub frames_locked: u64,
    /// Complete frames dropped because a newer one arrived first.
    pub frames_stale: u64,
    /// Banded frames dropped part-way (abandoned by the server, or missed).
    pub frames_partial: u64,
    /// Bands copied into assembly memory.
    pub bands_assembled: u64,
    /// Headers rejected as corrupt (their buffers were given back).
    pub corrupt_headers: u64,
    /// Times a restarted server re-initialised the file and the client
    /// connected again.
    pub reconnects: u64,
}

/// Metadata of a locked frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameInfo {
    /// The server's frame number.
    pub number: u32,
    /// Pixels per row.
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// True when the pixels are read in place from shared memory; false for a
    /// banded frame assembled in the client's own memory.
    pub in_place: bool,
}

impl FrameInfo {
    /// Bytes of pixel data (`width * height * 3`).
    pub fn len(&self) -> usize {
        self.width as usize * self.height as usize * crate::layout::BYTES_PER_PIXEL as usize
    }

    /// True for an empty frame (never returned by lock).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A banded frame being assembled.
#[derive(Debug)]
struct Assembly {
    number: u32,
    width: u32,
    height: u32,
    next_row: u32,
    data: Vec<u8>,
}

/// A complete frame in the client's own memory.
#[derive(Debug)]
struct Assembled {
    info: FrameInfo,
    data: Vec<u8>,
}

/// Band bookkeeping shared by lock and the monitor thread.
#[derive(Debug)]
struct Assembler {
    max_frame_bytes: u64,
    building: Option<Assembly>,
    complete: Option<Assembled>,
    spare: Vec<Vec<u8>>,
    /// Bytes of a banded frame that could not be allocated, reported by the
    /// next lock as MEMORY_ALLOC_ERROR.
    alloc_failed: Option<u64>,
    stats: ClientStats,
    /// Which buffers a live [`Frame`] holds locked.
    held: [bool; 2],
    /// Leave two-band frames in place (see [`Client::set_two_band_frames_in_place`]).
    two_bands_in_place: bool,
}

#[derive(Debug)]
struct Inner {
    ep: Endpoint,
    asm: Mutex<Assembler>,
    /// Generation of each buffer's lock; a frame whose number differs is over.
    generation: [AtomicU64; 2],
    server: PeerWatch,
    reconnected: bool,
}

impl Inner {
    fn asm(&self) -> MutexGuard<'_, Assembler> {
        // A panic while holding the lock cannot leave the assembler unsound:
        // its worst state is a partial frame, which the next band replaces.
        self.asm.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn map(&self) -> &Mapping {
        &self.ep.map
    }
}

/// The consuming end of a stream. Dropping it closes it.
#[derive(Debug)]
pub struct Client {
    inner: Arc<Inner>,
    monitor: Mutex<Option<JoinHandle<()>>>,
}

impl Client {
    /// Open a stream file as its client and connect: INIT -> SERVER on a fresh
    /// stream; on a file that already carried a stream, take over what a
    /// client owned and report it through [`Client::reconnected`].
    /// `Err(PeerBusy)` when another live client has the file; the role of a
    /// client that died is taken over.
    pub fn connect(path: impl AsRef<Path>, options: ClientOptions) -> Result<Client> {
        let path = path.as_ref();
        let map = Mapping::open(path)?;
        liveness::claim(map.file(), Role::Client).map_err(|pid| Error::PeerBusy {
            role: Role::Client,
            path: path.to_owned(),
            pid,
        })?;
        map.check_intact()?;
        let s = map.states();
        let mut fresh = s == [INIT, INIT];
        if fresh {
            for i in 0..2 {
                fresh &= map.transition(i, INIT, Transition::Connect);
            }
        }
        if !fresh {
            take_over(&map);
        }
        for i in 0..2 {
            futex::wake(map.state_word(i));
        }
        let server = PeerWatch::new(Role::Server);
        server.check(map.file());
        let inner = Arc::new(Inner {
            ep: Endpoint::new(map),
            asm: Mutex::new(Assembler {
                max_frame_bytes: options.max_frame_bytes,
                building: None,
                complete: None,
                spare: Vec::new(),
                alloc_failed: None,
                stats: ClientStats::default(),
                held: [false; 2],
                two_bands_in_place: false,
            }),
            generation: [AtomicU64::new(0), AtomicU64::new(0)],
            server,
            reconnected: !fresh,
        });
        let client = Client { inner, monitor: Mutex::new(None) };
        if options.monitor_thread {
            let s = Arc::clone(&client.inner);
            // On failure `client` drops here and disconnects, so the server
            // sees UNCONNECTED rather than a client that will never read.
            let h = std::thread::Builder::new()
                .name("shmimage-monitor".into())
                .spawn(move || monitor(&s))
                .map_err(|source| Error::ThreadCreate { source })?;
            *client.monitor_slot() = Some(h);
        }
        Ok(client)
    }

    /// Keep a frame that travels in exactly two bands (a 4K frame through an
    /// EnSight-sized 25 MiB file) in the two buffers where the server wrote
    /// it, instead of assembling it in the client's memory as its bands come:
    /// [`Client::lock`] then locks both buffers, and [`Frame::copy_to`] copies
    /// the frame out of shared memory once, straight into the caller's
    /// memory. For a face that copies every frame anyway (the drop-in
    /// `stream_lock`), one copy instead of two. While such a frame waits, the
    /// server cannot send the next one (as when two whole frames wait), and
    /// it is only kept in place while no other frame of this client is held.
    /// Off by default.
    pub fn set_two_band_frames_in_place(&self, on: bool) {
        self.inner.asm().two_bands_in_place = on;
    }

    fn monitor_slot(&self) -> MutexGuard<'_, Option<JoinHandle<()>>> {
        self.monitor.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// True when connect found a stream already in the file (RECONNECTING).
    pub fn reconnected(&self) -> bool {
        self.inner.reconnected
    }

    /// Payload bytes of one buffer (n).
    pub fn capacity(&self) -> u64 {
        self.inner.map().layout().capacity()
    }

    /// The stream file's path.
    pub fn path(&self) -> &Path {
        self.inner.map().path()
    }

    /// Counters since connect.
    pub fn stats(&self) -> ClientStats {
        self.inner.asm().stats
    }

    /// Whether the server process is alive, gone, or unknown.
    pub fn server_liveness(&self) -> Liveness {
        self.inner.server.check(self.inner.map().file())
    }

    /// True when the file's path now names another file or nothing (it was
    /// deleted or replaced): this client still reads the old one.
    pub fn file_replaced(&self) -> bool {
        self.inner.map().is_replaced()
    }

    /// True once this client found its file shorter than when it was mapped
    /// (another process truncated it); the stream cannot continue and every
    /// lock answers `FileTruncated`. Checks the file size now (one `fstat`).
    pub fn file_truncated(&self) -> bool {
        matches!(self.inner.map().check_intact(), Err(Error::FileTruncated { .. }))
    }

    /// `Err(Forked)` in a fork child, `Err(Closed)` after close; else Ok.
    /// Every call makes this check first; faces use it to answer before
    /// consulting state of their own.
    pub fn check_usable(&self) -> Result<()> {
        self.inner.ep.check()
    }

    /// True once [`Client::close`] ran.
    pub fn is_closed(&self) -> bool {
        self.inner.ep.is_closed()
    }

    /// End every wait in progress on this client with `Err(Cancelled)`.
    pub fn cancel(&self) {
        self.inner.ep.canceller().cancel();
    }

    /// A handle that cancels this client's waits from anywhere (see [`Canceller`]).
    pub fn canceller(&self) -> Canceller {
        self.inner.ep.canceller()
    }

    /// Lock the newest complete frame; it stays locked until the [`Frame`]
    /// drops (or [`Frame::unlock`]). With one frame still held the next lock
    /// takes the other buffer (two frames at once); with two held it
    /// answers `Err(Locked)`. `Err(NoFrameAvailable)` when no frame waits.
    pub fn lock(&self) -> Result<Frame> {
        self.inner.ep.check()?;
        let inner = &*self.inner;
        let map = inner.map();
        let mut asm = inner.asm();
        inner.ep.check()?;
        if asm.held == [true, true] {
            return Err(Error::Locked);
        }
        asm.drain(map, &inner.generation);
        // One check, after the drain, covers both a file that shrank before
        // this call and one that shrank under a band copy (which then holds
        // zeros): nothing is returned from a truncated file either way, and
        // a drain over missing pages is harmless (the SIGBUS guard).
        map.check_intact()?;
        if let Some(bytes) = asm.alloc_failed.take() {
            return Err(Error::MemoryAlloc { bytes });
        }
        // After a drain at most one whole frame waits in place, beside at most
        // one assembled frame; take the newer and drop the other.
        for _ in 0..4 {
            let s = map.states();
            if asm.two_bands_in_place && asm.held == [false, false] && s == [CLIENT, CLIENT] {
                let bands = [0, 1].map(|i| asm.band(map, i));
                if let Some((first, a, _)) = pair::pair_in_place(&bands) {
                    if asm.complete.as_ref().is_some_and(|c| is_newer(c.info.number, a.frame_number)) {
                        // An assembled frame is newer: the pair is stale.
                        (0..2).for_each(|i| release(map, i, CLIENT));
                        asm.stats.frames_stale += 1;
                        continue;
                    }
                    if let Some(old) = asm.complete.take() {
                        asm.stats.frames_stale += 1;
                        asm.recycle(old.data);
                    }
                    if map.transition(first, CLIENT, Transition::Lock) {
                        if map.transition(1 - first, CLIENT, Transition::Lock) {
                            asm.held = [true, true];
                            asm.stats.frames_locked += 1;
                            let generation = [0, 1].map(|i| inner.generation[i].load(Ordering::Acquire));
                            let info =
                                FrameInfo { number: a.frame_number, width: a.width, height: a.height, in_place: false };
                            let first_len = a.payload_len() as usize;
                            let kind = Kind::Pair { first, first_len, generation, assembled: OnceLock::new() };
                            return Ok(Frame { inner: Arc::clone(&self.inner), info, kind });
                        }
                        // The other buffer changed under us (a server reset).
                        release(map, first, CLIENT_LOCKED);
                    }
                    continue;
                }
            }
            // The server may publish into the other buffer between the drain
            // and this read, so both can hold a whole frame here: take the
            // newer and give the older back, or the next lock would return a
            // frame older than this one.
            // A buffer a live Frame holds is never a candidate, whatever its
            // word says now (a hostile process may have flipped it to CLIENT).
            let whole = [0, 1].map(|i| (s[i] == CLIENT && !asm.held[i]).then(|| asm.whole_frame(map, i)).flatten());
            let numbers = whole.map(|b| b.map_or(0, |b| b.frame_number));
            let in_place = match state::lock_choice(whole.map(|b| b.is_some()), numbers) {
                LockChoice::Nothing => None,
                LockChoice::Lock(i) => whole[i].map(|b| (i, b)),
                LockChoice::ReleaseThenLock { release, lock } => {
                    asm.drop_stale(map, release);
                    whole[lock].map(|b| (lock, b))
                }
            };
            let assembled = asm.complete.as_ref().map(|c| c.info.number);
            let take_assembled = match (in_place, assembled) {
                (None, None) => return Err(Error::NoFrameAvailable),
                (None, Some(_)) => true,
                (Some(_), None) => false,
                (Some((_, b)), Some(n)) => is_newer(n, b.frame_number),
            };
            if take_assembled {
                if let Some((i, _)) = in_place {
                    asm.drop_stale(map, i);
                }
                let Some(c) = asm.complete.take() else { continue };
                asm.stats.frames_locked += 1;
                return Ok(Frame { inner: Arc::clone(&self.inner), info: c.info, kind: Kind::Assembled(c.data) });
            }
            let Some((i, b)) = in_place else { continue };
            if let Some(old) = asm.complete.take() {
                asm.stats.frames_stale += 1;
                asm.recycle(old.data);
            }
            if map.transition(i, CLIENT, Transition::Lock) {
                // The two state loads above are not one snapshot: the server
                // can publish frame k into the other buffer after its word was
                // read and then k + 1 into this one, so an older whole frame
                // may wait there unseen. Only this client moves a CLIENT
                // buffer, so it is still there now; give it back, or the next
                // lock would return a frame older than this one.
                let o = 1 - i;
                if !asm.held[o] && map.state_word(o).load(Ordering::Acquire) == CLIENT {
                    if let Some(ob) = asm.whole_frame(map, o) {
                        if state::is_stale(b.frame_number, ob.frame_number) {
                            asm.drop_stale(map, o);
                        }
                    }
                }
                let info = FrameInfo { number: b.frame_number, width: b.width, height: b.height, in_place: true };
                asm.held[i] = true;
                asm.stats.frames_locked += 1;
                let generation = inner.generation[i].load(Ordering::Acquire);
                return Ok(Frame {
                    inner: Arc::clone(&self.inner),
                    info,
                    kind: Kind::InPlace { index: i, generation },
                });
            }
        }
        Err(Error::NoFrameAvailable)
    }

    /// Wait for a frame and lock it (see [`Client::lock`]); `timeout`:
    /// `None` forever, `Some(ZERO)` a poll. `Err(NoFrameAvailable)` on
    /// timeout, `Err(ServerGone)` when the server process has gone,
    /// `Err(FileReplaced)` when (checked every 50 ms while no frame comes)
    /// the file's path now names another file, `Err(FileTruncated)`,
    /// `Err(Closed)` when the client is closed meanwhile (from any thread),
    /// `Err(Cancelled)` on [`Client::cancel`].
    pub fn wait_frame(&self, timeout: Option<Duration>) -> Result<Frame> {
        let inner = &*self.inner;
        let mut next_replaced_check = Instant::now() + REPLACED_CHECK;
        inner.ep.wait(
            timeout,
            || {
                match self.lock() {
                    Err(Error::NoFrameAvailable) => {}
                    other => return Some(other),
                }
                if self.server_liveness() == Liveness::Gone {
                    return Some(Err(Error::ServerGone { path: self.path().to_owned() }));
                }
                // A stat per check: rare enough to cost nothing, often enough
                // that a client left on a replaced file hears of it while it
                // waits. A deleted path alone is not a reason: a server may
                // unlink the file and stream on.
                let now = Instant::now();
                if now >= next_replaced_check {
                    next_replaced_check = now + REPLACED_CHECK;
                    if inner.map().names_other_file() {
                        return Some(Err(Error::FileReplaced { path: self.path().to_owned() }));
                    }
                }
                None
            },
            || Err(Error::NoFrameAvailable),
        )
    }

    /// Close the client, from any thread: every wait in progress returns
    /// `Err(Closed)` at once, the monitor stops, the buffers go back (to
    /// INIT, so the server answers UNCONNECTED), the liveness lock is
    /// released, and frames still held answer `Err(Closed)`; their pixels,
    /// if a face kept a pointer, become private zero pages. Idempotent.
    /// Dropping the client does the same.
    pub fn close(&self) {
        let inner = &*self.inner;
        if !inner.ep.mark_closed() {
            return;
        }
        let monitor = self.monitor_slot().take();
        if inner.ep.in_fork_child() {
            // The monitor thread does not exist here: forget its handle, and
            // leave the parent's stream as it is.
            std::mem::forget(monitor);
            inner.map().let_go_in_child();
            return;
        }
        if let Some(h) = monitor {
            if h.thread().id() != std::thread::current().id() {
                let _ = h.join();
            }
        }
        let mut asm = inner.asm();
        asm.held = [false; 2];
        for g in &inner.generation {
            g.fetch_add(1, Ordering::AcqRel);
        }
        let map = inner.map();
        for i in 0..2 {
            let w = map.state_word(i).load(Ordering::Acquire);
            if Transition::Disconnect.allowed_from(BufferState::from_word(w)) {
                map.transition(i, w, Transition::Disconnect);
            }
            futex::wake(map.state_word(i));
        }
        liveness::release(map.file(), Role::Client);
        map.detach();
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.close();
    }
}

#[derive(Debug)]
enum Kind {
    InPlace {
        index: usize,
        generation: u64,
    },
    Assembled(Vec<u8>),
    /// A two-band frame locked in both buffers (see `pair.rs`); `assembled`
    /// is filled only if [`Frame::pixels`] asks for one slice.
    Pair {
        first: usize,
        first_len: usize,
        generation: [u64; 2],
        assembled: OnceLock<Vec<u8>>,
    },
}

/// A locked frame; unlocks when dropped. Holds its client's inner object,
/// not a borrow: `Send + Sync`, and it may outlive the [`Client`] handle
/// (then it answers `Err(Closed)`).
#[derive(Debug)]
pub struct Frame {
    inner: Arc<Inner>,
    info: FrameInfo,
    kind: Kind,
}

impl Frame {
    /// Metadata.
    pub fn info(&self) -> FrameInfo {
        self.info
    }

    /// The server's frame number.
    pub fn number(&self) -> u32 {
        self.info.number
    }

    /// Pixels per row.
    pub fn width(&self) -> u32 {
        self.info.width
    }

    /// Rows.
    pub fn height(&self) -> u32 {
        self.info.height
    }

    /// Bytes of pixels.
    pub fn len(&self) -> usize {
        self.info.len()
    }

    /// Never true.
    pub fn is_empty(&self) -> bool {
        self.info.is_empty()
    }

    /// True while the pixels can be read.
    pub fn is_valid(&self) -> bool {
        self.check().is_ok()
    }

    fn check(&self) -> Result<()> {
        self.inner.ep.check()?;
        match self.kind {
            Kind::InPlace { index, generation } => self.check_buffer(index, generation),
            Kind::Pair { generation, .. } => (0..2).try_for_each(|i| self.check_buffer(i, generation[i])),
            Kind::Assembled(_) => Ok(()),
        }
    }

    fn check_buffer(&self, index: usize, generation: u64) -> Result<()> {
        // Not closed (checked by the caller), yet over: a server that reset
        // the file (a restart after ours died) owns this buffer now and may
        // write it; the client reconnected, or is about to.
        if self.inner.generation[index].load(Ordering::Acquire) != generation
            || self.inner.map().state_word(index).load(Ordering::Acquire) != CLIENT_LOCKED
        {
            return Err(Error::StreamReset { path: self.inner.map().path().to_owned() });
        }
        Ok(())
    }

    /// The pixels (`width * height * 3` bytes, rows top-down).
    ///
    /// For a one-band frame this is the shared memory itself, valid while
    /// this `Frame` lives: the buffer is CLIENT_LOCKED, which a conforming
    /// server never writes. A hostile process with the file open could change
    /// the bytes while you read them; that garbles only this frame. If
    /// another process truncates the file, this process does not die of
    /// SIGBUS: the missing bytes read as zeros and the next lock answers
    /// `FileTruncated`. If the client is closed (from another thread) while
    /// the slice is in use, it reads zeros from then on, never another frame.
    pub fn pixels(&self) -> Result<&[u8]> {
        self.check()?;
        match &self.kind {
            Kind::Assembled(data) => Ok(data),
            Kind::InPlace { index, .. } => {
                let len = self.info.len();
                let p = self.inner.map().payload_ptr(*index, len as u64).ok_or(Error::Closed)?;
                // SAFETY: payload_ptr checked that len bytes lie inside the
                // buffer, which lies inside the mapping that `self.inner`
                // keeps alive (close swaps in private pages at the same
                // addresses, never unmaps while an Arc lives). The buffer is
                // CLIENT_LOCKED by this frame until it drops, which the slice's
                // borrow of `self` outlasts. See docs/architecture.md.
                Ok(unsafe { std::slice::from_raw_parts(p, len) })
            }
            Kind::Pair { first, first_len, assembled, .. } => {
                if let Some(data) = assembled.get() {
                    return Ok(data);
                }
                let len = self.info.len();
                let mut data = Vec::new();
                data.try_reserve_exact(len).map_err(|_| Error::MemoryAlloc { bytes: len as u64 })?;
                data.resize(len, 0);
                pair::copy_out(self.inner.map(), *first, *first_len, &mut data);
                Ok(assembled.get_or_init(|| data))
            }
        }
    }

    /// Copy the pixels into `dst` (at least [`Frame::len`] bytes).
    /// A two-band frame kept in place (see
    /// [`Client::set_two_band_frames_in_place`]) is copied straight out of
    /// shared memory: the frame's one copy.
    pub fn copy_to(&self, dst: &mut [u8]) -> Result<()> {
        if let Kind::Pair { first, first_len, assembled, .. } = &self.kind {
            if assembled.get().is_none() {
                self.check()?;
                let (len, have) = (self.info.len(), dst.len());
                let d = dst
                    .get_mut(..len)
                    .ok_or_else(|| Error::BadArgs(format!("destination holds {have} bytes; the frame has {len}")))?;
                pair::copy_out(self.inner.map(), *first, *first_len, d);
                return Ok(());
            }
        }
        let src = self.pixels()?;
        let d = dst.get_mut(..src.len()).ok_or_else(|| {
            Error::BadArgs(format!("destination holds {} bytes; the frame has {}", src.len(), self.info.len()))
        })?;
        d.copy_from_slice(src);
        Ok(())
    }

    /// Unlock now (what dropping does), reporting `Err(Closed)`/`Err(Forked)`
    /// when the client is gone.
    pub fn unlock(mut self) -> Result<()> {
        self.release()
    }

    fn release(&mut self) -> Result<()> {
        let kind = std::mem::replace(&mut self.kind, Kind::Assembled(Vec::new()));
        self.inner.ep.check()?;
        match kind {
            Kind::Assembled(data) => {
                if !data.is_empty() {
                    self.inner.asm().recycle(data);
                }
            }
            Kind::Pair { generation, .. } => {
                let mut asm = self.inner.asm();
                if (0..2).any(|i| self.inner.generation[i].load(Ordering::Acquire) != generation[i]) {
                    return Err(Error::StreamReset { path: self.inner.map().path().to_owned() });
                }
                for i in 0..2 {
                    self.inner.generation[i].fetch_add(1, Ordering::AcqRel);
                    asm.held[i] = false;
                    release(self.inner.map(), i, CLIENT_LOCKED);
                }
            }
            Kind::InPlace { index, generation } => {
                let mut asm = self.inner.asm();
                if self.inner.generation[index].load(Ordering::Acquire) != generation {
                    return Err(Error::StreamReset { path: self.inner.map().path().to_owned() });
                }
                self.inner.generation[index].fetch_add(1, Ordering::AcqRel);
                asm.held[index] = false;
                // If the state is no longer CLIENT_LOCKED the server reset the
                // file meanwhile; the buffer is then not ours to change.
                release(self.inner.map(), index, CLIENT_LOCKED);
            }
        }
        Ok(())
    }
}

impl Drop for Frame {
    fn drop(&mut self) {
        let _ = self.release();
    }
}

/// A reconnecting client takes over everything a client owned.
fn take_over(map: &Mapping) {
    for i in 0..2 {
        let w = map.state_word(i).load(Ordering::Acquire);
        if Transition::TakeOver.allowed_from(BufferState::from_word(w)) {
            map.transition(i, w, Transition::TakeOver);
        }
    }
}

/// Give a client-owned buffer back to the server (CLIENT or CLIENT_LOCKED -> SERVER).
fn release(map: &Mapping, index: usize, from: u32) {
    let t = if from == CLIENT { Transition::Release } else { Transition::Unlock };
    map.transition(index, from, t);
    futex::wake(map.state_word(index));
}

fn monitor(inner: &Inner) {
    let map = inner.map();
    while inner.ep.check().is_ok() {
        let s = map.states();
        let mut assembling = false;
        // After a truncation the states are zero pages, not the peer's: leave
        // them alone and let the next lock report the error.
        if !map.truncated() && (s.contains(&CLIENT) || s.contains(&INIT)) {
            let mut asm = inner.asm();
            if inner.ep.check().is_err() {
                return;
            }
            asm.drain(map, &inner.generation);
            assembling = asm.building.is_some();
        }
        if assembling {
            // A banded frame is in flight and the server waits for each
            // buffer we free: follow every publish at once.
            let _ = inner.ep.wait(Some(futex::POLL_SLICE), || None::<Result<()>>, || Ok(()));
        } else {
            // Whole frames are the application's to lock; what is left for us
            // (a stale frame, a first band, a server restart) can wait a
            // millisecond. Sleeping instead of waking on every publish keeps
            // this thread off the cores the server and the reader are using.
            // Close wakes it at once.
            inner.ep.nap(futex::POLL_SLICE);
        }
    }
}

impl Assembler {
    /// Give back a whole frame waiting in buffer `index`: a newer one exists.
    fn drop_stale(&mut self, map: &Mapping, index: usize) {
        release(map, index, CLIENT);
        self.stats.frames_stale += 1;
    }

    /// Of two whole frames waiting in place, give the older back; returns
    /// the buffer that was freed.
    fn drop_older(&mut self, map: &Mapping, frames: [Band; 2]) -> usize {
        let older = state::older_frame([frames[0].frame_number, frames[1].frame_number]);
        self.drop_stale(map, older);
        older
    }

    fn recycle(&mut self, data: Vec<u8>) {
        if self.spare.len() < 2 {
            self.spare.push(data);
        }
    }

    /// Buffer `index`'s band if it is a valid whole frame; a corrupt header is
    /// counted and its buffer given back.
    fn whole_frame(&mut self, map: &Mapping, index: usize) -> Option<Band> {
        let b = self.band(map, index)?;
        b.is_whole_frame().then_some(b)
    }

    fn band(&mut self, map: &Mapping, index: usize) -> Option<Band> {
        match map.read_header(index).validate(map.layout().capacity(), self.max_frame_bytes) {
            Ok(b) => Some(b),
            Err(why) => {
                tracing::debug!(index, ?why, "corrupt header; buffer given back");
                self.stats.corrupt_headers += 1;
                release(map, index, CLIENT);
                None
            }
        }
    }

    /// Consume what the server has published without waiting for the
    /// application: copy bands of banded frames in order, give back corrupt,
    /// orphaned and stale buffers, and reconnect after a server restart.
    fn drain(&mut self, map: &Mapping, generation: &[AtomicU64; 2]) {
        // Each pass frees at least one buffer or stops, and the server cannot
        // refill faster than we free; the bound only guards against a peer
        // that flips states as fast as we read them.
        for _ in 0..8 {
            let s = map.states();
            if s.contains(&INIT) {
                // A (re)started server reset the file: connect again. One INIT
                // is enough: a client that connected between the server's two
                // INIT stores took over the first buffer, and the second then
                // became INIT; waiting for both would wait forever.
                let mut connected = false;
                for i in (0..2).filter(|&i| s[i] == INIT) {
                    connected |= map.transition(i, INIT, Transition::Connect);
                    futex::wake(map.state_word(i));
                }
                if connected {
                    self.stats.reconnects += 1;
                    self.drop_partial();
                    // Frames held from before the reset are over: their
                    // buffers belong to the new server now.
                    for (i, g) in generation.iter().enumerate() {
                        if std::mem::take(&mut self.held[i]) {
                            g.fetch_add(1, Ordering::AcqRel);
                        }
                    }
                }
                continue;
            }
            let mut bands = [None, None];
            for i in 0..2 {
                if s[i] == CLIENT && !self.held[i] {
                    bands[i] = self.band(map, i);
                }
            }
            if self.two_bands_in_place && self.building.is_none() && self.held == [false, false] {
                // A two-band frame stays where the server wrote it: complete,
                // or its second band on the way into the other buffer.
                let awaited =
                    (0..2).any(|i| bands[i].is_some_and(|b| pair::starts_two_band_frame(&b)) && s[1 - i] != CLIENT);
                if awaited || pair::pair_in_place(&bands).is_some() {
                    return;
                }
            }
            if let Some(i) = self.next_band(&bands) {
                if let Some(b) = bands[i] {
                    self.consume(map, i, b);
                }
                continue;
            }
            // Partial bands that neither continue nor start a frame: a start
            // we never saw (joined mid-frame), or bands out of order.
            let mut changed = false;
            for (i, band) in bands.iter().enumerate() {
                if band.is_some_and(|b| !b.is_whole_frame()) {
                    self.stats.frames_partial += 1;
                    self.drop_partial();
                    release(map, i, CLIENT);
                    changed = true;
                }
            }
            if let [Some(a), Some(b)] = bands {
                if a.is_whole_frame() && b.is_whole_frame() {
                    self.drop_older(map, [a, b]);
                    changed = true;
                }
            }
            if !changed {
                return;
            }
        }
    }

    /// The buffer whose band comes next: one continuing the frame being
    /// assembled, else the oldest one starting a banded frame.
    fn next_band(&self, bands: &[Option<Band>; 2]) -> Option<usize> {
        if let Some(a) = &self.building {
            let continues = |b: &Band| {
                b.frame_number == a.number && b.width == a.width && b.height == a.height && b.first_row == a.next_row
            };
            if let Some(i) = (0..2).find(|&i| bands[i].as_ref().is_some_and(continues)) {
                return Some(i);
            }
        }
        let starts = |i: &usize| bands[*i].is_some_and(|b| b.first_row == 0 && !b.is_whole_frame());
        let mut starting = (0..2).filter(starts);
        let first = starting.next()?;
        match starting.next() {
            Some(second)
                if bands[first].zip(bands[second]).is_some_and(|(a, b)| is_newer(a.frame_number, b.frame_number)) =>
            {
                Some(second)
            }
            _ => Some(first),
        }
    }

    fn drop_partial(&mut self) {
        if let Some(a) = self.building.take() {
            self.recycle(a.data);
        }
    }

    /// Copy band `b` from buffer `index` into the assembly and free the buffer.
    fn consume(&mut self, map: &Mapping, index: usize, b: Band) {
        if b.first_row == 0 {
            if self.building.is_some() {
                self.stats.frames_partial += 1;
                self.drop_partial();
            }
            let len = b.frame_len() as usize; // <= max_frame_bytes, validated
            let mut data = self.spare.pop().unwrap_or_default();
            if data.len() != len {
                data.clear();
                if data.try_reserve_exact(len).is_err() {
                    tracing::warn!(len, "cannot allocate memory to assemble a banded frame; dropped");
                    self.alloc_failed = Some(len as u64);
                    self.stats.frames_partial += 1;
                    release(map, index, CLIENT);
                    return;
                }
                data.resize(len, 0);
            }
            self.building =
                Some(Assembly { number: b.frame_number, width: b.width, height: b.height, next_row: 0, data });
        }
        let Some(a) = self.building.as_mut() else {
            release(map, index, CLIENT);
            return;
        };
        let start = b.frame_offset() as usize;
        let end = start + b.payload_len() as usize;
        map.copy_out(index, &mut a.data[start..end]);
        release(map, index, CLIENT);
        a.next_row += b.rows;
        self.stats.bands_assembled += 1;
        if b.is_last() {
            if let Some(a) = self.building.take() {
                let info = FrameInfo { number: a.number, width: a.width, height: a.height, in_place: false };
                if let Some(old) = self.complete.replace(Assembled { info, data: a.data }) {
                    self.stats.frames_stale += 1;
                    self.recycle(old.data);
                }
            }
        }
    }
}
