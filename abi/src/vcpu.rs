//! `vcpu_op(cmd, vcpuid, arg)` (hypercall 24): operations on the caller's own vCPUs.

crate::subops! {
    /// Give an offline vCPU its initial state: `arg` points to [`HvmContext`].
    INITIALISE = 0, "initialise";
    /// Bring an initialised vCPU online.
    UP = 1, "up";
    /// Take a vCPU offline (the calling vCPU itself included).
    DOWN = 2, "down";
    /// Returns 1 if the vCPU is online, 0 if not.
    IS_UP = 3, "is_up";
    /// Writes [`RunstateInfo`] to `arg`.
    GET_RUNSTATE_INFO = 4, "get_runstate_info";
    /// Keep a copy of the vCPU's [`RunstateInfo`] at a guest virtual
    /// address (`arg` points to [`RegisterArea`]), rewritten whenever the
    /// vCPU is scheduled.
    REGISTER_RUNSTATE_MEMORY_AREA = 5, "register_runstate_memory_area";
    /// Arm the vCPU's periodic timer: `arg` points to [`SetPeriodicTimer`].
    SET_PERIODIC_TIMER = 6, "set_periodic_timer";
    /// Disarm the periodic timer.
    STOP_PERIODIC_TIMER = 7, "stop_periodic_timer";
    /// Arm the vCPU's single-shot timer: `arg` points to [`SingleshotTimer`].
    SET_SINGLESHOT_TIMER = 8, "set_singleshot_timer";
    /// Disarm it.
    STOP_SINGLESHOT_TIMER = 9, "stop_singleshot_timer";
    /// Place the vCPU's [`VcpuInfo`] in guest memory: `arg` points to [`RegisterVcpuInfo`].
    REGISTER_VCPU_INFO = 10, "register_vcpu_info";
    /// Keep a second copy of the vCPU's [`VcpuTimeInfo`] at a guest virtual
    /// address (`arg` points to [`RegisterArea`]; 0 stops it).
    REGISTER_VCPU_TIME_MEMORY_AREA = 13, "register_vcpu_time_memory_area";
}

/// `VcpuTimeInfo::flags`: the TSCs of all CPUs agree (Xen's
/// `XEN_PVCLOCK_TSC_STABLE_BIT`): a guest may skip its cross-CPU
/// monotonicity fix-up.
pub const PVCLOCK_TSC_STABLE: u8 = 1;
/// `VcpuTimeInfo::flags`: the vCPU was stopped (`XEN_PVCLOCK_GUEST_STOPPED`).
pub const PVCLOCK_GUEST_STOPPED: u8 = 2;
/// Bit of `RunstateInfo::state_entry_time` set while the hypervisor
/// rewrites a registered runstate area, with `VMASST_TYPE_runstate_update_flag`
/// enabled (`XEN_RUNSTATE_UPDATE`).
pub const RUNSTATE_UPDATE: u64 = 1 << 63;
/// Shortest periodic timer period (1 ms).
pub const PERIODIC_MIN_NS: u64 = 1_000_000;
/// Longest timer delta Xen accepts (`STIME_DELTA_MAX`, 2^62 ns).
pub const STIME_DELTA_MAX: u64 = 1 << 62;

/// Runstate: running on a CPU.
pub const RUNSTATE_RUNNING: i32 = 0;
/// Runstate: runnable, waiting for a CPU.
pub const RUNSTATE_RUNNABLE: i32 = 1;
/// Runstate: blocked (waiting for an event or a timer), or paused.
pub const RUNSTATE_BLOCKED: i32 = 2;
/// Runstate: offline (down, or never brought up).
pub const RUNSTATE_OFFLINE: i32 = 3;

/// `SingleshotTimer::flags`: fail with -ETIME if the timeout is already past.
pub const SSHOTTMR_FUTURE: u32 = 1;

/// `HvmContext::mode`: 64-bit long mode.
pub const HVM_MODE_64B: u32 = 1;
/// `HvmContext::mode`: 32-bit protected mode, paging off (Xen's
/// `VCPU_HVM_MODE_32B`; the PVH entry state). Only the builder starts a vCPU
/// in it; `VCPUOP_initialise` takes 64-bit states.
pub const HVM_MODE_32B: u32 = 0;

/// Most vCPUs a domain may have.
pub const MAX_VCPUS: u32 = 64;

crate::pod! {
    /// `VCPUOP_get_runstate_info`: state and nanoseconds spent in each state.
    pub struct RunstateInfo {
        pub state: i32,
        pub pad: u32,
        pub state_entry_time: u64,
        pub time: [u64; 4],
    }
    /// `VCPUOP_register_runstate_memory_area`,
    /// `VCPUOP_register_vcpu_time_memory_area`: a guest virtual address.
    pub struct RegisterArea { pub addr: u64 }
    /// `VCPUOP_set_periodic_timer`.
    pub struct SetPeriodicTimer { pub period_ns: u64 }
    /// `VCPUOP_set_singleshot_timer`: absolute system time (ns since boot).
    pub struct SingleshotTimer { pub timeout_abs_ns: u64, pub flags: u32, pub pad: u32 }
    /// `VCPUOP_register_vcpu_info`: the [`VcpuInfo`] lives at `gfn * 4096 + offset`
    /// and must not cross the page.
    pub struct RegisterVcpuInfo { pub gfn: u64, pub offset: u32, pub rsvd: u32 }
    /// Time information: system time (ns) at `tsc_timestamp`; later system
    /// time = `system_time` + ((tsc - `tsc_timestamp`) shifted by `tsc_shift`
    /// (left if positive, right if negative) * `tsc_to_system_mul`) >> 32.
    pub struct VcpuTimeInfo {
        pub version: u32,
        pub pad0: u32,
        pub tsc_timestamp: u64,
        pub system_time: u64,
        pub tsc_to_system_mul: u32,
        pub tsc_shift: i8,
        pub flags: u8,
        pub pad1: [u8; 2],
    }
    /// Per-vCPU shared information (Xen's `vcpu_info`, 64 bytes). The
    /// hypervisor sets `evtchn_upcall_pending` and bits of `evtchn_pending_sel`
    /// and delivers the upcall vector unless `evtchn_upcall_mask` is set; the
    /// guest clears them. Bit n of `evtchn_pending_sel` selects word n of
    /// the shared_info page's `evtchn_pending` (`crate::xen::xen`).
    pub struct VcpuInfo {
        pub evtchn_upcall_pending: u8,
        pub evtchn_upcall_mask: u8,
        pub pad0: [u8; 6],
        pub evtchn_pending_sel: u64,
        pub cr2: u64,
        pub pad1: u64,
        pub time: VcpuTimeInfo,
    }
    /// A vCPU's initial state (Xen's `vcpu_hvm_context` in 64-bit mode):
    /// flat segments, long mode, the registers below. Used by
    /// `VCPUOP_initialise` (the toolstack sets vCPU state with
    /// `XEN_DOMCTL_sethvmcontext` records, `crate::xen::hvm_save`).
    pub struct HvmContext {
        pub mode: u32,
        pub pad: u32,
        pub rax: u64,
        pub rcx: u64,
        pub rdx: u64,
        pub rbx: u64,
        pub rsp: u64,
        pub rbp: u64,
        pub rsi: u64,
        pub rdi: u64,
        pub rip: u64,
        pub rflags: u64,
        pub cr0: u64,
        pub cr3: u64,
        pub cr4: u64,
        pub efer: u64,
    }
}

// SAFETY of nesting VcpuTimeInfo inside VcpuInfo: it is itself Pod (integers only).

/// Virtual IRQ: the vCPU's single-shot timer fired (bound to a port with
/// EVTCHNOP_bind_virq; the same number as `crate::xen::xen::VIRQ_TIMER`).
pub const VIRQ_TIMER: u32 = crate::xen::xen::VIRQ_TIMER;

const _: () = assert!(core::mem::size_of::<VcpuInfo>() == 64);
const _: () = assert!(core::mem::size_of::<VcpuTimeInfo>() == 32);
const _: () = assert!(core::mem::size_of::<RunstateInfo>() == 48);
const _: () = assert!(core::mem::size_of::<SingleshotTimer>() == 16);
