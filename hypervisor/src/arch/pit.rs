//! The 8254 PIT, used only as a reference clock: channel 2 counts a known
//! interval (gated through port 0x61, with OUT2 readable in bit 5) while the
//! TSC and the local APIC timer are measured against it.

use super::{inb, outb};
use hvcore::cpu::{PIT_HZ, rate_hz};
use hvcore::{Result, err};

/// Calibration window.
pub const WINDOW_NS: u64 = 10_000_000;

/// Measure how fast `counter` advances (ticks per second) over one PIT window.
/// `counter` may count up (TSC) or down (APIC current count): the absolute
/// difference is used.
pub fn measure_hz(counter: impl Fn() -> u64) -> Result<u64> {
    let count = hvcore::cpu::ns_to_ticks(WINDOW_NS, PIT_HZ) as u16;
    // SAFETY: ports 0x61/0x42/0x43 are the PIT channel 2 and its gate, owned
    // by this calibration code; the speaker output stays off.
    let start = unsafe {
        let v = inb(0x61);
        outb(0x61, (v & !0x02) & !0x01); // gate low, speaker off
        outb(0x43, 0b1011_0000); // channel 2, lobyte/hibyte, mode 0, binary
        outb(0x42, count as u8);
        outb(0x42, (count >> 8) as u8);
        let v = inb(0x61);
        let c0 = counter();
        outb(0x61, v | 0x01); // gate high: counting starts
        c0
    };
    let mut spins: u64 = 0;
    // SAFETY: reading the PIT gate/status port.
    while unsafe { inb(0x61) } & 0x20 == 0 {
        spins += 1;
        if spins > 200_000_000 {
            return Err(err!(
                Hardware,
                "the PIT (channel 2) never reached its terminal count"
            ));
        }
        core::hint::spin_loop();
    }
    let end = counter();
    // SAFETY: gate low again; PIT channel 2 is ours.
    unsafe { outb(0x61, inb(0x61) & !0x01) };
    let ticks = end.abs_diff(start);
    let window = hvcore::cpu::ticks_to_ns(count as u64, PIT_HZ);
    rate_hz(ticks, window)
        .ok_or_else(|| err!(Hardware, "counter did not advance during PIT calibration"))
}
