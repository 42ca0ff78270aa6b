//! Differential tests: policy-compiler against `m4 | checkpolicy -t xen` (Debian's
//! checkpolicy 3.4), compared through libsepol for every (context, context, class)
//! decision, every type_transition/member/change result, every object context and
//! seinfo's statistics. Zero differences are allowed.

mod common;

use std::path::{Path, PathBuf};

use common::*;

fn corpus(dir: &str) -> Vec<PathBuf> {
    let d = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(dir);
    let mut v: Vec<PathBuf> = std::fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "conf" || e == "m4"))
        .collect();
    v.sort();
    assert!(!v.is_empty(), "empty corpus {}", d.display());
    v
}

fn variants(path: &Path) -> Vec<Vec<String>> {
    let base = corpus_flags(path);
    let text = std::fs::read_to_string(path).unwrap();
    let mut v = vec![base.clone()];
    if !text.contains("# no-variants") {
        let mut f = base.clone();
        f.extend(["-c".into(), "24".into()]);
        v.push(f);
        for u in ["reject", "allow"] {
            let mut f = base.clone();
            f.extend(["-U".into(), u.into()]);
            v.push(f);
        }
    }
    v
}

#[test]
fn accepted_corpus_has_zero_decision_differences() {
    need_tools();
    let mut all = Vec::new();
    for p in corpus("accept") {
        let use_m4 = p.extension().is_some_and(|e| e == "m4");
        for flags in variants(&p) {
            let name = format!(
                "{}{}",
                p.file_stem().unwrap().to_string_lossy(),
                flags.join("").replace(['-', ' ', '='], "_")
            );
            let d = differential(&name, std::slice::from_ref(&p), &flags, use_m4);
            eprintln!("{} {:?}: {} differences", p.display(), flags, d.len());
            all.extend(d);
        }
    }
    assert!(
        all.is_empty(),
        "{} differences:\n{}",
        all.len(),
        all.join("\n")
    );
}

#[test]
fn rejected_corpus_is_rejected_by_both_with_located_errors() {
    need_tools();
    let mut problems = Vec::new();
    for p in corpus("reject") {
        let flags = corpus_flags(&p);
        let use_m4 = p.extension().is_some_and(|e| e == "m4");
        let text = std::fs::read_to_string(&p).unwrap();
        let expect: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# expect: "))
            .collect();
        let dir = scratch(&format!(
            "reject-{}",
            p.file_stem().unwrap().to_string_lossy()
        ));
        if reference(
            std::slice::from_ref(&p),
            &flags,
            use_m4,
            &dir.join("ref.bin"),
        )
        .is_ok()
        {
            problems.push(format!(
                "{}: checkpolicy accepted it (the corpus entry is wrong)",
                p.display()
            ));
        }
        match ours(std::slice::from_ref(&p), &flags, &dir.join("our.bin")) {
            Ok(_) => problems.push(format!("{}: policy-compiler accepted it", p.display())),
            Err(stderr) => {
                let loc = format!("{}:", p.display());
                if !stderr.contains(&loc) || !stderr.contains(": error: ") || !stderr.contains('^')
                {
                    problems.push(format!(
                        "{}: error not located (file:line:col, source line, caret):\n{stderr}",
                        p.display()
                    ));
                }
                for e in &expect {
                    if !stderr.contains(e) {
                        problems.push(format!("{}: expected `{e}` in:\n{stderr}", p.display()));
                    }
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn macro_expansion_matches_gnu_m4_byte_for_byte() {
    need_tools();
    for p in corpus("accept").into_iter().chain(corpus("reject")) {
        if p.extension().is_none_or(|e| e != "m4") {
            continue;
        }
        let flags = corpus_flags(&p);
        let defs: Vec<String> = flags
            .windows(2)
            .filter(|w| w[0] == "-D")
            .map(|w| format!("-D{}", w[1]))
            .collect();
        let reference = std::process::Command::new("m4")
            .arg("-I")
            .arg(p.parent().unwrap())
            .args(&defs)
            .arg(&p)
            .output()
            .unwrap();
        assert!(reference.status.success());
        let ours = std::process::Command::new(our_bin())
            .args(&flags)
            .arg("-E")
            .arg(&p)
            .output()
            .unwrap();
        assert!(
            ours.status.success(),
            "{}",
            String::from_utf8_lossy(&ours.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&ours.stdout),
            String::from_utf8_lossy(&reference.stdout),
            "{}",
            p.display()
        );
    }
}
