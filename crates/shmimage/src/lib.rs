//! shmimage: the shared-memory image stream of EnSight (protocol 1.0), both
//! ends, with futex-woken waits, zero-copy loans, banded large frames and peer
//! liveness. See `docs/protocol.md` for the format as built.
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
mod server;
pub mod state;
mod stream;

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

/// The protocol's API version string (`IMAGESTREAM_API_VERSION`).
pub const API_VERSION: &str = "1.0";
