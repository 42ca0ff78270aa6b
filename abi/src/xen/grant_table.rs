//! xen/include/public/grant_table.h (Xen 4.17): `grant_table_op(cmd, uop, count)`
//! (hypercall 20), grant tables version 1.
//!
//! `uop` points to an array of `count` structures of the sub-operation's
//! type; per-entry results are `GNTST_*` codes in each structure's `status`
//! field, the hypercall's return value is for argument-level errors (an
//! errno). Sizes are asserted against ../shared/reference/xen-abi-map.md §4.1.

crate::subops! {
    /// Map granted frames: [`MapGrantRef`] array.
    MAP_GRANT_REF = 0, "map_grant_ref";
    /// Undo maps: [`UnmapGrantRef`] array.
    UNMAP_GRANT_REF = 1, "unmap_grant_ref";
    /// Grow a table and list its frames: one [`SetupTable`].
    SETUP_TABLE = 2, "setup_table";
    /// Copy bytes between granted or own frames: [`Copy`] array.
    COPY = 5, "copy";
    /// A table's size: one [`QuerySize`].
    QUERY_SIZE = 6, "query_size";
    /// Choose the caller's table format: one [`SetVersion`].
    SET_VERSION = 8, "set_version";
    /// A table's format: one [`GetVersion`].
    GET_VERSION = 10, "get_version";
}

/// `cmd` bits above the sub-operation (Xen's GNTTABOP_CMD_MASK): must be zero.
pub const GNTTABOP_CMD_MASK: u64 = (1 << 12) - 1;

/// A grant reference (index in the granter's table).
pub type GrantRef = u32;
/// A maptrack handle (index in the mapper's maptrack).
pub type GrantHandle = u32;

// ---- grant_entry_v1 flags (16 bits)
/// Entry type mask (bits 0-1).
pub const GTF_TYPE_MASK: u16 = 3;
/// Entry unused.
pub const GTF_INVALID: u16 = 0;
/// The grantee may map or copy the frame.
pub const GTF_PERMIT_ACCESS: u16 = 1;
/// The grantee may transfer a page here (PV only; refused by Warden's maps).
pub const GTF_ACCEPT_TRANSFER: u16 = 2;
/// v2 only.
pub const GTF_TRANSITIVE: u16 = 3;
/// The grantee may only read.
pub const GTF_READONLY: u16 = 1 << 2;
/// Set by the hypervisor while the frame is mapped or copied from.
pub const GTF_READING: u16 = 1 << 3;
/// Set by the hypervisor while the frame is mapped writable or copied to.
pub const GTF_WRITING: u16 = 1 << 4;
/// Cache attribute bits.
pub const GTF_PWT: u16 = 1 << 5;
pub const GTF_PCD: u16 = 1 << 6;
pub const GTF_PAT: u16 = 1 << 7;
/// v2 only (sub-page grants).
pub const GTF_SUB_PAGE: u16 = 1 << 8;

// ---- GNTMAP_* (map_grant_ref flags)
pub const GNTMAP_DEVICE_MAP: u32 = 1 << 0;
pub const GNTMAP_HOST_MAP: u32 = 1 << 1;
pub const GNTMAP_READONLY: u32 = 1 << 2;
pub const GNTMAP_APPLICATION_MAP: u32 = 1 << 3;
pub const GNTMAP_CONTAINS_PTE: u32 = 1 << 4;

// ---- GNTCOPY_* (copy flags)
/// `source.u` is a grant reference of `source.domid` (else a frame of the caller).
pub const GNTCOPY_SOURCE_GREF: u16 = 1 << 0;
/// `dest.u` is a grant reference of `dest.domid` (else a frame of the caller).
pub const GNTCOPY_DEST_GREF: u16 = 1 << 1;

// ---- GNTST_* per-entry status codes
pub const GNTST_OKAY: i16 = 0;
pub const GNTST_GENERAL_ERROR: i16 = -1;
pub const GNTST_BAD_DOMAIN: i16 = -2;
pub const GNTST_BAD_GNTREF: i16 = -3;
pub const GNTST_BAD_HANDLE: i16 = -4;
pub const GNTST_BAD_VIRT_ADDR: i16 = -5;
pub const GNTST_BAD_DEV_ADDR: i16 = -6;
pub const GNTST_NO_DEVICE_SPACE: i16 = -7;
pub const GNTST_PERMISSION_DENIED: i16 = -8;
pub const GNTST_BAD_PAGE: i16 = -9;
pub const GNTST_BAD_COPY_ARG: i16 = -10;
pub const GNTST_ADDRESS_TOO_BIG: i16 = -11;
pub const GNTST_EAGAIN: i16 = -12;
pub const GNTST_NO_SPACE: i16 = -13;

/// Grant references 0-7 are reserved for the toolstack (0 console, 1 xenstore).
pub const GNTTAB_NR_RESERVED_ENTRIES: u32 = 8;
pub const GNTTAB_RESERVED_CONSOLE: u32 = 0;
pub const GNTTAB_RESERVED_XENSTORE: u32 = 1;

/// `XENMAPIDX_grant_table_status`: add_to_physmap's idx bit selecting a v2
/// status frame (refused: Warden implements v1 only).
pub const XENMAPIDX_GRANT_TABLE_STATUS: u64 = 1 << 31;

/// v1 entries per 4 KiB frame.
pub const ENTRIES_PER_FRAME_V1: u32 = 4096 / 8;

crate::pod! {
    /// `grant_entry_v1`: written by the granter (frame and domid first,
    /// then flags); GTF_reading/GTF_writing are the hypervisor's.
    pub struct GrantEntryV1 {
        pub flags: u16,
        /// The grantee.
        pub domid: u16,
        /// The granted frame (a GFN of the granter).
        pub frame: u32,
    }

    /// `gnttab_map_grant_ref`.
    pub struct MapGrantRef {
        /// For a translated caller: the guest-physical address to map at.
        pub host_addr: u64,
        pub flags: u32,
        pub ref_: u32,
        /// The granter.
        pub dom: u16,
        /// Out: GNTST_*.
        pub status: i16,
        /// Out: the handle to unmap with.
        pub handle: u32,
        /// Out: device address (0 for a translated caller).
        pub dev_bus_addr: u64,
    }

    /// `gnttab_unmap_grant_ref`.
    pub struct UnmapGrantRef {
        pub host_addr: u64,
        pub dev_bus_addr: u64,
        pub handle: u32,
        /// Out: GNTST_*.
        pub status: i16,
        pub pad: u16,
    }

    /// `gnttab_setup_table`.
    pub struct SetupTable {
        pub dom: u16,
        pub pad0: u16,
        pub nr_frames: u32,
        /// Out: GNTST_*.
        pub status: i16,
        pub pad1: [u16; 3],
        /// Out: `nr_frames` u64 frame numbers (GFNs; !0 for a frame not in the physmap).
        pub frame_list: u64,
    }

    /// One side of a copy (`gnttab_copy.source` / `.dest`).
    pub struct CopyPtr {
        /// A grant reference (GNTCOPY_*_gref) or a GFN of the caller.
        pub u: u64,
        pub domid: u16,
        pub offset: u16,
        pub pad: u32,
    }

    /// `gnttab_copy`.
    pub struct Copy {
        pub source: CopyPtr,
        pub dest: CopyPtr,
        pub len: u16,
        pub flags: u16,
        /// Out: GNTST_*.
        pub status: i16,
        pub pad: u16,
    }

    /// `gnttab_query_size`.
    pub struct QuerySize {
        pub dom: u16,
        pub pad: u16,
        /// Out.
        pub nr_frames: u32,
        /// Out.
        pub max_nr_frames: u32,
        /// Out: GNTST_*.
        pub status: i16,
        pub pad1: u16,
    }

    /// `gnttab_set_version` (in: wanted; out: the version in force).
    pub struct SetVersion { pub version: u32 }

    /// `gnttab_get_version`.
    pub struct GetVersion {
        pub dom: u16,
        pub pad: u16,
        /// Out.
        pub version: u32,
    }
}

// Sizes from xen-abi-map.md §4.1 (compiled from the Xen 4.17 headers).
const _: () = assert!(core::mem::size_of::<GrantEntryV1>() == 8);
const _: () = assert!(core::mem::size_of::<MapGrantRef>() == 32);
const _: () = assert!(core::mem::size_of::<UnmapGrantRef>() == 24);
const _: () = assert!(core::mem::size_of::<SetupTable>() == 24);
const _: () = assert!(core::mem::size_of::<CopyPtr>() == 16);
const _: () = assert!(core::mem::size_of::<Copy>() == 40);
const _: () = assert!(core::mem::size_of::<QuerySize>() == 16);
const _: () = assert!(core::mem::size_of::<SetVersion>() == 4);
const _: () = assert!(core::mem::size_of::<GetVersion>() == 8);
const _: () = assert!(core::mem::offset_of!(MapGrantRef, status) == 18);
const _: () = assert!(core::mem::offset_of!(MapGrantRef, handle) == 20);
const _: () = assert!(core::mem::offset_of!(UnmapGrantRef, status) == 20);
const _: () = assert!(core::mem::offset_of!(SetupTable, status) == 8);
const _: () = assert!(core::mem::offset_of!(SetupTable, frame_list) == 16);
const _: () = assert!(core::mem::offset_of!(Copy, len) == 32);
const _: () = assert!(core::mem::offset_of!(Copy, status) == 36);
const _: () = assert!(core::mem::offset_of!(QuerySize, status) == 12);
const _: () = assert!(core::mem::offset_of!(GetVersion, version) == 4);
