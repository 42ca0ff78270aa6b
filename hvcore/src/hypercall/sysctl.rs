//! sysctl: system-wide control, Xen 4.17's `do_sysctl`. A `Sysctl` of
//! another interface version is refused with -EACCES before anything else.

use super::{Call, HcResult};
use crate::gate::Permit;
use crate::gate::table::*;
use crate::xen::cpupolicy;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};
use warden_abi::domctl::GetDomainInfo;
use warden_abi::errno;
use warden_abi::sysctl::*;

/// Most domains one getdomaininfolist call returns.
pub const MAX_LIST: u32 = 1024;
/// Most bytes one readconsole call returns.
pub const MAX_READCONSOLE: u32 = 1 << 20;

/// The scheduler id sched_id and cpupool INFO report: credit2's. Warden's
/// scheduler is its own (weighted fair shares of virtual time, default
/// weight 256), closest to credit2's weighted proportional shares; libxl
/// refuses to create a domain in a pool whose scheduler it does not know.
pub const SCHEDULER: u32 = SCHEDULER_CREDIT2;

/// Xen's distance of a NUMA node to itself (`NUMA_LOCAL_DISTANCE`).
pub const LOCAL_DISTANCE: u32 = 10;

/// The permit of a live-patch sub-operation, handed to the live-patch subsystem.
#[derive(Debug)]
pub enum LivepatchPermit {
    Upload(Permit<LivepatchUpload>),
    Get(Permit<LivepatchGet>),
    List(Permit<LivepatchList>),
    Action(Permit<LivepatchAction>),
}

pub fn sysctl(c: &mut Call<'_>, arg: u64) -> HcResult {
    let mut op: Sysctl = c.read(arg)?;
    if op.interface_version != INTERFACE_VERSION {
        return Err(errno::EACCES);
    }
    match op.cmd {
        READCONSOLE => readconsole(c, arg, &mut op),
        PHYSINFO => {
            let permit = c.check::<SysctlPhysinfo>()?;
            let p = c.global(&permit);
            let n = p.nr_cpus();
            // Xen copies the boot CPU's first feature words into hw_cap.
            let words = p.host_featureset();
            let mut hw_cap = [0u32; 8];
            let k = hw_cap.len().min(words.len());
            hw_cap[..k].copy_from_slice(&words[..k]);
            let info = PhysInfo {
                threads_per_core: 1,
                cores_per_socket: n,
                nr_cpus: n,
                max_cpu_id: n.saturating_sub(1),
                nr_nodes: 1,
                max_node_id: 0,
                cpu_khz: p.cpu_khz(),
                // What Warden provides: HVM (PVH) guests with nested paging,
                // grant tables v1. No PV, no shadow paging, no IOMMU.
                capabilities: PHYSCAP_HVM | PHYSCAP_HAP | PHYSCAP_GNTTAB_V1,
                total_pages: p.total_frames(),
                free_pages: p.free_frames(),
                outstanding_pages: p.outstanding_claims(),
                max_mfn: p.max_mfn(),
                hw_cap,
                ..Default::default()
            };
            op.set_arg(&info);
            c.write(arg, &op)?;
            Ok(0)
        }
        SCHED_ID => {
            let _ = c.check::<SysctlSchedId>()?;
            op.set_arg(&SchedId {
                sched_id: SCHEDULER,
            });
            c.write(arg, &op)?;
            Ok(0)
        }
        GETDOMAININFOLIST => getdomaininfolist(c, arg, &mut op),
        DEBUG_KEYS => {
            let permit = c.check::<SysctlDebugKeys>()?;
            let g = c.global(&permit);
            let a: DebugKeys = op.arg();
            // As Xen: each key is read and run in turn; a bad address ends
            // the call with -EFAULT after the keys before it ran. Nothing
            // is copied back.
            for i in 0..u64::from(a.nr_keys) {
                let k: u8 = c.read_elem(a.keys, i)?;
                g.debug_key(k);
            }
            Ok(0)
        }
        GET_CPU_FEATURESET => {
            let p = c.check::<SysctlGetCpuFeatureset>()?;
            let mut a: CpuFeatureset = op.arg();
            // A null buffer asks for the size.
            if a.features == 0 {
                a.nr_features = FSCAPINTS;
                op.set_arg(&a);
                c.write(arg, &op)?;
                return Ok(0);
            }
            let nr = a.nr_features.min(FSCAPINTS);
            let view = match a.index {
                featureset::RAW | featureset::HOST => Ok(cpupolicy::View::Host),
                featureset::HVM | featureset::HVM_MAX => Ok(cpupolicy::View::Guest),
                // No PV guests (a Xen built without PV).
                featureset::PV | featureset::PV_MAX => Err(errno::EOPNOTSUPP),
                _ => Err(errno::EINVAL),
            };
            let view = view?;
            let words = c.global(&p).featureset(view);
            for (i, w) in words[..nr as usize].iter().enumerate() {
                c.write_elem(a.features, i as u64, w)?;
            }
            a.nr_features = nr;
            op.set_arg(&a);
            c.write(arg, &op)?;
            // More words than the buffer held.
            if nr < FSCAPINTS {
                return Err(errno::ENOBUFS);
            }
            Ok(0)
        }
        GET_CPU_POLICY => {
            let p = c.check::<SysctlGetCpuPolicy>()?;
            let mut a: SysCpuPolicy = op.arg();
            if a.rsvd != 0 || a.index > cpu_policy::HVM_DEFAULT {
                return Err(errno::EINVAL);
            }
            let view = match a.index {
                cpu_policy::RAW | cpu_policy::HOST => cpupolicy::View::Host,
                cpu_policy::HVM_MAX | cpu_policy::HVM_DEFAULT => cpupolicy::View::Guest,
                _ => return Err(errno::EOPNOTSUPP),
            };
            let leaves = c.global(&p).cpu_policy(view);
            let r = super::domctl::put_policy(
                c,
                &leaves,
                &cpupolicy::msrs(),
                a.leaves,
                &mut a.nr_leaves,
                a.msrs,
                &mut a.nr_msrs,
            );
            // Xen copies the counts back as far as it got.
            op.set_arg(&a);
            c.write(arg, &op)?;
            r?;
            Ok(0)
        }
        CPUTOPOINFO => {
            let permit = c.check::<SysctlCpuTopoInfo>()?;
            let n = c.global(&permit).nr_cpus();
            let mut a: CpuTopoInfo = op.arg();
            let mut i = n;
            if a.cputopo != 0 {
                i = n.min(a.num_cpus);
                for cpu in 0..i {
                    // One socket, one node, a core per CPU (physinfo's view).
                    let t = CpuTopo {
                        core: cpu,
                        socket: 0,
                        node: 0,
                    };
                    c.write_elem(a.cputopo, u64::from(cpu), &t)?;
                }
            }
            if a.num_cpus != i {
                a.num_cpus = i;
                op.set_arg(&a);
                c.write(arg, &op)?;
            }
            Ok(0)
        }
        NUMAINFO => {
            let permit = c.check::<SysctlNumaInfo>()?;
            let g = c.global(&permit);
            let mut a: NumaInfo = op.arg();
            let nodes = 1u32;
            let mut i = nodes;
            if a.meminfo != 0 || a.distance != 0 {
                i = nodes.min(a.num_nodes);
                for node in 0..i {
                    if a.meminfo != 0 {
                        let m = MemInfo {
                            memsize: g.total_frames() << 12,
                            memfree: g.free_frames() << 12,
                        };
                        c.write_elem(a.meminfo, u64::from(node), &m)?;
                    }
                    if a.distance != 0 {
                        for j in 0..i {
                            c.write_elem(a.distance, u64::from(node * i + j), &LOCAL_DISTANCE)?;
                        }
                    }
                }
            }
            if a.num_nodes != i {
                a.num_nodes = i;
                op.set_arg(&a);
                c.write(arg, &op)?;
            }
            Ok(0)
        }
        CPUPOOL_OP => cpupool_op(c, arg, &mut op),
        LIVEPATCH_OP => {
            let mut a: Livepatch = op.arg();
            let permit = match a.cmd {
                livepatch::UPLOAD => LivepatchPermit::Upload(c.check::<LivepatchUpload>()?),
                livepatch::GET => LivepatchPermit::Get(c.check::<LivepatchGet>()?),
                livepatch::LIST => LivepatchPermit::List(c.check::<LivepatchList>()?),
                livepatch::ACTION => LivepatchPermit::Action(c.check::<LivepatchAction>()?),
                n => return c.unknown("livepatch_op", n as u64),
            };
            let Some(hook) = c.livepatch(&permit) else {
                log::warn!(
                    "livepatch: d{} asked for a live-patch operation; this build has no live patching",
                    c.caller.id
                );
                // Xen without CONFIG_LIVEPATCH: the sysctl does not exist.
                return Err(errno::ENOSYS);
            };
            // Xen copies the structure back unless the answer is ENOSYS
            // or EOPNOTSUPP (errors included: LIST's totals).
            let r = hook(c, permit, &mut a);
            if !matches!(r, Err(errno::ENOSYS) | Err(errno::EOPNOTSUPP)) {
                op.set_arg(&a);
                c.write(arg, &op)?;
            }
            r
        }
        n => c.unknown("sysctl", n as u64),
    }
}

fn readconsole(c: &mut Call<'_>, arg: u64, op: &mut Sysctl) -> HcResult {
    let mut a: ReadConsole = op.arg();
    let (p, clear) = if a.clear != 0 {
        let permit = c.check::<SysctlReadConsoleClear>()?;
        let g = c.global(&permit);
        (g.console_ring(), Some(g))
    } else {
        let permit = c.check::<SysctlReadConsole>()?;
        (c.global(&permit).console_ring(), None)
    };
    let head = p.console_head();
    let from = if a.incremental != 0 {
        // `index` is a position modulo 2^32 at most 4 GiB behind the head.
        let behind = (head as u32).wrapping_sub(a.index) as u64;
        head.saturating_sub(behind)
    } else {
        p.console_tail()
    };
    let want = a.count.min(MAX_READCONSOLE) as usize;
    let mut pos = from;
    let mut copied = 0usize;
    let mut chunk = [0u8; 512];
    while copied < want {
        let n = chunk.len().min(want - copied);
        let r = p.console_read(pos, &mut chunk[..n]);
        if r.len == 0 {
            break;
        }
        let at = a.buffer.checked_add(copied as u64).ok_or(errno::EFAULT)?;
        c.write_bytes(at, &chunk[..r.len])?;
        copied += r.len;
        pos = r.next;
    }
    // As Xen: clear discards what this call returned, nothing more (the
    // caller reads on, with `incremental`, until it gets 0).
    if let Some(g) = clear {
        g.console_clear_to(pos);
    }
    a.count = copied as u32;
    a.index = pos as u32;
    op.set_arg(&a);
    c.write(arg, op)?;
    Ok(0)
}

fn getdomaininfolist(c: &mut Call<'_>, arg: u64, op: &mut Sysctl) -> HcResult {
    // Xen's sysctl check (caller -> dom_xen : domain getdomaininfo), then
    // one check per listed domain; domains refused are skipped.
    let _ = c.check::<SysctlGetDomainInfoList>()?;
    let mut a: GetDomainInfoList = op.arg();
    let max = a.max_domains.min(MAX_LIST);
    let mut permits = Vec::new();
    for s in c.snapshots_from(a.first_domain) {
        if permits.len() as u32 >= max {
            break;
        }
        if let Ok(p) = c.check_req::<SysctlGetDomainInfoListEntry>(Some(s), None) {
            permits.push(p);
        }
    }
    let mut n = 0u64;
    for p in &permits {
        let Ok(d) = c.resolve(p) else { continue };
        let info: GetDomainInfo = d.domain_info();
        c.write_elem(a.buffer, n, &info)?;
        n += 1;
    }
    a.num_domains = n as u32;
    op.set_arg(&a);
    c.write(arg, op)?;
    Ok(0)
}

static CPUPOOL_CHANGES: AtomicBool = AtomicBool::new(false);

fn cpupool_op(c: &mut Call<'_>, arg: u64, op: &mut Sysctl) -> HcResult {
    let permit = c.check::<SysctlCpupoolOp>()?;
    let g = c.global(&permit);
    let mut a: CpupoolOp = op.arg();
    // Warden has one pool, 0, holding every CPU (Xen's Pool-0).
    let cpus = match a.op {
        cpupool::INFO => {
            // The first pool whose id is >= the one asked for.
            if a.cpupool_id > 0 {
                return Err(errno::ENOENT);
            }
            a.cpupool_id = 0;
            a.sched_id = SCHEDULER;
            a.n_dom = g.nr_domains();
            g.nr_cpus()
        }
        // Every CPU is in pool 0: none is free.
        cpupool::FREEINFO => 0,
        cpupool::CREATE
        | cpupool::DESTROY
        | cpupool::ADDCPU
        | cpupool::RMCPU
        | cpupool::MOVEDOMAIN => {
            if !CPUPOOL_CHANGES.swap(true, Ordering::Relaxed) {
                log::warn!(
                    "sysctl cpupool_op {} from d{}: Warden has one CPU pool and does not change it (-ENOSYS)",
                    a.op,
                    c.caller.id
                );
            }
            return Err(errno::ENOSYS);
        }
        _ => return Err(errno::ENOSYS),
    };
    write_cpumap(c, &a.cpumap, cpus, g.nr_cpus())?;
    op.set_arg(&a);
    c.write(arg, op)?;
    Ok(0)
}

/// Xen's `bitmap_to_xenctl_bitmap`: the first `set` of `nbits` CPUs set,
/// as many bytes as both sides have, then zero bytes up to the caller's size.
fn write_cpumap(c: &Call<'_>, map: &CtlBitmap, set: u32, nbits: u32) -> Result<(), i32> {
    let guest_bytes = map.nr_bits.div_ceil(8);
    let xen_bytes = nbits.div_ceil(8);
    for i in 0..guest_bytes {
        let mut b = 0u8;
        if i < xen_bytes {
            for bit in 0..8 {
                let cpu = i * 8 + bit;
                if cpu < set && cpu < nbits {
                    b |= 1 << bit;
                }
            }
        }
        let at = map.bitmap.checked_add(u64::from(i)).ok_or(errno::EFAULT)?;
        c.write_bytes(at, &[b])?;
    }
    Ok(())
}
