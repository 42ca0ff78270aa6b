//! `hvm_op(cmd, arg)` (hypercall 34).

crate::subops! {
    /// Set an HVM parameter of a domain: `arg` points to [`HvmParam`]
    /// (indexes: `xen::hvm_params`).
    SET_PARAM = 0, "set_param";
    /// Read an HVM parameter: `arg` points to [`HvmParam`], whose `value` is written.
    GET_PARAM = 1, "get_param";
    /// A guest's hint that a page table is being torn down: `arg` points to
    /// [`PagetableDying`]. Used by Xen under shadow paging only.
    PAGETABLE_DYING = 9, "pagetable_dying";
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
    /// `xen_hvm_pagetable_dying`: the domain (DOMID_SELF or its own id) and
    /// the guest-physical address of the dying top-level table.
    pub struct PagetableDying { pub domid: u16, pub pad: [u16; 3], pub gpa: u64 }
}

/// `HVM_PARAM_CALLBACK_IRQ`: how the event upcall is delivered when no
/// per-vCPU upcall vector is set. Value: type in bits 63:56
/// ([`CALLBACK_VIA_TYPE_VECTOR`] = 2: vector in bits 7:0); 0 disables it.
pub const PARAM_CALLBACK_IRQ: u32 = crate::xen::hvm_params::CALLBACK_IRQ;
/// Bits of the callback type in the CALLBACK_IRQ value.
pub const CALLBACK_VIA_TYPE_SHIFT: u32 = 56;
/// CALLBACK_IRQ type: a GSI (needs an emulated IOAPIC/PIC: ignored for PVH).
pub const CALLBACK_VIA_TYPE_GSI: u64 = 0;
/// CALLBACK_IRQ type: a PCI INTx line (ignored for PVH).
pub const CALLBACK_VIA_TYPE_PCI_INTX: u64 = 1;
/// CALLBACK_IRQ type: a vector injected directly, bypassing the local APIC.
pub const CALLBACK_VIA_TYPE_VECTOR: u64 = 2;

const _: () = assert!(core::mem::size_of::<HvmParam>() == 16);
const _: () = assert!(core::mem::size_of::<PagetableDying>() == 16);
