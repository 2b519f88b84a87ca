//! Two real processes per test: this test binary re-executes itself as the
//! peer (the ignored `child_role` test, selected by SHMIMAGE_TEST_ROLE).

#![allow(clippy::unwrap_used)] // test harness: peers and fixtures that fail should fail the test

use std::path::Path;
use std::time::{Duration, Instant};

mod peer;
use peer::{stat, Peer};

use shmimage::layout::ENSIGHT_FILE_SIZE;
use shmimage::{Client, ClientOptions, Code, Liveness, Server, ServerOptions, StreamFile};

const LONG: Duration = Duration::from_secs(20);

/// A frame whose every byte depends on (row, column, frame number), so a
/// swapped row, a flipped frame or a mixed frame all fail the comparison.
fn pattern(w: u32, h: u32, n: u32) -> Vec<u8> {
    let row = w as usize * 3;
    let mut v = vec![0u8; row * h as usize];
    for (r, chunk) in v.chunks_mut(row).enumerate() {
        let seed = (r as u32).wrapping_mul(0x9E37_79B9) ^ n.wrapping_mul(0x85EB_CA6B);
        for (c, b) in chunk.iter_mut().enumerate() {
            *b = (seed.wrapping_add(c as u32 * 7) >> 3) as u8;
        }
    }
    v
}

fn flipped(w: u32, px: &[u8]) -> Vec<u8> {
    px.chunks(w as usize * 3).rev().flatten().copied().collect()
}

/// The peer processes. Ignored so it runs only when re-executed.
#[test]
#[ignore]
fn child_role() {
    let Ok(role) = std::env::var("SHMIMAGE_TEST_ROLE") else { return };
    let args: Vec<String> = std::env::var("SHMIMAGE_TEST_ARGS").unwrap().split('\n').map(String::from).collect();
    let path = Path::new(&args[0]);
    let num = |i: usize| args[i].parse::<u32>().unwrap();
    match role.as_str() {
        "server" => {
            let (w, h, count, mode) = (num(1), num(2), num(3), args[4].as_str());
            let opts = ServerOptions { flip_vertical: mode == "flip", ..Default::default() };
            let s = Server::create(path, opts).unwrap();
            println!("READY");
            s.wait_for_client(Some(LONG)).unwrap();
            let (mut sent, mut dropped) = (0u32, 0u32);
            let mut n = 0u32;
            while if mode == "nowait" { n < count } else { sent < count } {
                n += 1;
                let px = pattern(w, h, n);
                if mode == "nowait" {
                    match s.put_frame(n, w, h, &px) {
                        Ok(()) => sent += 1,
                        Err(e) if e.code() == Code::NoBufferAvailable => dropped += 1,
                        Err(e) => panic!("{e}"),
                    }
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                }
                s.wait_for_buffer(Some(LONG)).unwrap();
                if mode == "loan" {
                    let mut loan = s.loan(w, h).unwrap();
                    loan.pixels_mut().unwrap().copy_from_slice(&px);
                    loan.commit(n).unwrap();
                } else {
                    s.put_frame(n, w, h, &px).unwrap();
                }
                sent += 1;
            }
            println!("STATS sent={sent} dropped={dropped} last={n}");
            if mode == "forever" {
                loop {
                    n += 1;
                    let _ = s.put_frame(n, w, h, &pattern(w, h, n));
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
            // Stay until the client has drained everything, so "server gone"
            // never races the last frame in these tests.
            let _ = s.wait_for_buffer(Some(LONG));
        }
        "client-hold" => {
            let c = Client::connect(path, ClientOptions::default()).unwrap();
            let f = c.wait_frame(Some(LONG)).unwrap();
            println!("LOCKED {}", f.number());
            std::mem::forget(f);
            std::thread::sleep(Duration::from_secs(600));
        }
        "client-exit-locked" => {
            let c = Client::connect(path, ClientOptions::default()).unwrap();
            let f = c.wait_frame(Some(LONG)).unwrap();
            println!("LOCKED {}", f.number());
            // Exit without unlock or destroy, as a crashing client would.
            std::process::exit(0);
        }
        "client-destroy" => {
            let c = Client::connect(path, ClientOptions::default()).unwrap();
            println!("CONNECTED");
            c.close();
        }
        "limits" => limits_child(path, Path::new(&args[1]), Path::new(&args[2])),
        other => panic!("unknown role {other}"),
    }
}

/// Receive frames until frame `last`, checking each against `expect(n)`.
fn receive(c: &Client, last: u32, mut expect: impl FnMut(u32) -> Vec<u8>) -> Vec<u32> {
    let mut got = Vec::new();
    loop {
        let f = c.wait_frame(Some(LONG)).unwrap_or_else(|e| panic!("after frames {got:?}: {e}"));
        let n = f.number();
        assert!(f.pixels().unwrap() == &expect(n)[..], "frame {n} pixels differ");
        if let Some(&prev) = got.last() {
            assert!(n > prev, "frame {n} after {prev}");
        }
        got.push(n);
        if n == last {
            return got;
        }
    }
}

#[test]
fn one_band_frames_cross_processes_in_place() {
    let f = StreamFile::for_frame(640, 480).unwrap();
    let p = f.path().to_str().unwrap();
    let mut server = Peer::spawn("server", &[p, "640", "480", "100", "put"]);
    server.expect("READY");
    let c = Client::connect(f.path(), ClientOptions::default()).unwrap();
    assert!(!c.reconnected());
    let got = receive(&c, 100, |n| pattern(640, 480, n));
    assert!(got.len() >= 2);
    assert!(c.stats().frames_locked as usize == got.len());
    server.wait_ok();
}

#[test]
fn banded_4k_frames_through_the_ensight_25_mib_file() {
    let f = StreamFile::with_len(ENSIGHT_FILE_SIZE).unwrap();
    let p = f.path().to_str().unwrap();
    let mut server = Peer::spawn("server", &[p, "3840", "2160", "5", "put"]);
    server.expect("READY");
    let c = Client::connect(f.path(), ClientOptions::default()).unwrap();
    let got = receive(&c, 5, |n| pattern(3840, 2160, n));
    assert!(!got.is_empty());
    assert!(c.stats().bands_assembled >= 2 * got.len() as u64);
    server.wait_ok();
}

#[test]
fn flip_vertical_and_no_threads_client() {
    let f = StreamFile::for_frame(320, 200).unwrap();
    let p = f.path().to_str().unwrap();
    let mut server = Peer::spawn("server", &[p, "320", "200", "20", "flip"]);
    server.expect("READY");
    let opts = ClientOptions { monitor_thread: false, ..Default::default() };
    let c = Client::connect(f.path(), opts).unwrap();
    receive(&c, 20, |n| flipped(320, &pattern(320, 200, n)));
    server.wait_ok();
}

#[test]
fn loaned_frames_arrive_intact() {
    let f = StreamFile::for_frame(1280, 720).unwrap();
    let p = f.path().to_str().unwrap();
    let mut server = Peer::spawn("server", &[p, "1280", "720", "30", "loan"]);
    server.expect("READY");
    let c = Client::connect(f.path(), ClientOptions::default()).unwrap();
    receive(&c, 30, |n| pattern(1280, 720, n));
    server.wait_ok();
}

#[test]
fn a_slow_client_makes_the_server_drop_frames_never_mix_them() {
    let f = StreamFile::for_frame(256, 256).unwrap();
    let p = f.path().to_str().unwrap();
    // The server tries 300 frames ~1 ms apart without waiting for buffers.
    let mut server = Peer::spawn("server", &[p, "256", "256", "300", "nowait"]);
    server.expect("READY");
    let c = Client::connect(f.path(), ClientOptions { monitor_thread: false, ..Default::default() }).unwrap();
    let mut got = Vec::<u32>::new();
    loop {
        match c.wait_frame(Some(LONG)) {
            Ok(fr) => {
                let n = fr.number();
                assert!(fr.pixels().unwrap() == &pattern(256, 256, n)[..], "frame {n} mixed or torn");
                assert!(got.last().is_none_or(|&p| n > p));
                got.push(n);
                drop(fr);
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) if e.code() == Code::ServerGone => break, // the server finished
            Err(e) => panic!("{e}"),
        }
    }
    let stats = server.expect("STATS");
    assert!(stat(&stats, "dropped") > 0, "{stats}");
    assert_eq!(stat(&stats, "sent") + stat(&stats, "dropped"), 300, "{stats}");
    assert!(got.len() >= 2 && got.len() as u64 <= stat(&stats, "sent"));
    server.wait_ok();
}

#[test]
fn a_client_that_crashed_holding_a_lock_is_taken_over_by_the_next() {
    let f = StreamFile::for_frame(64, 64).unwrap();
    let p = f.path().to_str().unwrap();
    let s = Server::create(f.path(), ServerOptions::default()).unwrap();
    let mut first = Peer::spawn("client-exit-locked", &[p]);
    s.wait_for_client(Some(LONG)).unwrap();
    s.put_frame(1, 64, 64, &pattern(64, 64, 1)).unwrap();
    first.expect("LOCKED");
    first.wait_ok();
    let c = Client::connect(f.path(), ClientOptions::default()).unwrap();
    assert!(c.reconnected(), "the file still carried the old client's lock");
    s.wait_for_buffer(Some(LONG)).unwrap();
    s.put_frame(2, 64, 64, &pattern(64, 64, 2)).unwrap();
    let fr = c.wait_frame(Some(LONG)).unwrap();
    assert_eq!(fr.number(), 2);
}

#[test]
fn destroy_leaves_the_server_unconnected() {
    let f = StreamFile::for_frame(64, 64).unwrap();
    let p = f.path().to_str().unwrap();
    let s = Server::create(f.path(), ServerOptions::default()).unwrap();
    let mut client = Peer::spawn("client-destroy", &[p]);
    client.expect("CONNECTED");
    client.wait_ok();
    let e = s.put_frame(1, 64, 64, &pattern(64, 64, 1)).unwrap_err();
    assert_eq!(e.code(), Code::Unconnected);
}

#[test]
fn a_killed_client_is_noticed_and_its_buffers_taken_back() {
    let f = StreamFile::for_frame(64, 64).unwrap();
    let p = f.path().to_str().unwrap();
    let s = Server::create(f.path(), ServerOptions::default()).unwrap();
    let mut client = Peer::spawn("client-hold", &[p]);
    s.wait_for_client(Some(LONG)).unwrap();
    s.put_frame(1, 64, 64, &pattern(64, 64, 1)).unwrap();
    client.expect("LOCKED");
    s.put_frame(2, 64, 64, &pattern(64, 64, 2)).unwrap();
    assert_eq!(s.put_frame(3, 64, 64, &pattern(64, 64, 3)).unwrap_err().code(), Code::NoBufferAvailable);
    assert_eq!(s.client_liveness(), Liveness::Alive);
    client.kill9();
    assert_eq!(s.put_frame(4, 64, 64, &pattern(64, 64, 4)).unwrap_err().code(), Code::Unconnected);
    assert_eq!(s.stats().clients_reclaimed, 1);
    let c = Client::connect(f.path(), ClientOptions::default()).unwrap();
    assert!(!c.reconnected(), "the reclaimed file is a fresh stream");
    s.put_frame(5, 64, 64, &pattern(64, 64, 5)).unwrap();
    assert_eq!(c.wait_frame(Some(LONG)).unwrap().number(), 5);
}

#[test]
fn a_client_waiting_on_a_killed_server_is_told() {
    let f = StreamFile::for_frame(64, 64).unwrap();
    let p = f.path().to_str().unwrap();
    let mut server = Peer::spawn("server", &[p, "64", "64", "1", "forever"]);
    server.expect("READY");
    let c = Client::connect(f.path(), ClientOptions::default()).unwrap();
    c.wait_frame(Some(LONG)).unwrap();
    assert_eq!(c.server_liveness(), Liveness::Alive);
    server.kill9();
    let t = Instant::now();
    let e = loop {
        match c.wait_frame(Some(LONG)) {
            Ok(_) => continue, // frames published before the kill
            Err(e) => break e,
        }
    };
    assert_eq!(e.code(), Code::ServerGone, "{e}");
    assert!(t.elapsed() < LONG, "told, not timed out");
}

/// MEMORY_ALLOC_ERROR, THREAD_CREATE_ERROR and UNABLE_TO_MAP_FILE need a
/// process whose address space is nearly exhausted: this child limits its own.
fn limits_child(big: &Path, banded: &Path, tiny: &Path) {
    let vm_kib = |key: &str| -> u64 {
        let s = std::fs::read_to_string("/proc/self/status").unwrap();
        s.lines().find_map(|l| l.strip_prefix(key)).unwrap().trim().trim_end_matches(" kB").trim().parse().unwrap()
    };
    let limit = |extra_mib: u64| {
        let cap = (vm_kib("VmSize:") + extra_mib * 1024) * 1024;
        let r = libc::rlimit { rlim_cur: cap, rlim_max: libc::RLIM_INFINITY };
        // SAFETY: a valid pointer to an initialised rlimit.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &r) }, 0);
    };
    // Open the banded stream and learn its first band before the limit.
    let c = Client::connect(banded, ClientOptions { monitor_thread: false, ..Default::default() }).unwrap();
    println!("CONNECTED");
    // 1 MiB of headroom: a 1 GiB map fails, and so does a thread's 2 MiB stack.
    limit(1);
    let e = Client::connect(big, ClientOptions { monitor_thread: false, ..Default::default() }).unwrap_err();
    println!("MAP {}", e.code() as i32);
    let e = Client::connect(tiny, ClientOptions::default()).unwrap_err();
    println!("THREAD {}", e.code() as i32);
    let deadline = Instant::now() + LONG;
    loop {
        match c.lock() {
            Err(e) if e.code() == Code::NoFrameAvailable && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(2))
            }
            Err(e) => {
                println!("ALLOC {}", e.code() as i32);
                break;
            }
            Ok(_) => {
                println!("ALLOC 0");
                break;
            }
        }
    }
}

#[test]
fn resource_exhaustion_gives_map_thread_and_alloc_errors() {
    let big = StreamFile::with_len(1 << 30).unwrap();
    let banded = StreamFile::with_len(ENSIGHT_FILE_SIZE).unwrap();
    let tiny = StreamFile::with_len(64).unwrap();
    let s = Server::create(banded.path(), ServerOptions::default()).unwrap();
    let paths = [big.path(), banded.path(), tiny.path()].map(|p| p.to_str().unwrap());
    let mut child = Peer::spawn("limits", &paths);
    child.expect("CONNECTED");
    assert_eq!(child.expect("MAP"), (Code::UnableToMapFile as i32).to_string());
    assert_eq!(child.expect("THREAD"), (Code::ThreadCreateError as i32).to_string());
    s.wait_for_client(Some(LONG)).unwrap();
    // The first band of an 8K frame: the child cannot allocate 99.5 MB to
    // assemble it (more than a malloc arena can already have reserved).
    let _ = s.put_frame(1, 7680, 4320, &pattern(7680, 4320, 1));
    assert_eq!(child.expect("ALLOC"), (Code::MemoryAllocError as i32).to_string());
    child.wait_ok();
}
