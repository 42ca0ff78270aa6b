//! Replays the committed fuzz corpora (xsm/fuzz/corpus) and the crash
//! regressions (tests/regressions) through the fuzz targets' code.

use std::path::Path;

fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

#[test]
fn loader_corpus_and_regressions() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut loaded = 0;
    let mut all = files(&root.join("fuzz/corpus/loader"));
    all.extend(files(&root.join("tests/regressions")));
    assert!(all.len() > 50, "corpus missing");
    for p in &all {
        if xsm::fuzzing::exercise_policy(&std::fs::read(p).unwrap()) {
            loaded += 1;
        }
    }
    assert!(loaded >= 4, "the seed policies must load ({loaded})");
}

#[test]
fn context_corpus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let all = files(&root.join("fuzz/corpus/context"));
    assert!(all.len() >= 40, "corpus missing");
    for p in &all {
        xsm::fuzzing::exercise_context(&std::fs::read(p).unwrap());
    }
}
