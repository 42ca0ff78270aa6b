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
  --cmdline \"...\"        Warden's command line (default: console=com1 loglvl=info)
  --policy FILE          Boot with this compiled FLASK policy instead of the default
                         one (it must start with the policy magic 0xf97cff8c)
  --module FILE[:ARGS]   A boot module with its command line (repeatable), after
                         the default modules (the policy, then dom0); a module is
                         handed to dom0, never used as the boot policy, unless its
                         ARGS start with `domain` (a boot-built domain's kernel) or
                         are `initrd` right after such a module (that domain's
                         initrd). A bzImage kernel (xz/gzip/zstd) is unpacked to
                         its ELF vmlinux first (under target/warden/unpacked/)
  --no-default-modules   Boot only the --module files (no policy, no dom0)
  --dom0-cmdline \"...\"   dom0's command line (default: empty: demo and shell)
  --smp N                CPUs (default 2)
  --memory MIB           Memory in MiB (default 512)
  --grub                 Boot through a GRUB ISO (Multiboot 2) instead of -kernel
  --timeout SECONDS      Stop QEMU after this long
  --qemu-arg ARG         Extra QEMU argument (repeatable)
  --help                 Show this text

QEMU always has the isa-debug-exit device: when Warden refuses to boot (no valid
policy in enforcing mode, an unknown flask= mode, a bad boot module, ...) it ends
QEMU with the \"boot refused\" code and this command exits non-zero with the reason.";

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

/// What `cargo xtask run` was asked to do.
#[derive(Debug, Clone)]
pub struct RunOptions {
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
    let mut p = lexopt::Parser::from_args(args.iter().cloned());
    while let Some(arg) = p.next()? {
        use lexopt::prelude::*;
        match arg {
            Long("cmdline") => o.cmdline = value(&mut p, "--cmdline")?,
            Long("policy") => o.policy = Some(value(&mut p, "--policy")?.into()),
            Long("module") => o.modules.push(Module::parse(&value(&mut p, "--module")?)),
            Long("no-default-modules") => o.defaults = false,
            Long("dom0-cmdline") => o.dom0_cmdline = value(&mut p, "--dom0-cmdline")?,
            Long("smp") => o.smp = number(&value(&mut p, "--smp")?, "--smp")?,
            Long("memory") => o.memory = number(&value(&mut p, "--memory")?, "--memory")?,
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
pub fn run(args: &[String]) -> Result<()> {
    let Some(o) = parse(args)? else {
        println!("{HELP}");
        return Ok(());
    };
    let mut pkgs = deps::QEMU.to_vec();
    if o.grub {
        pkgs.extend(deps::GRUB);
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
        let dom0 = build::build_dom0()?;
        eprintln!(
            "xtask: modules: {what} {}, dom0 {}",
            policy.display(),
            dom0.display()
        );
        let mut all = vec![
            Module {
                path: policy,
                args: String::new(),
            },
            Module {
                path: dom0,
                args: o.dom0_cmdline.clone(),
            },
        ];
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
            None => ", Ctrl-C to stop".into(),
        }
    );
    let r = qemu::run_interactive(m.command(), o.timeout)?;
    outcome(r.status, &r.refusal, o.timeout)
}

/// What QEMU's end means for `cargo xtask run`.
fn outcome(status: Option<i32>, refusal: &Option<String>, timeout: Option<Duration>) -> Result<()> {
    match status {
        None => {
            eprintln!(
                "\nxtask: stopped QEMU after {} s (--timeout)",
                timeout.map_or(0, |t| t.as_secs())
            );
            Ok(())
        }
        Some(0) => Ok(()),
        Some(s) if s == TestExit::BootRefused.qemu_status() => bail!(
            "Warden refused to boot: {}",
            refusal
                .as_deref()
                .unwrap_or("(the reason is on the serial console above)")
        ),
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
