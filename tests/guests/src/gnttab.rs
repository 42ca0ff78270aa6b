//! grant_table_op (hypercall 20) from a test guest: thin wrappers over the
//! raw hypercall, each entry's GNTST_* status read back.

use crate::check;
use crate::scenarios::{domid_arg, wait_shutdown};
use core::sync::atomic::{AtomicU8, AtomicU32, Ordering};
use warden_abi::hypercall::GRANT_TABLE_OP;
use warden_abi::xen::grant_table::{self as gt, *};
use warden_abi::{DOMID_SELF, DomId, Pod};
use warden_guest::hypercall::{self as hc, HResult};
use warden_guest::println;
use warden_guest::start::Boot;
use warden_guest::time::{now_ns, sleep_ns};

fn op<T: Pod>(cmd: u32, ops: &mut [T]) -> HResult {
    hc::call(
        GRANT_TABLE_OP,
        [cmd as u64, ops.as_mut_ptr() as u64, ops.len() as u64, 0, 0],
    )
}

/// map_grant_ref of `dom`'s `gref` at guest-physical `gpa`: (status, handle).
pub fn map(dom: DomId, gref: u32, gpa: u64, readonly: bool) -> Result<(i16, u32), hc::Errno> {
    let mut m = [MapGrantRef {
        host_addr: gpa,
        flags: GNTMAP_HOST_MAP | if readonly { GNTMAP_READONLY } else { 0 },
        ref_: gref,
        dom,
        ..Default::default()
    }];
    op(gt::MAP_GRANT_REF, &mut m)?;
    Ok((m[0].status, m[0].handle))
}

/// unmap_grant_ref: the status.
pub fn unmap(handle: u32, gpa: u64) -> Result<i16, hc::Errno> {
    let mut u = [UnmapGrantRef {
        host_addr: gpa,
        handle,
        ..Default::default()
    }];
    op(gt::UNMAP_GRANT_REF, &mut u)?;
    Ok(u[0].status)
}

/// One copy: the status.
pub fn copy(source: CopyPtr, dest: CopyPtr, len: u16, flags: u16) -> Result<i16, hc::Errno> {
    let mut c = [gt::Copy {
        source,
        dest,
        len,
        flags,
        ..Default::default()
    }];
    op(gt::COPY, &mut c)?;
    Ok(c[0].status)
}

/// setup_table of `dom` for `frames.len()` frames: the status.
pub fn setup_table(dom: DomId, frames: &mut [u64]) -> Result<i16, hc::Errno> {
    let mut s = [SetupTable {
        dom,
        nr_frames: frames.len() as u32,
        frame_list: frames.as_mut_ptr() as u64,
        ..Default::default()
    }];
    op(gt::SETUP_TABLE, &mut s)?;
    Ok(s[0].status)
}

/// query_size of `dom`: (status, frames, max frames).
pub fn query_size(dom: DomId) -> Result<(i16, u32, u32), hc::Errno> {
    let mut q = [QuerySize {
        dom,
        ..Default::default()
    }];
    op(gt::QUERY_SIZE, &mut q)?;
    Ok((q[0].status, q[0].nr_frames, q[0].max_nr_frames))
}

/// set_version: the hypercall's result and the version written back.
pub fn set_version(version: u32) -> (HResult, u32) {
    let mut v = [SetVersion { version }];
    let r = op(gt::SET_VERSION, &mut v);
    (r, v[0].version)
}

/// get_version of `dom`.
pub fn get_version(dom: DomId) -> Result<u32, hc::Errno> {
    let mut v = [GetVersion {
        dom,
        ..Default::default()
    }];
    op(gt::GET_VERSION, &mut v)?;
    Ok(v[0].version)
}

/// A copy side: a grant reference of `domid` or (DOMID_SELF) a frame.
pub fn ptr(u: u64, domid: DomId, offset: u16) -> CopyPtr {
    CopyPtr {
        u,
        domid,
        offset,
        pad: 0,
    }
}

/// XENMEM_add_to_physmap of grant-table frame `idx` at `gpfn` (our own table).
pub fn map_table_frame(idx: u64, gpfn: u64) -> HResult {
    let mut a = warden_abi::memory::AddToPhysmap {
        domid: DOMID_SELF,
        size: 0,
        space: warden_abi::memory::XENMAPSPACE_GRANT_TABLE,
        idx,
        gpfn,
    };
    hc::memory_op(warden_abi::memory::ADD_TO_PHYSMAP, &mut a as *mut _ as u64)
}

// ------------------------------------------------------------ two guests
//
// `role=gnttab-granter peer=0`: a domU grants pages of its own to dom0;
// `role=gnttab-dom0 granter=N`: dom0 maps, reads, copies and unmaps them
// and tries every refusal. The first granted page (ref 8) doubles as a
// mailbox: dom0 writes requests at MAILBOX, the granter answers at ACK.

/// Pages given up (decrease_reservation, as Linux's balloon) to make room
/// for the grant-table frame and for grant maps: their addresses stay in
/// the guest's identity map, so what is mapped there can be read.
#[repr(C, align(4096))]
struct Holes([[u8; 4096]; 8]);
static mut HOLES: Holes = Holes([[0; 4096]; 8]);

/// Where dom0 maps grants (`HOLES`, given up first).
fn map_gpa() -> u64 {
    // SAFETY: only the address is taken.
    unsafe { (&raw mut HOLES.0) as u64 }
}

/// Give the `HOLES` pages up (they must not be touched afterwards).
fn make_holes() -> bool {
    let base = map_gpa() >> 12;
    let gfns: [u64; 8] = core::array::from_fn(|i| base + i as u64);
    hc::decrease_reservation(DOMID_SELF, &gfns, 0) == Ok(8)
}
const MAILBOX: usize = 2048;
const ACK: usize = 2049;
/// Mailbox requests.
const REQ_REVOKE: u8 = 1;
const REQ_DONE: u8 = 2;

#[repr(C, align(4096))]
struct Pages([[u8; 4096]; 4]);
static mut PAGES: Pages = Pages([[0; 4096]; 4]);
static mut OWN: Pages = Pages([[0; 4096]; 4]);

fn pages() -> *mut [[u8; 4096]; 4] {
    // SAFETY: only the address is taken.
    unsafe { &raw mut PAGES.0 }
}

fn own() -> *mut [[u8; 4096]; 4] {
    // SAFETY: only the address is taken.
    unsafe { &raw mut OWN.0 }
}

/// A byte of shared memory, read and written atomically (the other domain
/// writes it too).
fn byte(addr: u64) -> &'static AtomicU8 {
    // SAFETY: `addr` is in identity-mapped memory this guest owns or has
    // mapped by grant; AtomicU8 has the layout of u8.
    unsafe { &*(addr as *const AtomicU8) }
}

fn read_bytes(addr: u64, n: usize) -> alloc::vec::Vec<u8> {
    (0..n as u64)
        .map(|i| byte(addr + i).load(Ordering::Acquire))
        .collect()
}

/// The granter's entry `gref` in its mapped table.
fn entry(gref: u32) -> (&'static AtomicU32, &'static AtomicU32) {
    let a = map_gpa() + gref as u64 * 8;
    // SAFETY: the table frame is mapped at the first hole (identity-mapped
    // guest-physical space); entries are 8-byte aligned.
    unsafe { (&*(a as *const AtomicU32), &*((a + 4) as *const AtomicU32)) }
}

/// Write entry `gref` as a guest does: frame and domid, then flags.
fn set_entry(gref: u32, flags: u16, domid: DomId, frame: u64) {
    let (w0, w1) = entry(gref);
    w1.store(frame as u32, Ordering::Release);
    w0.store((domid as u32) << 16, Ordering::Release);
    w0.store(((domid as u32) << 16) | flags as u32, Ordering::Release);
}

pub fn granter(boot: &Boot) -> ! {
    let peer = domid_arg(boot, "peer");
    let p = pages() as u64;
    check!(
        map_table_frame(0, map_gpa() >> 12).is_ok(),
        "granter: grant-table frame 0 mapped"
    );
    for (i, text) in [
        b"GNTTAB-A page".as_slice(),
        b"GNTTAB-B read-only",
        b"GNTTAB-C copy",
        b"GNTTAB-D revoke",
    ]
    .iter()
    .enumerate()
    {
        for (j, &b) in text.iter().enumerate() {
            byte(p + i as u64 * 4096 + j as u64).store(b, Ordering::Release);
        }
    }
    set_entry(9, GTF_PERMIT_ACCESS | GTF_READONLY, peer, (p >> 12) + 1);
    set_entry(10, GTF_PERMIT_ACCESS, peer, (p >> 12) + 2);
    set_entry(11, GTF_PERMIT_ACCESS, 77, (p >> 12) + 2);
    set_entry(12, GTF_PERMIT_ACCESS, peer, (p >> 12) + 3);
    // Last: the mailbox page (dom0 polls until it maps).
    set_entry(8, GTF_PERMIT_ACCESS, peer, p >> 12);
    println!("gnttab-granter: granted refs 8-12 to d{peer}");
    let mailbox = byte(p + MAILBOX as u64);
    let ack = byte(p + ACK as u64);
    let until = now_ns() + 300_000_000_000;
    loop {
        match mailbox.load(Ordering::Acquire) {
            REQ_REVOKE => {
                let flags = entry(12).0.load(Ordering::Acquire) as u16;
                check!(
                    flags & GTF_READING != 0,
                    "granter: ref 12 is being read (flags {flags:#x})"
                );
                // A hostile granter clears an entry that is still mapped.
                entry(12).0.store(0, Ordering::Release);
                mailbox.store(0, Ordering::Release);
                ack.store(REQ_REVOKE, Ordering::Release);
            }
            REQ_DONE => {
                ack.store(REQ_DONE, Ordering::Release);
                break;
            }
            _ => {}
        }
        if now_ns() > until {
            check!(false, "granter: dom0 never finished");
            break;
        }
        sleep_ns(1_000_000);
    }
    // dom0 unmaps ref 8 once it has the answer.
    let (f8, _) = entry(8);
    let until = now_ns() + 60_000_000_000;
    while f8.load(Ordering::Acquire) as u16 & (GTF_READING | GTF_WRITING) != 0 && now_ns() < until {
        sleep_ns(1_000_000);
    }
    check!(
        f8.load(Ordering::Acquire) as u16 & (GTF_READING | GTF_WRITING) == 0,
        "granter: ref 8 no longer in use after dom0's unmap"
    );
    hostile(boot);
    crate::report::finish("gnttab-granter")
}

/// 100,000 (or `iterations=`) grant-table calls with valid interface
/// fields and random values, at the peer and at this domain itself.
fn hostile(boot: &Boot) {
    let n: u64 = boot
        .arg("iterations")
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let peer = domid_arg(boot, "peer");
    let mut r = warden_guest::util::Rng::new(20261207);
    let doms = [peer, DOMID_SELF, boot.domid(), 77, 0x7ff1];
    let own = own() as u64;
    let mut okays = 0u64;
    for _ in 0..n {
        let x = r.next_u64();
        let y = r.next_u64();
        let dom = doms[(x >> 8) as usize % doms.len()];
        let gref = [8u32, 9, 10, 12, 0, 511, 512, u32::MAX][(x >> 16) as usize % 8];
        let gpa = [map_gpa() + 0x6000, map_gpa() + 0x7000, own, map_gpa()][(x >> 24) as usize % 4];
        let st = match (x >> 32) % 7 {
            0 => {
                let flags = [2u32, 6, 0, 1, 3, 8, 0xffff_0002][(y % 7) as usize];
                let mut m = [MapGrantRef {
                    host_addr: gpa,
                    flags,
                    ref_: gref,
                    dom,
                    ..Default::default()
                }];
                let _ = op(gt::MAP_GRANT_REF, &mut m);
                m[0].status
            }
            1 => {
                let mut u = [UnmapGrantRef {
                    host_addr: gpa,
                    handle: (y % 4) as u32,
                    ..Default::default()
                }];
                let _ = op(gt::UNMAP_GRANT_REF, &mut u);
                u[0].status
            }
            2 => {
                // A reference side names a grant; a frame side only this
                // guest's scratch pages (or nothing), never its own code.
                let flags = (y >> 60) as u16 & 3;
                let side = |s: u64, gref: bool| {
                    let u = if gref {
                        [8, 9, 10, 12, 5000][(s % 5) as usize]
                    } else {
                        [own >> 12, (own >> 12) + 1, 0x7ff_ffff][(s % 3) as usize]
                    };
                    ptr(
                        u,
                        doms[((s >> 4) as usize) % doms.len()],
                        (s >> 8) as u16 % 4200,
                    )
                };
                let s = side(y, flags & GNTCOPY_SOURCE_GREF != 0);
                let d = side(y >> 20, flags & GNTCOPY_DEST_GREF != 0);
                copy(s, d, (y >> 40) as u16 % 4200, flags).unwrap_or(-100)
            }
            3 => {
                let mut f = [0u64; 4];
                setup_table(dom, &mut f[..(y % 5) as usize]).unwrap_or(-100)
            }
            4 => query_size(dom).map(|q| q.0).unwrap_or(-100),
            5 => set_version((y % 4) as u32).0.map(|_| 0).unwrap_or(-100),
            _ => get_version(dom).map(|_| 0).unwrap_or(-100),
        };
        if st == 0 {
            okays += 1;
        }
    }
    // Undo whatever mapped of itself.
    for h in 0..4 {
        let _ = unmap(h, map_gpa() + 0x6000);
        let _ = unmap(h, map_gpa() + 0x7000);
    }
    println!("gnttab-hostile: {n} grant-table calls done, {okays} succeeded");
    check!(
        okays > 0 && okays < n,
        "hostile: some calls succeeded, most were refused"
    );
}

/// Wait for the granter's grant of ref 8 and map it: the handle.
fn map_mailbox(g: DomId) -> Option<u32> {
    let until = now_ns() + 120_000_000_000;
    while now_ns() < until {
        match map(g, 8, map_gpa(), false) {
            Ok((GNTST_OKAY, h)) => return Some(h),
            Ok((GNTST_GENERAL_ERROR, _)) => sleep_ns(5_000_000),
            other => {
                println!("gnttab-dom0: map of ref 8: {other:?}");
                return None;
            }
        }
    }
    None
}

/// The GPA is empty: a copy from it as one of our own frames is refused.
fn gpa_empty(gpa: u64) -> bool {
    copy(
        ptr(gpa >> 12, DOMID_SELF, 0),
        ptr((own() as u64) >> 12, DOMID_SELF, 0),
        8,
        0,
    ) == Ok(GNTST_BAD_PAGE)
}

pub fn dom0(boot: &Boot) -> ! {
    let g = domid_arg(boot, "granter");
    check!(make_holes(), "dom0: 8 pages given up for grant maps");
    let deny = boot.arg("deny").is_some();
    if deny {
        // The policy lacks dom0_t -> domU_t grant permissions.
        let st = map(g, 8, map_gpa(), false);
        check!(
            st == Ok((GNTST_PERMISSION_DENIED, 0)),
            "denied map of ref 8: {st:?}"
        );
        check!(gpa_empty(map_gpa()), "nothing mapped after the denial");
        let c = copy(
            ptr(10, g, 0),
            ptr((own() as u64) >> 12, DOMID_SELF, 0),
            8,
            GNTCOPY_SOURCE_GREF,
        );
        check!(c == Ok(GNTST_PERMISSION_DENIED), "denied copy: {c:?}");
        crate::report::finish("gnttab-dom0")
    }
    let q = query_size(DOMID_SELF);
    check!(q == Ok((GNTST_OKAY, 1, 64)), "query_size of itself: {q:?}");
    let v = set_version(2);
    check!(
        v.0 == Err(hc::Errno(warden_abi::errno::ENOSYS)) && v.1 == 1,
        "set_version(2): {v:?}"
    );
    check!(get_version(DOMID_SELF) == Ok(1), "get_version of itself");
    let Some(h8) = map_mailbox(g) else {
        check!(false, "ref 8 never mapped");
        crate::report::finish("gnttab-dom0")
    };
    let a = read_bytes(map_gpa(), 13);
    check!(
        a == b"GNTTAB-A page",
        "ref 8 mapped: {:?}",
        core::str::from_utf8(&a)
    );
    // Read-only: the mapping reads; a writable map is refused; a write by
    // the hypervisor on our behalf (a hypercall's result) faults.
    let ro = map_gpa() + 0x1000;
    let rw = map(g, 9, ro, false);
    check!(
        matches!(rw, Ok((GNTST_GENERAL_ERROR, _))),
        "writable map of a read-only grant: {rw:?}"
    );
    check!(gpa_empty(ro), "nothing mapped by the refused map");
    let (st9, h9) = map(g, 9, ro, true).unwrap_or((-100, 0));
    check!(st9 == GNTST_OKAY, "read-only map of ref 9");
    check!(read_bytes(ro, 18) == b"GNTTAB-B read-only", "ref 9 reads");
    let r = hc::call(GRANT_TABLE_OP, [gt::QUERY_SIZE as u64, ro, 1, 0, 0]);
    check!(
        r == Err(hc::Errno(warden_abi::errno::EFAULT)),
        "hypercall writing into the read-only map: {r:?}"
    );
    check!(
        read_bytes(ro, 18) == b"GNTTAB-B read-only",
        "ref 9 unchanged"
    );
    // A store of our own into the read-only map is dropped (Xen's
    // p2m_grant_map_ro): we go on, the granter's bytes stay.
    // SAFETY: `ro` is identity-mapped guest-physical space holding the
    // read-only grant mapping; the store is emulated and discarded.
    unsafe { core::ptr::write_volatile(ro as *mut u64, 0x4141_4141_4141_4141) };
    check!(
        read_bytes(ro, 18) == b"GNTTAB-B read-only",
        "a store into the read-only map was dropped, the guest went on"
    );
    check!(unmap(h9, ro) == Ok(GNTST_OKAY), "unmap ref 9");
    check!(gpa_empty(ro), "ref 9's GPA is empty again");
    // Copy both ways (ref 10).
    let o = own() as u64;
    let c = copy(
        ptr(10, g, 0),
        ptr(o >> 12, DOMID_SELF, 100),
        13,
        GNTCOPY_SOURCE_GREF,
    );
    check!(c == Ok(GNTST_OKAY), "copy granter -> dom0: {c:?}");
    check!(
        read_bytes(o + 100, 13) == b"GNTTAB-C copy",
        "copied bytes arrived"
    );
    for (i, &b) in b"from dom0".iter().enumerate() {
        byte(o + 4096 + i as u64).store(b, Ordering::Release);
    }
    let c = copy(
        ptr((o >> 12) + 1, DOMID_SELF, 0),
        ptr(10, g, 2000),
        9,
        GNTCOPY_DEST_GREF,
    );
    check!(c == Ok(GNTST_OKAY), "copy dom0 -> granter: {c:?}");
    let c = copy(
        ptr(10, g, 2000),
        ptr((o >> 12) + 2, DOMID_SELF, 0),
        9,
        GNTCOPY_SOURCE_GREF,
    );
    check!(
        c == Ok(GNTST_OKAY) && read_bytes(o + 8192, 9) == b"from dom0",
        "the bytes reached the granter's page"
    );
    let c = copy(
        ptr(10, g, 4090),
        ptr(o >> 12, DOMID_SELF, 0),
        9,
        GNTCOPY_SOURCE_GREF,
    );
    check!(
        c == Ok(GNTST_BAD_COPY_ARG),
        "copy across the page end: {c:?}"
    );
    // Refusals: nothing mapped after any of them.
    let spare = map_gpa() + 0x2000;
    for (what, dom, gref, want) in [
        ("bad ref", g, 5000u32, GNTST_BAD_GNTREF),
        ("no such domain", 77, 8, GNTST_BAD_DOMAIN),
        ("granted to another domain", g, 11, GNTST_GENERAL_ERROR),
    ] {
        let st = map(dom, gref, spare, false).map(|x| x.0);
        check!(st == Ok(want), "map refused ({what}): {st:?}");
        check!(gpa_empty(spare), "nothing mapped ({what})");
    }
    check!(
        unmap(77, spare) == Ok(GNTST_BAD_HANDLE),
        "unmap of a bad handle"
    );
    // Revocation: ref 12 mapped, the granter clears its entry: the mapping
    // stays, a new map fails.
    let rv = map_gpa() + 0x3000;
    let (st12, h12) = map(g, 12, rv, true).unwrap_or((-100, 0));
    check!(st12 == GNTST_OKAY, "map of ref 12");
    byte(map_gpa() + ACK as u64).store(0, Ordering::Release);
    byte(map_gpa() + MAILBOX as u64).store(REQ_REVOKE, Ordering::Release);
    let until = now_ns() + 60_000_000_000;
    while byte(map_gpa() + ACK as u64).load(Ordering::Acquire) != REQ_REVOKE && now_ns() < until {
        sleep_ns(1_000_000);
    }
    check!(
        byte(map_gpa() + ACK as u64).load(Ordering::Acquire) == REQ_REVOKE,
        "granter revoked ref 12"
    );
    check!(
        read_bytes(rv, 15) == b"GNTTAB-D revoke",
        "a revoked grant stays mapped"
    );
    check!(
        unmap(h12, rv) == Ok(GNTST_OKAY),
        "unmap of the revoked grant"
    );
    let st = map(g, 12, rv, true).map(|x| x.0);
    check!(
        st == Ok(GNTST_GENERAL_ERROR),
        "a revoked grant cannot be mapped again: {st:?}"
    );
    check!(gpa_empty(rv), "nothing mapped after the refused map");
    // Unmap restores the physmap; the granter may finish.
    byte(map_gpa() + MAILBOX as u64).store(REQ_DONE, Ordering::Release);
    let until = now_ns() + 60_000_000_000;
    while byte(map_gpa() + ACK as u64).load(Ordering::Acquire) != REQ_DONE && now_ns() < until {
        sleep_ns(1_000_000);
    }
    check!(unmap(h8, map_gpa()) == Ok(GNTST_OKAY), "unmap ref 8");
    check!(gpa_empty(map_gpa()), "ref 8's GPA is empty again");
    // The granter then throws its random calls and powers off.
    let reason = wait_shutdown(g, 600);
    check!(
        reason == Some(warden_abi::sched::SHUTDOWN_POWEROFF),
        "granter finished: {reason:?}"
    );
    crate::report::finish("gnttab-dom0")
}
