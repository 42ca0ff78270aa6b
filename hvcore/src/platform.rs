//! What the hypervisor logic needs from the machine. The image implements
//! [`Platform`] over the real hardware; host tests implement it over
//! simulated memory, a simulated clock and scripted vCPUs.

use crate::Result;
use crate::conring::ReadResult;
use crate::p2m::HostMem;
use crate::vcpu::{GuestSlot, Vcpu};
use alloc::boxed::Box;
use warden_abi::DomId;

/// A physical CPU, as `XENPF_get_cpuinfo` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pcpu {
    /// Its local APIC id.
    pub apic_id: u32,
    /// Its ACPI processor id (the MADT's processor UID).
    pub acpi_id: u32,
    /// Running (else present but not started, or failed to start).
    pub online: bool,
}

/// Services of the machine.
pub trait Platform: Sync {
    /// Nanoseconds since boot.
    fn now_ns(&self) -> u64;
    /// The time-stamp counter.
    fn rdtsc(&self) -> u64;
    /// TSC frequency in Hz.
    fn tsc_hz(&self) -> u64;
    /// Nanoseconds since boot at TSC value `tsc`.
    fn tsc_to_ns(&self, tsc: u64) -> u64;
    /// Whether the TSC runs at a constant rate and agrees between CPUs
    /// (invariant TSC): the PV clock then says so (`PVCLOCK_TSC_STABLE`).
    fn tsc_stable(&self) -> bool {
        false
    }
    /// UTC at system time 0 (the hypervisor's boot), in nanoseconds since
    /// the Unix epoch; 0 if unknown. The domains' wall clock.
    fn wallclock_boot_ns(&self) -> u64 {
        0
    }
    /// Host memory (frames and access).
    fn mem(&self) -> &dyn HostMem;
    /// A hardware vCPU for vCPU `vcpu` of domain `domid`, using the nested
    /// page tables rooted at `npt_root`.
    fn new_vcpu(&self, domid: DomId, vcpu: u32, npt_root: u64) -> Result<Box<dyn Vcpu>>;
    /// Number of CPUs running guests.
    fn nr_cpus(&self) -> u32;
    /// The CPU this code runs on.
    fn this_cpu(&self) -> u32;
    /// One slot per CPU (see `vcpu::GuestSlot`).
    fn guest_slots(&self) -> &[GuestSlot];
    /// Force `cpu` out of guest mode (an IPI); no effect on the calling CPU.
    fn kick(&self, cpu: u32);
    /// Let pending interrupts run (the run loop otherwise runs with them held off).
    fn poll_interrupts(&self);
    /// Wait for an interrupt.
    fn idle(&self);
    /// CPUID leaf 1 EAX of the host (family, model, stepping): the HVM
    /// context header's `cpuid`. 0 when unknown.
    fn cpuid_signature(&self) -> u32 {
        0
    }
    /// The host's CPUID answer for (`leaf`, `subleaf`) (the CPU policies
    /// of `sysctl get_cpu_policy`, `domctl get_cpu_policy`). Zeros when
    /// unknown.
    fn host_cpuid(&self, _leaf: u32, _subleaf: u32) -> (u32, u32, u32, u32) {
        (0, 0, 0, 0)
    }
    /// TSC frequency in kHz (physinfo).
    fn cpu_khz(&self) -> u32 {
        (self.tsc_hz() / 1000) as u32
    }
    /// Read the console ring from `from`.
    fn console_read(&self, from: u64, buf: &mut [u8]) -> ReadResult;
    /// Oldest readable position of the console ring.
    fn console_tail(&self) -> u64;
    /// Position after the newest byte of the console ring.
    fn console_head(&self) -> u64;
    /// Forget the console ring's content before position `upto` (what a
    /// `readconsole` with `clear` returned: Xen's `xl dmesg -c`).
    fn console_clear_to(&self, upto: u64);
    /// A line a domU wrote (without its newline, sanitised): into the ring's
    /// guest region and to the serial console as `(dN) [time] text`
    /// (`guestcons`); `suppressed` lines were dropped by the rate limit
    /// before it.
    fn console_guest_line(&self, domid: DomId, line: &[u8], suppressed: u32);
    /// The hardware domain's console output, as written: to the serial
    /// console only (never blocking for long).
    fn console_hwdom_raw(&self, bytes: &[u8]);
    /// Whether the hardware domain's output also goes into the ring
    /// (`console_to_ring`).
    fn console_to_ring(&self) -> bool {
        false
    }
    /// The guest console rate limit (`guest_console_ratelimit=`: lines, ms).
    fn guest_console_ratelimit(&self) -> (u32, u64) {
        crate::cmdline::GUEST_CONSOLE_RATELIMIT
    }
    /// Take up to `buf.len()` bytes of serial console input waiting in the
    /// UARTs (never waits).
    fn serial_input(&self, buf: &mut [u8]) -> usize;
    /// The serial input switch (`conswitch=`).
    fn conswitch(&self) -> crate::cmdline::ConSwitch {
        crate::cmdline::ConSwitch::default()
    }
    /// Physical CPU `cpu` (the hypervisor's CPU numbers, Xen's `xen_cpuid`),
    /// None if there is no such CPU.
    fn pcpu(&self, cpu: u32) -> Option<Pcpu> {
        (cpu < self.nr_cpus()).then_some(Pcpu {
            apic_id: cpu,
            acpi_id: cpu,
            online: true,
        })
    }
    /// The highest CPU number present (Xen's `cpumask_last(&cpu_present_map)`).
    fn max_present_cpu(&self) -> u32 {
        self.nr_cpus().saturating_sub(1)
    }
    /// The hypervisor's command line.
    fn cmdline(&self) -> &str;
    /// The image's GNU build-id.
    fn build_id(&self) -> &[u8];
    /// The control domain shut down (`reason`, `sched::SHUTDOWN_*`): stop the machine.
    fn control_domain_stopped(&self, reason: u32);
}

/// Xen's `vcpu_time_info` scale: (ticks << shift) * mul >> 32 = nanoseconds
/// (see [`crate::xen::time::Scale`], the one definition).
pub fn time_scale(tsc_hz: u64) -> (u32, i8) {
    let s = crate::xen::time::Scale::from_hz(tsc_hz);
    (s.mul, s.shift)
}

/// Apply a [`time_scale`] to a tick delta.
pub fn scale_delta(delta: u64, mul: u32, shift: i8) -> u64 {
    crate::xen::time::Scale { mul, shift }.apply(delta)
}

/// A token-bucket rate limiter for log lines: at most `burst` per `interval_ns`.
#[derive(Debug)]
pub struct RateLimit {
    burst: u32,
    interval_ns: u64,
    start: u64,
    used: u32,
    suppressed: u64,
}

impl RateLimit {
    pub const fn new(burst: u32, interval_ns: u64) -> RateLimit {
        RateLimit {
            burst,
            interval_ns,
            start: 0,
            used: 0,
            suppressed: 0,
        }
    }

    /// None: drop this line. Some(n): print it, after reporting `n` dropped ones.
    pub fn admit(&mut self, now: u64) -> Option<u64> {
        if now < self.start || now - self.start >= self.interval_ns {
            self.start = now;
            self.used = 0;
        }
        if self.used >= self.burst {
            self.suppressed += 1;
            return None;
        }
        self.used += 1;
        Some(core::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_scale_converts_accurately() {
        for hz in [
            1_000_000u64,
            100_000_000,
            999_999_999,
            1_000_000_000,
            2_125_949_000,
            3_000_000_000,
            50_000_000_000,
        ] {
            let (mul, shift) = time_scale(hz);
            let one_sec = scale_delta(hz, mul, shift);
            let err = one_sec.abs_diff(1_000_000_000);
            assert!(err < 1_000, "hz {hz}: {one_sec} ns for one second");
        }
    }

    #[test]
    fn rate_limit_counts_suppressed() {
        let mut r = RateLimit::new(2, 100);
        assert_eq!(r.admit(0), Some(0));
        assert_eq!(r.admit(1), Some(0));
        assert_eq!(r.admit(2), None);
        assert_eq!(r.admit(3), None);
        assert_eq!(r.admit(100), Some(2));
    }
}
