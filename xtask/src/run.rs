//! `cargo xtask run`: build Warden, the default policy and dom0, and boot them
//! in QEMU with the serial console on this terminal. A library function so a
//! test can run it as the operator does.

use crate::qemu::{Boot, Machine, Module};
use crate::{Error, Result, bail, build, deps, grub, qemu};
use hvcore::testexit::TestExit;
use std::time::Duration;

/// `cargo xtask run --help`.
pub const HELP: &str = "\
cargo xtask run [options]   Build Warden and boot it in QEMU with the serial console on this terminal

Options:
  --dom0 linux|test      dom0 (default linux): Debian's Linux kernel as a PVH
                         dom0 with the dom0 image (cargo xtask dom0-image:
                         Debian's Xen 4.17 toolstack; downloaded once into
                         target/): xenstored, xen-init-dom0 and xenconsoled
                         started, then a root shell on the serial console (hvc0)
                         with xl and the demo domU (xl create /etc/xen/demo.cfg);
                         or the Rust test dom0 (a demo, then a small shell: fast)
  --exec \"CMD\"           With the Linux dom0: once the toolstack is up, its init
                         runs CMD with sh -c (its output on the serial console),
                         then powers off; this command exits with CMD's status
                         (for scripts and CI)
  --dom0-file FILE[:PATH] With the Linux dom0: put FILE into dom0's initramfs at PATH
                         (default /root/ and FILE's name), e.g. a live-patch
                         payload for xen-livepatch or a policy for xl loadpolicy
                         (repeatable; dom0 owns no disk)
  --cmdline \"...\"        Warden's command line (default: console=com1 loglvl=info;
                         with the Linux dom0, dom0_mem=512M is added unless given)
  --policy FILE          Boot with this compiled FLASK policy instead of the default
                         one (it must start with the policy magic 0xf97cff8c)
  --module FILE[:ARGS]   A boot module with its command line (repeatable), after
                         the default modules (the policy, then dom0); a module is
                         handed to dom0, never used as the boot policy, unless its
                         ARGS start with `domain` (a boot-built domain's kernel) or
                         are `initrd` right after such a module (that domain's
                         initrd). A bzImage kernel (xz/gzip/zstd) is unpacked to
                         its ELF vmlinux first (under target/warden/unpacked/)
  --no-default-modules   Boot only the --module files (no policy, no dom0; not
                         with --dom0 linux)
  --dom0-cmdline \"...\"   dom0's command line (test dom0, default empty: demo and
                         shell; Linux: added after console=hvc0)
  --smp N                CPUs (default 2)
  --memory MIB           Memory in MiB (default 1024 with the Linux dom0, else 512)
  --grub                 Boot through a GRUB ISO (Multiboot 2) instead of -kernel
  --timeout SECONDS      Stop QEMU after this long
  --qemu-arg ARG         Extra QEMU argument (repeatable)
  --help                 Show this text

QEMU always has the isa-debug-exit device: when Warden refuses to boot (no valid
policy in enforcing mode, an unknown flask= mode, a bad boot module, ...) it ends
QEMU with the \"boot refused\" code and this command exits non-zero with the reason.
When Warden halts the machine (dom0 powered off: `poweroff -f` in the Linux dom0)
QEMU is stopped.";

/// The value of option `flag`, just read by `p`, as text.
pub fn value(p: &mut lexopt::Parser, flag: &str) -> Result<String> {
    p.value()
        .map_err(|_| Error(format!("{flag} needs a value")))?
        .into_string()
        .map_err(|_| Error(format!("{flag}: the value is not UTF-8")))
}

/// A number for option `flag`.
pub fn number(s: &str, flag: &str) -> Result<u32> {
    s.parse()
        .map_err(|_| Error(format!("{flag}: '{s}' is not a number")))
}

/// Whether `args` ask for help (`--help` or `-h` anywhere).
pub fn wants_help(args: &[String]) -> bool {
    args.iter().any(|a| a == "--help" || a == "-h")
}

/// Which dom0 `cargo xtask run` boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dom0 {
    /// The Rust test dom0 (`dom0/`).
    Test,
    /// Debian's Linux kernel with the dom0 image (`xtask::dom0img`: the
    /// Xen 4.17 toolstack).
    Linux,
}

/// How `cargo xtask run` ended when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// QEMU exited, was stopped at the timeout, or Warden halted.
    Stopped,
    /// dom0's `--exec` command ended with this status (then dom0 powered off).
    Exec(i32),
}

/// What `cargo xtask run` was asked to do.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub dom0: Dom0,
    pub exec: Option<String>,
    /// `--dom0-file`: host file and its path in dom0's initramfs.
    pub dom0_files: Vec<(std::path::PathBuf, String)>,
    pub cmdline: String,
    pub policy: Option<std::path::PathBuf>,
    pub modules: Vec<Module>,
    pub defaults: bool,
    pub dom0_cmdline: String,
    pub smp: u32,
    pub memory: u32,
    pub grub: bool,
    pub timeout: Option<Duration>,
    pub extra: Vec<String>,
}

/// Parse `cargo xtask run` options (None: help was asked for).
pub fn parse(args: &[String]) -> Result<Option<RunOptions>> {
    if wants_help(args) {
        return Ok(None);
    }
    let mut o = RunOptions {
        dom0: Dom0::Linux,
        exec: None,
        dom0_files: Vec::new(),
        cmdline: String::from("console=com1 loglvl=info"),
        policy: None,
        modules: Vec::new(),
        defaults: true,
        dom0_cmdline: String::new(),
        smp: 2,
        memory: 512,
        grub: false,
        timeout: None,
        extra: Vec::new(),
    };
    let mut memory_given = false;
    let mut dom0_given = false;
    let mut p = lexopt::Parser::from_args(args.iter().cloned());
    while let Some(arg) = p.next()? {
        use lexopt::prelude::*;
        match arg {
            Long("dom0") => {
                o.dom0 = match value(&mut p, "--dom0")?.as_str() {
                    "test" => Dom0::Test,
                    "linux" => Dom0::Linux,
                    other => bail!("run: --dom0 {other}: expected linux or test"),
                };
                dom0_given = true;
            }
            Long("exec") => o.exec = Some(value(&mut p, "--exec")?),
            Long("dom0-file") => o
                .dom0_files
                .push(dom0_file(&value(&mut p, "--dom0-file")?)?),
            Long("cmdline") => o.cmdline = value(&mut p, "--cmdline")?,
            Long("policy") => o.policy = Some(value(&mut p, "--policy")?.into()),
            Long("module") => o.modules.push(Module::parse(&value(&mut p, "--module")?)),
            Long("no-default-modules") => o.defaults = false,
            Long("dom0-cmdline") => o.dom0_cmdline = value(&mut p, "--dom0-cmdline")?,
            Long("smp") => o.smp = number(&value(&mut p, "--smp")?, "--smp")?,
            Long("memory") => {
                o.memory = number(&value(&mut p, "--memory")?, "--memory")?;
                memory_given = true;
            }
            Long("grub") => o.grub = true,
            Long("timeout") => {
                o.timeout = Some(Duration::from_secs(number(
                    &value(&mut p, "--timeout")?,
                    "--timeout",
                )? as u64))
            }
            Long("qemu-arg") => o.extra.push(value(&mut p, "--qemu-arg")?),
            other => bail!("run: {} (see cargo xtask run --help)", other.unexpected()),
        }
    }
    if !o.defaults && !dom0_given {
        // No default modules: no dom0 of this command's, nor its defaults.
        o.dom0 = Dom0::Test;
    }
    if o.dom0 == Dom0::Linux {
        if !memory_given {
            o.memory = 1024;
        }
        if !o
            .cmdline
            .split_whitespace()
            .any(|w| w.starts_with("dom0_mem="))
        {
            o.cmdline.push_str(" dom0_mem=512M");
        }
    }
    if o.exec.is_some() && o.dom0 != Dom0::Linux {
        bail!("run: --exec needs the Linux dom0 (the test dom0 has no shell to run it)");
    }
    if !o.dom0_files.is_empty() && o.dom0 != Dom0::Linux {
        bail!("run: --dom0-file needs the Linux dom0");
    }
    if o.dom0 == Dom0::Linux && !o.defaults {
        bail!("run: --dom0 linux adds the default modules; it cannot go with --no-default-modules");
    }
    if o.smp == 0 || o.memory < 64 {
        bail!("run: --smp must be at least 1 and --memory at least 64 (MiB)");
    }
    if o.policy.is_some() && !o.defaults {
        bail!(
            "run: --policy replaces the default policy; with --no-default-modules give the policy as the first --module"
        );
    }
    for m in &o.modules {
        if !m.path.is_file() {
            bail!("module file {} does not exist", m.path.display());
        }
    }
    if let Some(p) = &o.policy {
        let b = std::fs::read(p).map_err(|e| Error(format!("--policy {}: {e}", p.display())))?;
        if b.len() < 4
            || u32::from_le_bytes([b[0], b[1], b[2], b[3]]) != hvcore::bootplan::XSM_MAGIC
        {
            bail!(
                "--policy {}: not a compiled FLASK policy (it must start with the magic {:#x}; build one with policy-compiler)",
                p.display(),
                hvcore::bootplan::XSM_MAGIC
            );
        }
    }
    Ok(Some(o))
}

/// `cargo xtask run ARGS`.
pub fn run(args: &[String]) -> Result<Ended> {
    let Some(o) = parse(args)? else {
        println!("{HELP}");
        return Ok(Ended::Stopped);
    };
    let mut pkgs = deps::QEMU.to_vec();
    if o.grub {
        pkgs.extend(deps::GRUB);
    }
    if o.dom0 == Dom0::Linux {
        pkgs.extend(deps::LINUX);
    }
    deps::ensure(&pkgs)?;
    let image = build::build_image(false)?;
    eprintln!(
        "xtask: image {} (build-id {})",
        image.display(),
        build::build_id(&image)?
    );
    let mut modules = o.modules.clone();
    crate::kernel::unpack_modules(&mut modules)?;
    if o.defaults {
        let (policy, what) = match &o.policy {
            Some(p) => (p.clone(), "policy"),
            None => (build::build_policy(false)?, "default policy"),
        };
        let mut all = vec![Module {
            path: policy.clone(),
            args: String::new(),
        }];
        match o.dom0 {
            Dom0::Test => {
                let dom0 = build::build_dom0()?;
                eprintln!(
                    "xtask: modules: {what} {}, dom0 {}",
                    policy.display(),
                    dom0.display()
                );
                all.push(Module {
                    path: dom0,
                    args: o.dom0_cmdline.clone(),
                });
            }
            Dom0::Linux => {
                let (kernel, initrd) = linux_dom0(&o)?;
                eprintln!(
                    "xtask: modules: {what} {}, dom0 Linux {} ({}), initrd {}",
                    policy.display(),
                    kernel.path.display(),
                    kernel.args,
                    initrd.path.display()
                );
                all.push(kernel);
                all.push(initrd);
            }
        }
        all.append(&mut modules);
        modules = all;
    }
    let boot = if o.grub {
        let iso = crate::bare_metal_target_dir().join("warden-run.iso");
        grub::make_iso(&image, &o.cmdline, &modules, &iso)?;
        eprintln!("xtask: GRUB ISO {}", iso.display());
        Boot::Iso(iso)
    } else {
        Boot::Kernel {
            image,
            cmdline: o.cmdline.clone(),
            modules,
        }
    };
    let mut m = Machine::new(boot);
    m.smp = o.smp;
    m.memory_mib = o.memory;
    m.extra = o.extra.clone();
    eprintln!(
        "xtask: booting in QEMU ({} CPUs, {} MiB){}",
        o.smp,
        o.memory,
        match o.timeout {
            Some(t) => format!(", stopping after {} s", t.as_secs()),
            None if o.exec.is_some() => ", until dom0 powers off".into(),
            None => ", Ctrl-C to stop".into(),
        }
    );
    let r = qemu::run_interactive(m.command(), o.timeout, o.exec.is_some())?;
    if o.exec.is_some() {
        return exec_outcome(&r, o.timeout);
    }
    outcome(r.status, &r.refusal, o.timeout.filter(|_| r.timed_out)).map(|()| Ended::Stopped)
}

/// `--dom0-file FILE[:PATH]`: the host file and its path in the initramfs
/// (relative; default `root/` and the file's name).
fn dom0_file(v: &str) -> Result<(std::path::PathBuf, String)> {
    let (file, path) = match v.split_once(':') {
        Some((f, p)) => (f, p.trim_start_matches('/').to_string()),
        None => {
            let name = std::path::Path::new(v)
                .file_name()
                .ok_or_else(|| Error(format!("run: --dom0-file {v}: no file name")))?;
            (v, format!("root/{}", name.to_string_lossy()))
        }
    };
    if file.is_empty()
        || path.is_empty()
        || path
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..")
    {
        bail!("run: --dom0-file {v}: expected FILE or FILE:/PATH/IN/DOM0");
    }
    Ok((file.into(), path))
}

/// The Linux dom0's modules: the ELF kernel (`console=hvc0` and
/// `--dom0-cmdline`) and the dom0 image (built, and its parts downloaded,
/// if missing), with the `--exec` command added to it (`/etc/warden-exec`,
/// which its init runs once the toolstack is up).
fn linux_dom0(o: &RunOptions) -> Result<(Module, Module)> {
    let img = crate::dom0img::image(false)?;
    let mut files = Vec::new();
    for (host, path) in &o.dom0_files {
        let data = std::fs::read(host)
            .map_err(|e| Error(format!("run: --dom0-file {}: {e}", host.display())))?;
        files.push((path.clone(), data));
    }
    let mut args = String::from(crate::dom0img::DOM0_CMDLINE);
    if !o.dom0_cmdline.trim().is_empty() {
        args.push(' ');
        args.push_str(o.dom0_cmdline.trim());
    }
    Ok((
        Module {
            path: img.vmlinux.clone(),
            args,
        },
        Module {
            path: crate::dom0img::initrd_with_files(&img, o.exec.as_deref(), &files)?,
            args: String::from("initrd"),
        },
    ))
}

/// What QEMU's end means for `cargo xtask run --exec`: CMD's status once
/// dom0 reported it and Warden halted the machine.
fn exec_outcome(r: &qemu::Interactive, timeout: Option<Duration>) -> Result<Ended> {
    if let Some(reason) = &r.refusal {
        bail!("Warden refused to boot: {reason}");
    }
    if let Some(f) = &r.linux_fatal {
        bail!("dom0's Linux failed before --exec's command ended: {f}");
    }
    match (r.exec_status, r.halted) {
        (Some(n), true) => {
            eprintln!("\nxtask: dom0's --exec command exited with status {n}; dom0 powered off");
            Ok(Ended::Exec(n))
        }
        (Some(n), false) => bail!(
            "dom0's --exec command exited with status {n}, but the machine did not halt{}",
            if r.timed_out {
                " before the timeout"
            } else {
                ""
            }
        ),
        (None, _) if r.timed_out => bail!(
            "stopped QEMU after {} s (--timeout) before the --exec command ended",
            timeout.map_or(0, |t| t.as_secs())
        ),
        (None, true) => bail!("Warden halted before dom0 reported the --exec command's status"),
        (None, false) => bail!(
            "QEMU ended ({}) before dom0 reported the --exec command's status",
            r.status
                .map_or("killed".to_string(), |s| format!("status {s}"))
        ),
    }
}

/// What QEMU's end means for `cargo xtask run`.
fn outcome(status: Option<i32>, refusal: &Option<String>, timeout: Option<Duration>) -> Result<()> {
    if let Some(reason) = refusal {
        bail!("Warden refused to boot: {reason}");
    }
    match status {
        None => {
            if let Some(t) = timeout {
                eprintln!("\nxtask: stopped QEMU after {} s (--timeout)", t.as_secs());
            } else {
                eprintln!("\nxtask: Warden halted the machine; QEMU stopped");
            }
            Ok(())
        }
        Some(0) => Ok(()),
        Some(s) if s == TestExit::BootRefused.qemu_status() => {
            bail!("Warden refused to boot: (the reason is on the serial console above)")
        }
        Some(code) => bail!("QEMU exited with status {code}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn help_anywhere_is_help() {
        assert!(parse(&args(&["--help"])).unwrap().is_none());
        assert!(parse(&args(&["--smp", "2", "-h"])).unwrap().is_none());
    }

    #[test]
    fn dom0_files_go_to_root_unless_a_path_is_given() {
        let o = parse(&args(&[
            "--dom0",
            "linux",
            "--dom0-file",
            "out/fix.livepatch",
            "--dom0-file",
            "b.bin:/etc/xen/b.bin",
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(
            o.dom0_files,
            [
                ("out/fix.livepatch".into(), "root/fix.livepatch".to_string()),
                ("b.bin".into(), "etc/xen/b.bin".to_string()),
            ]
        );
    }

    #[test]
    fn dom0_and_exec_options() {
        // The Linux dom0 by default (issue 11).
        let o = parse(&args(&[])).unwrap().unwrap();
        assert_eq!((o.dom0, o.memory), (Dom0::Linux, 1024));
        assert_eq!(o.cmdline, "console=com1 loglvl=info dom0_mem=512M");
        let o = parse(&args(&["--dom0", "test"])).unwrap().unwrap();
        assert_eq!((o.dom0, o.memory), (Dom0::Test, 512));
        assert!(!o.cmdline.contains("dom0_mem"));
        // Without default modules there is no dom0 of this command's.
        let o = parse(&args(&["--no-default-modules"])).unwrap().unwrap();
        assert_eq!((o.dom0, o.memory), (Dom0::Test, 512));
        for exec in [
            &["--exec", "ls -l /; exit 2"][..],
            &["--dom0", "linux", "--exec", "ls -l /; exit 2"],
        ] {
            let o = parse(&args(exec)).unwrap().unwrap();
            assert_eq!(o.dom0, Dom0::Linux);
            assert_eq!(o.exec.as_deref(), Some("ls -l /; exit 2"));
            assert_eq!(o.memory, 1024);
            assert_eq!(o.cmdline, "console=com1 loglvl=info dom0_mem=512M");
        }
        // The operator's own dom0_mem= and memory stay.
        let o = parse(&args(&[
            "--dom0",
            "linux",
            "--cmdline",
            "console=com1 dom0_mem=256M",
            "--memory",
            "768",
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(
            (o.cmdline.as_str(), o.memory),
            ("console=com1 dom0_mem=256M", 768)
        );
        for bad in [
            &["--dom0", "xen"][..],
            &["--no-default-modules", "--exec", "true"],
            &["--dom0", "test", "--exec", "true"],
            &["--dom0", "linux", "--no-default-modules"],
            &["--dom0", "test", "--dom0-file", "fix.livepatch"],
            &["--dom0", "linux", "--dom0-file", "a:/root/../etc"],
            &["--dom0", "linux", "--dom0-file", "a:/"],
        ] {
            assert!(parse(&args(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn exec_ends_with_the_commands_status_once_the_machine_halted() {
        let r = |exec_status, halted, timed_out| qemu::Interactive {
            exec_status,
            halted,
            timed_out,
            ..Default::default()
        };
        assert_eq!(
            exec_outcome(&r(Some(3), true, false), None).unwrap(),
            Ended::Exec(3)
        );
        assert!(exec_outcome(&r(Some(0), false, true), None).is_err());
        assert!(exec_outcome(&r(None, true, false), None).is_err());
        assert!(exec_outcome(&r(None, false, true), Some(Duration::from_secs(5))).is_err());
        let mut panic = r(Some(0), true, false);
        panic.linux_fatal = Some("Kernel panic - not syncing".into());
        assert!(
            exec_outcome(&panic, None)
                .unwrap_err()
                .0
                .contains("Kernel panic")
        );
        assert_eq!(qemu::exec_status("warden-init: exec status 42\r"), Some(42));
        assert_eq!(qemu::exec_status("dom0: exec status 42\r"), Some(42));
        assert_eq!(qemu::exec_status("warden-init: exec status"), None);
    }

    #[test]
    fn a_policy_must_have_the_magic() {
        let dir = std::env::temp_dir().join(format!("xtask-run-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bad = dir.join("bad.bin");
        std::fs::write(&bad, b"not a policy").unwrap();
        let e = parse(&args(&["--policy", bad.to_str().unwrap()])).unwrap_err();
        assert!(e.0.contains("not a compiled FLASK policy"), "{e}");
        let good = dir.join("good.bin");
        let mut b = hvcore::bootplan::XSM_MAGIC.to_le_bytes().to_vec();
        b.extend_from_slice(b"rest");
        std::fs::write(&good, &b).unwrap();
        let o = parse(&args(&["--policy", good.to_str().unwrap()]))
            .unwrap()
            .unwrap();
        assert_eq!(o.policy.as_deref(), Some(good.as_path()));
        assert!(
            parse(&args(&[
                "--policy",
                good.to_str().unwrap(),
                "--no-default-modules"
            ]))
            .is_err()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_refused_boot_is_an_error_with_the_reason() {
        let e = outcome(
            Some(TestExit::BootRefused.qemu_status()),
            &Some("invalid input: flask=bogus: not a FLASK mode".into()),
            None,
        )
        .unwrap_err();
        assert_eq!(
            e.0,
            "Warden refused to boot: invalid input: flask=bogus: not a FLASK mode"
        );
        assert!(outcome(None, &None, Some(Duration::from_secs(1))).is_ok());
        assert!(outcome(Some(0), &None, None).is_ok());
        assert!(outcome(Some(1), &None, None).is_err());
    }
}
