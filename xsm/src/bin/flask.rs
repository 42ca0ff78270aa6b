//! `flask`: Warden's FLASK policy tool for policy authors and tests.
//!
//! ```text
//! flask info POLICY
//! flask compute-av POLICY [--bool NAME=0|1]... [--names]      # stdin: SCONTEXT TCONTEXT CLASS
//! flask compute-create|compute-member|compute-relabel POLICY [--bool NAME=0|1]...
//! ```
//! The line formats are those of tools/sepol-oracle, so outputs diff directly.
use std::io::{BufRead, Write};
use std::process::ExitCode;

use xsm::definition;
use xsm::policydb::PolicyDb;
use xsm::services::{self, CondState, SidKind};

const USAGE: &str = "usage:
  flask info POLICY
  flask compute-av POLICY [--bool NAME=0|1]... [--names]
  flask compute-create POLICY [--bool NAME=0|1]...
  flask compute-member POLICY [--bool NAME=0|1]...
  flask compute-relabel POLICY [--bool NAME=0|1]...

compute-* read lines `SCONTEXT TCONTEXT CLASS` on standard input and print one
line per query: `allowed=0x%08x auditallow=0x%08x auditdeny=0x%08x` (bit n-1 =
permission value n; auditdeny is the complement of dontaudit), with --names
followed by the permission names in braces; or the new context; or
`error: REASON`.";

fn main() -> ExitCode {
    // COMMAND POLICY, then the command's options (parsed with lexopt).
    let mut args: Vec<String> = Vec::new();
    let mut bools: Vec<(String, bool)> = Vec::new();
    let mut names = false;
    let mut help = false;
    let mut p = lexopt::Parser::from_env();
    loop {
        use lexopt::prelude::*;
        let arg = match p.next() {
            Ok(Some(a)) => a,
            Ok(None) => break,
            Err(e) => {
                eprintln!("flask: {e}\n{USAGE}");
                return ExitCode::from(2);
            }
        };
        let cmd = args.first().map(String::as_str).unwrap_or("");
        match arg {
            Long("help") | Short('h') => help = true,
            Long("names") if cmd == "compute-av" => names = true,
            Long("bool") if !cmd.is_empty() && cmd != "info" => {
                let Some(spec) = p.value().ok().and_then(|v| v.into_string().ok()) else {
                    eprintln!("flask: --bool needs NAME=0|1");
                    return ExitCode::from(2);
                };
                match spec.split_once('=') {
                    Some((n, "0")) => bools.push((n.to_string(), false)),
                    Some((n, "1")) => bools.push((n.to_string(), true)),
                    _ => {
                        eprintln!("flask: bad --bool {spec}: expected NAME=0|1");
                        return ExitCode::from(2);
                    }
                }
            }
            Value(v) if args.len() < 2 => args.push(v.to_string_lossy().into_owned()),
            other => {
                eprintln!("flask: {}\n{USAGE}", other.unexpected());
                return ExitCode::from(2);
            }
        }
    }
    if args.is_empty() || help {
        println!("{USAGE}");
        return if help {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(2)
        };
    }
    let cmd = args[0].as_str();
    let kind = match cmd {
        "info" => None,
        "compute-av" => None,
        "compute-create" => Some(SidKind::Create),
        "compute-member" => Some(SidKind::Member),
        "compute-relabel" => Some(SidKind::Relabel),
        _ => {
            eprintln!("flask: unknown command {cmd}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if args.len() < 2 {
        eprintln!("flask: missing POLICY\n{USAGE}");
        return ExitCode::from(2);
    }
    let path = &args[1];
    let data = match std::fs::read(path) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("flask: cannot read {path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let db = match PolicyDb::from_bytes(&data) {
        Ok(db) => db,
        Err(e) => {
            eprintln!("flask: {path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let def = definition::check(&db);
    if def.refused(db.handle_unknown) {
        eprintln!("flask: {path}: refused: {}", def.describe());
        return ExitCode::FAILURE;
    }
    if !def.missing.is_empty() {
        eprintln!(
            "flask: {path}: lacks {} (handle_unknown={})",
            def.missing.join(", "),
            db.handle_unknown.name()
        );
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if cmd == "info" {
        let hu = db.handle_unknown.name();
        let ntypes = db.types.len() - db.attribute_count();
        let _ = writeln!(out, "policy version: {}", db.version);
        let _ = writeln!(out, "mls: {}", if db.mls { "enabled" } else { "disabled" });
        let _ = writeln!(out, "handle_unknown: {hu}");
        let _ = writeln!(out, "users: {}", db.users.len());
        let _ = writeln!(out, "roles: {}", db.roles.len());
        let _ = writeln!(out, "types: {ntypes}");
        let _ = writeln!(out, "attributes: {}", db.attribute_count());
        let _ = writeln!(out, "type aliases: {}", db.type_aliases);
        let _ = writeln!(out, "booleans: {}", db.bools.len());
        let _ = writeln!(out, "classes: {}", db.classes.len());
        let _ = writeln!(out, "rules: {}", db.rule_count());
        let _ = writeln!(out, "conditional rules: {}", db.cond_rule_count());
        if db.mls {
            let _ = writeln!(out, "sensitivities: {}", db.sens.len());
            let _ = writeln!(out, "categories: {}", db.cats.len());
        }
        let _ = writeln!(out, "permissive types: {}", db.permissive.count());
        return ExitCode::SUCCESS;
    }
    let mut values: Vec<bool> = db.bools.iter().map(|b| b.state).collect();
    for (n, v) in &bools {
        match db.bool_value(n) {
            Some(i) => values[i as usize - 1] = *v,
            None => {
                eprintln!("flask: unknown boolean {n}");
                return ExitCode::FAILURE;
            }
        }
    }
    let cs = CondState::with_bools(&db, values);
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.is_empty() {
            continue;
        }
        let res = query(&db, &cs, &f, kind, names);
        let _ = match res {
            Ok(s) => writeln!(out, "{s}"),
            Err(e) => writeln!(out, "error: {e}"),
        };
    }
    ExitCode::SUCCESS
}

fn vector(db: &PolicyDb, class: u32, bits: u32) -> String {
    let perms = &db.classes[class as usize - 1].perms;
    let mut s = String::from("{");
    let mut unnamed = 0u32;
    for b in 0..32 {
        if bits & (1 << b) == 0 {
            continue;
        }
        match perms.get(b).and_then(|p| p.as_deref()) {
            Some(n) => {
                s.push(' ');
                s.push_str(n);
            }
            None => unnamed |= 1 << b,
        }
    }
    if unnamed != 0 {
        s.push_str(&format!(" 0x{unnamed:x}"));
    }
    s.push_str(" }");
    s
}

fn query(
    db: &PolicyDb,
    cs: &CondState,
    f: &[&str],
    kind: Option<SidKind>,
    names: bool,
) -> Result<String, String> {
    if f.len() != 3 {
        return Err("expected SCONTEXT TCONTEXT CLASS".into());
    }
    let s = services::parse_context(db, f[0].as_bytes())
        .map_err(|_| format!("invalid context {}", f[0]))?;
    let t = services::parse_context(db, f[1].as_bytes())
        .map_err(|_| format!("invalid context {}", f[1]))?;
    let class = db
        .class_value(f[2])
        .ok_or_else(|| format!("unknown class {}", f[2]))?;
    match kind {
        None => {
            let d = services::compute_av(db, cs, &s, &t, class);
            if names {
                Ok(format!(
                    "allowed=0x{:08x} {} auditallow=0x{:08x} {} auditdeny=0x{:08x} {}",
                    d.allowed,
                    vector(db, class, d.allowed),
                    d.auditallow,
                    vector(db, class, d.auditallow),
                    d.auditdeny,
                    vector(db, class, d.auditdeny)
                ))
            } else {
                Ok(format!(
                    "allowed=0x{:08x} auditallow=0x{:08x} auditdeny=0x{:08x}",
                    d.allowed, d.auditallow, d.auditdeny
                ))
            }
        }
        Some(k) => match services::compute_sid(db, cs, &s, &t, class, k) {
            Ok(c) => Ok(services::context_to_string(db, &c)),
            Err(_) => Err("cannot compute a new context".into()),
        },
    }
}
