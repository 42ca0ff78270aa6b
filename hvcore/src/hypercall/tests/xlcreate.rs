//! Issue 11 §2-3: what `xl create` of a PVH domU, xenstored and xenconsoled
//! need of the hypervisor (xen-abi-map.md §5.4-5.8), through the
//! dispatcher with FLASK enforcing and the default policy: the domctls of
//! libxl's trace, memory_op on another domain (claims, populate with large
//! extents, foreign mappings, acquire_resource), and the xenstored and
//! xenconsoled steps at a domain's introduction. Every denial is shown to
//! change nothing.

use super::*;
use warden_abi::memory as mem;
use warden_abi::xen::event_channel as ec;
use warden_abi::xen::grant_table as gt;
use warden_abi::xen::hvm_params as hp;

const DOM0: &str = "system_u:system_r:dom0_t";
const UNLABELED: &str = "system_u:system_r:unlabeled_t";

fn put_bytes(w: &World, d: &Domain, gpa: u64, b: &[u8]) {
    w.hv.write_phys(d, gpa, b).unwrap();
}

fn get_bytes<const N: usize>(w: &World, d: &Domain, gpa: u64) -> [u8; N] {
    let mut b = [0u8; N];
    w.hv.read_phys(d, gpa, &mut b).unwrap();
    b
}

fn neg(e: i32) -> i64 {
    -(e as i64)
}

fn domctl(w: &World, d: &Domain, op: &dc::Domctl) -> (i64, dc::Domctl) {
    w.put(d, ARG, op);
    let r = w.call(d, hc::DOMCTL, [ARG, 0, 0, 0, 0]);
    (r, w.get(d, ARG))
}

fn dc_on<T: Pod>(w: &World, d: &Domain, cmd: u32, id: u16, a: &T) -> (i64, dc::Domctl) {
    domctl(w, d, &dc::Domctl::new(cmd, id, a))
}

fn sysctl<T: Pod>(w: &World, d: &Domain, cmd: u32, a: &T) -> (i64, sc::Sysctl) {
    w.put(d, ARG, &sc::Sysctl::new(cmd, a));
    let r = w.call(d, hc::SYSCTL, [ARG, 0, 0, 0, 0]);
    (r, w.get(d, ARG))
}

fn memop<T: Pod>(w: &World, d: &Domain, cmd: u32, a: &T) -> i64 {
    w.put(d, ARG, a);
    w.call(d, hc::MEMORY_OP, [cmd as u64, ARG, 0, 0, 0])
}

fn pvh(ssidref: u32) -> dc::CreateDomain {
    dc::CreateDomain {
        ssidref,
        flags: dc::CDF_HVM | dc::CDF_HAP,
        max_vcpus: 1,
        max_evtchn_port: 1023,
        max_grant_frames: -1,
        max_maptrack_frames: -1,
        grant_opts: 1,
        arch: dc::ArchDomainConfig {
            emulation_flags: dc::X86_EMU_LAPIC,
            misc_flags: 0,
        },
        ..Default::default()
    }
}

/// libxl's first steps: createdomain, max_vcpus, max_mem (`kb`). The new domain.
fn create(w: &World, d0: &Domain, kb: u64) -> Arc<Domain> {
    let (r, op) = dc_on(w, d0, dc::CREATEDOMAIN, 0, &pvh(w.sid(DOMU)));
    assert_eq!(r, 0, "createdomain");
    let id = op.domain;
    assert_eq!(
        dc_on(w, d0, dc::MAX_VCPUS, id, &dc::MaxVcpus { max: 1 }).0,
        0
    );
    let (r, _) = dc_on(w, d0, dc::MAX_MEM, id, &dc::MaxMem { max_memkb: kb });
    assert_eq!(r, 0);
    w.hv.domains.get(id).unwrap()
}

/// populate_physmap of `gfns` (extents of `order`) for `id`, by `d`.
fn populate(w: &World, d: &Domain, id: u16, gfns: &[u64], order: u32) -> i64 {
    for (i, g) in gfns.iter().enumerate() {
        w.put(d, BUF + 8 * i as u64, g);
    }
    let r = mem::Reservation {
        extent_start: BUF,
        nr_extents: gfns.len() as u64,
        extent_order: order,
        domid: id,
        ..Default::default()
    };
    // Continued calls are executed again, as the guest would.
    let mut cmd = mem::POPULATE_PHYSMAP as u64;
    loop {
        w.put(d, ARG, &r);
        CONTINUED.with(|c| c.set(None));
        let rc = w.call(d, hc::MEMORY_OP, [cmd, ARG, 0, 0, 0]);
        match CONTINUED.with(|c| c.take()) {
            Some(a) if rc == -(crate::hypercall::ERESTART as i64) || a.a[0] != cmd => cmd = a.a[0],
            _ => return rc,
        }
    }
}

/// DESTROYDOMAIN, executed again while it continues itself.
fn destroy(w: &World, d0: &Domain, id: u16) -> i64 {
    loop {
        CONTINUED.with(|c| c.set(None));
        let r = dc_on(w, d0, dc::DESTROYDOMAIN, id, &()).0;
        if CONTINUED.with(|c| c.take()).is_none() {
            return r;
        }
    }
}

fn claim(w: &World, d: &Domain, id: u16, pages: u64) -> i64 {
    memop(
        w,
        d,
        mem::CLAIM_PAGES,
        &mem::Reservation {
            nr_extents: pages,
            domid: id,
            ..Default::default()
        },
    )
}

fn physinfo(w: &World, d: &Domain) -> sc::PhysInfo {
    let (r, op) = sysctl(w, d, sc::PHYSINFO, &());
    assert_eq!(r, 0);
    op.arg()
}

/// add_to_physmap_batch of gmfn_foreign pages (`fgfns` of `fid` at
/// `gpfns` of the caller): the call's result and each page's.
fn map_foreign(w: &World, d: &Domain, fid: u16, fgfns: &[u64], gpfns: &[u64]) -> (i64, Vec<i32>) {
    let n = fgfns.len() as u64;
    for i in 0..n {
        w.put(d, BUF + 8 * i, &fgfns[i as usize]);
        w.put(d, BUF + 0x400 + 8 * i, &gpfns[i as usize]);
        w.put(d, BUF + 0x800 + 4 * i, &0x5555_5555u32);
    }
    let r = memop(
        w,
        d,
        mem::ADD_TO_PHYSMAP_BATCH,
        &mem::AddToPhysmapBatch {
            domid: warden_abi::DOMID_SELF,
            space: mem::XENMAPSPACE_GMFN_FOREIGN as u16,
            size: n as u16,
            foreign_domid: fid,
            idxs: BUF,
            gpfns: BUF + 0x400,
            errs: BUF + 0x800,
        },
    );
    let errs = (0..n)
        .map(|i| w.get::<i32>(d, BUF + 0x800 + 4 * i))
        .collect();
    (r, errs)
}

fn remove(w: &World, d: &Domain, id: u16, gpfn: u64) -> i64 {
    memop(
        w,
        d,
        mem::REMOVE_FROM_PHYSMAP,
        &mem::RemoveFromPhysmap {
            domid: id,
            gpfn,
            ..Default::default()
        },
    )
}

fn acquire(w: &World, d: &Domain, a: &mem::AcquireResource) -> (i64, mem::AcquireResource) {
    let r = memop(w, d, mem::ACQUIRE_RESOURCE, a);
    (r, w.get(d, ARG))
}

fn grant_table(id: u16, nr: u32, list: u64) -> mem::AcquireResource {
    mem::AcquireResource {
        domid: id,
        kind: mem::RESOURCE_GRANT_TABLE,
        id: mem::RESOURCE_GRANT_TABLE_ID_SHARED,
        nr_frames: nr,
        frame: 0,
        frame_list: list,
        ..Default::default()
    }
}

/// Where dom0 puts foreign mappings (beyond its RAM, as Linux's
/// unpopulated-alloc ranges).
const FOREIGN_GFN: u64 = 0x10000;

// ------------------------------------------------------------------ domctls

#[test]
fn the_domctls_of_libxls_trace_do_what_xen_does() {
    let w = world(true);
    let d0 = w.domain(0, DOM0);
    let d = create(&w, &d0, 256);
    let id = d.id;
    // setnodeaffinity: libxl's "all nodes" is the automatic affinity.
    put_bytes(&w, &d0, BUF, &[0xffu8; 8]);
    let all = dc::NodeAffinity {
        bitmap: BUF,
        nr_bits: 64,
        pad: 0,
    };
    assert_eq!(dc_on(&w, &d0, dc::SETNODEAFFINITY, id, &all).0, 0);
    assert_eq!(*d.node_affinity.lock(), None);
    // Node 0 is Warden's only node: a mask without it is refused.
    put_bytes(&w, &d0, BUF, &[0b10u8]);
    let one = dc::NodeAffinity {
        bitmap: BUF,
        nr_bits: 2,
        pad: 0,
    };
    assert_eq!(
        dc_on(&w, &d0, dc::SETNODEAFFINITY, id, &one).0,
        neg(errno::EINVAL)
    );
    assert_eq!(*d.node_affinity.lock(), None, "unchanged");
    // Bits beyond nr_bits do not count: 0b11 with 1 bit is node 0.
    put_bytes(&w, &d0, BUF, &[0b11u8]);
    let first = dc::NodeAffinity {
        bitmap: BUF,
        nr_bits: 1,
        pad: 0,
    };
    assert_eq!(dc_on(&w, &d0, dc::SETNODEAFFINITY, id, &first).0, 0);
    assert_eq!(*d.node_affinity.lock(), Some(1));
    // getnodeaffinity: the mask, then zeros up to nr_bits.
    put_bytes(&w, &d0, BUF, &[0xaau8; 16]);
    let get = dc::NodeAffinity {
        bitmap: BUF,
        nr_bits: 128,
        pad: 0,
    };
    assert_eq!(dc_on(&w, &d0, dc::GETNODEAFFINITY, id, &get).0, 0);
    let mut want = [0u8; 16];
    want[0] = 1;
    assert_eq!(get_bytes::<16>(&w, &d0, BUF), want);

    // settscinfo: libxl's default mode; gettscinfo reports it.
    let tsc = dc::TscInfo::default();
    assert_eq!(dc_on(&w, &d0, dc::SETTSCINFO, id, &tsc).0, 0);
    let (r, op) = dc_on(&w, &d0, dc::GETTSCINFO, id, &());
    assert_eq!(r, 0);
    let t: dc::TscInfo = op.arg();
    assert_eq!((t.tsc_mode, t.incarnation), (dc::TSC_MODE_DEFAULT, 1));
    assert_eq!(t.gtsc_khz, w.hv.platform.cpu_khz());
    // An emulated TSC is not offered: refused, nothing changes.
    for (mode, khz) in [
        (dc::TSC_MODE_ALWAYS_EMULATE, 0),
        (dc::TSC_MODE_DEFAULT, 1234),
    ] {
        let a = dc::TscInfo {
            tsc_mode: mode,
            gtsc_khz: khz,
            incarnation: 7,
            ..Default::default()
        };
        let r = dc_on(&w, &d0, dc::SETTSCINFO, id, &a).0;
        assert_eq!(r, neg(errno::EOPNOTSUPP), "mode {mode} at {khz} kHz");
    }
    let bad = dc::TscInfo {
        tsc_mode: 3,
        ..Default::default()
    };
    assert_eq!(
        dc_on(&w, &d0, dc::SETTSCINFO, id, &bad).0,
        neg(errno::EINVAL)
    );
    assert_eq!(d.hvm.tsc.lock().incarnation, 1, "unchanged");
    let never = dc::TscInfo {
        tsc_mode: dc::TSC_MODE_NEVER_EMULATE,
        incarnation: 4,
        ..Default::default()
    };
    assert_eq!(dc_on(&w, &d0, dc::SETTSCINFO, id, &never).0, 0);
    let t: dc::TscInfo = dc_on(&w, &d0, dc::GETTSCINFO, id, &()).1.arg();
    assert_eq!(
        (t.tsc_mode, t.incarnation, t.gtsc_khz, t.elapsed_nsec),
        (2, 5, 0, 0)
    );
    // Not on oneself (Xen cannot pause the caller): without FLASK, EINVAL
    // (with the default policy the check refuses it first).
    let nf = world(false);
    let n0 = nf.domain(0, "");
    assert_eq!(
        dc_on(&nf, &n0, dc::SETTSCINFO, 0, &tsc).0,
        neg(errno::EINVAL)
    );
    assert_eq!(
        dc_on(&nf, &n0, dc::SET_CPU_POLICY, 0, &dc::CpuPolicy::default()).0,
        neg(errno::EINVAL)
    );
    assert_eq!(
        dc_on(&w, &d0, dc::SETTSCINFO, 0, &tsc).0,
        neg(errno::EACCES)
    );
    w.audit_lines();

    // The paging pool is the domain's nested-page-table budget.
    let (r, op) = dc_on(&w, &d0, dc::GET_PAGING_MEMPOOL_SIZE, id, &());
    assert_eq!(r, 0);
    let before = op.arg::<dc::PagingMempool>().size;
    assert_eq!(before % 4096, 0);
    let pool = dc::PagingMempool { size: 2 << 20 };
    assert_eq!(dc_on(&w, &d0, dc::SET_PAGING_MEMPOOL_SIZE, id, &pool).0, 0);
    let got: dc::PagingMempool = dc_on(&w, &d0, dc::GET_PAGING_MEMPOOL_SIZE, id, &()).1.arg();
    assert_eq!(got.size, 2 << 20);
    let odd = dc::PagingMempool {
        size: (2 << 20) + 1,
    };
    let r = dc_on(&w, &d0, dc::SET_PAGING_MEMPOOL_SIZE, id, &odd).0;
    assert_eq!(r, neg(errno::EINVAL));
    let huge = dc::PagingMempool { size: 1 << 60 };
    let r = dc_on(&w, &d0, dc::SET_PAGING_MEMPOOL_SIZE, id, &huge).0;
    assert_eq!(r, neg(errno::EINVAL));
    // Never below the tables in use.
    let tiny = dc::PagingMempool { size: 0 };
    assert_eq!(dc_on(&w, &d0, dc::SET_PAGING_MEMPOOL_SIZE, id, &tiny).0, 0);
    let got: dc::PagingMempool = dc_on(&w, &d0, dc::GET_PAGING_MEMPOOL_SIZE, id, &()).1.arg();
    assert!(got.size >= 4096 * d.mem.read().p2m.as_ref().unwrap().table_frames());

    // setdomainhandle (xen-init-dom0 sets dom0's own).
    let h = dc::DomainHandle { handle: [9; 16] };
    assert_eq!(dc_on(&w, &d0, dc::SETDOMAINHANDLE, id, &h).0, 0);
    let i: dc::GetDomainInfo = dc_on(&w, &d0, dc::GETDOMAININFO, id, &()).1.arg();
    assert_eq!(i.handle, [9; 16]);
    let h0 = dc::DomainHandle { handle: [3; 16] };
    assert_eq!(dc_on(&w, &d0, dc::SETDOMAINHANDLE, 0, &h0).0, 0);
    assert_eq!(*d0.handle.lock(), [3; 16]);

    // cacheflush: checked, then ENOSYS as on an x86 Xen.
    let cf = dc::CacheFlush {
        start_pfn: 0,
        nr_pfns: 1,
    };
    assert_eq!(
        dc_on(&w, &d0, dc::CACHEFLUSH, id, &cf).0,
        neg(errno::ENOSYS)
    );
    assert!(w.audit_lines().is_empty(), "dom0 was refused nothing");
}

#[test]
fn a_domu_is_refused_every_domctl_of_the_trace_and_nothing_changes() {
    let w = world(true);
    let d0 = w.domain(0, DOM0);
    let u = w.domain(1, DOMU);
    let v = w.domain(2, DOMU);
    put_bytes(&w, &u, BUF, &[1u8; 8]);
    let before = (
        *v.handle.lock(),
        *v.hvm.tsc.lock(),
        *v.node_affinity.lock(),
        v.mem.read().p2m.as_ref().unwrap().table_limit(),
    );
    let cases: [(u32, dc::Domctl); 9] = [
        (
            dc::SETDOMAINHANDLE,
            dc::Domctl::new(
                dc::SETDOMAINHANDLE,
                2,
                &dc::DomainHandle { handle: [1; 16] },
            ),
        ),
        (
            dc::SETTSCINFO,
            dc::Domctl::new(
                dc::SETTSCINFO,
                2,
                &dc::TscInfo {
                    tsc_mode: 2,
                    ..Default::default()
                },
            ),
        ),
        (dc::GETTSCINFO, dc::Domctl::new(dc::GETTSCINFO, 2, &())),
        (
            dc::SETNODEAFFINITY,
            dc::Domctl::new(
                dc::SETNODEAFFINITY,
                2,
                &dc::NodeAffinity {
                    bitmap: BUF,
                    nr_bits: 1,
                    pad: 0,
                },
            ),
        ),
        (
            dc::SET_PAGING_MEMPOOL_SIZE,
            dc::Domctl::new(
                dc::SET_PAGING_MEMPOOL_SIZE,
                2,
                &dc::PagingMempool { size: 1 << 30 },
            ),
        ),
        (
            dc::GET_PAGING_MEMPOOL_SIZE,
            dc::Domctl::new(dc::GET_PAGING_MEMPOOL_SIZE, 2, &()),
        ),
        (
            dc::GET_CPU_POLICY,
            dc::Domctl::new(dc::GET_CPU_POLICY, 2, &dc::CpuPolicy::default()),
        ),
        (
            dc::SET_CPU_POLICY,
            dc::Domctl::new(dc::SET_CPU_POLICY, 2, &dc::CpuPolicy::default()),
        ),
        (
            dc::CACHEFLUSH,
            dc::Domctl::new(dc::CACHEFLUSH, 2, &dc::CacheFlush::default()),
        ),
    ];
    for (cmd, op) in cases {
        let (r, back) = domctl(&w, &u, &op);
        assert_eq!(r, neg(errno::EACCES), "domctl {cmd}");
        assert_eq!(back.u, op.u, "domctl {cmd}: nothing copied back");
        let a = w.audit_lines();
        assert!(a.iter().any(|l| l.contains("avc:  denied")), "{cmd}: {a:?}");
    }
    let after = (
        *v.handle.lock(),
        *v.hvm.tsc.lock(),
        *v.node_affinity.lock(),
        v.mem.read().p2m.as_ref().unwrap().table_limit(),
    );
    assert_eq!(before, after);
    // Nor the system CPU policy and featureset.
    let (r, _) = sysctl(&w, &u, sc::GET_CPU_POLICY, &sc::SysCpuPolicy::default());
    assert_eq!(r, neg(errno::EACCES));
    let (r, _) = sysctl(
        &w,
        &u,
        sc::GET_CPU_FEATURESET,
        &sc::CpuFeatureset::default(),
    );
    assert_eq!(r, neg(errno::EACCES));
    let _ = d0;
}

#[test]
fn libxcs_cpu_policy_round_trip_is_accepted_and_warden_keeps_its_own() {
    let w = world(true);
    let d0 = w.domain(0, DOM0);
    let d = create(&w, &d0, 256);
    let id = d.id;
    // xc_cpu_policy_get_size: null handles.
    let (r, op) = sysctl(&w, &d0, sc::GET_CPU_POLICY, &sc::SysCpuPolicy::default());
    assert_eq!(r, 0);
    let size: sc::SysCpuPolicy = op.arg();
    assert_eq!(
        (size.nr_leaves, size.nr_msrs),
        (
            sc::CPUID_MAX_SERIALISED_LEAVES,
            sc::MSR_MAX_SERIALISED_ENTRIES
        )
    );
    // The host featureset (a short buffer: ENOBUFS with what fits).
    let fs = sc::CpuFeatureset {
        index: sc::featureset::HOST,
        nr_features: 4,
        features: BUF,
    };
    let (r, op) = sysctl(&w, &d0, sc::GET_CPU_FEATURESET, &fs);
    assert_eq!(r, neg(errno::ENOBUFS));
    assert_eq!(op.arg::<sc::CpuFeatureset>().nr_features, 4);
    let host1 = crate::xen::cpupolicy::tests::host(1, 0);
    assert_eq!(w.get::<u32>(&d0, BUF), host1.3);
    assert_eq!(w.get::<u32>(&d0, BUF + 4), host1.2);
    let fs = sc::CpuFeatureset {
        nr_features: 64,
        ..fs
    };
    let (r, op) = sysctl(&w, &d0, sc::GET_CPU_FEATURESET, &fs);
    assert_eq!(
        (r, op.arg::<sc::CpuFeatureset>().nr_features),
        (0, sc::FSCAPINTS)
    );
    for (index, e) in [(sc::featureset::PV, errno::EOPNOTSUPP), (9, errno::EINVAL)] {
        let r = sysctl(
            &w,
            &d0,
            sc::GET_CPU_FEATURESET,
            &sc::CpuFeatureset { index, ..fs },
        )
        .0;
        assert_eq!(r, neg(e), "featureset {index}");
    }
    // The HVM default policy: Warden's guest view.
    let get = sc::SysCpuPolicy {
        index: sc::cpu_policy::HVM_DEFAULT,
        nr_leaves: size.nr_leaves,
        nr_msrs: 0,
        leaves: BUF,
        ..Default::default()
    };
    let (r, op) = sysctl(&w, &d0, sc::GET_CPU_POLICY, &get);
    assert_eq!(r, 0);
    let n = op.arg::<sc::SysCpuPolicy>().nr_leaves;
    let leaves: Vec<sc::CpuidLeaf> = (0..n as u64).map(|i| w.get(&d0, BUF + 24 * i)).collect();
    let ours = crate::xen::cpupolicy::serialise(
        &crate::xen::cpupolicy::tests::host,
        crate::xen::cpupolicy::View::Guest,
    );
    assert_eq!(leaves, ours);
    for (index, e) in [
        (sc::cpu_policy::PV_DEFAULT, errno::EOPNOTSUPP),
        (6, errno::EINVAL),
    ] {
        let r = sysctl(
            &w,
            &d0,
            sc::GET_CPU_POLICY,
            &sc::SysCpuPolicy { index, ..get },
        )
        .0;
        assert_eq!(r, neg(e), "policy {index}");
    }
    let small = sc::SysCpuPolicy {
        nr_leaves: 3,
        ..get
    };
    assert_eq!(
        sysctl(&w, &d0, sc::GET_CPU_POLICY, &small).0,
        neg(errno::ENOBUFS)
    );
    // The domain's policy is the same.
    let dget = dc::CpuPolicy {
        nr_leaves: 120,
        nr_msrs: 2,
        leaves: BUF,
        msrs: BUF + 0xc00,
        ..Default::default()
    };
    let (r, op) = dc_on(&w, &d0, dc::GET_CPU_POLICY, id, &dget);
    assert_eq!(r, 0);
    let p: dc::CpuPolicy = op.arg();
    assert_eq!((p.nr_leaves, p.nr_msrs), (n, 2));
    // xc_cpuid_apply_policy's HVM topology fix-ups, sent back: accepted.
    let mut theirs = leaves.clone();
    theirs[1].b = (theirs[1].b & !0x00ff_0000) | (2 << 16);
    theirs[1].d |= 1 << 28;
    for (i, l) in theirs.iter().enumerate() {
        w.put(&d0, BUF + 24 * i as u64, l);
    }
    let set = dc::CpuPolicy {
        nr_leaves: n,
        nr_msrs: 0,
        leaves: BUF,
        msrs: 0,
        err_leaf: !0,
        err_subleaf: !0,
        err_msr: !0,
        pad: 0,
    };
    assert_eq!(dc_on(&w, &d0, dc::SET_CPU_POLICY, id, &set).0, 0);
    // Warden keeps enforcing its own view.
    let (_, op) = dc_on(&w, &d0, dc::GET_CPU_POLICY, id, &dget);
    assert_eq!(op.arg::<dc::CpuPolicy>().nr_leaves, n);
    assert_eq!(w.get::<sc::CpuidLeaf>(&d0, BUF + 24), ours[1]);
    // More basic leaves than Warden's: refused, the leaf named.
    let mut more = ours.clone();
    more[0].a += 1;
    w.put(&d0, BUF, &more[0]);
    let (r, op) = dc_on(
        &w,
        &d0,
        dc::SET_CPU_POLICY,
        id,
        &dc::CpuPolicy {
            nr_leaves: 1,
            ..set
        },
    );
    assert_eq!(r, neg(errno::EINVAL));
    let p: dc::CpuPolicy = op.arg();
    assert_eq!(
        (p.err_leaf, p.err_subleaf, p.err_msr),
        (0, sc::CPUID_NO_SUBLEAF, !0)
    );
    // An unknown MSR.
    w.put(
        &d0,
        BUF + 0xc00,
        &sc::MsrEntry {
            idx: 0x10,
            flags: 0,
            val: 0,
        },
    );
    let bad_msr = dc::CpuPolicy {
        nr_leaves: 0,
        nr_msrs: 1,
        msrs: BUF + 0xc00,
        ..set
    };
    let (r, op) = dc_on(&w, &d0, dc::SET_CPU_POLICY, id, &bad_msr);
    assert_eq!(
        (r, op.arg::<dc::CpuPolicy>().err_msr),
        (neg(errno::ERANGE), 0x10)
    );
    let big = dc::CpuPolicy {
        nr_leaves: 121,
        ..set
    };
    assert_eq!(
        dc_on(&w, &d0, dc::SET_CPU_POLICY, id, &big).0,
        neg(errno::E2BIG)
    );
    // Not on oneself (the policy refuses it before Xen's EINVAL); not
    // once the domain has run.
    assert_eq!(
        dc_on(&w, &d0, dc::SET_CPU_POLICY, 0, &set).0,
        neg(errno::EACCES)
    );
    assert_eq!(dc_on(&w, &d0, dc::UNPAUSEDOMAIN, id, &()).0, 0);
    assert!(
        d.creation_finished
            .load(core::sync::atomic::Ordering::Acquire)
    );
    assert_eq!(
        dc_on(&w, &d0, dc::SET_CPU_POLICY, id, &set).0,
        neg(errno::EEXIST)
    );
}

// ------------------------------------------------------------ memory_op

fn pod(w: &World, d: &Domain, set: bool, id: u16, target: u64) -> (i64, mem::PodTarget) {
    let t = mem::PodTarget {
        target_pages: target,
        tot_pages: 0xdead,
        pod_cache_pages: 0xdead,
        pod_entries: 0xdead,
        domid: id,
        ..Default::default()
    };
    let cmd = if set {
        mem::SET_POD_TARGET
    } else {
        mem::GET_POD_TARGET
    };
    (memop(w, d, cmd, &t), w.get(d, ARG))
}

#[test]
fn xl_mem_set_s_pod_target_is_answered_as_xen_for_a_domain_without_populate_on_demand() {
    let w = world(true);
    let d0 = w.domain(0, DOM0);
    let u = w.domain(1, DOMU);
    let (max, tot) = {
        let m = u.mem.read();
        (m.max_pages, m.tot_pages)
    };
    assert!(tot > 0);
    // Within the maximum: nothing to do; its pages, no PoD cache or entries.
    for set in [true, false] {
        let (r, t) = pod(&w, &d0, set, 1, max / 2);
        assert_eq!(r, 0, "set {set}");
        assert_eq!(
            (
                t.target_pages,
                t.tot_pages,
                t.pod_cache_pages,
                t.pod_entries
            ),
            (max / 2, tot, 0, 0)
        );
    }
    assert_eq!(u.mem.read().tot_pages, tot, "no page taken or given");
    // Above the maximum: EINVAL, nothing written back.
    let (r, t) = pod(&w, &d0, true, 1, max + 1);
    assert_eq!(r, neg(errno::EINVAL));
    assert_eq!(t.tot_pages, 0xdead);
    // No such domain: ESRCH.
    assert_eq!(pod(&w, &d0, false, 9, 0).0, neg(errno::ESRCH));
    // A guest may not set dom0's (nor read it): denied, nothing written.
    for set in [true, false] {
        let (r, t) = pod(&w, &u, set, 0, 1);
        assert_eq!(r, neg(errno::EACCES), "set {set}");
        assert_eq!(t.tot_pages, 0xdead);
    }
    assert!(
        w.audit_lines()
            .iter()
            .any(|l| l.contains("{ setpodtarget }"))
    );
    // A domain with no memory yet (libxl's PoD mode for maxmem > memory):
    // refused, not pretended.
    let d = create(&w, &d0, 4096);
    assert_eq!(d.mem.read().tot_pages, 0);
    assert_eq!(pod(&w, &d0, true, d.id, 512).0, neg(errno::EOPNOTSUPP));
    assert_eq!(d.mem.read().tot_pages, 0);
}

#[test]
fn a_claim_reserves_memory_for_populate_and_goes_with_the_domain() {
    let w = world(true);
    let d0 = w.domain(0, DOM0);
    let u = w.domain(1, DOMU);
    let free = w.plat.mem.free_frames();
    let d = create(&w, &d0, 4096);
    let id = d.id;
    // Claims above the limit, not above the pages it has: EINVAL.
    assert_eq!(claim(&w, &d0, id, 1025), neg(errno::EINVAL));
    assert_eq!(claim(&w, &d0, id, 0x7ff0), neg(errno::EINVAL));
    // DOMID_SELF names no domain here.
    assert_eq!(
        claim(&w, &d0, warden_abi::DOMID_SELF, 8),
        neg(errno::EINVAL)
    );
    assert_eq!(claim(&w, &d0, id, 1024), 0);
    assert_eq!(physinfo(&w, &d0).outstanding_pages, 1024);
    let i: dc::GetDomainInfo = dc_on(&w, &d0, dc::GETDOMAININFO, id, &()).1.arg();
    assert_eq!(i.outstanding_pages, 1024);
    // One claim at a time.
    assert_eq!(claim(&w, &d0, id, 512), neg(errno::EINVAL));
    // A domU cannot claim, even for itself.
    assert_eq!(claim(&w, &u, 1, PAGES + 8), neg(errno::EACCES));
    assert_eq!(u.mem.read().outstanding, 0);
    // The claim shrinks as the domain is populated.
    let gfns: Vec<u64> = (0..4).map(|i| i * 512).collect();
    assert_eq!(populate(&w, &d0, id, &gfns[..1], 9), 1);
    assert_eq!(physinfo(&w, &d0).outstanding_pages, 512);
    // Claimed memory is not for others: with the rest of memory claimed
    // too, a domain without a claim cannot populate.
    let other = create(&w, &d0, 4 * w.plat.mem.free_frames());
    let rest = w.plat.mem.free_frames() - 512;
    assert_eq!(claim(&w, &d0, other.id, rest + 1), neg(errno::ENOMEM));
    assert_eq!(claim(&w, &d0, other.id, rest), 0);
    assert_eq!(
        populate(&w, &d0, 1, &[PAGES], 0),
        neg(errno::ENOMEM),
        "d1 has no claim"
    );
    assert_eq!(u.mem.read().tot_pages, PAGES);
    assert_eq!(
        populate(&w, &d0, id, &gfns[1..2], 9),
        1,
        "d{id} has its claim"
    );
    // 0 cancels; destroy cancels.
    assert_eq!(claim(&w, &d0, other.id, 0), 0);
    assert_eq!(physinfo(&w, &d0).outstanding_pages, 0);
    assert_eq!(
        claim(&w, &d0, id, 1024),
        neg(errno::EINVAL),
        "not above the pages it has"
    );
    assert_eq!(claim(&w, &d0, other.id, 64), 0);
    assert_eq!(physinfo(&w, &d0).outstanding_pages, 64);
    assert_eq!(destroy(&w, &d0, id), 0);
    assert_eq!(destroy(&w, &d0, other.id), 0);
    assert_eq!(physinfo(&w, &d0).outstanding_pages, 0);
    assert_eq!(w.plat.mem.free_frames(), free);
}

#[test]
fn the_control_domain_populates_1_gib_extents_a_domu_only_2_mib() {
    // 1 GiB and a bit for the extents, tables and the test domains.
    let w = world_sized(true, (1 << 18) + 4096);
    let d0 = w.domain(0, DOM0);
    let u = w.domain(1, DOMU);
    let free0 = w.plat.mem.free_frames();
    let d = create(&w, &d0, (1 << 20) + 8192);
    // libxc: 1 GiB extents first, then 2 MiB, then 4 KiB.
    assert_eq!(populate(&w, &d0, d.id, &[1 << 18], 18), 1);
    assert_eq!(populate(&w, &d0, d.id, &[0, 512], 9), 2);
    assert_eq!(populate(&w, &d0, d.id, &[1024, 1025], 0), 2);
    assert_eq!(d.mem.read().tot_pages, (1 << 18) + 1026);
    // Misaligned: nothing done.
    assert_eq!(populate(&w, &d0, d.id, &[2048 + 1], 9), neg(errno::EINVAL));
    // maximum_gpfn: the highest frame mapped.
    let r = memop(&w, &d0, mem::MAXIMUM_GPFN, &mem::DomidArg { domid: d.id });
    assert_eq!(r, (1 << 19) - 1);
    // A domU's extents stop at 2 MiB (Xen's max_order): nothing is done.
    u.mem.write().max_pages = 4096;
    assert_eq!(populate(&w, &u, warden_abi::DOMID_SELF, &[1 << 18], 18), 0);
    assert_eq!(populate(&w, &u, warden_abi::DOMID_SELF, &[1 << 10], 10), 0);
    assert_eq!(u.mem.read().tot_pages, PAGES);
    assert_eq!(populate(&w, &u, warden_abi::DOMID_SELF, &[1 << 9], 9), 1);
    assert_eq!(destroy(&w, &d0, d.id), 0);
    // All back but the domU's 2 MiB and its new page table.
    assert_eq!(w.plat.mem.free_frames(), free0 - 513);
}

#[test]
fn dom0_maps_a_domus_frames_and_they_live_until_unmapped() {
    let w = world(true);
    let d0 = w.domain(0, DOM0);
    let start = w.plat.mem.free_frames();
    let d = create(&w, &d0, 256);
    let id = d.id;
    assert_eq!(populate(&w, &d0, id, &[0, 1, 2, 3], 0), 4);
    w.hv.write_phys(&d, 0x2000, b"guest page 2").unwrap();
    // libxc loads the kernel through privcmd: MMAPBATCH_V2, one page per
    // call on x86, into unpopulated frames of dom0.
    let (r, errs) = map_foreign(&w, &d0, id, &[2], &[FOREIGN_GFN]);
    assert_eq!((r, errs), (0, alloc::vec![0]));
    let mut b = [0u8; 12];
    w.hv.read_phys(&d0, FOREIGN_GFN << 12, &mut b).unwrap();
    assert_eq!(&b, b"guest page 2");
    w.hv.write_phys(&d0, (FOREIGN_GFN << 12) + 0x100, b"from dom0")
        .unwrap();
    let mut b = [0u8; 9];
    w.hv.read_phys(&d, 0x2100, &mut b).unwrap();
    assert_eq!(&b, b"from dom0");
    // A batch: each page's result in its slot (Xen's errs array): RAM is
    // mapped, a hole (EINVAL), over an existing foreign mapping (ENXIO).
    let (r, errs) = map_foreign(
        &w,
        &d0,
        id,
        &[0, 9, 1, 3],
        &[
            FOREIGN_GFN + 1,
            FOREIGN_GFN + 2,
            FOREIGN_GFN,
            FOREIGN_GFN + 3,
        ],
    );
    assert_eq!(r, 0);
    assert_eq!(errs, [0, -errno::EINVAL, -errno::ENXIO, 0]);
    assert_eq!(
        w.hv.foreign_mappings(&d0, FOREIGN_GFN..FOREIGN_GFN + 4)
            .len(),
        3
    );
    // Mapping over dom0's own RAM gives that page up.
    let tot0 = d0.mem.read().tot_pages;
    let (_, errs) = map_foreign(&w, &d0, id, &[1], &[PAGES - 1]);
    assert_eq!(errs, [0]);
    assert_eq!(d0.mem.read().tot_pages, tot0 - 1);
    // Foreign mappings are the hardware domain's, of other domains.
    let (_, errs) = map_foreign(&w, &d0, 0, &[1], &[FOREIGN_GFN + 8]);
    assert_eq!(errs, [-errno::EPERM], "its own frames");
    let (_, errs) = map_foreign(&w, &d0, 77, &[1], &[FOREIGN_GFN + 8]);
    assert_eq!(errs, [-errno::ESRCH]);
    // The domain dies while dom0 maps four of its pages: they stay
    // allocated (and readable), the rest comes back.
    assert_eq!(dc_on(&w, &d0, dc::DESTROYDOMAIN, id, &()).0, 0);
    assert!(w.hv.domains.get(id).is_none());
    assert_eq!(w.hv.frame_refs.orphans(), 4);
    let mut b = [0u8; 12];
    w.hv.read_phys(&d0, FOREIGN_GFN << 12, &mut b).unwrap();
    assert_eq!(&b, b"guest page 2");
    let mapped: Vec<u64> =
        w.hv.foreign_mappings(&d0, 0..FOREIGN_GFN + 4)
            .iter()
            .map(|m| m.1)
            .collect();
    assert_eq!(mapped.len(), 4);
    assert!(mapped.iter().all(|&pa| !w.plat.mem.is_free(pa)));
    // privcmd's munmap: remove_from_physmap, page by page.
    for g in [FOREIGN_GFN, FOREIGN_GFN + 1, FOREIGN_GFN + 3, PAGES - 1] {
        assert_eq!(remove(&w, &d0, warden_abi::DOMID_SELF, g), 0, "gfn {g:#x}");
    }
    assert_eq!(
        remove(&w, &d0, warden_abi::DOMID_SELF, FOREIGN_GFN),
        neg(errno::ENOENT)
    );
    assert_eq!(w.hv.frame_refs.orphans(), 0);
    assert!(mapped.iter().all(|&pa| w.plat.mem.is_free(pa)));
    // Every frame is back (dom0 gave up one page and took one table frame
    // for its mappings' region).
    assert_eq!(w.plat.mem.free_frames(), start);
    assert!(w.audit_lines().is_empty(), "dom0 was refused nothing");
}

#[test]
fn foreign_mapping_refusals_change_nothing() {
    let w = world(true);
    let d0 = w.domain(0, DOM0);
    let u = w.domain(1, DOMU);
    let m = w.domain(2, UNLABELED);
    let state = |d: &Domain| {
        (
            d.mem.read().tot_pages,
            d.mem.read().p2m.as_ref().unwrap().mapped(),
        )
    };
    let s0 = (state(&d0), state(&u), state(&m));
    let free = w.plat.mem.free_frames();
    // dom0 may not map a domain the policy does not let it read: each
    // page refused (EACCES) with an avc line.
    let (r, errs) = map_foreign(&w, &d0, 2, &[0, 1], &[FOREIGN_GFN, FOREIGN_GFN + 1]);
    assert_eq!((r, errs), (0, alloc::vec![-errno::EACCES; 2]));
    let a = w.audit_lines();
    assert!(
        a.iter()
            .any(|l| l.contains("{ map_read map_write }") && l.contains("tclass=mmu")),
        "{a:?}"
    );
    // A domU is not the hardware domain: EPERM for each page.
    let (r, errs) = map_foreign(&w, &u, 0, &[0], &[FOREIGN_GFN]);
    assert_eq!((r, errs), (0, alloc::vec![-errno::EPERM]));
    // Nor may it change dom0's physmap: the batch is refused as a whole.
    w.put(&u, BUF + 0x800, &0x5555_5555u32);
    let r = memop(
        &w,
        &u,
        mem::ADD_TO_PHYSMAP_BATCH,
        &mem::AddToPhysmapBatch {
            domid: 0,
            space: mem::XENMAPSPACE_GMFN_FOREIGN as u16,
            size: 1,
            foreign_domid: 1,
            idxs: BUF,
            gpfns: BUF + 0x400,
            errs: BUF + 0x800,
        },
    );
    assert_eq!(r, neg(errno::EACCES));
    assert_eq!(
        w.get::<u32>(&u, BUF + 0x800),
        0x5555_5555,
        "no result written"
    );
    assert_eq!(remove(&w, &u, 0, 3), neg(errno::EACCES));
    assert_eq!(
        memop(&w, &u, mem::MAXIMUM_GPFN, &mem::DomidArg { domid: 0 }),
        neg(errno::EACCES)
    );
    assert_eq!((state(&d0), state(&u), state(&m)), s0);
    assert_eq!(w.plat.mem.free_frames(), free);
    // Foreign frames only through the batch form (Xen: ENOSYS).
    let single = mem::AddToPhysmap {
        domid: warden_abi::DOMID_SELF,
        space: mem::XENMAPSPACE_GMFN_FOREIGN,
        idx: 1,
        gpfn: FOREIGN_GFN,
        ..Default::default()
    };
    assert_eq!(
        memop(&w, &d0, mem::ADD_TO_PHYSMAP, &single),
        neg(errno::ENOSYS)
    );
    // Argument errors of the batch.
    let batch = mem::AddToPhysmapBatch {
        domid: warden_abi::DOMID_SELF,
        space: mem::XENMAPSPACE_GMFN_RANGE as u16,
        size: 1,
        foreign_domid: 0,
        idxs: BUF,
        gpfns: BUF + 0x400,
        errs: BUF + 0x800,
    };
    let r = memop(&w, &d0, mem::ADD_TO_PHYSMAP_BATCH, &batch);
    assert_eq!(r, neg(errno::EOPNOTSUPP));
    let r = memop(
        &w,
        &d0,
        mem::ADD_TO_PHYSMAP_BATCH,
        &mem::AddToPhysmapBatch {
            size: 0,
            space: mem::XENMAPSPACE_GMFN_FOREIGN as u16,
            ..batch
        },
    );
    assert_eq!(r, 0, "an empty batch");
    w.put(&d0, BUF + 0x400, &u64::MAX);
    let r = memop(
        &w,
        &d0,
        mem::ADD_TO_PHYSMAP_BATCH,
        &mem::AddToPhysmapBatch {
            space: mem::XENMAPSPACE_GMFN_FOREIGN as u16,
            foreign_domid: 1,
            ..batch
        },
    );
    assert_eq!(r, neg(errno::EINVAL), "an invalid gfn");
    assert_eq!((state(&d0), state(&u), state(&m)), s0);
}

#[test]
fn a_destroyed_mapper_drops_its_references() {
    let w = world(true);
    let d0 = w.domain(0, DOM0);
    let d = create(&w, &d0, 256);
    assert_eq!(populate(&w, &d0, d.id, &[0, 1], 0), 2);
    assert_eq!(
        map_foreign(&w, &d0, d.id, &[0, 1], &[FOREIGN_GFN, FOREIGN_GFN + 1]).1,
        [0, 0]
    );
    let pa = w.hv.foreign_mappings(&d0, FOREIGN_GFN..FOREIGN_GFN + 1)[0].1;
    assert_eq!(w.hv.frame_refs.foreign_refs(pa), 1);
    // The mapper goes first: the domU keeps its pages.
    w.hv.destroy(&d0);
    assert_eq!(w.hv.frame_refs.foreign_refs(pa), 0);
    assert!(!w.plat.mem.is_free(pa));
    assert_eq!(d.mem.read().tot_pages, 2);
    let free = w.plat.mem.free_frames();
    w.hv.destroy(&d);
    assert!(w.plat.mem.is_free(pa));
    assert!(w.plat.mem.free_frames() > free + 2);
}

#[test]
fn a_frame_both_granted_and_foreign_mapped_is_freed_once_by_the_last_user() {
    let w = world(true);
    let d0 = w.domain(0, DOM0);
    let u = w.domain(1, DOMU);
    // The domU grants page 5 to dom0 in its table (mapped at gfn 40).
    let a = mem::AddToPhysmap {
        domid: warden_abi::DOMID_SELF,
        space: mem::XENMAPSPACE_GRANT_TABLE,
        gpfn: 40,
        ..Default::default()
    };
    assert_eq!(memop(&w, &u, mem::ADD_TO_PHYSMAP, &a), 0);
    let e = gt::GrantEntryV1 {
        flags: gt::GTF_PERMIT_ACCESS,
        domid: 0,
        frame: 5,
    };
    w.put(&u, (40 << 12) + 8 * 3, &e);
    let map = gt::MapGrantRef {
        host_addr: (FOREIGN_GFN + 1) << 12,
        flags: gt::GNTMAP_HOST_MAP,
        ref_: 3,
        dom: 1,
        ..Default::default()
    };
    w.put(&d0, ARG, &map);
    assert_eq!(
        w.call(
            &d0,
            hc::GRANT_TABLE_OP,
            [gt::MAP_GRANT_REF as u64, ARG, 1, 0, 0]
        ),
        0
    );
    let m: gt::MapGrantRef = w.get(&d0, ARG);
    assert_eq!(m.status, gt::GNTST_OKAY);
    assert_eq!(map_foreign(&w, &d0, 1, &[5], &[FOREIGN_GFN]).1, [0]);
    let pa = w.hv.foreign_mappings(&d0, FOREIGN_GFN..FOREIGN_GFN + 1)[0].1;
    // The domU gives the page up (balloon): both keep it.
    let r = mem::Reservation {
        extent_start: BUF,
        nr_extents: 1,
        domid: warden_abi::DOMID_SELF,
        ..Default::default()
    };
    w.put(&u, BUF, &5u64);
    assert_eq!(memop(&w, &u, mem::DECREASE_RESERVATION, &r), 1);
    assert!(!w.plat.mem.is_free(pa));
    // The grant goes first, then the foreign mapping frees it.
    let un = gt::UnmapGrantRef {
        host_addr: (FOREIGN_GFN + 1) << 12,
        handle: m.handle,
        ..Default::default()
    };
    w.put(&d0, ARG, &un);
    assert_eq!(
        w.call(
            &d0,
            hc::GRANT_TABLE_OP,
            [gt::UNMAP_GRANT_REF as u64, ARG, 1, 0, 0]
        ),
        0
    );
    assert!(!w.plat.mem.is_free(pa), "still foreign-mapped");
    assert_eq!(remove(&w, &d0, warden_abi::DOMID_SELF, FOREIGN_GFN), 0);
    assert!(w.plat.mem.is_free(pa), "freed by the last user, once");
}

#[test]
fn remove_from_physmap_gives_up_ram_and_unhooks_the_hypervisors_pages() {
    let w = world(true);
    let u = w.domain(1, DOMU);
    let tot = u.mem.read().tot_pages;
    let pa = u
        .mem
        .read()
        .p2m
        .as_ref()
        .unwrap()
        .lookup(w.hv.platform.mem(), 7)
        .unwrap();
    assert_eq!(remove(&w, &u, warden_abi::DOMID_SELF, 7), 0);
    assert_eq!(u.mem.read().tot_pages, tot - 1);
    assert!(w.plat.mem.is_free(pa));
    assert_eq!(
        remove(&w, &u, warden_abi::DOMID_SELF, 7),
        neg(errno::ENOENT)
    );
    // The shared_info page leaves the physmap, and is still the domain's.
    let a = mem::AddToPhysmap {
        domid: warden_abi::DOMID_SELF,
        space: mem::XENMAPSPACE_SHARED_INFO,
        gpfn: 0x200,
        ..Default::default()
    };
    assert_eq!(memop(&w, &u, mem::ADD_TO_PHYSMAP, &a), 0);
    assert_eq!(u.shared_info.gfn(), Some(0x200));
    assert_eq!(remove(&w, &u, warden_abi::DOMID_SELF, 0x200), 0);
    assert_eq!(u.shared_info.gfn(), None);
    assert!(u.shared_info.frame().is_some());
    let r = memop(
        &w,
        &u,
        mem::MAXIMUM_GPFN,
        &mem::DomidArg {
            domid: warden_abi::DOMID_SELF,
        },
    );
    assert_eq!(r, 0x200, "the highest frame ever mapped");
}

// ------------------------------------------------------- acquire_resource

#[test]
fn libxl_seeds_grant_entries_through_acquire_resource() {
    let w = world(true);
    let d0 = w.domain(0, DOM0);
    let d = create(&w, &d0, 256);
    let id = d.id;
    // The size query.
    let (r, a) = acquire(&w, &d0, &grant_table(id, 0, 0));
    assert_eq!((r, a.nr_frames), (0, 64));
    // Frame 0 mapped at one of dom0's free frames.
    w.put(&d0, BUF, &FOREIGN_GFN);
    assert_eq!(acquire(&w, &d0, &grant_table(id, 1, BUF)).0, 0);
    // libxl writes entries 0 (console) and 1 (xenstore), domid 0.
    for (gref, frame) in [(0u64, 0xfefffu32), (1, 0xfeffc)] {
        let e = gt::GrantEntryV1 {
            flags: gt::GTF_PERMIT_ACCESS,
            domid: 0,
            frame,
        };
        w.put(&d0, (FOREIGN_GFN << 12) + 8 * gref, &e);
    }
    let e = d.gnttab.read_entry(w.hv.platform.mem(), 1).unwrap();
    assert_eq!(
        (e.flags, e.domid, e.frame),
        (gt::GTF_PERMIT_ACCESS, 0, 0xfeffc)
    );
    // The same frame again at the same place: nothing to do.
    assert_eq!(acquire(&w, &d0, &grant_table(id, 1, BUF)).0, 0);
    // Refusals: arguments, resources Warden lacks, the caller itself.
    let base = grant_table(id, 1, BUF);
    for (what, a, e) in [
        (
            "pad",
            mem::AcquireResource { pad: 1, ..base },
            errno::EINVAL,
        ),
        (
            "frame above 32 bits",
            mem::AcquireResource {
                frame: 1 << 32,
                ..base
            },
            errno::EINVAL,
        ),
        (
            "beyond the table",
            mem::AcquireResource { frame: 64, ..base },
            errno::EINVAL,
        ),
        (
            "status frames (v2)",
            mem::AcquireResource { id: 1, ..base },
            errno::EINVAL,
        ),
        (
            "ioreq server",
            mem::AcquireResource { kind: 0, ..base },
            errno::EINVAL,
        ),
        (
            "vmtrace",
            mem::AcquireResource { kind: 2, ..base },
            errno::EINVAL,
        ),
        (
            "unknown type",
            mem::AcquireResource { kind: 9, ..base },
            errno::EOPNOTSUPP,
        ),
        (
            "DOMID_SELF",
            mem::AcquireResource {
                domid: warden_abi::DOMID_SELF,
                ..base
            },
            errno::ESRCH,
        ),
        (
            "itself",
            mem::AcquireResource { domid: 0, ..base },
            errno::EPERM,
        ),
        (
            "size query with frames",
            mem::AcquireResource {
                frame_list: 0,
                ..base
            },
            errno::EINVAL,
        ),
    ] {
        assert_eq!(acquire(&w, &d0, &a).0, neg(e), "{what}");
    }
    // Over another mapping: refused.
    w.put(&d0, BUF, &FOREIGN_GFN);
    let r = acquire(&w, &d0, &mem::AcquireResource { frame: 1, ..base }).0;
    assert_eq!(r, neg(errno::EPERM));
    // A domU may not: EACCES before anything is read (Xen's
    // arch_acquire_resource_check), no avc line.
    let u = w.domain(5, DOMU);
    w.audit_lines();
    assert_eq!(
        acquire(&w, &u, &grant_table(id, 0, 0)).0,
        neg(errno::EACCES)
    );
    assert!(w.audit_lines().is_empty());
    // The policy refuses dom0 the unlabeled domain's table.
    let m = w.domain(6, UNLABELED);
    w.put(&d0, BUF, &(FOREIGN_GFN + 1));
    assert_eq!(
        acquire(&w, &d0, &grant_table(6, 1, BUF)).0,
        neg(errno::EACCES)
    );
    assert!(
        w.audit_lines()
            .iter()
            .any(|l| l.contains("{ resource_map }"))
    );
    assert!(
        w.hv.foreign_mappings(&d0, FOREIGN_GFN + 1..FOREIGN_GFN + 2)
            .is_empty()
    );
    let _ = m;
    // The domain dies: its table frame stays while dom0 maps it.
    let free = w.plat.mem.free_frames();
    assert_eq!(dc_on(&w, &d0, dc::DESTROYDOMAIN, id, &()).0, 0);
    let pa = w.hv.foreign_mappings(&d0, FOREIGN_GFN..FOREIGN_GFN + 1)[0].1;
    assert!(!w.plat.mem.is_free(pa));
    assert_eq!(
        w.get::<gt::GrantEntryV1>(&d0, (FOREIGN_GFN << 12) + 8)
            .frame,
        0xfeffc
    );
    let after = w.plat.mem.free_frames();
    assert_eq!(remove(&w, &d0, warden_abi::DOMID_SELF, FOREIGN_GFN), 0);
    assert!(w.plat.mem.is_free(pa));
    assert_eq!(w.plat.mem.free_frames(), after + 1);
    assert!(after > free);
}

// ------------------------------------------ introduction to xenstored/xenconsoled

#[test]
fn xl_create_then_xenstored_and_xenconsoled_introduce_the_domain() {
    let w = world(true);
    let d0 = w.domain(0, DOM0);
    let d = create(&w, &d0, 256);
    let id = d.id;
    // Step 8: two unbound ports in the new domain for dom0 (xenstore, console).
    let alloc = |w: &World| {
        let a = ec::AllocUnbound {
            dom: id,
            remote_dom: 0,
            port: 0,
        };
        w.put(&d0, ARG, &a);
        let r = w.call(
            &d0,
            hc::EVENT_CHANNEL_OP,
            [ec::ALLOC_UNBOUND as u64, ARG, 0, 0, 0],
        );
        assert_eq!(r, 0, "alloc_unbound in d{id}");
        w.get::<ec::AllocUnbound>(&d0, ARG).port
    };
    let store_port = alloc(&w);
    let console_port = alloc(&w);
    // Steps 9, 23, 25: the parameters libxl sets.
    let set = |index: u32, value: u64| {
        let p = warden_abi::hvm::HvmParam {
            domid: id,
            pad: 0,
            index,
            value,
        };
        w.put(&d0, ARG, &p);
        w.call(
            &d0,
            hc::HVM_OP,
            [warden_abi::hvm::SET_PARAM as u64, ARG, 0, 0, 0],
        )
    };
    for (i, v) in [
        (hp::TIMER_MODE, 1),
        (hp::ALTP2M, 0),
        (hp::STORE_PFN, 0xfeffc),
        (hp::CONSOLE_PFN, 0xfefff),
        (hp::STORE_EVTCHN, store_port as u64),
        (hp::CONSOLE_EVTCHN, console_port as u64),
    ] {
        assert_eq!(set(i, v), 0, "param {i}");
    }
    // altp2m itself is not offered.
    assert_eq!(set(hp::ALTP2M, 1), neg(errno::EOPNOTSUPP));
    // Step 22: the special pages; step 28: grant entries 0 and 1.
    assert_eq!(
        populate(&w, &d0, id, &(0xfeff8..0xff000).collect::<Vec<_>>(), 0),
        8
    );
    w.put(&d0, BUF, &FOREIGN_GFN);
    assert_eq!(acquire(&w, &d0, &grant_table(id, 1, BUF)).0, 0);
    for (gref, frame) in [(0u64, 0xfefffu32), (1, 0xfeffc)] {
        let e = gt::GrantEntryV1 {
            flags: gt::GTF_PERMIT_ACCESS,
            domid: 0,
            frame,
        };
        w.put(&d0, (FOREIGN_GFN << 12) + 8 * gref, &e);
    }
    assert_eq!(remove(&w, &d0, warden_abi::DOMID_SELF, FOREIGN_GFN), 0);
    w.hv.write_phys(&d, 0xfeffc << 12, b"xenstore ring")
        .unwrap();
    // xenstored at XS_INTRODUCE: getdomaininfo, map grant ref 1, bind.
    assert_eq!(dc_on(&w, &d0, dc::GETDOMAININFO, id, &()).0, 0);
    let map = |gref: u32, gfn: u64| {
        let m = gt::MapGrantRef {
            host_addr: gfn << 12,
            flags: gt::GNTMAP_HOST_MAP,
            ref_: gref,
            dom: id,
            ..Default::default()
        };
        w.put(&d0, ARG, &m);
        let r = w.call(
            &d0,
            hc::GRANT_TABLE_OP,
            [gt::MAP_GRANT_REF as u64, ARG, 1, 0, 0],
        );
        assert_eq!(r, 0);
        w.get::<gt::MapGrantRef>(&d0, ARG).status
    };
    assert_eq!(map(1, FOREIGN_GFN + 1), gt::GNTST_OKAY);
    let mut b = [0u8; 13];
    w.hv.read_phys(&d0, (FOREIGN_GFN + 1) << 12, &mut b)
        .unwrap();
    assert_eq!(&b, b"xenstore ring");
    let bind = |port: u32| {
        let a = ec::BindInterdomain {
            remote_dom: id,
            pad: 0,
            remote_port: port,
            local_port: 0,
        };
        w.put(&d0, ARG, &a);
        let r = w.call(
            &d0,
            hc::EVENT_CHANNEL_OP,
            [ec::BIND_INTERDOMAIN as u64, ARG, 0, 0, 0],
        );
        (r, w.get::<ec::BindInterdomain>(&d0, ARG).local_port)
    };
    let (r, local) = bind(store_port);
    assert_eq!(r, 0);
    let send = ec::Send { port: local };
    w.put(&d0, ARG, &send);
    assert_eq!(
        w.call(&d0, hc::EVENT_CHANNEL_OP, [ec::SEND as u64, ARG, 0, 0, 0]),
        0
    );
    // xenconsoled: grant ref 0 (GNTTAB_RESERVED_CONSOLE), the console port.
    assert_eq!(map(0, FOREIGN_GFN + 2), gt::GNTST_OKAY);
    assert_eq!(bind(console_port).0, 0);
    // The guest sees its store and console as libxl set them.
    let get = |index: u32| {
        let p = warden_abi::hvm::HvmParam {
            domid: warden_abi::DOMID_SELF,
            pad: 0,
            index,
            value: 0,
        };
        w.put(&d, 0xfeff8 << 12, &p);
        let r = w.call(
            &d,
            hc::HVM_OP,
            [warden_abi::hvm::GET_PARAM as u64, 0xfeff8 << 12, 0, 0, 0],
        );
        assert_eq!(r, 0);
        w.get::<warden_abi::hvm::HvmParam>(&d, 0xfeff8 << 12).value
    };
    assert_eq!(get(hp::STORE_PFN), 0xfeffc);
    assert_eq!(get(hp::STORE_EVTCHN), store_port as u64);
    assert_eq!(get(hp::CONSOLE_EVTCHN), console_port as u64);
    assert!(w.audit_lines().is_empty(), "nothing was refused");
}
