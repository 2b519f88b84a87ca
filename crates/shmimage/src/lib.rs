//! shmimage: images between processes through shared memory, as fast as the
//! memory bus allows. Two formats side by side, each detected from its file:
//!
//! - the **native stream** ([`native`], `docs/native-protocol.md`): one writer,
//!   up to 64 readers each at its own pace (lossless on request), any pixel
//!   format with stride and planes, timestamps and metadata, zero copy on
//!   both sides;
//! - **EnSight's protocol 1.0** ([`Server`], [`Client`], `docs/protocol.md`),
//!   byte for byte: one client, RGB8, two buffers, frames larger than a
//!   buffer sent in bands.
//!
//! [`Reader`] and [`Writer`] open either format.
//!
//! ```no_run
//! use shmimage::native::{FrameDesc, PixelFormat, Reader, ReaderOptions, Writer, WriterOptions};
//! use std::time::Duration;
//!
//! let path = "/dev/shm/camera.shm";
//! let writer = Writer::create(path, &WriterOptions::for_frame(PixelFormat::Bgrx8, 1920, 1080)?)?;
//! let reader = Reader::open(path, &ReaderOptions::default())?; // any number, any process
//!
//! let desc = FrameDesc::new(PixelFormat::Bgrx8, 1920, 1080)?;
//! let mut loan = writer.loan(&desc, Some(Duration::from_secs(1)))?; // a slot, in place
//! loan.pixels_mut().fill(0x80);
//! loan.set_metadata(br#"{"exposure_us": 250}"#)?;
//! loan.commit()?;
//!
//! let frame = reader.read(Some(Duration::from_secs(1)))?; // futex wait; the slot, in place
//! assert_eq!((frame.width(), frame.stride()), (1920, 1920 * 4));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Protocol 1.0, where EnSight compatibility is the point:
//!
//! ```no_run
//! use shmimage::{Client, ClientOptions, Server, ServerOptions, StreamFile};
//! use std::time::Duration;
//!
//! let file = StreamFile::for_frame(1920, 1080)?;
//! let server = Server::create(file.path(), ServerOptions::default())?;
//! let client = Client::connect(file.path(), ClientOptions::default())?;
//! server.put_frame(1, 1920, 1080, &vec![0u8; 1920 * 1080 * 3])?;
//! let frame = client.wait_frame(Some(Duration::from_secs(1)))?;
//! assert_eq!((frame.number(), frame.pixels()?.len()), (1, 1920 * 1080 * 3));
//! # Ok::<(), shmimage::Error>(())
//! ```
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

mod client;
mod endpoint;
mod error;
mod file;
mod fork;
mod futex;
mod inspect;
pub mod layout;
mod liveness;
mod mapping;
pub mod native;
mod server;
pub mod state;
mod stream;
mod unified;

pub use client::{Client, ClientOptions, ClientStats, Frame, FrameInfo};
pub use endpoint::Canceller;
pub use error::{errorstring, Code, Error, Result};
pub use file::StreamFile;
pub use futex::POLL_SLICE;
pub use inspect::{inspect, BufferView, Diagnosis, Inspection, Inspector};
pub use liveness::Liveness;
pub use server::{Loan, Server, ServerOptions, ServerStats};
pub use state::Role;
pub use stream::{options, Stream};
pub use unified::{detect_protocol, ImageFrame, Protocol, Reader, Writer};

/// The protocol's API version string (`IMAGESTREAM_API_VERSION`).
pub const API_VERSION: &str = "1.0";
