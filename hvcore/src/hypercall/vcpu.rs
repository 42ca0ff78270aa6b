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
        REGISTER_RUNSTATE_MEMORY_AREA => c.own(&c.check::<VcpuRegisterRunstateMemoryArea>()?),
        SET_PERIODIC_TIMER => c.own(&c.check::<VcpuSetPeriodicTimer>()?),
        STOP_PERIODIC_TIMER => c.own(&c.check::<VcpuStopPeriodicTimer>()?),
        REGISTER_VCPU_TIME_MEMORY_AREA => c.own(&c.check::<VcpuRegisterVcpuTimeMemoryArea>()?),
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
            // The last vCPU going down powers the domain off (Xen).
            let others_up = own
                .dom()
                .vcpus
                .read()
                .iter()
                .any(|o| o.id != v.id && own.is_up(o));
            if !others_up {
                own.shutdown(warden_abi::sched::SHUTDOWN_POWEROFF);
                c.resched = true;
                return Ok(0);
            }
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
            if !me {
                return Err(errno::EINVAL);
            }
            let t: SingleshotTimer = c.read(arg)?;
            // Xen 4.17 ignores SSHOTTMR_FUTURE (the header allows it): a
            // deadline already past delivers the event at once.
            if t.timeout_abs_ns < now {
                own.set_timer(&v, None);
                own.timer_event(&v);
                return Ok(0);
            }
            own.set_timer(&v, Some(t.timeout_abs_ns));
            Ok(0)
        }
        STOP_SINGLESHOT_TIMER => {
            if !me {
                return Err(errno::EINVAL);
            }
            own.set_timer(&v, None);
            Ok(0)
        }
        SET_PERIODIC_TIMER => {
            let t: SetPeriodicTimer = c.read(arg)?;
            if t.period_ns < PERIODIC_MIN_NS || t.period_ns > STIME_DELTA_MAX {
                return Err(errno::EINVAL);
            }
            own.set_periodic_timer(&v, t.period_ns, now);
            Ok(0)
        }
        STOP_PERIODIC_TIMER => {
            own.set_periodic_timer(&v, 0, now);
            Ok(0)
        }
        REGISTER_RUNSTATE_MEMORY_AREA => {
            // Any address is accepted for a translated guest (Xen); the
            // area is written now and whenever `v` is scheduled, skipped
            // while it is not mapped. 0 forgets it.
            let a: RegisterArea = c.read(arg)?;
            own.register_runstate_area(&v, (a.addr != 0).then_some(a.addr), c.paging_state());
            Ok(0)
        }
        REGISTER_VCPU_TIME_MEMORY_AREA => {
            let a: RegisterArea = c.read(arg)?;
            own.register_time_area(&v, (a.addr != 0).then_some(a.addr));
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
            // The time record is published (seqlock) before `v` next runs.
            v.clock.mark_stale();
            Ok(0)
        }
        _ => Err(errno::ENOSYS),
    }
}
