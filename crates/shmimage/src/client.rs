//! The consumer: connect (or reconnect), lock the newest frame in place,
//! assemble banded frames, unlock, wait, and the background monitor.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::futex;
use crate::layout::{is_newer, Band};
use crate::liveness::{self, Liveness, PeerWatch};
use crate::mapping::Mapping;
use crate::state::{BufferState, Role, Transition};

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
        self.width as usize * self.height as usize * 3
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
}

#[derive(Debug)]
struct Shared {
    map: Mapping,
    asm: Mutex<Assembler>,
    stop: AtomicBool,
}

impl Shared {
    fn asm(&self) -> MutexGuard<'_, Assembler> {
        // A panic while holding the lock cannot leave the assembler unsound:
        // its worst state is a partial frame, which the next band replaces.
        self.asm.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Debug)]
enum Held {
    InPlace { index: usize, info: FrameInfo },
    Assembled(Assembled),
}

/// The consuming end of a stream.
#[derive(Debug)]
pub struct Client {
    shared: Arc<Shared>,
    monitor: Option<JoinHandle<()>>,
    held: Option<Held>,
    server: PeerWatch,
    reconnected: bool,
    closed: bool,
}

impl Client {
    /// Open a stream file as its client and connect: INIT -> SERVER on a fresh
    /// stream; on a file that already carried a stream, take over what a
    /// client owned and report it through [`Client::reconnected`].
    pub fn connect(path: impl AsRef<Path>, options: ClientOptions) -> Result<Client> {
        let map = Mapping::open(path.as_ref())?;
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
        if !liveness::claim(map.file(), Role::Client) {
            tracing::warn!(path = %path.as_ref().display(), "another live client holds this stream file");
        }
        let server = PeerWatch::new(Role::Server);
        server.check(map.file());
        let shared = Arc::new(Shared {
            map,
            asm: Mutex::new(Assembler {
                max_frame_bytes: options.max_frame_bytes,
                building: None,
                complete: None,
                spare: Vec::new(),
                alloc_failed: None,
                stats: ClientStats::default(),
            }),
            stop: AtomicBool::new(false),
        });
        let mut client = Client { shared, monitor: None, held: None, server, reconnected: !fresh, closed: false };
        if options.monitor_thread {
            let s = Arc::clone(&client.shared);
            // On failure `client` drops here and disconnects, so the server
            // sees UNCONNECTED rather than a client that will never read.
            let h = std::thread::Builder::new()
                .name("shmimage-monitor".into())
                .spawn(move || monitor(&s))
                .map_err(|e| Error::ThreadCreate(e.to_string()))?;
            client.monitor = Some(h);
        }
        Ok(client)
    }

    /// True when connect found a stream already in the file (RECONNECTING).
    pub fn reconnected(&self) -> bool {
        self.reconnected
    }

    /// Payload bytes of one buffer (n).
    pub fn capacity(&self) -> u64 {
        self.shared.map.layout().capacity()
    }

    /// The stream file's path.
    pub fn path(&self) -> &Path {
        self.shared.map.path()
    }

    /// Counters since connect.
    pub fn stats(&self) -> ClientStats {
        self.shared.asm().stats
    }

    /// Whether the server process is alive, gone, or unknown.
    pub fn server_liveness(&self) -> Liveness {
        self.server.check(self.shared.map.file())
    }

    /// True when the file's path now names another file or nothing (it was
    /// deleted or replaced): this client still reads the old one.
    pub fn file_replaced(&self) -> bool {
        self.shared.map.is_replaced()
    }

    /// True once this client found its file shorter than when it was mapped
    /// (another process truncated it); the stream cannot continue and every
    /// lock answers `UnableToMapFile`. Checks the file size now (one `fstat`).
    pub fn file_truncated(&self) -> bool {
        self.shared.map.check_intact().is_err()
    }

    /// Lock the newest complete frame; it stays valid until the guard drops.
    /// `Err(NoFrameAvailable)` when there is none; `Err(Locked)` is impossible
    /// through the guard API (it borrows the client).
    pub fn lock(&mut self) -> Result<Frame<'_>> {
        let info = self.lock_unguarded()?;
        Ok(Frame { client: self, info })
    }

    /// Wait up to `timeout` for a frame and lock it. `Err(NoFrameAvailable)`
    /// on timeout, `Err(Unconnected)` when the server process has gone or
    /// (checked every 50 ms while no frame comes) the file's path
    /// now names another file, `Err(UnableToMapFile)` when the file was
    /// truncated.
    pub fn wait_frame(&mut self, timeout: Duration) -> Result<Frame<'_>> {
        let info = self.wait_frame_unguarded(timeout)?;
        Ok(Frame { client: self, info })
    }

    /// Lock without a guard (for bindings): pair with [`Client::unlock`];
    /// [`Client::pixels`] reads the frame meanwhile.
    pub fn lock_unguarded(&mut self) -> Result<FrameInfo> {
        if self.held.is_some() {
            return Err(Error::Locked);
        }
        let shared = Arc::clone(&self.shared);
        let map = &shared.map;
        let mut asm = shared.asm();
        asm.drain(map);
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
            // The server may publish into the other buffer between the drain
            // and this read, so both can hold a whole frame here: take the
            // newer and give the older back, or the next lock would return a
            // frame older than this one.
            let mut whole = [0, 1].map(|i| (s[i] == CLIENT).then(|| asm.whole_frame(map, i)).flatten());
            if let [Some(a), Some(b)] = whole {
                whole[asm.drop_older(map, [a, b])] = None;
            }
            let in_place = (0..2).find_map(|i| whole[i].map(|b| (i, b)));
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
                let info = c.info;
                self.held = Some(Held::Assembled(c));
                asm.stats.frames_locked += 1;
                return Ok(info);
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
                if map.state_word(o).load(Ordering::Acquire) == CLIENT {
                    if let Some(ob) = asm.whole_frame(map, o) {
                        if is_newer(b.frame_number, ob.frame_number) {
                            asm.drop_stale(map, o);
                        }
                    }
                }
                let info = FrameInfo { number: b.frame_number, width: b.width, height: b.height, in_place: true };
                self.held = Some(Held::InPlace { index: i, info });
                asm.stats.frames_locked += 1;
                return Ok(info);
            }
        }
        Err(Error::NoFrameAvailable)
    }

    /// [`Client::wait_frame`] without a guard.
    pub fn wait_frame_unguarded(&mut self, timeout: Duration) -> Result<FrameInfo> {
        let now = Instant::now();
        let deadline = now.checked_add(timeout).unwrap_or(now + Duration::from_secs(86_400 * 365));
        let mut next_replaced_check = now + REPLACED_CHECK;
        loop {
            let seen = self.shared.map.states();
            match self.lock_unguarded() {
                Err(Error::NoFrameAvailable) => {}
                other => return other,
            }
            if self.server_liveness() == Liveness::Gone {
                return Err(Error::Unconnected { reason: "the server process has exited" });
            }
            let now = Instant::now();
            // A stat per check: rare enough to cost nothing, often enough that
            // a client left on a replaced file hears of it while it waits.
            // A deleted path alone is not a reason: a server may unlink the
            // file and stream on.
            if now >= next_replaced_check {
                next_replaced_check = now + REPLACED_CHECK;
                if self.shared.map.names_other_file() {
                    return Err(Error::Unconnected {
                        reason: "the stream file was replaced: its path now names another file; connect again",
                    });
                }
            }
            if now >= deadline {
                return Err(Error::NoFrameAvailable);
            }
            let m = &self.shared.map;
            futex::wait_either([m.state_word(0), m.state_word(1)], seen, deadline - now);
        }
    }

    /// The locked frame's pixels (`width * height * 3` bytes, rows top-down),
    /// or `None` without a lock.
    ///
    /// For a one-band frame this is the shared memory itself, valid until
    /// unlock: the buffer is CLIENT_LOCKED, which a conforming server never
    /// writes. A hostile process with the file open could change the bytes
    /// while you read them; that garbles only this frame. If another process
    /// truncates the file while you read, this process does not die of
    /// SIGBUS: the missing bytes read as zeros, [`Client::file_truncated`]
    /// turns true and the next lock or wait answers `UnableToMapFile`.
    pub fn pixels(&self) -> Option<&[u8]> {
        match self.held.as_ref()? {
            Held::Assembled(a) => Some(&a.data),
            Held::InPlace { index, info } => {
                let len = info.len();
                let p = self.shared.map.payload_ptr(*index, len as u64)?;
                // SAFETY: payload_ptr checked that len bytes lie inside the
                // buffer, which lies inside the mapping that `self.shared`
                // keeps alive; unlock needs `&mut self`, so the slice cannot
                // outlive the lock.
                Some(unsafe { std::slice::from_raw_parts(p, len) })
            }
        }
    }

    /// The locked frame's metadata, if a frame is locked.
    pub fn locked_info(&self) -> Option<FrameInfo> {
        self.held.as_ref().map(|h| match h {
            Held::InPlace { info, .. } => *info,
            Held::Assembled(a) => a.info,
        })
    }

    /// Give the locked frame back. `Err(NotLocked)` without a lock.
    pub fn unlock(&mut self) -> Result<()> {
        match self.held.take() {
            None => Err(Error::NotLocked),
            Some(Held::InPlace { index, .. }) => {
                // If the state is no longer CLIENT_LOCKED the server reset the
                // file meanwhile; the buffer is then not ours to change.
                release(&self.shared.map, index, CLIENT_LOCKED);
                Ok(())
            }
            Some(Held::Assembled(a)) => {
                self.shared.asm().recycle(a.data);
                Ok(())
            }
        }
    }

    /// Unlock if needed, stop the monitor and give the buffers back (to INIT),
    /// so the server answers UNCONNECTED. Dropping the client does the same.
    pub fn close(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if std::mem::replace(&mut self.closed, true) {
            return;
        }
        self.shared.stop.store(true, Ordering::Release);
        if let Some(h) = self.monitor.take() {
            let _ = h.join();
        }
        self.held = None;
        let map = &self.shared.map;
        for i in 0..2 {
            let w = map.state_word(i).load(Ordering::Acquire);
            if Transition::Disconnect.allowed_from(BufferState::from_word(w)) {
                map.transition(i, w, Transition::Disconnect);
            }
            futex::wake(map.state_word(i));
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A locked frame; unlocks when dropped.
#[derive(Debug)]
pub struct Frame<'a> {
    client: &'a mut Client,
    info: FrameInfo,
}

impl Frame<'_> {
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

    /// The pixels (see [`Client::pixels`] for what in place means).
    pub fn pixels(&self) -> &[u8] {
        self.client.pixels().unwrap_or(&[])
    }
}

impl Drop for Frame<'_> {
    fn drop(&mut self) {
        let _ = self.client.unlock();
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

fn monitor(shared: &Shared) {
    let map = &shared.map;
    while !shared.stop.load(Ordering::Acquire) {
        let s = map.states();
        let mut assembling = false;
        // After a truncation the states are zero pages, not the peer's: leave
        // them alone and let the next lock report the error.
        if !map.truncated() && (s.contains(&CLIENT) || s.contains(&INIT)) {
            let mut asm = shared.asm();
            asm.drain(map);
            assembling = asm.building.is_some();
        }
        if assembling {
            // A banded frame is in flight and the server waits for each
            // buffer we free: follow every publish at once.
            futex::wait_either([map.state_word(0), map.state_word(1)], map.states(), futex::POLL_SLICE);
        } else {
            // Whole frames are the application's to lock; what is left for us
            // (a stale frame, a first band, a server restart) can wait a
            // millisecond. Sleeping instead of waking on every publish keeps
            // this thread off the cores the server and the reader are using.
            std::thread::sleep(futex::POLL_SLICE);
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
        let older = usize::from(is_newer(frames[0].frame_number, frames[1].frame_number));
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
    fn drain(&mut self, map: &Mapping) {
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
                }
                continue;
            }
            let mut bands = [None, None];
            for i in 0..2 {
                if s[i] == CLIENT {
                    bands[i] = self.band(map, i);
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
