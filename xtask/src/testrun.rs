//! `cargo xtask test`: the whole test suite in phases, each timed: the wall
//! and CPU time of every phase and the run time of the slowest test binaries
//! are printed at the end (also when a phase fails).
//!
//! Phases: Debian packages; Linux assets (and dom0's image); lint; every
//! test binary built in one cargo run; the host tests (their binaries run
//! [`HOST_JOBS`] at a time, longest first, then the doc-tests, the QEMU
//! tests' package's among them; the live-patch tool's build test,
//! [`BACKGROUND`], runs beside this phase and all later ones, and the suite
//! waits for it at the end); the images; the
//! QEMU test binaries (all started at once, each running its
//! tests on its own threads as `cargo test` would; every boot waits for one
//! of [`crate::slots`], so as many machines run as there are CPUs, with no
//! gap between one binary's last boot and the next binary's first).

use crate::{Error, Result, bail, build, deps, workspace_root};
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// QEMU test binaries run at once (each runs its tests on its own threads;
/// the machines they boot are limited by [`crate::slots`]).
pub const QEMU_JOBS: usize = 16;

/// Host test binaries run at once (most are single-threaded; the longest,
/// [`BACKGROUND`], runs cargo builds of the hypervisor and counts as one of
/// them for as long as it runs, beside the later phases too).
pub const HOST_JOBS: usize = 2;

/// Host test binaries known to take longest (package/target), started first.
const HOST_LONGEST_FIRST: &[&str] = &[
    "live-patch/tool/build",
    "policy-compiler/default_policy",
    "policy-compiler/generated",
];

/// QEMU test binaries known to take longest, started first.
const LONGEST_FIRST: &[&str] = &["livepatch", "boot", "domains", "flask_boot"];

/// CPU seconds (user + system) used so far by this process's finished,
/// waited-for children (`cutime` + `cstime` of /proc/self/stat), which on a
/// loaded machine says more than wall time about a phase's cost.
pub fn children_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    children_cpu_from_stat(&stat)
}

/// [`children_cpu_seconds`] from the text of /proc/PID/stat (clock ticks of
/// 1/100 s, Linux's USER_HZ).
fn children_cpu_from_stat(stat: &str) -> Option<f64> {
    // Fields after the command name (which may hold spaces, in parentheses):
    // state is field 3, cutime field 16, cstime field 17.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let cutime: u64 = f.get(13)?.parse().ok()?;
    let cstime: u64 = f.get(14)?.parse().ok()?;
    Some((cutime + cstime) as f64 / 100.0)
}

/// Wall times (and CPU times of the children) of named phases.
#[derive(Debug, Default)]
pub struct Timer {
    phases: Vec<(String, Duration, Option<f64>)>,
    /// (test binary, its own "finished in" time).
    binaries: Vec<(String, f64)>,
    /// The QEMU tests' boot log ([`crate::bootlog`]), once they ran.
    boot_log: Option<PathBuf>,
    /// The host test run beside the later phases, and its wall time.
    overlapped: Option<(String, Duration)>,
    /// CPU time of every process the suite ran, from its start to its end.
    cpu_all: Option<f64>,
    passed: u64,
    failed: u64,
}

impl Timer {
    /// Run `f` as phase `name`, recording its wall time (also on failure).
    pub fn phase<T>(&mut self, name: &str, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        eprintln!("xtask: == {name}");
        let t = Instant::now();
        let cpu = children_cpu_seconds();
        let r = f(self);
        let cpu = children_cpu_seconds()
            .zip(cpu)
            .map(|(after, before)| after - before);
        self.phases.push((name.to_string(), t.elapsed(), cpu));
        r
    }

    /// The phase table and the slowest test binaries.
    pub fn report(&self) -> String {
        let mut s = String::from(
            "xtask: phase times: wall, and CPU (user + system) of the processes it ran\n",
        );
        let total: Duration = self.phases.iter().map(|p| p.1).sum();
        let cpu_total: f64 = self.phases.iter().filter_map(|p| p.2).sum();
        let cpu = |c: Option<f64>| c.map_or("       ?".to_string(), |c| format!("{c:>8.1}"));
        for (name, d, c) in &self.phases {
            s += &format!(
                "  {:>8.1} s wall {} s CPU  {name}\n",
                d.as_secs_f64(),
                cpu(*c)
            );
        }
        s += &format!(
            "  {:>8.1} s wall {cpu_total:>8.1} s CPU  total\n",
            total.as_secs_f64()
        );
        if let Some((name, d)) = &self.overlapped {
            s += &format!(
                "  ({name}: {:.1} s wall beside the phases after the host tests' build; its CPU counts in the phase it ended in, if any)\n",
                d.as_secs_f64()
            );
        }
        if let Some(c) = self.cpu_all {
            s += &format!("  {c:>8.1} s CPU of every process the suite ran, from start to end\n");
        }
        let mut b = self.binaries.clone();
        b.sort_by(|x, y| y.1.total_cmp(&x.1));
        if !b.is_empty() {
            s += "xtask: slowest test binaries (their own run time)\n";
            for (name, secs) in b.iter().take(12) {
                s += &format!("  {secs:>8.1} s  {name}\n");
            }
        }
        if let Some(log) = &self.boot_log {
            s += &crate::bootlog::report_file(log, 10);
        }
        s += &format!("total: {} passed, {} failed\n", self.passed, self.failed);
        s
    }

    /// Print a finished binary's verdict and output and count its results;
    /// whether it passed.
    fn finished(&mut self, what: &str, (name, took, ok, text): Done) -> bool {
        println!(
            "xtask: {what}: {name} {} after {:.1} s",
            if ok { "passed" } else { "FAILED" },
            took.as_secs_f64()
        );
        print!("{text}");
        for line in text.lines() {
            if line.starts_with("test result: ") {
                self.result_line(&format!("{what}: {name}"), line);
            }
        }
        ok
    }

    /// Add one `test result:` line (passed, failed, run time) for `binary`.
    fn result_line(&mut self, binary: &str, line: &str) {
        let Some(rest) = line.strip_prefix("test result: ") else {
            return;
        };
        for part in rest.split(';') {
            let words: Vec<&str> = part.split_whitespace().collect();
            match words.as_slice() {
                [.., n, "passed"] => self.passed += n.parse::<u64>().unwrap_or(0),
                [.., n, "failed"] => self.failed += n.parse::<u64>().unwrap_or(0),
                ["finished", "in", t] => {
                    let secs = t.trim_end_matches('s').parse().unwrap_or(0.0);
                    self.binaries.push((binary.to_string(), secs));
                }
                _ => {}
            }
        }
    }
}

/// `cargo` in the workspace, with `RUSTC_BOOTSTRAP` set to
/// [`COMPILE_FAIL_CODES_CHECKED`] for every host build of the suite alike
/// (lint's host clippy too: [`crate::lint`]). The host doc-tests need it;
/// the build scripts of proc-macro2 and curve25519-dalek rerun when it
/// changes, so a build without it after one with it recompiled syn, every
/// derive macro and what depends on them (about 30 s of CPU, on one core,
/// before the QEMU tests could start).
fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(workspace_root())
        .env("RUSTC_BOOTSTRAP", COMPILE_FAIL_CODES_CHECKED);
    c
}

/// The test selection: the workspace without the image (host crates and the
/// QEMU tests' package, `warden-tests`).
const ALL: &[&str] = &["--workspace", "--exclude", "warden"];

/// Run a `cargo test` command, echoing its output, and add its "test
/// result:" lines (and the binary each belongs to) to `t`.
fn cargo_test(t: &mut Timer, mut c: Command, what: &str) -> Result<()> {
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().map_err(|e| Error(format!("{what}: {e}")))?;
    // cargo names each binary on stderr ("Running ...", "Doc-tests ..."):
    // echo stderr as it comes and pass the names along.
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let err = child.stderr.take().map(|e| {
        std::thread::spawn(move || {
            for line in BufReader::new(e).lines().map_while(std::io::Result::ok) {
                eprintln!("{line}");
                let l = line.trim_start();
                if let Some(r) = l.strip_prefix("Running ") {
                    let _ = tx.send(r.to_string());
                } else if l.starts_with("Doc-tests ") {
                    let _ = tx.send(l.to_string());
                }
            }
        })
    });
    let mut current = String::from("?");
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines() {
            let line = line?;
            println!("{line}");
            if line.starts_with("test result: ") {
                while let Ok(n) = rx.try_recv() {
                    current = n;
                }
                t.result_line(&current, &line);
            }
        }
    }
    if let Some(h) = err {
        let _ = h.join();
    }
    let s = child.wait()?;
    if !s.success() {
        bail!("{what} failed ({s})");
    }
    Ok(())
}

/// Crates whose `compile_fail` doctests are pinned to error codes (a
/// `RUSTC_BOOTSTRAP` value: crate names, comma-separated).
pub const COMPILE_FAIL_CODES_CHECKED: &str = "hvcore,warden_abi,xsm";

/// The whole suite (`cargo xtask test`).
pub fn run_all() -> Result<()> {
    let mut t = Timer::default();
    let cpu_before = children_cpu_seconds();
    let r = phases(&mut t);
    // Every child has been waited for by now, the background test too.
    t.cpu_all = children_cpu_seconds()
        .zip(cpu_before)
        .map(|(after, before)| after - before);
    eprint!("{}", t.report());
    r?;
    println!("xtask: all tests passed");
    println!("total: {} passed, {} failed", t.passed, t.failed);
    Ok(())
}

fn phases(t: &mut Timer) -> Result<()> {
    t.phase("Debian packages", |_| deps::ensure(&deps::for_tests()))?;
    // Debian's kernel and busybox for the Linux tests (downloaded once into
    // target/linux/; the initramfs rebuilt if its /init changed).
    // And dom0's image, built here once rather than by the first of the
    // test binaries that want it.
    t.phase("Linux assets", |_| {
        crate::linux::assets(false)?;
        crate::dom0img::image(false).map(|_| ())
    })?;
    crate::lint::lint_timed(t)?;
    // Every test binary, host and QEMU, in one cargo run: one feature
    // resolution (building the QEMU tests' package alone resolved other
    // features for xtask and recompiled it and what depends on it), and
    // cargo keeps both cores busy over the whole set.
    let (host, qemu) = t.phase("tests: build", |_| test_binaries())?;
    // The live-patch tool's build test (minutes of cargo builds of the
    // hypervisor) runs beside everything after it, from here to the end of
    // the QEMU tests: the other host tests take a fraction of its time, and
    // a core that finished them would otherwise wait idle for it.
    let (background, host): (Vec<TestBinary>, Vec<TestBinary>) =
        host.into_iter().partition(|b| b.name == BACKGROUND);
    let background = background.into_iter().next().map(|b| {
        eprintln!("xtask: host tests: starting {} (beside the rest)", b.name);
        let started = Instant::now();
        (std::thread::spawn(move || run_one(&b, &[])), started)
    });
    let r = after_host_build(t, &host, &qemu);
    // Whatever happened, wait for it: no build left running behind xtask.
    match background {
        None => r,
        Some((h, started)) => {
            let done = h
                .join()
                .unwrap_or_else(|_| (BACKGROUND.into(), started.elapsed(), false, String::new()));
            let name = done.0.clone();
            t.overlapped = Some((name.clone(), started.elapsed()));
            let ok = t.finished("host tests", done);
            r.and(if ok {
                Ok(())
            } else {
                Err(Error(format!("host tests failed: {name}")))
            })
        }
    }
}

/// The host test that runs beside the others and the QEMU tests.
const BACKGROUND: &str = "live-patch/tool/build";

/// The phases after the tests' build.
fn after_host_build(t: &mut Timer, host: &[TestBinary], qemu: &[TestBinary]) -> Result<()> {
    t.phase("host tests: run", |t| {
        // The test binaries (but the one in the background), HOST_JOBS - 1
        // at once, longest first, then the doc-tests.
        let none: &[(&str, &std::path::Path)] = &[];
        let binaries = run_binaries(t, "host tests", host, HOST_JOBS - 1, none);
        let mut c = cargo();
        // (The QEMU tests' package has its doc-tests run here too, with
        // the same features as its build.)
        c.arg("test").args(ALL).arg("--doc");
        // rustdoc checks the error code of a `compile_fail,E0XXX` doctest only
        // when it believes it is a nightly build: `cargo()` tells it so for
        // these crates' doctests (the permit, pod! and permission-class
        // proofs), and for nothing else.
        let doc = cargo_test(t, c, "host doc-tests");
        binaries.and(doc)
    })?;
    let (prod, test_img) = t.phase("images", |_| {
        Ok((build::build_image(false)?, build::build_image(true)?))
    })?;
    t.phase("QEMU tests: run", |t| {
        let boot_log = crate::bare_metal_target_dir().join("qemu-boots.log");
        let _ = std::fs::remove_file(&boot_log);
        t.boot_log = Some(boot_log.clone());
        let env = [
            ("WARDEN_IMAGE", prod.as_path()),
            ("WARDEN_TEST_IMAGE", test_img.as_path()),
            (crate::bootlog::ENV, boot_log.as_path()),
        ];
        run_binaries(t, "QEMU tests", qemu, QEMU_JOBS, &env)
    })
}

/// One test binary: a name for the report, the executable, the directory it
/// runs in (its package's, as `cargo test` does).
#[derive(Debug, Clone)]
pub struct TestBinary {
    pub name: String,
    pub exe: PathBuf,
    pub dir: PathBuf,
}

/// Build the host test binaries (unit and integration tests of the host
/// selection) and return them, longest first.
/// Build every test binary: the host selection's unit and integration
/// tests and the QEMU tests (package `warden-tests`, directory `tests/`).
/// Returns (host, QEMU), each longest first; a QEMU binary is named by its
/// target alone (`block`).
fn test_binaries() -> Result<(Vec<TestBinary>, Vec<TestBinary>)> {
    let mut c = cargo();
    c.arg("test")
        .args(ALL)
        .args(["--no-run", "--message-format=json-render-diagnostics"])
        .stdout(Stdio::piped());
    let out = c
        .output()
        .map_err(|e| Error(format!("building the tests: {e}")))?;
    if !out.status.success() {
        bail!("building the tests failed ({})", out.status);
    }
    let (mut host, mut qemu) = (Vec::new(), Vec::new());
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Some(mut b) = test_artifact(line) {
            match b.name.strip_prefix("tests/") {
                Some(target) => {
                    b.name = target.to_string();
                    qemu.push(b);
                }
                None => host.push(b),
            }
        }
    }
    if host.is_empty() || qemu.is_empty() {
        bail!("no host or no QEMU test binary found in cargo's output");
    }
    let rank = |b: &TestBinary| {
        HOST_LONGEST_FIRST
            .iter()
            .position(|x| *x == b.name)
            .unwrap_or(HOST_LONGEST_FIRST.len())
    };
    host.sort_by(|a, b| rank(a).cmp(&rank(b)).then(a.name.cmp(&b.name)));
    let rank = |n: &str| {
        LONGEST_FIRST
            .iter()
            .position(|x| *x == n)
            .unwrap_or(LONGEST_FIRST.len())
    };
    qemu.sort_by(|a, b| rank(&a.name).cmp(&rank(&b.name)).then(a.name.cmp(&b.name)));
    Ok((host, qemu))
}

/// A test executable cargo reported in a `compiler-artifact` line: one built
/// with the test profile (a bin built for integration tests is not).
fn test_artifact(line: &str) -> Option<TestBinary> {
    if !line.contains("\"reason\":\"compiler-artifact\"") {
        return None;
    }
    let exe = json_str(line, "executable")?;
    let profile = &line[line.find("\"profile\":{")?..];
    let profile = &profile[..profile.find('}')?];
    if !profile.contains("\"test\":true") {
        return None;
    }
    let manifest = PathBuf::from(json_str(line, "manifest_path")?);
    let dir = manifest.parent()?.to_path_buf();
    let root = workspace_root();
    let package = dir
        .strip_prefix(&root)
        .unwrap_or(&dir)
        .display()
        .to_string();
    let target = json_str(line, "name")?;
    Some(TestBinary {
        name: format!("{package}/{target}"),
        exe: PathBuf::from(exe),
        dir,
    })
}

/// The string value of `"key":"..."` in a line of cargo's JSON (cargo
/// writes paths and names without escapes on Linux unless they hold quotes
/// or backslashes, which are refused here).
fn json_str(line: &str, key: &str) -> Option<String> {
    let pat = format!("\"{key}\":\"");
    let start = line.find(&pat)? + pat.len();
    let rest = &line[start..];
    let end = rest.find('"')?;
    let v = &rest[..end];
    if v.contains('\\') {
        return None;
    }
    Some(v.to_string())
}

/// A finished test binary: its name, run time, success, and output.
type Done = (String, Duration, bool, String);

/// Run one test binary with `env` in its directory, capturing its output.
fn run_one(b: &TestBinary, env: &[(String, PathBuf)]) -> Done {
    let start = Instant::now();
    let r = Command::new(&b.exe)
        .current_dir(&b.dir)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let exe = &b.exe;
    let (ok, text) = match r {
        Err(e) => (false, format!("cannot run {}: {e}\n", exe.display())),
        Ok(mut child) => {
            // Read stderr on a thread, stdout here (neither pipe may fill).
            let mut e = child.stderr.take();
            let h = std::thread::spawn(move || {
                let mut s = String::new();
                if let Some(e) = e.as_mut() {
                    let _ = e.read_to_string(&mut s);
                }
                s
            });
            let mut out = String::new();
            if let Some(mut o) = child.stdout.take() {
                let _ = o.read_to_string(&mut out);
            }
            let err = h.join().unwrap_or_default();
            let ok = child.wait().is_ok_and(|s| s.success());
            (ok, format!("{out}{err}"))
        }
    };
    (b.name.clone(), start.elapsed(), ok, text)
}

/// Run test binaries, `jobs` at a time, each with `env` and in its own
/// directory; each one's output is printed when it ends. Every binary runs
/// even when one fails.
fn run_binaries(
    t: &mut Timer,
    what: &str,
    bins: &[TestBinary],
    jobs: usize,
    env: &[(&str, &std::path::Path)],
) -> Result<()> {
    let (tx, rx) = std::sync::mpsc::channel::<Done>();
    let mut queue = bins.iter().cloned();
    let mut running = 0;
    let mut failed = Vec::new();
    let env: Vec<(String, PathBuf)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_path_buf()))
        .collect();
    let spawn = |b: TestBinary, tx: std::sync::mpsc::Sender<Done>| {
        eprintln!("xtask: {what}: starting {}", b.name);
        let env = env.clone();
        std::thread::spawn(move || {
            let _ = tx.send(run_one(&b, &env));
        });
    };
    loop {
        while running < jobs {
            let Some(b) = queue.next() else {
                break;
            };
            spawn(b, tx.clone());
            running += 1;
        }
        if running == 0 {
            break;
        }
        let done = rx
            .recv()
            .map_err(|_| Error(format!("a {what} runner thread vanished")))?;
        running -= 1;
        if !t.finished(what, done.clone()) {
            failed.push(done.0);
        }
    }
    if !failed.is_empty() {
        bail!("{what} failed: {}", failed.join(", "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_lines_add_up_per_binary() {
        let mut t = Timer::default();
        t.result_line(
            "tests/boot.rs",
            "test result: ok. 21 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 95.31s",
        );
        t.result_line(
            "x",
            "test result: FAILED. 1 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1.00s",
        );
        assert_eq!((t.passed, t.failed), (22, 2));
        assert_eq!(t.binaries[0], ("tests/boot.rs".to_string(), 95.31));
        t.phase("a phase", |_| Ok(())).unwrap();
        let r = t.report();
        assert!(r.contains("95.3 s  tests/boot.rs"), "{r}");
        assert!(r.contains("s CPU  a phase"), "{r}");
    }

    #[test]
    fn children_cpu_from_proc_stat() {
        // A command name with spaces and parentheses; cutime 1234, cstime 66.
        let stat = "42 (cargo (x) y) S 1 42 42 0 -1 4194304 100 200 0 0 5 6 1234 66 20 0 1 0 7 8 9";
        assert_eq!(children_cpu_from_stat(stat), Some(13.0));
        assert!(children_cpu_seconds().is_some());
    }

    #[test]
    fn test_artifacts_are_test_profile_executables() {
        let root = workspace_root();
        let line = |test: bool, exe: &str| {
            format!(
                r#"{{"reason":"compiler-artifact","package_id":"p","manifest_path":"{}/xsm/Cargo.toml","target":{{"kind":["test"],"crate_types":["bin"],"name":"server","src_path":"s","edition":"2024","doc":false,"doctest":false,"test":true}},"profile":{{"opt_level":"0","debuginfo":2,"debug_assertions":true,"overflow_checks":true,"test":{test}}},"features":[],"filenames":["f"],"executable":{exe},"fresh":true}}"#,
                root.display()
            )
        };
        let b = test_artifact(&line(true, r#""/t/debug/deps/server-1a""#)).unwrap();
        assert_eq!(b.name, "xsm/server");
        assert_eq!(b.exe, PathBuf::from("/t/debug/deps/server-1a"));
        assert_eq!(b.dir, root.join("xsm"));
        // A binary built for integration tests, and a library: not test binaries.
        assert!(test_artifact(&line(false, r#""/t/debug/flask""#)).is_none());
        assert!(test_artifact(&line(true, "null")).is_none());
    }

    #[test]
    fn json_values() {
        let l = r#"{"reason":"compiler-artifact","target":{"kind":["test"],"name":"boot","test":true},"executable":"/t/debug/deps/boot-1a2b"}"#;
        assert_eq!(
            json_str(l, "executable").as_deref(),
            Some("/t/debug/deps/boot-1a2b")
        );
        assert_eq!(json_str(l, "name").as_deref(), Some("boot"));
        assert_eq!(json_str(l, "nothing"), None);
    }
}
