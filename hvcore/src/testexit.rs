//! The agreed test-exit protocol between the image and the QEMU harness.
//!
//! QEMU's `isa-debug-exit` device at [`DEBUG_EXIT_PORT`] turns a write of value
//! `v` into the QEMU exit status `(v << 1) | 1`. The image writes there only in
//! builds with the `test-hooks` feature and only when the command line has
//! `test_exit`: [`TestExit::Ready`] after the ready line when there is no
//! dom0 to run, [`TestExit::Fatal`] after a fatal error has been reported,
//! and, when dom0 shuts down, the code for how it did ([`TestExit::Dom0Poweroff`]
//! for a clean power-off — what a test dom0 does when every check passed —
//! [`TestExit::Dom0Crash`] when it crashed or reported a failure, and
//! [`TestExit::Dom0Reboot`]). A triple fault exits with status 0 and a
//! timeout kill with 124, so neither can be mistaken for any code.
//!
//! One code is written by every image, production included:
//! [`TestExit::BootRefused`] when Warden refuses to boot (no valid policy in
//! enforcing mode, an unknown `flask=` mode, a bad boot module, unsupported
//! hardware ...), but only when the device is there: the image checks that it
//! runs under QEMU (CPUID hypervisor leaf `TCGTCGTCGTCG` or `KVMKVMKVM`) and
//! that a 32-bit read of the port answers 0 as `isa-debug-exit` does (an
//! absent port reads all ones); otherwise it halts. `cargo xtask run` always
//! adds the device, so a refused boot ends QEMU with status 43.

/// I/O port of QEMU's `isa-debug-exit` device (`-device isa-debug-exit,iobase=0xf4,iosize=0x04`).
pub const DEBUG_EXIT_PORT: u16 = 0xf4;

/// Values the image writes to [`DEBUG_EXIT_PORT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum TestExit {
    /// Boot completed: the ready line has been printed.
    Ready = 0x10,
    /// A fatal error (exception, panic, refused boot) has been reported.
    Fatal = 0x11,
    /// dom0 powered off (SCHEDOP_shutdown with reason poweroff).
    Dom0Poweroff = 0x12,
    /// dom0 crashed or shut down with reason crash.
    Dom0Crash = 0x13,
    /// dom0 asked for a reboot.
    Dom0Reboot = 0x14,
    /// Warden refused to boot (every image, when the device is there).
    BootRefused = 0x15,
}

impl TestExit {
    /// The value written to the port.
    pub const fn value(self) -> u32 {
        self as u32
    }

    /// The exit status QEMU reports for this value.
    pub const fn qemu_status(self) -> i32 {
        ((self as u32 as i32) << 1) | 1
    }

    /// The variant whose QEMU status is `status`, if any.
    pub fn from_qemu_status(status: i32) -> Option<TestExit> {
        [
            TestExit::Ready,
            TestExit::Fatal,
            TestExit::Dom0Poweroff,
            TestExit::Dom0Crash,
            TestExit::Dom0Reboot,
            TestExit::BootRefused,
        ]
        .into_iter()
        .find(|e| e.qemu_status() == status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_match_qemu_formula_and_avoid_zero_and_timeout() {
        assert_eq!(TestExit::Ready.qemu_status(), 33);
        assert_eq!(TestExit::Fatal.qemu_status(), 35);
        assert_eq!(TestExit::from_qemu_status(33), Some(TestExit::Ready));
        assert_eq!(TestExit::from_qemu_status(35), Some(TestExit::Fatal));
        assert_eq!(TestExit::Dom0Poweroff.qemu_status(), 37);
        assert_eq!(TestExit::from_qemu_status(39), Some(TestExit::Dom0Crash));
        assert_eq!(TestExit::from_qemu_status(41), Some(TestExit::Dom0Reboot));
        assert_eq!(TestExit::from_qemu_status(43), Some(TestExit::BootRefused));
        assert_eq!(TestExit::from_qemu_status(0), None);
        assert_eq!(TestExit::from_qemu_status(1), None);
        assert_eq!(TestExit::from_qemu_status(124), None);
    }
}
