//! `hvm_op(cmd, arg)` (hypercall 34).

crate::subops! {
    /// Set an HVM parameter of a domain: `arg` points to [`HvmParam`]
    /// (indexes: `xen::hvm_params`).
    SET_PARAM = 0, "set_param";
    /// Read an HVM parameter: `arg` points to [`HvmParam`], whose `value` is written.
    GET_PARAM = 1, "get_param";
    /// Set the vector the event upcall is delivered on: `arg` points to [`UpcallVector`].
    SET_EVTCHN_UPCALL_VECTOR = 23, "set_evtchn_upcall_vector";
}

/// Lowest vector accepted for the upcall (below are exceptions).
pub const UPCALL_VECTOR_MIN: u8 = 0x10;

crate::pod! {
    /// `xen_hvm_param`.
    pub struct HvmParam { pub domid: u16, pub pad: u16, pub index: u32, pub value: u64 }
    /// `HVMOP_set_evtchn_upcall_vector` for one of the caller's vCPUs.
    pub struct UpcallVector { pub vcpu: u32, pub vector: u8, pub pad: [u8; 3] }
}

const _: () = assert!(core::mem::size_of::<HvmParam>() == 16);
