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
    Ok(hz)
}

static TSC_INVARIANT: AtomicBool = AtomicBool::new(false);

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
