//! A minimal writer of the Xen-target binary policy format (v24/v30, no MLS),
//! for loader tests that need precise malformations. It writes what
//! checkpolicy writes for a tiny policy: Warden's 13 classes, object_r and
//! system_r, a few types, one user, the 13 initial SIDs.

use xsm::{CLASS_NAMES, INITIAL_SID_NAMES, PERM_NAMES};

/// (source, target, class, specified, data)
pub type Rule = (u16, u16, u16, u16, u32);
/// (expression [(type, bool)], true-list rules, false-list rules)
pub type Cond = (Vec<(u32, u32)>, Vec<Rule>, Vec<Rule>);
/// (permissions, expression [(type, attr, op, names)])
pub type Constraint = (u32, Vec<(u32, u32, u32, Vec<u32>)>);

#[derive(Clone, Debug)]
pub struct Spec {
    pub version: u32,
    pub config: u32,
    /// (name, attribute, bounds)
    pub types: Vec<(String, bool, u32)>,
    /// (source, target, class, specified, data)
    pub avtab: Vec<(u16, u16, u16, u16, u32)>,
    /// bools: (name, state)
    pub bools: Vec<(String, u32)>,
    /// conditionals: (expr [(type, bool)], true rules, false rules)
    pub conds: Vec<Cond>,
    /// class 3 (domain) constraint: (perms, expr [(type, attr, op, names)])
    pub constraint: Option<Constraint>,
    /// (role, type, new role, class)
    pub role_trans: Vec<(u32, u32, u32, u32)>,
    pub filename_trans: u32,
    pub genfs: u32,
    pub range_trans: u32,
    pub permissive: Vec<u32>,
    pub trailing: Vec<u8>,
    /// Write object_r as dominating itself (checkpolicy writes it dominating nothing).
    pub object_r_dom_self: bool,
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            version: 30,
            config: 0,
            types: vec![
                ("xen_t".into(), false, 0),
                ("dom0_t".into(), false, 0),
                ("domain_type".into(), true, 0),
            ],
            avtab: vec![(2, 1, 1, 1, 0x1)],
            bools: vec![],
            conds: vec![],
            constraint: None,
            role_trans: vec![],
            filename_trans: 0,
            genfs: 0,
            range_trans: 0,
            permissive: vec![],
            trailing: vec![],
            object_r_dom_self: false,
        }
    }
}

struct W(Vec<u8>);
impl W {
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.0.extend_from_slice(b);
    }
    fn ebitmap(&mut self, bits: &[u32]) {
        let mut nodes: Vec<(u32, u64)> = Vec::new();
        for &b in bits {
            let s = b & !63;
            match nodes.iter_mut().find(|n| n.0 == s) {
                Some(n) => n.1 |= 1 << (b - s),
                None => nodes.push((s, 1 << (b - s))),
            }
        }
        nodes.sort();
        self.u32(64);
        self.u32(nodes.last().map_or(0, |n| n.0 + 64));
        self.u32(nodes.len() as u32);
        for (s, m) in nodes {
            self.u32(s);
            self.u64(m);
        }
    }
    fn context(&mut self, user: u32, role: u32, ty: u32) {
        self.u32(user);
        self.u32(role);
        self.u32(ty);
        // MLS range written even without MLS: 1 level, sensitivity 0, no categories.
        self.u32(1);
        self.u32(0);
        self.ebitmap(&[]);
    }
    fn avitem(&mut self, r: &(u16, u16, u16, u16, u32)) {
        self.u16(r.0);
        self.u16(r.1);
        self.u16(r.2);
        self.u16(r.3);
        self.u32(r.4);
    }
}

pub fn write(s: &Spec) -> Vec<u8> {
    let mut w = W(Vec::new());
    w.u32(0xf97c_ff8c);
    w.u32(8);
    w.bytes(b"XenFlask");
    w.u32(s.version);
    w.u32(s.config);
    w.u32(8);
    w.u32(if s.version >= 30 { 6 } else { 5 });
    w.ebitmap(&[]);
    w.ebitmap(&s.permissive);
    // commons
    w.u32(0);
    w.u32(0);
    // classes
    w.u32(CLASS_NAMES.len() as u32);
    w.u32(CLASS_NAMES.len() as u32);
    for (i, c) in CLASS_NAMES.iter().enumerate() {
        let perms = PERM_NAMES[i];
        let cons = if i == 2 { s.constraint.as_ref() } else { None };
        w.u32(c.len() as u32);
        w.u32(0);
        w.u32(i as u32 + 1);
        w.u32(perms.len() as u32);
        w.u32(perms.len() as u32);
        w.u32(u32::from(cons.is_some()));
        w.bytes(c.as_bytes());
        for (b, p) in perms.iter().enumerate() {
            w.u32(p.len() as u32);
            w.u32(b as u32 + 1);
            w.bytes(p.as_bytes());
        }
        if let Some((perms, expr)) = cons {
            w.u32(*perms);
            w.u32(expr.len() as u32);
            for (ty, attr, op, names) in expr {
                w.u32(*ty);
                w.u32(*attr);
                w.u32(*op);
                if *ty == 5 {
                    w.ebitmap(names);
                    if s.version >= 29 {
                        w.ebitmap(&[]);
                        w.ebitmap(&[]);
                        w.u32(0);
                    }
                }
            }
        }
        w.u32(0); // validatetrans
        if s.version >= 27 {
            w.u32(0);
            w.u32(0);
            w.u32(0);
        }
        if s.version >= 28 {
            w.u32(0);
        }
    }
    // roles: object_r (1), system_r (2) with all types
    let ntypes = s.types.len() as u32;
    w.u32(2);
    w.u32(2);
    for (v, name) in [(1u32, "object_r"), (2, "system_r")] {
        w.u32(name.len() as u32);
        w.u32(v);
        w.u32(0);
        w.bytes(name.as_bytes());
        if v == 1 && !s.object_r_dom_self {
            w.ebitmap(&[]);
        } else {
            w.ebitmap(&[v - 1]);
        }
        let types: Vec<u32> = if v == 2 {
            (0..ntypes).filter(|&t| !s.types[t as usize].1).collect()
        } else {
            vec![]
        };
        w.ebitmap(&types);
    }
    // types
    w.u32(ntypes);
    w.u32(ntypes);
    for (i, (name, attr, bounds)) in s.types.iter().enumerate() {
        w.u32(name.len() as u32);
        w.u32(i as u32 + 1);
        w.u32(1 | if *attr { 2 } else { 0 });
        w.u32(*bounds);
        w.bytes(name.as_bytes());
    }
    // users
    w.u32(1);
    w.u32(1);
    w.u32(8);
    w.u32(1);
    w.u32(0);
    w.bytes(b"system_u");
    w.ebitmap(&[0, 1]);
    w.u32(1);
    w.u32(0);
    w.ebitmap(&[]);
    w.u32(0);
    w.ebitmap(&[]);
    // bools
    w.u32(s.bools.len() as u32);
    w.u32(s.bools.len() as u32);
    for (i, (name, state)) in s.bools.iter().enumerate() {
        w.u32(i as u32 + 1);
        w.u32(*state);
        w.u32(name.len() as u32);
        w.bytes(name.as_bytes());
    }
    // levels, cats
    for _ in 0..2 {
        w.u32(0);
        w.u32(0);
    }
    // avtab
    w.u32(s.avtab.len() as u32);
    for r in &s.avtab {
        w.avitem(r);
    }
    // conditionals
    w.u32(s.conds.len() as u32);
    for (expr, t, f) in &s.conds {
        w.u32(0);
        w.u32(expr.len() as u32);
        for (ty, b) in expr {
            w.u32(*ty);
            w.u32(*b);
        }
        for list in [t, f] {
            w.u32(list.len() as u32);
            for r in list {
                w.avitem(r);
            }
        }
    }
    // role_trans
    w.u32(s.role_trans.len() as u32);
    for rt in &s.role_trans {
        w.u32(rt.0);
        w.u32(rt.1);
        w.u32(rt.2);
        if s.version >= 26 {
            w.u32(rt.3);
        }
    }
    // role allow
    w.u32(0);
    if s.version >= 25 {
        w.u32(s.filename_trans);
    }
    // ocontexts: initial SIDs (all system_u:system_r:type 1), then empty lists
    w.u32(INITIAL_SID_NAMES.len() as u32);
    for i in (1..=INITIAL_SID_NAMES.len() as u32).rev() {
        w.u32(i);
        w.context(1, 2, 1);
    }
    for _ in 1..(if s.version >= 30 { 6 } else { 5 }) {
        w.u32(0);
    }
    w.u32(s.genfs);
    w.u32(s.range_trans);
    // type_attr_map
    for (i, (_, attr, _)) in s.types.iter().enumerate() {
        let mut bits = vec![i as u32];
        if !attr {
            bits.extend(
                s.types
                    .iter()
                    .enumerate()
                    .filter(|t| t.1.1)
                    .map(|t| t.0 as u32),
            );
        }
        w.ebitmap(&bits);
    }
    w.bytes(&s.trailing);
    w.0
}
