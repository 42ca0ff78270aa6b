//! Guest console output (`console_io` CONSOLEIO_write), as Xen treats it:
//!
//! - A domU's output is cut into lines (at a newline, or every
//!   [`CONSOLE_LINE_MAX`](crate::domain::CONSOLE_LINE_MAX) bytes), control
//!   characters other than tab become `.`, and each line goes to the console
//!   ring's guest region and the serial console as
//!   `(dN) [seconds.micros] text` ([`write_guest_line`]): a line a guest
//!   wrote always starts with `(dN) `, so it cannot pass for one of the
//!   hypervisor's own lines (audit records above all).
//! - Lines are rate limited per domain ([`RateLimit`], Xen's
//!   `__printk_ratelimit` token bucket; `guest_console_ratelimit=BURST/MS`,
//!   default [`GUEST_CONSOLE_RATELIMIT`](crate::cmdline::GUEST_CONSOLE_RATELIMIT)).
//!   Dropped lines are counted and reported before the next line that passes.
//! - The hardware domain's (dom0's) output goes to the serial console as it
//!   is, unbuffered (it may be interactive), and not into the ring unless
//!   `console_to_ring` is given (Xen's behaviour); there its lines are
//!   written like a domU's, with `(d0) `, unlimited (Xen does not limit the
//!   hardware domain either).

use core::fmt::Write;

/// Per-domain token bucket: at most `burst` lines at once, refilled at
/// `burst` lines per `ms` milliseconds.
#[derive(Debug, Default, Clone)]
pub struct RateLimit {
    /// Tokens, in line-milliseconds (a line costs `ms`).
    toks: u64,
    last_ms: u64,
    started: bool,
    /// Lines dropped since the last one that passed.
    missed: u32,
}

impl RateLimit {
    /// Whether a line at `now_ms` passes the limit `(burst, ms)` (burst 0 =
    /// no limit). `Some(n)`: it passes, and `n` lines were dropped before it.
    pub fn admit(&mut self, now_ms: u64, (burst, ms): (u32, u64)) -> Option<u32> {
        if burst == 0 {
            return Some(core::mem::take(&mut self.missed));
        }
        let ms = ms.max(1);
        let cap = (burst as u64).saturating_mul(ms);
        if !self.started {
            self.started = true;
            self.toks = cap;
            self.last_ms = now_ms;
        }
        let elapsed = now_ms.saturating_sub(self.last_ms);
        self.last_ms = self.last_ms.max(now_ms);
        self.toks = self
            .toks
            .saturating_add(elapsed.saturating_mul(burst as u64))
            .min(cap);
        if self.toks >= ms {
            self.toks -= ms;
            Some(core::mem::take(&mut self.missed))
        } else {
            self.missed = self.missed.saturating_add(1);
            None
        }
    }
}

/// Format one guest line as it goes into the ring: `(dN) [    s.micros] text\n`
/// (without the timestamp when `ts_ns` is None). Returns the formatted line.
pub fn write_guest_line(
    out: &mut dyn Write,
    domid: u16,
    ts_ns: Option<u64>,
    text: &[u8],
) -> core::fmt::Result {
    write!(out, "(d{domid}) ")?;
    if let Some(ns) = ts_ns {
        write!(
            out,
            "[{:5}.{:06}] ",
            ns / 1_000_000_000,
            (ns % 1_000_000_000) / 1000
        )?;
    }
    for &b in text {
        // LineBuf already replaced control characters; be safe for any caller.
        let c = match b {
            b'\t' | 0x20..=0x7e => b as char,
            _ => '.',
        };
        out.write_char(c)?;
    }
    out.write_char('\n')
}

/// The note written (in the guest region) before a line that passed after
/// `n` dropped ones.
pub fn write_suppressed_note(out: &mut dyn Write, domid: u16, n: u32) -> core::fmt::Result {
    writeln!(
        out,
        "console: d{domid}: {n} line(s) dropped by guest_console_ratelimit"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;

    #[test]
    fn burst_then_steady_rate_and_missed_count() {
        let mut r = RateLimit::default();
        let lim = (3, 1000);
        assert_eq!(r.admit(0, lim), Some(0));
        assert_eq!(r.admit(0, lim), Some(0));
        assert_eq!(r.admit(0, lim), Some(0));
        assert_eq!(r.admit(0, lim), None);
        assert_eq!(r.admit(100, lim), None);
        // 3 lines per 1000 ms: one more token after 334 ms.
        assert_eq!(r.admit(334, lim), Some(2));
        assert_eq!(r.admit(334, lim), None);
        // A long pause refills to the burst, no more.
        assert_eq!(r.admit(1_000_000, lim), Some(1));
        assert_eq!(r.admit(1_000_000, lim), Some(0));
        assert_eq!(r.admit(1_000_000, lim), Some(0));
        assert_eq!(r.admit(1_000_000, lim), None);
    }

    #[test]
    fn zero_burst_is_no_limit() {
        let mut r = RateLimit::default();
        for _ in 0..10_000 {
            assert_eq!(r.admit(0, (0, 1)), Some(0));
        }
    }

    #[test]
    fn a_time_going_backwards_does_not_refill() {
        let mut r = RateLimit::default();
        assert!(r.admit(1000, (1, 1000)).is_some());
        assert!(r.admit(10, (1, 1000)).is_none());
        assert!(r.admit(1500, (1, 1000)).is_none());
        assert!(r.admit(2000, (1, 1000)).is_some());
    }

    #[test]
    fn guest_lines_start_with_the_domain_prefix() {
        let mut s = String::new();
        write_guest_line(&mut s, 3, Some(1_234_567_000), b"avc:  denied\x1b[2K").unwrap();
        assert_eq!(s, "(d3) [    1.234567] avc:  denied.[2K\n");
        let mut s = String::new();
        write_guest_line(&mut s, 0, None, b"hi").unwrap();
        assert_eq!(s, "(d0) hi\n");
    }
}
