//! Hostile operation sequences decoded from raw bytes: shared by the stable
//! proptest (tests/reliability_ops.rs) and the cargo-fuzz target
//! (fuzz/fuzz_targets/ops.rs), so both drive the same logic.
//!
//! A server, a client and an attacker share one file; the attacker writes
//! arbitrary header bytes and state words, resizes nothing (truncation is
//! tested in reliability.rs). Every wait is a few milliseconds, so a run ends;
//! a panic, an out-of-bounds read or a wrong-sized frame is a failure.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::time::Duration;

use shmimage::layout::{Layout, HEADER_SIZE};
use shmimage::{Client, ClientOptions, Server, ServerOptions, StreamFile};

/// Bytes in, one byte at a time: exhausted input reads as zeros.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
}

/// Run the operations encoded in `data`; `Err` describes a broken promise.
pub fn run_ops(data: &[u8]) -> Result<(), String> {
    let mut b = Bytes(data);
    let len = 64 + u64::from(b.u8()) * 24 + u64::from(b.u8());
    let f = StreamFile::with_len(len).map_err(|e| e.to_string())?;
    let layout = Layout::for_file_len(len).ok_or("layout")?;
    let attacker = OpenOptions::new().read(true).write(true).open(f.path()).map_err(|e| e.to_string())?;
    let opts = ServerOptions { band_timeout: Duration::from_millis(2), flip_vertical: b.u8() & 1 == 1 };
    let server = Server::create(f.path(), opts).map_err(|e| e.to_string())?;
    let copts = ClientOptions { monitor_thread: b.u8() & 1 == 1, max_frame_bytes: 1 << 20 };
    let client = Client::connect(f.path(), copts).map_err(|e| e.to_string())?;
    let mut frame_px = Vec::new();
    // Frames held at once (the engine allows two); dropping one unlocks it.
    let mut held: Vec<shmimage::Frame> = Vec::new();
    for _ in 0..64 {
        if b.0.is_empty() {
            break;
        }
        match b.u8() % 10 {
            // A header field or state word of either buffer.
            0 | 1 => {
                let at = layout.header_offset(usize::from(b.u8() & 1)) + u64::from(b.u8() % 6) * 4;
                let v = match b.u8() % 4 {
                    0 => u32::from(b.u8() % 6),
                    1 => u32::from(b.u8()),
                    _ => b.u32(),
                };
                attacker.write_at(&v.to_le_bytes(), at).map_err(|e| e.to_string())?;
            }
            // Raw bytes anywhere in the headers.
            2 => {
                let at = u64::from(b.u8()) % (2 * HEADER_SIZE + layout.capacity());
                let n = usize::from(b.u8() % 16) + 1;
                let bytes: Vec<u8> = (0..n).map(|_| b.u8()).collect();
                let at = at.min(len.saturating_sub(n as u64));
                attacker.write_at(&bytes, at).map_err(|e| e.to_string())?;
            }
            3 | 4 => {
                let (w, h) = (u32::from(b.u8() % 64) + 1, u32::from(b.u8() % 64) + 1);
                frame_px.resize((w * h * 3) as usize, 0x5A);
                let _ = server.put_frame(b.u32(), w, h, &frame_px);
            }
            5 => {
                let (w, h) = (u32::from(b.u8() % 20) + 1, u32::from(b.u8() % 20) + 1);
                if let Ok(mut loan) = server.loan(w, h) {
                    loan.pixels_mut().map_err(|e| e.to_string())?.fill(9);
                    if b.u8() & 1 == 0 {
                        let _ = loan.commit(b.u32());
                    }
                }
            }
            6 | 7 => {
                let r = if b.u8() & 1 == 0 { client.lock() } else { client.wait_frame(Some(Duration::from_millis(1))) };
                if let Ok(fr) = r {
                    let info = fr.info();
                    let px = fr.pixels().map_err(|e| format!("a locked frame has no pixels: {e}"))?;
                    if px.len() != info.len() {
                        return Err(format!("{} pixel bytes for {info:?}", px.len()));
                    }
                    if info.in_place && px.len() as u64 > layout.capacity() {
                        return Err(format!("in-place frame {info:?} larger than a buffer"));
                    }
                    // Touch every byte: an out-of-bounds slice faults here.
                    std::hint::black_box(px.iter().fold(0u8, |a, &x| a ^ x));
                    held.push(fr);
                    if held.iter().filter(|f| f.info().in_place && f.is_valid()).count() > 2 {
                        return Err("more than two buffers locked at once".into());
                    }
                }
            }
            8 => {
                if !held.is_empty() {
                    held.remove(0);
                }
            }
            _ => {
                let _ = server.wait_for_buffer(Some(Duration::from_millis(1)));
                let _ = server.is_unconnected();
                let _ = client.stats();
            }
        }
    }
    drop(held);
    client.close();
    Ok(())
}
