//! sched_op.

use super::{Call, HcResult};
use crate::gate::table::*;
use crate::sched::Block;
use warden_abi::errno;
use warden_abi::sched::*;

pub fn sched_op(c: &mut Call<'_>, cmd: u64, arg: u64) -> HcResult {
    if cmd > u32::MAX as u64 {
        return c.unknown("sched_op sub-op", cmd);
    }
    let now = c.hv.platform.now_ns();
    match cmd as u32 {
        YIELD => {
            let _p = c.check::<SchedYield>()?;
            c.hv.sched.yield_now(c.key());
            c.resched = true;
            Ok(0)
        }
        BLOCK => {
            let _p = c.check::<SchedBlock>()?;
            // Xen: enable event delivery, then block unless an event is pending.
            c.hv.unmask_events(c.vcpu);
            let pending = c.hv.guest_upcall_pending(c.vcpu);
            c.hv.sched.block(c.key(), Block::Event, pending, None, now);
            c.resched = true;
            Ok(0)
        }
        SHUTDOWN => {
            let _p = c.check::<SchedShutdown>()?;
            let a: Shutdown = c.read(arg)?;
            if a.reason > SHUTDOWN_MAX {
                return Err(errno::EINVAL);
            }
            c.hv.shutdown(c.dom(), a.reason);
            c.resched = true;
            Ok(0)
        }
        POLL => {
            let _p = c.check::<SchedPoll>()?;
            let a: Poll = c.read(arg)?;
            if a.nr_ports > POLL_MAX_PORTS {
                return Err(errno::EINVAL);
            }
            if a.nr_ports > 0 {
                let _port: u32 = c.read_elem(a.ports, 0)?;
                // No event channel exists yet: every port is invalid.
                return Err(errno::EINVAL);
            }
            let deadline = (a.timeout != 0).then_some(a.timeout);
            if deadline.is_some_and(|t| t <= now) {
                return Ok(0);
            }
            c.hv.sched.block(c.key(), Block::Poll, false, deadline, now);
            c.resched = true;
            Ok(0)
        }
        REMOTE_SHUTDOWN => {
            let a: RemoteShutdown = c.read(arg)?;
            let t = c.target(a.domain_id)?;
            let p = c.check_req::<SchedRemoteShutdown>(Some(t), None)?;
            if a.reason > SHUTDOWN_MAX {
                return Err(errno::EINVAL);
            }
            let d = c.resolve(&p)?;
            c.hv.shutdown(&d, a.reason);
            if d.id == c.caller.id {
                c.resched = true;
            }
            Ok(0)
        }
        n => c.unknown("sched_op sub-op", n as u64),
    }
}
