//! One stream of either role, opened from EnSight's option bits: the shared
//! core of the C and Python faces, so neither holds protocol logic.
//! `Send + Sync` like its two variants.

use std::path::Path;
use std::time::Duration;

use crate::client::{Client, ClientOptions, Frame};
use crate::error::{Code, Error, Result};
use crate::server::{Server, ServerOptions};

/// EnSight's option bits (`IMAGESTREAM_OPTIONS_*`).
pub mod options {
    /// A client stream with the background monitor thread.
    pub const NONE: u32 = 0x0;
    /// Reset the buffer headers: this makes a server stream.
    pub const INITBUFFERHEADERS: u32 = 0x1;
    /// No background thread.
    pub const NOTHREADS: u32 = 0x2;
    /// A server stream (INITBUFFERHEADERS | NOTHREADS).
    pub const SERVER: u32 = INITBUFFERHEADERS | NOTHREADS;
    /// Server: store rows bottom-up relative to the input.
    pub const FLIPVERTICAL: u32 = 0x100;
    /// Every bit this version knows.
    pub const KNOWN: u32 = INITBUFFERHEADERS | NOTHREADS | FLIPVERTICAL;
}

/// A server or a client stream, as EnSight's `create` makes them.
#[derive(Debug)]
pub enum Stream {
    /// Made with INITBUFFERHEADERS.
    Server(Server),
    /// Made without it.
    Client(Client),
}

impl Stream {
    /// Open `path` with EnSight's option bits. Returns the stream and its
    /// success code: NOERROR, or RECONNECTING for a client that found a stream
    /// already in the file. Unknown bits are BAD_ARGS. FLIPVERTICAL on a client
    /// is accepted and has no effect (flipping is the server's job).
    pub fn create(path: impl AsRef<Path>, opts: u32) -> Result<(Stream, Code)> {
        if opts & !options::KNOWN != 0 {
            return Err(Error::BadArgs(format!(
                "unknown option bits {:#x} (known: INITBUFFERHEADERS 0x1, NOTHREADS 0x2, FLIPVERTICAL 0x100)",
                opts & !options::KNOWN
            )));
        }
        if opts & options::INITBUFFERHEADERS != 0 {
            let o = ServerOptions { flip_vertical: opts & options::FLIPVERTICAL != 0, ..Default::default() };
            Ok((Stream::Server(Server::create(path, o)?), Code::NoError))
        } else {
            let o = ClientOptions { monitor_thread: opts & options::NOTHREADS == 0, ..Default::default() };
            let c = Client::connect(path, o)?;
            let code = if c.reconnected() { Code::Reconnecting } else { Code::NoError };
            Ok((Stream::Client(c), code))
        }
    }

    /// `putframe`: IS_NOTSERVER on a client.
    pub fn put_frame(&self, frame_number: u32, width: u32, height: u32, pixels: &[u8]) -> Result<()> {
        self.server()?.put_frame(frame_number, width, height, pixels)
    }

    /// `lock`: IS_SERVER on a server. The one-frame-per-stream rule of the
    /// drop-in APIs is the face's: it keeps the returned frame.
    pub fn lock(&self) -> Result<Frame> {
        self.client()?.lock()
    }

    /// Wait for a frame and lock it (beyond EnSight); see [`Client::wait_frame`].
    pub fn wait_frame(&self, timeout: Option<Duration>) -> Result<Frame> {
        self.client()?.wait_frame(timeout)
    }

    /// `Err(Forked)` in a fork child, `Err(Closed)` after close.
    pub fn check_usable(&self) -> Result<()> {
        match self {
            Stream::Server(s) => s.check_usable(),
            Stream::Client(c) => c.check_usable(),
        }
    }

    /// Close either role (see [`Server::close`], [`Client::close`]).
    pub fn close(&self) {
        match self {
            Stream::Server(s) => s.close(),
            Stream::Client(c) => c.close(),
        }
    }

    /// The server side, or IS_NOTSERVER.
    pub fn server(&self) -> Result<&Server> {
        match self {
            Stream::Server(s) => Ok(s),
            Stream::Client(_) => Err(Error::IsNotServer),
        }
    }

    /// The client side, or IS_SERVER.
    pub fn client(&self) -> Result<&Client> {
        match self {
            Stream::Client(c) => Ok(c),
            Stream::Server(_) => Err(Error::IsServer),
        }
    }
}
