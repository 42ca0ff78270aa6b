//! `cargo xtask bench-plug`: parallel VBD plug (issue 12) timed on Warden
//! and on Debian's Xen 4.17 in one invocation, with the same dom0 image
//! ([`crate::dom0img`]) and the same script: dom0 creates the demo domU
//! (idle, no disk) and runs `vbd-plug demo 8 4` ([`crate::dom0img::VBD_PLUG`],
//! `xtask/src/vbd-plug.sh`) `--rounds` times: one disk attached with `xl
//! block-attach` (timed until the domU's blkfront is Connected) and
//! detached, then 8 at once. The times are dom0's own (`/proc/uptime`); a
//! round counts only if every command exited 0, all 8 frontends connected
//! and everything was gone after the detach.

use crate::dom0img::{self, XenBoot};
use crate::stats::{list, median};
use crate::{Result, bail, deps, linuxbench};
use std::time::Duration;

/// `cargo xtask bench-plug --help`.
pub const HELP: &str = "\
cargo xtask bench-plug [--runs N] [--rounds R] [--xen-only | --warden-only] [--xen-pvh]
  Parallel VBD plug: the time to attach one disk to a running domU with
  xl block-attach until the domU's blkfront is Connected, vs 8 disks at once
  (8 xl block-attach in the background), and the detach of one vs 8, with
  4 MiB image files on loop devices (Debian's hotplug script). dom0 is the
  dom0 image (cargo xtask dom0-image; dom0_mem=512M, 2 vCPUs; QEMU -machine
  q35 -device intel-iommu -smp 2 -m 1024); the domU is the demo (PVH, 128 MiB,
  1 vCPU); dom0 runs vbd-plug (xtask/src/vbd-plug.sh) R times and times with
  its /proc/uptime. On
  - Warden (production image, default policy, enforcing; PVH dom0,
    single-threaded TCG), and
  - Debian's Xen 4.17 with a PV dom0 and single-threaded TCG (the identical
    QEMU flags; a PVH dom0 on Xen needs multi-threaded TCG: --xen-pvh adds it).
  Prints the medians over all counted rounds, Warden / Xen time ratios and
  8-vs-1 ratios (BENCHMARKS.md). A round that fails a check (an xl command
  not 0, a frontend not Connected, anything left after the detach) is not
  counted and is reported; a boot that crashes or times out is reported (the
  rounds it completed count) and another is made (at most 2N boots per
  configuration).
  --runs N       counted boots per configuration (default 1)
  --rounds R     vbd-plug rounds per boot (default 3)
  --xen-only     only Xen's side; --warden-only: only Warden's
  --xen-pvh      Xen's side: also a PVH dom0 (multi-threaded TCG)";

/// Disks plugged at once.
pub const DISKS: u32 = 8;

/// What dom0 runs (`/etc/warden-exec`).
pub fn script(rounds: u32) -> String {
    format!(
        "xl create {cfg} || exit 1\n\
         wait-log {log} 'demo: idle' 600 >/dev/null || {{ sed 's/^/demo| /' {log}; exit 2; }}\n\
         r=1\n\
         while [ $r -le {rounds} ]; do\n\
         \x20   echo \"bench: round $r\"\n\
         \x20   vbd-plug demo {DISKS} 4 || exit 3\n\
         \x20   r=$((r + 1))\n\
         done\n\
         xl destroy demo\n",
        cfg = dom0img::DEMO_CFG,
        log = dom0img::DEMO_LOG,
    )
}

const TIMEOUT: Duration = Duration::from_secs(1800);

/// One round's times (seconds, dom0's clock).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Round {
    pub attach_one: f64,
    pub attach_all: f64,
    /// From the start until the last `xl block-attach` returned.
    pub commands_all: f64,
    pub detach_one: f64,
    pub detach_all: f64,
    /// How busy dom0's vCPUs were (percent of all) while attaching one,
    /// and all at once.
    pub busy_one: f64,
    pub busy_all: f64,
}

/// The number after `key` in `s`.
fn num(s: &str, key: &str) -> Option<f64> {
    let r = &s[s.find(key)? + key.len()..];
    let n: String = r
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    n.parse().ok()
}

/// The rounds of a run's serial output: each `plug: ` block from `plug:
/// domain` to `plug: done`, counted if its checks passed; the others'
/// reasons.
pub fn rounds(serial: &str) -> (Vec<Round>, Vec<String>) {
    let zeros = vec!["0"; DISKS as usize].join(" ");
    let (mut ok, mut bad) = (Vec::new(), Vec::new());
    let mut cur: Vec<&str> = Vec::new();
    for l in serial.lines() {
        let Some(i) = l.find("plug: ") else { continue };
        let l = l[i..].trim_end_matches('\r').trim_end();
        if l.starts_with("plug: domain ") {
            cur.clear();
        }
        cur.push(l);
        if l.starts_with("plug: FAILED") {
            bad.push(l.to_string());
            cur.clear();
        }
        if l != "plug: done" {
            continue;
        }
        let has = |p: &str| cur.iter().any(|c| c.starts_with(p));
        let checks = [
            ("plug: one: attach status 0, ", "one disk's attach"),
            (
                "plug: one: detach status 0, left: frontends [], backends [], loop devices []",
                "one disk's detach",
            ),
            (
                &format!("plug: {DISKS}: attach statuses {zeros}"),
                "the attach statuses",
            ),
            (
                &format!("plug: {DISKS}: detach statuses {zeros}"),
                "the detach statuses",
            ),
            (
                &format!("plug: {DISKS}: left: frontends [], backends [], loop devices []"),
                "what was left after the detach",
            ),
        ];
        let connected = cur.iter().any(|c| {
            c.starts_with(&format!("plug: {DISKS}: frontends ["))
                && c.ends_with(&format!("connected {DISKS} (backends {DISKS})"))
        });
        let failed: Vec<&str> = checks
            .iter()
            .filter(|(p, _)| !has(p))
            .map(|(_, w)| *w)
            .chain((!connected).then_some("the frontends connected"))
            .chain(has("plug: timed out").then_some("a wait timed out"))
            .collect();
        let times = cur
            .iter()
            .find(|c| c.starts_with("plug: times: "))
            .copied()
            .unwrap_or("");
        let busy = cur
            .iter()
            .find(|c| c.starts_with("plug: dom0's "))
            .copied()
            .unwrap_or("");
        let round = (|| {
            Some(Round {
                busy_one: num(busy, "attaching: one ")?,
                busy_all: num(busy, &format!("{DISKS} at once "))?,
                attach_one: num(times, "attach one ")?,
                attach_all: num(times, &format!("{DISKS} at once "))?,
                commands_all: num(times, "commands returned after ")?,
                detach_one: num(times, "detach one ")?,
                detach_all: num(
                    &times[times.find("detach one ")?..],
                    &format!("{DISKS} at once "),
                )?,
            })
        })();
        match (failed.is_empty(), round) {
            (true, Some(r)) => ok.push(r),
            (true, None) => bad.push(format!("no times or busy line: {times:?} {busy:?}")),
            (false, _) => bad.push(format!("failed: {}", failed.join(", "))),
        }
        cur.clear();
    }
    (ok, bad)
}

/// The counted rounds of one configuration, with notes on what was not
/// counted.
struct Config {
    what: String,
    rounds: Vec<Round>,
    notes: Vec<String>,
}

fn measure(
    what: &str,
    runs: u32,
    want_rounds: u32,
    mut once: impl FnMut() -> Result<(crate::qemu::Outcome, Option<i32>)>,
) -> Result<Config> {
    let (mut all, mut notes, mut counted, mut attempt) = (Vec::new(), Vec::new(), 0, 0);
    while counted < runs && attempt < 2 * runs {
        attempt += 1;
        let (o, status) = once()?;
        let (ok, bad) = rounds(&o.serial);
        eprintln!(
            "xtask: bench-plug: {what}, boot {attempt}: exec status {status:?}, {} round(s) counted{}",
            ok.len(),
            if bad.is_empty() {
                String::new()
            } else {
                format!(", not counted: {}", bad.join("; "))
            }
        );
        for r in &ok {
            eprintln!(
                "xtask: bench-plug: {what}:   attach one {:.2} s, {DISKS} at once {:.2} s (commands {:.2} s); detach one {:.2} s, {DISKS} at once {:.2} s",
                r.attach_one, r.attach_all, r.commands_all, r.detach_one, r.detach_all
            );
        }
        notes.extend(bad.iter().map(|b| format!("boot {attempt}: {b}")));
        if status != Some(0) || ok.len() < want_rounds as usize {
            let why = if let Some(s) = &o.stopped_on {
                format!("stopped on '{s}'")
            } else if o.timed_out {
                format!("timed out after {} s", TIMEOUT.as_secs())
            } else {
                format!("exec status {status:?}")
            };
            notes.push(format!(
                "boot {attempt}: {why}, {} of {want_rounds} rounds",
                ok.len()
            ));
            let tail: Vec<&str> = o.serial.lines().rev().take(25).collect();
            eprintln!(
                "xtask: bench-plug: {what}, boot {attempt}: {why}; the serial console's last lines:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        if status == Some(0) {
            counted += 1;
        }
        all.extend(ok);
    }
    Ok(Config {
        what: what.to_string(),
        rounds: all,
        notes,
    })
}

/// `cargo xtask bench-plug`.
pub fn bench(args: &[String]) -> Result<()> {
    use lexopt::prelude::*;
    let (mut runs, mut nrounds) = (1u32, 3u32);
    let (mut xen_side, mut warden_side, mut xen_pvh) = (true, true, false);
    let mut p = lexopt::Parser::from_args(args.iter().cloned());
    let n = |p: &mut lexopt::Parser, f: &str| -> Result<u32> {
        crate::run::number(&crate::run::value(p, f)?, f)
    };
    while let Some(arg) = p.next()? {
        match arg {
            Long("runs") => runs = n(&mut p, "--runs")?.max(1),
            Long("rounds") => nrounds = n(&mut p, "--rounds")?.max(1),
            Long("xen-only") => warden_side = false,
            Long("warden-only") => xen_side = false,
            Long("xen-pvh") => xen_pvh = true,
            Long("help") | Short('h') => {
                println!("{HELP}");
                return Ok(());
            }
            other => bail!("bench-plug: {}", other.unexpected()),
        }
    }
    if !xen_side && !warden_side {
        bail!("bench-plug: --xen-only and --warden-only exclude each other");
    }
    deps::ensure(&[deps::QEMU, deps::LINUX].concat())?;
    let img = dom0img::image(false)?;
    let exec = script(nrounds);
    let mut configs = Vec::new();
    if warden_side {
        configs.push(measure(
            "Warden, PVH dom0, enforcing, single-threaded TCG",
            runs,
            nrounds,
            || dom0img::run_on_warden(&img, &exec, TIMEOUT),
        )?);
    }
    if xen_side {
        let mut xen = vec![(true, false, "Xen 4.17, PV dom0, single-threaded TCG")];
        if xen_pvh {
            xen.push((false, true, "Xen 4.17, PVH dom0, multi-threaded TCG"));
        }
        for (pv, mttcg, what) in xen {
            let b = XenBoot {
                pv,
                mttcg,
                exec: Some(exec.clone()),
                ..XenBoot::default()
            };
            configs.push(measure(what, runs, nrounds, || {
                dom0img::run_on_xen(&img, &b, TIMEOUT)
            })?);
        }
    }
    let cmd = format!(
        "`cargo xtask bench-plug --runs {runs} --rounds {nrounds}{}{}{}`",
        if !warden_side { " --xen-only" } else { "" },
        if !xen_side { " --warden-only" } else { "" },
        if xen_pvh { " --xen-pvh" } else { "" }
    );
    println!(
        "kernel {} as dom0 and demo domU; QEMU: -smp {} -m {} {}; dom0_mem={}M; {DISKS} images of 4 MiB; {nrounds} round(s) per boot, {runs} boot(s) per configuration; times from dom0's /proc/uptime",
        img.kernel_version,
        linuxbench::SMP,
        linuxbench::MEMORY_MIB,
        linuxbench::MACHINE.join(" "),
        dom0img::DOM0_MEM_MIB,
    );
    println!("| measure | median | rounds | command |");
    println!("|---|---|---|---|");
    // (configuration, median attach one, median attach all)
    let mut medians = Vec::new();
    for c in &configs {
        if c.rounds.is_empty() {
            println!(
                "| {}: parallel plug | not measured: no round counted ({}) | | {cmd} |",
                c.what,
                c.notes.join("; ")
            );
            continue;
        }
        let col = |f: fn(&Round) -> f64| c.rounds.iter().map(f).collect::<Vec<f64>>();
        let rows: [(&str, Vec<f64>); 7] = [
            ("attach 1 disk -> Connected", col(|r: &Round| r.attach_one)),
            (
                "attach 8 disks at once -> all Connected",
                col(|r: &Round| r.attach_all),
            ),
            (
                "attach 8 at once: the last xl block-attach returned",
                col(|r: &Round| r.commands_all),
            ),
            ("detach 1 disk -> gone", col(|r: &Round| r.detach_one)),
            (
                "detach 8 disks at once -> all gone",
                col(|r: &Round| r.detach_all),
            ),
            (
                "dom0's vCPUs busy (%) attaching 1 disk",
                col(|r: &Round| r.busy_one),
            ),
            (
                "dom0's vCPUs busy (%) attaching 8 at once",
                col(|r: &Round| r.busy_all),
            ),
        ];
        for (what, v) in &rows {
            let unit = if what.contains('%') { "" } else { " s" };
            println!(
                "| {}: {what} | {:.2}{unit} | {} | {cmd} |",
                c.what,
                median(v.clone()),
                list(v)
            );
        }
        let (a1, a8) = (median(rows[0].1.clone()), median(rows[1].1.clone()));
        let (d1, d8) = (median(rows[3].1.clone()), median(rows[4].1.clone()));
        println!(
            "| {}: 8 at once / 1, attach (1.0 = 8 in the time of one; 8.0 = serial) | {:.2} | | {cmd} |",
            c.what,
            a8 / a1
        );
        println!(
            "| {}: 8 at once / 1, detach | {:.2} | | {cmd} |",
            c.what,
            d8 / d1
        );
        if !c.notes.is_empty() {
            println!(
                "| {}: not counted | {} | | {cmd} |",
                c.what,
                c.notes.join("; ")
            );
        }
        medians.push((c.what.clone(), a1, a8, d1, d8));
    }
    if let Some((w, wa1, wa8, wd1, wd8)) = medians.iter().find(|m| m.0.starts_with("Warden")) {
        for (x, xa1, xa8, xd1, xd8) in medians.iter().filter(|m| m.0.starts_with("Xen")) {
            println!(
                "| time ratio {w} / {x}: attach 1 disk; 8 at once; detach 1; 8 at once (< 1: Warden faster) | {:.2}; {:.2}; {:.2}; {:.2} | | {cmd} |",
                wa1 / xa1,
                wa8 / xa8,
                wd1 / xd1,
                wd8 / xd8
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\
plug: domain demo (id 1), 8 images of 4 MiB
plug: one: attach status 0, frontends [51728], connected 1 (backends 1), loop devices [/dev/loop0], hotplug errors []
plug: one: detach status 0, left: frontends [], backends [], loop devices []
plug: 8: attach statuses 0 0 0 0 0 0 0 0
plug: 8: frontends [51728 51744 51760 51776 51792 51808 51824 51840], connected 8 (backends 8)
plug: 8: loop devices [/dev/loop0 /dev/loop1], distinct 8, images 8
plug: 8: hotplug errors []
plug: 8: detach statuses 0 0 0 0 0 0 0 0
plug: 8: left: frontends [], backends [], loop devices []
plug: xenstored answers: name demo
plug: dom0's 2 vCPUs busy while attaching: one 61 %, 8 at once 97 %
plug: times: attach one 1.50 s, 8 at once 4.25 s (commands returned after 3.90 s); detach one 1.10 s, 8 at once 3.00 s
plug: done
";

    #[test]
    fn a_good_round_is_counted_with_its_times() {
        let (ok, bad) = rounds(&format!("(d0) x\n{GOOD}{}", GOOD.replace("\n", "\r\n")));
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!(
            ok,
            vec![
                Round {
                    attach_one: 1.5,
                    attach_all: 4.25,
                    commands_all: 3.9,
                    detach_one: 1.1,
                    detach_all: 3.0,
                    busy_one: 61.0,
                    busy_all: 97.0,
                };
                2
            ]
        );
    }

    #[test]
    fn a_round_failing_a_check_is_not_counted() {
        for (from, to) in [
            (
                "statuses 0 0 0 0 0 0 0 0\nplug: 8: frontends",
                "statuses 0 0 0 0 0 0 143 0\nplug: 8: frontends",
            ),
            ("connected 8 (backends 8)", "connected 7 (backends 8)"),
            (
                "left: frontends [], backends [], loop devices []\nplug: xen",
                "left: frontends [51728], backends [], loop devices []\nplug: xen",
            ),
            (
                "plug: 8: hotplug",
                "plug: timed out after 300 s waiting for: connected 8\nplug: 8: hotplug",
            ),
        ] {
            assert!(GOOD.contains(from), "{from}");
            let (ok, bad) = rounds(&GOOD.replace(from, to));
            assert!(ok.is_empty(), "{to}");
            assert_eq!(bad.len(), 1, "{to}");
        }
        let (ok, bad) = rounds("plug: FAILED: no domain demo\n");
        assert!(ok.is_empty() && bad.len() == 1);
    }

    #[test]
    fn the_script_plugs_in_a_running_demo_and_destroys_it() {
        let s = script(2);
        assert!(s.starts_with("xl create /etc/xen/demo.cfg || exit 1\n"));
        assert!(s.contains("'demo: idle'"));
        assert!(s.contains("while [ $r -le 2 ]; do\n    echo \"bench: round $r\"\n    vbd-plug demo 8 4 || exit 3\n"));
        assert!(s.ends_with("done\nxl destroy demo\n"));
        assert!(dom0img::VBD_PLUG.contains("plug: times: attach one $one_a s, $n at once"));
        assert!(
            dom0img::VBD_PLUG.contains("vCPUs busy while attaching: one $one_busy %, $n at once")
        );
    }
}
