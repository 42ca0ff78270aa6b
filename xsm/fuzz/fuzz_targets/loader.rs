//! Fuzz target: the binary policy loader, then a few decisions on what loads.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    xsm::fuzzing::exercise_policy(data);
});
