//! Property: whatever the policy and the sequence of checks, flushes, mode
//! changes and boolean commits, the AVC's answer equals the uncached
//! security server's (compute_av + mode + permissive types).

mod common;

use proptest::prelude::*;
use xsm::{AuditData, ClassId, Flask, Sid};

const CLASSES: [u32; 3] = [3, 9, 10]; // domain, event, grant

#[derive(Clone, Debug)]
struct Rule {
    kind: u8, // 0 allow, 1 auditallow, 2 dontaudit
    s: usize,
    t: usize,
    class: usize,
    perms: u32,
    cond: Option<(usize, bool)>,
}

#[derive(Clone, Debug)]
struct Spec {
    ntypes: usize,
    attr: Vec<bool>,
    nbools: usize,
    permissive: Option<usize>,
    rules: Vec<Rule>,
}

#[derive(Clone, Debug)]
enum Op {
    Check {
        s: usize,
        t: usize,
        class: usize,
        perms: u32,
        cpu: usize,
    },
    Flush,
    Enforce(bool),
    Bool(usize, bool),
}

fn spec() -> impl Strategy<Value = Spec> {
    (3usize..7, 0usize..3).prop_flat_map(|(n, nb)| {
        let rule = (
            0u8..3,
            0..n + 1,
            0..n + 1,
            0usize..3,
            1u32..0x1f,
            prop::option::of((0..nb.max(1), any::<bool>())),
        )
            .prop_map(move |(kind, s, t, class, perms, cond)| Rule {
                kind,
                s,
                t,
                class,
                perms,
                cond: if nb == 0 { None } else { cond },
            });
        (
            Just(n),
            prop::collection::vec(any::<bool>(), n),
            Just(nb),
            prop::option::of(0..n),
            prop::collection::vec(rule, 1..25),
        )
            .prop_map(|(ntypes, attr, nbools, permissive, rules)| Spec {
                ntypes,
                attr,
                nbools,
                permissive,
                rules,
            })
    })
}

fn ops(n: usize) -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        8 => (0..n, 0..n, 0usize..3, 1u32..0x1f, 0usize..4).prop_map(|(s, t, class, perms, cpu)| Op::Check { s, t, class, perms, cpu }),
        1 => Just(Op::Flush),
        1 => any::<bool>().prop_map(Op::Enforce),
        1 => (0usize..2, any::<bool>()).prop_map(|(b, v)| Op::Bool(b, v)),
    ];
    prop::collection::vec(op, 1..120)
}

fn conf(spec: &Spec) -> String {
    let name = |i: usize| {
        if i == spec.ntypes {
            "any_t".to_string()
        } else {
            format!("t{i}_t")
        }
    };
    let mut body = String::from("attribute any_t;\n");
    for i in 0..spec.ntypes {
        body += &format!(
            "type t{i}_t{};\n",
            if spec.attr[i] { ", any_t" } else { "" }
        );
    }
    for b in 0..spec.nbools {
        body += &format!("bool b{b} {};\n", b % 2 == 0);
    }
    if let Some(p) = spec.permissive {
        body += &format!("permissive t{p}_t;\n");
    }
    let mut conds: Vec<(usize, bool, String)> = Vec::new();
    for r in &spec.rules {
        let cname = xsm::CLASS_NAMES[CLASSES[r.class] as usize - 1];
        let pn = ClassId::from_raw(CLASSES[r.class]).unwrap().perm_names();
        let perms: Vec<&str> = (0..5)
            .filter(|b| r.perms & (1 << b) != 0)
            .map(|b| pn[b])
            .collect();
        let kw = ["allow", "auditallow", "dontaudit"][r.kind as usize];
        let line = format!(
            "{kw} {} {}:{cname} {{ {} }};\n",
            name(r.s),
            name(r.t),
            perms.join(" ")
        );
        match r.cond {
            Some((b, when)) if b < spec.nbools => conds.push((b, when, line)),
            _ => body += &line,
        }
    }
    // Every policy needs at least one unconditional rule.
    body += "allow t0_t t0_t:xen settime;\n";
    for (b, when, line) in conds {
        if when {
            body += &format!("if (b{b}) {{ {line} }}\n");
        } else {
            body += &format!("if (!b{b}) {{ {line} }}\n");
        }
    }
    body += "role system_r;\nrole system_r types any_t;\n";
    for i in 0..spec.ntypes {
        body += &format!("role system_r types t{i}_t;\n");
    }
    body += "user system_u roles { system_r };\n";
    for s in xsm::INITIAL_SID_NAMES {
        body += &format!("sid {s} system_u:system_r:t0_t\n");
    }
    let flask = common::manifest().join("../policies/flask");
    let mut s = String::new();
    for f in ["security_classes", "initial_sids", "access_vectors"] {
        s += &std::fs::read_to_string(flask.join(f)).unwrap();
    }
    s + &body
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]
    #[test]
    fn avc_equals_uncached(spec in spec(), ops in ops(6)) {
        let img = common::read(&common::compile("prop", &conf(&spec), 30, false));
        let f = Flask::new(true, None);
        f.load_policy(&img).unwrap();
        f.set_avc_threshold(4).unwrap();
        let sids: Vec<Sid> = (0..spec.ntypes)
            .map(|i| f.context_to_sid(format!("system_u:system_r:t{i}_t").as_bytes()).unwrap())
            .collect();
        let mut enforcing = true;
        for op in ops {
            match op {
                Op::Check { s, t, class, perms, cpu } => {
                    let (s, t) = (sids[s % spec.ntypes], sids[t % spec.ntypes]);
                    let c = ClassId::from_raw(CLASSES[class]).unwrap();
                    let d = f.compute_av_effective(s, t, c).unwrap();
                    let denied = perms & !d.allowed;
                    let want_ok = denied == 0 || !enforcing || d.permissive;
                    let got = f.check(cpu, s, t, c, perms, &AuditData::default());
                    prop_assert_eq!(got.is_ok(), want_ok, "{:?}", d);
                    if let Ok(p) = got {
                        prop_assert_eq!(p, denied != 0);
                    }
                }
                Op::Flush => f.flush(),
                Op::Enforce(e) => {
                    f.set_enforcing(e);
                    enforcing = e;
                }
                Op::Bool(b, v) => {
                    if b < spec.nbools {
                        f.set_bool(b as u32 + 1, v, true).unwrap();
                    }
                }
            }
        }
    }
}
