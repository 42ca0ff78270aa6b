//! System time (nanoseconds since the hypervisor booted) from the
//! `vcpu_time_info` the hypervisor fills in a registered `vcpu_info`.

use warden_abi::vcpu::VcpuTimeInfo;

/// Nanoseconds at TSC value `tsc` according to `t`.
pub fn system_time(t: &VcpuTimeInfo, tsc: u64) -> u64 {
    let delta = tsc.wrapping_sub(t.tsc_timestamp) as u128;
    let d = if t.tsc_shift >= 0 {
        delta << t.tsc_shift
    } else {
        delta >> (-t.tsc_shift)
    };
    t.system_time + ((d * t.tsc_to_system_mul as u128) >> 32) as u64
}

/// The TSC.
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no side effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Current system time (needs the runtime's vcpu_info, i.e. the `rt` feature).
#[cfg(all(feature = "rt", not(test)))]
pub fn now_ns() -> u64 {
    system_time(&crate::events::time_info(), rdtsc())
}

/// Sleep `ns` nanoseconds (SCHEDOP_poll with a timeout; no events needed).
#[cfg(all(feature = "rt", not(test)))]
pub fn sleep_ns(ns: u64) {
    let until = now_ns().saturating_add(ns);
    while now_ns() < until {
        if crate::hypercall::sched_poll(&[], until).is_err() {
            // Not allowed to poll: yield instead.
            let _ = crate::hypercall::sched_yield();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_ticks() {
        let t = VcpuTimeInfo {
            tsc_timestamp: 1000,
            system_time: 5_000,
            tsc_to_system_mul: 1 << 31,
            tsc_shift: 1,
            ..Default::default()
        };
        // (2000 << 1) * 2^31 >> 32 = 2000 ns.
        assert_eq!(system_time(&t, 3000), 7_000);
    }
}
