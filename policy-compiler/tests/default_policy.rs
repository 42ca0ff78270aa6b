//! Warden's default policy (policies/warden.m4): it compiles, it means exactly
//! what `m4 | checkpolicy` makes of it, and every row of policies/intent.tsv holds.

mod common;

use std::path::PathBuf;

use common::*;
use sepol_oracle::Oracle;

fn entry() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policies/warden.m4")
}

#[test]
fn default_policy_has_zero_decision_differences_from_checkpolicy() {
    need_tools();
    let mut all = Vec::new();
    let mls = ["-M", "-D", "enable_mls"].map(String::from).to_vec();
    for flags in [vec![], vec!["-c".to_string(), "24".to_string()], mls] {
        let name = format!("default{}", flags.join(""));
        all.extend(differential(&name, &[entry()], &flags, true));
    }
    assert!(
        all.is_empty(),
        "{} differences:\n{}",
        all.len(),
        all.join("\n")
    );
}

#[test]
fn default_policy_expands_like_gnu_m4() {
    need_tools();
    let e = entry();
    let reference = std::process::Command::new("m4")
        .arg("-I")
        .arg(e.parent().unwrap())
        .arg(&e)
        .output()
        .unwrap();
    assert!(reference.status.success());
    let ours = std::process::Command::new(our_bin())
        .arg("-E")
        .arg(&e)
        .output()
        .unwrap();
    assert!(
        ours.status.success(),
        "{}",
        String::from_utf8_lossy(&ours.stderr)
    );
    assert!(
        ours.stderr.is_empty(),
        "warnings: {}",
        String::from_utf8_lossy(&ours.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&ours.stdout),
        String::from_utf8_lossy(&reference.stdout)
    );
}

struct Row {
    line: usize,
    src: String,
    tgt: String,
    class: String,
    perm: String,
    allow: bool,
    bools: Vec<(String, bool)>,
}

fn intent_rows() -> Vec<Row> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policies/intent.tsv");
    let text = std::fs::read_to_string(&p).unwrap();
    let mut rows = Vec::new();
    for (i, l) in text.lines().enumerate() {
        if l.starts_with('#') || l.trim().is_empty() || l.starts_with("source\t") {
            continue;
        }
        let f: Vec<&str> = l.split('\t').collect();
        assert!(
            f.len() >= 6,
            "intent.tsv:{}: expected 7 tab-separated columns: {l}",
            i + 1
        );
        let allow = match f[4] {
            "allow" => true,
            "deny" => false,
            x => panic!(
                "intent.tsv:{}: expect must be allow or deny, not {x}",
                i + 1
            ),
        };
        let bools = if f[5] == "-" {
            Vec::new()
        } else {
            f[5].split(',')
                .map(|b| {
                    let (n, v) = b
                        .split_once('=')
                        .unwrap_or_else(|| panic!("intent.tsv:{}: bad boolean {b}", i + 1));
                    (n.to_string(), v == "1")
                })
                .collect()
        };
        rows.push(Row {
            line: i + 1,
            src: f[0].into(),
            tgt: f[1].into(),
            class: f[2].into(),
            perm: f[3].into(),
            allow,
            bools,
        });
    }
    rows
}

#[test]
fn intent_table_holds_for_the_compiled_default_policy() {
    intent_holds(&[], "");
}

#[test]
fn intent_table_holds_for_the_mls_build_too() {
    intent_holds(&["-M", "-D", "enable_mls"], ":s0");
}

fn intent_holds(flags: &[&str], level: &str) {
    need_tools();
    let flags: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
    let dir = scratch(&format!("intent{}", flags.join("")));
    let bin = dir.join("xenpolicy");
    ours(&[entry()], &flags, &bin).unwrap_or_else(|e| panic!("{e}"));
    let db = our_db(&[entry()], &flags);
    let rows = intent_rows();
    assert!(
        rows.len() >= 40,
        "the intent table is too small to mean much"
    );
    let mut failures = Vec::new();
    let mut settings: Vec<Vec<(String, bool)>> = rows.iter().map(|r| r.bools.clone()).collect();
    settings.sort();
    settings.dedup();
    for s in settings {
        let o = Oracle::load(&bin, &s).unwrap_or_else(|e| panic!("loading with {s:?}: {e}"));
        for r in rows.iter().filter(|r| r.bools == s) {
            let ci = db
                .class_index(&r.class)
                .unwrap_or_else(|| panic!("intent.tsv:{}: unknown class {}", r.line, r.class));
            let pv = db.perm_value(ci, &r.perm).unwrap_or_else(|| {
                panic!(
                    "intent.tsv:{}: class {} has no permission {}",
                    r.line, r.class, r.perm
                )
            });
            for t in [&r.src, &r.tgt] {
                assert!(
                    db.types.iter().any(|x| !x.attr && &x.name == t),
                    "intent.tsv:{}: unknown type {t}",
                    r.line
                );
            }
            let av = o
                .compute_av(
                    &format!("system_u:object_r:{}{level}", r.src),
                    &format!("system_u:object_r:{}{level}", r.tgt),
                    &r.class,
                )
                .unwrap_or_else(|e| panic!("intent.tsv:{}: {e}", r.line));
            let allowed = av.allowed & (1 << (pv - 1)) != 0;
            if allowed != r.allow {
                failures.push(format!(
                    "intent.tsv:{}: {} {}:{} {}: expected {} but the policy {}",
                    r.line,
                    r.src,
                    r.tgt,
                    r.class,
                    r.perm,
                    if r.allow { "allow" } else { "deny" },
                    if allowed { "allows it" } else { "denies it" }
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_initial_sid_has_a_context() {
    let db = our_db(&[entry()], &[]);
    assert_eq!(
        db.ocons.isids.len(),
        13,
        "policies/flask/initial_sids declares 13 SIDs"
    );
}
