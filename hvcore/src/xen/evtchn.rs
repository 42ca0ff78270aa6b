//! Event channels: Xen 4.17's 2-level ABI.
//!
//! Each domain has up to [`NR_PORTS`] ports in buckets of 64 channels,
//! allocated on demand and never freed before the domain: a port is looked
//! up without any lock. Each channel has its own lock (its state, label and
//! a generation bumped at every change) and its notify vCPU as an atomic.
//! The per-domain lock ([`DomEvtchn::lock`], Xen's `event_lock`) serialises
//! only allocation, binding and closing; sending takes the sender's channel
//! lock alone, reaches the peer domain through a weak reference held by the
//! channel (no table lookup, no global lock) and sets the peer's bits with
//! atomic operations on its shared_info page.
//!
//! Delivery (Xen's `evtchn_2l_set_pending`): set the port's pending bit; if
//! it was clear and the port is not masked, set the selector bit in the
//! notify vCPU's `vcpu_info.evtchn_pending_sel`; if that was clear, set
//! `evtchn_upcall_pending` and, if that was clear, notify the vCPU (wake
//! it, kick its CPU). What to inject on the next entry of a vCPU is decided
//! in one place, [`Hv::upcall_to_inject`].
//!
//! Channel labels are computed as Xen 4.17's FLASK hooks do: a new channel
//! is labelled `security_transition_sid(owner, peer, event)`; a freed one
//! goes back to `unlabeled`.

use crate::domain::{Domain, GuestVcpu};
use crate::hv::Hv;
use crate::xen::shared_info::{Shared, VI_PENDING_SEL, VI_UPCALL};
use alloc::boxed::Box;
use alloc::sync::{Arc, Weak};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use warden_abi::hvm::{CALLBACK_VIA_TYPE_SHIFT, CALLBACK_VIA_TYPE_VECTOR};
use warden_abi::vcpu::MAX_VCPUS;
use warden_abi::xen::event_channel as ec;
use warden_abi::xen::xen::{
    EVTCHN_2L_NR_CHANNELS, EVTCHN_MASK_OFFSET, EVTCHN_PENDING_OFFSET, NR_VIRQS, virq_is_global,
};
use warden_abi::{DomId, errno};

/// Ports of a domain (the 2-level ABI's limit for a 64-bit guest).
pub const NR_PORTS: u32 = EVTCHN_2L_NR_CHANNELS;
const PER_BUCKET: usize = 64;
const NR_BUCKETS: usize = NR_PORTS as usize / PER_BUCKET;

/// The label of a channel without one (Xen: `SECINITSID_UNLABELED`).
pub const UNLABELED: u32 = xsm::initial_sid::UNLABELED.raw();

/// A channel's state (Xen's `ECS_*`).
#[derive(Debug, Clone)]
pub enum State {
    Free,
    /// Port 0: never allocated.
    Reserved,
    /// Waiting for `remote` to bind it.
    Unbound {
        remote: DomId,
    },
    /// Bound to `remote_port` of `remote`.
    Interdomain {
        remote: Weak<Domain>,
        remote_id: DomId,
        remote_port: u32,
    },
    Virq(u32),
    Ipi,
}

impl State {
    /// The `EVTCHNSTAT_*` value.
    pub fn stat(&self) -> u32 {
        match self {
            State::Free | State::Reserved => ec::STAT_CLOSED,
            State::Unbound { .. } => ec::STAT_UNBOUND,
            State::Interdomain { .. } => ec::STAT_INTERDOMAIN,
            State::Virq(_) => ec::STAT_VIRQ,
            State::Ipi => ec::STAT_IPI,
        }
    }
}

#[derive(Debug)]
struct Inner {
    state: State,
    /// The channel's FLASK label.
    sid: u32,
    /// Bumped at every state change (a check made on a snapshot is valid
    /// only while it is unchanged).
    generation: u64,
}

/// One channel.
#[derive(Debug)]
pub struct Channel {
    inner: spin::Mutex<Inner>,
    /// The vCPU it notifies.
    notify: AtomicU32,
}

impl Channel {
    fn new() -> Channel {
        Channel {
            inner: spin::Mutex::new(Inner {
                state: State::Free,
                sid: UNLABELED,
                generation: 0,
            }),
            notify: AtomicU32::new(0),
        }
    }
}

/// A consistent view of a channel for a check made outside its lock.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub state: State,
    pub sid: u32,
    pub notify: u32,
    generation: u64,
}

/// A domain's event channels.
pub struct DomEvtchn {
    buckets: [spin::Once<Box<[Channel]>>; NR_BUCKETS],
    /// Xen's `event_lock`: allocation, binding, closing (never sending).
    lock: spin::Mutex<()>,
    /// The port bound to each (vCPU, VIRQ) (0: none).
    virq: [[AtomicU32; NR_VIRQS as usize]; MAX_VCPUS as usize],
    /// HVM_PARAM_CALLBACK_IRQ.
    callback_via: AtomicU64,
    /// vCPUs (below 64) in SCHEDOP_poll on ports (Xen's `poll_mask`).
    pollers: AtomicU64,
    /// Highest port a new channel may get (createdomain's `max_evtchn_port`).
    max_port: AtomicU32,
}

impl core::fmt::Debug for DomEvtchn {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("DomEvtchn")
    }
}

impl Default for DomEvtchn {
    fn default() -> Self {
        Self::new()
    }
}

impl DomEvtchn {
    pub fn new() -> DomEvtchn {
        let e = DomEvtchn {
            buckets: [const { spin::Once::new() }; NR_BUCKETS],
            lock: spin::Mutex::new(()),
            virq: [const { [const { AtomicU32::new(0) }; NR_VIRQS as usize] }; MAX_VCPUS as usize],
            callback_via: AtomicU64::new(0),
            pollers: AtomicU64::new(0),
            max_port: AtomicU32::new(NR_PORTS - 1),
        };
        let b = e.bucket(0);
        b[0].inner.lock().state = State::Reserved;
        e
    }

    fn bucket(&self, i: usize) -> &[Channel] {
        self.buckets[i].call_once(|| (0..PER_BUCKET).map(|_| Channel::new()).collect())
    }

    /// The channel of `port`, if it was ever allocated (lock-free).
    pub fn chan(&self, port: u32) -> Option<&Channel> {
        if port >= NR_PORTS {
            return None;
        }
        let b = self.buckets[port as usize / PER_BUCKET].get()?;
        Some(&b[port as usize % PER_BUCKET])
    }

    /// Snapshot of `port` (None: not a valid port, -EINVAL).
    pub fn snapshot(&self, port: u32) -> Option<Snapshot> {
        let c = self.chan(port)?;
        let i = c.inner.lock();
        Some(Snapshot {
            state: i.state.clone(),
            sid: i.sid,
            notify: c.notify.load(Ordering::Acquire),
            generation: i.generation,
        })
    }

    /// Limit new channels to ports up to `max` (createdomain's
    /// `max_evtchn_port`; at most the 2-level ABI's last port).
    pub fn set_max_port(&self, max: u32) {
        self.max_port
            .store(max.min(NR_PORTS - 1), Ordering::Release);
    }

    /// A free port (under `lock`): the lowest, allocating buckets as needed;
    /// ENOSPC beyond the domain's highest port (Xen's `get_free_port`).
    fn free_port(&self) -> Result<u32, i32> {
        let max = self.max_port.load(Ordering::Acquire);
        for b in 0..NR_BUCKETS {
            if (b * PER_BUCKET) as u32 > max {
                break;
            }
            let chans = self.bucket(b);
            for (i, c) in chans.iter().enumerate() {
                let port = (b * PER_BUCKET + i) as u32;
                if port > max {
                    return Err(errno::ENOSPC);
                }
                if matches!(c.inner.lock().state, State::Free) {
                    return Ok(port);
                }
            }
        }
        Err(errno::ENOSPC)
    }

    /// The HVM_PARAM_CALLBACK_IRQ value.
    pub fn callback_via(&self) -> u64 {
        self.callback_via.load(Ordering::Acquire)
    }

    /// Set HVM_PARAM_CALLBACK_IRQ.
    pub fn set_callback_via(&self, v: u64) {
        self.callback_via.store(v, Ordering::Release);
    }

    /// Mark vCPU `v` as polling (before it checks its ports).
    pub fn start_poll(&self, v: u32) {
        if v < 64 {
            self.pollers.fetch_or(1 << v, Ordering::SeqCst);
        }
    }

    /// vCPU `v` no longer polls.
    pub fn end_poll(&self, v: u32) {
        if v < 64 {
            self.pollers.fetch_and(!(1 << v), Ordering::SeqCst);
        }
    }

    /// Whether `port` is pending (SCHEDOP_poll).
    pub fn port_pending(&self, d: &Domain, mem: &dyn crate::p2m::HostMem, port: u32) -> bool {
        port < NR_PORTS
            && Shared::with(d, mem, |s| {
                s.si_read(EVTCHN_PENDING_OFFSET + 8 * (port / 64) as u64)
                    .is_some_and(|w| w & (1 << (port % 64)) != 0)
            })
    }

    /// The port bound to (vCPU, VIRQ), 0 if none.
    pub fn virq_port(&self, vcpu: u32, virq: u32) -> u32 {
        self.virq
            .get(vcpu as usize)
            .and_then(|a| a.get(virq as usize))
            .map_or(0, |p| p.load(Ordering::Acquire))
    }
}

fn set_state(c: &Channel, i: &mut Inner, state: State, sid: u32, notify: u32) {
    i.state = state;
    i.sid = sid;
    i.generation += 1;
    c.notify.store(notify, Ordering::Release);
}

/// Who owns a channel being operated on: (domain, its snapshot id).
type Dom<'a> = &'a Arc<Domain>;

impl Hv {
    // ------------------------------------------------------------ delivery

    /// Mark `port` of `d` pending towards its notify vCPU `vcpu` (Xen's
    /// `evtchn_port_set_pending` for the 2-level ABI).
    pub fn evtchn_set_pending(&self, d: &Domain, vcpu: u32, port: u32) {
        let Some(v) = d.vcpu(vcpu) else { return };
        let word = (port / 64) as u64;
        let bit = 1u64 << (port % 64);
        // (newly pending, upcall became pending)
        let (newly, notify) = Shared::with(d, self.platform.mem(), |s| {
            let Some(old) = s.si_or(EVTCHN_PENDING_OFFSET + 8 * word, bit) else {
                return (false, false);
            };
            if old & bit != 0 {
                return (false, false);
            }
            if s.si_read(EVTCHN_MASK_OFFSET + 8 * word).unwrap_or(0) & bit != 0 {
                return (true, false);
            }
            (true, self.mark_pending_sel(s, &v, word))
        });
        if newly {
            self.check_pollers(d);
        }
        if notify {
            self.notify_upcall(&v);
        }
    }

    /// A port of `d` became pending: end the polls of its vCPUs (Xen's
    /// `evtchn_check_pollers`; a polling vCPU checks its ports again).
    fn check_pollers(&self, d: &Domain) {
        let mut m = d.evtchn.pollers.swap(0, Ordering::SeqCst);
        while m != 0 {
            let v = m.trailing_zeros();
            m &= m - 1;
            if let Some(c) = self.sched.wake_poll((d.id, v), self.platform.now_ns()) {
                self.platform.kick(c);
            }
        }
    }

    /// Set selector bit `word` and `upcall_pending` of `v`: true if the
    /// upcall became pending (0 -> 1), the vCPU is to be notified.
    fn mark_pending_sel(&self, s: &Shared<'_>, v: &GuestVcpu, word: u64) -> bool {
        let sel = 1u64 << word;
        match s.vi_or(v, VI_PENDING_SEL, sel) {
            Some(old) if old & sel == 0 => {
                s.vi_or(v, VI_UPCALL, 1).is_some_and(|old| old & 0xff == 0)
            }
            _ => false,
        }
    }

    /// The upcall of `v` became pending: owe the per-vCPU vector's edge and
    /// wake or kick the vCPU (Xen's `vcpu_mark_events_pending`).
    pub fn notify_upcall(&self, v: &GuestVcpu) {
        v.upcall.store(true, Ordering::Release);
        // The wake token: a vCPU between reading `upcall_pending` and
        // blocking (SCHEDOP_block on another CPU) does not block
        // (`Scheduler::block` checks it under the scheduler's lock).
        v.virqs.fetch_or(1, Ordering::SeqCst);
        if let Some(c) = self.sched.notify((v.domid, v.id), self.platform.now_ns()) {
            self.platform.kick(c);
        }
    }

    /// The upcall to inject directly for this vCPU on its next entry, if
    /// any. The per-vCPU vector (HVMOP_set_evtchn_upcall_vector) goes
    /// through the vCPU's local APIC once per time its upcall became pending
    /// (Xen's `vlapic_set_irq`: the guest EOIs it; nothing is delivered while
    /// its APIC is software-disabled), so nothing is returned for it; else
    /// the HVM_PARAM_CALLBACK_IRQ vector while its `evtchn_upcall_pending` is
    /// set (Xen injects it directly, with no local APIC, as long as the flag
    /// stays set).
    pub fn upcall_to_inject(&self, v: &GuestVcpu) -> Option<u8> {
        // Entering: what was notified so far is visible to the guest.
        v.virqs.store(0, Ordering::SeqCst);
        let vector = v.events.lock().vector;
        if let Some(vec) = vector {
            // An APIC that does not accept it yet (software-disabled: the
            // vector was set before the guest enabled its APIC) keeps the
            // edge owed, as Xen's IRR keeps it: dropping it would leave
            // `evtchn_upcall_pending` set with no interrupt ever coming, and
            // no later event would notify again.
            if v.upcall.swap(false, Ordering::AcqRel) && !self.lapic_raise(v, vec) {
                v.upcall.store(true, Ordering::Release);
                if false {
                    log::info!(
                        "TMPDBG upcall vector {vec:#x} refused by vLAPIC for d{} v{}",
                        v.domid,
                        v.id
                    );
                }
            }
            return None;
        }
        // Without a vector the edge is kept: setting one later delivers it.
        let via = v.domain.evtchn.callback_via();
        if via >> CALLBACK_VIA_TYPE_SHIFT != CALLBACK_VIA_TYPE_VECTOR {
            return None;
        }
        let pending = Shared::with(&v.domain, self.platform.mem(), |s| {
            s.vi_read(v, VI_UPCALL).is_some_and(|w| w & 0xff != 0)
        });
        pending.then_some(via as u8)
    }

    /// Is `v`'s `evtchn_upcall_pending` set?
    pub fn upcall_pending(&self, v: &GuestVcpu) -> bool {
        Shared::with(&v.domain, self.platform.mem(), |s| {
            s.vi_read(v, VI_UPCALL).is_some_and(|w| w & 0xff != 0)
        })
    }

    /// Raise per-vCPU VIRQ `virq` on `v` (dropped if no port is bound).
    pub fn send_vcpu_virq(&self, v: &GuestVcpu, virq: u32) {
        let port = v.domain.evtchn.virq_port(v.id, virq);
        if port != 0 {
            self.evtchn_set_pending(&v.domain, v.id, port);
        }
    }

    /// Raise global VIRQ `virq` in `d` (bound on vCPU 0; notifies the
    /// channel's vCPU).
    pub fn send_global_virq(&self, d: &Domain, virq: u32) {
        let port = d.evtchn.virq_port(0, virq);
        if port == 0 {
            return;
        }
        if let Some(c) = d.evtchn.chan(port) {
            let n = c.notify.load(Ordering::Acquire);
            self.evtchn_set_pending(d, n, port);
        }
    }

    /// Raise global VIRQ `virq` in the hardware domain (Xen's
    /// `send_global_virq` without set_virq_handler).
    pub fn send_hwdom_virq(&self, virq: u32) {
        if let Some(d) = self.domains.all().into_iter().find(|d| d.privileged) {
            self.send_global_virq(&d, virq);
        }
    }

    // ------------------------------------------------------------ operations

    /// EVTCHNOP_alloc_unbound in `d` for `remote`, labelled `sid`.
    pub fn evtchn_alloc_unbound(&self, d: &Domain, remote: DomId, sid: u32) -> Result<u32, i32> {
        let e = &d.evtchn;
        let _g = e.lock.lock();
        if d.dying.load(Ordering::Acquire) {
            return Err(errno::EINVAL);
        }
        let port = e.free_port()?;
        let c = e.chan(port).ok_or(errno::ENOSPC)?;
        let mut i = c.inner.lock();
        set_state(c, &mut i, State::Unbound { remote }, sid, 0);
        Ok(port)
    }

    /// Snapshot of `rd`'s unbound `rport` waiting for `ld` (EINVAL otherwise).
    pub fn evtchn_bindable(&self, rd: &Domain, rport: u32, ld: DomId) -> Result<Snapshot, i32> {
        let s = rd.evtchn.snapshot(rport).ok_or(errno::EINVAL)?;
        match s.state {
            State::Unbound { remote } if remote == ld => Ok(s),
            _ => Err(errno::EINVAL),
        }
    }

    /// EVTCHNOP_bind_interdomain: a new port of `ld` (labelled `sid`) bound
    /// to `rd`'s `rport`, which must still be as `checked` saw it (EINVAL
    /// otherwise). The new port is left pending.
    pub fn evtchn_bind_interdomain(
        &self,
        ld: Dom<'_>,
        rd: Dom<'_>,
        rport: u32,
        checked: &Snapshot,
        sid: u32,
    ) -> Result<u32, i32> {
        // Xen: the domain with the smaller id first.
        let same = Arc::ptr_eq(ld, rd);
        let (_g1, _g2) = if same {
            (ld.evtchn.lock.lock(), None)
        } else if ld.id < rd.id {
            let a = ld.evtchn.lock.lock();
            (a, Some(rd.evtchn.lock.lock()))
        } else {
            let b = rd.evtchn.lock.lock();
            (ld.evtchn.lock.lock(), Some(b))
        };
        if ld.dying.load(Ordering::Acquire) || rd.dying.load(Ordering::Acquire) {
            return Err(errno::EINVAL);
        }
        let lport = ld.evtchn.free_port()?;
        let lc = ld.evtchn.chan(lport).ok_or(errno::ENOSPC)?;
        let rc = rd.evtchn.chan(rport).ok_or(errno::EINVAL)?;
        // Both channel locks, in address order (Xen's double_evtchn_lock).
        let (mut li, mut ri) = if (lc as *const Channel) < (rc as *const Channel) {
            let l = lc.inner.lock();
            (l, rc.inner.lock())
        } else {
            let r = rc.inner.lock();
            (lc.inner.lock(), r)
        };
        if ri.generation != checked.generation
            || !matches!(ri.state, State::Unbound { remote } if remote == ld.id)
        {
            return Err(errno::EINVAL);
        }
        let notify = lc.notify.load(Ordering::Acquire);
        set_state(
            lc,
            &mut li,
            State::Interdomain {
                remote: Arc::downgrade(rd),
                remote_id: rd.id,
                remote_port: rport,
            },
            sid,
            notify,
        );
        let (rsid, rnotify) = (ri.sid, rc.notify.load(Ordering::Acquire));
        set_state(
            rc,
            &mut ri,
            State::Interdomain {
                remote: Arc::downgrade(ld),
                remote_id: ld.id,
                remote_port: lport,
            },
            rsid,
            rnotify,
        );
        drop(ri);
        drop(li);
        // Notifications sent to the unbound port may have been lost.
        self.evtchn_set_pending(ld, notify, lport);
        Ok(lport)
    }

    /// EVTCHNOP_bind_virq on `d`'s vCPU `vcpu`.
    pub fn evtchn_bind_virq(&self, d: &Domain, virq: u32, vcpu: u32) -> Result<u32, i32> {
        if virq >= NR_VIRQS {
            return Err(errno::EINVAL);
        }
        if virq_is_global(virq) && vcpu != 0 {
            return Err(errno::EINVAL);
        }
        if vcpu >= d.nr_vcpus() {
            return Err(errno::ENOENT);
        }
        let e = &d.evtchn;
        let _g = e.lock.lock();
        let slot = &e.virq[vcpu as usize][virq as usize];
        if slot.load(Ordering::Acquire) != 0 {
            return Err(errno::EEXIST);
        }
        let port = e.free_port()?;
        let c = e.chan(port).ok_or(errno::ENOSPC)?;
        let mut i = c.inner.lock();
        set_state(c, &mut i, State::Virq(virq), UNLABELED, vcpu);
        drop(i);
        slot.store(port, Ordering::Release);
        Ok(port)
    }

    /// EVTCHNOP_bind_ipi towards `d`'s vCPU `vcpu`.
    pub fn evtchn_bind_ipi(&self, d: &Domain, vcpu: u32) -> Result<u32, i32> {
        if vcpu >= d.nr_vcpus() {
            return Err(errno::ENOENT);
        }
        let e = &d.evtchn;
        let _g = e.lock.lock();
        let port = e.free_port()?;
        let c = e.chan(port).ok_or(errno::ENOSPC)?;
        let mut i = c.inner.lock();
        set_state(c, &mut i, State::Ipi, UNLABELED, vcpu);
        Ok(port)
    }

    /// EVTCHNOP_bind_vcpu.
    pub fn evtchn_bind_vcpu(&self, d: &Domain, port: u32, vcpu: u32) -> Result<(), i32> {
        if vcpu >= d.nr_vcpus() {
            return Err(errno::ENOENT);
        }
        let c = d.evtchn.chan(port).ok_or(errno::EINVAL)?;
        let _g = d.evtchn.lock.lock();
        let i = c.inner.lock();
        match i.state {
            State::Virq(v) if virq_is_global(v) => {}
            State::Unbound { .. } | State::Interdomain { .. } => {}
            _ => return Err(errno::EINVAL),
        }
        c.notify.store(vcpu, Ordering::Release);
        Ok(())
    }

    /// EVTCHNOP_close of `d`'s `port` (an interdomain peer goes back to unbound).
    pub fn evtchn_close(&self, d: &Domain, port: u32) -> Result<(), i32> {
        let c = d.evtchn.chan(port).ok_or(errno::EINVAL)?;
        loop {
            // The peer domain, if any, is locked first when its id is lower.
            let peer = match c.inner.lock().state {
                State::Interdomain { ref remote, .. } => remote.upgrade(),
                _ => None,
            };
            let (g_low, g_d, g_high) = match &peer {
                Some(p) if p.id < d.id => {
                    let a = p.evtchn.lock.lock();
                    (Some(a), d.evtchn.lock.lock(), None)
                }
                Some(p) if p.id > d.id => {
                    let a = d.evtchn.lock.lock();
                    (None, a, Some(p.evtchn.lock.lock()))
                }
                _ => (None, d.evtchn.lock.lock(), None),
            };
            let mut i = c.inner.lock();
            match i.state.clone() {
                State::Free | State::Reserved => return Err(errno::EINVAL),
                State::Interdomain {
                    remote,
                    remote_id,
                    remote_port,
                } => {
                    let now = remote.upgrade();
                    let same = match (&now, &peer) {
                        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                        (None, None) => true,
                        _ => false,
                    };
                    if !same {
                        // Rebound while the locks were taken: again.
                        drop(i);
                        drop((g_low, g_d, g_high));
                        continue;
                    }
                    self.free_channel(d, c, &mut i, port);
                    drop(i);
                    if let Some(p) = now
                        && let Some(rc) = p.evtchn.chan(remote_port)
                        && !core::ptr::eq(rc, c)
                    {
                        let mut ri = rc.inner.lock();
                        if matches!(ri.state, State::Interdomain { remote_id: r, remote_port: rp, .. } if r == d.id && rp == port)
                        {
                            let (sid, n) = (ri.sid, rc.notify.load(Ordering::Acquire));
                            set_state(rc, &mut ri, State::Unbound { remote: d.id }, sid, n);
                        }
                    }
                    let _ = remote_id;
                    return Ok(());
                }
                State::Virq(virq) => {
                    let n = if virq_is_global(virq) {
                        0
                    } else {
                        c.notify.load(Ordering::Acquire)
                    };
                    if let Some(slot) = d
                        .evtchn
                        .virq
                        .get(n as usize)
                        .and_then(|a| a.get(virq as usize))
                    {
                        slot.store(0, Ordering::Release);
                    }
                }
                State::Unbound { .. } | State::Ipi => {}
            }
            self.free_channel(d, c, &mut i, port);
            return Ok(());
        }
    }

    /// Xen's `evtchn_free`: clear the pending bit, back to free and unlabeled.
    fn free_channel(&self, d: &Domain, c: &Channel, i: &mut Inner, port: u32) {
        let word = (port / 64) as u64;
        Shared::with(d, self.platform.mem(), |s| {
            s.si_and(EVTCHN_PENDING_OFFSET + 8 * word, !(1u64 << (port % 64)));
        });
        set_state(c, i, State::Free, UNLABELED, 0);
    }

    /// EVTCHNOP_send from `ld`'s `port`, as `checked` saw it (EINVAL if it
    /// changed since).
    pub fn evtchn_send(&self, ld: &Domain, port: u32, checked: &Snapshot) -> Result<(), i32> {
        let c = ld.evtchn.chan(port).ok_or(errno::EINVAL)?;
        let i = c.inner.lock();
        if i.generation != checked.generation {
            return Err(errno::EINVAL);
        }
        match &i.state {
            State::Interdomain {
                remote,
                remote_port,
                ..
            } => {
                let Some(rd) = remote.upgrade() else {
                    return Ok(());
                };
                let rport = *remote_port;
                drop(i);
                if let Some(rc) = rd.evtchn.chan(rport) {
                    let n = rc.notify.load(Ordering::Acquire);
                    self.evtchn_set_pending(&rd, n, rport);
                }
                Ok(())
            }
            State::Ipi => {
                let n = c.notify.load(Ordering::Acquire);
                drop(i);
                self.evtchn_set_pending(ld, n, port);
                Ok(())
            }
            State::Unbound { .. } => Ok(()),
            _ => Err(errno::EINVAL),
        }
    }

    /// EVTCHNOP_unmask (Xen's `evtchn_2l_unmask`).
    pub fn evtchn_unmask(&self, d: &Domain, port: u32) -> Result<(), i32> {
        let c = d.evtchn.chan(port).ok_or(errno::EINVAL)?;
        let _i = c.inner.lock();
        let n = c.notify.load(Ordering::Acquire);
        let Some(v) = d.vcpu(n) else { return Ok(()) };
        let word = (port / 64) as u64;
        let bit = 1u64 << (port % 64);
        let notify = Shared::with(d, self.platform.mem(), |s| {
            let was = s.si_and(EVTCHN_MASK_OFFSET + 8 * word, !bit).unwrap_or(0);
            was & bit != 0
                && s.si_read(EVTCHN_PENDING_OFFSET + 8 * word).unwrap_or(0) & bit != 0
                && self.mark_pending_sel(s, &v, word)
        });
        if notify {
            self.notify_upcall(&v);
        }
        Ok(())
    }

    /// Close every port of `d` (EVTCHNOP_reset, and destruction).
    pub fn evtchn_reset(&self, d: &Domain) {
        for port in 1..NR_PORTS {
            let Some(c) = d.evtchn.chan(port) else { break };
            if !matches!(c.inner.lock().state, State::Free) {
                let _ = self.evtchn_close(d, port);
            }
        }
    }

    /// For tests and boot-time wiring: make `d`'s port an unbound one for `remote`.
    pub fn evtchn_alloc_unbound_unchecked(&self, d: &Domain, remote: DomId) -> Result<u32, i32> {
        self.evtchn_alloc_unbound(d, remote, UNLABELED)
    }
}
