//! The `Flask` server: typed checks, audit records, modes, booleans, reload,
//! SID remapping, ocontexts, AVC statistics and concurrency.

mod common;

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use xsm::audit::AuditEvent;
use xsm::flask::OconKind;
use xsm::{AuditData, AuditRecord, AuditSink, Error, Flask, Sid, initial_sid, perms};

struct Sink {
    now: AtomicU64,
    lines: Mutex<Vec<AuditRecord>>,
}

impl AuditSink for Sink {
    fn now_ms(&self) -> u64 {
        self.now.load(Ordering::Relaxed)
    }
    fn emit(&self, r: &AuditRecord) {
        self.lines.lock().unwrap().push(r.clone());
    }
}

fn sink() -> &'static Sink {
    Box::leak(Box::new(Sink {
        now: AtomicU64::new(5_000),
        lines: Mutex::new(Vec::new()),
    }))
}

impl Sink {
    fn take(&self) -> Vec<String> {
        self.lines
            .lock()
            .unwrap()
            .drain(..)
            .map(|r| r.to_string())
            .collect()
    }
}

fn server(variant: &str) -> (Flask, &'static Sink) {
    let s = sink();
    let f = Flask::new(true, Some(s));
    f.load_policy(&common::read(&common::build(variant)))
        .unwrap();
    (f, s)
}

fn sid(f: &Flask, c: &str) -> Sid {
    f.context_to_sid(c.as_bytes()).unwrap()
}

const D1: AuditData = AuditData {
    current: Some(1),
    source: None,
    target: None,
    object: None,
};

#[test]
fn typed_checks_and_audit_lines() {
    let (f, s) = server("base30");
    let dom0 = initial_sid::DOM0;
    let domu = sid(&f, "system_u:system_r:domU_t");
    let g = f
        .has_perm(
            0,
            dom0,
            domu,
            perms::domain::PAUSE | perms::domain::UNPAUSE,
            &D1,
        )
        .unwrap();
    assert!(!g.permissive());
    assert!(g.quiet(), "a silent grant may be cached by callers");
    assert_eq!(g.perms(), perms::domain::PAUSE | perms::domain::UNPAUSE);
    assert!(s.take().is_empty());
    let d = f
        .has_perm(0, domu, dom0, perms::domain::UNPAUSE, &D1)
        .unwrap_err();
    assert_eq!((d.denied, d.errno()), (perms::domain::UNPAUSE.bits(), 13));
    assert_eq!(
        s.take(),
        [
            "audit(5.000:1): avc:  denied  { unpause } for current=d1 scontext=system_u:system_r:domU_t tcontext=system_u:system_r:dom0_t tclass=domain permissive=0"
        ]
    );
    // auditallow: granted, audited, so never quiet (on a miss and on a hit)
    let gen0 = f.cache_generation();
    for _ in 0..2 {
        let g = f
            .has_perm(
                0,
                dom0,
                initial_sid::SECURITY,
                perms::security::LOAD_POLICY,
                &AuditData::default(),
            )
            .unwrap();
        assert!(!g.quiet(), "an auditallow grant must be audited every time");
    }
    assert_eq!(f.cache_generation(), gen0);
    let _ = s.take().pop();
    f.has_perm(
        0,
        dom0,
        initial_sid::SECURITY,
        perms::security::LOAD_POLICY,
        &AuditData::default(),
    )
    .unwrap();
    let l = s.take();
    assert_eq!(l.len(), 1);
    assert!(
        l[0].contains("avc:  granted  { load_policy } for scontext="),
        "{l:?}"
    );
    // dontaudit: denied silently
    let xen = initial_sid::XEN;
    assert!(
        f.has_perm(
            0,
            domu,
            xen,
            perms::xen::READCONSOLE | perms::xen::PHYSINFO,
            &D1
        )
        .is_err()
    );
    assert!(s.take().is_empty());
    // a denial of a dontaudit'ed and an audited permission reports only the latter
    assert!(
        f.has_perm(
            0,
            domu,
            xen,
            perms::xen::READCONSOLE | perms::xen::SETTIME,
            &D1
        )
        .is_err()
    );
    let l = s.take();
    assert!(l[0].contains("{ settime }"), "{l:?}");
    // invalid SID: EINVAL, audited with the raw SID
    let d = f
        .has_perm(0, Sid::from_raw(999_999), dom0, perms::domain::PAUSE, &D1)
        .unwrap_err();
    assert_eq!(d.errno(), 22);
    assert!(s.take()[0].contains("scontext=ssid=999999"));
}

#[test]
fn permissive_mode_reports_every_distinct_denial() {
    let (f, s) = server("base30");
    let domu = sid(&f, "system_u:system_r:domU_t");
    let dom0 = initial_sid::DOM0;
    assert!(f.set_enforcing(false));
    assert!(!f.set_enforcing(false));
    let g = f
        .has_perm(0, domu, dom0, perms::domain::UNPAUSE, &D1)
        .unwrap();
    assert!(g.permissive());
    let l = s.take();
    assert_eq!(l.len(), 1);
    assert!(l[0].ends_with("tclass=domain permissive=1"), "{l:?}");
    // same denial again: already reported
    f.has_perm(0, domu, dom0, perms::domain::UNPAUSE, &D1)
        .unwrap();
    assert!(s.take().is_empty());
    // a different permission on the same (ssid, tsid, class): reported too (Xen would not)
    f.has_perm(
        0,
        domu,
        dom0,
        perms::domain::UNPAUSE | perms::domain::DESTROY,
        &D1,
    )
    .unwrap();
    let l = s.take();
    assert_eq!(l.len(), 1);
    assert!(l[0].contains("{ destroy }"), "{l:?}");
    // back to enforcing: denied again, and audited
    assert!(f.set_enforcing(true));
    assert!(
        f.has_perm(0, domu, dom0, perms::domain::UNPAUSE, &D1)
            .is_err()
    );
    assert_eq!(s.take().len(), 1);
}

#[test]
fn permissive_type_grants_with_flag() {
    let (f, s) = server("base30");
    let perm = sid(&f, "system_u:system_r:perm_t");
    let g = f
        .has_perm(0, perm, initial_sid::XEN, perms::xen::SETTIME, &D1)
        .unwrap();
    assert!(g.permissive());
    assert!(s.take()[0].ends_with("permissive=1"));
    let raw = f.compute_av(perm, initial_sid::XEN, 1).unwrap();
    assert!(raw.permissive && raw.allowed == 0);
}

#[test]
fn rate_limit_and_serials() {
    let (f, s) = server("base30");
    f.set_audit_ratelimit(3, 1000);
    let domu = sid(&f, "system_u:system_r:domU_t");
    for _ in 0..5 {
        assert!(
            f.has_perm(0, domu, initial_sid::DOM0, perms::domain::DESTROY, &D1)
                .is_err()
        );
    }
    let l = s.lines.lock().unwrap().clone();
    assert_eq!(l.iter().map(|r| r.serial).collect::<Vec<_>>(), [1, 2, 3]);
    s.take();
    s.now.store(6_500, Ordering::Relaxed);
    assert!(
        f.has_perm(0, domu, initial_sid::DOM0, perms::domain::DESTROY, &D1)
            .is_err()
    );
    let l = s.lines.lock().unwrap().clone();
    assert_eq!(l.len(), 2);
    assert_eq!(l[0].event, AuditEvent::Suppressed { count: 2 });
    assert_eq!(
        l[0].to_string(),
        "audit(6.500:5): avc:  2 audit messages suppressed"
    );
    assert_eq!(l[1].serial, 6);
}

#[test]
fn booleans_pending_and_commit() {
    let (f, _s) = server("base30");
    let domu = sid(&f, "system_u:system_r:domU_t");
    let dom0 = initial_sid::DOM0;
    let b = f.get_bool_by_name("allow_pause").unwrap();
    assert!(b.current && b.pending);
    assert!(f.has_perm(0, domu, dom0, perms::domain::PAUSE, &D1).is_ok());
    f.set_bool(b.id, false, false).unwrap();
    let b2 = f.get_bool(b.id).unwrap();
    assert!(b2.current && !b2.pending);
    assert!(
        f.has_perm(0, domu, dom0, perms::domain::PAUSE, &D1).is_ok(),
        "pending values do not apply"
    );
    let seq = f.seqno();
    f.commit_bools().unwrap();
    assert_ne!(f.seqno(), seq);
    assert!(
        f.has_perm(0, domu, dom0, perms::domain::PAUSE, &D1)
            .is_err(),
        "committed: the cached grant was flushed"
    );
    f.set_bool(b.id, true, true).unwrap();
    assert!(f.has_perm(0, domu, dom0, perms::domain::PAUSE, &D1).is_ok());
    assert!(matches!(f.get_bool(99), Err(Error::UnknownBool(_))));
    assert!(matches!(
        f.get_bool_by_name("nope"),
        Err(Error::UnknownBool(_))
    ));
}

#[test]
fn reload_keeps_the_current_value_of_booleans_the_new_policy_also_has() {
    // As Xen's security_preserve_bools: by name, current values only.
    let (f, _s) = server("base30");
    let domu = sid(&f, "system_u:system_r:domU_t");
    let dom0 = initial_sid::DOM0;
    let pause = f.get_bool_by_name("allow_pause").unwrap();
    let debug = f.get_bool_by_name("guest_debug").unwrap();
    f.set_bool(pause.id, false, true).unwrap();
    f.set_bool(debug.id, true, false).unwrap();
    f.load_policy(&common::read(&common::build("base30")))
        .unwrap();
    let p = f.get_bool_by_name("allow_pause").unwrap();
    assert!(!p.current && !p.pending, "committed value kept: {p:?}");
    let d = f.get_bool_by_name("guest_debug").unwrap();
    assert!(!d.current && !d.pending, "pending value dropped: {d:?}");
    assert!(
        f.has_perm(0, domu, dom0, perms::domain::PAUSE, &D1)
            .is_err(),
        "the kept value is in force"
    );
    // Through a policy without the boolean, it starts from the default.
    f.load_policy(&common::read(&common::build("aliases30")))
        .unwrap();
    assert!(f.get_bool_by_name("allow_pause").is_err());
    f.load_policy(&common::read(&common::build("base30")))
        .unwrap();
    assert!(f.get_bool_by_name("allow_pause").unwrap().current);
    assert!(f.has_perm(0, domu, dom0, perms::domain::PAUSE, &D1).is_ok());
}

#[test]
fn reload_remaps_sids_and_failed_load_changes_nothing() {
    let (f, s) = server("base30");
    let perm = sid(&f, "system_u:system_r:perm_t");
    let dom0 = sid(&f, "system_u:system_r:dom0_t");
    assert_eq!(dom0, initial_sid::DOM0);
    let domu = sid(&f, "system_u:system_r:domU_t");
    assert!(f.has_perm(0, dom0, domu, perms::domain::PAUSE, &D1).is_ok());
    let stats = f.hash_stats();
    assert!(stats.entries >= 1);
    let seq = f.seqno();
    // A failed load: nothing changes, not even the cache.
    let mut bad = common::read(&common::build("aliases30"));
    bad.truncate(bad.len() - 3);
    assert!(matches!(f.load_policy(&bad), Err(Error::Load(_))));
    assert_eq!(f.seqno(), seq);
    assert_eq!(f.hash_stats(), stats);
    assert_eq!(f.sid_to_context(perm).unwrap(), "system_u:system_r:perm_t");
    // A policy without perm_t: that SID becomes unlabeled, the others keep their context.
    f.load_policy(&common::read(&common::build("aliases30")))
        .unwrap();
    assert_eq!(f.hash_stats().entries, 0, "load flushes the AVC");
    assert_eq!(
        f.sid_to_context(perm).unwrap(),
        "system_u:system_r:unlabeled_t"
    );
    assert_eq!(f.sid_to_context(dom0).unwrap(), "system_u:system_r:dom0_t");
    assert!(s.take().is_empty());
    // Back to the first policy: the original context comes back.
    f.load_policy(&common::read(&common::build("base30")))
        .unwrap();
    assert_eq!(f.sid_to_context(perm).unwrap(), "system_u:system_r:perm_t");
    assert_eq!(f.sid_to_context(domu).unwrap(), "system_u:system_r:domU_t");
}

#[test]
fn compute_labels_and_contexts() {
    let (f, _s) = server("base30");
    let domu = sid(&f, "system_u:system_r:domU_t");
    let ev = f.compute_create(domu, domu, 9).unwrap();
    assert_eq!(f.sid_to_context(ev).unwrap(), "system_u:object_r:event_t");
    let child = f.compute_create(initial_sid::DOM0, domu, 3).unwrap();
    assert_eq!(
        f.sid_to_context(child).unwrap(),
        "system_u:vm_r:domU_child_t"
    );
    let m = f.compute_member(initial_sid::DOM0, domu, 10).unwrap();
    assert_eq!(f.sid_to_context(m).unwrap(), "system_u:object_r:dom0_t");
    let r = f.compute_relabel(initial_sid::DOM0, domu, 6).unwrap();
    assert_eq!(f.sid_to_context(r).unwrap(), "system_u:object_r:domU_t");
    assert!(matches!(
        f.compute_create(domu, domu, 99),
        Err(Error::UnknownClass(99))
    ));
    assert!(matches!(
        f.context_to_sid(b"system_u:vm_r:xen_t"),
        Err(Error::InvalidContext(_))
    ));
    assert_eq!(
        f.context_to_sid(b"system_u:system_r:domU_t\0").unwrap(),
        domu
    );
    assert!(matches!(
        f.sid_to_context(Sid::from_raw(0)),
        Err(Error::UnknownSid(0))
    ));
    assert_eq!(f.policyvers(), 30);
    assert!(!f.mls_enabled());
}

#[test]
fn ocontexts_lookup_add_del() {
    let (f, _s) = server("base30");
    let ctx = |s: Sid| f.sid_to_context(s).unwrap();
    assert_eq!(ctx(f.pirq_sid(33)), "system_u:object_r:irq_t");
    assert_eq!(f.pirq_sid(34), initial_sid::IRQ);
    assert_eq!(ctx(f.ioport_sid(0x3fa)), "system_u:object_r:ioport_t");
    assert_eq!(ctx(f.iomem_sid(0xfeb10)), "system_u:object_r:iomem_t");
    assert_eq!(f.iomem_sid(0xfec00), initial_sid::IOMEM);
    assert_eq!(ctx(f.device_sid(0x100)), "system_u:object_r:nic_t");
    assert_eq!(
        ctx(f.dtdevice_sid("/soc/uart@1000")),
        "system_u:object_r:dt_t"
    );
    let nic = f.device_sid(0x100);
    f.add_ocontext(OconKind::Pirq, 40, 40, nic).unwrap();
    assert_eq!(f.pirq_sid(40), nic);
    f.add_ocontext(OconKind::Pirq, 40, 40, nic).unwrap();
    assert_eq!(
        f.add_ocontext(OconKind::Pirq, 40, 40, initial_sid::XEN),
        Err(Error::OcontextExists)
    );
    assert_eq!(
        f.add_ocontext(OconKind::Ioport, 0x3f0, 0x3f8, nic),
        Err(Error::OcontextExists)
    );
    f.add_ocontext(OconKind::Iomem, 0x1000, 0x1fff, nic)
        .unwrap();
    assert_eq!(f.iomem_sid(0x1800), nic);
    f.del_ocontext(OconKind::Iomem, 0x1000, 0x1fff).unwrap();
    assert_eq!(f.iomem_sid(0x1800), initial_sid::IOMEM);
    assert_eq!(
        f.del_ocontext(OconKind::Iomem, 0x1000, 0x1fff),
        Err(Error::OcontextNotFound)
    );
    assert_eq!(
        f.add_ocontext(OconKind::Pirq, 1, 1, Sid::from_raw(77777)),
        Err(Error::UnknownSid(77777))
    );
}

#[test]
fn avc_threshold_reclaim_and_stats() {
    let (f, _s) = server("base30");
    f.set_avc_threshold(16).unwrap();
    assert_eq!(f.avc_threshold(), 16);
    assert!(f.set_avc_threshold(0).is_err());
    let types = [
        "xen_t",
        "dom0_t",
        "domU_t",
        "perm_t",
        "event_t",
        "nic_t",
        "irq_t",
        "security_t",
    ];
    let sids: Vec<Sid> = types
        .iter()
        .map(|t| sid(&f, &format!("system_u:system_r:{t}")))
        .collect();
    for round in 0..2 {
        for &a in &sids {
            for &b in &sids {
                let _ = f.has_perm(3, a, b, perms::event::BIND, &AuditData::default());
            }
        }
        let st = f.cache_stats(3).unwrap();
        assert_eq!(st.lookups, 64 * (round + 1));
    }
    let st = f.cache_stats(3).unwrap();
    assert_eq!(st.hits + st.misses, st.lookups);
    assert!(st.reclaims >= 64 - 16, "{st:?}");
    let h = f.hash_stats();
    assert!(h.entries <= 16 && h.entries > 0, "{h:?}");
    assert_eq!(h.buckets_total, 512);
    assert!(h.max_chain_len >= 1 && h.buckets_used <= h.entries);
    let total_frees: u64 = (0..xsm::rcu::MAX_CPUS)
        .map(|c| f.cache_stats(c).unwrap().frees)
        .sum();
    assert!(total_frees > 0);
    assert!(f.cache_stats(xsm::rcu::MAX_CPUS).is_none());
}

#[test]
fn no_policy_allows_everything_like_xen() {
    let f = Flask::new(true, None);
    assert!(!f.policy_loaded());
    assert!(
        f.has_perm(
            0,
            Sid::from_raw(5),
            Sid::from_raw(6),
            perms::domain::PAUSE,
            &D1
        )
        .is_ok()
    );
    assert_eq!(f.context_to_sid(b"a:b:c"), Err(Error::NoPolicy));
    assert!(f.load_policy(b"garbage").is_err());
    assert!(!f.policy_loaded());
}

#[test]
fn concurrent_decisions_during_reloads_and_flushes() {
    let (f, _s) = server("base30");
    let dom0 = initial_sid::DOM0;
    let domu = sid(&f, "system_u:system_r:domU_t");
    let xen = initial_sid::XEN;
    let img_a = common::read(&common::build("base30"));
    let img_b = common::read(&common::build("aliases30"));
    f.set_avc_threshold(8).unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    // Checks done per thread: every thread must check before, during and
    // after the reloads (waiting on each, not on the sum, so that a thread
    // the scheduler starts late cannot be missed).
    let done: [AtomicU64; 3] = Default::default();
    let each_reaches = |n: u64| {
        while done.iter().any(|d| d.load(Ordering::Relaxed) < n) {
            std::thread::yield_now();
        }
    };
    std::thread::scope(|sc| {
        for cpu in 0..3 {
            let (f, stop, done) = (&f, &stop, &done[cpu]);
            sc.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    // dom0 may pause domU in both policies; domU may never settime on xen.
                    assert!(
                        f.has_perm(cpu, dom0, dom0, perms::domain::GETDOMAININFO, &D1)
                            .is_ok()
                    );
                    assert!(
                        f.has_perm(cpu, domu, xen, perms::xen::SETTIME, &D1)
                            .is_err()
                    );
                    let _ = f.has_perm(cpu, domu, dom0, perms::domain::PAUSE, &D1);
                    done.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        each_reaches(100);
        for i in 0..40 {
            match i % 4 {
                0 => f
                    .load_policy(if i % 8 == 0 { &img_b } else { &img_a })
                    .unwrap(),
                1 => f.flush(),
                2 => {
                    f.set_enforcing(true);
                }
                _ => {
                    if let Ok(b) = f.get_bool_by_name("allow_pause") {
                        f.set_bool(b.id, i % 8 == 3, true).unwrap();
                    }
                }
            }
        }
        let after: Vec<u64> = done.iter().map(|d| d.load(Ordering::Relaxed)).collect();
        each_reaches(after.iter().max().copied().unwrap_or(0) + 100);
        stop.store(true, Ordering::Relaxed);
    });
}

/// The AVC's lock-free hit path under constant node recycling: with a
/// threshold of 2, every miss evicts and rewrites nodes that other threads
/// are reading, and flushes bump the generation meanwhile. Every check must
/// still give exactly the policy's decision for its own (ssid, tsid, class),
/// never one copied from a node being rewritten for another key.
#[test]
fn avc_hits_under_recycling_give_each_keys_own_decision() {
    let f = Flask::new(true, None);
    f.load_policy(&common::read(&common::build("base30")))
        .unwrap();
    f.set_avc_threshold(2).unwrap();
    let sids: Vec<Sid> = [
        "xen_t",
        "dom0_t",
        "domU_t",
        "domU_child_t",
        "perm_t",
        "nic_t",
    ]
    .iter()
    .map(|t| sid(&f, &format!("system_u:system_r:{t}")))
    .collect();
    // (ssid, tsid, class, one permission, expected to pass)
    let mut cases = Vec::new();
    for &s in &sids {
        for &t in &sids {
            for c in 1..=xsm::NUM_CLASSES as u32 {
                let class = xsm::ClassId::from_raw(c).unwrap();
                let d = f.compute_av_effective(s, t, class).unwrap();
                for bit in 0..class.perm_names().len().min(32) {
                    let p = 1u32 << bit;
                    cases.push((s, t, class, p, d.allowed & p != 0 || d.permissive));
                }
            }
        }
    }
    assert!(cases.iter().any(|c| c.4) && cases.iter().any(|c| !c.4));
    let stop = std::sync::atomic::AtomicBool::new(false);
    let checked = AtomicU64::new(0);
    std::thread::scope(|sc| {
        for cpu in 0..2 {
            let (f, cases, stop, checked) = (&f, &cases, &stop, &checked);
            sc.spawn(move || {
                let mut round = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    // Each thread walks the cases in its own order, so that
                    // hits and misses of the two interleave.
                    for i in 0..cases.len() {
                        let (s, t, class, p, ok) = cases[(i * (cpu + 1) + round) % cases.len()];
                        let got = f.check(cpu, s, t, class, p, &D1).is_ok();
                        assert_eq!(got, ok, "{s:?} {t:?} {class:?} {p:#x}");
                        // The same key again at once: usually a hit.
                        assert_eq!(f.check(cpu, s, t, class, p, &D1).is_ok(), ok);
                    }
                    round += 1;
                    checked.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        for _ in 0..20 {
            f.flush();
            std::thread::yield_now();
        }
        while checked.load(Ordering::Relaxed) < 40 {
            std::thread::yield_now();
        }
        stop.store(true, Ordering::Relaxed);
    });
    let st = f.cache_stats(0).unwrap();
    assert!(st.hits > 0 && st.reclaims > 0, "{st:?}");
}
