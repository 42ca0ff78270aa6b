//! Host tests of the exit glue (`emul::exits`) on the simulated machine of
//! the hypercall tests: IPI routing between the vCPUs of a domain, INIT and
//! Startup IPIs, MMIO faults decoded and emulated, the LAPIC timer through
//! the scheduler, and the choice of the vector to offer.

use super::exits::Offer;
use super::vlapic::{BASE_EXTD, MSR_APIC_BASE};
use crate::domain::Domain;
use crate::guestmem::PagingState;
use crate::hv::NewDomain;
use crate::hypercall::tests::{World, world};
use crate::vcpu::{EmulRegs, Entry, HypercallArgs, MsrResult, Vcpu, VmExit};
use alloc::sync::Arc;
use core::sync::atomic::Ordering;
use std::sync::Mutex;
use warden_abi::vcpu::HvmContext;

/// What the fake vCPUs were asked to do (shared by the test and the fakes).
#[derive(Debug, Default, Clone)]
struct Seen {
    regs: EmulRegs,
    real_mode: Option<u8>,
}

/// A vCPU with registers for instruction emulation; it never runs.
struct EmulVcpu(Arc<Mutex<Seen>>);

impl Vcpu for EmulVcpu {
    fn run(&mut self, _: &Entry<'_>) -> crate::Result<VmExit> {
        Err(crate::err!(Unsupported, "scripted vCPU"))
    }
    fn hypercall_args(&self) -> HypercallArgs {
        HypercallArgs::default()
    }
    fn finish_hypercall(&mut self, _: u64) {}
    fn continue_hypercall(&mut self, _: &HypercallArgs) {}
    fn skip_halt(&mut self) {}
    fn paging(&self) -> PagingState {
        PagingState::default()
    }
    fn cpl(&self) -> u8 {
        0
    }
    fn rip(&self) -> u64 {
        0
    }
    fn context(&self) -> HvmContext {
        HvmContext::default()
    }
    fn set_context(&mut self, _: &HvmContext) {}
    fn dump(&self, _: &mut dyn core::fmt::Write) -> core::fmt::Result {
        Ok(())
    }
    fn emul_regs(&self) -> Option<EmulRegs> {
        Some(self.0.lock().unwrap().regs)
    }
    fn set_emul_regs(&mut self, r: &EmulRegs) {
        self.0.lock().unwrap().regs = *r;
    }
    fn start_real_mode(&mut self, vector: u8) {
        self.0.lock().unwrap().real_mode = Some(vector);
    }
}

const PAGES: u64 = 16;

/// A running domain with two vCPUs (vCPU 1 down) and `PAGES` pages of RAM.
fn domain2(w: &World) -> Arc<Domain> {
    let d =
        w.hv.create_domain(NewDomain {
            want: Some(1),
            privileged: false,
            name: "smp".into(),
            sid: 0,
            max_pages: PAGES,
            weight: 256,
            handle: [1; 16],
        })
        .unwrap();
    w.hv.set_max_vcpus(&d, 2).unwrap();
    for g in 0..PAGES {
        w.hv.populate(&d, g).unwrap();
    }
    w.hv.sched.set_initialised((1, 0), 0);
    w.hv.unpause(&d).unwrap();
    d
}

fn msr(w: &World, d: &Domain, v: u32, msr: u32, value: u64) -> MsrResult {
    w.hv.lapic_msr(&d.vcpu(v).unwrap(), msr, true, value)
}

/// Enable the APIC of vCPU `v` in x2APIC mode.
fn x2apic_on(w: &World, d: &Domain, v: u32) {
    let base = d.vcpu(v).unwrap().lapic.lock().apic.base_msr();
    assert_eq!(
        msr(w, d, v, MSR_APIC_BASE, base | BASE_EXTD),
        MsrResult::Written
    );
    assert_eq!(msr(w, d, v, 0x80F, 0x1FF), MsrResult::Written);
}

fn irr(d: &Domain, v: u32, vector: u8) -> bool {
    d.vcpu(v).unwrap().lapic.lock().apic.irr_pending(vector)
}

#[test]
fn ipis_reach_their_targets_and_nobody_else() {
    let w = world(false);
    let d = domain2(&w);
    x2apic_on(&w, &d, 0);
    x2apic_on(&w, &d, 1);
    // Physical destination 2 = vCPU 1.
    assert_eq!(msr(&w, &d, 0, 0x830, (2 << 32) | 0x40), MsrResult::Written);
    assert!(irr(&d, 1, 0x40) && !irr(&d, 0, 0x40));
    // All but self, all including self, self.
    msr(&w, &d, 1, 0x830, (3 << 18) | 0x41);
    assert!(irr(&d, 0, 0x41) && !irr(&d, 1, 0x41));
    msr(&w, &d, 0, 0x830, (2 << 18) | 0x42);
    assert!(irr(&d, 0, 0x42) && irr(&d, 1, 0x42));
    msr(&w, &d, 1, 0x83F, 0x43);
    assert!(irr(&d, 1, 0x43) && !irr(&d, 0, 0x43));
    // Logical: cluster 0, bit 2 (APIC id 2).
    msr(&w, &d, 0, 0x830, (0b100 << 32) | (1 << 11) | 0x44);
    assert!(irr(&d, 1, 0x44) && !irr(&d, 0, 0x44));
    // Nobody at id 7; a reserved ICR bit is #GP and sends nothing.
    msr(&w, &d, 0, 0x830, (7 << 32) | 0x45);
    assert!(!irr(&d, 0, 0x45) && !irr(&d, 1, 0x45));
    assert_eq!(msr(&w, &d, 0, 0x830, (1 << 20) | 0x46), MsrResult::Fault);
    assert!(!irr(&d, 1, 0x46));
    // The vector offered is the highest deliverable; taken, it moves to the ISR.
    let v1 = d.vcpu(1).unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut hw = EmulVcpu(seen.clone());
    let o = w.hv.pick_irq(&v1, &mut hw, None).unwrap();
    assert_eq!(
        o,
        Offer {
            vector: 0x44,
            lapic: true
        }
    );
    w.hv.irq_done(&v1, o, false);
    assert!(irr(&d, 1, 0x44), "not taken: still requested");
    w.hv.irq_done(&v1, o, true);
    assert!(!irr(&d, 1, 0x44) && v1.lapic.lock().apic.in_service(0x44));
    // The callback vector goes first, and is offered until taken.
    let o = w.hv.pick_irq(&v1, &mut hw, Some(0xF3)).unwrap();
    assert_eq!(
        o,
        Offer {
            vector: 0xF3,
            lapic: false
        }
    );
    w.hv.irq_done(&v1, o, false);
    assert_eq!(w.hv.pick_irq(&v1, &mut hw, None), Some(o));
    w.hv.irq_done(&v1, o, true);
    // 0x44 in service masks 0x43 and 0x42 (same class): nothing to offer.
    assert_eq!(w.hv.pick_irq(&v1, &mut hw, None), None);
    assert_eq!(msr(&w, &d, 1, 0x80B, 0), MsrResult::Written);
    assert_eq!(
        w.hv.pick_irq(&v1, &mut hw, None).map(|o| o.vector),
        Some(0x43)
    );
}

#[test]
fn init_and_startup_ipis_start_a_vcpu_in_real_mode_once() {
    let w = world(false);
    let d = domain2(&w);
    x2apic_on(&w, &d, 0);
    let k = (1, 1);
    assert!(!w.hv.sched.is_up(k));
    // INIT (assert), then two SIPIs with vector 0x9A.
    msr(&w, &d, 0, 0x830, (2 << 32) | 0x4500);
    assert!(!w.hv.sched.is_up(k));
    msr(&w, &d, 0, 0x830, (2 << 32) | 0x0600 | 0x9A);
    assert!(w.hv.sched.is_up(k) && w.hv.sched.initialised(k));
    msr(&w, &d, 0, 0x830, (2 << 32) | 0x0600 | 0x9B);
    // Its own CPU loads the state before entering it, once, with the first vector.
    let v1 = d.vcpu(1).unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut hw = EmulVcpu(seen.clone());
    w.hv.pick_irq(&v1, &mut hw, None);
    assert_eq!(seen.lock().unwrap().real_mode, Some(0x9A));
    seen.lock().unwrap().real_mode = None;
    w.hv.pick_irq(&v1, &mut hw, None);
    assert_eq!(
        seen.lock().unwrap().real_mode,
        None,
        "the second SIPI is ignored"
    );
    // INIT takes it down again and resets its APIC; an INIT de-assert does nothing.
    x2apic_on(&w, &d, 1);
    msr(&w, &d, 1, 0x808, 0x20);
    msr(&w, &d, 0, 0x830, (2 << 32) | (1 << 15) | 0x0500);
    assert!(w.hv.sched.is_up(k));
    msr(&w, &d, 0, 0x830, (2 << 32) | 0x4500);
    assert!(!w.hv.sched.is_up(k));
    let a = v1.lapic.lock().apic.clone();
    assert!(a.x2apic(), "INIT keeps the APIC's mode");
    assert_eq!(a.ppr(), 0, "and resets its registers");
}

/// Put `code` at guest-physical 0x3000 and emulate the MMIO fault at `gpa`
/// of vCPU 0 running it (`bitness`-bit code, paging off).
fn fault(
    w: &World,
    d: &Domain,
    code: &[u8],
    bitness: u32,
    gpa: u64,
    error: u64,
    regs: [u64; 16],
) -> (Result<(), super::exits::MmioError>, EmulRegs) {
    w.hv.write_phys(d, 0x3000, code).unwrap();
    let seen = Arc::new(Mutex::new(Seen {
        regs: EmulRegs {
            gpr: regs,
            rip: 0x3000,
            rflags: 2,
            cs_base: 0,
            bitness,
            paging: PagingState::default(),
        },
        real_mode: None,
    }));
    let mut hw = EmulVcpu(seen.clone());
    let r = w.hv.mmio_fault(&d.vcpu(0).unwrap(), &mut hw, gpa, error);
    let regs = seen.lock().unwrap().regs;
    (r, regs)
}

#[test]
fn mmio_faults_reach_the_apic_page_or_read_all_ones() {
    let w = world(false);
    let d = domain2(&w);
    let mut g = [0u64; 16];
    g[0] = 0x1111_2222_3333_4444;
    // mov eax, [0xFEE00030]: the version register, EAX zero-extended.
    let (r, regs) = fault(
        &w,
        &d,
        &[0xA1, 0x30, 0, 0xE0, 0xFE],
        32,
        0xFEE0_0030,
        0x4,
        g,
    );
    r.unwrap();
    assert_eq!((regs.gpr[0], regs.rip), (0x0005_0014, 0x3005));
    // mov dword [0xFEE00080], 0x20 (TPR) in 32-bit code.
    let code = [0xC7, 0x05, 0x80, 0, 0xE0, 0xFE, 0x20, 0, 0, 0];
    let (r, regs) = fault(&w, &d, &code, 32, 0xFEE0_0080, 0x6, g);
    r.unwrap();
    assert_eq!(regs.rip, 0x300A);
    assert_eq!(d.vcpu(0).unwrap().lapic.lock().apic.ppr(), 0x20);
    // Unclaimed: a 16-bit load reads all-ones, a store is ignored.
    let (r, regs) = fault(&w, &d, &[0x8B, 0x07], 16, 0xFED0_0000, 0x4, g);
    r.unwrap();
    assert_eq!((regs.gpr[0], regs.rip), (0x1111_2222_3333_FFFF, 0x3002));
    let (r, _) = fault(&w, &d, &[0x89, 0x07], 16, 0xFED0_0000, 0x6, g);
    r.unwrap();
    // cmp dword [rbx], 0 against all-ones: flags set, nothing written.
    let (r, regs) = fault(&w, &d, &[0x83, 0x3B, 0x00], 64, 0xFED0_0000, 0x4, g);
    r.unwrap();
    assert_eq!(regs.rflags & 0x41, 0, "not zero, no borrow");
    // Refused: instruction fetch, a page the physmap has, an unknown form,
    // a direction that does not match; the registers are left alone.
    for (code, gpa, err) in [
        (&[0x90u8][..], 0xFED0_0000u64, 0x14u64),
        (&[0xA1, 0, 0x10, 0, 0], 0x1000, 0x7),
        (&[0x0F, 0xC1, 0x03], 0xFED0_0000, 0x6),
        (&[0x8B, 0x03], 0xFED0_0000, 0x6),
    ] {
        let (r, regs) = fault(&w, &d, code, 32, gpa, err, g);
        assert!(r.is_err(), "{code:02x?}");
        assert_eq!((regs.rip, regs.gpr), (0x3000, g));
    }
}

#[test]
fn the_lapic_timer_wakes_through_the_scheduler() {
    let w = world(false);
    let d = domain2(&w);
    x2apic_on(&w, &d, 0);
    msr(&w, &d, 0, 0x83E, 0xB);
    msr(&w, &d, 0, 0x832, 0x50);
    msr(&w, &d, 0, 0x838, 1000); // 10 us
    let due = d.vcpu(0).unwrap().lapic.lock().apic.timer_due().unwrap();
    assert_eq!(w.hv.sched.next_deadline(), Some(due));
    w.hv.expire_lapic_timers();
    assert!(!irr(&d, 0, 0x50), "not yet");
    w.plat.time.store(due + 1, Ordering::Relaxed);
    w.hv.expire_lapic_timers();
    assert!(irr(&d, 0, 0x50));
    assert!(w.hv.irq_pending(&d.vcpu(0).unwrap()));
    assert_eq!(w.hv.sched.next_deadline(), None, "one-shot: disarmed");
    // Periodic: re-armed after each expiry.
    msr(&w, &d, 0, 0x832, (1 << 17) | 0x51);
    msr(&w, &d, 0, 0x838, 1000);
    let t = w.plat.time.load(Ordering::Relaxed);
    w.plat.time.store(t + 20_000, Ordering::Relaxed);
    w.hv.expire_lapic_timers();
    assert!(irr(&d, 0, 0x51));
    assert!(w.hv.sched.next_deadline().is_some_and(|n| n > t + 20_000));
}

/// HLT with interrupts on blocks; with them off the vCPU goes down, and the
/// last one down powers the domain off (Xen's `hvm_hlt`): Linux's halt in
/// a PVH domU.
#[test]
fn hlt_with_interrupts_off_takes_the_vcpu_down_and_the_last_powers_off() {
    let w = world(false);
    let d = domain2(&w);
    x2apic_on(&w, &d, 0);
    // Start vCPU 1 (INIT, SIPI).
    msr(&w, &d, 0, 0x830, (2 << 32) | 0x4500);
    msr(&w, &d, 0, 0x830, (2 << 32) | 0x0600 | 0x9A);
    let (k0, k1) = ((d.id, 0), (d.id, 1));
    assert!(w.hv.sched.is_up(k0) && w.hv.sched.is_up(k1));
    let hw = |rflags: u64| {
        EmulVcpu(Arc::new(Mutex::new(Seen {
            regs: EmulRegs {
                rflags,
                ..EmulRegs::default()
            },
            real_mode: None,
        })))
    };
    let (v0, v1) = (d.vcpu(0).unwrap(), d.vcpu(1).unwrap());
    let active = || w.hv.sched.life(d.id) == Some(crate::sched::Life::Active);

    // Interrupts on: it blocks and stays online.
    w.hv.halt(&v0, &hw(0x202));
    assert!(w.hv.sched.is_up(k0) && active());
    // vCPU 1 halts with interrupts off: down; vCPU 0 is still up.
    w.hv.halt(&v1, &hw(0x2));
    assert!(!w.hv.sched.is_up(k1) && w.hv.sched.is_up(k0) && active());
    // A Startup IPI brings it back (it is down, as after INIT).
    msr(&w, &d, 0, 0x830, (2 << 32) | 0x0600 | 0x9C);
    assert!(w.hv.sched.is_up(k1));
    w.hv.halt(&v1, &hw(0x2));
    assert!(active(), "one vCPU still up");
    // The last online vCPU halts with interrupts off: powered off.
    w.hv.halt(&v0, &hw(0x2));
    assert!(!w.hv.sched.is_up(k0));
    assert_eq!(
        w.hv.sched.life(d.id),
        Some(crate::sched::Life::Shutdown(
            warden_abi::sched::SHUTDOWN_POWEROFF
        ))
    );
}

/// A guest's store (or read-modify-write) into a read-only grant mapping is
/// emulated with the write dropped, as Xen's p2m_grant_map_ro: the guest
/// goes on past the instruction, flags from the real value, page unchanged.
#[test]
fn a_write_into_a_read_only_grant_mapping_is_discarded() {
    use crate::p2m::HostMem;
    use crate::platform::Platform;
    let w = world(false);
    let d = domain2(&w);
    let mem = w.plat.mem();
    let pa = mem.alloc_frame().unwrap();
    mem.write(pa + 0x10, &7u32.to_le_bytes());
    let page = |mem: &dyn HostMem| {
        let mut b = [0u8; 4];
        mem.read(pa + 0x10, &mut b);
        u32::from_le_bytes(b)
    };
    {
        let mut m = d.mem.write();
        let p2m = m.p2m.as_mut().unwrap();
        p2m.map_grant(mem, 0x20, pa, false).unwrap();
    }
    let mut g = [0u64; 16];
    g[0] = 0x55;
    // add dword [0x20010], -7 (32-bit code): reads 7, result 0 (ZF), dropped.
    let (r, regs) = fault(
        &w,
        &d,
        &[0x83, 0x05, 0x10, 0x00, 0x02, 0x00, 0xF9],
        32,
        0x20010,
        0x7,
        g,
    );
    r.unwrap();
    assert_eq!(regs.rip, 0x3007);
    assert_ne!(regs.rflags & 0x40, 0, "ZF from the granted value 7");
    assert_eq!(page(mem), 7);
    // mov [0x20010], eax: dropped, RIP past it, registers unchanged.
    let (r, regs) = fault(&w, &d, &[0xA3, 0x10, 0x00, 0x02, 0x00], 32, 0x20010, 0x7, g);
    r.unwrap();
    assert_eq!((regs.rip, regs.gpr), (0x3005, g));
    assert_eq!(page(mem), 7);
    // Still refused: a write crossing the page, and a write fault on the
    // domain's own RAM.
    let (r, regs) = fault(&w, &d, &[0xA3, 0xFE, 0x0F, 0x02, 0x00], 32, 0x20FFE, 0x7, g);
    assert!(r.is_err() && regs.rip == 0x3000);
    let (r, _) = fault(&w, &d, &[0xA3, 0x00, 0x10, 0x00, 0x00], 32, 0x1000, 0x7, g);
    assert!(r.is_err());
}
