//! `cargo xtask`: build, run and test Warden. See `cargo xtask help`.

use lexopt::prelude::*;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};
use xtask::qemu::{Boot, Machine, Module};
use xtask::{Error, Result, bail, build, deps, grub, qemu, workspace_root};

const HELP: &str = "\
cargo xtask <command> [options]      (cargo xtask <command> --help: that command's options)

Commands:
  run         Build Warden and boot it in QEMU with the serial console on this terminal
  test        Run every test: lint, host unit tests, then the QEMU integration tests
  lint        cargo fmt --check and clippy -D warnings (host crates, bare-metal images)
  build       Build the images (production and test) and print their paths
  bench-boot  Measure boot time (median of N runs), image size and clean build time
  bench-hypercalls  Null-hypercall round trip, flask=disabled vs enforcing (-icount
              shift=0), and hypercalls per second for 1 guest and 2 guests
              (-icount; with --real-time also in real time, multi-threaded TCG)
  bench-evtchn  Event-channel ping-pong between two domains: round trips per second
              (real time, 2 CPUs, FLASK enforcing)
  bench-livepatch  CPU hold time of applying/reverting a one-function live patch
              with 1, 2 and 4 CPUs (-icount shift=0, as the hypervisor reports
              it) and signature verification time of the upload
  linux-assets  Download Debian's Linux kernel and busybox into target/linux/ (once),
              build the initramfs, print their paths
  bench-linux  Debian's Linux booted as a PVH guest on Warden and on Xen 4.17 (same
              QEMU flags): time to the initramfs's first line, and the ratio
  dom0-image  Build dom0's initramfs: Debian's Xen 4.17 toolstack, kernel modules,
              busybox and a demo domU (downloaded once into target/dom0/)
  run-xen     Boot Debian's Xen 4.17 with the dom0 image (a root shell, or --exec CMD)
  bench-dom0  Time to dom0's toolstack and xl create -> the demo domU's userspace,
              on Warden and on Xen 4.17
  bench-plug  Parallel VBD plug: xl block-attach of one disk vs 8 at once to a
              running domU, on Warden and on Xen 4.17
  help        Show this text (also: cargo xtask COMMAND --help)

Missing Debian packages are installed when running as root; otherwise the
command to install them is printed.";

/// `cargo xtask COMMAND --help`.
fn help_for(cmd: &str) -> Option<&'static str> {
    Some(match cmd {
        "run" => xtask::run::HELP,
        "test" => {
            "cargo xtask test   Run every test: cargo xtask lint, host unit tests (cargo test\n                   --workspace without the image and the QEMU tests), then the\n                   QEMU integration tests. No options."
        }
        "lint" => {
            "cargo xtask lint   cargo fmt --check; clippy -D warnings on the host crates and\n                   the bare-metal images. No options."
        }
        "build" => {
            "cargo xtask build  Build the production and test images, dom0, the test guest and\n                   the default policies; print their paths, build-ids and the\n                   live-patch keys the images trust. No options."
        }
        "bench-boot" => {
            "cargo xtask bench-boot [--runs N]\n  Boot time (median of N runs, default 5), image size, clean build time (BENCHMARKS.md)"
        }
        "bench-hypercalls" => {
            "cargo xtask bench-hypercalls [--count N] [--runs N] [--real-time]\n  Null-hypercall round trip, flask=disabled vs enforcing (-icount shift=0), and\n  hypercalls/s for 1 and 2 guests. --count: hypercalls per measurement (default\n  200000); --runs: runs per configuration, median reported (default 3);\n  --real-time: also 1 and 2 guests in real time with multi-threaded TCG (a run that\n  hits QEMU's multi-threaded SVM fault fails the command: docs/ARCHITECTURE.md,\n  \"Known issues\")"
        }
        "bench-evtchn" => {
            "cargo xtask bench-evtchn [--rounds N] [--runs N]\n  Event-channel ping-pong between two domUs (interdomain channel, each\n  notification answered from the upcall): round trips per second in real\n  time (single-threaded TCG), 2 CPUs, FLASK enforcing. --rounds: round trips\n  per run (default 2000); --runs: runs, median reported (default 3)"
        }
        "bench-livepatch" => {
            "cargo xtask bench-livepatch [--rounds N]\n  CPU hold time of applying/reverting a one-function live patch with 1, 2 and 4\n  CPUs (-icount shift=0) and the upload's signature verification time.\n  --rounds: upload/apply/revert/unload rounds per CPU count (default 20)"
        }
        "linux-assets" => xtask::linux::ASSETS_HELP,
        "bench-linux" => xtask::linuxbench::HELP,
        "dom0-image" => xtask::dom0img::IMAGE_HELP,
        "run-xen" => xtask::dom0img::RUN_XEN_HELP,
        "bench-dom0" => xtask::dom0bench::HELP,
        "bench-plug" => xtask::plugbench::HELP,
        _ => return None,
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(cmd) = args.first()
        && wants_help(&args[1..])
        && let Some(h) = help_for(cmd)
    {
        println!("{h}");
        return ExitCode::SUCCESS;
    }
    let r = match args.first().map(String::as_str) {
        Some("run") => match xtask::run::run(&args[1..]) {
            // `--exec`: exit with the command's status.
            Ok(xtask::run::Ended::Exec(n)) => return ExitCode::from(n.clamp(0, 255) as u8),
            Ok(xtask::run::Ended::Stopped) => Ok(()),
            Err(e) => Err(e),
        },
        Some("test") => test(&args[1..]),
        Some("lint") => no_options("lint", &args[1..]).and_then(|go| {
            if go {
                xtask::lint::lint()?;
            }
            Ok(())
        }),
        Some("build") => no_options("build", &args[1..]).and_then(|go| {
            if go {
                build_cmd()?;
            }
            Ok(())
        }),
        Some("bench-boot") => bench_boot(&args[1..]),
        Some("bench-hypercalls") => bench_hypercalls(&args[1..]),
        Some("bench-livepatch") => bench_livepatch(&args[1..]),
        Some("linux-assets") => xtask::linux::assets_cmd(&args[1..]),
        Some("bench-linux") => xtask::linuxbench::bench(&args[1..]),
        Some("dom0-image") => xtask::dom0img::image_cmd(&args[1..]),
        Some("run-xen") => match xtask::dom0img::run_xen_cmd(&args[1..]) {
            Ok(0) => Ok(()),
            Ok(s) => return ExitCode::from(u8::try_from(s).unwrap_or(1)),
            Err(e) => Err(e),
        },
        Some("bench-dom0") => xtask::dom0bench::bench(&args[1..]),
        Some("bench-plug") => xtask::plugbench::bench(&args[1..]),
        Some("bench-evtchn") => bench_evtchn(&args[1..]),
        None | Some("help" | "--help" | "-h") => {
            println!("{HELP}");
            for c in [
                "run",
                "bench-boot",
                "bench-hypercalls",
                "bench-evtchn",
                "bench-livepatch",
                "linux-assets",
                "bench-linux",
                "dom0-image",
                "run-xen",
                "bench-dom0",
                "bench-plug",
            ] {
                println!("\n{}", help_for(c).unwrap_or_default());
            }
            Ok(())
        }
        Some(other) => Err(Error(format!("unknown command '{other}'\n\n{HELP}"))),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::FAILURE
        }
    }
}

use xtask::run::wants_help;

/// The options of a command, parsed with lexopt.
fn parser(args: &[String]) -> lexopt::Parser {
    lexopt::Parser::from_args(args.iter().cloned())
}

/// `cargo xtask COMMAND --help`: the help text.
fn help() -> Result<()> {
    println!("{HELP}");
    Ok(())
}

use xtask::run::{number, value};
use xtask::stats::median;

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(workspace_root());
    c
}

fn status(mut c: Command, what: &str) -> Result<()> {
    let s = c.status().map_err(|e| Error(format!("{what}: {e}")))?;
    if !s.success() {
        bail!("{what} failed ({s})");
    }
    Ok(())
}

/// A command without options (test, lint, build): only --help.
fn no_options(cmd: &str, args: &[String]) -> Result<bool> {
    let mut p = parser(args);
    if let Some(arg) = p.next()? {
        match arg {
            Long("help") | Short('h') => {
                help()?;
                return Ok(false);
            }
            other => bail!("{cmd}: {}", other.unexpected()),
        }
    }
    Ok(true)
}

fn test(args: &[String]) -> Result<()> {
    if no_options("test", args)? {
        xtask::testrun::run_all()?;
    }
    Ok(())
}

fn build_cmd() -> Result<()> {
    let prod = build::build_image(false)?;
    let test_img = build::build_image(true)?;
    println!("{}  (build-id {})", prod.display(), build::build_id(&prod)?);
    println!(
        "{}  (test hooks; build-id {})",
        test_img.display(),
        build::build_id(&test_img)?
    );
    let ring = build::livepatch_keys()?;
    println!(
        "live-patch keys trusted by both images: {} (from {})",
        build::key_ids(&ring)?.join(", "),
        ring.display()
    );
    println!("{}  (dom0)", build::build_dom0()?.display());
    println!("{}  (test guest)", build::build_test_guest()?.display());
    println!(
        "{}  (default policy)",
        build::build_policy(false)?.display()
    );
    println!(
        "{}  (default policy, MLS)",
        build::build_policy(true)?.display()
    );
    Ok(())
}

fn bench_boot(args: &[String]) -> Result<()> {
    let mut runs = 5u32;
    let mut p = parser(args);
    while let Some(arg) = p.next()? {
        match arg {
            Long("runs") => runs = number(&value(&mut p, "--runs")?, "--runs")?.max(1),
            Long("help") | Short('h') => return help(),
            other => bail!("bench-boot: {}", other.unexpected()),
        }
    }
    deps::ensure(&[deps::QEMU, deps::GRUB].concat())?;
    // Clean build in a target dir of its own, so the measurement does not
    // disturb (or depend on) the normal build cache.
    let clean_dir = workspace_root().join("target").join("bench-clean");
    let _ = std::fs::remove_dir_all(&clean_dir);
    let t = Instant::now();
    let mut c = Command::new(std::env::current_exe()?);
    c.arg("build")
        .env("WARDEN_TARGET_DIR", &clean_dir)
        .stdout(std::process::Stdio::null());
    status(c, "clean build")?;
    let clean_build = t.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&clean_dir);

    let image = build::build_image(false)?;
    let test_img = build::build_image(true)?;
    let file_size = std::fs::metadata(&image)?.len();
    let loaded = loaded_size(&image)?;
    let stripped = stripped_size(&image);

    // The default configuration: the FLASK policy loaded, enforcing (no
    // dom0, so the test image stops at the ready line).
    let policy = vec![Module {
        path: build::build_policy(false)?,
        args: String::new(),
    }];
    let mut times = Vec::new();
    for _ in 0..runs {
        times.push(boot_time(Boot::Kernel {
            image: test_img.clone(),
            cmdline: "test_exit".into(),
            modules: policy.clone(),
        })?);
    }
    let iso = xtask::bare_metal_target_dir().join("warden-bench.iso");
    grub::make_iso(&test_img, "test_exit", &policy, &iso)?;
    let mut grub_times = Vec::new();
    for _ in 0..runs {
        grub_times.push(boot_time(Boot::Iso(iso.clone()))?);
    }
    println!("| measure | value | command |");
    println!("|---|---|---|");
    println!(
        "| QEMU start -> ready line, `-kernel` (Multiboot 1), 2 CPUs, default policy enforcing, median of {runs} | {:.3} s (runs: {}) | `cargo xtask bench-boot` |",
        median(times.clone()),
        times
            .iter()
            .map(|t| format!("{t:.3}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "| QEMU start -> ready line, GRUB ISO (Multiboot 2), 2 CPUs, default policy enforcing, median of {runs} | {:.3} s (runs: {}) | `cargo xtask bench-boot` |",
        median(grub_times.clone()),
        grub_times
            .iter()
            .map(|t| format!("{t:.3}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "| image file size (with symbols and DWARF) | {} bytes | `cargo xtask bench-boot` |",
        file_size
    );
    if let Some(s) = stripped {
        println!(
            "| image file size, debug info stripped (`strip -g`) | {s} bytes | `cargo xtask bench-boot` |"
        );
    }
    println!(
        "| image loaded size (text + rodata + symbol table + data + bss) | {loaded} bytes | `cargo xtask bench-boot` |"
    );
    println!(
        "| clean release build of both images (production + test hooks), all dependencies, empty target dir | {clean_build:.1} s | `cargo xtask bench-boot` |"
    );
    Ok(())
}

/// How a benchmark boot runs QEMU.
#[derive(Clone, Copy, PartialEq)]
enum Clock {
    /// `-icount shift=0`: one instruction is one virtual nanosecond; the
    /// vCPUs take turns on one host thread, so figures are reproducible.
    Icount,
    /// Multi-threaded TCG, real time: one host thread per vCPU.
    RealTime,
}

/// One domain's BENCH line.
#[derive(Clone, Copy)]
struct BenchLine {
    calls: u64,
    ns_per_call: u64,
    /// Its measured window, in Xen system time (shared by all domains).
    start_ns: u64,
    end_ns: u64,
}

/// Hypercalls per second of a run: all calls over the span from the first
/// domain's start to the last one's end (so windows that did not overlap
/// are not counted as parallel).
fn aggregate(r: &[BenchLine]) -> u64 {
    let start = r.iter().map(|l| l.start_ns).min().unwrap_or(0);
    let end = r.iter().map(|l| l.end_ns).max().unwrap_or(0);
    r.iter().map(|l| l.calls).sum::<u64>() * 1_000_000_000 / (end - start).max(1)
}

/// How much of the shorter window overlapped the longer one, in percent
/// (two domains).
fn overlap(r: &[BenchLine]) -> u64 {
    let (a, b) = (r[0], r[1]);
    let both = a
        .end_ns
        .min(b.end_ns)
        .saturating_sub(a.start_ns.max(b.start_ns));
    let shorter = (a.end_ns - a.start_ns).min(b.end_ns - b.start_ns).max(1);
    both * 100 / shorter
}

/// What one benchmark boot gave: one line per domain.
enum BenchOutcome {
    Done(Vec<BenchLine>),
    /// A vCPU was stopped by the emulator fault described in
    /// docs/ARCHITECTURE.md ("Known issues"); the run says nothing.
    EmulatorFault,
}

/// One benchmark boot of the test image with `modules`.
fn bench_run(cmdline: &str, modules: Vec<Module>, smp: u32, clock: Clock) -> Result<BenchOutcome> {
    let mut m = Machine::new(Boot::Kernel {
        image: build::build_image(true)?,
        cmdline: format!("test_exit {cmdline}"),
        modules,
    });
    m.smp = smp;
    if clock == Clock::Icount {
        m.extra = vec!["-icount".into(), "shift=0".into()];
    } else {
        // Real time on 2 CPUs needs a host thread per CPU to measure scaling.
        m.mttcg = true;
    }
    let o = qemu::run_captured(m.command(), Duration::from_secs(1800), None)?;
    if o.serial
        .contains("saved the host's state in place of the guest's")
    {
        return Ok(BenchOutcome::EmulatorFault);
    }
    if o.status != Some(hvcore::testexit::TestExit::Dom0Poweroff.qemu_status()) {
        bail!(
            "benchmark boot did not end with dom0's power-off (status {:?}):\n{}",
            o.status,
            o.serial
        );
    }
    let mut r = Vec::new();
    for l in o.serial.lines().filter(|l| l.contains("BENCH d")) {
        let field = |k: &str| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix(k))
                .and_then(|v| v.parse::<u64>().ok())
        };
        match (
            field("calls="),
            field("ns_per_call="),
            field("start_ns="),
            field("end_ns="),
            field("failed="),
        ) {
            (Some(calls), Some(ns_per_call), Some(start_ns), Some(end_ns), Some(0))
                if end_ns > start_ns =>
            {
                r.push(BenchLine {
                    calls,
                    ns_per_call,
                    start_ns,
                    end_ns,
                })
            }
            _ => bail!("bad benchmark line: {l}"),
        }
    }
    if r.is_empty() {
        bail!("no BENCH line:\n{}", o.serial);
    }
    Ok(BenchOutcome::Done(r))
}

fn median_u64(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

fn list(v: &[u64]) -> String {
    v.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
}

/// `cargo xtask bench-evtchn`: the ping-pong of tests/guests/src/evtchn.rs
/// (`evtchn-front` / `evtchn-back`) in real time, `runs` times.
fn bench_evtchn(args: &[String]) -> Result<()> {
    let mut rounds = 2000u32;
    let mut runs = 3u32;
    let mut p = parser(args);
    while let Some(arg) = p.next()? {
        match arg {
            Long("rounds") => rounds = number(&value(&mut p, "--rounds")?, "--rounds")?.max(10),
            Long("runs") => runs = number(&value(&mut p, "--runs")?, "--runs")?.max(1),
            Long("help") | Short('h') => return help(),
            other => bail!("bench-evtchn: {}", other.unexpected()),
        }
    }
    deps::ensure(deps::QEMU)?;
    let policy = build::build_policy(false)?;
    let guest = build::build_test_guest()?;
    let module = |args: String| Module {
        path: guest.clone(),
        args,
    };
    let domu = "user_1:vm_r:domU_t";
    let mut rates = Vec::new();
    for run in 0..runs {
        let mut m = Machine::new(Boot::Kernel {
            image: build::build_image(true)?,
            cmdline: "test_exit flask=enforcing".into(),
            modules: vec![
                Module {
                    path: policy.clone(),
                    args: String::new(),
                },
                module("role=wait-dom0 ok=1,2".into()),
                module(format!(
                    "domain domid=1 label={domu} -- role=evtchn-front peer=2 third=3 rounds={rounds}"
                )),
                module(format!(
                    "domain domid=2 label={domu} -- role=evtchn-back peer=1"
                )),
                module(format!("domain domid=3 label={domu} mem=8M -- role=victim")),
            ],
        });
        // Real time, single-threaded TCG, as the other QEMU benchmarks
        // that compare with a peer (no -icount).
        m.smp = 2;
        let o = qemu::run_captured(m.command(), Duration::from_secs(1800), None)?;
        if o.status != Some(hvcore::testexit::TestExit::Dom0Poweroff.qemu_status()) {
            bail!(
                "benchmark boot did not end with dom0's power-off (status {:?}):\n{}",
                o.status,
                o.serial
            );
        }
        // "evtchn: N round trips in T ns: R round trips/s"
        let Some(line) = o.serial.lines().find(|l| l.contains("round trips/s")) else {
            bail!("no round-trip line:\n{}", o.serial);
        };
        let w: Vec<&str> = line.split_whitespace().collect();
        let i = w.iter().position(|x| *x == "evtchn:").unwrap_or(0);
        let (n, ns) = match (w.get(i + 1), w.get(i + 5)) {
            (Some(n), Some(ns)) => (n.parse::<u64>().ok(), ns.parse::<u64>().ok()),
            _ => (None, None),
        };
        let (Some(n), Some(ns)) = (n, ns) else {
            bail!("bad round-trip line: {line}");
        };
        let rate = n * 1_000_000_000 / ns.max(1);
        eprintln!(
            "xtask: run {}: {n} round trips in {ns} ns: {rate}/s",
            run + 1
        );
        rates.push(rate);
    }
    println!(
        "Event-channel ping-pong, 2 domUs (domU_t), interdomain channel, 2 CPUs, FLASK enforcing, single-threaded TCG, real time, {rounds} round trips per run: median {} round trips/s (runs: {rates:?})",
        median_u64(rates.clone())
    );
    Ok(())
}

fn bench_hypercalls(args: &[String]) -> Result<()> {
    let mut count = 200_000u32;
    let mut runs = 3u32;
    let mut real_time = false;
    let mut p = parser(args);
    while let Some(arg) = p.next()? {
        match arg {
            Long("count") => count = number(&value(&mut p, "--count")?, "--count")?.max(1000),
            Long("runs") => runs = number(&value(&mut p, "--runs")?, "--runs")?.max(1),
            Long("real-time") => real_time = true,
            Long("help") | Short('h') => return help(),
            other => bail!("bench-hypercalls: {}", other.unexpected()),
        }
    }
    deps::ensure(deps::QEMU)?;
    let policy = build::build_policy(false)?;
    let guest = build::build_test_guest()?;
    let module = |path: &PathBuf, args: String| Module {
        path: path.clone(),
        args,
    };
    // Real-time runs make a tenth of the calls: they take seconds each, and
    // the longer a two-guest run, the likelier the emulator fault.
    let rt_count = (count / 10).max(1000);
    let dom0 = |wait: bool, n: u32| {
        module(
            &guest,
            format!("role=bench count={n}{}", if wait { " wait=1" } else { "" }),
        )
    };
    let domu = |n: u32| {
        module(
            &guest,
            format!("domain domid=1 label=user_1:vm_r:domU_t -- role=bench count={n}"),
        )
    };
    // One configuration, `runs` times. A run that hits the emulator fault
    // (multi-threaded TCG only) says nothing about Warden: the command fails
    // rather than boot again.
    let measure = |what: &str,
                   flask: &str,
                   mods: Vec<Module>,
                   smp: u32,
                   clock: Clock|
     -> Result<Vec<Vec<BenchLine>>> {
        eprintln!("xtask: {what}");
        let mut all = Vec::new();
        for _ in 0..runs {
            match bench_run(&format!("flask={flask}"), mods.clone(), smp, clock)? {
                BenchOutcome::Done(r) => all.push(r),
                BenchOutcome::EmulatorFault => bail!(
                    "{what}: a run hit QEMU's multi-threaded TCG fault (a #VMEXIT that saved the host's state as the guest's; docs/ARCHITECTURE.md, \"Known issues\"); its figures say nothing"
                ),
            }
        }
        Ok(all)
    };
    let with_policy = |mut v: Vec<Module>| {
        v.insert(0, module(&policy, String::new()));
        v
    };
    let ns = |v: &[Vec<BenchLine>]| v.iter().map(|r| r[0].ns_per_call).collect::<Vec<_>>();
    let sum_cps = |v: &[Vec<BenchLine>]| v.iter().map(|r| aggregate(r)).collect::<Vec<u64>>();
    let overlaps = |v: &[Vec<BenchLine>]| v.iter().map(|r| overlap(r)).collect::<Vec<u64>>();

    let off = measure(
        "null hypercall, flask=disabled, 1 CPU, -icount shift=0",
        "disabled",
        vec![dom0(false, count)],
        1,
        Clock::Icount,
    )?;
    let on = measure(
        "null hypercall, flask=enforcing, 1 CPU, -icount shift=0",
        "enforcing",
        with_policy(vec![dom0(false, count)]),
        1,
        Clock::Icount,
    )?;
    let one_ic = measure(
        "1 guest, 2 CPUs, enforcing, -icount shift=0",
        "enforcing",
        with_policy(vec![dom0(false, count)]),
        2,
        Clock::Icount,
    )?;
    let two_ic = measure(
        "2 guests, 2 CPUs, enforcing, -icount shift=0",
        "enforcing",
        with_policy(vec![dom0(true, count), domu(count)]),
        2,
        Clock::Icount,
    )?;
    let (one_rt, two_rt) = if real_time {
        (
            measure(
                "1 guest, 2 CPUs, enforcing, multi-threaded TCG, real time",
                "enforcing",
                with_policy(vec![dom0(false, rt_count)]),
                2,
                Clock::RealTime,
            )?,
            measure(
                "2 guests, 2 CPUs, enforcing, multi-threaded TCG, real time",
                "enforcing",
                with_policy(vec![dom0(true, rt_count), domu(rt_count)]),
                2,
                Clock::RealTime,
            )?,
        )
    } else {
        (Vec::new(), Vec::new())
    };
    for (name, v) in [
        ("2 guests, icount", &two_ic),
        ("2 guests, real time", &two_rt),
    ] {
        if v.iter().any(|r| r.len() != 2) {
            bail!("{name}: expected a BENCH line from each of the two domains");
        }
    }
    let (a, b) = (median_u64(ns(&off)), median_u64(ns(&on)));
    let rt = if real_time {
        format!(", {rt_count} in real time")
    } else {
        String::new()
    };
    println!(
        "Hypercall: xen_version(XENVER_version) after 1000 warm-up calls, {count} calls per run under -icount{rt}; median of {runs} runs (all runs listed)."
    );
    println!();
    println!("| measure | median | runs |");
    println!("|---|---|---|");
    println!(
        "| null hypercall round trip, flask=disabled, 1 CPU (`-icount shift=0`, virtual ns) | {a} ns | {} |",
        list(&ns(&off))
    );
    println!(
        "| null hypercall round trip, flask=enforcing, grant from the per-vCPU decision cache, 1 CPU (`-icount shift=0`, virtual ns) | {b} ns | {} |",
        list(&ns(&on))
    );
    println!(
        "| ratio enforcing / disabled (target <= 1.10) | {:.3} | |",
        b as f64 / a as f64
    );
    println!(
        "| hypercalls/s, 1 guest (dom0), 2 CPUs, enforcing (`-icount shift=0`, virtual time) | {} | {} |",
        median_u64(sum_cps(&one_ic)),
        list(&sum_cps(&one_ic))
    );
    println!(
        "| hypercalls/s, 2 guests (dom0 + a domU_t domU) on 2 CPUs, enforcing, all calls over the joint window (`-icount shift=0`, virtual time) | {} | {} (windows overlapping {} %) |",
        median_u64(sum_cps(&two_ic)),
        list(&sum_cps(&two_ic)),
        list(&overlaps(&two_ic))
    );
    if real_time {
        println!(
            "| hypercalls/s, 1 guest (dom0), 2 CPUs, enforcing (multi-threaded TCG, real time) | {} | {} |",
            median_u64(sum_cps(&one_rt)),
            list(&sum_cps(&one_rt))
        );
        println!(
            "| hypercalls/s, 2 guests on 2 CPUs, enforcing, all calls over the joint window (multi-threaded TCG, real time) | {} | {} (windows overlapping {} %) |",
            median_u64(sum_cps(&two_rt)),
            list(&sum_cps(&two_rt)),
            list(&overlaps(&two_rt))
        );
    }
    Ok(())
}

fn boot_time(boot: Boot) -> Result<f64> {
    let m = Machine::new(boot);
    let o = qemu::run_captured(m.command(), Duration::from_secs(120), Some("Warden ready:"))?;
    match (o.status, o.watch_seen) {
        (Some(s), Some(t)) if s == hvcore::testexit::TestExit::Ready.qemu_status() => {
            Ok(t.as_secs_f64())
        }
        _ => bail!(
            "benchmark boot did not reach the ready line (status {:?}):\n{}",
            o.status,
            o.serial
        ),
    }
}

fn loaded_size(image: &PathBuf) -> Result<u64> {
    use object::read::elf::{FileHeader, ProgramHeader};
    let data = std::fs::read(image)?;
    let hdr = object::elf::FileHeader64::<object::LittleEndian>::parse(&*data)
        .map_err(|e| Error(format!("ELF: {e}")))?;
    let e = hdr.endian().map_err(|e| Error(format!("ELF: {e}")))?;
    let phs = hdr
        .program_headers(e, &*data)
        .map_err(|e| Error(format!("ELF: {e}")))?;
    Ok(phs
        .iter()
        .filter(|p| p.p_type(e) == object::elf::PT_LOAD)
        .map(|p| p.p_memsz(e))
        .sum())
}

fn stripped_size(image: &PathBuf) -> Option<u64> {
    let out = image.with_extension("stripped");
    let ok = Command::new("strip")
        .arg("-g")
        .arg("-o")
        .arg(&out)
        .arg(image)
        .status()
        .ok()?
        .success();
    let size = std::fs::metadata(&out).ok().map(|m| m.len());
    let _ = std::fs::remove_file(&out);
    if ok { size } else { None }
}

/// Numbers after `key` in `line` (`12.345` -> 12.345).
fn number_after(line: &str, key: &str) -> Option<f64> {
    let rest = &line[line.find(key)? + key.len()..];
    let n: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    n.parse().ok()
}

fn bench_livepatch(args: &[String]) -> Result<()> {
    let mut rounds = 20u32;
    let mut p = parser(args);
    while let Some(arg) = p.next()? {
        match arg {
            Long("rounds") => rounds = number(&value(&mut p, "--rounds")?, "--rounds")?.max(3),
            Long("help") | Short('h') => return help(),
            other => bail!("bench-livepatch: {}", other.unexpected()),
        }
    }
    deps::ensure(deps::QEMU)?;
    let image = build::build_image(true)?;
    let policy = build::build_policy(false)?;
    let guest = build::build_test_guest()?;
    let id = build::build_id(&image)?;
    // The payload: the QEMU tests' hello patch, built the operator's way
    // (`livepatch build`), reused from the tests' cache when it is there.
    let dir = xtask::bare_metal_target_dir().join("payloads").join(&id);
    let payload = dir.join("hello.livepatch");
    if !payload.exists() {
        std::fs::create_dir_all(&dir)?;
        let keys = build::livepatch_keys()?;
        let key = if std::env::var_os("WARDEN_LIVEPATCH_KEYS").is_some() {
            bail!(
                "bench-livepatch signs with the development key; unset WARDEN_LIVEPATCH_KEYS (set to {})",
                keys.display()
            );
        } else {
            build::dev_key_prefix().with_extension("key")
        };
        eprintln!("xtask: building the hello payload with `livepatch build`");
        let root = workspace_root();
        let status = cargo()
            .args([
                "run",
                "--quiet",
                "--package",
                "livepatch",
                "--",
                "build",
                "--source",
            ])
            .arg(&root)
            .arg("--image")
            .arg(&image)
            .args(["--features", "test-hooks", "--patch"])
            .arg(root.join("tests/livepatch/hello.diff"))
            .arg("--key")
            .arg(&key)
            .arg("-o")
            .arg(&payload)
            .status()?;
        if !status.success() {
            bail!("livepatch build failed ({status})");
        }
    }
    let size = std::fs::metadata(&payload)?.len();
    println!(
        "live-patch benchmark: hello payload ({size} bytes, one function), {rounds} rounds per CPU count, -icount shift=0 (1 instruction = 1 ns of guest time)"
    );
    println!(
        "| CPUs | guests | apply: CPUs held, median (min-max) | revert: median | signature verification, median | all upload checks, median |"
    );
    println!("|---|---|---|---|---|---|");
    for (smp, busy) in [
        (1u32, false),
        (2, false),
        (4, false),
        (1, true),
        (2, true),
        (4, true),
    ] {
        let mut m = Machine::new(Boot::Kernel {
            image: image.clone(),
            cmdline: "test_exit loglvl=info".into(),
            modules: vec![
                Module {
                    path: policy.clone(),
                    args: String::new(),
                },
                Module {
                    path: guest.clone(),
                    args: format!(
                        "role=livepatch-dom0 scenario=bench rounds={rounds}{}",
                        if busy { " load=1" } else { "" }
                    ),
                },
                Module {
                    path: payload.clone(),
                    args: "hello.livepatch".into(),
                },
            ],
        });
        if busy {
            // A guest with one vCPU per CPU calling xen_version in a loop:
            // every other CPU must be kicked out of guest mode.
            if let Boot::Kernel { modules, .. } = &mut m.boot {
                modules.push(Module {
                    path: guest.clone(),
                    args: format!("domain domid=1 name=load vcpus={smp} mem=16M -- role=lp-load"),
                });
            }
        }
        m.smp = smp;
        m.extra = vec!["-icount".into(), "shift=0".into()];
        eprintln!(
            "xtask: {smp} CPU(s), {}",
            if busy {
                "a busy guest on every CPU"
            } else {
                "dom0 only"
            }
        );
        let o = qemu::run_captured(m.command(), Duration::from_secs(1800), None)?;
        if o.status != Some(hvcore::testexit::TestExit::Dom0Poweroff.qemu_status())
            || o.serial.contains("CHECK FAIL")
        {
            bail!(
                "benchmark boot with {smp} CPUs failed (status {:?}):\n{}",
                o.status,
                o.serial
            );
        }
        let collect = |what: &str, key: &str| -> Vec<f64> {
            o.serial
                .lines()
                .filter(|l| l.contains(what))
                .filter_map(|l| number_after(l, key))
                .collect()
        };
        let apply = collect("hello: APPLY completed", "all CPUs held ");
        let revert = collect("hello: REVERT completed", "all CPUs held ");
        let sig = collect("hello: signature verification of", "bytes: ");
        let checks = collect("hello: upload checks took", "took ");
        if apply.len() != rounds as usize || revert.len() != rounds as usize {
            bail!(
                "{smp} CPUs: expected {rounds} applies and reverts, found {} and {}",
                apply.len(),
                revert.len()
            );
        }
        let range = |v: &[f64]| {
            let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = v.iter().copied().fold(0.0, f64::max);
            (lo, hi)
        };
        let (lo, hi) = range(&apply);
        println!(
            "| {smp} | {} | {:.1} us ({lo:.1}-{hi:.1}) | {:.1} us | {:.0} us | {:.0} us |",
            if busy {
                "a guest spinning on xen_version on every CPU"
            } else {
                "dom0 only (other CPUs idle)"
            },
            median(apply.clone()),
            median(revert.clone()),
            median(sig.clone()),
            median(checks.clone())
        );
    }
    println!(
        "Xen's rendezvous timeout (the hold time it tolerates): 30000 us; Ksplice's measured pause: ~700 us."
    );
    Ok(())
}
