//! A read-only look at a stream file: both headers, decoded, and whether a
//! server and a client have it open. For tools (`shmimage inspect`), scripts
//! and tests.
//!
//! Nothing here maps the file or writes to it: the headers are read with
//! `pread`, so inspecting works on a file nobody has open, on a file full of
//! garbage, and never disturbs a live stream. The bytes are a snapshot that
//! the peers may change a moment later; the two headers are read one after
//! the other, not atomically together.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::layout::{field, Band, Corrupt, Header, Layout, HEADER_SIZE};
use crate::liveness;
use crate::state::{BufferState, Role};

/// One buffer's header as found in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferView {
    /// Byte offset of this header in the file.
    pub header_offset: u64,
    /// The five numeric fields, unvalidated.
    pub header: Header,
    /// The 32-bit state word at header offset 20 (state byte plus pad).
    pub state_word: u32,
    /// The header checked against the buffer capacity: the band it describes,
    /// or why it cannot be one. An unused header (all zero) is `ZeroSize`.
    pub band: std::result::Result<Band, Corrupt>,
}

impl BufferView {
    /// The decoded state; `None` for a word outside 0..=4 (corrupt or hostile).
    pub fn state(&self) -> Option<BufferState> {
        BufferState::from_word(self.state_word)
    }

    /// The state's spec name, or `INVALID(0x...)` for a word that is none.
    pub fn state_name(&self) -> String {
        match self.state() {
            Some(s) => s.name().to_owned(),
            None => format!("INVALID({:#010x})", self.state_word),
        }
    }

    /// What the header describes, in words: a whole frame, a band of one,
    /// an unused header, or why it is not a valid band.
    pub fn describe(&self) -> String {
        let h = self.header;
        match self.band {
            Ok(band) if band.is_whole_frame() => {
                format!("frame {} {}x{}, whole frame ({} bytes)", h.frame_number, h.width, h.height, band.payload_len())
            }
            Ok(band) => format!(
                "frame {} {}x{}, band: rows {}..{} of {}",
                h.frame_number,
                h.width,
                h.height,
                band.first_row,
                u64::from(band.first_row) + u64::from(band.rows),
                h.height
            ),
            Err(_) if h == Header::default() => "empty (all fields 0)".to_owned(),
            Err(c) => format!(
                "not a valid band: frame {} {}x{} offset {} num_scanlines {} ({})",
                h.frame_number,
                h.width,
                h.height,
                h.offset,
                h.num_scanlines,
                c.describe()
            ),
        }
    }
}

/// What the states and liveness locks of a stream file mean together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Diagnosis {
    /// A state word is not a state (0..=4).
    Corrupt,
    /// Both headers all zero and no peer: a new file no server opened yet.
    Blank,
    /// Both headers all zero, but a peer has the file open.
    BlankButOpen,
    /// A server runs and waits for a client (INIT).
    WaitingForClient,
    /// A client is open on an unconnected stream (INIT) with no server.
    ClientWithoutServer,
    /// Unconnected (INIT), nobody running.
    Idle,
    /// Server and client connected.
    Streaming {
        /// Frames waiting for the client (CLIENT buffers).
        queued: u8,
        /// Buffers the client holds locked.
        locked: u8,
    },
    /// A client is connected but no server runs (it exited or has not started).
    ServerGone,
    /// A server runs; the client that connected is gone.
    ClientGone,
    /// Last used by a server and client that are both gone.
    Abandoned,
}

impl std::fmt::Display for Diagnosis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Diagnosis::Corrupt => {
                f.write_str("corrupt: a state word is not a state (0..4); a connecting client resets it")
            }
            Diagnosis::Blank => f.write_str("blank: a new file that no server has opened yet"),
            Diagnosis::BlankButOpen => f.write_str("blank headers, but a peer has the file open"),
            Diagnosis::WaitingForClient => f.write_str("server waiting for a client (INIT)"),
            Diagnosis::ClientWithoutServer => {
                f.write_str("client open, but the stream is unconnected (INIT) and no server runs")
            }
            Diagnosis::Idle => f.write_str("idle: unconnected (INIT), no server or client running"),
            Diagnosis::Streaming { queued, locked } => {
                write!(f, "streaming: server and client connected; {queued} frame(s) waiting")?;
                match locked {
                    0 => Ok(()),
                    1 => f.write_str(", one locked by the client"),
                    n => write!(f, ", {n} locked by the client"),
                }
            }
            Diagnosis::ServerGone => f.write_str("client connected; no server running (it exited or has not started)"),
            Diagnosis::ClientGone => f.write_str("server running; the client that connected is gone"),
            Diagnosis::Abandoned => f.write_str("idle: last used by a server and client that are both gone"),
        }
    }
}

impl Diagnosis {
    /// A short stable name for scripts (`--json`), e.g. `streaming`.
    pub fn name(&self) -> &'static str {
        match self {
            Diagnosis::Corrupt => "corrupt",
            Diagnosis::Blank => "blank",
            Diagnosis::BlankButOpen => "blank-but-open",
            Diagnosis::WaitingForClient => "waiting-for-client",
            Diagnosis::ClientWithoutServer => "client-without-server",
            Diagnosis::Idle => "idle",
            Diagnosis::Streaming { .. } => "streaming",
            Diagnosis::ServerGone => "server-gone",
            Diagnosis::ClientGone => "client-gone",
            Diagnosis::Abandoned => "abandoned",
        }
    }
}

/// A snapshot of a stream file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    /// The file inspected.
    pub path: PathBuf,
    /// Where the buffers lie (file length, capacity n).
    pub layout: Layout,
    /// Headers of buffer 0 and buffer 1.
    pub buffers: [BufferView; 2],
    /// Whether a server holds its liveness lock on the file: `Some(true)` a
    /// server of this project has it open now; `Some(false)` none does (a
    /// server of an older implementation, which takes no lock, could still be
    /// there); `None` the kernel cannot tell (no OFD locks).
    pub server_alive: Option<bool>,
    /// The same for a client.
    pub client_alive: Option<bool>,
    /// The live server's process id, when its pid tag is readable (see
    /// docs/protocol.md: the tag can be missing; `None` then, or when no
    /// server runs).
    pub server_pid: Option<u32>,
    /// The same for the client.
    pub client_pid: Option<u32>,
}

impl Inspection {
    /// True when both headers are all zero bytes: a new file that no server
    /// has opened yet (a server resets the states to INIT, which is 4).
    pub fn is_blank(&self) -> bool {
        self.buffers.iter().all(|b| b.state_word == 0 && b.header == Header::default())
    }

    /// What the states and the liveness locks mean together.
    pub fn diagnose(&self) -> Diagnosis {
        use BufferState as S;
        let states = self.buffers.map(|b| b.state());
        let (server, client) = (self.server_alive == Some(true), self.client_alive == Some(true));
        if states.iter().any(Option::is_none) {
            return Diagnosis::Corrupt;
        }
        if self.is_blank() {
            return if server || client { Diagnosis::BlankButOpen } else { Diagnosis::Blank };
        }
        let count = |s: S| states.iter().filter(|x| **x == Some(s)).count() as u8;
        match (count(S::Init) > 0, server, client) {
            (true, true, _) => Diagnosis::WaitingForClient,
            (true, false, true) => Diagnosis::ClientWithoutServer,
            (true, false, false) => Diagnosis::Idle,
            (false, true, true) => Diagnosis::Streaming { queued: count(S::Client), locked: count(S::ClientLocked) },
            (false, false, true) => Diagnosis::ServerGone,
            (false, true, false) => Diagnosis::ClientGone,
            (false, false, false) => Diagnosis::Abandoned,
        }
    }
}

/// A stream file opened read-only for repeated inspection (e.g. a live
/// display refreshing several times a second).
#[derive(Debug)]
pub struct Inspector {
    file: File,
    path: PathBuf,
}

impl Inspector {
    /// Open `path` read-only. The same files are refused as by a server or a
    /// client: missing (BAD_FILE_SIZE), a symlink, directory or other
    /// non-regular file (UNABLE_TO_OPEN_FILE); size is checked by `read`.
    pub fn open(path: impl AsRef<Path>) -> Result<Inspector> {
        let path = path.as_ref();
        let (file, _) = crate::mapping::open_stream_file(path, false)?;
        Ok(Inspector { file, path: path.to_owned() })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Read both headers and probe liveness now. BAD_FILE_SIZE when the file
    /// is (or has become) shorter than a stream.
    pub fn read(&self) -> Result<Inspection> {
        let too_small = |len| Error::BadFileSize { path: self.path.clone(), len: Some(len) };
        let io_err = |e: io::Error| Error::open(&self.path, e);
        let len = self.file.metadata().map_err(io_err)?.len();
        let layout = Layout::for_file_len(len).ok_or_else(|| too_small(len))?;
        let mut raw = [[0u8; HEADER_SIZE as usize]; 2];
        for (i, r) in raw.iter_mut().enumerate() {
            if let Err(e) = self.file.read_exact_at(r, layout.header_offset(i)) {
                // The file shrank after its length was read.
                return Err(if e.kind() == io::ErrorKind::UnexpectedEof {
                    too_small(self.file.metadata().map_or(0, |m| m.len()))
                } else {
                    io_err(e)
                });
            }
        }
        let buffers = [0, 1].map(|i| decode(&layout, i, &raw[i]));
        Ok(Inspection {
            path: self.path.clone(),
            layout,
            buffers,
            server_alive: liveness::probe(&self.file, Role::Server),
            client_alive: liveness::probe(&self.file, Role::Client),
            server_pid: liveness::holder_pid(&self.file, Role::Server),
            client_pid: liveness::holder_pid(&self.file, Role::Client),
        })
    }
}

fn decode(layout: &Layout, index: usize, raw: &[u8; HEADER_SIZE as usize]) -> BufferView {
    let word = |off: u64| {
        let o = off as usize;
        u32::from_ne_bytes([raw[o], raw[o + 1], raw[o + 2], raw[o + 3]])
    };
    let header = Header {
        frame_number: word(field::FRAME_NUMBER),
        width: word(field::WIDTH),
        height: word(field::HEIGHT),
        offset: word(field::OFFSET),
        num_scanlines: word(field::NUM_SCANLINES),
    };
    // No assembly limit: this reports the shape, not what a client would
    // agree to allocate.
    let band = header.validate(layout.capacity(), u64::MAX);
    BufferView { header_offset: layout.header_offset(index), header, state_word: word(field::STATE), band }
}

/// Inspect the stream file at `path` once (see [`Inspector`]).
///
/// ```no_run
/// let snap = shmimage::inspect("/dev/shm/stream.shm")?;
/// println!("n = {}, server alive: {:?}", snap.layout.capacity(), snap.server_alive);
/// # Ok::<(), shmimage::Error>(())
/// ```
pub fn inspect(path: impl AsRef<Path>) -> Result<Inspection> {
    Inspector::open(path)?.read()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Client, ClientOptions, Code, Server, ServerOptions, StreamFile};

    #[test]
    fn a_blank_file_then_a_live_stream() {
        let f = StreamFile::with_len(4096).unwrap();
        let snap = inspect(f.path()).unwrap();
        assert!(snap.is_blank());
        assert_eq!(snap.layout.file_len(), 4096);
        assert_eq!(snap.server_alive, Some(false));
        assert_eq!(snap.client_alive, Some(false));
        assert_eq!(snap.diagnose(), Diagnosis::Blank);
        assert_eq!(snap.buffers[1].header_offset, 24 + snap.layout.capacity());

        let server = Server::create(f.path(), ServerOptions::default()).unwrap();
        let snap = inspect(f.path()).unwrap();
        assert_eq!(snap.buffers.map(|b| b.state()), [Some(BufferState::Init); 2]);
        assert_eq!((snap.server_alive, snap.client_alive), (Some(true), Some(false)));
        assert_eq!(snap.diagnose(), Diagnosis::WaitingForClient);

        let client = Client::connect(f.path(), ClientOptions { monitor_thread: false, ..Default::default() }).unwrap();
        server.put_frame(9, 4, 2, &[7u8; 24]).unwrap();
        let snap = inspect(f.path()).unwrap();
        assert_eq!((snap.server_alive, snap.client_alive), (Some(true), Some(true)));
        let sent = snap.buffers.iter().find(|b| b.state() == Some(BufferState::Client)).unwrap();
        assert!(sent.describe().contains("frame 9 4x2, whole frame"), "{}", sent.describe());
        assert_eq!(snap.diagnose(), Diagnosis::Streaming { queued: 1, locked: 0 });
        assert!(snap.diagnose().to_string().contains("1 frame(s) waiting"));
        let band = sent.band.unwrap();
        assert_eq!((band.frame_number, band.width, band.height, band.rows), (9, 4, 2, 2));
        drop(client);
        drop(server);
        let snap = inspect(f.path()).unwrap();
        assert_eq!((snap.server_alive, snap.client_alive), (Some(false), Some(false)));
    }

    #[test]
    fn garbage_is_decoded_not_trusted() {
        let f = StreamFile::with_len(64).unwrap();
        std::fs::write(f.path(), [0xA5u8; 64]).unwrap();
        let snap = inspect(f.path()).unwrap();
        assert_eq!(snap.diagnose(), Diagnosis::Corrupt);
        for b in snap.buffers {
            assert!(b.state_name().starts_with("INVALID(") && b.describe().starts_with("not a valid band"));
            assert_eq!(b.state(), None);
            assert_eq!(b.state_word, 0xA5A5_A5A5);
            assert!(b.band.is_err());
        }
    }

    #[test]
    fn missing_small_and_directory_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = inspect(dir.path().join("nope")).unwrap_err();
        assert_eq!(missing.code(), Code::BadFileSize);
        let small = dir.path().join("small");
        std::fs::write(&small, [0u8; 63]).unwrap();
        let e = inspect(&small).unwrap_err();
        assert_eq!(e.code(), Code::BadFileSize);
        assert!(e.to_string().contains("63 bytes"), "{e}");
        let e = inspect(dir.path()).unwrap_err();
        assert_eq!(e.code(), Code::UnableToOpenFile);
        assert!(e.to_string().contains("directory"), "{e}");
    }
}
