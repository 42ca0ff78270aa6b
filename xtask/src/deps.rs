//! Debian packages the tools need. One list per purpose; extend here.

use crate::{Error, Result, bail};
use std::process::Command;

/// To boot images: QEMU.
pub const QEMU: &[&str] = &["qemu-system-x86"];
/// To boot through GRUB: grub-mkrescue and what it needs.
pub const GRUB: &[&str] = &["grub-pc-bin", "grub-common", "xorriso", "mtools"];
/// For the host test suite: `tools/sepol-oracle` links Debian's static libsepol;
/// the xsm and policy-compiler differential tests run checkpolicy, m4 and seinfo.
pub const HOST_TESTS: &[&str] = &["libsepol-dev", "checkpolicy", "m4", "setools"];
/// For `livepatch build` (its tests and the live-patch QEMU tests' payloads):
/// `patch` applies the diff (`diff` is in the essential diffutils).
pub const LIVEPATCH: &[&str] = &["patch"];

/// For the Linux guest tests and `bench-linux` (`xtask::linux`): `xz` unpacks
/// the kernel's bzImage; glibc's static libraries link the demo domU's
/// `gnttool` (`xtask::build::build_gnttool`, crt-static). The kernel,
/// busybox-static and Xen are not installed: they are downloaded with
/// `apt-get download` into `target/linux/`.
pub const LINUX: &[&str] = &["xz-utils", "libc6-dev"];

/// Everything `cargo xtask test` needs.
pub fn for_tests() -> Vec<&'static str> {
    [QEMU, GRUB, HOST_TESTS, LIVEPATCH, LINUX].concat()
}

fn installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${db:Status-Status}", pkg])
        .output()
        .map(|o| o.status.success() && o.stdout == b"installed")
        .unwrap_or(false)
}

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.trim_ascii() == b"0")
        .unwrap_or(false)
}

pub fn apt(args: &[&str]) -> bool {
    eprintln!("xtask: apt-get {}", args.join(" "));
    Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Make sure `pkgs` are installed: install the missing ones when running as
/// root (running `apt-get update` first if the install fails), otherwise stop
/// with the exact command to run.
pub fn ensure(pkgs: &[&str]) -> Result<()> {
    if Command::new("dpkg-query")
        .arg("--version")
        .output()
        .is_err()
    {
        // Not a Debian-like system: check the commands themselves later.
        return Ok(());
    }
    let missing: Vec<&str> = pkgs.iter().copied().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let cmd = format!("apt-get install -y {}", missing.join(" "));
    if !is_root() {
        bail!(
            "missing Debian packages: {}\nInstall them with:\n    sudo {cmd}",
            missing.join(" ")
        );
    }
    eprintln!(
        "xtask: installing missing Debian packages: {}",
        missing.join(" ")
    );
    let mut install = vec!["install", "-y", "--no-install-recommends"];
    install.extend(&missing);
    let ok = apt(&install) || (apt(&["update"]) && apt(&install));
    if !ok {
        return Err(Error(format!(
            "installing {} failed; try by hand:\n    apt-get update && {cmd}",
            missing.join(" ")
        )));
    }
    let still: Vec<&str> = missing.iter().copied().filter(|p| !installed(p)).collect();
    if !still.is_empty() {
        bail!("packages still missing after apt-get: {}", still.join(" "));
    }
    Ok(())
}
