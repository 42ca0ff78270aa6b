//! The hostile guest: `iterations=` hypercalls (at least 100,000) with random
//! numbers and random arguments — bad pointers, huge sizes, other domains'
//! ids, garbage structures — and dom0 checking afterwards that nothing
//! outside the guest was affected.
//!
//! The guest avoids only what would end or freeze *itself* legitimately
//! (shutting itself down, blocking with nothing to wake it, taking its own
//! vCPU 0 down, giving up or overwriting its own pages, starting other vCPUs
//! on garbage); everything else, including every operation on other domains
//! and on the hypervisor, is fair game. At the end it checks that every call
//! that succeeded is one its label (domU_t) allows on itself, and powers off.

use crate::check;
use crate::scenarios::{ids, ring, wait_shutdown};
use warden_abi::domctl::{self as dc, Domctl};
use warden_abi::sysctl::Sysctl;
use warden_abi::xsm::FlaskOp;
use warden_abi::{hypercall as nr, *};
use warden_guest::hypercall as hc;
use warden_guest::println;
use warden_guest::start::Boot;
use warden_guest::util::Rng;

/// A buffer the guest fills with garbage (and sometimes a plausible structure).
#[repr(C, align(4096))]
struct Junk([u8; 8192]);
static mut JUNK: Junk = Junk([0; 8192]);

fn junk() -> &'static mut [u8; 8192] {
    let p = &raw mut JUNK;
    // SAFETY: the hostile guest has one vCPU; only this module touches JUNK.
    unsafe { &mut (*p).0 }
}

const KNOWN: &[u32] = &[
    nr::MEMORY_OP,
    nr::MULTICALL,
    nr::XEN_VERSION,
    nr::CONSOLE_IO,
    nr::VCPU_OP,
    nr::XSM_OP,
    nr::SCHED_OP,
    nr::HVM_OP,
    nr::SYSCTL,
    nr::DOMCTL,
    nr::PLATFORM_OP,
];

/// What domU_t may do successfully on itself (hypercall, sub-op).
fn allowed(h: u32, s: u64) -> bool {
    use warden_abi::{console, hvm, memory, sched, vcpu, version, xsm};
    let s = s as u32;
    match h {
        nr::CONSOLE_IO => s == console::WRITE,
        // A refused string sub-op answers "<denied>" with rc 0, as Xen does
        // (commandline for a domU); build_id answers -EPERM.
        nr::XEN_VERSION => s != version::BUILD_ID,
        // Its own timers (the argument is the deadline, not a sub-op).
        nr::SET_TIMER_OP => true,
        nr::SCHED_OP => matches!(s, sched::YIELD | sched::POLL),
        nr::VCPU_OP => matches!(
            s,
            vcpu::IS_UP
                | vcpu::GET_RUNSTATE_INFO
                | vcpu::SET_SINGLESHOT_TIMER
                | vcpu::STOP_SINGLESHOT_TIMER
                | vcpu::DOWN
                | vcpu::REGISTER_RUNSTATE_MEMORY_AREA
                | vcpu::SET_PERIODIC_TIMER
                | vcpu::STOP_PERIODIC_TIMER
                | vcpu::REGISTER_VCPU_TIME_MEMORY_AREA
        ),
        nr::HVM_OP => s == hvm::SET_EVTCHN_UPCALL_VECTOR,
        // Per-entry refusals are statuses (rc 0); query, setup and the
        // versions are allowed on itself.
        nr::GRANT_TABLE_OP => {
            use warden_abi::xen::grant_table as gt;
            matches!(
                s,
                gt::MAP_GRANT_REF
                    | gt::UNMAP_GRANT_REF
                    | gt::SETUP_TABLE
                    | gt::COPY
                    | gt::QUERY_SIZE
                    | gt::SET_VERSION
                    | gt::GET_VERSION
            )
        }
        // Its own channels (domain_self_comms, domain2:evtchn_self, event:reset
        // on itself) and channels with other domU_t domains (domain_comms).
        nr::EVENT_CHANNEL_OP => s <= warden_abi::xen::event_channel::SET_PRIORITY,
        // A batch whose list it can read succeeds; each entry is refused or
        // allowed as its own hypercall (the entry's result).
        nr::MULTICALL => true,
        nr::MEMORY_OP => matches!(
            s,
            memory::POPULATE_PHYSMAP
                | memory::GET_SHARING_FREED_PAGES
                | memory::GET_SHARING_SHARED_PAGES
                | memory::MAXIMUM_RAM_PAGE
                | memory::CURRENT_RESERVATION
                | memory::MAXIMUM_RESERVATION
                | memory::MEMORY_MAP
        ),
        // Even the domain list is refused (domU_t may not get domxen_t's info).
        nr::SYSCTL => false,
        nr::XSM_OP => s == xsm::RELABEL_DOMAIN,
        _ => false,
    }
}

fn pick<T: Copy>(r: &mut Rng, v: &[T]) -> T {
    v[r.below(v.len() as u64) as usize]
}

/// A pointer-ish argument.
fn ptr(r: &mut Rng, mem: u64) -> u64 {
    let j = junk().as_ptr() as u64;
    match r.below(10) {
        0 => 0,
        1 => u64::MAX - r.below(4096),
        2 => 0x0000_8000_0000_0000 + r.below(1 << 20), // non-canonical
        3 => mem - r.below(64),                        // straddling the end of RAM
        4 => r.next_u64(),
        // (Never into our own code, stack or page tables: results written
        // there would legitimately crash this guest.)
        _ => j + r.below(8192 - 256),
    }
}

/// A size-ish argument.
fn size(r: &mut Rng) -> u64 {
    match r.below(6) {
        0 => 0,
        1 => r.below(64),
        2 => u32::MAX as u64,
        3 => 64 << 20,
        4 => r.next_u64(),
        _ => r.below(4096),
    }
}

fn domid(r: &mut Rng) -> u16 {
    match r.below(5) {
        0 => DOMID_SELF,
        1 => r.next_u64() as u16,
        _ => r.below(8) as u16,
    }
}

/// Fill the junk buffer with garbage, then maybe a plausible structure.
fn garbage(r: &mut Rng, h: u32) {
    let j = junk();
    for c in j.chunks_mut(8) {
        let v = r.next_u64().to_le_bytes();
        c.copy_from_slice(&v[..c.len()]);
    }
    // Small numbers are more interesting than random ones for ids and sizes.
    if r.below(2) == 0 {
        for i in 0..32 {
            let at = r.below(512) as usize * 8;
            let v = pick(
                r,
                &[
                    0u64,
                    1,
                    2,
                    3,
                    7,
                    12,
                    4096,
                    DOMID_SELF as u64,
                    u32::MAX as u64,
                ],
            );
            j[at..at + 8].copy_from_slice(&v.to_le_bytes());
            let _ = i;
        }
    }
    let head = |j: &mut [u8; 8192], cmd: u32, ver: u32| {
        j[0..4].copy_from_slice(&cmd.to_le_bytes());
        j[4..8].copy_from_slice(&ver.to_le_bytes());
    };
    let right = r.below(4) != 0;
    match h {
        nr::DOMCTL => {
            let rnd = r.next_u64() as u32;
            let cmd = pick(r, &[1u32, 2, 3, 4, 5, 11, 15, 33, 34, rnd]);
            head(
                j,
                cmd,
                if right {
                    dc::INTERFACE_VERSION
                } else {
                    r.next_u64() as u32
                },
            );
            let d = domid(r);
            j[8..10].copy_from_slice(&d.to_le_bytes());
        }
        nr::SYSCTL => {
            let rnd = r.next_u64() as u32;
            let cmd = pick(r, &[1u32, 3, 4, 6, 16, 17, 18, 27, rnd]);
            head(
                j,
                cmd,
                if right {
                    sysctl::INTERFACE_VERSION
                } else {
                    r.next_u64() as u32
                },
            );
        }
        nr::PLATFORM_OP => {
            // Warden's commands, ones Warden lacks, one Xen 4.17 does not know.
            let rnd = r.next_u64() as u32;
            let cmd = pick(r, &[17u32, 62, 50, 55, 51, 64, rnd]);
            head(
                j,
                cmd,
                if right {
                    warden_abi::xen::platform::INTERFACE_VERSION
                } else {
                    r.next_u64() as u32
                },
            );
        }
        nr::XSM_OP => {
            let cmd = r.below(27) as u32;
            head(
                j,
                cmd,
                if right {
                    xsm::FLASK_INTERFACE_VERSION
                } else {
                    r.next_u64() as u32
                },
            );
        }
        _ => {}
    }
    let _ = (
        core::mem::size_of::<Domctl>(),
        core::mem::size_of::<Sysctl>(),
        core::mem::size_of::<FlaskOp>(),
    );
}

/// Is this call one the guest must not make (it would end or freeze itself)?
fn suicidal(h: u32, a: &[u64; 5], me: u16) -> bool {
    use warden_abi::{memory, sched, vcpu};
    match h {
        nr::SCHED_OP if a[0] == sched::REMOTE_SHUTDOWN as u64 => {
            // Shutting another domain down is fair game; shutting oneself down is not.
            let j = junk().as_ptr() as u64;
            if a[1] >= j && a[1] < j + 8190 {
                let o = (a[1] - j) as usize;
                let d = u16::from_le_bytes([junk()[o], junk()[o + 1]]);
                d == me || d == DOMID_SELF
            } else {
                false
            }
        }
        nr::SCHED_OP => {
            a[0] <= u32::MAX as u64
                && matches!(a[0] as u32, sched::SHUTDOWN | sched::BLOCK | sched::POLL)
        }
        nr::VCPU_OP => {
            a[0] <= u32::MAX as u64
                && (matches!(
                    a[0] as u32,
                    vcpu::INITIALISE | vcpu::UP | vcpu::REGISTER_VCPU_INFO
                ) || (a[0] as u32 == vcpu::DOWN && a[1] == 0))
        }
        // Giving up a page, or replacing one with the shared_info page.
        nr::MEMORY_OP => {
            a[0] <= u32::MAX as u64
                && matches!(
                    a[0] as u32,
                    memory::DECREASE_RESERVATION | memory::ADD_TO_PHYSMAP
                )
        }
        // HVM_PARAM_CALLBACK_IRQ with a random vector injects it (an
        // exception vector crashes us, as it would on Xen).
        nr::HVM_OP => a[0] == warden_abi::hvm::SET_PARAM as u64,
        // Each entry's result is written back into the list: only a list
        // inside the junk buffer, whose entries are not suicidal themselves.
        nr::MULTICALL => {
            const SIZE: u64 = 64;
            let n = a[1] as u32 as u64;
            let j = junk().as_ptr() as u64;
            let inside = a[0] >= j && a[0].checked_add(n * SIZE).is_some_and(|e| e <= j + 8192);
            n != 0
                && (!inside
                    || (0..n).any(|i| {
                        let o = (a[0] - j + i * SIZE) as usize;
                        let word = |k: usize| {
                            u64::from_le_bytes(
                                junk()[o + 8 * k..o + 8 * k + 8]
                                    .try_into()
                                    .unwrap_or([0; 8]),
                            )
                        };
                        let op = word(0);
                        let args = [word(2), word(3), word(4), word(5), word(6)];
                        op <= u32::MAX as u64
                            && op as u32 != nr::MULTICALL
                            && suicidal(op as u32, &args, me)
                    }))
        }
        // A grant copy into one of its own frames (named by number),
        // setup_table's frame list written where the garbage points, or a
        // map/unmap batch longer than the junk buffer's tail (each entry is
        // written back) would overwrite its code or page tables, as on Xen.
        nr::GRANT_TABLE_OP => {
            use warden_abi::xen::grant_table as gt;
            a[0] == gt::COPY as u64
                || a[0] == gt::SETUP_TABLE as u64
                || ((a[0] == gt::MAP_GRANT_REF as u64 || a[0] == gt::UNMAP_GRANT_REF as u64)
                    && a[2] > 4)
        }
        _ => false,
    }
}

pub fn hostile(boot: &Boot) -> ! {
    let n: u64 = boot
        .arg("iterations")
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let seed: u64 = boot
        .arg("seed")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed);
    let mem = boot.mem_bytes();
    let mut r = Rng::new(seed);
    let mut calls = 0u64;
    let mut refused = [0u64; 128];
    let mut ok_calls = 0u64;
    let mut violations = 0u64;
    let mut skipped = 0u64;
    // (hypercall, sub-op) -> successes, for the report.
    let mut wins: alloc::collections::BTreeMap<(u32, u64), u64> =
        alloc::collections::BTreeMap::new();
    // A burst of 200 refusals (physinfo: not domU_t's) well within a second,
    // so the audit rate limiter (64 records a second) has to say it
    // suppressed records however slowly the random run below goes.
    let mut burst = 0;
    for _ in 0..200 {
        if hc::physinfo().err() == Some(warden_guest::Errno(errno::EACCES)) {
            burst += 1;
        }
    }
    check!(burst == 200, "a burst of 200 refusals ({burst} refused)");
    println!(
        "hostile: d{} making {n} random hypercalls (seed {seed:#x})",
        boot.domid()
    );
    while calls < n {
        let h = if r.below(10) < 8 {
            pick(&mut r, KNOWN)
        } else {
            r.next_u64() as u32 % 64
        };
        garbage(&mut r, h);
        let mut a = [0u64; 5];
        a[0] = match r.below(5) {
            0 => r.next_u64(),
            _ => r.below(30),
        };
        for x in a.iter_mut().skip(1) {
            *x = match r.below(3) {
                0 => size(&mut r),
                _ => ptr(&mut r, mem),
            };
        }
        // Operations taking their argument structure as the first argument.
        if matches!(h, nr::DOMCTL | nr::SYSCTL | nr::XSM_OP | nr::PLATFORM_OP) {
            a[0] = ptr(&mut r, mem);
        }
        if suicidal(h, &a, boot.domid()) {
            skipped += 1;
            continue;
        }
        // console writes: keep the flood bounded.
        if h == nr::CONSOLE_IO && a[0] == 0 {
            a[1] = r.below(48);
        }
        calls += 1;
        let ret = hc::raw(h as u64, a);
        if ret >= 0 {
            ok_calls += 1;
            let sub = if matches!(h, nr::DOMCTL | nr::SYSCTL | nr::XSM_OP) {
                // The sub-op was in the structure (if the pointer was ours).
                let j = junk().as_ptr() as u64;
                if a[0] >= j && a[0] < j + 8192 {
                    let o = (a[0] - j) as usize;
                    u32::from_le_bytes(junk()[o..o + 4].try_into().unwrap_or([0; 4])) as u64
                } else {
                    u64::MAX
                }
            } else if matches!(h, nr::MULTICALL | nr::SET_TIMER_OP) {
                // No sub-op (a list pointer, a deadline): one line each in
                // the report, so its lines stay within the guest console's
                // rate limit.
                0
            } else {
                a[0]
            };
            *wins.entry((h, sub)).or_insert(0) += 1;
            if !allowed(h, sub) {
                violations += 1;
                println!(
                    "hostile: VIOLATION: hypercall {h} sub-op {sub} args {a:x?} returned {ret}"
                );
            }
        } else if -ret < 128 {
            refused[(-ret) as usize] += 1;
        }
        if calls.is_multiple_of(20_000) {
            println!("hostile: {calls} calls made");
        }
    }
    println!(
        "hostile: {calls} calls made ({skipped} self-destructive draws skipped): {ok_calls} succeeded, {} EACCES, {} EFAULT, {} EINVAL, {} ENOSYS, {} EPERM, {} ESRCH",
        refused[13], refused[14], refused[22], refused[38], refused[1], refused[3]
    );
    for ((h, s), c) in &wins {
        println!("HOSTILE success hypercall {h} sub-op {s}: {c}");
    }
    check!(calls >= 100_000 || calls == n, "{calls} hypercalls made");
    check!(
        violations == 0,
        "no call outside domU_t's permissions succeeded ({violations} did)"
    );
    // (About 500 in 100,000 since xen_version's refused strings answer
    // "<denied>" with rc 0, as Xen's, and more operations are the guest's own.)
    check!(
        refused[13] > 250,
        "many calls were refused by the policy ({} EACCES)",
        refused[13]
    );
    crate::report::finish("hostile")
}

/// dom0 of the hostile scenario.
pub fn hostile_dom0(boot: &Boot) -> ! {
    let hostile = ids(boot, "hostile").first().copied().unwrap_or(1);
    let canary = ids(boot, "canary").first().copied().unwrap_or(2);
    let victim = ids(boot, "victim").first().copied().unwrap_or(3);
    let v0 = hc::getdomaininfo(victim);
    let enforcing0 = hc::flask_getenforce();
    let bools0 = hc::flask_getbool("guest_writeconsole");
    let r = wait_shutdown(hostile, 1200);
    check!(
        r == Some(warden_abi::sched::SHUTDOWN_POWEROFF),
        "the hostile guest finished and passed its own checks (reason {r:?})"
    );
    let v1 = hc::getdomaininfo(victim);
    check!(
        matches!((v0, v1), (Ok(a), Ok(b)) if a.tot_pages == b.tot_pages && a.ssidref == b.ssidref && b.flags & (dc::DOMINF_PAUSED | dc::DOMINF_SHUTDOWN) == 0),
        "the victim is intact: {:?} -> {:?}",
        v0.map(|i| (i.tot_pages, i.flags)),
        v1.map(|i| (i.tot_pages, i.flags))
    );
    let c = hc::getdomaininfo(canary);
    check!(
        c.is_ok_and(|i| i.flags & dc::DOMINF_SHUTDOWN == 0),
        "the canary is still running"
    );
    let t0 = c.map(|i| i.cpu_time).unwrap_or(0);
    warden_guest::time::sleep_ns(300_000_000);
    let t1 = hc::getdomaininfo(canary).map(|i| i.cpu_time).unwrap_or(0);
    check!(
        t1 > t0,
        "the canary still runs ({t0} -> {t1} ns of CPU time)"
    );
    check!(hc::flask_getenforce() == enforcing0, "FLASK mode unchanged");
    check!(
        hc::flask_getbool("guest_writeconsole") == bools0,
        "booleans unchanged"
    );
    let text = ring();
    let ticks = text.lines().filter(|l| l.contains("canary: tick")).count();
    check!(ticks > 0, "canary ticks in the console ring ({ticks})");
    check!(!text.contains("VIOLATION"), "no violation reported");
    for d in [canary, victim] {
        check!(hc::destroydomain(d).is_ok(), "destroy d{d}");
    }
    crate::report::finish("hostile-dom0")
}
