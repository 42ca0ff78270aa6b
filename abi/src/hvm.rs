//! `hvm_op(cmd, arg)` (hypercall 34).

crate::subops! {
    /// Set the vector the event upcall is delivered on: `arg` points to [`UpcallVector`].
    SET_EVTCHN_UPCALL_VECTOR = 23, "set_evtchn_upcall_vector";
}

/// Lowest vector accepted for the upcall (below are exceptions).
pub const UPCALL_VECTOR_MIN: u8 = 0x10;

crate::pod! {
    /// `HVMOP_set_evtchn_upcall_vector` for one of the caller's vCPUs.
    pub struct UpcallVector { pub vcpu: u32, pub vector: u8, pub pad: [u8; 3] }
}
