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
    /// Arm the vCPU's single-shot timer: `arg` points to [`SingleshotTimer`].
    SET_SINGLESHOT_TIMER = 8, "set_singleshot_timer";
    /// Disarm it.
    STOP_SINGLESHOT_TIMER = 9, "stop_singleshot_timer";
    /// Place the vCPU's [`VcpuInfo`] in guest memory: `arg` points to [`RegisterVcpuInfo`].
    REGISTER_VCPU_INFO = 10, "register_vcpu_info";
}

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

/// `HvmContext::mode`: 64-bit long mode (the only mode Warden starts vCPUs in).
pub const HVM_MODE_64B: u32 = 1;

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
    /// `VCPUOP_initialise` and `XEN_DOMCTL_{set,get}vcpucontext`.
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
