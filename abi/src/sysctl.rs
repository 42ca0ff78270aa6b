//! `sysctl(op)` (hypercall 35): Xen 4.17's `struct xen_sysctl`
//! (`xen/include/public/sysctl.h`, interface version 0x15). `op` points to a
//! [`Sysctl`] whose `cmd` selects the sub-operation; the structure is copied
//! back where Xen copies it back. A `Sysctl` with another
//! `interface_version` is refused with `-EACCES` before anything else.

crate::subops! {
    /// Read (and optionally clear) the console ring ([`ReadConsole`]).
    READCONSOLE = 1, "readconsole";
    /// Host facts ([`PhysInfo`]).
    PHYSINFO = 3, "physinfo";
    /// The scheduler's id ([`SchedId`]).
    SCHED_ID = 4, "sched_id";
    /// Information about several domains ([`GetDomainInfoList`]); domains
    /// the caller may not see are skipped.
    GETDOMAININFOLIST = 6, "getdomaininfolist";
    /// Run debug keys as if typed on the serial console ([`DebugKeys`]).
    DEBUG_KEYS = 7, "debug_keys";
    /// Each CPU's core, socket and node ([`CpuTopoInfo`]).
    CPUTOPOINFO = 16, "cputopoinfo";
    /// Each NUMA node's memory and distances ([`NumaInfo`]).
    NUMAINFO = 17, "numainfo";
    /// CPU pools ([`CpupoolOp`]).
    CPUPOOL_OP = 18, "cpupool_op";
    /// A CPU featureset ([`CpuFeatureset`]).
    GET_CPU_FEATURESET = 26, "get_cpu_featureset";
    /// A system CPUID and MSR policy ([`SysCpuPolicy`]).
    GET_CPU_POLICY = 29, "get_cpu_policy";
    /// Live patching ([`Livepatch`]).
    LIVEPATCH_OP = 27, "livepatch_op";
}

/// `XEN_SYSCTL_INTERFACE_VERSION` of Xen 4.17.
pub const INTERFACE_VERSION: u32 = 0x0000_0015;

/// Size of the argument union (`u.pad[128]`).
pub const UNION_SIZE: usize = 128;

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
    /// Most entries one LIST call may ask for (Xen: more is -E2BIG).
    pub const LIST_MAX: u32 = 1024;
}

/// `CpuFeatureset::index` (`XEN_SYSCTL_cpu_featureset_*`).
pub mod featureset {
    pub const RAW: u32 = 0;
    pub const HOST: u32 = 1;
    pub const PV: u32 = 2;
    pub const HVM: u32 = 3;
    pub const PV_MAX: u32 = 4;
    pub const HVM_MAX: u32 = 5;
}

/// `SysCpuPolicy::index` (`XEN_SYSCTL_cpu_policy_*`).
pub mod cpu_policy {
    pub const RAW: u32 = 0;
    pub const HOST: u32 = 1;
    pub const PV_MAX: u32 = 2;
    pub const HVM_MAX: u32 = 3;
    pub const PV_DEFAULT: u32 = 4;
    pub const HVM_DEFAULT: u32 = 5;
}

/// `CpuidLeaf::subleaf` of a leaf without subleaves (`XEN_CPUID_NO_SUBLEAF`).
pub const CPUID_NO_SUBLEAF: u32 = 0xFFFF_FFFF;
/// Most CPUID leaves a serialised policy has (Xen 4.17's
/// `CPUID_MAX_SERIALISED_LEAVES`: basic 14, leaf 7 +2, leaf 4 +5, leaf 0xb
/// +1, leaf 0xd +62, extended 34, the two hypervisor limits).
pub const CPUID_MAX_SERIALISED_LEAVES: u32 = 14 + 2 + 5 + 1 + 62 + 34 + 2;
/// Most MSRs a serialised policy has (`MSR_MAX_SERIALISED_ENTRIES`:
/// PLATFORM_INFO and ARCH_CAPABILITIES).
pub const MSR_MAX_SERIALISED_ENTRIES: u32 = 2;
/// 32-bit words of a featureset (Xen 4.17's `FSCAPINTS`, as of 4.17.7:
/// up to 0x80000021 ECX, word 18). A toolstack built with another count
/// copes: a shorter buffer gets `-ENOBUFS` with the words that fit.
pub const FSCAPINTS: u32 = 19;

/// `CpupoolOp::op` (`XEN_SYSCTL_CPUPOOL_OP_*`).
pub mod cpupool {
    pub const CREATE: u32 = 1;
    pub const DESTROY: u32 = 2;
    /// The first pool whose id is >= `cpupool_id`: its id, scheduler,
    /// domain count and CPUs.
    pub const INFO: u32 = 3;
    pub const ADDCPU: u32 = 4;
    pub const RMCPU: u32 = 5;
    pub const MOVEDOMAIN: u32 = 6;
    /// The CPUs in no pool.
    pub const FREEINFO: u32 = 7;
    /// "Any" pool or CPU.
    pub const PAR_ANY: u32 = 0xFFFF_FFFF;
}

crate::pod! {
    /// `struct xen_sysctl` (136 bytes).
    pub struct Sysctl {
        pub cmd: u32,
        pub interface_version: u32,
        pub u: [u8; 128],
    }
    /// `struct xen_sysctl_readconsole` (24 bytes): reads up to `count` bytes
    /// into `buffer` (from the oldest byte, or from `index` if
    /// `incremental`), then clears what it read if `clear`. Out: `count` =
    /// bytes copied, `index` = position for the next incremental read.
    pub struct ReadConsole {
        pub clear: u8,
        pub incremental: u8,
        pub pad0: u8,
        pub pad1: u8,
        pub index: u32,
        pub buffer: u64,
        pub count: u32,
        pub pad2: u32,
    }
    /// `struct xen_sysctl_physinfo` (112 bytes).
    pub struct PhysInfo {
        pub threads_per_core: u32,
        pub cores_per_socket: u32,
        /// CPUs online.
        pub nr_cpus: u32,
        /// Largest possible CPU id.
        pub max_cpu_id: u32,
        pub nr_nodes: u32,
        pub max_node_id: u32,
        pub cpu_khz: u32,
        /// `PHYSCAP_*`.
        pub capabilities: u32,
        pub arch_capabilities: u32,
        pub pad: u32,
        pub total_pages: u64,
        pub free_pages: u64,
        pub scrub_pages: u64,
        pub outstanding_pages: u64,
        /// Largest possible machine frame number.
        pub max_mfn: u64,
        pub hw_cap: [u32; 8],
    }
    /// `struct xen_sysctl_sched_id`.
    pub struct SchedId { pub sched_id: u32 }
    /// `struct xen_sysctl_debug_keys` (16 bytes): the `nr_keys` bytes at
    /// `keys` are run in order as debug keys; nothing is copied back.
    pub struct DebugKeys {
        pub keys: u64,
        pub nr_keys: u32,
        pub pad: u32,
    }
    /// `struct xen_sysctl_getdomaininfolist` (24 bytes): up to `max_domains`
    /// entries (`domctl::GetDomainInfo`) for domains with id >=
    /// `first_domain`, written to `buffer`; out: `num_domains`.
    pub struct GetDomainInfoList {
        pub first_domain: u16,
        pub pad0: u16,
        pub max_domains: u32,
        pub buffer: u64,
        pub num_domains: u32,
        pub pad1: u32,
    }
    /// `struct xenctl_bitmap`: `nr_bits` bits at `bitmap`.
    pub struct CtlBitmap {
        pub bitmap: u64,
        pub nr_bits: u32,
        pub pad: u32,
    }
    /// `struct xen_sysctl_cputopo`.
    pub struct CpuTopo { pub core: u32, pub socket: u32, pub node: u32 }
    /// `struct xen_sysctl_cputopoinfo`: `num_cpus` in: room at `cputopo`
    /// (a null handle asks for the count), out: entries.
    pub struct CpuTopoInfo {
        pub num_cpus: u32,
        pub pad: u32,
        pub cputopo: u64,
    }
    /// `struct xen_sysctl_meminfo`.
    pub struct MemInfo { pub memsize: u64, pub memfree: u64 }
    /// `struct xen_sysctl_numainfo`: `num_nodes` in: room, out: nodes;
    /// `distance` holds num_nodes x num_nodes u32.
    pub struct NumaInfo {
        pub num_nodes: u32,
        pub pad: u32,
        pub meminfo: u64,
        pub distance: u64,
    }
    /// `struct xen_sysctl_cpu_featureset` (16 bytes): `nr_features` in:
    /// room (u32 words) at `features` (a null handle asks for the size),
    /// out: words written.
    pub struct CpuFeatureset {
        pub index: u32,
        pub nr_features: u32,
        pub features: u64,
    }
    /// `struct xen_sysctl_cpu_policy` (32 bytes): null handles ask for the
    /// largest sizes.
    pub struct SysCpuPolicy {
        pub index: u32,
        pub nr_leaves: u32,
        pub nr_msrs: u32,
        /// Must be 0.
        pub rsvd: u32,
        pub leaves: u64,
        pub msrs: u64,
    }
    /// `xen_cpuid_leaf_t` (24 bytes).
    pub struct CpuidLeaf {
        pub leaf: u32,
        /// [`CPUID_NO_SUBLEAF`] for a leaf without subleaves.
        pub subleaf: u32,
        pub a: u32,
        pub b: u32,
        pub c: u32,
        pub d: u32,
    }
    /// `xen_msr_entry_t` (16 bytes).
    pub struct MsrEntry {
        pub idx: u32,
        /// Must be 0.
        pub flags: u32,
        pub val: u64,
    }
    /// `struct xen_sysctl_cpupool_op` (40 bytes).
    pub struct CpupoolOp {
        /// `cpupool::*`.
        pub op: u32,
        pub cpupool_id: u32,
        pub sched_id: u32,
        pub domid: u32,
        pub cpu: u32,
        pub n_dom: u32,
        pub cpumap: CtlBitmap,
    }
    /// `struct xen_sysctl_livepatch_op` (72 bytes): `cmd` is one of
    /// [`livepatch`]; `u` holds the sub-operation's argument ([`LpUpload`],
    /// [`LpGet`], [`LpList`], [`LpAction`]).
    pub struct Livepatch {
        pub cmd: u32,
        pub pad: u32,
        pub u: [u8; 64],
    }
    /// `struct xen_livepatch_name`: `name` points to `size` bytes (the name
    /// and its NUL; at most [`livepatch::NAME_SIZE`]).
    pub struct LpName {
        pub name: u64,
        pub size: u16,
        pub pad: [u16; 3],
    }
    /// `struct xen_livepatch_status`: state (`livepatch::STATE_*`) and the
    /// last action's result (0, `-EAGAIN` while pending, or `-errno`).
    pub struct LpStatus {
        pub state: u32,
        pub rc: i32,
    }
    /// UPLOAD: `size` bytes at `payload` (Warden's payloads end with their
    /// signature trailer: in the file, so the layout is Xen's).
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
    /// LIST (`struct xen_sysctl_livepatch_list`): in `idx` (first entry)
    /// and `nr` (room in the arrays; 0 asks only for the totals); out `nr`
    /// = entries after those returned, `version` (changes on every upload
    /// and unload), `name_total_size` / `metadata_total_size`; the
    /// hypercall returns the number of entries written. `status`: `nr` x
    /// [`LpStatus`]; `name`: the names, each with its NUL, one after the
    /// other; `len`: `nr` x u32 (each name's length with its NUL);
    /// `metadata` / `metadata_len` likewise.
    pub struct LpList {
        pub version: u32,
        pub idx: u32,
        pub nr: u32,
        pub pad: u32,
        pub name_total_size: u32,
        pub metadata_total_size: u32,
        pub status: u64,
        pub name: u64,
        pub len: u64,
        pub metadata: u64,
        pub metadata_len: u64,
    }
    /// ACTION: `cmd` (`livepatch::ACTION_*`), `timeout` in ns (0 = the
    /// hypervisor's default), `flags` (`livepatch::ACTION_APPLY_NODEPS`).
    pub struct LpAction {
        pub name: LpName,
        pub cmd: u32,
        pub timeout: u32,
        pub flags: u32,
        pub pad: u32,
    }
}

/// `PhysInfo::capabilities` (`XEN_SYSCTL_PHYSCAP_*`): HVM guests.
pub const PHYSCAP_HVM: u32 = 1 << 0;
/// PV guests.
pub const PHYSCAP_PV: u32 = 1 << 1;
/// Device pass-through with an IOMMU.
pub const PHYSCAP_DIRECTIO: u32 = 1 << 2;
/// Hardware-assisted paging.
pub const PHYSCAP_HAP: u32 = 1 << 3;
/// Shadow paging.
pub const PHYSCAP_SHADOW: u32 = 1 << 4;
/// IOMMU shares the HAP page tables.
pub const PHYSCAP_IOMMU_HAP_PT_SHARE: u32 = 1 << 5;
pub const PHYSCAP_VMTRACE: u32 = 1 << 6;
pub const PHYSCAP_VPMU: u32 = 1 << 7;
/// Grant tables version 1.
pub const PHYSCAP_GNTTAB_V1: u32 = 1 << 8;
/// Grant tables version 2.
pub const PHYSCAP_GNTTAB_V2: u32 = 1 << 9;

/// Scheduler ids (`XEN_SCHEDULER_*`, domctl.h).
pub const SCHEDULER_CREDIT: u32 = 5;
pub const SCHEDULER_CREDIT2: u32 = 6;
pub const SCHEDULER_ARINC653: u32 = 7;
pub const SCHEDULER_RTDS: u32 = 8;
pub const SCHEDULER_NULL: u32 = 9;

/// `CpuTopo` fields of a CPU that is not present.
pub const INVALID_TOPOLOGY_ID: u32 = u32::MAX;
/// `MemInfo` fields of a node that is not online.
pub const INVALID_MEM_SZ: u64 = u32::MAX as u64;

impl Sysctl {
    /// A sysctl for `cmd` with argument `arg`.
    pub fn new<T: crate::Pod>(cmd: u32, arg: &T) -> Sysctl {
        let mut s = Sysctl {
            cmd,
            interface_version: INTERFACE_VERSION,
            ..Default::default()
        };
        s.set_arg(arg);
        s
    }

    /// Store `arg` in the argument union.
    pub fn set_arg<T: crate::Pod>(&mut self, arg: &T) {
        let b = crate::Pod::as_bytes(arg);
        let n = b.len().min(UNION_SIZE);
        self.u[..n].copy_from_slice(&b[..n]);
    }

    /// The argument union read as `T`.
    pub fn arg<T: crate::Pod>(&self) -> T {
        let n = core::mem::size_of::<T>().min(UNION_SIZE);
        let mut v = T::default();
        crate::Pod::as_bytes_mut(&mut v)[..n].copy_from_slice(&self.u[..n]);
        v
    }
}

/// Size of `Livepatch::u`.
const LP_UNION: usize = 64;

impl Livepatch {
    /// A livepatch_op for sub-operation `cmd` with argument `arg`.
    pub fn new<T: crate::Pod>(cmd: u32, arg: &T) -> Livepatch {
        let mut l = Livepatch {
            cmd,
            ..Default::default()
        };
        l.set_arg(arg);
        l
    }

    /// Store `arg` in the argument union.
    pub fn set_arg<T: crate::Pod>(&mut self, arg: &T) {
        let b = crate::Pod::as_bytes(arg);
        let n = b.len().min(LP_UNION);
        self.u[..n].copy_from_slice(&b[..n]);
    }

    /// The argument union read as `T`.
    pub fn arg<T: crate::Pod>(&self) -> T {
        let n = core::mem::size_of::<T>().min(LP_UNION);
        let mut v = T::default();
        crate::Pod::as_bytes_mut(&mut v)[..n].copy_from_slice(&self.u[..n]);
        v
    }
}

// Xen 4.17's sizes.
const _: () = assert!(core::mem::size_of::<Sysctl>() == 136);
const _: () = assert!(core::mem::offset_of!(Sysctl, u) == 8);
const _: () = assert!(core::mem::size_of::<ReadConsole>() == 24);
const _: () = assert!(core::mem::size_of::<PhysInfo>() == 112);
const _: () = assert!(core::mem::offset_of!(PhysInfo, total_pages) == 40);
const _: () = assert!(core::mem::offset_of!(PhysInfo, hw_cap) == 80);
const _: () = assert!(core::mem::size_of::<SchedId>() == 4);
const _: () = assert!(core::mem::size_of::<DebugKeys>() == 16);
const _: () = assert!(core::mem::size_of::<GetDomainInfoList>() == 24);
const _: () = assert!(core::mem::size_of::<CtlBitmap>() == 16);
const _: () = assert!(core::mem::size_of::<CpuTopo>() == 12);
const _: () = assert!(core::mem::size_of::<CpuTopoInfo>() == 16);
const _: () = assert!(core::mem::size_of::<MemInfo>() == 16);
const _: () = assert!(core::mem::size_of::<NumaInfo>() == 24);
const _: () = assert!(core::mem::size_of::<CpupoolOp>() == 40);
const _: () = assert!(core::mem::size_of::<Livepatch>() == 72);
const _: () = assert!(core::mem::size_of::<LpName>() == 16);
const _: () = assert!(core::mem::size_of::<LpUpload>() == 32);
const _: () = assert!(core::mem::size_of::<LpGet>() == 24);
const _: () = assert!(core::mem::size_of::<LpList>() == LP_UNION);
const _: () = assert!(core::mem::size_of::<LpAction>() == 32);
const _: () = assert!(core::mem::size_of::<CpuFeatureset>() == 16);
const _: () = assert!(core::mem::size_of::<SysCpuPolicy>() == 32);
const _: () = assert!(core::mem::size_of::<CpuidLeaf>() == 24);
const _: () = assert!(core::mem::size_of::<MsrEntry>() == 16);
