//! Hostile header bytes and operation sequences against a server and a
//! client sharing one stream file. The decoding and the checks are the ones
//! the stable proptest runs (crates/shmimage/tests/ops/mod.rs).
//!
//! cargo +nightly fuzz run ops -- -max_total_time=60
#![no_main]

#[path = "../../crates/shmimage/tests/ops/mod.rs"]
mod ops;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(e) = ops::run_ops(data) {
        panic!("{e}");
    }
});
