//! `domctl(op)` (hypercall 36): `op` points to a [`Domctl`] whose `cmd`
//! selects the sub-operation and whose `u` holds its argument structure.
//! The structure is copied back on success.

use crate::DomId;

crate::subops! {
    /// Create a domain ([`CreateDomain`]); `domain` in: wanted id (0 or
    /// `DOMID_INVALID` = any), out: the new id. Created paused.
    CREATEDOMAIN = 1, "createdomain";
    /// Destroy `domain`: stop it and scrub and free its memory.
    DESTROYDOMAIN = 2, "destroydomain";
    /// Pause `domain` (counted; not the caller itself).
    PAUSEDOMAIN = 3, "pausedomain";
    /// Undo one pause of `domain`.
    UNPAUSEDOMAIN = 4, "unpausedomain";
    /// [`DomainInfo`] of `domain`.
    GETDOMAININFO = 5, "getdomaininfo";
    /// Set the memory limit ([`MaxMem`]).
    MAX_MEM = 11, "max_mem";
    /// Set a vCPU's state ([`VcpuContext`] pointing to a `vcpu::HvmContext`).
    SETVCPUCONTEXT = 12, "setvcpucontext";
    /// Get a paused domain's vCPU state ([`VcpuContext`]).
    GETVCPUCONTEXT = 13, "getvcpucontext";
    /// Set the number of vCPUs ([`MaxVcpus`]); once.
    MAX_VCPUS = 15, "max_vcpus";
}

/// `Domctl::interface_version` Warden accepts.
pub const INTERFACE_VERSION: u32 = 0x5744_0001;

/// Size of the argument union.
pub const UNION_SIZE: usize = 128;

crate::pod! {
    /// The domctl header and argument union.
    pub struct Domctl {
        pub cmd: u32,
        pub interface_version: u32,
        pub domain: u16,
        pub pad: [u16; 3],
        pub u: [u8; 128],
    }
    /// `XEN_DOMCTL_createdomain`.
    pub struct CreateDomain {
        /// Security label (a FLASK SID); 0 = the domU initial SID.
        pub ssidref: u32,
        /// `CDF_*` flags.
        pub flags: u32,
        /// vCPUs (0: set later with `max_vcpus`).
        pub max_vcpus: u32,
        pub pad: u32,
        pub handle: [u8; 16],
    }
    /// `XEN_DOMCTL_max_mem`.
    pub struct MaxMem { pub max_memkb: u64 }
    /// `XEN_DOMCTL_max_vcpus`.
    pub struct MaxVcpus { pub max: u32 }
    /// `XEN_DOMCTL_{set,get}vcpucontext`: `ctxt` is a guest pointer to a `vcpu::HvmContext`.
    pub struct VcpuContext { pub vcpu: u32, pub pad: u32, pub ctxt: u64 }
    /// `XEN_DOMCTL_getdomaininfo` (also the element of sysctl getdomaininfolist).
    pub struct DomainInfo {
        pub domain: u16,
        pub pad0: u16,
        pub flags: u32,
        pub tot_pages: u64,
        pub max_pages: u64,
        pub outstanding_pages: u64,
        pub shr_pages: u64,
        pub paged_pages: u64,
        pub shared_info_frame: u64,
        pub cpu_time: u64,
        pub nr_online_vcpus: u32,
        pub max_vcpu_id: u32,
        pub ssidref: u32,
        pub pad1: u32,
        pub handle: [u8; 16],
        pub cpupool: u32,
        pub pad2: u32,
    }
}

/// `CreateDomain::flags`: an HVM guest (every Warden guest is).
pub const CDF_HVM: u32 = 1 << 0;
/// `CreateDomain::flags`: uses hardware-assisted paging (every Warden guest does).
pub const CDF_HAP: u32 = 1 << 1;

/// `DomainInfo::flags`: being destroyed.
pub const DOMINF_DYING: u32 = 1 << 0;
/// `DomainInfo::flags`: HVM guest.
pub const DOMINF_HVM_GUEST: u32 = 1 << 1;
/// `DomainInfo::flags`: shut down (reason in bits 16..24).
pub const DOMINF_SHUTDOWN: u32 = 1 << 2;
/// `DomainInfo::flags`: paused by a controller.
pub const DOMINF_PAUSED: u32 = 1 << 3;
/// `DomainInfo::flags`: every online vCPU is blocked.
pub const DOMINF_BLOCKED: u32 = 1 << 4;
/// `DomainInfo::flags`: some vCPU is running.
pub const DOMINF_RUNNING: u32 = 1 << 5;
/// `DomainInfo::flags`: the domain is privileged (Warden: the control domain).
pub const DOMINF_PRIV: u32 = 1 << 7;
/// `DomainInfo::flags`: hardware-assisted paging.
pub const DOMINF_HAP: u32 = 1 << 8;
/// `DomainInfo::flags`: shift of the shutdown reason.
pub const DOMINF_SHUTDOWN_SHIFT: u32 = 16;
/// `DomainInfo::flags`: mask of the shutdown reason (after the shift).
pub const DOMINF_SHUTDOWN_MASK: u32 = 0xff;

impl Domctl {
    /// A domctl for `cmd` on `domain` with argument `arg`.
    pub fn new<T: crate::Pod>(cmd: u32, domain: DomId, arg: &T) -> Domctl {
        let mut d = Domctl {
            cmd,
            interface_version: INTERFACE_VERSION,
            domain,
            ..Default::default()
        };
        let b = crate::Pod::as_bytes(arg);
        let n = b.len().min(UNION_SIZE);
        d.u[..n].copy_from_slice(&b[..n]);
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

const _: () = assert!(core::mem::size_of::<DomainInfo>() <= UNION_SIZE);
