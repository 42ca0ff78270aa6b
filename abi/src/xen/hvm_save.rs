//! `xen/include/public/hvm/save.h` and `arch-x86/hvm/save.h`: the HVM
//! context records of `XEN_DOMCTL_{get,set}hvmcontext`.
//!
//! A context is a sequence of records, each a [`SaveDescriptor`] followed
//! by `length` bytes, starting with the [`SaveHeader`] and ending with a
//! descriptor of type [`END`] and length 0. Warden reads and writes the
//! records it keeps for a PVH guest: [`HEADER`], [`CPU`], [`LAPIC`],
//! [`LAPIC_REGS`], [`MTRR`], [`END`].

/// Type code of the end marker (length 0).
pub const END: u16 = 0;
/// [`SaveHeader`].
pub const HEADER: u16 = 1;
/// [`HwCpu`], one per vCPU (instance = vCPU id).
pub const CPU: u16 = 2;
/// [`HwLapic`], one per vCPU.
pub const LAPIC: u16 = 5;
/// [`HwLapicRegs`], one per vCPU.
pub const LAPIC_REGS: u16 = 6;
/// [`HwMtrr`], one per vCPU.
pub const MTRR: u16 = 14;
/// Highest type code Xen 4.17 knows (`HVM_SAVE_CODE_MAX`).
pub const CODE_MAX: u16 = 20;

/// `HVM_FILE_MAGIC`.
pub const FILE_MAGIC: u32 = 0x5438_1286;
/// `HVM_FILE_VERSION`.
pub const FILE_VERSION: u32 = 1;

/// `HwCpu::flags`: `fpu_regs` holds a valid FXSAVE image.
pub const FPU_INITIALISED: u32 = 1;
/// `HwLapic::disabled`: disabled in IA32_APIC_BASE (`VLAPIC_HW_DISABLED`).
pub const VLAPIC_HW_DISABLED: u32 = 1;
/// `HwLapic::disabled`: software-disabled in the SVR (`VLAPIC_SW_DISABLED`).
pub const VLAPIC_SW_DISABLED: u32 = 2;
/// Variable-range MTRR pairs of `HwMtrr` (`MTRR_VCNT`).
pub const MTRR_VCNT: usize = 8;
/// Fixed-range MTRRs of `HwMtrr` (`NUM_FIXED_MSR`).
pub const NUM_FIXED_MSR: usize = 11;

crate::pod! {
    /// `struct hvm_save_descriptor` (8 bytes).
    pub struct SaveDescriptor {
        pub typecode: u16,
        pub instance: u16,
        /// Bytes of the record after this descriptor.
        pub length: u32,
    }
    /// `struct hvm_save_header` (24 bytes).
    pub struct SaveHeader {
        pub magic: u32,
        pub version: u32,
        /// The hypervisor's changeset (Warden: 0).
        pub changeset: u64,
        /// CPUID leaf 1 EAX of the saving machine.
        pub cpuid: u32,
        /// The guest's TSC frequency (kHz).
        pub gtsc_khz: u32,
    }
    /// `struct hvm_hw_cpu` (1032 bytes): a vCPU's register state.
    /// Segment attributes (`*_arbytes`) are in the 12-bit packed form
    /// (type, S, DPL, P in bits 0..8; AVL, L, D/B, G in bits 8..12).
    pub struct HwCpu {
        /// FXSAVE image (valid with [`FPU_INITIALISED`]).
        pub fpu_regs: [u8; 512],
        pub rax: u64,
        pub rbx: u64,
        pub rcx: u64,
        pub rdx: u64,
        pub rbp: u64,
        pub rsi: u64,
        pub rdi: u64,
        pub rsp: u64,
        pub r8: u64,
        pub r9: u64,
        pub r10: u64,
        pub r11: u64,
        pub r12: u64,
        pub r13: u64,
        pub r14: u64,
        pub r15: u64,
        pub rip: u64,
        pub rflags: u64,
        pub cr0: u64,
        pub cr2: u64,
        pub cr3: u64,
        pub cr4: u64,
        pub dr0: u64,
        pub dr1: u64,
        pub dr2: u64,
        pub dr3: u64,
        pub dr6: u64,
        pub dr7: u64,
        pub cs_sel: u32,
        pub ds_sel: u32,
        pub es_sel: u32,
        pub fs_sel: u32,
        pub gs_sel: u32,
        pub ss_sel: u32,
        pub tr_sel: u32,
        pub ldtr_sel: u32,
        pub cs_limit: u32,
        pub ds_limit: u32,
        pub es_limit: u32,
        pub fs_limit: u32,
        pub gs_limit: u32,
        pub ss_limit: u32,
        pub tr_limit: u32,
        pub ldtr_limit: u32,
        pub idtr_limit: u32,
        pub gdtr_limit: u32,
        pub cs_base: u64,
        pub ds_base: u64,
        pub es_base: u64,
        pub fs_base: u64,
        pub gs_base: u64,
        pub ss_base: u64,
        pub tr_base: u64,
        pub ldtr_base: u64,
        pub idtr_base: u64,
        pub gdtr_base: u64,
        pub cs_arbytes: u32,
        pub ds_arbytes: u32,
        pub es_arbytes: u32,
        pub fs_arbytes: u32,
        pub gs_arbytes: u32,
        pub ss_arbytes: u32,
        pub tr_arbytes: u32,
        pub ldtr_arbytes: u32,
        pub sysenter_cs: u64,
        pub sysenter_esp: u64,
        pub sysenter_eip: u64,
        /// MSR_SHADOW_GS_BASE (KernelGSbase).
        pub shadow_gs: u64,
        /// Obsolete, ignored.
        pub msr_flags: u64,
        pub msr_lstar: u64,
        pub msr_star: u64,
        pub msr_cstar: u64,
        pub msr_syscall_mask: u64,
        pub msr_efer: u64,
        pub msr_tsc_aux: u64,
        /// The guest's TSC.
        pub tsc: u64,
        /// An event being delivered: vector (bits 0..8), type (8..11),
        /// error code valid (11), valid (31).
        pub pending_event: u32,
        pub error_code: u32,
        /// [`FPU_INITIALISED`].
        pub flags: u32,
        pub pad0: u32,
    }
    /// `struct hvm_hw_lapic` (24 bytes): the local APIC's hidden state.
    pub struct HwLapic {
        pub apic_base_msr: u64,
        /// `VLAPIC_*_DISABLED`.
        pub disabled: u32,
        pub timer_divisor: u32,
        pub tdt_msr: u64,
    }
    /// `struct hvm_hw_lapic_regs`: the APIC register page's first 1 KiB.
    pub struct HwLapicRegs {
        pub data: [u8; 1024],
    }
    /// `struct hvm_hw_mtrr` (240 bytes).
    pub struct HwMtrr {
        pub msr_pat_cr: u64,
        /// Base/mask pairs.
        pub msr_mtrr_var: [u64; 16],
        pub msr_mtrr_fixed: [u64; 11],
        pub msr_mtrr_cap: u64,
        pub msr_mtrr_def_type: u64,
    }
}

// Xen 4.17's sizes and the offsets libxc writes (xg_dom_x86.c).
const _: () = assert!(core::mem::size_of::<SaveDescriptor>() == 8);
const _: () = assert!(core::mem::size_of::<SaveHeader>() == 24);
const _: () = assert!(core::mem::size_of::<HwCpu>() == 1032);
const _: () = assert!(core::mem::offset_of!(HwCpu, rbx) == 520);
const _: () = assert!(core::mem::offset_of!(HwCpu, rip) == 640);
const _: () = assert!(core::mem::offset_of!(HwCpu, cr0) == 656);
const _: () = assert!(core::mem::offset_of!(HwCpu, dr6) == 720);
const _: () = assert!(core::mem::offset_of!(HwCpu, cs_limit) == 768);
const _: () = assert!(core::mem::offset_of!(HwCpu, cs_base) == 808);
const _: () = assert!(core::mem::offset_of!(HwCpu, cs_arbytes) == 888);
const _: () = assert!(core::mem::offset_of!(HwCpu, tsc) == 1008);
const _: () = assert!(core::mem::size_of::<HwLapic>() == 24);
const _: () = assert!(core::mem::size_of::<HwLapicRegs>() == 1024);
const _: () = assert!(core::mem::size_of::<HwMtrr>() == 240);
const _: () = assert!(core::mem::offset_of!(HwMtrr, msr_mtrr_def_type) == 232);
