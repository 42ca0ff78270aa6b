//! The 8254 PIT, used only as a reference clock: channel 2 counts down
//! (gated through port 0x61) and its latched count, read between two reads
//! of the TSC or the local APIC timer, measures them.

use super::{inb, outb};
use hvcore::cpu::{PIT_HZ, rate_hz};
use hvcore::{Result, err};

/// Calibration window: the PIT ticks between the two samples.
pub const WINDOW_NS: u64 = 20_000_000;

/// Samples taken at each end of a window; the one whose `counter` reads
/// bracket the PIT read most tightly is kept.
const TRIES: usize = 5;

/// PIT channel 2's current count (latched, lobyte then hibyte).
fn pit_count() -> u16 {
    // SAFETY: ports 0x43/0x42 are PIT channel 2, owned by this calibration
    // code; the latch command only freezes the count for the two reads.
    unsafe {
        outb(0x43, 0b1000_0000); // channel 2, latch count
        let lo = inb(0x42) as u16;
        let hi = inb(0x42) as u16;
        lo | (hi << 8)
    }
}

/// One sample: the PIT's count and `counter` read around it (the midpoint
/// of the two reads), and how far apart those two reads were (the sample's
/// uncertainty). The tightest of [`TRIES`].
fn sample(counter: &impl Fn() -> u64) -> (u16, u64) {
    let mut best = (0u16, 0u64, u64::MAX);
    for _ in 0..TRIES {
        let a = counter();
        let c = pit_count();
        let b = counter();
        let spread = b.abs_diff(a);
        if spread < best.2 {
            best = (c, a / 2 + b / 2 + (a & b & 1), spread);
        }
    }
    (best.0, best.1)
}

/// Measure how fast `counter` advances (ticks per second) against the PIT.
/// `counter` may count up (TSC) or down (APIC current count): the absolute
/// difference is used.
///
/// Both ends of the window are samples of the PIT's count bracketed by two
/// `counter` reads, so time lost between the ends (an emulator descheduled
/// on a loaded host) is in both clocks alike and does not skew the result;
/// waiting for the PIT's terminal count instead added the delay in noticing
/// it to the counter only (a TSC calibrated 16 % fast under load, so every
/// guest clock ran 16 % slow).
pub fn measure_hz(counter: impl Fn() -> u64) -> Result<u64> {
    // A window is lost if the CPU stalls so long that the 16-bit count
    // wraps (an emulator descheduled for tens of ms): measure again; of
    // three good windows keep the median (one taken across an unnoticed
    // wrap stands out).
    let mut good = [0u64; 3];
    let mut n = 0;
    let mut last = None;
    for _ in 0..20 {
        match window_hz(&counter) {
            Ok(hz) => {
                good[n] = hz;
                n += 1;
                if n == good.len() {
                    good.sort_unstable();
                    return Ok(good[1]);
                }
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| err!(Hardware, "PIT calibration failed")))
}

/// One window of [`measure_hz`].
fn window_hz(counter: &impl Fn() -> u64) -> Result<u64> {
    let window = hvcore::cpu::ns_to_ticks(WINDOW_NS, PIT_HZ);
    // SAFETY: ports 0x61/0x42/0x43 are the PIT channel 2 and its gate, owned
    // by this calibration code; the speaker output stays off.
    unsafe {
        let v = inb(0x61);
        outb(0x61, (v & !0x02) & !0x01); // gate low, speaker off
        outb(0x43, 0b1011_0000); // channel 2, lobyte/hibyte, mode 0, binary
        outb(0x42, 0xff);
        outb(0x42, 0xff);
        outb(0x61, (v & !0x02) | 0x01); // gate high: counting down from 0xffff
    }
    // The count is loaded on the PIT's next clock (838 ns): a few port reads
    // take longer.
    for _ in 0..4 {
        let _ = pit_count();
    }
    let (c0, t0) = sample(counter);
    if (c0 as u64) <= window {
        return Err(err!(
            Hardware,
            "the PIT (channel 2) did not load its count ({c0:#x})"
        ));
    }
    let mut spins: u64 = 0;
    loop {
        let c = pit_count();
        if c > c0 || (c0 - c) as u64 >= window {
            break;
        }
        spins += 1;
        if spins > 200_000_000 {
            return Err(err!(Hardware, "the PIT (channel 2) stopped counting"));
        }
        core::hint::spin_loop();
    }
    let (c1, t1) = sample(counter);
    // SAFETY: gate low again; PIT channel 2 is ours.
    unsafe { outb(0x61, inb(0x61) & !0x01) };
    if c1 >= c0 {
        return Err(err!(
            Hardware,
            "the PIT (channel 2) wrapped during calibration ({c0:#x} -> {c1:#x})"
        ));
    }
    let pit_ticks = (c0 - c1) as u64;
    let ns = hvcore::cpu::ticks_to_ns(pit_ticks, PIT_HZ);
    rate_hz(t1.abs_diff(t0), ns)
        .ok_or_else(|| err!(Hardware, "counter did not advance during PIT calibration"))
}
