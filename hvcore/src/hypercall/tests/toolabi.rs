//! Issue 11 §2: domctl and sysctl as Xen 4.17's toolstack ABI (interface
//! version 0x15, 4.17's layouts and semantics), through the dispatcher
//! (FLASK enforcing, the default policy).

use super::*;
use warden_abi::hypercall as hc;

const DOM0: &str = "system_u:system_r:dom0_t";
const UNLABELED: &str = "system_u:system_r:unlabeled_t";

fn domctl(w: &World, d: &Domain, op: &dc::Domctl) -> (i64, dc::Domctl) {
    w.put(d, ARG, op);
    let r = w.call(d, hc::DOMCTL, [ARG, 0, 0, 0, 0]);
    (r, w.get(d, ARG))
}

fn sysctl(w: &World, d: &Domain, op: &sc::Sysctl) -> (i64, sc::Sysctl) {
    w.put(d, ARG, op);
    let r = w.call(d, hc::SYSCTL, [ARG, 0, 0, 0, 0]);
    (r, w.get(d, ARG))
}

fn pvh(ssidref: u32, vcpus: u32) -> dc::CreateDomain {
    dc::CreateDomain {
        ssidref,
        flags: dc::CDF_HVM | dc::CDF_HAP,
        max_vcpus: vcpus,
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

fn neg(e: i32) -> i64 {
    -(e as i64)
}

#[test]
fn another_interface_version_is_refused_with_eacces_before_anything() {
    let w = world(true);
    let d0 = w.domain(0, DOM0);
    let m = w.domain(1, UNLABELED);
    for (v, who) in [(0x14u32, &d0), (0x5744_0001, &d0), (0x16, &m)] {
        let mut op = dc::Domctl::new(dc::PAUSEDOMAIN, 1, &());
        op.interface_version = v;
        assert_eq!(domctl(&w, who, &op).0, neg(errno::EACCES), "domctl {v:#x}");
        let mut op = sc::Sysctl::new(sc::PHYSINFO, &());
        op.interface_version = v;
        let (r, back) = sysctl(&w, who, &op);
        assert_eq!(r, neg(errno::EACCES), "sysctl {v:#x}");
        // Nothing was answered, and no check ran (no audit record).
        assert_eq!(back.arg::<sc::PhysInfo>().nr_cpus, 0);
    }
    assert!(
        w.audit_lines().is_empty(),
        "a version mismatch is not checked"
    );
    let f = w.hv.sched.domain_state(1, 0).unwrap();
    assert_eq!(f.pause, 0, "nothing was paused");
}

#[test]
fn getdomaininfo_answers_the_first_domain_at_or_after_the_id() {
    let w = world(true);
    let d0 = w.domain(0, DOM0);
    let _d2 = w.domain(2, DOMU);
    let _d5 = w.domain(5, DOMU);
    for (ask, found) in [(0u16, 0u16), (1, 2), (2, 2), (3, 5), (5, 5)] {
        let (r, op) = domctl(&w, &d0, &dc::Domctl::new(dc::GETDOMAININFO, ask, &()));
        assert_eq!(r, 0, "getdomaininfo {ask}");
        let i: dc::GetDomainInfo = op.arg();
        assert_eq!((op.domain, i.domain), (found, found), "asked {ask}");
    }
    let (r, _) = domctl(&w, &d0, &dc::Domctl::new(dc::GETDOMAININFO, 6, &()));
    assert_eq!(r, neg(errno::ESRCH), "past the last domain");
    let (r, _) = domctl(
        &w,
        &d0,
        &dc::Domctl::new(dc::GETDOMAININFO, warden_abi::DOMID_SELF, &()),
    );
    assert_eq!(r, neg(errno::EINVAL), "a reserved id");
    // The fields of 4.17's structure.
    let (_, op) = domctl(&w, &d0, &dc::Domctl::new(dc::GETDOMAININFO, 2, &()));
    let i: dc::GetDomainInfo = op.arg();
    assert_eq!(i.tot_pages, PAGES);
    assert_eq!(i.max_pages, PAGES);
    assert_eq!(i.nr_online_vcpus, 1);
    assert_eq!(i.max_vcpu_id, 0);
    assert_eq!(i.ssidref, w.sid(DOMU));
    assert_eq!(i.handle, [2; 16]);
    assert_eq!(i.arch_config.emulation_flags, dc::X86_EMU_LAPIC);
    assert_eq!(i.gpaddr_bits, 36);
    assert_eq!(i.flags & dc::DOMINF_HVM_GUEST, dc::DOMINF_HVM_GUEST);
    assert_eq!(i.flags & dc::DOMINF_HAP, dc::DOMINF_HAP);
    assert_eq!(i.flags & (dc::DOMINF_SHUTDOWN | dc::DOMINF_DYING), 0);
    // Xen 4.17 ORs in SHUTDOWN_CODE_INVALID (~0) while no shutdown happened.
    assert_eq!(i.flags >> dc::DOMINF_SHUTDOWN_SHIFT, 0xffff);
    assert_eq!(i.shared_info_frame, u64::MAX, "shared_info not mapped");
    // A denial of the domain found ends the walk there (no skipping): the
    // unlabeled domain 3 is refused to dom0.
    let _m = w.domain(3, UNLABELED);
    w.audit_lines();
    let (r, _) = domctl(&w, &d0, &dc::Domctl::new(dc::GETDOMAININFO, 3, &()));
    assert_eq!(r, neg(errno::EACCES));
    assert!(
        w.audit_lines()
            .iter()
            .any(|l| l.contains("{ getdomaininfo }"))
    );
}

#[test]
fn createdomain_takes_xen_4_17s_structure_and_max_vcpus_repeats_its_number() {
    let w = world(true);
    let d0 = w.domain(0, DOM0);
    let domu = w.sid(DOMU);
    let free0 = w.hv.platform.mem().free_frames();
    // Refusals in Xen's order, with its errnos; nothing is created.
    let cases: &[(&str, dc::CreateDomain, i32)] = &[
        (
            "unknown flag",
            dc::CreateDomain {
                flags: dc::CDF_HVM | dc::CDF_HAP | 1 << 8,
                ..pvh(domu, 1)
            },
            errno::EINVAL,
        ),
        (
            "unknown grant option",
            dc::CreateDomain {
                grant_opts: 0x11,
                ..pvh(domu, 1)
            },
            errno::EINVAL,
        ),
        ("no vCPU", pvh(domu, 0), errno::EINVAL),
        (
            "HAP without HVM",
            dc::CreateDomain {
                flags: dc::CDF_HAP,
                ..pvh(domu, 1)
            },
            errno::EINVAL,
        ),
        (
            "IOMMU",
            dc::CreateDomain {
                flags: dc::CDF_HVM | dc::CDF_HAP | dc::CDF_IOMMU,
                ..pvh(domu, 1)
            },
            errno::EINVAL,
        ),
        (
            "IOMMU options without IOMMU",
            dc::CreateDomain {
                iommu_opts: 1,
                ..pvh(domu, 1)
            },
            errno::EINVAL,
        ),
        (
            "vmtrace",
            dc::CreateDomain {
                vmtrace_size: 4096,
                ..pvh(domu, 1)
            },
            errno::EINVAL,
        ),
        (
            "vPMU",
            dc::CreateDomain {
                flags: dc::CDF_HVM | dc::CDF_HAP | dc::CDF_VPMU,
                ..pvh(domu, 1)
            },
            errno::EINVAL,
        ),
        (
            "PV",
            dc::CreateDomain {
                flags: 0,
                ..pvh(domu, 1)
            },
            errno::EINVAL,
        ),
        ("129 vCPUs", pvh(domu, 129), errno::EINVAL),
        ("65 vCPUs (Warden's limit)", pvh(domu, 65), errno::EINVAL),
        (
            "S3 integrity",
            dc::CreateDomain {
                flags: dc::CDF_HVM | dc::CDF_HAP | dc::CDF_S3_INTEGRITY,
                ..pvh(domu, 1)
            },
            errno::EINVAL,
        ),
        (
            "nested virt without HAP",
            dc::CreateDomain {
                flags: dc::CDF_HVM | dc::CDF_NESTED_VIRT,
                ..pvh(domu, 1)
            },
            errno::EINVAL,
        ),
        (
            "unknown misc flag",
            dc::CreateDomain {
                arch: dc::ArchDomainConfig {
                    emulation_flags: dc::X86_EMU_LAPIC,
                    misc_flags: 2,
                },
                ..pvh(domu, 1)
            },
            errno::EINVAL,
        ),
        (
            "unknown emulator",
            dc::CreateDomain {
                arch: dc::ArchDomainConfig {
                    emulation_flags: 1 << 11,
                    misc_flags: 0,
                },
                ..pvh(domu, 1)
            },
            errno::EINVAL,
        ),
        (
            "full HVM devices",
            dc::CreateDomain {
                arch: dc::ArchDomainConfig {
                    emulation_flags: dc::X86_EMU_ALL & !dc::X86_EMU_VPCI,
                    misc_flags: 0,
                },
                ..pvh(domu, 1)
            },
            errno::EOPNOTSUPP,
        ),
        (
            "LAPIC and PIT",
            dc::CreateDomain {
                arch: dc::ArchDomainConfig {
                    emulation_flags: dc::X86_EMU_LAPIC | dc::X86_EMU_PIT,
                    misc_flags: 0,
                },
                ..pvh(domu, 1)
            },
            errno::EOPNOTSUPP,
        ),
        (
            "hardware domain's emulators",
            dc::CreateDomain {
                arch: dc::ArchDomainConfig {
                    emulation_flags: dc::X86_EMU_LAPIC | dc::X86_EMU_IOAPIC | dc::X86_EMU_VPCI,
                    misc_flags: 0,
                },
                ..pvh(domu, 1)
            },
            errno::EOPNOTSUPP,
        ),
        (
            "shadow paging",
            dc::CreateDomain {
                flags: dc::CDF_HVM,
                ..pvh(domu, 1)
            },
            errno::EOPNOTSUPP,
        ),
        (
            "nested virt",
            dc::CreateDomain {
                flags: dc::CDF_HVM | dc::CDF_HAP | dc::CDF_NESTED_VIRT,
                ..pvh(domu, 1)
            },
            errno::EOPNOTSUPP,
        ),
        (
            "relaxed MSRs",
            dc::CreateDomain {
                arch: dc::ArchDomainConfig {
                    emulation_flags: dc::X86_EMU_LAPIC,
                    misc_flags: dc::X86_MSR_RELAXED,
                },
                ..pvh(domu, 1)
            },
            errno::EOPNOTSUPP,
        ),
        (
            "grant version 0",
            dc::CreateDomain {
                grant_opts: 0,
                ..pvh(domu, 1)
            },
            errno::EINVAL,
        ),
        (
            "grant version 2",
            dc::CreateDomain {
                grant_opts: 2,
                ..pvh(domu, 1)
            },
            errno::EINVAL,
        ),
        (
            "0 grant frames",
            dc::CreateDomain {
                max_grant_frames: 0,
                ..pvh(domu, 1)
            },
            errno::EINVAL,
        ),
        (
            "65 grant frames",
            dc::CreateDomain {
                max_grant_frames: 65,
                ..pvh(domu, 1)
            },
            errno::EINVAL,
        ),
        (
            "1025 maptrack frames",
            dc::CreateDomain {
                max_maptrack_frames: 1025,
                ..pvh(domu, 1)
            },
            errno::EINVAL,
        ),
        (
            "CPU pool 1",
            dc::CreateDomain {
                cpupool_id: 1,
                ..pvh(domu, 1)
            },
            errno::ESRCH,
        ),
    ];
    for (what, a, e) in cases {
        let (r, _) = domctl(&w, &d0, &dc::Domctl::new(dc::CREATEDOMAIN, 0, a));
        assert_eq!(r, neg(*e), "{what}");
    }
    assert_eq!(
        w.hv.domains.snapshots_from(1).count(),
        0,
        "nothing was created"
    );
    assert_eq!(w.hv.platform.mem().free_frames(), free0);
    // libxl's PVH domU: created paused, labelled, without vCPUs until max_vcpus.
    let mut a = pvh(domu, 2);
    a.handle = [7; 16];
    a.max_evtchn_port = 63;
    a.max_grant_frames = 2;
    a.flags |= dc::CDF_XS_DOMAIN;
    let (r, op) = domctl(&w, &d0, &dc::Domctl::new(dc::CREATEDOMAIN, 0, &a));
    assert_eq!(r, 0);
    let id = op.domain;
    assert!(id != 0 && id < warden_abi::DOMID_FIRST_RESERVED);
    let d = w.hv.domains.get(id).expect("created");
    assert_eq!(*d.handle.lock(), [7; 16]);
    assert_eq!(d.gnttab.max_frames(), 2);
    let (_, op) = domctl(&w, &d0, &dc::Domctl::new(dc::GETDOMAININFO, id, &()));
    let i: dc::GetDomainInfo = op.arg();
    assert_eq!(i.ssidref, domu);
    assert_eq!(i.nr_online_vcpus, 0);
    assert_eq!(i.max_vcpu_id, dc::INVALID_MAX_VCPU_ID);
    assert_ne!(i.flags & dc::DOMINF_PAUSED, 0, "created paused");
    assert_ne!(i.flags & dc::DOMINF_XS_DOMAIN, 0);
    assert_eq!(i.flags & (dc::DOMINF_RUNNING | dc::DOMINF_BLOCKED), 0);
    // max_vcpus must repeat createdomain's number.
    for n in [1u32, 3] {
        let (r, _) = domctl(
            &w,
            &d0,
            &dc::Domctl::new(dc::MAX_VCPUS, id, &dc::MaxVcpus { max: n }),
        );
        assert_eq!(r, neg(errno::EINVAL), "max_vcpus {n}");
        assert_eq!(d.nr_vcpus(), 0);
    }
    let (r, _) = domctl(
        &w,
        &d0,
        &dc::Domctl::new(dc::MAX_VCPUS, id, &dc::MaxVcpus { max: 2 }),
    );
    assert_eq!(r, 0);
    assert_eq!(d.nr_vcpus(), 2);
    // max_mem as Xen: clamped to a 32-bit page count, never refused.
    let (r, _) = domctl(
        &w,
        &d0,
        &dc::Domctl::new(
            dc::MAX_MEM,
            id,
            &dc::MaxMem {
                max_memkb: u64::MAX,
            },
        ),
    );
    assert_eq!(r, 0);
    assert_eq!(d.mem.read().max_pages, u64::from(u32::MAX));
    let (r, _) = domctl(
        &w,
        &d0,
        &dc::Domctl::new(dc::MAX_MEM, id, &dc::MaxMem { max_memkb: 4096 }),
    );
    assert_eq!((r, d.mem.read().max_pages), (0, 1024));
    // Event-channel ports beyond max_evtchn_port are refused (ENOSPC).
    for _ in 1..=63 {
        w.hv.evtchn_alloc_unbound(&d, 0, 0)
            .expect("a port up to 63");
    }
    assert_eq!(w.hv.evtchn_alloc_unbound(&d, 0, 0), Err(errno::ENOSPC));
    // A null ssidref is `unlabeled`, which dom0 may not create.
    w.audit_lines();
    let (r, _) = domctl(&w, &d0, &dc::Domctl::new(dc::CREATEDOMAIN, 0, &pvh(0, 1)));
    assert_eq!(r, neg(errno::EACCES));
    assert!(
        w.audit_lines()
            .iter()
            .any(|l| l.contains("{ create }") && l.contains("unlabeled_t")),
        "checked against unlabeled_t"
    );
    // The dom0 label is a singleton.
    let (r, _) = domctl(
        &w,
        &d0,
        &dc::Domctl::new(dc::CREATEDOMAIN, 0, &pvh(w.sid(DOM0), 1)),
    );
    assert!(r < 0, "a second dom0_t: {r}");
}

#[test]
fn getdomaininfolist_checks_dom_xen_then_each_domain() {
    let w = world(true);
    let d0 = w.domain(0, DOM0);
    let d1 = w.domain(1, DOMU);
    let _m = w.domain(2, UNLABELED);
    let _d3 = w.domain(3, DOMU);
    let list = |who: &Domain, first: u16, max: u32| {
        let a = sc::GetDomainInfoList {
            first_domain: first,
            max_domains: max,
            buffer: BUF,
            ..Default::default()
        };
        let (r, op) = sysctl(&w, who, &sc::Sysctl::new(sc::GETDOMAININFOLIST, &a));
        let n = op.arg::<sc::GetDomainInfoList>().num_domains;
        let ids: Vec<u16> = (0..n as u64)
            .map(|i| w.get::<dc::GetDomainInfo>(who, BUF + i * 112).domain)
            .collect();
        (r, ids)
    };
    w.audit_lines();
    // dom0: every domain but the one it may not see (skipped, audited).
    assert_eq!(list(&d0, 0, 16), (0, alloc::vec![0, 1, 3]));
    let a = w.audit_lines();
    assert!(
        a.iter()
            .any(|l| l.contains("{ getdomaininfo }") && l.contains("unlabeled_t"))
    );
    assert_eq!(list(&d0, 1, 16), (0, alloc::vec![1, 3]));
    assert_eq!(list(&d0, 0, 2), (0, alloc::vec![0, 1]));
    // A domU may not list domains at all (domxen_t), not even itself.
    let (r, ids) = list(&d1, 0, 16);
    assert_eq!((r, ids.len()), (neg(errno::EACCES), 0));
    assert!(
        w.audit_lines()
            .iter()
            .any(|l| l.contains("domxen_t") && l.contains("{ getdomaininfo }"))
    );
}

#[test]
fn physinfo_sched_id_cpupool_and_topology_say_what_warden_provides() {
    let w = world(true);
    let d0 = w.domain(0, DOM0);
    let d1 = w.domain(1, DOMU);
    let (r, op) = sysctl(&w, &d0, &sc::Sysctl::new(sc::PHYSINFO, &()));
    assert_eq!(r, 0);
    let p: sc::PhysInfo = op.arg();
    let cpus = w.hv.platform.nr_cpus();
    assert_eq!(p.nr_cpus, cpus);
    assert_eq!(p.max_cpu_id, cpus - 1);
    assert_eq!(p.threads_per_core * p.cores_per_socket, cpus);
    assert_eq!(p.nr_nodes, 1);
    assert_eq!(
        p.capabilities,
        sc::PHYSCAP_HVM | sc::PHYSCAP_HAP | sc::PHYSCAP_GNTTAB_V1
    );
    assert_eq!(p.total_pages, w.hv.platform.mem().total_frames());
    assert_eq!(p.free_pages, w.hv.platform.mem().free_frames());
    // hw_cap: the host's feature words in Xen's order (the test host's
    // CPUID: 1.EDX, 1.ECX, 0x80000001.EDX/ECX, 0xd.1.EAX, 7.0.EBX/ECX,
    // 0x80000007.EDX, which it lacks).
    assert_eq!(
        p.hw_cap,
        [
            0x178b_fbff,
            0x7ef8_3203,
            0x2fd3_fbff,
            0x75c2_37ff,
            0xf,
            0x219c_91a9,
            0x0040_0684,
            0
        ]
    );
    // sched_id: credit2's id.
    let (r, op) = sysctl(&w, &d0, &sc::Sysctl::new(sc::SCHED_ID, &()));
    assert_eq!(
        (r, op.arg::<sc::SchedId>().sched_id),
        (0, sc::SCHEDULER_CREDIT2)
    );
    // cpupool INFO of pool 0: every CPU, every domain; pool 1 does not exist.
    let info = |pool: u32, cmd: u32| {
        w.put(&d0, BUF, &u64::MAX);
        let a = sc::CpupoolOp {
            op: cmd,
            cpupool_id: pool,
            cpumap: sc::CtlBitmap {
                bitmap: BUF,
                nr_bits: 64,
                pad: 0,
            },
            ..Default::default()
        };
        let (r, op) = sysctl(&w, &d0, &sc::Sysctl::new(sc::CPUPOOL_OP, &a));
        (r, op.arg::<sc::CpupoolOp>(), w.get::<u64>(&d0, BUF))
    };
    let (r, a, map) = info(0, sc::cpupool::INFO);
    assert_eq!(r, 0);
    assert_eq!(
        (a.cpupool_id, a.sched_id, a.n_dom),
        (0, sc::SCHEDULER_CREDIT2, 2)
    );
    let want = (1u64 << cpus) - 1;
    assert_eq!(map, want, "every CPU in pool 0");
    assert_eq!(info(1, sc::cpupool::INFO).0, neg(errno::ENOENT));
    let (r, _, map) = info(0, sc::cpupool::FREEINFO);
    assert_eq!((r, map), (0, 0), "no CPU outside a pool");
    assert_eq!(info(0, sc::cpupool::CREATE).0, neg(errno::ENOSYS));
    // cputopoinfo: the count with a null handle, then one entry per CPU.
    let (r, op) = sysctl(&w, &d0, &sc::Sysctl::new(sc::CPUTOPOINFO, &()));
    assert_eq!((r, op.arg::<sc::CpuTopoInfo>().num_cpus), (0, cpus));
    let a = sc::CpuTopoInfo {
        num_cpus: 8,
        pad: 0,
        cputopo: BUF,
    };
    let (r, op) = sysctl(&w, &d0, &sc::Sysctl::new(sc::CPUTOPOINFO, &a));
    assert_eq!((r, op.arg::<sc::CpuTopoInfo>().num_cpus), (0, cpus));
    let t: sc::CpuTopo = w.get(&d0, BUF);
    assert_eq!((t.core, t.socket, t.node), (0, 0, 0));
    // numainfo: one node with all the memory, distance 10 to itself.
    let a = sc::NumaInfo {
        num_nodes: 4,
        pad: 0,
        meminfo: BUF,
        distance: BUF + 0x100,
    };
    let (r, op) = sysctl(&w, &d0, &sc::Sysctl::new(sc::NUMAINFO, &a));
    assert_eq!((r, op.arg::<sc::NumaInfo>().num_nodes), (0, 1));
    let m: sc::MemInfo = w.get(&d0, BUF);
    assert_eq!(m.memsize, w.hv.platform.mem().total_frames() << 12);
    assert_eq!(w.get::<u32>(&d0, BUF + 0x100), 10);
    // A domU is refused each of them, and gets nothing.
    for cmd in [
        sc::PHYSINFO,
        sc::SCHED_ID,
        sc::CPUTOPOINFO,
        sc::NUMAINFO,
        sc::CPUPOOL_OP,
    ] {
        let (r, op) = sysctl(&w, &d1, &sc::Sysctl::new(cmd, &()));
        assert_eq!(r, neg(errno::EACCES), "sysctl {cmd}");
        assert_eq!(op.u, [0; 128], "sysctl {cmd}: nothing written");
    }
}

mod hvmcontext {
    use super::*;
    use crate::xen::hvmctx::{self, Record, Writer};
    use warden_abi::xen::hvm_save::{self as hs, HwCpu, SaveHeader};

    fn header() -> SaveHeader {
        SaveHeader {
            magic: hs::FILE_MAGIC,
            version: hs::FILE_VERSION,
            ..Default::default()
        }
    }

    /// The BSP state libxc's `vcpu_hvm` writes for a PVH kernel.
    fn pvh_bsp(entry: u64, start_info: u64) -> HwCpu {
        HwCpu {
            rip: entry,
            rbx: start_info,
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
        }
    }

    fn get(w: &World, d0: &Domain, id: u16, size: u32, buffer: u64) -> (i64, dc::HvmContext) {
        let a = dc::HvmContext {
            size,
            pad: 0,
            buffer,
        };
        let (r, op) = domctl(w, d0, &dc::Domctl::new(dc::GETHVMCONTEXT, id, &a));
        (r, op.arg())
    }

    fn set(w: &World, d0: &Domain, id: u16, img: &[u8]) -> i64 {
        w.hv.write_phys(d0, BUF, img).unwrap();
        let a = dc::HvmContext {
            size: img.len() as u32,
            pad: 0,
            buffer: BUF,
        };
        domctl(w, d0, &dc::Domctl::new(dc::SETHVMCONTEXT, id, &a)).0
    }

    fn image(w: &World, d0: &Domain, id: u16) -> hvmctx::Image {
        let (r, a) = get(w, d0, id, 0x4000, BUF);
        assert_eq!(r, 0);
        let mut b = alloc::vec![0u8; a.size as usize];
        w.hv.read_phys(d0, BUF, &mut b).unwrap();
        hvmctx::parse(&b, 64).expect("gethvmcontext writes a well-formed image")
    }

    #[test]
    fn libxc_builds_a_pvh_guest_with_hvm_context_records() {
        let w = world(true);
        let d0 = w.domain(0, DOM0);
        let (r, op) = domctl(
            &w,
            &d0,
            &dc::Domctl::new(dc::CREATEDOMAIN, 0, &pvh(w.sid(DOMU), 2)),
        );
        assert_eq!(r, 0);
        let id = op.domain;
        let (r, _) = domctl(
            &w,
            &d0,
            &dc::Domctl::new(dc::MAX_VCPUS, id, &dc::MaxVcpus { max: 2 }),
        );
        assert_eq!(r, 0);
        let d = w.hv.domains.get(id).unwrap();
        // The size query, then a buffer too small for it.
        let (r, a) = get(&w, &d0, id, 0, 0);
        assert_eq!((r, a.size as usize), (0, hvmctx::image_size(2)));
        let (r, a) = get(&w, &d0, id, 100, BUF);
        assert_eq!((r, a.size), (neg(errno::ENOSPC), 100));
        // The full image: the header, then per vCPU LAPIC, LAPIC_REGS and
        // MTRR (no CPU record: its vCPUs are not up yet, as Xen saves them).
        let img = image(&w, &d0, id);
        assert_eq!(img.header.magic, hs::FILE_MAGIC);
        assert!(img.records.iter().all(|r| !matches!(r, Record::Cpu(..))));
        let mtrr0 = img
            .records
            .iter()
            .find_map(|r| match r {
                Record::Mtrr(0, m) => Some(**m),
                _ => None,
            })
            .expect("an MTRR record of vCPU 0");
        assert_eq!(mtrr0, hvmctx::mtrr_reset());
        assert!(
            img.records
                .iter()
                .any(|r| matches!(r, Record::Lapic(1, l) if l.apic_base_msr & (1 << 11) != 0))
        );
        // libxc: HEADER + MTRR(i) + END per vCPU (write-back, enabled) ...
        for v in 0..2u16 {
            let mut m = mtrr0;
            m.msr_mtrr_def_type = 6 | (1 << 11);
            let mut x = Writer::default();
            x.push(hs::HEADER, 0, &img.header);
            x.push(hs::MTRR, v, &m);
            x.end();
            assert_eq!(set(&w, &d0, id, &x.0), 0, "MTRR of vCPU {v}");
        }
        // ... then HEADER + CPU(0) + END: vCPU 0 gets the PVH entry state.
        let bsp = pvh_bsp(0x100_0000, 0x7000);
        let mut x = Writer::default();
        x.push(hs::HEADER, 0, &img.header);
        x.push(hs::CPU, 0, &bsp);
        x.end();
        assert_eq!(set(&w, &d0, id, &x.0), 0);
        assert!(w.hv.sched.initialised((id, 0)) && w.hv.sched.is_up((id, 0)));
        assert!(!w.hv.sched.is_up((id, 1)), "vCPU 1 has no CPU record: down");
        let c = d.vcpu(0).unwrap().hw.lock().cpu_record();
        assert_eq!(
            (c.rip, c.rbx, c.cr0, c.cs_arbytes, c.rflags),
            (0x100_0000, 0x7000, 0x11, 0xC9B, 2)
        );
        // gethvmcontext now has vCPU 0's CPU record and the MTRRs set.
        let img = image(&w, &d0, id);
        assert!(
            img.records
                .iter()
                .any(|r| matches!(r, Record::Cpu(0, c) if c.rip == 0x100_0000))
        );
        assert!(!img.records.iter().any(|r| matches!(r, Record::Cpu(1, _))));
        assert!(
            img.records
                .iter()
                .any(|r| matches!(r, Record::Mtrr(1, m) if m.msr_mtrr_def_type == 0x806))
        );
        // The image round-trips: loading what was saved changes nothing.
        let (_, a) = get(&w, &d0, id, 0x4000, BUF);
        let mut b = alloc::vec![0u8; a.size as usize];
        w.hv.read_phys(&d0, BUF, &mut b).unwrap();
        assert_eq!(set(&w, &d0, id, &b), 0);
        assert_eq!(d.vcpu(0).unwrap().hw.lock().cpu_record().rip, 0x100_0000);
        // Refusals change nothing: a bad CPU record after a good MTRR one
        // (Xen would have applied the MTRR), a PIC record, no end marker.
        let before = (*d.vcpu(1).unwrap().mtrr.lock(), w.hv.sched.is_up((id, 0)));
        let mut bad = Writer::default();
        bad.push(hs::HEADER, 0, &img.header);
        bad.push(hs::MTRR, 1, &hvmctx::mtrr_reset());
        bad.push(
            hs::CPU,
            0,
            &HwCpu {
                cr0: 0x8000_0010,
                ..bsp
            },
        );
        bad.end();
        assert_eq!(set(&w, &d0, id, &bad.0), neg(errno::EINVAL));
        let mut pic = Writer::default();
        pic.push(hs::HEADER, 0, &img.header);
        pic.push_raw(3, 0, &[0u8; 16]);
        pic.end();
        assert_eq!(set(&w, &d0, id, &pic.0), neg(errno::ENODEV));
        assert_eq!(set(&w, &d0, id, &x.0[..x.0.len() - 8]), neg(errno::ENODATA));
        assert_eq!(set(&w, &d0, id, &x.0[..8]), neg(errno::ENODATA));
        let mut hdr = header();
        hdr.version = 2;
        let mut v2 = Writer::default();
        v2.push(hs::HEADER, 0, &hdr);
        v2.end();
        assert_eq!(set(&w, &d0, id, &v2.0), neg(errno::EINVAL));
        assert_eq!(
            (*d.vcpu(1).unwrap().mtrr.lock(), w.hv.sched.is_up((id, 0))),
            before,
            "nothing changed"
        );
        // Not on the caller itself: the default policy refuses it, and
        // without FLASK (the control domain may) Xen's EINVAL.
        assert_eq!(get(&w, &d0, 0, 0x4000, BUF).0, neg(errno::EACCES));
        let w = world(false);
        let d0 = w.domain(0, "");
        assert_eq!(get(&w, &d0, 0, 0x4000, BUF).0, neg(errno::EINVAL));
        assert_eq!(set(&w, &d0, 0, &x.0), neg(errno::EINVAL));
    }

    #[test]
    fn a_domu_may_neither_read_nor_set_another_domains_context() {
        let w = world(true);
        let _d0 = w.domain(0, DOM0);
        let d1 = w.domain(1, DOMU);
        let d2 = w.domain(2, DOMU);
        let before = d2.vcpu(0).unwrap().hw.lock().cpu_record();
        w.audit_lines();
        let mut x = Writer::default();
        x.push(hs::HEADER, 0, &header());
        x.push(hs::CPU, 0, &pvh_bsp(0x4000, 0));
        x.end();
        assert_eq!(set(&w, &d1, 2, &x.0), neg(errno::EACCES));
        assert_eq!(get(&w, &d1, 2, 0x4000, BUF).0, neg(errno::EACCES));
        let a = w.audit_lines();
        assert!(
            a.iter()
                .any(|l| l.contains("{ sethvmc }") && l.contains("tclass=hvm"))
        );
        assert!(
            a.iter()
                .any(|l| l.contains("{ gethvmc }") && l.contains("tclass=hvm"))
        );
        assert_eq!(
            d2.vcpu(0).unwrap().hw.lock().cpu_record(),
            before,
            "unchanged"
        );
        assert!(w.hv.sched.is_up((2, 0)), "still up");
    }
}

#[test]
fn getvcpuinfo_reports_a_vcpus_state_as_xen() {
    let w = world(true);
    let d0 = w.domain(0, DOM0);
    let d1 = w.domain(1, DOMU);
    let info = |who: &Domain, dom: u16, vcpu: u32| {
        let (r, back) = domctl(
            &w,
            who,
            &dc::Domctl::new(
                dc::GETVCPUINFO,
                dom,
                &dc::GetVcpuInfo {
                    vcpu,
                    ..Default::default()
                },
            ),
        );
        (r, back.arg::<dc::GetVcpuInfo>())
    };
    let (r, v) = info(&d0, 1, 0);
    assert_eq!(r, 0);
    assert_eq!(
        (v.vcpu, v.online, v.blocked, v.running, v.cpu),
        (0, 1, 0, 0, 0)
    );
    // A vCPU taken down is reported offline.
    w.hv.sched.down((1, 0), 0);
    assert_eq!(info(&d0, 1, 0).1.online, 0);
    // Beyond the domain's vCPUs: EINVAL; no such domain: ESRCH.
    assert_eq!(info(&d0, 1, 1).0, neg(errno::EINVAL));
    assert_eq!(info(&d0, 9, 0).0, neg(errno::ESRCH));
    assert!(w.audit_lines().is_empty());
    // A domU may not look at another domain's vCPUs (domain:getvcpuinfo).
    let d2 = w.domain(2, DOMU);
    let (r, v) = info(&d2, 1, 0);
    assert_eq!(r, neg(errno::EACCES));
    assert_eq!(v.online, 0, "nothing was written");
    let a = w.audit_lines();
    assert!(a[0].contains("denied  { getvcpuinfo }"), "{a:?}");
    let _ = d1;
}

#[test]
fn scheduler_op_gets_and_puts_credit2_weights_and_refuses_caps() {
    let w = world(true);
    let d0 = w.domain(0, DOM0);
    let _d1 = w.domain(1, DOMU);
    let d2 = w.domain(2, DOMU);
    let op = |who: &Domain, dom: u16, sched_id: u32, cmd: u32, weight: u16, cap: u16| {
        let (r, back) = domctl(
            &w,
            who,
            &dc::Domctl::new(
                dc::SCHEDULER_OP,
                dom,
                &dc::SchedulerOp {
                    sched_id,
                    cmd,
                    weight,
                    cap,
                    ..Default::default()
                },
            ),
        );
        (r, back.arg::<dc::SchedulerOp>())
    };
    const C2: u32 = sc::SCHEDULER_CREDIT2;
    let (r, s) = op(&d0, 1, C2, dc::SCHEDOP_GETINFO, 0, 0);
    assert_eq!((r, s.weight, s.cap), (0, 256, 0));
    // putinfo: the weight (0 keeps it), no cap.
    assert_eq!(op(&d0, 1, C2, dc::SCHEDOP_PUTINFO, 512, 0).0, 0);
    assert_eq!(w.hv.sched.weight(1), Some(512));
    assert_eq!(op(&d0, 1, C2, dc::SCHEDOP_PUTINFO, 0, 0).0, 0);
    assert_eq!(op(&d0, 1, C2, dc::SCHEDOP_GETINFO, 0, 0).1.weight, 512);
    // A cap: above 100 per vCPU EINVAL, else not implemented; the weight
    // is set first, as Xen's credit2 does.
    assert_eq!(
        op(&d0, 1, C2, dc::SCHEDOP_PUTINFO, 300, 101).0,
        neg(errno::EINVAL)
    );
    assert_eq!(w.hv.sched.weight(1), Some(300));
    assert_eq!(
        op(&d0, 1, C2, dc::SCHEDOP_PUTINFO, 0, 50).0,
        neg(errno::EOPNOTSUPP)
    );
    // Another scheduler's id, per-vCPU parameters: EINVAL, nothing changed.
    for (id, cmd) in [
        (sc::SCHEDULER_CREDIT, dc::SCHEDOP_PUTINFO),
        (C2, dc::SCHEDOP_PUTVCPUINFO),
        (C2, dc::SCHEDOP_GETVCPUINFO),
    ] {
        assert_eq!(op(&d0, 1, id, cmd, 1000, 0).0, neg(errno::EINVAL));
    }
    assert_eq!(w.hv.sched.weight(1), Some(300));
    assert!(w.audit_lines().is_empty());
    // A command Xen's hook does not know: avc_unknown_permission (EPERM
    // with the default policy, enforcing).
    assert_eq!(op(&d0, 1, C2, 7, 1000, 0).0, neg(errno::EPERM));
    // A domU may not set another's weight (domain2:setscheduler): nothing changes.
    assert_eq!(
        op(&d2, 1, C2, dc::SCHEDOP_PUTINFO, 9, 0).0,
        neg(errno::EACCES)
    );
    assert_eq!(w.hv.sched.weight(1), Some(300));
    let a = w.audit_lines();
    assert!(
        a.iter().any(|l| l.contains("denied  { setscheduler }")),
        "{a:?}"
    );
}

#[test]
fn vcpu_affinity_is_every_cpu_and_a_restriction_is_refused() {
    // The test platform has one CPU: every mask holding CPU 0 is "all".
    let w = world(true);
    let d0 = w.domain(0, DOM0);
    let _d1 = w.domain(1, DOMU);
    let d2 = w.domain(2, DOMU);
    const HARD: u64 = 0x3000;
    const SOFT: u64 = 0x3100;
    let aff = |who: &Domain, cmd: u32, vcpu: u32, flags: u32, bits: u32, hard: u8, soft: u8| {
        w.put(who, HARD, &u32::from_le_bytes([hard, 0xee, 0xee, 0xee]));
        w.put(who, SOFT, &u32::from_le_bytes([soft, 0xee, 0xee, 0xee]));
        let map = |bitmap| dc::XenctlBitmap {
            bitmap,
            nr_bits: bits,
            pad: 0,
        };
        let r = domctl(
            &w,
            who,
            &dc::Domctl::new(
                cmd,
                1,
                &dc::VcpuAffinity {
                    vcpu,
                    flags,
                    cpumap_hard: map(HARD),
                    cpumap_soft: map(SOFT),
                },
            ),
        )
        .0;
        (
            r,
            w.get::<u32>(who, HARD).to_le_bytes(),
            w.get::<u32>(who, SOFT).to_le_bytes(),
        )
    };
    let both = dc::VCPUAFFINITY_HARD | dc::VCPUAFFINITY_SOFT;
    // get: every CPU, zeros up to the guest's nr_bits, nothing beyond.
    let (r, h, s) = aff(&d0, dc::GETVCPUAFFINITY, 0, both, 24, 0, 0);
    assert_eq!((r, h, s), (0, [1, 0, 0, 0xee], [1, 0, 0, 0xee]));
    // set: masks with every CPU (libxl's defaults) are accepted; the
    // effective masks come back.
    let (r, h, s) = aff(&d0, dc::SETVCPUAFFINITY, 0, both, 8, 0xff, 0x0f);
    assert_eq!((r, h[0], s[0]), (0, 1, 1));
    let (r, _, s) = aff(
        &d0,
        dc::SETVCPUAFFINITY,
        0,
        dc::VCPUAFFINITY_SOFT,
        8,
        0,
        0xff,
    );
    assert_eq!((r, s[0]), (0, 1));
    // A hard mask without an online CPU: EINVAL, as Xen.
    assert_eq!(
        aff(
            &d0,
            dc::SETVCPUAFFINITY,
            0,
            dc::VCPUAFFINITY_HARD,
            8,
            0xfe,
            0
        )
        .0,
        neg(errno::EINVAL)
    );
    // A soft mask without every CPU would be a preference Warden ignores:
    // refused, nothing written.
    let (r, _, s) = aff(
        &d0,
        dc::SETVCPUAFFINITY,
        0,
        dc::VCPUAFFINITY_SOFT,
        8,
        0,
        0xfe,
    );
    assert_eq!((r, s[0]), (neg(errno::EOPNOTSUPP), 0xfe));
    // Xen's argument checks: no flag, a flagged null bitmap, a vCPU the
    // domain does not have.
    assert_eq!(
        aff(&d0, dc::GETVCPUAFFINITY, 0, 0, 8, 0, 0).0,
        neg(errno::EINVAL)
    );
    let (r, ..) = {
        let op = dc::Domctl::new(
            dc::GETVCPUAFFINITY,
            1,
            &dc::VcpuAffinity {
                vcpu: 0,
                flags: dc::VCPUAFFINITY_HARD,
                ..Default::default()
            },
        );
        domctl(&w, &d0, &op)
    };
    assert_eq!(r, neg(errno::EINVAL));
    assert_eq!(
        aff(&d0, dc::GETVCPUAFFINITY, 3, both, 8, 0, 0).0,
        neg(errno::EINVAL)
    );
    assert!(w.audit_lines().is_empty());
    // A domU may not read another's affinity (domain:getaffinity).
    let (r, h, _) = aff(&d2, dc::GETVCPUAFFINITY, 0, both, 8, 0x55, 0);
    assert_eq!((r, h[0]), (neg(errno::EACCES), 0x55));
    let a = w.audit_lines();
    assert!(
        a.iter().any(|l| l.contains("denied  { getaffinity }")),
        "{a:?}"
    );
}
