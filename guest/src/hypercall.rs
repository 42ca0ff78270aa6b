//! Hypercalls: the raw instruction and a wrapper per operation of the ABI.
//! Pointers passed to the hypervisor are the guest's own virtual addresses.

use warden_abi::domctl::{self, Domctl, GetDomainInfo};
use warden_abi::sysctl::{self, PhysInfo, ReadConsole, Sysctl, livepatch};
use warden_abi::vcpu::{HvmContext, RunstateInfo};
use warden_abi::xsm::{self as fx, FlaskOp};
use warden_abi::{DomId, Pod, hypercall as hc};

/// A hypercall's failure: Xen's errno value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub i32);

impl Errno {
    /// The errno's name (`EACCES`).
    pub fn name(self) -> &'static str {
        warden_abi::errno::name(self.0)
    }

    /// The errno's message, as Xen's tools print it (`Permission denied`).
    pub fn message(self) -> &'static str {
        warden_abi::errno::message(self.0)
    }
}

/// Xen's tools' form: the message (`Permission denied`), then the errno in
/// parentheses for the record (`(-13 EACCES)`).
impl core::fmt::Display for Errno {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} (-{} {})", self.message(), self.0, self.name())
    }
}

/// Result of a hypercall.
pub type HResult = Result<u64, Errno>;

/// The raw hypercall: `nr` in RAX, arguments in RDI, RSI, RDX, R10, R8; the
/// result (negative = -errno) in RAX.
#[inline]
pub fn raw(nr: u64, a: [u64; 5]) -> i64 {
    let ret: u64;
    // SAFETY: VMMCALL traps to the hypervisor, which preserves every
    // register but RAX and reads/writes only memory the arguments point to
    // (it may write to any of it, hence no `nomem`).
    unsafe {
        core::arch::asm!(
            "vmmcall",
            inlateout("rax") nr => ret,
            in("rdi") a[0],
            in("rsi") a[1],
            in("rdx") a[2],
            in("r10") a[3],
            in("r8") a[4],
            options(nostack),
        );
    }
    ret as i64
}

/// A hypercall with its result decoded.
#[inline]
pub fn call(nr: u32, a: [u64; 5]) -> HResult {
    decode(raw(nr as u64, a))
}

/// Decode a raw result: -4095..-1 are errnos.
pub fn decode(r: i64) -> HResult {
    if (-4095..0).contains(&r) {
        Err(Errno(-r as i32))
    } else {
        Ok(r as u64)
    }
}

fn ptr<T>(v: &T) -> u64 {
    v as *const T as u64
}

fn ptr_mut<T>(v: &mut T) -> u64 {
    v as *mut T as u64
}

// ------------------------------------------------------------ console_io

/// CONSOLEIO_write.
pub fn console_write(b: &[u8]) -> HResult {
    call(
        hc::CONSOLE_IO,
        [
            warden_abi::console::WRITE as u64,
            b.len() as u64,
            b.as_ptr() as u64,
            0,
            0,
        ],
    )
}

/// CONSOLEIO_read: serial input; returns the bytes read.
pub fn console_read(buf: &mut [u8]) -> HResult {
    call(
        hc::CONSOLE_IO,
        [
            warden_abi::console::READ as u64,
            buf.len() as u64,
            buf.as_mut_ptr() as u64,
            0,
            0,
        ],
    )
}

// ------------------------------------------------------------ platform_op

/// platform_op(op): `op` is read and its command's output written back.
pub fn platform_op(op: &mut warden_abi::xen::platform::PlatformOp) -> HResult {
    call(hc::PLATFORM_OP, [ptr_mut(op), 0, 0, 0, 0])
}

/// A `platform_op` command with `member` as its union, at the interface
/// version; the union as the hypervisor left it.
pub fn platform_cmd(
    cmd: u32,
    member: &[u8],
) -> Result<warden_abi::xen::platform::PlatformOp, Errno> {
    use warden_abi::xen::platform::{INTERFACE_VERSION, PlatformOp};
    let mut op = PlatformOp {
        cmd,
        interface_version: INTERFACE_VERSION,
        u: [0; 128],
    };
    let n = member.len().min(op.u.len());
    op.u[..n].copy_from_slice(&member[..n]);
    platform_op(&mut op).map(|_| op)
}

/// XENPF_settime64: the wall clock reads `secs`, `nsecs` at system time
/// `system_time` (every domain's).
pub fn settime64(secs: u64, nsecs: u32, system_time: u64) -> HResult {
    use warden_abi::xen::platform::{SETTIME64, Settime64};
    let t = Settime64 {
        secs,
        nsecs,
        mbz: 0,
        system_time,
    };
    platform_cmd(SETTIME64, t.as_bytes()).map(|_| 0)
}

/// XENPF_get_cpuinfo of physical CPU `cpu`.
pub fn pcpu_info(cpu: u32) -> Result<warden_abi::xen::platform::PcpuInfo, Errno> {
    use warden_abi::xen::platform::{GET_CPUINFO, PcpuInfo};
    let i = PcpuInfo {
        xen_cpuid: cpu,
        ..Default::default()
    };
    platform_cmd(GET_CPUINFO, i.as_bytes()).map(|op| op.member())
}

// ------------------------------------------------------------ xen_version

/// xen_version(cmd, arg).
pub fn xen_version(cmd: u32, arg: u64) -> HResult {
    call(hc::XEN_VERSION, [cmd as u64, arg, 0, 0, 0])
}

/// xen_version with a structure argument.
pub fn xen_version_into<T: Pod>(cmd: u32, out: &mut T) -> HResult {
    xen_version(cmd, ptr_mut(out))
}

// ------------------------------------------------------------ sched_op

/// sched_op(cmd, arg).
pub fn sched_op(cmd: u32, arg: u64) -> HResult {
    call(hc::SCHED_OP, [cmd as u64, arg, 0, 0, 0])
}

/// SCHEDOP_yield.
pub fn sched_yield() -> HResult {
    sched_op(warden_abi::sched::YIELD, 0)
}

/// SCHEDOP_block.
pub fn sched_block() -> HResult {
    sched_op(warden_abi::sched::BLOCK, 0)
}

/// SCHEDOP_shutdown.
pub fn sched_shutdown(reason: u32) -> HResult {
    let a = warden_abi::sched::Shutdown { reason };
    sched_op(warden_abi::sched::SHUTDOWN, ptr(&a))
}

/// SCHEDOP_poll: wait for one of `ports` or until system time `timeout` (0: none).
pub fn sched_poll(ports: &[u32], timeout: u64) -> HResult {
    let a = warden_abi::sched::Poll {
        ports: ports.as_ptr() as u64,
        nr_ports: ports.len() as u32,
        pad: 0,
        timeout,
    };
    sched_op(warden_abi::sched::POLL, ptr(&a))
}

/// SCHEDOP_remote_shutdown.
pub fn sched_remote_shutdown(domid: DomId, reason: u32) -> HResult {
    let a = warden_abi::sched::RemoteShutdown {
        domain_id: domid,
        pad: 0,
        reason,
    };
    sched_op(warden_abi::sched::REMOTE_SHUTDOWN, ptr(&a))
}

// ------------------------------------------------------------ vcpu_op

/// vcpu_op(cmd, vcpu, arg).
pub fn vcpu_op(cmd: u32, vcpu: u32, arg: u64) -> HResult {
    call(hc::VCPU_OP, [cmd as u64, vcpu as u64, arg, 0, 0])
}

/// VCPUOP_initialise.
pub fn vcpu_initialise(vcpu: u32, ctx: &HvmContext) -> HResult {
    vcpu_op(warden_abi::vcpu::INITIALISE, vcpu, ptr(ctx))
}

/// VCPUOP_up.
pub fn vcpu_up(vcpu: u32) -> HResult {
    vcpu_op(warden_abi::vcpu::UP, vcpu, 0)
}

/// VCPUOP_down.
pub fn vcpu_down(vcpu: u32) -> HResult {
    vcpu_op(warden_abi::vcpu::DOWN, vcpu, 0)
}

/// VCPUOP_is_up.
pub fn vcpu_is_up(vcpu: u32) -> Result<bool, Errno> {
    vcpu_op(warden_abi::vcpu::IS_UP, vcpu, 0).map(|v| v != 0)
}

/// VCPUOP_get_runstate_info.
pub fn vcpu_runstate(vcpu: u32) -> Result<RunstateInfo, Errno> {
    let mut r = RunstateInfo::default();
    vcpu_op(warden_abi::vcpu::GET_RUNSTATE_INFO, vcpu, ptr_mut(&mut r))?;
    Ok(r)
}

/// VCPUOP_set_singleshot_timer.
pub fn vcpu_set_timer(vcpu: u32, abs_ns: u64, flags: u32) -> HResult {
    let t = warden_abi::vcpu::SingleshotTimer {
        timeout_abs_ns: abs_ns,
        flags,
        pad: 0,
    };
    vcpu_op(warden_abi::vcpu::SET_SINGLESHOT_TIMER, vcpu, ptr(&t))
}

/// VCPUOP_stop_singleshot_timer.
pub fn vcpu_stop_timer(vcpu: u32) -> HResult {
    vcpu_op(warden_abi::vcpu::STOP_SINGLESHOT_TIMER, vcpu, 0)
}

/// VCPUOP_register_vcpu_info for a structure at guest-physical `gpa`.
pub fn vcpu_register_info(vcpu: u32, gpa: u64) -> HResult {
    let r = warden_abi::vcpu::RegisterVcpuInfo {
        gfn: gpa >> 12,
        offset: (gpa & 4095) as u32,
        rsvd: 0,
    };
    vcpu_op(warden_abi::vcpu::REGISTER_VCPU_INFO, vcpu, ptr(&r))
}

// ------------------------------------------------------------ hvm_op

/// HVMOP_pagetable_dying for `domid` (the probe Linux makes at boot).
pub fn pagetable_dying(domid: u16, gpa: u64) -> HResult {
    let a = warden_abi::hvm::PagetableDying {
        domid,
        pad: [0; 3],
        gpa,
    };
    call(
        hc::HVM_OP,
        [warden_abi::hvm::PAGETABLE_DYING as u64, ptr(&a), 0, 0, 0],
    )
}

/// HVMOP_set_evtchn_upcall_vector.
pub fn set_upcall_vector(vcpu: u32, vector: u8) -> HResult {
    let a = warden_abi::hvm::UpcallVector {
        vcpu,
        vector,
        pad: [0; 3],
    };
    call(
        hc::HVM_OP,
        [
            warden_abi::hvm::SET_EVTCHN_UPCALL_VECTOR as u64,
            ptr(&a),
            0,
            0,
            0,
        ],
    )
}

// ------------------------------------------------------------ memory_op

/// memory_op(cmd, arg).
pub fn memory_op(cmd: u32, arg: u64) -> HResult {
    call(hc::MEMORY_OP, [cmd as u64, arg, 0, 0, 0])
}

fn reservation(cmd: u32, domid: DomId, gfns: &[u64], order: u32) -> HResult {
    let r = warden_abi::memory::Reservation {
        extent_start: gfns.as_ptr() as u64,
        nr_extents: gfns.len() as u64,
        extent_order: order,
        mem_flags: 0,
        domid,
        pad: [0; 3],
    };
    memory_op(cmd, ptr(&r))
}

/// XENMEM_populate_physmap: returns the extents populated.
pub fn populate_physmap(domid: DomId, gfns: &[u64], order: u32) -> HResult {
    reservation(warden_abi::memory::POPULATE_PHYSMAP, domid, gfns, order)
}

/// XENMEM_decrease_reservation: returns the extents removed.
pub fn decrease_reservation(domid: DomId, gfns: &[u64], order: u32) -> HResult {
    reservation(warden_abi::memory::DECREASE_RESERVATION, domid, gfns, order)
}

/// XENMEM_maximum_ram_page.
pub fn maximum_ram_page() -> HResult {
    memory_op(warden_abi::memory::MAXIMUM_RAM_PAGE, 0)
}

/// XENMEM_get_sharing_freed_pages (0 without memory sharing).
pub fn sharing_freed_pages() -> HResult {
    memory_op(warden_abi::memory::GET_SHARING_FREED_PAGES, 0)
}

/// XENMEM_get_sharing_shared_pages (0 without memory sharing).
pub fn sharing_shared_pages() -> HResult {
    memory_op(warden_abi::memory::GET_SHARING_SHARED_PAGES, 0)
}

/// multicall: run the entries of `list` in order; each entry's result is
/// in its `result` field afterwards.
pub fn multicall(list: &mut [warden_abi::xen::xen::multicall::MulticallEntry]) -> HResult {
    call(
        hc::MULTICALL,
        [list.as_mut_ptr() as u64, list.len() as u64, 0, 0, 0],
    )
}

/// XENMEM_current_reservation.
pub fn current_reservation(domid: DomId) -> HResult {
    let a = warden_abi::memory::DomidArg { domid };
    memory_op(warden_abi::memory::CURRENT_RESERVATION, ptr(&a))
}

/// XENMEM_maximum_reservation.
pub fn maximum_reservation(domid: DomId) -> HResult {
    let a = warden_abi::memory::DomidArg { domid };
    memory_op(warden_abi::memory::MAXIMUM_RESERVATION, ptr(&a))
}

/// XENMEM_maximum_gpfn: the highest guest frame `domid` has mapped.
pub fn maximum_gpfn(domid: DomId) -> HResult {
    let a = warden_abi::memory::DomidArg { domid };
    memory_op(warden_abi::memory::MAXIMUM_GPFN, ptr(&a))
}

/// XENMEM_claim_pages: claim memory for `pages` pages of `domid` (0 cancels).
pub fn claim_pages(domid: DomId, pages: u64) -> HResult {
    let r = warden_abi::memory::Reservation {
        nr_extents: pages,
        domid,
        ..Default::default()
    };
    memory_op(warden_abi::memory::CLAIM_PAGES, ptr(&r))
}

/// XENMEM_set_pod_target (`set`) or get_pod_target of `domid` with
/// `target_pages`: the counts the hypervisor wrote back.
pub fn pod_target(
    domid: DomId,
    set: bool,
    target_pages: u64,
) -> Result<warden_abi::memory::PodTarget, Errno> {
    let mut t = warden_abi::memory::PodTarget {
        target_pages,
        domid,
        ..Default::default()
    };
    let op = if set {
        warden_abi::memory::SET_POD_TARGET
    } else {
        warden_abi::memory::GET_POD_TARGET
    };
    memory_op(op, ptr_mut(&mut t))?;
    Ok(t)
}

/// XENMEM_set_memory_map of `domid`.
pub fn set_memory_map(domid: DomId, map: &[warden_abi::memory::E820Entry]) -> HResult {
    let f = warden_abi::memory::ForeignMemoryMap {
        domid,
        pad: [0; 3],
        map: warden_abi::memory::MemoryMap {
            nr_entries: map.len() as u32,
            pad: 0,
            buffer: map.as_ptr() as u64,
        },
    };
    memory_op(warden_abi::memory::SET_MEMORY_MAP, ptr(&f))
}

/// XENMEM_add_to_physmap_batch of `space` into `domid`'s physmap (what
/// privcmd's MMAPBATCH_V2 issues with XENMAPSPACE_gmfn_foreign): `idxs[i]`
/// at `gpfns[i]`; each page's result goes to `errs[i]`.
pub fn add_to_physmap_batch(
    domid: DomId,
    space: u32,
    foreign_domid: DomId,
    idxs: &[u64],
    gpfns: &[u64],
    errs: &mut [i32],
) -> HResult {
    let n = idxs.len().min(gpfns.len()).min(errs.len());
    let b = warden_abi::memory::AddToPhysmapBatch {
        domid,
        space: space as u16,
        size: n as u16,
        foreign_domid,
        idxs: idxs.as_ptr() as u64,
        gpfns: gpfns.as_ptr() as u64,
        errs: errs.as_mut_ptr() as u64,
    };
    memory_op(warden_abi::memory::ADD_TO_PHYSMAP_BATCH, ptr(&b))
}

/// XENMEM_remove_from_physmap: unmap `gpfn` of `domid`.
pub fn remove_from_physmap(domid: DomId, gpfn: u64) -> HResult {
    let a = warden_abi::memory::RemoveFromPhysmap {
        domid,
        pad: [0; 3],
        gpfn,
    };
    memory_op(warden_abi::memory::REMOVE_FROM_PHYSMAP, ptr(&a))
}

/// XENMEM_acquire_resource: frames `frame..` of resource (`kind`, `id`) of
/// `domid` mapped at our frames `gfns` (empty: the size query, returned).
pub fn acquire_resource(domid: DomId, kind: u16, id: u32, frame: u64, gfns: &[u64]) -> HResult {
    let mut a = warden_abi::memory::AcquireResource {
        domid,
        kind,
        id,
        nr_frames: gfns.len() as u32,
        pad: 0,
        frame,
        frame_list: if gfns.is_empty() {
            0
        } else {
            gfns.as_ptr() as u64
        },
    };
    memory_op(warden_abi::memory::ACQUIRE_RESOURCE, ptr_mut(&mut a))?;
    Ok(if gfns.is_empty() {
        u64::from(a.nr_frames)
    } else {
        0
    })
}

// ------------------------------------------------------------ hvm_op

/// HVMOP_set_param of `domid`.
pub fn hvm_set_param(domid: DomId, index: u32, value: u64) -> HResult {
    let a = warden_abi::hvm::HvmParam {
        domid,
        pad: 0,
        index,
        value,
    };
    call(
        hc::HVM_OP,
        [warden_abi::hvm::SET_PARAM as u64, ptr(&a), 0, 0, 0],
    )
}

/// HVMOP_get_param of `domid`.
pub fn hvm_get_param(domid: DomId, index: u32) -> Result<u64, Errno> {
    let mut a = warden_abi::hvm::HvmParam {
        domid,
        pad: 0,
        index,
        value: 0,
    };
    call(
        hc::HVM_OP,
        [warden_abi::hvm::GET_PARAM as u64, ptr_mut(&mut a), 0, 0, 0],
    )?;
    Ok(a.value)
}

// ------------------------------------------------------------ domctl

/// domctl(op).
pub fn domctl(op: &mut Domctl) -> HResult {
    call(hc::DOMCTL, [ptr_mut(op), 0, 0, 0, 0])
}

fn domctl_with<T: Pod>(cmd: u32, domid: DomId, arg: &T) -> Result<Domctl, Errno> {
    let mut op = Domctl::new(cmd, domid, arg);
    domctl(&mut op)?;
    Ok(op)
}

/// A `xen_domctl_createdomain` as libxl fills it for a PVH guest:
/// HVM with HAP, only the local APIC emulated, grant tables v1 with Xen's
/// default limits, 1023 event-channel ports, CPU pool 0.
pub fn pvh_config(ssidref: u32, max_vcpus: u32) -> domctl::CreateDomain {
    domctl::CreateDomain {
        ssidref,
        flags: domctl::CDF_HVM | domctl::CDF_HAP,
        max_vcpus,
        max_evtchn_port: 1023,
        max_grant_frames: -1,
        max_maptrack_frames: -1,
        grant_opts: 1,
        arch: domctl::ArchDomainConfig {
            emulation_flags: domctl::X86_EMU_LAPIC,
            misc_flags: 0,
        },
        ..Default::default()
    }
}

/// XEN_DOMCTL_createdomain of a PVH guest ([`pvh_config`]) labelled
/// `ssidref` (0: as libxl without `seclabel=`, the domU initial SID):
/// returns the new domain's id. Its vCPUs still need [`max_vcpus`].
pub fn createdomain(want: DomId, ssidref: u32, max_vcpus: u32) -> Result<DomId, Errno> {
    let ssidref = match ssidref {
        0 => warden_abi::xsm::SECINITSID_DOMU,
        s => s,
    };
    createdomain_with(want, &pvh_config(ssidref, max_vcpus))
}

/// XEN_DOMCTL_createdomain with a configuration as given: returns the new
/// domain's id.
pub fn createdomain_with(want: DomId, a: &domctl::CreateDomain) -> Result<DomId, Errno> {
    Ok(domctl_with(domctl::CREATEDOMAIN, want, a)?.domain)
}

/// XEN_DOMCTL_destroydomain.
pub fn destroydomain(d: DomId) -> HResult {
    domctl_with(domctl::DESTROYDOMAIN, d, &()).map(|_| 0)
}

/// XEN_DOMCTL_pausedomain.
pub fn pausedomain(d: DomId) -> HResult {
    domctl_with(domctl::PAUSEDOMAIN, d, &()).map(|_| 0)
}

/// XEN_DOMCTL_unpausedomain.
pub fn unpausedomain(d: DomId) -> HResult {
    domctl_with(domctl::UNPAUSEDOMAIN, d, &()).map(|_| 0)
}

/// XEN_DOMCTL_getdomaininfo as Xen 4.17 answers it: the first domain
/// whose id is >= `d` (the id reported is its `domain` field).
pub fn getdomaininfo_from(d: DomId) -> Result<GetDomainInfo, Errno> {
    Ok(domctl_with(domctl::GETDOMAININFO, d, &())?.arg())
}

/// XEN_DOMCTL_getdomaininfo of domain `d` itself (-ESRCH if the domain
/// found is another one, as libxc's `xc_domain_getinfo_single`).
pub fn getdomaininfo(d: DomId) -> Result<GetDomainInfo, Errno> {
    let i = getdomaininfo_from(d)?;
    if i.domain != d {
        return Err(Errno(warden_abi::errno::ESRCH));
    }
    Ok(i)
}

/// XEN_DOMCTL_max_mem.
pub fn max_mem(d: DomId, kb: u64) -> HResult {
    domctl_with(domctl::MAX_MEM, d, &domctl::MaxMem { max_memkb: kb }).map(|_| 0)
}

/// XEN_DOMCTL_max_vcpus.
pub fn max_vcpus(d: DomId, n: u32) -> HResult {
    domctl_with(domctl::MAX_VCPUS, d, &domctl::MaxVcpus { max: n }).map(|_| 0)
}

/// XEN_DOMCTL_setdomainhandle.
pub fn setdomainhandle(d: DomId, handle: [u8; 16]) -> HResult {
    domctl_with(domctl::SETDOMAINHANDLE, d, &domctl::DomainHandle { handle }).map(|_| 0)
}

/// XEN_DOMCTL_settscinfo.
pub fn settscinfo(d: DomId, mode: u32, gtsc_khz: u32) -> HResult {
    let a = domctl::TscInfo {
        tsc_mode: mode,
        gtsc_khz,
        ..Default::default()
    };
    domctl_with(domctl::SETTSCINFO, d, &a).map(|_| 0)
}

/// XEN_DOMCTL_gettscinfo.
pub fn gettscinfo(d: DomId) -> Result<domctl::TscInfo, Errno> {
    Ok(domctl_with(domctl::GETTSCINFO, d, &())?.arg())
}

/// XEN_DOMCTL_setnodeaffinity with the node mask `nodes` (`bits` of it).
pub fn setnodeaffinity(d: DomId, nodes: &[u8], bits: u32) -> HResult {
    let a = domctl::NodeAffinity {
        bitmap: nodes.as_ptr() as u64,
        nr_bits: bits,
        pad: 0,
    };
    domctl_with(domctl::SETNODEAFFINITY, d, &a).map(|_| 0)
}

/// XEN_DOMCTL_getnodeaffinity into `nodes` (8 bits a byte).
pub fn getnodeaffinity(d: DomId, nodes: &mut [u8]) -> HResult {
    let a = domctl::NodeAffinity {
        bitmap: nodes.as_mut_ptr() as u64,
        nr_bits: nodes.len() as u32 * 8,
        pad: 0,
    };
    domctl_with(domctl::GETNODEAFFINITY, d, &a).map(|_| 0)
}

/// XEN_DOMCTL_getvcpuinfo of vCPU `vcpu`.
pub fn getvcpuinfo(d: DomId, vcpu: u32) -> Result<domctl::GetVcpuInfo, Errno> {
    let a = domctl::GetVcpuInfo {
        vcpu,
        ..Default::default()
    };
    Ok(domctl_with(domctl::GETVCPUINFO, d, &a)?.arg())
}

/// XEN_DOMCTL_setvcpuaffinity / getvcpuaffinity (`set`) of vCPU `vcpu`:
/// the hard and soft masks (8 CPUs a byte) in and out.
pub fn vcpuaffinity(d: DomId, vcpu: u32, set: bool, hard: &mut [u8], soft: &mut [u8]) -> HResult {
    let map = |b: &mut [u8]| domctl::XenctlBitmap {
        bitmap: b.as_mut_ptr() as u64,
        nr_bits: b.len() as u32 * 8,
        pad: 0,
    };
    let a = domctl::VcpuAffinity {
        vcpu,
        flags: domctl::VCPUAFFINITY_HARD | domctl::VCPUAFFINITY_SOFT,
        cpumap_hard: map(hard),
        cpumap_soft: map(soft),
    };
    let cmd = if set {
        domctl::SETVCPUAFFINITY
    } else {
        domctl::GETVCPUAFFINITY
    };
    domctl_with(cmd, d, &a).map(|_| 0)
}

/// XEN_DOMCTL_scheduler_op getinfo for credit2: (weight, cap).
pub fn sched_credit2_get(d: DomId) -> Result<(u16, u16), Errno> {
    let a = domctl::SchedulerOp {
        sched_id: warden_abi::sysctl::SCHEDULER_CREDIT2,
        cmd: domctl::SCHEDOP_GETINFO,
        ..Default::default()
    };
    let s: domctl::SchedulerOp = domctl_with(domctl::SCHEDULER_OP, d, &a)?.arg();
    Ok((s.weight, s.cap))
}

/// XEN_DOMCTL_scheduler_op putinfo for credit2 (weight 0 keeps it).
pub fn sched_credit2_put(d: DomId, weight: u16, cap: u16) -> HResult {
    let a = domctl::SchedulerOp {
        sched_id: warden_abi::sysctl::SCHEDULER_CREDIT2,
        cmd: domctl::SCHEDOP_PUTINFO,
        weight,
        cap,
        ..Default::default()
    };
    domctl_with(domctl::SCHEDULER_OP, d, &a).map(|_| 0)
}

/// XEN_DOMCTL_cacheflush.
pub fn cacheflush(d: DomId, start_pfn: u64, nr_pfns: u64) -> HResult {
    let a = domctl::CacheFlush { start_pfn, nr_pfns };
    domctl_with(domctl::CACHEFLUSH, d, &a).map(|_| 0)
}

/// XEN_DOMCTL_set_paging_mempool_size (bytes).
pub fn set_paging_mempool_size(d: DomId, size: u64) -> HResult {
    domctl_with(
        domctl::SET_PAGING_MEMPOOL_SIZE,
        d,
        &domctl::PagingMempool { size },
    )
    .map(|_| 0)
}

/// XEN_DOMCTL_get_paging_mempool_size (bytes).
pub fn get_paging_mempool_size(d: DomId) -> HResult {
    let op = domctl_with(domctl::GET_PAGING_MEMPOOL_SIZE, d, &())?;
    Ok(op.arg::<domctl::PagingMempool>().size)
}

/// XEN_DOMCTL_get_cpu_policy into `leaves` and `msrs` (empty: the sizes):
/// (leaves, MSRs) written.
pub fn domain_cpu_policy(
    d: DomId,
    leaves: &mut [sysctl::CpuidLeaf],
    msrs: &mut [sysctl::MsrEntry],
) -> Result<(u32, u32), Errno> {
    let a = domctl::CpuPolicy {
        nr_leaves: leaves.len() as u32,
        nr_msrs: msrs.len() as u32,
        leaves: if leaves.is_empty() {
            0
        } else {
            leaves.as_mut_ptr() as u64
        },
        msrs: if msrs.is_empty() {
            0
        } else {
            msrs.as_mut_ptr() as u64
        },
        ..Default::default()
    };
    let p: domctl::CpuPolicy = domctl_with(domctl::GET_CPU_POLICY, d, &a)?.arg();
    Ok((p.nr_leaves, p.nr_msrs))
}

/// XEN_DOMCTL_set_cpu_policy: on a refusal, the errno and the (leaf,
/// subleaf, MSR) objected to.
pub fn set_cpu_policy(
    d: DomId,
    leaves: &[sysctl::CpuidLeaf],
    msrs: &[sysctl::MsrEntry],
) -> Result<(), (Errno, u32, u32, u32)> {
    let a = domctl::CpuPolicy {
        nr_leaves: leaves.len() as u32,
        nr_msrs: msrs.len() as u32,
        leaves: leaves.as_ptr() as u64,
        msrs: msrs.as_ptr() as u64,
        err_leaf: !0,
        err_subleaf: !0,
        err_msr: !0,
        pad: 0,
    };
    let mut op = Domctl::new(domctl::SET_CPU_POLICY, d, &a);
    match domctl(&mut op) {
        Ok(_) => Ok(()),
        Err(e) => {
            let p: domctl::CpuPolicy = op.arg();
            Err((e, p.err_leaf, p.err_subleaf, p.err_msr))
        }
    }
}

/// XEN_DOMCTL_gethvmcontext with a null buffer: the size an image may need.
pub fn gethvmcontext_size(d: DomId) -> Result<u32, Errno> {
    let op = domctl_with(domctl::GETHVMCONTEXT, d, &domctl::HvmContext::default())?;
    Ok(op.arg::<domctl::HvmContext>().size)
}

/// XEN_DOMCTL_gethvmcontext into `buf`: returns the image's length.
pub fn gethvmcontext(d: DomId, buf: &mut [u8]) -> Result<usize, Errno> {
    let a = domctl::HvmContext {
        size: buf.len() as u32,
        pad: 0,
        buffer: buf.as_mut_ptr() as u64,
    };
    let op = domctl_with(domctl::GETHVMCONTEXT, d, &a)?;
    Ok(op.arg::<domctl::HvmContext>().size as usize)
}

/// XEN_DOMCTL_sethvmcontext of the image `img`.
pub fn sethvmcontext(d: DomId, img: &[u8]) -> HResult {
    let a = domctl::HvmContext {
        size: img.len() as u32,
        pad: 0,
        buffer: img.as_ptr() as u64,
    };
    domctl_with(domctl::SETHVMCONTEXT, d, &a).map(|_| 0)
}

/// The records of an HVM context image: (type code, instance, body), up to
/// the end marker or the first malformed descriptor.
pub fn hvm_context_records(img: &[u8]) -> impl Iterator<Item = (u16, u16, &[u8])> {
    let mut at = 0usize;
    core::iter::from_fn(move || {
        let d = warden_abi::xen::hvm_save::SaveDescriptor::from_bytes(img.get(at..at + 8)?)?;
        if d.typecode == warden_abi::xen::hvm_save::END {
            return None;
        }
        let body = img.get(at + 8..at + 8 + d.length as usize)?;
        at += 8 + d.length as usize;
        Some((d.typecode, d.instance, body))
    })
}

/// Append a record to an HVM context image.
pub fn hvm_context_push<T: Pod>(
    img: &mut alloc::vec::Vec<u8>,
    typecode: u16,
    instance: u16,
    body: &T,
) {
    let b = body.as_bytes();
    let d = warden_abi::xen::hvm_save::SaveDescriptor {
        typecode,
        instance,
        length: b.len() as u32,
    };
    img.extend_from_slice(d.as_bytes());
    img.extend_from_slice(b);
}

// ------------------------------------------------------------ sysctl

/// sysctl(op).
pub fn sysctl(op: &mut Sysctl) -> HResult {
    call(hc::SYSCTL, [ptr_mut(op), 0, 0, 0, 0])
}

/// XEN_SYSCTL_get_cpu_policy `index` into `leaves` and `msrs` (empty: the
/// largest sizes): (leaves, MSRs) written.
pub fn system_cpu_policy(
    index: u32,
    leaves: &mut [sysctl::CpuidLeaf],
    msrs: &mut [sysctl::MsrEntry],
) -> Result<(u32, u32), Errno> {
    let a = sysctl::SysCpuPolicy {
        index,
        nr_leaves: leaves.len() as u32,
        nr_msrs: msrs.len() as u32,
        rsvd: 0,
        leaves: if leaves.is_empty() {
            0
        } else {
            leaves.as_mut_ptr() as u64
        },
        msrs: if msrs.is_empty() {
            0
        } else {
            msrs.as_mut_ptr() as u64
        },
    };
    let mut op = Sysctl::new(sysctl::GET_CPU_POLICY, &a);
    sysctl(&mut op)?;
    let p: sysctl::SysCpuPolicy = op.arg();
    Ok((p.nr_leaves, p.nr_msrs))
}

/// XEN_SYSCTL_get_cpu_featureset `index` into `words`: the words written.
pub fn cpu_featureset(index: u32, words: &mut [u32]) -> Result<u32, Errno> {
    let a = sysctl::CpuFeatureset {
        index,
        nr_features: words.len() as u32,
        features: words.as_mut_ptr() as u64,
    };
    let mut op = Sysctl::new(sysctl::GET_CPU_FEATURESET, &a);
    sysctl(&mut op)?;
    Ok(op.arg::<sysctl::CpuFeatureset>().nr_features)
}

/// XEN_SYSCTL_readconsole: fills `buf`; returns (bytes, next index).
pub fn readconsole(
    buf: &mut [u8],
    index: u32,
    incremental: bool,
    clear: bool,
) -> Result<(usize, u32), Errno> {
    let a = ReadConsole {
        clear: clear as u8,
        incremental: incremental as u8,
        index,
        buffer: buf.as_mut_ptr() as u64,
        count: buf.len() as u32,
        ..Default::default()
    };
    let mut op = Sysctl::new(sysctl::READCONSOLE, &a);
    sysctl(&mut op)?;
    let r: ReadConsole = op.arg();
    Ok((r.count as usize, r.index))
}

/// XEN_SYSCTL_physinfo.
pub fn physinfo() -> Result<PhysInfo, Errno> {
    let mut op = Sysctl::new(sysctl::PHYSINFO, &PhysInfo::default());
    sysctl(&mut op)?;
    Ok(op.arg())
}

/// XEN_SYSCTL_getdomaininfolist: fills `out` from `first`; returns the count.
pub fn getdomaininfolist(first: DomId, out: &mut [GetDomainInfo]) -> Result<usize, Errno> {
    let a = sysctl::GetDomainInfoList {
        first_domain: first,
        max_domains: out.len() as u32,
        buffer: out.as_mut_ptr() as u64,
        ..Default::default()
    };
    let mut op = Sysctl::new(sysctl::GETDOMAININFOLIST, &a);
    sysctl(&mut op)?;
    Ok(op.arg::<sysctl::GetDomainInfoList>().num_domains as usize)
}

/// XEN_SYSCTL_debug_keys: run `keys` as debug keys.
pub fn debug_keys(keys: &[u8]) -> Result<(), Errno> {
    let a = sysctl::DebugKeys {
        keys: keys.as_ptr() as u64,
        nr_keys: keys.len() as u32,
        pad: 0,
    };
    let mut op = Sysctl::new(sysctl::DEBUG_KEYS, &a);
    sysctl(&mut op).map(|_| ())
}

/// XEN_SYSCTL_sched_id.
pub fn sched_id() -> Result<u32, Errno> {
    let mut op = Sysctl::new(sysctl::SCHED_ID, &());
    sysctl(&mut op)?;
    Ok(op.arg::<sysctl::SchedId>().sched_id)
}

/// XEN_SYSCTL_cpupool_op `cmd` on `pool`, the pool's CPUs into `cpumap`:
/// returns the answer (its pool id, scheduler, domain count).
pub fn cpupool_op(cmd: u32, pool: u32, cpumap: &mut [u8]) -> Result<sysctl::CpupoolOp, Errno> {
    let a = sysctl::CpupoolOp {
        op: cmd,
        cpupool_id: pool,
        cpumap: sysctl::CtlBitmap {
            bitmap: cpumap.as_mut_ptr() as u64,
            nr_bits: (cpumap.len() * 8) as u32,
            pad: 0,
        },
        ..Default::default()
    };
    let mut op = Sysctl::new(sysctl::CPUPOOL_OP, &a);
    sysctl(&mut op)?;
    Ok(op.arg())
}

/// XEN_SYSCTL_cputopoinfo into `out` (empty: ask for the count); returns the CPU count.
pub fn cputopoinfo(out: &mut [sysctl::CpuTopo]) -> Result<u32, Errno> {
    let a = sysctl::CpuTopoInfo {
        num_cpus: out.len() as u32,
        pad: 0,
        cputopo: if out.is_empty() {
            0
        } else {
            out.as_mut_ptr() as u64
        },
    };
    let mut op = Sysctl::new(sysctl::CPUTOPOINFO, &a);
    sysctl(&mut op)?;
    Ok(op.arg::<sysctl::CpuTopoInfo>().num_cpus)
}

/// XEN_SYSCTL_numainfo into `mem` and `distance` (`mem.len()`^2 entries);
/// returns the node count.
pub fn numainfo(mem: &mut [sysctl::MemInfo], distance: &mut [u32]) -> Result<u32, Errno> {
    let a = sysctl::NumaInfo {
        num_nodes: mem.len() as u32,
        pad: 0,
        meminfo: mem.as_mut_ptr() as u64,
        distance: distance.as_mut_ptr() as u64,
    };
    let mut op = Sysctl::new(sysctl::NUMAINFO, &a);
    sysctl(&mut op)?;
    Ok(op.arg::<sysctl::NumaInfo>().num_nodes)
}

/// XEN_SYSCTL_livepatch_op with sub-operation `cmd` and an all-zero argument.
pub fn livepatch(cmd: u32) -> HResult {
    livepatch_op(&mut sysctl::Livepatch::new(cmd, &()))
}

/// XEN_SYSCTL_livepatch_op; `op` is updated from the hypervisor's copy on success.
pub fn livepatch_op(op: &mut sysctl::Livepatch) -> HResult {
    let mut s = Sysctl::new(sysctl::LIVEPATCH_OP, op);
    let r = sysctl(&mut s)?;
    *op = s.arg();
    Ok(r)
}

/// A payload name as the hypervisor reads it (the bytes and a NUL).
pub struct LpNameBuf {
    buf: [u8; livepatch::NAME_SIZE],
    size: u16,
}

impl LpNameBuf {
    /// `name` (at most 127 bytes; longer names are cut, and the hypervisor
    /// then refuses them as not loaded or invalid).
    pub fn new(name: &str) -> LpNameBuf {
        let mut buf = [0u8; livepatch::NAME_SIZE];
        let n = name.len().min(livepatch::NAME_SIZE - 1);
        buf[..n].copy_from_slice(&name.as_bytes()[..n]);
        LpNameBuf {
            buf,
            size: n as u16 + 1,
        }
    }
    /// The ABI's name descriptor (valid while `self` lives).
    pub fn abi(&self) -> sysctl::LpName {
        sysctl::LpName {
            name: self.buf.as_ptr() as u64,
            size: self.size,
            pad: [0; 3],
        }
    }
}

/// LIVEPATCH UPLOAD of `payload` as `name`.
pub fn lp_upload(name: &str, payload: &[u8]) -> HResult {
    let n = LpNameBuf::new(name);
    let a = sysctl::LpUpload {
        name: n.abi(),
        size: payload.len() as u64,
        payload: payload.as_ptr() as u64,
    };
    livepatch_op(&mut sysctl::Livepatch::new(livepatch::UPLOAD, &a))
}

/// LIVEPATCH GET: (state, rc) of `name`.
pub fn lp_get(name: &str) -> Result<sysctl::LpStatus, Errno> {
    let n = LpNameBuf::new(name);
    let a = sysctl::LpGet {
        name: n.abi(),
        ..Default::default()
    };
    let mut op = sysctl::Livepatch::new(livepatch::GET, &a);
    livepatch_op(&mut op)?;
    Ok(op.arg::<sysctl::LpGet>().status)
}

/// LIVEPATCH LIST from entry `idx` into the arrays (equal lengths; each
/// name in its own NUL-terminated slot): returns (entries written,
/// version, entries left after them). Xen 4.17 packs the names one after
/// the other; they are spread into the slots here.
pub fn lp_list(
    idx: u32,
    status: &mut [sysctl::LpStatus],
    names: &mut [[u8; livepatch::NAME_SIZE]],
    lens: &mut [u32],
) -> Result<(u32, u32, u64), Errno> {
    let nr = status.len().min(names.len()).min(lens.len()) as u32;
    let mut meta_lens = [0u32; 64];
    let nr = nr.min(meta_lens.len() as u32);
    let a = sysctl::LpList {
        idx,
        nr,
        status: status.as_mut_ptr() as u64,
        name: names.as_mut_ptr() as u64,
        len: lens.as_mut_ptr() as u64,
        // Warden's payloads carry no metadata (every length is 0).
        metadata: names.as_mut_ptr() as u64,
        metadata_len: meta_lens.as_mut_ptr() as u64,
        ..Default::default()
    };
    let mut op = sysctl::Livepatch::new(livepatch::LIST, &a);
    let written = livepatch_op(&mut op)? as u32;
    let r: sysctl::LpList = op.arg();
    // Unpack from the last name back: each slot starts at or after its
    // packed name (every name is at most a slot long).
    let flat = names.as_flattened_mut();
    let mut offsets = [0usize; 64];
    let mut off = 0usize;
    for i in 0..written as usize {
        offsets[i] = off;
        off += (lens[i] as usize).min(livepatch::NAME_SIZE);
    }
    for i in (0..written as usize).rev() {
        let n = (lens[i] as usize).min(livepatch::NAME_SIZE);
        let slot = i * livepatch::NAME_SIZE;
        flat.copy_within(offsets[i]..offsets[i] + n, slot);
        flat[slot + n..slot + livepatch::NAME_SIZE].fill(0);
    }
    Ok((written, r.version, u64::from(r.nr)))
}

/// LIVEPATCH ACTION `cmd` (`livepatch::ACTION_*`) on `name`; `timeout_ns` 0 = 30 ms.
pub fn lp_action(name: &str, cmd: u32, timeout_ns: u32, flags: u32) -> HResult {
    let n = LpNameBuf::new(name);
    let a = sysctl::LpAction {
        name: n.abi(),
        cmd,
        timeout: timeout_ns,
        flags,
        pad: 0,
    };
    livepatch_op(&mut sysctl::Livepatch::new(livepatch::ACTION, &a))
}

// ------------------------------------------------------------ xsm_op (FLASK)

/// xsm_op(op).
pub fn xsm_op(op: &mut FlaskOp) -> HResult {
    call(hc::XSM_OP, [ptr_mut(op), 0, 0, 0, 0])
}

fn flask<T: Pod>(cmd: u32, arg: &T) -> Result<(u64, FlaskOp), Errno> {
    let mut op = FlaskOp::new(cmd, arg);
    let r = xsm_op(&mut op)?;
    Ok((r, op))
}

/// FLASK_LOAD.
pub fn flask_load(policy: &[u8]) -> HResult {
    let a = fx::Load {
        buffer: policy.as_ptr() as u64,
        size: policy.len() as u32,
        pad: 0,
    };
    flask(fx::LOAD, &a).map(|r| r.0)
}

/// FLASK_GETENFORCE.
pub fn flask_getenforce() -> HResult {
    flask(fx::GETENFORCE, &()).map(|r| r.0)
}

/// FLASK_SETENFORCE.
pub fn flask_setenforce(on: bool) -> HResult {
    flask(
        fx::SETENFORCE,
        &fx::SetEnforce {
            enforcing: on as u32,
        },
    )
    .map(|r| r.0)
}

/// FLASK_CONTEXT_TO_SID.
pub fn flask_context_to_sid(ctx: &str) -> Result<u32, Errno> {
    let a = fx::SidContext {
        sid: 0,
        size: ctx.len() as u32,
        context: ctx.as_ptr() as u64,
    };
    Ok(flask(fx::CONTEXT_TO_SID, &a)?.1.arg::<fx::SidContext>().sid)
}

/// FLASK_SID_TO_CONTEXT into `buf`; returns the length (with the NUL).
pub fn flask_sid_to_context(sid: u32, buf: &mut [u8]) -> Result<usize, Errno> {
    let a = fx::SidContext {
        sid,
        size: buf.len() as u32,
        context: buf.as_mut_ptr() as u64,
    };
    Ok(flask(fx::SID_TO_CONTEXT, &a)?
        .1
        .arg::<fx::SidContext>()
        .size as usize)
}

/// FLASK_ACCESS.
pub fn flask_access(ssid: u32, tsid: u32, tclass: u16, req: u32) -> Result<fx::Access, Errno> {
    let a = fx::Access {
        ssid,
        tsid,
        tclass,
        req,
        ..Default::default()
    };
    Ok(flask(fx::ACCESS, &a)?.1.arg())
}

/// FLASK_CREATE / FLASK_RELABEL / FLASK_MEMBER (`cmd`): the new SID.
pub fn flask_transition(cmd: u32, ssid: u32, tsid: u32, tclass: u16) -> Result<u32, Errno> {
    let a = fx::Transition {
        ssid,
        tsid,
        tclass,
        ..Default::default()
    };
    Ok(flask(cmd, &a)?.1.arg::<fx::Transition>().newsid)
}

/// A command with no argument returning a value (POLICYVERS, MLS, GETAVC_THRESHOLD, COMMITBOOLS).
pub fn flask_simple(cmd: u32) -> HResult {
    flask(cmd, &()).map(|r| r.0)
}

/// FLASK_GETBOOL by name: (id, current, pending).
pub fn flask_getbool(name: &str) -> Result<(u32, bool, bool), Errno> {
    let a = fx::Boolean {
        bool_id: u32::MAX,
        size: name.len() as u32,
        name: name.as_ptr() as u64,
        ..Default::default()
    };
    let b: fx::Boolean = flask(fx::GETBOOL, &a)?.1.arg();
    Ok((b.bool_id, b.enforcing != 0, b.pending != 0))
}

/// FLASK_GETBOOL by number (Xen's `xc_flask_getbool_byid`, from 0):
/// (name, current, pending); -ENOENT past the last boolean.
pub fn flask_getbool_byid(id: u32) -> Result<(alloc::string::String, bool, bool), Errno> {
    let mut name = [0u8; 256];
    let a = fx::Boolean {
        bool_id: id,
        size: name.len() as u32,
        name: name.as_mut_ptr() as u64,
        ..Default::default()
    };
    let b: fx::Boolean = flask(fx::GETBOOL, &a)?.1.arg();
    let n = (b.size as usize).min(name.len());
    Ok((
        alloc::string::String::from_utf8_lossy(&name[..n]).into_owned(),
        b.enforcing != 0,
        b.pending != 0,
    ))
}

/// FLASK_SETBOOL by name (with `commit`, applied at once).
pub fn flask_setbool(name: &str, value: bool, commit: bool) -> HResult {
    let a = fx::Boolean {
        bool_id: u32::MAX,
        new_value: value as u8,
        commit: commit as u8,
        size: name.len() as u32,
        name: name.as_ptr() as u64,
        ..Default::default()
    };
    flask(fx::SETBOOL, &a).map(|r| r.0)
}

/// FLASK_SETAVC_THRESHOLD.
pub fn flask_setavc_threshold(t: u32) -> HResult {
    flask(fx::SETAVC_THRESHOLD, &fx::SetAvcThreshold { threshold: t }).map(|r| r.0)
}

/// FLASK_AVC_HASHSTATS.
pub fn flask_hashstats() -> Result<fx::HashStats, Errno> {
    Ok(flask(fx::AVC_HASHSTATS, &fx::HashStats::default())?.1.arg())
}

/// FLASK_AVC_CACHESTATS for `cpu`.
pub fn flask_cachestats(cpu: u32) -> Result<fx::CacheStats, Errno> {
    let a = fx::CacheStats {
        cpu,
        ..Default::default()
    };
    Ok(flask(fx::AVC_CACHESTATS, &a)?.1.arg())
}

/// FLASK_ADD_OCONTEXT / FLASK_DEL_OCONTEXT (`add`).
pub fn flask_ocontext(add: bool, ocon: u32, low: u64, high: u64, sid: u32) -> HResult {
    let a = fx::Ocontext {
        ocon,
        sid,
        low,
        high,
    };
    flask(
        if add {
            fx::ADD_OCONTEXT
        } else {
            fx::DEL_OCONTEXT
        },
        &a,
    )
    .map(|r| r.0)
}

/// FLASK_GET_PEER_SID.
pub fn flask_get_peer_sid(port: u32) -> Result<u32, Errno> {
    let a = fx::PeerSid {
        evtchn: port,
        sid: 0,
    };
    Ok(flask(fx::GET_PEER_SID, &a)?.1.arg::<fx::PeerSid>().sid)
}

/// FLASK_RELABEL_DOMAIN.
pub fn flask_relabel_domain(domid: u32, sid: u32) -> HResult {
    flask(fx::RELABEL_DOMAIN, &fx::Relabel { domid, sid }).map(|r| r.0)
}

/// FLASK_DEVICETREE_LABEL.
pub fn flask_devicetree_label(path: &str, sid: u32) -> HResult {
    let a = fx::DevicetreeLabel {
        sid,
        length: path.len() as u32,
        path: path.as_ptr() as u64,
    };
    flask(fx::DEVICETREE_LABEL, &a).map(|r| r.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_decode() {
        assert_eq!(decode(0), Ok(0));
        assert_eq!(decode(5), Ok(5));
        assert_eq!(decode(-13), Err(Errno(13)));
        assert_eq!(Errno(13).name(), "EACCES");
        assert_eq!(
            alloc::format!("{}", Errno(13)),
            "Permission denied (-13 EACCES)"
        );
        assert_eq!(decode(-5000), Ok((-5000i64) as u64), "not an errno");
    }
}
