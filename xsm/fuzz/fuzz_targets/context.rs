//! Fuzz target: the context parser (MLS and non-MLS policies).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    xsm::fuzzing::exercise_context(data);
});
