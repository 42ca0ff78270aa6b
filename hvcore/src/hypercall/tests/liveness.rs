//! Denial of service and liveness (issue 14, section 3): pauses that cannot
//! deadlock, and long operations that continue themselves (bounded work
//! per call, Xen's hypercall continuations).

use super::*;
use crate::hypercall::domctl::DESTROY_PAGES_PER_CALL;
use crate::hypercall::memory::MEMOP_PAGES_PER_CALL;
use warden_abi::memory;

/// Make hypercall `nr` from `d`'s vCPU 0; Ok(result) if it completed,
/// Err(the arguments it is to be executed again with) if it continued.
fn call_once(w: &World, d: &Domain, nr: u32, a: [u64; 5]) -> Result<i64, HypercallArgs> {
    CONTINUED.with(|c| c.set(None));
    RESULT.with(|r| r.set(0xdead));
    let r = w.call(d, nr, a);
    match CONTINUED.with(|c| c.take()) {
        Some(next) => {
            assert_eq!(RESULT.with(|r| r.get()), 0xdead, "not completed as well");
            Err(next)
        }
        None => Ok(r),
    }
}

/// Execute the hypercall again as the guest would until it completes;
/// `each` runs after every call. Returns the result and the number of calls.
fn call_to_completion(
    w: &World,
    d: &Domain,
    nr: u32,
    a: [u64; 5],
    mut each: impl FnMut(),
) -> (i64, u32) {
    let mut args = HypercallArgs { nr: nr as u64, a };
    for calls in 1..10_000 {
        let r = call_once(w, d, args.nr as u32, args.a);
        each();
        match r {
            Ok(r) => return (r, calls),
            Err(next) => {
                assert_eq!(next.nr, nr as u64, "the same hypercall is executed again");
                args = next;
            }
        }
    }
    panic!("never completed");
}

/// A domain labelled `label` with `pages` pages (and room for `max` pages).
fn big_domain(w: &World, id: u16, label: &str, pages: u64, max: u64) -> Arc<Domain> {
    let d = w.domain(id, label);
    w.hv.set_max_pages(&d, max);
    for g in PAGES..pages {
        w.hv.populate(&d, g).unwrap();
    }
    d
}

#[test]
fn populate_physmap_over_many_extents_continues_itself_in_bounded_steps() {
    let w = world(true);
    let d1 = big_domain(&w, 1, DOMU, PAGES, 2000);
    let n = 1000u64;
    for i in 0..n {
        w.put(&d1, BUF + i * 8, &(PAGES + i));
    }
    w.put(
        &d1,
        ARG,
        &memory::Reservation {
            extent_start: BUF,
            nr_extents: n,
            domid: warden_abi::DOMID_SELF,
            ..Default::default()
        },
    );
    let pages = |d: &Domain| d.mem.read().tot_pages;
    let mut last = pages(&d1);
    let mut steps = Vec::new();
    let (r, calls) = call_to_completion(
        &w,
        &d1,
        hc::MEMORY_OP,
        [memory::POPULATE_PHYSMAP as u64, ARG, 0, 0, 0],
        || {
            let now = pages(&d1);
            steps.push(now - last);
            last = now;
        },
    );
    assert_eq!(
        r, n as i64,
        "the result counts every extent, over all calls"
    );
    assert_eq!(pages(&d1), PAGES + n);
    assert_eq!(calls, 2, "{steps:?}");
    assert!(
        steps.iter().all(|&s| s <= MEMOP_PAGES_PER_CALL),
        "{steps:?}"
    );

    // The continuation is Xen's encoding: the extent to start at above the sub-op.
    let first = call_once(
        &w,
        &d1,
        hc::MEMORY_OP,
        [memory::DECREASE_RESERVATION as u64, ARG, 7, 8, 9],
    )
    .unwrap_err();
    assert_eq!(
        first.a,
        [
            memory::DECREASE_RESERVATION as u64
                | (MEMOP_PAGES_PER_CALL << memory::MEMOP_EXTENT_SHIFT),
            ARG,
            7,
            8,
            9
        ]
    );
    assert_eq!(pages(&d1), PAGES + n - MEMOP_PAGES_PER_CALL);
    let (r, _) = call_to_completion(&w, &d1, hc::MEMORY_OP, first.a, || {});
    assert_eq!(r, n as i64);
    assert_eq!(pages(&d1), PAGES);
}

#[test]
fn large_extents_are_never_split_between_calls() {
    let w = world(true);
    let d1 = big_domain(&w, 1, DOMU, PAGES, 2000);
    // Three 2 MiB extents at gfns 512, 1024, 1536.
    for i in 0..3u64 {
        w.put(&d1, BUF + i * 8, &(512 * (i + 1)));
    }
    w.put(
        &d1,
        ARG,
        &memory::Reservation {
            extent_start: BUF,
            nr_extents: 3,
            extent_order: memory::DOMU_MAX_ORDER,
            domid: warden_abi::DOMID_SELF,
            ..Default::default()
        },
    );
    let mut totals = Vec::new();
    let (r, calls) = call_to_completion(
        &w,
        &d1,
        hc::MEMORY_OP,
        [memory::POPULATE_PHYSMAP as u64, ARG, 0, 0, 0],
        || totals.push(d1.mem.read().tot_pages),
    );
    assert_eq!(r, 3);
    assert_eq!(calls, 3);
    assert_eq!(totals, [PAGES + 512, PAGES + 1024, PAGES + 1536]);
}

#[test]
fn destroying_a_large_domain_scrubs_in_bounded_steps_and_frees_everything() {
    let w = world(true);
    let d0 = w.domain(0, "system_u:system_r:dom0_t");
    let free0 = w.plat.mem.free_frames();
    let d1 = big_domain(&w, 1, DOMU, 1200, 1200);
    w.put(&d0, ARG, &dc::Domctl::new(dc::DESTROYDOMAIN, 1, &()));
    let mut freed = Vec::new();
    let mut last = w.plat.mem.free_frames();
    let (r, calls) = call_to_completion(&w, &d0, hc::DOMCTL, [ARG, 0, 0, 0, 0], || {
        let now = w.plat.mem.free_frames();
        freed.push(now - last);
        last = now;
        if d1.mem.read().p2m.is_some() {
            // Still being destroyed: never runs again, shown as dying.
            assert!(d1.dying.load(core::sync::atomic::Ordering::Relaxed));
            assert!(w.hv.sched.domain_state(1, 0).is_none());
            let info = w.hv.domain_info(&d1, 0);
            assert!(info.flags & dc::DOMINF_DYING != 0);
        }
    });
    assert_eq!(r, 0);
    assert_eq!(calls, 3, "{freed:?}");
    // Each step frees at most its budget of pages (plus the page-table
    // frames it empties: one leaf table per 512 pages, and the rest at the end).
    assert!(
        freed[..2].iter().all(|&f| f <= DESTROY_PAGES_PER_CALL + 2),
        "{freed:?}"
    );
    assert_eq!(w.plat.mem.free_frames(), free0, "every frame came back");
    assert!(w.hv.domains.snapshot(1).is_none());
}

/// A policy in which domU_t domains may pause and unpause each other.
fn mutual_pause_policy() -> Vec<u8> {
    super::races::policy_with("allow domU_t domU_t:domain { pause unpause };\n", "")
}

#[test]
fn two_domains_pausing_each_other_at_once_do_not_wait_forever() {
    let w = world(true);
    w.hv.gate
        .flask()
        .unwrap()
        .load_policy(&mutual_pause_policy())
        .unwrap();
    let d1 = w.domain(1, DOMU);
    let d2 = w.domain(2, DOMU);
    let now = w.plat.now_ns();
    // CPU1 runs d2's vCPU, which is in PAUSEDOMAIN(d1): d1 is paused, and
    // CPU1 waits for d1's vCPU to leave its CPU. That vCPU, on CPU0, is in
    // PAUSEDOMAIN(d2) at the same moment.
    let _ = w.hv.sched.pause(1, now);
    let picked = w.hv.sched.pick(1, now).unwrap();
    assert_eq!((picked.domid, picked.id), (2, 0));
    w.put(&d1, ARG, &dc::Domctl::new(dc::PAUSEDOMAIN, 2, &()));
    // Run d1's call on a thread: without the fix it never returns.
    let (tx, rx) = std::sync::mpsc::channel();
    let (w2, d1c) = (w, d1.clone());
    std::thread::spawn(move || {
        let r = call_once(&w2, &d1c, hc::DOMCTL, [ARG, 0, 0, 0, 0]);
        let _ = tx.send(r.map_err(|a| a.a));
    });
    let r = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("PAUSEDOMAIN waited for a vCPU that waits for the caller: deadlock");
    // d1's call gave up and will be executed again; its pause of d2 is undone.
    assert_eq!(r, Err([ARG, 0, 0, 0, 0]));
    assert_eq!(w.hv.sched.domain_state(2, now).unwrap().pause, 0);
    // d2's pause of d1 completes (d1's vCPU is not on a CPU), d2 goes on,
    // later unpauses d1, whose vCPU executes its PAUSEDOMAIN(d2) again.
    assert!(w.hv.sched.running_cpus(1).is_empty());
    w.hv.sched.descheduled(1, (2, 0), now);
    w.hv.unpause(&d1).unwrap();
    assert_eq!(call_once(&w, &d1, hc::DOMCTL, [ARG, 0, 0, 0, 0]), Ok(0));
    assert_eq!(w.hv.sched.domain_state(2, now).unwrap().pause, 1);
    let _ = d2;
}
