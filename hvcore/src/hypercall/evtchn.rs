//! event_channel_op (hypercall 32): Xen 4.17's 2-level event channels.
//!
//! Each sub-op reads its argument, resolves what its checks need (the
//! domains involved, the channel's label: a new channel's is computed as
//! Xen's FLASK hooks do), runs its row's checks, then acts through the
//! event-channel service its permit unlocks (`crate::xen::evtchn`). Errnos
//! and state rules are Xen 4.17's (xen/common/event_channel.c).

use super::{Call, HcResult};
use crate::gate::ChanSids;
use crate::gate::table::*;
use crate::xen::evtchn::State;
use warden_abi::DOMID_SELF;
use warden_abi::errno;
use warden_abi::xen::event_channel::*;

pub fn event_channel_op(c: &mut Call<'_>, cmd: u64, arg: u64) -> HcResult {
    if cmd > u32::MAX as u64 {
        return c.unknown("event_channel_op sub-op", cmd);
    }
    match cmd as u32 {
        ALLOC_UNBOUND => {
            let mut a: AllocUnbound = c.read(arg)?;
            let t = c.target(a.dom)?;
            let remote = if a.remote_dom == DOMID_SELF {
                c.caller.id
            } else {
                a.remote_dom
            };
            // The channel's label: type_transition(owner, peer as the owner sees it).
            let sids = if c.flask_enabled() {
                // Xen's hook: a remote that does not exist is EPERM.
                let r = c.target(remote).map_err(|_| errno::EPERM)?;
                let peer = if r.id == t.id { t.self_sid } else { r.sid };
                Some(ChanSids {
                    chan: c.channel_label(t.sid, peer),
                    peer,
                    ..Default::default()
                })
            } else {
                None
            };
            let p = c.check_chan::<EvtchnAllocUnbound>(Some(t), sids)?;
            let ch = c.channels(&p)?;
            a.port = ch.alloc_unbound(remote, sids.map_or(0, |s| s.chan))?;
            c.write(arg, &a)?;
            Ok(0)
        }
        BIND_INTERDOMAIN => {
            let mut a: BindInterdomain = c.read(arg)?;
            let r = c.target(a.remote_dom)?;
            let me = c.caller;
            let snap = c.port_snapshot(&r, a.remote_port)?;
            // Xen checks the remote port before the hook.
            match snap.state {
                State::Unbound { remote } if remote == me.id => {}
                _ => return Err(errno::EINVAL),
            }
            let sids = if c.flask_enabled() {
                let peer = if r.id == me.id { me.self_sid } else { r.sid };
                let local = if r.id == me.id { me.self_sid } else { me.sid };
                Some(ChanSids {
                    chan: c.channel_label(me.sid, peer),
                    peer,
                    peer_chan: snap.sid,
                    local,
                })
            } else {
                None
            };
            let p = c.check_chan::<EvtchnBindInterdomain>(Some(r), sids)?;
            let ch = c.channels(&p)?;
            a.local_port =
                ch.bind_interdomain(&r, a.remote_port, &snap, sids.map_or(0, |s| s.chan))?;
            c.write(arg, &a)?;
            Ok(0)
        }
        SEND => {
            let a: Send = c.read(arg)?;
            let me = c.caller;
            let snap = c.port_snapshot(&me, a.port)?;
            if matches!(snap.state, State::Interdomain { .. }) {
                let sids = ChanSids {
                    chan: snap.sid,
                    ..Default::default()
                };
                let p = c.check_chan::<EvtchnSendInterdomain>(None, Some(sids))?;
                c.channels(&p)?.send(a.port, &snap)?;
            } else {
                let p = c.check::<EvtchnSendLocal>()?;
                c.own_channels(&p).send(a.port, &snap)?;
            }
            Ok(0)
        }
        STATUS => {
            let mut a: Status = c.read(arg)?;
            let t = c.target(a.dom)?;
            let snap = c.port_snapshot(&t, a.port)?;
            let sids = ChanSids {
                chan: snap.sid,
                ..Default::default()
            };
            let p = c.check_chan::<EvtchnStatus>(Some(t), Some(sids))?;
            let _ = c.channels(&p)?;
            a.status = snap.state.stat();
            a.vcpu = snap.notify;
            a.u = [0; 2];
            match snap.state {
                State::Unbound { remote } => a.u[0] = remote as u32,
                State::Interdomain {
                    remote_id,
                    remote_port,
                    ..
                } => a.u = [remote_id as u32, remote_port],
                State::Virq(v) => a.u[0] = v,
                _ => {}
            }
            c.write(arg, &a)?;
            Ok(0)
        }
        BIND_VIRQ => {
            let p = c.check::<EvtchnBindVirq>()?;
            let mut a: BindVirq = c.read(arg)?;
            a.port = c.own_channels(&p).bind_virq(a.virq, a.vcpu)?;
            c.write(arg, &a)?;
            Ok(0)
        }
        BIND_IPI => {
            let p = c.check::<EvtchnBindIpi>()?;
            let mut a: BindIpi = c.read(arg)?;
            a.port = c.own_channels(&p).bind_ipi(a.vcpu)?;
            c.write(arg, &a)?;
            Ok(0)
        }
        BIND_VCPU => {
            let p = c.check::<EvtchnBindVcpu>()?;
            let a: BindVcpu = c.read(arg)?;
            c.own_channels(&p).bind_vcpu(a.port, a.vcpu)?;
            Ok(0)
        }
        CLOSE => {
            let p = c.check::<EvtchnClose>()?;
            let a: Close = c.read(arg)?;
            c.own_channels(&p).close(a.port)?;
            Ok(0)
        }
        UNMASK => {
            let p = c.check::<EvtchnUnmask>()?;
            let a: Unmask = c.read(arg)?;
            c.own_channels(&p).unmask(a.port)?;
            Ok(0)
        }
        RESET => {
            let a: Reset = c.read(arg)?;
            let t = c.target(a.dom)?;
            let p = c.check_req::<EvtchnReset>(Some(t), None)?;
            let d = c.resolve(&p)?;
            d.reset_channels(t.id == c.caller.id)?;
            Ok(0)
        }
        INIT_CONTROL => {
            let p = c.check::<EvtchnInitControl>()?;
            let a: InitControl = c.read(arg)?;
            // FIFO is not offered (Linux falls back to 2-level). Xen's
            // checks in Xen's order, then an invalid control gfn is EINVAL
            // (as XTF's xsa-188 expects) and a valid one EOPNOTSUPP.
            let own = c.own_channels(&p);
            if !own.has_vcpu(a.vcpu) {
                return Err(errno::ENOENT);
            }
            if a.offset > 4096 - FIFO_CONTROL_BLOCK_SIZE
                || a.offset & 7 != 0
                || !own.gfn_present(a.control_gfn)
            {
                return Err(errno::EINVAL);
            }
            Err(errno::EOPNOTSUPP)
        }
        EXPAND_ARRAY => {
            let _p = c.check::<EvtchnExpandArray>()?;
            let _a: ExpandArray = c.read(arg)?;
            // FIFO is not active (Xen: -EOPNOTSUPP).
            Err(errno::EOPNOTSUPP)
        }
        SET_PRIORITY => {
            let p = c.check::<EvtchnSetPriority>()?;
            let a: SetPriority = c.read(arg)?;
            if !c.own_channels(&p).port_valid(a.port) {
                return Err(errno::EINVAL);
            }
            // The 2-level ABI has no priorities (Xen: -ENOSYS).
            Err(errno::ENOSYS)
        }
        n => c.unknown("event_channel_op sub-op", n as u64),
    }
}
