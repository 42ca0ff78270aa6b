//! Issue 13: `cargo xtask run` exits non-zero with the reason when Warden
//! refuses to boot (the production image, the operator's command).

use warden_tests::{policy, scratch_file};

/// One `cargo xtask run` at a time: each builds (and rewrites) the image.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn run(args: &[&str]) -> Result<(), String> {
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
