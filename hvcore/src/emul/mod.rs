//! What a guest touches that is not RAM and not a hypercall.

pub mod msr;
pub mod ports;
