//! The QEMU test harness: boot a Warden image with a command line, modules
//! (files and their command lines), a CPU count, memory, extra QEMU arguments
//! and a timeout; capture the serial console; and pass only on the agreed
//! debug-exit code ([`hvcore::testexit::TestExit`]) — never on QEMU's exit
//! status 0 (a triple fault) nor on a timeout.
//!
//! Images: `WARDEN_TEST_IMAGE` / `WARDEN_IMAGE` if set (as `cargo xtask test`
//! does), otherwise the harness builds them itself through `xtask`'s build
//! logic (target dir `target/warden`, apart from the outer build), once per
//! test process. Later test guests are built the same way with
//! [`bare_metal`] and passed as modules.

pub mod livepatch;

use hvcore::testexit::TestExit;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;
use xtask::qemu::{self, Boot as QemuBoot, Machine, Module};

/// Default per-boot timeout: generous, TCG on a busy 2-core machine is slow.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(180);

fn cached(
    var: &str,
    cell: &'static OnceLock<Result<PathBuf, String>>,
    test_hooks: bool,
) -> PathBuf {
    let r = cell.get_or_init(|| {
        if let Some(p) = std::env::var_os(var) {
            return Ok(PathBuf::from(p));
        }
        xtask::build::build_image(test_hooks).map_err(|e| e.to_string())
    });
    match r {
        Ok(p) => p.clone(),
        Err(e) => panic!("cannot build the Warden image: {e}"),
    }
}

/// The image built with test hooks (`test_exit`, `test_fault=`).
pub fn test_image() -> PathBuf {
    static CELL: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    cached("WARDEN_TEST_IMAGE", &CELL, true)
}

/// The production image.
pub fn production_image() -> PathBuf {
    static CELL: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    cached("WARDEN_IMAGE", &CELL, false)
}

fn cached_with(
    cell: &'static OnceLock<Result<PathBuf, String>>,
    f: fn() -> xtask::Result<PathBuf>,
    what: &str,
) -> PathBuf {
    match cell.get_or_init(|| f().map_err(|e| e.to_string())) {
        Ok(p) => p.clone(),
        Err(e) => panic!("cannot build {what}: {e}"),
    }
}

/// The default policy (`policies/warden.m4`, compiled by policy-compiler).
pub fn policy() -> PathBuf {
    static CELL: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    cached_with(
        &CELL,
        || xtask::build::build_policy(false),
        "the default policy",
    )
}

/// The default policy's MLS build.
pub fn policy_mls() -> PathBuf {
    static CELL: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    cached_with(&CELL, || xtask::build::build_policy(true), "the MLS policy")
}

/// Compile a variant of the default policy: `policies/` is copied to a
/// scratch directory, `edit` changes the copy, and the policy compiler builds
/// it (`-t xen -c 30`). Returns the binary policy's path.
pub fn policy_variant(name: &str, edit: impl Fn(&Path)) -> PathBuf {
    policy_variant_with(name, policy_compiler::compile::Options::default(), edit)
}

/// [`policy_variant`] compiled with `opts` (version, MLS, handle_unknown).
pub fn policy_variant_with(
    name: &str,
    opts: policy_compiler::compile::Options,
    edit: impl Fn(&Path),
) -> PathBuf {
    let root = xtask::workspace_root();
    let dir = xtask::bare_metal_target_dir()
        .join("test-policies")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(&root.join("policies"), &dir).unwrap_or_else(|e| panic!("copying policies/: {e}"));
    edit(&dir);
    let job = policy_compiler::Job {
        files: vec![dir.join("warden.m4")],
        opts,
        ..Default::default()
    };
    let mut sm = policy_compiler::diag::SourceMap::default();
    let out = match policy_compiler::compile(&job, &mut sm) {
        Ok(o) => o,
        Err(e) => panic!("compiling policy variant {name}:\n{}", e.render(&sm)),
    };
    let path = dir.with_extension("bin");
    std::fs::write(&path, policy_compiler::write::write(&out.db)).expect("write policy");
    path
}

/// Replace `from` by `to` in file `rel` of a policy copy (it must occur).
pub fn replace_in(dir: &Path, rel: &str, from: &str, to: &str) {
    let p = dir.join(rel);
    let s = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    assert!(s.contains(from), "{rel} does not contain {from:?}");
    std::fs::write(&p, s.replacen(from, to, 1)).expect("write policy source");
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let t = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &t)?;
        } else {
            std::fs::copy(e.path(), t)?;
        }
    }
    Ok(())
}

/// A file with `bytes` in the scratch directory (unique to this process).
pub fn scratch_file(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = xtask::bare_metal_target_dir().join("test-modules");
    std::fs::create_dir_all(&dir).expect("create module dir");
    let p = dir.join(format!("{}-{name}", std::process::id()));
    std::fs::write(&p, bytes).expect("write module");
    p
}

/// The dom0 kernel (`dom0/`).
pub fn dom0() -> PathBuf {
    static CELL: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    cached_with(&CELL, xtask::build::build_dom0, "dom0")
}

/// The test guest kernel (`tests/guests/`): its role comes from `role=`.
pub fn tguest() -> PathBuf {
    static CELL: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    cached_with(&CELL, xtask::build::build_test_guest, "the test guest")
}

/// Build another bare-metal package (e.g. a test guest) and return its ELF.
pub fn bare_metal(package: &str, bin: &str, features: &[&str]) -> PathBuf {
    xtask::build::build_bare_metal(&xtask::build::BareMetal {
        package,
        bin,
        features,
        output: bin,
        multiboot: false,
    })
    .unwrap_or_else(|e| panic!("cannot build {package}: {e}"))
}

/// One boot to run.
#[derive(Debug, Clone)]
pub struct Boot {
    image: PathBuf,
    cmdline: String,
    modules: Vec<Module>,
    smp: u32,
    memory_mib: u32,
    cpu: String,
    extra: Vec<String>,
    timeout: Duration,
    grub: bool,
    input: Vec<qemu::Input>,
    stop_on: Vec<String>,
    long: bool,
}

impl Default for Boot {
    fn default() -> Self {
        Boot::new()
    }
}

impl Boot {
    /// Boot the test image with `-kernel`, 2 CPUs, 512 MiB, with the default
    /// policy as the first module (FLASK enforcing needs one).
    pub fn new() -> Boot {
        Boot::bare().module(policy(), "")
    }

    /// Boot the test image with no module at all.
    pub fn bare() -> Boot {
        Boot {
            image: test_image(),
            cmdline: String::new(),
            modules: Vec::new(),
            smp: 2,
            memory_mib: 512,
            cpu: qemu::DEFAULT_CPU.into(),
            extra: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            grub: false,
            long: false,
            input: Vec::new(),
            stop_on: Vec::new(),
        }
    }

    /// Type `bytes` on the serial console once `after` has appeared (after
    /// the inputs given before this one were typed).
    pub fn input(mut self, after: &str, bytes: &[u8]) -> Self {
        self.input.push(qemu::Input {
            after: after.into(),
            bytes: bytes.into(),
        });
        self
    }

    /// Add the test guest as a module with command line `args` (the first
    /// non-policy module is dom0; later ones starting with `domain` are
    /// boot-built domains).
    pub fn guest(self, args: &str) -> Self {
        self.module(tguest(), args)
    }

    pub fn image(mut self, p: impl Into<PathBuf>) -> Self {
        self.image = p.into();
        self
    }
    /// Warden's command line (`test_exit` is always put first, so nothing in
    /// the line, such as an unterminated quote, can swallow it).
    pub fn cmdline(mut self, s: &str) -> Self {
        self.cmdline = s.into();
        self
    }
    pub fn module(mut self, path: impl AsRef<Path>, args: &str) -> Self {
        self.modules.push(Module {
            path: path.as_ref().into(),
            args: args.into(),
        });
        self
    }
    pub fn smp(mut self, n: u32) -> Self {
        self.smp = n;
        self
    }
    pub fn memory(mut self, mib: u32) -> Self {
        self.memory_mib = mib;
        self
    }
    pub fn cpu(mut self, model: &str) -> Self {
        self.cpu = model.into();
        self
    }
    /// Extra QEMU arguments (e.g. `["-icount", "shift=0"]`).
    pub fn qemu_args(mut self, args: &[&str]) -> Self {
        self.extra.extend(args.iter().map(|s| s.to_string()));
        self
    }
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }
    /// End the boot at once (QEMU killed, the boot fails) when any of
    /// `texts` appears on the serial console: fatal messages, so a test does
    /// not wait out its timeout ([`Outcome::stopped_on`]).
    pub fn stop_on(mut self, texts: &[&str]) -> Self {
        self.stop_on.extend(texts.iter().map(|s| s.to_string()));
        self
    }

    /// Boot through a GRUB ISO (Multiboot 2) instead of `-kernel`.
    pub fn grub(mut self) -> Self {
        self.grub = true;
        self
    }

    /// A boot of tens of seconds or more (Linux): it takes a QEMU slot
    /// before the shorter boots waiting (`xtask::slots::Priority::Long`), so
    /// the suite's longest boots start first and the short ones fill in.
    pub fn long(mut self) -> Self {
        self.long = true;
        self
    }

    /// Boot and capture. Panics only if QEMU cannot be started or the ISO not built.
    pub fn run(&self) -> Outcome {
        let cmdline = format!("test_exit {}", self.cmdline).trim().to_string();
        // bzImage kernels are unpacked to their ELF vmlinux, as `cargo xtask
        // run` does (Warden's builder loads ELF kernels).
        let mut modules = self.modules.clone();
        xtask::kernel::unpack_modules(&mut modules)
            .unwrap_or_else(|e| panic!("unpacking a bzImage module: {e}"));
        let mut iso_file = None;
        let boot = if self.grub {
            let dir = xtask::bare_metal_target_dir().join("test-isos");
            std::fs::create_dir_all(&dir)
                .unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
            static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let iso = dir.join(format!("t{}-{n}.iso", std::process::id()));
            xtask::grub::make_iso(&self.image, &cmdline, &modules, &iso)
                .unwrap_or_else(|e| panic!("building the GRUB ISO: {e}"));
            iso_file = Some(iso.clone());
            QemuBoot::Iso(iso)
        } else {
            QemuBoot::Kernel {
                image: self.image.clone(),
                cmdline: cmdline.clone(),
                modules,
            }
        };
        let mut m = Machine::new(boot);
        m.smp = self.smp;
        m.memory_mib = self.memory_mib;
        m.cpu = self.cpu.clone();
        m.extra = self.extra.clone();
        // One of the machine-wide QEMU slots (xtask::slots); the timeout
        // runs from QEMU's start.
        let slot = xtask::slots::acquire_with(if self.long {
            xtask::slots::Priority::Long
        } else {
            xtask::slots::Priority::Normal
        });
        let started = std::time::Instant::now();
        let o = qemu::run_with(
            m.command(),
            self.timeout,
            qemu::Options {
                watch: None,
                input: self.input.clone(),
                stop_on: self.stop_on.clone(),
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        drop(slot);
        xtask::bootlog::record(&xtask::bootlog::Boot {
            binary: test_binary_name(),
            test: std::thread::current().name().unwrap_or("?").to_string(),
            secs: started.elapsed().as_secs_f64(),
            smp: self.smp,
        });
        if let Some(iso) = iso_file {
            let _ = std::fs::remove_file(iso);
        }
        Outcome {
            status: o.status,
            timed_out: o.timed_out,
            serial: o.serial,
            stderr: o.stderr,
            cmdline,
            lines: o.lines,
            stopped_on: o.stopped_on,
        }
    }
}

/// This test binary's name without cargo's hash (`linux-0123abcd` → `linux`).
fn test_binary_name() -> String {
    let exe = std::env::current_exe().unwrap_or_default();
    let stem = exe
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    match stem.rsplit_once('-') {
        Some((name, hash)) if hash.chars().all(|c| c.is_ascii_hexdigit()) => name.to_string(),
        _ => stem,
    }
}

/// Linux's and Warden's messages that fail a Linux dom0 boot at once
/// ([`linux_dom0`]); a domU's console copied to the serial line counts too.
pub const LINUX_DOM0_FATAL: &[&str] = &[
    "Kernel panic",
    "BUG:",
    "stack guard page",
    "Fatal exception",
    "dom0: FAILED",
    "Panic on CPU",
    "*** Warden stopped",
];

/// Warden's command line for the Linux dom0 tests (the harness puts
/// `test_exit` first).
pub const LINUX_DOM0_CMDLINE: &str = "dom0_mem=512M dom0_max_vcpus=2";

/// dom0's image (`xtask::dom0img`: Debian's kernel, its Xen 4.17 toolstack,
/// the demo domU), built or found up to date once per test process.
pub fn dom0_image() -> &'static xtask::dom0img::Image {
    static IMG: OnceLock<xtask::dom0img::Image> = OnceLock::new();
    IMG.get_or_init(|| {
        xtask::dom0img::image(false)
            .unwrap_or_else(|e| panic!("cannot build the dom0 image (cargo xtask dom0-image): {e}"))
    })
}

/// dom0's initramfs with `script` (run by its init once the toolstack is
/// up; its output on the serial console, then dom0 powers the machine off).
pub fn dom0_initrd_with_script(script: &str) -> PathBuf {
    xtask::dom0img::initrd_for(dom0_image(), Some(script))
        .unwrap_or_else(|e| panic!("dom0's initramfs with the script: {e}"))
}

/// Warden (enforcing, the default policy) with Debian's Linux as the PVH
/// dom0 on `initrd` (see [`dom0_initrd_with_script`]): 2 CPUs, 1 GiB,
/// [`LINUX_DOM0_CMDLINE`], stopped at once on [`LINUX_DOM0_FATAL`], failed
/// after `timeout` of QEMU.
pub fn linux_dom0(initrd: &Path, timeout: Duration) -> Boot {
    let img = dom0_image();
    Boot::new()
        .long()
        .smp(2)
        .memory(1024)
        .timeout(timeout)
        .stop_on(LINUX_DOM0_FATAL)
        .cmdline(LINUX_DOM0_CMDLINE)
        .module(&img.vmlinux, xtask::dom0img::DOM0_CMDLINE)
        .module(initrd, "initrd")
}

/// What a boot produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: Option<i32>,
    pub timed_out: bool,
    pub serial: String,
    pub stderr: String,
    pub cmdline: String,
    /// The serial lines with the host time (from QEMU's start) each arrived.
    pub lines: Vec<(Duration, String)>,
    /// The [`Boot::stop_on`] text that ended the boot.
    pub stopped_on: Option<String>,
}

impl Outcome {
    /// The serial lines between the line `== NAME` (a script's section
    /// header) and the next line starting with `== `, `\r` trimmed.
    pub fn section(&self, name: &str) -> Vec<&str> {
        let start = format!("== {name}");
        self.lines
            .iter()
            .map(|(_, l)| l.trim_end_matches('\r'))
            .skip_while(|l| *l != start)
            .skip(1)
            .take_while(|l| !l.starts_with("== "))
            .collect()
    }

    fn describe(&self) -> String {
        let why = if let Some(s) = &self.stopped_on {
            format!("stopped on {s:?} (QEMU killed)")
        } else if self.timed_out {
            "QEMU timed out".to_string()
        } else {
            match self.status {
                Some(0) => {
                    "QEMU exited with status 0 (a triple fault or reset, never success)".into()
                }
                Some(s) => match TestExit::from_qemu_status(s) {
                    Some(e) => format!("QEMU exited with {e:?} (status {s})"),
                    None => format!("QEMU exited with status {s} (not an agreed code)"),
                },
                None => "QEMU was killed by a signal".into(),
            }
        };
        format!(
            "{why}; cmdline '{}'\n--- serial ---\n{}\n--- qemu stderr ---\n{}",
            self.cmdline, self.serial, self.stderr
        )
    }

    /// Whether QEMU exited with exactly the agreed code.
    pub fn exited_with(&self, e: TestExit) -> bool {
        !self.timed_out && self.stopped_on.is_none() && self.status == Some(e.qemu_status())
    }

    /// When the first serial line containing `s` arrived (host time from
    /// QEMU's start).
    pub fn line_time(&self, s: &str) -> Option<Duration> {
        self.lines
            .iter()
            .find(|(_, l)| l.contains(s))
            .map(|(t, _)| *t)
    }

    /// A timed sleep of `expected` in the guest, between the first lines
    /// containing `from` and `to`, each carrying the guest's clock as
    /// `uptime=SECONDS` read right before it was printed. Asserts that the
    /// guest's clock ran at the host's rate (the two elapsed times agree
    /// within `tolerance`, a fraction: 0.1 = ±10 %; what is not in both is
    /// only the lines' delivery) and that the sleep neither ended early nor
    /// overslept by more than half of it (a lost or late wake-up). The
    /// guest's work around the sleep (forking `sleep` under a loaded
    /// emulator) is in both times, so host load does not fail the check.
    /// Returns the guest's and the host's elapsed times.
    #[track_caller]
    pub fn guest_sleep_within(
        &self,
        from: &str,
        to: &str,
        expected: Duration,
        tolerance: f64,
    ) -> (Duration, Duration) {
        self.sleep_within("", from, to, expected, tolerance)
    }

    /// [`Outcome::guest_sleep_within`] on the lines of domain `dom` only
    /// (those starting `(dDOM) `), for a boot where several domains print
    /// the same lines.
    #[track_caller]
    pub fn domain_sleep_within(
        &self,
        dom: u16,
        from: &str,
        to: &str,
        expected: Duration,
        tolerance: f64,
    ) -> (Duration, Duration) {
        self.sleep_within(&format!("(d{dom}) "), from, to, expected, tolerance)
    }

    #[track_caller]
    fn sleep_within(
        &self,
        prefix: &str,
        from: &str,
        to: &str,
        expected: Duration,
        tolerance: f64,
    ) -> (Duration, Duration) {
        let stamped = |s: &str| -> (Duration, f64) {
            let Some((t, l)) = self
                .lines
                .iter()
                .find(|(_, l)| l.trim_start_matches('\r').starts_with(prefix) && l.contains(s))
            else {
                panic!(
                    "no serial line {prefix}...{s:?} to time: {}",
                    self.describe()
                );
            };
            let up = l
                .split_once("uptime=")
                .and_then(|(_, r)| {
                    let n = r.find(|c: char| !(c.is_ascii_digit() || c == '.'));
                    r[..n.unwrap_or(r.len())].parse::<f64>().ok()
                })
                .unwrap_or_else(|| panic!("the line {l:?} carries no uptime=SECONDS"));
            (*t, up)
        };
        let ((h0, g0), (h1, g1)) = (stamped(from), stamped(to));
        // The lines around the two, with their host arrival times, for a
        // failure's diagnosis (which side's clock or delivery was late).
        let timeline = || {
            let i0 = self.lines.iter().position(|(t, _)| *t == h0).unwrap_or(0);
            let i1 = self.lines.iter().rposition(|(t, _)| *t == h1).unwrap_or(0);
            self.lines[i0.saturating_sub(10)..(i1 + 10).min(self.lines.len())]
                .iter()
                .map(|(t, l)| format!("[host {:9.3}] {l}", t.as_secs_f64()))
                .collect::<Vec<_>>()
                .join("\n")
        };
        let host = h1.saturating_sub(h0).as_secs_f64();
        let guest = g1 - g0;
        let want = expected.as_secs_f64();
        assert!(
            (want..=want * 1.5).contains(&guest),
            "{from:?} -> {to:?}: the guest's clock advanced {guest:.3} s over a sleep of {want:.3} s \
             (host time {host:.3} s):\n{}\n{}",
            timeline(),
            self.describe()
        );
        assert!(
            (host - guest).abs() <= guest * tolerance,
            "{from:?} -> {to:?}: the guest's clock advanced {guest:.3} s while the host's advanced \
             {host:.3} s (more than ± {:.0} % apart):\n{}\n{}",
            tolerance * 100.0,
            timeline(),
            self.describe()
        );
        eprintln!("{prefix}{from:?} -> {to:?}: guest clock {guest:.3} s, host clock {host:.3} s");
        (
            Duration::from_secs_f64(guest),
            Duration::from_secs_f64(host),
        )
    }

    /// Assert the boot ended with `e`.
    #[track_caller]
    pub fn expect(&self, e: TestExit) -> &Self {
        assert!(self.exited_with(e), "expected {e:?}: {}", self.describe());
        self
    }

    /// Assert the boot reached the ready line and exited with the success code.
    #[track_caller]
    pub fn expect_ready(&self) -> &Self {
        self.expect(TestExit::Ready).contains("INFO  Warden ready:")
    }

    /// Assert dom0 powered off (the test dom0's "every check passed").
    #[track_caller]
    pub fn expect_dom0_poweroff(&self) -> &Self {
        self.expect(TestExit::Dom0Poweroff)
            .contains("Hardware Dom0 halted")
    }

    /// Assert the boot reported a fatal error and exited with the fatal code.
    #[track_caller]
    pub fn expect_fatal(&self) -> &Self {
        self.expect(TestExit::Fatal)
            .contains("*** Warden stopped: the machine is halted.")
    }

    /// Assert Warden refused to boot (the reason is the test's to check) and
    /// exited with the "boot refused" code.
    #[track_caller]
    pub fn expect_refused(&self) -> &Self {
        self.expect(TestExit::BootRefused)
            .contains("*** Warden cannot boot: ")
            .contains("*** Warden stopped: the machine is halted.")
    }

    /// Assert the serial output contains `s`.
    #[track_caller]
    pub fn contains(&self, s: &str) -> &Self {
        assert!(
            self.serial.contains(s),
            "serial output lacks {s:?}: {}",
            self.describe()
        );
        self
    }

    /// Assert the serial output does not contain `s`.
    #[track_caller]
    pub fn lacks(&self, s: &str) -> &Self {
        assert!(
            !self.serial.contains(s),
            "serial output has {s:?}: {}",
            self.describe()
        );
        self
    }

    /// Assert the serial output contains a line with all of `parts`.
    #[track_caller]
    pub fn line_with_all(&self, parts: &[&str]) -> &Self {
        assert!(
            self.serial
                .lines()
                .any(|l| parts.iter().all(|p| l.contains(p))),
            "no serial line contains all of {parts:?}: {}",
            self.describe()
        );
        self
    }

    /// Assert domain `dom` wrote a line containing `text`: on the serial
    /// console it reads `(dN) [seconds.micros] ...text...` (Xen's prefix).
    #[track_caller]
    pub fn guest_says(&self, dom: u16, text: &str) -> &Self {
        let prefix = format!("(d{dom}) ");
        assert!(
            self.serial.lines().any(|l| {
                l.trim_start_matches('\r')
                    .strip_prefix(&prefix)
                    .and_then(|r| r.split_once("] "))
                    .is_some_and(|(_, t)| t.contains(text))
            }),
            "no serial line '{prefix}[time] ...{text}...': {}",
            self.describe()
        );
        self
    }

    /// Lines of the serial output containing `s`.
    pub fn lines_with(&self, s: &str) -> Vec<&str> {
        self.serial.lines().filter(|l| l.contains(s)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(status: Option<i32>, timed_out: bool) -> Outcome {
        Outcome {
            status,
            timed_out,
            serial: "INFO  Warden ready: x\n*** Warden stopped: the machine is halted.\n".into(),
            stderr: String::new(),
            cmdline: String::new(),
            lines: vec![
                (Duration::from_millis(100), "start (uptime=10.00)".into()),
                (Duration::from_millis(5700), "end (uptime=15.60)".into()),
            ],
            stopped_on: None,
        }
    }

    #[test]
    fn a_guest_sleep_is_checked_against_the_guests_and_the_hosts_clocks() {
        let o = outcome(Some(33), false);
        let (g, h) = o.guest_sleep_within("start", "end", Duration::from_secs(5), 0.1);
        assert_eq!(g, Duration::from_secs_f64(5.6));
        assert_eq!(h, Duration::from_millis(5600));
    }

    #[test]
    #[should_panic(expected = "more than ± 10 % apart")]
    fn a_guest_clock_at_another_rate_fails() {
        let mut o = outcome(Some(33), false);
        o.lines[1].1 = "end (uptime=17.20)".into();
        o.guest_sleep_within("start", "end", Duration::from_secs(6), 0.1);
    }

    #[test]
    #[should_panic(expected = "over a sleep of 6.000 s")]
    fn a_sleep_that_ends_early_fails() {
        outcome(Some(33), false).guest_sleep_within("start", "end", Duration::from_secs(6), 0.1);
    }

    #[test]
    #[should_panic(expected = "carries no uptime")]
    fn a_line_without_the_guest_clock_fails() {
        let mut o = outcome(Some(33), false);
        o.lines[0].1 = "start".into();
        o.guest_sleep_within("start", "end", Duration::from_secs(5), 0.1);
    }

    #[test]
    #[should_panic(expected = "stopped on")]
    fn a_stop_text_fails_the_boot() {
        let mut o = outcome(Some(33), false);
        o.stopped_on = Some("Kernel panic".into());
        o.expect_ready();
    }

    #[test]
    fn only_the_agreed_code_counts() {
        assert!(outcome(Some(33), false).exited_with(TestExit::Ready));
        assert!(!outcome(Some(0), false).exited_with(TestExit::Ready));
        assert!(!outcome(Some(124), false).exited_with(TestExit::Ready));
        assert!(!outcome(None, true).exited_with(TestExit::Ready));
        assert!(!outcome(Some(33), true).exited_with(TestExit::Ready));
        assert!(!outcome(Some(35), false).exited_with(TestExit::Ready));
        assert!(outcome(Some(35), false).exited_with(TestExit::Fatal));
    }

    #[test]
    #[should_panic(expected = "status 0 (a triple fault")]
    fn triple_fault_fails() {
        outcome(Some(0), false).expect_ready();
    }

    #[test]
    #[should_panic(expected = "QEMU timed out")]
    fn timeout_fails() {
        outcome(None, true).expect_ready();
    }
}
