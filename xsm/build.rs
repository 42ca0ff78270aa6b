//! Generates Warden's class, permission and initial-SID definitions from the
//! one definition in `policies/flask/` (Xen's file formats).
//!
//! Output (`$OUT_DIR/flask_defs.rs`): one zero-sized type per class implementing
//! `Class`, typed permission constants per class (`perms::domain::PAUSE`), the
//! initial SID ids, and name tables for audit records and for the load-time
//! comparison of a policy's classes with this definition.
use std::fmt::Write as _;
use std::path::PathBuf;

fn strip(line: &str) -> &str {
    match line.find('#') {
        Some(i) => line[..i].trim(),
        None => line.trim(),
    }
}

fn ident_ok(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

fn camel(s: &str) -> String {
    let mut out = String::new();
    for part in s.split('_') {
        let mut cs = part.chars();
        if let Some(f) = cs.next() {
            out.push(f.to_ascii_uppercase());
            out.extend(cs);
        }
    }
    out
}

fn fail(msg: String) -> ! {
    eprintln!("xsm build: {msg}");
    std::process::exit(1);
}

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let dir = manifest.join("../policies/flask");
    // Relative to the package (cargo's rule), so a copy of the tree with
    // its target directory (livepatch build's trees) watches its own files.
    for f in ["security_classes", "initial_sids", "access_vectors"] {
        println!("cargo:rerun-if-changed=../policies/flask/{f}");
    }
    println!("cargo:rerun-if-changed=build.rs");
    let read = |f: &str| {
        std::fs::read_to_string(dir.join(f))
            .unwrap_or_else(|e| fail(format!("cannot read {}: {e}", dir.join(f).display())))
    };

    // security_classes: `class NAME`
    let mut classes: Vec<String> = Vec::new();
    for (n, line) in read("security_classes").lines().enumerate() {
        let l = strip(line);
        if l.is_empty() {
            continue;
        }
        let w: Vec<&str> = l.split_whitespace().collect();
        if w.len() != 2 || w[0] != "class" || !ident_ok(w[1]) {
            fail(format!("security_classes:{}: expected `class NAME`", n + 1));
        }
        if classes.iter().any(|c| c == w[1]) {
            fail(format!(
                "security_classes:{}: class {} declared twice",
                n + 1,
                w[1]
            ));
        }
        classes.push(w[1].to_string());
    }

    // initial_sids: `sid NAME`
    let mut sids: Vec<String> = Vec::new();
    for (n, line) in read("initial_sids").lines().enumerate() {
        let l = strip(line);
        if l.is_empty() {
            continue;
        }
        let w: Vec<&str> = l.split_whitespace().collect();
        if w.len() != 2 || w[0] != "sid" || !ident_ok(w[1]) {
            fail(format!("initial_sids:{}: expected `sid NAME`", n + 1));
        }
        sids.push(w[1].to_string());
    }

    // access_vectors: `class NAME { perm ... }` (no commons in Warden's definition).
    // A permission after a comment starting `# Warden:` is Warden's own; in
    // each class Warden's own come after all of Xen's.
    let text = read("access_vectors");
    let mut tokens: Vec<(usize, String, bool)> = Vec::new();
    let mut warden_next = false;
    for (n, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("# Warden:") {
            warden_next = true;
        }
        let l = strip(line);
        let l = l.replace('{', " { ").replace('}', " } ");
        for t in l.split_whitespace() {
            let w = warden_next && t != "{" && t != "}" && t != "class";
            tokens.push((n + 1, t.to_string(), w));
            if w {
                warden_next = false;
            }
        }
    }
    let mut xen_counts: Vec<(String, usize)> = Vec::new();
    let mut perms: Vec<(String, Vec<String>)> = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let (ln, t, _) = &tokens[i];
        if t == "common" || t == "inherits" {
            fail(format!(
                "access_vectors:{ln}: `{t}` is not used by Warden's definition"
            ));
        }
        if t != "class" || i + 2 >= tokens.len() || tokens[i + 2].1 != "{" {
            fail(format!("access_vectors:{ln}: expected `class NAME {{`"));
        }
        let name = tokens[i + 1].1.clone();
        i += 3;
        let mut ps = Vec::new();
        let mut xen_n = None;
        while i < tokens.len() && tokens[i].1 != "}" {
            let p = &tokens[i].1;
            match (tokens[i].2, xen_n) {
                (true, None) => xen_n = Some(ps.len()),
                (false, Some(_)) => fail(format!(
                    "access_vectors:{}: {p} (Xen's) after Warden's own permissions in class {name}",
                    tokens[i].0
                )),
                _ => {}
            }
            if !ident_ok(p) {
                fail(format!(
                    "access_vectors:{}: bad permission name {p}",
                    tokens[i].0
                ));
            }
            if ps.contains(p) {
                fail(format!(
                    "access_vectors:{}: permission {p} twice in class {name}",
                    tokens[i].0
                ));
            }
            ps.push(p.clone());
            i += 1;
        }
        if i >= tokens.len() {
            fail(format!("access_vectors: class {name} is not closed"));
        }
        i += 1;
        if ps.is_empty() || ps.len() > 32 {
            fail(format!(
                "access_vectors: class {name} has {} permissions (1..=32 allowed)",
                ps.len()
            ));
        }
        xen_counts.push((name.clone(), xen_n.unwrap_or(ps.len())));
        perms.push((name, ps));
    }
    // Every class of security_classes has exactly one access vector
    // definition (in any order, as in the policy language); values come from
    // security_classes.
    let mut ordered: Vec<(String, Vec<String>)> = Vec::new();
    for c in &classes {
        let defs: Vec<&(String, Vec<String>)> = perms.iter().filter(|(n, _)| n == c).collect();
        if defs.len() != 1 {
            fail(format!(
                "class {c} has {} access vector definitions (need 1)",
                defs.len()
            ));
        }
        ordered.push(defs[0].clone());
    }
    if let Some((n, _)) = perms.iter().find(|(n, _)| !classes.contains(n)) {
        fail(format!("access_vectors defines undeclared class {n}"));
    }
    let perms = ordered;
    let mut o = String::new();
    writeln!(
        o,
        "// @generated by xsm/build.rs from policies/flask/. Do not edit."
    )
    .unwrap();
    writeln!(o, "/// Number of classes in Warden's definition.").unwrap();
    writeln!(o, "pub const NUM_CLASSES: usize = {};", classes.len()).unwrap();
    writeln!(o, "/// Class names, index = class value - 1.").unwrap();
    writeln!(
        o,
        "pub const CLASS_NAMES: [&str; {}] = {:?};",
        classes.len(),
        classes
    )
    .unwrap();
    writeln!(
        o,
        "/// Permission names per class, index = class value - 1, then bit."
    )
    .unwrap();
    write!(o, "pub const PERM_NAMES: [&[&str]; {}] = [", classes.len()).unwrap();
    for (_, ps) in &perms {
        write!(o, "&{ps:?}, ").unwrap();
    }
    writeln!(o, "];").unwrap();
    writeln!(
        o,
        "/// Per class (index = class value - 1): how many of its permissions, from bit 0, are Xen's\n\
         /// (Xen 4.17's vocabulary); the rest are Warden's own."
    )
    .unwrap();
    let counts: Vec<usize> = classes
        .iter()
        .map(|c| xen_counts.iter().find(|(n, _)| n == c).map_or(0, |x| x.1))
        .collect();
    writeln!(
        o,
        "pub const XEN_PERM_COUNTS: [usize; {}] = {:?};",
        classes.len(),
        counts
    )
    .unwrap();
    writeln!(o, "/// Number of initial SIDs.").unwrap();
    writeln!(o, "pub const NUM_INITIAL_SIDS: usize = {};", sids.len()).unwrap();
    writeln!(o, "/// Initial SID names, index = SID - 1.").unwrap();
    writeln!(
        o,
        "pub const INITIAL_SID_NAMES: [&str; {}] = {:?};",
        sids.len(),
        sids
    )
    .unwrap();

    // Initial SIDs.
    writeln!(
        o,
        "/// Initial SIDs (values from `policies/flask/initial_sids`)."
    )
    .unwrap();
    writeln!(o, "pub mod initial_sid {{").unwrap();
    writeln!(o, "    use crate::Sid;").unwrap();
    for (i, s) in sids.iter().enumerate() {
        writeln!(o, "    /// Initial SID `{s}`.").unwrap();
        writeln!(
            o,
            "    pub const {}: Sid = Sid::from_raw_const({});",
            s.to_ascii_uppercase(),
            i + 1
        )
        .unwrap();
    }
    writeln!(o, "}}").unwrap();

    // Class types.
    writeln!(
        o,
        "/// One zero-sized type per class; see [`crate::Class`]."
    )
    .unwrap();
    writeln!(o, "pub mod class {{").unwrap();
    for (i, c) in classes.iter().enumerate() {
        let t = camel(c);
        writeln!(o, "    /// Class `{c}` (value {}).", i + 1).unwrap();
        writeln!(o, "    #[derive(Clone, Copy, Debug, PartialEq, Eq)]").unwrap();
        writeln!(o, "    pub enum {t} {{}}").unwrap();
        writeln!(o, "    impl crate::Class for {t} {{").unwrap();
        writeln!(
            o,
            "        const ID: crate::ClassId = crate::ClassId::from_raw_const({});",
            i + 1
        )
        .unwrap();
        writeln!(o, "        const NAME: &'static str = {c:?};").unwrap();
        writeln!(o, "    }}").unwrap();
    }
    writeln!(o, "}}").unwrap();

    // Typed permissions.
    writeln!(
        o,
        "/// Typed permissions: `perms::CLASS::PERM` is a [`crate::Perms`] of that class only."
    )
    .unwrap();
    writeln!(o, "pub mod perms {{").unwrap();
    for (c, ps) in &perms {
        let t = camel(c);
        writeln!(o, "    /// Permissions of class `{c}`.").unwrap();
        writeln!(o, "    pub mod {c} {{").unwrap();
        writeln!(o, "        use crate::Perms;").unwrap();
        writeln!(o, "        use crate::class::{t};").unwrap();
        for (b, p) in ps.iter().enumerate() {
            writeln!(o, "        /// `{c}:{p}` (bit {b}).").unwrap();
            writeln!(
                o,
                "        pub const {}: Perms<{t}> = Perms::from_bits_const(1 << {b});",
                p.to_ascii_uppercase()
            )
            .unwrap();
        }
        let all: u64 = (1u64 << ps.len()) - 1;
        writeln!(o, "        /// Every permission of class `{c}`.").unwrap();
        writeln!(
            o,
            "        pub const ALL: Perms<{t}> = Perms::from_bits_const(0x{all:x});"
        )
        .unwrap();
        writeln!(o, "    }}").unwrap();
    }
    writeln!(o, "}}").unwrap();

    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("flask_defs.rs");
    std::fs::write(&out, o)
        .unwrap_or_else(|e| fail(format!("cannot write {}: {e}", out.display())));
}
