//! `cargo xtask bench-linux`: the same Debian kernel and initramfs
//! ([`crate::linux`]) booted (a) as a PVH domU on Warden, next to the test
//! dom0, and (b) as the PVH dom0 of Debian's Xen 4.17, under identical QEMU
//! flags; the time from QEMU's start to the initramfs's first line
//! (`warden-init: userspace reached`), and the ratio Warden / Xen.

use crate::qemu::{self, Boot, Machine, Module};
use crate::stats::{list, median};
use crate::{Result, bail, build, deps, linux};
use std::time::Duration;

/// `cargo xtask bench-linux --help`.
pub const HELP: &str = "\
cargo xtask bench-linux [--runs N] [--xen-only] [--warden-only]
  Debian's kernel and the test initramfs (cargo xtask linux-assets) booted as a
  PVH guest (a) on Warden, as its PVH dom0 and as a boot-built domU next to the
  test dom0 (2 vCPUs, 256 MiB, enforcing), and (b) on Debian's Xen 4.17 as its
  PVH dom0 (2 vCPUs, 256 MiB), under the same QEMU flags (-machine q35 -device
  intel-iommu, which Xen's PVH dom0 needs; -smp 2 -m 1024, single-threaded
  TCG). Measures the time from QEMU's start to the initramfs's first line and
  prints the medians and the ratios Warden / Xen (BENCHMARKS.md).
  --runs N        boots per side, median reported (default 3)
  --xen-only      only the Xen side; --warden-only: only Warden's";

/// The QEMU flags both sides share (beyond [`Machine`]'s own).
pub const MACHINE: &[&str] = &["-machine", "q35", "-device", "intel-iommu"];
/// Memory and CPUs of the QEMU machine.
pub const SMP: u32 = 2;
pub const MEMORY_MIB: u32 = 1024;
/// What the benchmark times.
pub const FIRST_LINE: &str = "warden-init: userspace reached";
/// The guest's command line on both sides.
pub const GUEST_CMDLINE: &str = "console=hvc0 warden.check warden.expect_cpus=2";
/// Xen's command line: its PVH dom0 with the guest's size.
pub const XEN_CMDLINE: &str = "console=com1 com1=115200,8n1 dom0=pvh dom0_mem=256M,max:256M \
                               dom0_max_vcpus=2 loglvl=all guest_loglvl=all noreboot";

const TIMEOUT: Duration = Duration::from_secs(600);

fn machine(boot: Boot) -> Machine {
    let mut m = Machine::new(boot);
    m.smp = SMP;
    m.memory_mib = MEMORY_MIB;
    m.extra = MACHINE.iter().map(|s| s.to_string()).collect();
    m
}

/// One boot: seconds from QEMU's start to [`FIRST_LINE`] (QEMU is stopped
/// there), or why not.
fn time_to_first_line(m: &Machine, what: &str) -> Result<f64> {
    let o = qemu::run_with(
        m.command(),
        TIMEOUT,
        qemu::Options {
            // Stop at the line timed, or when Warden stops (a Linux guest
            // that cannot boot there yet crashes, then the test dom0 does).
            stop_on: vec![
                FIRST_LINE.into(),
                "*** Warden stopped".into(),
                "*** Warden cannot boot".into(),
            ],
            ..Default::default()
        },
    )?;
    match o.line_time(FIRST_LINE) {
        Some(t) => Ok(t.as_secs_f64()),
        None => {
            let tail: Vec<&str> = o
                .lines
                .iter()
                .rev()
                .take(25)
                .map(|(_, l)| l.as_str())
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            bail!(
                "{what}: the initramfs's first line did not appear ({}); the serial console's last lines:\n{}",
                if o.timed_out {
                    format!("timeout {} s", TIMEOUT.as_secs())
                } else {
                    format!("QEMU exited with {:?}", o.status)
                },
                tail.join("\n")
            )
        }
    }
}

/// The Xen 4.17 machine.
pub fn xen_machine(a: &linux::Assets) -> Result<Machine> {
    Ok(machine(Boot::Kernel {
        image: linux::xen(false)?,
        cmdline: XEN_CMDLINE.into(),
        modules: vec![
            Module {
                path: a.vmlinux.clone(),
                // Xen's dom0: the init's checks expect the initial domain.
                args: format!("{GUEST_CMDLINE} warden.expect_dom0=1"),
            },
            Module {
                path: a.initrd.clone(),
                args: String::new(),
            },
        ],
    }))
}

/// The Warden machine: the test image (`test_exit`: QEMU ends when the
/// test dom0 powers off or crashes), the default policy (enforcing), the
/// test dom0 waiting for the Linux domU, the domU and its initrd.
pub fn warden_machine(a: &linux::Assets) -> Result<Machine> {
    Ok(machine(Boot::Kernel {
        image: build::build_image(true)?,
        cmdline: "test_exit console=com1 loglvl=info guest_console_ratelimit=0".into(),
        modules: vec![
            Module {
                path: build::build_policy(false)?,
                args: String::new(),
            },
            Module {
                path: build::build_test_guest()?,
                args: "role=wait-dom0 ok=1".into(),
            },
            Module {
                path: a.vmlinux.clone(),
                args: format!(
                    "domain name=linux domid=1 label=user_1:vm_r:domU_t vcpus=2 mem=256M -- {GUEST_CMDLINE}"
                ),
            },
            Module {
                path: a.initrd.clone(),
                args: "initrd".into(),
            },
        ],
    }))
}

/// The Warden machine with Linux as its PVH dom0, as Xen's side (2 vCPUs,
/// 256 MiB, the same command line), enforcing with the default policy.
pub fn warden_dom0_machine(a: &linux::Assets) -> Result<Machine> {
    Ok(machine(Boot::Kernel {
        image: build::build_image(true)?,
        cmdline: "test_exit console=com1 loglvl=info dom0_mem=256M dom0_max_vcpus=2".into(),
        modules: vec![
            Module {
                path: build::build_policy(false)?,
                args: String::new(),
            },
            Module {
                path: a.vmlinux.clone(),
                args: format!("{GUEST_CMDLINE} warden.expect_dom0=1"),
            },
            Module {
                path: a.initrd.clone(),
                args: "initrd".into(),
            },
        ],
    }))
}

fn runs_of(m: &Machine, what: &str, runs: u32) -> Result<Vec<f64>> {
    let mut v = Vec::new();
    for i in 0..runs {
        let t = time_to_first_line(m, what)?;
        eprintln!("xtask: bench-linux: {what} run {}: {t:.3} s", i + 1);
        v.push(t);
    }
    Ok(v)
}

/// `cargo xtask bench-linux`.
pub fn bench(args: &[String]) -> Result<()> {
    use lexopt::prelude::*;
    let (mut runs, mut xen_side, mut warden_side) = (3u32, true, true);
    let mut p = lexopt::Parser::from_args(args.iter().cloned());
    while let Some(arg) = p.next()? {
        match arg {
            Long("runs") => {
                runs = crate::run::number(&crate::run::value(&mut p, "--runs")?, "--runs")?.max(1)
            }
            Long("xen-only") => warden_side = false,
            Long("warden-only") => xen_side = false,
            Long("help") | Short('h') => {
                println!("{HELP}");
                return Ok(());
            }
            other => bail!("bench-linux: {}", other.unexpected()),
        }
    }
    if !xen_side && !warden_side {
        bail!("bench-linux: --xen-only and --warden-only exclude each other");
    }
    deps::ensure(&[deps::QEMU, deps::LINUX].concat())?;
    let a = linux::assets(false)?;
    let cmd = "`cargo xtask bench-linux`";
    println!(
        "kernel {} (ELF vmlinux), the test initramfs; QEMU: -smp {SMP} -m {MEMORY_MIB} {} (TCG, single-threaded); median of {runs}",
        a.version,
        MACHINE.join(" ")
    );
    println!("| measure | value | command |");
    println!("|---|---|---|");
    let xen = if xen_side {
        let v = runs_of(&xen_machine(&a)?, "Xen 4.17", runs)?;
        println!(
            "| Xen 4.17 (Debian), Linux as its PVH dom0 (2 vCPUs, 256 MiB): QEMU start -> initramfs's first line | {:.2} s (runs: {}) | {cmd} |",
            median(v.clone()),
            list(&v)
        );
        Some(median(v))
    } else {
        None
    };
    if warden_side {
        let v = runs_of(&warden_dom0_machine(&a)?, "Warden dom0", runs)?;
        let w = median(v.clone());
        println!(
            "| Warden, Linux as its PVH dom0 (2 vCPUs, 256 MiB), enforcing: QEMU start -> initramfs's first line | {w:.2} s (runs: {}) | {cmd} |",
            list(&v)
        );
        if let Some(x) = xen {
            println!(
                "| ratio Warden / Xen 4.17, both dom0 (target <= 0.5) | {:.2} | {cmd} |",
                w / x
            );
        }
        let v = runs_of(&warden_machine(&a)?, "Warden domU", runs)?;
        let w = median(v.clone());
        println!(
            "| Warden, Linux as a boot-built PVH domU (2 vCPUs, 256 MiB) next to the test dom0, enforcing: the same | {w:.2} s (runs: {}) | {cmd} |",
            list(&v)
        );
        if let Some(x) = xen {
            println!(
                "| ratio Warden domU / Xen 4.17 dom0 (the issue's measure, target <= 0.5) | {:.2} | {cmd} |",
                w / x
            );
        }
    }
    Ok(())
}
