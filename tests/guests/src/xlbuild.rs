//! libxc's PVH build flow, run by the Rust test dom0 (xen-abi-map.md §5.4,
//! the 32 steps of `xl create`, and §5.8): a domain is created, given its
//! CPU policy and memory (claim, populate with 2 MiB and 4 KiB extents),
//! its kernel (one of these test guests, an ELF handed to dom0 as a boot
//! module) and start info are written through foreign mappings (privcmd's
//! MMAPBATCH_V2: add_to_physmap_batch with gmfn_foreign, unmapped with
//! remove_from_physmap), its special pages and parameters set, its vCPU
//! state loaded (sethvmcontext), its grant entries 0 and 1 seeded through
//! acquire_resource; then xenstored and xenconsoled introduce it (grant
//! maps of refs 1 and 0, bind_interdomain) and it is unpaused. The new
//! domain (role `built`) checks what it was given and reports; dom0 then
//! destroys it and free memory returns to the figure before.

use crate::check;
use crate::scenarios::wait_shutdown;
use alloc::format;
use alloc::vec::Vec;
use warden_abi::memory::{E820_RAM, E820_RESERVED, E820Entry};
use warden_abi::sched::SHUTDOWN_POWEROFF;
use warden_abi::sysctl::{CpuidLeaf, cpu_policy, featureset};
use warden_abi::xen::event_channel as ec;
use warden_abi::xen::grant_table::{self as gt, GrantEntryV1};
use warden_abi::xen::hvm_params as hp;
use warden_abi::xen::hvm_save as hs;
use warden_abi::xen::start_info::{
    HVM_START_MAGIC_VALUE, HvmMemmapTableEntry, HvmStartInfo, XEN_HVM_MEMMAP_TYPE_RAM,
    XEN_HVM_MEMMAP_TYPE_RESERVED,
};
use warden_abi::{DOMID_SELF, DomId, Pod};
use warden_guest::evtchn;
use warden_guest::hypercall as hc;
use warden_guest::println;
use warden_guest::start::Boot;

/// The new domain's RAM.
const MEM: u64 = 8 << 20;
/// libxl's special pages: 8 below 0xFF000 (paging, access, sharing,
/// bufioreq, xenstore, ioreq, ident_pt, console).
const SPECIAL_BASE: u64 = 0xFEFF8;
const STORE_PFN: u64 = SPECIAL_BASE + 4;
const CONSOLE_PFN: u64 = SPECIAL_BASE + 7;
/// Where the start info goes (after the kernel and its .bss).
const START_INFO: u64 = 0x60_0000;
/// Where dom0 maps foreign frames and grants (above its RAM, inside its
/// identity map of the first 4 GiB: its addresses are its pointers).
const MAP_BASE: u64 = 0x8_0000;
const STORE_MAP: u64 = MAP_BASE + 0x100;
const CONSOLE_MAP: u64 = MAP_BASE + 0x101;
const TABLE_MAP: u64 = MAP_BASE + 0x102;
/// What xenstored writes into the ring page and the guest acknowledges.
const STORE_HELLO: &[u8] = b"xenstored: hello";
const ACK: &[u8] = b"built: ack";

/// A loadable segment: guest-physical address, the bytes, the size in memory.
struct Segment<'a> {
    paddr: u64,
    data: &'a [u8],
}

fn u16_at(b: &[u8], o: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], o: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?))
}

/// The PT_LOAD segments of an ELF64 image and its PVH entry (the Xen
/// PHYS32_ENTRY note, type 18), as libxc's ELF loader reads them.
fn parse_elf(img: &[u8]) -> Option<(Vec<Segment<'_>>, u64)> {
    if img.get(..4)? != b"\x7fELF" || img[4] != 2 {
        return None;
    }
    let phoff = u64_at(img, 32)? as usize;
    let phentsize = u16_at(img, 54)? as usize;
    let phnum = u16_at(img, 56)? as usize;
    let mut segs = Vec::new();
    let mut entry = None;
    for i in 0..phnum {
        let ph = phoff.checked_add(i.checked_mul(phentsize)?)?;
        let kind = u32_at(img, ph)?;
        let off = u64_at(img, ph + 8)? as usize;
        let filesz = u64_at(img, ph + 32)? as usize;
        let data = img.get(off..off.checked_add(filesz)?)?;
        match kind {
            1 => segs.push(Segment {
                paddr: u64_at(img, ph + 24)?,
                data,
            }),
            4 => {
                let mut at = 0;
                while at + 12 <= data.len() {
                    let namesz = u32_at(data, at)? as usize;
                    let descsz = u32_at(data, at + 4)? as usize;
                    let t = u32_at(data, at + 8)?;
                    let name = at + 12;
                    let desc = name + namesz.div_ceil(4) * 4;
                    if t == 18 && data.get(name..name + 3)? == b"Xen" {
                        entry = Some(match descsz {
                            8 => u64_at(data, desc)?,
                            _ => u64::from(u32_at(data, desc)?),
                        });
                    }
                    at = desc + descsz.div_ceil(4) * 4;
                }
            }
            _ => {}
        }
    }
    Some((segs, entry?))
}

/// Copy `data` to dom0's own (foreign-mapped) guest frame `gfn` at `off`.
fn poke(gfn: u64, off: usize, data: &[u8]) {
    assert!(off + data.len() <= 4096);
    // Dom0's first 4 GiB are identity-mapped and `gfn` foreign-maps a page
    // of the domain being built (mapped just before), used by nothing else.
    // SAFETY: so `gfn * 4096` points to 4096 writable bytes; off+len fit.
    unsafe {
        core::ptr::copy_nonoverlapping(
            data.as_ptr(),
            (gfn * 4096 + off as u64) as *mut u8,
            data.len(),
        );
    }
}

/// Read `n` bytes of dom0's guest frame `gfn` (a foreign or grant mapping).
fn peek(gfn: u64, n: usize) -> Vec<u8> {
    let mut v = alloc::vec![0u8; n.min(4096)];
    // SAFETY: as `poke`: a frame dom0 maps, identity-mapped, read only here.
    unsafe {
        core::ptr::copy_nonoverlapping((gfn * 4096) as *const u8, v.as_mut_ptr(), v.len());
    }
    v
}

fn free_pages() -> u64 {
    hc::physinfo().map(|p| p.free_pages).unwrap_or(0)
}

/// The start-info page libxc writes: `hvm_start_info` v1, the command
/// line, the memory map.
fn start_info_page(cmdline: &str) -> Vec<u8> {
    let mut page = alloc::vec![0u8; 4096];
    let cmd_at = 0x100usize;
    let map_at = 0x800usize;
    let map = [
        HvmMemmapTableEntry {
            addr: 0,
            size: MEM,
            kind: XEN_HVM_MEMMAP_TYPE_RAM,
            reserved: 0,
        },
        HvmMemmapTableEntry {
            addr: SPECIAL_BASE << 12,
            size: 8 << 12,
            kind: XEN_HVM_MEMMAP_TYPE_RESERVED,
            reserved: 0,
        },
    ];
    let si = HvmStartInfo {
        magic: HVM_START_MAGIC_VALUE,
        version: 1,
        cmdline_paddr: START_INFO + cmd_at as u64,
        memmap_paddr: START_INFO + map_at as u64,
        memmap_entries: map.len() as u32,
        ..Default::default()
    };
    page[..core::mem::size_of::<HvmStartInfo>()].copy_from_slice(si.as_bytes());
    let c = cmdline.as_bytes();
    page[cmd_at..cmd_at + c.len()].copy_from_slice(c);
    for (i, e) in map.iter().enumerate() {
        page[map_at + 24 * i..map_at + 24 * (i + 1)].copy_from_slice(e.as_bytes());
    }
    page
}

/// Build a PVH domain from `kernel` as libxc does, run it, and destroy it.
/// `warm`: a domain dom0 may map (its tables for the mapping area are made
/// before free memory is measured).
pub fn build_and_run(kernel: &[u8], warm: DomId) {
    let Some((segs, entry)) = parse_elf(kernel) else {
        check!(false, "the kernel module is an ELF64 PVH image");
        return;
    };
    // dom0's own page tables for the area it maps into are made once (as
    // Linux's first privcmd mapping would); memory is counted after.
    let mut e = [1i32];
    let _ = hc::add_to_physmap_batch(
        DOMID_SELF,
        warden_abi::memory::XENMAPSPACE_GMFN_FOREIGN,
        warm,
        &[0],
        &[MAP_BASE],
        &mut e,
    );
    let _ = hc::remove_from_physmap(DOMID_SELF, MAP_BASE);
    let free0 = free_pages();

    // 1-2: the version set and physinfo (libxl's global config, freemem).
    let mut caps = warden_abi::version::Capabilities::default();
    let _ = hc::xen_version_into(warden_abi::version::CAPABILITIES, &mut caps);
    check!(
        warden_guest::util::cstr(&caps.text).contains("hvm-3.0-x86_32"),
        "xen_version capabilities name hvm-3.0-x86_32 (libxc builds PVH with it)"
    );
    // 3-4: createdomain (domU label), max_vcpus.
    let d = hc::createdomain(0, 0, 1).unwrap_or(0);
    check!(d != 0, "xl create: createdomain d{d}");
    check!(hc::max_vcpus(d, 1).is_ok(), "max_vcpus 1");
    // 6-7: node affinity "all", max_mem (memory + libxl's 1 MiB slack).
    check!(
        hc::setnodeaffinity(d, &[0xff; 8], 64).is_ok(),
        "setnodeaffinity all nodes"
    );
    check!(hc::max_mem(d, (MEM >> 10) + 1024).is_ok(), "max_mem");
    // 8: the xenstore and console ports, in the new domain, for dom0.
    let store = evtchn::alloc_unbound(d, 0).unwrap_or(0);
    let console = evtchn::alloc_unbound(d, 0).unwrap_or(0);
    check!(
        store != 0 && console != 0 && store != console,
        "alloc_unbound in d{d} for dom0: store {store}, console {console}"
    );
    // 9: the PVH parameters.
    check!(
        hc::hvm_set_param(d, hp::TIMER_MODE, 1).is_ok(),
        "set TIMER_MODE"
    );
    check!(hc::hvm_set_param(d, hp::ALTP2M, 0).is_ok(), "set ALTP2M 0");
    // 10-11: TSC mode, paging pool (libxl's shadow_memkb for HAP).
    check!(hc::settscinfo(d, 0, 0).is_ok(), "settscinfo default");
    let pool = (4 * (256 + 2 * (MEM >> 20))) << 10;
    check!(
        hc::set_paging_mempool_size(d, pool).is_ok() && hc::get_paging_mempool_size(d) == Ok(pool),
        "paging mempool {pool} bytes"
    );
    // 12-14: xc_cpuid_apply_policy.
    check!(
        hc::getdomaininfo(d).is_ok_and(|i| i.flags & warden_abi::domctl::DOMINF_HVM_GUEST != 0),
        "getdomaininfo: an HVM guest"
    );
    let (nr, nm) = hc::system_cpu_policy(0, &mut [], &mut []).unwrap_or((0, 0));
    check!(
        nr >= 100 && nm == 2,
        "cpu policy sizes: {nr} leaves, {nm} MSRs"
    );
    let mut host_fs = [0u32; 19];
    let r = hc::cpu_featureset(featureset::HOST, &mut host_fs);
    check!(r == Ok(19), "host featureset: {r:?}");
    let mut leaves = alloc::vec![CpuidLeaf::default(); nr as usize];
    let n = hc::system_cpu_policy(cpu_policy::HVM_DEFAULT, &mut leaves, &mut [])
        .map(|p| p.0)
        .unwrap_or(0);
    leaves.truncate(n as usize);
    check!(
        leaves.first().is_some_and(|l| l.leaf == 0)
            && leaves.iter().any(|l| l.leaf == 1 && l.c & (1 << 31) != 0),
        "the HVM default policy: {n} leaves, leaf 1 with the hypervisor bit"
    );
    // libxc's HVM topology fix-ups (htt, logical processors x2).
    for l in leaves.iter_mut().filter(|l| l.leaf == 1) {
        l.d |= 1 << 28;
        let lppp = (l.b >> 16) & 0xff;
        let lppp = if lppp == 0 {
            2
        } else if lppp & 0x80 == 0 {
            lppp * 2
        } else {
            lppp
        };
        l.b = (l.b & !0x00ff_0000) | (lppp << 16);
    }
    let r = hc::set_cpu_policy(d, &leaves, &[]);
    check!(r.is_ok(), "set_cpu_policy (compatible): {r:?}");
    // 16-18: claim, populate (2 MiB extents, then 4 KiB pages), claim 0.
    let pages = MEM >> 12;
    check!(hc::claim_pages(d, pages).is_ok(), "claim {pages} pages");
    check!(
        hc::physinfo().is_ok_and(|p| p.outstanding_pages == pages),
        "physinfo: {pages} pages outstanding"
    );
    let big: Vec<u64> = (0..(pages - 512) / 512).map(|i| i * 512).collect();
    let r = hc::populate_physmap(d, &big, 9);
    check!(r == Ok(big.len() as u64), "populate 2 MiB extents: {r:?}");
    let small: Vec<u64> = (pages - 512..pages).collect();
    let r = hc::populate_physmap(d, &small, 0);
    check!(r == Ok(512), "populate 512 pages of 4 KiB: {r:?}");
    check!(
        hc::getdomaininfo(d).is_ok_and(|i| i.tot_pages == pages && i.outstanding_pages == 0),
        "the claim is used up"
    );
    check!(hc::claim_pages(d, 0).is_ok(), "claim 0 (cancel)");
    // 20: the memory map.
    let e820 = [
        E820Entry::new(0, MEM, E820_RAM),
        E820Entry::new(SPECIAL_BASE << 12, 8 << 12, E820_RESERVED),
    ];
    check!(hc::set_memory_map(d, &e820).is_ok(), "set_memory_map");
    // 21: the kernel and the start info, through foreign mappings.
    let cmdline = format!("role=built store={store} console={console}");
    let si = start_info_page(&cmdline);
    let mut gfns: Vec<u64> = Vec::new();
    for s in &segs {
        let first = s.paddr >> 12;
        let last = (s.paddr + s.data.len() as u64).div_ceil(4096);
        gfns.extend(first..last);
    }
    gfns.push(START_INFO >> 12);
    gfns.sort_unstable();
    gfns.dedup();
    let local: Vec<u64> = (0..gfns.len() as u64).map(|i| MAP_BASE + i).collect();
    let mut errs = alloc::vec![1i32; gfns.len()];
    let r = hc::add_to_physmap_batch(
        DOMID_SELF,
        warden_abi::memory::XENMAPSPACE_GMFN_FOREIGN,
        d,
        &gfns,
        &local,
        &mut errs,
    );
    check!(
        r == Ok(0) && errs.iter().all(|&e| e == 0),
        "MMAPBATCH_V2: {} pages of d{d} mapped into dom0 ({r:?})",
        gfns.len()
    );
    let slot = |gfn: u64| MAP_BASE + gfns.iter().position(|&g| g == gfn).unwrap_or(0) as u64;
    for s in &segs {
        let mut done = 0usize;
        while done < s.data.len() {
            let a = s.paddr + done as u64;
            let off = (a & 4095) as usize;
            let n = (4096 - off).min(s.data.len() - done);
            poke(slot(a >> 12), off, &s.data[done..done + n]);
            done += n;
        }
    }
    poke(slot(START_INFO >> 12), 0, &si);
    check!(
        peek(slot(segs[0].paddr >> 12), 64) == segs[0].data[..64],
        "the kernel's first bytes are in d{d}'s memory"
    );
    let mut unmapped = true;
    for g in &local {
        unmapped &= hc::remove_from_physmap(DOMID_SELF, *g).is_ok();
    }
    check!(unmapped, "munmap: remove_from_physmap of every page");
    // 22-25: the special pages and their parameters, then the ports.
    let specials: Vec<u64> = (SPECIAL_BASE..SPECIAL_BASE + 8).collect();
    check!(
        hc::populate_physmap(d, &specials, 0) == Ok(8),
        "populate the 8 special pages"
    );
    for (i, v) in [
        (hp::PAGING_RING_PFN, SPECIAL_BASE),
        (hp::MONITOR_RING_PFN, SPECIAL_BASE + 1),
        (hp::SHARING_RING_PFN, SPECIAL_BASE + 2),
        (hp::BUFIOREQ_PFN, SPECIAL_BASE + 3),
        (hp::STORE_PFN, STORE_PFN),
        (hp::IOREQ_PFN, SPECIAL_BASE + 5),
        (hp::IDENT_PT, (SPECIAL_BASE + 6) << 12),
        (hp::CONSOLE_PFN, CONSOLE_PFN),
        (hp::CONSOLE_EVTCHN, u64::from(console)),
        (hp::STORE_EVTCHN, u64::from(store)),
    ] {
        let r = hc::hvm_set_param(d, i, v);
        check!(r.is_ok(), "set param {i} = {v:#x}: {r:?}");
    }
    check!(
        hc::getdomaininfo(d).is_ok(),
        "getdomaininfo (xc_dom_boot_image)"
    );
    // 26-27: the vCPU state (MTRRs write-back, then the PVH entry state).
    let size = hc::gethvmcontext_size(d).unwrap_or(0) as usize;
    let mut img = alloc::vec![0u8; size];
    let n = hc::gethvmcontext(d, &mut img).unwrap_or(0);
    let header = hc::hvm_context_records(&img[..n])
        .find(|r| r.0 == hs::HEADER)
        .and_then(|r| hs::SaveHeader::from_bytes(r.2))
        .unwrap_or_default();
    let mtrr = hc::hvm_context_records(&img[..n])
        .find(|r| r.0 == hs::MTRR && r.1 == 0)
        .and_then(|r| hs::HwMtrr::from_bytes(r.2));
    check!(mtrr.is_some(), "gethvmcontext has vCPU 0's MTRR record");
    let mut m = mtrr.unwrap_or_default();
    m.msr_mtrr_def_type = 6 | (1 << 11);
    let mut x = Vec::new();
    hc::hvm_context_push(&mut x, hs::HEADER, 0, &header);
    hc::hvm_context_push(&mut x, hs::MTRR, 0, &m);
    x.extend_from_slice(&[0u8; 8]);
    check!(hc::sethvmcontext(d, &x).is_ok(), "sethvmcontext: MTRRs");
    let bsp = hs::HwCpu {
        rip: entry,
        rbx: START_INFO,
        cr0: 0x11,
        cs_limit: u32::MAX,
        ds_limit: u32::MAX,
        es_limit: u32::MAX,
        ss_limit: u32::MAX,
        tr_limit: 0x67,
        cs_arbytes: 0xC9B,
        ds_arbytes: 0xC93,
        es_arbytes: 0xC93,
        ss_arbytes: 0xC93,
        tr_arbytes: 0x8B,
        dr6: 0xFFFF_0FF0,
        dr7: 0x400,
        ..Default::default()
    };
    let mut x = Vec::new();
    hc::hvm_context_push(&mut x, hs::HEADER, 0, &header);
    hc::hvm_context_push(&mut x, hs::CPU, 0, &bsp);
    x.extend_from_slice(&[0u8; 8]);
    check!(
        hc::sethvmcontext(d, &x).is_ok(),
        "sethvmcontext: vCPU 0 enters at {entry:#x} with the start info in EBX"
    );
    // 28: grant entries 0 (console) and 1 (xenstore), seeded through the
    // grant table mapped with acquire_resource.
    use warden_abi::memory::{RESOURCE_GRANT_TABLE, RESOURCE_GRANT_TABLE_ID_SHARED};
    let frames = hc::acquire_resource(
        d,
        RESOURCE_GRANT_TABLE,
        RESOURCE_GRANT_TABLE_ID_SHARED,
        0,
        &[],
    );
    check!(
        frames == Ok(64),
        "acquire_resource size: {frames:?} grant frames"
    );
    let r = hc::acquire_resource(
        d,
        RESOURCE_GRANT_TABLE,
        RESOURCE_GRANT_TABLE_ID_SHARED,
        0,
        &[TABLE_MAP],
    );
    check!(
        r.is_ok(),
        "acquire_resource: d{d}'s grant frame 0 mapped: {r:?}"
    );
    for (gref, frame) in [(0usize, CONSOLE_PFN), (1, STORE_PFN)] {
        let e = GrantEntryV1 {
            flags: gt::GTF_PERMIT_ACCESS,
            domid: 0,
            frame: frame as u32,
        };
        poke(TABLE_MAP, 8 * gref, e.as_bytes());
    }
    check!(
        hc::remove_from_physmap(DOMID_SELF, TABLE_MAP).is_ok(),
        "grant frame unmapped"
    );
    // 29: xenstored's XS_INTRODUCE: getdomaininfo, grant map of ref 1,
    // bind_interdomain to the store port.
    check!(
        hc::getdomaininfo(d).is_ok(),
        "xenstored: getdomaininfo d{d}"
    );
    let s = crate::gnttab::map(d, 1, STORE_MAP << 12, false);
    check!(
        matches!(s, Ok((gt::GNTST_OKAY, _))),
        "xenstored: grant ref 1 of d{d} mapped: {s:?}"
    );
    poke(STORE_MAP, 0, STORE_HELLO);
    let sp = evtchn::bind_interdomain(d, store).unwrap_or(0);
    check!(sp != 0, "xenstored: bound to d{d}'s store port");
    check!(evtchn::send(sp).is_ok(), "xenstored: notify");
    // 30: xenconsoled: grant ref 0, the console port.
    let c = crate::gnttab::map(d, 0, CONSOLE_MAP << 12, false);
    check!(
        matches!(c, Ok((gt::GNTST_OKAY, _))),
        "xenconsoled: grant ref 0 mapped: {c:?}"
    );
    let cp = evtchn::bind_interdomain(d, console).unwrap_or(0);
    check!(cp != 0, "xenconsoled: bound to d{d}'s console port");
    // 31: unpause; the domain runs and reports.
    check!(hc::unpausedomain(d).is_ok(), "unpause d{d}");
    let r = wait_shutdown(d, 120);
    check!(
        r == Some(SHUTDOWN_POWEROFF),
        "d{d} ran its checks and powered off (reason {r:?})"
    );
    check!(
        peek(CONSOLE_MAP, ACK.len()) == ACK,
        "the guest's answer is in its console page (dom0's grant mapping)"
    );
    check!(
        crate::scenarios::ring().contains("RESULT built: PASS"),
        "the guest's report is in the console ring"
    );
    // xenstored and xenconsoled let go, then xl destroy.
    for (h, g) in [(s, STORE_MAP), (c, CONSOLE_MAP)] {
        if let Ok((_, handle)) = h {
            let _ = crate::gnttab::unmap(handle, g << 12);
        }
    }
    let _ = evtchn::close(sp);
    let _ = evtchn::close(cp);
    check!(hc::destroydomain(d).is_ok(), "destroy d{d}");
    let free1 = free_pages();
    check!(
        free1 == free0,
        "physinfo free pages back to {free0} (now {free1})"
    );
}

/// The domain dom0 built: check what libxl's build gave it, answer, report.
pub fn built(boot: &Boot) -> ! {
    let arg = |k: &str| boot.arg(k).and_then(|v| v.parse::<u32>().ok()).unwrap_or(0);
    let (store, console) = (arg("store"), arg("console"));
    println!(
        "built: d{} up, command line '{}'",
        boot.domid(),
        boot.cmdline()
    );
    check!(boot.mem_bytes() == MEM, "8 MiB of RAM in the start info");
    let mut map = [E820Entry::default(); 4];
    let mut mm = warden_abi::memory::MemoryMap {
        nr_entries: 4,
        pad: 0,
        buffer: map.as_mut_ptr() as u64,
    };
    let r = hc::memory_op(warden_abi::memory::MEMORY_MAP, &mut mm as *mut _ as u64);
    check!(
        r.is_ok()
            && mm.nr_entries == 2
            && map[0].size() == MEM
            && map[1].addr() == SPECIAL_BASE << 12
            && map[1].kind == E820_RESERVED,
        "XENMEM_memory_map: the map dom0 set"
    );
    for (i, v) in [
        (hp::STORE_PFN, STORE_PFN),
        (hp::CONSOLE_PFN, CONSOLE_PFN),
        (hp::STORE_EVTCHN, u64::from(store)),
        (hp::CONSOLE_EVTCHN, u64::from(console)),
    ] {
        let r = hc::hvm_get_param(DOMID_SELF, i);
        check!(r == Ok(v), "param {i} = {v:#x}: {r:?}");
    }
    for p in [store, console] {
        let s = evtchn::status(DOMID_SELF, p);
        check!(
            s.is_ok_and(|s| s.status == ec::STAT_INTERDOMAIN && s.u[0] & 0xffff == 0),
            "port {p} is bound to dom0: {s:?}"
        );
    }
    // Its grant table, mapped where nothing is (above its RAM).
    let table_gfn = 0x900u64;
    let a = warden_abi::memory::AddToPhysmap {
        domid: DOMID_SELF,
        size: 0,
        space: warden_abi::memory::XENMAPSPACE_GRANT_TABLE,
        idx: 0,
        gpfn: table_gfn,
    };
    let r = hc::memory_op(warden_abi::memory::ADD_TO_PHYSMAP, &a as *const _ as u64);
    check!(r.is_ok(), "grant frame 0 mapped: {r:?}");
    let entry = |gref: u64| {
        GrantEntryV1::from_bytes(&phys_bytes(table_gfn * 4096 + 8 * gref, 8)).unwrap_or_default()
    };
    let (e0, e1) = (entry(0), entry(1));
    check!(
        e1.domid == 0 && u64::from(e1.frame) == STORE_PFN && e1.flags & gt::GTF_PERMIT_ACCESS != 0,
        "grant entry 1: the xenstore page for dom0 ({e1:?})"
    );
    check!(
        e1.flags & gt::GTF_READING != 0,
        "grant entry 1 is mapped (xenstored)"
    );
    check!(
        e0.domid == 0 && u64::from(e0.frame) == CONSOLE_PFN,
        "grant entry 0: the console page for dom0 ({e0:?})"
    );
    check!(
        phys_bytes(STORE_PFN * 4096, STORE_HELLO.len()) == STORE_HELLO,
        "xenstored's bytes in the store page"
    );
    check!(evtchn::send(store).is_ok(), "notify xenstored");
    // The answer, for dom0 to read through its grant mapping.
    // SAFETY: the console page is this domain's RAM (populated by dom0),
    // identity-mapped; only dom0 reads it.
    unsafe {
        core::ptr::copy_nonoverlapping(ACK.as_ptr(), (CONSOLE_PFN * 4096) as *mut u8, ACK.len());
    }
    crate::report::finish("built")
}

/// `n` bytes of our memory at guest-physical `gpa`.
fn phys_bytes(gpa: u64, n: usize) -> Vec<u8> {
    let mut v = alloc::vec![0u8; n];
    // SAFETY: the caller names memory of ours (RAM or a mapped grant frame)
    // below 4 GiB, identity-mapped since entry.
    unsafe {
        core::ptr::copy_nonoverlapping(gpa as *const u8, v.as_mut_ptr(), n);
    }
    v
}
