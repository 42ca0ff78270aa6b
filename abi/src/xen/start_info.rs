//! xen/include/public/arch-x86/hvm/start_info.h
//!
//! What a PVH domain finds at its 32-bit entry point: `EBX` holds the
//! guest-physical address of an [`HvmStartInfo`] (Xen 4.17's
//! `hvm_start_info`, version 1). Everything it points to (command line,
//! module list, memory map) lies below 4 GiB.

/// `HvmStartInfo::magic` (Linux BUG()s on any other value).
pub const HVM_START_MAGIC_VALUE: u32 = 0x336e_c578;
/// Version with the memory map fields valid.
pub const HVM_START_INFO_VERSION: u32 = 1;

/// `HvmStartInfo::flags`: the domain is privileged (SIF_PRIVILEGED).
pub const SIF_PRIVILEGED: u32 = 1 << 0;
/// `HvmStartInfo::flags`: the initial domain (SIF_INITDOMAIN).
pub const SIF_INITDOMAIN: u32 = 1 << 1;

/// `HvmMemmapTableEntry::kind`: RAM.
pub const XEN_HVM_MEMMAP_TYPE_RAM: u32 = 1;
/// Reserved.
pub const XEN_HVM_MEMMAP_TYPE_RESERVED: u32 = 2;
/// ACPI tables (reclaimable).
pub const XEN_HVM_MEMMAP_TYPE_ACPI: u32 = 3;
/// ACPI NVS.
pub const XEN_HVM_MEMMAP_TYPE_NVS: u32 = 4;
/// Unusable.
pub const XEN_HVM_MEMMAP_TYPE_UNUSABLE: u32 = 5;
/// Disabled.
pub const XEN_HVM_MEMMAP_TYPE_DISABLED: u32 = 6;
/// Persistent memory.
pub const XEN_HVM_MEMMAP_TYPE_PMEM: u32 = 7;

crate::pod! {
    /// `struct hvm_start_info` (56 bytes).
    pub struct HvmStartInfo {
        pub magic: u32,
        /// 0: no memory map fields; 1: `memmap_*` valid.
        pub version: u32,
        /// SIF_*.
        pub flags: u32,
        /// Entries at `modlist_paddr`; module 0 is the initrd for Linux.
        pub nr_modules: u32,
        /// Guest-physical address of `nr_modules` [`HvmModlistEntry`].
        pub modlist_paddr: u64,
        /// Guest-physical address of the NUL-terminated command line (0: none).
        pub cmdline_paddr: u64,
        /// Guest-physical address of the ACPI RSDP (0: none).
        pub rsdp_paddr: u64,
        /// Guest-physical address of `memmap_entries` [`HvmMemmapTableEntry`].
        pub memmap_paddr: u64,
        pub memmap_entries: u32,
        pub reserved: u32,
    }
    /// `struct hvm_modlist_entry` (32 bytes).
    pub struct HvmModlistEntry {
        pub paddr: u64,
        pub size: u64,
        /// Guest-physical address of its NUL-terminated command line (0: none).
        pub cmdline_paddr: u64,
        pub reserved: u64,
    }
    /// `struct hvm_memmap_table_entry` (24 bytes).
    pub struct HvmMemmapTableEntry {
        pub addr: u64,
        pub size: u64,
        /// XEN_HVM_MEMMAP_TYPE_*.
        pub kind: u32,
        pub reserved: u32,
    }
}

// Sizes from xen-abi-map.md §1.3 (checked there against Xen 4.17's headers with gcc).
const _: () = assert!(core::mem::size_of::<HvmStartInfo>() == 56);
const _: () = assert!(core::mem::size_of::<HvmModlistEntry>() == 32);
const _: () = assert!(core::mem::size_of::<HvmMemmapTableEntry>() == 24);
const _: () = assert!(core::mem::offset_of!(HvmStartInfo, rsdp_paddr) == 32);
const _: () = assert!(core::mem::offset_of!(HvmStartInfo, memmap_entries) == 48);
