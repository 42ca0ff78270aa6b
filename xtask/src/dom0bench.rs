//! `cargo xtask bench-dom0`: the dom0 image ([`crate::dom0img`]) booted on a
//! hypervisor, timed at two points from the host (serial line arrival times):
//! QEMU's start to dom0's `dom0: toolstack up`, and `xl create
//! /etc/xen/demo.cfg` to the demo domU's `demo: userspace up` (dom0 prints a
//! line before `xl create` and one when the line appears in the domU's
//! console log). Today on Debian's Xen 4.17 only (`--xen-only`); the Warden
//! side is a second machine function next to [`crate::dom0img::xen_machine`]
//! once Warden boots a Linux dom0 (issue 11).

use crate::dom0img::{self, XenBoot};
use crate::{Result, bail, deps, linuxbench};
use std::time::Duration;

/// `cargo xtask bench-dom0 --help`.
pub const HELP: &str = "\
cargo xtask bench-dom0 --xen-only [--runs N] [--pvh-only]
  The dom0 image (cargo xtask dom0-image) on Debian's Xen 4.17 (dom0_mem=512M,
  2 vCPUs; QEMU -machine q35 -device intel-iommu -smp 2 -m 1024): a PVH dom0 and
  a PV dom0 with multi-threaded TCG, and a PV dom0 with single-threaded TCG (a
  PVH dom0 does not survive single-threaded TCG on Xen: cargo xtask run-xen
  --help). Times, from the host: QEMU's start -> dom0's 'dom0: toolstack up',
  and 'xl create /etc/xen/demo.cfg' -> the demo domU's 'demo: userspace up'
  (PVH, 128 MiB, 1 vCPU); medians (BENCHMARKS.md). A run that crashes or times
  out is reported and not counted (at most 2N attempts per configuration).
  --xen-only   required until Warden boots a Linux dom0 (then both sides run)
  --runs N     counted runs per configuration (default 3)
  --pvh-only   only the PVH dom0";

/// dom0's line right before `xl create`.
pub const CREATE_MARK: &str = "bench: xl create";
/// dom0's line once the demo domU's console log shows its userspace.
pub const UP_MARK: &str = "bench: demo userspace up";

/// What dom0 runs (`warden.exec=`).
pub fn script() -> String {
    format!(
        "echo '{CREATE_MARK}'\n\
         xl create {cfg} || exit 1\n\
         wait-log {log} '{up}' 600 >/dev/null || exit 2\n\
         echo '{UP_MARK}'\n\
         xl list\n\
         xl destroy demo\n",
        cfg = dom0img::DEMO_CFG,
        log = dom0img::DEMO_LOG,
        up = dom0img::DEMO_UP,
    )
}

const TIMEOUT: Duration = Duration::from_secs(900);

/// One run: (QEMU start -> toolstack up, xl create -> domU userspace), seconds.
fn once(img: &dom0img::Image, pv: bool, mttcg: bool) -> Result<(f64, f64)> {
    let b = XenBoot {
        pv,
        mttcg,
        exec: Some(script()),
        ..XenBoot::default()
    };
    let (o, status) = dom0img::run_on_xen(img, &b, TIMEOUT)?;
    let t = |s: &str| o.line_time(s).map(|d| d.as_secs_f64());
    match (t(dom0img::TOOLSTACK_UP), t(CREATE_MARK), t(UP_MARK), status) {
        (Some(up), Some(c), Some(u), Some(0)) => Ok((up, u - c)),
        _ => {
            let tail: Vec<&str> = o
                .lines
                .iter()
                .rev()
                .take(30)
                .map(|(_, l)| l.as_str())
                .collect();
            bail!(
                "{} (exec status {status:?}); the serial console's last lines:\n{}",
                if let Some(s) = &o.stopped_on {
                    format!("stopped on '{s}'")
                } else if o.timed_out {
                    format!("timeout {} s", TIMEOUT.as_secs())
                } else {
                    format!("QEMU exited with {:?}", o.status)
                },
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            )
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn list(v: &[f64]) -> String {
    v.iter()
        .map(|t| format!("{t:.2}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `cargo xtask bench-dom0`.
pub fn bench(args: &[String]) -> Result<()> {
    use lexopt::prelude::*;
    let (mut runs, mut xen_only, mut pvh_only) = (3u32, false, false);
    let mut p = lexopt::Parser::from_args(args.iter().cloned());
    while let Some(arg) = p.next()? {
        match arg {
            Long("runs") => {
                runs = crate::run::number(&crate::run::value(&mut p, "--runs")?, "--runs")?.max(1)
            }
            Long("xen-only") => xen_only = true,
            Long("pvh-only") => pvh_only = true,
            Long("help") | Short('h') => {
                println!("{HELP}");
                return Ok(());
            }
            other => bail!("bench-dom0: {}", other.unexpected()),
        }
    }
    if !xen_only {
        bail!(
            "bench-dom0: Warden does not boot a Linux dom0 yet (issue 11); measure Xen 4.17's side with --xen-only"
        );
    }
    deps::ensure(&[deps::QEMU, deps::LINUX].concat())?;
    let img = dom0img::image(false)?;
    let cmd = format!(
        "`cargo xtask bench-dom0 --xen-only --runs {runs}{}`",
        if pvh_only { " --pvh-only" } else { "" }
    );
    println!(
        "kernel {} (ELF vmlinux) as dom0 and demo domU; Xen 4.17 ({}); QEMU: -smp {} -m {} {}; dom0_mem={}M; median of {runs}",
        img.kernel_version,
        img.packages
            .iter()
            .find(|p| p.starts_with("xen-utils-4.17_"))
            .map(String::as_str)
            .unwrap_or("?"),
        linuxbench::SMP,
        linuxbench::MEMORY_MIB,
        linuxbench::MACHINE.join(" "),
        dom0img::DOM0_MEM_MIB,
    );
    // (PV dom0, multi-threaded TCG, label)
    let configs: &[(bool, bool, &str)] = if pvh_only {
        &[(false, true, "PVH dom0, multi-threaded TCG")]
    } else {
        &[
            (false, true, "PVH dom0, multi-threaded TCG"),
            (true, true, "PV dom0, multi-threaded TCG"),
            (true, false, "PV dom0, single-threaded TCG"),
        ]
    };
    let mut rows = Vec::new();
    for &(pv, mttcg, kind) in configs {
        let (mut up, mut create, mut failed) = (Vec::new(), Vec::new(), 0);
        let mut attempt = 0;
        while (up.len() as u32) < runs && attempt < 2 * runs {
            attempt += 1;
            match once(&img, pv, mttcg) {
                Ok((u, c)) => {
                    eprintln!(
                        "xtask: bench-dom0: Xen 4.17, {kind}, run {attempt}: toolstack up {u:.2} s, xl create -> domU userspace {c:.2} s"
                    );
                    up.push(u);
                    create.push(c);
                }
                Err(e) => {
                    eprintln!("xtask: bench-dom0: Xen 4.17, {kind}, run {attempt} failed: {e}");
                    failed += 1;
                }
            }
        }
        if up.is_empty() {
            bail!("bench-dom0: every run of the {kind} failed");
        }
        let note = if failed == 0 {
            String::new()
        } else {
            format!("; {failed} failed run(s) not counted")
        };
        rows.push(format!(
            "| Xen 4.17 (Debian), {kind} (2 vCPUs, 512 MiB): QEMU start -> `dom0: toolstack up` | {:.2} s (runs: {}{note}) | {cmd} |",
            median(up.clone()),
            list(&up)
        ));
        rows.push(format!(
            "| Xen 4.17 (Debian), {kind}: `xl create` of the PVH demo domU (128 MiB, 1 vCPU) -> `demo: userspace up` | {:.2} s (runs: {}{note}) | {cmd} |",
            median(create.clone()),
            list(&create)
        ));
    }
    println!("| measure | value | command |");
    println!("|---|---|---|");
    for r in rows {
        println!("{r}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_marks_both_ends_and_cleans_up() {
        let s = script();
        let c = s.find(CREATE_MARK).unwrap();
        let x = s.find("xl create /etc/xen/demo.cfg").unwrap();
        let w = s
            .find("wait-log /var/log/xen/console/guest-demo.log 'demo: userspace up'")
            .unwrap();
        let u = s.find(UP_MARK).unwrap();
        assert!(c < x && x < w && w < u);
        assert!(s.ends_with("xl destroy demo\n"));
    }
}
