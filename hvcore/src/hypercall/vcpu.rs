//! vcpu_op: operations on the caller's own vCPUs.

use super::{Call, HcResult};
use crate::gate::table::*;
use warden_abi::Pod;
use warden_abi::errno;
use warden_abi::vcpu::*;

pub fn vcpu_op(c: &mut Call<'_>, cmd: u64, vcpuid: u64, arg: u64) -> HcResult {
    if cmd > u32::MAX as u64 {
        return c.unknown("vcpu_op sub-op", cmd);
    }
    let cmd = cmd as u32;
    // Every sub-operation has the same check; run it before anything else.
    match cmd {
        INITIALISE => c.check::<VcpuInitialise>().map(drop)?,
        UP => c.check::<VcpuUp>().map(drop)?,
        DOWN => c.check::<VcpuDown>().map(drop)?,
        IS_UP => c.check::<VcpuIsUp>().map(drop)?,
        GET_RUNSTATE_INFO => c.check::<VcpuGetRunstateInfo>().map(drop)?,
        SET_SINGLESHOT_TIMER => c.check::<VcpuSetSingleshotTimer>().map(drop)?,
        STOP_SINGLESHOT_TIMER => c.check::<VcpuStopSingleshotTimer>().map(drop)?,
        REGISTER_VCPU_INFO => c.check::<VcpuRegisterVcpuInfo>().map(drop)?,
        n => return c.unknown("vcpu_op sub-op", n as u64),
    }
    let v = u32::try_from(vcpuid)
        .ok()
        .and_then(|i| c.dom().vcpu(i))
        .ok_or(errno::ENOENT)?;
    let k = (v.domid, v.id);
    let me = v.id == c.vcpu.id;
    let now = c.hv.platform.now_ns();
    match cmd {
        INITIALISE => {
            let ctx: HvmContext = c.read(arg)?;
            let ctx = crate::vcpu::validate_context(&ctx)?;
            if me || c.hv.sched.initialised(k) {
                return Err(errno::EEXIST);
            }
            v.hw.lock().set_context(&ctx);
            if let Some(cpu) = c.hv.sched.set_initialised(k, now) {
                c.hv.platform.kick(cpu);
            }
            Ok(0)
        }
        UP => match c.hv.sched.up(k, now) {
            Ok(kick) => {
                if let Some(cpu) = kick {
                    c.hv.platform.kick(cpu);
                }
                Ok(0)
            }
            Err(_) => Err(errno::EINVAL),
        },
        DOWN => {
            if let Some(cpu) = c.hv.sched.down(k, now) {
                c.hv.platform.kick(cpu);
            }
            if me {
                c.resched = true;
            }
            Ok(0)
        }
        IS_UP => Ok(c.hv.sched.is_up(k) as u64),
        GET_RUNSTATE_INFO => {
            let rs = c.hv.sched.runstate(k, now).ok_or(errno::ENOENT)?;
            c.write(arg, &rs)?;
            Ok(0)
        }
        SET_SINGLESHOT_TIMER => {
            let t: SingleshotTimer = c.read(arg)?;
            if t.flags & SSHOTTMR_FUTURE != 0 && t.timeout_abs_ns < now {
                return Err(errno::ETIME);
            }
            c.hv.sched.set_timer(k, Some(t.timeout_abs_ns));
            Ok(0)
        }
        STOP_SINGLESHOT_TIMER => {
            c.hv.sched.set_timer(k, None);
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
            let mut ev = v.events.lock();
            if ev.info_gpa.is_some() {
                return Err(errno::EINVAL);
            }
            let info = VcpuInfo {
                time: c.hv.time_info(),
                ..Default::default()
            };
            c.hv.write_phys(c.dom(), gpa, info.as_bytes())
                .map_err(|_| errno::EINVAL)?;
            ev.info_gpa = Some(gpa);
            Ok(0)
        }
        _ => Err(errno::ENOSYS),
    }
}
