//! domctl: domain control, Xen 4.17's `do_domctl`. A `Domctl` of another
//! interface version is refused with -EACCES before anything else; every
//! sub-operation is checked before anything shared is touched (Xen's
//! XSA-492/499 lesson: checks after the global domctl lock let unauthorised
//! domains take it).

use super::{Call, HcResult};
use crate::domain::DomainConfig;
use crate::gate::table::*;
use crate::hv::{DomainLimits, NewDomain};
use crate::sched::DEFAULT_WEIGHT;
use crate::xen::gnttab::{MAX_GRANT_FRAMES, maptrack};
use crate::xen::{cpupolicy, hvmctx};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};
use warden_abi::domctl::*;
use warden_abi::{DOMID_FIRST_RESERVED, DomId, errno};

/// Pages DESTROYDOMAIN scrubs and frees per call before it continues itself.
pub const DESTROY_PAGES_PER_CALL: u64 = 512;

/// Xen's default (and highest) `max_maptrack_frames` (`opt_max_maptrack_frames`).
pub const MAX_MAPTRACK_FRAMES: u32 = 1024;
/// The highest grant-table version Warden implements (`opt_gnttab_max_version`).
pub const GNTTAB_MAX_VERSION: u32 = 1;

pub fn domctl(c: &mut Call<'_>, arg: u64) -> HcResult {
    let mut op: Domctl = c.read(arg)?;
    if op.interface_version != INTERFACE_VERSION {
        return Err(errno::EACCES);
    }
    match op.cmd {
        CREATEDOMAIN => createdomain(c, arg, &mut op),
        DESTROYDOMAIN => {
            let p = c.check_req::<DomctlDestroyDomain>(Some(target(c, op.domain)?), None)?;
            let d = c.resolve(&p)?;
            if d.id == c.caller.id {
                return Err(errno::EINVAL);
            }
            // Bounded work per call: the scrub continues in the same
            // hypercall, executed again, until every page is freed.
            match d.destroy_some(DESTROY_PAGES_PER_CALL) {
                Some(_) => Ok(0),
                None => Err(super::ERESTART),
            }
        }
        PAUSEDOMAIN => {
            let p = c.check_req::<DomctlPauseDomain>(Some(target(c, op.domain)?), None)?;
            let d = c.resolve(&p)?;
            if d.id == c.caller.id {
                return Err(errno::EINVAL);
            }
            d.pause(c)?;
            Ok(0)
        }
        UNPAUSEDOMAIN => {
            let p = c.check_req::<DomctlUnpauseDomain>(Some(target(c, op.domain)?), None)?;
            let d = c.resolve(&p)?;
            d.unpause()?;
            Ok(0)
        }
        GETDOMAININFO => {
            // Xen 4.17: the domain with this id, else the first one after it
            // (callers walk the domains with id + 1 until -ESRCH); a denial
            // of the domain found ends the walk there.
            if op.domain >= DOMID_FIRST_RESERVED {
                return Err(errno::EINVAL);
            }
            let s = c.snapshots_from(op.domain).next().ok_or(errno::ESRCH)?;
            let p = c.check_req::<DomctlGetDomainInfo>(Some(s), None)?;
            let d = c.resolve(&p)?;
            let info = d.domain_info();
            op.domain = info.domain;
            op.set_arg(&info);
            c.write(arg, &op)?;
            Ok(0)
        }
        MAX_MEM => {
            let p = c.check_req::<DomctlMaxMem>(Some(target(c, op.domain)?), None)?;
            let a: MaxMem = op.arg();
            let d = c.resolve(&p)?;
            // Xen: max_pages = max_memkb >> 2, clamped to its 32-bit page
            // count, never refused (Warden's physmap holds at most
            // GFN_LIMIT pages whatever the limit says).
            let pages = (a.max_memkb >> 2).min(u64::from(u32::MAX));
            d.set_max_pages(pages);
            Ok(0)
        }
        MAX_VCPUS => {
            let p = c.check_req::<DomctlMaxVcpus>(Some(target(c, op.domain)?), None)?;
            let a: MaxVcpus = op.arg();
            let d = c.resolve(&p)?;
            // Xen 4.17: the number createdomain fixed, again (a domain built
            // at boot has the vCPUs its builder gave it).
            let fixed = match d.config.max_vcpus {
                0 => d.nr_vcpus(),
                n => n,
            };
            if d.id == c.caller.id || a.max != fixed {
                return Err(errno::EINVAL);
            }
            if a.max == 0 {
                return Ok(0);
            }
            d.set_max_vcpus(a.max)?;
            Ok(0)
        }
        SETHVMCONTEXT => {
            let p = c.check_req::<DomctlSetHvmContext>(Some(target(c, op.domain)?), None)?;
            let a: HvmContext = op.arg();
            let d = c.resolve(&p)?;
            // Xen: not the caller itself (it cannot be paused).
            if d.id == c.caller.id {
                return Err(errno::EINVAL);
            }
            let img = c.read_bytes(a.buffer, a.size as usize, hvmctx::MAX_IMAGE, errno::ENOMEM)?;
            if d.dying.load(Ordering::Acquire) {
                return Err(errno::EINVAL);
            }
            // Every record is checked before anything is applied.
            let img = hvmctx::parse(&img, d.nr_vcpus())?;
            note_gtsc(&img.header, c);
            d.pause(c)?;
            d.load_hvm_context(&img);
            let _ = d.unpause();
            Ok(0)
        }
        GETHVMCONTEXT => {
            let p = c.check_req::<DomctlGetHvmContext>(Some(target(c, op.domain)?), None)?;
            let mut a: HvmContext = op.arg();
            let d = c.resolve(&p)?;
            if d.id == c.caller.id {
                return Err(errno::EINVAL);
            }
            // Xen: the size a full image may need; a null buffer asks for it.
            let need = hvmctx::image_size(d.nr_vcpus()) as u32;
            let r = if a.buffer == 0 {
                a.size = need;
                Ok(0)
            } else if a.size < need {
                Err(errno::ENOSPC)
            } else if d.dying.load(Ordering::Acquire) {
                Err(errno::EINVAL)
            } else {
                d.pause(c)?;
                let img = d.save_hvm_context();
                let _ = d.unpause();
                c.write_bytes(a.buffer, &img)?;
                a.size = img.len() as u32;
                Ok(0)
            };
            // Xen copies the structure back whatever the outcome.
            op.set_arg(&a);
            c.write(arg, &op)?;
            r
        }
        GETVCPUINFO => {
            let p = c.check_req::<DomctlGetVcpuInfo>(Some(target(c, op.domain)?), None)?;
            let mut a: GetVcpuInfo = op.arg();
            let v = c.resolve(&p)?.vcpu_info(a.vcpu, c.now_ns())?;
            a.online = v.online as u8;
            a.blocked = v.blocked as u8;
            a.running = v.running as u8;
            a.cpu_time = v.cpu_time_ns;
            a.cpu = v.cpu;
            op.set_arg(&a);
            c.write(arg, &op)?;
            Ok(0)
        }
        SCHEDULER_OP => scheduler_op(c, arg, &mut op),
        SETVCPUAFFINITY | GETVCPUAFFINITY => vcpu_affinity(c, &op),
        SETDOMAINHANDLE => {
            let p = c.check_req::<DomctlSetDomainHandle>(Some(target(c, op.domain)?), None)?;
            let a: DomainHandle = op.arg();
            c.resolve(&p)?.set_handle(a.handle);
            Ok(0)
        }
        GETTSCINFO => {
            let p = c.check_req::<DomctlGetTscInfo>(Some(target(c, op.domain)?), None)?;
            let d = c.resolve(&p)?;
            // Xen: not the caller itself (it cannot be paused).
            if d.id == c.caller.id {
                return Err(errno::EINVAL);
            }
            d.pause(c)?;
            let info = d.tsc_info();
            let _ = d.unpause();
            op.set_arg(&info);
            c.write(arg, &op)?;
            Ok(0)
        }
        SETTSCINFO => {
            let p = c.check_req::<DomctlSetTscInfo>(Some(target(c, op.domain)?), None)?;
            let a: TscInfo = op.arg();
            let d = c.resolve(&p)?;
            if d.id == c.caller.id {
                return Err(errno::EINVAL);
            }
            d.pause(c)?;
            let r = d.set_tsc_mode(&a, c.cpu_khz());
            let _ = d.unpause();
            r?;
            Ok(0)
        }
        SETNODEAFFINITY => {
            let p = c.check_req::<DomctlSetNodeAffinity>(Some(target(c, op.domain)?), None)?;
            let a: NodeAffinity = op.arg();
            let d = c.resolve(&p)?;
            let nodes = read_nodemask(c, &a)?;
            d.set_node_affinity(nodes)?;
            Ok(0)
        }
        GETNODEAFFINITY => {
            let p = c.check_req::<DomctlGetNodeAffinity>(Some(target(c, op.domain)?), None)?;
            let a: NodeAffinity = op.arg();
            let d = c.resolve(&p)?;
            write_nodemask(c, &a, d.node_affinity())?;
            Ok(0)
        }
        CACHEFLUSH => {
            let p = c.check_req::<DomctlCacheflush>(Some(target(c, op.domain)?), None)?;
            let _ = c.resolve(&p)?;
            // An x86 Xen has no cache flush domctl (its caches are coherent
            // with DMA; libxc never issues it there).
            Err(absent(
                &NO_CACHEFLUSH,
                "domctl cacheflush (Arm only)",
                errno::ENOSYS,
            ))
        }
        GET_CPU_POLICY => {
            let p = c.check_req::<DomctlGetCpuPolicy>(Some(target(c, op.domain)?), None)?;
            let _d = c.resolve(&p)?;
            let mut a: CpuPolicy = op.arg();
            // Every domain has Warden's guest policy.
            let g = c.global(&p);
            put_policy(
                c,
                &g.cpu_policy(cpupolicy::View::Guest),
                &cpupolicy::msrs(),
                a.leaves,
                &mut a.nr_leaves,
                a.msrs,
                &mut a.nr_msrs,
            )?;
            op.set_arg(&a);
            c.write(arg, &op)?;
            Ok(0)
        }
        SET_CPU_POLICY => {
            let p = c.check_req::<DomctlSetCpuPolicy>(Some(target(c, op.domain)?), None)?;
            let mut a: CpuPolicy = op.arg();
            let d = c.resolve(&p)?;
            if d.id == c.caller.id {
                return Err(errno::EINVAL);
            }
            d.pause(c)?;
            let r = if d.creation_finished.load(Ordering::Acquire) {
                // No changing once the domain ran.
                Err(None)
            } else {
                let ours = c.global(&p).cpu_policy(cpupolicy::View::Guest);
                check_policy(c, &ours, &a).map_err(Some)
            };
            let _ = d.unpause();
            match r {
                Ok(()) => {
                    if !POLICY_KEPT.swap(true, Ordering::Relaxed) {
                        log::info!(
                            "set_cpu_policy: accepted (compatible); guests keep seeing Warden's CPUID policy"
                        );
                    }
                    Ok(0)
                }
                Err(None) => Err(errno::EEXIST),
                Err(Some(e)) => {
                    a.err_leaf = e.err_leaf;
                    a.err_subleaf = e.err_subleaf;
                    a.err_msr = e.err_msr;
                    op.set_arg(&a);
                    c.write(arg, &op)?;
                    Err(e.errno)
                }
            }
        }
        GET_PAGING_MEMPOOL_SIZE => {
            let p = c.check_req::<DomctlGetPagingMempoolSize>(Some(target(c, op.domain)?), None)?;
            let d = c.resolve(&p)?;
            op.set_arg(&PagingMempool {
                size: d.paging_pool_frames() << 12,
            });
            c.write(arg, &op)?;
            Ok(0)
        }
        SET_PAGING_MEMPOOL_SIZE => {
            let p = c.check_req::<DomctlSetPagingMempoolSize>(Some(target(c, op.domain)?), None)?;
            let a: PagingMempool = op.arg();
            let d = c.resolve(&p)?;
            let pages = a.size >> 12;
            if a.size & 0xfff != 0 || pages > u64::from(u32::MAX) {
                return Err(errno::EINVAL);
            }
            d.set_paging_pool(pages)?;
            Ok(0)
        }
        n => c.unknown("domctl", n as u64),
    }
}

static NO_CACHEFLUSH: AtomicBool = AtomicBool::new(false);
static POLICY_KEPT: AtomicBool = AtomicBool::new(false);

/// Nodes a node mask holds (Xen's `MAX_NUMNODES` on x86).
const MAX_NUMNODES: u32 = 64;

/// A `xenctl_bitmap` of nodes from the caller (Xen's
/// `xenctl_bitmap_to_bitmap`: bits beyond `nr_bits` are clear, beyond
/// [`MAX_NUMNODES`] ignored).
fn read_nodemask(c: &Call<'_>, a: &NodeAffinity) -> Result<u64, i32> {
    let guest_bytes = a.nr_bits.div_ceil(8) as usize;
    let copy = guest_bytes.min((MAX_NUMNODES / 8) as usize);
    let mut b = [0u8; 8];
    if copy != 0 {
        let v = c.read_bytes(a.bitmap, copy, copy, errno::EFAULT)?;
        b[..copy].copy_from_slice(&v);
        if a.nr_bits & 7 != 0 && guest_bytes == copy {
            b[copy - 1] &= !(0xffu8 << (a.nr_bits & 7));
        }
    }
    Ok(u64::from_le_bytes(b))
}

/// Write a node mask into the caller's `xenctl_bitmap` (Xen's
/// `bitmap_to_xenctl_bitmap`: its bytes, then zeros up to `nr_bits`).
fn write_nodemask(c: &Call<'_>, a: &NodeAffinity, nodes: u64) -> Result<(), i32> {
    let guest_bytes = a.nr_bits.div_ceil(8) as usize;
    let copy = guest_bytes.min((MAX_NUMNODES / 8) as usize);
    if copy != 0 {
        c.write_bytes(a.bitmap, &nodes.to_le_bytes()[..copy])?;
    }
    for i in copy..guest_bytes {
        c.write_bytes(a.bitmap.wrapping_add(i as u64), &[0])?;
    }
    Ok(())
}

/// Copy a policy into the caller's buffers as Xen's get_cpu_policy does:
/// a null handle asks for the largest size; a buffer too small gets the
/// entries that fit and -ENOBUFS (the counts are not updated then).
pub(super) fn put_policy(
    c: &Call<'_>,
    leaves: &[warden_abi::sysctl::CpuidLeaf],
    msrs: &[warden_abi::sysctl::MsrEntry],
    leaves_va: u64,
    nr_leaves: &mut u32,
    msrs_va: u64,
    nr_msrs: &mut u32,
) -> Result<(), i32> {
    use warden_abi::sysctl::{CPUID_MAX_SERIALISED_LEAVES, MSR_MAX_SERIALISED_ENTRIES};
    if leaves_va == 0 {
        *nr_leaves = CPUID_MAX_SERIALISED_LEAVES;
    } else {
        for (i, l) in leaves.iter().enumerate() {
            if i as u32 == *nr_leaves {
                return Err(errno::ENOBUFS);
            }
            c.write_elem(leaves_va, i as u64, l)?;
        }
        *nr_leaves = leaves.len() as u32;
    }
    if msrs_va == 0 {
        *nr_msrs = MSR_MAX_SERIALISED_ENTRIES;
    } else {
        for (i, m) in msrs.iter().enumerate() {
            if i as u32 == *nr_msrs {
                return Err(errno::ENOBUFS);
            }
            c.write_elem(msrs_va, i as u64, m)?;
        }
        *nr_msrs = msrs.len() as u32;
    }
    Ok(())
}

/// Read a toolstack's policy and check it against `ours` (Xen's
/// `update_domain_cpu_policy`): counts checked before anything is read.
fn check_policy(
    c: &Call<'_>,
    ours: &[warden_abi::sysctl::CpuidLeaf],
    a: &CpuPolicy,
) -> Result<(), cpupolicy::Refusal> {
    use warden_abi::sysctl::{CPUID_MAX_SERIALISED_LEAVES, MSR_MAX_SERIALISED_ENTRIES, MsrEntry};
    let fault = |e| cpupolicy::Refusal {
        errno: e,
        err_leaf: !0,
        err_subleaf: !0,
        err_msr: !0,
    };
    if a.nr_leaves > CPUID_MAX_SERIALISED_LEAVES {
        return Err(fault(errno::E2BIG));
    }
    let mut leaves = Vec::new();
    for i in 0..u64::from(a.nr_leaves) {
        leaves.push(c.read_elem(a.leaves, i).map_err(fault)?);
    }
    // More MSRs than a policy has: refused once the leaves are parsed.
    let msrs = if a.nr_msrs > MSR_MAX_SERIALISED_ENTRIES {
        alloc::vec![MsrEntry::default(); MSR_MAX_SERIALISED_ENTRIES as usize + 1]
    } else {
        let mut v = Vec::new();
        for i in 0..u64::from(a.nr_msrs) {
            v.push(c.read_elem(a.msrs, i).map_err(fault)?);
        }
        v
    };
    cpupolicy::check(ours, &leaves, &msrs)
}

/// XEN_DOMCTL_scheduler_op (Xen's `sched_adjust` with credit2's
/// `csched2_dom_cntl`, the scheduler whose id Warden reports): getinfo
/// answers the domain's weight and no cap; putinfo sets the weight (0
/// keeps it). Warden's scheduler does not cap a domain: a cap Xen would
/// accept is refused with EOPNOTSUPP (said once), after the weight is set,
/// as Xen sets the weight before it looks at the cap. Credit2 has no
/// per-vCPU parameters (put/getvcpuinfo: EINVAL). The structure is copied
/// back whatever the result, as Xen.
fn scheduler_op(c: &mut Call<'_>, arg: u64, op: &mut Domctl) -> HcResult {
    use super::sysctl::SCHEDULER;
    let mut a: SchedulerOp = op.arg();
    let t = target(c, op.domain)?;
    let r = match a.cmd {
        SCHEDOP_PUTINFO | SCHEDOP_PUTVCPUINFO => {
            let p = c.check_req::<DomctlSchedulerOpPut>(Some(t), None)?;
            let d = c.resolve(&p)?;
            if a.sched_id != SCHEDULER || a.cmd == SCHEDOP_PUTVCPUINFO {
                Err(errno::EINVAL)
            } else {
                if a.weight != 0 {
                    d.set_sched_weight(a.weight as u32);
                }
                match a.cap as u32 {
                    0 => Ok(0),
                    cap if cap > 100 * d.nr_vcpus() => Err(errno::EINVAL),
                    _ => c.absent(
                        "domctl",
                        SCHEDULER_OP,
                        errno::EOPNOTSUPP,
                        format_args!(
                            "scheduler_op: a credit2 cap (Warden's scheduler does not cap domains)"
                        ),
                    ),
                }
            }
        }
        SCHEDOP_GETINFO | SCHEDOP_GETVCPUINFO => {
            let p = c.check_req::<DomctlSchedulerOpGet>(Some(t), None)?;
            let d = c.resolve(&p)?;
            if a.sched_id != SCHEDULER || a.cmd == SCHEDOP_GETVCPUINFO {
                Err(errno::EINVAL)
            } else {
                a.weight = d.sched_weight().min(u16::MAX as u32) as u16;
                a.cap = 0;
                Ok(0)
            }
        }
        // Xen's avc_unknown_permission; a command the hook lets through
        // is then refused by sched_adjust (EINVAL).
        n => {
            return match c.unknown_to_xsm("domctl_scheduler_op", n) {
                Err(errno::ENOSYS) => Err(errno::EINVAL),
                r => r,
            };
        }
    };
    op.set_arg(&a);
    c.write(arg, op)?;
    r
}

/// XEN_DOMCTL_setvcpuaffinity / getvcpuaffinity (Xen's
/// `vcpu_affinity_domctl`). Warden does not pin vCPUs: every vCPU may run
/// on every CPU, and prefers none, so its hard and soft affinities are all
/// the CPUs, which getvcpuaffinity reports. setvcpuaffinity accepts masks
/// holding every CPU (libxl's default, and its NUMA placement on Warden's
/// one node), writing back the effective masks as Xen does; a hard mask
/// with no CPU is EINVAL (as Xen), and a mask that would restrict the vCPU
/// is refused with EOPNOTSUPP (said once) rather than accepted and
/// ignored. No copy-back of the domctl itself, as Xen.
fn vcpu_affinity(c: &mut Call<'_>, op: &Domctl) -> HcResult {
    let a: VcpuAffinity = op.arg();
    let t = target(c, op.domain)?;
    let set = op.cmd == SETVCPUAFFINITY;
    let cpus = if set {
        let p = c.check_req::<DomctlSetVcpuAffinity>(Some(t), None)?;
        let d = c.resolve(&p)?;
        d.vcpu(a.vcpu)?;
        d.online_cpus()
    } else {
        let p = c.check_req::<DomctlGetVcpuAffinity>(Some(t), None)?;
        let d = c.resolve(&p)?;
        d.vcpu(a.vcpu)?;
        d.online_cpus()
    };
    let maps = [
        (VCPUAFFINITY_HARD, &a.cpumap_hard),
        (VCPUAFFINITY_SOFT, &a.cpumap_soft),
    ];
    if a.flags == 0 || maps.iter().any(|(f, m)| a.flags & f != 0 && m.bitmap == 0) {
        return Err(errno::EINVAL);
    }
    let all: Vec<u8> = (0..cpus.div_ceil(8))
        .map(|i| {
            let left = cpus - i * 8;
            if left >= 8 { 0xff } else { (1u8 << left) - 1 }
        })
        .collect();
    for (flag, m) in maps {
        if a.flags & flag == 0 {
            continue;
        }
        if set {
            let want = read_bitmap(c, m, cpus)?;
            if flag == VCPUAFFINITY_HARD && want.iter().zip(&all).all(|(w, a)| w & a == 0) {
                return Err(errno::EINVAL);
            }
            if want.iter().zip(&all).any(|(w, a)| w & a != *a) {
                return c.absent(
                    "domctl",
                    SETVCPUAFFINITY,
                    errno::EOPNOTSUPP,
                    format_args!(
                        "setvcpuaffinity: a mask without every CPU (Warden does not pin vCPUs)"
                    ),
                );
            }
        }
        write_bitmap(c, m, &all)?;
    }
    Ok(0)
}

/// Read the first `nbits` bits of a `xenctl_bitmap` (Xen's
/// `xenctl_bitmap_to_bitmap`: bits beyond the guest's `nr_bits` are 0).
fn read_bitmap(c: &Call<'_>, m: &XenctlBitmap, nbits: u32) -> Result<Vec<u8>, i32> {
    let ours = nbits.div_ceil(8) as usize;
    let guest_bytes = m.nr_bits.div_ceil(8) as usize;
    let copy = guest_bytes.min(ours);
    let mut b = alloc::vec![0u8; ours];
    if copy != 0 {
        let v = c.read_bytes(m.bitmap, copy, copy, errno::EFAULT)?;
        b[..copy].copy_from_slice(&v);
        if m.nr_bits & 7 != 0 && guest_bytes == copy {
            b[copy - 1] &= !(0xffu8 << (m.nr_bits & 7));
        }
    }
    Ok(b)
}

/// Write `bytes` into a `xenctl_bitmap` (Xen's `bitmap_to_xenctl_bitmap`:
/// as many as the guest's `nr_bits` hold, then zeros up to them).
fn write_bitmap(c: &Call<'_>, m: &XenctlBitmap, bytes: &[u8]) -> Result<(), i32> {
    let guest_bytes = m.nr_bits.div_ceil(8) as usize;
    let copy = guest_bytes.min(bytes.len());
    if copy != 0 {
        c.write_bytes(m.bitmap, &bytes[..copy])?;
    }
    // The zeros a page at a time (a guest may give any nr_bits; a bad
    // address ends it with EFAULT).
    const ZEROS: [u8; 4096] = [0; 4096];
    let mut i = copy;
    while i < guest_bytes {
        let n = (guest_bytes - i).min(ZEROS.len());
        let at = m.bitmap.checked_add(i as u64).ok_or(errno::EFAULT)?;
        c.write_bytes(at, &ZEROS[..n])?;
        i += n;
    }
    Ok(())
}

/// The domain a domctl names: Xen looks it up by id only (DOMID_SELF and
/// the other reserved ids name no domain: -ESRCH).
fn target(c: &Call<'_>, id: DomId) -> Result<crate::domain::DomSnap, i32> {
    if id >= DOMID_FIRST_RESERVED {
        return Err(errno::ESRCH);
    }
    c.target(id)
}

static GTSC_DIFFERS: AtomicBool = AtomicBool::new(false);

/// Xen takes the header's TSC frequency as the guest's; Warden's guests
/// read the host's TSC at the host's rate (said once).
fn note_gtsc(h: &warden_abi::xen::hvm_save::SaveHeader, c: &Call<'_>) {
    if h.gtsc_khz != 0 && h.gtsc_khz != c.cpu_khz() && !GTSC_DIFFERS.swap(true, Ordering::Relaxed) {
        log::warn!(
            "sethvmcontext: guest TSC frequency {} kHz ignored: Warden's guests run at the host's {} kHz",
            h.gtsc_khz,
            c.cpu_khz()
        );
    }
}

/// A refusal for something Warden does not implement (logged once per kind).
fn absent(once: &AtomicBool, what: &str, e: i32) -> i32 {
    if !once.swap(true, Ordering::Relaxed) {
        log::warn!("createdomain: {what}: refused ({})", errno::name(e));
    }
    e
}

static NO_IOMMU: AtomicBool = AtomicBool::new(false);
static NO_VMTRACE: AtomicBool = AtomicBool::new(false);
static NO_VPMU: AtomicBool = AtomicBool::new(false);
static NO_PV: AtomicBool = AtomicBool::new(false);
static TOO_MANY_VCPUS: AtomicBool = AtomicBool::new(false);
static NO_TBOOT: AtomicBool = AtomicBool::new(false);
static NO_NESTED: AtomicBool = AtomicBool::new(false);
static NO_SHADOW: AtomicBool = AtomicBool::new(false);
static NO_MSR_RELAXED: AtomicBool = AtomicBool::new(false);
static NO_HVM_DEVICES: AtomicBool = AtomicBool::new(false);

/// Xen 4.17's checks of a `xen_domctl_createdomain` (`sanitise_domain_config`,
/// `arch_sanitise_domain_config`, `arch_domain_create`'s emulation flags,
/// `grant_table_init`, `sched_init_domain`), in Xen's order and with its
/// errnos; what Warden does not implement is refused as a Xen built
/// without it refuses it. Returns what the domain keeps.
pub fn sanitise(a: &CreateDomain) -> Result<(DomainConfig, DomainLimits), i32> {
    let hvm = a.flags & CDF_HVM != 0;
    let hap = a.flags & CDF_HAP != 0;
    if a.flags & !CDF_ALL != 0
        || a.grant_opts & !GRANT_VERSION_MASK != 0
        || a.max_vcpus < 1
        || (hap && !hvm)
    {
        return Err(errno::EINVAL);
    }
    if a.flags & CDF_IOMMU != 0 {
        if a.iommu_opts & !IOMMU_NO_SHAREPT != 0 {
            return Err(errno::EINVAL);
        }
        return Err(absent(
            &NO_IOMMU,
            "IOMMU requested but not available",
            errno::EINVAL,
        ));
    } else if a.iommu_opts != 0 {
        return Err(errno::EINVAL);
    }
    if a.vmtrace_size != 0 {
        return Err(absent(
            &NO_VMTRACE,
            "vmtrace requested but not available",
            errno::EINVAL,
        ));
    }
    if a.flags & CDF_VPMU != 0 {
        return Err(absent(
            &NO_VPMU,
            "vPMU requested but not available",
            errno::EINVAL,
        ));
    }
    // arch_sanitise_domain_config
    if !hvm {
        return Err(absent(&NO_PV, "PV guests are not supported", errno::EINVAL));
    }
    if a.max_vcpus > HVM_MAX_VCPUS {
        return Err(errno::EINVAL);
    }
    if a.max_vcpus > warden_abi::vcpu::MAX_VCPUS {
        // Xen allows up to HVM_MAX_VCPUS (128).
        return Err(absent(
            &TOO_MANY_VCPUS,
            "more vCPUs than Warden's 64 per domain",
            errno::EINVAL,
        ));
    }
    if a.flags & CDF_S3_INTEGRITY != 0 {
        return Err(absent(
            &NO_TBOOT,
            "S3 integrity without tboot",
            errno::EINVAL,
        ));
    }
    let nested = a.flags & CDF_NESTED_VIRT != 0;
    if nested && !hap {
        return Err(errno::EINVAL);
    }
    if a.arch.misc_flags & !X86_MSR_RELAXED != 0 {
        return Err(errno::EINVAL);
    }
    // arch_domain_create
    let em = a.arch.emulation_flags;
    if em & !X86_EMU_ALL != 0 {
        return Err(errno::EINVAL);
    }
    if em != X86_EMU_LAPIC {
        // Xen also takes the full HVM set (X86_EMU_ALL & !VPCI); anything
        // else it refuses with EOPNOTSUPP, as Warden refuses the devices of
        // a full HVM guest it does not emulate.
        return Err(if em == X86_EMU_ALL & !X86_EMU_VPCI {
            absent(
                &NO_HVM_DEVICES,
                "emulated devices of a full HVM guest (only PVH: emulation_flags = LAPIC)",
                errno::EOPNOTSUPP,
            )
        } else {
            errno::EOPNOTSUPP
        });
    }
    // paging_domain_init: an HVM guest without HAP needs shadow paging,
    // which Warden (like Xen built without CONFIG_SHADOW_PAGING) lacks.
    if !hap {
        return Err(absent(
            &NO_SHADOW,
            "shadow paging (HVM without HAP)",
            errno::EOPNOTSUPP,
        ));
    }
    if nested {
        return Err(absent(
            &NO_NESTED,
            "nested virtualization",
            errno::EOPNOTSUPP,
        ));
    }
    if a.arch.misc_flags & X86_MSR_RELAXED != 0 {
        return Err(absent(
            &NO_MSR_RELAXED,
            "relaxed MSR access",
            errno::EOPNOTSUPP,
        ));
    }
    // grant_table_init
    let version = a.grant_opts & GRANT_VERSION_MASK;
    if version == 0 || version > GNTTAB_MAX_VERSION {
        return Err(errno::EINVAL);
    }
    let frames = if a.max_grant_frames < 0 {
        MAX_GRANT_FRAMES
    } else {
        a.max_grant_frames as u32
    };
    let maptrack_frames = if a.max_maptrack_frames < 0 {
        MAX_MAPTRACK_FRAMES
    } else {
        a.max_maptrack_frames as u32
    };
    if !(crate::xen::gnttab::INITIAL_FRAMES..=MAX_GRANT_FRAMES).contains(&frames)
        || maptrack_frames > MAX_MAPTRACK_FRAMES
    {
        return Err(errno::EINVAL);
    }
    // sched_init_domain: Warden has CPU pool 0 only.
    if a.cpupool_id != 0 {
        return Err(errno::ESRCH);
    }
    // A maptrack frame holds 512 handles; Warden's chunks hold CHUNK.
    let handles = u64::from(maptrack_frames) * 512;
    let chunks = handles
        .div_ceil(u64::from(maptrack::CHUNK))
        .min(u64::from(maptrack::MAX_CHUNKS)) as u32;
    Ok((
        DomainConfig {
            max_vcpus: a.max_vcpus,
            xs_domain: a.flags & CDF_XS_DOMAIN != 0,
            emulation_flags: em,
            cpupool: 0,
        },
        DomainLimits {
            grant_frames: frames,
            maptrack_chunks: chunks,
            max_evtchn_port: a.max_evtchn_port,
        },
    ))
}

fn createdomain(c: &mut Call<'_>, arg: u64, op: &mut Domctl) -> HcResult {
    let a: CreateDomain = op.arg();
    // Xen: a null label is the one the new domain was allocated with, and
    // a domain created by another domain is allocated `unlabeled`.
    let sid = match (a.ssidref, c.flask_enabled()) {
        (_, false) => 0,
        (0, true) => xsm::initial_sid::UNLABELED.raw(),
        (s, true) => s,
    };
    let p = c.check_req::<DomctlCreateDomain>(None, Some(sid))?;
    let (config, limits) = sanitise(&a)?;
    // The dom0 label is a singleton (Xen's flask_domain_create).
    if c.flask_enabled() && sid == xsm::initial_sid::DOM0.raw() {
        return Err(errno::EINVAL);
    }
    let want = match op.domain {
        0 => None,
        x if x >= DOMID_FIRST_RESERVED => None,
        x => Some(x),
    };
    let d = c.global(&p).create_domain(
        NewDomain {
            want,
            privileged: false,
            name: alloc::string::String::new(),
            sid,
            max_pages: 0,
            weight: DEFAULT_WEIGHT,
            handle: a.handle,
        },
        config,
        limits,
    )?;
    log::info!(
        "d{} created domain {} (ssidref {sid}, {} vCPUs)",
        c.caller.id,
        d.id,
        a.max_vcpus
    );
    op.domain = d.id;
    c.write(arg, op)?;
    Ok(0)
}
