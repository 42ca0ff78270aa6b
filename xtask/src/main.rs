//! `cargo xtask`: build, run and test Warden. See `cargo xtask help`.

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};
use xtask::qemu::{Boot, Machine, Module};
use xtask::{Error, Result, bail, build, deps, grub, qemu, workspace_root};

const HELP: &str = "\
cargo xtask <command> [options]

Commands:
  run         Build Warden and boot it in QEMU with the serial console on this terminal
  test        Run every test: host unit tests, then the QEMU integration tests
  build       Build the images (production and test) and print their paths
  bench-boot  Measure boot time (median of N runs), image size and clean build time
  help        Show this text

Options for run:
  --cmdline \"...\"      Warden's command line (default: console=com1 loglvl=info)
  --module FILE[:ARGS]   A boot module with its command line (repeatable), after
                         the default modules (the default policy, then dom0)
  --no-default-modules   Boot only the --module files
  --dom0-cmdline \"...\" dom0's command line (default: empty: demo and shell)
  --smp N                CPUs (default 2)
  --memory MIB           Memory in MiB (default 512)
  --grub                 Boot through a GRUB ISO (Multiboot 2) instead of -kernel
  --timeout SECONDS      Stop QEMU after this long
  --qemu-arg ARG         Extra QEMU argument (repeatable)

Options for bench-boot:
  --runs N               Boot runs to take the median of (default 5)

Missing Debian packages are installed when running as root; otherwise the
command to install them is printed.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = match args.first().map(String::as_str) {
        Some("run") => run(&args[1..]),
        Some("test") => test(&args[1..]),
        Some("build") => build_cmd(),
        Some("bench-boot") => bench_boot(&args[1..]),
        None | Some("help" | "--help" | "-h") => {
            println!("{HELP}");
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

fn value<'a>(args: &'a [String], i: &mut usize, flag: &str) -> Result<&'a str> {
    *i += 1;
    args.get(*i)
        .map(String::as_str)
        .ok_or_else(|| Error(format!("{flag} needs a value")))
}

fn number(s: &str, flag: &str) -> Result<u32> {
    s.parse()
        .map_err(|_| Error(format!("{flag}: '{s}' is not a number")))
}

fn run(args: &[String]) -> Result<()> {
    let mut cmdline = String::from("console=com1 loglvl=info");
    let mut modules = Vec::new();
    let mut smp = 2;
    let mut memory = 512;
    let mut use_grub = false;
    let mut timeout = None;
    let mut extra = Vec::new();
    let mut defaults = true;
    let mut dom0_cmdline = String::new();
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--cmdline" => cmdline = value(args, &mut i, "--cmdline")?.into(),
            "--module" => modules.push(Module::parse(value(args, &mut i, "--module")?)),
            "--no-default-modules" => defaults = false,
            "--dom0-cmdline" => dom0_cmdline = value(args, &mut i, "--dom0-cmdline")?.into(),
            "--smp" => smp = number(value(args, &mut i, "--smp")?, "--smp")?,
            "--memory" => memory = number(value(args, &mut i, "--memory")?, "--memory")?,
            "--grub" => use_grub = true,
            "--timeout" => {
                timeout = Some(Duration::from_secs(number(
                    value(args, &mut i, "--timeout")?,
                    "--timeout",
                )? as u64))
            }
            "--qemu-arg" => extra.push(value(args, &mut i, "--qemu-arg")?.to_string()),
            other => bail!("run: unknown option '{other}' (see cargo xtask help)"),
        }
        i += 1;
    }
    if smp == 0 || memory < 64 {
        bail!("run: --smp must be at least 1 and --memory at least 64 (MiB)");
    }
    for m in &modules {
        if !m.path.is_file() {
            bail!("module file {} does not exist", m.path.display());
        }
    }
    let mut pkgs = deps::QEMU.to_vec();
    if use_grub {
        pkgs.extend(deps::GRUB);
    }
    deps::ensure(&pkgs)?;
    let image = build::build_image(false)?;
    eprintln!(
        "xtask: image {} (build-id {})",
        image.display(),
        build::build_id(&image)?
    );
    if defaults {
        let policy = build::build_policy(false)?;
        let dom0 = build::build_dom0()?;
        eprintln!(
            "xtask: modules: default policy {} (enforcing), dom0 {}",
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
                args: dom0_cmdline,
            },
        ];
        all.append(&mut modules);
        modules = all;
    }
    let boot = if use_grub {
        let iso = xtask::bare_metal_target_dir().join("warden-run.iso");
        grub::make_iso(&image, &cmdline, &modules, &iso)?;
        eprintln!("xtask: GRUB ISO {}", iso.display());
        Boot::Iso(iso)
    } else {
        Boot::Kernel {
            image,
            cmdline,
            modules,
        }
    };
    let mut m = Machine::new(boot);
    m.smp = smp;
    m.memory_mib = memory;
    m.extra = extra;
    eprintln!(
        "xtask: booting in QEMU ({} CPUs, {} MiB){}",
        smp,
        memory,
        match timeout {
            Some(t) => format!(", stopping after {} s", t.as_secs()),
            None => ", Ctrl-C to stop".into(),
        }
    );
    match qemu::run_interactive(m.command(), timeout)? {
        None => {
            eprintln!(
                "\nxtask: stopped QEMU after {} s (--timeout)",
                timeout.map_or(0, |t| t.as_secs())
            );
            Ok(())
        }
        Some(0) => Ok(()),
        Some(code) => bail!("QEMU exited with status {code}"),
    }
}

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

/// Run a `cargo test` command, echoing its output, and add up its
/// "test result:" lines into `totals` (passed, failed).
fn cargo_test(mut c: Command, what: &str, totals: &mut (u64, u64)) -> Result<()> {
    use std::io::{BufRead, BufReader};
    c.stdout(std::process::Stdio::piped());
    let mut child = c.spawn().map_err(|e| Error(format!("{what}: {e}")))?;
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines() {
            let line = line?;
            println!("{line}");
            if let Some(rest) = line.strip_prefix("test result: ") {
                for part in rest.split(';') {
                    let words: Vec<&str> = part.split_whitespace().collect();
                    if let [.., n, kind] = words.as_slice() {
                        let n: u64 = n.parse().unwrap_or(0);
                        match *kind {
                            "passed" => totals.0 += n,
                            "failed" => totals.1 += n,
                            _ => {}
                        }
                    }
                }
            }
        }
    }
    let s = child.wait()?;
    if !s.success() {
        bail!("{what} failed ({s})");
    }
    Ok(())
}

fn test(args: &[String]) -> Result<()> {
    if let Some(a) = args.first() {
        bail!("test: unknown option '{a}'");
    }
    deps::ensure(&deps::for_tests())?;
    eprintln!(
        "xtask: host unit tests (cargo test --workspace, without the image and the QEMU tests)"
    );
    let mut totals = (0, 0);
    let mut c = cargo();
    c.args([
        "test",
        "--workspace",
        "--exclude",
        "warden",
        "--exclude",
        "warden-tests",
    ]);
    cargo_test(c, "host unit tests", &mut totals)?;
    eprintln!("xtask: building images");
    let prod = build::build_image(false)?;
    let test_img = build::build_image(true)?;
    eprintln!("xtask: QEMU integration tests");
    let mut c = cargo();
    c.args(["test", "--package", "warden-tests"])
        .env("WARDEN_IMAGE", &prod)
        .env("WARDEN_TEST_IMAGE", &test_img);
    cargo_test(c, "QEMU integration tests", &mut totals)?;
    println!("xtask: all tests passed");
    println!("total: {} passed, {} failed", totals.0, totals.1);
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

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn bench_boot(args: &[String]) -> Result<()> {
    let mut runs = 5u32;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--runs" => runs = number(value(args, &mut i, "--runs")?, "--runs")?.max(1),
            other => bail!("bench-boot: unknown option '{other}'"),
        }
        i += 1;
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

    let mut times = Vec::new();
    for _ in 0..runs {
        times.push(boot_time(Boot::Kernel {
            image: test_img.clone(),
            cmdline: "test_exit".into(),
            modules: vec![],
        })?);
    }
    let iso = xtask::bare_metal_target_dir().join("warden-bench.iso");
    grub::make_iso(&test_img, "test_exit", &[], &iso)?;
    let mut grub_times = Vec::new();
    for _ in 0..runs {
        grub_times.push(boot_time(Boot::Iso(iso.clone()))?);
    }
    println!("| measure | value | command |");
    println!("|---|---|---|");
    println!(
        "| QEMU start -> ready line, `-kernel` (Multiboot 1), 2 CPUs, median of {runs} | {:.3} s (runs: {}) | `cargo xtask bench-boot` |",
        median(times.clone()),
        times
            .iter()
            .map(|t| format!("{t:.3}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "| QEMU start -> ready line, GRUB ISO (Multiboot 2), 2 CPUs, median of {runs} | {:.3} s (runs: {}) | `cargo xtask bench-boot` |",
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
