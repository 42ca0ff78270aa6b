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

/// Livepatch sub-operations (`Livepatch::cmd`), Xen's `XEN_SYSCTL_LIVEPATCH_*`.
pub mod livepatch {
    /// Upload a payload ([`super::LpUpload`]).
    pub const UPLOAD: u32 = 0;
    /// Status of one payload ([`super::LpGet`]).
    pub const GET: u32 = 1;
    /// List payloads ([`super::LpList`]).
    pub const LIST: u32 = 2;
    /// Apply, revert, replace or unload a payload ([`super::LpAction`]).
    pub const ACTION: u32 = 3;

    /// Payload states (`LpStatus::state`).
    pub const STATE_CHECKED: u32 = 1;
    pub const STATE_APPLIED: u32 = 2;

    /// ACTION commands (`LpAction::cmd`).
    pub const ACTION_UNLOAD: u32 = 1;
    pub const ACTION_REVERT: u32 = 2;
    pub const ACTION_APPLY: u32 = 3;
    pub const ACTION_REPLACE: u32 = 4;
    /// `LpAction::flags`: apply without the stack-order check.
    pub const ACTION_APPLY_NODEPS: u32 = 1;

    /// Longest payload name, with its NUL (Xen's `XEN_LIVEPATCH_NAME_SIZE`).
    pub const NAME_SIZE: usize = 128;
    /// Largest payload file (2 MiB, as Xen).
    pub const MAX_PAYLOAD: u64 = 2 << 20;
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
    /// `XEN_SYSCTL_livepatch_op`: `cmd` is one of [`livepatch`]; `u` holds
    /// the sub-operation's argument ([`LpUpload`], [`LpGet`], [`LpList`],
    /// [`LpAction`]).
    pub struct Livepatch {
        pub cmd: u32,
        pub pad: u32,
        pub u: [u8; 112],
    }
    /// `xen_livepatch_name`: `name` points to `size` bytes (the name and its
    /// NUL; at most [`livepatch::NAME_SIZE`]).
    pub struct LpName {
        pub name: u64,
        pub size: u16,
        pub pad: [u16; 3],
    }
    /// `xen_livepatch_status`: state (`livepatch::STATE_*`) and the last
    /// action's result (0, `-EAGAIN` while pending, or `-errno`).
    pub struct LpStatus {
        pub state: u32,
        pub rc: i32,
    }
    /// UPLOAD: `size` bytes at `payload`.
    pub struct LpUpload {
        pub name: LpName,
        pub size: u64,
        pub payload: u64,
    }
    /// GET: out `status`.
    pub struct LpGet {
        pub name: LpName,
        pub status: LpStatus,
    }
    /// LIST: in `idx` (first entry) and `nr` (room in the arrays); out `nr`
    /// (entries written), `version` (changes on every upload and unload), and
    /// the hypercall's result is the number of entries after those returned.
    /// `status`: `nr` x [`LpStatus`]; `name`: `nr` x [`livepatch::NAME_SIZE`]
    /// bytes (NUL-terminated); `len`: `nr` x u32 (name lengths).
    pub struct LpList {
        pub version: u32,
        pub idx: u32,
        pub nr: u32,
        pub pad: u32,
        pub status: u64,
        pub name: u64,
        pub len: u64,
    }
    /// ACTION: `cmd` (`livepatch::ACTION_*`), `timeout` in ns (0 = 30 ms),
    /// `flags` (`livepatch::ACTION_APPLY_NODEPS`).
    pub struct LpAction {
        pub name: LpName,
        pub cmd: u32,
        pub timeout: u32,
        pub flags: u32,
        pub pad: u32,
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

impl Livepatch {
    /// A livepatch_op for sub-operation `cmd` with argument `arg`.
    pub fn new<T: crate::Pod>(cmd: u32, arg: &T) -> Livepatch {
        let mut l = Livepatch {
            cmd,
            ..Default::default()
        };
        let b = crate::Pod::as_bytes(arg);
        let n = b.len().min(112);
        l.u[..n].copy_from_slice(&b[..n]);
        l
    }

    /// Store `arg` in the argument union.
    pub fn set_arg<T: crate::Pod>(&mut self, arg: &T) {
        let b = crate::Pod::as_bytes(arg);
        let n = b.len().min(112);
        self.u[..n].copy_from_slice(&b[..n]);
    }

    /// The argument union read as `T`.
    pub fn arg<T: crate::Pod>(&self) -> T {
        let n = core::mem::size_of::<T>().min(112);
        let mut v = T::default();
        crate::Pod::as_bytes_mut(&mut v)[..n].copy_from_slice(&self.u[..n]);
        v
    }
}

const _: () = assert!(core::mem::size_of::<LpUpload>() <= 112);
const _: () = assert!(core::mem::size_of::<LpList>() <= 112);
const _: () = assert!(core::mem::size_of::<LpAction>() <= 112);
