//! Policies built from Xen's own vocabularies (Xen 4.17's access vectors and
//! master's), not Warden's: they load, classes and permissions are matched by
//! name, what Warden checks and the policy lacks follows handle_unknown, and
//! every decision agrees with libsepol's for the permission of the same name.
//!
//! The vocabularies are derived, not copied: Xen 4.17's is Warden's definition
//! without Warden's own permissions ([`xsm::XEN_PERM_COUNTS`], checked here
//! against facts from Xen 4.17's xen/xsm/flask/policy/access_vectors);
//! master's is 4.17's with master's changes applied. The policy body
//! (`tests/policies/xen_vocab.te`) is written for these tests.

mod common;

use std::collections::HashMap;

use sepol_oracle::Oracle;
use xsm::policydb::PolicyDb;
use xsm::services;
use xsm::{AuditData, ClassId, Flask, HandleUnknown, PERM_NAMES, Sid, XEN_PERM_COUNTS, perms};

const CLASSES: [&str; 13] = [
    "xen", "xen2", "domain", "domain2", "hvm", "mmu", "resource", "shadow", "event", "grant",
    "security", "version", "argo",
];

/// Xen 4.17's access vectors, in its syntax.
fn av_417() -> Vec<(String, Vec<String>)> {
    CLASSES
        .iter()
        .enumerate()
        .map(|(i, c)| {
            (
                c.to_string(),
                PERM_NAMES[i][..XEN_PERM_COUNTS[i]]
                    .iter()
                    .map(|p| p.to_string())
                    .collect(),
            )
        })
        .collect()
}

/// Master's: xen drops privprofile and nonprivprofile, xen2 drops
/// get_cpu_levelling_caps and adds get_dom0_console, domain2 adds four.
fn av_master() -> Vec<(String, Vec<String>)> {
    let mut v = av_417();
    for (c, ps) in &mut v {
        match c.as_str() {
            "xen" => ps.retain(|p| p != "privprofile" && p != "nonprivprofile"),
            "xen2" => {
                ps.retain(|p| p != "get_cpu_levelling_caps");
                ps.push("get_dom0_console".into());
            }
            "domain2" => {
                for p in [
                    "vuart_op",
                    "dt_overlay",
                    "set_llc_colors",
                    "get_domain_state",
                ] {
                    ps.push(p.into());
                }
            }
            _ => {}
        }
    }
    v
}

fn av_text(av: &[(String, Vec<String>)]) -> String {
    let mut s = String::new();
    for (c, ps) in av {
        s += &format!("class {c}\n{{\n");
        for p in ps {
            s += &format!("    {p}\n");
        }
        s += "}\n";
    }
    s
}

fn conf(av: &[(String, Vec<String>)]) -> String {
    let flask = common::manifest().join("../policies/flask");
    let mut s = String::new();
    for f in ["security_classes", "initial_sids"] {
        s += &std::fs::read_to_string(flask.join(f)).unwrap();
    }
    s += &av_text(av);
    s += &std::fs::read_to_string(common::manifest().join("tests/policies/xen_vocab.te")).unwrap();
    s
}

fn compile(name: &str, conf: &str, version: u32, unknown: &str) -> std::path::PathBuf {
    common::require_checkpolicy();
    let src = common::scratch(&format!("{name}.conf"));
    let out = common::scratch(&format!("{name}.bin"));
    std::fs::write(&src, conf).unwrap();
    let o = std::process::Command::new("checkpolicy")
        .args(["-t", "xen", "-c", &version.to_string(), "-U", unknown, "-o"])
        .arg(&out)
        .arg(&src)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "checkpolicy: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// Warden's own permissions: what a policy in Xen 4.17's vocabulary lacks.
const WARDEN_OWN: [&str; 9] = [
    "xen2:livepatch_upload",
    "xen2:livepatch_action",
    "domain2:sched_self",
    "domain2:vcpu_op",
    "domain2:evtchn_self",
    "security:getsecparam",
    "version:xen_version",
    "version:xen_get_features",
    "version:xen_platform_parameters",
];

#[test]
fn definition_is_xen_417_then_wardens_own() {
    // Facts from Xen 4.17's xen/xsm/flask/policy/access_vectors: the number of
    // permissions per class and the bits of those that moved since older Xens.
    assert_eq!(
        XEN_PERM_COUNTS,
        [31, 10, 30, 23, 12, 13, 18, 3, 5, 7, 11, 8, 4]
    );
    assert_eq!(xsm::CLASS_NAMES, CLASSES);
    let bit = |p: u32| p.trailing_zeros();
    assert_eq!(bit(perms::xen::HYPFS_OP.bits()), 28);
    assert_eq!(bit(perms::xen::GETSCHEDULER.bits()), 29);
    assert_eq!(bit(perms::xen::SETSCHEDULER.bits()), 30);
    assert_eq!(bit(perms::xen2::COVERAGE_OP.bits()), 9);
    assert_eq!(bit(perms::domain::GETPAGINGMEMPOOL.bits()), 28);
    assert_eq!(bit(perms::domain::SETPAGINGMEMPOOL.bits()), 29);
    assert_eq!(bit(perms::domain2::SET_CPU_POLICY.bits()), 5);
    assert_eq!(bit(perms::domain2::CACHEFLUSH.bits()), 10);
    assert_eq!(bit(perms::domain2::RESOURCE_MAP.bits()), 21);
    assert_eq!(bit(perms::domain2::GET_CPU_POLICY.bits()), 22);
    assert_eq!(bit(perms::hvm::ALTP2MHVM.bits()), 9);
    assert_eq!(bit(perms::hvm::DM.bits()), 11);
    assert_eq!(bit(perms::version::XEN_BUILD_ID.bits()), 7);
    // Warden's own come after Xen's last.
    let own: Vec<String> = CLASSES
        .iter()
        .enumerate()
        .flat_map(|(i, c)| {
            PERM_NAMES[i][XEN_PERM_COUNTS[i]..]
                .iter()
                .map(move |p| format!("{c}:{p}"))
        })
        .collect();
    assert_eq!(own, WARDEN_OWN);
}

/// libsepol's bit for each (class, permission) name, from its own symbol tables.
fn sepol_bits(oracle: &Oracle) -> HashMap<(String, String), u32> {
    let mut m = HashMap::new();
    for line in oracle.info() {
        let mut w = line.split_whitespace();
        if w.next() != Some("class") {
            continue;
        }
        let c = w.next().unwrap().to_string();
        let _value = w.next();
        for pv in w {
            let (p, v) = pv.split_once('=').unwrap();
            m.insert((c.clone(), p.to_string()), v.parse::<u32>().unwrap() - 1);
        }
    }
    m
}

fn contexts(db: &PolicyDb) -> Vec<String> {
    let mut out = Vec::new();
    for t in db.types.iter().filter(|t| !t.attribute) {
        for u in &db.users {
            for r in &db.roles {
                let c = format!("{}:{}:{}", u.name, r.name, t.name);
                if services::parse_context(db, c.as_bytes()).is_ok() {
                    out.push(c);
                }
            }
        }
    }
    out
}

/// Every decision of Warden's server on `path`, per Warden permission, equals
/// libsepol's for the permission of that name (or handle_unknown if the
/// policy lacks it), through the uncached path and through the AVC.
fn differential(name: &str, path: &std::path::Path, allow_unknown: bool) -> usize {
    let img = common::read(path);
    let db = PolicyDb::from_bytes(&img).unwrap();
    let ctxs = contexts(&db);
    assert!(ctxs.len() >= 10, "{name}: {} contexts", ctxs.len());
    let mut compared = 0;
    for value in [true, false] {
        let f = Flask::new(true, None);
        f.load_policy(&img).unwrap();
        f.set_bool(1, value, true).unwrap();
        let oracle = Oracle::load(path, &[("guest_writeconsole".into(), value)]).unwrap();
        let bits = sepol_bits(&oracle);
        let sids: Vec<Sid> = ctxs
            .iter()
            .map(|c| f.context_to_sid(c.as_bytes()).unwrap())
            .collect();
        for (si, sc) in ctxs.iter().enumerate() {
            for (ti, tc) in ctxs.iter().enumerate() {
                for (ci, cname) in CLASSES.iter().enumerate() {
                    let class = ClassId::from_raw(ci as u32 + 1).unwrap();
                    let theirs = oracle.compute_av(sc, tc, cname).unwrap();
                    let ours = f.compute_av_effective(sids[si], sids[ti], class).unwrap();
                    let mut want = (0u32, 0u32);
                    for (b, p) in PERM_NAMES[ci].iter().enumerate() {
                        match bits.get(&(cname.to_string(), p.to_string())) {
                            Some(&pb) => {
                                want.0 |= ((theirs.allowed >> pb) & 1) << b;
                                want.1 |= ((theirs.auditallow >> pb) & 1) << b;
                            }
                            None => want.0 |= u32::from(allow_unknown) << b,
                        }
                    }
                    assert_eq!(
                        (ours.allowed, ours.auditallow),
                        want,
                        "{name} {sc} {tc} {cname}"
                    );
                    // The same through the AVC (Flask::check), all permissions at once.
                    let all = (1u64 << PERM_NAMES[ci].len()) as u32 - 1;
                    let got =
                        match f.check(0, sids[si], sids[ti], class, all, &AuditData::default()) {
                            Ok(_) => all,
                            Err(d) => all & !d.denied,
                        };
                    assert_eq!(got, want.0, "{name} AVC {sc} {tc} {cname}");
                    // And the raw decision (xsm_op ACCESS) in the policy's own
                    // values is libsepol's, bit for bit.
                    let pv = db.class_value(cname).unwrap();
                    let raw = f.compute_av(sids[si], sids[ti], pv).unwrap();
                    assert_eq!(
                        (raw.allowed, raw.auditallow, raw.auditdeny),
                        (theirs.allowed, theirs.auditallow, theirs.auditdeny),
                        "{name} raw {sc} {tc} {cname}"
                    );
                    compared += 1;
                }
            }
        }
    }
    compared
}

#[test]
fn xen_417_and_master_policies_load_and_agree_with_libsepol() {
    let master_missing: Vec<String> = [
        "xen:privprofile",
        "xen:nonprivprofile",
        "xen2:get_cpu_levelling_caps",
    ]
    .iter()
    .chain(WARDEN_OWN.iter())
    .map(|s| s.to_string())
    .collect();
    let own: Vec<String> = WARDEN_OWN.iter().map(|s| s.to_string()).collect();
    let mut compared = 0;
    for (vocab, av, missing) in [
        ("417", av_417(), &own),
        ("master", av_master(), &master_missing),
    ] {
        let conf = conf(&av);
        for version in [24, 30] {
            // reject: refused, naming every missing permission.
            let name = format!("xen{vocab}-{version}");
            let p = compile(&format!("{name}-reject"), &conf, version, "reject");
            let f = Flask::new(true, None);
            let e = f.load_policy(&common::read(&p)).unwrap_err().to_string();
            assert!(
                e.contains(&format!("missing: {}", missing.join(", "))),
                "{name}: {e}"
            );
            assert!(!f.policy_loaded());
            for (hu, allow) in [("deny", false), ("allow", true)] {
                let p = compile(&format!("{name}-{hu}"), &conf, version, hu);
                let f = Flask::new(true, None);
                f.load_policy(&common::read(&p)).unwrap();
                let def = f.definition_check().unwrap();
                assert_eq!(&def.missing, missing, "{name}-{hu}");
                let db = PolicyDb::from_bytes(&common::read(&p)).unwrap();
                assert_eq!(
                    db.handle_unknown,
                    if allow {
                        HandleUnknown::Allow
                    } else {
                        HandleUnknown::Deny
                    }
                );
                // Master's vocabulary moves bits: matched by name, not position.
                assert_eq!(
                    def.moved.is_empty(),
                    vocab == "417",
                    "{name}: {:?}",
                    def.moved
                );
                compared += differential(&format!("{name}-{hu}"), &p, allow);
            }
        }
    }
    assert!(compared > 10_000, "{compared}");
}

/// The gate's checks mean the same permission under a master-vocabulary
/// policy: dom0 may set a domU's paging mempool and map its resources (moved
/// bits), a device model may map resources but not set the CPU policy.
#[test]
fn moved_permissions_keep_their_meaning() {
    let p = compile("moved-master", &conf(&av_master()), 30, "deny");
    let f = Flask::new(true, None);
    f.load_policy(&common::read(&p)).unwrap();
    let ad = AuditData::default();
    let sid = |c: &str| f.context_to_sid(c.as_bytes()).unwrap();
    let dom0 = sid("system_u:system_r:dom0_t");
    let domu = sid("system_u:vm_r:domU_t");
    let dm = sid("system_u:system_r:dm_dom_t");
    let xen = sid("system_u:system_r:xen_t");
    assert!(
        f.has_perm(0, dom0, domu, perms::domain::SETPAGINGMEMPOOL, &ad)
            .is_ok()
    );
    assert!(
        f.has_perm(
            0,
            dom0,
            domu,
            perms::domain2::RESOURCE_MAP | perms::domain2::GET_CPU_POLICY,
            &ad
        )
        .is_ok()
    );
    assert!(
        f.has_perm(0, dm, domu, perms::domain2::RESOURCE_MAP, &ad)
            .is_ok()
    );
    assert!(
        f.has_perm(0, dm, domu, perms::domain2::SET_CPU_POLICY, &ad)
            .is_err()
    );
    assert!(
        f.has_perm(
            0,
            dom0,
            xen,
            perms::xen::HYPFS_OP | perms::xen::SETSCHEDULER,
            &ad
        )
        .is_ok()
    );
    assert!(
        f.has_perm(0, domu, xen, perms::xen::SETSCHEDULER, &ad)
            .is_err()
    );
    // Dropped by master and reached only by `*`: denied under handle_unknown=deny.
    let xenboot = sid("system_u:system_r:xenboot_t");
    assert!(
        f.has_perm(0, dom0, xenboot, perms::xen::SETTIME, &ad)
            .is_ok()
    );
    assert!(
        f.has_perm(0, dom0, xenboot, perms::xen::PRIVPROFILE, &ad)
            .is_err()
    );
    // Warden's own: denied (handle_unknown=deny), even to dom0.
    assert!(
        f.has_perm(0, domu, domu, perms::domain2::SCHED_SELF, &ad)
            .is_err()
    );
}
