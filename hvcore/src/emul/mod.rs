//! What a guest touches that is not RAM and not a hypercall: MSRs ([`msr`]),
//! I/O ports ([`ports`]), the virtual local APIC ([`vlapic`]), the MMIO
//! instruction decoder ([`mmio`]), and the glue that routes these exits of a
//! vCPU to them ([`exits`]: APIC MSRs, nested page faults outside RAM, IPIs,
//! INIT/SIPI, the LAPIC timer and the choice of the interrupt to inject).

pub mod exits;
pub mod mmio;
pub mod msr;
pub mod ports;
pub mod vlapic;

#[cfg(test)]
mod tests;
