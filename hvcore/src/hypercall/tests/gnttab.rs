//! grant_table_op end to end (dispatcher, gate with the default policy,
//! grant-table service, physmaps): dom0 maps, copies and unmaps a domU's
//! grants; every refusal leaves the state as it was.

use super::*;
use warden_abi::xen::grant_table as gt;
use warden_abi::xen::grant_table::GrantEntryV1;

const DOM0: &str = "system_u:system_r:dom0_t";
/// Where the domU maps its grant-table frame 0.
const TABLE_GFN: u64 = 0x700;
/// Where dom0 maps grants.
const MAP_GFN: u64 = 0x900;
/// The domU's frame it grants.
const GRANTED_GFN: u64 = 3;

struct Two {
    w: World,
    d0: Arc<Domain>,
    u: Arc<Domain>,
}

fn two() -> Two {
    let w = world(true);
    let d0 = w.domain(0, DOM0);
    let u = w.domain(2, DOMU);
    // The domU maps its table frame 0 (XENMAPSPACE_grant_table), as Linux.
    let a = warden_abi::memory::AddToPhysmap {
        domid: warden_abi::DOMID_SELF,
        size: 0,
        space: warden_abi::memory::XENMAPSPACE_GRANT_TABLE,
        idx: 0,
        gpfn: TABLE_GFN,
    };
    w.put(&u, ARG, &a);
    let r = w.call(
        &u,
        hc::MEMORY_OP,
        [warden_abi::memory::ADD_TO_PHYSMAP as u64, ARG, 0, 0, 0],
    );
    assert_eq!(r, 0);
    w.hv.write_phys(&u, GRANTED_GFN << 12, b"granted bytes!")
        .unwrap();
    Two { w, d0, u }
}

impl Two {
    /// The domU writes grant entry `gref` in its mapped table (as a guest does).
    fn grant(&self, gref: u32, to: u16, gfn: u32, flags: u16) {
        let e = GrantEntryV1 {
            flags,
            domid: to,
            frame: gfn,
        };
        self.w.put(&self.u, (TABLE_GFN << 12) + gref as u64 * 8, &e);
    }

    fn entry(&self, gref: u32) -> GrantEntryV1 {
        self.w.get(&self.u, (TABLE_GFN << 12) + gref as u64 * 8)
    }

    fn op(&self, d: &Domain, cmd: u32, count: u64) -> i64 {
        self.w
            .call(d, hc::GRANT_TABLE_OP, [cmd as u64, ARG, count, 0, 0])
    }

    fn map(&self, d: &Domain, dom: u16, gref: u32, gfn: u64, flags: u32) -> gt::MapGrantRef {
        let op = gt::MapGrantRef {
            host_addr: gfn << 12,
            flags,
            ref_: gref,
            dom,
            status: 99,
            ..Default::default()
        };
        self.w.put(d, ARG, &op);
        assert_eq!(self.op(d, gt::MAP_GRANT_REF, 1), 0);
        self.w.get(d, ARG)
    }

    fn unmap(&self, d: &Domain, handle: u32, gfn: u64) -> i16 {
        let op = gt::UnmapGrantRef {
            host_addr: gfn << 12,
            handle,
            status: 99,
            ..Default::default()
        };
        self.w.put(d, ARG, &op);
        assert_eq!(self.op(d, gt::UNMAP_GRANT_REF, 1), 0);
        self.w.get::<gt::UnmapGrantRef>(d, ARG).status
    }

    fn copy(
        &self,
        d: &Domain,
        src: (u64, u16, u16),
        dst: (u64, u16, u16),
        len: u16,
        flags: u16,
    ) -> i16 {
        let p = |x: (u64, u16, u16)| gt::CopyPtr {
            u: x.0,
            domid: x.1,
            offset: x.2,
            pad: 0,
        };
        let op = gt::Copy {
            source: p(src),
            dest: p(dst),
            len,
            flags,
            status: 99,
            ..Default::default()
        };
        self.w.put(d, ARG, &op);
        assert_eq!(self.op(d, gt::COPY, 1), 0);
        self.w.get::<gt::Copy>(d, ARG).status
    }

    fn read(&self, d: &Domain, gpa: u64, n: usize) -> Result<Vec<u8>, ()> {
        let mut b = alloc::vec![0u8; n];
        self.w.hv.read_phys(d, gpa, &mut b).map_err(|_| ())?;
        Ok(b)
    }

    /// Everything a refusal must leave as it was.
    fn state(&self) -> (Vec<u8>, Vec<u8>, u32, usize, bool) {
        (
            self.read(&self.u, TABLE_GFN << 12, 256).unwrap(),
            self.read(&self.u, GRANTED_GFN << 12, 64).unwrap(),
            self.u.gnttab.pinned_entries(),
            self.d0.gnttab.maptrack.count_of(None),
            self.read(&self.d0, MAP_GFN << 12, 1).is_ok(),
        )
    }
}

#[test]
fn dom0_maps_reads_and_unmaps_a_domu_grant() {
    let t = two();
    t.grant(8, 0, GRANTED_GFN as u32, gt::GTF_PERMIT_ACCESS);
    let m = t.map(&t.d0, 2, 8, MAP_GFN, gt::GNTMAP_HOST_MAP);
    assert_eq!(m.status, gt::GNTST_OKAY);
    assert_eq!(m.dev_bus_addr, 0, "no host address leaks to the guest");
    assert_eq!(t.read(&t.d0, MAP_GFN << 12, 14).unwrap(), b"granted bytes!");
    assert_eq!(
        t.entry(8).flags,
        gt::GTF_PERMIT_ACCESS | gt::GTF_READING | gt::GTF_WRITING
    );
    // Writable: dom0's writes reach the domU's page.
    t.w.hv.write_phys(&t.d0, MAP_GFN << 12, b"G").unwrap();
    assert_eq!(t.read(&t.u, GRANTED_GFN << 12, 2).unwrap(), b"Gr");
    assert_eq!(t.unmap(&t.d0, m.handle, MAP_GFN), gt::GNTST_OKAY);
    assert!(
        t.read(&t.d0, MAP_GFN << 12, 1).is_err(),
        "the GPA is empty again"
    );
    assert_eq!(t.entry(8).flags, gt::GTF_PERMIT_ACCESS);
}

#[test]
fn a_read_only_map_refuses_writes() {
    let t = two();
    t.grant(
        9,
        0,
        GRANTED_GFN as u32,
        gt::GTF_PERMIT_ACCESS | gt::GTF_READONLY,
    );
    assert_eq!(
        t.map(&t.d0, 2, 9, MAP_GFN, gt::GNTMAP_HOST_MAP).status,
        gt::GNTST_GENERAL_ERROR
    );
    let m = t.map(
        &t.d0,
        2,
        9,
        MAP_GFN,
        gt::GNTMAP_HOST_MAP | gt::GNTMAP_READONLY,
    );
    assert_eq!(m.status, gt::GNTST_OKAY);
    assert_eq!(
        t.entry(9).flags,
        gt::GTF_PERMIT_ACCESS | gt::GTF_READONLY | gt::GTF_READING
    );
    assert!(t.w.hv.write_phys(&t.d0, MAP_GFN << 12, b"x").is_err());
    // A hypercall told to write its result there gets EFAULT.
    t.w.put(
        &t.d0,
        ARG,
        &gt::QuerySize {
            dom: 2,
            ..Default::default()
        },
    );
    assert_eq!(
        t.w.call(
            &t.d0,
            hc::GRANT_TABLE_OP,
            [gt::QUERY_SIZE as u64, MAP_GFN << 12, 1, 0, 0]
        ),
        -(errno::EFAULT as i64)
    );
    assert_eq!(
        t.read(&t.u, GRANTED_GFN << 12, 14).unwrap(),
        b"granted bytes!"
    );
    assert_eq!(t.unmap(&t.d0, m.handle, MAP_GFN), gt::GNTST_OKAY);
}

#[test]
fn copy_moves_bytes_both_ways() {
    let t = two();
    t.grant(10, 0, GRANTED_GFN as u32, gt::GTF_PERMIT_ACCESS);
    let me = warden_abi::DOMID_SELF;
    // domU's grant -> dom0's frame 5 at 100.
    let st = t.copy(&t.d0, (10, 2, 0), (5, me, 100), 14, gt::GNTCOPY_SOURCE_GREF);
    assert_eq!(st, gt::GNTST_OKAY);
    assert_eq!(
        t.read(&t.d0, (5 << 12) + 100, 14).unwrap(),
        b"granted bytes!"
    );
    // dom0's frame -> domU's grant at 2000.
    t.w.hv.write_phys(&t.d0, 6 << 12, b"from dom0").unwrap();
    let st = t.copy(&t.d0, (6, me, 0), (10, 2, 2000), 9, gt::GNTCOPY_DEST_GREF);
    assert_eq!(st, gt::GNTST_OKAY);
    assert_eq!(
        t.read(&t.u, (GRANTED_GFN << 12) + 2000, 9).unwrap(),
        b"from dom0"
    );
    assert_eq!(t.entry(10).flags, gt::GTF_PERMIT_ACCESS);
    // Crossing the page: refused, nothing copied.
    let before = t.state();
    let st = t.copy(&t.d0, (6, me, 0), (10, 2, 4090), 9, gt::GNTCOPY_DEST_GREF);
    assert_eq!(st, gt::GNTST_BAD_COPY_ARG);
    // A frame of another domain must be named through a grant.
    let st = t.copy(&t.d0, (GRANTED_GFN, 2, 0), (6, me, 0), 9, 0);
    assert_eq!(st, gt::GNTST_PERMISSION_DENIED);
    assert_eq!(before, t.state());
}

#[test]
fn every_refusal_leaves_the_state_unchanged() {
    let t = two();
    let v = t.w.domain(3, "user_1:vm_r:isolated_domU_t");
    t.grant(8, 0, GRANTED_GFN as u32, gt::GTF_PERMIT_ACCESS);
    t.grant(11, 3, GRANTED_GFN as u32, gt::GTF_PERMIT_ACCESS);
    let before = t.state();
    // Bad reference, beyond the table.
    assert_eq!(
        t.map(&t.d0, 2, 5000, MAP_GFN, gt::GNTMAP_HOST_MAP).status,
        gt::GNTST_BAD_GNTREF
    );
    // No such domain.
    assert_eq!(
        t.map(&t.d0, 77, 8, MAP_GFN, gt::GNTMAP_HOST_MAP).status,
        gt::GNTST_BAD_DOMAIN
    );
    // Granted to someone else.
    assert_eq!(
        t.map(&t.d0, 2, 11, MAP_GFN, gt::GNTMAP_HOST_MAP).status,
        gt::GNTST_GENERAL_ERROR
    );
    // Revoked: the granter cleared the entry.
    t.grant(12, 0, GRANTED_GFN as u32, gt::GTF_PERMIT_ACCESS);
    t.grant(12, 0, 0, 0);
    assert_eq!(
        t.map(&t.d0, 2, 12, MAP_GFN, gt::GNTMAP_HOST_MAP).status,
        gt::GNTST_GENERAL_ERROR
    );
    // Unknown handle.
    assert_eq!(t.unmap(&t.d0, 4, MAP_GFN), gt::GNTST_BAD_HANDLE);
    assert_eq!(before, t.state());
    t.w.audit_lines();
    // The policy: an isolated_domU_t may not map a domU_t's grants; the
    // denial is audited and the entry untouched.
    let m = t.map(&v, 2, 11, MAP_GFN, gt::GNTMAP_HOST_MAP);
    assert_eq!(m.status, gt::GNTST_PERMISSION_DENIED);
    let lines = t.w.audit_lines();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("denied") && l.contains("map_read") && l.contains("tclass=grant")),
        "{lines:?}"
    );
    assert_eq!(t.entry(11).flags, gt::GTF_PERMIT_ACCESS);
    assert!(t.read(&v, MAP_GFN << 12, 1).is_err());
    assert_eq!(before, t.state());
}

#[test]
fn versions_and_sizes_are_xen_4_17s() {
    let t = two();
    t.w.put(&t.u, ARG, &gt::SetVersion { version: 2 });
    assert_eq!(t.op(&t.u, gt::SET_VERSION, 1), -(errno::ENOSYS as i64));
    assert_eq!(
        t.w.get::<gt::SetVersion>(&t.u, ARG).version,
        1,
        "the version in force"
    );
    t.w.put(&t.u, ARG, &gt::SetVersion { version: 3 });
    assert_eq!(t.op(&t.u, gt::SET_VERSION, 1), -(errno::EINVAL as i64));
    t.w.put(&t.u, ARG, &gt::SetVersion { version: 1 });
    assert_eq!(t.op(&t.u, gt::SET_VERSION, 1), 0);
    t.w.put(
        &t.u,
        ARG,
        &gt::GetVersion {
            dom: warden_abi::DOMID_SELF,
            ..Default::default()
        },
    );
    assert_eq!(t.op(&t.u, gt::GET_VERSION, 1), 0);
    assert_eq!(t.w.get::<gt::GetVersion>(&t.u, ARG).version, 1);
    t.w.put(
        &t.u,
        ARG,
        &gt::QuerySize {
            dom: warden_abi::DOMID_SELF,
            ..Default::default()
        },
    );
    assert_eq!(t.op(&t.u, gt::QUERY_SIZE, 1), 0);
    let q: gt::QuerySize = t.w.get(&t.u, ARG);
    assert_eq!(
        (q.nr_frames, q.max_nr_frames, q.status),
        (1, 64, gt::GNTST_OKAY)
    );
    assert_eq!(t.op(&t.u, gt::QUERY_SIZE, 2), -(errno::EINVAL as i64));
    // setup_table lists where the frames are mapped (!0: nowhere).
    t.w.put(
        &t.u,
        ARG,
        &gt::SetupTable {
            dom: warden_abi::DOMID_SELF,
            nr_frames: 2,
            frame_list: BUF,
            ..Default::default()
        },
    );
    assert_eq!(t.op(&t.u, gt::SETUP_TABLE, 1), 0);
    assert_eq!(t.w.get::<gt::SetupTable>(&t.u, ARG).status, gt::GNTST_OKAY);
    assert_eq!(t.w.get::<u64>(&t.u, BUF), TABLE_GFN);
    assert_eq!(t.w.get::<u64>(&t.u, BUF + 8), u64::MAX);
    t.w.put(
        &t.u,
        ARG,
        &gt::SetupTable {
            dom: warden_abi::DOMID_SELF,
            nr_frames: 65,
            frame_list: BUF,
            ..Default::default()
        },
    );
    assert_eq!(t.op(&t.u, gt::SETUP_TABLE, 1), 0);
    assert_eq!(
        t.w.get::<gt::SetupTable>(&t.u, ARG).status,
        gt::GNTST_GENERAL_ERROR
    );
    // What HVM guests may not use.
    for cmd in [3u32, 4, 7, 9, 11, 12, 13] {
        assert_eq!(t.op(&t.u, cmd, 1), -(errno::ENOSYS as i64), "cmd {cmd}");
    }
    assert_eq!(
        t.w.call(
            &t.u,
            hc::GRANT_TABLE_OP,
            [(1 << 12) | gt::QUERY_SIZE as u64, ARG, 1, 0, 0]
        ),
        -(errno::EINVAL as i64)
    );
}

#[test]
fn death_of_the_granter_keeps_the_mapped_page_until_unmapped() {
    let t = two();
    t.grant(8, 0, GRANTED_GFN as u32, gt::GTF_PERMIT_ACCESS);
    let m = t.map(
        &t.d0,
        2,
        8,
        MAP_GFN,
        gt::GNTMAP_HOST_MAP | gt::GNTMAP_READONLY,
    );
    assert_eq!(m.status, gt::GNTST_OKAY);
    let free0 = t.w.hv.platform.mem().free_frames();
    t.w.hv.destroy(&t.u);
    assert!(t.w.hv.domains.snapshot(2).is_none());
    assert_eq!(t.read(&t.d0, MAP_GFN << 12, 14).unwrap(), b"granted bytes!");
    let free1 = t.w.hv.platform.mem().free_frames();
    assert!(free1 > free0);
    // The granter is gone: the unmap is checked against its label as mapped.
    assert_eq!(t.unmap(&t.d0, m.handle, MAP_GFN), gt::GNTST_OKAY);
    assert_eq!(
        t.w.hv.platform.mem().free_frames(),
        free1 + 2,
        "the page and the table frame"
    );
}

#[test]
fn grant_table_frames_move_and_never_replace_foreign_frames() {
    let t = two();
    let add = |d: &Domain, idx: u64, gpfn: u64| {
        let a = warden_abi::memory::AddToPhysmap {
            domid: warden_abi::DOMID_SELF,
            size: 0,
            space: warden_abi::memory::XENMAPSPACE_GRANT_TABLE,
            idx,
            gpfn,
        };
        t.w.put(d, ARG, &a);
        t.w.call(
            d,
            hc::MEMORY_OP,
            [warden_abi::memory::ADD_TO_PHYSMAP as u64, ARG, 0, 0, 0],
        )
    };
    t.grant(8, 0, GRANTED_GFN as u32, gt::GTF_PERMIT_ACCESS);
    // Frame 1 grows the table; mapping it over RAM gives that page up.
    let pages = t.u.mem.read().tot_pages;
    assert_eq!(add(&t.u, 1, 10), 0);
    assert_eq!(t.u.gnttab.nr_frames(), 2);
    assert_eq!(t.u.mem.read().tot_pages, pages - 1);
    // Moving frame 0: its old place is empty, the entries are where it went.
    assert_eq!(add(&t.u, 0, 0x710), 0);
    assert!(t.read(&t.u, TABLE_GFN << 12, 1).is_err());
    let e: GrantEntryV1 = t.w.get(&t.u, (0x710 << 12) + 8 * 8);
    assert_eq!(e.frame, GRANTED_GFN as u32);
    // Beyond the maximum, a v2 status frame: EINVAL.
    assert_eq!(add(&t.u, 64, 0x720), -(errno::EINVAL as i64));
    assert_eq!(add(&t.u, 1 << 31, 0x720), -(errno::EINVAL as i64));
    // Over a grant mapping: refused, the mapping stays.
    let m = t.map(&t.d0, 2, 8, MAP_GFN, gt::GNTMAP_HOST_MAP);
    assert_eq!(m.status, gt::GNTST_OKAY);
    assert_eq!(add(&t.d0, 0, MAP_GFN), -(errno::EINVAL as i64));
    assert_eq!(t.read(&t.d0, MAP_GFN << 12, 14).unwrap(), b"granted bytes!");
    // A grant of a grant-table frame (not the domain's RAM) cannot be mapped.
    let e = GrantEntryV1 {
        flags: gt::GTF_PERMIT_ACCESS,
        domid: 0,
        frame: 0x710,
    };
    t.w.put(&t.u, (0x710 << 12) + 9 * 8, &e);
    assert_eq!(
        t.map(&t.d0, 2, 9, MAP_GFN + 1, gt::GNTMAP_HOST_MAP).status,
        gt::GNTST_BAD_PAGE
    );
    // decrease_reservation refuses grant mappings and table frames.
    t.w.put(&t.d0, BUF, &MAP_GFN);
    let r = warden_abi::memory::Reservation {
        extent_start: BUF,
        nr_extents: 1,
        domid: warden_abi::DOMID_SELF,
        ..Default::default()
    };
    t.w.put(&t.d0, ARG, &r);
    assert_eq!(
        t.w.call(
            &t.d0,
            hc::MEMORY_OP,
            [
                warden_abi::memory::DECREASE_RESERVATION as u64,
                ARG,
                0,
                0,
                0
            ]
        ),
        -(errno::EINVAL as i64)
    );
    assert_eq!(t.read(&t.d0, MAP_GFN << 12, 14).unwrap(), b"granted bytes!");
}

#[test]
fn a_pinned_page_given_up_by_decrease_reservation_stays_for_the_mapper() {
    let t = two();
    t.grant(8, 0, GRANTED_GFN as u32, gt::GTF_PERMIT_ACCESS);
    let m = t.map(
        &t.d0,
        2,
        8,
        MAP_GFN,
        gt::GNTMAP_HOST_MAP | gt::GNTMAP_READONLY,
    );
    assert_eq!(m.status, gt::GNTST_OKAY);
    t.w.put(&t.u, BUF, &GRANTED_GFN);
    let r = warden_abi::memory::Reservation {
        extent_start: BUF,
        nr_extents: 1,
        domid: warden_abi::DOMID_SELF,
        ..Default::default()
    };
    t.w.put(&t.u, ARG, &r);
    let free0 = t.w.hv.platform.mem().free_frames();
    assert_eq!(
        t.w.call(
            &t.u,
            hc::MEMORY_OP,
            [
                warden_abi::memory::DECREASE_RESERVATION as u64,
                ARG,
                0,
                0,
                0
            ]
        ),
        1
    );
    assert!(
        t.read(&t.u, GRANTED_GFN << 12, 1).is_err(),
        "gone from the domU"
    );
    assert_eq!(
        t.read(&t.d0, MAP_GFN << 12, 14).unwrap(),
        b"granted bytes!",
        "not freed"
    );
    assert_eq!(t.w.hv.platform.mem().free_frames(), free0);
    assert_eq!(t.unmap(&t.d0, m.handle, MAP_GFN), gt::GNTST_OKAY);
    assert_eq!(
        t.w.hv.platform.mem().free_frames(),
        free0 + 1,
        "freed by the unmap"
    );
}

#[test]
fn death_of_the_mapper_releases_its_mappings() {
    let t = two();
    t.grant(8, 0, GRANTED_GFN as u32, gt::GTF_PERMIT_ACCESS);
    assert_eq!(
        t.map(&t.d0, 2, 8, MAP_GFN, gt::GNTMAP_HOST_MAP).status,
        gt::GNTST_OKAY
    );
    t.w.hv.destroy(&t.d0);
    assert_eq!(t.u.gnttab.pinned_entries(), 0);
    assert_eq!(t.entry(8).flags, gt::GTF_PERMIT_ACCESS);
    assert_eq!(
        t.read(&t.u, GRANTED_GFN << 12, 14).unwrap(),
        b"granted bytes!"
    );
}

#[test]
fn a_hostile_domain_throws_structured_random_grant_calls() {
    // 100,000 calls with valid interface fields and random values (refs,
    // domains, handles, flags, offsets, lengths, batch sizes) from a domU
    // at dom0 and itself; the hypervisor must not panic and the other
    // domain's state must stay consistent.
    let t = two();
    t.grant(8, 2, GRANTED_GFN as u32, gt::GTF_PERMIT_ACCESS);
    t.grant(9, 0, GRANTED_GFN as u32, gt::GTF_PERMIT_ACCESS);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let doms = [0u16, 2, 7, warden_abi::DOMID_SELF, 0x7ff1];
    for _ in 0..100_000 {
        let r = next();
        let dom = doms[(r >> 8) as usize % doms.len()];
        let gref = [8u32, 9, 0, 511, 512, u32::MAX][(r >> 16) as usize % 6];
        let count = [0u64, 1, 2, 3][(r >> 24) as usize % 4];
        let cmd = [0u32, 1, 2, 5, 6, 8, 10, 11][(r >> 28) as usize % 8];
        let a = next();
        match cmd {
            0 => {
                for i in 0..count {
                    let flags = [2u32, 6, 0, 1, 3, 8, 0xffff_0002][(a >> (i * 3)) as usize % 7];
                    let gfn = [MAP_GFN, MAP_GFN + 1, 3, 0x7ff_ffff][(a >> 20) as usize % 4];
                    let op = gt::MapGrantRef {
                        host_addr: gfn << 12,
                        flags,
                        ref_: gref,
                        dom,
                        ..Default::default()
                    };
                    t.w.put(&t.u, ARG + i * 32, &op);
                }
            }
            1 => {
                for i in 0..count {
                    let op = gt::UnmapGrantRef {
                        host_addr: [MAP_GFN, MAP_GFN + 1, 0][(a >> 4) as usize % 3] << 12,
                        handle: (a >> 8) as u32 % 4,
                        ..Default::default()
                    };
                    t.w.put(&t.u, ARG + i * 24, &op);
                }
            }
            5 => {
                for i in 0..count {
                    let p = |s: u64| gt::CopyPtr {
                        u: [8, 9, 3, 5, 0x7ff_ffff][s as usize % 5],
                        domid: doms[(s >> 4) as usize % doms.len()],
                        offset: (s >> 8) as u16 % 4200,
                        pad: 0,
                    };
                    let op = gt::Copy {
                        source: p(a >> 3),
                        dest: p(a >> 23),
                        len: (a >> 40) as u16 % 4200,
                        flags: (a >> 60) as u16 & 3,
                        ..Default::default()
                    };
                    t.w.put(&t.u, ARG + i * 40, &op);
                }
            }
            2 => t.w.put(
                &t.u,
                ARG,
                &gt::SetupTable {
                    dom,
                    nr_frames: (a % 70) as u32,
                    frame_list: BUF,
                    ..Default::default()
                },
            ),
            6 => t.w.put(
                &t.u,
                ARG,
                &gt::QuerySize {
                    dom,
                    ..Default::default()
                },
            ),
            8 => t.w.put(
                &t.u,
                ARG,
                &gt::SetVersion {
                    version: (a % 4) as u32,
                },
            ),
            _ => t.w.put(
                &t.u,
                ARG,
                &gt::GetVersion {
                    dom,
                    ..Default::default()
                },
            ),
        }
        let _ =
            t.w.call(&t.u, hc::GRANT_TABLE_OP, [cmd as u64, ARG, count, 0, 0]);
        // Sometimes the granter revokes or re-grants.
        if r & 0xff == 0 {
            t.grant(
                9,
                0,
                GRANTED_GFN as u32,
                if r & 0x100 != 0 {
                    0
                } else {
                    gt::GTF_PERMIT_ACCESS
                },
            );
        }
    }
    // Whatever the domU mapped of itself, it can undo; dom0 untouched.
    assert_eq!(t.d0.gnttab.maptrack.count_of(None), 0);
    assert_eq!(t.d0.mem.read().tot_pages, PAGES);
    for h in 0..t.u.gnttab.maptrack.capacity() {
        if let Ok(m) = crate::xen::gnttab::mapping_of(&t.u, h) {
            assert_eq!(t.unmap(&t.u, h, m.gfn), gt::GNTST_OKAY);
        }
    }
    assert_eq!(t.u.gnttab.pinned_entries(), 0);
    assert_eq!(t.u.mem.read().tot_pages, PAGES);
}

/// Domain `id` labelled `label`, with its grant-table frame 0 mapped at
/// [`TABLE_GFN`] and grant `gref` to dom0 of its frame `gfn`.
fn granting_domain(w: &World, id: u16, label: &str, gref: u32, gfn: u32) -> Arc<Domain> {
    let d = w.domain(id, label);
    let a = warden_abi::memory::AddToPhysmap {
        domid: warden_abi::DOMID_SELF,
        size: 0,
        space: warden_abi::memory::XENMAPSPACE_GRANT_TABLE,
        idx: 0,
        gpfn: TABLE_GFN,
    };
    w.put(&d, ARG, &a);
    let r = w.call(
        &d,
        hc::MEMORY_OP,
        [warden_abi::memory::ADD_TO_PHYSMAP as u64, ARG, 0, 0, 0],
    );
    assert_eq!(r, 0);
    let e = GrantEntryV1 {
        flags: gt::GTF_PERMIT_ACCESS,
        domid: 0,
        frame: gfn,
    };
    w.put(&d, (TABLE_GFN << 12) + gref as u64 * 8, &e);
    d
}

#[test]
fn dom0_copies_between_two_domus_grants_as_the_policy_allows() {
    // netback forwarding a packet from one guest to another: the source is
    // the first guest's grant (mapped in dom0), the destination the second
    // guest's; dom0 names both by reference (Xen's flask_grant_copy:
    // source -> destination).
    let t = two();
    t.grant(10, 0, GRANTED_GFN as u32, gt::GTF_PERMIT_ACCESS);
    let v = granting_domain(&t.w, 3, DOMU, 9, 4);
    let both = gt::GNTCOPY_SOURCE_GREF | gt::GNTCOPY_DEST_GREF;
    let st = t.copy(&t.d0, (10, 2, 0), (9, 3, 50), 14, both);
    assert_eq!(st, gt::GNTST_OKAY);
    assert_eq!(t.read(&v, (4 << 12) + 50, 14).unwrap(), b"granted bytes!");
    // Neither grant stays pinned or flagged.
    assert_eq!(t.entry(10).flags, gt::GTF_PERMIT_ACCESS);
    let e: GrantEntryV1 = t.w.get(&v, (TABLE_GFN << 12) + 9 * 8);
    assert_eq!(e.flags, gt::GTF_PERMIT_ACCESS);
    assert_eq!(t.u.gnttab.pinned_entries() + v.gnttab.pinned_entries(), 0);
    // A grant of the destination's that is not dom0's: refused there.
    let st = t.copy(&t.d0, (10, 2, 0), (11, 3, 0), 14, both);
    assert_eq!(st, gt::GNTST_GENERAL_ERROR);
    // To an isolated guest: the policy refuses domU_t -> isolated_domU_t
    // grant:copy, audited, nothing copied, nothing pinned.
    let i = granting_domain(&t.w, 4, "user_1:vm_r:isolated_domU_t", 9, 4);
    t.w.hv.write_phys(&i, 4 << 12, b"untouched").unwrap();
    t.w.audit_lines();
    let st = t.copy(&t.d0, (10, 2, 0), (9, 4, 0), 14, both);
    assert_eq!(st, gt::GNTST_PERMISSION_DENIED);
    let lines = t.w.audit_lines();
    assert!(
        lines.iter().any(|l| l.contains("denied")
            && l.contains("{ copy }")
            && l.contains("tclass=grant")
            && l.contains("isolated_domU_t")),
        "{lines:?}"
    );
    assert_eq!(t.read(&i, 4 << 12, 9).unwrap(), b"untouched");
    let e: GrantEntryV1 = t.w.get(&i, (TABLE_GFN << 12) + 9 * 8);
    assert_eq!(e.flags, gt::GTF_PERMIT_ACCESS);
    assert_eq!(i.gnttab.pinned_entries() + t.u.gnttab.pinned_entries(), 0);
    // The other way too (isolated_domU_t -> domU_t).
    let st = t.copy(&t.d0, (9, 4, 0), (9, 3, 0), 9, both);
    assert_eq!(st, gt::GNTST_PERMISSION_DENIED);
    assert_eq!(t.read(&v, (4 << 12) + 50, 14).unwrap(), b"granted bytes!");
}
