//! sched_op.

use super::{Call, HcResult};
use crate::gate::table::*;
use crate::sched::Block;
use warden_abi::errno;
use warden_abi::sched::*;

/// Longest a SCHEDOP_poll on ports sleeps before it returns to let the guest
/// look at its ports again (bounds the cost of a wake-up that raced with
/// the block).
pub const POLL_RECHECK_NS: u64 = 1_000_000;

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
            let own = c.own(&p);
            let mut deadline = (a.timeout != 0).then_some(a.timeout);
            if a.nr_ports > 0 {
                // As Xen's do_poll: mark the vCPU polling, then look at the
                // ports (a port set pending after the mark ends the poll).
                own.start_poll();
                let mut pending = own.upcall_pending();
                for i in 0..a.nr_ports as u64 {
                    let port: u32 = match c.read_elem(a.ports, i) {
                        Ok(p) => p,
                        Err(e) => {
                            own.end_poll();
                            return Err(e);
                        }
                    };
                    if port >= crate::xen::evtchn::NR_PORTS {
                        own.end_poll();
                        return Err(errno::EINVAL);
                    }
                    pending |= own.port_pending(port);
                }
                if pending {
                    own.end_poll();
                    return Ok(0);
                }
                // A wake-up racing with the block costs at most this much:
                // a poll may return early (the guest checks its ports again).
                let cap = now.saturating_add(POLL_RECHECK_NS);
                deadline = Some(deadline.map_or(cap, |t| t.min(cap)));
            }
            if deadline.is_some_and(|t| t <= now) {
                own.end_poll();
                return Ok(0);
            }
            own.block(Block::Poll, false, deadline, now);
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
