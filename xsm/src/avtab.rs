//! The access vector and type rule tables, laid out for fast lookups.
//!
//! libsepol keeps one chained hash table with an entry per (source, target,
//! class, rule kind) and a second one for conditional rules, so a decision
//! walks two chains per (source attribute, target attribute) pair. Here one
//! open-addressed table keyed by (source, target, class) holds the merged
//! unconditional allow / auditallow / dontaudit vectors plus a slice of the
//! conditional rules for that key: one probe per pair.

use alloc::vec;
use alloc::vec::Vec;

use crate::error::LoadErrorKind as K;
use crate::policydb::AvItem;
use crate::reader::{Reader, Res};

/// The kind of an access vector table entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RuleKind {
    Allowed,
    AuditDeny,
    AuditAllow,
    Transition,
    Member,
    Change,
}

impl RuleKind {
    pub(crate) fn is_type_rule(self) -> bool {
        matches!(
            self,
            RuleKind::Transition | RuleKind::Member | RuleKind::Change
        )
    }
    fn bit(self) -> u8 {
        match self {
            RuleKind::Allowed => 1,
            RuleKind::AuditAllow => 2,
            RuleKind::AuditDeny => 4,
            RuleKind::Transition => 8,
            RuleKind::Member => 16,
            RuleKind::Change => 32,
        }
    }
}

/// A conditional rule: active when conditional `cond` evaluates to `when`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CondRule {
    pub(crate) cond: u32,
    pub(crate) when: bool,
    pub(crate) kind: RuleKind,
    pub(crate) data: u32,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct AvEntry {
    key: u64,
    pub(crate) allowed: u32,
    pub(crate) auditallow: u32,
    pub(crate) auditdeny: u32,
    pub(crate) cond_start: u32,
    pub(crate) cond_len: u32,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct TypeEntry {
    key: u64,
    /// Unconditional result type (0 = none).
    pub(crate) uncond: u32,
    pub(crate) cond_start: u32,
    pub(crate) cond_len: u32,
}

#[inline]
fn av_key(s: u16, t: u16, c: u16) -> u64 {
    u64::from(s) | (u64::from(t) << 16) | (u64::from(c) << 32)
}

#[inline]
fn hash(key: u64, shift: u32) -> usize {
    (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> shift) as usize
}

/// Open-addressed hash table (linear probing, key 0 = empty).
#[derive(Debug)]
struct Table<E> {
    slots: Vec<E>,
    shift: u32,
    mask: usize,
}

trait Keyed: Copy {
    fn key(&self) -> u64;
    fn empty() -> Self;
}

impl Keyed for AvEntry {
    fn key(&self) -> u64 {
        self.key
    }
    fn empty() -> Self {
        AvEntry {
            key: 0,
            allowed: 0,
            auditallow: 0,
            auditdeny: u32::MAX,
            cond_start: 0,
            cond_len: 0,
        }
    }
}

impl Keyed for TypeEntry {
    fn key(&self) -> u64 {
        self.key
    }
    fn empty() -> Self {
        TypeEntry {
            key: 0,
            uncond: 0,
            cond_start: 0,
            cond_len: 0,
        }
    }
}

impl<E: Keyed> Table<E> {
    fn with_len(n: usize) -> Self {
        let cap = (n.max(4) * 2).next_power_of_two();
        Table {
            slots: vec![E::empty(); cap],
            shift: 64 - cap.trailing_zeros(),
            mask: cap - 1,
        }
    }

    #[inline]
    fn get(&self, key: u64) -> Option<&E> {
        let mut i = hash(key, self.shift);
        loop {
            let e = &self.slots[i];
            if e.key() == key {
                return Some(e);
            }
            if e.key() == 0 {
                return None;
            }
            i = (i + 1) & self.mask;
        }
    }

    fn insert(&mut self, e: E) {
        let mut i = hash(e.key(), self.shift);
        while self.slots[i].key() != 0 {
            i = (i + 1) & self.mask;
        }
        self.slots[i] = e;
    }
}

/// The loaded rule tables.
#[derive(Debug)]
pub(crate) struct AvTab {
    av: Table<AvEntry>,
    ty: Table<TypeEntry>,
    pub(crate) cond_rules: Vec<CondRule>,
    pub(crate) nrules: usize,
    pub(crate) ncond_rules: usize,
}

impl AvTab {
    #[inline]
    pub(crate) fn av(&self, s: u16, t: u16, c: u16) -> Option<&AvEntry> {
        self.av.get(av_key(s, t, c))
    }

    #[inline]
    pub(crate) fn ty(&self, s: u16, t: u16, c: u16, kind: RuleKind) -> Option<&TypeEntry> {
        self.ty.get(av_key(s, t, c) | (u64::from(kind.bit()) << 48))
    }

    pub(crate) fn conds(&self, start: u32, len: u32) -> &[CondRule] {
        &self.cond_rules[start as usize..(start + len) as usize]
    }
}

struct Pending {
    key: u64,
    uncond_mask: u8,
    allowed: u32,
    auditallow: u32,
    auditdeny: u32,
    uncond_type: [u32; 3],
    conds: Vec<CondRule>,
}

/// Collects rules while loading and checks them as libsepol does.
pub(crate) struct AvTabBuilder {
    map: alloc::collections::BTreeMap<u64, usize>,
    pending: Vec<Pending>,
    nrules: usize,
    ncond: usize,
}

impl AvTabBuilder {
    pub(crate) fn new(_ntypes: u32, _nclasses: u32) -> Self {
        AvTabBuilder {
            map: alloc::collections::BTreeMap::new(),
            pending: Vec::new(),
            nrules: 0,
            ncond: 0,
        }
    }

    /// Adds a rule; `cond` = Some((conditional index, true-list?)) for conditional rules.
    pub(crate) fn insert(
        &mut self,
        r: &Reader<'_>,
        it: AvItem,
        cond: Option<(u32, bool)>,
    ) -> Res<()> {
        let key = av_key(it.source, it.target, it.class);
        let idx = match self.map.get(&key) {
            Some(&i) => i,
            None => {
                self.pending.push(Pending {
                    key,
                    uncond_mask: 0,
                    allowed: 0,
                    auditallow: 0,
                    auditdeny: u32::MAX,
                    uncond_type: [0; 3],
                    conds: Vec::new(),
                });
                self.map.insert(key, self.pending.len() - 1);
                self.pending.len() - 1
            }
        };
        let p = &mut self.pending[idx];
        let bit = it.kind.bit();
        match cond {
            None => {
                self.nrules += 1;
                if p.uncond_mask & bit != 0 {
                    return r.err_at(it.offset, K::BadAvtab("duplicate rule"));
                }
                p.uncond_mask |= bit;
                // libsepol and Xen match unconditional access vector rules by exact
                // kind, so a rule stored with the "enabled" flag never applies.
                if it.enabled_flag && !it.kind.is_type_rule() {
                    return Ok(());
                }
                match it.kind {
                    RuleKind::Allowed => p.allowed = it.data,
                    RuleKind::AuditAllow => p.auditallow = it.data,
                    RuleKind::AuditDeny => p.auditdeny = it.data,
                    RuleKind::Transition => p.uncond_type[0] = it.data,
                    RuleKind::Member => p.uncond_type[1] = it.data,
                    RuleKind::Change => p.uncond_type[2] = it.data,
                }
            }
            Some((ci, when)) => {
                self.ncond += 1;
                if it.kind.is_type_rule() {
                    if p.uncond_mask & bit != 0 {
                        return r.err_at(
                            it.offset,
                            K::BadAvtab("type rule already exists outside of a conditional"),
                        );
                    }
                    let same: Vec<&CondRule> =
                        p.conds.iter().filter(|c| c.kind == it.kind).collect();
                    let ok = if when {
                        same.is_empty()
                    } else {
                        same.is_empty() || (same.len() == 1 && same[0].cond == ci && same[0].when)
                    };
                    if !ok {
                        return r
                            .err_at(it.offset, K::BadAvtab("conflicting conditional type rules"));
                    }
                }
                p.conds.push(CondRule {
                    cond: ci,
                    when,
                    kind: it.kind,
                    data: it.data,
                });
            }
        }
        Ok(())
    }

    pub(crate) fn build(self) -> AvTab {
        let nav = self
            .pending
            .iter()
            .filter(|p| p.uncond_mask & 7 != 0 || p.conds.iter().any(|c| !c.kind.is_type_rule()))
            .count();
        let nty: usize = self
            .pending
            .iter()
            .map(|p| {
                p.uncond_type.iter().filter(|&&t| t != 0).count()
                    + p.conds.iter().filter(|c| c.kind.is_type_rule()).count()
            })
            .sum();
        let mut av = Table::<AvEntry>::with_len(nav);
        let mut ty = Table::<TypeEntry>::with_len(nty);
        let mut cond_rules = Vec::new();
        for p in self.pending {
            let av_conds: Vec<CondRule> = p
                .conds
                .iter()
                .filter(|c| !c.kind.is_type_rule())
                .copied()
                .collect();
            if p.uncond_mask & 7 != 0 || !av_conds.is_empty() {
                let start = cond_rules.len() as u32;
                cond_rules.extend_from_slice(&av_conds);
                av.insert(AvEntry {
                    key: p.key,
                    allowed: p.allowed,
                    auditallow: p.auditallow,
                    auditdeny: p.auditdeny,
                    cond_start: start,
                    cond_len: av_conds.len() as u32,
                });
            }
            for (i, kind) in [RuleKind::Transition, RuleKind::Member, RuleKind::Change]
                .into_iter()
                .enumerate()
            {
                let tc: Vec<CondRule> =
                    p.conds.iter().filter(|c| c.kind == kind).copied().collect();
                if p.uncond_type[i] != 0 || !tc.is_empty() {
                    let start = cond_rules.len() as u32;
                    cond_rules.extend_from_slice(&tc);
                    ty.insert(TypeEntry {
                        key: p.key | (u64::from(kind.bit()) << 48),
                        uncond: p.uncond_type[i],
                        cond_start: start,
                        cond_len: tc.len() as u32,
                    });
                }
            }
        }
        AvTab {
            av,
            ty,
            cond_rules,
            nrules: self.nrules,
            ncond_rules: self.ncond,
        }
    }
}
