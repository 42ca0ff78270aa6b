//! Guest addresses at the very end of the address space (issue 14, section
//! 4): a handler that adds an offset to a guest pointer must refuse when the
//! sum wraps, never write at guest address 0. The test domain runs in long
//! mode with its last virtual page mapped, so such pointers pass the
//! translation; host tests build with overflow checks, so a wrapping `+`
//! would panic here.

use super::*;
use crate::guestmem::PagingState;

const PML4: u64 = 0x10000;
const PDPT_HI: u64 = 0x11000;
const PD_HI: u64 = 0x12000;
const PT_HI: u64 = 0x13000;
const PDPT_LO: u64 = 0x14000;
const PD_LO: u64 = 0x15000;
const PT_LO: u64 = 0x16000;
/// Where the last virtual page (0xffff_ffff_ffff_f000) lives.
const TOP_PAGE: u64 = 0x18000;
/// Guest virtual pages 0..16 map identically (ARG and BUF keep working).
const LOW_PAGES: u64 = 16;
/// The last virtual page.
pub(super) const TOP_VA: u64 = 0xffff_ffff_ffff_f000;

/// Long-mode paging for `d`: the low pages identity-mapped, the last
/// virtual page mapped to `TOP_PAGE`. Returns the paging registers.
pub(super) fn long_mode(w: &World, d: &Domain) -> PagingState {
    let e = |to: u64| to | 3; // present, writable
    w.put(d, PML4 + 511 * 8, &e(PDPT_HI));
    w.put(d, PDPT_HI + 511 * 8, &e(PD_HI));
    w.put(d, PD_HI + 511 * 8, &e(PT_HI));
    w.put(d, PT_HI + 511 * 8, &e(TOP_PAGE));
    w.put(d, PML4, &e(PDPT_LO));
    w.put(d, PDPT_LO, &e(PD_LO));
    w.put(d, PD_LO, &e(PT_LO));
    for i in 0..LOW_PAGES {
        w.put(d, PT_LO + i * 8, &e(i * 4096));
    }
    PagingState {
        cr0: 1 | (1 << 31),
        cr3: PML4,
        cr4: 1 << 5,
        efer: (1 << 8) | (1 << 10),
        rflags: 2,
    }
}

/// A hypercall from `d` with paging registers `p`.
pub(super) fn call_paged(w: &World, d: &Domain, p: PagingState, nr: u32, a: [u64; 5]) -> i64 {
    let v = d.vcpu(0).unwrap();
    let mut hw = v.hw.lock();
    *hw = Box::new(RecordingVcpu(FakeVcpu {
        args: HypercallArgs { nr: nr as u64, a },
        paging: p,
        ..Default::default()
    }));
    hypercall(w.hv, 0, &v, &mut **hw);
    RESULT.with(|r| r.get()) as i64
}

/// Guest page 0 (virtual address 0) filled with a pattern.
fn mark_page0(w: &World, d: &Domain) {
    w.hv.write_phys(d, 0, &[0x5a; 4096]).unwrap();
}

fn page0_untouched(w: &World, d: &Domain) -> bool {
    let mut b = [0u8; 4096];
    w.hv.read_phys(d, 0, &mut b).unwrap();
    b.iter().all(|&x| x == 0x5a)
}

#[test]
fn build_id_after_a_header_at_the_end_of_the_address_space_is_efault() {
    let w = world(true);
    let d0 = w.domain(0, "system_u:system_r:dom0_t");
    let p = long_mode(&w, &d0);
    mark_page0(&w, &d0);
    // The header's 4 bytes are the last 4 of the address space: the id
    // would start at arg + 4 = 2^64, which wraps to 0.
    let arg = u64::MAX - 3;
    w.put(
        &d0,
        TOP_PAGE + 4092,
        &warden_abi::version::BuildIdHeader { len: 64 },
    );
    let r = call_paged(
        &w,
        &d0,
        p,
        hc::XEN_VERSION,
        [warden_abi::version::BUILD_ID as u64, arg, 0, 0, 0],
    );
    assert_eq!(r, -(errno::EFAULT as i64));
    assert!(page0_untouched(&w, &d0), "nothing written at address 0");
    // The same call with the header where the id fits works (paging sound).
    w.put(
        &d0,
        TOP_PAGE,
        &warden_abi::version::BuildIdHeader { len: 64 },
    );
    let r = call_paged(
        &w,
        &d0,
        p,
        hc::XEN_VERSION,
        [warden_abi::version::BUILD_ID as u64, TOP_VA, 0, 0, 0],
    );
    assert_eq!(r, 20);
    let mut id = [0u8; 20];
    w.hv.read_phys(&d0, TOP_PAGE + 4, &mut id).unwrap();
    assert_eq!(id, [0xab; 20]);
}

#[test]
fn readconsole_into_the_end_of_the_address_space_never_wraps_to_zero() {
    let w = world(true);
    let d0 = w.domain(0, "system_u:system_r:dom0_t");
    let p = long_mode(&w, &d0);
    mark_page0(&w, &d0);
    w.plat.ring.lock().unwrap().write(&[b'x'; 1500]);
    // The first 512-byte chunk fills the last 512 bytes of the address
    // space exactly; the next one would start at 2^64.
    w.put(
        &d0,
        ARG,
        &sc::Sysctl::new(
            sc::READCONSOLE,
            &sc::ReadConsole {
                buffer: u64::MAX - 511,
                count: 1500,
                ..Default::default()
            },
        ),
    );
    let r = call_paged(&w, &d0, p, hc::SYSCTL, [ARG, 0, 0, 0, 0]);
    assert_eq!(r, -(errno::EFAULT as i64));
    assert!(page0_untouched(&w, &d0), "nothing written at address 0");
    let mut got = [0u8; 8];
    w.hv.read_phys(&d0, TOP_PAGE + 4088, &mut got).unwrap();
    assert_eq!(got, [b'x'; 8]);
}
