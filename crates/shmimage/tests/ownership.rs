//! Issue 11, engine side: who owns the shared memory. Each test is one case
//! of the issue as a user meets it; peers run as real processes (this test
//! binary re-run in a role), `fork()` is real.
#![allow(clippy::unwrap_used)] // test harness: peers and fixtures that fail should fail the test

use std::io::{BufRead, BufReader};
use std::os::unix::fs::FileExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use shmimage::layout::{Layout, HEADER_SIZE};
use shmimage::{Client, ClientOptions, Code, Error, Role, Server, ServerOptions, StreamFile};

/// How long a test waits for something that must happen at once before it
/// calls it a hang (not a timing assertion: only a bound on a broken run).
const HANG: Duration = Duration::from_secs(20);

fn no_thread() -> ClientOptions {
    ClientOptions { monitor_thread: false, ..Default::default() }
}

struct Peer {
    child: Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl Peer {
    fn spawn(role: &str, path: &std::path::Path) -> Peer {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["child_role", "--exact", "--ignored", "--nocapture", "--test-threads=1", "-q"])
            .env("SHMIMAGE_OWN_ROLE", role)
            .env("SHMIMAGE_OWN_PATH", path)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut p = Peer { child, lines };
        p.expect("READY");
        p
    }

    fn expect(&mut self, prefix: &str) -> String {
        for line in self.lines.by_ref() {
            let line = line.unwrap();
            if let Some(rest) = line.strip_prefix(prefix) {
                return rest.trim().to_owned();
            }
        }
        panic!("peer ended before printing {prefix}");
    }

    fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A peer process: takes a role on the file, says READY, and holds it until killed.
#[test]
#[ignore = "run as a peer process by the tests in this file"]
fn child_role() {
    let (Ok(role), Some(path)) = (std::env::var("SHMIMAGE_OWN_ROLE"), std::env::var_os("SHMIMAGE_OWN_PATH")) else {
        return;
    };
    let _server;
    let _client;
    match role.as_str() {
        "server" => _server = Server::create(&path, ServerOptions::default()).unwrap(),
        "client" => _client = Client::connect(&path, ClientOptions::default()).unwrap(),
        // A client process (monitor thread running) that forks a worker:
        // the worker drops the stream it inherited and lives on. The worker
        // writes with write(2): after fork() in a threaded process, std's
        // stdout lock may be held by a thread that does not exist there.
        "client-forks" => {
            _client = Client::connect(&path, ClientOptions::default()).unwrap();
            // READY before the fork, so it precedes the worker's line.
            println!("READY");
            // SAFETY: the child only drops engine objects, writes and sleeps.
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                drop(_client);
                let line = format!("WORKER {}\n", std::process::id());
                // SAFETY: a valid buffer of that length.
                unsafe { libc::write(1, line.as_ptr().cast(), line.len()) };
                loop {
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
        other => panic!("unknown role {other}"),
    }
    println!("READY");
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn payload(path: &std::path::Path, index: usize, len: usize) -> Vec<u8> {
    let flen = std::fs::metadata(path).unwrap().len();
    let l = Layout::for_file_len(flen).unwrap();
    let mut v = vec![0u8; len];
    std::fs::File::open(path).unwrap().read_exact_at(&mut v, l.payload_offset(index)).unwrap();
    v
}

/// Case 1: a loan outliving its server (closed or dropped) answers Closed; a
/// pointer kept from before the close writes private memory, never the file.
#[test]
fn a_loan_outliving_its_server_answers_closed_and_never_touches_the_file() {
    let f = StreamFile::for_frame(16, 16).unwrap();
    let s = Server::create(f.path(), ServerOptions::default()).unwrap();
    let c = Client::connect(f.path(), no_thread()).unwrap();
    let mut loan = s.loan(16, 16).unwrap();
    let len = loan.len();
    loan.pixels_mut().unwrap().fill(1);
    let raw = loan.pixels_mut().unwrap().as_mut_ptr();
    let before = [payload(f.path(), 0, len), payload(f.path(), 1, len)];
    drop(s); // closes: the loan's stream is gone
    assert_eq!(loan.pixels_mut().unwrap_err().code(), Code::Closed);
    assert!(!loan.is_valid());
    // What a face's stale view (a NumPy array, a C pointer) would do.
    // SAFETY: the address range stays mapped while the loan holds the stream's
    // inner object; after close it is private memory of this process.
    unsafe { std::ptr::write_bytes(raw, 7, len) };
    assert_eq!([payload(f.path(), 0, len), payload(f.path(), 1, len)], before, "no byte reached the file");
    assert_eq!(loan.commit(5).unwrap_err().code(), Code::Closed);
    assert_eq!(c.lock().unwrap_err().code(), Code::NoFrameAvailable, "nothing was published");
    // The role was given back at close: a new server takes the file.
    let s2 = Server::create(f.path(), ServerOptions::default()).unwrap();
    assert_eq!(s2.loan(16, 16).unwrap_err().code(), Code::Unconnected, "the new server reset the file");
}

/// Case 1, client side: a frame outliving its client answers Closed.
#[test]
fn a_frame_outliving_its_client_answers_closed() {
    let f = StreamFile::for_frame(8, 8).unwrap();
    let s = Server::create(f.path(), ServerOptions::default()).unwrap();
    let c = Client::connect(f.path(), no_thread()).unwrap();
    s.put_frame(1, 8, 8, &[3; 192]).unwrap();
    let fr = c.lock().unwrap();
    let p = fr.pixels().unwrap().as_ptr();
    c.close();
    assert_eq!(fr.pixels().unwrap_err().code(), Code::Closed);
    assert_eq!(c.lock().unwrap_err().code(), Code::Closed);
    assert_eq!(c.wait_frame(None).unwrap_err().code(), Code::Closed);
    // SAFETY: mapped (privately) while `fr` holds the client's inner object.
    let b = unsafe { p.read_volatile() };
    assert_eq!(b, 0, "after close the view reads private zero pages, not the stream");
    assert_eq!(fr.unlock().unwrap_err().code(), Code::Closed);
    assert_eq!(s.put_frame(2, 8, 8, &[4; 192]).unwrap_err().code(), Code::Unconnected);
}

/// Case 2: a second live client or server is refused, naming role, file and
/// pid; once the peer is killed its role is taken over.
#[test]
fn a_second_live_peer_is_refused_with_its_pid_and_a_dead_ones_role_is_taken_over() {
    let f = StreamFile::for_frame(32, 32).unwrap();
    let mut server = Peer::spawn("server", f.path());
    let mut client = Peer::spawn("client", f.path());
    for (role, e) in [
        (Role::Client, Client::connect(f.path(), no_thread()).unwrap_err()),
        (Role::Server, Server::create(f.path(), ServerOptions::default()).unwrap_err()),
    ] {
        let pid = match role {
            Role::Client => client.child.id(),
            Role::Server => server.child.id(),
        };
        assert_eq!(e.code(), Code::PeerBusy, "{e}");
        let Error::PeerBusy { role: r, path, pid: p } = &e else { panic!("{e:?}") };
        assert_eq!((*r, path.as_path(), *p), (role, f.path(), Some(pid)));
        let text = e.to_string();
        assert!(text.contains(&role.to_string()) && text.contains(&pid.to_string()), "{text}");
    }
    let snap = shmimage::inspect(f.path()).unwrap();
    assert_eq!((snap.server_pid, snap.client_pid), (Some(server.child.id()), Some(client.child.id())));
    client.kill9();
    let c = Client::connect(f.path(), ClientOptions::default()).unwrap();
    assert!(c.reconnected(), "a dead client's role is taken over");
    server.kill9();
    let s = Server::create(f.path(), ServerOptions::default()).unwrap();
    s.wait_for_client(Some(HANG)).unwrap();
    s.put_frame(9, 32, 32, &[9; 32 * 32 * 3]).unwrap();
    assert_eq!(c.wait_frame(Some(HANG)).unwrap().number(), 9);
}

/// Case 3: close from another thread ends every wait at once with Closed
/// (a client's `wait_frame(None)` in two threads, a server's buffer wait).
#[test]
fn close_from_another_thread_ends_every_wait_with_closed() {
    let f = StreamFile::for_frame(8, 8).unwrap();
    let s = std::sync::Arc::new(Server::create(f.path(), ServerOptions::default()).unwrap());
    let c = std::sync::Arc::new(Client::connect(f.path(), ClientOptions::default()).unwrap());
    let (tx, rx) = mpsc::channel();
    for _ in 0..2 {
        let (c, tx) = (c.clone(), tx.clone());
        std::thread::spawn(move || tx.send(c.wait_frame(None).map(|_| ()).unwrap_err().code()).unwrap());
    }
    c.close();
    for _ in 0..2 {
        assert_eq!(rx.recv_timeout(HANG).expect("a waiter hung after close"), Code::Closed);
    }
    // The server: the client holds both buffers, a put waits forever for one.
    let c2 = Client::connect(f.path(), no_thread()).unwrap_or_else(|e| panic!("{e}"));
    s.put_frame(1, 8, 8, &[1; 192]).unwrap();
    let a = c2.lock().unwrap();
    s.put_frame(2, 8, 8, &[2; 192]).unwrap();
    let b = c2.lock().unwrap();
    let s2 = s.clone();
    let t = std::thread::spawn(move || s2.wait_for_buffer(None).unwrap_err().code());
    let s3 = s.clone();
    let t2 = std::thread::spawn(move || s3.wait_for_buffer(None).unwrap_err().code());
    std::thread::sleep(Duration::from_millis(20));
    s.close();
    assert_eq!(t.join().unwrap(), Code::Closed);
    assert_eq!(t2.join().unwrap(), Code::Closed);
    assert_eq!(s.put_frame(3, 8, 8, &[3; 192]).unwrap_err().code(), Code::Closed);
    drop((a, b));
}

/// A cancel ends the waits in progress and leaves the stream usable.
#[test]
fn cancel_ends_waits_in_progress_and_the_stream_goes_on() {
    let f = StreamFile::for_frame(8, 8).unwrap();
    let s = Server::create(f.path(), ServerOptions::default()).unwrap();
    let c = std::sync::Arc::new(Client::connect(f.path(), no_thread()).unwrap());
    let c2 = c.clone();
    let t = std::thread::spawn(move || c2.wait_frame(None).map(|_| ()).unwrap_err().code());
    let canceller = c.canceller();
    // Cancel until the waiter has seen one (it may not have started yet).
    let code = loop {
        canceller.cancel();
        if t.is_finished() {
            break t.join().unwrap();
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    assert_eq!(code, Code::Cancelled);
    s.put_frame(1, 8, 8, &[1; 192]).unwrap();
    assert_eq!(c.wait_frame(Some(HANG)).unwrap().number(), 1);
    assert_eq!(c.wait_frame(Some(Duration::ZERO)).unwrap_err().code(), Code::NoFrameAvailable, "a poll");
}

/// Case 3: two threads locking frames of one client never see another
/// frame's pixels while they hold a frame.
#[test]
fn two_threads_on_one_client_never_see_another_frames_pixels() {
    let f = StreamFile::for_frame(64, 32).unwrap();
    let s = std::sync::Arc::new(Server::create(f.path(), ServerOptions::default()).unwrap());
    let c = std::sync::Arc::new(Client::connect(f.path(), ClientOptions::default()).unwrap());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let producer = {
        let (s, stop) = (s.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n = n.wrapping_add(1);
                let _ = s.put_frame(n, 64, 32, &vec![n as u8; 64 * 32 * 3]);
            }
        })
    };
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let c = c.clone();
            std::thread::spawn(move || {
                let mut seen = 0;
                while seen < 300 {
                    let Ok(fr) = c.wait_frame(Some(HANG)) else { continue };
                    let want = fr.number() as u8;
                    for _ in 0..3 {
                        let px = fr.pixels().unwrap();
                        assert!(px.iter().all(|&b| b == want), "frame {} changed under its holder", fr.number());
                        std::thread::yield_now();
                    }
                    seen += 1;
                }
            })
        })
        .collect();
    for r in readers {
        r.join().unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    producer.join().unwrap();
}

/// Case 4: after fork() a child's inherited streams answer Forked, and its
/// drop (monitor thread absent in the child) neither panics nor disconnects
/// the parent's stream.
#[test]
fn a_fork_child_finds_its_streams_inert_and_leaves_the_parents_alone() {
    for monitor_thread in [true, false] {
        fork_once(ClientOptions { monitor_thread, ..Default::default() });
    }
}

fn fork_once(options: ClientOptions) {
    let f = StreamFile::for_frame(8, 8).unwrap();
    let s = Server::create(f.path(), ServerOptions::default()).unwrap();
    let c = Client::connect(f.path(), options).unwrap();
    s.put_frame(1, 8, 8, &[1; 192]).unwrap();
    let held = c.wait_frame(Some(HANG)).unwrap();
    // SAFETY: the child only calls the engine and _exit; the engine's fork
    // handler ran, and the allocator is fork-safe in glibc.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        let ok = s.put_frame(2, 8, 8, &[2; 192]).map_err(|e| e.code()) == Err(Code::Forked)
            && c.lock().map(|_| ()).map_err(|e| e.code()) == Err(Code::Forked)
            && held.pixels().map(|_| ()).map_err(|e| e.code()) == Err(Code::Forked)
            && s.loan(8, 8).map(|_| ()).map_err(|e| e.code()) == Err(Code::Forked);
        drop(held);
        drop(c);
        drop(s);
        // SAFETY: ends the child without running the parent's test harness.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    let mut status = 0;
    // SAFETY: waits for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "child status {status:#x}");
    assert_eq!(held.pixels().unwrap(), &[1u8; 192][..], "the parent's frame is still locked and intact");
    drop(held);
    s.put_frame(3, 8, 8, &[3; 192]).expect("the parent's stream is still connected");
    assert_eq!(c.wait_frame(Some(HANG)).unwrap().number(), 3);
}

/// Case 4: a worker forked from a client (its monitor thread running) and
/// still alive does not keep the dead client's role: when it drops the stream
/// it inherited, it lets go of the descriptor and the mapping (the monitor's
/// share of the stream can never be dropped in the child, where that thread
/// does not exist). A new client takes over.
#[test]
fn a_forked_worker_does_not_keep_a_dead_clients_role() {
    let f = StreamFile::for_frame(8, 8).unwrap();
    let _s = Server::create(f.path(), ServerOptions::default()).unwrap();
    let mut client = Peer::spawn("client-forks", f.path());
    let worker: i32 = client.expect("WORKER").parse().unwrap();
    let e = Client::connect(f.path(), no_thread()).unwrap_err();
    assert_eq!(e.code(), Code::PeerBusy);
    client.kill9();
    let taken = Client::connect(f.path(), no_thread());
    // SAFETY: ends the worker this test started (through the peer).
    unsafe { libc::kill(worker, libc::SIGKILL) };
    let c = taken.unwrap_or_else(|e| panic!("the worker kept the dead client's role: {e}"));
    assert!(c.reconnected());
}

/// Case 6: a file grown while a server has it open is reported to both
/// ends (before, a later client used other offsets and both stalled).
#[test]
fn a_file_grown_while_open_is_reported_not_a_stall() {
    let f = StreamFile::for_frame(8, 8).unwrap();
    let s = Server::create(f.path(), ServerOptions::default()).unwrap();
    let c = Client::connect(f.path(), no_thread()).unwrap();
    let len = std::fs::metadata(f.path()).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(f.path()).unwrap().set_len(len * 4).unwrap();
    let e = s.put_frame(1, 8, 8, &[1; 192]).unwrap_err();
    assert_eq!(e.code(), Code::FileResized, "{e}");
    assert!(e.to_string().contains(&(len * 4).to_string()), "{e}");
    assert_eq!(c.lock().unwrap_err().code(), Code::FileResized);
    assert_eq!(s.wait_for_client(Some(HANG)).unwrap_err().code(), Code::FileResized);
}

/// Case 8: the natural loop. Each frame stays locked until its holder drops
/// it, the next one is locked in the other buffer meanwhile, and neither
/// changes under its holder.
#[test]
fn the_previous_frame_stays_locked_while_the_next_is_taken() {
    let f = StreamFile::for_frame(8, 8).unwrap();
    let s = Server::create(f.path(), ServerOptions::default()).unwrap();
    let c = Client::connect(f.path(), no_thread()).unwrap();
    let mut previous: Option<shmimage::Frame> = None;
    for n in 1..=20u32 {
        s.put_frame(n, 8, 8, &[n as u8; 192]).unwrap();
        let fr = c.lock().unwrap();
        assert_eq!(fr.number(), n);
        if let Some(p) = &previous {
            assert_eq!(p.pixels().unwrap(), &[(n - 1) as u8; 192][..], "the previous frame is intact");
            // Both buffers are held: the server must drop, not overwrite.
            assert_eq!(s.put_frame(99, 8, 8, &[99; 192]).unwrap_err().code(), Code::NoBufferAvailable);
            assert_eq!(c.lock().unwrap_err().code(), Code::Locked, "a third lock has no buffer");
        }
        assert_eq!(fr.pixels().unwrap(), &[n as u8; 192][..]);
        previous = Some(fr); // drops (unlocks) the frame before
    }
}

/// Case 9: an OS error keeps its kind as the source.
#[test]
fn os_errors_keep_their_kind() {
    let e = Server::create("/dev/null/not-a-dir", ServerOptions::default()).unwrap_err();
    assert_eq!(e.code(), Code::UnableToOpenFile);
    let io = std::error::Error::source(&e).and_then(|s| s.downcast_ref::<std::io::Error>()).expect("an io source");
    assert_eq!(io.raw_os_error(), Some(libc::ENOTDIR), "{e}");
    assert!(!e.to_string().contains("Some("), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let e = Client::connect(dir.path(), no_thread()).unwrap_err();
    assert!(e.to_string().contains("directory"), "{e}");
    let _ = HEADER_SIZE;
}

/// A small tmpfs of our own (needs the right to mount, i.e. root; elsewhere
/// the test prints a NOTICE and checks nothing), unmounted on drop.
struct SmallTmpfs {
    dir: tempfile::TempDir,
}

impl SmallTmpfs {
    fn mount(bytes: u64) -> Option<SmallTmpfs> {
        use std::ffi::CString;
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let target = CString::new(dir.path().as_os_str().as_bytes()).unwrap();
        let opts = CString::new(format!("size={bytes},mode=0700")).unwrap();
        // SAFETY: NUL-terminated strings that outlive the call.
        let r = unsafe { libc::mount(c"tmpfs".as_ptr(), target.as_ptr(), c"tmpfs".as_ptr(), 0, opts.as_ptr().cast()) };
        if r != 0 {
            // Not root (or no mount rights in this container): say so loudly.
            eprintln!(
                "NOTICE: cannot mount a tmpfs ({}); the full-file-system test is skipped",
                std::io::Error::last_os_error()
            );
            return None;
        }
        Some(SmallTmpfs { dir })
    }
}

impl Drop for SmallTmpfs {
    fn drop(&mut self) {
        use std::ffi::CString;
        use std::os::unix::ffi::OsStrExt;
        let target = CString::new(self.dir.path().as_os_str().as_bytes()).unwrap();
        // SAFETY: a NUL-terminated path; MNT_DETACH never blocks.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    }
}

/// Case 6: a full tmpfs is NO_SPACE at once, naming the sizes, and never a
/// truncation: creating a file that cannot fit leaves nothing; a server on a
/// sparse file that cannot get its pages is refused at start; a client that
/// faults on a page the file system cannot supply says "no space".
#[test]
fn a_full_file_system_is_no_space_never_a_truncation() {
    let Some(fs) = SmallTmpfs::mount(1 << 20) else { return };
    let dir = fs.dir.path();
    // Too large for the file system: refused before anything exists.
    let e = StreamFile::create_at(dir.join("big.shm"), 4 << 20).unwrap_err();
    assert_eq!(e.code(), Code::NoSpace, "{e}");
    assert!(e.to_string().contains(&(4u64 << 20).to_string()), "{e}");
    assert!(!dir.join("big.shm").exists());
    // A sparse file (made by another tool), then the file system fills up.
    let sparse = dir.join("sparse.shm");
    std::fs::File::create(&sparse).unwrap().set_len(256 << 10).unwrap();
    let filler = dir.join("filler");
    let mut w = std::fs::File::create(&filler).unwrap();
    let chunk = vec![1u8; 64 << 10];
    while std::io::Write::write_all(&mut w, &chunk).is_ok() {}
    drop(w);
    let e = Server::create(&sparse, ServerOptions::default()).unwrap_err();
    assert_eq!(e.code(), Code::NoSpace, "{e}");
    assert!(!e.to_string().contains("truncat"), "{e}");
    // A client on it faults on its first state change: repaired by the SIGBUS
    // guard and reported as no space, the file having its full size.
    let c = Client::connect(&sparse, no_thread()).unwrap_or_else(|e| panic!("{e}"));
    let e = c.lock().unwrap_err();
    assert_eq!(e.code(), Code::NoSpace, "{e}");
    assert!(!c.file_truncated());
    drop(c);
    std::fs::remove_file(&filler).unwrap();
}

/// A frame held across a server restart is over: the new server owns its
/// buffer and may write it, so the frame answers StreamReset instead of
/// showing the new server's pixels.
#[test]
fn a_frame_held_across_a_server_restart_answers_stream_reset() {
    let f = StreamFile::for_frame(8, 8).unwrap();
    let s = Server::create(f.path(), ServerOptions::default()).unwrap();
    let c = Client::connect(f.path(), no_thread()).unwrap();
    s.put_frame(1, 8, 8, &[1; 192]).unwrap();
    let fr = c.lock().unwrap();
    drop(s);
    let s2 = Server::create(f.path(), ServerOptions::default()).unwrap();
    assert_eq!(fr.pixels().unwrap_err().code(), Code::StreamReset);
    assert_eq!(c.lock().unwrap_err().code(), Code::NoFrameAvailable, "reconnects");
    assert_eq!(fr.pixels().unwrap_err().code(), Code::StreamReset);
    s2.put_frame(2, 8, 8, &[2; 192]).unwrap();
    let fr2 = c.lock().unwrap();
    assert_eq!((fr2.number(), fr2.pixels().unwrap()), (2, &[2u8; 192][..]));
    assert_eq!(fr.unlock().unwrap_err().code(), Code::StreamReset);
    assert_eq!(fr2.pixels().unwrap(), &[2u8; 192][..], "the old frame's unlock did not touch the new one");
}

/// A hostile process flips the state of a buffer this client holds back to
/// CLIENT: the engine never hands out a second handle to that buffer (two
/// handles would let one unlock the buffer under the other's reader).
#[test]
fn a_held_buffer_flipped_by_another_process_is_never_locked_twice() {
    let f = StreamFile::for_frame(8, 8).unwrap();
    let s = Server::create(f.path(), ServerOptions::default()).unwrap();
    let c = Client::connect(f.path(), no_thread()).unwrap();
    s.put_frame(1, 8, 8, &[1; 192]).unwrap();
    let fr = c.lock().unwrap();
    let snap = shmimage::inspect(f.path()).unwrap();
    let held = snap.buffers.iter().position(|b| b.state() == Some(shmimage::state::BufferState::ClientLocked)).unwrap();
    let attacker = std::fs::OpenOptions::new().write(true).open(f.path()).unwrap();
    let at = snap.buffers[held].header_offset + shmimage::layout::field::STATE;
    attacker.write_at(&2u32.to_le_bytes(), at).unwrap();
    for _ in 0..3 {
        match c.lock() {
            Ok(other) => panic!("locked frame {} from a buffer already held", other.number()),
            Err(e) => assert_eq!(e.code(), Code::NoFrameAvailable),
        }
    }
    assert_eq!(fr.number(), 1);
}
