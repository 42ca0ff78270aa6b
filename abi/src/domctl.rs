//! `domctl(op)` (hypercall 36): Xen 4.17's `struct xen_domctl`
//! (`xen/include/public/domctl.h`, interface version 0x15). `op` points to a
//! [`Domctl`] whose `cmd` selects the sub-operation and whose `u` holds its
//! argument structure; the structure is copied back where Xen copies it back.
//! A `Domctl` with another `interface_version` is refused with `-EACCES`
//! before anything else happens, as Xen does.

use crate::DomId;

crate::subops! {
    /// Create a domain ([`CreateDomain`]); `domain` in: wanted id (0 or
    /// >= `DOMID_FIRST_RESERVED` = any), out: the new id. Created paused.
    CREATEDOMAIN = 1, "createdomain";
    /// Destroy `domain`: stop it and scrub and free its memory.
    DESTROYDOMAIN = 2, "destroydomain";
    /// Pause `domain` (counted; not the caller itself).
    PAUSEDOMAIN = 3, "pausedomain";
    /// Undo one pause of `domain`.
    UNPAUSEDOMAIN = 4, "unpausedomain";
    /// [`GetDomainInfo`] of the first domain whose id is >= `domain`
    /// (Xen 4.17's semantics; `domain` comes back as the id reported).
    GETDOMAININFO = 5, "getdomaininfo";
    /// Set the memory limit ([`MaxMem`]).
    MAX_MEM = 11, "max_mem";
    /// Set a vCPU's hard and/or soft CPU affinity ([`VcpuAffinity`]; the
    /// effective masks are written back to its bitmaps).
    SETVCPUAFFINITY = 9, "setvcpuaffinity";
    /// A vCPU's state ([`GetVcpuInfo`], copied back).
    GETVCPUINFO = 14, "getvcpuinfo";
    /// Allocate the vCPUs ([`MaxVcpus`]): `max` must equal createdomain's `max_vcpus`.
    MAX_VCPUS = 15, "max_vcpus";
    /// The domain's scheduling parameters ([`SchedulerOp`], copied back).
    SCHEDULER_OP = 16, "scheduler_op";
    /// Set the domain's handle (UUID, [`DomainHandle`]).
    SETDOMAINHANDLE = 17, "setdomainhandle";
    /// A vCPU's hard and/or soft CPU affinity ([`VcpuAffinity`]: written
    /// to its bitmaps).
    GETVCPUAFFINITY = 25, "getvcpuaffinity";
    /// Read the domain's HVM context ([`HvmContext`]; a null buffer asks
    /// for the size): the records of `crate::xen::hvm_save`.
    GETHVMCONTEXT = 33, "gethvmcontext";
    /// Load HVM context records ([`HvmContext`]) into a domain (not the caller).
    SETHVMCONTEXT = 34, "sethvmcontext";
    /// The domain's TSC mode ([`TscInfo`], copied back).
    GETTSCINFO = 59, "gettscinfo";
    /// Set the domain's TSC mode ([`TscInfo`]).
    SETTSCINFO = 60, "settscinfo";
    /// Set the NUMA nodes the domain's memory should come from
    /// ([`NodeAffinity`]).
    SETNODEAFFINITY = 68, "setnodeaffinity";
    /// The domain's NUMA node affinity ([`NodeAffinity`]: written to its bitmap).
    GETNODEAFFINITY = 69, "getnodeaffinity";
    /// Flush caches for a range of the domain's frames ([`CacheFlush`];
    /// Arm only: an x86 Xen answers `-ENOSYS` after the check).
    CACHEFLUSH = 71, "cacheflush";
    /// The domain's CPUID and MSR policy ([`CpuPolicy`]).
    GET_CPU_POLICY = 82, "get_cpu_policy";
    /// Set the domain's CPUID and MSR policy ([`CpuPolicy`]).
    SET_CPU_POLICY = 83, "set_cpu_policy";
    /// The size of the domain's paging memory pool ([`PagingMempool`]).
    GET_PAGING_MEMPOOL_SIZE = 85, "get_paging_mempool_size";
    /// Set the size of the domain's paging memory pool ([`PagingMempool`]).
    SET_PAGING_MEMPOOL_SIZE = 86, "set_paging_mempool_size";
}

/// `XEN_VCPUAFFINITY_HARD`: the hard affinity (where the vCPU may run).
pub const VCPUAFFINITY_HARD: u32 = 1 << 0;
/// `XEN_VCPUAFFINITY_SOFT`: the soft affinity (where it prefers to run).
pub const VCPUAFFINITY_SOFT: u32 = 1 << 1;
/// `XEN_VCPUAFFINITY_FORCE`: undo a SCHEDOP_pin_override.
pub const VCPUAFFINITY_FORCE: u32 = 1 << 2;

/// XEN_DOMCTL_SCHEDOP_putinfo: set the domain's parameters.
pub const SCHEDOP_PUTINFO: u32 = 0;
/// XEN_DOMCTL_SCHEDOP_getinfo: the domain's parameters.
pub const SCHEDOP_GETINFO: u32 = 1;
/// XEN_DOMCTL_SCHEDOP_putvcpuinfo: per-vCPU parameters (not credit2's).
pub const SCHEDOP_PUTVCPUINFO: u32 = 2;
/// XEN_DOMCTL_SCHEDOP_getvcpuinfo.
pub const SCHEDOP_GETVCPUINFO: u32 = 3;

/// `XEN_DOMCTL_INTERFACE_VERSION` of Xen 4.17.
pub const INTERFACE_VERSION: u32 = 0x0000_0015;

/// Size of the argument union (`u.pad[128]`).
pub const UNION_SIZE: usize = 128;

crate::pod! {
    /// `struct xen_domctl` (144 bytes).
    pub struct Domctl {
        pub cmd: u32,
        pub interface_version: u32,
        pub domain: u16,
        pub pad: [u16; 3],
        pub u: [u8; 128],
    }
    /// `struct xen_arch_domainconfig` (x86).
    pub struct ArchDomainConfig {
        /// `XEN_X86_EMU_*`.
        pub emulation_flags: u32,
        /// `XEN_X86_MSR_RELAXED`.
        pub misc_flags: u32,
    }
    /// `struct xen_domctl_createdomain` (64 bytes).
    pub struct CreateDomain {
        /// Security label (a FLASK SID); 0: the label Xen gives a domain
        /// created by another domain (unlabeled). libxl passes the `domU`
        /// initial SID when `seclabel=` is not given.
        pub ssidref: u32,
        pub handle: [u8; 16],
        /// `CDF_*`.
        pub flags: u32,
        /// `IOMMU_*` (only with `CDF_IOMMU`).
        pub iommu_opts: u32,
        /// vCPUs (>= 1; `max_vcpus` must later give the same number).
        pub max_vcpus: u32,
        pub max_evtchn_port: u32,
        /// Negative: the hypervisor's default.
        pub max_grant_frames: i32,
        /// Negative: the hypervisor's default.
        pub max_maptrack_frames: i32,
        /// Low 4 bits: the highest grant-table version the domain may use.
        pub grant_opts: u32,
        /// Per-vCPU trace buffer bytes (0: none).
        pub vmtrace_size: u32,
        pub cpupool_id: u32,
        pub arch: ArchDomainConfig,
    }
    /// `struct xen_domctl_getdomaininfo` (112 bytes; also the element of
    /// sysctl getdomaininfolist).
    pub struct GetDomainInfo {
        pub domain: u16,
        pub pad1: u16,
        /// `DOMINF_*`.
        pub flags: u32,
        pub tot_pages: u64,
        pub max_pages: u64,
        pub outstanding_pages: u64,
        pub shr_pages: u64,
        pub paged_pages: u64,
        /// GFN of the shared_info page.
        pub shared_info_frame: u64,
        /// Nanoseconds its vCPUs ran.
        pub cpu_time: u64,
        pub nr_online_vcpus: u32,
        /// [`INVALID_MAX_VCPU_ID`] without vCPUs.
        pub max_vcpu_id: u32,
        pub ssidref: u32,
        pub handle: [u8; 16],
        pub cpupool: u32,
        /// Guest physical address bits.
        pub gpaddr_bits: u8,
        pub pad2: [u8; 7],
        pub arch_config: ArchDomainConfig,
    }
    /// `struct xen_domctl_max_mem`.
    pub struct MaxMem { pub max_memkb: u64 }
    /// `struct xen_domctl_max_vcpus`.
    pub struct MaxVcpus { pub max: u32 }
    /// `struct xen_domctl_setdomainhandle`.
    pub struct DomainHandle { pub handle: [u8; 16] }
    /// `struct xen_domctl_tsc_info` (24 bytes).
    pub struct TscInfo {
        /// `TSC_MODE_*`.
        pub tsc_mode: u32,
        pub gtsc_khz: u32,
        pub incarnation: u32,
        pub pad: u32,
        pub elapsed_nsec: u64,
    }
    /// `struct xen_domctl_nodeaffinity`: a `xenctl_bitmap` of nodes.
    pub struct NodeAffinity {
        /// Guest address of the bitmap (bytes, bit n of byte n/8 = node n).
        pub bitmap: u64,
        pub nr_bits: u32,
        pub pad: u32,
    }
    /// `struct xenctl_bitmap`: `nr_bits` bits at guest address `bitmap`
    /// (bit n in byte n/8).
    pub struct XenctlBitmap {
        pub bitmap: u64,
        pub nr_bits: u32,
        pub pad: u32,
    }
    /// `struct xen_domctl_vcpuaffinity` (40 bytes).
    pub struct VcpuAffinity {
        pub vcpu: u32,
        /// `VCPUAFFINITY_*`.
        pub flags: u32,
        pub cpumap_hard: XenctlBitmap,
        pub cpumap_soft: XenctlBitmap,
    }
    /// `struct xen_domctl_getvcpuinfo` (24 bytes).
    pub struct GetVcpuInfo {
        /// In: the vCPU.
        pub vcpu: u32,
        pub online: u8,
        pub blocked: u8,
        pub running: u8,
        pub pad0: u8,
        /// Time it has run (ns).
        pub cpu_time: u64,
        /// The physical CPU it runs (or last ran) on.
        pub cpu: u32,
        pub pad1: u32,
    }
    /// `struct xen_domctl_scheduler_op` (24 bytes) with the credit2 member
    /// of its union (`weight`, `cap`; the other members' bytes in `rest`).
    pub struct SchedulerOp {
        /// `XEN_SCHEDULER_*` of the domain's scheduler.
        pub sched_id: u32,
        /// `SCHEDOP_*`.
        pub cmd: u32,
        pub weight: u16,
        pub cap: u16,
        pub rest: [u32; 3],
    }
    /// `struct xen_domctl_cacheflush`.
    pub struct CacheFlush { pub start_pfn: u64, pub nr_pfns: u64 }
    /// `struct xen_domctl_cpu_policy` (40 bytes): `leaves` is a guest array
    /// of [`crate::sysctl::CpuidLeaf`], `msrs` of [`crate::sysctl::MsrEntry`].
    pub struct CpuPolicy {
        pub nr_leaves: u32,
        pub nr_msrs: u32,
        pub leaves: u64,
        pub msrs: u64,
        /// Out (set_cpu_policy's refusals): the leaf, subleaf and MSR objected to.
        pub err_leaf: u32,
        pub err_subleaf: u32,
        pub err_msr: u32,
        pub pad: u32,
    }
    /// `struct xen_domctl_paging_mempool`: the pool's size in bytes.
    pub struct PagingMempool { pub size: u64 }
    /// `struct xen_domctl_hvmcontext`: `size` in: the buffer's size, out:
    /// bytes written (gethvmcontext with a null `buffer`: the size needed).
    pub struct HvmContext {
        pub size: u32,
        pub pad: u32,
        pub buffer: u64,
    }
}

/// `CreateDomain::flags` (`XEN_DOMCTL_CDF_*`): an HVM guest.
pub const CDF_HVM: u32 = 1 << 0;
/// Hardware-assisted paging.
pub const CDF_HAP: u32 = 1 << 1;
/// Memory integrity checked by tboot across S3.
pub const CDF_S3_INTEGRITY: u32 = 1 << 2;
/// Out-of-sync shadow page tables off.
pub const CDF_OOS_OFF: u32 = 1 << 3;
/// A xenstore domain.
pub const CDF_XS_DOMAIN: u32 = 1 << 4;
/// May use the IOMMU.
pub const CDF_IOMMU: u32 = 1 << 5;
/// Nested virtualization.
pub const CDF_NESTED_VIRT: u32 = 1 << 6;
/// Expose the vPMU.
pub const CDF_VPMU: u32 = 1 << 7;
/// Every `CDF_*` flag Xen 4.17 knows.
pub const CDF_ALL: u32 = CDF_HVM
    | CDF_HAP
    | CDF_S3_INTEGRITY
    | CDF_OOS_OFF
    | CDF_XS_DOMAIN
    | CDF_IOMMU
    | CDF_NESTED_VIRT
    | CDF_VPMU;

/// `CreateDomain::iommu_opts`: do not share page tables with the IOMMU.
pub const IOMMU_NO_SHAREPT: u32 = 1 << 0;
/// `CreateDomain::grant_opts`: the mask of the maximum grant version.
pub const GRANT_VERSION_MASK: u32 = 0xf;

/// `ArchDomainConfig::emulation_flags` (`XEN_X86_EMU_*`): local APIC.
pub const X86_EMU_LAPIC: u32 = 1 << 0;
pub const X86_EMU_HPET: u32 = 1 << 1;
pub const X86_EMU_PM: u32 = 1 << 2;
pub const X86_EMU_RTC: u32 = 1 << 3;
pub const X86_EMU_IOAPIC: u32 = 1 << 4;
pub const X86_EMU_PIC: u32 = 1 << 5;
pub const X86_EMU_VGA: u32 = 1 << 6;
pub const X86_EMU_IOMMU: u32 = 1 << 7;
pub const X86_EMU_PIT: u32 = 1 << 8;
pub const X86_EMU_USE_PIRQ: u32 = 1 << 9;
pub const X86_EMU_VPCI: u32 = 1 << 10;
/// Every emulator flag.
pub const X86_EMU_ALL: u32 = (1 << 11) - 1;
/// `ArchDomainConfig::misc_flags`: unhandled MSRs read 0 and ignore writes.
pub const X86_MSR_RELAXED: u32 = 1 << 0;

/// `GetDomainInfo::flags` (`XEN_DOMINF_*`): being destroyed.
pub const DOMINF_DYING: u32 = 1 << 0;
/// An HVM guest.
pub const DOMINF_HVM_GUEST: u32 = 1 << 1;
/// Shut down (reason in bits 16..24).
pub const DOMINF_SHUTDOWN: u32 = 1 << 2;
/// Paused by a controller.
pub const DOMINF_PAUSED: u32 = 1 << 3;
/// Every online vCPU is blocked.
pub const DOMINF_BLOCKED: u32 = 1 << 4;
/// Some vCPU is running.
pub const DOMINF_RUNNING: u32 = 1 << 5;
/// Being debugged.
pub const DOMINF_DEBUGGED: u32 = 1 << 6;
/// A xenstore domain.
pub const DOMINF_XS_DOMAIN: u32 = 1 << 7;
/// Hardware-assisted paging.
pub const DOMINF_HAP: u32 = 1 << 8;
/// Shift of the shutdown reason.
pub const DOMINF_SHUTDOWN_SHIFT: u32 = 16;
/// Mask of the shutdown reason (after the shift).
pub const DOMINF_SHUTDOWN_MASK: u32 = 0xff;
/// `GetDomainInfo::max_vcpu_id` of a domain without vCPUs.
pub const INVALID_MAX_VCPU_ID: u32 = u32::MAX;

/// Xen's `HVM_MAX_VCPUS`.
pub const HVM_MAX_VCPUS: u32 = 128;

/// `TscInfo::tsc_mode`: native TSC where the host's is safe and the
/// frequency matches, else emulated.
pub const TSC_MODE_DEFAULT: u32 = 0;
/// `TscInfo::tsc_mode`: always emulate RDTSC.
pub const TSC_MODE_ALWAYS_EMULATE: u32 = 1;
/// `TscInfo::tsc_mode`: never emulate (the host's TSC).
pub const TSC_MODE_NEVER_EMULATE: u32 = 2;

impl Domctl {
    /// A domctl for `cmd` on `domain` with argument `arg`.
    pub fn new<T: crate::Pod>(cmd: u32, domain: DomId, arg: &T) -> Domctl {
        let mut d = Domctl {
            cmd,
            interface_version: INTERFACE_VERSION,
            domain,
            ..Default::default()
        };
        d.set_arg(arg);
        d
    }

    /// Store `arg` in the argument union.
    pub fn set_arg<T: crate::Pod>(&mut self, arg: &T) {
        let b = crate::Pod::as_bytes(arg);
        let n = b.len().min(UNION_SIZE);
        self.u[..n].copy_from_slice(&b[..n]);
    }

    /// The argument union read as `T` (its first `size_of::<T>()` bytes).
    pub fn arg<T: crate::Pod>(&self) -> T {
        let n = core::mem::size_of::<T>().min(UNION_SIZE);
        let mut v = T::default();
        crate::Pod::as_bytes_mut(&mut v)[..n].copy_from_slice(&self.u[..n]);
        v
    }
}

// Xen 4.17's sizes (the union members are at most its 128-byte pad).
const _: () = assert!(core::mem::size_of::<Domctl>() == 144);
const _: () = assert!(core::mem::size_of::<GetVcpuInfo>() == 24);
const _: () = assert!(core::mem::size_of::<VcpuAffinity>() == 40);
const _: () = assert!(core::mem::offset_of!(VcpuAffinity, cpumap_soft) == 24);
const _: () = assert!(core::mem::offset_of!(GetVcpuInfo, cpu_time) == 8);
const _: () = assert!(core::mem::offset_of!(GetVcpuInfo, cpu) == 16);
const _: () = assert!(core::mem::size_of::<SchedulerOp>() == 24);
const _: () = assert!(core::mem::offset_of!(SchedulerOp, weight) == 8);
const _: () = assert!(core::mem::size_of::<CreateDomain>() == 64);
const _: () = assert!(core::mem::size_of::<GetDomainInfo>() == 112);
const _: () = assert!(core::mem::size_of::<MaxMem>() == 8);
const _: () = assert!(core::mem::size_of::<MaxVcpus>() == 4);
const _: () = assert!(core::mem::size_of::<HvmContext>() == 16);
const _: () = assert!(core::mem::size_of::<ArchDomainConfig>() == 8);
const _: () = assert!(core::mem::size_of::<DomainHandle>() == 16);
const _: () = assert!(core::mem::size_of::<TscInfo>() == 24);
const _: () = assert!(core::mem::size_of::<NodeAffinity>() == 16);
const _: () = assert!(core::mem::size_of::<CacheFlush>() == 16);
const _: () = assert!(core::mem::size_of::<CpuPolicy>() == 40);
const _: () = assert!(core::mem::offset_of!(CpuPolicy, err_leaf) == 24);
const _: () = assert!(core::mem::size_of::<PagingMempool>() == 8);
const _: () = assert!(core::mem::offset_of!(Domctl, u) == 16);
const _: () = assert!(core::mem::offset_of!(CreateDomain, flags) == 20);
const _: () = assert!(core::mem::offset_of!(CreateDomain, arch) == 56);
const _: () = assert!(core::mem::offset_of!(GetDomainInfo, cpu_time) == 56);
const _: () = assert!(core::mem::offset_of!(GetDomainInfo, handle) == 76);
const _: () = assert!(core::mem::offset_of!(GetDomainInfo, cpupool) == 92);
const _: () = assert!(core::mem::offset_of!(GetDomainInfo, gpaddr_bits) == 96);
const _: () = assert!(core::mem::offset_of!(GetDomainInfo, arch_config) == 104);
