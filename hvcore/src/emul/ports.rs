//! Port I/O. No device is emulated behind a port: every port reads as
//! all-ones and ignores writes (Xen's null handler for a PVH domain), except
//! - port 0xE9 (Xen's HVM debug port): bytes written are the domain's console
//!   output, through the same path as `console_io` writes (`(dN)` lines in
//!   the ring and on the serial console, rate-limited; no FLASK check, as in
//!   Xen);
//! - port 0x42 (PIT channel 2) reads 0: with 0xFF Linux's early
//!   `quick_pit_calibrate` spins through ~100,000 reads (an exit each,
//!   about 3 s per boot under TCG, linux-on-xen.md) waiting for a count
//!   that never moves; a value other than the first one it expects makes it
//!   give up at once (Linux then takes the TSC frequency from the PV clock).

use crate::domain::GuestVcpu;
use crate::hv::Hv;
use crate::vcpu::Vcpu;

/// Xen's HVM debug output port.
pub const DEBUG_PORT: u16 = 0xE9;
/// PIT channel 2 data port.
pub const PIT_CH2: u16 = 0x42;

/// What a read of `port` (of `size` bytes) returns.
pub fn read_value(port: u16, size: u8) -> u32 {
    match port {
        PIT_CH2 => 0,
        _ => match size {
            1 => 0xff,
            2 => 0xffff,
            _ => u32::MAX,
        },
    }
}

/// Complete an `IN`/`OUT` exit of `v`.
pub fn io(hv: &Hv, v: &GuestVcpu, hw: &mut dyn Vcpu, port: u16, size: u8, write: bool) {
    if write {
        if port == DEBUG_PORT {
            let b = hw.io_out_value().to_le_bytes();
            hv.guest_console_output(&v.domain, &b[..1]);
        }
        hw.finish_io(None);
    } else {
        hw.finish_io(Some(read_value(port, size)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unclaimed_ports_read_all_ones() {
        assert_eq!(read_value(0x61, 1), 0xff);
        assert_eq!(read_value(0xCF8, 4), u32::MAX);
        assert_eq!(read_value(0x1F0, 2), 0xffff);
        assert_eq!(read_value(PIT_CH2, 1), 0);
    }
}
