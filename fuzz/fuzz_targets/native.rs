//! Arbitrary bytes as a native stream's control block (magic, layout,
//! reader table, slot descriptors) under inspect, readers and a writer. The
//! check is the one the stable proptest runs
//! (crates/shmimage/tests/native_decode/mod.rs).
//!
//! cargo +nightly fuzz run native -- -max_total_time=60
#![no_main]

#[path = "../../crates/shmimage/tests/native_decode/mod.rs"]
mod native_decode;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(e) = native_decode::check_bytes(data) {
        panic!("{e}");
    }
});
