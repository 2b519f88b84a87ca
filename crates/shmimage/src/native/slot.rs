//! The slot state machine: every legal move of a slot's three shared words,
//! as functions over [`Word`]s. Pure: no I/O, no unsafe, no knowledge of the
//! mapping, so the model check (tests/native_model.rs) runs this very code.
//!
//! A slot has three words:
//! - `seq`: `EMPTY` (0), `BUSY` (the writer owns it), or the committed
//!   sequence number of the frame it holds;
//! - `holds`: bit i set while reader entry i holds the slot;
//! - `pending`: bit i set while lossless reader i has yet to take the frame.
//!
//! The invariant: the writer touches a slot's pixels or descriptor only while
//! it owns it (`claim` returned `Claimed`), and it owns it only when no reader
//! held it at the moment of the claim; a reader reads only while its bit is
//! set and `seq` showed a committed frame after the bit was set.
//!
//! Why that holds without sequential consistency: the writer stores `BUSY` to
//! `seq` and then does a compare-and-swap 0 -> 0 on `holds` (release); a reader
//! sets its bit with `fetch_or` (acquire) and then loads `seq`. All
//! read-modify-writes of `holds` are totally ordered. If the reader's
//! `fetch_or` comes first, the writer's CAS sees the bit and fails. If the
//! CAS comes first, the reader's `fetch_or` reads from it (or from a later RMW
//! in its release sequence), so it synchronizes with the CAS and the earlier
//! `BUSY` store is visible to the reader's load of `seq`.

use super::atomics::Word;

/// `seq` of a slot that never held a frame (or whose loan was abandoned).
pub const EMPTY: u64 = 0;
/// `seq` of a slot the writer owns.
pub const BUSY: u64 = u64::MAX;

/// The three words of one slot.
#[derive(Debug)]
pub struct SlotWords<'a, W> {
    /// Sequence / EMPTY / BUSY.
    pub seq: &'a W,
    /// Reader holds, one bit per reader entry.
    pub holds: &'a W,
    /// Lossless readers that have not taken the frame.
    pub pending: &'a W,
}

impl<W> Clone for SlotWords<'_, W> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<W> Copy for SlotWords<'_, W> {}

/// What the writer found when it tried to claim a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The writer owns the slot; `previous` is the sequence it held.
    Claimed {
        /// The seq word before the claim (restored by `abandon` is not needed: it becomes EMPTY).
        previous: u64,
    },
    /// A reader holds it.
    Held,
    /// A lossless reader has not taken its frame yet.
    Pending,
    /// The writer already owns it (a loan of this writer, or of a dead one).
    Busy,
}

/// A committed, unclaimed slot the writer could take: no holds, no pending.
pub fn is_free<W: Word>(s: SlotWords<'_, W>) -> bool {
    s.pending.load() == 0 && s.holds.load() == 0 && s.seq.load() != BUSY
}

/// Writer: take the slot to write a frame into it.
pub fn claim<W: Word>(s: SlotWords<'_, W>) -> Claim {
    // Only the writer sets pending bits, so once seen zero it stays zero.
    if s.pending.load() != 0 {
        return Claim::Pending;
    }
    let previous = s.seq.swap(BUSY);
    if previous == BUSY {
        return Claim::Busy;
    }
    match s.holds.compare_exchange(0, 0) {
        Ok(_) => Claim::Claimed { previous },
        Err(_) => {
            // A reader got in first: its frame stays as it was.
            s.seq.store(previous);
            Claim::Held
        }
    }
}

/// Writer: publish the frame written into an owned slot as `seq`, pending for
/// the lossless readers in `lossless`. Descriptor and pixels must be written
/// before (the release store of `seq` publishes them).
pub fn publish<W: Word>(s: SlotWords<'_, W>, seq: u64, lossless: u64) {
    debug_assert!(seq != EMPTY && seq != BUSY);
    s.pending.store(lossless);
    s.seq.store(seq);
}

/// Writer: give back an owned slot without publishing (its old frame is gone).
pub fn abandon<W: Word>(s: SlotWords<'_, W>) {
    s.seq.store(EMPTY);
}

/// A new writer taking over a dead one's stream: a slot the dead writer owned
/// held a half-written frame; mark it empty. True when it did.
pub fn recover<W: Word>(s: SlotWords<'_, W>) -> bool {
    s.seq.compare_exchange(BUSY, EMPTY).is_ok()
}

/// What a reader found when it tried to hold a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// The reader holds the slot; it carries frame `seq` and stays so until release.
    Held {
        /// The committed sequence number found after the hold was taken.
        seq: u64,
    },
    /// The slot does not carry an acceptable frame (empty, being written, or
    /// a sequence `accept` refused); nothing is held.
    Missed {
        /// What `seq` showed.
        seq: u64,
    },
}

/// Reader `bit`: hold the slot if, once held, it carries a committed frame
/// whose sequence `accept` approves.
pub fn hold<W: Word>(s: SlotWords<'_, W>, bit: u64, accept: impl Fn(u64) -> bool) -> Hold {
    let before = s.holds.fetch_or(bit);
    let seq = s.seq.load();
    if seq == EMPTY || seq == BUSY || !accept(seq) {
        // Clear the bit only if this call set it.
        if before & bit == 0 {
            s.holds.fetch_and(!bit);
        }
        return Hold::Missed { seq };
    }
    Hold::Held { seq }
}

/// Reader `bit`: stop holding the slot. True when the slot may now be free.
pub fn release<W: Word>(s: SlotWords<'_, W>, bit: u64) -> bool {
    s.holds.fetch_and(!bit) & !bit == 0
}

/// Lossless reader `bit`: the frame in this slot no longer needs to wait for it.
pub fn take_pending<W: Word>(s: SlotWords<'_, W>, bit: u64) {
    if s.pending.load() & bit != 0 {
        s.pending.fetch_and(!bit);
    }
}

/// Lossless reader `bit`: drop its mark on this slot if the frame there is
/// one it no longer needs (`done(seq)`). The mark is read first: while it is
/// set the writer cannot claim the slot, so the sequence read after it is
/// the frame the mark belongs to (reading the sequence first could clear the
/// mark of a frame published in between).
pub fn skip_pending<W: Word>(s: SlotWords<'_, W>, bit: u64, done: impl Fn(u64) -> bool) {
    if s.pending.load() & bit != 0 && done(s.seq.load()) {
        s.pending.fetch_and(!bit);
    }
}

/// Writer, after waiting out its bound for lossless readers: drop the pending
/// marks of this slot so it can be reused (those readers will count it missed).
/// Returns the readers dropped.
pub fn drop_pending<W: Word>(s: SlotWords<'_, W>) -> u64 {
    s.pending.swap(0)
}

/// Reap reader `bit` (dead, or leaving): clear its holds and pending marks.
pub fn forget_reader<W: Word>(s: SlotWords<'_, W>, bit: u64) {
    s.holds.fetch_and(!bit);
    s.pending.fetch_and(!bit);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    fn words() -> [AtomicU64; 3] {
        [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)]
    }
    fn s(w: &[AtomicU64; 3]) -> SlotWords<'_, AtomicU64> {
        SlotWords { seq: &w[0], holds: &w[1], pending: &w[2] }
    }

    #[test]
    fn a_held_slot_cannot_be_claimed_and_a_claimed_one_cannot_be_held() {
        let w = words();
        assert_eq!(claim(s(&w)), Claim::Claimed { previous: EMPTY });
        assert_eq!(hold(s(&w), 1, |_| true), Hold::Missed { seq: BUSY });
        assert_eq!(claim(s(&w)), Claim::Busy);
        publish(s(&w), 5, 0b100);
        assert_eq!(hold(s(&w), 1, |q| q == 5), Hold::Held { seq: 5 });
        assert_eq!(claim(s(&w)), Claim::Pending);
        take_pending(s(&w), 0b100);
        assert_eq!(claim(s(&w)), Claim::Held);
        assert_eq!(w[0].load(std::sync::atomic::Ordering::Relaxed), 5, "a failed claim restores the frame");
        assert!(release(s(&w), 1));
        assert!(is_free(s(&w)));
        assert_eq!(claim(s(&w)), Claim::Claimed { previous: 5 });
        assert!(recover(s(&w)));
        assert_eq!(hold(s(&w), 2, |_| true), Hold::Missed { seq: EMPTY });
    }

    #[test]
    fn a_hold_refused_by_accept_leaves_an_earlier_hold_of_the_same_bit() {
        let w = words();
        claim(s(&w));
        publish(s(&w), 9, 0);
        assert_eq!(hold(s(&w), 1, |_| true), Hold::Held { seq: 9 });
        assert_eq!(hold(s(&w), 1, |_| false), Hold::Missed { seq: 9 });
        assert_eq!(claim(s(&w)), Claim::Held);
        forget_reader(s(&w), 1);
        assert!(is_free(s(&w)));
    }
}
