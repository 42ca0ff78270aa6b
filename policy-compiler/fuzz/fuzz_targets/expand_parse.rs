//! Fuzzes the macro expander, lexer, parser, semantic checks and writer.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    policy_compiler::fuzz_one(data);
});
