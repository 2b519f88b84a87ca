//! The producer: `put_frame` (banded when a frame exceeds one buffer), the
//! zero-copy loan, waits for a client or a free buffer, and taking buffers
//! back from a client that died.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::futex;
use crate::layout::{frame_bytes, Band, Header};
use crate::liveness::{self, Liveness, PeerWatch};
use crate::mapping::Mapping;
use crate::state::{BufferState, Role, Transition};

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

/// The producing end of a stream.
#[derive(Debug)]
pub struct Server {
    map: Mapping,
    options: ServerOptions,
    /// Write sequence of each buffer, to take the least recently written.
    last_written: [u64; 2],
    writes: u64,
    client: PeerWatch,
    stats: ServerStats,
}

impl Server {
    /// Open an existing stream file as its server and reset both buffer
    /// headers to INIT (the spec's `create` with the server options).
    pub fn create(path: impl AsRef<Path>, options: ServerOptions) -> Result<Server> {
        let map = Mapping::open(path.as_ref())?;
        for i in 0..2 {
            map.write_header(i, &Header::default());
            map.store_state(i, BufferState::Init);
            futex::wake(map.state_word(i));
        }
        if !liveness::claim(map.file(), Role::Server) {
            tracing::warn!(path = %path.as_ref().display(), "another live server holds this stream file");
        }
        Ok(Server {
            map,
            options,
            last_written: [0; 2],
            writes: 0,
            client: PeerWatch::new(Role::Client),
            stats: ServerStats::default(),
        })
    }

    /// Payload bytes of one buffer (n).
    pub fn capacity(&self) -> u64 {
        self.map.layout().capacity()
    }

    /// The stream file's path.
    pub fn path(&self) -> &Path {
        self.map.path()
    }

    /// Counters since create.
    pub fn stats(&self) -> ServerStats {
        self.stats
    }

    /// Whether the client process is alive, gone, or unknown.
    pub fn client_liveness(&mut self) -> Liveness {
        self.client.check(self.map.file())
    }

    /// True while no client is connected (a buffer is INIT).
    pub fn is_unconnected(&self) -> bool {
        self.map.states().contains(&INIT)
    }

    /// Publish one RGB frame (`width * height * 3` bytes of `pixels`, rows
    /// top-down). A frame larger than a buffer travels in bands; once its first
    /// band is out, later bands wait up to `band_timeout` each for a free buffer.
    ///
    /// `Err(Unconnected)` and `Err(NoBufferAvailable)` mean the frame was not
    /// sent (nothing was written); they are the spec's non-negative outcomes.
    pub fn put_frame(&mut self, frame_number: u32, width: u32, height: u32, pixels: &[u8]) -> Result<()> {
        let frame_len = frame_bytes(width, height)
            .ok_or_else(|| Error::BadArgs(format!("frame size {width}x{height}: width and height must be > 0")))?;
        if (pixels.len() as u64) < frame_len {
            return Err(Error::BadArgs(format!(
                "pixel buffer holds {} bytes; a {width}x{height} RGB frame needs {frame_len}",
                pixels.len()
            )));
        }
        self.map.check_intact()?;
        let rows_per_band = self.map.layout().rows_per_band(width).ok_or(Error::FrameTooLarge {
            needed: u64::from(width) * 3,
            capacity: self.capacity(),
            what: "one row",
        })?;
        let mut index = self.take_free_counted()?;
        let mut first_row = 0u32;
        loop {
            let rows = rows_per_band.min(u64::from(height - first_row)) as u32;
            let band = Band { frame_number, width, height, first_row, rows };
            self.write_band(index, &band, pixels);
            self.publish(index, &band)?;
            first_row += rows;
            if first_row == height {
                self.stats.frames_sent += 1;
                return Ok(());
            }
            // Committed: the client holds part of this frame, so wait for it.
            let next = self.wait_for_buffer(self.options.band_timeout).and_then(|()| self.take_free());
            match next {
                Ok(i) => index = i,
                Err(e) => {
                    self.stats.frames_abandoned += 1;
                    return Err(e);
                }
            }
        }
    }

    /// Borrow a free buffer to render a whole `width` x `height` frame into,
    /// with no copy; [`Loan::commit`] publishes it. The frame must fit in one
    /// buffer. Dropping the loan without committing gives the buffer back.
    pub fn loan(&mut self, width: u32, height: u32) -> Result<Loan<'_>> {
        let detached = self.loan_detached(width, height)?;
        Ok(Loan { server: self, detached: Some(detached) })
    }

    /// [`Server::loan`] for code that must keep the server and the loan side
    /// by side (a binding to another language): the loan does not borrow the
    /// server. Hand it back to this server with [`Server::commit_detached`]
    /// or [`Server::abandon_detached`]; dropped without either, its buffer
    /// stays SERVER_LOCKED (one buffer fewer for the stream) until the server
    /// is created again. [`Loan`] does this bookkeeping for you.
    pub fn loan_detached(&mut self, width: u32, height: u32) -> Result<DetachedLoan> {
        let len = frame_bytes(width, height)
            .ok_or_else(|| Error::BadArgs(format!("loan size {width}x{height}: width and height must be > 0")))?;
        if len > self.capacity() {
            return Err(Error::FrameTooLarge {
                needed: len,
                capacity: self.capacity(),
                what: "a loan (the whole frame in one buffer)",
            });
        }
        self.map.check_intact()?;
        let index = self.take_free_counted()?;
        Ok(DetachedLoan { index, width, height, len: len as usize })
    }

    /// The pixels of a detached loan (see [`Loan::as_mut_slice`]); empty for
    /// a loan this server did not make.
    pub fn detached_pixels(&mut self, loan: &DetachedLoan) -> &mut [u8] {
        match self.map.payload_ptr(loan.index, loan.len as u64) {
            // SAFETY: payload_ptr checked that len bytes fit in the buffer; the
            // buffer is SERVER_LOCKED by the loan, which the protocol reserves
            // to the server, and the slice borrows the server mutably, so this
            // process holds one alias at a time.
            Some(p) => unsafe { std::slice::from_raw_parts_mut(p, loan.len) },
            None => &mut [],
        }
    }

    /// Publish a detached loan's frame with this number.
    pub fn commit_detached(&mut self, loan: DetachedLoan, frame_number: u32) -> Result<()> {
        let band = Band { frame_number, width: loan.width, height: loan.height, first_row: 0, rows: loan.height };
        self.publish(loan.index, &band)?;
        self.stats.frames_sent += 1;
        Ok(())
    }

    /// Give a detached loan's buffer back unpublished.
    pub fn abandon_detached(&mut self, loan: DetachedLoan) {
        self.map.transition(loan.index, SERVER_LOCKED, Transition::Abandon);
        futex::wake(self.map.state_word(loan.index));
    }

    /// Wait until a client is connected (no buffer is INIT).
    /// `Err(Unconnected)` on timeout; `Err(UnableToMapFile)` when the file
    /// was truncated by another process.
    pub fn wait_for_client(&mut self, timeout: Duration) -> Result<()> {
        self.wait_until(
            timeout,
            || Err(Error::Unconnected { reason: "no client connected before the timeout" }),
            |_, s| (!s.contains(&INIT)).then_some(Ok(())),
        )
    }

    /// Wait until a buffer is free. `Err(NoBufferAvailable)` on timeout,
    /// `Err(Unconnected)` when the client disconnects or dies meanwhile.
    pub fn wait_for_buffer(&mut self, timeout: Duration) -> Result<()> {
        self.wait_until(
            timeout,
            || Err(Error::NoBufferAvailable),
            |server, s| {
                if s.contains(&INIT) {
                    return Some(Err(unconnected()));
                }
                if server.free_buffer(s).is_some() {
                    return Some(Ok(()));
                }
                server.reclaim_if_client_gone().err().map(Err)
            },
        )
    }

    /// Wait until the client has taken every frame published so far (no
    /// buffer holds one it has not locked or copied): for a producer that
    /// must not let its client skip frames, e.g. a recorder feeding a file.
    /// `Ok(true)` when taken, `Ok(false)` on timeout, `Err(Unconnected)` when
    /// the client disconnects or dies, `Err(UnableToMapFile)` when the file
    /// was truncated. A banded frame counts as taken once
    /// its bands are copied into the client's memory.
    pub fn wait_until_taken(&mut self, timeout: Duration) -> Result<bool> {
        self.wait_until(
            timeout,
            || Ok(false),
            |server, s| {
                if s.contains(&INIT) {
                    return Some(Err(unconnected()));
                }
                if !s.contains(&(BufferState::Client as u32)) {
                    return Some(Ok(true));
                }
                server.reclaim_if_client_gone().err().map(Err)
            },
        )
    }

    /// The one wait loop: check the file is intact, read both states, let
    /// `settled` decide, else sleep on the state words until they change (at
    /// most a millisecond at a time) or `timeout` passes, which answers
    /// `on_timeout()`.
    fn wait_until<T>(
        &mut self,
        timeout: Duration,
        on_timeout: impl FnOnce() -> Result<T>,
        mut settled: impl FnMut(&mut Self, [u32; 2]) -> Option<Result<T>>,
    ) -> Result<T> {
        let deadline = deadline(timeout);
        loop {
            self.map.check_intact()?;
            let s = self.map.states();
            if let Some(answer) = settled(self, s) {
                return answer;
            }
            let now = Instant::now();
            if now >= deadline {
                return on_timeout();
            }
            self.sleep(s, deadline - now);
        }
    }

    fn sleep(&self, seen: [u32; 2], timeout: Duration) {
        futex::wait_either([self.map.state_word(0), self.map.state_word(1)], seen, timeout);
    }

    /// The least recently written SERVER buffer.
    fn free_buffer(&self, s: [u32; 2]) -> Option<usize> {
        (0..2).filter(|&i| s[i] == SERVER).min_by_key(|&i| self.last_written[i])
    }

    fn take_free_counted(&mut self) -> Result<usize> {
        let r = self.take_free();
        match &r {
            Err(Error::Unconnected { .. }) => self.stats.frames_unconnected += 1,
            Err(Error::NoBufferAvailable) => self.stats.frames_dropped += 1,
            _ => {}
        }
        r
    }

    /// Mark a free buffer SERVER_LOCKED and return it.
    fn take_free(&mut self) -> Result<usize> {
        if !self.client.seen_alive() {
            // Cheap until the client is first seen; afterwards only when stuck.
            self.client.check(self.map.file());
        }
        // A compare-and-swap can lose only to a peer changing the same word;
        // a few tries settle that, a hostile peer flipping states forever gets
        // NO_BUFFERAVAILABLE rather than a spinning server.
        for _ in 0..4 {
            let s = self.map.states();
            if s.contains(&INIT) {
                return Err(unconnected());
            }
            match self.free_buffer(s) {
                Some(i) => {
                    if self.map.transition(i, SERVER, Transition::Take) {
                        return Ok(i);
                    }
                }
                None => {
                    self.reclaim_if_client_gone()?;
                    return Err(Error::NoBufferAvailable);
                }
            }
        }
        Err(Error::NoBufferAvailable)
    }

    /// If the client died, take its buffers back (to INIT) and say UNCONNECTED.
    fn reclaim_if_client_gone(&mut self) -> Result<()> {
        if self.client.check(self.map.file()) != Liveness::Gone {
            return Ok(());
        }
        for i in 0..2 {
            let w = self.map.state_word(i).load(std::sync::atomic::Ordering::Acquire);
            if Transition::Reclaim.allowed_from(BufferState::from_word(w)) {
                self.map.transition(i, w, Transition::Reclaim);
            }
            futex::wake(self.map.state_word(i));
        }
        self.client.reset();
        self.stats.clients_reclaimed += 1;
        tracing::info!(path = %self.path().display(), "client died; its buffers were taken back");
        Err(Error::Unconnected { reason: "the client process died; its buffers were taken back" })
    }

    fn write_band(&self, index: usize, band: &Band, pixels: &[u8]) {
        let row = band.width as usize * 3;
        if !self.options.flip_vertical {
            let start = band.frame_offset() as usize;
            let end = start + band.payload_len() as usize;
            self.map.copy_in(index, 0, &pixels[start..end]);
        } else {
            let h = band.height as usize;
            for r in 0..band.rows as usize {
                let src_row = h - 1 - (band.first_row as usize + r);
                let src = &pixels[src_row * row..][..row];
                self.map.copy_in(index, (r * row) as u64, src);
            }
        }
    }

    fn publish(&mut self, index: usize, band: &Band) -> Result<()> {
        // The pixels went to zero pages if the file shrank under the copy;
        // publishing them would hand the client a frame that is not there.
        // The buffer stays SERVER_LOCKED: the stream is over either way.
        self.map.check_intact()?;
        self.map.write_header(
            index,
            &Header {
                frame_number: band.frame_number,
                width: band.width,
                height: band.height,
                offset: band.first_row,
                num_scanlines: band.rows,
            },
        );
        self.writes += 1;
        self.last_written[index] = self.writes;
        let ok = self.map.transition(index, SERVER_LOCKED, Transition::Publish);
        futex::wake(self.map.state_word(index));
        if !ok {
            return Err(Error::Unconnected { reason: "the stream was reset while a frame was being written" });
        }
        self.stats.bands_sent += 1;
        Ok(())
    }
}

fn unconnected() -> Error {
    Error::Unconnected { reason: "no client is connected" }
}

fn deadline(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout).unwrap_or(now + Duration::from_secs(86_400 * 365))
}

/// A free buffer lent to the server to render one whole frame into.
#[derive(Debug)]
pub struct Loan<'a> {
    server: &'a mut Server,
    /// `None` once committed.
    detached: Option<DetachedLoan>,
}

/// A loan that does not borrow its server; see [`Server::loan_detached`].
#[derive(Debug)]
#[must_use = "a detached loan holds a buffer until it is committed or abandoned"]
pub struct DetachedLoan {
    index: usize,
    width: u32,
    height: u32,
    len: usize,
}

impl DetachedLoan {
    /// Pixels per row.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Rows.
    pub fn height(&self) -> u32 {
        self.height
    }
}

impl Loan<'_> {
    /// The frame's pixels (`width * height * 3` bytes, rows top-down), in
    /// shared memory. FLIPVERTICAL does not apply: you choose the row order.
    ///
    /// The buffer is SERVER_LOCKED, which the protocol reserves to the server;
    /// a conforming client never touches it. A hostile process with the file
    /// open could still write it; that garbles only this frame's bytes.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        match &self.detached {
            Some(d) => self.server.detached_pixels(d),
            None => &mut [],
        }
    }

    /// Pixels per row.
    pub fn width(&self) -> u32 {
        self.detached.as_ref().map_or(0, DetachedLoan::width)
    }

    /// Rows.
    pub fn height(&self) -> u32 {
        self.detached.as_ref().map_or(0, DetachedLoan::height)
    }

    /// Publish the frame with this number.
    pub fn commit(mut self, frame_number: u32) -> Result<()> {
        match self.detached.take() {
            Some(d) => self.server.commit_detached(d, frame_number),
            None => Ok(()),
        }
    }
}

impl Drop for Loan<'_> {
    fn drop(&mut self) {
        if let Some(d) = self.detached.take() {
            self.server.abandon_detached(d);
        }
    }
}
