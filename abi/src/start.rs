//! What a domain finds when it starts (in the style of Xen's PVH
//! `hvm_start_info`). vCPU 0 enters the kernel's ELF entry point in 64-bit
//! long mode, ring 0, with:
//!
//! - `RDI` = guest-physical address of a [`StartInfo`] (also its virtual
//!   address: the first [`BOOT_IDENTITY_MAP`] bytes of guest memory are
//!   identity-mapped with 2 MiB pages by page tables the hypervisor built
//!   inside a reserved range of the guest's memory map);
//! - `RSP` = 0 (the kernel sets up its own stack), interrupts disabled,
//!   CR0 = PE|MP|ET|NE|WP|PG, CR4 = PAE|OSFXSR|OSXMMEXCPT, EFER = LME|LMA|NXE,
//!   flat 64-bit code and data segments, no IDT (the kernel loads its own).
//!
//! Guest RAM is contiguous from guest-physical 0 to `nr_pages * 4096`; the
//! memory map lists the ranges the kernel must not reuse (page tables, the
//! start information page, boot modules).

/// `StartInfo::magic`: "WRDN".
pub const START_MAGIC: u32 = 0x4e44_5257;
/// `StartInfo::version`.
pub const START_VERSION: u32 = 1;

/// `StartInfo::flags`: the control domain (dom0).
pub const SIF_PRIVILEGED: u32 = 1 << 0;
/// `StartInfo::flags`: the initial domain (dom0).
pub const SIF_INITDOMAIN: u32 = 1 << 1;

/// `MemmapEntry::kind`: RAM the kernel may use.
pub const MEMMAP_RAM: u32 = 1;
/// `MemmapEntry::kind`: reserved (boot page tables, start info, modules).
pub const MEMMAP_RESERVED: u32 = 2;

/// Bytes of guest memory identity-mapped at entry (or all of it, if smaller).
pub const BOOT_IDENTITY_MAP: u64 = 4 << 30;

crate::pod! {
    /// The start information.
    pub struct StartInfo {
        pub magic: u32,
        pub version: u32,
        pub flags: u32,
        pub domid: u16,
        pub pad0: u16,
        pub nr_vcpus: u32,
        pub pad1: u32,
        /// Guest RAM size in pages.
        pub nr_pages: u64,
        /// Guest-physical address of the NUL-terminated command line (0 if none).
        pub cmdline_paddr: u64,
        /// Its length without the NUL.
        pub cmdline_len: u32,
        /// Boot modules handed to this domain (dom0 only).
        pub nr_modules: u32,
        /// Guest-physical address of `nr_modules` [`ModlistEntry`].
        pub modlist_paddr: u64,
        /// Guest-physical address of `memmap_entries` [`MemmapEntry`].
        pub memmap_paddr: u64,
        pub memmap_entries: u32,
        pub pad2: u32,
    }
    /// A boot module copied into the domain's memory.
    pub struct ModlistEntry {
        pub paddr: u64,
        pub size: u64,
        /// Guest-physical address of its NUL-terminated command line (0 if none).
        pub cmdline_paddr: u64,
        pub reserved: u64,
    }
    /// A memory map entry.
    pub struct MemmapEntry {
        pub addr: u64,
        pub size: u64,
        pub kind: u32,
        pub reserved: u32,
    }
}
