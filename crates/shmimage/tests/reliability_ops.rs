//! The fuzz target's operation sequences (tests/ops), run as a stable
//! proptest in the normal suite: no panic, no out-of-bounds read, no frame of
//! the wrong size, no hang (every wait is bounded).

mod ops;

use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]
    #[test]
    fn hostile_operation_sequences(data in prop::collection::vec(any::<u8>(), 0..600)) {
        if let Err(e) = ops::run_ops(&data) {
            prop_assert!(false, "{}", e);
        }
    }
}

/// Inputs that once mattered, replayed every run.
#[test]
fn fixed_inputs() {
    for data in [&[][..], &[0; 64][..], &[0xFF; 300][..], b"\x05\x00\x00\x01\x03\x10\x10\x07\x00\x08\x00\x01\x05\xff"] {
        ops::run_ops(data).unwrap_or_else(|e| panic!("{e}"));
    }
}
