//! The one door to the shared atomic words of the slot state machine.
//!
//! [`slot`](super::slot) is written against the [`Word`] trait, so the same
//! transition code runs on the words of a mapped file (`AtomicU64`) and on the
//! model-checker's words (tests/native_model.rs), which yield to a scheduler
//! at every access. Orderings are stated here, once, by operation.

use std::sync::atomic::{AtomicU64, Ordering};

/// A shared 64-bit word with the operations the slot protocol uses.
pub trait Word {
    /// Read (acquire: what was written before the matching release is visible).
    fn load(&self) -> u64;
    /// Write (release: everything written before it is visible to an acquiring reader).
    fn store(&self, v: u64);
    /// Write `v` and return the old value (acquire + release).
    fn swap(&self, v: u64) -> u64;
    /// Set bits; returns the old value (acquire + release).
    fn fetch_or(&self, bits: u64) -> u64;
    /// Clear bits; returns the old value (acquire + release).
    fn fetch_and(&self, bits: u64) -> u64;
    /// Compare-and-swap (acquire + release on success, acquire on failure).
    fn compare_exchange(&self, current: u64, new: u64) -> Result<u64, u64>;
}

impl Word for AtomicU64 {
    #[inline]
    fn load(&self) -> u64 {
        AtomicU64::load(self, Ordering::Acquire)
    }
    #[inline]
    fn store(&self, v: u64) {
        AtomicU64::store(self, v, Ordering::Release)
    }
    #[inline]
    fn swap(&self, v: u64) -> u64 {
        AtomicU64::swap(self, v, Ordering::AcqRel)
    }
    #[inline]
    fn fetch_or(&self, bits: u64) -> u64 {
        AtomicU64::fetch_or(self, bits, Ordering::AcqRel)
    }
    #[inline]
    fn fetch_and(&self, bits: u64) -> u64 {
        AtomicU64::fetch_and(self, bits, Ordering::AcqRel)
    }
    #[inline]
    fn compare_exchange(&self, current: u64, new: u64) -> Result<u64, u64> {
        AtomicU64::compare_exchange(self, current, new, Ordering::AcqRel, Ordering::Acquire)
    }
}
