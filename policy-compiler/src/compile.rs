//! Semantic analysis: resolves symbols and expands rules exactly as checkpolicy's
//! expander does for a kernel (Xen) policy, so that libsepol computes the same
//! decisions from our binary as from checkpolicy's.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use rustc_hash::{FxHashMap as FxMap, FxHashSet as FxSet};

use crate::ast::{self, AvKind, CExpr, CondExpr, Ident, Names, Te, TypeRuleKind};
use crate::bits::Bits;
use crate::diag::{Diagnostic, Errors, Pos};
use crate::policydb::*;

/// Compiler options that change the output.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub version: u32,
    pub mls: bool,
    pub handle_unknown: u32,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            version: 30,
            mls: false,
            handle_unknown: 0,
        }
    }
}

/// libsepol's policy capability names, by bit.
pub const POLICYCAPS: &[&str] = &[
    "network_peer_controls",
    "open_perms",
    "extended_socket_class",
    "always_check_network",
    "cgroup_seclabel",
    "nnp_nosuid_transition",
    "genfs_seclabel_symlinks",
    "ioctl_skip_cloexec",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TSym {
    Type(u32),
    Attr(u32),
    Alias(u32),
}

enum KeySet<'a> {
    One(usize),
    Many(&'a Bits),
}

fn first_in(k: &KeySet<'_>, b: &Bits) -> Option<usize> {
    match k {
        KeySet::One(i) => b.get(*i).then_some(*i),
        KeySet::Many(m) => m.intersection(b).first(),
    }
}

struct NeverRec {
    src: Bits,
    tgt: Bits,
    selfp: bool,
    perms: Vec<(usize, u32)>,
    pos: Pos,
}

pub struct Compiler {
    pub db: PolicyDb,
    opts: Options,
    errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
    class_map: FxMap<Rc<str>, usize>,
    /// per class: permission name -> value
    perm_maps: Vec<FxMap<String, u32>>,
    sid_map: FxMap<Rc<str>, usize>,
    sid_names: Vec<String>,
    types: FxMap<Rc<str>, TSym>,
    roles: FxMap<Rc<str>, usize>,
    users: FxMap<Rc<str>, usize>,
    bools: FxMap<Rc<str>, usize>,
    sens: FxMap<Rc<str>, usize>,
    /// sensitivity value -> allowed categories (from `level`)
    sens_cats: HashMap<u32, Bits>,
    cats: FxMap<Rc<str>, u32>,
    nevers: Vec<NeverRec>,
    /// type rules for conflict detection: key -> (new type, pos)
    type_rules: HashMap<AvKey, (u32, Pos)>,
    role_trans_seen: HashMap<(u32, u32, u32), (u32, Pos)>,
    range_trans_seen: HashMap<(u32, u32, u32), Pos>,
    /// role_transition / devicetreecon statements version 24 cannot hold
    dropped_for_v24: Vec<(Pos, String)>,
}

type R<T> = Result<T, Diagnostic>;

fn err(pos: Pos, msg: impl Into<String>) -> Diagnostic {
    Diagnostic::error(Some(pos), msg)
}

impl Compiler {
    pub fn new(opts: Options) -> Compiler {
        Compiler {
            db: PolicyDb {
                version: opts.version,
                mls: opts.mls,
                handle_unknown: opts.handle_unknown,
                ..PolicyDb::default()
            },
            opts,
            errors: Vec::new(),
            warnings: Vec::new(),
            class_map: FxMap::default(),
            perm_maps: Vec::new(),
            sid_map: FxMap::default(),
            sid_names: Vec::new(),
            types: FxMap::default(),
            roles: FxMap::default(),
            users: FxMap::default(),
            bools: FxMap::default(),
            sens: FxMap::default(),
            sens_cats: HashMap::new(),
            cats: FxMap::default(),
            nevers: Vec::new(),
            type_rules: HashMap::new(),
            role_trans_seen: HashMap::new(),
            range_trans_seen: HashMap::new(),
            dropped_for_v24: Vec::new(),
        }
    }

    fn fail(&mut self, d: Diagnostic) {
        if self.errors.len() < 100 {
            self.errors.push(d);
        }
    }

    /// Compiles a parsed policy.
    pub fn compile(mut self, p: &ast::Policy) -> Result<(PolicyDb, Vec<Diagnostic>), Errors> {
        self.declare_classes(p);
        if !self.errors.is_empty() {
            return Err(Errors(self.errors));
        }
        self.perm_maps = (0..self.db.classes.len())
            .map(|c| {
                (1..=self.db.class_nperms(c) as u32)
                    .filter_map(|v| self.db.perm_name(c, v).map(|n| (n.to_string(), v)))
                    .collect()
            })
            .collect();
        self.mls(p);
        // object_r dominates nothing, as checkpolicy writes it (libsepol and
        // Xen discard the record and keep a built-in object_r with empty sets).
        self.db.roles.push(Role {
            name: "object_r".into(),
            types: Bits::new(),
            dominates: Bits::new(),
        });
        self.roles.insert("object_r".into(), 0);
        self.declare_te(&p.te);
        if !self.errors.is_empty() {
            return Err(Errors(self.errors));
        }
        for s in &p.te {
            if let Err(d) = self.rule(s, None) {
                self.fail(d);
            }
        }
        for u in &p.users {
            if let Err(d) = self.user(u) {
                self.fail(d);
            }
        }
        self.finish_types();
        for c in &p.constraints {
            if let Err(d) = self.constraint(c) {
                self.fail(d);
            }
        }
        self.sid_contexts(p);
        self.ocontexts(p);
        if !self.errors.is_empty() {
            return Err(Errors(self.errors));
        }
        self.check_neverallow();
        self.check_bounds();
        if !self.errors.is_empty() {
            return Err(Errors(self.errors));
        }
        if self.opts.version < 26 {
            for (pos, what) in std::mem::take(&mut self.dropped_for_v24) {
                self.warnings.push(Diagnostic::warning(
                    Some(pos),
                    format!("policy version {} cannot hold this {what}; it is left out of the binary (use -c 30 to keep it)", self.opts.version),
                ));
            }
        }
        Ok((self.db, self.warnings))
    }

    // ---------------------------------------------------------------- classes

    fn declare_classes(&mut self, p: &ast::Policy) {
        for c in &p.classes {
            if self.class_map.contains_key(&c.name) {
                self.fail(err(
                    c.pos,
                    format!("duplicate declaration of class `{}`", c.name),
                ));
                continue;
            }
            self.class_map.insert(c.name.clone(), self.db.classes.len());
            self.db.classes.push(Class {
                name: c.name.to_string(),
                common: None,
                perms: Vec::new(),
                constraints: Vec::new(),
                validatetrans: Vec::new(),
            });
        }
        for s in &p.sids {
            if self.sid_map.contains_key(&s.name) {
                self.fail(err(
                    s.pos,
                    format!("duplicate declaration of initial SID `{}`", s.name),
                ));
                continue;
            }
            self.sid_map.insert(s.name.clone(), self.sid_names.len());
            self.sid_names.push(s.name.to_string());
        }
        let mut commons: FxMap<Rc<str>, usize> = FxMap::default();
        for (name, perms) in &p.commons {
            if commons.contains_key(&name.name) {
                self.fail(err(
                    name.pos,
                    format!("duplicate declaration of common `{}`", name.name),
                ));
                continue;
            }
            let mut seen = HashSet::new();
            for q in perms {
                if !seen.insert(q.name.clone()) {
                    self.fail(err(
                        q.pos,
                        format!(
                            "duplicate permission `{}` in common `{}`",
                            q.name, name.name
                        ),
                    ));
                }
            }
            if perms.len() > 32 {
                self.fail(err(
                    name.pos,
                    format!(
                        "common `{}` has {} permissions; at most 32 fit an access vector",
                        name.name,
                        perms.len()
                    ),
                ));
            }
            commons.insert(name.name.clone(), self.db.commons.len());
            self.db.commons.push(Common {
                name: name.name.to_string(),
                perms: perms.iter().map(|q| q.name.to_string()).collect(),
            });
        }
        let mut defined = HashSet::new();
        for (name, inherits, perms) in &p.av_classes {
            let Some(&ci) = self.class_map.get(&name.name) else {
                self.fail(err(
                    name.pos,
                    format!(
                        "class `{}` is not declared (add `class {}` to the class declarations)",
                        name.name, name.name
                    ),
                ));
                continue;
            };
            if !defined.insert(ci) {
                self.fail(err(
                    name.pos,
                    format!("duplicate permission definition for class `{}`", name.name),
                ));
                continue;
            }
            let mut seen: FxSet<Rc<str>> = FxSet::default();
            if let Some(inh) = inherits {
                match commons.get(&inh.name) {
                    Some(&k) => {
                        self.db.classes[ci].common = Some(k);
                        seen.extend(
                            self.db.commons[k]
                                .perms
                                .iter()
                                .map(|p| Rc::from(p.as_str())),
                        );
                    }
                    None => self.fail(err(inh.pos, format!("unknown common `{}`", inh.name))),
                }
            }
            for q in perms {
                if !seen.insert(q.name.clone()) {
                    self.fail(err(
                        q.pos,
                        format!("duplicate permission `{}` in class `{}`", q.name, name.name),
                    ));
                }
            }
            self.db.classes[ci].perms = perms.iter().map(|q| q.name.to_string()).collect();
            if seen.len() > 32 {
                self.fail(err(
                    name.pos,
                    format!(
                        "class `{}` has {} permissions; at most 32 fit an access vector",
                        name.name,
                        seen.len()
                    ),
                ));
            }
        }
    }

    fn class(&self, id: &Ident) -> R<usize> {
        self.class_map
            .get(&id.name)
            .copied()
            .ok_or_else(|| err(id.pos, format!("unknown class `{}`", id.name)))
    }

    fn classes(&self, n: &Names) -> R<Vec<usize>> {
        if n.star || n.comp {
            let mut all: Vec<usize> = (0..self.db.classes.len()).collect();
            if n.comp {
                let mut ex = HashSet::new();
                for (_, i) in &n.items {
                    ex.insert(self.class(i)?);
                }
                all.retain(|c| !ex.contains(c));
            }
            return Ok(all);
        }
        let mut v = Vec::new();
        let mut neg = HashSet::new();
        for (negated, i) in &n.items {
            let c = self.class(i)?;
            if *negated {
                neg.insert(c);
            } else if !v.contains(&c) {
                v.push(c);
            }
        }
        v.retain(|c| !neg.contains(c));
        Ok(v)
    }

    fn perms(&self, c: usize, n: &Names) -> R<u32> {
        if n.star {
            return Ok(u32::MAX);
        }
        let mut v = 0u32;
        for (negated, i) in &n.items {
            let Some(pv) = self.perm_maps.get(c).and_then(|m| m.get(&*i.name)).copied() else {
                return Err(err(
                    i.pos,
                    format!(
                        "permission `{}` is not defined for class `{}`",
                        i.name, self.db.classes[c].name
                    ),
                ));
            };
            if *negated {
                return Err(err(i.pos, "`-` is not allowed in a permission set"));
            }
            v |= 1 << (pv - 1);
        }
        Ok(if n.comp { !v } else { v })
    }

    // ---------------------------------------------------------------- MLS

    fn level(&self, l: &ast::Level) -> R<Level> {
        let Some(&si) = self.sens.get(&l.sens.name) else {
            return Err(err(
                l.sens.pos,
                format!("unknown sensitivity `{}`", l.sens.name),
            ));
        };
        let sv = self.db.sens[si].level.sens;
        let allowed = self.sens_cats.get(&sv).cloned().unwrap_or_default();
        let mut cats = Bits::new();
        for c in &l.cats {
            let (lo, hi) = match c.name.split_once('.') {
                Some((a, b)) => (a, b),
                None => (&*c.name, &*c.name),
            };
            let lv = *self
                .cats
                .get(lo)
                .ok_or_else(|| err(c.pos, format!("unknown category `{lo}`")))?;
            let hv = *self
                .cats
                .get(hi)
                .ok_or_else(|| err(c.pos, format!("unknown category `{hi}`")))?;
            if lv > hv {
                return Err(err(
                    c.pos,
                    format!("category range `{}` is reversed", c.name),
                ));
            }
            for v in lv..=hv {
                if !allowed.get(v as usize - 1) {
                    return Err(err(
                        c.pos,
                        format!(
                            "category `{}` is not associated with sensitivity `{}` (see its `level` statement)",
                            self.cat_name(v),
                            l.sens.name
                        ),
                    ));
                }
                cats.set(v as usize - 1);
            }
        }
        Ok(Level { sens: sv, cats })
    }

    fn cat_name(&self, v: u32) -> String {
        self.db
            .cats
            .iter()
            .find(|c| c.value == v && !c.alias)
            .map(|c| c.name.clone())
            .unwrap_or_default()
    }

    fn range(&self, r: &ast::Range, pos: Pos) -> R<MlsRange> {
        let low = self.level(&r.low)?;
        let high = match &r.high {
            Some(h) => self.level(h)?,
            None => low.clone(),
        };
        if !(high.sens >= low.sens && low.cats.is_subset(&high.cats)) {
            return Err(err(
                pos,
                "invalid MLS range: the high level does not dominate the low level",
            ));
        }
        Ok(MlsRange { low, high })
    }

    fn mls(&mut self, p: &ast::Policy) {
        let Some(m) = &p.mls else {
            return;
        };
        if !self.opts.mls {
            let pos = m.sens.first().map(|s| s.0.pos).unwrap_or_default();
            self.fail(err(
                pos,
                "MLS statements in a policy compiled without -M (add -M to compile an MLS policy)",
            ));
            return;
        }
        let mut order: FxMap<Rc<str>, u32> = FxMap::default();
        for (i, d) in m.dominance.iter().enumerate() {
            if order.insert(d.name.clone(), i as u32 + 1).is_some() {
                self.fail(err(
                    d.pos,
                    format!("sensitivity `{}` appears twice in dominance", d.name),
                ));
            }
        }
        let mut names = HashSet::new();
        for (s, aliases) in &m.sens {
            let Some(&v) = order.get(&s.name) else {
                self.fail(err(
                    s.pos,
                    format!("sensitivity `{}` is not in the dominance statement", s.name),
                ));
                continue;
            };
            for (n, alias) in std::iter::once((s, false)).chain(aliases.iter().map(|a| (a, true))) {
                if !names.insert(n.name.clone()) {
                    self.fail(err(
                        n.pos,
                        format!("duplicate declaration of sensitivity `{}`", n.name),
                    ));
                    continue;
                }
                self.sens.insert(n.name.clone(), self.db.sens.len());
                self.db.sens.push(Sens {
                    name: n.name.to_string(),
                    alias,
                    level: Level {
                        sens: v,
                        cats: Bits::new(),
                    },
                });
            }
        }
        for d in &m.dominance {
            if !m.sens.iter().any(|s| s.0.name == d.name) {
                self.fail(err(
                    d.pos,
                    format!("unknown sensitivity `{}` in dominance", d.name),
                ));
            }
        }
        let mut value = 0u32;
        for (c, aliases) in &m.cats {
            value += 1;
            for (n, alias) in std::iter::once((c, false)).chain(aliases.iter().map(|a| (a, true))) {
                if self.cats.insert(n.name.clone(), value).is_some() {
                    self.fail(err(
                        n.pos,
                        format!("duplicate declaration of category `{}`", n.name),
                    ));
                    continue;
                }
                self.db.cats.push(Cat {
                    name: n.name.to_string(),
                    value,
                    alias,
                });
            }
        }
        let all_cats = {
            let mut b = Bits::new();
            for v in 1..=value {
                b.set(v as usize - 1);
            }
            b
        };
        for (s, cats) in &m.levels {
            let Some(&si) = self.sens.get(&s.name) else {
                self.fail(err(s.pos, format!("unknown sensitivity `{}`", s.name)));
                continue;
            };
            let sv = self.db.sens[si].level.sens;
            if self.sens_cats.contains_key(&sv) {
                self.fail(err(
                    s.pos,
                    format!("duplicate level for sensitivity `{}`", s.name),
                ));
                continue;
            }
            self.sens_cats.insert(sv, all_cats.clone());
            let l = ast::Level {
                sens: s.clone(),
                cats: cats.clone(),
            };
            match self.level(&l) {
                Ok(lv) => {
                    self.sens_cats.insert(sv, lv.cats.clone());
                    for x in &mut self.db.sens {
                        if x.level.sens == sv {
                            x.level.cats = lv.cats.clone();
                        }
                    }
                }
                Err(d) => self.fail(d),
            }
        }
        for (s, _) in &m.sens {
            if let Some(&v) = order.get(&s.name)
                && !self.sens_cats.contains_key(&v)
            {
                self.fail(err(
                    s.pos,
                    format!("sensitivity `{}` has no `level` statement", s.name),
                ));
            }
        }
    }

    // ---------------------------------------------------------------- types

    fn declare_name(&mut self, id: &Ident, sym: TSym) -> bool {
        if let Some(old) = self.types.get(&id.name) {
            let what = match old {
                TSym::Attr(_) => "an attribute",
                TSym::Alias(_) => "a type alias",
                TSym::Type(_) => "a type",
            };
            self.fail(err(
                id.pos,
                format!(
                    "duplicate declaration: `{}` is already declared as {what}",
                    id.name
                ),
            ));
            return false;
        }
        if &*id.name == "self" {
            self.fail(err(id.pos, "`self` is reserved and cannot be declared"));
            return false;
        }
        self.types.insert(id.name.clone(), sym);
        true
    }

    fn new_type(&mut self, id: &Ident, attr: bool) -> Option<u32> {
        let v = self.db.types.len() as u32 + 1;
        let sym = if attr { TSym::Attr(v) } else { TSym::Type(v) };
        if !self.declare_name(id, sym) {
            return None;
        }
        self.db.types.push(TypeDatum {
            name: id.name.to_string(),
            attr,
            bounds: 0,
            members: Bits::new(),
            pos: id.pos,
        });
        Some(v)
    }

    fn declare_te(&mut self, te: &[Te]) {
        for s in te {
            match s {
                Te::Attribute(id) => {
                    self.new_type(id, true);
                }
                Te::Type {
                    name,
                    aliases,
                    attrs,
                } => {
                    if let Some(v) = self.new_type(name, false) {
                        for a in aliases {
                            if self.declare_name(a, TSym::Alias(v)) {
                                self.db.aliases.push((a.name.to_string(), v));
                            }
                        }
                        for a in attrs {
                            if let Err(d) = self.add_member(name, a) {
                                self.fail(d);
                            }
                        }
                    }
                }
                Te::TypeAttribute { name, attrs } => {
                    for a in attrs {
                        if let Err(d) = self.add_member(name, a) {
                            self.fail(d);
                        }
                    }
                }
                Te::TypeAlias { name, aliases } => match self.types.get(&name.name).copied() {
                    Some(TSym::Type(v)) | Some(TSym::Alias(v)) => {
                        for a in aliases {
                            if self.declare_name(a, TSym::Alias(v)) {
                                self.db.aliases.push((a.name.to_string(), v));
                            }
                        }
                    }
                    Some(TSym::Attr(_)) => self.fail(err(
                        name.pos,
                        format!("`{}` is an attribute; only types have aliases", name.name),
                    )),
                    None => self.fail(err(
                        name.pos,
                        format!(
                            "unknown type `{}` (types must be declared before their aliases)",
                            name.name
                        ),
                    )),
                },
                Te::Bool { name, value } => {
                    if self.bools.contains_key(&name.name) {
                        self.fail(err(
                            name.pos,
                            format!("duplicate declaration of boolean `{}`", name.name),
                        ));
                        continue;
                    }
                    self.bools.insert(name.name.clone(), self.db.bools.len());
                    self.db.bools.push((name.name.to_string(), *value));
                }
                Te::Role { name } if !self.roles.contains_key(&name.name) => {
                    self.roles.insert(name.name.clone(), self.db.roles.len());
                    let mut dom = Bits::new();
                    dom.set(self.db.roles.len());
                    self.db.roles.push(Role {
                        name: name.name.to_string(),
                        types: Bits::new(),
                        dominates: dom,
                    });
                }
                _ => {}
            }
        }
    }

    fn lookup_type(&self, id: &Ident) -> R<TSym> {
        self.types
            .get(&id.name)
            .copied()
            .ok_or_else(|| err(id.pos, format!("unknown type or attribute `{}`", id.name)))
    }

    /// A type (not an attribute); aliases resolve to their type.
    fn plain_type(&self, id: &Ident) -> R<u32> {
        match self.lookup_type(id)? {
            TSym::Type(v) | TSym::Alias(v) => Ok(v),
            TSym::Attr(_) => Err(err(
                id.pos,
                format!("`{}` is an attribute; a type is required here", id.name),
            )),
        }
    }

    /// `type T, A;` / `typeattribute T A;`: like checkpolicy, both must already be declared.
    fn add_member(&mut self, t: &Ident, a: &Ident) -> R<()> {
        let tv = self.plain_type(t)?;
        let av = match self.types.get(&a.name) {
            Some(TSym::Attr(v)) => *v,
            Some(_) => {
                return Err(err(
                    a.pos,
                    format!("`{}` is a type; an attribute is required here", a.name),
                ));
            }
            None => {
                return Err(err(
                    a.pos,
                    format!(
                        "attribute `{}` is not declared (attributes must be declared before use)",
                        a.name
                    ),
                ));
            }
        };
        self.db.types[av as usize - 1].members.set(tv as usize - 1);
        Ok(())
    }

    fn is_attr(&self, v: u32) -> bool {
        self.db.types[v as usize - 1].attr
    }

    fn all_types(&self) -> Bits {
        let mut b = Bits::new();
        for (i, t) in self.db.types.iter().enumerate() {
            if !t.attr {
                b.set(i);
            }
        }
        b
    }

    /// libsepol's type_set_expand. Returns (set of values-1, self flag).
    fn type_set(
        &self,
        n: &Names,
        always: bool,
        allow_self: bool,
        allow_star: bool,
    ) -> R<(Bits, bool)> {
        if (n.star || n.comp) && !allow_star {
            let what = if n.star { "*" } else { "~" };
            return Err(err(
                n.pos,
                format!(
                    "`{what}` is not allowed in the type sets of this kind of rule (only in neverallow)"
                ),
            ));
        }
        let mut pos_syms = Vec::new();
        let mut neg = Bits::new();
        let mut selfp = false;
        for (negated, id) in &n.items {
            if &*id.name == "self" {
                if !allow_self || *negated {
                    return Err(err(id.pos, "`self` is only allowed as a target"));
                }
                selfp = true;
                continue;
            }
            let v = match self.lookup_type(id)? {
                TSym::Type(v) | TSym::Alias(v) => v,
                TSym::Attr(v) => v,
            };
            if *negated {
                if self.is_attr(v) {
                    neg.union(&self.db.types[v as usize - 1].members);
                } else {
                    neg.set(v as usize - 1);
                }
            } else {
                pos_syms.push(v);
            }
        }
        let expand = always || !neg.is_empty() || n.star || n.comp;
        let mut out = Bits::new();
        for v in pos_syms {
            if self.is_attr(v) && expand {
                out.union(&self.db.types[v as usize - 1].members);
            } else {
                out.set(v as usize - 1);
            }
        }
        if n.star {
            out = self.all_types();
            out.subtract(&neg);
        } else {
            out.subtract(&neg);
        }
        if n.comp {
            let mut c = self.all_types();
            c.subtract(&out);
            out = c;
        }
        Ok((out, selfp))
    }

    /// [`Self::type_set`] as a sorted list of values-1, without building a bit set
    /// for the common case (plain names, no `-`, `*` or `~`).
    fn type_list(&self, n: &Names, always: bool, allow_self: bool) -> R<(Vec<usize>, bool)> {
        if n.star || n.comp || n.items.iter().any(|(neg, _)| *neg) {
            let (b, selfp) = self.type_set(n, always, allow_self, false)?;
            return Ok((b.iter().collect(), selfp));
        }
        let mut out = Vec::with_capacity(n.items.len());
        let mut selfp = false;
        for (_, id) in &n.items {
            if &*id.name == "self" {
                if !allow_self {
                    return Err(err(id.pos, "`self` is only allowed as a target"));
                }
                selfp = true;
                continue;
            }
            let v = match self.lookup_type(id)? {
                TSym::Type(v) | TSym::Alias(v) | TSym::Attr(v) => v as usize - 1,
            };
            if always && self.db.types[v].attr {
                out.extend(self.db.types[v].members.iter());
            } else {
                out.push(v);
            }
        }
        out.sort_unstable();
        out.dedup();
        Ok((out, selfp))
    }

    /// Fully expanded types (attributes replaced by their members).
    fn expand_full(&self, b: &Bits) -> Bits {
        let mut out = Bits::new();
        for i in b.iter() {
            if self.db.types[i].attr {
                out.union(&self.db.types[i].members);
            } else {
                out.set(i);
            }
        }
        out
    }

    // ---------------------------------------------------------------- rules

    fn rule(&mut self, s: &Te, cond: Option<(usize, bool)>) -> R<()> {
        match s {
            Te::Av(r) => self.av_rule(r.kind, &r.src, &r.tgt, &r.classes, &r.perms, r.pos, cond),
            Te::TypeRule(r) => {
                self.type_rule(r.kind, &r.src, &r.tgt, &r.classes, &r.new, r.pos, cond)
            }
            Te::TypeBounds { parent, children } => {
                let pv = self.plain_type(parent)?;
                for c in children {
                    let cv = self.plain_type(c)?;
                    let b = self.db.types[cv as usize - 1].bounds;
                    if b != 0 && b != pv {
                        return Err(err(
                            c.pos,
                            format!("type `{}` already has a bounding type", c.name),
                        ));
                    }
                    if cv == pv {
                        return Err(err(c.pos, format!("type `{}` cannot bound itself", c.name)));
                    }
                    self.db.types[cv as usize - 1].bounds = pv;
                }
                Ok(())
            }
            Te::Permissive(id) => {
                let v = self.plain_type(id)?;
                self.db.permissive.set(v as usize);
                Ok(())
            }
            Te::Policycap(id) => match POLICYCAPS.iter().position(|c| *c == &*id.name) {
                Some(i) => {
                    self.db.polcaps.set(i);
                    Ok(())
                }
                None => Err(err(
                    id.pos,
                    format!("unknown policy capability `{}`", id.name),
                )),
            },
            Te::RoleTypes { name, types } => {
                let Some(&ri) = self.roles.get(&name.name) else {
                    return Err(err(
                        name.pos,
                        format!(
                            "unknown role `{}` (declare it with `role {};` first)",
                            name.name, name.name
                        ),
                    ));
                };
                let (set, _) = self.type_set(types, true, false, false)?;
                self.db.roles[ri].types.union(&set);
                Ok(())
            }
            Te::RoleTrans(r) => {
                let ast::RoleTrans {
                    roles,
                    types,
                    classes,
                    new,
                    pos,
                } = &**r;
                let rs = self.role_set(roles)?;
                let (ts, _) = self.type_set(types, true, false, false)?;
                let cls = match classes {
                    Some(c) => self.classes(c)?,
                    None => match self.class_map.get("process") {
                        Some(&c) => vec![c],
                        None => {
                            return Err(err(
                                *pos,
                                "a role_transition without `:CLASS` means class `process`, which this policy does not define",
                            ));
                        }
                    },
                };
                let nr = self.role(new)? as u32 + 1;
                for r in rs.iter() {
                    for t in ts.iter() {
                        for &c in &cls {
                            let key = (r as u32 + 1, t as u32 + 1, c as u32 + 1);
                            if let Some((old, opos)) = self.role_trans_seen.get(&key) {
                                if *old != nr {
                                    return Err(err(*pos, format!("conflicting role_transition for role `{}`, type `{}`, class `{}`", self.db.roles[r].name, self.db.types[t].name, self.db.classes[c].name))
                                        .note(Some(*opos), "the earlier rule is here"));
                                }
                                continue;
                            }
                            self.role_trans_seen.insert(key, (nr, *pos));
                            if self.opts.version < 26 {
                                if !self.dropped_for_v24.iter().any(|d| d.0 == *pos) {
                                    self.dropped_for_v24.push((*pos, "role_transition".into()));
                                }
                                continue;
                            }
                            self.db.role_trans.push((key.0, key.1, nr, key.2));
                        }
                    }
                }
                Ok(())
            }
            Te::RoleAllow(r) => {
                let ast::RoleAllow { roles, new, .. } = &**r;
                let a = self.role_set(roles)?;
                let b = self.role_set(new)?;
                for x in a.iter() {
                    for y in b.iter() {
                        let pair = (x as u32 + 1, y as u32 + 1);
                        if !self.db.role_allow.contains(&pair) {
                            self.db.role_allow.push(pair);
                        }
                    }
                }
                Ok(())
            }
            Te::RangeTrans(r) => {
                let ast::RangeTrans {
                    src,
                    tgt,
                    classes,
                    range,
                    pos,
                } = &**r;
                if !self.opts.mls {
                    return Err(err(
                        *pos,
                        "range_transition in a policy compiled without -M",
                    ));
                }
                let (ss, _) = self.type_set(src, true, false, false)?;
                let (ts, _) = self.type_set(tgt, true, false, false)?;
                let cls = match classes {
                    Some(c) => self.classes(c)?,
                    None => match self.class_map.get("process") {
                        Some(&c) => vec![c],
                        None => {
                            return Err(err(
                                *pos,
                                "a range_transition without `:CLASS` means class `process`, which this policy does not define",
                            ));
                        }
                    },
                };
                let r = self.range(range, *pos)?;
                for s in ss.iter() {
                    for t in ts.iter() {
                        for &c in &cls {
                            let key = (s as u32 + 1, t as u32 + 1, c as u32 + 1);
                            if let Some(op) = self.range_trans_seen.get(&key) {
                                let existing = self
                                    .db
                                    .range_trans
                                    .iter()
                                    .find(|x| (x.0, x.1, x.2) == key)
                                    .map(|x| x.3.clone());
                                if existing.as_ref() != Some(&r) {
                                    return Err(err(*pos, "conflicting range_transition rules")
                                        .note(Some(*op), "the earlier rule is here"));
                                }
                                continue;
                            }
                            self.range_trans_seen.insert(key, *pos);
                            self.db.range_trans.push((key.0, key.1, key.2, r.clone()));
                        }
                    }
                }
                Ok(())
            }
            Te::Cond {
                expr,
                then,
                els,
                pos,
            } => self.cond(expr, then, els, *pos),
            Te::Attribute(_)
            | Te::Type { .. }
            | Te::TypeAlias { .. }
            | Te::TypeAttribute { .. }
            | Te::Bool { .. }
            | Te::Role { .. } => Ok(()),
        }
    }

    fn role(&self, id: &Ident) -> R<usize> {
        self.roles
            .get(&id.name)
            .copied()
            .ok_or_else(|| err(id.pos, format!("unknown role `{}`", id.name)))
    }

    fn role_set(&self, n: &Names) -> R<Bits> {
        let mut b = Bits::new();
        if n.star {
            for i in 0..self.db.roles.len() {
                b.set(i);
            }
        }
        let mut neg = Bits::new();
        for (negated, id) in &n.items {
            let r = self.role(id)?;
            if *negated {
                neg.set(r);
            } else {
                b.set(r);
            }
        }
        b.subtract(&neg);
        if n.comp {
            let mut c = Bits::new();
            for i in 0..self.db.roles.len() {
                if !b.get(i) {
                    c.set(i);
                }
            }
            b = c;
        }
        Ok(b)
    }

    #[allow(clippy::too_many_arguments)]
    fn av_rule(
        &mut self,
        kind: AvKind,
        src: &Names,
        tgt: &Names,
        classes: &Names,
        perms: &Names,
        pos: Pos,
        cond: Option<(usize, bool)>,
    ) -> R<()> {
        let never = kind == AvKind::NeverAllow;
        let cls = self.classes(classes)?;
        let mut cp = Vec::new();
        for &c in &cls {
            cp.push((c, self.perms(c, perms)?));
        }
        if never {
            let (ss, _) = self.type_set(src, false, false, true)?;
            let (ts, selfp) = self.type_set(tgt, false, true, true)?;
            self.nevers.push(NeverRec {
                src: self.expand_full(&ss),
                tgt: self.expand_full(&ts),
                selfp,
                perms: cp,
                pos,
            });
            return Ok(());
        }
        let (ss, _) = self.type_list(src, false, false)?;
        let (ts, selfp) = self.type_list(tgt, false, true)?;
        let spec = match kind {
            AvKind::Allow => AVTAB_ALLOWED,
            AvKind::AuditAllow => AVTAB_AUDITALLOW,
            _ => AVTAB_AUDITDENY,
        };
        let mut pairs: Vec<(usize, usize)> = Vec::new();
        for &s in &ss {
            if selfp {
                if self.db.types[s].attr {
                    for m in self.db.types[s].members.iter() {
                        pairs.push((m, m));
                    }
                } else {
                    pairs.push((s, s));
                }
            }
            for &t in &ts {
                pairs.push((s, t));
            }
        }
        for (s, t) in pairs {
            for &(c, p) in &cp {
                let key = AvKey {
                    src: s as u16 + 1,
                    tgt: t as u16 + 1,
                    class: c as u16 + 1,
                    spec,
                };
                let tab = match cond {
                    None => &mut self.db.avtab,
                    Some((n, true)) => &mut self.db.conds[n].true_list,
                    Some((n, false)) => &mut self.db.conds[n].false_list,
                };
                match kind {
                    AvKind::Allow | AvKind::AuditAllow => *tab.entry(key, 0, pos) |= p,
                    AvKind::AuditDeny => *tab.entry(key, u32::MAX, pos) &= p,
                    AvKind::DontAudit => *tab.entry(key, u32::MAX, pos) &= !p,
                    AvKind::NeverAllow => {}
                }
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn type_rule(
        &mut self,
        kind: TypeRuleKind,
        src: &Names,
        tgt: &Names,
        classes: &Names,
        new: &Ident,
        pos: Pos,
        cond: Option<(usize, bool)>,
    ) -> R<()> {
        let (ss, _) = self.type_list(src, true, false)?;
        let (ts, selfp) = self.type_list(tgt, true, true)?;
        let cls = self.classes(classes)?;
        let nv = self.plain_type(new)?;
        let spec = match kind {
            TypeRuleKind::Transition => AVTAB_TRANSITION,
            TypeRuleKind::Member => AVTAB_MEMBER,
            TypeRuleKind::Change => AVTAB_CHANGE,
        };
        let mut pairs = Vec::new();
        for &s in &ss {
            if selfp {
                pairs.push((s, s));
            }
            for &t in &ts {
                pairs.push((s, t));
            }
        }
        for (s, t) in pairs {
            for &c in &cls {
                let key = AvKey {
                    src: s as u16 + 1,
                    tgt: t as u16 + 1,
                    class: c as u16 + 1,
                    spec,
                };
                if cond.is_none() {
                    if let Some((old, opos)) = self.type_rules.get(&key) {
                        if *old != nv {
                            return Err(err(
                                pos,
                                format!(
                                    "conflicting type rule for ({}, {}:{}): the earlier rule gives `{}`, this one `{}`",
                                    self.db.types[s].name, self.db.types[t].name, self.db.classes[c].name,
                                    self.db.types[*old as usize - 1].name, new.name
                                ),
                            )
                            .note(Some(*opos), "the earlier rule is here"));
                        }
                        continue;
                    }
                    self.type_rules.insert(key, (nv, pos));
                }
                let tab = match cond {
                    None => &mut self.db.avtab,
                    Some((n, true)) => &mut self.db.conds[n].true_list,
                    Some((n, false)) => &mut self.db.conds[n].false_list,
                };
                let e = tab.entry(key, nv, pos);
                if *e != nv {
                    return Err(err(
                        pos,
                        format!(
                            "conflicting type rules in one conditional branch for ({}, {}:{})",
                            self.db.types[s].name, self.db.types[t].name, self.db.classes[c].name
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    fn cond_postfix(&self, e: &CondExpr, out: &mut Vec<(u32, u32)>) -> R<()> {
        match e {
            CondExpr::Bool(id) => {
                let Some(&b) = self.bools.get(&id.name) else {
                    return Err(err(id.pos, format!("unknown boolean `{}`", id.name)));
                };
                out.push((1, b as u32 + 1));
            }
            CondExpr::Not(x) => {
                self.cond_postfix(x, out)?;
                out.push((2, 0));
            }
            CondExpr::Bin(op, a, b) => {
                self.cond_postfix(a, out)?;
                self.cond_postfix(b, out)?;
                out.push((*op, 0));
            }
        }
        Ok(())
    }

    pub fn eval_cond(expr: &[(u32, u32)], bools: &[(String, bool)]) -> bool {
        let mut st: Vec<bool> = Vec::new();
        for &(t, b) in expr {
            match t {
                1 => st.push(bools.get(b as usize - 1).map(|x| x.1).unwrap_or(false)),
                2 => {
                    let a = st.pop().unwrap_or(false);
                    st.push(!a);
                }
                _ => {
                    let y = st.pop().unwrap_or(false);
                    let x = st.pop().unwrap_or(false);
                    st.push(match t {
                        3 => x || y,
                        4 => x && y,
                        5 => x ^ y,
                        6 => x == y,
                        _ => x != y,
                    });
                }
            }
        }
        st.pop().unwrap_or(false)
    }

    fn cond(&mut self, expr: &CondExpr, then: &[Te], els: &[Te], _pos: Pos) -> R<()> {
        let mut pf = Vec::new();
        self.cond_postfix(expr, &mut pf)?;
        let mut swap = false;
        if pf.len() > 1 && pf.last().map(|x| x.0) == Some(2) {
            pf.pop();
            swap = true;
        }
        let n = match self.db.conds.iter().position(|c| c.expr == pf) {
            Some(n) => n,
            None => {
                let cur = Self::eval_cond(&pf, &self.db.bools);
                self.db.conds.push(CondNode {
                    expr: pf,
                    cur_state: cur,
                    ..CondNode::default()
                });
                self.db.conds.len() - 1
            }
        };
        for s in then {
            self.rule(s, Some((n, !swap)))?;
        }
        for s in els {
            self.rule(s, Some((n, swap)))?;
        }
        Ok(())
    }

    // ---------------------------------------------------------------- users, contexts

    fn user(&mut self, u: &ast::UserDef) -> R<()> {
        if self.users.contains_key(&u.name.name) {
            return Err(err(
                u.name.pos,
                format!("duplicate declaration of user `{}`", u.name.name),
            ));
        }
        let roles = self.role_set(&u.roles)?;
        let (range, dflt) = match (&u.level, &u.range, self.opts.mls) {
            (Some(l), Some(r), true) => {
                let dl = self.level(l)?;
                let rg = self.range(r, u.name.pos)?;
                let within = dl.sens >= rg.low.sens
                    && rg.low.cats.is_subset(&dl.cats)
                    && rg.high.sens >= dl.sens
                    && dl.cats.is_subset(&rg.high.cats);
                if !within {
                    return Err(err(
                        u.name.pos,
                        format!(
                            "the default level of user `{}` is not within its range",
                            u.name.name
                        ),
                    ));
                }
                (rg, dl)
            }
            (None, _, true) => {
                return Err(err(
                    u.name.pos,
                    format!(
                        "user `{}` needs `level` and `range` in an MLS policy",
                        u.name.name
                    ),
                ));
            }
            (Some(_), _, false) => {
                return Err(err(
                    u.name.pos,
                    "MLS `level`/`range` given for a user in a policy compiled without -M",
                ));
            }
            _ => (MlsRange::default(), Level::default()),
        };
        self.users.insert(u.name.name.clone(), self.db.users.len());
        self.db.users.push(User {
            name: u.name.name.to_string(),
            roles,
            range,
            dflt,
        });
        Ok(())
    }

    fn finish_types(&mut self) {
        let n = self.db.types.len();
        let mut map = vec![Bits::new(); n];
        for (i, m) in map.iter_mut().enumerate() {
            m.set(i);
        }
        for (a, t) in self.db.types.iter().enumerate() {
            if t.attr {
                for m in t.members.iter() {
                    map[m].set(a);
                }
            }
        }
        self.db.type_attr_map = map;
    }

    fn context(&self, c: &ast::Context) -> R<Ctx> {
        let user = *self
            .users
            .get(&c.user.name)
            .ok_or_else(|| err(c.user.pos, format!("unknown user `{}`", c.user.name)))?;
        let role = self.role(&c.role)?;
        let ty = self.plain_type(&c.ty)?;
        if role != 0 {
            if !self.db.roles[role].types.get(ty as usize - 1) {
                return Err(err(
                    c.ty.pos,
                    format!(
                        "invalid context: role `{}` is not authorized for type `{}` (add it with `role {} types {};`)",
                        c.role.name, c.ty.name, c.role.name, c.ty.name
                    ),
                ));
            }
            if !self.db.users[user].roles.get(role) {
                return Err(err(
                    c.role.pos,
                    format!(
                        "invalid context: user `{}` is not authorized for role `{}`",
                        c.user.name, c.role.name
                    ),
                ));
            }
        }
        let range = match (&c.range, self.opts.mls) {
            (Some(r), true) => {
                let rg = self.range(r, c.pos)?;
                if role != 0 {
                    let ur = &self.db.users[user].range;
                    let ok = rg.low.sens >= ur.low.sens
                        && ur.low.cats.is_subset(&rg.low.cats)
                        && ur.high.sens >= rg.high.sens
                        && rg.high.cats.is_subset(&ur.high.cats);
                    if !ok {
                        return Err(err(
                            c.pos,
                            format!(
                                "invalid context: the range is not within the range of user `{}`",
                                c.user.name
                            ),
                        ));
                    }
                }
                rg
            }
            (None, true) => {
                return Err(err(
                    c.pos,
                    "this context needs an MLS range in an MLS policy (user:role:type:level)",
                ));
            }
            (Some(_), false) => {
                return Err(err(
                    c.pos,
                    "MLS range in a context of a policy compiled without -M",
                ));
            }
            (None, false) => MlsRange::default(),
        };
        Ok(Ctx {
            user: user as u32 + 1,
            role: role as u32 + 1,
            ty,
            range,
        })
    }

    fn constraint(&mut self, c: &ast::Constraint) -> R<()> {
        let cls = self.classes(&c.classes)?;
        let mut expr = Vec::new();
        self.cexpr(&c.expr, c.validatetrans, &mut expr)?;
        for &ci in &cls {
            let perms = match &c.perms {
                Some(p) => self.perms(ci, p)?,
                None => 0,
            };
            let node = ConstraintNode {
                perms,
                expr: expr.clone(),
            };
            if c.validatetrans {
                self.db.classes[ci].validatetrans.push(node);
            } else {
                self.db.classes[ci].constraints.push(node);
            }
        }
        Ok(())
    }

    fn cexpr(&self, e: &CExpr, vt: bool, out: &mut Vec<CExprNode>) -> R<()> {
        let node = |t: u32, attr: u32, op: u32| CExprNode {
            expr_type: t,
            attr,
            op,
            names: Bits::new(),
            type_names: TypeSet::default(),
        };
        match e {
            CExpr::Not(x) => {
                self.cexpr(x, vt, out)?;
                out.push(node(1, 0, 0));
            }
            CExpr::And(a, b) => {
                self.cexpr(a, vt, out)?;
                self.cexpr(b, vt, out)?;
                out.push(node(2, 0, 0));
            }
            CExpr::Or(a, b) => {
                self.cexpr(a, vt, out)?;
                self.cexpr(b, vt, out)?;
                out.push(node(3, 0, 0));
            }
            CExpr::Attr { attr, op } => {
                if *attr >= 32 && !self.opts.mls {
                    return Err(Diagnostic::error(
                        None,
                        "MLS level comparisons (l1, l2, h1, h2) in a policy compiled without -M",
                    ));
                }
                out.push(node(4, *attr, *op));
            }
            CExpr::Names { attr, op, names } => {
                if attr & 16 != 0 && !vt {
                    return Err(err(
                        names.pos,
                        "u3, r3 and t3 are only allowed in validatetrans",
                    ));
                }
                let mut n = node(5, *attr, *op);
                if attr & 1 != 0 {
                    let mut b = Bits::new();
                    for (neg, id) in &names.items {
                        let u = *self
                            .users
                            .get(&id.name)
                            .ok_or_else(|| err(id.pos, format!("unknown user `{}`", id.name)))?;
                        if *neg {
                            return Err(err(id.pos, "`-` is not allowed in a user set"));
                        }
                        b.set(u);
                    }
                    n.names = b;
                } else if attr & 2 != 0 {
                    n.names = self.role_set(names)?;
                } else {
                    let (set, _) = self.type_set(names, true, false, true)?;
                    n.names = set;
                    let mut ts = TypeSet::default();
                    for (neg, id) in &names.items {
                        let v = match self.lookup_type(id)? {
                            TSym::Type(v) | TSym::Alias(v) | TSym::Attr(v) => v,
                        };
                        if *neg {
                            ts.negset.set(v as usize - 1);
                        } else {
                            ts.types.set(v as usize - 1);
                        }
                    }
                    ts.flags = u32::from(names.star) | (u32::from(names.comp) << 1);
                    n.type_names = ts;
                }
                out.push(n);
            }
        }
        Ok(())
    }

    fn sid_contexts(&mut self, p: &ast::Policy) {
        let mut seen = HashSet::new();
        for (name, ctx) in &p.sid_contexts {
            let Some(&i) = self.sid_map.get(&name.name) else {
                self.fail(err(
                    name.pos,
                    format!("unknown initial SID `{}`", name.name),
                ));
                continue;
            };
            if !seen.insert(i) {
                self.fail(err(
                    name.pos,
                    format!("duplicate context for initial SID `{}`", name.name),
                ));
                continue;
            }
            match self.context(ctx) {
                Ok(c) => self.db.ocons.isids.push((i as u32 + 1, c)),
                Err(d) => self.fail(d),
            }
        }
        for (i, n) in self.sid_names.iter().enumerate() {
            if !seen.contains(&i) {
                self.warnings.push(Diagnostic::warning(
                    p.sids.get(i).map(|s| s.pos),
                    format!("initial SID `{n}` has no context; it is left out of the policy"),
                ));
            }
        }
    }

    fn ocontexts(&mut self, p: &ast::Policy) {
        for o in &p.ocons {
            let ctx = match self.context(&o.ctx) {
                Ok(c) => c,
                Err(d) => {
                    self.fail(d);
                    continue;
                }
            };
            let r: R<()> = (|| {
                let oc = &mut self.db.ocons;
                match &o.kind {
                    ast::OconKind::Pirq(n) => {
                        if *n > 0xffff {
                            return Err(err(
                                o.pos,
                                format!(
                                    "pirqcon {n} is out of range: a PIRQ is 16 bits (0-65535); checkpolicy would silently truncate it to {}",
                                    n & 0xffff
                                ),
                            ));
                        }
                        if oc.pirqs.iter().any(|x| u64::from(x.0) == *n) {
                            return Err(err(o.pos, format!("duplicate pirqcon entry for {n}")));
                        }
                        oc.pirqs.push((*n as u32, ctx));
                    }
                    ast::OconKind::Ioport(lo, hi) => {
                        if *hi > 0xffff_ffff || lo > hi {
                            return Err(err(
                                o.pos,
                                format!("invalid ioportcon range {lo:#x}-{hi:#x}"),
                            ));
                        }
                        if let Some(x) = oc
                            .ioports
                            .iter()
                            .find(|x| u64::from(x.0) <= *hi && *lo <= u64::from(x.1))
                        {
                            return Err(err(
                                o.pos,
                                format!(
                                    "ioportcon entry {lo:#x}-{hi:#x} overlaps the earlier entry {:#x}-{:#x}",
                                    x.0, x.1
                                ),
                            ));
                        }
                        oc.ioports.push((*lo as u32, *hi as u32, ctx));
                    }
                    ast::OconKind::Iomem(lo, hi) => {
                        if lo > hi {
                            return Err(err(
                                o.pos,
                                format!("invalid iomemcon range {lo:#x}-{hi:#x}"),
                            ));
                        }
                        if self.opts.version < 30 && *hi > 0xffff_ffff {
                            return Err(err(
                                o.pos,
                                format!(
                                    "iomemcon {hi:#x} needs 64 bits; policy version {} holds 32-bit iomem (use -c 30)",
                                    self.opts.version
                                ),
                            ));
                        }
                        if let Some(x) = oc.iomems.iter().find(|x| x.0 <= *hi && *lo <= x.1) {
                            return Err(err(
                                o.pos,
                                format!(
                                    "iomemcon entry {lo:#x}-{hi:#x} overlaps the earlier entry {:#x}-{:#x}",
                                    x.0, x.1
                                ),
                            ));
                        }
                        oc.iomems.push((*lo, *hi, ctx));
                    }
                    ast::OconKind::Pci(n) => {
                        if *n > 0xffff_ffff {
                            return Err(err(
                                o.pos,
                                format!("pcidevicecon {n:#x} is out of range (32 bits)"),
                            ));
                        }
                        if oc.pcidevs.iter().any(|x| u64::from(x.0) == *n) {
                            return Err(err(
                                o.pos,
                                format!("duplicate pcidevicecon entry for {n:#x}"),
                            ));
                        }
                        oc.pcidevs.push((*n as u32, ctx));
                    }
                    ast::OconKind::Dtree(path) => {
                        if oc.dtrees.iter().any(|x| &x.0 == path) {
                            return Err(err(
                                o.pos,
                                format!("duplicate devicetreecon entry for {path}"),
                            ));
                        }
                        if self.opts.version < 30 {
                            self.dropped_for_v24
                                .push((o.pos, format!("devicetreecon `{path}`")));
                        } else {
                            oc.dtrees.push((path.clone(), ctx));
                        }
                    }
                }
                Ok(())
            })();
            if let Err(d) = r {
                self.fail(d);
            }
        }
    }

    // ---------------------------------------------------------------- checks

    fn perm_list(&self, c: usize, p: u32) -> String {
        let names: Vec<&str> = (0..32)
            .filter(|b| p & (1 << b) != 0)
            .filter_map(|b| self.db.perm_name(c, b + 1))
            .collect();
        names.join(" ")
    }

    /// libsepol's check_assertions: every allow entry (attribute-keyed or not,
    /// conditional or not) against every neverallow.
    fn check_neverallow(&mut self) {
        let mut errs = Vec::new();
        for n in &self.nevers {
            let mut reported: Vec<Pos> = Vec::new();
            let tables = std::iter::once(&self.db.avtab).chain(
                self.db
                    .conds
                    .iter()
                    .flat_map(|c| [&c.true_list, &c.false_list]),
            );
            for tab in tables {
                for ((k, d), origin) in tab.entries.iter().zip(&tab.origins) {
                    if k.spec != AVTAB_ALLOWED || reported.contains(origin) {
                        continue;
                    }
                    let c = k.class as usize - 1;
                    let Some(&(_, np)) = n.perms.iter().find(|x| x.0 == c) else {
                        continue;
                    };
                    let hit_perms = d & np & self.class_mask(c);
                    if hit_perms == 0 {
                        continue;
                    }
                    let ks = self.key_set(k.src);
                    let kt = self.key_set(k.tgt);
                    let explicit = match (first_in(&ks, &n.src), first_in(&kt, &n.tgt)) {
                        (Some(s), Some(t)) => Some((s, t)),
                        _ => None,
                    };
                    let hit = explicit.or_else(|| {
                        if !n.selfp {
                            return None;
                        }
                        match (&ks, &kt) {
                            (KeySet::One(a), KeySet::One(b)) => {
                                (a == b && n.src.get(*a)).then_some((*a, *a))
                            }
                            (KeySet::One(a), KeySet::Many(m))
                            | (KeySet::Many(m), KeySet::One(a)) => {
                                (m.get(*a) && n.src.get(*a)).then_some((*a, *a))
                            }
                            (KeySet::Many(m1), KeySet::Many(m2)) => m1
                                .intersection(m2)
                                .intersection(&n.src)
                                .first()
                                .map(|x| (x, x)),
                        }
                    });
                    let Some((s, t)) = hit else { continue };
                    reported.push(*origin);
                    errs.push(
                        err(
                            *origin,
                            format!(
                                "this allow rule violates a neverallow: it allows {} {}:{} {{ {} }}",
                                self.db.types[s].name,
                                self.db.types[t].name,
                                self.db.classes[c].name,
                                self.perm_list(c, hit_perms)
                            ),
                        )
                        .note(Some(n.pos), "the neverallow rule is here"),
                    );
                }
            }
        }
        for e in errs {
            self.fail(e);
        }
    }

    /// The types an avtab key's source or target stands for.
    fn key_set(&self, v: u16) -> KeySet<'_> {
        let t = &self.db.types[v as usize - 1];
        if t.attr {
            KeySet::Many(&t.members)
        } else {
            KeySet::One(v as usize - 1)
        }
    }

    fn class_mask(&self, c: usize) -> u32 {
        let n = self.db.class_nperms(c);
        if n >= 32 { u32::MAX } else { (1u32 << n) - 1 }
    }

    /// Allowed permissions for (s, t, c) as libsepol computes them (all conditionals on).
    fn allowed(&self, s: usize, t: usize, c: usize) -> u32 {
        let mut p = 0;
        for a in self.db.type_attr_map[s].iter() {
            for b in self.db.type_attr_map[t].iter() {
                let k = AvKey {
                    src: a as u16 + 1,
                    tgt: b as u16 + 1,
                    class: c as u16 + 1,
                    spec: AVTAB_ALLOWED,
                };
                p |= self.db.avtab.get(&k).unwrap_or(0);
                for n in &self.db.conds {
                    p |= n.true_list.get(&k).unwrap_or(0) | n.false_list.get(&k).unwrap_or(0);
                }
            }
        }
        p
    }

    fn check_bounds(&mut self) {
        let mut errs = Vec::new();
        for (ci, child) in self.db.types.iter().enumerate() {
            if child.bounds == 0 {
                continue;
            }
            let pi = child.bounds as usize - 1;
            let mut lines = Vec::new();
            for t in 0..self.db.types.len() {
                if self.db.types[t].attr {
                    continue;
                }
                let pt = if t == ci { pi } else { t };
                for c in 0..self.db.classes.len() {
                    let mask = self.class_mask(c);
                    let extra = self.allowed(ci, t, c) & !self.allowed(pi, pt, c) & mask;
                    if extra != 0 {
                        lines.push(format!(
                            "{} {}:{} {{ {} }}",
                            child.name,
                            self.db.types[t].name,
                            self.db.classes[c].name,
                            self.perm_list(c, extra)
                        ));
                    }
                }
            }
            if !lines.is_empty() {
                errs.push(err(
                    child.pos,
                    format!(
                        "type `{}` exceeds the bounds of its parent `{}`: {}",
                        child.name,
                        self.db.types[pi].name,
                        lines.join("; ")
                    ),
                ));
            }
        }
        for e in errs {
            self.fail(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::m4::Text;

    const HEAD: &str = "class c\nclass d\nsid k\nclass c { p q r }\nclass d { x }\n\
        attribute A;\ntype t1_t, A;\ntype t2_t, A;\ntype t3_t;\n";
    const TAIL: &str = "role r;\nrole r types { A t3_t };\nuser u roles r;\nsid k u:r:t1_t\n";

    fn db(body: &str) -> Result<PolicyDb, String> {
        let src = format!("{HEAD}{body}{TAIL}");
        let t = Text::from_file(src.into_bytes(), 0);
        let ast = crate::parser::parse(&t).map_err(|e| e.0[0].msg.clone())?;
        Compiler::new(Options::default())
            .compile(&ast)
            .map(|(d, _)| d)
            .map_err(|e| {
                e.0.iter()
                    .map(|d| d.msg.clone())
                    .collect::<Vec<_>>()
                    .join("; ")
            })
    }

    fn keys(d: &PolicyDb) -> Vec<(String, String, u16, u32)> {
        let name = |v: u16| d.types[v as usize - 1].name.clone();
        d.avtab
            .entries
            .iter()
            .map(|(k, v)| (name(k.src), name(k.tgt), k.spec, *v))
            .collect()
    }

    #[test]
    fn attribute_rules_stay_attribute_keyed_unless_a_set_needs_expanding() {
        let d = db("allow A t3_t:c p;\nallow { A -t2_t } t3_t:c q;\n").unwrap();
        let k = keys(&d);
        assert!(
            k.contains(&("A".into(), "t3_t".into(), AVTAB_ALLOWED, 0b001)),
            "{k:?}"
        );
        assert!(
            k.contains(&("t1_t".into(), "t3_t".into(), AVTAB_ALLOWED, 0b010)),
            "{k:?}"
        );
        assert!(!k.iter().any(|e| e.0 == "t2_t"), "{k:?}");
    }

    #[test]
    fn self_on_an_attribute_expands_per_member_and_type_rules_expand_fully() {
        let d = db("allow A self:c p;\ntype_transition A t3_t:d t3_t;\n").unwrap();
        let k = keys(&d);
        for t in ["t1_t", "t2_t"] {
            assert!(k.contains(&(t.into(), t.into(), AVTAB_ALLOWED, 1)), "{k:?}");
            assert!(
                k.contains(&(t.into(), "t3_t".into(), AVTAB_TRANSITION, 4)),
                "{k:?}"
            );
        }
    }

    #[test]
    fn dontaudit_and_auditdeny_combine_with_and() {
        let d = db("dontaudit t1_t t3_t:c p;\ndontaudit t1_t t3_t:c q;\nauditdeny t2_t t3_t:c { p q };\nauditdeny t2_t t3_t:c { q r };\n").unwrap();
        let k = keys(&d);
        assert!(
            k.contains(&("t1_t".into(), "t3_t".into(), AVTAB_AUDITDENY, !0b011)),
            "{k:?}"
        );
        assert!(
            k.contains(&("t2_t".into(), "t3_t".into(), AVTAB_AUDITDENY, 0b010)),
            "{k:?}"
        );
    }

    #[test]
    fn star_and_complement_permissions_use_all_32_bits_like_checkpolicy() {
        let d = db("allow t1_t t3_t:c *;\nallow t2_t t3_t:c ~p;\n").unwrap();
        let k = keys(&d);
        assert!(
            k.contains(&("t1_t".into(), "t3_t".into(), AVTAB_ALLOWED, u32::MAX)),
            "{k:?}"
        );
        assert!(
            k.contains(&("t2_t".into(), "t3_t".into(), AVTAB_ALLOWED, !1)),
            "{k:?}"
        );
    }

    #[test]
    fn conditionals_are_normalised_and_merged() {
        let d =
            db("bool b true;\nif (b) { allow t1_t t3_t:c p; }\nif (!b) { allow t1_t t3_t:c q; }\n")
                .unwrap();
        assert_eq!(d.conds.len(), 1, "if (b) and if (!b) share one node");
        let n = &d.conds[0];
        assert!(n.cur_state);
        assert_eq!(n.true_list.entries[0].1, 1);
        assert_eq!(n.false_list.entries[0].1, 2);
    }

    #[test]
    fn semantic_errors() {
        assert!(
            db("allow t1_t nosuch:c p;\n")
                .unwrap_err()
                .contains("unknown type or attribute `nosuch`")
        );
        assert!(
            db("allow t1_t t3_t:c nosuch;\n")
                .unwrap_err()
                .contains("permission `nosuch` is not defined for class `c`")
        );
        assert!(
            db("type_transition t1_t t3_t:c A;\n")
                .unwrap_err()
                .contains("`A` is an attribute")
        );
        assert!(
            db("neverallow A t3_t:c p;\nallow t2_t t3_t:c { p q };\n")
                .unwrap_err()
                .contains("violates a neverallow")
        );
        assert!(
            db("type t1_t;\n")
                .unwrap_err()
                .contains("duplicate declaration")
        );
        assert!(
            db("typebounds t1_t t2_t;\nallow t2_t t3_t:c p;\n")
                .unwrap_err()
                .contains("exceeds the bounds")
        );
        assert!(
            db("policycap nosuch;\n")
                .unwrap_err()
                .contains("unknown policy capability")
        );
    }
}
