//! Build, run and test machinery for Warden, as a library so the QEMU test
//! harness (`tests/`) builds and boots images the same way `cargo xtask` does.
//!
//! - [`build`]: bare-metal builds (the image and, later, test guests) with the
//!   flags from shared/reference/bare-metal-build.md, the post-link symbol
//!   table, and layout checks.
//! - [`qemu`]: the QEMU command line and a runner with timeout and captured serial.
//! - [`grub`]: a GRUB rescue ISO that boots the image with Multiboot 2 and modules.
//! - [`deps`]: the Debian packages the tools need (installed when root).
//! - [`linux`]: Debian's kernel, busybox and Xen downloaded into `target/linux/`, and the
//!   initramfs of the Linux guest tests.
//! - [`linuxbench`]: `cargo xtask bench-linux` (Linux's boot on Warden vs on Xen 4.17).
//! - [`dom0img`]: the dom0 image (Debian's Linux with Debian's Xen 4.17 toolstack and a demo
//!   domU), `cargo xtask dom0-image`, and `cargo xtask run-xen` (it on Debian's Xen 4.17).
//! - [`dom0bench`]: `cargo xtask bench-dom0` (dom0's toolstack up, `xl create` to the domU's
//!   userspace).
//! - [`plugbench`]: `cargo xtask bench-plug` (parallel VBD plug: one disk vs 8 at once).
//! - [`lint`]: `cargo fmt` and `cargo clippy -D warnings` over host crates and bare-metal images.
//! - [`run`]: `cargo xtask run` (options, the QEMU boot, the exit status of a refused boot).
//! - [`slots`]: how many QEMU test machines run at once, across test processes.
//! - [`testrun`]: `cargo xtask test`, phase by phase, with the wall time of each.

pub mod bootlog;
pub mod build;
pub mod deps;
pub mod dom0bench;
pub mod dom0img;
pub mod grub;
pub mod kernel;
pub mod lint;
pub mod linux;
pub mod linuxbench;
pub mod plugbench;
pub mod qemu;
pub mod run;
pub mod slots;
pub mod stats;
pub mod testrun;

use std::path::PathBuf;

/// Error type for xtask: a message for the user.
#[derive(Debug)]
pub struct Error(pub String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error(e.to_string())
    }
}

impl From<lexopt::Error> for Error {
    fn from(e: lexopt::Error) -> Self {
        Error(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// `Err(Error(format!(...)))`.
#[macro_export]
macro_rules! bail {
    ($($arg:tt)*) => { return Err($crate::Error(format!($($arg)*))) };
}

/// The workspace root (the directory holding the workspace Cargo.toml).
pub fn workspace_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent().map(PathBuf::from).unwrap_or(here)
}

/// Where bare-metal builds go (a target dir of their own, so a nested cargo
/// started from a test or from `cargo xtask` never waits on the outer build's lock).
pub fn bare_metal_target_dir() -> PathBuf {
    std::env::var_os("WARDEN_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target").join("warden"))
}
