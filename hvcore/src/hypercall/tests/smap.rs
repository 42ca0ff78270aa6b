//! SMAP and hypercall arguments (Xen 4.17's `hvm_copy_*_guest_linear`):
//! with the caller's CR4.SMAP set, arguments in user pages are reached only
//! with EFLAGS.AC set (Linux's privcmd: `stac` around the hypercall);
//! without it the copy faults, the hypercall is -EFAULT and nothing
//! happened.

use super::overflow::{call_paged, long_mode};
use super::*;
use crate::guestmem::PagingState;
use warden_abi::hypercall as hc;

const PML4: u64 = 0x10000;
const PDPT_LO: u64 = 0x14000;
const PD_LO: u64 = 0x15000;
const PT_LO: u64 = 0x16000;
const CR4_SMAP: u64 = 1 << 21;
const RFLAGS_AC: u64 = 1 << 18;

/// `d` in long mode with SMAP on: the low pages as [`long_mode`] maps
/// them, and `ARG`'s and `BUF`'s pages user pages (U/S at every level).
fn smap_mode(w: &World, d: &Domain) -> PagingState {
    let p = long_mode(w, d);
    let u = |to: u64| to | 7; // present, writable, user
    w.put(d, PML4, &u(PDPT_LO));
    w.put(d, PDPT_LO, &u(PD_LO));
    w.put(d, PD_LO, &u(PT_LO));
    for va in [ARG, BUF] {
        w.put(d, PT_LO + (va >> 12) * 8, &u(va));
    }
    PagingState {
        cr4: p.cr4 | CR4_SMAP,
        ..p
    }
}

fn physinfo_op() -> sc::Sysctl {
    sc::Sysctl::new(sc::PHYSINFO, &())
}

#[test]
fn user_page_arguments_need_eflags_ac_under_smap() {
    let w = world(true);
    let d0 = w.domain(0, "system_u:system_r:dom0_t");
    let smap = smap_mode(&w, &d0);
    let ac = PagingState {
        rflags: smap.rflags | RFLAGS_AC,
        ..smap
    };
    // Read then written back: AC clear faults on the read, nothing is
    // written.
    w.put(&d0, ARG, &physinfo_op());
    let r = call_paged(&w, &d0, smap, hc::SYSCTL, [ARG, 0, 0, 0, 0]);
    assert_eq!(r, -(errno::EFAULT as i64));
    let back: sc::Sysctl = w.get(&d0, ARG);
    assert_eq!(back.arg::<sc::PhysInfo>().nr_cpus, 0, "nothing written");
    // AC set: the same call works.
    let r = call_paged(&w, &d0, ac, hc::SYSCTL, [ARG, 0, 0, 0, 0]);
    assert_eq!(r, 0);
    let back: sc::Sysctl = w.get(&d0, ARG);
    assert_eq!(back.arg::<sc::PhysInfo>().nr_cpus, w.hv.platform.nr_cpus());
    let buf = || {
        let mut b = [0u8; 16];
        w.hv.read_phys(&d0, BUF, &mut b).unwrap();
        b
    };
    // A write only (xen_version's extraversion into BUF): AC clear leaves
    // the buffer as it was.
    w.hv.write_phys(&d0, BUF, &[0x5a; 16]).unwrap();
    let ev = [warden_abi::version::EXTRAVERSION as u64, BUF, 0, 0, 0];
    let r = call_paged(&w, &d0, smap, hc::XEN_VERSION, ev);
    assert_eq!(r, -(errno::EFAULT as i64));
    assert_eq!(buf(), [0x5a; 16]);
    assert_eq!(call_paged(&w, &d0, ac, hc::XEN_VERSION, ev), 0);
    assert_ne!(buf(), [0x5a; 16]);
    // Arguments in a supervisor page (the kernel's own) need no AC.
    let p = long_mode(&w, &d0);
    let kernel = PagingState {
        cr4: p.cr4 | CR4_SMAP,
        ..p
    };
    let arg = 0x3000;
    w.put(&d0, arg, &physinfo_op());
    assert_eq!(
        call_paged(&w, &d0, kernel, hc::SYSCTL, [arg, 0, 0, 0, 0]),
        0
    );
}
