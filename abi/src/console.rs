//! `console_io(cmd, count, buffer)` (hypercall 18).
//!
//! `CONSOLEIO_write` writes `count` bytes from `buffer` to the hypervisor
//! console (lines of unprivileged domains are prefixed with `(dN) `) and
//! returns 0. `CONSOLEIO_read` copies up to `count` bytes of serial input
//! into `buffer` and returns how many.

crate::subops! {
    /// Write to the console.
    WRITE = 0, "write";
    /// Read serial console input.
    READ = 1, "read";
}

/// Longest single write accepted (longer ones fail with -EINVAL).
pub const MAX_WRITE: u32 = 64 * 1024;
