//! Shared helpers of the differential tests: run checkpolicy (and m4) and
//! policy-compiler on the same sources and compare every decision through
//! libsepol (the sepol-oracle crate).
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use policy_compiler::policydb::PolicyDb;
use sepol_oracle::Oracle;

/// Fails (never skips) when a reference tool is missing.
pub fn need_tools() {
    for (bin, pkg) in [
        ("checkpolicy", "checkpolicy"),
        ("m4", "m4"),
        ("seinfo", "setools"),
    ] {
        let ok = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {bin}"))
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        assert!(
            ok,
            "`{bin}` is missing; the differential tests need it: apt-get install -y {pkg}"
        );
    }
}

pub fn our_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_policy-compiler"))
}

pub fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir()
        .join(format!("policy-compiler-tests-{}", std::process::id()))
        .join(name);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Splits our flags into m4 defines and checkpolicy flags.
fn split_flags(flags: &[String]) -> (Vec<String>, Vec<String>) {
    let mut defs = Vec::new();
    let mut cp = Vec::new();
    let mut it = flags.iter();
    while let Some(f) = it.next() {
        if f == "-D" {
            defs.push(format!("-D{}", it.next().unwrap()));
        } else if let Some(d) = f.strip_prefix("-D") {
            defs.push(format!("-D{d}"));
        } else {
            cp.push(f.clone());
        }
    }
    (defs, cp)
}

/// `m4 FILES | checkpolicy -t xen FLAGS -o OUT` (m4 only if `use_m4`).
pub fn reference(
    files: &[PathBuf],
    flags: &[String],
    use_m4: bool,
    out: &Path,
) -> Result<(), String> {
    let (defs, mut cp) = split_flags(flags);
    if !cp.iter().any(|f| f == "-c") {
        // checkpolicy's default (its newest SELinux version) is not a Xen version
        cp.extend(["-c".to_string(), "30".to_string()]);
    }
    let _ = std::fs::remove_file(out);
    let conf = if use_m4 {
        let conf = out.with_extension("ref.conf");
        // GNU m4 resolves include() against the working directory and -I; ours resolves it
        // against the including file, so point m4 at the sources' directory.
        let dir = files[0].parent().unwrap();
        let o = Command::new("m4")
            .arg("-I")
            .arg(dir)
            .args(&defs)
            .args(files)
            .output()
            .unwrap();
        if !o.status.success() {
            return Err(format!("m4 failed: {}", String::from_utf8_lossy(&o.stderr)));
        }
        std::fs::write(&conf, &o.stdout).unwrap();
        conf
    } else {
        assert_eq!(files.len(), 1);
        files[0].clone()
    };
    let o = Command::new("checkpolicy")
        .args(["-t", "xen"])
        .args(&cp)
        .arg(&conf)
        .arg("-o")
        .arg(out)
        .output()
        .unwrap();
    if o.status.success() && out.exists() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ))
    }
}

/// `policy-compiler FLAGS FILES -o OUT`; returns stderr.
pub fn ours(files: &[PathBuf], flags: &[String], out: &Path) -> Result<String, String> {
    let _ = std::fs::remove_file(out);
    let o = Command::new(our_bin())
        .args(flags)
        .args(files)
        .arg("-o")
        .arg(out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    if o.status.success() {
        assert!(out.exists(), "exit 0 but no output written");
        Ok(err)
    } else {
        assert!(!out.exists(), "failed build left {} behind", out.display());
        Err(err)
    }
}

/// Our compiled view of the sources (for enumerating contexts and class sizes).
pub fn our_db(files: &[PathBuf], flags: &[String]) -> PolicyDb {
    let (defs, _) = split_flags(flags);
    let mut job = policy_compiler::Job {
        files: files.to_vec(),
        defines: defs.iter().map(|d| d[2..].to_string()).collect(),
        ..Default::default()
    };
    let mut it = flags.iter();
    while let Some(f) = it.next() {
        match f.as_str() {
            "-M" => job.opts.mls = true,
            "-c" => job.opts.version = it.next().unwrap().parse().unwrap(),
            _ => {}
        }
    }
    let mut sm = policy_compiler::diag::SourceMap::default();
    match policy_compiler::compile(&job, &mut sm) {
        Ok(o) => o.db,
        Err(e) => panic!("{}", e.render(&sm)),
    }
}

fn lvl(db: &PolicyDb, l: &policy_compiler::policydb::Level) -> String {
    let mut s = db
        .sens
        .iter()
        .find(|x| !x.alias && x.level.sens == l.sens)
        .unwrap()
        .name
        .clone();
    let cats: Vec<String> = l
        .cats
        .iter()
        .map(|c| {
            db.cats
                .iter()
                .find(|x| !x.alias && x.value as usize == c + 1)
                .unwrap()
                .name
                .clone()
        })
        .collect();
    if !cats.is_empty() {
        s.push(':');
        s.push_str(&cats.join(","));
    }
    s
}

/// Contexts to query: every type under object_r, plus every valid user:role:type.
pub fn contexts(db: &PolicyDb) -> (Vec<String>, Vec<String>) {
    let user0 = &db.users[0];
    let mls_low = |u: &policy_compiler::policydb::User| {
        if db.mls {
            format!(":{}", lvl(db, &u.range.low))
        } else {
            String::new()
        }
    };
    let mut objs = Vec::new();
    for t in db.types.iter().filter(|t| !t.attr) {
        objs.push(format!(
            "{}:object_r:{}{}",
            user0.name,
            t.name,
            mls_low(user0)
        ));
    }
    let mut subjects = objs.clone();
    for u in &db.users {
        for r in u.roles.iter() {
            if r == 0 {
                continue;
            }
            for t in db.roles[r].types.iter() {
                subjects.push(format!(
                    "{}:{}:{}{}",
                    u.name,
                    db.roles[r].name,
                    db.types[t].name,
                    mls_low(u)
                ));
                if db.mls && u.range.low != u.range.high {
                    subjects.push(format!(
                        "{}:{}:{}:{}-{}",
                        u.name,
                        db.roles[r].name,
                        db.types[t].name,
                        lvl(db, &u.range.low),
                        lvl(db, &u.range.high)
                    ));
                }
            }
        }
    }
    (subjects, objs)
}

/// Every decision libsepol makes for `policy` over the given contexts, masked to
/// each class's defined permissions.
pub fn decisions(
    policy: &Path,
    db: &PolicyDb,
    bools: &[(String, bool)],
    subjects: &[String],
    targets: &[String],
) -> Vec<(Key, String)> {
    let o = Oracle::load(policy, bools)
        .unwrap_or_else(|e| panic!("libsepol cannot load {}: {e}", policy.display()));
    let mut m = Vec::new();
    // Each context parsed once (libsepol's context_to_sid searches its SID
    // table), each new SID printed once: the queries are on SIDs.
    let all: Vec<&String> = subjects
        .iter()
        .chain(targets.iter().filter(|t| !subjects.contains(t)))
        .collect();
    let sids: Vec<Result<u32, String>> = all.iter().map(|c| o.sid(c)).collect();
    let mut names: HashMap<u32, String> = HashMap::new();
    let mut name = |sid: Option<u32>| match sid {
        None => "error cannot compute a new context".to_string(),
        Some(sid) => names
            .entry(sid)
            .or_insert_with(|| o.context(sid).unwrap_or_else(|e| format!("error {e}")))
            .clone(),
    };
    for (ci, c) in db.classes.iter().enumerate() {
        let n = db.class_nperms(ci);
        let mask = if n >= 32 { u32::MAX } else { (1u32 << n) - 1 };
        let class = o.class(&c.name);
        for si in 0..subjects.len() {
            for ti in 0..all.len() {
                let key = Key::Query {
                    class: ci,
                    source: si,
                    target: ti,
                };
                let (ssid, tsid, cls) = match (&sids[si], &sids[ti], &class) {
                    (Ok(a), Ok(b), Ok(c)) => (*a, *b, *c),
                    (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
                        m.push((key, format!("error {e}")));
                        continue;
                    }
                };
                let d = o.decide(ssid, tsid, cls);
                let mut v = match d.av {
                    Some(a) => format!(
                        "{:08x}/{:08x}/{:08x}",
                        a.allowed & mask,
                        a.auditallow & mask,
                        a.auditdeny & mask
                    ),
                    None => "error sepol_compute_av failed".to_string(),
                };
                for sid in d.sids {
                    v.push(' ');
                    v.push_str(&name(sid));
                }
                m.push((key, v));
            }
        }
    }
    m.push((Key::Ocontexts, {
        let mut l = o.ocontexts();
        l.sort();
        l.join("\n")
    }));
    let info = o.info();
    m.push((Key::Header, info[0].clone()));
    m
}

/// What a row of [`decisions`] answers: a query by indices (the class in the
/// policy; source and target in `subjects` followed by the `targets` that are
/// not subjects), the object contexts, or the policy's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Query {
        class: usize,
        source: usize,
        target: usize,
    },
    Ocontexts,
    Header,
}

impl Key {
    /// The row's name in a report: `SOURCE TARGET CLASS`, `#ocontexts`, `#header`.
    pub fn render(&self, db: &PolicyDb, subjects: &[String], targets: &[String]) -> String {
        match *self {
            Key::Query {
                class,
                source,
                target,
            } => {
                let mut all = subjects
                    .iter()
                    .chain(targets.iter().filter(|t| !subjects.contains(t)));
                let t = all.nth(target).map_or("?", |s| s.as_str());
                format!("{} {t} {}", subjects[source], db.classes[class].name)
            }
            Key::Ocontexts => "#ocontexts".into(),
            Key::Header => "#header".into(),
        }
    }
}

/// The `seinfo` statistics without the file-name line.
pub fn seinfo(policy: &Path) -> String {
    let o = Command::new("seinfo").arg(policy).output().unwrap();
    assert!(
        o.status.success(),
        "seinfo failed on {}: {}",
        policy.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| !l.starts_with("Statistics for policy file"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Boolean settings to compare under: defaults, each flipped alone, all flipped.
pub fn bool_settings(db: &PolicyDb) -> Vec<Vec<(String, bool)>> {
    let mut v = vec![Vec::new()];
    for (i, (n, s)) in db.bools.iter().enumerate() {
        v.push(vec![(n.clone(), !s)]);
        if i > 6 {
            break;
        }
    }
    if db.bools.len() > 1 {
        v.push(db.bools.iter().map(|(n, s)| (n.clone(), !s)).collect());
    }
    v
}

/// Compiles `files` with both compilers and compares decisions; returns a report of
/// differences (empty when equivalent).
pub fn differential(name: &str, files: &[PathBuf], flags: &[String], use_m4: bool) -> Vec<String> {
    differential_with(name, files, flags, use_m4, None)
}

/// [`differential`], querying only `U:object_r:T` contexts for the types `sample`
/// picks (all when `None`), for policies too large to compare pair by pair.
pub fn differential_with(
    name: &str,
    files: &[PathBuf],
    flags: &[String],
    use_m4: bool,
    sample: Option<&dyn Fn(&str) -> bool>,
) -> Vec<String> {
    let dir = scratch(name);
    let refp = dir.join("ref.bin");
    let ourp = dir.join("our.bin");
    if let Err(e) = reference(files, flags, use_m4, &refp) {
        return vec![format!("{name}: checkpolicy rejected the source: {e}")];
    }
    if let Err(e) = ours(files, flags, &ourp) {
        return vec![format!("{name}: policy-compiler rejected the source:\n{e}")];
    }
    let mut diffs = Vec::new();
    let (a, b) = (seinfo(&refp), seinfo(&ourp));
    if a != b {
        diffs.push(format!(
            "{name}: seinfo differs:\n--- checkpolicy\n{a}\n--- policy-compiler\n{b}"
        ));
    }
    let db = our_db(files, flags);
    let (mut subjects, mut objs) = contexts(&db);
    if let Some(keep) = sample {
        let keep_ctx =
            |c: &String| c.contains(":object_r:") && keep(c.rsplit(':').next().unwrap_or(""));
        subjects.retain(keep_ctx);
        objs.retain(keep_ctx);
    }
    for bools in bool_settings(&db) {
        let r = decisions(&refp, &db, &bools, &subjects, &objs);
        let o = decisions(&ourp, &db, &bools, &subjects, &objs);
        // The same queries in the same order for both policies.
        assert_eq!(r.len(), o.len());
        for ((k, v), (ok, ov)) in r.iter().zip(&o) {
            assert_eq!(k, ok);
            if ov != v {
                let k = k.render(&db, &subjects, &objs);
                diffs.push(format!(
                    "{name} bools={bools:?}: {k}: checkpolicy {v} | ours {ov}"
                ));
            }
            if diffs.len() > 40 {
                return diffs;
            }
        }
    }
    diffs
}

/// Flags from the corpus file's `# flags: ...` line (our flag syntax).
pub fn corpus_flags(path: &Path) -> Vec<String> {
    let s = std::fs::read_to_string(path).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("# flags:"))
        .map(|f| f.split_whitespace().map(String::from).collect())
        .unwrap_or_default()
}
