//! `cargo xtask bench-dom0`: the dom0 image ([`crate::dom0img`]) booted on
//! Warden and on Debian's Xen 4.17 in the same invocation, timed at two
//! points from the host (serial line arrival times): QEMU's start to dom0's
//! `dom0: toolstack up`, and `xl create /etc/xen/demo.cfg` to the demo
//! domU's `demo: userspace up` (dom0 prints a line before `xl create` and
//! one when the line appears in the domU's console log). Where `xl create`
//! does not work yet (Warden before its foreign-memory operations), the
//! first measure stands and the second is reported as not measured, with
//! the reason.

use crate::dom0img::{self, XenBoot};
use crate::stats::{list, median};
use crate::{Result, bail, deps, linuxbench};
use std::time::Duration;

/// `cargo xtask bench-dom0 --help`.
pub const HELP: &str = "\
cargo xtask bench-dom0 [--runs N] [--xen-only | --warden-only] [--pvh-only]
  The dom0 image (cargo xtask dom0-image) as the dom0 (dom0_mem=512M, 2 vCPUs;
  QEMU -machine q35 -device intel-iommu -smp 2 -m 1024) of
  - Warden (production image, default policy, enforcing; its PVH dom0;
    single-threaded TCG, Warden's default), and
  - Debian's Xen 4.17: a PVH dom0 and a PV dom0 with multi-threaded TCG, and a
    PV dom0 with single-threaded TCG (a PVH dom0 does not survive
    single-threaded TCG on Xen: cargo xtask run-xen --help).
  Times, from the host: QEMU's start -> dom0's 'dom0: toolstack up', and
  'xl create /etc/xen/demo.cfg' -> the demo domU's 'demo: userspace up' (PVH,
  128 MiB, 1 vCPU); medians, and Warden's ratios to Xen's (BENCHMARKS.md). A
  run that crashes or times out is reported and not counted (at most 2N
  attempts per configuration); a run whose xl create fails counts for the
  first measure only.
  --runs N       counted runs per configuration (default 3)
  --xen-only     only Xen's side; --warden-only: only Warden's
  --pvh-only     Xen's side: only the PVH dom0";

/// dom0's line right before `xl create`.
pub const CREATE_MARK: &str = "bench: xl create";
/// dom0's line once the demo domU's console log shows its userspace.
pub const UP_MARK: &str = "bench: demo userspace up";

/// What dom0 runs (`/etc/warden-exec`).
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

/// One counted run: seconds from QEMU's start to the toolstack, and from
/// `xl create` to the domU's userspace (or why that was not measured).
struct Run {
    up: f64,
    create: std::result::Result<f64, String>,
}

/// The serial console's last lines, for a report.
fn tail(o: &crate::qemu::Outcome, n: usize) -> String {
    let v: Vec<&str> = o
        .lines
        .iter()
        .rev()
        .take(n)
        .map(|(_, l)| l.as_str())
        .collect();
    v.into_iter().rev().collect::<Vec<_>>().join("\n")
}

/// The measures of a captured run of [`script`] with its exec status.
fn measure(o: &crate::qemu::Outcome, status: Option<i32>) -> Result<Run> {
    let t = |s: &str| o.line_time(s).map(|d| d.as_secs_f64());
    let Some(up) = t(dom0img::TOOLSTACK_UP) else {
        bail!(
            "no '{}' ({}); the serial console's last lines:\n{}",
            dom0img::TOOLSTACK_UP,
            if let Some(s) = &o.stopped_on {
                format!("stopped on '{s}'")
            } else if o.timed_out {
                format!("timeout {} s", TIMEOUT.as_secs())
            } else {
                format!("QEMU exited with {:?}", o.status)
            },
            tail(o, 30)
        );
    };
    let create = match (t(CREATE_MARK), t(UP_MARK), status) {
        (Some(c), Some(u), Some(0)) => Ok(u - c),
        _ => Err(format!(
            "exec status {status:?}{}",
            o.lines
                .iter()
                .find(|(_, l)| l.contains("libxl: error") || l.contains("xc: error"))
                .map(|(_, l)| format!("; first error: {}", l.trim()))
                .unwrap_or_default()
        )),
    };
    Ok(Run { up, create })
}

/// One run on Xen.
fn once_xen(img: &dom0img::Image, pv: bool, mttcg: bool) -> Result<Run> {
    let b = XenBoot {
        pv,
        mttcg,
        exec: Some(script()),
        ..XenBoot::default()
    };
    let (o, status) = dom0img::run_on_xen(img, &b, TIMEOUT)?;
    let r = measure(&o, status)?;
    if let Err(e) = &r.create {
        bail!(
            "xl create -> domU userspace not measured ({e}); the serial console's last lines:\n{}",
            tail(&o, 30)
        );
    }
    Ok(r)
}

/// One run on Warden.
fn once_warden(img: &dom0img::Image) -> Result<Run> {
    let (o, status) = dom0img::run_on_warden(img, &script(), TIMEOUT)?;
    measure(&o, status)
}

/// What the runs of one configuration measured.
struct Runs {
    /// Toolstack up, per counted run.
    up: Vec<f64>,
    /// `xl create` -> domU userspace, per run where it worked.
    create: Vec<f64>,
    /// Why `xl create` was not measured, per run where it failed.
    not_created: Vec<String>,
    /// Runs that crashed or timed out (not counted).
    failed: u32,
}

/// Up to `runs` counted runs of `once` (at most `2 * runs` attempts).
fn runs_of(runs: u32, what: &str, mut once: impl FnMut() -> Result<Run>) -> Result<Runs> {
    let (mut up, mut create, mut not_created, mut failed) = (Vec::new(), Vec::new(), Vec::new(), 0);
    let mut attempt = 0;
    while (up.len() as u32) < runs && attempt < 2 * runs {
        attempt += 1;
        match once() {
            Ok(r) => {
                eprintln!(
                    "xtask: bench-dom0: {what}, run {attempt}: toolstack up {:.2} s, xl create -> domU userspace {}",
                    r.up,
                    match &r.create {
                        Ok(c) => format!("{c:.2} s"),
                        Err(e) => format!("not measured ({e})"),
                    }
                );
                up.push(r.up);
                match r.create {
                    Ok(c) => create.push(c),
                    Err(e) => not_created.push(e),
                }
            }
            Err(e) => {
                eprintln!("xtask: bench-dom0: {what}, run {attempt} failed: {e}");
                failed += 1;
            }
        }
    }
    if up.is_empty() {
        bail!("bench-dom0: every run of {what} failed");
    }
    Ok(Runs {
        up,
        create,
        not_created,
        failed,
    })
}

/// `cargo xtask bench-dom0`.
pub fn bench(args: &[String]) -> Result<()> {
    use lexopt::prelude::*;
    let (mut runs, mut xen_side, mut warden_side, mut pvh_only) = (3u32, true, true, false);
    let mut p = lexopt::Parser::from_args(args.iter().cloned());
    while let Some(arg) = p.next()? {
        match arg {
            Long("runs") => {
                runs = crate::run::number(&crate::run::value(&mut p, "--runs")?, "--runs")?.max(1)
            }
            Long("xen-only") => warden_side = false,
            Long("warden-only") => xen_side = false,
            Long("pvh-only") => pvh_only = true,
            Long("help") | Short('h') => {
                println!("{HELP}");
                return Ok(());
            }
            other => bail!("bench-dom0: {}", other.unexpected()),
        }
    }
    if !xen_side && !warden_side {
        bail!("bench-dom0: --xen-only and --warden-only exclude each other");
    }
    deps::ensure(&[deps::QEMU, deps::LINUX].concat())?;
    let img = dom0img::image(false)?;
    let cmd = format!(
        "`cargo xtask bench-dom0 --runs {runs}{}{}{}`",
        if !warden_side { " --xen-only" } else { "" },
        if !xen_side { " --warden-only" } else { "" },
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
    let mut rows = Vec::new();
    let note = |failed: u32| {
        if failed == 0 {
            String::new()
        } else {
            format!("; {failed} failed run(s) not counted")
        }
    };
    // Xen's medians per configuration: the toolstack's start, and xl
    // create to the domU's userspace (None: no run created it).
    let mut xen_up = Vec::new();
    if xen_side {
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
        for &(pv, mttcg, kind) in configs {
            let what = format!("Xen 4.17, {kind}");
            let Runs {
                up, create, failed, ..
            } = runs_of(runs, &what, || once_xen(&img, pv, mttcg))?;
            let n = note(failed);
            rows.push(format!(
                "| Xen 4.17 (Debian), {kind} (2 vCPUs, 512 MiB): QEMU start -> `dom0: toolstack up` | {:.2} s (runs: {}{n}) | {cmd} |",
                median(up.clone()),
                list(&up)
            ));
            rows.push(if create.is_empty() {
                format!(
                    "| Xen 4.17 (Debian), {kind}: `xl create` of the PVH demo domU -> `demo: userspace up` | not measured: xl create failed in every run | {cmd} |"
                )
            } else {
                format!(
                    "| Xen 4.17 (Debian), {kind}: `xl create` of the PVH demo domU (128 MiB, 1 vCPU) -> `demo: userspace up` | {:.2} s (runs: {}{n}) | {cmd} |",
                    median(create.clone()),
                    list(&create)
                )
            });
            let c = (!create.is_empty()).then(|| median(create));
            xen_up.push((kind, median(up), c));
        }
    }
    if warden_side {
        let kind = "PVH dom0, enforcing, single-threaded TCG";
        let Runs {
            up,
            create,
            not_created,
            failed,
        } = runs_of(runs, &format!("Warden, {kind}"), || once_warden(&img))?;
        let n = note(failed);
        let w = median(up.clone());
        rows.push(format!(
            "| Warden, {kind} (2 vCPUs, 512 MiB): QEMU start -> `dom0: toolstack up` | {w:.2} s (runs: {}{n}) | {cmd} |",
            list(&up)
        ));
        for (xk, x, _) in &xen_up {
            rows.push(format!(
                "| ratio Warden / Xen 4.17 ({xk}): toolstack up (target <= 0.5) | {:.2} | {cmd} |",
                w / x
            ));
        }
        if create.is_empty() {
            rows.push(format!(
                "| Warden, {kind}: `xl create` of the PVH demo domU -> `demo: userspace up` | not measured: xl create failed in every run ({}) | {cmd} |",
                not_created.first().map(String::as_str).unwrap_or("?")
            ));
        } else {
            rows.push(format!(
                "| Warden, {kind}: `xl create` of the PVH demo domU (128 MiB, 1 vCPU) -> `demo: userspace up` | {:.2} s (runs: {}{n}{}) | {cmd} |",
                median(create.clone()),
                list(&create),
                if not_created.is_empty() {
                    String::new()
                } else {
                    format!("; xl create failed in {} run(s)", not_created.len())
                }
            ));
            let wc = median(create.clone());
            for (xk, _, xc) in &xen_up {
                if let Some(xc) = xc {
                    rows.push(format!(
                        "| ratio Warden / Xen 4.17 ({xk}): xl create -> domU userspace (target <= 0.5) | {:.2} | {cmd} |",
                        wc / xc
                    ));
                }
            }
        }
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
