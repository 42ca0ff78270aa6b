//! hvm_op.

use super::{Call, HcResult};
use crate::gate::table::HvmSetEvtchnUpcallVector;
use warden_abi::errno;
use warden_abi::hvm::{SET_EVTCHN_UPCALL_VECTOR, UPCALL_VECTOR_MIN, UpcallVector};

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
        n => c.unknown("hvm_op sub-op", n),
    }
}
