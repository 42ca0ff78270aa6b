//! Event channels and the shared_info page through the dispatcher, with the
//! default policy: binding, delivery into the shared_info page and the
//! vcpu_info, every refusal leaving the state as it was.

use super::*;
use crate::xen::shared_info::Shared;
use warden_abi::xen::event_channel as ec;
use warden_abi::xen::xen as x;
use warden_abi::{DOMID_SELF, hvm, memory};

pub(super) fn op<T: Pod>(w: &World, d: &Domain, sub: u32, a: &T) -> (i64, T) {
    w.put(d, ARG, a);
    let r = w.call(d, hc::EVENT_CHANNEL_OP, [sub as u64, ARG, 0, 0, 0]);
    (r, w.get(d, ARG))
}

fn status(w: &World, d: &Domain, dom: u16, port: u32) -> (i64, ec::Status) {
    op(
        w,
        d,
        ec::STATUS,
        &ec::Status {
            dom,
            port,
            ..Default::default()
        },
    )
}

fn alloc_unbound(w: &World, d: &Domain, remote: u16) -> u32 {
    let (r, a) = op(
        w,
        d,
        ec::ALLOC_UNBOUND,
        &ec::AllocUnbound {
            dom: DOMID_SELF,
            remote_dom: remote,
            port: 0,
        },
    );
    assert_eq!(r, 0, "alloc_unbound");
    a.port
}

fn bind(w: &World, d: &Domain, rdom: u16, rport: u32) -> (i64, u32) {
    let (r, a) = op(
        w,
        d,
        ec::BIND_INTERDOMAIN,
        &ec::BindInterdomain {
            remote_dom: rdom,
            pad: 0,
            remote_port: rport,
            local_port: 0,
        },
    );
    (r, a.local_port)
}

fn send(w: &World, d: &Domain, port: u32) -> i64 {
    op(w, d, ec::SEND, &ec::Send { port }).0
}

/// (pending bit of `port`, vcpu 0's pending_sel, vcpu 0's upcall_pending).
pub(super) fn bits(w: &World, d: &Domain, port: u32) -> (bool, u64, u8) {
    let v = d.vcpu(0).unwrap();
    Shared::with(d, w.hv.platform.mem(), |s| {
        let p = s
            .si_read(x::EVTCHN_PENDING_OFFSET + 8 * (port / 64) as u64)
            .unwrap();
        let sel = s.vi_read(&v, 8).unwrap();
        let up = s.vi_read(&v, 0).unwrap() as u8;
        (p & (1 << (port % 64)) != 0, sel, up)
    })
}

pub(super) fn clear_bits(w: &World, d: &Domain) {
    let v = d.vcpu(0).unwrap();
    Shared::with(d, w.hv.platform.mem(), |s| {
        for i in 0..64 {
            s.si_and(x::EVTCHN_PENDING_OFFSET + 8 * i, 0);
        }
        let pa = s.vcpu_info(&v).unwrap();
        w.hv.platform.mem().fetch_and_u64(pa, 0);
        w.hv.platform.mem().fetch_and_u64(pa + 8, 0);
    });
}

#[test]
fn interdomain_bind_and_send_both_ways_deliver_the_upcall() {
    let w = world(true);
    let _d0 = w.domain(0, "system_u:system_r:dom0_t");
    let a = w.domain(1, DOMU);
    let b = w.domain(2, DOMU);
    let pa = alloc_unbound(&w, &a, 2);
    assert_eq!(pa, 1, "port 0 is reserved: the first port is 1");
    let (r, pb) = bind(&w, &b, 1, pa);
    assert_eq!(r, 0, "{:?}", w.audit_lines());
    // Xen leaves the new local port pending.
    assert!(bits(&w, &b, pb).0);
    clear_bits(&w, &b);
    let (r, s) = status(&w, &a, DOMID_SELF, pa);
    assert_eq!(r, 0);
    assert_eq!(s.status, ec::STAT_INTERDOMAIN);
    assert_eq!((s.u[0], s.u[1]), (2, pb));
    // a -> b
    assert_eq!(send(&w, &a, pa), 0);
    assert_eq!(bits(&w, &b, pb), (true, 1 << (pb / 64), 1));
    assert!(!bits(&w, &a, pa).0);
    // b -> a
    assert_eq!(send(&w, &b, pb), 0);
    assert_eq!(bits(&w, &a, pa), (true, 1, 1));
    // A masked port is pending but raises nothing.
    clear_bits(&w, &b);
    Shared::with(&b, w.hv.platform.mem(), |s| {
        s.si_or(x::EVTCHN_MASK_OFFSET, 1 << pb);
    });
    assert_eq!(send(&w, &a, pa), 0);
    assert_eq!(bits(&w, &b, pb), (true, 0, 0));
    // Unmasking it delivers it.
    assert_eq!(op(&w, &b, ec::UNMASK, &ec::Unmask { port: pb }).0, 0);
    assert_eq!(bits(&w, &b, pb), (true, 1, 1));
    // Closing one end leaves the other unbound (towards the closer).
    assert_eq!(op(&w, &a, ec::CLOSE, &ec::Close { port: pa }).0, 0);
    let (_, s) = status(&w, &b, DOMID_SELF, pb);
    assert_eq!((s.status, s.u[0]), (ec::STAT_UNBOUND, 1));
    assert_eq!(
        w.audit_lines(),
        Vec::<String>::new(),
        "no denial on the way"
    );
    // A closed port is unlabeled again: its status is refused to a domU (as Xen).
    let (r, _) = status(&w, &a, DOMID_SELF, pa);
    assert_eq!(r, -(errno::EACCES as i64));
    assert_eq!(a.evtchn.snapshot(pa).unwrap().state.stat(), ec::STAT_CLOSED);
}

#[test]
fn refusals_leave_the_channels_as_they_were() {
    let w = world(true);
    let _d0 = w.domain(0, "system_u:system_r:dom0_t");
    let a = w.domain(1, DOMU);
    let b = w.domain(2, DOMU);
    let c = w.domain(3, DOMU);
    let pa = alloc_unbound(&w, &a, 2);
    let before = status(&w, &a, DOMID_SELF, pa);
    // Bad ports.
    for bad in [0u32, 4096, 77, u32::MAX] {
        assert_eq!(send(&w, &a, bad), -(errno::EINVAL as i64), "send {bad}");
        assert_eq!(
            op(&w, &a, ec::CLOSE, &ec::Close { port: bad }).0,
            -(errno::EINVAL as i64),
            "close {bad}"
        );
    }
    assert_eq!(status(&w, &a, DOMID_SELF, 4096).0, -(errno::EINVAL as i64));
    // Wrong domain: c may not bind a port meant for b; nonexistent domains.
    assert_eq!(bind(&w, &c, 1, pa).0, -(errno::EINVAL as i64));
    assert_eq!(bind(&w, &b, 9, pa).0, -(errno::ESRCH as i64));
    assert_eq!(bind(&w, &b, 1, pa + 1).0, -(errno::EINVAL as i64));
    assert_eq!(status(&w, &a, DOMID_SELF, pa), before);
    // A closed channel cannot be bound, sent on or closed again.
    assert_eq!(op(&w, &a, ec::CLOSE, &ec::Close { port: pa }).0, 0);
    let closed = a.evtchn.snapshot(pa).unwrap().state.stat();
    assert_eq!(closed, ec::STAT_CLOSED);
    assert_eq!(bind(&w, &b, 1, pa).0, -(errno::EINVAL as i64));
    assert_eq!(send(&w, &a, pa), -(errno::EINVAL as i64));
    assert_eq!(
        op(&w, &a, ec::CLOSE, &ec::Close { port: pa }).0,
        -(errno::EINVAL as i64)
    );
    assert_eq!(a.evtchn.snapshot(pa).unwrap().state.stat(), closed);
    // VIRQs: out of range, global on vCPU 1, twice, a missing vCPU.
    let virq = |v: u32, vcpu: u32| {
        op(
            &w,
            &a,
            ec::BIND_VIRQ,
            &ec::BindVirq {
                virq: v,
                vcpu,
                port: 0,
            },
        )
        .0
    };
    assert_eq!(virq(x::NR_VIRQS, 0), -(errno::EINVAL as i64));
    assert_eq!(virq(x::VIRQ_DOM_EXC, 1), -(errno::EINVAL as i64));
    assert_eq!(virq(x::VIRQ_TIMER, 5), -(errno::ENOENT as i64));
    assert!(virq(x::VIRQ_TIMER, 0) == 0);
    assert_eq!(virq(x::VIRQ_TIMER, 0), -(errno::EEXIST as i64));
    // bind_vcpu of a per-vCPU VIRQ port is refused.
    let tp = a.evtchn.virq_port(0, x::VIRQ_TIMER);
    assert_eq!(
        op(&w, &a, ec::BIND_VCPU, &ec::BindVcpu { port: tp, vcpu: 0 }).0,
        -(errno::EINVAL as i64)
    );
    // FIFO is refused so Linux stays on 2-level.
    let ic = |gfn: u64, offset: u32| {
        op(
            &w,
            &a,
            ec::INIT_CONTROL,
            &ec::InitControl {
                control_gfn: gfn,
                offset,
                ..Default::default()
            },
        )
        .0
    };
    assert_eq!(ic(5, 0), -(errno::EOPNOTSUPP as i64));
    assert_eq!(ic(1 << 40, 0), -(errno::EINVAL as i64));
    assert_eq!(ic(5, 4), -(errno::EINVAL as i64));
    // Reset of another domain that is not paused: EINVAL (and denied to a domU).
    let r = op(&w, &a, ec::RESET, &ec::Reset { dom: 2 }).0;
    assert!(r == -(errno::EACCES as i64) || r == -(errno::EINVAL as i64));
}

#[test]
fn a_channel_the_policy_forbids_is_denied_with_its_avc_line_and_nothing_changes() {
    // isolated_domU_t channels never reach a domU_t (policies/modules/isolated_domU.te).
    let w = world(true);
    let _d0 = w.domain(0, "system_u:system_r:dom0_t");
    let iso = w.domain(1, "user_1:vm_r:isolated_domU_t");
    let u = w.domain(2, DOMU);
    let (r, _) = op(
        &w,
        &iso,
        ec::ALLOC_UNBOUND,
        &ec::AllocUnbound {
            dom: DOMID_SELF,
            remote_dom: 2,
            port: 0,
        },
    );
    assert_eq!(r, -(errno::EACCES as i64));
    let lines = w.audit_lines();
    assert!(
        lines.iter().any(|l| l.contains("tclass=event")),
        "no avc line: {lines:?}"
    );
    assert!(iso.evtchn.snapshot(1).unwrap().state.stat() == ec::STAT_CLOSED);
    // Nor may the domU create one towards it.
    let (r, _) = op(
        &w,
        &u,
        ec::ALLOC_UNBOUND,
        &ec::AllocUnbound {
            dom: DOMID_SELF,
            remote_dom: 1,
            port: 0,
        },
    );
    assert_eq!(r, -(errno::EACCES as i64));
    assert!(w.audit_lines().iter().any(|l| l.contains("tclass=event")));
    // A port of the domU waiting for it (made behind the checks) cannot be
    // bound by it: its channel may not bind to a domU_t.
    let pu = w.hv.evtchn_alloc_unbound_unchecked(&u, 1).unwrap();
    let before = status(&w, &u, DOMID_SELF, pu);
    let (r, _) = bind(&w, &iso, 2, pu);
    assert_eq!(r, -(errno::EACCES as i64));
    assert!(w.audit_lines().iter().any(|l| l.contains("tclass=event")));
    assert_eq!(status(&w, &u, DOMID_SELF, pu), before);
}

#[test]
fn ipi_virq_timer_and_the_callback_vector() {
    let w = world(true);
    let _d0 = w.domain(0, "system_u:system_r:dom0_t");
    let a = w.domain(1, DOMU);
    let v = a.vcpu(0).unwrap();
    // No callback yet: nothing to inject.
    let (r, ipi) = op(&w, &a, ec::BIND_IPI, &ec::BindIpi { vcpu: 0, port: 0 });
    assert_eq!(r, 0);
    assert_eq!(send(&w, &a, ipi.port), 0);
    assert_eq!(bits(&w, &a, ipi.port), (true, 1, 1));
    assert_eq!(w.hv.upcall_to_inject(&v), None);
    // HVM_PARAM_CALLBACK_IRQ, vector type: injected while upcall_pending is set.
    w.put(
        &a,
        ARG,
        &hvm::HvmParam {
            domid: DOMID_SELF,
            pad: 0,
            index: hvm::PARAM_CALLBACK_IRQ,
            value: (2 << 56) | 0xf3,
        },
    );
    assert_eq!(
        w.call(&a, hc::HVM_OP, [hvm::SET_PARAM as u64, ARG, 0, 0, 0]),
        0
    );
    assert_eq!(w.hv.upcall_to_inject(&v), Some(0xf3));
    assert_eq!(w.hv.upcall_to_inject(&v), Some(0xf3));
    clear_bits(&w, &a);
    assert_eq!(w.hv.upcall_to_inject(&v), None);
    // The per-vCPU vector wins.
    w.put(
        &a,
        ARG,
        &hvm::UpcallVector {
            vcpu: 0,
            vector: 0x40,
            pad: [0; 3],
        },
    );
    assert_eq!(
        w.call(
            &a,
            hc::HVM_OP,
            [hvm::SET_EVTCHN_UPCALL_VECTOR as u64, ARG, 0, 0, 0]
        ),
        0
    );
    let (r, t) = op(
        &w,
        &a,
        ec::BIND_VIRQ,
        &ec::BindVirq {
            virq: x::VIRQ_TIMER,
            vcpu: 0,
            port: 0,
        },
    );
    assert_eq!(r, 0);
    // It goes through the vCPU's local APIC (as Xen's vlapic_set_irq): with
    // the APIC software-enabled, the edge lands in the IRR, once.
    {
        let clk = w.hv.lapic_clock();
        let mut st = v.lapic.lock();
        st.apic.write_reg(0xF0, 0x1FF, &clk);
    }
    w.hv.send_vcpu_virq(&v, x::VIRQ_TIMER);
    assert!(bits(&w, &a, t.port).0);
    assert_eq!(w.hv.upcall_to_inject(&v), None);
    assert!(v.lapic.lock().apic.irr_pending(0x40));
    assert_eq!(v.lapic.lock().apic.highest_deliverable(), Some(0x40));
    clear_bits(&w, &a);
    assert_eq!(w.hv.upcall_to_inject(&v), None);
}

#[test]
fn the_upcall_vector_waits_for_the_apic_to_be_enabled() {
    // Linux sets its per-vCPU vector before it software-enables its local
    // APIC; an event in between must not be lost (else its
    // evtchn_upcall_pending stays set and no later event notifies again).
    let w = world(true);
    let _d0 = w.domain(0, "system_u:system_r:dom0_t");
    let a = w.domain(1, DOMU);
    let v = a.vcpu(0).unwrap();
    w.put(
        &a,
        ARG,
        &hvm::UpcallVector {
            vcpu: 0,
            vector: 0x40,
            pad: [0; 3],
        },
    );
    assert_eq!(
        w.call(
            &a,
            hc::HVM_OP,
            [hvm::SET_EVTCHN_UPCALL_VECTOR as u64, ARG, 0, 0, 0]
        ),
        0
    );
    let (r, t) = op(
        &w,
        &a,
        ec::BIND_VIRQ,
        &ec::BindVirq {
            virq: x::VIRQ_TIMER,
            vcpu: 0,
            port: 0,
        },
    );
    assert_eq!(r, 0);
    assert!(!v.lapic.lock().apic.enabled(), "software-disabled at reset");
    w.hv.send_vcpu_virq(&v, x::VIRQ_TIMER);
    assert!(bits(&w, &a, t.port).0);
    // Entries while the APIC refuses it: nothing lands, the edge is kept.
    assert_eq!(w.hv.upcall_to_inject(&v), None);
    assert_eq!(w.hv.upcall_to_inject(&v), None);
    assert!(!v.lapic.lock().apic.irr_pending(0x40));
    // A second event finds upcall_pending already set: no new notification.
    w.hv.send_vcpu_virq(&v, x::VIRQ_TIMER);
    {
        let clk = w.hv.lapic_clock();
        v.lapic.lock().apic.write_reg(0xF0, 0x1FF, &clk);
    }
    // The first entry after the guest enables its APIC delivers it, once.
    assert_eq!(w.hv.upcall_to_inject(&v), None);
    assert!(v.lapic.lock().apic.irr_pending(0x40));
    assert_eq!(v.lapic.lock().apic.highest_deliverable(), Some(0x40));
    v.lapic.lock().apic.ack(0x40);
    assert_eq!(w.hv.upcall_to_inject(&v), None);
    assert!(!v.lapic.lock().apic.irr_pending(0x40), "raised once");
}

#[test]
fn shared_info_maps_frees_the_ram_page_and_moves() {
    let w = world(true);
    let _d0 = w.domain(0, "system_u:system_r:dom0_t");
    let a = w.domain(1, DOMU);
    let map = |gpfn: u64| {
        w.put(
            &a,
            ARG,
            &memory::AddToPhysmap {
                domid: DOMID_SELF,
                size: 0,
                space: memory::XENMAPSPACE_SHARED_INFO,
                idx: 0,
                gpfn,
            },
        );
        w.call(
            &a,
            hc::MEMORY_OP,
            [memory::ADD_TO_PHYSMAP as u64, ARG, 0, 0, 0],
        )
    };
    let free0 = w.plat.mem.free_frames();
    // Port 1 pending before the mapping: visible through it.
    let p = w.hv.evtchn_alloc_unbound_unchecked(&a, 1).unwrap();
    w.hv.evtchn_set_pending(&a, 0, p);
    assert_eq!(map(40), 0);
    assert_eq!(
        a.mem.read().tot_pages,
        PAGES - 1,
        "the RAM page at 40 is gone"
    );
    assert_eq!(w.plat.mem.free_frames(), free0 + 1, "and freed");
    let si: x::SharedInfo = {
        let mut b = alloc::vec![0u8; core::mem::size_of::<x::SharedInfo>()];
        w.hv.read_phys(&a, 40 << 12, &mut b).unwrap();
        x::SharedInfo::from_bytes(&b).unwrap()
    };
    assert_eq!(si.evtchn_pending[0], 1 << p);
    assert_eq!(si.vcpu_info[0].evtchn_upcall_pending, 1);
    // Moving it leaves the old place empty.
    assert_eq!(map(41), 0);
    assert!(w.hv.read_phys(&a, 40 << 12, &mut [0u8; 8]).is_err());
    assert_eq!(a.mem.read().tot_pages, PAGES - 2);
    // Index other than 0, a gfn out of range: EINVAL, nothing moves.
    w.put(
        &a,
        ARG,
        &memory::AddToPhysmap {
            domid: DOMID_SELF,
            size: 0,
            space: memory::XENMAPSPACE_SHARED_INFO,
            idx: 1,
            gpfn: 42,
        },
    );
    assert_eq!(
        w.call(
            &a,
            hc::MEMORY_OP,
            [memory::ADD_TO_PHYSMAP as u64, ARG, 0, 0, 0]
        ),
        -(errno::EINVAL as i64)
    );
    assert_eq!(map(1 << 40), -(errno::EINVAL as i64));
    assert_eq!(a.shared_info.gfn(), Some(41));
    // Destroying the domain returns every frame (the shared_info page too).
    let before_destroy = w.plat.mem.free_frames();
    w.hv.destroy(&a);
    assert!(w.plat.mem.free_frames() > before_destroy + PAGES - 3);
}

#[test]
fn a_domain_shutting_down_raises_virq_dom_exc_in_dom0() {
    let w = world(true);
    let d0 = w.domain(0, "system_u:system_r:dom0_t");
    let a = w.domain(1, DOMU);
    let (r, b) = op(
        &w,
        &d0,
        ec::BIND_VIRQ,
        &ec::BindVirq {
            virq: x::VIRQ_DOM_EXC,
            vcpu: 0,
            port: 0,
        },
    );
    assert_eq!(r, 0, "{:?}", w.audit_lines());
    assert!(!bits(&w, &d0, b.port).0);
    w.hv.shutdown(&a, 0);
    assert!(bits(&w, &d0, b.port).0);
}

#[test]
fn poll_on_ports_returns_at_once_when_pending_and_a_send_ends_it() {
    let w = world(true);
    let _d0 = w.domain(0, "system_u:system_r:dom0_t");
    let a = w.domain(1, DOMU);
    let (r, ipi) = op(&w, &a, ec::BIND_IPI, &ec::BindIpi { vcpu: 0, port: 0 });
    assert_eq!(r, 0);
    let port = ipi.port;
    let poll = |ports: &[u32]| {
        for (i, p) in ports.iter().enumerate() {
            w.put(&a, BUF + 4 * i as u64, p);
        }
        w.put(
            &a,
            ARG,
            &sched::Poll {
                ports: BUF,
                nr_ports: ports.len() as u32,
                timeout: 0,
                ..Default::default()
            },
        );
        w.call(&a, hc::SCHED_OP, [sched::POLL as u64, ARG, 0, 0, 0])
    };
    let blocked = || w.hv.sched.domain_state(1, 0).unwrap().all_blocked;
    assert_eq!(poll(&[4096]), -(errno::EINVAL as i64));
    assert!(!blocked(), "a refused poll does not block");
    // Not pending: the vCPU blocks (bounded), and a send on the port ends it.
    assert_eq!(poll(&[port]), 0);
    assert!(blocked(), "polling");
    assert_eq!(send(&w, &a, port), 0);
    assert!(!blocked(), "the send ended the poll");
    // Pending: returns at once without blocking.
    assert_eq!(poll(&[port]), 0);
    assert!(!blocked());
}
