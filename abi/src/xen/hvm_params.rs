//! xen/include/public/hvm/params.h: the HVM parameters of a domain
//! (`HVMOP_set_param` / `HVMOP_get_param`, hypercall 34 sub-ops 0 and 1).

/// Event-channel upcall: 0 = none; otherwise `type << 56 | value` (see
/// `hvm::CALLBACK_VIA_TYPE_VECTOR`).
pub const CALLBACK_IRQ: u32 = 0;
/// Guest frame of the xenstore ring.
pub const STORE_PFN: u32 = 1;
/// Event channel (in the guest) of the xenstore ring.
pub const STORE_EVTCHN: u32 = 2;
/// Deprecated.
pub const PAE_ENABLED: u32 = 4;
/// Legacy ioreq page.
pub const IOREQ_PFN: u32 = 5;
/// Legacy buffered ioreq page.
pub const BUFIOREQ_PFN: u32 = 6;
/// Viridian enlightenments.
pub const VIRIDIAN: u32 = 9;
/// Virtual platform timer mode (one of `TIMER_MODE_*`).
pub const TIMER_MODE: u32 = 10;
/// HPET present.
pub const HPET_ENABLED: u32 = 11;
/// Identity page table (VT-x without unrestricted guest).
pub const IDENT_PT: u32 = 12;
/// Deprecated.
pub const DM_DOMAIN: u32 = 13;
/// ACPI S-state.
pub const ACPI_S_STATE: u32 = 14;
/// VM86 TSS (legacy form of [`VM86_TSS_SIZED`]).
pub const VM86_TSS: u32 = 15;
/// Virtual platform timer alignment.
pub const VPT_ALIGN: u32 = 16;
/// Guest frame of the console ring (`io/console.h`).
pub const CONSOLE_PFN: u32 = 17;
/// Event channel (in the guest) of the console ring.
pub const CONSOLE_EVTCHN: u32 = 18;
/// ACPI I/O port layout.
pub const ACPI_IOPORTS_LOCATION: u32 = 19;
/// Deprecated (20-26, 30).
pub const MEMORY_EVENT_CR0: u32 = 20;
pub const MEMORY_EVENT_CR3: u32 = 21;
pub const MEMORY_EVENT_CR4: u32 = 22;
pub const MEMORY_EVENT_INT3: u32 = 23;
pub const NESTEDHVM: u32 = 24;
pub const MEMORY_EVENT_SINGLE_STEP: u32 = 25;
pub const BUFIOREQ_EVTCHN: u32 = 26;
/// Paging, monitor and sharing rings.
pub const PAGING_RING_PFN: u32 = 27;
pub const MONITOR_RING_PFN: u32 = 28;
pub const SHARING_RING_PFN: u32 = 29;
pub const MEMORY_EVENT_MSR: u32 = 30;
/// What a triple fault does (a `SHUTDOWN_*` reason).
pub const TRIPLE_FAULT_REASON: u32 = 31;
pub const IOREQ_SERVER_PFN: u32 = 32;
pub const NR_IOREQ_SERVER_PAGES: u32 = 33;
pub const VM_GENERATION_ID_ADDR: u32 = 34;
/// altp2m mode (`XEN_ALTP2M_*`).
pub const ALTP2M: u32 = 35;
/// x87 FIP width: 0, 4 or 8.
pub const X87_FIP_WIDTH: u32 = 36;
/// VM86 TSS: address in the low 32 bits, size in the high 32.
pub const VM86_TSS_SIZED: u32 = 37;
/// Machine-check capabilities.
pub const MCA_CAP: u32 = 38;
/// Number of parameters (`HVM_NR_PARAMS`).
pub const NR_PARAMS: u32 = 39;

/// Largest [`TIMER_MODE`] value (`HVMPTM_one_missed_tick_pending`).
pub const TIMER_MODE_MAX: u64 = 3;
/// Largest [`ALTP2M`] value (`XEN_ALTP2M_limited`).
pub const ALTP2M_MAX: u64 = 3;
