//! Role `xen-abi`: HVM parameters, the memory map, ballooning and the
//! console ring Warden serves for a boot-built domU (tests/tests/xenabi.rs).

use crate::check;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use warden_abi::hvm::{GET_PARAM, HvmParam, SET_PARAM};
use warden_abi::hypercall as nr;
use warden_abi::memory::{E820_RAM, E820Entry, MEMORY_MAP, MemoryMap};
use warden_abi::vcpu::{self as vc, RegisterArea, RunstateInfo, VcpuTimeInfo};
use warden_abi::xen::console::{OUT, OUT_CONS, OUT_PROD, OUT_SIZE};
use warden_abi::xen::hvm_params as hp;
use warden_abi::{DOMID_SELF, errno};
use warden_guest::hypercall::{self as hc, Errno};
use warden_guest::println;
use warden_guest::time::{now_ns, rdtsc, sleep_ns};

fn param(op: u32, index: u32, value: u64) -> Result<u64, Errno> {
    let mut a = HvmParam {
        domid: DOMID_SELF,
        pad: 0,
        index,
        value,
    };
    hc::call(nr::HVM_OP, [op as u64, &mut a as *mut _ as u64, 0, 0, 0])?;
    Ok(a.value)
}

fn get(index: u32) -> Result<u64, Errno> {
    param(GET_PARAM, index, 0)
}

fn set(index: u32, value: u64) -> Result<u64, Errno> {
    param(SET_PARAM, index, value)
}

/// Write `text` to the console ring at guest-physical (= virtual) `base`.
fn ring_write(base: u64, text: &[u8]) {
    // SAFETY: the ring page is mapped (the boot page tables identity-map
    // the low 4 GiB) and shared only with the hypervisor; volatile accesses.
    unsafe {
        let prod_p = (base + OUT_PROD) as *mut u32;
        let prod = core::ptr::read_volatile(prod_p);
        for (i, &b) in text.iter().enumerate() {
            let idx = prod.wrapping_add(i as u32) & (OUT_SIZE - 1);
            core::ptr::write_volatile((base + OUT + idx as u64) as *mut u8, b);
        }
        core::sync::atomic::fence(core::sync::atomic::Ordering::Release);
        core::ptr::write_volatile(prod_p, prod.wrapping_add(text.len() as u32));
    }
}

fn ring_drained(base: u64) -> bool {
    // SAFETY: as in `ring_write`.
    unsafe {
        core::ptr::read_volatile((base + OUT_CONS) as *const u32)
            == core::ptr::read_volatile((base + OUT_PROD) as *const u32)
    }
}

/// A page directory for the 3-4 GiB range (where the ring lives, above
/// this role's RAM, which the boot page tables cover).
#[repr(C, align(4096))]
struct Pd([u64; 512]);
static mut HIGH_PD: Pd = Pd([0; 512]);

/// Identity-map the 2 MiB region holding guest-physical `pa` (in 3-4 GiB).
fn map_2m(pa: u64) {
    let cr3: u64;
    // SAFETY: reading CR3 in ring 0.
    unsafe { core::arch::asm!("mov {}, cr3", out(reg) cr3) };
    let pml4 = (cr3 & !0xfff) as *const u64;
    // SAFETY: the boot page tables are identity-mapped and ours to change;
    // HIGH_PD is a static page (identity-mapped: its address is physical);
    // only the PDPT slot for 3-4 GiB, unused below 3 GiB of RAM, is set.
    unsafe {
        let pdpt = (pml4.read() & 0x000f_ffff_ffff_f000) as *mut u64;
        let pd = &raw mut HIGH_PD.0;
        let i = ((pa >> 21) & 511) as usize;
        (*pd)[i] = (pa & !0x1f_ffff) | 0x83;
        pdpt.add(((pa >> 30) & 511) as usize)
            .write_volatile(pd as u64 | 0x3);
        core::arch::asm!("mov cr3, {}", in(reg) cr3);
    }
}

pub fn xen_abi() -> ! {
    // HVM parameters: what a guest may read and set of itself.
    let pfn = get(hp::CONSOLE_PFN);
    check!(
        pfn == Ok(0xFEFFF),
        "CONSOLE_PFN is the ring Warden serves: {pfn:?}"
    );
    check!(
        set(hp::CONSOLE_PFN, 0x1234) == Err(Errno(errno::EPERM)),
        "a guest may not move its console ring (EPERM)"
    );
    check!(get(hp::CONSOLE_PFN) == Ok(0xFEFFF), "CONSOLE_PFN unchanged");
    check!(
        set(hp::STORE_PFN, 7) == Err(Errno(errno::EPERM)) && get(hp::STORE_PFN) == Ok(0),
        "STORE_PFN: set refused, still 0"
    );
    check!(
        get(hp::IOREQ_PFN) == Err(Errno(errno::EPERM)),
        "IOREQ_PFN is not the guest's to read"
    );
    check!(
        set(hp::TIMER_MODE, 1) == Err(Errno(errno::EPERM)),
        "TIMER_MODE is the toolstack's"
    );
    check!(
        get(hp::DM_DOMAIN) == Err(Errno(errno::EINVAL)),
        "deprecated parameter: EINVAL"
    );
    check!(
        get(hp::NR_PARAMS) == Err(Errno(errno::EINVAL)),
        "past the last parameter: EINVAL"
    );
    check!(
        set(hp::STORE_EVTCHN, 9).is_ok() && get(hp::STORE_EVTCHN) == Ok(9),
        "STORE_EVTCHN is the guest's to set"
    );

    // The memory map as the builder made it.
    let mut e = [E820Entry::default(); 8];
    let mut m = MemoryMap {
        nr_entries: 8,
        pad: 0,
        buffer: e.as_mut_ptr() as u64,
    };
    let r = hc::memory_op(MEMORY_MAP, &mut m as *mut _ as u64);
    let n = m.nr_entries as usize;
    check!(r.is_ok() && n >= 2, "memory_map: {r:?}, {n} entries");
    let ram: u64 = e[..n.min(8)]
        .iter()
        .filter(|x| x.kind == E820_RAM)
        .map(|x| x.size())
        .sum();
    check!(ram > 0, "memory_map lists {ram} bytes of RAM");

    // Balloon out four pages at the top of RAM, then back in.
    let top = e[..n.min(8)]
        .iter()
        .filter(|x| x.kind == E820_RAM)
        .map(|x| (x.addr() + x.size()) / 4096)
        .max()
        .unwrap_or(0);
    let before = hc::current_reservation(DOMID_SELF);
    let gfns = [top - 4, top - 3, top - 2, top - 1];
    let out = hc::decrease_reservation(DOMID_SELF, &gfns, 0);
    let during = hc::current_reservation(DOMID_SELF);
    check!(out == Ok(4), "ballooned out 4 pages: {out:?}");
    check!(
        matches!((before, during), (Ok(b), Ok(d)) if d + 4 == b),
        "reservation {before:?} -> {during:?}"
    );
    let back = hc::populate_physmap(DOMID_SELF, &gfns, 0);
    check!(back == Ok(4), "ballooned in 4 pages: {back:?}");
    check!(
        hc::current_reservation(DOMID_SELF) == before,
        "reservation restored"
    );
    // An extent order above a domU's limit (2 MiB) does nothing: no
    // extent done, as Xen's max_order().
    check!(
        hc::decrease_reservation(DOMID_SELF, &[0], 10) == Ok(0)
            && hc::current_reservation(DOMID_SELF) == before,
        "extent order 10: nothing done"
    );

    // The console ring: Warden copies what we write as (d1) lines.
    if let Ok(p) = pfn {
        let base = p * 4096;
        map_2m(base);
        ring_write(base, b"xenabi: hello through the console ring\n");
        // Notify as Linux's hvc_xen does: the port is unbound (its remote
        // is dom0's future xenconsoled), so the send is accepted and dropped.
        let port = get(hp::CONSOLE_EVTCHN).unwrap_or(0) as u32;
        let st = warden_guest::evtchn::status(DOMID_SELF, port);
        check!(
            port != 0
                && st.is_ok_and(
                    |s| s.status == warden_abi::xen::event_channel::STAT_UNBOUND && s.u[0] == 0
                ),
            "CONSOLE_EVTCHN {port} is unbound for dom0: {st:?}"
        );
        check!(
            warden_guest::evtchn::send(port).is_ok(),
            "send on the console port"
        );
        let t0 = rdtsc();
        // Bounded by TSC ticks: far more than the backend's 10 ms poll.
        while !ring_drained(base) && rdtsc() - t0 < 20_000_000_000 {
            let _ = hc::sched_yield();
        }
        check!(ring_drained(base), "Warden drained the console ring");
    }
    println!("xen-abi: done");
    crate::report::finish("xen-abi")
}

#[repr(C, align(64))]
struct Rs(RunstateInfo);
static mut RUNSTATE: Rs = Rs(RunstateInfo {
    state: 0,
    pad: 0,
    state_entry_time: 0,
    time: [0; 4],
});
#[repr(C, align(32))]
struct Ti(VcpuTimeInfo);
static mut TIME_AREA: Ti = Ti(VcpuTimeInfo {
    version: 0,
    pad0: 0,
    tsc_timestamp: 0,
    system_time: 0,
    tsc_to_system_mul: 0,
    tsc_shift: 0,
    flags: 0,
    pad1: [0; 2],
});

fn runstate() -> RunstateInfo {
    // SAFETY: a static the hypervisor writes while this vCPU is out of the
    // guest; read volatile by the vCPU that registered it.
    unsafe { core::ptr::read_volatile(&raw const RUNSTATE.0) }
}

/// System time from vCPU `v`'s own vcpu_info (as Linux reads its per-CPU copy).
fn now_on(v: u32) -> u64 {
    warden_guest::time::system_time(&warden_guest::events::time_info_of(v), rdtsc())
}

static TURN: AtomicU32 = AtomicU32::new(0);
static LAST: AtomicU64 = AtomicU64::new(0);
static BACKWARDS: AtomicU64 = AtomicU64::new(0);
const ROUNDS: u32 = 400;

fn pong(v: u32) -> ! {
    for _ in 0..ROUNDS {
        while TURN.load(Ordering::Acquire) != 1 {
            let _ = hc::sched_yield();
        }
        let t = now_on(v);
        if t < LAST.load(Ordering::Acquire) {
            BACKWARDS.fetch_add(1, Ordering::AcqRel);
        }
        LAST.store(t, Ordering::Release);
        TURN.store(0, Ordering::Release);
    }
    loop {
        let _ = hc::sched_block();
    }
}

/// Role `xen-time`: the PV clock (seqlock, scale, monotonic across vCPUs),
/// the runstate and time areas, then a measured sleep of `sleep=` seconds
/// of system time the QEMU test compares with the host's clock.
pub fn xen_time(boot: &warden_guest::start::Boot) -> ! {
    let t = warden_guest::events::time_info_of(0);
    check!(
        t.version.is_multiple_of(2) && t.version > 0 && t.tsc_to_system_mul != 0,
        "vcpu_info time: version {} mul {} shift {}",
        t.version,
        t.tsc_to_system_mul,
        t.tsc_shift
    );
    let a = now_ns();
    let b = now_ns();
    check!(b >= a && a > 0, "system time runs: {a} then {b}");

    // The runstate area: written at registration, kept for real.
    let r = hc::vcpu_op(
        vc::REGISTER_RUNSTATE_MEMORY_AREA,
        0,
        &RegisterArea {
            addr: &raw const RUNSTATE as u64,
        } as *const _ as u64,
    );
    check!(r.is_ok(), "register_runstate_memory_area: {r:?}");
    check!(
        hc::call(nr::VM_ASSIST, [0, 5, 0, 0, 0]).is_ok(),
        "vm_assist runstate_update_flag"
    );
    check!(
        hc::call(nr::VM_ASSIST, [0, 2, 0, 0, 0]) == Err(Errno(errno::EINVAL)),
        "vm_assist of a PV-only type: EINVAL"
    );
    let r0 = runstate();
    sleep_ns(200_000_000);
    let r1 = runstate();
    check!(
        r1.state == vc::RUNSTATE_RUNNING,
        "runstate area says running: {}",
        r1.state
    );
    check!(
        r1.state_entry_time & vc::RUNSTATE_UPDATE == 0 && r1.state_entry_time <= now_ns(),
        "state_entry_time {} (flag clear, not in the future)",
        r1.state_entry_time
    );
    let blocked = r1.time[vc::RUNSTATE_BLOCKED as usize] - r0.time[vc::RUNSTATE_BLOCKED as usize];
    check!(
        blocked >= 150_000_000,
        "200 ms of polling show as {} ms blocked",
        blocked / 1_000_000
    );

    // The secondary time area carries the same record.
    let r = hc::vcpu_op(
        vc::REGISTER_VCPU_TIME_MEMORY_AREA,
        0,
        &RegisterArea {
            addr: &raw const TIME_AREA as u64,
        } as *const _ as u64,
    );
    check!(r.is_ok(), "register_vcpu_time_memory_area: {r:?}");
    let _ = hc::sched_yield();
    // SAFETY: as for RUNSTATE.
    let ta = unsafe { core::ptr::read_volatile(&raw const TIME_AREA.0) };
    let ti = warden_guest::events::time_info_of(0);
    check!(
        ta.version.is_multiple_of(2)
            && ta.tsc_to_system_mul == ti.tsc_to_system_mul
            && ta.tsc_shift == ti.tsc_shift,
        "time area: version {} mul {}",
        ta.version,
        ta.tsc_to_system_mul
    );

    // Monotonic across vCPUs: ping-pong with vCPU 1, each reading its own record.
    if boot.vcpus() > 1 {
        let r = warden_guest::smp::start(1, pong);
        check!(r.is_ok(), "vCPU 1 started: {r:?}");
        for _ in 0..ROUNDS {
            while TURN.load(Ordering::Acquire) != 0 {
                let _ = hc::sched_yield();
            }
            let t = now_on(0);
            if t < LAST.load(Ordering::Acquire) {
                BACKWARDS.fetch_add(1, Ordering::AcqRel);
            }
            LAST.store(t, Ordering::Release);
            TURN.store(1, Ordering::Release);
        }
        while TURN.load(Ordering::Acquire) != 0 {
            let _ = hc::sched_yield();
        }
        check!(
            BACKWARDS.load(Ordering::Acquire) == 0,
            "system time never went back between vCPUs ({} times in {} rounds)",
            BACKWARDS.load(Ordering::Acquire),
            2 * ROUNDS
        );
    }

    // The wall clock in shared_info (UTC at system time 0, seqlocked).
    match warden_guest::evtchn::init() {
        Ok(si) => {
            let wc = |off: u64| {
                // SAFETY: the shared_info page is mapped at `si` (identity);
                // the hypervisor writes these words, read volatile.
                unsafe { core::ptr::read_volatile((si + off) as *const u32) }
            };
            let (sec, nsec, hi) = loop {
                let v1 = wc(3072);
                core::sync::atomic::fence(Ordering::Acquire);
                let f = (wc(3076), wc(3080), wc(3084));
                core::sync::atomic::fence(Ordering::Acquire);
                if v1.is_multiple_of(2) && v1 == wc(3072) {
                    break f;
                }
            };
            let boot = (((hi as u64) << 32) | sec as u64) * 1_000_000_000 + nsec as u64;
            let wall = (boot + now_ns()) / 1_000_000_000;
            println!("xen-time: wallclock {wall}");
            check!(wall > 1_700_000_000, "the wall clock is set: {wall}");
        }
        Err(e) => {
            check!(false, "shared_info mapped: {e}");
        }
    }

    // The measured interval.
    let secs: u64 = boot.arg("sleep").and_then(|s| s.parse().ok()).unwrap_or(0);
    println!("xen-time: sleeping {secs} s of system time");
    let s0 = now_ns();
    sleep_ns(secs * 1_000_000_000);
    println!("xen-time: slept {} ms", (now_ns() - s0) / 1_000_000);
    crate::report::finish("xen-time")
}
