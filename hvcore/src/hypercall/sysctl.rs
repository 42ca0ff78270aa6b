//! sysctl: system-wide control.

use super::{Call, HcResult};
use crate::gate::Permit;
use crate::gate::table::*;
use alloc::vec::Vec;
use warden_abi::domctl::DomainInfo;
use warden_abi::errno;
use warden_abi::sysctl::*;

/// Most domains one getdomaininfolist call returns.
pub const MAX_LIST: u32 = 1024;
/// Most bytes one readconsole call returns.
pub const MAX_READCONSOLE: u32 = 1 << 20;

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
        return Err(errno::EINVAL);
    }
    match op.cmd {
        READCONSOLE => {
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
            // As Xen: clear discards what this call returned, nothing more
            // (the caller reads on, with `incremental`, until it gets 0).
            if let Some(g) = clear {
                g.console_clear_to(pos);
            }
            a.count = copied as u32;
            a.index = pos as u32;
            op.set_arg(&a);
            c.write(arg, &op)?;
            Ok(0)
        }
        PHYSINFO => {
            let permit = c.check::<SysctlPhysinfo>()?;
            let p = c.global(&permit);
            let n = p.nr_cpus();
            let info = PhysInfo {
                threads_per_core: 1,
                cores_per_socket: n,
                nr_cpus: n,
                max_cpu_id: n.saturating_sub(1),
                nr_nodes: 1,
                max_node_id: 0,
                cpu_khz: p.cpu_khz(),
                capabilities: PHYSCAP_HVM | PHYSCAP_HAP,
                total_pages: p.total_frames(),
                free_pages: p.free_frames(),
                max_mfn: p.max_mfn(),
                ..Default::default()
            };
            op.set_arg(&info);
            c.write(arg, &op)?;
            Ok(0)
        }
        GETDOMAININFOLIST => {
            let mut a: GetDomainInfoList = op.arg();
            let max = a.max_domains.min(MAX_LIST);
            // One check per listed domain, on lock-free snapshots; refused ones are skipped.
            let mut permits = Vec::new();
            for s in c.snapshots_from(a.first_domain) {
                if permits.len() as u32 >= max {
                    break;
                }
                if let Ok(p) = c.check_req::<SysctlGetDomainInfoList>(Some(s), None) {
                    permits.push(p);
                }
            }
            let mut n = 0u64;
            for p in &permits {
                let Ok(d) = c.resolve(p) else { continue };
                let info: DomainInfo = d.domain_info();
                c.write_elem(a.buffer, n, &info)?;
                n += 1;
            }
            a.num_domains = n as u32;
            op.set_arg(&a);
            c.write(arg, &op)?;
            Ok(0)
        }
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
                return Err(errno::EOPNOTSUPP);
            };
            let r = hook(c, permit, &mut a)?;
            op.set_arg(&a);
            c.write(arg, &op)?;
            Ok(r)
        }
        n => c.unknown("sysctl", n as u64),
    }
}
