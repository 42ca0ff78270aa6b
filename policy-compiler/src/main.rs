//! `policy-compiler`: a drop-in for `m4 ... | checkpolicy -t xen`.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use policy_compiler::diag::SourceMap;
use policy_compiler::{Job, audit2allow, compile, expand, write};

const USAGE: &str = "\
usage: policy-compiler [-t xen] [-c 24|30] [-M] [-U deny|reject|allow] [-o OUTPUT]
                       [-D NAME[=VALUE]]... [-E] FILE...
       policy-compiler audit2allow [POLICY] < dmesg.txt

Compiles SELinux-language policy sources (Xen target) into a binary policy.
The FILEs are read in order as one stream and macro-expanded first (the m4
subset Xen policies use), so `policy-compiler -o policy FILES` replaces
`m4 FILES | checkpolicy -t xen -o policy`. Without -o the policy is only checked.
include() names files relative to the file that includes them.

  -t xen        target platform (only xen; accepted for checkpolicy compatibility)
  -c VERSION    binary policy version: 24 or 30 (default 30)
  -M            compile an MLS policy
  -U HANDLING   handle_unknown: deny (default), reject or allow
  -o OUTPUT     write the binary policy to OUTPUT (atomically: nothing on error)
  -D NAME[=V]   define macro NAME (as m4 -D)
  -E            print the macro-expanded policy.conf and stop
  -h, --help    this help
  -V            version

Set POLICY_COMPILER_TIMES=1 to print how long each phase took.

audit2allow reads `avc:  denied` lines (as `xl dmesg` prints them) from stdin
and prints the allow rules that would permit them, grouped per source, target
and class, each with the number of denials it covers. With POLICY (a binary
policy) it also names unnamed permission bits (0x...) and flags classes,
permissions and types the policy does not define.

It takes only the hypervisor's own audit records: lines that start with
  [\"(XEN) \"] [\"[\" TIME \"] \"] [LEVEL \" \"+] [\"audit(\" SECS.MSECS:SERIAL \"): \"] \"avc:  denied  {\"
(LEVEL: ERROR WARN INFO DEBUG TRACE), as Warden's console ring and Xen's
console write them. Guest console output is written as `(dN) [TIME] TEXT`, so
a record a guest forged never has that form; such lines, and any other line
mentioning `avc:` and `denied`, are listed as ignored, never turned into rules.
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("audit2allow") {
        return run_audit2allow(&args[1..]);
    }
    match run(&args) {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("policy-compiler: error: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn run_audit2allow(args: &[String]) -> ExitCode {
    // At most one argument, POLICY; no options.
    let mut policy: Option<String> = None;
    let mut p = lexopt::Parser::from_args(args.iter().cloned());
    loop {
        match p.next() {
            Ok(None) => break,
            Ok(Some(lexopt::Arg::Value(v))) if policy.is_none() => {
                policy = Some(v.to_string_lossy().into_owned());
            }
            Ok(Some(lexopt::Arg::Long("help") | lexopt::Arg::Short('h'))) => {
                print!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            _ => {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let db = match policy.as_ref() {
        Some(p) => match std::fs::read(p) {
            Ok(b) => match audit2allow::PolicyNames::from_binary(&b) {
                Ok(n) => Some(n),
                Err(e) => {
                    eprintln!("policy-compiler: error: {p}: {e}");
                    return ExitCode::FAILURE;
                }
            },
            Err(e) => {
                eprintln!("policy-compiler: error: cannot read {p}: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    let mut input = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut input) {
        eprintln!("policy-compiler: error: reading stdin: {e}");
        return ExitCode::FAILURE;
    }
    let out = audit2allow::run(&input, db.as_ref());
    print!("{out}");
    ExitCode::SUCCESS
}

fn run(args: &[String]) -> Result<ExitCode, String> {
    let mut job = Job {
        leak_intermediates: true,
        ..Job::default()
    };
    let mut output: Option<PathBuf> = None;
    let mut expand_only = false;
    let mut p = lexopt::Parser::from_args(args.iter().cloned());
    // The value of the option just read (attached, `-ofile`, or the next argument).
    fn value(p: &mut lexopt::Parser, flag: &str) -> Result<String, String> {
        p.value()
            .map_err(|_| format!("{flag} needs a value\n{USAGE}"))?
            .into_string()
            .map_err(|v| format!("{flag}: not UTF-8: {}", v.to_string_lossy()))
    }
    while let Some(arg) = p.next().map_err(|e| format!("{e}\n{USAGE}"))? {
        use lexopt::prelude::*;
        match arg {
            Short('h') | Long("help") => {
                print!("{USAGE}");
                return Ok(ExitCode::SUCCESS);
            }
            Short('V') | Long("version") => {
                println!(
                    "policy-compiler {} (binary policy versions 24 and 30, Xen target)",
                    env!("CARGO_PKG_VERSION")
                );
                return Ok(ExitCode::SUCCESS);
            }
            Short('t') => {
                let t = value(&mut p, "-t")?;
                if !t.eq_ignore_ascii_case("xen") {
                    return Err(format!(
                        "unsupported target `{t}`: policy-compiler writes Xen-target policies only (-t xen)"
                    ));
                }
            }
            Short('c') => {
                let v = value(&mut p, "-c")?;
                job.opts.version = match v.as_str() {
                    "24" => 24,
                    "30" => 30,
                    _ => {
                        return Err(format!(
                            "invalid policy version `{v}` for the Xen target: use -c 24 or -c 30"
                        ));
                    }
                };
            }
            Short('M') => job.opts.mls = true,
            Short('U') => {
                let v = value(&mut p, "-U")?;
                job.opts.handle_unknown = match v.as_str() {
                    "deny" => 0,
                    "reject" => 2,
                    "allow" => 4,
                    _ => return Err(format!("invalid -U value `{v}`: use deny, reject or allow")),
                };
            }
            Short('o') => output = Some(PathBuf::from(value(&mut p, "-o")?)),
            Short('D') => job.defines.push(value(&mut p, "-D")?),
            Short('E') => expand_only = true,
            Value(f) => job.files.push(PathBuf::from(f)),
            other => return Err(format!("{}\n{USAGE}", other.unexpected())),
        }
    }
    if job.files.is_empty() {
        job.files.push(PathBuf::from("policy.conf"));
    }
    let mut sm = SourceMap::default();
    if expand_only {
        return match expand(&job, &mut sm) {
            Ok((text, msgs)) => {
                for m in &msgs {
                    eprint!("{}", m.render(&sm));
                }
                let mut out = std::io::stdout().lock();
                out.write_all(&text.bytes).map_err(|e| e.to_string())?;
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprint!("{}", e.render(&sm));
                Ok(ExitCode::FAILURE)
            }
        };
    }
    let out = match compile(&job, &mut sm) {
        Ok(o) => o,
        Err(e) => {
            eprint!("{}", e.render(&sm));
            let n = e.0.len();
            eprintln!(
                "policy-compiler: {n} error{} found; nothing written",
                if n == 1 { "" } else { "s" }
            );
            return Ok(ExitCode::FAILURE);
        }
    };
    for w in &out.warnings {
        eprint!("{}", w.render(&sm));
    }
    if let Some(path) = output {
        let t = std::time::Instant::now();
        let bytes = write::write(&out.db);
        write_atomically(&path, &bytes)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        policy_compiler::phase_time("write", t);
    }
    // The process ends here: let the OS reclaim the policy database at once.
    std::mem::forget(out);
    std::mem::forget(sm);
    Ok(ExitCode::SUCCESS)
}

/// Writes `bytes` to a temporary file next to `path`, then renames it into place,
/// so a failed build never leaves a partial policy behind.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let res = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}
