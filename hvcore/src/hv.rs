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
use crate::domain::{DomSnap, Domain, DomainConfig, DomainTable, GuestVcpu};
use crate::gate::Gate;
use crate::guestmem::{Fault, GuestPhys};
use crate::p2m::{MapError, P2m, PhysView};
use crate::platform::Platform;
use crate::ratelimit::AtomicRateLimit;
use crate::sched::{Life, Scheduler};
use crate::vcpu::{Entry, MsrResult, VmExit};
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use warden_abi::domctl::{self as dc, GetDomainInfo};
use warden_abi::sched::{SHUTDOWN_CRASH, reason_name};
use warden_abi::{DomId, errno};

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

/// Limits createdomain sets (Xen 4.17's `max_grant_frames`,
/// `max_maptrack_frames` and `max_evtchn_port`, already validated).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DomainLimits {
    /// Grant-table frames (1..=`gnttab::MAX_GRANT_FRAMES`).
    pub grant_frames: u32,
    /// Maptrack chunks of `maptrack::CHUNK` handles.
    pub maptrack_chunks: u32,
    /// Highest event-channel port.
    pub max_evtchn_port: u32,
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
    /// The (hypercall, sub-op) pairs of absent features already logged.
    absent_logged: spin::Mutex<Vec<(&'static str, u32)>>,
    livepatch: spin::Once<LivepatchHook>,
    safe_point: spin::Once<SafePointHook>,
    safe_point_wanted: AtomicBool,
    /// The TSC-to-system-time scale of the PV clock (`xen::time`).
    time_scale: crate::xen::time::Scale,
    /// Set once a policy has been loaded at run time in `flask=late` mode.
    pub late_loaded: AtomicBool,
    /// Policy loads and boolean commits under way: their rules are (or are
    /// about to be) in force while the domains' `_self` labels are not yet
    /// recomputed ([`Hv::relabel_all`]); meanwhile each hypercall computes
    /// its caller's `_self` label under the rules in force.
    pub relabels_pending: core::sync::atomic::AtomicU32,
    /// When the console rings Warden serves were last drained (`xen::console`).
    console_polled: AtomicU64,
    /// Serial input waiting for the hardware domain (CONSOLEIO_read).
    serial_rx: spin::Mutex<crate::xen::console::SerialRx>,
    /// Where serial input goes (dom0 or the debug keys); set up on first use
    /// from `conswitch=`.
    input: spin::Mutex<Option<crate::xen::console::InputSwitch>>,
    /// The domains' wall clock: UTC at system time 0, in ns since the Unix
    /// epoch (Xen's `wc_sec`/`wc_nsec`; XENPF_settime changes it). Its lock
    /// also orders the writers of the shared_info pages' `wc_version`
    /// seqlock (Xen's `wc_lock`).
    wallclock: spin::Mutex<u64>,
    /// Frames held beyond their owner's physmap (foreign mappings, grant
    /// pins): shared with every domain's grant table.
    pub frame_refs: Arc<crate::frameref::FrameRefs>,
    /// Pages claimed by all domains and not yet populated (Xen's
    /// `outstanding_claims`); taken after a domain's memory lock.
    claims: spin::Mutex<u64>,
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
            absent_logged: spin::Mutex::new(Vec::new()),
            livepatch: spin::Once::new(),
            safe_point: spin::Once::new(),
            safe_point_wanted: AtomicBool::new(false),
            time_scale: crate::xen::time::Scale::from_hz(platform.tsc_hz()),
            late_loaded: AtomicBool::new(false),
            relabels_pending: core::sync::atomic::AtomicU32::new(0),
            console_polled: AtomicU64::new(0),
            serial_rx: spin::Mutex::new(Default::default()),
            input: spin::Mutex::new(None),
            wallclock: spin::Mutex::new(platform.wallclock_boot_ns()),
            frame_refs: Arc::new(crate::frameref::FrameRefs::new()),
            claims: spin::Mutex::new(0),
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

    pub(crate) fn now(&self) -> u64 {
        self.platform.now_ns()
    }

    fn kick_all(&self, cpus: &[u32]) {
        for &c in cpus {
            self.platform.kick(c);
        }
    }

    /// A rate-limited warning about an unknown hypercall or sub-operation,
    /// answered `err` (no lock is taken unless the line is printed).
    pub fn log_unknown(&self, caller: DomId, what: core::fmt::Arguments<'_>, err: i32) {
        let now = self.now();
        let Some(dropped) = self.unknown_log.admit(now) else {
            return;
        };
        if dropped > 0 {
            log::warn!("xsm: {dropped} messages about unknown operations suppressed");
        }
        let label = self.label_of(caller);
        log::warn!(
            "xsm: unknown {what} from d{caller} ({label}): -{}",
            errno::name(err)
        );
    }

    /// A warning about a sub-operation Warden does not implement, the first
    /// time (`hypercall`, `n`) is seen. At most 256 pairs are remembered
    /// (a guest trying every number cannot grow the list; later pairs are
    /// not logged).
    pub fn log_absent_once(
        &self,
        caller: DomId,
        hypercall: &'static str,
        n: u32,
        what: core::fmt::Arguments<'_>,
    ) {
        {
            let mut seen = self.absent_logged.lock();
            if seen.len() >= 256 || seen.iter().any(|&(h, x)| h == hypercall && x == n) {
                return;
            }
            seen.push((hypercall, n));
        }
        let label = self.label_of(caller);
        log::warn!("xsm: {what}, from d{caller} ({label}); logged once");
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

    /// Create a domain (paused, without vCPUs or memory), with the default
    /// configuration (PVH) and Xen's default limits.
    pub fn create_domain(&self, n: NewDomain) -> Result<Arc<Domain>, i32> {
        self.create_domain_with(n, DomainConfig::default(), None)
    }

    /// Create a domain with what createdomain asked for: `config` and, if
    /// given, grant-table and event-channel `limits` (already validated).
    pub fn create_domain_with(
        &self,
        n: NewDomain,
        config: DomainConfig,
        limits: Option<DomainLimits>,
    ) -> Result<Arc<Domain>, i32> {
        let (id, generation) = self.domains.reserve(n.want)?;
        let Some(p2m) = P2m::new(self.platform.mem(), P2m::table_budget(n.max_pages)) else {
            self.domains.unreserve(id);
            return Err(errno::ENOMEM);
        };
        let Some(si) = self.platform.mem().alloc_frame() else {
            p2m.destroy(self.platform.mem(), |_, _, _| {});
            self.domains.unreserve(id);
            return Err(errno::ENOMEM);
        };
        let mut d = Domain::new(id, generation, n.privileged, n.name, p2m, n.max_pages);
        *d.handle.get_mut() = n.handle;
        d.config = config;
        if let Some(l) = limits {
            d.gnttab = Arc::new(crate::xen::gnttab::GrantTable::new(
                id,
                l.grant_frames,
                l.maptrack_chunks,
                crate::xen::gnttab::LockMode::PerEntry,
            ));
            d.evtchn.set_max_port(l.max_evtchn_port);
        }
        d.gnttab.set_frame_refs(self.frame_refs.clone());
        // Xen's initial grant-table frame (the table grows on demand if
        // memory is short now).
        let _ = d
            .gnttab
            .grow(self.platform.mem(), crate::xen::gnttab::INITIAL_FRAMES);
        d.shared_info.set_frame(si);
        self.publish_wallclock(&d);
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
        // Claimed memory is not available to a domain without a claim of
        // its own (Xen's alloc_heap_pages).
        if m.outstanding == 0 {
            let claims = self.claims.lock();
            if *claims > 0 && *claims + 1 > mem.free_frames() {
                return Err(errno::ENOMEM);
            }
        }
        let m = &mut *m;
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
        // Xen's domain_adjust_tot_pages: the claim shrinks as it is used.
        if m.outstanding > 0 {
            m.outstanding -= 1;
            let mut claims = self.claims.lock();
            *claims = claims.saturating_sub(1);
        }
        Ok(())
    }

    /// XENMEM_claim_pages (Xen's `domain_set_outstanding_pages`): reserve
    /// memory so that `pages` pages in all can be populated for `d`; 0
    /// cancels its claim. EINVAL for a second claim, or one not above the
    /// pages it has or above its limit; ENOMEM if free memory (less other
    /// claims) cannot cover it.
    pub fn claim_pages(&self, d: &Domain, pages: u64) -> Result<(), i32> {
        let mut m = d.mem.write();
        let mut claims = self.claims.lock();
        if pages == 0 {
            *claims = claims.saturating_sub(m.outstanding);
            m.outstanding = 0;
            return Ok(());
        }
        if m.outstanding != 0 || pages <= m.tot_pages || pages > m.max_pages {
            return Err(errno::EINVAL);
        }
        let avail = self.platform.mem().free_frames().saturating_sub(*claims);
        let claim = pages - m.tot_pages;
        if claim > avail {
            return Err(errno::ENOMEM);
        }
        m.outstanding = claim;
        *claims += claim;
        Ok(())
    }

    /// Pages claimed by all domains and not yet populated (physinfo).
    pub fn outstanding_claims(&self) -> u64 {
        *self.claims.lock()
    }

    /// `d` gives up its RAM frame `pa`, already out of its physmap (under
    /// its memory write lock): true if the frame is to be scrubbed and freed
    /// (after the caller's TLB shootdown); a grant pin or a foreign mapping
    /// keeps it otherwise, and the last of them frees it.
    pub(crate) fn give_up(&self, d: &Domain, pa: u64) -> bool {
        let pinned = d.gnttab.orphan_if_pinned(pa);
        self.frame_refs.owner_release(pa, pinned)
    }

    /// Scrub and free a frame nothing maps any more.
    pub(crate) fn scrub_free(&self, pa: u64) {
        let mem = self.platform.mem();
        mem.zero_frame(pa);
        mem.free_frame(pa);
    }

    /// Remove the pages at `gfns` (all must be present, else nothing is
    /// removed and Err(EINVAL)); they are scrubbed and freed once no CPU can
    /// still reach them.
    pub fn decrease(&self, d: &Domain, gfns: &[u64]) -> Result<(), i32> {
        let mem = self.platform.mem();
        let mut m = d.mem.write();
        let p2m = m.p2m.as_mut().ok_or(errno::ESRCH)?;
        // Only the domain's own RAM (not grant mappings, not grant-table frames).
        if gfns.iter().any(|&g| match p2m.lookup_kind(mem, g) {
            Some((_, crate::p2m::Kind::Ram)) => false,
            // The shared_info page leaves the physmap (not freed).
            Some((_, crate::p2m::Kind::Xen)) => d.shared_info.gfn() != Some(g),
            _ => true,
        }) {
            return Err(errno::EINVAL);
        }
        let mut freed = Vec::new();
        let mut given_up = 0u64;
        for &g in gfns {
            if let Some(pa) = p2m.unmap(mem, g) {
                if d.shared_info.gfn() == Some(g) {
                    // Unmapped, not freed: the domain keeps its page.
                    d.shared_info.set_gfn(None);
                } else {
                    given_up += 1;
                    // A frame other domains still map or copy stays theirs
                    // until their last pin or mapping goes (which frees it).
                    if self.give_up(d, pa) {
                        freed.push(pa);
                    }
                }
            }
        }
        crate::vcpu::shootdown(self.platform.guest_slots(), d.id, &d.epoch, &|c| {
            self.platform.kick(c as u32)
        });
        for pa in &freed {
            mem.zero_frame(*pa);
            mem.free_frame(*pa);
        }
        m.tot_pages -= given_up;
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
        if len > 0 && gpa.checked_add(len as u64 - 1).is_none() {
            return Err(Fault {
                addr: gpa,
                reason: "range wraps around the address space",
            });
        }
        self.with_phys(d, gpa, |pv| {
            let mut done = 0;
            while done < len {
                let a = gpa + done as u64;
                let n = ((4096 - (a & 4095)) as usize).min(len - done);
                f(pv, a, done..done + n)?;
                done += n;
            }
            Ok(())
        })
    }

    /// Run `f` on a view of `d`'s physmap, under its memory lock (read);
    /// a fault at `addr` if the domain has no memory.
    pub(crate) fn with_phys<R>(
        &self,
        d: &Domain,
        addr: u64,
        f: impl FnOnce(&PhysView<'_>) -> Result<R, Fault>,
    ) -> Result<R, Fault> {
        let m = d.mem.read();
        let p2m = m.p2m.as_ref().ok_or(Fault {
            addr,
            reason: "domain has no memory",
        })?;
        f(&PhysView {
            p2m,
            mem: self.platform.mem(),
        })
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

    /// Undo one pause; EINVAL if it was not paused. When the count first
    /// drops to 0 the domain's creation is finished (Xen's
    /// `creation_finished`: its CPU policy is fixed from then on).
    pub fn unpause(&self, d: &Domain) -> Result<(), i32> {
        let now = self.now();
        let k = self.sched.unpause(d.id, now).map_err(|_| errno::EINVAL)?;
        if self
            .sched
            .domain_state(d.id, now)
            .is_some_and(|s| s.pause == 0)
        {
            d.creation_finished.store(true, Ordering::Release);
        }
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
        self.send_hwdom_virq(warden_abi::xen::xen::VIRQ_DOM_EXC);
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
            // Its claim goes (Xen's domain_kill).
            let _ = self.claim_pages(d, 0);
            let k = self.sched.set_life(d.id, Life::Dying, self.now());
            self.kick_all(&k);
            let _ = self.wait_out_of_guest(d.id, None);
            // vCPUs are taken before the scheduler forgets the domain:
            // set_max_vcpus, under the same lock, sees `dying` or is done.
            // Its channels close (peers' ports go back to unbound) while
            // its vCPUs still exist.
            self.evtchn_reset(d);
            let vcpus = core::mem::take(&mut *d.vcpus.write());
            self.sched.remove_domain(d.id);
            drop(vcpus);
            // Grants: undo what it maps of others, and keep what others map
            // of it out of the pages freed below.
            {
                let mem = self.platform.mem();
                let mut m = d.mem.write();
                let m = &mut *m;
                if let Some(p) = m.p2m.as_mut() {
                    d.gnttab.unmap_all(mem, p);
                    let orphaned = d.gnttab.close(mem, p);
                    m.tot_pages = m.tot_pages.saturating_sub(orphaned.len() as u64);
                    for pa in orphaned {
                        // Grant-pinned: the last pin or foreign mapping frees
                        // it (at once if that went meanwhile).
                        if self.frame_refs.owner_release(pa, true) {
                            self.scrub_free(pa);
                        }
                    }
                }
            }
            {
                // The shared_info page leaves the physmap: it is freed
                // with the domain, not with its RAM.
                let mut m = d.mem.write();
                if let (Some(g), Some(p)) = (d.shared_info.gfn(), m.p2m.as_mut()) {
                    p.unmap(self.platform.mem(), g);
                    d.shared_info.set_gfn(None);
                }
            }
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
        let mut given_up = 0u64;
        let refs = &self.frame_refs;
        let done = p.release(mem, budget, |_, pa, kind| match kind {
            crate::p2m::Kind::Foreign => {
                // Its foreign mappings go (the owner's frame is freed if
                // the owner gave it up and nothing else holds it).
                if refs.put(pa) {
                    mem.zero_frame(pa);
                    mem.free_frame(pa);
                }
            }
            _ => {
                given_up += 1;
                // A frame another domain maps stays until it is unmapped.
                if refs.owner_release(pa, false) {
                    mem.zero_frame(pa);
                    mem.free_frame(pa);
                    pages += 1;
                }
            }
        });
        let tables = p.table_frames();
        m.tot_pages = m.tot_pages.saturating_sub(given_up);
        m.scrubbed += pages;
        if !done {
            return None;
        }
        if let Some(p) = m.p2m.take() {
            p.destroy(mem, |_, _, _| {});
        }
        if let Some(si) = d.shared_info.take_frame() {
            mem.zero_frame(si);
            mem.free_frame(si);
        }
        m.tot_pages = 0;
        let total = m.scrubbed;
        drop(guard);
        self.domains.remove(d.id);
        self.send_hwdom_virq(warden_abi::xen::xen::VIRQ_DOM_EXC);
        log::info!(
            "Domain {} destroyed: {} pages scrubbed and freed, {} page-table frames freed",
            d.id,
            total,
            tables
        );
        Some(pages)
    }

    /// getdomaininfo (Xen 4.17's `getdomaininfo()`) for `d` labelled `sid`.
    pub fn domain_info(&self, d: &Domain, sid: u32) -> GetDomainInfo {
        let st = self.sched.domain_state(d.id, self.now());
        let m = d.mem.read();
        let nr_vcpus = d.nr_vcpus();
        let mut info = GetDomainInfo {
            domain: d.id,
            tot_pages: m.tot_pages,
            max_pages: m.max_pages,
            outstanding_pages: m.outstanding,
            ssidref: sid,
            handle: *d.handle.lock(),
            cpupool: d.config.cpupool,
            // Guest-physical address bits of the physmap (`p2m::GFN_LIMIT`).
            gpaddr_bits: (crate::p2m::GFN_LIMIT.trailing_zeros() + 12) as u8,
            // Xen: the GFN of the page, or an invalid M2P entry while unmapped.
            shared_info_frame: d.shared_info.gfn().unwrap_or(u64::MAX),
            max_vcpu_id: match nr_vcpus {
                0 => dc::INVALID_MAX_VCPU_ID,
                n => n - 1,
            },
            arch_config: dc::ArchDomainConfig {
                emulation_flags: d.config.emulation_flags,
                misc_flags: 0,
            },
            ..Default::default()
        };
        drop(m);
        // Every Warden domain is an HVM guest with nested paging.
        let mut flags = dc::DOMINF_HVM_GUEST | dc::DOMINF_HAP;
        if d.config.xs_domain {
            flags |= dc::DOMINF_XS_DOMAIN;
        }
        // Xen keeps SHUTDOWN_CODE_INVALID (~0) until a shutdown and ORs it in
        // shifted: a live domain's bits 16..31 are all set.
        let mut code = u32::MAX;
        if let Some(st) = st {
            match st.life {
                Life::Dying => flags |= dc::DOMINF_DYING,
                Life::Shutdown(r) => {
                    flags |= dc::DOMINF_SHUTDOWN;
                    code = r & dc::DOMINF_SHUTDOWN_MASK;
                }
                Life::Active => {}
            }
            if st.pause > 0 {
                flags |= dc::DOMINF_PAUSED;
            }
            // Running and blocked only describe online vCPUs.
            if st.online_vcpus > 0 {
                if st.running {
                    flags |= dc::DOMINF_RUNNING;
                }
                if st.all_blocked {
                    flags |= dc::DOMINF_BLOCKED;
                }
            }
            info.cpu_time = st.cpu_time_ns;
            info.nr_online_vcpus = st.online_vcpus;
        } else {
            flags |= dc::DOMINF_DYING;
        }
        info.flags = flags | (code << dc::DOMINF_SHUTDOWN_SHIFT);
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

    /// The caller snapshot a hypercall checks with: while a policy load or
    /// boolean commit is between putting its rules in force and
    /// recomputing the `_self` labels, the caller's `_self` label is
    /// computed under the rules in force (else the domain's own operations
    /// would be checked against a label of the old rules, and refused).
    pub fn caller_snapshot(&self, id: DomId) -> Option<DomSnap> {
        let mut s = self.domains.snapshot(id)?;
        if self.relabels_pending.load(Ordering::Acquire) != 0 {
            s.self_sid = self.self_sid(s.sid);
        }
        Some(s)
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

    /// Is the guest's `evtchn_upcall_pending` set?
    pub fn guest_upcall_pending(&self, v: &GuestVcpu) -> bool {
        self.upcall_pending(v)
    }

    /// Clear the guest's `evtchn_upcall_mask` (SCHEDOP_block enables delivery).
    pub fn unmask_events(&self, v: &GuestVcpu) {
        crate::xen::shared_info::Shared::with(&v.domain, self.platform.mem(), |s| {
            if let Some(pa) = s.vcpu_info(v) {
                self.platform.mem().fetch_and_u64(pa, !0xff00);
            }
        });
    }

    /// A time record (`vcpu_time_info`, version 0) for now.
    pub fn time_info(&self) -> warden_abi::vcpu::VcpuTimeInfo {
        let tsc = self.platform.rdtsc();
        crate::xen::time::record(
            tsc,
            self.platform.tsc_to_ns(tsc),
            self.time_scale,
            self.platform.tsc_stable(),
        )
    }

    /// Copy `data` into `d`'s memory at guest virtual `va`, translated with
    /// `paging` (a registered runstate or time area).
    pub fn write_linear(
        &self,
        d: &Domain,
        paging: crate::guestmem::PagingState,
        va: u64,
        data: &[u8],
    ) -> Result<(), Fault> {
        self.with_phys(d, va, |pv| {
            crate::guestmem::GuestView::new(pv, paging).write(va, data)
        })
    }

    /// Rewrite `v`'s time records (its vcpu_info and its secondary time
    /// area) under their seqlock. `paging`: `v`'s current address space.
    pub fn publish_time(&self, v: &GuestVcpu, paging: crate::guestmem::PagingState) {
        use crate::xen::time::{Sink, publish};
        struct Host<'a>(&'a dyn crate::p2m::HostMem, u64);
        impl Sink for Host<'_> {
            fn put(&mut self, off: u64, data: &[u8]) -> bool {
                self.0.write(self.1 + off, data);
                true
            }
        }
        struct Lin<'a>(&'a Hv, &'a Domain, crate::guestmem::PagingState, u64);
        impl Sink for Lin<'_> {
            fn put(&mut self, off: u64, data: &[u8]) -> bool {
                self.0
                    .write_linear(self.1, self.2, self.3.wrapping_add(off), data)
                    .is_ok()
            }
        }
        let rec = self.time_info();
        let mut areas = v.clock.areas();
        let start = areas.version;
        // Its vcpu_info: the registered one, else its legacy slot in the
        // shared_info page (a 64-byte vcpu_info never crosses a page).
        crate::xen::shared_info::Shared::with(&v.domain, self.platform.mem(), |s| {
            if let Some(pa) = s.vcpu_info(v) {
                let mut ver = start;
                publish(&mut Host(self.platform.mem(), pa + 32), &mut ver, &rec);
            }
        });
        if let Some(va) = areas.time_va {
            let mut ver = start;
            publish(&mut Lin(self, &v.domain, paging, va), &mut ver, &rec);
        }
        areas.version = (start.wrapping_add(1) | 1).wrapping_add(1);
    }

    /// Write the wall clock (UTC at system time 0) into `d`'s shared_info
    /// page, under its `wc_version` seqlock.
    pub fn publish_wallclock(&self, d: &Domain) {
        use crate::xen::time::{Sink, publish_wallclock};
        struct Si<'a, 'b>(&'a crate::xen::shared_info::Shared<'b>);
        impl Sink for Si<'_, '_> {
            fn put(&mut self, off: u64, data: &[u8]) -> bool {
                self.0.si_write(off, data);
                true
            }
        }
        let at = core::mem::offset_of!(warden_abi::xen::xen::SharedInfo, wc_version) as u64;
        let wc = self.wallclock.lock();
        let boot = *wc;
        crate::xen::shared_info::Shared::with(d, self.platform.mem(), |s| {
            let Some(w) = s.si_read(at) else {
                return;
            };
            let mut ver = w as u32;
            publish_wallclock(&mut Si(s), at, &mut ver, boot);
        });
        drop(wc);
    }

    /// XENPF_settime (Xen's `do_settime`): the wall clock reads `secs`,
    /// `nsecs` at system time `system_time`; every domain's shared_info
    /// page is updated. Xen's unsigned arithmetic: a system time beyond
    /// the given wall time wraps as it does there.
    pub fn set_wallclock(&self, secs: u64, nsecs: u32, system_time: u64) {
        let ns = secs
            .wrapping_mul(1_000_000_000)
            .wrapping_add(nsecs as u64)
            .wrapping_sub(system_time);
        *self.wallclock.lock() = ns;
        for d in self.domains.all() {
            self.publish_wallclock(&d);
        }
    }

    /// The wall clock: UTC at system time 0, in ns since the Unix epoch.
    pub fn wallclock_ns(&self) -> u64 {
        *self.wallclock.lock()
    }

    /// Move serial input waiting in the platform's UARTs into the hardware
    /// domain's buffer, or to the debug keys once the switch code (CTRL-A
    /// three times, `conswitch=`) gave input to Warden; `notify`: raise
    /// VIRQ_CONSOLE in the hardware domain if any arrived for it (Xen's
    /// `__serial_rx` notifies for every byte, kept or dropped). Returns the
    /// bytes that arrived for the hardware domain.
    pub fn poll_serial_input(&self, notify: bool) -> usize {
        use crate::xen::console::{Input, InputSwitch};
        let mut buf = [0u8; 64];
        let mut total = 0;
        // Bounded: a UART that never runs dry cannot hold the CPU here.
        for _ in 0..4 {
            let n = self.platform.serial_input(&mut buf);
            if n == 0 {
                break;
            }
            // Route under the switch's lock, act in order without it.
            let mut ev = [Input::Dom0(0); 64];
            let mut ne = 0;
            let letter = {
                let mut sw = self.input.lock();
                let sw = sw.get_or_insert_with(|| InputSwitch::new(self.platform.conswitch()));
                for &b in &buf[..n] {
                    sw.feed(b, &mut |i| {
                        if ne < ev.len() {
                            ev[ne] = i;
                            ne += 1;
                        }
                    });
                }
                sw.letter()
            };
            let mut dom0 = [0u8; 64];
            let mut nd = 0;
            for i in &ev[..ne] {
                match *i {
                    Input::Dom0(c) => {
                        dom0[nd] = c;
                        nd += 1;
                    }
                    Input::Key(k) => self.debug_key(k),
                    Input::Switched { to_xen } => log::info!(
                        "*** Serial input to {} (type 'CTRL-{letter}' three times to switch input)",
                        if to_xen { "Xen" } else { "DOM0" }
                    ),
                }
            }
            if nd > 0 {
                self.serial_rx.lock().push(&dom0[..nd]);
                total += nd;
            }
        }
        if total > 0 && notify {
            self.send_hwdom_virq(warden_abi::xen::xen::VIRQ_CONSOLE);
        }
        total
    }

    /// CONSOLEIO_read: take up to `out.len()` bytes of serial input.
    pub fn read_serial_input(&self, out: &mut [u8]) -> usize {
        self.poll_serial_input(false);
        self.serial_rx.lock().take(out)
    }

    /// Rewrite `v`'s registered runstate area (if any) with its runstate now.
    pub fn publish_runstate(&self, v: &GuestVcpu, paging: crate::guestmem::PagingState) {
        use crate::xen::time::{Sink, publish_runstate};
        let Some(va) = v.clock.areas().runstate_va else {
            return;
        };
        let Some(rs) = self.sched.runstate((v.domid, v.id), self.now()) else {
            return;
        };
        struct Lin<'a>(&'a Hv, &'a Domain, crate::guestmem::PagingState, u64);
        impl Sink for Lin<'_> {
            fn put(&mut self, off: u64, data: &[u8]) -> bool {
                self.0
                    .write_linear(self.1, self.2, self.3.wrapping_add(off), data)
                    .is_ok()
            }
        }
        let flag = v.domain.hvm.vm_assist.load(Ordering::Relaxed)
            & warden_abi::xen::xen::vm_assist::HVM_MASK
            != 0;
        publish_runstate(&mut Lin(self, &v.domain, paging, va), &rs, flag);
    }

    // ------------------------------------------------------------ consoles

    /// Give boot-built domain `d` a console ring Warden serves
    /// (`xen::console`): a page at `CONSOLE_GFN` (one page more than its
    /// memory), `HVM_PARAM_CONSOLE_PFN` and `HVM_PARAM_CONSOLE_EVTCHN`.
    pub fn attach_boot_console(&self, d: &Domain) -> Result<(), i32> {
        use crate::xen::console::CONSOLE_GFN;
        {
            let mut m = d.mem.write();
            m.max_pages = m.max_pages.saturating_add(1);
        }
        self.populate(d, CONSOLE_GFN)?;
        self.write_phys(d, CONSOLE_GFN * 4096, &[0u8; 4096])
            .map_err(|_| errno::EFAULT)?;
        d.hvm
            .params
            .set_internal(warden_abi::xen::hvm_params::CONSOLE_PFN, CONSOLE_GFN);
        d.hvm.console.attach(CONSOLE_GFN);
        // Its event channel: unbound, for the console backend's domain
        // (dom0), labelled as Xen labels a channel d allocates for dom0, so
        // that xenconsoled can bind it later. Until then a send on it is
        // dropped (an unbound port) and Warden polls the ring.
        let own = self.domains.snapshot(d.id).map_or(0, |s| s.sid);
        let peer = self.domains.snapshot(0).map_or(own, |s| s.sid);
        let port = self.evtchn_alloc_unbound(d, 0, self.channel_label(own, peer))?;
        d.hvm
            .params
            .set_internal(warden_abi::xen::hvm_params::CONSOLE_EVTCHN, port as u64);
        Ok(())
    }

    /// The label Xen 4.17 gives a new event channel of a domain labelled
    /// `owner` towards one it sees as `peer`: type_transition(owner, peer):event
    /// (0 with FLASK disabled).
    pub fn channel_label(&self, owner: u32, peer: u32) -> u32 {
        self.gate.flask().map_or(0, |f| {
            f.compute_create(
                xsm::Sid::from_raw(owner),
                xsm::Sid::from_raw(peer),
                <xsm::class::Event as xsm::Class>::ID.raw(),
            )
            .map_or(crate::xen::evtchn::UNLABELED, |s| s.raw())
        })
    }

    /// Drain the console ring of `d`, if Warden serves one; the bytes taken.
    pub fn service_console(&self, d: &Domain) -> usize {
        struct Page<'a>(&'a Hv, &'a Domain, u64);
        impl crate::xen::console::RingPage for Page<'_> {
            fn read(&self, off: u64, buf: &mut [u8]) -> bool {
                self.0.read_phys(self.1, self.2 + off, buf).is_ok()
            }
            fn write(&self, off: u64, data: &[u8]) -> bool {
                self.0.write_phys(self.1, self.2 + off, data).is_ok()
            }
        }
        let Some(gfn) = d.hvm.console.gfn() else {
            return 0;
        };
        crate::xen::console::drain_output(&Page(self, d, gfn * 4096), &mut |b| {
            self.guest_console_output(d, b)
        })
    }

    /// Drain the console rings Warden serves: those signalled, and all of
    /// them every `xen::console::POLL_NS` (one CPU does it; cheap otherwise);
    /// then take serial input for the hardware domain (the UARTs are
    /// polled, not interrupt-driven: VIRQ_CONSOLE follows input within
    /// `POLL_NS`).
    fn service_consoles(&self, now: u64) {
        let last = self.console_polled.load(Ordering::Relaxed);
        if now.saturating_sub(last) < crate::xen::console::POLL_NS
            || self
                .console_polled
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        for d in self.domains.all() {
            if d.hvm.console.gfn().is_some() {
                d.hvm.console.take_kick();
                self.service_console(&d);
            }
        }
        self.poll_serial_input(true);
    }

    // ------------------------------------------------------------ run loop

    /// One pass of housekeeping: interrupts, timers.
    fn housekeeping(&self) {
        self.platform.poll_interrupts();
        let now = self.now();
        let due = self.sched.expire(now);
        self.kick_all(&due.kick);
        for v in due.timer {
            self.send_vcpu_virq(&v, warden_abi::xen::xen::VIRQ_TIMER);
        }
        self.service_consoles(now);
        self.lapic_timers_fired(due.lapic);
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
            self.publish_runstate(&v, hw.paging());
            loop {
                if v.clock.due(cpu) {
                    self.publish_time(&v, hw.paging());
                }
                let callback = self.upcall_to_inject(&v);
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
                        self.halt(&v, &**hw);
                        true
                    }
                    Ok(VmExit::ExternalInterrupt) | Ok(VmExit::Cancelled) => true,
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
                        crate::emul::ports::io(self, &v, &mut **hw, port, size, write);
                        true
                    }
                    Ok(VmExit::Msr { index, write }) => {
                        if crate::emul::vlapic::owns_msr(index) {
                            match self.lapic_msr(&v, index, write.is_some(), write.unwrap_or(0)) {
                                MsrResult::Read(val) => hw.finish_msr(Some(val)),
                                MsrResult::Written => hw.finish_msr(None),
                                MsrResult::Fault => hw.inject_gp(),
                            }
                        } else {
                            crate::emul::msr::access(self, &v, &mut **hw, index, write);
                        }
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
            // Descheduled with the hardware state still held, so the
            // runstate written is the last one (no other CPU runs `v` yet).
            let now = self.now();
            let kick = self.sched.descheduled(cpu, k, now);
            self.publish_runstate(&v, hw.paging());
            drop(hw);
            if let Some(c) = kick {
                self.platform.kick(c);
            }
        }
    }

    /// `d`'s console output (`console_io` writes, port 0xE9, the console
    /// ring Warden serves for it): the
    /// hardware domain's to the serial console as they are (and into the
    /// ring only with `console_to_ring`); a domU's as rate-limited `(dN) `
    /// lines into the ring's guest region and the serial console.
    pub fn guest_console_output(&self, d: &Domain, bytes: &[u8]) {
        let p = self.platform;
        let hwdom = d.privileged;
        if hwdom {
            p.console_hwdom_raw(bytes);
        }
        if hwdom && !p.console_to_ring() {
            return;
        }
        let limit = if hwdom {
            (0, 1)
        } else {
            p.guest_console_ratelimit()
        };
        let now_ms = p.now_ns() / 1_000_000;
        let id = d.id;
        d.console.lock().push(bytes, |line, rl| {
            if let Some(suppressed) = rl.admit(now_ms, limit) {
                p.console_guest_line(id, line, suppressed);
            }
        });
    }

    fn crash_with(&self, v: &GuestVcpu, hw: &dyn crate::vcpu::Vcpu, why: core::fmt::Arguments<'_>) {
        let mut regs = String::new();
        let _ = hw.dump(&mut regs);
        self.crash(v, why, &regs);
    }
}
