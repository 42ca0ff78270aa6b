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
    let now = c.now_ns();
    match cmd as u32 {
        YIELD => {
            let p = c.check::<SchedYield>()?;
            c.own(&p).yield_now();
            c.resched = true;
            Ok(0)
        }
        BLOCK => {
            let p = c.check::<SchedBlock>()?;
            let own = c.own(&p);
            // Xen: enable event delivery, then block unless an event is pending.
            own.unmask_events();
            let pending = own.upcall_pending();
            own.block(Block::Event, pending, None, now);
            c.resched = true;
            Ok(0)
        }
        SHUTDOWN => {
            let p = c.check::<SchedShutdown>()?;
            let a: Shutdown = c.read(arg)?;
            if a.reason > SHUTDOWN_MAX {
                return Err(errno::EINVAL);
            }
            c.own(&p).shutdown(a.reason);
            c.resched = true;
            Ok(0)
        }
        POLL => {
            let p = c.check::<SchedPoll>()?;
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
            c.own(&p).block(Block::Poll, false, deadline, now);
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
            d.shutdown(a.reason);
            if d.id == c.caller.id {
                c.resched = true;
            }
            Ok(0)
        }
        n => c.unknown("sched_op sub-op", n as u64),
    }
}
