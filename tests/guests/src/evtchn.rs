//! Event channels between two domains (tests/tests/evtchn.rs).
//!
//! `evtchn-front` (d1) allocates an unbound port for the peer and a second
//! one for a third domain, waits for the peer (`evtchn-back`) to bind the
//! first, then checks delivery both ways (the upcall arrives, on the right
//! port), every refusal path with the port's status before and after, and
//! ping-pongs `rounds=` notifications, printing the round trips per second.
//! `evtchn-deny` runs under a policy without domU-to-domU channels.
//! `evtchn-hostile` throws `iterations=` random but well-formed
//! event-channel calls.

use crate::check;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use warden_abi::errno::{EACCES, EINVAL};
use warden_abi::xen::event_channel::{self as ec, Status};
use warden_abi::{DOMID_SELF, DomId};
use warden_guest::evtchn;
use warden_guest::hypercall::{self as hc, Errno};
use warden_guest::println;
use warden_guest::start::Boot;
use warden_guest::time::now_ns;

/// Arrivals per port (ports below 64).
static ARRIVED: [AtomicU64; 64] = [const { AtomicU64::new(0) }; 64];
/// The port the upcall answers on (the back end echoes), u32::MAX: none.
static ECHO: AtomicU32 = AtomicU32::new(u32::MAX);

fn on_port(_vcpu: u32, port: u32) {
    if let Some(a) = ARRIVED.get(port as usize) {
        a.fetch_add(1, Ordering::AcqRel);
    }
    if port == ECHO.load(Ordering::Acquire) {
        let _ = evtchn::send(port);
    }
}

fn arrived(port: u32) -> u64 {
    ARRIVED
        .get(port as usize)
        .map_or(0, |a| a.load(Ordering::Acquire))
}

/// Wait until `port` has seen more than `n` arrivals; false after `secs`.
fn wait_arrival(port: u32, n: u64, secs: u64) -> bool {
    wait_until(secs, || arrived(port) > n)
}

/// Wait until `done()`, the way Linux idles: the check is made with
/// interrupts off and `sti; hlt` follows it, so an upcall arriving in
/// between ends the HLT instead of being missed. A single-shot timer 100 ms
/// ahead bounds each HLT (its VIRQ wakes us); false after `secs`.
fn wait_until(secs: u64, done: impl Fn() -> bool) -> bool {
    let t0 = now_ns();
    warden_guest::events::disable();
    let ok = loop {
        if done() {
            break true;
        }
        let now = now_ns();
        if now - t0 > secs * 1_000_000_000 {
            break false;
        }
        let _ = hc::vcpu_set_timer(0, now + 100_000_000, 0);
        // SAFETY: STI's shadow covers HLT (an upcall pending at the STI ends
        // the HLT); the IDT and upcall handler are installed by setup().
        unsafe { core::arch::asm!("sti", "hlt", "cli", options(nomem, nostack)) };
    };
    warden_guest::events::enable();
    ok
}

fn setup() {
    warden_guest::events::set_upcall_handler(on_port);
    check!(evtchn::init().is_ok(), "shared_info page mapped");
    // The timer that bounds each block wakes us through its VIRQ.
    let t = evtchn::bind_virq(warden_abi::xen::xen::VIRQ_TIMER, 0);
    check!(t.is_ok(), "VIRQ_TIMER bound: {t:?}");
    warden_guest::events::enable();
}

fn err(r: Result<impl Sized, Errno>) -> i32 {
    match r {
        Ok(_) => 0,
        Err(e) => -e.0,
    }
}

fn st(port: u32) -> Option<Status> {
    evtchn::status(DOMID_SELF, port).ok()
}

fn peer(boot: &Boot) -> DomId {
    boot.arg("peer").and_then(|s| s.parse().ok()).unwrap_or(2)
}

pub fn front(boot: &Boot) -> ! {
    let other = peer(boot);
    let third: DomId = boot.arg("third").and_then(|s| s.parse().ok()).unwrap_or(3);
    let rounds: u64 = boot
        .arg("rounds")
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    // (Port 1 may already be taken: a boot-built domain's console channel.)
    let p = evtchn::alloc_unbound(DOMID_SELF, other);
    check!(
        p.is_ok_and(|p| p >= 1),
        "a port allocated for d{other}: {p:?}"
    );
    let p = p.unwrap_or(1);
    let q = evtchn::alloc_unbound(DOMID_SELF, third);
    check!(
        q == Ok(p + 1),
        "the next port, {}, allocated for d{third}: {q:?}",
        p + 1
    );
    let q = q.unwrap_or(p + 1);
    setup();
    let s = st(p);
    check!(
        s.is_some_and(
            |s| (s.status == ec::STAT_UNBOUND && s.remote_dom() == other)
                || (s.status == ec::STAT_INTERDOMAIN && s.u[0] == other as u32)
        ),
        "port {p} unbound for d{other} (or already bound by it): {s:?}"
    );
    // The peer binds port p (and tries q, meant for d3), then notifies us.
    check!(
        wait_arrival(p, 0, 120),
        "the peer bound port {p} and its notification arrived"
    );
    let s = st(p);
    check!(
        s.is_some_and(|s| s.status == ec::STAT_INTERDOMAIN && s.u[0] == other as u32),
        "port {p} is interdomain with d{other}: {s:?}"
    );
    // Wrong domain: the peer's attempt on port q changed nothing.
    let s2 = st(q);
    check!(
        s2.is_some_and(|s| s.status == ec::STAT_UNBOUND && s.remote_dom() == third),
        "port {q} still unbound for d{third} after the peer's attempt: {s2:?}"
    );
    // Bad ports: refused, nothing changes.
    let before = st(p);
    for bad in [0u32, 99, 4096, u32::MAX] {
        check!(
            err(evtchn::send(bad)) == -EINVAL,
            "send on port {bad}: EINVAL"
        );
        check!(
            err(evtchn::close(bad)) == -EINVAL,
            "close of port {bad}: EINVAL"
        );
        check!(
            err(evtchn::unmask(bad)) == -EINVAL || bad == 0 || bad == 99,
            "unmask of port {bad}"
        );
    }
    check!(
        err(evtchn::status(DOMID_SELF, 5000)) == -EINVAL,
        "status of port 5000: EINVAL"
    );
    check!(
        err(evtchn::bind_interdomain(other, 77)) == -EINVAL,
        "binding a port the peer does not have: EINVAL"
    );
    check!(st(p) == before, "port {p} unchanged by the refusals");
    // A closed channel: closing port q twice, sending on it.
    check!(evtchn::close(q).is_ok(), "port {q} closed");
    check!(err(evtchn::close(q)) == -EINVAL, "closing it again: EINVAL");
    check!(err(evtchn::send(q)) == -EINVAL, "sending on it: EINVAL");
    check!(
        err(evtchn::status(DOMID_SELF, q)) == -EACCES,
        "its status: EACCES (a closed channel is unlabeled, as on Xen)"
    );
    check!(st(p) == before, "port {p} unchanged");
    // Delivery both ways: ping-pong (the peer echoes every notification).
    let n0 = arrived(p);
    let t0 = now_ns();
    let mut done = 0;
    for i in 0..rounds {
        if evtchn::send(p).is_err() || !wait_arrival(p, n0 + i, 30) {
            break;
        }
        done += 1;
    }
    let ns = (now_ns() - t0).max(1);
    check!(done == rounds, "{done} of {rounds} round trips completed");
    println!(
        "evtchn: {done} round trips in {ns} ns: {} round trips/s",
        done * 1_000_000_000 / ns
    );
    check!(
        warden_guest::events::upcalls(0) >= rounds,
        "upcalls taken: {}",
        warden_guest::events::upcalls(0)
    );
    // Closing our end leaves the peer's unbound towards us.
    check!(evtchn::close(p).is_ok(), "port {p} closed");
    let r = evtchn::status(other, 1);
    println!("evtchn: peer's port after close: {r:?}");
    crate::report::finish("evtchn-front")
}

pub fn back(boot: &Boot) -> ! {
    setup();
    let other = peer(boot);
    // Wait for the front's port for us (the first of its ports 1..8 that
    // binds: its console's and the one meant for d3 refuse), then bind it.
    let t0 = now_ns();
    let mut local = Err(Errno(EINVAL));
    let mut fp = 0;
    'wait: while now_ns() - t0 < 120_000_000_000 {
        for port in 1..8 {
            local = evtchn::bind_interdomain(other, port);
            if local.is_ok() {
                fp = port;
                break 'wait;
            }
        }
        let _ = hc::sched_yield();
    }
    check!(local.is_ok(), "bound the front's port {fp}: {local:?}");
    let l = local.unwrap_or(0);
    // Xen leaves a newly bound port pending: it arrives here.
    check!(wait_arrival(l, 0, 30), "the new port {l} arrived pending");
    // The front's next port is meant for d3: refused, nothing made.
    check!(
        err(evtchn::bind_interdomain(other, fp + 1)) == -EINVAL,
        "binding the front's port meant for another domain: EINVAL"
    );
    ECHO.store(l, Ordering::Release);
    check!(evtchn::send(l).is_ok(), "notified the front");
    // Echo (from the upcall handler) until the front closes its end.
    let closed = wait_until(200, || st(l).is_some_and(|s| s.status == ec::STAT_UNBOUND));
    check!(closed, "the front closed its end");
    let s = st(l);
    check!(
        s.is_some_and(|s| s.status == ec::STAT_UNBOUND && s.remote_dom() == other),
        "after the front closed, port {l} is unbound towards d{other}: {s:?}"
    );
    println!("evtchn: echoed {} notifications", arrived(l));
    crate::report::finish("evtchn-back")
}

/// Under a policy without domU-to-domU channels: refused with an avc line,
/// and the refused allocation consumed nothing.
pub fn deny(boot: &Boot) -> ! {
    let other = peer(boot);
    // The first free port (port 1 may be the console's), freed again.
    let first = evtchn::alloc_unbound(DOMID_SELF, DOMID_SELF);
    check!(first.is_ok(), "a port for itself: {first:?}");
    let first = first.unwrap_or(1);
    check!(evtchn::close(first).is_ok(), "port {first} closed again");
    let r = evtchn::alloc_unbound(DOMID_SELF, other);
    check!(
        err(r) == -EACCES,
        "a port for d{other} refused by the policy: {r:?}"
    );
    let r = evtchn::alloc_unbound(DOMID_SELF, DOMID_SELF);
    check!(
        r == Ok(first),
        "a port for itself is port {first} again: the refusal took nothing ({r:?})"
    );
    crate::report::finish("evtchn-deny")
}

/// Random but well-formed event-channel calls: valid structures with random
/// ports, domain ids, vCPUs and VIRQs. Every call returns (no hypervisor
/// fault); the counts of results are printed.
pub fn hostile(boot: &Boot) -> ! {
    let n: u64 = boot
        .arg("iterations")
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let mut r =
        warden_guest::util::Rng::new(boot.arg("seed").and_then(|s| s.parse().ok()).unwrap_or(7));
    setup();
    let mut ok = 0u64;
    let mut errs = [0u64; 128];
    let port = |r: &mut warden_guest::util::Rng| -> u32 {
        match r.below(6) {
            0 => r.next_u64() as u32,
            1 => 4096 + r.below(8) as u32,
            _ => r.below(80) as u32,
        }
    };
    let dom = |r: &mut warden_guest::util::Rng| -> DomId {
        match r.below(5) {
            0 => DOMID_SELF,
            1 => r.next_u64() as u16,
            _ => r.below(6) as u16,
        }
    };
    let small = |r: &mut warden_guest::util::Rng, k: u64| -> u32 {
        if r.below(8) == 0 {
            r.next_u64() as u32
        } else {
            r.below(k) as u32
        }
    };
    for i in 0..n {
        let cmd = r.below(16) as u32;
        let res = match cmd {
            ec::ALLOC_UNBOUND => err(evtchn::alloc_unbound(dom(&mut r), dom(&mut r))),
            ec::BIND_INTERDOMAIN => err(evtchn::bind_interdomain(dom(&mut r), port(&mut r))),
            ec::BIND_VIRQ => err(evtchn::bind_virq(small(&mut r, 30), small(&mut r, 4))),
            ec::CLOSE => err(evtchn::close(port(&mut r))),
            ec::SEND => err(evtchn::send(port(&mut r))),
            ec::STATUS => err(evtchn::status(dom(&mut r), port(&mut r))),
            ec::BIND_IPI => err(evtchn::bind_ipi(small(&mut r, 4))),
            ec::BIND_VCPU => err(evtchn::bind_vcpu(port(&mut r), small(&mut r, 4))),
            ec::UNMASK => err(evtchn::unmask(port(&mut r))),
            ec::RESET => err(evtchn::reset(dom(&mut r))),
            ec::INIT_CONTROL => err(evtchn::init_control(
                r.below(1 << 13),
                small(&mut r, 4096),
                small(&mut r, 4),
            )),
            ec::EXPAND_ARRAY => err(evtchn::expand_array(r.below(1 << 13))),
            ec::SET_PRIORITY => err(evtchn::set_priority(port(&mut r), small(&mut r, 20))),
            // bind_pirq and unknown sub-ops.
            _ => err(evtchn::op(cmd, &mut ec::BindPirq::default())),
        };
        if res == 0 {
            ok += 1;
        } else if (-res as usize) < errs.len() {
            errs[-res as usize] += 1;
        }
        if (i + 1) % 20_000 == 0 {
            println!("evtchn-hostile: {} calls made", i + 1);
        }
    }
    println!(
        "evtchn-hostile: {n} calls: {ok} succeeded, {} EINVAL, {} EACCES, {} ENOENT, {} ESRCH, {} EEXIST, {} ENOSPC, {} ENOSYS, {} EOPNOTSUPP",
        errs[22], errs[13], errs[2], errs[3], errs[17], errs[28], errs[38], errs[95]
    );
    check!(ok > 0 && errs[22] > 0, "both successes and refusals");
    crate::report::finish("evtchn-hostile")
}
