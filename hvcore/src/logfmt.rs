//! Formatting of log lines: `[    1.234567] WARN  message`, the form that
//! goes into the console ring and (with `console_timestamps`) to the serial
//! console.

use crate::cmdline::LogLevel;
use core::fmt::{self, Write};

/// Severity of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl Level {
    /// Fixed-width tag written in the line.
    pub fn tag(self) -> &'static str {
        match self {
            Level::Error => "ERROR",
            Level::Warn => "WARN ",
            Level::Info => "INFO ",
            Level::Debug => "DEBUG",
            Level::Trace => "TRACE",
        }
    }

    /// Whether a record of this level passes the `loglvl=` threshold.
    pub fn enabled_at(self, threshold: LogLevel) -> bool {
        let need = match self {
            Level::Error => LogLevel::Error,
            Level::Warn => LogLevel::Warning,
            Level::Info => LogLevel::Info,
            Level::Debug => LogLevel::Debug,
            Level::Trace => LogLevel::All,
        };
        threshold >= need
    }
}

/// Write the line prefix for a record at `ns` nanoseconds since boot.
pub fn write_prefix(w: &mut dyn Write, ns: u64, level: Level) -> fmt::Result {
    write!(
        w,
        "[{:5}.{:06}] {} ",
        ns / 1_000_000_000,
        (ns % 1_000_000_000) / 1000,
        level.tag()
    )
}

/// Write a whole line (prefix, message, newline).
pub fn write_line(
    w: &mut dyn Write,
    ns: u64,
    level: Level,
    msg: fmt::Arguments<'_>,
) -> fmt::Result {
    write_prefix(w, ns, level)?;
    w.write_fmt(msg)?;
    w.write_char('\n')
}

/// A `fmt::Write` into a fixed buffer that silently truncates (marking the
/// cut with "..."), for formatting without allocation in fault paths.
#[derive(Debug)]
pub struct FixedBuf<const N: usize> {
    buf: [u8; N],
    len: usize,
    truncated: bool,
}

impl<const N: usize> Default for FixedBuf<N> {
    fn default() -> Self {
        FixedBuf {
            buf: [0; N],
            len: 0,
            truncated: false,
        }
    }
}

impl<const N: usize> FixedBuf<N> {
    /// The bytes written, with a trailing "...\n" if truncated.
    pub fn as_bytes(&mut self) -> &[u8] {
        if self.truncated && N >= 4 {
            self.buf[N - 4..].copy_from_slice(b"...\n");
            self.len = N;
        }
        &self.buf[..self.len]
    }
}

impl<const N: usize> Write for FixedBuf<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = N - self.len;
        let n = s.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        if n < s.len() {
            self.truncated = true;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;

    #[test]
    fn line_format() {
        let mut s = String::new();
        write_line(
            &mut s,
            1_234_567_891,
            Level::Warn,
            format_args!("hello {}", 7),
        )
        .unwrap();
        assert_eq!(s, "[    1.234567] WARN  hello 7\n");
        let mut s = String::new();
        write_line(&mut s, 0, Level::Info, format_args!("x")).unwrap();
        assert_eq!(s, "[    0.000000] INFO  x\n");
    }

    #[test]
    fn thresholds() {
        assert!(Level::Error.enabled_at(LogLevel::Error));
        assert!(!Level::Warn.enabled_at(LogLevel::Error));
        assert!(Level::Info.enabled_at(LogLevel::Info));
        assert!(!Level::Debug.enabled_at(LogLevel::Info));
        assert!(Level::Trace.enabled_at(LogLevel::All));
        assert!(!Level::Error.enabled_at(LogLevel::None));
    }

    #[test]
    fn fixed_buf_truncates() {
        let mut b = FixedBuf::<10>::default();
        write!(b, "0123456789abc").unwrap();
        assert_eq!(b.as_bytes(), b"012345...\n");
        let mut b = FixedBuf::<10>::default();
        write!(b, "ab").unwrap();
        assert_eq!(b.as_bytes(), b"ab");
    }
}
