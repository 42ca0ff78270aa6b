//! `hvm_op(cmd, arg)` (hypercall 34).

crate::subops! {
    /// Set an HVM parameter of a domain: `arg` points to [`HvmParam`].
    SET_PARAM = 0, "set_param";
    /// Set the vector the event upcall is delivered on: `arg` points to [`UpcallVector`].
    SET_EVTCHN_UPCALL_VECTOR = 23, "set_evtchn_upcall_vector";
}

/// Lowest vector accepted for the upcall (below are exceptions).
pub const UPCALL_VECTOR_MIN: u8 = 0x10;

crate::pod! {
    /// `HVMOP_set_evtchn_upcall_vector` for one of the caller's vCPUs.
    pub struct UpcallVector { pub vcpu: u32, pub vector: u8, pub pad: [u8; 3] }
}

/// `HVM_PARAM_CALLBACK_IRQ`: how the event upcall is delivered when no
/// per-vCPU upcall vector is set. Value: type in bits 63:56
/// ([`CALLBACK_VIA_TYPE_VECTOR`] = 2: vector in bits 7:0); 0 disables it.
pub const PARAM_CALLBACK_IRQ: u32 = 0;
/// Bits of the callback type in the CALLBACK_IRQ value.
pub const CALLBACK_VIA_TYPE_SHIFT: u32 = 56;
/// CALLBACK_IRQ type: a GSI (needs an emulated IOAPIC/PIC: ignored for PVH).
pub const CALLBACK_VIA_TYPE_GSI: u64 = 0;
/// CALLBACK_IRQ type: a PCI INTx line (ignored for PVH).
pub const CALLBACK_VIA_TYPE_PCI_INTX: u64 = 1;
/// CALLBACK_IRQ type: a vector injected directly, bypassing the local APIC.
pub const CALLBACK_VIA_TYPE_VECTOR: u64 = 2;

crate::pod! {
    /// `xen_hvm_param` (16 bytes).
    pub struct HvmParam { pub domid: u16, pub pad: u16, pub index: u32, pub value: u64 }
}

const _: () = assert!(core::mem::size_of::<HvmParam>() == 16);
