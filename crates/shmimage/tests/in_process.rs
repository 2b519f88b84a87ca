//! Both ends in one process (separate opens of one file): fast checks of each
//! operation's outcomes. The two-process tests are in `two_process.rs`.

use std::time::Duration;

use shmimage::layout::ENSIGHT_FILE_SIZE;
use shmimage::{Client, ClientOptions, Code, Server, ServerOptions, StreamFile};

fn pattern(w: u32, h: u32, seed: u32) -> Vec<u8> {
    (0..w as usize * h as usize * 3).map(|i| (i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) as u8).collect()
}

fn no_thread() -> ClientOptions {
    ClientOptions { monitor_thread: false, ..Default::default() }
}

#[test]
fn one_band_frames_are_read_in_place() {
    let f = StreamFile::for_frame(64, 48).unwrap();
    let s = Server::create(f.path(), ServerOptions::default()).unwrap();
    assert_eq!(s.put_frame(1, 64, 48, &pattern(64, 48, 0)).unwrap_err().code(), Code::Unconnected);
    let c = Client::connect(f.path(), no_thread()).unwrap();
    assert!(!c.reconnected());
    assert_eq!(c.lock().unwrap_err().code(), Code::NoFrameAvailable);
    let px = pattern(64, 48, 1);
    s.put_frame(7, 64, 48, &px).unwrap();
    let fr = c.lock().unwrap();
    assert_eq!((fr.number(), fr.width(), fr.height()), (7, 64, 48));
    assert!(fr.info().in_place);
    assert_eq!(fr.pixels().unwrap(), &px[..]);
}

#[test]
fn the_newest_frame_wins_and_a_full_stream_drops() {
    let f = StreamFile::for_frame(8, 8).unwrap();
    let s = Server::create(f.path(), ServerOptions::default()).unwrap();
    let c = Client::connect(f.path(), no_thread()).unwrap();
    s.put_frame(1, 8, 8, &pattern(8, 8, 1)).unwrap();
    s.put_frame(2, 8, 8, &pattern(8, 8, 2)).unwrap();
    assert_eq!(s.put_frame(3, 8, 8, &pattern(8, 8, 3)).unwrap_err().code(), Code::NoBufferAvailable);
    assert_eq!(c.lock().unwrap().number(), 2);
    assert_eq!(c.lock().unwrap_err().code(), Code::NoFrameAvailable);
    assert_eq!(c.stats().frames_stale, 1);
}

#[test]
fn a_4k_frame_streams_through_the_ensight_file_in_bands() {
    let f = StreamFile::with_len(ENSIGHT_FILE_SIZE).unwrap();
    let px = pattern(3840, 2160, 9);
    let c = Client::connect(f.path(), ClientOptions::default()).unwrap();
    let path = f.path().to_owned();
    // The server runs first so the client's connect sees INIT; reconnect is fine too.
    let s = Server::create(&path, ServerOptions::default()).unwrap();
    let t = std::thread::spawn({
        let px = px.clone();
        move || {
            for n in 0..3 {
                s.wait_for_client(Some(Duration::from_secs(5))).unwrap();
                s.wait_for_buffer(Some(Duration::from_secs(5))).unwrap();
                s.put_frame(n, 3840, 2160, &px).unwrap();
            }
            s.stats()
        }
    });
    let mut got = Vec::new();
    while got.len() < 3 {
        match c.wait_frame(Some(Duration::from_secs(5))) {
            Ok(fr) => {
                assert!(!fr.info().in_place);
                assert!(fr.pixels().unwrap() == &px[..]);
                got.push(fr.number());
            }
            Err(e) if e.code() == Code::NoFrameAvailable => break,
            Err(e) => panic!("{e}"),
        }
        if got.last() == Some(&2) {
            break;
        }
    }
    let stats = t.join().unwrap();
    assert_eq!(stats.frames_sent, 3);
    assert_eq!(stats.bands_sent, 6);
    assert_eq!(got.last(), Some(&2));
}

#[test]
fn flip_stores_rows_bottom_up() {
    let f = StreamFile::for_frame(4, 3).unwrap();
    let s = Server::create(f.path(), ServerOptions { flip_vertical: true, ..Default::default() }).unwrap();
    let c = Client::connect(f.path(), no_thread()).unwrap();
    let px = pattern(4, 3, 5);
    s.put_frame(1, 4, 3, &px).unwrap();
    let fr = c.lock().unwrap();
    let rows: Vec<&[u8]> = px.chunks(12).rev().collect();
    assert_eq!(fr.pixels().unwrap(), rows.concat());
}

#[test]
fn a_loan_publishes_without_a_copy_and_gives_back_when_dropped() {
    let f = StreamFile::for_frame(16, 16).unwrap();
    let s = Server::create(f.path(), ServerOptions::default()).unwrap();
    let c = Client::connect(f.path(), no_thread()).unwrap();
    drop(s.loan(16, 16).unwrap());
    let mut loan = s.loan(16, 16).unwrap();
    loan.pixels_mut().unwrap().fill(0xAB);
    loan.commit(42).unwrap();
    let fr = c.lock().unwrap();
    assert_eq!(fr.number(), 42);
    assert!(fr.pixels().unwrap().iter().all(|&b| b == 0xAB));
    drop(fr);
    assert_eq!(s.loan(17, 17).unwrap_err().code(), Code::FrameTooLarge);
}

#[test]
fn destroy_leaves_the_server_unconnected_and_a_live_client_is_refused() {
    let f = StreamFile::for_frame(8, 8).unwrap();
    let s = Server::create(f.path(), ServerOptions::default()).unwrap();
    let c = Client::connect(f.path(), no_thread()).unwrap();
    s.put_frame(1, 8, 8, &pattern(8, 8, 0)).unwrap();
    let fr = c.lock().unwrap();
    let e = Client::connect(f.path(), no_thread()).unwrap_err();
    assert_eq!(e.code(), Code::PeerBusy);
    assert!(e.to_string().contains("client") && e.to_string().contains(&f.path().display().to_string()), "{e}");
    assert_eq!(fr.pixels().unwrap(), &pattern(8, 8, 0)[..], "the refused client took nothing");
    drop(c);
    assert_eq!(fr.pixels().unwrap_err().code(), Code::Closed);
    drop(fr);
    assert_eq!(s.put_frame(2, 8, 8, &pattern(8, 8, 0)).unwrap_err().code(), Code::Unconnected);
    let c2 = Client::connect(f.path(), no_thread()).unwrap();
    s.put_frame(3, 8, 8, &pattern(8, 8, 3)).unwrap();
    assert_eq!(c2.lock().unwrap().number(), 3);
}

#[test]
fn every_code_is_reached_on_purpose() {
    use shmimage::{options, Stream};
    let dir = tempfile::tempdir().unwrap();
    let code = |r: shmimage::Result<(Stream, Code)>| match r {
        Ok((_, c)) => c,
        Err(e) => e.code(),
    };
    // Opening.
    assert_eq!(code(Stream::create(dir.path().join("missing"), options::NONE)), Code::BadFileSize);
    let tiny = dir.path().join("tiny");
    std::fs::write(&tiny, [0u8; 63]).unwrap();
    assert_eq!(code(Stream::create(&tiny, options::SERVER)), Code::BadFileSize);
    assert_eq!(code(Stream::create(dir.path(), options::NONE)), Code::UnableToOpenFile);
    let link = dir.path().join("link");
    let f = StreamFile::for_frame(8, 8).unwrap();
    std::os::unix::fs::symlink(f.path(), &link).unwrap();
    assert_eq!(code(Stream::create(&link, options::NONE)), Code::UnableToOpenFile);
    let fifo = dir.path().join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    assert_eq!(code(Stream::create(&fifo, options::NONE)), Code::UnableToOpenFile);
    assert_eq!(code(Stream::create(f.path(), 0x8)), Code::BadArgs);
    // Roles.
    let (server, c0) = Stream::create(f.path(), options::SERVER).unwrap();
    assert_eq!(c0, Code::NoError);
    assert_eq!(server.lock().unwrap_err().code(), Code::IsServer);
    assert_eq!(code(Stream::create(f.path(), options::SERVER)), Code::PeerBusy);
    assert_eq!(server.put_frame(1, 8, 8, &[0; 192]).unwrap_err().code(), Code::Unconnected);
    let (client, c1) = Stream::create(f.path(), options::NOTHREADS).unwrap();
    assert_eq!(c1, Code::NoError);
    assert_eq!(client.put_frame(1, 8, 8, &[0; 192]).unwrap_err().code(), Code::IsNotServer);
    // Frames.
    assert_eq!(server.put_frame(1, 0, 8, &[]).unwrap_err().code(), Code::BadArgs);
    assert_eq!(server.put_frame(1, 8, 8, &[0; 191]).unwrap_err().code(), Code::BadArgs);
    assert_eq!(server.put_frame(1, 200, 1, &[0; 600]).unwrap_err().code(), Code::FrameTooLarge);
    assert_eq!(client.lock().unwrap_err().code(), Code::NoFrameAvailable);
    server.put_frame(1, 8, 8, &[1; 192]).unwrap();
    server.put_frame(2, 8, 8, &[2; 192]).unwrap();
    assert_eq!(server.put_frame(3, 8, 8, &[3; 192]).unwrap_err().code(), Code::NoBufferAvailable);
    let fr = client.lock().unwrap();
    assert_eq!(fr.number(), 2);
    assert_eq!(fr.pixels().unwrap(), &[2u8; 192][..]);
    server.put_frame(3, 8, 8, &[3; 192]).unwrap();
    let fr3 = client.lock().unwrap();
    assert_eq!(fr3.pixels().unwrap(), &[3u8; 192][..]);
    assert_eq!(fr.pixels().unwrap(), &[2u8; 192][..], "two frames held at once, each its own");
    assert_eq!(client.lock().unwrap_err().code(), Code::Locked);
    assert_eq!(code(Stream::create(f.path(), options::NOTHREADS)), Code::PeerBusy);
    fr3.unlock().unwrap();
    drop(fr);
    client.close();
    assert_eq!(client.lock().unwrap_err().code(), Code::Closed);
    let (_again, c2) = Stream::create(f.path(), options::NOTHREADS).unwrap();
    assert_eq!(c2, Code::NoError);
}

/// A client that connects between the server's two INIT stores takes over the
/// first buffer; the second then turns INIT. The client must connect it too,
/// or the server waits for a client forever.
#[test]
fn a_client_connecting_during_the_servers_reset_still_connects() {
    use shmimage::layout::{field, Layout};
    use std::os::unix::fs::FileExt;
    let f = StreamFile::for_frame(8, 8).unwrap();
    let layout = Layout::for_file_len(std::fs::metadata(f.path()).unwrap().len()).unwrap();
    let poke = std::fs::OpenOptions::new().write(true).open(f.path()).unwrap();
    let set =
        |buf: usize, state: u32| poke.write_at(&state.to_le_bytes(), layout.header_offset(buf) + field::STATE).unwrap();
    let s = Server::create(f.path(), ServerOptions::default()).unwrap();
    set(1, 0); // the moment after the server's first store: [INIT, [old SERVER]]
    let c = Client::connect(f.path(), no_thread()).unwrap();
    assert!(c.reconnected());
    set(1, 4); // the server's second store
    assert_eq!(c.lock().unwrap_err().code(), Code::NoFrameAvailable);
    s.wait_for_client(Some(Duration::from_secs(1))).expect("the client connected the second buffer");
    s.put_frame(1, 8, 8, &pattern(8, 8, 1)).unwrap();
    assert_eq!(c.lock().unwrap().number(), 1);
}

#[test]
fn a_server_can_wait_until_its_frame_is_taken() {
    let f = StreamFile::for_frame(8, 8).unwrap();
    let s = Server::create(f.path(), ServerOptions::default()).unwrap();
    let c = Client::connect(f.path(), no_thread()).unwrap();
    s.put_frame(1, 8, 8, &pattern(8, 8, 1)).unwrap();
    assert!(!s.wait_until_taken(Some(Duration::from_millis(5))).unwrap(), "not taken yet");
    drop(c.lock().unwrap());
    assert!(s.wait_until_taken(Some(Duration::from_millis(5))).unwrap());
    s.put_frame(2, 8, 8, &pattern(8, 8, 2)).unwrap();
    drop(c);
    assert_eq!(s.wait_until_taken(Some(Duration::from_secs(1))).unwrap_err().code(), Code::Unconnected);
}

#[test]
fn loans_commit_or_give_back_without_borrowing_the_server() {
    let f = StreamFile::for_frame(4, 4).unwrap();
    let s = Server::create(f.path(), ServerOptions::default()).unwrap();
    let c = Client::connect(f.path(), no_thread()).unwrap();
    let given_back = s.loan(4, 4).unwrap();
    let mut kept = s.loan(4, 4).unwrap();
    // Both buffers are lent: the server itself is still usable, and says so.
    assert_eq!(s.put_frame(1, 4, 4, &[0; 48]).unwrap_err().code(), Code::NoBufferAvailable);
    given_back.abandon();
    kept.pixels_mut().unwrap().fill(5);
    kept.commit(9).unwrap();
    let fr = c.lock().unwrap();
    assert_eq!((fr.number(), fr.pixels().unwrap()), (9, &[5u8; 48][..]));
    drop(fr);
    s.put_frame(10, 4, 4, &[6; 48]).unwrap(); // the abandoned buffer came back
    assert_eq!(c.lock().unwrap().number(), 10);
}
