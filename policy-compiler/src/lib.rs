//! `policy-compiler`: the SELinux policy language (with the m4 subset Xen-style
//! sources use) compiled into the standard Xen-target binary policy that
//! `checkpolicy -t xen` writes and libsepol, setools and Warden's `xsm` read.
//!
//! Pipeline: [`m4`] expansion (positions kept per byte) -> [`lexer`] ->
//! [`parser`] -> [`compile`] (symbols, checkpolicy-equivalent expansion,
//! neverallow and bounds checks) -> [`write`].

pub mod ast;
pub mod audit2allow;
pub mod bits;
pub mod compile;
pub mod diag;
pub mod lexer;
pub mod m4;
pub mod parser;
pub mod policydb;
pub mod write;

use std::path::PathBuf;

pub use compile::Options;
use diag::{Diagnostic, Errors, SourceMap};

/// Everything a compilation needs besides the files.
#[derive(Clone, Debug, Default)]
pub struct Job {
    pub files: Vec<PathBuf>,
    pub defines: Vec<String>,
    pub opts: Options,
    pub limits: m4::Limits,
    /// Do not free the expanded text, tokens and syntax tree: for a process that
    /// exits right after compiling (the CLI), like clang's -disable-free.
    pub leak_intermediates: bool,
}

/// The result of a successful compilation.
pub struct Output {
    pub db: policydb::PolicyDb,
    pub warnings: Vec<Diagnostic>,
}

/// Expands the macros of `job`'s files (as `m4 -D... FILES` would).
pub fn expand(job: &Job, sm: &mut SourceMap) -> Result<(m4::Text, Vec<Diagnostic>), Errors> {
    let mut loader = m4::FsLoader;
    let mut e = m4::Expander::new(sm, &mut loader, job.limits);
    for d in &job.defines {
        e.define_cmdline(d);
    }
    e.run(&job.files)
}

/// Prints how long a phase took when `POLICY_COMPILER_TIMES` is set.
pub fn phase_time(name: &str, since: std::time::Instant) {
    if std::env::var_os("POLICY_COMPILER_TIMES").is_some() {
        eprintln!(
            "policy-compiler: {name}: {:.1} ms",
            since.elapsed().as_secs_f64() * 1e3
        );
    }
}

/// Compiles already expanded policy text.
pub fn compile_text(text: &m4::Text, opts: Options) -> Result<Output, Errors> {
    let t = std::time::Instant::now();
    let ast = parser::parse(text)?;
    phase_time("lex+parse", t);
    let t = std::time::Instant::now();
    let (db, warnings) = compile::Compiler::new(opts).compile(&ast)?;
    phase_time("compile", t);
    Ok(Output { db, warnings })
}

/// Expands and compiles; diagnostics refer to `sm`. The expander runs in its
/// own thread and streams its output to the parser (as `m4 | checkpolicy` does).
pub fn compile(job: &Job, sm: &mut SourceMap) -> Result<Output, Errors> {
    let t0 = std::time::Instant::now();
    let (expanded, parsed) = std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<m4::Text>(16);
        let sm_ref = &mut *sm;
        // Argument collection recurses once per nested macro call (up to
        // `max_depth`): give the expander a stack sized for that, not the
        // default 2 MiB of spawned threads (pages are only used when touched).
        let stack = 64 * 1024 * 1024 + job.limits.max_depth * 16 * 1024;
        let expander =
            std::thread::Builder::new()
                .stack_size(stack)
                .spawn_scoped(scope, move || {
                    let mut loader = m4::FsLoader;
                    let mut e = m4::Expander::new(sm_ref, &mut loader, job.limits);
                    for d in &job.defines {
                        e.define_cmdline(d);
                    }
                    e.stream_to(tx);
                    let r = e.run(&job.files);
                    phase_time("expand", t0);
                    r
                });
        let expander = match expander {
            Ok(h) => h,
            Err(e) => {
                let d =
                    Diagnostic::error(None, format!("cannot start the macro expander thread: {e}"));
                return (Err(Errors::one(d.clone())), Err(Errors::one(d)));
            }
        };
        let lexer = lexer::Lexer::from_pieces(Box::new(move || rx.recv().ok()));
        let parsed = parser::parse_lexer(lexer);
        phase_time("expand+lex+parse", t0);
        let expanded = expander.join().unwrap_or_else(|_| {
            Err(Errors::one(Diagnostic::error(
                None,
                "internal error: the macro expander stopped",
            )))
        });
        (expanded, parsed)
    });
    // An expansion error explains any parse error that follows from it.
    let (_, mut msgs) = expanded?;
    let ast = parsed?;
    let t = std::time::Instant::now();
    let (db, mut warnings) = compile::Compiler::new(job.opts).compile(&ast)?;
    phase_time("compile", t);
    if job.leak_intermediates {
        std::mem::forget(ast);
    }
    msgs.append(&mut warnings);
    Ok(Output { db, warnings: msgs })
}

/// Compiles an in-memory source (used by tests and the fuzzer). Errors come rendered.
pub fn compile_str(src: &str, opts: Options, limits: m4::Limits) -> Result<Vec<u8>, String> {
    let mut sm = SourceMap::default();
    let mut loader = m4::FsLoader;
    let e = m4::Expander::new(&mut sm, &mut loader, limits);
    let r = e
        .run_text("<input>", src.as_bytes())
        .and_then(|(t, _)| compile_text(&t, opts));
    match r {
        Ok(o) => Ok(write::write(&o.db)),
        Err(e) => Err(e.render(&sm)),
    }
}

/// Limits used by the fuzz target and its corpus replay: small enough that every
/// input finishes quickly, large enough to exercise recursion limits.
pub const FUZZ_LIMITS: m4::Limits = m4::Limits {
    max_depth: 64,
    max_expansions: 20_000,
    max_bytes: 256 * 1024,
};

/// One fuzz iteration: macro-expand, lex, parse, compile and write `data`, under
/// [`FUZZ_LIMITS`]. Any outcome but a panic, hang or unbounded allocation is fine.
pub fn fuzz_one(data: &[u8]) {
    let mut sm = SourceMap::default();
    let mut loader = NoFiles;
    let e = m4::Expander::new(&mut sm, &mut loader, FUZZ_LIMITS);
    let Ok((text, _)) = e.run_text("fuzz", data) else {
        return;
    };
    for mls in [false, true] {
        let opts = Options {
            mls,
            ..Options::default()
        };
        if let Ok(out) = compile_text(&text, opts) {
            let _ = write::write(&out.db);
        }
    }
}

/// A loader that refuses every include (the fuzzer must not read the file system).
struct NoFiles;

impl m4::FileLoader for NoFiles {
    fn load(&mut self, _path: &std::path::Path) -> Result<Vec<u8>, String> {
        Err("includes are disabled".into())
    }
}
