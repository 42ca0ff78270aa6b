//! xen/include/public/xen.h (and arch-x86/xen.h): `shared_info`, VIRQ numbers,
//! `multicall` (hypercall 13), `set_timer_op` (hypercall 15) and `vm_assist`
//! (hypercall 21).
//!
//! The shared_info page of a 64-bit x86 guest: the legacy `vcpu_info` slots
//! of vCPUs 0..31, the 2-level event-channel bitmaps, the wallclock and the
//! (PV-only) arch part. Sizes and offsets are those of
//! ../shared/reference/xen-abi-map.md §1.8 (asserted below).

use crate::vcpu::VcpuInfo;

/// vCPUs with a `vcpu_info` slot in the shared_info page (`XEN_LEGACY_MAX_VCPUS`).
pub const LEGACY_MAX_VCPUS: usize = 32;

/// Event-channel ports of the 2-level ABI for a 64-bit guest
/// (`EVTCHN_2L_NR_CHANNELS` = 64 words of 64 bits).
pub const EVTCHN_2L_NR_CHANNELS: u32 = 4096;

/// Virtual IRQs (`VIRQ_*`). Per-vCPU: TIMER, DEBUG, XENOPROF, XENPMU; the others are global.
pub const VIRQ_TIMER: u32 = 0;
pub const VIRQ_DEBUG: u32 = 1;
pub const VIRQ_CONSOLE: u32 = 2;
pub const VIRQ_DOM_EXC: u32 = 3;
pub const VIRQ_TBUF: u32 = 4;
pub const VIRQ_DEBUGGER: u32 = 6;
pub const VIRQ_XENOPROF: u32 = 7;
pub const VIRQ_CON_RING: u32 = 8;
pub const VIRQ_PCPU_STATE: u32 = 9;
pub const VIRQ_MEM_EVENT: u32 = 10;
pub const VIRQ_ARGO: u32 = 11;
pub const VIRQ_ENOMEM: u32 = 12;
pub const VIRQ_XENPMU: u32 = 13;
/// Number of VIRQs (`NR_VIRQS`).
pub const NR_VIRQS: u32 = 24;

/// Whether `virq` is a global VIRQ (bound on vCPU 0, delivered to one domain)
/// rather than a per-vCPU one (Xen's `virq_is_global`; x86 has no global
/// arch VIRQs).
pub const fn virq_is_global(virq: u32) -> bool {
    !matches!(virq, VIRQ_TIMER | VIRQ_DEBUG | VIRQ_XENOPROF | VIRQ_XENPMU)
}

crate::pod! {
    /// `arch_shared_info` (x86-64; PV only: Warden leaves it zero).
    pub struct ArchSharedInfo {
        pub max_pfn: u64,
        pub pfn_to_mfn_frame_list_list: u64,
        pub nmi_reason: u64,
        pub p2m_cr3: u64,
        pub p2m_vaddr: u64,
        pub p2m_generation: u64,
    }
    /// `shared_info`.
    pub struct SharedInfo {
        pub vcpu_info: [VcpuInfo; LEGACY_MAX_VCPUS],
        pub evtchn_pending: [u64; 64],
        pub evtchn_mask: [u64; 64],
        pub wc_version: u32,
        pub wc_sec: u32,
        pub wc_nsec: u32,
        pub wc_sec_hi: u32,
        pub arch: ArchSharedInfo,
    }
}

/// Byte offset of `vcpu_info[i]` in the page.
pub const fn vcpu_info_offset(i: usize) -> u64 {
    (i * core::mem::size_of::<VcpuInfo>()) as u64
}
/// Byte offset of `evtchn_pending[0]`.
pub const EVTCHN_PENDING_OFFSET: u64 = 2048;
/// Byte offset of `evtchn_mask[0]`.
pub const EVTCHN_MASK_OFFSET: u64 = 2560;
/// Byte offset of `wc_version`.
pub const WC_VERSION_OFFSET: u64 = 3072;
/// Byte offset of `arch`.
pub const ARCH_OFFSET: u64 = 3088;

// xen-abi-map.md §1.8: 3136 bytes used; the offsets above.
const _: () = assert!(core::mem::size_of::<ArchSharedInfo>() == 48);
const _: () = assert!(core::mem::size_of::<SharedInfo>() == 3136);
const _: () = assert!(core::mem::offset_of!(SharedInfo, evtchn_pending) == 2048);
const _: () = assert!(core::mem::offset_of!(SharedInfo, evtchn_mask) == 2560);
const _: () = assert!(core::mem::offset_of!(SharedInfo, wc_version) == 3072);
const _: () = assert!(core::mem::offset_of!(SharedInfo, wc_sec_hi) == 3084);
const _: () = assert!(core::mem::offset_of!(SharedInfo, arch) == 3088);
const _: () = assert!(vcpu_info_offset(1) == 64);

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

/// `multicall(call_list, nr_calls)`: execute `nr_calls` (a 32-bit count)
/// [`MulticallEntry`]s of the caller's memory in order, each as the
/// hypercall `op` with its first five arguments, its result written to its
/// `result` field; the hypercall itself returns 0 (or -EFAULT / -EINVAL).
/// It has no sub-operations; the catalogue lists it as one (number 0).
pub mod multicall {
    crate::subops! {
        /// The whole hypercall.
        MULTICALL = 0, "multicall";
    }

    crate::pod! {
        /// `multicall_entry` of a 64-bit caller (`xen.h`): 64 bytes.
        pub struct MulticallEntry {
            pub op: u64,
            pub result: u64,
            pub args: [u64; 6],
        }
    }

    /// Byte offset of `result` in a [`MulticallEntry`].
    pub const RESULT_OFFSET: u64 = 8;

    const _: () = assert!(core::mem::size_of::<MulticallEntry>() == 64);
    const _: () = assert!(core::mem::offset_of!(MulticallEntry, result) == RESULT_OFFSET as usize);
    const _: () = assert!(core::mem::offset_of!(MulticallEntry, args) == 16);
}
