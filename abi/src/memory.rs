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
    /// Map a page of a space ([`XENMAPSPACE_SHARED_INFO`], ...) into a
    /// domain's physmap: `arg` points to [`AddToPhysmap`].
    ADD_TO_PHYSMAP = 7, "add_to_physmap";
}

/// `memory_op`'s `cmd`: the sub-operation is `cmd & MEMOP_CMD_MASK`; a
/// reservation operation continued by the hypervisor starts at extent
/// `cmd >> MEMOP_EXTENT_SHIFT` (Xen's encoding; guests pass 0 there).
pub const MEMOP_EXTENT_SHIFT: u32 = 6;
/// See [`MEMOP_EXTENT_SHIFT`].
pub const MEMOP_CMD_MASK: u64 = (1 << MEMOP_EXTENT_SHIFT) - 1;

/// Largest extent order accepted (2 MiB extents).
pub const MAX_EXTENT_ORDER: u32 = 9;

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
    /// A domain id argument (`DOMID_SELF` for the caller).
    pub struct DomidArg { pub domid: u16 }
}

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
