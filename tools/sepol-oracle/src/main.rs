//! `sepol-oracle`: libsepol's answers in the line format of Warden's `flask` tool.
//!
//! ```text
//! sepol-oracle compute-av POLICY [--bool NAME=0|1]...      # stdin: SCONTEXT TCONTEXT CLASS
//! sepol-oracle compute-create|compute-member|compute-relabel POLICY [--bool NAME=0|1]...
//! sepol-oracle info POLICY
//! sepol-oracle ocontexts POLICY
//! ```
use std::io::{BufRead, Write};
use std::path::Path;
use std::process::ExitCode;

use sepol_oracle::{Oracle, SidKind};

const USAGE: &str = "usage: sepol-oracle compute-av|compute-create|compute-member|compute-relabel|info|ocontexts POLICY [--bool NAME=0|1]...";

fn main() -> ExitCode {
    // COMMAND POLICY [--bool NAME=0|1]...
    let mut pos: Vec<String> = Vec::new();
    let mut bools = Vec::new();
    let mut p = lexopt::Parser::from_args(std::env::args_os().skip(1));
    loop {
        use lexopt::prelude::*;
        let arg = match p.next() {
            Ok(Some(a)) => a,
            Ok(None) => break,
            Err(e) => {
                eprintln!("sepol-oracle: {e}\n{USAGE}");
                return ExitCode::from(2);
            }
        };
        match arg {
            Long("help") | Short('h') => {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            }
            Long("bool") => {
                let Some(spec) = p.value().ok().and_then(|v| v.into_string().ok()) else {
                    eprintln!("sepol-oracle: --bool needs NAME=0|1");
                    return ExitCode::from(2);
                };
                match spec.split_once('=') {
                    Some((n, "0")) => bools.push((n.to_string(), false)),
                    Some((n, "1")) => bools.push((n.to_string(), true)),
                    _ => {
                        eprintln!("sepol-oracle: bad --bool {spec}: expected NAME=0|1");
                        return ExitCode::from(2);
                    }
                }
            }
            Value(v) if pos.len() < 2 => pos.push(v.to_string_lossy().into_owned()),
            other => {
                eprintln!("sepol-oracle: {}\n{USAGE}", other.unexpected());
                return ExitCode::from(2);
            }
        }
    }
    if pos.len() < 2 {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    }
    let args = pos;
    let oracle = match Oracle::load(Path::new(&args[1]), &bools) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("sepol-oracle: {e}");
            return ExitCode::FAILURE;
        }
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let kind = match args[0].as_str() {
        "info" => {
            for l in oracle.info() {
                let _ = writeln!(out, "{l}");
            }
            return ExitCode::SUCCESS;
        }
        "ocontexts" => {
            for l in oracle.ocontexts() {
                let _ = writeln!(out, "{l}");
            }
            return ExitCode::SUCCESS;
        }
        "compute-av" => None,
        "compute-create" => Some(SidKind::Create),
        "compute-member" => Some(SidKind::Member),
        "compute-relabel" => Some(SidKind::Relabel),
        other => {
            eprintln!("sepol-oracle: unknown command {other}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.is_empty() {
            continue;
        }
        let res = if f.len() != 3 {
            Err("expected SCONTEXT TCONTEXT CLASS".to_string())
        } else {
            match kind {
                None => oracle.compute_av(f[0], f[1], f[2]).map(|av| av.to_string()),
                Some(k) => oracle.compute_sid(k, f[0], f[1], f[2]),
            }
        };
        let _ = match res {
            Ok(s) => writeln!(out, "{s}"),
            Err(e) => writeln!(out, "error: {e}"),
        };
    }
    ExitCode::SUCCESS
}
