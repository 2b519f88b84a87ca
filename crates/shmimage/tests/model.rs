//! An exhaustive model of the buffer protocol: one server thread and one
//! client thread over two state words, every interleaving of their atomic
//! steps explored (depth-first, with a visited set), no file and no timing.
//!
//! The decisions are the engine's own code, called here: which free buffer
//! the server takes (`state::pick_free`), which frame a lock takes and which
//! it gives back (`state::lock_choice`, `state::older_frame`), when a frame
//! left beside a locked one is stale (`state::is_stale`), and every state
//! change (`Transition::allowed_from` / `to`). What remains modelled by hand
//! is the order of the atomic steps around them.
//!
//! Modelled, step by step as the engine does it (server.rs, client.rs):
//! - server `put_frame` of one-band frames: load both states, take the least
//!   recently written SERVER buffer by CAS (Take), write the header, publish
//!   by CAS (Publish), FUTEX_WAKE; on NO_BUFFERAVAILABLE, `wait_for_buffer`:
//!   snapshot, re-check, sleep; a loan dropped uncommitted (Abandon) once;
//! - client `wait_frame` without the monitor thread: snapshot the states,
//!   `lock` = drain (two whole frames: Release the older, wake) then load the
//!   states, keep the newest whole frame (Release the older, wake), CAS Lock,
//!   give back an older whole frame found in the other buffer; read the
//!   pixels; Unlock by CAS, wake; on no frame, sleep on the snapshot;
//! - futex: `futex_waitv` on both words is one atomic check-and-sleep, a wake
//!   ends it. The engine's 1 ms re-check cap is *not* modelled, so a wake the
//!   protocol forgets shows up as a deadlock instead of a 1 ms delay.
//!
//! Checked in every reachable state: every CAS is a legal `Transition`
//! (shmimage::state), no buffer is held by both sides, the holder of a buffer
//! finds it in the state that says so, frames are locked in increasing order,
//! and some thread can always move until both are done (no deadlock, no lost
//! wake-up). Memory is sequentially consistent here; the engine's orderings
//! (release CAS, acquire loads) are argued in docs/protocol.md, not modelled.
//! Not modelled: bands, reconnect/disconnect/reclaim, hostile writers (those
//! are covered by hostile.rs and the two-process tests).

use std::collections::HashSet;

use shmimage::state::{self, BufferState, LockChoice, Transition};

const SERVER: u8 = BufferState::Server as u8;
const SERVER_LOCKED: u8 = BufferState::ServerLocked as u8;
const CLIENT: u8 = BufferState::Client as u8;
const CLIENT_LOCKED: u8 = BufferState::ClientLocked as u8;

#[derive(Clone, Copy)]
struct Config {
    frames: u8,
    /// The engine's lock takes the newest of two whole frames; the first one
    /// (the bug fixed in this issue) lets an older frame follow a newer.
    lock_newest: bool,
    /// Wake after publishing (turning it off must produce a lost wake-up).
    wake_on_publish: bool,
    /// After locking, give back an older whole frame left in the other
    /// buffer (the two state loads are not one snapshot; found by this model).
    recheck_after_lock: bool,
}

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
struct State {
    word: [u8; 2],
    /// Header frame numbers (written by the server while it holds a buffer).
    number: [u8; 2],
    s: Server,
    c: Client,
}

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
struct Server {
    pc: u8,
    n: u8,
    snap: [u8; 2],
    idx: u8,
    held: Option<u8>,
    /// Which buffer was written last (to take the least recently written).
    last: u8,
    abandoned: bool,
    asleep: bool,
}

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
struct Client {
    pc: u8,
    seen: [u8; 2],
    snap: [u8; 2],
    idx: u8,
    held: Option<u8>,
    last_locked: u8,
    asleep: bool,
}

// Server program counters.
const S_LOAD0: u8 = 0;
const S_LOAD1: u8 = 1;
const S_TAKE: u8 = 2;
const S_WRITE: u8 = 3;
const S_PUBLISH: u8 = 4;
const S_ABANDON: u8 = 5;
const S_WAKE: u8 = 6;
const S_WSNAP0: u8 = 7;
const S_WSNAP1: u8 = 8;
const S_SLEEP: u8 = 9;
const S_ASLEEP: u8 = 10;
const S_DONE: u8 = 11;
const S_WAKE_RETRY: u8 = 12;

// Client program counters.
const C_SEEN0: u8 = 0;
const C_SEEN1: u8 = 1;
const C_D0: u8 = 2;
const C_D1: u8 = 3;
const C_DRELEASE: u8 = 4;
const C_L0: u8 = 5;
const C_L1: u8 = 6;
const C_LRELEASE: u8 = 7;
const C_LOCK: u8 = 8;
const C_READ: u8 = 9;
const C_UNLOCK: u8 = 10;
const C_UNLOCK_WAKE: u8 = 11;
const C_SLEEP: u8 = 12;
const C_ASLEEP: u8 = 13;
const C_DONE: u8 = 14;
const C_DWAKE: u8 = 15;
const C_LWAKE: u8 = 16;
const C_OTHER: u8 = 17;
const C_ORELEASE: u8 = 18;
const C_OWAKE: u8 = 19;

/// One compare-and-swap as `Mapping::transition` does it, checked for legality.
fn cas(st: &mut State, i: u8, from: u8, t: Transition) -> Result<bool, String> {
    if !t.allowed_from(BufferState::from_word(u32::from(from))) {
        return Err(format!("{t:?} from {from} is not a legal move"));
    }
    let w = &mut st.word[i as usize];
    if *w == from {
        *w = t.to() as u8;
        Ok(true)
    } else {
        Ok(false)
    }
}

/// The header numbers as the engine's decision functions take them.
fn numbers(st: &State) -> [u32; 2] {
    st.number.map(u32::from)
}

/// Of two buffers holding whole frames, the one with the older frame: the
/// engine's own choice (`state::older_frame`).
fn older(st: &State) -> u8 {
    state::older_frame(numbers(st)) as u8
}

fn server_step(st: &State, cfg: Config) -> Result<Vec<State>, String> {
    let mut n = st.clone();
    let s = &st.s;
    match s.pc {
        S_DONE | S_ASLEEP => return Ok(vec![]),
        S_LOAD0 => {
            n.s.snap[0] = st.word[0];
            n.s.pc = S_LOAD1;
        }
        S_LOAD1 => {
            n.s.snap[1] = st.word[1];
            // The engine's own choice: the least recently written free buffer.
            let last_written = [u64::from(s.last == 0), u64::from(s.last == 1)];
            match state::pick_free(n.s.snap.map(u32::from), last_written) {
                Some(i) => {
                    n.s.idx = i as u8;
                    n.s.pc = S_TAKE;
                }
                None => n.s.pc = S_WSNAP0,
            }
        }
        S_TAKE => {
            n.s.pc = if cas(&mut n, s.idx, SERVER, Transition::Take)? {
                n.s.held = Some(s.idx);
                S_WRITE
            } else {
                S_LOAD0
            };
        }
        S_WRITE => {
            n.number[s.idx as usize] = s.n;
            // A loan may be dropped without commit, once per run.
            if !s.abandoned {
                let mut a = n.clone();
                a.s.pc = S_ABANDON;
                n.s.pc = S_PUBLISH;
                return Ok(vec![n, a]);
            }
            n.s.pc = S_PUBLISH;
        }
        S_PUBLISH => {
            if !cas(&mut n, s.idx, SERVER_LOCKED, Transition::Publish)? {
                return Err("publish failed: someone moved a SERVER_LOCKED buffer".into());
            }
            n.s.held = None;
            n.s.last = s.idx;
            n.s.pc = if cfg.wake_on_publish { S_WAKE } else { S_WAKE_RETRY };
        }
        S_ABANDON => {
            if !cas(&mut n, s.idx, SERVER_LOCKED, Transition::Abandon)? {
                return Err("abandon failed".into());
            }
            n.s.held = None;
            n.s.abandoned = true;
            n.c.asleep = false;
            n.s.pc = S_LOAD0;
        }
        S_WAKE => {
            n.c.asleep = false;
            n.s.pc = S_WAKE_RETRY;
        }
        S_WAKE_RETRY => {
            n.s.n += 1;
            n.s.pc = if n.s.n > cfg.frames { S_DONE } else { S_LOAD0 };
        }
        S_WSNAP0 => {
            n.s.snap[0] = st.word[0];
            n.s.pc = S_WSNAP1;
        }
        S_WSNAP1 => {
            n.s.snap[1] = st.word[1];
            n.s.pc = if n.s.snap.contains(&SERVER) { S_LOAD0 } else { S_SLEEP };
        }
        S_SLEEP => {
            // futex_waitv: returns at once if a word moved, else sleeps.
            if st.word != s.snap {
                n.s.pc = S_LOAD0;
            } else {
                n.s.asleep = true;
                n.s.pc = S_ASLEEP;
            }
        }
        other => return Err(format!("server pc {other}")),
    }
    Ok(vec![n])
}

fn client_step(st: &State, cfg: Config) -> Result<Vec<State>, String> {
    let mut n = st.clone();
    let c = &st.c;
    match c.pc {
        C_DONE | C_ASLEEP => return Ok(vec![]),
        C_SEEN0 => {
            n.c.seen[0] = st.word[0];
            n.c.pc = C_SEEN1;
        }
        C_SEEN1 => {
            n.c.seen[1] = st.word[1];
            n.c.pc = C_D0;
        }
        C_D0 => {
            n.c.snap[0] = st.word[0];
            n.c.pc = C_D1;
        }
        C_D1 => {
            n.c.snap[1] = st.word[1];
            n.c.pc = if n.c.snap == [CLIENT, CLIENT] { C_DRELEASE } else { C_L0 };
        }
        C_DRELEASE => {
            // Both are CLIENT: the client owns them, so the headers are stable.
            let old = older(st);
            n.c.idx = old;
            cas(&mut n, old, CLIENT, Transition::Release)?;
            n.c.pc = C_DWAKE;
        }
        C_DWAKE => {
            n.s.asleep = false;
            n.c.pc = C_D0;
        }
        C_L0 => {
            n.c.snap[0] = st.word[0];
            n.c.pc = C_L1;
        }
        C_L1 => {
            n.c.snap[1] = st.word[1];
            // The engine's own decision (`state::lock_choice`); the headers of
            // CLIENT buffers are stable, as the client owns them.
            let whole = n.c.snap.map(|w| w == CLIENT);
            match state::lock_choice(whole, numbers(st)) {
                LockChoice::Nothing => n.c.pc = C_SLEEP,
                LockChoice::Lock(i) => {
                    n.c.idx = i as u8;
                    n.c.pc = C_LOCK;
                }
                LockChoice::ReleaseThenLock { .. } if cfg.lock_newest => n.c.pc = C_LRELEASE,
                // The mutation the checker must catch: lock without dropping the older.
                LockChoice::ReleaseThenLock { .. } => {
                    n.c.idx = 0;
                    n.c.pc = C_LOCK;
                }
            }
        }
        C_LRELEASE => {
            let old = older(st);
            cas(&mut n, old, CLIENT, Transition::Release)?;
            n.c.idx = 1 - old;
            n.c.pc = C_LWAKE;
        }
        C_LWAKE => {
            n.s.asleep = false;
            n.c.pc = C_LOCK;
        }
        C_LOCK => {
            if !cas(&mut n, c.idx, CLIENT, Transition::Lock)? {
                return Err("lock failed: someone moved a CLIENT buffer".into());
            }
            let num = st.number[c.idx as usize];
            if num <= c.last_locked {
                return Err(format!("frame {num} locked after frame {}", c.last_locked));
            }
            n.c.last_locked = num;
            n.c.held = Some(c.idx);
            n.c.pc = if cfg.recheck_after_lock { C_OTHER } else { C_READ };
        }
        C_OTHER => {
            let o = 1 - c.idx;
            let stale = st.word[o as usize] == CLIENT
                && state::is_stale(u32::from(c.last_locked), u32::from(st.number[o as usize]));
            n.c.pc = if stale { C_ORELEASE } else { C_READ };
        }
        C_ORELEASE => {
            cas(&mut n, 1 - c.idx, CLIENT, Transition::Release)?;
            n.c.pc = C_OWAKE;
        }
        C_OWAKE => {
            n.s.asleep = false;
            n.c.pc = C_READ;
        }
        C_READ => n.c.pc = C_UNLOCK,
        C_UNLOCK => {
            if !cas(&mut n, c.idx, CLIENT_LOCKED, Transition::Unlock)? {
                return Err("unlock failed".into());
            }
            n.c.held = None;
            n.c.pc = C_UNLOCK_WAKE;
        }
        C_UNLOCK_WAKE => {
            n.s.asleep = false;
            n.c.pc = if c.last_locked == cfg.frames { C_DONE } else { C_SEEN0 };
        }
        C_SLEEP => {
            if st.word != c.seen {
                n.c.pc = C_SEEN0;
            } else {
                n.c.asleep = true;
                n.c.pc = C_ASLEEP;
            }
        }
        other => return Err(format!("client pc {other}")),
    }
    Ok(vec![n])
}

/// A woken sleeper goes back to re-check (the step after FUTEX_WAKE).
fn wake_ups(st: &State) -> Vec<State> {
    let mut v = Vec::new();
    if st.s.pc == S_ASLEEP && !st.s.asleep {
        let mut n = st.clone();
        n.s.pc = S_LOAD0;
        v.push(n);
    }
    if st.c.pc == C_ASLEEP && !st.c.asleep {
        let mut n = st.clone();
        n.c.pc = C_SEEN0;
        v.push(n);
    }
    v
}

fn invariants(st: &State) -> Result<(), String> {
    if let (Some(a), Some(b)) = (st.s.held, st.c.held) {
        if a == b {
            return Err(format!("buffer {a} held by both sides"));
        }
    }
    if let Some(i) = st.s.held {
        if st.word[i as usize] != SERVER_LOCKED {
            return Err(format!("server holds buffer {i} in state {}", st.word[i as usize]));
        }
    }
    if let Some(i) = st.c.held {
        if st.word[i as usize] != CLIENT_LOCKED {
            return Err(format!("client holds buffer {i} in state {}", st.word[i as usize]));
        }
    }
    Ok(())
}

/// Explore every interleaving; the number of distinct states on success.
fn check(cfg: Config) -> Result<usize, String> {
    let init = State {
        // Connected: the client's connect moved both INIT -> SERVER.
        word: [SERVER, SERVER],
        number: [0, 0],
        s: Server { pc: S_LOAD0, n: 1, snap: [0; 2], idx: 0, held: None, last: 1, abandoned: false, asleep: false },
        c: Client { pc: C_SEEN0, seen: [0; 2], snap: [0; 2], idx: 0, held: None, last_locked: 0, asleep: false },
    };
    let mut seen = HashSet::new();
    let mut stack = vec![init];
    while let Some(st) = stack.pop() {
        if !seen.insert(st.clone()) {
            continue;
        }
        invariants(&st).map_err(|e| format!("{e} in {st:?}"))?;
        let mut next = server_step(&st, cfg).map_err(|e| format!("{e} in {st:?}"))?;
        next.extend(client_step(&st, cfg).map_err(|e| format!("{e} in {st:?}"))?);
        next.extend(wake_ups(&st));
        if next.is_empty() && !(st.s.pc == S_DONE && st.c.pc == C_DONE) {
            return Err(format!("deadlock (lost wake-up): no thread can move in {st:?}"));
        }
        stack.extend(next);
    }
    Ok(seen.len())
}

const ENGINE: Config = Config { frames: 5, lock_newest: true, wake_on_publish: true, recheck_after_lock: true };

#[test]
fn the_protocol_has_no_double_ownership_no_lost_wake_up_and_no_deadlock() {
    let states = check(ENGINE).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("explored {states} states");
    assert!(states > 1000, "the model explored suspiciously little: {states}");
}

/// The model has teeth: the lock that took the first whole frame instead of
/// the newest (fixed in this issue) is caught. (The re-check after lock
/// alone would also repair it, so it is off here.)
#[test]
fn the_model_catches_an_older_frame_after_a_newer_one() {
    let e = check(Config { lock_newest: false, recheck_after_lock: false, ..ENGINE }).expect_err("must be caught");
    assert!(e.contains("locked after frame"), "{e}");
}

/// The model has teeth: without the re-check after lock, two publishes
/// between the client's two state loads leave an older frame to be locked
/// after a newer one (found by this model; fixed in client.rs).
#[test]
fn the_model_catches_a_frame_missed_between_the_two_state_loads() {
    let e = check(Config { recheck_after_lock: false, ..ENGINE }).expect_err("must be caught");
    assert!(e.contains("locked after frame"), "{e}");
}

/// The model has teeth: a publish that forgets FUTEX_WAKE is a lost wake-up.
#[test]
fn the_model_catches_a_missing_wake() {
    let e = check(Config { wake_on_publish: false, ..ENGINE }).expect_err("must be caught");
    assert!(e.contains("deadlock"), "{e}");
}
