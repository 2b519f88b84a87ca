//! The producer: `put_frame` (banded when a frame exceeds one buffer), the
//! zero-copy [`Loan`], waits for a client or a free buffer, and taking
//! buffers back from a client that died.
//!
//! A [`Server`] is a handle over an `Arc`-shared inner object: `Send + Sync`,
//! every method takes `&self`, and one mutex per stream serializes what the
//! protocol needs serialized (a whole frame's bands, a loan's commit). A
//! [`Loan`] holds the same `Arc`, its buffer index and a generation, checked
//! on every use; it cannot reach any other server's buffers.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::endpoint::{Canceller, Endpoint};
use crate::error::{Error, Result};
use crate::futex;
use crate::layout::{frame_bytes, Band, Header};
use crate::liveness::{self, Liveness, PeerWatch};
use crate::mapping::Mapping;
use crate::state::{self, BufferState, Role, Transition};

const INIT: u32 = BufferState::Init as u32;
const SERVER: u32 = BufferState::Server as u32;
const SERVER_LOCKED: u32 = BufferState::ServerLocked as u32;

/// How a server stream behaves.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Store rows bottom-up relative to the input (FLIPVERTICAL).
    pub flip_vertical: bool,
    /// How long a frame sent in several bands waits for the client to free a
    /// buffer for each later band before the frame is abandoned.
    pub band_timeout: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions { flip_vertical: false, band_timeout: Duration::from_secs(1) }
    }
}

/// What a server has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Frames fully published.
    pub frames_sent: u64,
    /// Frames dropped because the client held both buffers (NO_BUFFERAVAILABLE).
    pub frames_dropped: u64,
    /// Frames not sent because no client was connected (UNCONNECTED).
    pub frames_unconnected: u64,
    /// Banded frames abandoned part-way (client gone or too slow).
    pub frames_abandoned: u64,
    /// Bands published (equal to frames_sent when every frame fits one buffer).
    pub bands_sent: u64,
    /// Times the buffers of a dead client were taken back.
    pub clients_reclaimed: u64,
}

/// What the stream mutex guards.
#[derive(Debug, Default)]
struct State {
    /// Write sequence of each buffer, to take the least recently written.
    last_written: [u64; 2],
    writes: u64,
    stats: ServerStats,
    /// Generation of each buffer's loan; a loan whose number differs is over.
    loan_gen: [u64; 2],
    /// Which buffers a live loan holds.
    loaned: [bool; 2],
}

#[derive(Debug)]
struct Inner {
    ep: Endpoint,
    options: ServerOptions,
    client: PeerWatch,
    state: Mutex<State>,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state holds counters and flags only; a panic elsewhere while
        // holding it cannot leave it unsound.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn map(&self) -> &Mapping {
        &self.ep.map
    }
}

/// The producing end of a stream. Dropping it closes it.
#[derive(Debug)]
pub struct Server {
    inner: Arc<Inner>,
}

impl Server {
    /// Open an existing stream file as its server and reset both buffer
    /// headers to INIT (the spec's `create` with the server options).
    /// `Err(PeerBusy)` when another live server has the file; the role of a
    /// server that died is taken over.
    pub fn create(path: impl AsRef<Path>, options: ServerOptions) -> Result<Server> {
        let path = path.as_ref();
        let map = Mapping::open(path)?;
        liveness::claim(map.file(), Role::Server).map_err(|pid| Error::PeerBusy {
            role: Role::Server,
            path: path.to_owned(),
            pid,
        })?;
        map.check_intact()?;
        // A file made elsewhere may be sparse: reserve its pages now, so a
        // full file system is NO_SPACE here and not a fault at some frame.
        // (Already-reserved pages cost nothing.)
        if let Err(e @ Error::NoSpace { .. }) = crate::file::reserve(map.file(), path, map.layout().file_len()) {
            liveness::release(map.file(), Role::Server);
            return Err(e);
        }
        for i in 0..2 {
            map.write_header(i, &Header::default());
            map.store_state(i, BufferState::Init);
            futex::wake(map.state_word(i));
        }
        let inner = Inner {
            ep: Endpoint::new(map),
            options,
            client: PeerWatch::new(Role::Client),
            state: Mutex::new(State::default()),
        };
        Ok(Server { inner: Arc::new(inner) })
    }

    /// Payload bytes of one buffer (n).
    pub fn capacity(&self) -> u64 {
        self.inner.map().layout().capacity()
    }

    /// The stream file's path.
    pub fn path(&self) -> &Path {
        self.inner.map().path()
    }

    /// Counters since create.
    pub fn stats(&self) -> ServerStats {
        self.inner.lock().stats
    }

    /// Whether the client process is alive, gone, or unknown.
    pub fn client_liveness(&self) -> Liveness {
        self.inner.client.check(self.inner.map().file())
    }

    /// True while no client is connected (a buffer is INIT).
    pub fn is_unconnected(&self) -> bool {
        self.inner.map().states().contains(&INIT)
    }

    /// `Err(Forked)` in a fork child, `Err(Closed)` after close; else Ok.
    /// Every call makes this check first; faces use it to answer before
    /// consulting state of their own.
    pub fn check_usable(&self) -> Result<()> {
        self.inner.ep.check()
    }

    /// True once [`Server::close`] ran.
    pub fn is_closed(&self) -> bool {
        self.inner.ep.is_closed()
    }

    /// End every wait in progress on this server with `Err(Cancelled)`.
    pub fn cancel(&self) {
        self.inner.ep.canceller().cancel();
    }

    /// A handle that cancels this server's waits from anywhere (see [`Canceller`]).
    pub fn canceller(&self) -> Canceller {
        self.inner.ep.canceller()
    }

    /// Close the stream, from any thread: every wait in progress returns
    /// `Err(Closed)` at once, a live loan's buffer is given back, the
    /// liveness lock is released, and every later call (also on loans)
    /// answers `Err(Closed)`. Idempotent. Memory a loan handed out stays
    /// addressable but private (see `docs/architecture.md`).
    pub fn close(&self) {
        let inner = &self.inner;
        if !inner.ep.mark_closed() {
            return;
        }
        if inner.ep.in_fork_child() {
            // The parent's stream: touch nothing shared, only let go of it.
            inner.map().let_go_in_child();
            return;
        }
        // Waits were woken by mark_closed; an operation in progress (a band
        // wait included) sees the flag and returns, releasing the mutex.
        let mut st = inner.lock();
        for i in 0..2 {
            if std::mem::take(&mut st.loaned[i]) {
                inner.map().transition(i, SERVER_LOCKED, Transition::Abandon);
                futex::wake(inner.map().state_word(i));
            }
            st.loan_gen[i] += 1;
        }
        liveness::release(inner.map().file(), Role::Server);
        inner.map().detach();
    }

    /// Publish one RGB frame (`width * height * 3` bytes of `pixels`, rows
    /// top-down). A frame larger than a buffer travels in bands; once its first
    /// band is out, later bands wait up to `band_timeout` each for a free buffer.
    ///
    /// `Err(Unconnected)` and `Err(NoBufferAvailable)` mean the frame was not
    /// sent (nothing was written); they are the spec's non-negative outcomes.
    pub fn put_frame(&self, frame_number: u32, width: u32, height: u32, pixels: &[u8]) -> Result<()> {
        let inner = &*self.inner;
        inner.ep.check()?;
        let frame_len = frame_bytes(width, height)
            .ok_or_else(|| Error::BadArgs(format!("frame size {width}x{height}: width and height must be > 0")))?;
        if (pixels.len() as u64) < frame_len {
            return Err(Error::BadArgs(format!(
                "pixel buffer holds {} bytes; a {width}x{height} RGB frame needs {frame_len}",
                pixels.len()
            )));
        }
        let mut st = inner.lock();
        inner.ep.check()?;
        inner.map().check_intact()?;
        let rows_per_band = inner.map().layout().rows_per_band(width).ok_or(Error::FrameTooLarge {
            needed: u64::from(width) * crate::layout::BYTES_PER_PIXEL,
            capacity: self.capacity(),
            what: "one row",
        })?;
        let mut index = inner.take_free_counted(&mut st)?;
        let mut first_row = 0u32;
        loop {
            let rows = rows_per_band.min(u64::from(height - first_row)) as u32;
            let band = Band { frame_number, width, height, first_row, rows };
            inner.write_band(index, &band, pixels);
            inner.publish(&mut st, index, &band)?;
            first_row += rows;
            if first_row == height {
                st.stats.frames_sent += 1;
                return Ok(());
            }
            // Committed: the client holds part of this frame, so wait for it.
            // The mutex stays held: another thread's frame must not
            // interleave its bands with this one's.
            let next = inner
                .wait_for_buffer_locked(&mut st, Some(inner.options.band_timeout))
                .and_then(|()| inner.take_free(&mut st));
            match next {
                Ok(i) => index = i,
                Err(e) => {
                    st.stats.frames_abandoned += 1;
                    return Err(e);
                }
            }
        }
    }

    /// Borrow a free buffer to render a whole `width` x `height` frame into,
    /// with no copy; [`Loan::commit`] publishes it. The frame must fit in one
    /// buffer. Dropping the loan without committing gives the buffer back.
    /// At most one loan per buffer; the loan keeps no borrow of the server.
    pub fn loan(&self, width: u32, height: u32) -> Result<Loan> {
        let inner = &*self.inner;
        inner.ep.check()?;
        let len = frame_bytes(width, height)
            .ok_or_else(|| Error::BadArgs(format!("loan size {width}x{height}: width and height must be > 0")))?;
        if len > self.capacity() {
            return Err(Error::FrameTooLarge {
                needed: len,
                capacity: self.capacity(),
                what: "a loan (the whole frame in one buffer)",
            });
        }
        let mut st = inner.lock();
        inner.ep.check()?;
        inner.map().check_intact()?;
        let index = inner.take_free_counted(&mut st)?;
        st.loaned[index] = true;
        let generation = st.loan_gen[index];
        Ok(Loan { inner: Arc::clone(&self.inner), index, generation, width, height, len: len as usize, done: false })
    }

    /// Wait until a client is connected (no buffer is INIT).
    /// `Err(Unconnected)` on timeout (`None`: no timeout).
    pub fn wait_for_client(&self, timeout: Option<Duration>) -> Result<()> {
        let inner = &*self.inner;
        inner.ep.wait(
            timeout,
            || match inner.map().check_intact() {
                Err(e) => Some(Err(e)),
                Ok(()) => (!inner.map().states().contains(&INIT)).then_some(Ok(())),
            },
            || Err(Error::Unconnected),
        )
    }

    /// Wait until a buffer is free. `Err(NoBufferAvailable)` on timeout,
    /// `Err(Unconnected)` when the client disconnects or dies meanwhile.
    pub fn wait_for_buffer(&self, timeout: Option<Duration>) -> Result<()> {
        let inner = &*self.inner;
        inner.ep.check()?;
        inner.ep.wait(
            timeout,
            || {
                let mut st = inner.lock();
                inner.buffer_settled(&mut st)
            },
            || Err(Error::NoBufferAvailable),
        )
    }

    /// Wait until the client has taken every frame published so far (no
    /// buffer holds one it has not locked or copied): for a producer that
    /// must not let its client skip frames, e.g. a recorder feeding a file.
    /// `Ok(true)` when taken, `Ok(false)` on timeout, `Err(Unconnected)` when
    /// the client disconnects or dies. A banded frame counts as taken once
    /// its bands are copied into the client's memory.
    pub fn wait_until_taken(&self, timeout: Option<Duration>) -> Result<bool> {
        let inner = &*self.inner;
        inner.ep.wait(
            timeout,
            || {
                if let Err(e) = inner.map().check_intact() {
                    return Some(Err(e));
                }
                let s = inner.map().states();
                if s.contains(&INIT) {
                    return Some(Err(Error::Unconnected));
                }
                if !s.contains(&(BufferState::Client as u32)) {
                    return Some(Ok(true));
                }
                let mut st = inner.lock();
                inner.reclaim_if_client_gone(&mut st).err().map(Err)
            },
            || Ok(false),
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.close();
    }
}

impl Inner {
    fn wait_for_buffer_locked(&self, st: &mut State, timeout: Option<Duration>) -> Result<()> {
        self.ep.wait(timeout, || self.buffer_settled(st), || Err(Error::NoBufferAvailable))
    }

    fn buffer_settled(&self, st: &mut State) -> Option<Result<()>> {
        if let Err(e) = self.map().check_intact() {
            return Some(Err(e));
        }
        let s = self.map().states();
        if s.contains(&INIT) {
            return Some(Err(Error::Unconnected));
        }
        if state::pick_free(s, st.last_written).is_some() {
            return Some(Ok(()));
        }
        self.reclaim_if_client_gone(st).err().map(Err)
    }

    fn take_free_counted(&self, st: &mut State) -> Result<usize> {
        let r = self.take_free(st);
        match &r {
            Err(Error::Unconnected) => st.stats.frames_unconnected += 1,
            Err(Error::NoBufferAvailable) => st.stats.frames_dropped += 1,
            _ => {}
        }
        r
    }

    /// Mark a free buffer SERVER_LOCKED and return it.
    fn take_free(&self, st: &mut State) -> Result<usize> {
        self.ep.check()?;
        if !self.client.seen_alive() {
            // Cheap until the client is first seen; afterwards only when stuck.
            self.client.check(self.map().file());
        }
        // A compare-and-swap can lose only to a peer changing the same word;
        // a few tries settle that, a hostile peer flipping states forever gets
        // NO_BUFFERAVAILABLE rather than a spinning server.
        for _ in 0..4 {
            let s = self.map().states();
            if s.contains(&INIT) {
                return Err(Error::Unconnected);
            }
            match state::pick_free(s, st.last_written) {
                Some(i) => {
                    if self.map().transition(i, SERVER, Transition::Take) {
                        return Ok(i);
                    }
                }
                None => {
                    self.reclaim_if_client_gone(st)?;
                    return Err(Error::NoBufferAvailable);
                }
            }
        }
        Err(Error::NoBufferAvailable)
    }

    /// If the client died, take its buffers back (to INIT) and say UNCONNECTED.
    fn reclaim_if_client_gone(&self, st: &mut State) -> Result<()> {
        if self.client.check(self.map().file()) != Liveness::Gone {
            return Ok(());
        }
        for i in 0..2 {
            let w = self.map().state_word(i).load(Ordering::Acquire);
            if Transition::Reclaim.allowed_from(BufferState::from_word(w)) {
                self.map().transition(i, w, Transition::Reclaim);
            }
            futex::wake(self.map().state_word(i));
        }
        self.client.reset();
        st.stats.clients_reclaimed += 1;
        tracing::info!(path = %self.map().path().display(), "client died; its buffers were taken back");
        Err(Error::Unconnected)
    }

    fn write_band(&self, index: usize, band: &Band, pixels: &[u8]) {
        let row = band.width as usize * 3;
        if !self.options.flip_vertical {
            let start = band.frame_offset() as usize;
            let end = start + band.payload_len() as usize;
            self.map().copy_in(index, 0, &pixels[start..end]);
        } else {
            let h = band.height as usize;
            for r in 0..band.rows as usize {
                let src_row = h - 1 - (band.first_row as usize + r);
                let src = &pixels[src_row * row..][..row];
                self.map().copy_in(index, (r * row) as u64, src);
            }
        }
    }

    fn publish(&self, st: &mut State, index: usize, band: &Band) -> Result<()> {
        // The pixels went to zero pages if the file shrank under the copy;
        // publishing them would hand the client a frame that is not there.
        // The buffer stays SERVER_LOCKED: the stream is over either way.
        self.map().check_intact()?;
        self.map().write_header(
            index,
            &Header {
                frame_number: band.frame_number,
                width: band.width,
                height: band.height,
                offset: band.first_row,
                num_scanlines: band.rows,
            },
        );
        st.writes += 1;
        st.last_written[index] = st.writes;
        let ok = self.map().transition(index, SERVER_LOCKED, Transition::Publish);
        futex::wake(self.map().state_word(index));
        if !ok {
            return Err(Error::StreamReset { path: self.map().path().to_owned() });
        }
        st.stats.bands_sent += 1;
        Ok(())
    }
}

/// A free buffer lent to the server to render one whole frame into. Holds
/// its server's inner object (not a borrow), so a binding can keep both side
/// by side; every use checks the server is open and the loan still current.
#[derive(Debug)]
#[must_use = "a loan holds a buffer until it is committed or dropped"]
pub struct Loan {
    inner: Arc<Inner>,
    index: usize,
    generation: u64,
    width: u32,
    height: u32,
    len: usize,
    /// Committed or abandoned.
    done: bool,
}

impl Loan {
    /// Pixels per row.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Rows.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Bytes of the frame (`width * height * 3`).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Never true (a loan has at least one pixel).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True while the loan can be written and committed.
    pub fn is_valid(&self) -> bool {
        self.check().is_ok()
    }

    fn check(&self) -> Result<()> {
        self.inner.ep.check()?;
        if self.done || self.inner.lock().loan_gen[self.index] != self.generation {
            return Err(Error::Closed);
        }
        Ok(())
    }

    /// The frame's pixels (`width * height * 3` bytes, rows top-down), in
    /// shared memory. FLIPVERTICAL does not apply: you choose the row order.
    /// `Err(Closed)` once the server or the loan is over.
    ///
    /// The buffer is SERVER_LOCKED, which the protocol reserves to the server;
    /// a conforming client never touches it. A hostile process with the file
    /// open could still write it; that garbles only this frame's bytes. If
    /// the server is closed while the slice is in use, the slice turns into
    /// private memory of this process (see `docs/architecture.md`).
    pub fn pixels_mut(&mut self) -> Result<&mut [u8]> {
        self.check()?;
        let p = self.inner.map().payload_ptr(self.index, self.len as u64).ok_or(Error::Closed)?;
        // SAFETY: payload_ptr checked that len bytes fit in the buffer, which
        // lies in the mapping `self.inner` keeps alive (close swaps it for
        // private pages at the same addresses, never unmaps it while an Arc
        // lives). The buffer is SERVER_LOCKED by this loan and no other loan
        // exists for it (loaned flag, generation), and the slice borrows the
        // loan mutably: one alias in this process. See docs/architecture.md
        // for why a peer's writes do not make this unsound.
        Ok(unsafe { std::slice::from_raw_parts_mut(p, self.len) })
    }

    /// Copy `src` into the frame at byte `offset`.
    pub fn write(&mut self, offset: usize, src: &[u8]) -> Result<()> {
        let len = self.len;
        let end = offset.checked_add(src.len()).filter(|&e| e <= len).ok_or_else(|| {
            Error::BadArgs(format!("{} bytes at offset {offset} do not fit in a {len}-byte loan", src.len()))
        })?;
        self.pixels_mut()?[offset..end].copy_from_slice(src);
        Ok(())
    }

    /// Publish the frame with this number.
    pub fn commit(mut self, frame_number: u32) -> Result<()> {
        self.check()?;
        let inner = Arc::clone(&self.inner);
        let mut st = inner.lock();
        if st.loan_gen[self.index] != self.generation {
            return Err(Error::Closed);
        }
        self.done = true;
        st.loaned[self.index] = false;
        st.loan_gen[self.index] += 1;
        let band = Band { frame_number, width: self.width, height: self.height, first_row: 0, rows: self.height };
        inner.publish(&mut st, self.index, &band)?;
        st.stats.frames_sent += 1;
        Ok(())
    }

    /// Give the buffer back unpublished (what dropping the loan does).
    pub fn abandon(mut self) {
        self.give_back();
    }

    fn give_back(&mut self) {
        if std::mem::replace(&mut self.done, true) || self.inner.ep.check().is_err() {
            return;
        }
        let mut st = self.inner.lock();
        if st.loan_gen[self.index] != self.generation {
            return;
        }
        st.loaned[self.index] = false;
        st.loan_gen[self.index] += 1;
        self.inner.map().transition(self.index, SERVER_LOCKED, Transition::Abandon);
        futex::wake(self.inner.map().state_word(self.index));
    }
}

impl Drop for Loan {
    fn drop(&mut self) {
        self.give_back();
    }
}
