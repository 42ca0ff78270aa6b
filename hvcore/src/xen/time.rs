//! Time as Xen's guests see it: the PV clock (`vcpu_time_info`), the
//! runstate area, and the per-vCPU bookkeeping that keeps them current.
//!
//! System time is nanoseconds since the hypervisor booted, computed from the
//! TSC with one [`Scale`] for the whole machine (Xen's `tsc_to_system_mul` /
//! `tsc_shift`, computed from the TSC frequency exactly as Xen's
//! `set_time_scale`). The hypervisor's own clock uses the same scale, so a
//! guest's reading of its `vcpu_time_info` and the deadlines the hypervisor
//! fires timers at agree to the nanosecond.
//!
//! A vCPU's time record is rewritten (version seqlock: odd while updating)
//! before it next enters the guest whenever it may be stale: after its
//! `vcpu_info` or secondary time area was registered, and when it runs on a
//! CPU other than the one it last ran on (Xen refreshes it on those
//! events). The runstate area is rewritten each time the vCPU is scheduled
//! in or out.

use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use warden_abi::vcpu::{PVCLOCK_TSC_STABLE, RUNSTATE_UPDATE, RunstateInfo, VcpuTimeInfo};

/// Nanoseconds per second.
const NS_PER_S: u64 = 1_000_000_000;

/// A TSC-to-nanoseconds scale: `ns = ((ticks << shift) * mul) >> 32`
/// (a right shift for negative `shift`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scale {
    pub mul: u32,
    pub shift: i8,
}

impl Scale {
    /// The scale of a counter running at `hz` (Xen's `set_time_scale`):
    /// shift the frequency into (10^9, 2·10^9], then `mul` = 10^9 · 2^32 /
    /// that frequency. `hz` 0 (not calibrated) is taken as 1 GHz.
    pub fn from_hz(hz: u64) -> Scale {
        let mut tps = if hz == 0 { NS_PER_S } else { hz };
        let mut shift: i32 = 0;
        while tps > 2 * NS_PER_S {
            tps >>= 1;
            shift -= 1;
        }
        // Now tps <= 2·10^9 < 2^32.
        let mut tps32 = tps as u32;
        while tps32 <= NS_PER_S as u32 {
            tps32 <<= 1;
            shift += 1;
        }
        // 10^9 < tps32, so the quotient fits in 32 bits (Xen's div_frac).
        let mul = ((NS_PER_S << 32) / tps32 as u64) as u32;
        Scale {
            mul,
            shift: shift as i8,
        }
    }

    /// Nanoseconds for `delta` ticks (Xen's `scale_delta`).
    pub fn apply(&self, delta: u64) -> u64 {
        let d = if self.shift < 0 {
            delta >> (-(self.shift as i32)) as u32
        } else {
            delta << self.shift as u32
        };
        ((d as u128 * self.mul as u128) >> 32) as u64
    }
}

/// The time record of a vCPU at TSC value `tsc`, whose system time is
/// `system_time` (version 0: [`publish`] sets it).
pub fn record(tsc: u64, system_time: u64, scale: Scale, tsc_stable: bool) -> VcpuTimeInfo {
    VcpuTimeInfo {
        version: 0,
        pad0: 0,
        tsc_timestamp: tsc,
        system_time,
        tsc_to_system_mul: scale.mul,
        tsc_shift: scale.shift,
        flags: if tsc_stable { PVCLOCK_TSC_STABLE } else { 0 },
        pad1: [0; 2],
    }
}

/// What a guest computes from `t` at TSC value `tsc` (Linux's
/// `pvclock_clocksource_read` without its monotonicity fix-up).
pub fn guest_time(t: &VcpuTimeInfo, tsc: u64) -> u64 {
    let s = Scale {
        mul: t.tsc_to_system_mul,
        shift: t.tsc_shift,
    };
    t.system_time
        .wrapping_add(s.apply(tsc.wrapping_sub(t.tsc_timestamp)))
}

/// Where a time record or runstate area is written: byte offsets from its
/// start.
pub trait Sink {
    /// Write `data` at `off`; false if the memory is not there (the write is
    /// then skipped, as Xen ignores a failed copy to a registered area).
    fn put(&mut self, off: u64, data: &[u8]) -> bool;
}

/// Write `rec` under the version seqlock, the version going from `*version`
/// to the next odd value (while the fields change) and then even: a reader
/// that sees an odd or changed version reads again.
pub fn publish(sink: &mut dyn Sink, version: &mut u32, rec: &VcpuTimeInfo) {
    let begin = version.wrapping_add(1) | 1;
    let end = begin.wrapping_add(1);
    let mut r = *rec;
    r.version = begin;
    if !sink.put(0, &begin.to_le_bytes()) {
        return;
    }
    core::sync::atomic::fence(Ordering::Release);
    let bytes = warden_abi::Pod::as_bytes(&r);
    sink.put(8, &bytes[8..]);
    core::sync::atomic::fence(Ordering::Release);
    sink.put(0, &end.to_le_bytes());
    *version = end;
}

/// Write a runstate area; with the update flag (`VMASST_TYPE_runstate_update_flag`)
/// bit 63 of `state_entry_time` is set while the other fields change.
pub fn publish_runstate(sink: &mut dyn Sink, rs: &RunstateInfo, update_flag: bool) {
    let mut r = *rs;
    if update_flag {
        r.state_entry_time |= RUNSTATE_UPDATE;
        // The top byte of state_entry_time (offset 15) carries the flag.
        if !sink.put(15, &[(r.state_entry_time >> 56) as u8]) {
            return;
        }
        core::sync::atomic::fence(Ordering::Release);
    }
    if !sink.put(0, warden_abi::Pod::as_bytes(&r)) {
        return;
    }
    if update_flag {
        r.state_entry_time &= !RUNSTATE_UPDATE;
        core::sync::atomic::fence(Ordering::Release);
        sink.put(15, &[(r.state_entry_time >> 56) as u8]);
    }
}

/// Days from 1970-01-01 to the civil date `y-m-d` (proleptic Gregorian;
/// Howard Hinnant's algorithm), for the wall clock read from an RTC.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Seconds since the Unix epoch of a UTC date and time (an RTC reading).
pub fn unix_seconds(y: i64, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> i64 {
    days_from_civil(y, mo, d) * 86_400 + (h as i64) * 3600 + (mi as i64) * 60 + s as i64
}

/// The shared_info wall clock (Xen's `wc_sec`, `wc_nsec`, `wc_sec_hi`):
/// UTC at system time 0, i.e. `boot_utc_ns` split into seconds (low and
/// high 32 bits) and nanoseconds.
pub fn wallclock(boot_utc_ns: u64) -> (u32, u32, u32) {
    let sec = boot_utc_ns / NS_PER_S;
    (
        sec as u32,
        (boot_utc_ns % NS_PER_S) as u32,
        (sec >> 32) as u32,
    )
}

/// Write the wall clock at byte `at` of `sink` (the `wc_version` field,
/// followed by `wc_sec`, `wc_nsec`, `wc_sec_hi`) under its version seqlock.
pub fn publish_wallclock(sink: &mut dyn Sink, at: u64, version: &mut u32, boot_utc_ns: u64) {
    let begin = version.wrapping_add(1) | 1;
    let (sec, nsec, hi) = wallclock(boot_utc_ns);
    if !sink.put(at, &begin.to_le_bytes()) {
        return;
    }
    core::sync::atomic::fence(Ordering::Release);
    let mut b = [0u8; 12];
    b[..4].copy_from_slice(&sec.to_le_bytes());
    b[4..8].copy_from_slice(&nsec.to_le_bytes());
    b[8..].copy_from_slice(&hi.to_le_bytes());
    sink.put(at + 4, &b);
    core::sync::atomic::fence(Ordering::Release);
    let end = begin.wrapping_add(1);
    sink.put(at, &end.to_le_bytes());
    *version = end;
}

/// No CPU recorded yet.
const NO_CPU: u32 = u32::MAX;

/// A vCPU's time bookkeeping.
#[derive(Debug)]
pub struct VcpuClock {
    /// Some area was (re)registered since the record was last written.
    stale: AtomicBool,
    /// The CPU the vCPU last entered the guest on.
    last_cpu: AtomicU32,
    areas: spin::Mutex<Areas>,
}

/// The guest areas of a vCPU.
#[derive(Debug, Default, Clone, Copy)]
pub struct Areas {
    /// Version of the time records written (the same in every copy).
    pub version: u32,
    /// Guest virtual address of the registered runstate area.
    pub runstate_va: Option<u64>,
    /// Guest virtual address of the secondary time record.
    pub time_va: Option<u64>,
}

impl Default for VcpuClock {
    fn default() -> Self {
        VcpuClock {
            stale: AtomicBool::new(true),
            last_cpu: AtomicU32::new(NO_CPU),
            areas: spin::Mutex::new(Areas::default()),
        }
    }
}

impl VcpuClock {
    /// Does the vCPU need its time record rewritten before entering the
    /// guest on `cpu`? (Records `cpu`; clears the stale mark.)
    #[inline]
    pub fn due(&self, cpu: u32) -> bool {
        let moved = self.last_cpu.swap(cpu, Ordering::Relaxed) != cpu;
        let stale = self.stale.load(Ordering::Relaxed) && self.stale.swap(false, Ordering::AcqRel);
        moved || stale
    }

    /// The record must be rewritten before the next entry.
    pub fn mark_stale(&self) {
        self.stale.store(true, Ordering::Release);
    }

    /// The registered areas (to change them, or to write them).
    pub fn areas(&self) -> spin::MutexGuard<'_, Areas> {
        self.areas.lock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    /// An independent reference: nanoseconds for `ticks` at `hz`, exact.
    fn exact_ns(ticks: u64, hz: u64) -> f64 {
        ticks as f64 * 1e9 / hz as f64
    }

    #[test]
    fn scale_matches_xen_for_known_frequencies() {
        // 1 GHz: shifted to 2 GHz (shift 1), mul = 2^31.
        assert_eq!(
            Scale::from_hz(1_000_000_000),
            Scale {
                mul: 1 << 31,
                shift: 1
            }
        );
        // 3 GHz: halved to 1.5 GHz (shift -1), mul = 10^9·2^32/1.5·10^9.
        let s = Scale::from_hz(3_000_000_000);
        assert_eq!(s.shift, -1);
        assert_eq!(s.mul, ((1_000_000_000u64 << 32) / 1_500_000_000) as u32);
        // 2 GHz exactly stays (the loop halves only above 2·10^9).
        let s = Scale::from_hz(2_000_000_000);
        assert_eq!((s.shift, s.mul), (0, 1 << 31));
        // A slow counter: 1 MHz shifts left 10 times (1.024 GHz).
        let s = Scale::from_hz(1_000_000);
        assert_eq!(s.shift, 10);
        assert_eq!(s.mul, ((1_000_000_000u64 << 32) / 1_024_000_000) as u32);
    }

    #[test]
    fn system_time_advances_within_one_ppm_over_hours() {
        for hz in [
            1_000_000u64,
            14_318_180,
            999_999_999,
            1_000_000_001,
            2_095_078_000,
            2_999_999_999,
            3_700_000_000,
            5_000_000_000,
        ] {
            let s = Scale::from_hz(hz);
            // Three simulated hours, read every 7 minutes plus some ticks, as
            // a guest would through a record published at time 0.
            let rec = record(0, 0, s, false);
            let mut last = 0;
            let mut tsc = 0u64;
            let end = hz * 3 * 3600;
            while tsc < end {
                tsc += hz * 420 + 12_345;
                let got = guest_time(&rec, tsc);
                let want = exact_ns(tsc, hz);
                let err = (got as f64 - want).abs() / want;
                assert!(err < 1e-6, "{hz} Hz at {tsc}: {got} vs {want} ({err:e})");
                assert!(got >= last, "monotonic");
                last = got;
            }
            // Republishing (a record per vCPU entry) never moves time back.
            let mut prev = 0;
            let mut t = 0u64;
            for i in 0..10_000u64 {
                t += 1 + (i * 7919) % 100_000;
                let r = record(t, s.apply(t), s, false);
                let a = guest_time(&r, t + 5);
                assert!(a >= prev, "republished record went back");
                prev = a;
                // The hypervisor's own clock at the same TSC agrees within
                // the rounding of two conversions (a tick or two).
                let tick = (1_000_000_000 / hz).max(1);
                assert!(s.apply(t + 5).abs_diff(a) <= 2 * tick + 2, "{hz} Hz at {t}");
            }
        }
    }

    struct Mem(Vec<u8>, Vec<(u64, Vec<u8>)>);
    impl Sink for Mem {
        fn put(&mut self, off: u64, data: &[u8]) -> bool {
            let o = off as usize;
            if o + data.len() > self.0.len() {
                return false;
            }
            self.0[o..o + data.len()].copy_from_slice(data);
            self.1.push((off, data.to_vec()));
            true
        }
    }

    #[test]
    fn publish_is_a_seqlock_odd_while_updating() {
        let mut m = Mem(alloc::vec![0; 32], Vec::new());
        let mut ver = 0;
        let r = record(100, 200, Scale::from_hz(1_000_000_000), true);
        publish(&mut m, &mut ver, &r);
        assert_eq!(ver, 2);
        // First write: version odd; then the fields; then version even.
        assert_eq!(m.1[0], (0, 1u32.to_le_bytes().to_vec()));
        assert_eq!(m.1[1].0, 8);
        assert_eq!(m.1[2], (0, 2u32.to_le_bytes().to_vec()));
        let got: VcpuTimeInfo = warden_abi::Pod::from_bytes(&m.0).unwrap();
        assert_eq!(got.version, 2);
        assert_eq!((got.tsc_timestamp, got.system_time), (100, 200));
        assert_eq!(got.flags, PVCLOCK_TSC_STABLE);
        publish(&mut m, &mut ver, &r);
        assert_eq!(ver, 4);
        // A sink that is not there is left alone, version unchanged.
        let mut none = Mem(Vec::new(), Vec::new());
        publish(&mut none, &mut ver, &r);
        assert_eq!(ver, 4);
    }

    #[test]
    fn runstate_update_flag_brackets_the_write() {
        let mut m = Mem(alloc::vec![0; 48], Vec::new());
        let rs = RunstateInfo {
            state: 0,
            pad: 0,
            state_entry_time: 77,
            time: [1, 2, 3, 4],
        };
        publish_runstate(&mut m, &rs, true);
        assert_eq!(m.1[0], (15, alloc::vec![0x80]));
        assert_eq!(m.1.last().unwrap(), &(15, alloc::vec![0]));
        let got: RunstateInfo = warden_abi::Pod::from_bytes(&m.0).unwrap();
        assert_eq!(got.state_entry_time, 77);
        assert_eq!(got.time, [1, 2, 3, 4]);
        let mut m = Mem(alloc::vec![0; 48], Vec::new());
        publish_runstate(&mut m, &rs, false);
        assert_eq!(m.1.len(), 1);
    }

    #[test]
    fn wall_clock_from_an_rtc_reading() {
        assert_eq!(unix_seconds(1970, 1, 1, 0, 0, 0), 0);
        assert_eq!(unix_seconds(2000, 3, 1, 0, 0, 0), 951_868_800);
        assert_eq!(unix_seconds(2026, 12, 7, 15, 16, 13), 1_796_656_573);
        assert_eq!(unix_seconds(2038, 1, 19, 3, 14, 8), 1 << 31);
        // Leap day and the day after.
        assert_eq!(
            unix_seconds(2024, 3, 1, 0, 0, 0) - unix_seconds(2024, 2, 28, 0, 0, 0),
            2 * 86_400
        );
        let ns = 1_796_656_573_250_000_000u64;
        assert_eq!(wallclock(ns), (1_796_656_573, 250_000_000, 0));
        // Past 2106: the high word.
        let big = (1u64 << 32) * NS_PER_S + 5;
        assert_eq!(wallclock(big), (0, 5, 1));
        let mut m = Mem(alloc::vec![0; 3088], Vec::new());
        let mut ver = 0;
        publish_wallclock(&mut m, 3072, &mut ver, ns);
        assert_eq!(ver, 2);
        assert_eq!(m.1[0], (3072, 1u32.to_le_bytes().to_vec()));
        assert_eq!(m.1[2], (3072, 2u32.to_le_bytes().to_vec()));
        assert_eq!(&m.0[3076..3080], &1_796_656_573u32.to_le_bytes());
        assert_eq!(&m.0[3080..3084], &250_000_000u32.to_le_bytes());
    }

    #[test]
    fn due_on_first_entry_after_registration_and_cpu_moves() {
        let c = VcpuClock::default();
        assert!(c.due(0));
        assert!(!c.due(0));
        c.mark_stale();
        assert!(c.due(0));
        assert!(!c.due(0));
        assert!(c.due(1), "moved CPU");
        assert!(!c.due(1));
    }
}
