//! Time since boot from the TSC, calibrated against the PIT.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

static BOOT_TSC: AtomicU64 = AtomicU64::new(0);
static TSC_HZ: AtomicU64 = AtomicU64::new(0);
/// The PV clock's scale (`hvcore::xen::time::Scale`), packed as mul | shift << 32:
/// the hypervisor's clock uses the same conversion as its guests.
static SCALE: AtomicU64 = AtomicU64::new(0);

fn scale() -> hvcore::xen::time::Scale {
    let s = SCALE.load(Ordering::Relaxed);
    hvcore::xen::time::Scale {
        mul: s as u32,
        shift: (s >> 32) as u8 as i8,
    }
}

/// Record the boot time-stamp (first thing in `kmain`).
pub fn mark_boot() {
    BOOT_TSC.store(crate::arch::rdtsc(), Ordering::Relaxed);
}

/// Calibrate the TSC against the PIT; returns its frequency.
pub fn calibrate() -> hvcore::Result<u64> {
    // Bracketed samples at each end of each window, the median of three
    // windows (`pit::measure_hz`).
    let hz = crate::arch::pit::measure_hz(crate::arch::rdtsc)?;
    let s = hvcore::xen::time::Scale::from_hz(hz);
    SCALE.store(
        s.mul as u64 | ((s.shift as u8 as u64) << 32),
        Ordering::Relaxed,
    );
    TSC_HZ.store(hz, Ordering::Relaxed);
    let max = crate::arch::cpuid(0x8000_0000, 0).0;
    let invariant = max >= 0x8000_0007 && crate::arch::cpuid(0x8000_0007, 0).3 & (1 << 8) != 0;
    TSC_INVARIANT.store(invariant, Ordering::Relaxed);
    if let Some(secs) = read_rtc() {
        let utc = (secs as u64).saturating_mul(1_000_000_000);
        BOOT_UTC_NS.store(utc.saturating_sub(now_ns()), Ordering::Relaxed);
    }
    Ok(hz)
}

static TSC_INVARIANT: AtomicBool = AtomicBool::new(false);
static BOOT_UTC_NS: AtomicU64 = AtomicU64::new(0);

/// UTC at boot (ns since the Unix epoch; 0 if the RTC could not be read):
/// the domains' wall clock.
pub fn wallclock_boot_ns() -> u64 {
    BOOT_UTC_NS.load(Ordering::Relaxed)
}

fn cmos(reg: u8) -> u8 {
    // SAFETY: the CMOS index/data ports belong to the hypervisor (guests'
    // port I/O is intercepted); NMIs stay enabled (bit 7 clear).
    unsafe {
        crate::arch::outb(0x70, reg & 0x7f);
        crate::arch::inb(0x71)
    }
}

/// The CMOS real-time clock (UTC, as QEMU and most firmware keep it), in
/// seconds since the Unix epoch: read twice until two readings agree,
/// outside an update cycle.
fn read_rtc() -> Option<i64> {
    let read = || -> Option<[u8; 7]> {
        let mut n = 0;
        while cmos(0x0A) & 0x80 != 0 {
            n += 1;
            if n > 1_000_000 {
                return None;
            }
        }
        Some([
            cmos(0x00),
            cmos(0x02),
            cmos(0x04),
            cmos(0x07),
            cmos(0x08),
            cmos(0x09),
            cmos(0x32),
        ])
    };
    let mut r = read()?;
    for _ in 0..8 {
        let again = read()?;
        if again == r {
            break;
        }
        r = again;
    }
    let b = cmos(0x0B);
    let bcd = |v: u8| {
        if b & 0x04 == 0 {
            (v & 0x0f) + (v >> 4) * 10
        } else {
            v
        }
    };
    let [s, mi, h, d, mo, y, c] = r;
    let pm = h & 0x80 != 0;
    let mut hour = bcd(h & 0x7f) as u32;
    if b & 0x02 == 0 {
        // 12-hour mode.
        hour %= 12;
        if pm {
            hour += 12;
        }
    }
    let century = match bcd(c) {
        19..=21 => bcd(c) as i64,
        _ => 20,
    };
    let (mo, d) = (bcd(mo) as u32, bcd(d) as u32);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    let secs = hvcore::xen::time::unix_seconds(
        century * 100 + bcd(y) as i64,
        mo,
        d,
        hour,
        bcd(mi) as u32,
        bcd(s) as u32,
    );
    (secs > 0).then_some(secs)
}

/// Whether the CPU advertises an invariant TSC (constant rate, synchronised
/// between cores): the PV clock's TSC_STABLE flag.
pub fn tsc_invariant() -> bool {
    TSC_INVARIANT.load(Ordering::Relaxed)
}

/// TSC frequency (0 before calibration).
pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}

/// Nanoseconds since boot at TSC value `tsc`.
pub fn tsc_to_ns(tsc: u64) -> u64 {
    let d = tsc.wrapping_sub(BOOT_TSC.load(Ordering::Relaxed));
    scale().apply(d)
}

/// Nanoseconds since boot (0 before calibration).
pub fn now_ns() -> u64 {
    tsc_to_ns(crate::arch::rdtsc())
}
