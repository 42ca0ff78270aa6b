//! xen/include/public/xen.h: `set_timer_op` (hypercall 15) and `vm_assist`
//! (hypercall 21).

/// `set_timer_op(timeout_abs_ns)`: arm (or, with 0, stop) the calling vCPU's
/// single-shot timer. It has no sub-operations; the catalogue lists it as
/// one (number 0).
pub mod set_timer_op {
    crate::subops! {
        /// The whole hypercall.
        SET_TIMER = 0, "set_timer_op";
    }
}

/// `vm_assist(cmd, type)`: enable or disable an assist of the calling domain.
pub mod vm_assist {
    crate::subops! {
        /// `VMASST_CMD_enable`.
        ENABLE = 0, "enable";
        /// `VMASST_CMD_disable`.
        DISABLE = 1, "disable";
    }

    /// `VMASST_TYPE_runstate_update_flag`: set `XEN_RUNSTATE_UPDATE` in a
    /// registered runstate area's `state_entry_time` while rewriting it.
    pub const TYPE_RUNSTATE_UPDATE_FLAG: u32 = 5;
    /// The assists an HVM/PVH domain may use (Xen's `HVM_VM_ASSIST_MASK`).
    pub const HVM_MASK: u64 = 1 << TYPE_RUNSTATE_UPDATE_FLAG;
}
