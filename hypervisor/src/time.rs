//! Time since boot from the TSC, calibrated against the PIT.

use core::sync::atomic::{AtomicU64, Ordering};

static BOOT_TSC: AtomicU64 = AtomicU64::new(0);
static TSC_HZ: AtomicU64 = AtomicU64::new(0);

/// Record the boot time-stamp (first thing in `kmain`).
pub fn mark_boot() {
    BOOT_TSC.store(crate::arch::rdtsc(), Ordering::Relaxed);
}

/// Calibrate the TSC against the PIT; returns its frequency.
pub fn calibrate() -> hvcore::Result<u64> {
    let hz = crate::arch::pit::measure_hz(crate::arch::rdtsc)?;
    TSC_HZ.store(hz, Ordering::Relaxed);
    Ok(hz)
}

/// TSC frequency (0 before calibration).
pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}

/// Nanoseconds since boot at TSC value `tsc`.
pub fn tsc_to_ns(tsc: u64) -> u64 {
    let d = tsc.wrapping_sub(BOOT_TSC.load(Ordering::Relaxed));
    hvcore::cpu::ticks_to_ns(d, tsc_hz())
}

/// Nanoseconds since boot (0 before calibration).
pub fn now_ns() -> u64 {
    let d = crate::arch::rdtsc().wrapping_sub(BOOT_TSC.load(Ordering::Relaxed));
    hvcore::cpu::ticks_to_ns(d, tsc_hz())
}
