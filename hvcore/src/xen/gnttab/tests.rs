//! The grant-table state machine on simulated memory.

use super::*;
use crate::domain::Domain;
use crate::p2m::testmem::SimMem;
use alloc::string::String;
use alloc::sync::Arc;
use warden_abi::xen::grant_table::{Copy as CopyOp, CopyPtr};

struct World {
    mem: &'static SimMem,
}

const GRANTER: DomId = 1;
const MAPPER: DomId = 2;
const OTHER: DomId = 3;
/// Where the mapper maps grants (not RAM).
const MAP_GFN: u64 = 0x1000;

impl World {
    fn new() -> World {
        World {
            mem: Box::leak(Box::new(SimMem::new(4096))),
        }
    }

    fn domain(&self, id: DomId, pages: u64) -> Arc<Domain> {
        let p2m = P2m::new(self.mem, 64).unwrap();
        let d = Domain::new(id, 1, false, String::new(), p2m, 1024);
        {
            let mut m = d.mem.write();
            let p = m.p2m.as_mut().unwrap();
            for g in 0..pages {
                let pa = self.mem.alloc_frame().unwrap();
                self.mem.write(pa, &[g as u8 + 0x40; 16]);
                p.map(self.mem, g, pa).unwrap();
            }
            m.tot_pages = pages;
        }
        d.gnttab.grow(self.mem, 1).unwrap();
        Arc::new(d)
    }

    fn grant(&self, d: &Domain, gref: u32, to: DomId, gfn: u32, flags: u16) {
        assert!(d.gnttab.write_entry(
            self.mem,
            gref,
            &GrantEntryV1 {
                flags,
                domid: to,
                frame: gfn,
            }
        ));
    }

    fn flags(&self, d: &Domain, gref: u32) -> u16 {
        d.gnttab.read_entry(self.mem, gref).unwrap().flags
    }

    fn frame_of(&self, d: &Domain, gfn: u64) -> Option<(u64, Kind)> {
        d.mem
            .read()
            .p2m
            .as_ref()
            .unwrap()
            .lookup_kind(self.mem, gfn)
    }

    fn read(&self, d: &Domain, gfn: u64, len: usize) -> alloc::vec::Vec<u8> {
        let (pa, _) = self.frame_of(d, gfn).unwrap();
        let mut b = alloc::vec![0u8; len];
        self.mem.read(pa, &mut b);
        b
    }

    fn map(&self, m: &Domain, g: &Domain, gref: u32, gfn: u64, flags: u32) -> Result<u32, i16> {
        let op = MapGrantRef {
            host_addr: gfn << 12,
            flags,
            ref_: gref,
            dom: g.id,
            ..Default::default()
        };
        map(self.mem, m, 0, g, snap(g), &op)
    }

    fn unmap(&self, m: &Domain, handle: u32, gfn: u64, granter: DomId) -> Status {
        let op = UnmapGrantRef {
            host_addr: gfn << 12,
            handle,
            ..Default::default()
        };
        unmap(self.mem, m, 0, &op, granter, &|| {})
    }
}

fn snap(d: &Domain) -> DomSnap {
    DomSnap {
        id: d.id,
        generation: d.generation,
        sid: 0,
        self_sid: 0,
        privileged: false,
    }
}

fn copy_op(src: (u64, DomId, u16), dst: (u64, DomId, u16), len: u16, flags: u16) -> CopyOp {
    CopyOp {
        source: CopyPtr {
            u: src.0,
            domid: src.1,
            offset: src.2,
            pad: 0,
        },
        dest: CopyPtr {
            u: dst.0,
            domid: dst.1,
            offset: dst.2,
            pad: 0,
        },
        len,
        flags,
        ..Default::default()
    }
}

const RW: u32 = GNTMAP_HOST_MAP;
const RO: u32 = GNTMAP_HOST_MAP | GNTMAP_READONLY;

#[test]
fn map_reads_the_granted_frame_and_unmap_restores_the_physmap() {
    let w = World::new();
    let g = w.domain(GRANTER, 4);
    let m = w.domain(MAPPER, 4);
    w.grant(&g, 10, MAPPER, 2, GTF_PERMIT_ACCESS);
    let h = w.map(&m, &g, 10, MAP_GFN, RW).unwrap();
    let (gpa, _) = w.frame_of(&g, 2).unwrap();
    assert_eq!(
        w.frame_of(&m, MAP_GFN),
        Some((gpa, Kind::Grant { writable: true }))
    );
    assert_eq!(w.read(&m, MAP_GFN, 4), [0x42; 4]);
    assert_eq!(
        w.flags(&g, 10),
        GTF_PERMIT_ACCESS | GTF_READING | GTF_WRITING
    );
    assert_eq!(g.gnttab.pins(10), Some((0, 1)));
    w.unmap(&m, h, MAP_GFN, GRANTER).unwrap();
    assert_eq!(w.frame_of(&m, MAP_GFN), None, "the GPA is empty again");
    assert_eq!(w.flags(&g, 10), GTF_PERMIT_ACCESS);
    assert_eq!(g.gnttab.pins(10), Some((0, 0)));
    assert_eq!(g.gnttab.pinned_entries(), 0);
    // The handle is gone.
    assert_eq!(w.unmap(&m, h, MAP_GFN, GRANTER), Err(GNTST_BAD_HANDLE));
}

#[test]
fn pin_counts_and_flags_follow_read_only_and_writable_maps() {
    let w = World::new();
    let g = w.domain(GRANTER, 4);
    let m = w.domain(MAPPER, 4);
    w.grant(&g, 9, MAPPER, 1, GTF_PERMIT_ACCESS);
    let r1 = w.map(&m, &g, 9, MAP_GFN, RO).unwrap();
    assert_eq!(w.flags(&g, 9), GTF_PERMIT_ACCESS | GTF_READING);
    assert_eq!(
        w.frame_of(&m, MAP_GFN).unwrap().1,
        Kind::Grant { writable: false }
    );
    let w1 = w.map(&m, &g, 9, MAP_GFN + 1, RW).unwrap();
    assert_eq!(
        w.flags(&g, 9),
        GTF_PERMIT_ACCESS | GTF_READING | GTF_WRITING
    );
    assert_eq!(g.gnttab.pins(9), Some((1, 1)));
    w.unmap(&m, w1, MAP_GFN + 1, GRANTER).unwrap();
    assert_eq!(
        w.flags(&g, 9),
        GTF_PERMIT_ACCESS | GTF_READING,
        "writing cleared with the last writer"
    );
    w.unmap(&m, r1, MAP_GFN, GRANTER).unwrap();
    assert_eq!(w.flags(&g, 9), GTF_PERMIT_ACCESS);
}

#[test]
fn read_only_grant_refuses_a_writable_map_and_writes_through_the_hypervisor() {
    let w = World::new();
    let g = w.domain(GRANTER, 4);
    let m = w.domain(MAPPER, 4);
    w.grant(&g, 8, MAPPER, 1, GTF_PERMIT_ACCESS | GTF_READONLY);
    assert_eq!(w.map(&m, &g, 8, MAP_GFN, RW), Err(GNTST_GENERAL_ERROR));
    assert_eq!(w.frame_of(&m, MAP_GFN), None);
    assert_eq!(w.flags(&g, 8), GTF_PERMIT_ACCESS | GTF_READONLY);
    w.map(&m, &g, 8, MAP_GFN, RO).unwrap();
    // The hypervisor's own writes on the mapper's behalf are refused too.
    let mm = m.mem.read();
    let pv = crate::p2m::PhysView {
        p2m: mm.p2m.as_ref().unwrap(),
        mem: w.mem,
    };
    use crate::guestmem::GuestPhys;
    assert!(pv.write_gpa(MAP_GFN << 12, b"x").is_err());
    let mut b = [0u8; 1];
    assert!(pv.read_gpa(MAP_GFN << 12, &mut b).is_ok());
    assert_eq!(b, [0x41]);
}

/// Flags, pins, pinned entries, live handles and the mapper's map GFN.
type State = (u16, Option<(u32, u32)>, u32, usize, Option<(u64, Kind)>);

/// Everything the tests compare before and after a refusal.
fn state(w: &World, g: &Domain, m: &Domain, gref: u32) -> State {
    (
        w.flags(g, gref),
        g.gnttab.pins(gref),
        g.gnttab.pinned_entries(),
        m.gnttab.maptrack.count_of(None),
        w.frame_of(m, MAP_GFN),
    )
}

#[test]
fn every_refused_map_leaves_the_state_unchanged() {
    let w = World::new();
    let g = w.domain(GRANTER, 4);
    let m = w.domain(MAPPER, 4);
    let o = w.domain(OTHER, 4);
    w.grant(&g, 10, MAPPER, 2, GTF_PERMIT_ACCESS);
    w.grant(&g, 11, OTHER, 2, GTF_PERMIT_ACCESS);
    w.grant(&g, 12, MAPPER, 77, GTF_PERMIT_ACCESS); // no such frame
    w.grant(&g, 13, MAPPER, 2, GTF_ACCEPT_TRANSFER);
    w.grant(&g, 14, MAPPER, 2, GTF_PERMIT_ACCESS | GTF_PCD);
    let cases: &[(u32, u32, u64, i16)] = &[
        (512, RW, MAP_GFN, GNTST_BAD_GNTREF),      // beyond the table
        (u32::MAX, RW, MAP_GFN, GNTST_BAD_GNTREF), // far beyond
        (10, 0, MAP_GFN, GNTST_BAD_GNTREF),        // neither host nor device map
        (10, RW | GNTMAP_DEVICE_MAP, MAP_GFN, GNTST_GENERAL_ERROR),
        (
            10,
            RW | GNTMAP_APPLICATION_MAP,
            MAP_GFN,
            GNTST_GENERAL_ERROR,
        ),
        (10, RW | GNTMAP_CONTAINS_PTE, MAP_GFN, GNTST_GENERAL_ERROR),
        (11, RW, MAP_GFN, GNTST_GENERAL_ERROR), // granted to another domain
        (12, RW, MAP_GFN, GNTST_BAD_PAGE),      // frame not RAM
        (13, RW, MAP_GFN, GNTST_GENERAL_ERROR), // not permit_access
        (14, RW, MAP_GFN, GNTST_GENERAL_ERROR), // cache attributes (translated mapper)
        (10, RW, 1, GNTST_GENERAL_ERROR),       // target GPA is RAM
        (10, RW, crate::p2m::GFN_LIMIT, GNTST_GENERAL_ERROR),
        (0, RW, MAP_GFN, GNTST_GENERAL_ERROR), // empty entry
    ];
    for &(gref, flags, gfn, want) in cases {
        let before: alloc::vec::Vec<_> = (8..16).map(|r| state(&w, &g, &m, r)).collect();
        let mem_before = w.read(&m, 1, 16);
        assert_eq!(
            w.map(&m, &g, gref, gfn, flags),
            Err(want),
            "ref {gref} flags {flags:#x} gfn {gfn:#x}"
        );
        let after: alloc::vec::Vec<_> = (8..16).map(|r| state(&w, &g, &m, r)).collect();
        assert_eq!(before, after, "ref {gref}: state changed");
        assert_eq!(mem_before, w.read(&m, 1, 16));
    }
    // The other domain's grant works for it, and then the mapper cannot pin
    // the same entry (the entry is active for another domain).
    let h = w.map(&o, &g, 11, MAP_GFN, RO).unwrap();
    w.grant(&g, 11, MAPPER, 2, GTF_PERMIT_ACCESS | GTF_READING);
    assert_eq!(w.map(&m, &g, 11, MAP_GFN, RO), Err(GNTST_GENERAL_ERROR));
    w.unmap(&o, h, MAP_GFN, GRANTER).unwrap();
}

#[test]
fn refused_unmaps_leave_the_mapping() {
    let w = World::new();
    let g = w.domain(GRANTER, 4);
    let m = w.domain(MAPPER, 4);
    w.grant(&g, 10, MAPPER, 2, GTF_PERMIT_ACCESS);
    let h = w.map(&m, &g, 10, MAP_GFN, RW).unwrap();
    let before = state(&w, &g, &m, 10);
    assert_eq!(w.unmap(&m, h + 1, MAP_GFN, GRANTER), Err(GNTST_BAD_HANDLE));
    assert_eq!(
        w.unmap(&m, u32::MAX, MAP_GFN, GRANTER),
        Err(GNTST_BAD_HANDLE)
    );
    assert_eq!(w.unmap(&m, h, MAP_GFN, OTHER), Err(GNTST_BAD_HANDLE));
    assert_eq!(
        w.unmap(&m, h, MAP_GFN + 1, GRANTER),
        Err(GNTST_GENERAL_ERROR)
    );
    // No host address: nothing undone, the handle stays (Xen).
    assert_eq!(w.unmap(&m, h, 0, GRANTER), Ok(()));
    assert_eq!(before, state(&w, &g, &m, 10));
    w.unmap(&m, h, MAP_GFN, GRANTER).unwrap();
}

#[test]
fn a_revoked_grant_stays_mapped_but_cannot_be_mapped_again() {
    let w = World::new();
    let g = w.domain(GRANTER, 4);
    let m = w.domain(MAPPER, 4);
    w.grant(&g, 10, MAPPER, 2, GTF_PERMIT_ACCESS);
    let h = w.map(&m, &g, 10, MAP_GFN, RO).unwrap();
    // The granter clears the entry (a cmpxchg that would fail in Linux
    // while reading is set; a hostile granter writes it anyway).
    w.grant(&g, 10, 0, 0, 0);
    assert_eq!(w.read(&m, MAP_GFN, 2), [0x42; 2], "still mapped");
    w.unmap(&m, h, MAP_GFN, GRANTER).unwrap();
    let before = state(&w, &g, &m, 10);
    assert_eq!(w.map(&m, &g, 10, MAP_GFN, RO), Err(GNTST_GENERAL_ERROR));
    assert_eq!(before, state(&w, &g, &m, 10));
}

#[test]
fn copy_moves_bytes_both_ways_and_checks_bounds() {
    let w = World::new();
    let g = w.domain(GRANTER, 4);
    let m = w.domain(MAPPER, 4);
    w.grant(&g, 10, MAPPER, 2, GTF_PERMIT_ACCESS);
    w.grant(&g, 11, MAPPER, 3, GTF_PERMIT_ACCESS | GTF_READONLY);
    // Granter's frame 2 -> mapper's frame 1 at offset 100.
    let op = copy_op(
        (10, GRANTER, 0),
        (1, DOMID_SELF_, 100),
        16,
        GNTCOPY_SOURCE_GREF,
    );
    copy(w.mem, &m, Side::Gref(&g, 10), Side::Gmfn(1), &op).unwrap();
    assert_eq!(&w.read(&m, 1, 116)[100..], [0x42; 16]);
    // Mapper's frame 0 -> granter's frame 2 at offset 4000.
    let op = copy_op(
        (0, DOMID_SELF_, 0),
        (10, GRANTER, 4000),
        96,
        GNTCOPY_DEST_GREF,
    );
    copy(w.mem, &m, Side::Gmfn(0), Side::Gref(&g, 10), &op).unwrap();
    assert_eq!(&w.read(&g, 2, 4016)[4000..], [0x40; 16]);
    assert_eq!(
        w.flags(&g, 10),
        GTF_PERMIT_ACCESS,
        "flags cleared after the copy"
    );
    assert_eq!(g.gnttab.pinned_entries(), 0);
    // Refusals: crossing the page, a read-only grant as destination, bad
    // ref, a frame that is not RAM; nothing copied, nothing pinned.
    let snapshot = (
        w.read(&g, 2, 4096),
        w.read(&m, 1, 4096),
        w.flags(&g, 10),
        w.flags(&g, 11),
    );
    let bad: &[(Side<'_>, Side<'_>, u16, u16, u16, i16)] = &[
        (
            Side::Gref(&g, 10),
            Side::Gmfn(1),
            4000,
            0,
            97,
            GNTST_BAD_COPY_ARG,
        ),
        (
            Side::Gref(&g, 10),
            Side::Gmfn(1),
            0,
            4095,
            2,
            GNTST_BAD_COPY_ARG,
        ),
        (
            Side::Gmfn(1),
            Side::Gref(&g, 11),
            0,
            0,
            8,
            GNTST_GENERAL_ERROR,
        ),
        (
            Side::Gref(&g, 600),
            Side::Gmfn(1),
            0,
            0,
            8,
            GNTST_BAD_GNTREF,
        ),
        (Side::Gref(&g, 10), Side::Gmfn(99), 0, 0, 8, GNTST_BAD_PAGE),
        (Side::Gmfn(99), Side::Gref(&g, 10), 0, 0, 8, GNTST_BAD_PAGE),
    ];
    for (i, &(s, d, so, dof, len, want)) in bad.iter().enumerate() {
        let op = copy_op((0, 0, so), (0, 0, dof), len, 0);
        assert_eq!(copy(w.mem, &m, s, d, &op), Err(want), "case {i}");
        assert_eq!(g.gnttab.pinned_entries(), 0, "case {i}");
    }
    assert_eq!(
        snapshot,
        (
            w.read(&g, 2, 4096),
            w.read(&m, 1, 4096),
            w.flags(&g, 10),
            w.flags(&g, 11)
        )
    );
    // A read-only grant mapped into the mapper cannot be a copy destination
    // by frame either.
    w.map(&m, &g, 11, MAP_GFN, RO).unwrap();
    let op = copy_op((0, 0, 0), (0, 0, 0), 8, 0);
    assert!(copy(w.mem, &m, Side::Gmfn(0), Side::Gmfn(MAP_GFN), &op).is_err());
    assert_eq!(w.read(&g, 3, 8), [0x43; 8]);
}

const DOMID_SELF_: DomId = warden_abi::DOMID_SELF;

#[test]
fn a_pinned_frame_given_up_by_its_owner_is_freed_by_the_last_unmap() {
    let w = World::new();
    let g = w.domain(GRANTER, 4);
    let m = w.domain(MAPPER, 4);
    w.grant(&g, 10, MAPPER, 2, GTF_PERMIT_ACCESS);
    let h = w.map(&m, &g, 10, MAP_GFN, RO).unwrap();
    let (pa, _) = w.frame_of(&g, 2).unwrap();
    let free0 = w.mem.free_frames();
    // decrease_reservation's steps under the owner's physmap lock.
    {
        let mut mm = g.mem.write();
        assert_eq!(mm.p2m.as_mut().unwrap().unmap(w.mem, 2), Some(pa));
        assert!(g.gnttab.orphan_if_pinned(pa));
    }
    assert_eq!(
        w.read(&m, MAP_GFN, 2),
        [0x42; 2],
        "the mapper still sees the page"
    );
    assert_eq!(w.mem.free_frames(), free0);
    w.unmap(&m, h, MAP_GFN, GRANTER).unwrap();
    assert_eq!(w.mem.free_frames(), free0 + 1, "freed by the last unmap");
    assert!(w.mem.is_zero(pa));
    assert_eq!(g.gnttab.orphans(), 0);
}

#[test]
fn death_of_the_granter_keeps_mapped_frames_until_unmapped() {
    let w = World::new();
    let g = w.domain(GRANTER, 4);
    let m = w.domain(MAPPER, 4);
    w.grant(&g, 10, MAPPER, 2, GTF_PERMIT_ACCESS);
    let h = w.map(&m, &g, 10, MAP_GFN, RW).unwrap();
    {
        let mut mm = g.mem.write();
        let p = mm.p2m.as_mut().unwrap();
        assert_eq!(g.gnttab.close(w.mem, p).len(), 1);
        // What destroy then frees: the other three pages.
        let mut n = 0;
        p.release(w.mem, u64::MAX, |_, pa, _| {
            w.mem.zero_frame(pa);
            w.mem.free_frame(pa);
            n += 1;
        });
        assert_eq!(n, 3);
    }
    let free0 = w.mem.free_frames();
    assert_eq!(w.read(&m, MAP_GFN, 2), [0x42; 2], "the pinned page kept");
    // No new pins on a dying table.
    w.grant(&g, 11, MAPPER, 3, GTF_PERMIT_ACCESS);
    assert!(w.map(&m, &g, 11, MAP_GFN + 1, RW).is_err());
    w.unmap(&m, h, MAP_GFN, GRANTER).unwrap();
    assert_eq!(
        w.mem.free_frames(),
        free0 + 2,
        "the page and the table frame freed"
    );
}

#[test]
fn death_of_the_mapper_unmaps_and_releases_its_maptrack() {
    let w = World::new();
    let g = w.domain(GRANTER, 4);
    let m = w.domain(MAPPER, 4);
    w.grant(&g, 10, MAPPER, 2, GTF_PERMIT_ACCESS);
    w.grant(&g, 11, MAPPER, 3, GTF_PERMIT_ACCESS);
    w.map(&m, &g, 10, MAP_GFN, RW).unwrap();
    w.map(&m, &g, 11, MAP_GFN + 1, RO).unwrap();
    w.map(&m, &g, 11, MAP_GFN + 2, RO).unwrap();
    assert_eq!(g.gnttab.pinned_entries(), 2);
    {
        let mut mm = m.mem.write();
        let p = mm.p2m.as_mut().unwrap();
        assert_eq!(m.gnttab.unmap_all(w.mem, p), 3);
        assert_eq!(p.lookup(w.mem, MAP_GFN), None);
        let mut n = 0;
        p.release(w.mem, u64::MAX, |_, pa, _| {
            w.mem.free_frame(pa);
            n += 1;
        });
        assert_eq!(n, 4, "only its own pages");
    }
    assert_eq!(g.gnttab.pinned_entries(), 0);
    assert_eq!(w.flags(&g, 10), GTF_PERMIT_ACCESS);
    assert_eq!(w.flags(&g, 11), GTF_PERMIT_ACCESS);
    assert_eq!(m.gnttab.maptrack.count_of(None), 0);
}

#[test]
fn frames_grow_on_demand_up_to_the_maximum() {
    let w = World::new();
    let g = w.domain(GRANTER, 1);
    assert_eq!(g.gnttab.nr_frames(), 1);
    let pa = g.gnttab.frame(w.mem, 3).unwrap();
    assert_eq!(g.gnttab.nr_frames(), 4);
    assert_ne!(pa, 0);
    assert_eq!(
        g.gnttab.frame(w.mem, MAX_GRANT_FRAMES as u64),
        Err(warden_abi::errno::EINVAL)
    );
    assert_eq!(
        g.gnttab.frame(w.mem, XENMAPIDX_GRANT_TABLE_STATUS),
        Err(warden_abi::errno::EINVAL)
    );
    assert_eq!(g.gnttab.nr_frames(), 4);
    assert_eq!(g.gnttab.nr_entries(), 2048);
}

#[test]
fn maptrack_steals_from_other_vcpus_and_runs_out() {
    let t = Maptrack::new(1);
    let a: alloc::vec::Vec<_> = (0..200).map(|_| t.alloc(0).unwrap()).collect();
    let b: alloc::vec::Vec<_> = (0..56).map(|_| t.alloc(1).unwrap()).collect();
    assert_eq!(t.alloc(2), None, "256 handles in one chunk");
    t.free(0, a[0]);
    assert_eq!(t.alloc(5), Some(a[0]), "stolen from vCPU 0's list");
    let mut all: alloc::vec::Vec<_> = a.iter().chain(&b).copied().collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 256);
}

#[test]
fn concurrent_map_unmap_copy_keep_the_invariants() {
    extern crate std;
    use std::thread;
    let w = World::new();
    let g = w.domain(GRANTER, 8);
    let mappers: alloc::vec::Vec<_> = (0..4).map(|i| w.domain(10 + i, 2)).collect();
    // Refs 16..24 granted to each mapper (ref 16 + 8*i + k), and one shared
    // hot ref per mapper pair to make entries contend.
    for (i, m) in mappers.iter().enumerate() {
        for k in 0..8u32 {
            w.grant(
                &g,
                16 + 8 * i as u32 + k,
                m.id,
                1 + k % 6,
                GTF_PERMIT_ACCESS,
            );
        }
    }
    let mem = w.mem;
    thread::scope(|s| {
        for (i, m) in mappers.iter().enumerate() {
            let g = &g;
            let w = &w;
            s.spawn(move || {
                let mut x = 12345u32 + i as u32;
                let mut live: alloc::vec::Vec<(u32, u64)> = alloc::vec::Vec::new();
                for n in 0..3000u32 {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    let gref = 16 + 8 * i as u32 + x % 8;
                    match x % 4 {
                        0 | 1 if live.len() < 32 => {
                            let gfn = MAP_GFN + n as u64 % 4096;
                            let fl = if x & 16 != 0 { RO } else { RW };
                            if let Ok(h) = w.map(m, g, gref, gfn, fl) {
                                live.push((h, gfn));
                            }
                        }
                        2 => {
                            let op = copy_op((0, 0, (x % 4000) as u16), (0, 0, 8), 64, 0);
                            let r = if x & 32 != 0 {
                                copy(mem, m, Side::Gref(g, gref), Side::Gmfn(0), &op)
                            } else {
                                copy(mem, m, Side::Gmfn(1), Side::Gref(g, gref), &op)
                            };
                            assert_eq!(r, Ok(()));
                        }
                        _ => {
                            if let Some((h, gfn)) = live.pop() {
                                assert_eq!(w.unmap(m, h, gfn, GRANTER), Ok(()));
                            }
                        }
                    }
                }
                for (h, gfn) in live {
                    assert_eq!(w.unmap(m, h, gfn, GRANTER), Ok(()));
                }
            });
        }
    });
    // Quiescent: nothing pinned, every flag back to permit_access, every
    // mapper's physmap back to its own pages and no handle in use.
    assert_eq!(g.gnttab.pinned_entries(), 0);
    for r in 16..48 {
        assert_eq!(g.gnttab.pins(r), Some((0, 0)));
        assert_eq!(w.flags(&g, r), GTF_PERMIT_ACCESS, "ref {r}");
    }
    for m in &mappers {
        assert_eq!(m.gnttab.maptrack.count_of(None), 0);
        assert_eq!(m.mem.read().p2m.as_ref().unwrap().mapped(), 2);
    }
}
