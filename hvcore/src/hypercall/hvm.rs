//! hvm_op.

use super::{Call, HcResult};
use crate::gate::table::{
    HvmGetParam, HvmPagetableDying, HvmSetEvtchnUpcallVector, HvmSetParam, HvmSetParamAltp2m,
};
use crate::xen::params;
use warden_abi::errno;
use warden_abi::hvm::{
    GET_PARAM, HvmParam, PAGETABLE_DYING, PagetableDying, SET_EVTCHN_UPCALL_VECTOR, SET_PARAM,
    UPCALL_VECTOR_MIN, UpcallVector,
};
use warden_abi::xen::hvm_params::{ALTP2M, CALLBACK_IRQ, NR_PARAMS};

pub fn hvm_op(c: &mut Call<'_>, cmd: u64, arg: u64) -> HcResult {
    match cmd {
        x if x == SET_EVTCHN_UPCALL_VECTOR as u64 => {
            let p = c.check::<HvmSetEvtchnUpcallVector>()?;
            let a: UpcallVector = c.read(arg)?;
            let v = c.own(&p).dom().vcpu(a.vcpu).ok_or(errno::ENOENT)?;
            if a.vector < UPCALL_VECTOR_MIN {
                return Err(errno::EINVAL);
            }
            v.events.lock().vector = Some(a.vector);
            Ok(0)
        }
        // Xen's order: the index bound, the domain, the FLASK check, then
        // the per-parameter rules (xen::params).
        x if x == SET_PARAM as u64 => {
            let a: HvmParam = c.read(arg)?;
            if a.index >= NR_PARAMS {
                return Err(errno::EINVAL);
            }
            let t = c.target(a.domid)?;
            let p = c.check_req::<HvmSetParam>(Some(t), None)?;
            let d = c.resolve(&p)?;
            let on_self = d.id == c.caller.id;
            if a.index == ALTP2M {
                // Xen: the parameter's own rules, then altp2m's check.
                params::allow_set(ALTP2M, on_self)?;
                c.check_req::<HvmSetParamAltp2m>(Some(t), None)?;
            }
            d.params().set(a.index, a.value, on_self)?;
            // Its effect: how the event upcall is delivered (xen::evtchn).
            if a.index == CALLBACK_IRQ {
                d.set_callback_via(a.value);
            }
            Ok(0)
        }
        x if x == GET_PARAM as u64 => {
            let mut a: HvmParam = c.read(arg)?;
            if a.index >= NR_PARAMS {
                return Err(errno::EINVAL);
            }
            let t = c.target(a.domid)?;
            let p = c.check_req::<HvmGetParam>(Some(t), None)?;
            let d = c.resolve(&p)?;
            let on_self = d.id == c.caller.id;
            a.value = d.params().get(a.index, on_self)?;
            c.write(arg, &a)?;
            Ok(0)
        }
        // Xen's order: the argument, the domain, another domain's
        // EOPNOTSUPP; then (Warden's check) EINVAL: dying page tables
        // matter to shadow paging only, and Warden always uses nested
        // paging. Linux probes it once at boot and does without.
        x if x == PAGETABLE_DYING as u64 => {
            let a: PagetableDying = c.read(arg)?;
            let t = c.target(a.domid)?;
            if t.id != c.caller.id {
                return Err(errno::EOPNOTSUPP);
            }
            c.check::<HvmPagetableDying>()?;
            Err(errno::EINVAL)
        }
        n => c.unknown("hvm_op sub-op", n),
    }
}
