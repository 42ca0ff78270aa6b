//! The scheduler: weighted fair sharing of CPUs between vCPUs, with timer
//! preemption.
//!
//! Every vCPU carries a virtual time that advances, while it runs, by the
//! time it ran scaled by `DEFAULT_WEIGHT / weight` (its domain's weight). A
//! CPU always picks the runnable vCPU with the least virtual time, and a
//! vCPU that has run a whole slice ([`SLICE_NS`]) is preempted at the next
//! timer tick if another vCPU is waiting. A vCPU that wakes after blocking
//! gets at least the smallest virtual time among the runnable ones minus one
//! slice, so sleeping does not bank unbounded credit. The result: CPU time is
//! shared in proportion to weights, a CPU-burning guest cannot starve
//! another, and there may be more vCPUs than CPUs.
//!
//! All state lives under one lock (the platforms Warden targets have a few
//! CPUs). vCPUs are keyed by (domain id, vCPU id). The scheduler also keeps
//! what decides runnability (online, initialised, blocked, domain paused or
//! shut down), the single-shot timers, pending virtual IRQs and the runstate
//! accounting of `VCPUOP_get_runstate_info`. Operations return the CPUs the
//! caller must kick (IPI) for the change to take effect.

use crate::domain::GuestVcpu;
use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};
use warden_abi::DomId;
use warden_abi::vcpu::{
    RUNSTATE_BLOCKED, RUNSTATE_OFFLINE, RUNSTATE_RUNNABLE, RUNSTATE_RUNNING, RunstateInfo,
};

/// Length of a time slice.
pub const SLICE_NS: u64 = 10_000_000;
/// Weight of a domain unless configured (Xen's credit scheduler default).
pub const DEFAULT_WEIGHT: u32 = 256;
/// Accepted weights.
pub const WEIGHT_RANGE: core::ops::RangeInclusive<u32> = 1..=65535;

/// A domain's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Life {
    /// May run (when not paused).
    Active,
    /// Shut down with this reason (`sched::SHUTDOWN_*`); crashed = `SHUTDOWN_CRASH`.
    Shutdown(u32),
    /// Being destroyed.
    Dying,
}

/// Why a vCPU is blocked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Block {
    /// SCHEDOP_block or HLT: until a virtual IRQ is raised.
    Event,
    /// SCHEDOP_poll: until its timeout.
    Poll,
}

/// vCPU key.
pub type Key = (DomId, u32);

/// A scheduling request that does not apply in the current state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotApplicable;

#[derive(Debug)]
struct Dom {
    pause: u32,
    life: Life,
    weight: u32,
    /// The domain's stop flag (`Domain::stopped`), kept equal to
    /// "paused or not active" under the lock.
    stop: Arc<AtomicBool>,
}

struct V {
    vcpu: Arc<GuestVcpu>,
    online: bool,
    initialised: bool,
    blocked: Option<Block>,
    queued: bool,
    running: Option<u32>,
    /// The CPU it last ran on (0 before it first ran): Xen's `v->processor`.
    last_cpu: u32,
    vtime: u64,
    /// While running: when its slice started and up to when it was charged.
    slice_start: u64,
    charged_at: u64,
    timer: Option<u64>,
    /// Periodic timer: period (0 = off) and when it last fired.
    period: u64,
    period_last: u64,
    /// The local APIC timer's next deadline (`emul::exits`).
    lapic_timer: Option<u64>,
    poll_deadline: Option<u64>,
    rs_state: i32,
    rs_entry: u64,
    rs_time: [u64; 4],
}

struct Inner {
    doms: BTreeMap<DomId, Dom>,
    vcpus: BTreeMap<Key, V>,
    running: Vec<Option<Key>>,
    idle: Vec<bool>,
}

/// What a domain's scheduling state looks like (for getdomaininfo).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DomState {
    pub pause: u32,
    pub life: Life,
    pub online_vcpus: u32,
    pub running: bool,
    pub all_blocked: bool,
    pub cpu_time_ns: u64,
}

/// A vCPU's scheduling state (for getvcpuinfo).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VcpuSched {
    /// Up (not taken down).
    pub online: bool,
    /// Blocked waiting for an event.
    pub blocked: bool,
    /// On a CPU now.
    pub running: bool,
    /// The CPU it runs on, or last ran on.
    pub cpu: u32,
    /// Time spent running.
    pub cpu_time_ns: u64,
}

/// The scheduler.
pub struct Scheduler {
    inner: spin::Mutex<Inner>,
    /// A lower bound of every armed deadline (single-shot, periodic, poll,
    /// LAPIC timer; `u64::MAX`: none), read without the lock: the
    /// housekeeping pass that runs after every exit scans the vCPUs only
    /// once it is due. Lowered (under the lock) whenever a deadline is
    /// armed; recomputed exactly by the scan.
    earliest: core::sync::atomic::AtomicU64,
}

/// What [`Scheduler::expire`] found due.
#[derive(Default)]
pub struct Expired {
    /// CPUs to kick (a poll ended).
    pub kick: Vec<u32>,
    /// vCPUs whose single-shot or periodic timer fired (VIRQ_TIMER).
    pub timer: Vec<Arc<GuestVcpu>>,
    /// vCPUs whose LAPIC timer wake-up is due (their vLAPIC decides).
    pub lapic: Vec<Arc<GuestVcpu>>,
}

impl core::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Scheduler").finish_non_exhaustive()
    }
}

fn runnable(v: &V, d: &Dom) -> bool {
    v.online && v.initialised && v.blocked.is_none() && d.pause == 0 && d.life == Life::Active
}

fn rs_of(v: &V, d: Option<&Dom>) -> i32 {
    if v.running.is_some() {
        RUNSTATE_RUNNING
    } else if d.is_some_and(|d| runnable(v, d)) {
        RUNSTATE_RUNNABLE
    } else if v.blocked.is_some() && v.online {
        RUNSTATE_BLOCKED
    } else {
        RUNSTATE_OFFLINE
    }
}

/// Charge a running vCPU's virtual time up to `now`.
fn charge(v: &mut V, d: Option<&Dom>, now: u64) {
    let w = d.map_or(DEFAULT_WEIGHT, |d| d.weight).max(1) as u64;
    let ran = now.saturating_sub(v.charged_at);
    v.vtime = v
        .vtime
        .saturating_add(ran.saturating_mul(DEFAULT_WEIGHT as u64) / w);
    v.charged_at = now;
}

fn rs_update(v: &mut V, d: Option<&Dom>, now: u64) {
    let s = rs_of(v, d);
    if s != v.rs_state {
        let i = v.rs_state as usize;
        v.rs_time[i] += now.saturating_sub(v.rs_entry);
        v.rs_state = s;
        v.rs_entry = now;
    }
}

impl Inner {
    /// Lowest virtual time among runnable vCPUs (queued or running).
    fn floor(&self) -> Option<u64> {
        self.vcpus
            .values()
            .filter(|v| v.queued || v.running.is_some())
            .map(|v| v.vtime)
            .min()
    }

    /// Put `k` in the run queue if it is runnable and not already queued or
    /// running; returns an idle CPU to kick.
    fn enqueue(&mut self, k: Key, now: u64) -> Option<u32> {
        let floor = self.floor();
        let Inner {
            doms, vcpus, idle, ..
        } = self;
        let v = vcpus.get_mut(&k)?;
        let d = doms.get(&k.0)?;
        if !runnable(v, d) || v.queued || v.running.is_some() {
            rs_update(v, Some(d), now);
            return None;
        }
        if let Some(f) = floor {
            v.vtime = v.vtime.max(f.saturating_sub(SLICE_NS));
        }
        v.queued = true;
        rs_update(v, Some(d), now);
        idle.iter().position(|&i| i).map(|c| c as u32)
    }

    /// Re-evaluate every vCPU of domain `id` (after a pause/unpause/life change).
    fn refresh_domain(&mut self, id: DomId, now: u64) -> Vec<u32> {
        if let Some(d) = self.doms.get(&id) {
            d.stop
                .store(d.pause > 0 || d.life != Life::Active, Ordering::SeqCst);
        }
        let keys: Vec<Key> = self
            .vcpus
            .range((id, 0)..=(id, u32::MAX))
            .map(|(k, _)| *k)
            .collect();
        let mut kick = Vec::new();
        for k in keys {
            let Inner { doms, vcpus, .. } = self;
            let d = doms.get(&k.0);
            if let Some(v) = vcpus.get_mut(&k) {
                let ok = d.is_some_and(|d| runnable(v, d));
                if !ok && v.queued {
                    v.queued = false;
                }
                if !ok && let Some(c) = v.running {
                    kick.push(c);
                }
                rs_update(v, d, now);
            }
            if let Some(c) = self.enqueue(k, now) {
                kick.push(c);
            }
        }
        kick.sort();
        kick.dedup();
        kick
    }
}

impl Scheduler {
    /// A scheduler for `nr_cpus` CPUs.
    pub fn new(nr_cpus: usize) -> Scheduler {
        Scheduler {
            inner: spin::Mutex::new(Inner {
                doms: BTreeMap::new(),
                vcpus: BTreeMap::new(),
                running: alloc::vec![None; nr_cpus],
                idle: alloc::vec![false; nr_cpus],
            }),
            earliest: core::sync::atomic::AtomicU64::new(u64::MAX),
        }
    }

    /// Register a domain (created paused once, as Xen's createdomain);
    /// `stop` is its stop flag, kept up to date from now on.
    pub fn add_domain(&self, id: DomId, weight: u32, stop: Arc<AtomicBool>) {
        stop.store(true, Ordering::SeqCst);
        self.inner.lock().doms.insert(
            id,
            Dom {
                pause: 1,
                life: Life::Active,
                weight: weight.clamp(*WEIGHT_RANGE.start(), *WEIGHT_RANGE.end()),
                stop,
            },
        );
    }

    /// Register a vCPU (vCPU 0 starts online, the others offline; none is
    /// initialised).
    pub fn add_vcpu(&self, v: Arc<GuestVcpu>, now: u64) {
        let k = (v.domid, v.id);
        let online = v.id == 0;
        self.inner.lock().vcpus.insert(
            k,
            V {
                vcpu: v,
                online,
                initialised: false,
                blocked: None,
                queued: false,
                running: None,
                last_cpu: 0,
                vtime: 0,
                slice_start: 0,
                charged_at: 0,
                timer: None,
                period: 0,
                period_last: 0,
                lapic_timer: None,
                poll_deadline: None,
                rs_state: RUNSTATE_OFFLINE,
                rs_entry: now,
                rs_time: [0; 4],
            },
        );
    }

    /// Forget a domain and its vCPUs (none may be running: pause and wait first).
    pub fn remove_domain(&self, id: DomId) {
        let mut s = self.inner.lock();
        s.doms.remove(&id);
        let keys: Vec<Key> = s
            .vcpus
            .range((id, 0)..=(id, u32::MAX))
            .map(|(k, _)| *k)
            .collect();
        for k in keys {
            s.vcpus.remove(&k);
        }
    }

    /// One more pause of domain `id`; returns CPUs to kick.
    pub fn pause(&self, id: DomId, now: u64) -> Vec<u32> {
        let mut s = self.inner.lock();
        match s.doms.get_mut(&id) {
            Some(d) => d.pause = d.pause.saturating_add(1),
            None => return Vec::new(),
        }
        s.refresh_domain(id, now)
    }

    /// One pause less; Err(()) if the domain was not paused.
    pub fn unpause(&self, id: DomId, now: u64) -> Result<Vec<u32>, NotApplicable> {
        let mut s = self.inner.lock();
        match s.doms.get_mut(&id) {
            Some(d) if d.pause > 0 => d.pause -= 1,
            _ => return Err(NotApplicable),
        }
        Ok(s.refresh_domain(id, now))
    }

    /// Change a domain's life (shutdown, crash, dying); returns CPUs to kick.
    /// A shut-down domain stays shut down; `Dying` overrides everything.
    pub fn set_life(&self, id: DomId, life: Life, now: u64) -> Vec<u32> {
        let mut s = self.inner.lock();
        match s.doms.get_mut(&id) {
            Some(d) => match (d.life, life) {
                (Life::Dying, _) => return Vec::new(),
                (Life::Shutdown(_), Life::Shutdown(_)) => return Vec::new(),
                _ => d.life = life,
            },
            None => return Vec::new(),
        }
        s.refresh_domain(id, now)
    }

    /// The CPUs currently running a vCPU of domain `id`.
    pub fn running_cpus(&self, id: DomId) -> Vec<u32> {
        let s = self.inner.lock();
        s.vcpus
            .range((id, 0)..=(id, u32::MAX))
            .filter_map(|(_, v)| v.running)
            .collect()
    }

    /// Pick the next vCPU for `cpu`.
    pub fn pick(&self, cpu: u32, now: u64) -> Option<Arc<GuestVcpu>> {
        let mut s = self.inner.lock();
        let best = s
            .vcpus
            .iter()
            .filter(|(_, v)| v.queued)
            .min_by_key(|(k, v)| (v.vtime, **k))
            .map(|(k, _)| *k);
        let Some(k) = best else {
            if let Some(i) = s.idle.get_mut(cpu as usize) {
                *i = true;
            }
            return None;
        };
        if let Some(i) = s.idle.get_mut(cpu as usize) {
            *i = false;
        }
        if let Some(r) = s.running.get_mut(cpu as usize) {
            *r = Some(k);
        }
        let Inner { doms, vcpus, .. } = &mut *s;
        let v = vcpus.get_mut(&k)?;
        v.queued = false;
        v.running = Some(cpu);
        v.last_cpu = cpu;
        v.slice_start = now;
        v.charged_at = now;
        rs_update(v, doms.get(&k.0), now);
        Some(v.vcpu.clone())
    }

    /// `k` stopped running on `cpu`; requeue it if still runnable. Returns
    /// an idle CPU to kick, if the vCPU went back in the queue.
    pub fn descheduled(&self, cpu: u32, k: Key, now: u64) -> Option<u32> {
        let mut s = self.inner.lock();
        if let Some(r) = s.running.get_mut(cpu as usize)
            && *r == Some(k)
        {
            *r = None;
        }
        let Inner { doms, vcpus, .. } = &mut *s;
        let d = doms.get(&k.0);
        let v = vcpus.get_mut(&k)?;
        if v.running.is_some() {
            charge(v, d, now);
        }
        v.running = None;
        rs_update(v, d, now);
        let kick = s.enqueue(k, now);
        // The CPU giving the vCPU up will pick again itself.
        kick.filter(|&c| c != cpu)
    }

    /// Should `k`, running since its slice started, stop now? (Also charges
    /// its virtual time, so waking vCPUs are placed against current values.)
    pub fn should_stop(&self, k: Key, now: u64) -> bool {
        let mut s = self.inner.lock();
        let any_queued = s.vcpus.values().any(|o| o.queued);
        let Inner { doms, vcpus, .. } = &mut *s;
        let (Some(v), Some(d)) = (vcpus.get_mut(&k), doms.get(&k.0)) else {
            return true;
        };
        if v.running.is_some() {
            charge(v, Some(d), now);
        }
        if !runnable(v, d) {
            return true;
        }
        now.saturating_sub(v.slice_start) >= SLICE_NS && any_queued
    }

    /// SCHEDOP_yield: let any queued vCPU go first.
    pub fn yield_now(&self, k: Key) {
        let mut s = self.inner.lock();
        let top = s.vcpus.values().filter(|v| v.queued).map(|v| v.vtime).max();
        if let (Some(top), Some(v)) = (top, s.vcpus.get_mut(&k)) {
            v.vtime = v.vtime.max(top.saturating_add(1));
        }
    }

    /// Block `k`. With `Block::Event`, nothing happens if a virtual IRQ is
    /// pending or `guest_pending` (the guest's `evtchn_upcall_pending`); returns
    /// whether the vCPU blocked. A poll block ends at `deadline` (if any).
    pub fn block(
        &self,
        k: Key,
        kind: Block,
        guest_pending: bool,
        deadline: Option<u64>,
        now: u64,
    ) -> bool {
        let mut s = self.inner.lock();
        let Inner { doms, vcpus, .. } = &mut *s;
        let Some(v) = vcpus.get_mut(&k) else {
            return false;
        };
        if kind == Block::Event && (v.vcpu.virqs.load(Ordering::SeqCst) != 0 || guest_pending) {
            return false;
        }
        v.blocked = Some(kind);
        v.poll_deadline = if kind == Block::Poll { deadline } else { None };
        if let Some(t) = v.poll_deadline {
            self.note_deadline(t);
        }
        v.queued = false;
        rs_update(v, doms.get(&k.0), now);
        true
    }

    /// A virtual IRQ was raised for `k` (its bit is already set in
    /// `GuestVcpu::virqs`): wake it if blocked on events. Returns a CPU to
    /// kick (the one running it, so the upcall is injected, or an idle one to run it).
    pub fn notify(&self, k: Key, now: u64) -> Option<u32> {
        let mut s = self.inner.lock();
        let v = s.vcpus.get_mut(&k)?;
        let running = v.running;
        if v.blocked == Some(Block::Event) {
            // Also when it still holds its CPU: it blocked (HLT,
            // SCHEDOP_block) and the event came before it was descheduled
            // (that CPU's own housekeeping firing its timer): it goes on
            // running instead of staying blocked with the event owed.
            v.blocked = None;
            let kick = s.enqueue(k, now);
            return running.or(kick);
        }
        running
    }

    /// A port `k` polls became pending: end its poll if it is in one
    /// (SCHEDOP_poll). Returns a CPU to kick.
    pub fn wake_poll(&self, k: Key, now: u64) -> Option<u32> {
        let mut s = self.inner.lock();
        let v = s.vcpus.get_mut(&k)?;
        if v.blocked != Some(Block::Poll) {
            return None;
        }
        v.blocked = None;
        v.poll_deadline = None;
        s.enqueue(k, now)
    }

    /// Arm (Some) or disarm (None) `k`'s single-shot timer.
    pub fn set_timer(&self, k: Key, deadline: Option<u64>) {
        if let Some(v) = self.inner.lock().vcpus.get_mut(&k) {
            v.timer = deadline;
            if let Some(t) = deadline {
                self.note_deadline(t);
            }
        }
    }

    /// Set (`period` > 0) or stop (0) `k`'s periodic timer (Xen's
    /// `vcpu_set_periodic_timer`): it fires at once if a period has passed
    /// since it last fired, then every `period` ns. Returns whether it fired
    /// now (the caller raises VIRQ_TIMER).
    pub fn set_periodic(&self, k: Key, period: u64, now: u64) -> bool {
        let mut s = self.inner.lock();
        let Some(v) = s.vcpus.get_mut(&k) else {
            return false;
        };
        v.period = period;
        let fired = period != 0 && now >= v.period_last.saturating_add(period);
        if fired {
            v.period_last = now;
        }
        if period != 0 {
            self.note_deadline(v.period_last.saturating_add(period));
        }
        fired
    }

    /// `k`'s single-shot deadline and periodic period (tests, diagnostics).
    pub fn timers(&self, k: Key) -> Option<(Option<u64>, u64)> {
        let s = self.inner.lock();
        s.vcpus.get(&k).map(|v| (v.timer, v.period))
    }

    /// The earliest armed timer or poll deadline.
    pub fn next_deadline(&self) -> Option<u64> {
        let s = self.inner.lock();
        s.vcpus
            .values()
            .flat_map(|v| {
                let p = (v.period != 0).then(|| v.period_last.saturating_add(v.period));
                [v.timer, v.poll_deadline, p, v.lapic_timer]
            })
            .flatten()
            .min()
    }

    /// Lower [`Scheduler::earliest`] to `t` (callers hold the lock).
    fn note_deadline(&self, t: u64) {
        self.earliest
            .fetch_min(t, core::sync::atomic::Ordering::AcqRel);
    }

    /// End expired polls, disarm expired single-shot timers, advance
    /// periodic ones and collect the due LAPIC timer wake-ups, in one pass
    /// over the vCPUs, and only when some deadline may be due (one atomic
    /// load otherwise).
    pub fn expire(&self, now: u64) -> Expired {
        use core::sync::atomic::Ordering as O;
        let mut out = Expired::default();
        if now < self.earliest.load(O::Acquire) {
            return out;
        }
        let mut s = self.inner.lock();
        let mut woken = Vec::new();
        let mut next = u64::MAX;
        for (k, v) in s.vcpus.iter_mut() {
            let periodic = v.period != 0 && now >= v.period_last.saturating_add(v.period);
            if periodic {
                v.period_last = now;
            }
            if v.timer.is_some_and(|t| t <= now) {
                v.timer = None;
                out.timer.push(v.vcpu.clone());
            } else if periodic {
                out.timer.push(v.vcpu.clone());
            }
            if v.blocked == Some(Block::Poll) && v.poll_deadline.is_some_and(|t| t <= now) {
                v.blocked = None;
                v.poll_deadline = None;
                woken.push(*k);
            }
            if v.lapic_timer.is_some_and(|t| t <= now) {
                v.lapic_timer = None;
                out.lapic.push(v.vcpu.clone());
            }
            let p = (v.period != 0).then(|| v.period_last.saturating_add(v.period));
            for t in [v.timer, v.poll_deadline, p, v.lapic_timer]
                .into_iter()
                .flatten()
            {
                next = next.min(t);
            }
        }
        // Under the lock: a deadline armed meanwhile waits for the lock and
        // lowers the bound after this store.
        self.earliest.store(next, O::Release);
        for k in woken {
            if let Some(c) = s.enqueue(k, now) {
                out.kick.push(c);
            }
        }
        out.kick.sort();
        out.kick.dedup();
        out
    }

    /// Arm (Some) or disarm (None) `k`'s local APIC timer wake-up.
    pub fn set_lapic_timer(&self, k: Key, deadline: Option<u64>) {
        if let Some(v) = self.inner.lock().vcpus.get_mut(&k) {
            v.lapic_timer = deadline;
            if let Some(t) = deadline {
                self.note_deadline(t);
            }
        }
    }

    /// Disarm the expired local APIC timer wake-ups and return their vCPUs
    /// (the caller lets each vLAPIC decide what fires and re-arms).
    pub fn expire_lapic(&self, now: u64) -> Vec<Arc<GuestVcpu>> {
        let mut s = self.inner.lock();
        let mut fired = Vec::new();
        for v in s.vcpus.values_mut() {
            if v.lapic_timer.is_some_and(|t| t <= now) {
                v.lapic_timer = None;
                fired.push(v.vcpu.clone());
            }
        }
        fired
    }

    /// Mark `k` initialised (it has a valid state to run); requeue it.
    pub fn set_initialised(&self, k: Key, now: u64) -> Option<u32> {
        let mut s = self.inner.lock();
        s.vcpus.get_mut(&k)?.initialised = true;
        s.enqueue(k, now)
    }

    /// Is `k` initialised?
    pub fn initialised(&self, k: Key) -> bool {
        self.inner
            .lock()
            .vcpus
            .get(&k)
            .is_some_and(|v| v.initialised)
    }

    /// Bring `k` online (VCPUOP_up); Err(()) if it was never initialised.
    pub fn up(&self, k: Key, now: u64) -> Result<Option<u32>, NotApplicable> {
        let mut s = self.inner.lock();
        let v = s.vcpus.get_mut(&k).ok_or(NotApplicable)?;
        if !v.initialised {
            return Err(NotApplicable);
        }
        v.online = true;
        Ok(s.enqueue(k, now))
    }

    /// Take `k` offline (VCPUOP_down); returns the CPU running it, to kick.
    pub fn down(&self, k: Key, now: u64) -> Option<u32> {
        let mut s = self.inner.lock();
        let Inner { doms, vcpus, .. } = &mut *s;
        let v = vcpus.get_mut(&k)?;
        v.online = false;
        v.queued = false;
        rs_update(v, doms.get(&k.0), now);
        v.running
    }

    /// Take `k` offline as [`Scheduler::down`] does; also returns whether
    /// it was the last online vCPU of its domain (decided under the one
    /// lock, so of two vCPUs going down at once exactly one is the last).
    pub fn down_last(&self, k: Key, now: u64) -> (Option<u32>, bool) {
        let mut s = self.inner.lock();
        let Inner { doms, vcpus, .. } = &mut *s;
        let Some(v) = vcpus.get_mut(&k) else {
            return (None, false);
        };
        let was_online = core::mem::replace(&mut v.online, false);
        v.queued = false;
        rs_update(v, doms.get(&k.0), now);
        let cpu = v.running;
        let others = vcpus
            .range((k.0, 0)..=(k.0, u32::MAX))
            .any(|(_, o)| o.online);
        (cpu, was_online && !others)
    }

    /// Is `k` online?
    pub fn is_up(&self, k: Key) -> bool {
        self.inner.lock().vcpus.get(&k).is_some_and(|v| v.online)
    }

    /// Is `k` running on some CPU right now?
    pub fn is_running(&self, k: Key) -> bool {
        self.inner
            .lock()
            .vcpus
            .get(&k)
            .is_some_and(|v| v.running.is_some())
    }

    /// `k`'s runstate (VCPUOP_get_runstate_info).
    pub fn runstate(&self, k: Key, now: u64) -> Option<RunstateInfo> {
        let s = self.inner.lock();
        let v = s.vcpus.get(&k)?;
        let mut time = v.rs_time;
        time[v.rs_state as usize] += now.saturating_sub(v.rs_entry);
        Some(RunstateInfo {
            state: v.rs_state,
            pad: 0,
            state_entry_time: v.rs_entry,
            time,
        })
    }

    /// Domain `id`'s scheduling state.
    pub fn domain_state(&self, id: DomId, now: u64) -> Option<DomState> {
        let s = self.inner.lock();
        let d = s.doms.get(&id)?;
        let mut st = DomState {
            pause: d.pause,
            life: d.life,
            online_vcpus: 0,
            running: false,
            all_blocked: true,
            cpu_time_ns: 0,
        };
        for (_, v) in s.vcpus.range((id, 0)..=(id, u32::MAX)) {
            let mut run = v.rs_time[RUNSTATE_RUNNING as usize];
            if v.rs_state == RUNSTATE_RUNNING {
                run += now.saturating_sub(v.rs_entry);
            }
            st.cpu_time_ns += run;
            if v.online {
                st.online_vcpus += 1;
                if v.blocked.is_none() {
                    st.all_blocked = false;
                }
            }
            if v.running.is_some() {
                st.running = true;
            }
        }
        if st.online_vcpus == 0 {
            st.all_blocked = false;
        }
        Some(st)
    }

    /// A domain's life, if it exists.
    pub fn life(&self, id: DomId) -> Option<Life> {
        self.inner.lock().doms.get(&id).map(|d| d.life)
    }

    /// vCPU `k`'s state as XEN_DOMCTL_getvcpuinfo reports it.
    pub fn vcpu_info(&self, k: Key, now: u64) -> Option<VcpuSched> {
        let s = self.inner.lock();
        let v = s.vcpus.get(&k)?;
        let mut running_ns = v.rs_time[RUNSTATE_RUNNING as usize];
        if v.rs_state == RUNSTATE_RUNNING {
            running_ns += now.saturating_sub(v.rs_entry);
        }
        Some(VcpuSched {
            online: v.online,
            blocked: v.blocked.is_some(),
            running: v.running.is_some(),
            cpu: v.running.unwrap_or(v.last_cpu),
            cpu_time_ns: running_ns,
        })
    }

    /// A domain's weight.
    pub fn weight(&self, id: DomId) -> Option<u32> {
        self.inner.lock().doms.get(&id).map(|d| d.weight)
    }

    /// Set a domain's weight.
    pub fn set_weight(&self, id: DomId, weight: u32) {
        if let Some(d) = self.inner.lock().doms.get_mut(&id) {
            d.weight = weight.clamp(*WEIGHT_RANGE.start(), *WEIGHT_RANGE.end());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::tests::test_vcpu;

    fn setup(doms: &[(DomId, u32, u32)]) -> Scheduler {
        let s = Scheduler::new(4);
        for &(id, vcpus, weight) in doms {
            s.add_domain(id, weight, Arc::new(AtomicBool::new(true)));
            for v in 0..vcpus {
                s.add_vcpu(test_vcpu(id, v), 0);
                s.set_initialised((id, v), 0);
                let _ = s.up((id, v), 0);
            }
            s.unpause(id, 0).unwrap();
        }
        s
    }

    /// Simulate `cpus` CPUs for `total` ns with 10 ms ticks; vCPUs never block.
    /// Returns run time per vCPU key.
    fn simulate(s: &Scheduler, cpus: u32, total: u64) -> BTreeMap<Key, u64> {
        let mut now = 0;
        let mut ran = BTreeMap::new();
        let mut cur: Vec<Option<(Key, u64)>> = alloc::vec![None; cpus as usize];
        while now < total {
            for cpu in 0..cpus {
                let slot = &mut cur[cpu as usize];
                if let Some((k, start)) = *slot
                    && s.should_stop(k, now)
                {
                    *ran.entry(k).or_insert(0) += now - start;
                    s.descheduled(cpu, k, now);
                    *slot = None;
                }
                if slot.is_none()
                    && let Some(v) = s.pick(cpu, now)
                {
                    *slot = Some(((v.domid, v.id), now));
                }
            }
            now += SLICE_NS;
        }
        ran
    }

    #[test]
    fn equal_weights_share_equally_on_one_cpu() {
        let s = setup(&[(1, 1, 256), (2, 1, 256)]);
        let ran = simulate(&s, 1, 2_000 * SLICE_NS);
        let a = ran[&(1, 0)] as f64;
        let b = ran[&(2, 0)] as f64;
        assert!((a / b - 1.0).abs() < 0.02, "{a} vs {b}");
    }

    #[test]
    fn weights_are_honoured() {
        let s = setup(&[(1, 1, 512), (2, 1, 256)]);
        let ran = simulate(&s, 1, 3_000 * SLICE_NS);
        let r = ran[&(1, 0)] as f64 / ran[&(2, 0)] as f64;
        assert!((r - 2.0).abs() < 0.05, "ratio {r}");
    }

    #[test]
    fn more_vcpus_than_cpus_all_run() {
        let s = setup(&[(1, 5, 256)]);
        let ran = simulate(&s, 2, 1_000 * SLICE_NS);
        assert_eq!(ran.len(), 5);
        let min = *ran.values().min().unwrap() as f64;
        let max = *ran.values().max().unwrap() as f64;
        assert!(max / min < 1.1, "{ran:?}");
    }

    #[test]
    fn a_sleeper_does_not_bank_credit() {
        let s = setup(&[(1, 1, 256), (2, 1, 256)]);
        // d2 blocks for a long time while d1 runs.
        assert!(s.block((2, 0), Block::Event, false, None, 0));
        // d1 runs alone for 100 slices (never descheduled: nothing else is queued).
        let v = s.pick(0, 0).unwrap();
        assert_eq!((v.domid, v.id), (1, 0));
        let mut t = 0;
        for _ in 0..100 {
            t += SLICE_NS;
            assert!(!s.should_stop((1, 0), t));
        }
        raise(&s, (2, 0), t);
        // d1 is preempted at the next tick; from then on the two alternate:
        // the sleeper neither starves d1 nor is starved.
        let mut cur = (1, 0);
        let mut d2_in_a_row = 0;
        let mut max_in_a_row = 0;
        let mut d1_slices = 0;
        for _ in 0..40 {
            t += SLICE_NS;
            if s.should_stop(cur, t) {
                s.descheduled(0, cur, t);
                let v = s.pick(0, t).unwrap();
                cur = (v.domid, v.id);
            }
            if cur == (2, 0) {
                d2_in_a_row += 1;
                max_in_a_row = max_in_a_row.max(d2_in_a_row);
            } else {
                d2_in_a_row = 0;
                d1_slices += 1;
            }
        }
        assert!(max_in_a_row <= 2, "d2 ran {max_in_a_row} slices in a row");
        assert!(
            (15..=25).contains(&d1_slices),
            "d1 got {d1_slices} of 40 slices"
        );
    }

    #[test]
    fn pause_unpause_and_lifecycle() {
        let s = setup(&[(1, 2, 256)]);
        let v = s.pick(0, 0).unwrap();
        let k = (v.domid, v.id);
        assert!(s.is_running(k));
        // Pausing a domain with a running vCPU asks to kick that CPU.
        assert_eq!(s.pause(1, 1), alloc::vec![0]);
        assert!(s.should_stop(k, 1));
        s.descheduled(0, k, 2);
        assert!(s.pick(1, 2).is_none(), "paused domain must not run");
        assert_eq!(s.domain_state(1, 2).unwrap().pause, 1);
        s.unpause(1, 3).unwrap();
        assert!(s.unpause(1, 3).is_err(), "unpause of an unpaused domain");
        assert!(s.pick(1, 4).is_some());
        // Shut down: nothing runs, a later crash does not override the reason.
        s.set_life(1, Life::Shutdown(0), 5);
        s.set_life(1, Life::Shutdown(3), 5);
        assert_eq!(s.life(1), Some(Life::Shutdown(0)));
        assert!(s.pick(2, 6).is_none());
        s.set_life(1, Life::Dying, 7);
        assert_eq!(s.life(1), Some(Life::Dying));
        s.remove_domain(1);
        assert!(s.life(1).is_none());
    }

    fn raise(s: &Scheduler, k: Key, now: u64) -> Option<u32> {
        let v = {
            let g = s.inner.lock();
            g.vcpus[&k].vcpu.clone()
        };
        v.virqs.fetch_or(1, Ordering::SeqCst);
        s.notify(k, now)
    }

    #[test]
    fn timers_and_blocking() {
        let s = setup(&[(1, 1, 256)]);
        let k = (1, 0);
        let v = s.inner.lock().vcpus[&k].vcpu.clone();
        // A pending virq prevents blocking.
        raise(&s, k, 0);
        assert!(!s.block(k, Block::Event, false, None, 0));
        assert_eq!(v.virqs.swap(0, Ordering::SeqCst), 1);
        // The guest's own pending flag too.
        assert!(!s.block(k, Block::Event, true, None, 0));
        assert!(s.block(k, Block::Event, false, None, 0));
        assert!(s.pick(0, 0).is_none());
        s.set_timer(k, Some(50));
        assert_eq!(s.next_deadline(), Some(50));
        assert!(s.expire(49).timer.is_empty());
        let fired = s.expire(50).timer;
        assert_eq!(fired.len(), 1);
        assert_eq!(raise(&s, k, 50), Some(0), "idle CPU 0 is kicked");
        assert!(s.pick(0, 50).is_some());
        assert_eq!(raise(&s, k, 55), Some(0), "the CPU running it is kicked");
        s.descheduled(0, k, 60);
        v.virqs.store(0, Ordering::SeqCst);
        // A poll ignores virqs and ends at its deadline.
        assert!(s.block(k, Block::Poll, false, Some(100), 60));
        raise(&s, k, 61);
        assert!(s.pick(0, 61).is_none());
        s.expire(100);
        assert!(s.pick(0, 100).is_some());
    }

    #[test]
    fn expire_is_one_pass_and_skipped_until_a_deadline_is_due() {
        let s = setup(&[(1, 2, 256)]);
        let bound = || s.earliest.load(Ordering::Acquire);
        assert_eq!(bound(), u64::MAX);
        s.set_timer((1, 0), Some(100));
        s.set_lapic_timer((1, 1), Some(80));
        assert!(!s.set_periodic((1, 1), 1000, 0));
        assert_eq!(bound(), 80);
        let e = s.expire(79);
        assert!(e.timer.is_empty() && e.lapic.is_empty() && e.kick.is_empty());
        // The LAPIC wake-up and the single-shot timer come out of one pass each.
        let e = s.expire(80);
        assert_eq!((e.timer.len(), e.lapic.len()), (0, 1));
        assert_eq!(e.lapic[0].id, 1);
        assert_eq!(bound(), 100, "recomputed: the single-shot timer is next");
        let e = s.expire(100);
        assert_eq!((e.timer.len(), e.lapic.len()), (1, 0));
        assert_eq!(bound(), 1000, "the periodic timer is next");
        let e = s.expire(1000);
        assert_eq!(e.timer.len(), 1);
        assert_eq!(bound(), 2000);
        // Disarming leaves a stale lower bound: only an extra scan.
        s.set_periodic((1, 1), 0, 1000);
        s.set_timer((1, 0), Some(1500));
        s.set_timer((1, 0), None);
        assert_eq!(bound(), 1500);
        assert!(s.expire(1500).timer.is_empty());
        assert_eq!(bound(), u64::MAX);
    }

    #[test]
    fn an_event_between_blocking_and_descheduling_wakes() {
        // A vCPU blocks (HLT) on CPU 0; before CPU 0 deschedules it, its
        // own housekeeping fires the vCPU's timer (the event is raised
        // while the vCPU still holds the CPU).
        let s = setup(&[(1, 1, 256)]);
        let k = (1, 0);
        assert!(s.pick(0, 0).is_some());
        assert!(s.block(k, Block::Event, false, None, 10));
        assert!(s.should_stop(k, 10), "blocked: its CPU lets it go");
        assert_eq!(raise(&s, k, 11), Some(0), "the CPU holding it is kicked");
        assert!(!s.should_stop(k, 12), "woken: it goes on running");
        s.descheduled(0, k, 13);
        assert!(
            s.pick(0, 13).is_some(),
            "after a deschedule it is runnable, not blocked with the event owed"
        );
    }

    #[test]
    fn stop_flag_follows_pause_and_life() {
        let s = Scheduler::new(1);
        let stop = Arc::new(AtomicBool::new(false));
        s.add_domain(3, 256, stop.clone());
        assert!(stop.load(Ordering::SeqCst), "created paused");
        s.unpause(3, 0).unwrap();
        assert!(!stop.load(Ordering::SeqCst));
        s.pause(3, 0);
        assert!(stop.load(Ordering::SeqCst));
        s.unpause(3, 0).unwrap();
        s.set_life(3, Life::Shutdown(0), 0);
        assert!(stop.load(Ordering::SeqCst));
    }

    #[test]
    fn vcpu_up_down_and_runstate() {
        let s = Scheduler::new(2);
        s.add_domain(1, 256, Arc::new(AtomicBool::new(true)));
        s.add_vcpu(test_vcpu(1, 0), 0);
        s.add_vcpu(test_vcpu(1, 1), 0);
        s.unpause(1, 0).unwrap();
        assert!(s.up((1, 1), 0).is_err(), "not initialised");
        assert!(s.pick(0, 0).is_none(), "vCPU 0 not initialised yet");
        s.set_initialised((1, 0), 0);
        assert!(s.is_up((1, 0)) && !s.is_up((1, 1)));
        s.set_initialised((1, 1), 0);
        s.up((1, 1), 0).unwrap();
        let a = s.pick(0, 100).unwrap();
        assert_eq!(s.runstate((a.domid, a.id), 300).unwrap().time[0], 200);
        s.down((1, 1), 400);
        assert!(!s.is_up((1, 1)));
        let rs = s.runstate((1, 1), 500).unwrap();
        assert_eq!(rs.state, RUNSTATE_OFFLINE);
        assert_eq!(rs.time[RUNSTATE_RUNNABLE as usize], 400);
    }
}
