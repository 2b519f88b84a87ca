//! A model check of the native slot state machine: one writer, two readers,
//! a reader that dies while holding a slot, a writer that dies mid-frame and
//! is taken over, and a lossless reader whose marks the writer drops. It runs the engine's own transition functions
//! (`shmimage::native::slot`) on model words that hand control to a
//! scheduler at every access, and explores every interleaving with at most
//! two preemptive context switches (SHMIMAGE_MODEL_PREEMPTIONS=3 for more) (a CHESS-style bound: almost
//! every concurrency bug needs only a few). Interleavings are sequentially
//! consistent; the acquire/release argument for weaker orderings is in
//! docs/native-protocol.md.
//!
//! Checked in every interleaving: a reader that holds a slot and saw sequence
//! S reads exactly frame S's pixels (never a half-written or reused slot);
//! the writer never writes a slot a reader holds; a dead reader's hold is
//! taken back; a dead writer's half-written slot is never read and is
//! recovered; every thread finishes (no deadlock, no livelock within bounds).

#![allow(clippy::unwrap_used)]

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex};

use shmimage::native::atomics::Word;
use shmimage::native::layout::{join_latest, split_latest};
use shmimage::native::slot::{self, Claim, Hold, SlotWords};

/// The preemption bound; SHMIMAGE_MODEL_PREEMPTIONS raises it for a longer run.
fn preemptions() -> usize {
    std::env::var("SHMIMAGE_MODEL_PREEMPTIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(2)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Run {
    Starting,
    Ready,
    Running,
    Done,
}

#[derive(Default)]
struct Plan {
    /// Choices to replay, then extend with 0.
    prefix: Vec<usize>,
    /// (choice made, options there) at each decision of this execution.
    taken: Vec<(usize, usize)>,
    preemptions: usize,
}

struct Sched {
    m: Mutex<(Vec<Run>, Option<usize>, Plan)>,
    cv: Condvar,
}

thread_local! {
    static CURRENT: Cell<Option<(usize, *const Sched)>> = const { Cell::new(None) };
}

impl Sched {
    /// Called by a model thread before each shared access: wait for its turn.
    fn yield_point(&self, me: usize) {
        let mut g = self.m.lock().unwrap();
        g.0[me] = Run::Ready;
        self.cv.notify_all();
        while !(g.1 == Some(me) && g.0[me] == Run::Running) {
            g = self.cv.wait(g).unwrap();
        }
    }

    fn finish(&self, me: usize) {
        let mut g = self.m.lock().unwrap();
        g.0[me] = Run::Done;
        self.cv.notify_all();
    }

    /// The controller: whenever no thread runs, pick the next one by the plan.
    fn drive(&self) -> Plan {
        let mut g = self.m.lock().unwrap();
        let mut depth = 0;
        loop {
            while g.0.iter().any(|r| matches!(r, Run::Starting | Run::Running)) {
                g = self.cv.wait(g).unwrap();
            }
            let ready: Vec<usize> = (0..g.0.len()).filter(|&i| g.0[i] == Run::Ready).collect();
            if ready.is_empty() {
                return std::mem::take(&mut g.2);
            }
            // Staying on the previous thread is free; switching away from a
            // thread that could go on is a preemption, and those are bounded.
            let prev = g.1.filter(|p| ready.contains(p));
            let options: Vec<usize> = match prev {
                Some(p) if g.2.preemptions >= preemptions() => vec![p],
                Some(p) => std::iter::once(p).chain(ready.iter().copied().filter(|&t| t != p)).collect(),
                None => ready.clone(),
            };
            let plan = &mut g.2;
            let choice = plan.prefix.get(depth).copied().unwrap_or(0).min(options.len() - 1);
            plan.taken.push((choice, options.len()));
            depth += 1;
            let next = options[choice];
            if prev.is_some_and(|p| p != next) {
                plan.preemptions += 1;
            }
            g.1 = Some(next);
            g.0[next] = Run::Running;
            self.cv.notify_all();
        }
    }
}

fn yield_now() {
    CURRENT.with(|c| {
        if let Some((me, s)) = c.get() {
            // SAFETY-free in spirit: the scheduler outlives every model thread
            // (it is joined before the Arc is dropped); a raw pointer avoids an
            // Arc clone per access.
            let s = unsafe { &*s };
            s.yield_point(me);
        }
    });
}

/// A shared word whose every access is a scheduling point.
#[derive(Default, Debug)]
struct ModelWord(AtomicU64);

impl ModelWord {
    fn new(v: u64) -> Self {
        ModelWord(AtomicU64::new(v))
    }
}

impl Word for ModelWord {
    fn load(&self) -> u64 {
        yield_now();
        self.0.load(SeqCst)
    }
    fn store(&self, v: u64) {
        yield_now();
        self.0.store(v, SeqCst)
    }
    fn swap(&self, v: u64) -> u64 {
        yield_now();
        self.0.swap(v, SeqCst)
    }
    fn fetch_or(&self, bits: u64) -> u64 {
        yield_now();
        self.0.fetch_or(bits, SeqCst)
    }
    fn fetch_and(&self, bits: u64) -> u64 {
        yield_now();
        self.0.fetch_and(bits, SeqCst)
    }
    fn compare_exchange(&self, current: u64, new: u64) -> Result<u64, u64> {
        yield_now();
        self.0.compare_exchange(current, new, SeqCst, SeqCst)
    }
}

const K: usize = 2;

/// The shared memory of the model: K slots' words, two pixel words per slot
/// (a frame is "torn" when they disagree or do not match its sequence),
/// the latest word, and who holds what according to the model (ghost state).
#[derive(Default, Debug)]
struct World {
    seq: [ModelWord; K],
    holds: [ModelWord; K],
    pending: [ModelWord; K],
    px: [[ModelWord; 2]; K],
    latest: ModelWord,
    /// Ghost: readers inside a read of slot i (not a scheduling point).
    reading: [AtomicU64; K],
    /// Ghost: reader 1 died (its OFD lock is gone).
    reader1_dead: AtomicU64,
}

impl World {
    fn slot(&self, i: usize) -> SlotWords<'_, ModelWord> {
        SlotWords { seq: &self.seq[i], holds: &self.holds[i], pending: &self.pending[i] }
    }
}

/// The writer as the engine does it: oldest-first claim, write, publish,
/// latest. `die_mid_frame`: claim and half-write, then stop (a kill -9).
fn write_frame(w: &World, seq: u64, lossless: u64, die_mid_frame: bool) -> bool {
    // The writer reaps a dead reader (its lock is free) before looking for a slot.
    if w.reader1_dead.load(SeqCst) == 1 {
        for i in 0..K {
            slot::forget_reader(w.slot(i), 0b10);
        }
    }
    for i in 0..K {
        if let Claim::Claimed { .. } = slot::claim(w.slot(i)) {
            assert_eq!(w.reading[i].load(SeqCst), 0, "the writer claimed slot {i} while a reader reads it");
            w.px[i][0].store(seq);
            if die_mid_frame {
                return true;
            }
            w.px[i][1].store(seq);
            assert_eq!(w.reading[i].load(SeqCst), 0, "a reader entered slot {i} while it was written");
            slot::publish(w.slot(i), seq, lossless);
            w.latest.store(join_latest(seq, i as u32));
            return true;
        }
    }
    false // no free slot: the real writer waits and retries; the model just skips
}

/// A reader as the engine does it: newest frame, hold, read in place, check.
/// Returns the sequence read, if any, and whether it still holds the slot.
fn read_newest(w: &World, bit: u64, release: bool) -> Option<u64> {
    let (seq, i) = split_latest(w.latest.load());
    if seq == 0 {
        return None;
    }
    let i = i as usize;
    match slot::hold(w.slot(i), bit, |s| s == seq) {
        Hold::Held { seq: s } => {
            w.reading[i].fetch_add(1, SeqCst);
            let (a, b) = (w.px[i][0].load(), w.px[i][1].load());
            assert!(a == s && b == s, "torn or reused frame: seq {s}, pixels ({a}, {b})");
            w.reading[i].fetch_sub(1, SeqCst);
            if release {
                slot::release(w.slot(i), bit);
            }
            Some(s)
        }
        Hold::Missed { .. } => None,
    }
}

/// The writer when lossless readers block every slot: after its (modelled)
/// wait bound, drop the marks of the oldest pending frame and try again.
fn write_frame_dropping(w: &World, seq: u64, lossless: u64) {
    if !write_frame(w, seq, lossless, false) {
        let oldest = (0..K).min_by_key(|&i| w.seq[i].0.load(SeqCst)).unwrap();
        slot::drop_pending(w.slot(oldest));
        write_frame(w, seq, lossless, false);
    }
}

/// A lossless reader as the engine does it: the slot holding `last + 1`
/// (or, after a drop, the oldest newer frame), hold, read, check, unmark.
fn read_lossless(w: &World, bit: u64, last: u64) -> u64 {
    let mut best: Option<(u64, usize)> = None;
    for i in 0..K {
        let s = w.seq[i].load();
        if s != slot::EMPTY && s != slot::BUSY && s > last && best.map_or(true, |(b, _)| s < b) {
            best = Some((s, i));
        }
    }
    let Some((want, i)) = best else { return last };
    match slot::hold(w.slot(i), bit, |s| s == want) {
        Hold::Held { seq: s } => {
            w.reading[i].fetch_add(1, SeqCst);
            let (a, b) = (w.px[i][0].load(), w.px[i][1].load());
            assert!(a == s && b == s, "lossless reader: torn or reused frame: seq {s}, pixels ({a}, {b})");
            w.reading[i].fetch_sub(1, SeqCst);
            for j in 0..K {
                slot::skip_pending(w.slot(j), bit, |q| q <= s);
            }
            slot::release(w.slot(i), bit);
            s
        }
        Hold::Missed { .. } => last,
    }
}

/// One execution of the scenario under `prefix`; returns the decisions taken.
fn execute(prefix: Vec<usize>, scenario: fn(&World, usize)) -> Plan {
    let world = Arc::new(World::default());
    for i in 0..K {
        world.seq[i].0.store(0, SeqCst);
    }
    let sched = Arc::new(Sched {
        m: Mutex::new((vec![Run::Starting; 3], None, Plan { prefix, ..Default::default() })),
        cv: Condvar::new(),
    });
    let handles: Vec<_> = (0..3)
        .map(|t| {
            let (w, s) = (Arc::clone(&world), Arc::clone(&sched));
            std::thread::spawn(move || {
                CURRENT.with(|c| c.set(Some((t, Arc::as_ptr(&s)))));
                struct Finish(Arc<Sched>, usize);
                impl Drop for Finish {
                    fn drop(&mut self) {
                        self.0.finish(self.1);
                    }
                }
                let _f = Finish(Arc::clone(&s), t);
                s.yield_point(t);
                scenario(&w, t);
            })
        })
        .collect();
    let plan = sched.drive();
    for h in handles {
        if let Err(p) = h.join() {
            std::panic::resume_unwind(p);
        }
    }
    plan
}

/// Every interleaving within the preemption bound; returns how many ran.
fn explore(scenario: fn(&World, usize)) -> usize {
    let mut prefix = Vec::new();
    let mut runs = 0;
    loop {
        let plan = execute(prefix.clone(), scenario);
        runs += 1;
        // Backtrack: the deepest decision with an untried option.
        let mut taken = plan.taken;
        loop {
            match taken.pop() {
                None => return runs,
                Some((c, n)) if c + 1 < n => {
                    prefix = taken.iter().map(|(c, _)| *c).collect();
                    prefix.push(c + 1);
                    break;
                }
                Some(_) => {}
            }
        }
    }
}

/// Writer publishes two frames; reader 0 reads twice (newest mode); reader 1
/// (lossless) reads once and dies holding its slot, then the writer reaps it.
fn readers_and_a_dying_reader(w: &World, t: usize) {
    match t {
        0 => {
            write_frame(w, 1, 0b10, false);
            write_frame(w, 2, 0b10, false);
            write_frame(w, 3, 0b10, false);
        }
        1 => {
            read_newest(w, 0b01, true);
            read_newest(w, 0b01, true);
        }
        _ => {
            if let Some(s) = read_newest(w, 0b10, false) {
                // Lossless reader takes its mark off what it read, then dies holding it.
                for i in 0..K {
                    slot::skip_pending(w.slot(i), 0b10, |q| q <= s);
                }
            }
            w.reader1_dead.store(1, SeqCst);
        }
    }
}

/// A writer dies mid-frame (slot left BUSY); a new writer takes over:
/// recover, then publish. Two readers read meanwhile.
fn a_writer_dies_and_another_takes_over(w: &World, t: usize) {
    match t {
        0 => {
            write_frame(w, 1, 0, false);
            write_frame(w, 2, 0, true); // killed after half a frame
            for i in 0..K {
                slot::recover(w.slot(i));
            }
            write_frame(w, 3, 0, false);
        }
        1 => {
            read_newest(w, 0b01, true);
            read_newest(w, 0b01, true);
        }
        _ => {
            read_newest(w, 0b10, true);
            read_newest(w, 0b10, true);
        }
    }
}

/// Writer publishes three frames into two slots pending for a lossless
/// reader, dropping marks when they block it; the lossless reader reads in
/// order; a newest-mode reader reads meanwhile.
fn a_lossless_reader_and_dropped_marks(w: &World, t: usize) {
    match t {
        0 => {
            for seq in 1..=3 {
                write_frame_dropping(w, seq, 0b10);
            }
        }
        1 => {
            read_newest(w, 0b01, true);
            read_newest(w, 0b01, true);
        }
        _ => {
            let mut last = 0;
            for _ in 0..3 {
                let next = read_lossless(w, 0b10, last);
                assert!(next >= last, "a lossless reader never goes back");
                last = next;
            }
        }
    }
}

#[test]
fn every_interleaving_of_a_lossless_reader_and_dropped_marks_is_safe() {
    let runs = explore(a_lossless_reader_and_dropped_marks);
    eprintln!("{runs} interleavings explored");
    assert!(runs > 100, "the explorer must actually branch ({runs})");
}

#[test]
fn every_interleaving_of_a_writer_two_readers_and_a_reader_death_is_safe() {
    let runs = explore(readers_and_a_dying_reader);
    eprintln!("{runs} interleavings explored");
    assert!(runs > 100, "the explorer must actually branch ({runs})");
}

#[test]
fn every_interleaving_of_a_writer_takeover_with_two_readers_is_safe() {
    let runs = explore(a_writer_dies_and_another_takes_over);
    eprintln!("{runs} interleavings explored");
    assert!(runs > 100, "the explorer must actually branch ({runs})");
}

/// The checker finds a bug when there is one: a writer that skips the claim
/// protocol (writes any slot without claiming) is caught tearing a frame.
#[test]
fn the_checker_catches_a_writer_that_skips_the_claim() {
    fn broken(w: &World, t: usize) {
        match t {
            0 => {
                for seq in 1..=2u64 {
                    let i = (seq as usize) % K;
                    w.px[i][0].store(seq);
                    w.px[i][1].store(seq);
                    slot::publish(w.slot(i), seq, 0);
                    w.latest.store(join_latest(seq, i as u32));
                }
                // Overwrite the slot of frame 2 in place, with no claim.
                w.px[0][0].store(9);
                w.px[0][1].store(9);
            }
            _ => {
                read_newest(w, 1 << t, true);
                read_newest(w, 1 << t, true);
            }
        }
    }
    let r = std::panic::catch_unwind(|| explore(broken));
    assert!(r.is_err(), "a torn read must be found");
}

#[test]
fn holds_and_claims_in_one_thread() {
    let w = World::default();
    let _ = ModelWord::new(0);
    assert!(write_frame(&w, 1, 0, false));
    assert_eq!(read_newest(&w, 1, false), Some(1));
    assert!(write_frame(&w, 2, 0, false));
    assert!(write_frame(&w, 3, 0, false));
    assert_eq!(w.seq[0].0.load(SeqCst), 1, "the held slot is kept");
    assert_eq!(w.seq[1].0.load(SeqCst), 3);
}
