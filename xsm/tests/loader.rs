//! Loader error paths: truncation anywhere, header corruptions, class
//! definition mismatches and handle_unknown.

mod common;

use xsm::flask::Flask;
use xsm::policydb::{HandleUnknown, PolicyDb};
use xsm::{AuditData, Error, LoadErrorKind as K, Sid, perms};

fn put32(img: &mut [u8], at: usize, v: u32) {
    img[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

#[test]
fn every_truncation_is_refused_with_an_offset() {
    for v in ["base24", "mls30"] {
        let img = common::read(&common::build(v));
        PolicyDb::from_bytes(&img).unwrap();
        for len in 0..img.len() {
            let e = PolicyDb::from_bytes(&img[..len]).unwrap_err();
            assert!(e.offset <= len, "{v} len {len}: {e}");
        }
    }
}

#[test]
fn header_errors() {
    let img = common::read(&common::build("base30"));
    type Edit = Box<dyn Fn(&mut Vec<u8>)>;
    let cases: Vec<(Edit, K)> = vec![
        (
            Box::new(|i| put32(i, 0, 0xdeadbeef)),
            K::BadMagic(0xdeadbeef),
        ),
        (
            Box::new(|i| i[8..16].copy_from_slice(b"SE Linux")),
            K::BadTarget("SE Linux".into()),
        ),
        (Box::new(|i| put32(i, 16, 25)), K::UnsupportedVersion(25)),
        (Box::new(|i| put32(i, 20, 8)), K::BadConfig(8)),
        (Box::new(|i| put32(i, 20, 6)), K::BadConfig(6)),
        (
            Box::new(|i| put32(i, 24, 7)),
            K::BadTableSizes {
                sym_num: 7,
                ocon_num: 6,
            },
        ),
        (
            Box::new(|i| put32(i, 28, 5)),
            K::BadTableSizes {
                sym_num: 8,
                ocon_num: 5,
            },
        ),
        (Box::new(|i| i.push(0)), K::TrailingData(1)),
        (
            Box::new(|i| put32(i, 32, 32)),
            K::BadBitmap("map size is not 64"),
        ),
    ];
    for (f, want) in cases {
        let mut i = img.clone();
        f(&mut i);
        let e = PolicyDb::from_bytes(&i).unwrap_err();
        assert_eq!(e.kind, want, "{e}");
    }
    let mut i = img.clone();
    put32(&mut i, 4, 1_000_000);
    assert!(matches!(
        PolicyDb::from_bytes(&i).unwrap_err().kind,
        K::BadTarget(_)
    ));
}

/// Corrupting any single 32-bit word never panics, and what still loads still answers.
#[test]
fn single_word_corruptions_never_panic() {
    let img = common::read(&common::build("mls24"));
    for at in (0..img.len() - 4).step_by(4) {
        for v in [0u32, 1, 0xffff, 0xffff_ffff, 64, 0x8000] {
            let mut i = img.clone();
            put32(&mut i, at, v);
            xsm::fuzzing::exercise_policy(&i);
        }
    }
}

fn conf_with(edit: impl Fn(&str) -> String) -> String {
    let flask = common::manifest().join("../policies/flask");
    let mut s = String::new();
    s += &std::fs::read_to_string(flask.join("security_classes")).unwrap();
    s += &std::fs::read_to_string(flask.join("initial_sids")).unwrap();
    s += &edit(&std::fs::read_to_string(flask.join("access_vectors")).unwrap());
    s += &std::fs::read_to_string(common::manifest().join("tests/policies/base.te")).unwrap();
    s
}

fn compile_u(name: &str, conf: &str, unknown: &str) -> Vec<u8> {
    common::require_checkpolicy();
    let src = common::scratch(&format!("{name}.conf"));
    let out = common::scratch(&format!("{name}.bin"));
    std::fs::write(&src, conf).unwrap();
    let o = std::process::Command::new("checkpolicy")
        .args(["-t", "xen", "-c", "30", "-U", unknown, "-o"])
        .arg(&out)
        .arg(&src)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    common::read(&out)
}

/// A permission is found by name: renamed, it is missing (handle_unknown) and
/// the policy's own name is ignored; moved, it is found at its new bit.
#[test]
fn renamed_permission_is_missing_and_moved_permission_is_found() {
    let conf = conf_with(|av| av.replace("    vcpu_op\n", "    vcpu_ops\n"));
    let reject = compile_u("renamed-reject", &conf, "reject");
    let f = Flask::new(true, None);
    let e = f.load_policy(&reject).unwrap_err();
    let Error::Load(le) = &e else { panic!("{e}") };
    assert!(
        matches!(&le.kind, K::ClassMismatch(m) if m == "missing: domain2:vcpu_op"),
        "{e}"
    );
    assert!(!f.policy_loaded());
    for u in ["deny", "allow"] {
        let img = compile_u(&format!("renamed-{u}"), &conf, u);
        let f = Flask::new(true, None);
        f.load_policy(&img).unwrap();
        assert_eq!(f.definition_check().unwrap().missing, ["domain2:vcpu_op"]);
    }
    // pause and unpause swapped: dom0's `domain { pause unpause ... }` rule is
    // found, and domU_t's own `pause` (not unpause) keeps its meaning.
    let conf = conf_with(|av| av.replace("    pause\n    unpause\n", "    unpause\n    pause\n"));
    let img = compile_u("moved", &conf, "reject");
    let f = Flask::new(true, None);
    f.load_policy(&img).unwrap();
    let def = f.definition_check().unwrap();
    assert!(def.missing.is_empty());
    assert_eq!(
        def.moved,
        ["domain:pause (bit 1 -> 2)", "domain:unpause (bit 2 -> 1)"]
    );
    let ad = AuditData::default();
    let domu = f.context_to_sid(b"system_u:system_r:domU_t").unwrap();
    assert!(f.has_perm(0, domu, domu, perms::domain::PAUSE, &ad).is_ok());
    assert!(
        f.has_perm(0, domu, domu, perms::domain::UNPAUSE, &ad)
            .is_err()
    );
}

#[test]
fn missing_trailing_permission_follows_handle_unknown() {
    // A policy built from Xen's own list (without Warden's version:xen_platform_parameters).
    let conf = conf_with(|av| av.replace("    xen_platform_parameters\n", ""));
    let deny = compile_u("missing-deny", &conf, "deny");
    let allow = compile_u("missing-allow", &conf, "allow");
    let reject = compile_u("missing-reject", &conf, "reject");
    assert_eq!(
        PolicyDb::from_bytes(&allow).unwrap().handle_unknown,
        HandleUnknown::Allow
    );
    let f = Flask::new(true, None);
    let e = f.load_policy(&reject).unwrap_err();
    assert!(
        e.to_string()
            .contains("missing: version:xen_platform_parameters"),
        "{e}"
    );
    let ad = AuditData::default();
    let dom0 = xsm::initial_sid::DOM0;
    let xen = xsm::initial_sid::XEN;
    let domu = Sid::from_raw(12);
    for (img, granted) in [(&deny, false), (&allow, true)] {
        let f = Flask::new(true, None);
        f.load_policy(img).unwrap();
        let miss = f.definition_check().unwrap();
        assert_eq!(miss.missing, ["version:xen_platform_parameters"]);
        // Even dom0 (whose rules say `*`) gets the missing permission only under allow.
        assert_eq!(
            f.has_perm(0, dom0, xen, perms::version::XEN_PLATFORM_PARAMETERS, &ad)
                .is_ok(),
            granted
        );
        assert_eq!(
            f.has_perm(0, domu, xen, perms::version::XEN_PLATFORM_PARAMETERS, &ad)
                .is_ok(),
            granted
        );
        // Defined permissions are unaffected.
        assert!(
            f.has_perm(0, domu, xen, perms::version::XEN_VERSION, &ad)
                .is_err()
        );
    }
}

#[test]
fn missing_initial_sid_context_is_refused() {
    let conf = conf_with(|av| av.to_string()).replace("sid domDM system_u:system_r:dom0_t\n", "");
    let img = compile_u("no-domdm", &conf, "deny");
    let e = Flask::new(true, None).load_policy(&img).unwrap_err();
    assert!(e.to_string().contains("no context for domDM"), "{e}");
}

#[path = "common/writer.rs"]
mod writer;

fn refused(s: &writer::Spec) -> K {
    match PolicyDb::from_bytes(&writer::write(s)) {
        Ok(_) => panic!("accepted: {s:?}"),
        Err(e) => e.kind,
    }
}

#[test]
fn written_baseline_loads_and_agrees_with_libsepol() {
    for version in [24, 30] {
        let s = writer::Spec {
            version,
            ..Default::default()
        };
        let img = writer::write(&s);
        let db = PolicyDb::from_bytes(&img).unwrap_or_else(|e| panic!("v{version}: {e}"));
        assert_eq!(db.types.len(), 3);
        let f = Flask::new(true, None);
        f.load_policy(&img).unwrap();
        sepol_oracle::read_policy_mem(&img).unwrap();
    }
}

/// A policy whose object_r record says it dominates itself (as Warden's
/// policy-compiler used to write it): libsepol and Xen discard that record,
/// so `r1 dom r2` never holds for object_r; Warden must decide the same.
#[test]
fn object_r_dominance_record_is_discarded_as_libsepol_does() {
    let pause = perms::domain::PAUSE.bits();
    let s = writer::Spec {
        // allow dom0_t dom0_t:domain pause; constrain domain pause (r1 dom r2);
        avtab: vec![(2, 1, 1, 1, 0x1), (2, 2, 3, 1, pause)],
        constraint: Some((pause, vec![(4, 2, 3, vec![])])),
        object_r_dom_self: true,
        ..Default::default()
    };
    let img = writer::write(&s);
    let path = common::scratch("object_r_dom.bin");
    std::fs::write(&path, &img).unwrap();
    let db = PolicyDb::from_bytes(&img).unwrap();
    let oracle = sepol_oracle::Oracle::load(&path, &[]).unwrap();
    let cs = xsm::services::CondState::new(&db);
    for (ctx, granted) in [
        ("system_u:object_r:dom0_t", false),
        ("system_u:system_r:dom0_t", true),
    ] {
        let c = xsm::services::parse_context(&db, ctx.as_bytes()).unwrap();
        let ours = xsm::services::compute_av(&db, &cs, &c, &c, 3).allowed & pause;
        let theirs = oracle.compute_av(ctx, ctx, "domain").unwrap().allowed & pause;
        assert_eq!(ours, theirs, "{ctx}");
        assert_eq!(ours != 0, granted, "{ctx}");
    }
    drop(oracle);
    // The same through the server.
    let f = Flask::new(true, None);
    f.load_policy(&img).unwrap();
    let obj = f.context_to_sid(b"system_u:object_r:dom0_t").unwrap();
    let ad = AuditData::default();
    assert!(f.has_perm(0, obj, obj, perms::domain::PAUSE, &ad).is_err());
}

/// A permission name may appear once per class, whether it is one of Warden's
/// names (at its own bit or another) or the policy's own.
#[test]
fn duplicate_permission_names_are_refused() {
    let img = writer::write(&writer::Spec::default());
    let at = img.windows(7).position(|w| w == b"unpause").unwrap();
    for (other, ok) in [(&b"destroy"[..], false), (b"unpaus2", true)] {
        let mut i = img.clone();
        i[at..at + 7].copy_from_slice(other);
        match PolicyDb::from_bytes(&i) {
            Ok(_) => assert!(ok, "{other:?} accepted"),
            Err(e) => {
                assert!(!ok, "{e}");
                assert_eq!(
                    e.kind,
                    K::BadName {
                        what: "permission",
                        name: "destroy".into()
                    }
                );
            }
        }
    }
}

#[test]
fn every_structural_error_is_named() {
    use writer::Spec;
    let d = Spec::default;
    let cases: Vec<(Spec, K)> = vec![
        (
            Spec {
                avtab: vec![],
                ..d()
            },
            K::BadAvtab("table is empty"),
        ),
        (
            Spec {
                avtab: vec![(2, 1, 1, 1, 1), (2, 1, 1, 1, 2)],
                ..d()
            },
            K::BadAvtab("duplicate rule"),
        ),
        (
            Spec {
                avtab: vec![(2, 1, 1, 0x100, 1)],
                ..d()
            },
            K::Unsupported("extended permission rules"),
        ),
        (
            Spec {
                avtab: vec![(2, 1, 1, 3, 1)],
                ..d()
            },
            K::BadAvtab("rule kind is not exactly one of allow/auditallow/dontaudit/type_*"),
        ),
        (
            Spec {
                avtab: vec![(9, 1, 1, 1, 1)],
                ..d()
            },
            K::BadAvtab("rule names an unknown type"),
        ),
        (
            Spec {
                avtab: vec![(2, 1, 14, 1, 1)],
                ..d()
            },
            K::BadAvtab("rule names an unknown class"),
        ),
        (
            Spec {
                avtab: vec![(2, 1, 9, 0x10, 3)],
                ..d()
            },
            K::BadAvtab("type rule result is not a type"),
        ),
        (
            Spec {
                filename_trans: 1,
                ..d()
            },
            K::Unsupported("filename type transitions"),
        ),
        (Spec { genfs: 1, ..d() }, K::Unsupported("genfs contexts")),
        (
            Spec {
                trailing: vec![0; 3],
                ..d()
            },
            K::TrailingData(3),
        ),
        (
            Spec {
                permissive: vec![7],
                ..d()
            },
            K::BadValue {
                what: "permissive type",
                value: 8,
            },
        ),
        (
            Spec {
                types: vec![
                    ("a_t".into(), false, 2),
                    ("b_t".into(), false, 1),
                    ("xen_t".into(), false, 0),
                ],
                ..d()
            },
            K::BadBounds("type a_t: bounds too deep or cyclic".into()),
        ),
        (
            Spec {
                types: vec![
                    ("a_t".into(), false, 3),
                    ("b_t".into(), false, 0),
                    ("at".into(), true, 0),
                ],
                ..d()
            },
            K::BadBounds("type a_t bounded by attribute at".into()),
        ),
        (
            Spec {
                types: vec![("a:t".into(), false, 0), ("b_t".into(), false, 0)],
                ..d()
            },
            K::BadName {
                what: "type",
                name: "a:t".into(),
            },
        ),
        (
            Spec {
                types: vec![("a_t".into(), false, 0), ("a_t".into(), false, 0)],
                ..d()
            },
            K::BadName {
                what: "type",
                name: "a_t".into(),
            },
        ),
        (
            Spec {
                role_trans: vec![(2, 9, 2, 3)],
                ..d()
            },
            K::BadValue {
                what: "role_transition type",
                value: 9,
            },
        ),
        (
            Spec {
                role_trans: vec![(2, 1, 2, 99)],
                ..d()
            },
            K::BadValue {
                what: "role_transition class",
                value: 99,
            },
        ),
        (
            Spec {
                bools: vec![("b".into(), 2)],
                ..d()
            },
            K::BadValue {
                what: "boolean state",
                value: 2,
            },
        ),
        (
            Spec {
                bools: vec![("b".into(), 1)],
                conds: vec![(vec![(1, 2)], vec![], vec![])],
                ..d()
            },
            K::BadAvtab("conditional refers to an unknown boolean"),
        ),
        (
            Spec {
                bools: vec![("b".into(), 1)],
                conds: vec![(vec![(2, 0)], vec![], vec![])],
                ..d()
            },
            K::BadAvtab("conditional `not` on an empty stack"),
        ),
        (
            Spec {
                bools: vec![("b".into(), 1)],
                conds: vec![(vec![(1, 1), (1, 1)], vec![], vec![])],
                ..d()
            },
            K::BadAvtab("conditional expression does not leave one value"),
        ),
        (
            Spec {
                bools: vec![("b".into(), 1)],
                conds: vec![(vec![(9, 1)], vec![], vec![])],
                ..d()
            },
            K::BadAvtab("unknown conditional expression type"),
        ),
        (
            Spec {
                bools: vec![("b".into(), 1)],
                conds: vec![(vec![(1, 1)], vec![(2, 1, 9, 0x10, 1)], vec![])],
                avtab: vec![(2, 1, 9, 0x10, 2)],
                ..d()
            },
            K::BadAvtab("type rule already exists outside of a conditional"),
        ),
        (
            Spec {
                bools: vec![("b".into(), 1), ("c".into(), 0)],
                conds: vec![
                    (vec![(1, 1)], vec![(2, 1, 9, 0x10, 1)], vec![]),
                    (vec![(1, 2)], vec![(2, 1, 9, 0x10, 2)], vec![]),
                ],
                ..d()
            },
            K::BadAvtab("conflicting conditional type rules"),
        ),
        (
            Spec {
                constraint: Some((1, vec![(1, 0, 0, vec![])])),
                ..d()
            },
            K::BadConstraint("`not` on an empty stack"),
        ),
        (
            Spec {
                constraint: Some((1, vec![(4, 1, 1, vec![]), (2, 0, 0, vec![])])),
                ..d()
            },
            K::BadConstraint("`and`/`or` with fewer than two operands"),
        ),
        (
            Spec {
                constraint: Some((1, vec![(4, 1, 3, vec![])])),
                ..d()
            },
            K::BadConstraint("invalid attribute/operator pair"),
        ),
        (
            Spec {
                constraint: Some((1, vec![(4, 32, 1, vec![])])),
                ..d()
            },
            K::BadConstraint("invalid attribute/operator pair"),
        ),
        (
            Spec {
                constraint: Some((1, vec![(5, 4 | 16, 1, vec![0])])),
                ..d()
            },
            K::BadConstraint("xtarget outside validatetrans"),
        ),
        (
            Spec {
                constraint: Some((1, vec![(5, 4, 3, vec![0])])),
                ..d()
            },
            K::BadConstraint("invalid name-set attribute/operator"),
        ),
        (
            Spec {
                constraint: Some((1, vec![(5, 4, 1, vec![40])])),
                ..d()
            },
            K::BadConstraint("name set refers to unknown values"),
        ),
        (
            Spec {
                constraint: Some((1, vec![(6, 0, 0, vec![])])),
                ..d()
            },
            K::BadConstraint("unknown expression type"),
        ),
        (
            Spec {
                constraint: Some((1, vec![(4, 1, 1, vec![]); 6])),
                ..d()
            },
            K::BadConstraint("expression too deep"),
        ),
        (
            Spec {
                constraint: Some((1, vec![(4, 1, 1, vec![]), (4, 1, 1, vec![])])),
                ..d()
            },
            K::BadConstraint("expression does not leave exactly one value"),
        ),
        (
            Spec {
                range_trans: 1,
                ..d()
            },
            K::BadMls("range must have 1 or 2 levels"),
        ),
        (
            Spec {
                range_trans: 1000,
                ..d()
            },
            K::BadLength {
                what: "range_transition count",
                len: 1000,
            },
        ),
    ];
    for (spec, want) in cases {
        assert_eq!(refused(&spec), want, "{spec:?}");
    }
    // And what checkpolicy would never write but is valid is accepted: a
    // constraint that is well formed.
    let ok = writer::Spec {
        constraint: Some((
            1,
            vec![(4, 1, 1, vec![]), (5, 4, 1, vec![0]), (3, 0, 0, vec![])],
        )),
        ..Default::default()
    };
    PolicyDb::from_bytes(&writer::write(&ok)).unwrap();
}

/// A rule table large enough for the loader's counting sorts (more than 64
/// rules), written in a scrambled order, with several rules per (source,
/// target) pair in descending class order and several kinds per key: every
/// (source, target, class) decides exactly as its own rules say; a duplicate
/// anywhere in such a table is refused.
#[test]
fn large_scrambled_rule_tables_decide_by_their_own_rules() {
    let ntypes = 40u16;
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let mut keys = std::collections::BTreeMap::new();
    while keys.len() < 900 {
        let (s, t) = (
            1 + next(u64::from(ntypes)) as u16,
            1 + next(u64::from(ntypes)) as u16,
        );
        // A burst of classes for one pair, highest first, now and then.
        let classes: Vec<u16> = if next(10) == 0 {
            (1..=13).rev().collect()
        } else {
            vec![1 + next(13) as u16]
        };
        for c in classes {
            let kind = [1u16, 2, 4][next(3) as usize];
            keys.insert((s, t, c, kind), 1 + next(0xffff) as u32);
        }
    }
    let mut rules: Vec<(u16, u16, u16, u16, u32)> = keys
        .iter()
        .map(|(&(s, t, c, k), &d)| (s, t, c, k, d))
        .collect();
    // Scramble: reverse, then interleave halves.
    rules.reverse();
    let (a, b) = rules.split_at(rules.len() / 2);
    let rules: Vec<_> = a
        .iter()
        .zip(b)
        .flat_map(|(p, q)| [*q, *p])
        .chain(b.get(a.len()).copied())
        .collect();
    assert_eq!(rules.len(), keys.len());
    let types: Vec<(String, bool, u32)> =
        (1..=ntypes).map(|i| (format!("t{i}"), false, 0)).collect();
    let spec = writer::Spec {
        types: types.clone(),
        avtab: rules.clone(),
        ..Default::default()
    };
    let db = PolicyDb::from_bytes(&writer::write(&spec)).unwrap();
    let cs = xsm::services::CondState::new(&db);
    let ctx = |t: u16| {
        xsm::services::parse_context(&db, format!("system_u:system_r:t{t}").as_bytes()).unwrap()
    };
    let mut checked = 0;
    for s in 1..=ntypes {
        for t in 1..=ntypes {
            let (cs_, ct) = (ctx(s), ctx(t));
            for c in 1..=13u16 {
                let d = xsm::services::compute_av(&db, &cs, &cs_, &ct, u32::from(c));
                let rule = |k: u16| keys.get(&(s, t, c, k)).copied();
                assert_eq!(d.allowed, rule(1).unwrap_or(0), "allow t{s} t{t} {c}");
                assert_eq!(
                    d.auditallow,
                    rule(2).unwrap_or(0),
                    "auditallow t{s} t{t} {c}"
                );
                assert_eq!(
                    d.auditdeny,
                    rule(4).unwrap_or(u32::MAX),
                    "dontaudit t{s} t{t} {c}"
                );
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 40 * 40 * 13);
    // A duplicate far from its twin, and one inside a descending burst.
    for (from, to) in [(3usize, rules.len() - 2), (rules.len() - 1, 10)] {
        let mut dup = rules.clone();
        dup[to] = dup[from];
        let spec = writer::Spec {
            types: types.clone(),
            avtab: dup,
            ..Default::default()
        };
        let e = PolicyDb::from_bytes(&writer::write(&spec)).unwrap_err();
        assert_eq!(e.kind, K::BadAvtab("duplicate rule"), "{from} -> {to}");
    }
}

/// Symbol tables of more than 32 names are sorted by another path (integer
/// keys): a duplicate is still refused at its second record, whether its
/// 8-byte prefix is shared with other names or not, and lookups by name work.
#[test]
fn large_symbol_tables_find_names_and_refuse_duplicates() {
    // Names sharing 8-byte prefixes ("type_long_name_NN") and short ones.
    let mut types: Vec<(String, bool, u32)> = (0..30)
        .map(|i| (format!("type_long_name_{i:02}"), false, 0))
        .chain((0..20).map(|i| (format!("t{i}"), false, 0)))
        .collect();
    types.reverse();
    let spec = writer::Spec {
        types: types.clone(),
        ..Default::default()
    };
    let db = PolicyDb::from_bytes(&writer::write(&spec)).unwrap();
    for (i, (name, _, _)) in types.iter().enumerate() {
        let c = xsm::services::parse_context(&db, format!("system_u:system_r:{name}").as_bytes())
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(c.ty as usize, i + 1, "{name}");
    }
    for (from, to) in [(3usize, 40usize), (45, 1), (10, 20)] {
        let mut dup = types.clone();
        dup[to].0 = dup[from].0.clone();
        let spec = writer::Spec {
            types: dup.clone(),
            ..Default::default()
        };
        let e = PolicyDb::from_bytes(&writer::write(&spec)).unwrap_err();
        assert_eq!(
            e.kind,
            K::BadName {
                what: "type",
                name: dup[from].0.clone()
            },
            "{from} -> {to}"
        );
    }
}
