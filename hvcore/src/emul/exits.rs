//! The exits of a vCPU that reach its emulated devices, and interrupt
//! injection:
//!
//! - APIC MSRs (APIC_BASE, TSC_DEADLINE, x2APIC 0x800..0x8FF) handed up by
//!   the backend as [`VmExit::Msr`](crate::vcpu::VmExit::Msr);
//! - nested page faults outside RAM: the instruction is fetched through the
//!   guest's page tables and the physmap, decoded ([`super::mmio`]) and
//!   emulated against the vLAPIC page or, anywhere else, as unclaimed MMIO
//!   (reads all-ones, writes ignored, as Xen without a device model);
//! - IPIs: an ICR write sets the IRR of every target (and wakes or kicks
//!   it); INIT takes the target down and resets its APIC; a Startup IPI to
//!   a vCPU that is down starts it in real mode at vector << 12 (applied by
//!   the target's own CPU before it next enters the guest);
//! - the LAPIC timer: its deadline is kept in the scheduler
//!   (`Scheduler::set_lapic_timer`), so a halted vCPU wakes when it fires;
//! - the choice of what to offer the guest before each entry ([`Hv::pick_irq`]):
//!   the event-channel callback vector first (Xen's `hvm_vcpu_has_pending_irq`
//!   order; it bypasses the APIC, Linux does not EOI it), then the vLAPIC's
//!   highest IRR vector above the PPR; after the exit, a LAPIC vector the
//!   guest took moves IRR -> ISR ([`Hv::irq_done`]).
//!
//! Locks: a vCPU's [`VcpuIntr`] lock is taken alone or before the
//! scheduler's lock, never while holding another vCPU's.

use super::mmio::{self, MmioInsn};
use super::vlapic::{Clock, Delivery, Ipi, Shorthand, Vlapic};
use crate::domain::GuestVcpu;
use crate::guestmem::{Fault, GuestPhys, translate};
use crate::hv::Hv;
use crate::p2m::Kind;
use crate::sched::Block;
use crate::vcpu::{EmulRegs, MsrResult, Vcpu};
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

/// A vCPU's interrupt state: its local APIC and the interrupt offered to
/// the guest and not taken yet.
#[derive(Debug, Clone)]
pub struct VcpuIntr {
    pub apic: Vlapic,
    /// The event-channel callback vector (no APIC involvement) offered and
    /// not taken yet: offered again until the guest takes it.
    pub callback_offered: Option<u8>,
}

impl VcpuIntr {
    pub fn new(vcpu: u32) -> VcpuIntr {
        VcpuIntr {
            apic: Vlapic::new(vcpu),
            callback_offered: None,
        }
    }
}

/// What was offered to the guest on an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offer {
    pub vector: u8,
    /// A vLAPIC vector (IRR -> ISR when taken), else the callback vector.
    pub lapic: bool,
}

/// Why an MMIO access could not be emulated (the guest is crashed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MmioError(pub String);

const NPF_WRITE: u64 = 1 << 1;
const NPF_FETCH: u64 = 1 << 4;
const NPF_IN_WALK: u64 = 1 << 33;

impl Hv {
    /// The time as the vLAPIC timer counts it.
    pub fn lapic_clock(&self) -> Clock {
        Clock {
            ns: self.platform.now_ns(),
            tsc: self.platform.rdtsc(),
            tsc_hz: self.platform.tsc_hz(),
        }
    }

    /// Publish `v`'s timer deadline to the scheduler (called with its lock
    /// held, so two CPUs never publish in the wrong order).
    pub(crate) fn sync_lapic_timer(&self, v: &GuestVcpu, st: &mut VcpuIntr, force: bool) {
        let change = st.apic.take_timer_change();
        if force || change.is_some() {
            self.sched
                .set_lapic_timer((v.domid, v.id), st.apic.timer_due());
        }
    }

    /// Wake `v` (it has an interrupt to take): unblock it, or kick the CPU
    /// running it so that the interrupt is offered at its next entry.
    pub(crate) fn wake_for_irq(&self, v: &GuestVcpu) {
        if let Some(c) = self.sched.notify((v.domid, v.id), self.platform.now_ns()) {
            self.platform.kick(c);
        }
    }

    /// Raise `vector` in `v`'s vLAPIC IRR (an interrupt that needs an EOI,
    /// e.g. the per-vCPU event-channel upcall vector) and wake it.
    /// Returns whether the APIC accepted it.
    pub fn lapic_raise(&self, v: &GuestVcpu, vector: u8) -> bool {
        let ok = v.lapic.lock().apic.set_irr(vector);
        if ok {
            self.wake_for_irq(v);
        }
        ok
    }

    /// An APIC MSR access by `v` (`VmExit::Msr`).
    pub fn lapic_msr(&self, v: &GuestVcpu, msr: u32, write: bool, value: u64) -> MsrResult {
        let clk = self.lapic_clock();
        let (res, ipi) = {
            let mut st = v.lapic.lock();
            let r = if write {
                match st.apic.wrmsr(msr, value, &clk) {
                    Ok(ipi) => (MsrResult::Written, ipi),
                    Err(_) => (MsrResult::Fault, None),
                }
            } else {
                match st.apic.rdmsr(msr, &clk) {
                    Ok(x) => (MsrResult::Read(x), None),
                    Err(_) => (MsrResult::Fault, None),
                }
            };
            self.sync_lapic_timer(v, &mut st, false);
            r
        };
        if let Some(ipi) = ipi {
            self.send_ipi(v, &ipi);
        }
        res
    }

    /// Deliver an IPI `src` wrote to its ICR to every vCPU of its domain it
    /// addresses.
    pub fn send_ipi(&self, src: &GuestVcpu, ipi: &Ipi) {
        if ipi.is_init_deassert() {
            return;
        }
        let vcpus: Vec<Arc<GuestVcpu>> = src.domain.vcpus.read().clone();
        let mut targets: Vec<&Arc<GuestVcpu>> = match ipi.shorthand {
            Shorthand::SelfOnly => vcpus.iter().filter(|t| t.id == src.id).collect(),
            Shorthand::AllIncludingSelf => vcpus.iter().collect(),
            Shorthand::AllExcludingSelf => vcpus.iter().filter(|t| t.id != src.id).collect(),
            Shorthand::None => vcpus
                .iter()
                .filter(|t| t.lapic.lock().apic.matches(ipi))
                .collect(),
        };
        if ipi.mode == Delivery::LowestPriority {
            targets.truncate(1);
        }
        for t in targets {
            match ipi.mode {
                Delivery::Fixed | Delivery::LowestPriority => {
                    self.lapic_raise(t, ipi.vector);
                }
                Delivery::Init => self.lapic_init(t),
                Delivery::Startup => self.lapic_startup(t, ipi.vector),
                Delivery::Nmi | Delivery::Smi | Delivery::Other => {
                    log::debug!(
                        "d{}v{}: IPI {:?} to v{} not delivered (not emulated)",
                        src.domid,
                        src.id,
                        ipi.mode,
                        t.id
                    );
                }
            }
        }
    }

    /// INIT: `t` goes down (waits for a Startup IPI) with its APIC reset.
    fn lapic_init(&self, t: &GuestVcpu) {
        {
            let mut st = t.lapic.lock();
            st.apic.reset();
            st.apic.startup = None;
            st.callback_offered = None;
            self.sync_lapic_timer(t, &mut st, true);
        }
        if let Some(c) = self.sched.down((t.domid, t.id), self.platform.now_ns()) {
            self.platform.kick(c);
        }
    }

    /// The guest executed HLT (RIP is already past it). With interrupts
    /// enabled the vCPU blocks until an event or interrupt arrives. With
    /// interrupts disabled nothing can wake it (no NMIs are emulated), so,
    /// as Xen's `hvm_hlt` and `hvm_vcpu_down`, it goes down; when it was the
    /// domain's last online vCPU the domain is shut down with reason
    /// poweroff. That is how Linux's halt and `poweroff` end in a PVH domU,
    /// whose ACPI tables (like libxl's) have no sleep states.
    pub fn halt(&self, v: &GuestVcpu, hw: &dyn Vcpu) {
        let k = (v.domid, v.id);
        let now = self.platform.now_ns();
        if hw.interrupts_off() {
            let (cpu, last) = self.sched.down_last(k, now);
            if let Some(c) = cpu {
                self.platform.kick(c);
            }
            if last {
                log::info!(
                    "d{}v{}: HLT with interrupts off on the last online vCPU: powering the domain off",
                    v.domid,
                    v.id
                );
                self.shutdown(&v.domain, warden_abi::sched::SHUTDOWN_POWEROFF);
            }
            return;
        }
        let pending = self.guest_upcall_pending(v) || self.irq_pending(v);
        if self.sched.block(k, Block::Event, pending, None, now) && self.irq_pending(v) {
            // An interrupt arrived between the check and the block.
            self.wake_for_irq(v);
        }
    }

    /// Startup IPI: start `t` in real mode at `vector` << 12 if it is down
    /// (ignored otherwise, as Xen).
    fn lapic_startup(&self, t: &GuestVcpu, vector: u8) {
        let k = (t.domid, t.id);
        if self.sched.is_up(k) {
            return;
        }
        t.lapic.lock().apic.startup = Some(vector);
        let now = self.platform.now_ns();
        let mut kick: Vec<u32> = Vec::new();
        kick.extend(self.sched.set_initialised(k, now));
        if let Ok(c) = self.sched.up(k, now) {
            kick.extend(c);
        }
        for c in kick {
            self.platform.kick(c);
        }
        // It may have gone down halted (INIT while blocked): unblock it.
        self.wake_for_irq(t);
    }

    /// Before entering `v` (its CPU holds `hw`): load a pending Startup
    /// IPI's state, then choose the vector to offer: the callback vector
    /// not yet taken, else `callback` (the event-channel decision), else the
    /// vLAPIC's highest deliverable vector.
    pub fn pick_irq(
        &self,
        v: &GuestVcpu,
        hw: &mut dyn Vcpu,
        callback: Option<u8>,
    ) -> Option<Offer> {
        let mut st = v.lapic.lock();
        if let Some(vector) = st.apic.startup.take() {
            hw.start_real_mode(vector);
            st.callback_offered = None;
        }
        if let Some(vector) = st.callback_offered.or(callback) {
            st.callback_offered = Some(vector);
            return Some(Offer {
                vector,
                lapic: false,
            });
        }
        st.apic.highest_deliverable().map(|vector| Offer {
            vector,
            lapic: true,
        })
    }

    /// After the exit: was `offer` taken? A LAPIC vector moves IRR -> ISR;
    /// the callback vector is no longer owed.
    pub fn irq_done(&self, v: &GuestVcpu, offer: Offer, taken: bool) {
        if !taken {
            return;
        }
        let mut st = v.lapic.lock();
        if offer.lapic {
            st.apic.ack(offer.vector);
        } else {
            st.callback_offered = None;
        }
    }

    /// Whether `v` has an interrupt to take (HLT must not block).
    pub fn irq_pending(&self, v: &GuestVcpu) -> bool {
        let st = v.lapic.lock();
        st.callback_offered.is_some() || st.apic.highest_deliverable().is_some()
    }

    /// Fire the expired LAPIC timers.
    pub fn expire_lapic_timers(&self) {
        let fired = self.sched.expire_lapic(self.platform.now_ns());
        self.lapic_timers_fired(fired);
    }

    /// The LAPIC timer wake-ups of `fired` are due: each vLAPIC decides
    /// what fires (and re-arms); a raised vector wakes its vCPU.
    pub fn lapic_timers_fired(&self, fired: Vec<Arc<GuestVcpu>>) {
        if fired.is_empty() {
            return;
        }
        let clk = self.lapic_clock();
        for v in fired {
            let raised = {
                let mut st = v.lapic.lock();
                let r = st.apic.timer_expired(&clk);
                self.sync_lapic_timer(&v, &mut st, true);
                r
            };
            if raised {
                self.wake_for_irq(&v);
            }
        }
    }

    /// A nested page fault of `v` at `gpa` (not RAM): emulate the
    /// instruction's access. Err: the guest cannot go on (crash it).
    pub fn mmio_fault(
        &self,
        v: &GuestVcpu,
        hw: &mut dyn Vcpu,
        gpa: u64,
        error_code: u64,
    ) -> Result<(), MmioError> {
        let fail = |why: String| {
            Err(MmioError(format!(
                "access to guest-physical {gpa:#x} outside its memory (nested page fault, error code {error_code:#x}): {why}"
            )))
        };
        let kind = {
            let m = v.domain.mem.read();
            m.p2m
                .as_ref()
                .and_then(|p| p.lookup_kind(self.platform.mem(), gpa >> 12))
                .map(|(_, k)| k)
        };
        // A write to a read-only grant mapping is emulated with the write
        // discarded, as Xen does for p2m_grant_map_ro: the guest goes on,
        // the granter's page is unchanged. Any other refusal by the
        // physmap is a guest bug.
        let discard = error_code & NPF_WRITE != 0 && kind == Some(Kind::Grant { writable: false });
        if kind.is_some() && !discard {
            return Err(MmioError(format!(
                "access to guest-physical {gpa:#x} refused by its physmap (nested page fault, error code {error_code:#x})"
            )));
        }
        if error_code & NPF_FETCH != 0 {
            return fail(String::from("instruction fetch"));
        }
        if error_code & NPF_IN_WALK != 0 {
            return fail(String::from("guest page-table walk"));
        }
        if hw.delivering_event() {
            return fail(String::from("during event delivery"));
        }
        let Some(mut regs) = hw.emul_regs() else {
            return fail(String::from("no instruction emulation for this vCPU"));
        };
        let (bytes, n) = match self.fetch_insn(v, &regs) {
            Ok(b) => b,
            Err(f) => return fail(format!("cannot fetch the instruction: {f}")),
        };
        let insn = match mmio::decode(&bytes[..n], regs.bitness) {
            Ok(i) => i,
            Err(e) => {
                return fail(format!(
                    "{e} at RIP {:#x} ({}-bit): {:02x?}",
                    regs.rip,
                    regs.bitness,
                    &bytes[..n]
                ));
            }
        };
        // A plain load or store must be the access that faulted (the
        // instruction was not changed under our feet); a read-modify-write
        // may fault on either access.
        if insn.is_read() != insn.is_write() && insn.is_write() != (error_code & NPF_WRITE != 0) {
            return fail(format!(
                "the {} at RIP {:#x} does not match the fault's direction",
                if insn.is_write() { "store" } else { "load" },
                regs.rip
            ));
        }
        if discard {
            if let Err(why) = self.discard_write(v, &insn, &mut regs, gpa) {
                return fail(why);
            }
        } else {
            self.mmio_access(v, &insn, &mut regs, gpa);
        }
        let next = regs.rip.wrapping_add(insn.len as u64);
        regs.rip = match regs.bitness {
            16 => next & 0xFFFF,
            32 => next & 0xFFFF_FFFF,
            _ => next,
        };
        hw.set_emul_regs(&regs);
        Ok(())
    }

    /// Emulate a store (or read-modify-write) into a read-only grant
    /// mapping at `gpa`: reads see the granted page, the write is dropped.
    /// The mapping is looked up again and read under the domain's memory
    /// lock, so an unmap in between cannot hand us a freed frame.
    fn discard_write(
        &self,
        v: &GuestVcpu,
        insn: &MmioInsn,
        regs: &mut EmulRegs,
        gpa: u64,
    ) -> Result<(), String> {
        let size = insn.size as usize;
        if (gpa & 0xFFF) as usize + size > 4096 {
            return Err(String::from(
                "a write into a read-only grant mapping crosses its page",
            ));
        }
        let m = v.domain.mem.read();
        let pa = match m
            .p2m
            .as_ref()
            .and_then(|p| p.lookup_kind(self.platform.mem(), gpa >> 12))
        {
            Some((pa, Kind::Grant { writable: false })) => pa,
            _ => {
                return Err(String::from(
                    "the read-only grant mapping changed under the write",
                ));
            }
        };
        let mut b = [0u8; 8];
        self.platform.mem().read(pa | (gpa & 0xFFF), &mut b[..size]);
        let value = u64::from_le_bytes(b);
        drop(m);
        let _dropped = insn.execute(&mut regs.gpr, &mut regs.rflags, &mut || value);
        Ok(())
    }

    /// Do the access of a decoded MMIO instruction at `gpa`: the vLAPIC's
    /// page, or unclaimed MMIO (reads all-ones, writes ignored).
    fn mmio_access(&self, v: &GuestVcpu, insn: &MmioInsn, regs: &mut EmulRegs, gpa: u64) {
        let clk = self.lapic_clock();
        let page = gpa & !0xFFF;
        let off = gpa & 0xFFF;
        let mut st = v.lapic.lock();
        if st.apic.mmio_base() != Some(page) {
            drop(st);
            let _ = insn.execute(&mut regs.gpr, &mut regs.rflags, &mut || u64::MAX);
            return;
        }
        let apic = &mut st.apic;
        let write = insn.execute(&mut regs.gpr, &mut regs.rflags, &mut || {
            apic.mmio_read(off, insn.size, &clk)
        });
        let ipi = write.and_then(|x| st.apic.mmio_write(off, insn.size, x, &clk));
        self.sync_lapic_timer(v, &mut st, false);
        drop(st);
        if let Some(ipi) = ipi {
            self.send_ipi(v, &ipi);
        }
    }

    /// Up to 15 instruction bytes at CS:RIP, through the guest's paging and
    /// the physmap; fewer if a later page is missing.
    fn fetch_insn(&self, v: &GuestVcpu, r: &EmulRegs) -> Result<([u8; 15], usize), Fault> {
        let ip = match r.bitness {
            16 => r.rip & 0xFFFF,
            32 => r.rip & 0xFFFF_FFFF,
            _ => r.rip,
        };
        let lin = if r.bitness == 64 {
            ip
        } else {
            r.cs_base.wrapping_add(ip) & 0xFFFF_FFFF
        };
        self.with_phys(&v.domain, lin, |pv| {
            let mut out = [0u8; 15];
            let mut got = 0usize;
            while got < out.len() {
                let a = lin.wrapping_add(got as u64);
                let n = ((4096 - (a & 4095)) as usize).min(out.len() - got);
                let piece = translate(pv, &r.paging, a, crate::guestmem::Access::FETCH)
                    .and_then(|gpa| pv.read_gpa(gpa, &mut out[got..got + n]));
                match piece {
                    Ok(()) => got += n,
                    Err(f) if got == 0 => return Err(f),
                    Err(_) => break,
                }
            }
            Ok((out, got))
        })
    }
}
