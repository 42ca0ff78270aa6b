//! Replays the committed fuzz corpus (policy-compiler/fuzz/corpus/expand_parse)
//! through the fuzz target's code path: every input must finish without a panic,
//! quickly, including those that once crashed or hung.

use std::time::{Duration, Instant};

#[test]
fn fuzz_corpus_replays_without_panics_or_hangs() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/expand_parse");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let data = std::fs::read(&p).unwrap();
        let t = Instant::now();
        policy_compiler::fuzz_one(&data);
        // A generous bound (debug build, busy machine): catches hangs, not speed.
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "{} took {:?}",
            p.display(),
            t.elapsed()
        );
        n += 1;
    }
    assert!(n >= 20, "fuzz corpus unexpectedly small ({n} inputs)");
}

#[test]
fn recursive_macros_end_in_errors_not_hangs() {
    for src in [
        "define(`a', `a(a')a",
        "define(`a', `a a')a",
        "define(`a', `a')a",
        "define(`d', `$1$1$1$1')d(d(d(d(d(d(d(d(d(d(x))))))))))",
        "define(`a', `a(')a",
    ] {
        let r = policy_compiler::compile_str(src, Default::default(), policy_compiler::FUZZ_LIMITS);
        let e = r.unwrap_err();
        assert!(e.contains("error:"), "{src}: {e}");
    }
}
