//! Payload parser and the engine behind it: arbitrary bytes as a payload's
//! ELF part (`livepatch_engine::fuzzing::exercise`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    livepatch_engine::fuzzing::exercise(data);
});
