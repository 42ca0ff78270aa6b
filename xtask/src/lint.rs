//! `cargo xtask lint`: the house rules that tools can check — `cargo fmt`
//! clean, and `cargo clippy -D warnings` clean for the host crates (all
//! targets) and for the bare-metal images (built the way [`crate::build`]
//! builds them: the workspace-wide `cargo clippy --workspace --all-targets`
//! cannot check the image, whose `no_std` build would unify with the host
//! crates' `std` features).

use crate::{Error, Result, bail, build, workspace_root};
use std::process::Command;

/// The bare-metal packages: the image and the guests.
const BARE_METAL: &[&str] = &[
    "warden",
    "warden-dom0",
    "warden-test-guests",
    "warden-bare-rt",
];

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(workspace_root());
    c
}

fn step(mut c: Command, what: &str) -> Result<()> {
    eprintln!("xtask: lint: {what}");
    let s = c
        .status()
        .map_err(|e| Error(format!("{what}: cannot run cargo: {e}")))?;
    if !s.success() {
        bail!("{what} failed ({s})");
    }
    Ok(())
}

/// Is `cargo <tool>` installed?
fn have(tool: &str) -> bool {
    cargo()
        .args([tool, "--version"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Run every check; the first failure stops with its name.
pub fn lint() -> Result<()> {
    lint_timed(&mut crate::testrun::Timer::default())
}

/// [`lint`], each check a timed phase of `t`.
pub fn lint_timed(t: &mut crate::testrun::Timer) -> Result<()> {
    for tool in ["fmt", "clippy"] {
        if !have(tool) {
            bail!(
                "cargo {tool} is not installed; install it with: rustup component add {}",
                if tool == "fmt" { "rustfmt" } else { "clippy" }
            );
        }
    }
    let mut c = cargo();
    c.args(["fmt", "--all", "--check"]);
    t.phase("lint: cargo fmt --all --check", |_| {
        step(c, "cargo fmt --all --check")
    })?;

    let mut c = cargo();
    c.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--exclude",
        "warden",
        "--",
        "-D",
        "warnings",
    ])
    // As every host build of `cargo xtask test` (see `testrun::cargo`):
    // proc macros built here are reused there, not rebuilt.
    .env(
        "RUSTC_BOOTSTRAP",
        crate::testrun::COMPILE_FAIL_CODES_CHECKED,
    );
    t.phase("lint: clippy, host crates", |_| {
        step(c, "clippy, host crates (all targets)")
    })?;

    let mut c = cargo();
    c.args(["clippy", "--release", "--target", build::TARGET])
        .arg("--target-dir")
        .arg(workspace_root().join("target").join("warden-clippy"))
        .env("RUSTFLAGS", build::RUSTFLAGS)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        // The image's build script needs the trusted live-patch keys.
        .env("WARDEN_LIVEPATCH_KEYS", build::livepatch_keys()?);
    for p in BARE_METAL {
        c.args(["--package", p]);
    }
    c.args(["--features", "warden/test-hooks,warden-guest/rt"]);
    c.args(["--", "-D", "warnings"]);
    t.phase("lint: clippy, bare-metal image and guests", |_| {
        step(c, "clippy, bare-metal image and guests")
    })?;
    Ok(())
}
