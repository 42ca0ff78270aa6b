//! `memory_op(cmd, arg)` (hypercall 12).

crate::subops! {
    /// Remove pages from a domain: `arg` points to [`Reservation`] whose
    /// `extent_start` lists guest frame numbers; returns how many extents were removed.
    DECREASE_RESERVATION = 1, "decrease_reservation";
    /// Returns the highest machine frame number of the host; `arg` unused.
    MAXIMUM_RAM_PAGE = 2, "maximum_ram_page";
    /// Returns the pages a domain has: `arg` points to a [`DomidArg`].
    CURRENT_RESERVATION = 3, "current_reservation";
    /// Returns the pages a domain may have: `arg` points to a [`DomidArg`].
    MAXIMUM_RESERVATION = 4, "maximum_reservation";
    /// Add pages at the guest frame numbers listed by [`Reservation`];
    /// returns how many extents were populated.
    POPULATE_PHYSMAP = 6, "populate_physmap";
    /// Returns the caller's memory map: `arg` points to [`MemoryMap`]
    /// (`nr_entries` in: room, out: written) of [`E820Entry`].
    MEMORY_MAP = 9, "memory_map";
    /// Set a domain's memory map: `arg` points to [`ForeignMemoryMap`].
    SET_MEMORY_MAP = 13, "set_memory_map";
    /// Map a page of a space ([`XENMAPSPACE_SHARED_INFO`], ...) into a
    /// domain's physmap: `arg` points to [`AddToPhysmap`].
    ADD_TO_PHYSMAP = 7, "add_to_physmap";
    /// Returns the highest guest frame number a domain has mapped: `arg`
    /// points to a [`DomidArg`].
    MAXIMUM_GPFN = 14, "maximum_gpfn";
    /// Unmap the page at a guest frame of a domain's physmap: `arg` points
    /// to [`RemoveFromPhysmap`].
    REMOVE_FROM_PHYSMAP = 15, "remove_from_physmap";
    /// Map several pages of a space into a domain's physmap, one result per
    /// page: `arg` points to [`AddToPhysmapBatch`] (with
    /// [`XENMAPSPACE_GMFN_FOREIGN`]: another domain's frames, the way
    /// privcmd maps guest memory for the toolstack).
    ADD_TO_PHYSMAP_BATCH = 23, "add_to_physmap_batch";
    /// Claim memory for a domain before populating it: `arg` points to a
    /// [`Reservation`] (`nr_extents` pages, 0 cancels the claim;
    /// `extent_start`, `extent_order` and `mem_flags` must be 0).
    CLAIM_PAGES = 24, "claim_pages";
    /// Map frames of a domain's resource (its grant table) into the
    /// caller's physmap: `arg` points to [`AcquireResource`].
    ACQUIRE_RESOURCE = 28, "acquire_resource";
    /// Returns the frames memory sharing has freed (`arg` unused; 0 without
    /// memory sharing, as a Xen 4.17 built without `CONFIG_MEM_SHARING`).
    GET_SHARING_FREED_PAGES = 18, "get_sharing_freed_pages";
    /// Returns the frames shared by memory sharing (`arg` unused; 0 without it).
    GET_SHARING_SHARED_PAGES = 19, "get_sharing_shared_pages";
    /// Set a domain's populate-on-demand target: `arg` points to a
    /// [`PodTarget`] (`xl mem-set`; the counts are written back).
    SET_POD_TARGET = 16, "set_pod_target";
    /// A domain's populate-on-demand counts: `arg` points to a [`PodTarget`].
    GET_POD_TARGET = 17, "get_pod_target";
}

crate::pod! {
    /// `xen_pod_target` (40 bytes): `target_pages` and `domid` in, the
    /// domain's pages and its populate-on-demand cache and entries out.
    pub struct PodTarget {
        pub target_pages: u64,
        pub tot_pages: u64,
        pub pod_cache_pages: u64,
        pub pod_entries: u64,
        pub domid: u16,
        pub pad: [u16; 3],
    }
}

const _: () = assert!(core::mem::size_of::<PodTarget>() == 40);

/// Most entries of a domain's memory map (Xen's `E820MAX`).
pub const E820_MAX: u32 = 1024;
/// E820 type: RAM.
pub const E820_RAM: u32 = 1;
/// E820 type: reserved.
pub const E820_RESERVED: u32 = 2;

/// `memory_op`'s `cmd`: the sub-operation is `cmd & MEMOP_CMD_MASK`; a
/// reservation operation continued by the hypervisor starts at extent
/// `cmd >> MEMOP_EXTENT_SHIFT` (Xen's encoding; guests pass 0 there).
pub const MEMOP_EXTENT_SHIFT: u32 = 6;
/// See [`MEMOP_EXTENT_SHIFT`].
pub const MEMOP_CMD_MASK: u64 = (1 << MEMOP_EXTENT_SHIFT) - 1;

/// Largest extent order a domain may use in populate_physmap and
/// decrease_reservation (Xen's `CONFIG_DOMU_MAX_ORDER`: 2 MiB extents).
pub const DOMU_MAX_ORDER: u32 = 9;
/// Largest extent order the control domain may use (Xen's
/// `CONFIG_CTLDOM_MAX_ORDER`: 1 GiB extents).
pub const CTLDOM_MAX_ORDER: u32 = 18;

crate::pod! {
    /// `xen_memory_reservation`: `extent_start` is a guest array of
    /// `nr_extents` u64 guest frame numbers, each the first of `1 << extent_order` pages.
    pub struct Reservation {
        pub extent_start: u64,
        pub nr_extents: u64,
        pub extent_order: u32,
        pub mem_flags: u32,
        pub domid: u16,
        pub pad: [u16; 3],
    }
    /// `xen_memory_map`: `buffer` is a guest array of `nr_entries` [`E820Entry`].
    pub struct MemoryMap { pub nr_entries: u32, pub pad: u32, pub buffer: u64 }
    /// `xen_foreign_memory_map`.
    pub struct ForeignMemoryMap { pub domid: u16, pub pad: [u16; 3], pub map: MemoryMap }
    /// `e820entry` (packed, 20 bytes): the 64-bit fields as two halves.
    pub struct E820Entry { pub addr_lo: u32, pub addr_hi: u32, pub size_lo: u32, pub size_hi: u32, pub kind: u32 }
    /// A domain id argument (`DOMID_SELF` for the caller).
    pub struct DomidArg { pub domid: u16 }
}

impl E820Entry {
    /// An entry.
    pub fn new(addr: u64, size: u64, kind: u32) -> E820Entry {
        E820Entry {
            addr_lo: addr as u32,
            addr_hi: (addr >> 32) as u32,
            size_lo: size as u32,
            size_hi: (size >> 32) as u32,
            kind,
        }
    }
    /// Its start address.
    pub fn addr(&self) -> u64 {
        ((self.addr_hi as u64) << 32) | self.addr_lo as u64
    }
    /// Its length.
    pub fn size(&self) -> u64 {
        ((self.size_hi as u64) << 32) | self.size_lo as u64
    }
}

const _: () = assert!(core::mem::size_of::<E820Entry>() == 20);
const _: () = assert!(core::mem::size_of::<MemoryMap>() == 16);
const _: () = assert!(core::mem::size_of::<ForeignMemoryMap>() == 24);
/// `xen_add_to_physmap.space`: the domain's shared_info page (idx 0).
pub const XENMAPSPACE_SHARED_INFO: u32 = 0;
/// `xen_add_to_physmap.space`: a frame of the grant table (idx: frame number,
/// bit 31 `XENMAPIDX_grant_table_status` for v2 status frames).
pub const XENMAPSPACE_GRANT_TABLE: u32 = 1;
/// `xen_add_to_physmap.space`: move a guest frame (idx: its gfn).
pub const XENMAPSPACE_GMFN: u32 = 2;
/// `xen_add_to_physmap.space`: a range of guest frames (`size` of them).
pub const XENMAPSPACE_GMFN_RANGE: u32 = 3;
/// `xen_add_to_physmap.space`: a frame of another domain (batch form only).
pub const XENMAPSPACE_GMFN_FOREIGN: u32 = 4;
/// `xen_add_to_physmap.space`: device MMIO (Arm).
pub const XENMAPSPACE_DEV_MMIO: u32 = 5;

crate::pod! {
    /// `xen_add_to_physmap` (24 bytes): map `idx` of `space` at `gpfn` in `domid`'s physmap.
    pub struct AddToPhysmap {
        pub domid: u16,
        pub size: u16,
        pub space: u32,
        pub idx: u64,
        pub gpfn: u64,
    }
}

const _: () = assert!(core::mem::size_of::<AddToPhysmap>() == 24);

/// `xen_mem_acquire_resource.type`: an ioreq server's pages.
pub const RESOURCE_IOREQ_SERVER: u16 = 0;
/// `xen_mem_acquire_resource.type`: a domain's grant table.
pub const RESOURCE_GRANT_TABLE: u16 = 1;
/// `xen_mem_acquire_resource.type`: a vCPU's trace buffer.
pub const RESOURCE_VMTRACE_BUF: u16 = 2;
/// `xen_mem_acquire_resource.id` of a grant table: its shared entries.
pub const RESOURCE_GRANT_TABLE_ID_SHARED: u32 = 0;
/// `xen_mem_acquire_resource.id` of a grant table: its v2 status frames.
pub const RESOURCE_GRANT_TABLE_ID_STATUS: u32 = 1;

crate::pod! {
    /// `xen_add_to_physmap_batch` (32 bytes): map `size` pages of `space`
    /// (`idxs`: a guest array of u64 indexes; for
    /// [`XENMAPSPACE_GMFN_FOREIGN`] guest frames of `foreign_domid`) at the
    /// guest frames `gpfns` (u64) of `domid`; `errs` (i32 per page) gets
    /// each page's result.
    pub struct AddToPhysmapBatch {
        pub domid: u16,
        pub space: u16,
        pub size: u16,
        /// `u.foreign_domid` (gmfn_foreign), else `u.res0` (must be 0).
        pub foreign_domid: u16,
        pub idxs: u64,
        pub gpfns: u64,
        pub errs: u64,
    }
    /// `xen_remove_from_physmap` (16 bytes).
    pub struct RemoveFromPhysmap {
        pub domid: u16,
        pub pad: [u16; 3],
        pub gpfn: u64,
    }
    /// `xen_mem_acquire_resource` (32 bytes): frames `frame ..
    /// frame + nr_frames` of resource (`kind`, `id`) of `domid`, mapped at
    /// the caller's guest frames listed (u64) at `frame_list`. A null
    /// `frame_list` (with `nr_frames` 0) asks for the resource's size,
    /// written back in `nr_frames`.
    pub struct AcquireResource {
        pub domid: u16,
        /// `type`: `RESOURCE_*`.
        pub kind: u16,
        pub id: u32,
        pub nr_frames: u32,
        /// Must be 0 (Linux calls it `flags`).
        pub pad: u32,
        pub frame: u64,
        pub frame_list: u64,
    }
}

const _: () = assert!(core::mem::size_of::<AddToPhysmapBatch>() == 32);
const _: () = assert!(core::mem::size_of::<RemoveFromPhysmap>() == 16);
const _: () = assert!(core::mem::size_of::<AcquireResource>() == 32);
const _: () = assert!(core::mem::offset_of!(AcquireResource, frame) == 16);
