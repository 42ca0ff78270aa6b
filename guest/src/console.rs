//! Console output through `console_io` (lines of unprivileged domains are
//! prefixed with `(dN) ` by the hypervisor).

use core::fmt::{self, Write};

/// Writes formatted text to the console, in chunks.
pub struct Console;

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for chunk in s.as_bytes().chunks(1024) {
            // A refused write (no permission) is dropped: there is nowhere else to say it.
            let _ = crate::hypercall::console_write(chunk);
        }
        Ok(())
    }
}

/// A line assembled in a buffer and written with one hypercall (so lines
/// from several vCPUs do not interleave mid-line).
pub struct LineWriter {
    buf: [u8; 512],
    len: usize,
}

impl Default for LineWriter {
    fn default() -> Self {
        LineWriter {
            buf: [0; 512],
            len: 0,
        }
    }
}

impl LineWriter {
    /// Write what was assembled.
    pub fn flush(&mut self) {
        if self.len > 0 {
            let _ = crate::hypercall::console_write(&self.buf[..self.len]);
            self.len = 0;
        }
    }
}

impl Write for LineWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if self.len == self.buf.len() {
                self.flush();
            }
            self.buf[self.len] = b;
            self.len += 1;
        }
        Ok(())
    }
}

#[doc(hidden)]
pub fn _print(args: fmt::Arguments<'_>) {
    let mut w = LineWriter::default();
    let _ = w.write_fmt(args);
    w.flush();
}

/// Print to the hypervisor console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::console::_print(format_args!($($arg)*)) };
}

/// Print a line to the hypervisor console.
#[macro_export]
macro_rules! println {
    () => { $crate::console::_print(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::console::_print(format_args!("{}\n", format_args!($($arg)*))) };
}
