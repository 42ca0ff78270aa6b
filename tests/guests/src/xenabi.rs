//! Role `xen-abi`: HVM parameters, the memory map, ballooning and the
//! console ring Warden serves for a boot-built domU (tests/tests/xenabi.rs).

use crate::check;
use warden_abi::hvm::{GET_PARAM, HvmParam, SET_PARAM};
use warden_abi::hypercall as nr;
use warden_abi::memory::{E820_RAM, E820Entry, MEMORY_MAP, MemoryMap};
use warden_abi::xen::console::{OUT, OUT_CONS, OUT_PROD, OUT_SIZE};
use warden_abi::xen::hvm_params as hp;
use warden_abi::{DOMID_SELF, errno};
use warden_guest::hypercall::{self as hc, Errno};
use warden_guest::println;

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
    // An extent order above the limit is refused, nothing changes.
    check!(
        hc::decrease_reservation(DOMID_SELF, &[0], 10) == Err(Errno(errno::EINVAL)),
        "extent order 10: EINVAL"
    );

    // The console ring itself is not touched here: the boot page tables of
    // this role map only its RAM, not gfn 0xFEFFF (host tests cover the
    // drain: hvcore xen::console).
    let _ = (ring_write, ring_drained);
    println!("xen-abi: done");
    crate::report::finish("xen-abi")
}
