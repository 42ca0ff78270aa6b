//! The standard binary policy format (Xen target, versions 24 and 30), as
//! libsepol's `policydb_write` lays it out for a kernel policy.

use crate::bits::Bits;
use crate::policydb::*;

pub const POLICYDB_MAGIC: u32 = 0xf97c_ff8c;

struct W(Vec<u8>);

impl W {
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn len(&mut self, n: usize) {
        self.u32(n as u32);
    }
    fn str(&mut self, s: &str) {
        self.0.extend_from_slice(s.as_bytes());
    }
    fn bits(&mut self, b: &Bits) {
        b.write(&mut self.0);
    }
}

fn level(w: &mut W, l: &Level) {
    w.u32(l.sens);
    w.bits(&l.cats);
}

fn range(w: &mut W, r: &MlsRange) {
    let eq = r.low == r.high;
    w.u32(if eq { 1 } else { 2 });
    w.u32(r.low.sens);
    if !eq {
        w.u32(r.high.sens);
    }
    w.bits(&r.low.cats);
    if !eq {
        w.bits(&r.high.cats);
    }
}

fn context(w: &mut W, c: &Ctx) {
    w.u32(c.user);
    w.u32(c.role);
    w.u32(c.ty);
    range(w, &c.range);
}

fn constraints(w: &mut W, v: u32, list: &[ConstraintNode]) {
    for c in list {
        w.u32(c.perms);
        w.len(c.expr.len());
        for e in &c.expr {
            w.u32(e.expr_type);
            w.u32(e.attr);
            w.u32(e.op);
            if e.expr_type == 5 {
                w.bits(&e.names);
                if v >= 29 {
                    w.bits(&e.type_names.types);
                    w.bits(&e.type_names.negset);
                    w.u32(e.type_names.flags);
                }
            }
        }
    }
}

fn avtab_item(w: &mut W, k: &AvKey, d: u32) {
    w.u16(k.src);
    w.u16(k.tgt);
    w.u16(k.class);
    w.u16(k.spec);
    w.u32(d);
}

/// Serialises `db`.
pub fn write(db: &PolicyDb) -> Vec<u8> {
    let v = db.version;
    let mut w = W(Vec::with_capacity(64 * 1024));
    w.u32(POLICYDB_MAGIC);
    w.u32(8);
    w.str("XenFlask");
    w.u32(v);
    w.u32(u32::from(db.mls) | db.handle_unknown);
    w.u32(8);
    w.u32(if v >= 30 { 6 } else { 5 });
    w.bits(&db.polcaps);
    w.bits(&db.permissive);

    // commons
    w.len(db.commons.len());
    w.len(db.commons.len());
    for (i, c) in db.commons.iter().enumerate() {
        w.len(c.name.len());
        w.len(i + 1);
        w.len(c.perms.len());
        w.len(c.perms.len());
        w.str(&c.name);
        for (j, p) in c.perms.iter().enumerate() {
            w.len(p.len());
            w.len(j + 1);
            w.str(p);
        }
    }
    // classes
    w.len(db.classes.len());
    w.len(db.classes.len());
    for (i, c) in db.classes.iter().enumerate() {
        let com = c.common.map(|k| &db.commons[k]);
        let base = com.map(|k| k.perms.len()).unwrap_or(0);
        w.len(c.name.len());
        w.len(com.map(|k| k.name.len()).unwrap_or(0));
        w.len(i + 1);
        w.len(base + c.perms.len());
        w.len(c.perms.len());
        w.len(c.constraints.len());
        w.str(&c.name);
        if let Some(k) = com {
            w.str(&k.name);
        }
        for (j, p) in c.perms.iter().enumerate() {
            w.len(p.len());
            w.len(base + j + 1);
            w.str(p);
        }
        constraints(&mut w, v, &c.constraints);
        w.len(c.validatetrans.len());
        constraints(&mut w, v, &c.validatetrans);
        if v >= 27 {
            w.u32(0);
            w.u32(0);
            w.u32(0);
        }
        if v >= 28 {
            w.u32(0);
        }
    }
    // roles
    w.len(db.roles.len());
    w.len(db.roles.len());
    for (i, r) in db.roles.iter().enumerate() {
        w.len(r.name.len());
        w.len(i + 1);
        w.u32(0);
        w.str(&r.name);
        w.bits(&r.dominates);
        w.bits(&r.types);
    }
    // types (primaries and attributes, then aliases)
    w.len(db.types.len());
    w.len(db.types.len() + db.aliases.len());
    for (i, t) in db.types.iter().enumerate() {
        w.len(t.name.len());
        w.len(i + 1);
        w.u32(if t.attr { 3 } else { 1 });
        w.u32(t.bounds);
        w.str(&t.name);
    }
    for (name, val) in &db.aliases {
        w.len(name.len());
        w.u32(*val);
        w.u32(0);
        w.u32(0);
        w.str(name);
    }
    // users
    w.len(db.users.len());
    w.len(db.users.len());
    for (i, u) in db.users.iter().enumerate() {
        w.len(u.name.len());
        w.len(i + 1);
        w.u32(0);
        w.str(&u.name);
        w.bits(&u.roles);
        range(&mut w, &u.range);
        level(&mut w, &u.dflt);
    }
    // booleans
    w.len(db.bools.len());
    w.len(db.bools.len());
    for (i, (name, state)) in db.bools.iter().enumerate() {
        w.len(i + 1);
        w.u32(u32::from(*state));
        w.len(name.len());
        w.str(name);
    }
    // sensitivities
    w.len(db.sens.iter().filter(|s| !s.alias).count());
    w.len(db.sens.len());
    for s in &db.sens {
        w.len(s.name.len());
        w.u32(u32::from(s.alias));
        w.str(&s.name);
        level(&mut w, &s.level);
    }
    // categories
    w.len(db.cats.iter().filter(|c| !c.alias).count());
    w.len(db.cats.len());
    for c in &db.cats {
        w.len(c.name.len());
        w.u32(c.value);
        w.u32(u32::from(c.alias));
        w.str(&c.name);
    }
    // avtab
    w.len(db.avtab.len());
    for (k, d) in &db.avtab.entries {
        avtab_item(&mut w, k, *d);
    }
    // conditional rules
    w.len(db.conds.len());
    for n in &db.conds {
        w.u32(u32::from(n.cur_state));
        w.len(n.expr.len());
        for (t, b) in &n.expr {
            w.u32(*t);
            w.u32(*b);
        }
        for (list, on) in [(&n.true_list, n.cur_state), (&n.false_list, !n.cur_state)] {
            w.len(list.len());
            for (k, d) in &list.entries {
                let mut k = *k;
                if on {
                    k.spec |= AVTAB_ENABLED;
                }
                avtab_item(&mut w, &k, *d);
            }
        }
    }
    // role transitions and allows
    w.len(db.role_trans.len());
    for (r, t, nr, c) in &db.role_trans {
        w.u32(*r);
        w.u32(*t);
        w.u32(*nr);
        if v >= 26 {
            w.u32(*c);
        }
    }
    w.len(db.role_allow.len());
    for (a, b) in &db.role_allow {
        w.u32(*a);
        w.u32(*b);
    }
    if v >= 25 {
        w.u32(0); // filename transitions
    }
    // ocontexts
    let o = &db.ocons;
    w.len(o.isids.len());
    for (sid, c) in &o.isids {
        w.u32(*sid);
        context(&mut w, c);
    }
    w.len(o.pirqs.len());
    for (n, c) in &o.pirqs {
        w.u32(*n);
        context(&mut w, c);
    }
    w.len(o.ioports.len());
    for (lo, hi, c) in &o.ioports {
        w.u32(*lo);
        w.u32(*hi);
        context(&mut w, c);
    }
    w.len(o.iomems.len());
    for (lo, hi, c) in &o.iomems {
        if v >= 30 {
            w.u64(*lo);
            w.u64(*hi);
        } else {
            w.u32(*lo as u32);
            w.u32(*hi as u32);
        }
        context(&mut w, c);
    }
    w.len(o.pcidevs.len());
    for (n, c) in &o.pcidevs {
        w.u32(*n);
        context(&mut w, c);
    }
    if v >= 30 {
        w.len(o.dtrees.len());
        for (p, c) in &o.dtrees {
            w.len(p.len());
            w.str(p);
            context(&mut w, c);
        }
    }
    w.u32(0); // genfs
    w.len(db.range_trans.len());
    for (s, t, c, r) in &db.range_trans {
        w.u32(*s);
        w.u32(*t);
        w.u32(*c);
        range(&mut w, r);
    }
    for m in &db.type_attr_map {
        w.bits(m);
    }
    w.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(src: &str, version: u32, mls: bool, handle_unknown: u32) -> Vec<u8> {
        let opts = crate::Options {
            version,
            mls,
            handle_unknown,
        };
        crate::compile_str(src, opts, crate::m4::Limits::default()).unwrap()
    }

    const SRC: &str = "class c\nsid k\nclass c { p }\ntype t;\nrole r;\nrole r types t;\nuser u roles r;\n\
        sid k u:r:t\niomemcon 0x1000-0x1fff u:r:t\ndevicetreecon \"/a\" u:r:t\n";

    fn u32_at(b: &[u8], i: usize) -> u32 {
        u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
    }

    #[test]
    fn header_version_config_and_ocontext_count() {
        let b = compile(SRC, 30, false, 2);
        assert_eq!(u32_at(&b, 0), POLICYDB_MAGIC);
        assert_eq!(u32_at(&b, 4), 8);
        assert_eq!(&b[8..16], b"XenFlask");
        assert_eq!(u32_at(&b, 16), 30);
        assert_eq!(u32_at(&b, 20), 2, "reject unknown, no MLS");
        assert_eq!(u32_at(&b, 24), 8, "symbol tables");
        assert_eq!(u32_at(&b, 28), 6, "ocontext kinds at v30 (with devicetree)");
        let b24 = compile(SRC, 24, false, 0);
        assert_eq!(u32_at(&b24, 16), 24);
        assert_eq!(u32_at(&b24, 28), 5, "no devicetree at v24");
        // v30 stores iomem ranges in 64 bits and keeps the devicetree entry
        assert!(b.len() > b24.len());
        assert!(b.windows(2).any(|w| w == b"/a"));
        assert!(!b24.windows(2).any(|w| w == b"/a"));
    }

    #[test]
    fn ebitmaps_are_written_as_libsepol_reads_them() {
        let mut out = Vec::new();
        let mut b = crate::bits::Bits::new();
        b.set(70);
        b.write(&mut out);
        assert_eq!(u32_at(&out, 0), 64);
        assert_eq!(u32_at(&out, 4), 128, "highbit = end of the last node");
        assert_eq!(u32_at(&out, 8), 1);
        assert_eq!(u32_at(&out, 12), 64, "node start");
        assert_eq!(u64::from_le_bytes(out[16..24].try_into().unwrap()), 1 << 6);
    }
}
