//! Issue 10 §3, §6: time, HVM parameters, memory maps, vcpu_op timers and
//! areas, set_timer_op, vm_assist and xen_version as Xen 4.17, through the
//! dispatcher (FLASK enforcing, the default policy).

use super::*;
use crate::guestmem::PagingState;
use warden_abi::hvm::{GET_PARAM, HvmParam, SET_PARAM};
use warden_abi::memory::{self as mem, E820Entry, ForeignMemoryMap, MemoryMap};
use warden_abi::vcpu::{self as vc, RegisterArea, RunstateInfo, SingleshotTimer, VcpuTimeInfo};
use warden_abi::version::{self as ver, FeatureInfo};
use warden_abi::xen::hvm_params as hp;
use warden_abi::{DOMID_SELF, hypercall as hc};

/// A running domain like `World::domain`, with `n` vCPUs.
fn domain_n(w: &World, id: u16, label: &str, n: u32) -> Arc<Domain> {
    let d =
        w.hv.create_domain(NewDomain {
            want: Some(id),
            privileged: id == 0,
            name: alloc::format!("d{id}"),
            sid: w.sid(label),
            max_pages: PAGES,
            weight: 256,
            handle: [id as u8; 16],
        })
        .unwrap();
    w.hv.set_max_vcpus(&d, n).unwrap();
    for g in 0..PAGES {
        w.hv.populate(&d, g).unwrap();
    }
    for v in 0..n {
        w.hv.sched.set_initialised((id, v), 0);
    }
    w.hv.unpause(&d).unwrap();
    d
}

fn param(w: &World, d: &Domain, op: u32, domid: u16, index: u32, value: u64) -> (i64, u64) {
    w.put(
        d,
        ARG,
        &HvmParam {
            domid,
            pad: 0,
            index,
            value,
        },
    );
    let r = w.call(d, hc::HVM_OP, [op as u64, ARG, 0, 0, 0]);
    (r, w.get::<HvmParam>(d, ARG).value)
}

#[test]
fn hvm_params_follow_xen_rules_and_flask() {
    let w = world(true);
    let d0 = w.domain(0, "system_u:system_r:dom0_t");
    let d1 = w.domain(1, DOMU);
    let d2 = w.domain(2, DOMU);
    d1.hvm.params.set_internal(hp::CONSOLE_PFN, 0xfefff);
    // A guest reads its console page and may not move it.
    assert_eq!(
        param(&w, &d1, GET_PARAM, DOMID_SELF, hp::CONSOLE_PFN, 0),
        (0, 0xfefff)
    );
    let (r, _) = param(&w, &d1, SET_PARAM, DOMID_SELF, hp::CONSOLE_PFN, 1);
    assert_eq!(r, -(errno::EPERM as i64));
    assert_eq!(d1.hvm.params.value(hp::CONSOLE_PFN), 0xfefff);
    // It sets its console event channel.
    assert_eq!(param(&w, &d1, SET_PARAM, 1, hp::CONSOLE_EVTCHN, 3).0, 0);
    assert_eq!(d1.hvm.params.value(hp::CONSOLE_EVTCHN), 3);
    // Not another domain's: FLASK refuses (hvm setparam), nothing changes.
    w.audit_lines();
    let (r, _) = param(&w, &d1, SET_PARAM, 2, hp::CONSOLE_EVTCHN, 4);
    assert_eq!(r, -(errno::EACCES as i64));
    assert_eq!(d2.hvm.params.value(hp::CONSOLE_EVTCHN), 0);
    assert!(
        w.audit_lines()
            .iter()
            .any(|l| l.contains("{ setparam }") && l.contains("tclass=hvm"))
    );
    // The toolstack sets what the guest may not.
    assert_eq!(param(&w, &d0, SET_PARAM, 1, hp::STORE_PFN, 0xfeffc).0, 0);
    assert_eq!(
        param(&w, &d1, GET_PARAM, DOMID_SELF, hp::STORE_PFN, 0),
        (0, 0xfeffc)
    );
    assert_eq!(param(&w, &d0, GET_PARAM, 1, hp::TIMER_MODE, 0), (0, 0));
    assert_eq!(
        param(&w, &d1, GET_PARAM, DOMID_SELF, hp::TIMER_MODE, 0).0,
        -(errno::EPERM as i64)
    );
    // Past the last parameter: EINVAL before the check (no audit record).
    w.audit_lines();
    let (r, _) = param(&w, &d1, SET_PARAM, 2, hp::NR_PARAMS, 1);
    assert_eq!(r, -(errno::EINVAL as i64));
    assert!(w.audit_lines().is_empty());
    // An unknown domain.
    assert_eq!(
        param(&w, &d1, GET_PARAM, 77, hp::CONSOLE_PFN, 0).0,
        -(errno::ESRCH as i64)
    );
}

#[test]
fn memory_map_returns_the_builders_map_and_set_memory_map_is_the_toolstacks() {
    let w = world(true);
    let d0 = w.domain(0, "system_u:system_r:dom0_t");
    let d1 = w.domain(1, DOMU);
    let d2 = w.domain(2, DOMU);
    let map = |d: &Domain, nr: u32| {
        w.put(
            d,
            ARG,
            &MemoryMap {
                nr_entries: nr,
                pad: 0,
                buffer: BUF,
            },
        );
        let r = w.call(d, hc::MEMORY_OP, [mem::MEMORY_MAP as u64, ARG, 0, 0, 0]);
        (r, w.get::<MemoryMap>(d, ARG).nr_entries)
    };
    assert_eq!(map(&d1, 8), (0, 1));
    let e: E820Entry = w.get(&d1, BUF);
    assert_eq!(
        (e.addr(), e.size(), e.kind),
        (0, PAGES * 4096, mem::E820_RAM)
    );
    // Room for none: none written.
    assert_eq!(map(&d1, 0), (0, 0));
    // The toolstack replaces d1's map with two entries.
    let two = [
        E820Entry::new(0, 0x9f000, mem::E820_RAM),
        E820Entry::new(0x100000, 0x300000, mem::E820_RAM),
    ];
    w.put(&d0, BUF, &two[0]);
    w.put(&d0, BUF + 20, &two[1]);
    let set = |d: &Domain, domid: u16, nr: u32| {
        w.put(
            d,
            ARG,
            &ForeignMemoryMap {
                domid,
                pad: [0; 3],
                map: MemoryMap {
                    nr_entries: nr,
                    pad: 0,
                    buffer: BUF,
                },
            },
        );
        w.call(d, hc::MEMORY_OP, [mem::SET_MEMORY_MAP as u64, ARG, 0, 0, 0])
    };
    assert_eq!(set(&d0, 1, 2), 0);
    assert_eq!(map(&d1, 8), (0, 2));
    assert_eq!(w.get::<E820Entry>(&d1, BUF + 20).addr(), 0x100000);
    // Too many entries: EINVAL; a domU may not set maps (mmu memorymap).
    assert_eq!(set(&d0, 1, mem::E820_MAX + 1), -(errno::EINVAL as i64));
    assert_eq!(set(&d1, 2, 1), -(errno::EACCES as i64));
    assert_eq!(set(&d1, DOMID_SELF, 1), -(errno::EACCES as i64));
    assert_eq!(d2.hvm.e820.lock().len(), 1);
    assert_eq!(d1.hvm.e820.lock().len(), 2);
    // No map: ENOSYS (Xen's answer).
    d2.hvm.e820.lock().clear();
    assert_eq!(map(&d2, 8).0, -(errno::ENOSYS as i64));
}

fn vcpu_op(w: &World, d: &Domain, cmd: u32, vcpu: u32, arg: u64) -> i64 {
    w.call(d, hc::VCPU_OP, [cmd as u64, vcpu as u64, arg, 0, 0])
}

#[test]
fn singleshot_periodic_and_set_timer_op_as_xen() {
    let w = world(true);
    let d = domain_n(&w, 1, DOMU, 2);
    // VIRQ_TIMER of vCPU 0 bound to a port: its pending bit shows a firing.
    let port = w.hv.evtchn_bind_virq(&d, 0, 0).unwrap();
    let pending = |port: u32| {
        crate::xen::shared_info::Shared::with(&d, w.plat.mem(), |s| {
            s.si_read(2048 + (port as u64 / 64) * 8)
                .is_some_and(|b| b & (1 << (port % 64)) != 0)
        })
    };
    let now = w.plat.now_ns();
    // A deadline in the past, future flag or not: fires at once, 0.
    w.put(
        &d,
        ARG,
        &SingleshotTimer {
            timeout_abs_ns: 1,
            flags: vc::SSHOTTMR_FUTURE,
            pad: 0,
        },
    );
    assert!(!pending(port));
    assert_eq!(vcpu_op(&w, &d, vc::SET_SINGLESHOT_TIMER, 0, ARG), 0);
    assert!(pending(port), "the past deadline fired VIRQ_TIMER at once");
    assert_eq!(w.hv.sched.timers((1, 0)), Some((None, 0)));
    // In the future: armed.
    let at = now + 1_000_000_000;
    w.put(
        &d,
        ARG,
        &SingleshotTimer {
            timeout_abs_ns: at,
            flags: 0,
            pad: 0,
        },
    );
    assert_eq!(vcpu_op(&w, &d, vc::SET_SINGLESHOT_TIMER, 0, ARG), 0);
    assert_eq!(w.hv.sched.timers((1, 0)), Some((Some(at), 0)));
    // Only on the calling vCPU.
    assert_eq!(
        vcpu_op(&w, &d, vc::SET_SINGLESHOT_TIMER, 1, ARG),
        -(errno::EINVAL as i64)
    );
    assert_eq!(
        vcpu_op(&w, &d, vc::STOP_SINGLESHOT_TIMER, 1, 0),
        -(errno::EINVAL as i64)
    );
    assert_eq!(w.hv.sched.timers((1, 1)), Some((None, 0)));
    assert_eq!(
        vcpu_op(&w, &d, vc::SET_SINGLESHOT_TIMER, 2, ARG),
        -(errno::ENOENT as i64)
    );
    assert_eq!(vcpu_op(&w, &d, vc::STOP_SINGLESHOT_TIMER, 0, 0), 0);
    assert_eq!(w.hv.sched.timers((1, 0)), Some((None, 0)));
    // Periodic: at least 1 ms; set on another vCPU is allowed.
    w.put(&d, ARG, &vc::SetPeriodicTimer { period_ns: 999_999 });
    assert_eq!(
        vcpu_op(&w, &d, vc::SET_PERIODIC_TIMER, 1, ARG),
        -(errno::EINVAL as i64)
    );
    assert_eq!(w.hv.sched.timers((1, 1)), Some((None, 0)));
    w.put(
        &d,
        ARG,
        &vc::SetPeriodicTimer {
            period_ns: 4_000_000,
        },
    );
    assert_eq!(vcpu_op(&w, &d, vc::SET_PERIODIC_TIMER, 1, ARG), 0);
    assert_eq!(w.hv.sched.timers((1, 1)), Some((None, 4_000_000)));
    // It fires on expiry, then every period.
    let t = w.plat.now_ns() + 10_000_000;
    let fired = w.hv.sched.expire(t).timer;
    assert!(fired.iter().any(|f| f.id == 1));
    let fired = w.hv.sched.expire(t + 1_000_000).timer;
    assert!(
        !fired.iter().any(|f| f.id == 1),
        "not before the next period"
    );
    let fired = w.hv.sched.expire(t + 4_000_000).timer;
    assert!(fired.iter().any(|f| f.id == 1));
    assert_eq!(vcpu_op(&w, &d, vc::STOP_PERIODIC_TIMER, 1, 0), 0);
    assert_eq!(w.hv.sched.timers((1, 1)), Some((None, 0)));
    // set_timer_op: 0 stops, a future deadline arms, a huge one is 100 ms.
    let now = w.plat.now_ns();
    assert_eq!(
        w.call(&d, hc::SET_TIMER_OP, [now + 5_000_000, 0, 0, 0, 0]),
        0
    );
    assert_eq!(w.hv.sched.timers((1, 0)), Some((Some(now + 5_000_000), 0)));
    assert_eq!(w.call(&d, hc::SET_TIMER_OP, [0, 0, 0, 0, 0]), 0);
    assert_eq!(w.hv.sched.timers((1, 0)), Some((None, 0)));
    assert_eq!(w.call(&d, hc::SET_TIMER_OP, [u64::MAX, 0, 0, 0, 0]), 0);
    let (t, _) = w.hv.sched.timers((1, 0)).unwrap();
    let t = t.unwrap();
    let now = w.plat.now_ns();
    assert!(t > now && t <= now + 100_000_000, "{t} vs {now}");
}

#[test]
fn the_last_vcpu_going_down_powers_the_domain_off() {
    let w = world(true);
    let d = domain_n(&w, 1, DOMU, 2);
    assert_eq!(w.hv.sched.life(1), Some(crate::sched::Life::Active));
    // vCPU 1 is not up: taking vCPU 0 down is taking the last one down.
    assert_eq!(vcpu_op(&w, &d, vc::DOWN, 0, 0), 0);
    assert_eq!(
        w.hv.sched.life(1),
        Some(crate::sched::Life::Shutdown(sched::SHUTDOWN_POWEROFF))
    );
}

#[test]
fn runstate_and_time_areas_are_written_and_vm_assist_is_hvm_only() {
    let w = world(true);
    let d = w.domain(1, DOMU);
    let v = d.vcpu(0).unwrap();
    // vm_assist: only runstate_update_flag (5) for an HVM domain.
    assert_eq!(
        w.call(&d, hc::VM_ASSIST, [0, 2, 0, 0, 0]),
        -(errno::EINVAL as i64)
    );
    assert_eq!(
        w.call(&d, hc::VM_ASSIST, [0, 64, 0, 0, 0]),
        -(errno::EINVAL as i64)
    );
    assert_eq!(
        d.hvm.vm_assist.load(core::sync::atomic::Ordering::Relaxed),
        0
    );
    assert_eq!(
        w.call(&d, hc::VM_ASSIST, [7, 5, 0, 0, 0]),
        -(errno::ENOSYS as i64)
    );
    assert_eq!(w.call(&d, hc::VM_ASSIST, [0, 5, 0, 0, 0]), 0);
    assert_eq!(
        d.hvm.vm_assist.load(core::sync::atomic::Ordering::Relaxed),
        1 << 5
    );
    // The runstate area is written at registration, flag cleared after.
    w.put(&d, ARG, &RegisterArea { addr: BUF });
    assert_eq!(
        vcpu_op(&w, &d, vc::REGISTER_RUNSTATE_MEMORY_AREA, 0, ARG),
        0
    );
    let rs: RunstateInfo = w.get(&d, BUF);
    let want = w.hv.sched.runstate((1, 0), w.plat.now_ns()).unwrap();
    assert_eq!(rs.state, want.state);
    assert_eq!(rs.state_entry_time, want.state_entry_time);
    assert_eq!(rs.state_entry_time & vc::RUNSTATE_UPDATE, 0);
    assert!(rs.time.iter().sum::<u64>() > 0);
    assert_eq!(w.call(&d, hc::VM_ASSIST, [1, 5, 0, 0, 0]), 0);
    assert_eq!(
        d.hvm.vm_assist.load(core::sync::atomic::Ordering::Relaxed),
        0
    );
    // Time: register vcpu_info and a secondary area; both get the same
    // record, version even, the machine's scale.
    let info_gpa = 3 * 4096 + 64;
    w.put(
        &d,
        ARG,
        &vc::RegisterVcpuInfo {
            gfn: 3,
            offset: 64,
            rsvd: 0,
        },
    );
    assert_eq!(vcpu_op(&w, &d, vc::REGISTER_VCPU_INFO, 0, ARG), 0);
    w.put(&d, ARG, &RegisterArea { addr: 5 * 4096 });
    assert_eq!(
        vcpu_op(&w, &d, vc::REGISTER_VCPU_TIME_MEMORY_AREA, 0, ARG),
        0
    );
    assert!(v.clock.due(0), "registration marks the record stale");
    w.hv.publish_time(&v, PagingState::default());
    let a: VcpuTimeInfo = w.get(&d, info_gpa + 32);
    let b: VcpuTimeInfo = w.get(&d, 5 * 4096);
    assert_eq!(a.version % 2, 0);
    assert!(a.version >= 2);
    assert_eq!(a, b);
    let s = crate::xen::time::Scale::from_hz(w.plat.tsc_hz());
    assert_eq!((a.tsc_to_system_mul, a.tsc_shift), (s.mul, s.shift));
    // The test platform's TSC is its clock: the record reads the clock.
    let t = w.plat.now_ns();
    let g = crate::xen::time::guest_time(&a, t);
    assert!(g.abs_diff(t) <= 1, "{g} vs {t}");
    // A second publication moves the version by two.
    w.hv.publish_time(&v, PagingState::default());
    let c: VcpuTimeInfo = w.get(&d, info_gpa + 32);
    assert_eq!(c.version, a.version + 2);
    // A second vcpu_info registration is refused.
    assert_eq!(
        vcpu_op(&w, &d, vc::REGISTER_VCPU_INFO, 0, ARG),
        -(errno::EINVAL as i64)
    );
}

#[test]
fn xen_version_answers_as_xen() {
    let w = world(true);
    let d0 = w.domain(0, "system_u:system_r:dom0_t");
    let d1 = w.domain(1, DOMU);
    let m = w.domain(2, "system_u:system_r:unlabeled_t");
    let features = |d: &Domain, idx: u32| {
        w.put(
            d,
            ARG,
            &FeatureInfo {
                submap_idx: idx,
                submap: 0xdead,
            },
        );
        let r = w.call(d, hc::XEN_VERSION, [ver::GET_FEATURES as u64, ARG, 0, 0, 0]);
        (r, w.get::<FeatureInfo>(d, ARG).submap)
    };
    assert_eq!(features(&d1, 0), (0, ver::FEAT_HVM_DOMAIN));
    assert_eq!(features(&d0, 0), (0, ver::FEAT_HVM_DOMAIN | ver::FEAT_DOM0));
    assert_eq!(features(&d1, 1).0, -(errno::EINVAL as i64));
    // Linux needs these three.
    for f in [
        ver::FEAT_AUTO_TRANSLATED_PHYSMAP,
        ver::FEAT_HVM_CALLBACK_VECTOR,
        ver::FEAT_HVM_SAFE_PVCLOCK,
    ] {
        assert_ne!(ver::FEAT_HVM_DOMAIN & f, 0);
    }
    assert_eq!(ver::FEAT_HVM_DOMAIN & ver::FEAT_DOM0, 0);
    let caps = |d: &Domain| {
        w.call(d, hc::XEN_VERSION, [ver::CAPABILITIES as u64, BUF, 0, 0, 0]);
        let c: ver::Capabilities = w.get(d, BUF);
        String::from_utf8_lossy(&c.text)
            .trim_end_matches('\0')
            .to_string()
    };
    assert!(caps(&d1).split(' ').any(|c| c == "hvm-3.0-x86_32"));
    assert!(caps(&d1).split(' ').any(|c| c == "hvm-3.0-x86_64"));
    // Refused: success with "<denied>" / empty, the refusal audited.
    w.audit_lines();
    assert_eq!(
        w.call(
            &m,
            hc::XEN_VERSION,
            [ver::EXTRAVERSION as u64, BUF, 0, 0, 0]
        ),
        0
    );
    let e: ver::ExtraVersion = w.get(&m, BUF);
    assert_eq!(&e.text[..9], b"<denied>\0");
    assert_eq!(caps(&m), "");
    assert!(
        w.audit_lines()
            .iter()
            .any(|l| l.contains("{ xen_extraversion }"))
    );
    assert_eq!(
        w.call(&m, hc::XEN_VERSION, [ver::BUILD_ID as u64, BUF, 0, 0, 0]),
        -(errno::EPERM as i64)
    );
    // pagesize: a non-NULL argument is EINVAL.
    assert_eq!(
        w.call(&d1, hc::XEN_VERSION, [ver::PAGESIZE as u64, 0, 0, 0, 0]),
        4096
    );
    assert_eq!(
        w.call(&d1, hc::XEN_VERSION, [ver::PAGESIZE as u64, BUF, 0, 0, 0]),
        -(errno::EINVAL as i64)
    );
    // build_id with NULL: the size (dom0 may read it).
    let n = w.call(&d0, hc::XEN_VERSION, [ver::BUILD_ID as u64, 0, 0, 0, 0]);
    assert_eq!(n, w.plat.build_id().len() as i64);
    w.put(&d0, BUF, &ver::BuildIdHeader { len: 0 });
    assert_eq!(
        w.call(&d0, hc::XEN_VERSION, [ver::BUILD_ID as u64, BUF, 0, 0, 0]),
        -(errno::EINVAL as i64)
    );
}

#[test]
fn a_console_ring_is_drained_into_prefixed_rate_limited_lines() {
    use warden_abi::xen::console::{OUT, OUT_CONS, OUT_PROD};
    let w = world(true);
    let d = w.domain(1, DOMU);
    // Attach a ring inside the test domain's memory (page 9).
    d.hvm.console.attach(9);
    let base = 9 * 4096;
    let text = b"ring says hi\nsecond line\n";
    w.hv.write_phys(&d, base + OUT, text).unwrap();
    w.put(&d, base + OUT_PROD, &(text.len() as u32));
    assert_eq!(w.hv.service_console(&d), text.len());
    assert_eq!(w.get::<u32>(&d, base + OUT_CONS), text.len() as u32);
    let ring = w.ring_text();
    assert!(
        ring.contains("(d1)") && ring.contains("ring says hi"),
        "{ring}"
    );
    assert!(ring.contains("second line"));
    // Nothing new: nothing taken. A corrupt producer: nothing read.
    assert_eq!(w.hv.service_console(&d), 0);
    w.put(&d, base + OUT_PROD, &(text.len() as u32 + 5000));
    assert_eq!(w.hv.service_console(&d), 0);
    assert_eq!(w.get::<u32>(&d, base + OUT_CONS), text.len() as u32 + 5000);
}

#[test]
fn a_boot_built_domain_gets_a_console_ring_and_an_unbound_port_for_dom0() {
    let w = world(true);
    let _d0 = w.domain(0, "system_u:system_r:dom0_t");
    let d = w.domain(1, DOMU);
    let before = d.mem.read().tot_pages;
    w.hv.attach_boot_console(&d).unwrap();
    assert_eq!(d.mem.read().tot_pages, before + 1);
    assert_eq!(d.hvm.params.value(hp::CONSOLE_PFN), 0xFEFFF);
    assert_eq!(d.hvm.console.gfn(), Some(0xFEFFF));
    let port = d.hvm.params.value(hp::CONSOLE_EVTCHN) as u32;
    assert_ne!(port, 0);
    let snap = d.evtchn.snapshot(port).unwrap();
    assert!(
        matches!(snap.state, crate::xen::evtchn::State::Unbound { remote: 0 }),
        "{:?}",
        snap.state
    );
    // Labelled as Xen labels d1's channel for dom0, not unlabeled.
    assert_ne!(snap.sid, crate::xen::evtchn::UNLABELED);
    // The guest reads both parameters (hvc_xen's start).
    assert_eq!(
        param(&w, &d, GET_PARAM, DOMID_SELF, hp::CONSOLE_EVTCHN, 0),
        (0, port as u64)
    );
}

/// HVMOP_pagetable_dying as Xen 4.17 with nested paging: EINVAL for the
/// caller itself (after Warden's check, with no denial), EOPNOTSUPP for
/// another domain, ESRCH for none, EFAULT for a bad pointer; never "unknown".
#[test]
fn pagetable_dying_is_answered_as_xen_with_nested_paging() {
    use warden_abi::hvm::{PAGETABLE_DYING, PagetableDying};
    let w = world(true);
    let d1 = w.domain(1, DOMU);
    let _d2 = w.domain(2, DOMU);
    let dying = |domid: u16| {
        w.put(
            &d1,
            ARG,
            &PagetableDying {
                domid,
                pad: [0; 3],
                gpa: 0,
            },
        );
        w.call(&d1, hc::HVM_OP, [PAGETABLE_DYING as u64, ARG, 0, 0, 0])
    };
    w.audit_lines();
    assert_eq!(dying(DOMID_SELF), -(errno::EINVAL as i64));
    assert_eq!(dying(1), -(errno::EINVAL as i64));
    assert_eq!(dying(2), -(errno::EOPNOTSUPP as i64));
    assert_eq!(dying(77), -(errno::ESRCH as i64));
    let bad = w.call(&d1, hc::HVM_OP, [PAGETABLE_DYING as u64, 1 << 40, 0, 0, 0]);
    assert_eq!(bad, -(errno::EFAULT as i64));
    let log = w.audit_lines();
    assert!(log.is_empty(), "no denial and no unknown-op line: {log:?}");
}
