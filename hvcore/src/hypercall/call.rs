//! [`Call`]: one hypercall in progress, and what a permit unlocks.
//!
//! This module is a sibling of the handlers, so they see only its public
//! API: the hypervisor, the calling vCPU and its hardware state are private
//! fields. Without a permit a handler has the caller's own memory (the copy
//! helpers, -EFAULT on a bad address), label snapshots for checks
//! ([`Call::target`], [`Call::snapshots_from`]), the gate
//! ([`Call::check`], [`Call::check_req`]), the clock, CPU kicks and the
//! rate-limited log of unknown operations. Everything else is reached by
//! presenting a [`Permit`] of the right operation type (the traits of
//! [`unlocks`](super::unlocks)):
//!
//! - [`Call::own`] (self-only operations, [`OnSelf`]): [`Own`], the caller's
//!   own domain and vCPUs;
//! - [`Call::resolve`] (operations on a target, [`OnTarget`]):
//!   [`Resolved<O>`], the domain that was checked, with only the hypervisor
//!   operations `O` is for (`Resolved<DomctlDestroyDomain>::destroy`, ...);
//! - [`Call::global`]: [`Global<O>`], the hypervisor-wide services `O` is for
//!   (console ring, command line, physinfo, domain creation, ...);
//! - [`Call::flask`] (security-server operations, [`OnSecurity`]): the
//!   security server.
//!
//! So a handler whose check line is deleted no longer compiles: it has no
//! permit to present.

use super::HcResult;
use super::sysctl::LivepatchPermit;
use super::unlocks::*;
use crate::domain::{DomSnap, Domain, GuestVcpu};
use crate::gate::table::*;
use crate::gate::{Op, Permit, Request};
use crate::guestmem::{Fault, GuestView, PagingState, ReadVecError};
use crate::hv::{Hv, LivepatchHook, NewDomain};
use crate::p2m::PhysView;
use crate::sched::Block;
use crate::vcpu::Vcpu;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::marker::PhantomData;
use warden_abi::domctl::GetDomainInfo;
use warden_abi::vcpu::{RunstateInfo, VcpuTimeInfo};
use warden_abi::{DOMID_SELF, DomId, Pod, errno};
use xsm::Flask;

/// One hypercall in progress.
pub struct Call<'a> {
    hv: &'a Hv,
    pub cpu: u32,
    /// The calling vCPU.
    vcpu: &'a Arc<GuestVcpu>,
    /// Its hardware state (locked by the run loop).
    hw: &'a mut dyn Vcpu,
    /// The caller as the gate sees it.
    pub caller: DomSnap,
    paging: PagingState,
    /// Set by handlers after which the run loop must reconsider what runs.
    pub resched: bool,
    /// The handler set the arguments the hypercall is executed again with.
    continued: bool,
    /// Inside a multicall: the arguments of the entry being run (what
    /// [`Call::continue_with`] changes for it), else None.
    entry: Option<[u64; 5]>,
}

impl<'a> Call<'a> {
    /// The call `vcpu` (of the domain `caller` describes) just made.
    pub(super) fn new(
        hv: &'a Hv,
        cpu: u32,
        vcpu: &'a Arc<GuestVcpu>,
        hw: &'a mut dyn Vcpu,
        caller: DomSnap,
        paging: PagingState,
    ) -> Call<'a> {
        Call {
            hv,
            cpu,
            vcpu,
            hw,
            caller,
            paging,
            resched: false,
            continued: false,
            entry: None,
        }
    }

    /// Stop here and have the guest execute this hypercall again with its
    /// first `a.len()` (at most 5) arguments replaced by `a`, the others
    /// unchanged (Xen's `hypercall_create_continuation`): bounded work per
    /// call. Returns [`ERESTART`](super::ERESTART) for the handler to return.
    ///
    /// Inside a multicall the arguments changed are the running entry's
    /// (Xen's `hypercall_create_continuation` with `MCSF_in_multicall`): the
    /// multicall writes them back to the entry and continues from it.
    pub fn continue_with(&mut self, a: &[u64]) -> i32 {
        let n = a.len().min(5);
        if let Some(entry) = self.entry.as_mut() {
            entry[..n].copy_from_slice(&a[..n]);
        } else {
            let mut args = self.hw.hypercall_args();
            args.a[..n].copy_from_slice(&a[..n]);
            self.hw.continue_hypercall(&args);
        }
        self.continued = true;
        super::ERESTART
    }

    /// Whether this call runs as an entry of a multicall.
    pub(super) fn in_multicall(&self) -> bool {
        self.entry.is_some()
    }

    /// Start running a multicall entry with arguments `args`.
    pub(super) fn begin_entry(&mut self, args: [u64; 5]) {
        self.entry = Some(args);
        self.continued = false;
    }

    /// The entry is done: its arguments, as a continuation left them.
    pub(super) fn end_entry(&mut self) -> [u64; 5] {
        self.continued = false;
        self.entry.take().unwrap_or_default()
    }

    /// Read the caller's label snapshot again (a multicall entry may have
    /// relabelled it; the next entry is checked with its label then, as
    /// Xen reads the domain's label at every check). ESRCH if the caller's
    /// domain is gone.
    pub(super) fn refresh_caller(&mut self) -> Result<(), i32> {
        self.caller = self
            .hv
            .domains
            .snapshot(self.vcpu.domid)
            .ok_or(errno::ESRCH)?;
        Ok(())
    }

    /// Whether [`Call::continue_with`] set the arguments of the next execution.
    pub(super) fn continued(&self) -> bool {
        self.continued
    }

    // -------------------------------------------------- without a permit

    /// Run `f` on the caller's address space.
    pub(super) fn guest<R>(&self, f: impl FnOnce(&GuestView<'_>) -> R) -> Result<R, i32> {
        let m = self.vcpu.domain.mem.read();
        let p2m = m.p2m.as_ref().ok_or(errno::ESRCH)?;
        let pv = PhysView {
            p2m,
            mem: self.hv.platform.mem(),
        };
        Ok(f(&GuestView::new(&pv, self.paging)))
    }

    /// Read a structure from the caller's memory.
    pub fn read<T: Pod>(&self, va: u64) -> Result<T, i32> {
        self.guest(|g| g.read_pod::<T>(va))?
            .map_err(|_| errno::EFAULT)
    }

    /// Write a structure to the caller's memory.
    pub fn write<T: Pod>(&self, va: u64, v: &T) -> Result<(), i32> {
        self.guest(|g| g.write_pod(va, v))?
            .map_err(|_| errno::EFAULT)
    }

    /// Element `i` of an array of `T` in the caller's memory.
    pub fn read_elem<T: Pod>(&self, va: u64, i: u64) -> Result<T, i32> {
        self.guest(|g| g.read_elem::<T>(va, i))?
            .map_err(|_| errno::EFAULT)
    }

    /// Write element `i` of an array of `T` in the caller's memory.
    pub fn write_elem<T: Pod>(&self, va: u64, i: u64, v: &T) -> Result<(), i32> {
        self.guest(|g| g.write_elem(va, i, v))?
            .map_err(|_| errno::EFAULT)
    }

    /// Write bytes to the caller's memory.
    pub fn write_bytes(&self, va: u64, data: &[u8]) -> Result<(), i32> {
        self.guest(|g| g.write(va, data))?
            .map_err(|_| errno::EFAULT)
    }

    /// Read `len` bytes (at most `max`, else `too_large`) from the caller's memory.
    pub fn read_bytes(
        &self,
        va: u64,
        len: usize,
        max: usize,
        too_large: i32,
    ) -> Result<Vec<u8>, i32> {
        self.guest(|g| g.read_vec(va, len, max))?
            .map_err(|e| match e {
                ReadVecError::TooLarge => too_large,
                ReadVecError::NoMemory => errno::ENOMEM,
                ReadVecError::Fault(_) => errno::EFAULT,
            })
    }

    /// Whether the caller is the hardware domain (Xen's
    /// `is_hardware_domain(current->domain)`, for answers that differ).
    pub fn caller_is_hardware_domain(&self) -> bool {
        self.vcpu.domain.privileged
    }

    /// Snapshot of domain `id` (DOMID_SELF: the caller) for a check.
    pub fn target(&self, id: DomId) -> Result<DomSnap, i32> {
        if id == DOMID_SELF || id == self.caller.id {
            return Ok(self.caller);
        }
        self.hv.domains.snapshot(id).ok_or(errno::ESRCH)
    }

    /// Snapshots of the domains from id `from` on, for checks (lock-free).
    pub fn snapshots_from(&self, from: DomId) -> impl Iterator<Item = DomSnap> + 'a {
        self.hv.domains.snapshots_from(from)
    }

    /// Whether FLASK decides (false with `flask=disabled`): what a label
    /// argument means before it is checked.
    pub fn flask_enabled(&self) -> bool {
        self.hv.gate.flask().is_some()
    }

    /// Run operation `O`'s checks with no target.
    pub fn check<O: Op>(&self) -> Result<Permit<O>, i32> {
        self.check_req::<O>(None, None)
    }

    /// Run operation `O`'s checks against `target` (and a label argument).
    pub fn check_req<O: Op>(
        &self,
        target: Option<DomSnap>,
        new_sid: Option<u32>,
    ) -> Result<Permit<O>, i32> {
        self.check_full::<O>(target, new_sid, None)
    }

    /// Run operation `O`'s checks against `target` and the event-channel labels `chan`.
    pub fn check_chan<O: Op>(
        &self,
        target: Option<DomSnap>,
        chan: Option<crate::gate::ChanSids>,
    ) -> Result<Permit<O>, i32> {
        self.check_full::<O>(target, None, chan)
    }

    fn check_full<O: Op>(
        &self,
        target: Option<DomSnap>,
        new_sid: Option<u32>,
        chan: Option<crate::gate::ChanSids>,
    ) -> Result<Permit<O>, i32> {
        self.hv.gate.check::<O>(&Request {
            caller: &self.caller,
            target,
            new_sid,
            chan,
            cpu: self.cpu,
            cache: Some(&self.vcpu.decisions),
        })
    }

    /// The caller's address space (what guest virtual addresses it passes
    /// mean).
    pub fn paging_state(&self) -> PagingState {
        self.paging
    }

    /// Nanoseconds since boot (not state: a guest reads the TSC itself).
    pub fn now_ns(&self) -> u64 {
        self.hv.platform.now_ns()
    }

    /// Force `cpu` out of guest mode (what scheduler operations return; a
    /// spurious kick only costs an exit).
    pub fn kick(&self, cpu: u32) {
        self.hv.platform.kick(cpu)
    }

    /// The label Xen 4.17 gives a new event channel of a domain labelled
    /// `owner` towards one it sees as `peer`: type_transition(owner, peer):event
    /// (0 with FLASK disabled).
    pub fn channel_label(&self, owner: u32, peer: u32) -> u32 {
        self.hv.channel_label(owner, peer)
    }

    /// Snapshot of port `port` of the domain `d` describes, for a check
    /// (EINVAL: not a valid port; ESRCH: no such domain).
    pub fn port_snapshot(
        &self,
        d: &DomSnap,
        port: u32,
    ) -> Result<crate::xen::evtchn::Snapshot, i32> {
        let dom = if d.id == self.caller.id {
            self.vcpu.domain.clone()
        } else {
            self.hv.domains.get(d.id).ok_or(errno::ESRCH)?
        };
        if dom.generation != d.generation {
            return Err(errno::ESRCH);
        }
        dom.evtchn.snapshot(port).ok_or(errno::EINVAL)
    }

    /// Log an unknown sub-operation (rate limited) and return ENOSYS.
    pub fn unknown(&self, what: &str, n: u64) -> HcResult {
        self.hv
            .log_unknown(self.caller.id, format_args!("{what} {n}"), errno::ENOSYS);
        Err(errno::ENOSYS)
    }

    /// A sub-operation Warden does not implement: `err`, the errno Xen
    /// 4.17 gives the caller when the feature is absent, and one log line
    /// (`what`) the first time each (`hypercall`, `n`) is seen.
    pub fn absent(
        &self,
        hypercall: &'static str,
        n: u32,
        err: i32,
        what: core::fmt::Arguments<'_>,
    ) -> HcResult {
        self.hv.log_absent_once(
            self.caller.id,
            hypercall,
            n,
            format_args!("{what}: {}", errno::name(err)),
        );
        Err(err)
    }

    /// A sub-operation Xen 4.17's FLASK hook does not know (Xen's
    /// `avc_unknown_permission`): -EPERM when FLASK enforces a policy that
    /// does not allow unknown permissions, else -ENOSYS (Xen then reaches
    /// its `default:` case); with the dummy module (XSM_PRIV) -EPERM for a
    /// domain other than the control domain. Logged, rate-limited, as other
    /// unknown operations.
    pub fn unknown_to_xsm(&self, hypercall: &'static str, n: u32) -> HcResult {
        let deny = match self.hv.gate.flask() {
            Some(f) => f.enforcing() && !f.allow_unknown(),
            None => !self.vcpu.domain.privileged,
        };
        let err = if deny { errno::EPERM } else { errno::ENOSYS };
        // Rate-limited, not once per number: any guest can try them all.
        self.hv.log_unknown(
            self.caller.id,
            format_args!(
                "{hypercall} {n} (unknown to Xen 4.17's FLASK hook: {} as Xen)",
                if deny { "denied" } else { "allowed" },
            ),
            err,
        );
        Err(err)
    }

    // -------------------------------------------------- with a permit

    /// The caller's own domain and vCPUs, for a self-only operation.
    pub fn own<O: OnSelf>(&self, _: &Permit<O>) -> Own<'a> {
        Own {
            hv: self.hv,
            vcpu: self.vcpu,
        }
    }

    /// The domain a permit was checked for, if it is still that domain
    /// (ESRCH if it was destroyed, or its slot reused or relabelled since).
    pub fn resolve<O: OnTarget>(&self, p: &Permit<O>) -> Result<Resolved<'a, O>, i32> {
        let t = *p.target().ok_or(errno::ESRCH)?;
        let dom = if t.id == self.caller.id && t.generation == self.vcpu.domain.generation {
            self.vcpu.domain.clone()
        } else {
            self.hv.domains.resolve(&t)?
        };
        Ok(Resolved {
            hv: self.hv,
            dom,
            sid: t.sid,
            _op: PhantomData,
        })
    }

    /// The event channels of the domain a channel-label permit was checked
    /// for (its target, else the caller), if it is still that domain.
    pub fn channels<O: OnChannel + OwnChannels>(&self, p: &Permit<O>) -> Result<Channels<'a>, i32> {
        let dom = match p.target() {
            Some(t) if t.id != self.caller.id || t.generation != self.vcpu.domain.generation => {
                self.hv.domains.resolve(t)?
            }
            _ => self.vcpu.domain.clone(),
        };
        Ok(Channels {
            hv: self.hv,
            dom,
            caller: self.vcpu.domain.clone(),
        })
    }

    /// The caller's own event channels, for a self-only event-channel operation.
    pub fn own_channels<O: OnSelf + OwnChannels>(&self, _: &Permit<O>) -> Channels<'a> {
        Channels {
            hv: self.hv,
            dom: self.vcpu.domain.clone(),
            caller: self.vcpu.domain.clone(),
        }
    }

    /// The hypervisor-wide services operation `O` is for.
    pub fn global<O: Op>(&self, _: &Permit<O>) -> Global<'a, O> {
        Global {
            hv: self.hv,
            vcpu: self.vcpu,
            _op: PhantomData,
        }
    }

    /// The security server (ENOSYS with `flask=disabled`, where the checks
    /// of these operations already refuse with ENOSYS).
    pub fn flask<O: OnSecurity>(&self, _: &Permit<O>) -> Result<&'static Flask, i32> {
        self.hv.gate.flask().ok_or(errno::ENOSYS)
    }

    /// The host's TSC frequency in kHz (a constant of the machine).
    pub fn cpu_khz(&self) -> u32 {
        self.hv.platform.cpu_khz()
    }

    /// The calling vCPU's index in its domain.
    pub fn vcpu_id(&self) -> u32 {
        self.vcpu.id
    }

    /// The live-patch operations, if this build registered them.
    pub fn livepatch(&self, _: &LivepatchPermit) -> Option<LivepatchHook> {
        self.hv.livepatch()
    }

    /// The safe-point controls, for the live-patch operations.
    pub fn safe_points(&self, _: &LivepatchPermit) -> SafePoints<'a> {
        SafePoints { hv: self.hv }
    }
}

/// The caller's own domain and vCPUs (from a self-only operation's permit).
/// Every scheduler operation here is keyed with the caller's domain id.
#[derive(Clone, Copy)]
pub struct Own<'a> {
    hv: &'a Hv,
    vcpu: &'a Arc<GuestVcpu>,
}

impl<'a> Own<'a> {
    /// The calling domain.
    pub fn dom(&self) -> &'a Arc<Domain> {
        &self.vcpu.domain
    }

    /// The calling vCPU.
    pub fn vcpu(&self) -> &'a Arc<GuestVcpu> {
        self.vcpu
    }

    /// vCPU `v`'s scheduler key in the caller's domain.
    fn key(&self, v: &GuestVcpu) -> (DomId, u32) {
        (self.vcpu.domid, v.id)
    }

    /// Give up the rest of the calling vCPU's slice.
    pub fn yield_now(&self) {
        self.hv.sched.yield_now(self.key(self.vcpu));
    }

    /// Block the calling vCPU.
    pub fn block(&self, how: Block, pending: bool, deadline: Option<u64>, now: u64) {
        self.hv
            .sched
            .block(self.key(self.vcpu), how, pending, deadline, now);
    }

    /// Clear the calling vCPU's `evtchn_upcall_mask`.
    pub fn unmask_events(&self) {
        self.hv.unmask_events(self.vcpu);
    }

    /// Is the calling vCPU's `evtchn_upcall_pending` set?
    pub fn upcall_pending(&self) -> bool {
        self.hv.guest_upcall_pending(self.vcpu)
    }

    /// The calling vCPU enters SCHEDOP_poll on ports.
    pub fn start_poll(&self) {
        self.dom().evtchn.start_poll(self.vcpu.id);
    }

    /// The calling vCPU leaves SCHEDOP_poll.
    pub fn end_poll(&self) {
        self.dom().evtchn.end_poll(self.vcpu.id);
    }

    /// Whether port `port` of the caller's domain is pending.
    pub fn port_pending(&self, port: u32) -> bool {
        self.dom()
            .evtchn
            .port_pending(self.dom(), self.hv.platform.mem(), port)
    }

    /// Shut the caller's domain down.
    pub fn shutdown(&self, reason: u32) {
        self.hv.shutdown(self.dom(), reason);
    }

    /// Whether the caller's vCPU `v` has its initial state.
    pub fn initialised(&self, v: &GuestVcpu) -> bool {
        self.hv.sched.initialised(self.key(v))
    }

    /// Mark the caller's vCPU `v` initialised; the CPU to kick.
    pub fn set_initialised(&self, v: &GuestVcpu, now: u64) -> Option<u32> {
        self.hv.sched.set_initialised(self.key(v), now)
    }

    /// Bring the caller's vCPU `v` up; the CPU to kick.
    pub fn up(&self, v: &GuestVcpu, now: u64) -> Result<Option<u32>, crate::sched::NotApplicable> {
        self.hv.sched.up(self.key(v), now)
    }

    /// Take the caller's vCPU `v` down; the CPU to kick.
    pub fn down(&self, v: &GuestVcpu, now: u64) -> Option<u32> {
        self.hv.sched.down(self.key(v), now)
    }

    /// Whether the caller's vCPU `v` is up.
    pub fn is_up(&self, v: &GuestVcpu) -> bool {
        self.hv.sched.is_up(self.key(v))
    }

    /// Runstate of the caller's vCPU `v`.
    pub fn runstate(&self, v: &GuestVcpu, now: u64) -> Option<RunstateInfo> {
        self.hv.sched.runstate(self.key(v), now)
    }

    /// Set or stop the single-shot timer of the caller's vCPU `v`.
    pub fn set_timer(&self, v: &GuestVcpu, deadline: Option<u64>) {
        self.hv.sched.set_timer(self.key(v), deadline);
    }

    /// A vcpu_info's time fields.
    pub fn time_info(&self) -> VcpuTimeInfo {
        self.hv.time_info()
    }

    /// Set (`period` > 0) or stop the periodic timer of the caller's vCPU
    /// `v`; a period already over fires VIRQ_TIMER at once.
    pub fn set_periodic_timer(&self, v: &GuestVcpu, period: u64, now: u64) {
        if self.hv.sched.set_periodic(self.key(v), period, now) {
            self.timer_event(v);
        }
    }

    /// Deliver a timer event (VIRQ_TIMER) to the caller's vCPU `v` now.
    pub fn timer_event(&self, v: &GuestVcpu) {
        self.hv.send_vcpu_virq(v, warden_abi::xen::xen::VIRQ_TIMER);
    }

    /// Register (Some) or forget the runstate area of the caller's vCPU
    /// `v` at guest virtual `va` (in the address space `paging`), and write
    /// it now.
    pub fn register_runstate_area(&self, v: &GuestVcpu, va: Option<u64>, paging: PagingState) {
        v.clock.areas().runstate_va = va;
        self.hv.publish_runstate(v, paging);
    }

    /// Register (Some) or forget the secondary time area of the caller's
    /// vCPU `v`; it is written before `v` next enters the guest.
    pub fn register_time_area(&self, v: &GuestVcpu, va: Option<u64>) {
        v.clock.areas().time_va = va;
        v.clock.mark_stale();
    }

    /// Enable or disable assist `kind` of the caller's domain.
    pub fn set_vm_assist(&self, kind: u32, on: bool) {
        let bit = 1u64 << (kind & 63);
        let a = &self.dom().hvm.vm_assist;
        if on {
            a.fetch_or(bit, core::sync::atomic::Ordering::Relaxed);
        } else {
            a.fetch_and(!bit, core::sync::atomic::Ordering::Relaxed);
        }
    }

    /// The caller's memory map (`XENMEM_memory_map`).
    pub fn memory_map(&self) -> Vec<warden_abi::memory::E820Entry> {
        self.dom().hvm.e820.lock().clone()
    }

    /// Move the caller's vCPU `v`'s vcpu_info to guest-physical `gpa`
    /// (VCPUOP_register_vcpu_info; EINVAL if already moved or `gpa` is not RAM).
    pub fn register_vcpu_info(&self, v: &GuestVcpu, gpa: u64) -> Result<(), i32> {
        self.hv.register_vcpu_info(v, gpa, self.hv.time_info())
    }

    /// Copy `data` into the caller's memory at guest-physical `gpa`.
    pub fn write_phys(&self, gpa: u64, data: &[u8]) -> Result<(), Fault> {
        self.hv.write_phys(self.dom(), gpa, data)
    }
}

/// Event channels of one domain, from an event-channel permit (see
/// [`Call::channels`], [`Call::own_channels`]).
pub struct Channels<'a> {
    hv: &'a Hv,
    dom: Arc<Domain>,
    caller: Arc<Domain>,
}

impl Channels<'_> {
    /// EVTCHNOP_alloc_unbound: a port for `remote`, labelled `sid`.
    pub fn alloc_unbound(&self, remote: DomId, sid: u32) -> Result<u32, i32> {
        self.hv.evtchn_alloc_unbound(&self.dom, remote, sid)
    }

    /// EVTCHNOP_bind_interdomain to `r`'s `rport` as `checked` saw it.
    pub fn bind_interdomain(
        &self,
        r: &DomSnap,
        rport: u32,
        checked: &crate::xen::evtchn::Snapshot,
        sid: u32,
    ) -> Result<u32, i32> {
        let rd = if r.id == self.caller.id {
            self.caller.clone()
        } else {
            self.hv.domains.resolve(r)?
        };
        self.hv
            .evtchn_bind_interdomain(&self.caller, &rd, rport, checked, sid)
    }

    /// EVTCHNOP_send on `port` as `checked` saw it.
    pub fn send(&self, port: u32, checked: &crate::xen::evtchn::Snapshot) -> Result<(), i32> {
        self.hv.evtchn_send(&self.dom, port, checked)
    }

    pub fn bind_virq(&self, virq: u32, vcpu: u32) -> Result<u32, i32> {
        self.hv.evtchn_bind_virq(&self.dom, virq, vcpu)
    }

    pub fn bind_ipi(&self, vcpu: u32) -> Result<u32, i32> {
        self.hv.evtchn_bind_ipi(&self.dom, vcpu)
    }

    pub fn bind_vcpu(&self, port: u32, vcpu: u32) -> Result<(), i32> {
        self.hv.evtchn_bind_vcpu(&self.dom, port, vcpu)
    }

    pub fn close(&self, port: u32) -> Result<(), i32> {
        self.hv.evtchn_close(&self.dom, port)
    }

    pub fn unmask(&self, port: u32) -> Result<(), i32> {
        self.hv.evtchn_unmask(&self.dom, port)
    }

    /// Whether `port` is a valid port of the domain.
    pub fn port_valid(&self, port: u32) -> bool {
        self.dom.evtchn.chan(port).is_some()
    }

    /// Whether the domain has vCPU `v`.
    pub fn has_vcpu(&self, v: u32) -> bool {
        v < self.dom.nr_vcpus()
    }

    /// Whether guest frame `gfn` of the domain is populated.
    pub fn gfn_present(&self, gfn: u64) -> bool {
        let m = self.dom.mem.read();
        gfn < crate::p2m::GFN_LIMIT
            && m.p2m
                .as_ref()
                .is_some_and(|p| p.lookup(self.hv.platform.mem(), gfn).is_some())
    }
}

/// The domain operation `O`'s permit was checked for, with the hypervisor
/// operations `O` is for. Dereferences to the [`Domain`].
pub struct Resolved<'a, O> {
    hv: &'a Hv,
    dom: Arc<Domain>,
    sid: u32,
    _op: PhantomData<fn() -> O>,
}

impl<O> core::ops::Deref for Resolved<'_, O> {
    type Target = Domain;
    fn deref(&self) -> &Domain {
        &self.dom
    }
}

impl<'a, O: HvmParams> Resolved<'a, O> {
    /// The target's HVM parameters.
    pub fn params(&self) -> &crate::xen::params::HvmParams {
        &self.dom.hvm.params
    }
}

impl<'a, O: SetsMemoryMap> Resolved<'a, O> {
    /// Replace the target's memory map.
    pub fn set_memory_map(&self, map: Vec<warden_abi::memory::E820Entry>) {
        *self.dom.hvm.e820.lock() = map;
    }
}

impl<'a, O> Resolved<'a, O> {
    /// The same domain with the operations of `S` (only for the conversions
    /// below, each from the operations whose permits unlock `S`).
    fn narrow<S>(self) -> Resolved<'a, S> {
        Resolved {
            hv: self.hv,
            dom: self.dom,
            sid: self.sid,
            _op: PhantomData,
        }
    }

    /// The domain.
    pub fn domain(&self) -> &Arc<Domain> {
        &self.dom
    }

    /// The domain, for reading (without the operations `O` unlocks).
    pub fn into_domain(self) -> Arc<Domain> {
        self.dom
    }

    /// Its label as checked.
    pub fn sid(&self) -> u32 {
        self.sid
    }
}

impl Resolved<'_, EvtchnReset> {
    /// Close every event channel of the domain (Xen: another domain's only
    /// while it is paused by its controller, else EINVAL).
    pub fn reset_channels(&self, own: bool) -> Result<(), i32> {
        let paused = self
            .hv
            .sched
            .domain_state(self.dom.id, self.hv.platform.now_ns())
            .is_some_and(|s| s.pause > 0);
        if !(own || paused) {
            return Err(errno::EINVAL);
        }
        self.hv.evtchn_reset(&self.dom);
        Ok(())
    }
}

impl<O: MapsPhysmap> Resolved<'_, O> {
    /// Map the domain's shared_info page at `gpfn` (XENMAPSPACE_shared_info).
    pub fn map_shared_info(&self, gpfn: u64) -> Result<(), i32> {
        self.hv.map_shared_info(&self.dom, gpfn)
    }
}

impl Resolved<'_, HvmSetParam> {
    /// Set HVM_PARAM_CALLBACK_IRQ (how upcalls without a per-vCPU vector
    /// are delivered).
    pub fn set_callback_via(&self, value: u64) {
        self.dom.evtchn.set_callback_via(value);
        // A vCPU whose upcall is already pending gets it on its next entry.
        for v in self.dom.vcpus.read().iter() {
            if self.hv.upcall_pending(v) {
                self.hv.notify_upcall(v);
            }
        }
    }
}

impl Resolved<'_, SchedRemoteShutdown> {
    /// Shut the domain down.
    pub fn shutdown(&self, reason: u32) {
        self.hv.shutdown(&self.dom, reason);
    }
}

/// What populate_physmap and decrease_reservation may do to their target
/// (both check mmu:adjust), so one loop serves both.
#[derive(Debug)]
pub enum AdjustMemory {}

impl<'a, O: AdjustsMemory> Resolved<'a, O> {
    /// The memory operations both permits unlock.
    pub fn adjust(self) -> Resolved<'a, AdjustMemory> {
        self.narrow()
    }
}

impl Resolved<'_, AdjustMemory> {
    /// Add a zeroed page at `gfn`.
    pub fn populate(&self, gfn: u64) -> Result<(), i32> {
        self.hv.populate(&self.dom, gfn)
    }

    /// Remove the pages at `gfns` (all or none).
    pub fn decrease(&self, gfns: &[u64]) -> Result<(), i32> {
        self.hv.decrease(&self.dom, gfns)
    }
}

impl<O: Destroys> Resolved<'_, O> {
    /// Destroy the domain; the pages freed.
    pub fn destroy(&self) -> u64 {
        self.hv.destroy(&self.dom)
    }

    /// Destroy the domain, scrubbing at most `budget` pages: the pages freed
    /// once none is left, None while some remain (call again).
    pub fn destroy_some(&self, budget: u64) -> Option<u64> {
        self.hv.destroy_some(&self.dom, budget)
    }
}

impl<O: Pauses> Resolved<'_, O> {
    /// Pause the domain (never the caller's own: see [`Hv::pause`]); gives
    /// up with ERESTART (pause undone) if the caller's own domain is stopped
    /// while it waits.
    pub fn pause(&self, c: &Call<'_>) -> Result<(), i32> {
        self.hv.pause(&self.dom, &c.vcpu.domain)
    }
}

impl<O: Unpauses> Resolved<'_, O> {
    /// Undo one pause; EINVAL if it was not paused.
    pub fn unpause(&self) -> Result<(), i32> {
        self.hv.unpause(&self.dom)
    }
}

impl<O: ReadsDomainInfo> Resolved<'_, O> {
    /// getdomaininfo, with the label that was checked.
    pub fn domain_info(&self) -> GetDomainInfo {
        self.hv.domain_info(&self.dom, self.sid)
    }
}

impl<O: NamesVcpu> Resolved<'_, O> {
    /// The domain's vCPU `vcpu`, as Xen's vCPU domctls find it: EINVAL
    /// beyond the domain's `max_vcpus`, ESRCH for one not allocated yet.
    pub fn vcpu(&self, vcpu: u32) -> Result<Arc<GuestVcpu>, i32> {
        let max = match self.dom.config.max_vcpus {
            0 => self.dom.nr_vcpus(),
            n => n,
        };
        if vcpu >= max {
            return Err(errno::EINVAL);
        }
        self.dom.vcpu(vcpu).ok_or(errno::ESRCH)
    }

    /// The CPUs a vCPU may run on: every CPU (the pool's online ones).
    /// Warden does not pin vCPUs: its hard and soft affinities are these.
    pub fn online_cpus(&self) -> u32 {
        self.hv.platform.nr_cpus()
    }
}

impl Resolved<'_, DomctlGetVcpuInfo> {
    /// vCPU `vcpu`'s scheduling state (Xen's XEN_DOMCTL_getvcpuinfo).
    pub fn vcpu_info(&self, vcpu: u32, now: u64) -> Result<crate::sched::VcpuSched, i32> {
        let v = self.vcpu(vcpu)?;
        self.hv
            .sched
            .vcpu_info((v.domid, v.id), now)
            .ok_or(errno::ESRCH)
    }
}

impl Resolved<'_, DomctlSchedulerOpGet> {
    /// The domain's scheduling weight.
    pub fn sched_weight(&self) -> u32 {
        self.hv
            .sched
            .weight(self.dom.id)
            .unwrap_or(crate::sched::DEFAULT_WEIGHT)
    }
}

impl Resolved<'_, DomctlSchedulerOpPut> {
    /// Set the domain's scheduling weight.
    pub fn set_sched_weight(&self, weight: u32) {
        self.hv.sched.set_weight(self.dom.id, weight);
    }

    /// The domain's vCPUs (credit2 caps are per cent of one CPU per vCPU).
    pub fn nr_vcpus(&self) -> u32 {
        self.dom.nr_vcpus()
    }
}

impl Resolved<'_, DomctlMaxMem> {
    /// Set the memory limit.
    pub fn set_max_pages(&self, pages: u64) {
        self.hv.set_max_pages(&self.dom, pages);
    }
}

impl<O: SetsVcpus> Resolved<'_, O> {
    /// Give the domain its vCPUs (once).
    pub fn set_max_vcpus(&self, n: u32) -> Result<(), i32> {
        self.hv.set_max_vcpus(&self.dom, n)
    }
}

impl Resolved<'_, DomctlSetHvmContext> {
    /// Apply a checked HVM context image (Xen's `hvm_load`), the domain
    /// paused: each record to its vCPU; then every vCPU without a CPU
    /// record goes down, and each with one is initialised and up.
    pub fn load_hvm_context(&self, img: &crate::xen::hvmctx::Image) {
        use crate::xen::hvmctx::Record;
        let hv = self.hv;
        let now = hv.platform.now_ns();
        let clk = hv.lapic_clock();
        let vcpus = self.dom.vcpus.read().clone();
        for v in &vcpus {
            let mut with_cpu = false;
            for r in img.records.iter().filter(|r| r.vcpu() == v.id) {
                match r {
                    Record::Cpu(_, c) => {
                        v.hw.lock().set_cpu_record(c);
                        with_cpu = true;
                    }
                    Record::Mtrr(_, m) => {
                        v.hw.lock().set_pat(m.msr_pat_cr);
                        *v.mtrr.lock() = **m;
                    }
                    Record::Lapic(_, l) => {
                        let mut st = v.lapic.lock();
                        st.apic.load_hidden(l, &clk);
                        hv.sync_lapic_timer(v, &mut st, true);
                    }
                    Record::LapicRegs(_, regs) => {
                        let mut st = v.lapic.lock();
                        st.apic.load_regs(regs, &clk);
                        hv.sync_lapic_timer(v, &mut st, true);
                    }
                }
            }
            let k = (self.dom.id, v.id);
            let kick = if with_cpu {
                hv.sched.set_initialised(k, now);
                hv.sched.up(k, now).ok().flatten()
            } else {
                hv.sched.down(k, now)
            };
            if let Some(cpu) = kick {
                hv.platform.kick(cpu);
            }
        }
    }
}

impl Resolved<'_, DomctlGetHvmContext> {
    /// The domain's HVM context image (Xen's `hvm_save`), the domain
    /// paused: the header, then per vCPU its CPU record (only if it is up,
    /// as Xen), LAPIC, LAPIC_REGS and MTRR records, then the end marker.
    pub fn save_hvm_context(&self) -> Vec<u8> {
        use warden_abi::xen::hvm_save::{self as hs, SaveHeader};
        let hv = self.hv;
        let clk = hv.lapic_clock();
        let mut w = crate::xen::hvmctx::Writer::default();
        w.push(
            hs::HEADER,
            0,
            &SaveHeader {
                magic: hs::FILE_MAGIC,
                version: hs::FILE_VERSION,
                changeset: 0,
                cpuid: hv.platform.cpuid_signature(),
                gtsc_khz: hv.platform.cpu_khz(),
            },
        );
        let vcpus = self.dom.vcpus.read().clone();
        for v in &vcpus {
            let k = (self.dom.id, v.id);
            let i = v.id as u16;
            let hw = v.hw.lock();
            if hv.sched.is_up(k) && hv.sched.initialised(k) {
                w.push(hs::CPU, i, &hw.cpu_record());
            }
            {
                let st = v.lapic.lock();
                w.push(hs::LAPIC, i, &st.apic.hidden_record());
                w.push(hs::LAPIC_REGS, i, &st.apic.regs_record(&clk));
            }
            let mut m = *v.mtrr.lock();
            m.msr_pat_cr = hw.pat();
            w.push(hs::MTRR, i, &m);
        }
        w.end();
        w.0
    }
}

/// What the relabel operations may do to their target, so one path serves
/// a domain relabelling itself and one relabelling another.
#[derive(Debug)]
pub enum Relabel {}

impl<'a, O: Relabels> Resolved<'a, O> {
    /// The relabelling both permits unlock.
    pub fn relabelling(self) -> Resolved<'a, Relabel> {
        self.narrow()
    }
}

impl Resolved<'_, Relabel> {
    /// Give the domain label `sid` (and the `_self` label that goes with it),
    /// only if its slot still holds the domain and label `checked` describes
    /// (not by id: the id may have been reused).
    pub fn relabel(&self, checked: &DomSnap, sid: u32) -> Result<(), i32> {
        self.hv.relabel(checked, sid)
    }
}

/// The hypervisor-wide services operation `O` is for: each method exists
/// only for the operation types that may use it.
pub struct Global<'a, O> {
    hv: &'a Hv,
    vcpu: &'a Arc<GuestVcpu>,
    _op: PhantomData<fn() -> O>,
}

impl Global<'_, ConsoleWrite> {
    /// Write `bytes` of the caller's console output: the hardware domain's
    /// to the serial console as they are (and into the ring only with
    /// `console_to_ring`); a domU's as rate-limited `(dN) ` lines into the
    /// ring's guest region and the serial console.
    pub fn console_write(&self, bytes: &[u8]) {
        self.hv.guest_console_output(&self.vcpu.domain, bytes);
    }
}

impl Global<'_, ConsoleRead> {
    /// Take up to `buf.len()` bytes of serial console input (what arrived
    /// for the hardware domain: Xen's `serial_rx_ring`).
    pub fn serial_input(&self, buf: &mut [u8]) -> usize {
        self.hv.read_serial_input(buf)
    }
}

impl<O: SetsTime> Global<'_, O> {
    /// Set every domain's wall clock (XENPF_settime: it reads `secs`,
    /// `nsecs` at system time `system_time`).
    pub fn set_wallclock(&self, secs: u64, nsecs: u32, system_time: u64) {
        self.hv.set_wallclock(secs, nsecs, system_time)
    }
}

impl<O: ReadsPcpus> Global<'_, O> {
    /// Physical CPU `cpu`, if present.
    pub fn pcpu(&self, cpu: u32) -> Option<crate::platform::Pcpu> {
        self.hv.platform.pcpu(cpu)
    }
    /// The highest CPU number present.
    pub fn max_present_cpu(&self) -> u32 {
        self.hv.platform.max_present_cpu()
    }
}

impl Global<'_, VersionGetFeatures> {
    /// Whether the caller is the hardware domain (`XENFEAT_dom0`).
    pub fn caller_is_hardware_domain(&self) -> bool {
        self.vcpu.domain.privileged
    }
}

impl Global<'_, VersionGuestHandle> {
    /// The caller's domain handle.
    pub fn caller_handle(&self) -> [u8; 16] {
        *self.vcpu.domain.handle.lock()
    }
}

impl<'a> Global<'a, VersionCommandline> {
    /// The hypervisor's command line.
    pub fn cmdline(&self) -> &'a str {
        self.hv.platform.cmdline()
    }
}

impl<'a> Global<'a, VersionBuildId> {
    /// The image's GNU build-id.
    pub fn build_id(&self) -> &'a [u8] {
        self.hv.platform.build_id()
    }
}

impl<'a, O: ReadsConsoleRing> Global<'a, O> {
    /// The hypervisor's console ring, for reading.
    pub fn console_ring(&self) -> ConsoleRing<'a> {
        ConsoleRing { hv: self.hv }
    }
}

/// The hypervisor's console ring, for reading (from a readconsole permit).
#[derive(Clone, Copy)]
pub struct ConsoleRing<'a> {
    hv: &'a Hv,
}

impl ConsoleRing<'_> {
    /// Read the console ring from `from`.
    pub fn console_read(&self, from: u64, buf: &mut [u8]) -> crate::conring::ReadResult {
        self.hv.platform.console_read(from, buf)
    }
    /// Oldest readable position of the console ring.
    pub fn console_tail(&self) -> u64 {
        self.hv.platform.console_tail()
    }
    /// Position after the newest byte of the console ring.
    pub fn console_head(&self) -> u64 {
        self.hv.platform.console_head()
    }
}

impl Global<'_, SysctlReadConsoleClear> {
    /// Forget the console ring's content before position `upto` (what the
    /// clearing read returned, as Xen: nothing more).
    pub fn console_clear_to(&self, upto: u64) {
        self.hv.platform.console_clear_to(upto)
    }
}

impl<O: CountsCpus> Global<'_, O> {
    /// Number of CPUs running guests.
    pub fn nr_cpus(&self) -> u32 {
        self.hv.platform.nr_cpus()
    }
}

impl<O: SeesMaxMfn> Global<'_, O> {
    /// The highest machine frame number.
    pub fn max_mfn(&self) -> u64 {
        self.hv.platform.mem().max_mfn()
    }
}

impl Global<'_, SysctlPhysinfo> {
    /// TSC frequency in kHz.
    pub fn cpu_khz(&self) -> u32 {
        self.hv.platform.cpu_khz()
    }

    /// The boot CPU's feature words (Xen's `boot_cpu_data.x86_capability`,
    /// in its featureset order: 1d, 1c, e1d, e1c, Da1, 7b0, 7c0, e7d, ...):
    /// the host's CPUID as it is.
    pub fn host_featureset(&self) -> [u32; warden_abi::sysctl::FSCAPINTS as usize] {
        let p = self.hv.platform;
        crate::xen::cpupolicy::featureset(
            &|l, s| p.host_cpuid(l, s),
            crate::xen::cpupolicy::View::Host,
        )
    }
}

impl<O: RunsDebugKeys> Global<'_, O> {
    /// Run debug key `k` (its output goes to the console ring).
    pub fn debug_key(&self, k: u8) {
        self.hv.debug_key(k)
    }
}

impl<O: CountsDomains> Global<'_, O> {
    /// How many domains exist.
    pub fn nr_domains(&self) -> u32 {
        self.hv.domains.snapshots_from(0).count() as u32
    }
}

impl<O: SeesCpuPolicy> Global<'_, O> {
    /// A CPUID policy, serialised as Xen serialises one.
    pub fn cpu_policy(
        &self,
        view: crate::xen::cpupolicy::View,
    ) -> Vec<warden_abi::sysctl::CpuidLeaf> {
        let p = self.hv.platform;
        crate::xen::cpupolicy::serialise(&|l, s| p.host_cpuid(l, s), view)
    }

    /// A featureset, in Xen's word order.
    pub fn featureset(
        &self,
        view: crate::xen::cpupolicy::View,
    ) -> [u32; warden_abi::sysctl::FSCAPINTS as usize] {
        let p = self.hv.platform;
        crate::xen::cpupolicy::featureset(&|l, s| p.host_cpuid(l, s), view)
    }
}

impl Global<'_, SysctlPhysinfo> {
    /// Pages claimed by all domains and not yet populated.
    pub fn outstanding_claims(&self) -> u64 {
        self.hv.outstanding_claims()
    }
}

impl<O: SeesMemory> Global<'_, O> {
    /// Frames of host memory.
    pub fn total_frames(&self) -> u64 {
        self.hv.platform.mem().total_frames()
    }
    /// Free frames of host memory.
    pub fn free_frames(&self) -> u64 {
        self.hv.platform.mem().free_frames()
    }
}

impl<'a> Global<'a, DomctlCreateDomain> {
    /// Create a domain (paused, without vCPUs or memory): the new domain,
    /// with what createdomain may do to it.
    pub fn create_domain(
        &self,
        n: NewDomain,
        config: crate::domain::DomainConfig,
        limits: crate::hv::DomainLimits,
    ) -> Result<Resolved<'a, DomctlCreateDomain>, i32> {
        let sid = n.sid;
        let dom = self.hv.create_domain_with(n, config, Some(limits))?;
        Ok(Resolved {
            hv: self.hv,
            dom,
            sid,
            _op: PhantomData,
        })
    }
}

impl<'a, O: RecomputesLabels> Global<'a, O> {
    /// Before a policy load or boolean commit: until the returned guard is
    /// finished (or dropped), hypercalls compute their caller's `_self`
    /// label under the rules in force ([`Hv::caller_snapshot`]).
    pub fn labels_changing(&self) -> LabelChange<'a> {
        self.hv
            .relabels_pending
            .fetch_add(1, core::sync::atomic::Ordering::AcqRel);
        LabelChange { hv: self.hv }
    }
}

/// A policy load or boolean commit under way ([`Global::labels_changing`]).
pub struct LabelChange<'a> {
    hv: &'a Hv,
}

impl LabelChange<'_> {
    /// The new rules are in force: recompute every domain's `_self` label
    /// (never undoing a concurrent relabel).
    pub fn relabel_all(self) {
        self.hv.relabel_all();
    }
}

impl Drop for LabelChange<'_> {
    fn drop(&mut self) {
        self.hv
            .relabels_pending
            .fetch_sub(1, core::sync::atomic::Ordering::AcqRel);
    }
}

impl Global<'_, FlaskLoad> {
    /// In `flask=late` mode, true for the first policy loaded at run time
    /// (and never again).
    pub fn first_late_load(&self) -> bool {
        self.hv.mode == crate::cmdline::FlaskMode::Late
            && !self
                .hv
                .late_loaded
                .swap(true, core::sync::atomic::Ordering::AcqRel)
    }
}

/// The safe-point controls (see [`Hv::want_safe_point`]), for the
/// live-patch operations.
#[derive(Clone, Copy)]
pub struct SafePoints<'a> {
    hv: &'a Hv,
}

impl SafePoints<'_> {
    /// Ask every CPU to call the safe-point hook at its next safe point.
    pub fn want_safe_point(&self, on: bool) {
        self.hv.want_safe_point(on);
    }

    /// Whether safe-point work is wanted.
    pub fn safe_point_wanted(&self) -> bool {
        self.hv.safe_point_wanted()
    }
}

// ------------------------------------------------------------ grant tables

/// One side of a grant copy, as the handler resolved it.
#[derive(Debug, Clone, Copy)]
pub enum GrantSide {
    /// A grant reference of the caller's own table.
    OwnRef(u32),
    /// A grant reference of the permit's target.
    TargetRef(u32),
    /// A frame of the caller's.
    OwnFrame(u64),
}

impl<'a> Call<'a> {
    /// The granter of the caller's live maptrack handle `handle` as it was
    /// when mapped (for the unmap check): GNTST_bad_handle if none.
    pub fn grant_handle_granter(&self, handle: u32) -> Result<DomSnap, i16> {
        crate::xen::gnttab::mapping_of(&self.vcpu.domain, handle).map(|m| m.granter_snap)
    }

    /// map_grant_ref of the permit's target's grant into the caller's
    /// physmap. Returns the handle, or a GNTST_* status.
    pub fn grant_map<O: MapsGrants + OnTarget>(
        &self,
        p: &Permit<O>,
        op: &warden_abi::xen::grant_table::MapGrantRef,
    ) -> Result<u32, i16> {
        use warden_abi::xen::grant_table::GNTST_BAD_DOMAIN;
        let t = *p.target().ok_or(GNTST_BAD_DOMAIN)?;
        let g = self.resolve(p).map_err(|_| GNTST_BAD_DOMAIN)?;
        crate::xen::gnttab::map(
            self.hv.platform.mem(),
            &self.vcpu.domain,
            self.vcpu.id,
            g.domain(),
            t,
            op,
        )
    }

    /// unmap_grant_ref of one of the caller's handles (granter `granter`,
    /// the domain the permit was checked against).
    pub fn grant_unmap(
        &self,
        p: &Permit<GnttabUnmap>,
        op: &warden_abi::xen::grant_table::UnmapGrantRef,
    ) -> Result<(), i16> {
        use warden_abi::xen::grant_table::GNTST_BAD_HANDLE;
        let granter = p.target().ok_or(GNTST_BAD_HANDLE)?.id;
        let d = &self.vcpu.domain;
        let hv = self.hv;
        crate::xen::gnttab::unmap(hv.platform.mem(), d, self.vcpu.id, op, granter, &|| {
            crate::vcpu::shootdown(hv.platform.guest_slots(), d.id, &d.epoch, &|c| {
                hv.platform.kick(c as u32)
            })
        })
    }

    /// copy between the caller and the permit's target (or within the caller).
    pub fn grant_copy<O: CopiesGrants + OnTarget>(
        &self,
        p: &Permit<O>,
        src: GrantSide,
        dst: GrantSide,
        op: &warden_abi::xen::grant_table::Copy,
    ) -> Result<(), i16> {
        use crate::xen::gnttab::Side;
        use warden_abi::xen::grant_table::GNTST_BAD_DOMAIN;
        let own = &self.vcpu.domain;
        let needs_target =
            matches!(src, GrantSide::TargetRef(_)) || matches!(dst, GrantSide::TargetRef(_));
        let target = if needs_target {
            Some(self.resolve(p).map_err(|_| GNTST_BAD_DOMAIN)?.into_domain())
        } else {
            None
        };
        let side = |s: GrantSide| -> Result<Side<'_>, i16> {
            Ok(match s {
                GrantSide::OwnRef(r) => Side::Gref(own, r),
                GrantSide::TargetRef(r) => {
                    Side::Gref(target.as_deref().ok_or(GNTST_BAD_DOMAIN)?, r)
                }
                GrantSide::OwnFrame(g) => Side::Gmfn(g),
            })
        };
        crate::xen::gnttab::copy(self.hv.platform.mem(), own, side(src)?, side(dst)?, op)
    }

    /// copy from grant `src_ref` of the permit's target (the source) to
    /// grant `dst_ref` of `dest` (checked as the permit's label argument),
    /// neither the caller.
    pub fn grant_copy_between(
        &self,
        p: &Permit<crate::gate::table::GnttabCopyBetween>,
        dest: DomSnap,
        src_ref: u32,
        dst_ref: u32,
        op: &warden_abi::xen::grant_table::Copy,
    ) -> Result<(), i16> {
        use crate::xen::gnttab::Side;
        use warden_abi::xen::grant_table::GNTST_BAD_DOMAIN;
        let src = self.resolve(p).map_err(|_| GNTST_BAD_DOMAIN)?.into_domain();
        let dst = if dest.id == src.id && dest.generation == src.generation {
            src.clone()
        } else {
            self.hv
                .domains
                .resolve(&dest)
                .map_err(|_| GNTST_BAD_DOMAIN)?
        };
        crate::xen::gnttab::copy(
            self.hv.platform.mem(),
            &self.vcpu.domain,
            Side::Gref(&src, src_ref),
            Side::Gref(&dst, dst_ref),
            op,
        )
    }
}

impl<O: MapsPhysmap> Resolved<'_, O> {
    /// XENMAPSPACE_grant_table: frame `idx` of the domain's grant table at `gpfn`.
    pub fn map_grant_frame(&self, idx: u64, gpfn: u64) -> Result<(), i32> {
        self.hv.map_grant_frame(&self.dom, idx, gpfn)
    }
}

impl Resolved<'_, MemAddToPhysmapBatch> {
    /// XENMAPSPACE_gmfn_foreign: `foreign`'s frame at guest frame `fgfn`
    /// mapped at `gpfn` of this domain (the mapper).
    pub fn map_foreign(
        &self,
        foreign: &Resolved<'_, MemMapForeign>,
        fgfn: u64,
        gpfn: u64,
    ) -> Result<(), i32> {
        self.hv.map_foreign(&self.dom, &foreign.dom, fgfn, gpfn)
    }
}

impl Resolved<'_, DomctlSetDomainHandle> {
    /// Set the domain's handle (UUID).
    pub fn set_handle(&self, h: [u8; 16]) {
        *self.dom.handle.lock() = h;
    }
}

/// TSC modes refused: Warden cannot emulate RDTSC (said once).
static NO_VTSC: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

impl Resolved<'_, DomctlSetTscInfo> {
    /// XEN_DOMCTL_settscinfo (Xen's `tsc_set_info`): Warden's guests read
    /// the host's TSC, so the modes that mean that are accepted — the
    /// default at the host's frequency (0 = the host's) and never-emulate;
    /// an emulated TSC (always-emulate, or another frequency) is refused
    /// with EOPNOTSUPP (logged once); an unknown mode is EINVAL.
    /// `elapsed_nsec` is ignored (it offsets an emulated TSC only).
    pub fn set_tsc_mode(&self, a: &warden_abi::domctl::TscInfo, cpu_khz: u32) -> Result<(), i32> {
        use warden_abi::domctl::{
            TSC_MODE_ALWAYS_EMULATE, TSC_MODE_DEFAULT, TSC_MODE_NEVER_EMULATE,
        };
        let native = match a.tsc_mode {
            TSC_MODE_DEFAULT => a.gtsc_khz == 0 || a.gtsc_khz == cpu_khz,
            TSC_MODE_NEVER_EMULATE => true,
            TSC_MODE_ALWAYS_EMULATE => false,
            _ => return Err(errno::EINVAL),
        };
        if !native {
            if !NO_VTSC.swap(true, core::sync::atomic::Ordering::Relaxed) {
                log::warn!(
                    "settscinfo: mode {} at {} kHz needs an emulated TSC, which Warden does not have: refused (EOPNOTSUPP)",
                    a.tsc_mode,
                    a.gtsc_khz
                );
            }
            return Err(errno::EOPNOTSUPP);
        }
        *self.dom.hvm.tsc.lock() = crate::xen::TscMode {
            mode: a.tsc_mode,
            incarnation: a.incarnation.wrapping_add(1),
        };
        Ok(())
    }
}

impl Resolved<'_, DomctlGetTscInfo> {
    /// XEN_DOMCTL_gettscinfo (Xen's `tsc_get_info` for a native TSC): the
    /// mode and incarnation, the host's frequency and its TSC in
    /// nanoseconds (zeros for never-emulate).
    pub fn tsc_info(&self) -> warden_abi::domctl::TscInfo {
        let t = *self.dom.hvm.tsc.lock();
        let (elapsed_nsec, gtsc_khz) = if t.mode == warden_abi::domctl::TSC_MODE_NEVER_EMULATE {
            (0, 0)
        } else {
            let p = self.hv.platform;
            let (mul, shift) = crate::platform::time_scale(p.tsc_hz());
            (
                crate::platform::scale_delta(p.rdtsc(), mul, shift),
                p.cpu_khz(),
            )
        };
        warden_abi::domctl::TscInfo {
            tsc_mode: t.mode,
            gtsc_khz,
            incarnation: t.incarnation,
            pad: 0,
            elapsed_nsec,
        }
    }
}

impl Resolved<'_, DomctlSetNodeAffinity> {
    /// XEN_DOMCTL_setnodeaffinity (Xen's `domain_set_node_affinity`):
    /// EINVAL for a mask without an online node (Warden has node 0 only);
    /// every node means the automatic affinity.
    pub fn set_node_affinity(&self, nodes: u64) -> Result<(), i32> {
        if nodes & 1 == 0 {
            return Err(errno::EINVAL);
        }
        *self.dom.node_affinity.lock() = (nodes != u64::MAX).then_some(nodes);
        Ok(())
    }
}

impl Resolved<'_, DomctlGetNodeAffinity> {
    /// The node affinity as set, else the automatic one (node 0).
    pub fn node_affinity(&self) -> u64 {
        self.dom.node_affinity.lock().unwrap_or(1)
    }
}

impl Resolved<'_, DomctlGetPagingMempoolSize> {
    /// Frames of the domain's paging pool: its nested page tables' budget.
    pub fn paging_pool_frames(&self) -> u64 {
        self.dom
            .mem
            .read()
            .p2m
            .as_ref()
            .map_or(0, |p| p.table_limit())
    }
}

impl Resolved<'_, DomctlSetPagingMempoolSize> {
    /// Set the domain's paging pool (its nested page tables' budget) to
    /// `frames`, never below the tables in use. Warden allocates table
    /// frames as they are needed, up to the budget, rather than ahead.
    pub fn set_paging_pool(&self, frames: u64) -> Result<(), i32> {
        let mut m = self.dom.mem.write();
        m.p2m.as_mut().ok_or(errno::ESRCH)?.set_table_pool(frames);
        Ok(())
    }
}

impl Resolved<'_, MemRemoveFromPhysmap> {
    /// Take the page at `gpfn` out of the domain's physmap.
    pub fn remove_from_physmap(&self, gpfn: u64) -> Result<(), i32> {
        self.hv.remove_from_physmap(&self.dom, gpfn)
    }
}

impl Resolved<'_, MemClaimPages> {
    /// Claim memory for `pages` pages in all (0: cancel the claim).
    pub fn claim(&self, pages: u64) -> Result<(), i32> {
        self.hv.claim_pages(&self.dom, pages)
    }
}

impl Call<'_> {
    /// acquire_resource: frame `idx` of `target`'s grant table mapped at
    /// `gpfn` of the caller's physmap (a foreign mapping).
    pub fn acquire_grant_frame(
        &self,
        target: &Resolved<'_, MemAcquireResource>,
        idx: u64,
        gpfn: u64,
    ) -> Result<(), i32> {
        self.hv
            .map_grant_frame_foreign(&self.vcpu.domain, &target.dom, idx, gpfn)
    }
}

impl Resolved<'_, GnttabSetupTable> {
    /// Grow the domain's grant table to at least `n` frames (errno).
    pub fn grow_grant_table(&self, n: u32) -> Result<(), i32> {
        self.dom.gnttab.grow(self.hv.platform.mem(), n)
    }
}
