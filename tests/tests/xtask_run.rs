//! Issue 13: `cargo xtask run` exits non-zero with the reason when Warden
//! refuses to boot (the production image, the operator's command).

use warden_tests::{policy, scratch_file};

/// One `cargo xtask run` at a time: each builds (and rewrites) the image.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn run(args: &[&str]) -> Result<xtask::run::Ended, String> {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    xtask::run::run(&args).map_err(|e| e.0)
}

#[test]
fn a_truncated_policy_makes_xtask_run_exit_non_zero_with_the_reason() {
    let good = std::fs::read(policy()).expect("read the default policy");
    let bad = scratch_file("xtask-run-truncated-policy", &good[..good.len() / 2]);
    let e = run(&["--policy", bad.to_str().unwrap(), "--timeout", "600"])
        .expect_err("a refused boot is an error");
    assert!(
        e.starts_with(
            "Warden refused to boot: invalid input: Unable to load FLASK policy: policy load failed at offset"
        ),
        "{e}"
    );
}

#[test]
fn an_unknown_flask_mode_makes_xtask_run_exit_non_zero_with_one_message() {
    let e = run(&["--cmdline", "console=com1 flask=bogus", "--timeout", "600"])
        .expect_err("a refused boot is an error");
    assert!(
        e.starts_with(
            "Warden refused to boot: invalid input: flask=bogus: not a FLASK mode (enforcing, permissive, late or disabled)"
        ),
        "{e}"
    );
}

/// Issue 11: `cargo xtask run --dom0 linux --exec CMD` boots the Linux dom0
/// with the dom0 image (production image, default policy), runs CMD in it
/// once the toolstack is up and ends with CMD's status once dom0 has
/// powered the machine off. The command proves where it ran: only the
/// initial domain has the pcpu driver's /sys/devices/system/xen_cpu, and
/// Debian's `xl` lists Domain-0 through Warden.
#[test]
fn xtask_run_exec_in_the_linux_dom0_ends_with_the_commands_status() {
    let e = run(&[
        "--dom0",
        "linux",
        "--exec",
        "xl list | grep -q '^Domain-0 ' && test -d /sys/devices/system/xen_cpu/xen_cpu1 && grep -q xen /sys/hypervisor/type && exit 7; exit 1",
        "--timeout",
        "900",
    ])
    .expect("the command ran and dom0 powered off");
    assert_eq!(e, xtask::run::Ended::Exec(7));
}
