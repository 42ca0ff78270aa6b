//! vcpu_op: operations on the caller's own vCPUs.

use super::{Call, HcResult};
use crate::gate::table::*;
use warden_abi::errno;
use warden_abi::vcpu::*;

pub fn vcpu_op(c: &mut Call<'_>, cmd: u64, vcpuid: u64, arg: u64) -> HcResult {
    if cmd > u32::MAX as u64 {
        return c.unknown("vcpu_op sub-op", cmd);
    }
    let cmd = cmd as u32;
    // Every sub-operation has the same check; run it before anything else.
    // Each permit unlocks the caller's own vCPUs.
    let own = match cmd {
        INITIALISE => c.own(&c.check::<VcpuInitialise>()?),
        UP => c.own(&c.check::<VcpuUp>()?),
        DOWN => c.own(&c.check::<VcpuDown>()?),
        IS_UP => c.own(&c.check::<VcpuIsUp>()?),
        GET_RUNSTATE_INFO => c.own(&c.check::<VcpuGetRunstateInfo>()?),
        SET_SINGLESHOT_TIMER => c.own(&c.check::<VcpuSetSingleshotTimer>()?),
        STOP_SINGLESHOT_TIMER => c.own(&c.check::<VcpuStopSingleshotTimer>()?),
        REGISTER_VCPU_INFO => c.own(&c.check::<VcpuRegisterVcpuInfo>()?),
        n => return c.unknown("vcpu_op sub-op", n as u64),
    };
    let v = u32::try_from(vcpuid)
        .ok()
        .and_then(|i| own.dom().vcpu(i))
        .ok_or(errno::ENOENT)?;
    let me = v.id == own.vcpu().id;
    let now = c.now_ns();
    match cmd {
        INITIALISE => {
            let ctx: HvmContext = c.read(arg)?;
            let ctx = crate::vcpu::validate_context(&ctx)?;
            if me || own.initialised(&v) {
                return Err(errno::EEXIST);
            }
            v.hw.lock().set_context(&ctx);
            if let Some(cpu) = own.set_initialised(&v, now) {
                c.kick(cpu);
            }
            Ok(0)
        }
        UP => match own.up(&v, now) {
            Ok(kick) => {
                if let Some(cpu) = kick {
                    c.kick(cpu);
                }
                Ok(0)
            }
            Err(_) => Err(errno::EINVAL),
        },
        DOWN => {
            if let Some(cpu) = own.down(&v, now) {
                c.kick(cpu);
            }
            if me {
                c.resched = true;
            }
            Ok(0)
        }
        IS_UP => Ok(own.is_up(&v) as u64),
        GET_RUNSTATE_INFO => {
            let rs = own.runstate(&v, now).ok_or(errno::ENOENT)?;
            c.write(arg, &rs)?;
            Ok(0)
        }
        SET_SINGLESHOT_TIMER => {
            let t: SingleshotTimer = c.read(arg)?;
            if t.flags & SSHOTTMR_FUTURE != 0 && t.timeout_abs_ns < now {
                return Err(errno::ETIME);
            }
            own.set_timer(&v, Some(t.timeout_abs_ns));
            Ok(0)
        }
        STOP_SINGLESHOT_TIMER => {
            own.set_timer(&v, None);
            Ok(0)
        }
        REGISTER_VCPU_INFO => {
            let r: RegisterVcpuInfo = c.read(arg)?;
            let size = core::mem::size_of::<VcpuInfo>() as u32;
            if r.offset > 4096 - size
                || !r.offset.is_multiple_of(8)
                || r.gfn >= crate::p2m::GFN_LIMIT
            {
                return Err(errno::EINVAL);
            }
            let gpa = r
                .gfn
                .checked_mul(4096)
                .and_then(|a| a.checked_add(r.offset as u64))
                .ok_or(errno::EINVAL)?;
            own.register_vcpu_info(&v, gpa)?;
            Ok(0)
        }
        _ => Err(errno::ENOSYS),
    }
}
