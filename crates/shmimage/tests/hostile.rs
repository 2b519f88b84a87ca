//! Hostile bytes: an attacker with the file open writes arbitrary header
//! fields and state words between the operations of a server and a client.
//! Nothing may panic, hang, or return a frame that does not fit.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::time::Duration;

use proptest::prelude::*;
use shmimage::layout::{field, Layout};
use shmimage::{Client, ClientOptions, Server, ServerOptions, StreamFile};

#[derive(Debug, Clone)]
enum Op {
    /// Write `value` at a header field of buffer `buf`.
    Poke {
        buf: usize,
        field: u64,
        value: u32,
    },
    /// Write raw bytes anywhere in the first header bytes.
    Scribble {
        at: u64,
        bytes: Vec<u8>,
    },
    Put {
        n: u32,
        w: u32,
        h: u32,
    },
    Lock,
    Unlock,
    Wait,
    LoanCommit {
        w: u32,
        h: u32,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let fields = prop::sample::select(vec![
        field::FRAME_NUMBER,
        field::WIDTH,
        field::HEIGHT,
        field::OFFSET,
        field::NUM_SCANLINES,
        field::STATE,
    ]);
    let values = prop_oneof![0u32..8, any::<u32>(), Just(u32::MAX), 1u32..2000];
    prop_oneof![
        4 => (0usize..2, fields, values).prop_map(|(buf, field, value)| Op::Poke { buf, field, value }),
        1 => (0u64..200, prop::collection::vec(any::<u8>(), 1..40)).prop_map(|(at, bytes)| Op::Scribble { at, bytes }),
        2 => (any::<u32>(), 1u32..64, 1u32..64).prop_map(|(n, w, h)| Op::Put { n, w, h }),
        2 => Just(Op::Lock),
        1 => Just(Op::Unlock),
        1 => Just(Op::Wait),
        1 => (1u32..20, 1u32..20).prop_map(|(w, h)| Op::LoanCommit { w, h }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
    #[test]
    fn no_header_value_breaks_either_end(ops in prop::collection::vec(op(), 1..60), len in 64u64..4096) {
        let f = StreamFile::with_len(len).unwrap();
        let layout = Layout::for_file_len(len).unwrap();
        let attacker = OpenOptions::new().read(true).write(true).open(f.path()).unwrap();
        let opts = ServerOptions { band_timeout: Duration::from_millis(5), ..Default::default() };
        let server = Server::create(f.path(), opts).unwrap();
        let copts = ClientOptions { monitor_thread: false, max_frame_bytes: 1 << 20 };
        let client = Client::connect(f.path(), copts).unwrap();
        let mut held: Vec<shmimage::Frame> = Vec::new();
        for op in ops {
            match op {
                Op::Poke { buf, field, value } => {
                    attacker.write_at(&value.to_le_bytes(), layout.header_offset(buf) + field).unwrap();
                }
                Op::Scribble { at, bytes } => {
                    let at = at.min(len - bytes.len().min(len as usize) as u64);
                    attacker.write_at(&bytes, at).unwrap();
                }
                Op::Put { n, w, h } => {
                    let px = vec![7u8; (w * h * 3) as usize];
                    let _ = server.put_frame(n, w, h, &px);
                }
                Op::Lock => {
                    if let Ok(fr) = client.lock() {
                        let info = fr.info();
                        let px = fr.pixels().unwrap();
                        prop_assert_eq!(px.len(), info.len());
                        prop_assert!(!info.in_place || px.len() as u64 <= layout.capacity());
                        // Touch every byte: an out-of-bounds slice would fault here.
                        let _sum: u64 = px.iter().map(|&b| u64::from(b)).sum();
                        held.push(fr);
                        prop_assert!(held.iter().filter(|f| f.info().in_place && f.is_valid()).count() <= 2);
                    }
                }
                Op::Unlock => {
                    if !held.is_empty() {
                        held.remove(0);
                    }
                }
                Op::Wait => {
                    if let Ok(fr) = client.wait_frame(Some(Duration::from_millis(2))) {
                        prop_assert!(fr.pixels().is_ok());
                        held.push(fr);
                        prop_assert!(held.iter().filter(|f| f.info().in_place && f.is_valid()).count() <= 2);
                    }
                }
                Op::LoanCommit { w, h } => {
                    if let Ok(mut loan) = server.loan(w, h) {
                        loan.pixels_mut().unwrap().fill(9);
                        let _ = loan.commit(1);
                    }
                }
            }
        }
    }
}
