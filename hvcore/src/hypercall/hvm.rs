//! hvm_op.

use super::{Call, HcResult};
use crate::gate::table::{HvmSetEvtchnUpcallVector, HvmSetParam};
use warden_abi::errno;
use warden_abi::hvm::{
    HvmParam, PARAM_CALLBACK_IRQ, SET_EVTCHN_UPCALL_VECTOR, SET_PARAM, UPCALL_VECTOR_MIN,
    UpcallVector,
};

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
        x if x == SET_PARAM as u64 => set_param(c, arg),
        n => c.unknown("hvm_op sub-op", n),
    }
}

/// HVMOP_set_param (caller -> target : hvm setparam). Only
/// HVM_PARAM_CALLBACK_IRQ here (its effect: the upcall's delivery); the
/// other parameters answer as Xen does for a guest about itself (EPERM).
fn set_param(c: &mut Call<'_>, arg: u64) -> HcResult {
    let a: HvmParam = c.read(arg)?;
    let t = c.target(a.domid)?;
    let p = c.check_req::<HvmSetParam>(Some(t), None)?;
    let d = c.resolve(&p)?;
    match a.index {
        PARAM_CALLBACK_IRQ => {
            d.set_callback_via(a.value);
            Ok(0)
        }
        _ => Err(errno::EPERM),
    }
}
