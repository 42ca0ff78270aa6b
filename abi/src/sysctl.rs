//! `sysctl(op)` (hypercall 35): `op` points to a [`Sysctl`] whose `cmd`
//! selects the sub-operation. The structure is copied back on success.

crate::subops! {
    /// Read (and optionally clear) the console ring ([`ReadConsole`]).
    READCONSOLE = 1, "readconsole";
    /// Host facts ([`PhysInfo`]).
    PHYSINFO = 3, "physinfo";
    /// Information about several domains ([`GetDomainInfoList`]); domains
    /// the caller may not see are skipped.
    GETDOMAININFOLIST = 6, "getdomaininfolist";
    /// Live patching ([`Livepatch`]).
    LIVEPATCH_OP = 27, "livepatch_op";
}

/// `Sysctl::interface_version` Warden accepts.
pub const INTERFACE_VERSION: u32 = 0x5753_0001;

/// Livepatch sub-operations (`Livepatch::cmd`).
pub mod livepatch {
    /// Upload a payload.
    pub const UPLOAD: u32 = 1;
    /// Status of one payload.
    pub const GET: u32 = 2;
    /// List payloads.
    pub const LIST: u32 = 3;
    /// Apply, revert, replace or unload a payload.
    pub const ACTION: u32 = 4;
}

crate::pod! {
    /// The sysctl header and argument union.
    pub struct Sysctl {
        pub cmd: u32,
        pub interface_version: u32,
        pub u: [u8; 128],
    }
    /// `XEN_SYSCTL_readconsole`: reads up to `count` bytes into `buffer`
    /// (from the oldest byte, or from `index` if `incremental`), then clears
    /// the ring if `clear`. Out: `count` = bytes copied, `index` = position
    /// for the next incremental read (a position modulo 2^32).
    pub struct ReadConsole {
        pub clear: u8,
        pub incremental: u8,
        pub pad0: [u8; 2],
        pub index: u32,
        pub buffer: u64,
        pub count: u32,
        pub pad1: u32,
    }
    /// `XEN_SYSCTL_physinfo`.
    pub struct PhysInfo {
        pub threads_per_core: u32,
        pub cores_per_socket: u32,
        pub nr_cpus: u32,
        pub max_cpu_id: u32,
        pub nr_nodes: u32,
        pub max_node_id: u32,
        pub cpu_khz: u32,
        pub capabilities: u32,
        pub total_pages: u64,
        pub free_pages: u64,
        pub scrub_pages: u64,
        pub outstanding_pages: u64,
        pub max_mfn: u64,
        pub hw_cap: [u32; 8],
    }
    /// `XEN_SYSCTL_getdomaininfolist`: up to `max_domains` entries
    /// (`domctl::DomainInfo`) for domains with id >= `first_domain`, written
    /// to `buffer`; out: `num_domains`.
    pub struct GetDomainInfoList {
        pub first_domain: u16,
        pub pad0: u16,
        pub max_domains: u32,
        pub buffer: u64,
        pub num_domains: u32,
        pub pad1: u32,
    }
    /// `XEN_SYSCTL_livepatch_op`: `cmd` is one of [`livepatch`]; the rest is
    /// the sub-operation's argument (defined by the live-patch ABI).
    pub struct Livepatch {
        pub cmd: u32,
        pub pad: u32,
        pub u: [u8; 112],
    }
}

/// `PhysInfo::capabilities`: HVM guests supported.
pub const PHYSCAP_HVM: u32 = 1 << 0;
/// `PhysInfo::capabilities`: hardware-assisted paging.
pub const PHYSCAP_HAP: u32 = 1 << 2;

impl Sysctl {
    /// A sysctl for `cmd` with argument `arg`.
    pub fn new<T: crate::Pod>(cmd: u32, arg: &T) -> Sysctl {
        let mut s = Sysctl {
            cmd,
            interface_version: INTERFACE_VERSION,
            ..Default::default()
        };
        let b = crate::Pod::as_bytes(arg);
        let n = b.len().min(128);
        s.u[..n].copy_from_slice(&b[..n]);
        s
    }

    /// Store `arg` in the argument union.
    pub fn set_arg<T: crate::Pod>(&mut self, arg: &T) {
        let b = crate::Pod::as_bytes(arg);
        let n = b.len().min(128);
        self.u[..n].copy_from_slice(&b[..n]);
    }

    /// The argument union read as `T`.
    pub fn arg<T: crate::Pod>(&self) -> T {
        let n = core::mem::size_of::<T>().min(128);
        let mut v = T::default();
        crate::Pod::as_bytes_mut(&mut v)[..n].copy_from_slice(&self.u[..n]);
        v
    }
}

const _: () = assert!(core::mem::size_of::<PhysInfo>() <= 128);
const _: () = assert!(core::mem::size_of::<Livepatch>() <= 128);
