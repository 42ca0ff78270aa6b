//! The hypervisor proper: domains' lifecycle, the per-CPU run loop, exit
//! handling and event delivery. Hardware is reached only through
//! [`Platform`] and [`Vcpu`](crate::vcpu::Vcpu).
//!
//! Lifecycle of a domain: created paused (with its memory limit and label) →
//! vCPUs set (`max_vcpus`) → memory populated and vCPU state set (by the
//! boot-time builder or a privileged toolstack) → unpaused → runs → shut down
//! (by itself, by an authorised domain, or crashed by the hypervisor when it
//! faults) → destroyed: stopped, removed from the table and the scheduler,
//! every page scrubbed and returned to the frame allocator.

use crate::cmdline::FlaskMode;
use crate::domain::{DomSnap, Domain, DomainTable, GuestVcpu, VcpuEvents};
use crate::gate::Gate;
use crate::guestmem::{Fault, GuestPhys};
use crate::p2m::{MapError, P2m, PhysView};
use crate::platform::Platform;
use crate::ratelimit::AtomicRateLimit;
use crate::sched::{Block, Life, Scheduler};
use crate::vcpu::{Entry, VmExit};
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};
use warden_abi::domctl::{self as dc, DomainInfo};
use warden_abi::sched::{SHUTDOWN_CRASH, reason_name};
use warden_abi::vcpu::VcpuInfo;
use warden_abi::{DomId, Pod, errno};

/// Parameters of a new domain.
#[derive(Debug, Clone)]
pub struct NewDomain {
    /// A specific id, or any.
    pub want: Option<DomId>,
    pub privileged: bool,
    pub name: String,
    /// Its label (0 when FLASK is disabled).
    pub sid: u32,
    pub max_pages: u64,
    pub weight: u32,
    pub handle: [u8; 16],
}

/// The live-patch operations (registered by the live-patch subsystem). It
/// receives the caller, the permit for the sub-operation and its argument.
pub type LivepatchHook = fn(
    &crate::hypercall::Call<'_>,
    crate::hypercall::sysctl::LivepatchPermit,
    &mut warden_abi::sysctl::Livepatch,
) -> Result<u64, i32>;

/// Work that must run where a CPU holds no hypervisor state: at the top of
/// its run loop, outside any vCPU, hypercall or lock (registered by the
/// live-patch subsystem: its rendezvous and pending actions run there).
pub type SafePointHook = fn(&Hv, u32);

/// The hypervisor.
pub struct Hv {
    pub platform: &'static dyn Platform,
    pub gate: Gate,
    pub mode: FlaskMode,
    pub domains: DomainTable,
    pub sched: Scheduler,
    /// Lock-free: any guest can trigger the unknown-operation warning.
    unknown_log: AtomicRateLimit,
    livepatch: spin::Once<LivepatchHook>,
    safe_point: spin::Once<SafePointHook>,
    safe_point_wanted: AtomicBool,
    time_scale: (u32, i8),
    /// Set once a policy has been loaded at run time in `flask=late` mode.
    pub late_loaded: AtomicBool,
}

impl core::fmt::Debug for Hv {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Hv")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl Hv {
    pub fn new(platform: &'static dyn Platform, gate: Gate, mode: FlaskMode) -> Hv {
        Hv {
            platform,
            gate,
            mode,
            domains: DomainTable::new(),
            sched: Scheduler::new(platform.nr_cpus() as usize),
            unknown_log: AtomicRateLimit::new(16, 1_000_000_000),
            livepatch: spin::Once::new(),
            safe_point: spin::Once::new(),
            safe_point_wanted: AtomicBool::new(false),
            time_scale: crate::platform::time_scale(platform.tsc_hz()),
            late_loaded: AtomicBool::new(false),
        }
    }

    /// Register the live-patch operations (once).
    pub fn set_livepatch(&self, hook: LivepatchHook) {
        self.livepatch.call_once(|| hook);
    }

    /// The live-patch operations, if registered.
    pub fn livepatch(&self) -> Option<LivepatchHook> {
        self.livepatch.get().copied()
    }

    /// Register the safe-point work (once).
    pub fn set_safe_point(&self, hook: SafePointHook) {
        self.safe_point.call_once(|| hook);
    }

    /// Ask every CPU to call the safe-point hook at its next safe point: a
    /// CPU running a vCPU leaves it after the current exit is handled (the
    /// caller kicks CPUs out of guest mode as needed).
    pub fn want_safe_point(&self, on: bool) {
        self.safe_point_wanted.store(on, Ordering::SeqCst);
    }

    /// Whether safe-point work is wanted.
    #[inline]
    pub fn safe_point_wanted(&self) -> bool {
        self.safe_point_wanted.load(Ordering::Acquire)
    }

    /// Kick every CPU but this one out of guest mode.
    pub fn kick_others(&self) {
        let me = self.platform.this_cpu();
        for c in 0..self.platform.nr_cpus() {
            if c != me {
                self.platform.kick(c);
            }
        }
    }

    fn now(&self) -> u64 {
        self.platform.now_ns()
    }

    fn kick_all(&self, cpus: &[u32]) {
        for &c in cpus {
            self.platform.kick(c);
        }
    }

    /// A rate-limited warning about an unknown hypercall or sub-operation
    /// (no lock is taken unless the line is printed).
    pub fn log_unknown(&self, caller: DomId, what: core::fmt::Arguments<'_>) {
        let now = self.now();
        let Some(dropped) = self.unknown_log.admit(now) else {
            return;
        };
        if dropped > 0 {
            log::warn!("xsm: {dropped} messages about unknown operations suppressed");
        }
        let label = self.label_of(caller);
        log::warn!("xsm: unknown {what} from d{caller} ({label}): -ENOSYS");
    }

    /// A domain's label as text (or its SID number when FLASK is off or it cannot be named).
    pub fn label_of(&self, id: DomId) -> String {
        let sid = self.domains.snapshot(id).map_or(0, |s| s.sid);
        match self.gate.flask() {
            Some(f) => f
                .sid_to_context(xsm::Sid::from_raw(sid))
                .unwrap_or_else(|_| alloc::format!("sid {sid}")),
            None => String::from("no label: FLASK disabled"),
        }
    }

    // ------------------------------------------------------------ domains

    /// The `_self` label of a domain labelled `sid`: type_transition(sid, sid):domain.
    pub fn self_sid(&self, sid: u32) -> u32 {
        match self.gate.flask() {
            Some(f) => f
                .compute_create(
                    xsm::Sid::from_raw(sid),
                    xsm::Sid::from_raw(sid),
                    <xsm::class::Domain as xsm::Class>::ID.raw(),
                )
                .map_or(sid, |s| s.raw()),
            None => sid,
        }
    }

    /// Create a domain (paused, without vCPUs or memory).
    pub fn create_domain(&self, n: NewDomain) -> Result<Arc<Domain>, i32> {
        let (id, generation) = self.domains.reserve(n.want)?;
        let Some(p2m) = P2m::new(self.platform.mem(), P2m::table_budget(n.max_pages)) else {
            self.domains.unreserve(id);
            return Err(errno::ENOMEM);
        };
        let mut d = Domain::new(id, generation, n.privileged, n.name, p2m, n.max_pages);
        d.handle = n.handle;
        let d = Arc::new(d);
        self.sched.add_domain(id, n.weight, d.stopped.clone());
        self.domains.install(d.clone(), n.sid, self.self_sid(n.sid));
        Ok(d)
    }

    /// Give a domain its vCPUs (once).
    pub fn set_max_vcpus(&self, d: &Arc<Domain>, n: u32) -> Result<(), i32> {
        if n == 0 || n > warden_abi::vcpu::MAX_VCPUS {
            return Err(errno::EINVAL);
        }
        let mut vs = d.vcpus.write();
        if d.dying.load(Ordering::Acquire) {
            return Err(errno::ESRCH);
        }
        if !vs.is_empty() {
            return if vs.len() as u32 == n {
                Ok(())
            } else {
                Err(errno::EINVAL)
            };
        }
        let root = d
            .mem
            .read()
            .p2m
            .as_ref()
            .map(|p| p.root())
            .ok_or(errno::ESRCH)?;
        let mut made = Vec::new();
        for i in 0..n {
            let hw = self
                .platform
                .new_vcpu(d.id, i, root)
                .map_err(|_| errno::ENOMEM)?;
            made.push(Arc::new(GuestVcpu::new(i, d.clone(), hw)));
        }
        let now = self.now();
        for v in &made {
            self.sched.add_vcpu(v.clone(), now);
        }
        *vs = made;
        Ok(())
    }

    /// Set the memory limit.
    pub fn set_max_pages(&self, d: &Domain, pages: u64) {
        let mut m = d.mem.write();
        m.max_pages = pages;
        if let Some(p) = m.p2m.as_mut() {
            p.set_table_limit(P2m::table_budget(pages));
        }
    }

    /// Add a zeroed page at `gfn` (ESRCH once the domain is being destroyed).
    pub fn populate(&self, d: &Domain, gfn: u64) -> Result<(), i32> {
        let mem = self.platform.mem();
        let mut m = d.mem.write();
        if d.dying.load(Ordering::Acquire) {
            return Err(errno::ESRCH);
        }
        if m.tot_pages >= m.max_pages {
            return Err(errno::ENOMEM);
        }
        let p2m = m.p2m.as_mut().ok_or(errno::ESRCH)?;
        let pa = mem.alloc_frame().ok_or(errno::ENOMEM)?;
        if let Err(e) = p2m.map(mem, gfn, pa) {
            mem.free_frame(pa);
            return Err(match e {
                MapError::Exists => errno::EEXIST,
                MapError::OutOfRange => errno::EINVAL,
                MapError::NoMemory => errno::ENOMEM,
            });
        }
        m.tot_pages += 1;
        Ok(())
    }

    /// Remove the pages at `gfns` (all must be present, else nothing is
    /// removed and Err(EINVAL)); they are scrubbed and freed once no CPU can
    /// still reach them.
    pub fn decrease(&self, d: &Domain, gfns: &[u64]) -> Result<(), i32> {
        let mem = self.platform.mem();
        let mut m = d.mem.write();
        let p2m = m.p2m.as_mut().ok_or(errno::ESRCH)?;
        if gfns.iter().any(|&g| p2m.lookup(mem, g).is_none()) {
            return Err(errno::EINVAL);
        }
        let mut freed = Vec::new();
        for &g in gfns {
            if let Some(pa) = p2m.unmap(mem, g) {
                freed.push(pa);
            }
        }
        crate::vcpu::shootdown(self.platform.guest_slots(), d.id, &d.epoch, &|c| {
            self.platform.kick(c as u32)
        });
        for pa in &freed {
            mem.zero_frame(*pa);
            mem.free_frame(*pa);
        }
        m.tot_pages -= freed.len() as u64;
        Ok(())
    }

    /// Copy `data` into domain memory at guest-physical `gpa` (the builder, vcpu_info).
    pub fn write_phys(&self, d: &Domain, gpa: u64, data: &[u8]) -> Result<(), Fault> {
        self.phys_pages(d, gpa, data.len(), |pv, a, r| pv.write_gpa(a, &data[r]))
    }

    /// Copy from domain memory at guest-physical `gpa`.
    pub fn read_phys(&self, d: &Domain, gpa: u64, out: &mut [u8]) -> Result<(), Fault> {
        self.phys_pages(d, gpa, out.len(), |pv, a, r| pv.read_gpa(a, &mut out[r]))
    }

    /// Call `f` for each page-bounded piece of `len` bytes at guest-physical
    /// `gpa` in `d`'s memory: the piece's address and its range in the buffer.
    fn phys_pages(
        &self,
        d: &Domain,
        gpa: u64,
        len: usize,
        mut f: impl FnMut(&PhysView<'_>, u64, core::ops::Range<usize>) -> Result<(), Fault>,
    ) -> Result<(), Fault> {
        let m = d.mem.read();
        let p2m = m.p2m.as_ref().ok_or(Fault {
            addr: gpa,
            reason: "domain has no memory",
        })?;
        let pv = PhysView {
            p2m,
            mem: self.platform.mem(),
        };
        if len > 0 && gpa.checked_add(len as u64 - 1).is_none() {
            return Err(Fault {
                addr: gpa,
                reason: "range wraps around the address space",
            });
        }
        let mut done = 0;
        while done < len {
            let a = gpa + done as u64;
            let n = ((4096 - (a & 4095)) as usize).min(len - done);
            f(&pv, a, done..done + n)?;
            done += n;
        }
        Ok(())
    }

    /// Wait until no CPU executes guest code of domain `id` (its stop flag
    /// must be set). Err if `abort` gets set first.
    fn wait_out_of_guest(&self, id: DomId, abort: Option<&AtomicBool>) -> Result<(), ()> {
        for (cpu, s) in self.platform.guest_slots().iter().enumerate() {
            let mut spins = 0u64;
            while s.domain() == Some(id) {
                if abort.is_some_and(|a| a.load(Ordering::Acquire)) {
                    return Err(());
                }
                if spins.is_multiple_of(1 << 20) {
                    self.platform.kick(cpu as u32);
                }
                spins += 1;
                core::hint::spin_loop();
            }
        }
        Ok(())
    }

    /// Wait until no other CPU has a vCPU of domain `id` scheduled (its run
    /// loop has let go of it: Xen's "not running"). Err if `abort` gets set
    /// first.
    fn wait_descheduled(&self, id: DomId, abort: Option<&AtomicBool>) -> Result<(), ()> {
        let me = self.platform.this_cpu();
        let mut spins = 0u64;
        loop {
            let cpus = self.sched.running_cpus(id);
            if cpus.iter().all(|&c| c == me) {
                return Ok(());
            }
            if abort.is_some_and(|a| a.load(Ordering::Acquire)) {
                return Err(());
            }
            if spins.is_multiple_of(1 << 10) {
                self.kick_all(&cpus);
            }
            spins += 1;
            for _ in 0..64 {
                core::hint::spin_loop();
            }
        }
    }

    /// Pause a domain (counted) for a hypercall of a vCPU of `caller`;
    /// returns once none of `d`'s vCPUs executes guest code or is scheduled
    /// on a CPU (as Xen's domain_pause: not running). Never for the
    /// caller's own domain.
    ///
    /// The wait ends early if the caller's own domain is stopped meanwhile
    /// (paused, shut down or dying): then the pause is undone and the
    /// result is [`ERESTART`](crate::hypercall::ERESTART), so the caller's
    /// vCPU leaves the hypercall (to be executed again once it runs). Two
    /// domains pausing each other at the same moment on two CPUs would
    /// otherwise each wait for the other's vCPU to be descheduled, forever.
    pub fn pause(&self, d: &Domain, caller: &Domain) -> Result<(), i32> {
        let k = self.sched.pause(d.id, self.now());
        self.kick_all(&k);
        let abort = Some(&*caller.stopped);
        if self.wait_out_of_guest(d.id, abort).is_err()
            || self.wait_descheduled(d.id, abort).is_err()
        {
            let _ = self.unpause(d);
            return Err(crate::hypercall::ERESTART);
        }
        Ok(())
    }

    /// Undo one pause; EINVAL if it was not paused.
    pub fn unpause(&self, d: &Domain) -> Result<(), i32> {
        let k = self
            .sched
            .unpause(d.id, self.now())
            .map_err(|_| errno::EINVAL)?;
        self.kick_all(&k);
        Ok(())
    }

    /// Shut a domain down with `reason` (no effect if already shut down or dying).
    pub fn shutdown(&self, d: &Domain, reason: u32) {
        if self.sched.life(d.id) != Some(Life::Active) {
            return;
        }
        let k = self
            .sched
            .set_life(d.id, Life::Shutdown(reason), self.now());
        self.kick_all(&k);
        log::info!(
            "Domain {} shut down: reason {} ({})",
            d.id,
            reason,
            reason_name(reason)
        );
        if d.privileged {
            self.platform.control_domain_stopped(reason);
        }
    }

    /// Crash a domain (it faulted or did something unsupported): log why and
    /// what its vCPU looked like, and shut it down with reason crash.
    pub fn crash(&self, v: &GuestVcpu, why: core::fmt::Arguments<'_>, regs: &str) {
        log::error!("d{}v{}: crashed: {why}", v.domid, v.id);
        for l in regs.lines() {
            log::error!("d{}v{}:   {l}", v.domid, v.id);
        }
        self.shutdown(&v.domain, SHUTDOWN_CRASH);
    }

    /// Destroy a domain to the end (boot-time and failure paths): see
    /// [`Hv::destroy_some`]. Returns the pages freed.
    pub fn destroy(&self, d: &Arc<Domain>) -> u64 {
        loop {
            if let Some(pages) = self.destroy_some(d, u64::MAX) {
                return pages;
            }
            core::hint::spin_loop();
        }
    }

    /// One bounded step of destroying a domain: the first call stops it and
    /// takes it out of the scheduler (its vCPUs never run again); each call
    /// scrubs and frees at most `budget` of its pages; the call that frees
    /// the last one also frees its page tables and takes it out of the
    /// table. Returns None while work remains (DESTROYDOMAIN continues
    /// itself, as Xen's domain_kill with -ERESTART), then Some(pages freed
    /// by this step); Some(0) if the domain is already destroyed.
    pub fn destroy_some(&self, d: &Arc<Domain>, budget: u64) -> Option<u64> {
        if !d.dying.swap(true, Ordering::AcqRel) {
            let k = self.sched.set_life(d.id, Life::Dying, self.now());
            self.kick_all(&k);
            let _ = self.wait_out_of_guest(d.id, None);
            // vCPUs are taken before the scheduler forgets the domain:
            // set_max_vcpus, under the same lock, sees `dying` or is done.
            let vcpus = core::mem::take(&mut *d.vcpus.write());
            self.sched.remove_domain(d.id);
            drop(vcpus);
            d.scrubbing.store(true, Ordering::Release);
        } else if !d.scrubbing.load(Ordering::Acquire) {
            // Another CPU is still stopping it.
            return None;
        }
        let mem = self.platform.mem();
        let mut guard = d.mem.write();
        let m = &mut *guard;
        let Some(p) = m.p2m.as_mut() else {
            return Some(0);
        };
        let mut pages = 0u64;
        let done = p.release(mem, budget, |_, pa| {
            mem.zero_frame(pa);
            mem.free_frame(pa);
            pages += 1;
        });
        let tables = p.table_frames();
        m.tot_pages = m.tot_pages.saturating_sub(pages);
        m.scrubbed += pages;
        if !done {
            return None;
        }
        if let Some(p) = m.p2m.take() {
            p.destroy(mem, |_, _| {});
        }
        m.tot_pages = 0;
        let total = m.scrubbed;
        drop(guard);
        self.domains.remove(d.id);
        log::info!(
            "Domain {} destroyed: {} pages scrubbed and freed, {} page-table frames freed",
            d.id,
            total,
            tables
        );
        Some(pages)
    }

    /// getdomaininfo for `d` labelled `sid`.
    pub fn domain_info(&self, d: &Domain, sid: u32) -> DomainInfo {
        let st = self.sched.domain_state(d.id, self.now());
        let m = d.mem.read();
        let mut flags = dc::DOMINF_HVM_GUEST | dc::DOMINF_HAP;
        let mut info = DomainInfo {
            domain: d.id,
            tot_pages: m.tot_pages,
            max_pages: m.max_pages,
            ssidref: sid,
            handle: d.handle,
            ..Default::default()
        };
        if d.privileged {
            flags |= dc::DOMINF_PRIV;
        }
        if let Some(st) = st {
            match st.life {
                Life::Dying => flags |= dc::DOMINF_DYING,
                Life::Shutdown(r) => {
                    flags |= dc::DOMINF_SHUTDOWN
                        | ((r & dc::DOMINF_SHUTDOWN_MASK) << dc::DOMINF_SHUTDOWN_SHIFT)
                }
                Life::Active => {}
            }
            if st.pause > 0 {
                flags |= dc::DOMINF_PAUSED;
            }
            if st.running {
                flags |= dc::DOMINF_RUNNING;
            }
            if st.all_blocked {
                flags |= dc::DOMINF_BLOCKED;
            }
            info.cpu_time = st.cpu_time_ns;
            info.nr_online_vcpus = st.online_vcpus;
        } else {
            flags |= dc::DOMINF_DYING;
        }
        info.max_vcpu_id = d.nr_vcpus().saturating_sub(1);
        info.flags = flags;
        info
    }

    /// The security server's decision generation (0 without FLASK): it
    /// changes with every policy load, boolean commit and SID remapping.
    fn policy_generation(&self) -> u32 {
        self.gate.flask().map_or(0, |f| f.cache_generation())
    }

    /// Relabel the domain `checked` is a snapshot of to `sid`, with the
    /// `_self` label the policy in force gives it, only if the domain table
    /// still holds that domain with the label that was checked (ESRCH if it
    /// is gone or its id was reused, EAGAIN if it was relabelled since).
    /// If the policy changes while the `_self` label is computed, it is
    /// computed again, so a relabel racing with a policy load or a boolean
    /// commit never leaves a `_self` label of the previous policy behind.
    pub fn relabel(&self, checked: &DomSnap, sid: u32) -> Result<(), i32> {
        let mut expect = *checked;
        let mut first = true;
        loop {
            let generation = self.policy_generation();
            let self_sid = self.self_sid(sid);
            match self.domains.relabel(&expect, sid, self_sid) {
                Ok(()) => {}
                Err(e) if first => return Err(e),
                // Someone relabelled it after us (a later relabel, or the
                // recomputation after the policy change): theirs stands.
                Err(_) => return Ok(()),
            }
            if self.policy_generation() == generation {
                return Ok(());
            }
            first = false;
            expect = DomSnap {
                sid,
                self_sid,
                ..expect
            };
        }
    }

    /// Recompute `s`'s `_self` label under the policy in force, unless the
    /// domain was relabelled (or replaced) since `s` was read: then false
    /// (read again). A concurrent RELABEL_DOMAIN is never undone.
    pub fn refresh_self_label(&self, s: &DomSnap) -> bool {
        match self.relabel(s, s.sid) {
            Ok(()) => true,
            Err(e) => e == errno::ESRCH,
        }
    }

    /// After a policy load or a boolean commit (the policy's
    /// type_transition rules may be conditional): recompute every domain's
    /// `_self` label.
    pub fn relabel_all(&self) {
        for d in self.domains.all() {
            while let Some(s) = self.domains.snapshot(d.id) {
                if s.generation != d.generation || self.refresh_self_label(&s) {
                    break;
                }
            }
        }
    }

    // ------------------------------------------------------------ events

    /// Raise virtual IRQ `virq` on vCPU `v`.
    pub fn raise_virq(&self, v: &GuestVcpu, virq: u32) {
        v.virqs.fetch_or(1 << (virq & 31), Ordering::SeqCst);
        if let Some(c) = self.sched.notify((v.domid, v.id), self.now()) {
            self.platform.kick(c);
        }
    }

    /// Is the guest's `evtchn_upcall_pending` set?
    pub fn guest_upcall_pending(&self, v: &GuestVcpu) -> bool {
        let Some(gpa) = v.events.lock().info_gpa else {
            return false;
        };
        let mut b = [0u8; 1];
        self.read_phys(&v.domain, gpa, &mut b).is_ok() && b[0] != 0
    }

    /// Clear the guest's `evtchn_upcall_mask` (SCHEDOP_block enables delivery).
    pub fn unmask_events(&self, v: &GuestVcpu) {
        if let Some(gpa) = v.events.lock().info_gpa {
            let _ = self.write_phys(&v.domain, gpa.saturating_add(1), &[0]);
        }
    }

    /// Fill a vcpu_info's time fields.
    pub fn time_info(&self) -> warden_abi::vcpu::VcpuTimeInfo {
        let tsc = self.platform.rdtsc();
        warden_abi::vcpu::VcpuTimeInfo {
            version: 2,
            tsc_timestamp: tsc,
            system_time: self.platform.tsc_to_ns(tsc),
            tsc_to_system_mul: self.time_scale.0,
            tsc_shift: self.time_scale.1,
            ..Default::default()
        }
    }

    /// Before entering `v`: deliver pending virtual IRQs to its vcpu_info and
    /// return the upcall vector to inject, if any.
    fn pending_upcall(&self, v: &GuestVcpu) -> Option<u8> {
        let virqs = v.virqs.swap(0, Ordering::AcqRel);
        if virqs == 0 && !v.upcall.load(Ordering::Acquire) {
            return None;
        }
        let ev: VcpuEvents = *v.events.lock();
        let mut masked = false;
        if let Some(gpa) = ev.info_gpa {
            let mut info = VcpuInfo::default();
            if self.read_phys(&v.domain, gpa, info.as_bytes_mut()).is_ok() {
                if virqs != 0 {
                    info.evtchn_pending_sel |= virqs as u64;
                    info.evtchn_upcall_pending = 1;
                    let _ = self.write_phys(
                        &v.domain,
                        gpa.saturating_add(8),
                        &info.evtchn_pending_sel.to_le_bytes(),
                    );
                    let _ = self.write_phys(&v.domain, gpa, &[1]);
                }
                masked = info.evtchn_upcall_mask != 0;
            }
        }
        let Some(vector) = ev.vector else {
            v.upcall.store(false, Ordering::Release);
            return None;
        };
        if masked {
            v.upcall.store(true, Ordering::Release);
            return None;
        }
        v.upcall.store(false, Ordering::Release);
        Some(vector)
    }

    // ------------------------------------------------------------ run loop

    /// One pass of housekeeping: interrupts, timers.
    fn housekeeping(&self) {
        self.platform.poll_interrupts();
        let now = self.now();
        let (kick, fired) = self.sched.expire(now);
        self.kick_all(&kick);
        for v in fired {
            self.raise_virq(&v, warden_abi::vcpu::VIRQ_TIMER);
        }
        self.expire_lapic_timers();
    }

    /// The loop every CPU runs once the hypervisor is up.
    pub fn cpu_loop(&self, cpu: u32) -> ! {
        loop {
            // The safe point: this CPU runs no vCPU and holds no lock; its
            // stack holds only the run loop.
            if self.safe_point_wanted()
                && let Some(hook) = self.safe_point.get()
            {
                hook(self, cpu);
            }
            self.housekeeping();
            match self.sched.pick(cpu, self.now()) {
                Some(v) => self.run_vcpu(cpu, v),
                None => self.platform.idle(),
            }
        }
    }

    /// Run `v` on `cpu` until it blocks, stops or its slice ends.
    pub fn run_vcpu(&self, cpu: u32, v: Arc<GuestVcpu>) {
        let k = (v.domid, v.id);
        let slot = &self.platform.guest_slots()[cpu as usize];
        {
            let mut hw = v.hw.lock();
            loop {
                let callback = self.pending_upcall(&v);
                let offer = self.pick_irq(&v, &mut **hw, callback);
                let entry = Entry {
                    slot,
                    domid: v.domid,
                    epoch: &v.domain.epoch,
                    stop: &v.domain.stopped,
                    inject: offer.map(|o| o.vector),
                };
                let exit = hw.run(&entry);
                if let Some(o) = offer {
                    self.irq_done(&v, o, !hw.irq_offered());
                }
                let check = match exit {
                    Ok(VmExit::Hypercall) => crate::hypercall::hypercall(self, cpu, &v, &mut **hw),
                    Ok(VmExit::Halt) => {
                        hw.skip_halt();
                        let pending = self.guest_upcall_pending(&v) || self.irq_pending(&v);
                        if self.sched.block(k, Block::Event, pending, None, self.now())
                            && self.irq_pending(&v)
                        {
                            // An interrupt arrived between the check and the block.
                            self.wake_for_irq(&v);
                        }
                        true
                    }
                    Ok(VmExit::ExternalInterrupt) | Ok(VmExit::Cancelled) => true,
                    Ok(VmExit::Msr { msr, write, value }) => {
                        let r = self.lapic_msr(&v, msr, write, value);
                        hw.finish_msr(r);
                        true
                    }
                    Ok(VmExit::Shutdown) => {
                        self.crash_with(
                            &v,
                            &**hw,
                            format_args!("triple fault (shutdown intercept)"),
                        );
                        true
                    }
                    Ok(VmExit::NestedPageFault { gpa, error_code }) => {
                        if let Err(e) = self.mmio_fault(&v, &mut **hw, gpa, error_code) {
                            self.crash_with(&v, &**hw, format_args!("{}", e.0));
                        }
                        true
                    }
                    Ok(VmExit::Io { port, size, write }) => {
                        self.crash_with(
                            &v,
                            &**hw,
                            format_args!(
                                "unexpected I/O port {} of {size} bytes at {port:#x}",
                                if write { "write" } else { "read" }
                            ),
                        );
                        true
                    }
                    Ok(VmExit::Unexpected { code, info1, info2 }) => {
                        self.crash_with(
                            &v,
                            &**hw,
                            format_args!("unexpected exit {code:#x} (info {info1:#x} {info2:#x})"),
                        );
                        true
                    }
                    Err(e) => {
                        self.crash_with(&v, &**hw, format_args!("cannot run: {e}"));
                        true
                    }
                };
                if check {
                    self.housekeeping();
                    if self.safe_point_wanted() || self.sched.should_stop(k, self.now()) {
                        break;
                    }
                }
            }
        }
        let now = self.now();
        if let Some(c) = self.sched.descheduled(cpu, k, now) {
            self.platform.kick(c);
        }
    }

    fn crash_with(&self, v: &GuestVcpu, hw: &dyn crate::vcpu::Vcpu, why: core::fmt::Arguments<'_>) {
        let mut regs = String::new();
        let _ = hw.dump(&mut regs);
        self.crash(v, why, &regs);
    }
}
