//! domctl: domain control. Every sub-operation is checked before anything
//! shared is touched (Xen's XSA-492/499 lesson: checks after the global
//! domctl lock let unauthorised domains take it).

use super::{Call, HcResult};
use crate::gate::table::*;
use crate::hv::NewDomain;
use crate::sched::DEFAULT_WEIGHT;
use warden_abi::domctl::*;
use warden_abi::vcpu::HvmContext;
use warden_abi::{DOMID_FIRST_RESERVED, errno};

/// Pages DESTROYDOMAIN scrubs and frees per call before it continues itself.
pub const DESTROY_PAGES_PER_CALL: u64 = 512;

pub fn domctl(c: &mut Call<'_>, arg: u64) -> HcResult {
    let mut op: Domctl = c.read(arg)?;
    if op.interface_version != INTERFACE_VERSION {
        return Err(errno::EINVAL);
    }
    match op.cmd {
        CREATEDOMAIN => {
            let a: CreateDomain = op.arg();
            let sid = match (a.ssidref, c.flask_enabled()) {
                (_, false) => 0,
                (0, true) => xsm::initial_sid::DOMU.raw(),
                (s, true) => s,
            };
            let p = c.check_req::<DomctlCreateDomain>(None, Some(sid))?;
            if a.flags & !(CDF_HVM | CDF_HAP) != 0 || a.max_vcpus > warden_abi::vcpu::MAX_VCPUS {
                return Err(errno::EINVAL);
            }
            let want = match op.domain {
                0 => None,
                x if x >= DOMID_FIRST_RESERVED => None,
                x => Some(x),
            };
            let d = c.global(&p).create_domain(NewDomain {
                want,
                privileged: false,
                name: alloc::string::String::new(),
                sid,
                max_pages: 0,
                weight: DEFAULT_WEIGHT,
                handle: a.handle,
            })?;
            if a.max_vcpus > 0
                && let Err(e) = d.set_max_vcpus(a.max_vcpus)
            {
                d.destroy();
                return Err(e);
            }
            log::info!("d{} created domain {} (ssidref {sid})", c.caller.id, d.id);
            op.domain = d.id;
            c.write(arg, &op)?;
            Ok(0)
        }
        DESTROYDOMAIN => {
            let p = c.check_req::<DomctlDestroyDomain>(Some(c.target(op.domain)?), None)?;
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
            let p = c.check_req::<DomctlPauseDomain>(Some(c.target(op.domain)?), None)?;
            let d = c.resolve(&p)?;
            if d.id == c.caller.id {
                return Err(errno::EINVAL);
            }
            d.pause(c)?;
            Ok(0)
        }
        UNPAUSEDOMAIN => {
            let p = c.check_req::<DomctlUnpauseDomain>(Some(c.target(op.domain)?), None)?;
            let d = c.resolve(&p)?;
            d.unpause()?;
            Ok(0)
        }
        GETDOMAININFO => {
            let p = c.check_req::<DomctlGetDomainInfo>(Some(c.target(op.domain)?), None)?;
            let d = c.resolve(&p)?;
            op.set_arg(&d.domain_info());
            c.write(arg, &op)?;
            Ok(0)
        }
        MAX_MEM => {
            let p = c.check_req::<DomctlMaxMem>(Some(c.target(op.domain)?), None)?;
            let a: MaxMem = op.arg();
            let d = c.resolve(&p)?;
            let pages = a.max_memkb / 4;
            if pages > crate::p2m::GFN_LIMIT {
                return Err(errno::EINVAL);
            }
            d.set_max_pages(pages);
            Ok(0)
        }
        MAX_VCPUS => {
            let p = c.check_req::<DomctlMaxVcpus>(Some(c.target(op.domain)?), None)?;
            let a: MaxVcpus = op.arg();
            let d = c.resolve(&p)?;
            d.set_max_vcpus(a.max)?;
            Ok(0)
        }
        SETVCPUCONTEXT => {
            let p = c.check_req::<DomctlSetVcpuContext>(Some(c.target(op.domain)?), None)?;
            let a: VcpuContext = op.arg();
            let d = c.resolve(&p)?;
            if d.id == c.caller.id {
                return Err(errno::EINVAL);
            }
            let v = d.vcpu(a.vcpu).ok_or(errno::ENOENT)?;
            let ctx: HvmContext = c.read(a.ctxt)?;
            let ctx = crate::vcpu::validate_context(&ctx)?;
            d.pause(c)?;
            v.hw.lock().set_context(&ctx);
            let kick = d.set_initialised(&v, c.now_ns());
            let _ = d.unpause();
            if let Some(cpu) = kick {
                c.kick(cpu);
            }
            Ok(0)
        }
        GETVCPUCONTEXT => {
            let p = c.check_req::<DomctlGetVcpuContext>(Some(c.target(op.domain)?), None)?;
            let a: VcpuContext = op.arg();
            let d = c.resolve(&p)?;
            let v = d.vcpu(a.vcpu).ok_or(errno::ENOENT)?;
            let ctx = if d.id == c.caller.id {
                if v.id != c.vcpu_id() {
                    // Another vCPU of the caller: it cannot be paused alone.
                    return Err(errno::EINVAL);
                }
                c.caller_context(&p)
            } else {
                d.pause(c)?;
                let ctx = v.hw.lock().context();
                let _ = d.unpause();
                ctx
            };
            c.write(a.ctxt, &ctx)?;
            Ok(0)
        }
        n => c.unknown("domctl", n as u64),
    }
}
