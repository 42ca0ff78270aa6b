//! The access vector and type rule tables, laid out for fast lookups.
//!
//! libsepol keeps one chained hash table with an entry per (source, target,
//! class, rule kind) and a second one for conditional rules, so a decision
//! walks two chains per (source attribute, target attribute) pair. Here one
//! open-addressed table keyed by (source, target, class) holds the merged
//! unconditional allow / auditallow / dontaudit vectors plus a slice of the
//! conditional rules for that key: one probe per pair.

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
    pub(crate) allowed: u32,
    pub(crate) auditallow: u32,
    pub(crate) auditdeny: u32,
    pub(crate) cond_start: u32,
    pub(crate) cond_len: u32,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct TypeEntry {
    /// Unconditional result type (0 = none).
    pub(crate) uncond: u32,
    pub(crate) cond_start: u32,
    pub(crate) cond_len: u32,
}

/// (source, target, class) packed so that sorting by key groups rules by source type.
#[inline]
pub(crate) fn av_key(s: u16, t: u16, c: u16) -> u64 {
    (u64::from(s) << 32) | (u64::from(t) << 16) | u64::from(c)
}

/// The loaded rule tables: access vector entries sorted by (source, target,
/// class) with a per-source-type index (a lookup is a binary search in the
/// source type's slice); type rules sorted by (key, kind).
#[derive(Debug)]
pub(crate) struct AvTab {
    av_keys: Vec<u64>,
    av: Vec<AvEntry>,
    /// av index range of source type s: index[s]..index[s + 1].
    index: Vec<u32>,
    ty_keys: Vec<u64>,
    ty: Vec<TypeEntry>,
    pub(crate) cond_rules: Vec<CondRule>,
    pub(crate) nrules: usize,
    pub(crate) ncond_rules: usize,
}

impl AvTab {
    /// The access vector entries of source type `s` (keys and entries), if any.
    #[inline]
    pub(crate) fn source(&self, s: u16) -> Option<(&[u64], &[AvEntry])> {
        let s = usize::from(s);
        let (lo, hi) = (
            *self.index.get(s)? as usize,
            *self.index.get(s + 1)? as usize,
        );
        if lo == hi {
            return None;
        }
        Some((&self.av_keys[lo..hi], &self.av[lo..hi]))
    }

    #[inline]
    pub(crate) fn ty(&self, s: u16, t: u16, c: u16, kind: RuleKind) -> Option<&TypeEntry> {
        let k = (av_key(s, t, c) << 8) | u64::from(kind.bit());
        self.ty_keys.binary_search(&k).ok().map(|i| &self.ty[i])
    }

    pub(crate) fn conds(&self, start: u32, len: u32) -> &[CondRule] {
        &self.cond_rules[start as usize..(start + len) as usize]
    }
}

/// One unconditional rule as read, packed in 16 bytes so that sorting the
/// table (the loader's main cost) moves little memory.
#[derive(Clone, Copy)]
struct Uncond {
    /// key << 8 | kind bit
    kb: u64,
    data: u32,
    /// offset in the image | ENABLED_FLAG
    off: u32,
}

const ENABLED_FLAG: u32 = 1 << 31;

impl Uncond {
    fn key(&self) -> u64 {
        self.kb >> 8
    }
    fn bit(&self) -> u8 {
        self.kb as u8
    }
    fn kind(&self) -> RuleKind {
        match self.bit() {
            1 => RuleKind::Allowed,
            2 => RuleKind::AuditAllow,
            4 => RuleKind::AuditDeny,
            8 => RuleKind::Transition,
            16 => RuleKind::Member,
            _ => RuleKind::Change,
        }
    }
    fn offset(&self) -> usize {
        (self.off & !ENABLED_FLAG) as usize
    }
    fn enabled_flag(&self) -> bool {
        self.off & ENABLED_FLAG != 0
    }
}

/// Collects rules while loading and checks them as libsepol does
/// (duplicates refused; conditional type rules may not conflict).
pub(crate) struct AvTabBuilder {
    uncond: Vec<Uncond>,
    sorted: bool,
    conds: alloc::collections::BTreeMap<u64, Vec<CondRule>>,
    nrules: usize,
    ncond: usize,
}

impl AvTabBuilder {
    pub(crate) fn new(_ntypes: u32, _nclasses: u32) -> Self {
        AvTabBuilder {
            uncond: Vec::new(),
            sorted: false,
            conds: alloc::collections::BTreeMap::new(),
            nrules: 0,
            ncond: 0,
        }
    }

    pub(crate) fn reserve(&mut self, n: usize) {
        self.uncond.reserve(n);
    }

    /// Sorts the unconditional rules and refuses duplicates (called once,
    /// after the unconditional table and before the conditional lists).
    fn seal(&mut self, r: &Reader<'_>) -> Res<()> {
        if self.sorted {
            return Ok(());
        }
        self.sorted = true;
        // Distribute by source type (a counting pass and a scatter), then sort
        // each source's few rules: cheaper than one comparison sort of all.
        let src = |u: &Uncond| (u.kb >> 40) as usize;
        let nsrc = self.uncond.iter().map(src).max().map_or(0, |m| m + 1);
        let mut start = alloc::vec![0u32; nsrc + 1];
        for u in &self.uncond {
            start[src(u) + 1] += 1;
        }
        for i in 1..start.len() {
            start[i] += start[i - 1];
        }
        let mut next = start.clone();
        let mut out = alloc::vec![
            Uncond {
                kb: 0,
                data: 0,
                off: 0
            };
            self.uncond.len()
        ];
        for u in &self.uncond {
            let slot = &mut next[src(u)];
            out[*slot as usize] = *u;
            *slot += 1;
        }
        for w in start.windows(2) {
            out[w[0] as usize..w[1] as usize].sort_unstable_by_key(|u| u.kb);
        }
        self.uncond = out;
        for w in self.uncond.windows(2) {
            if w[0].kb == w[1].kb {
                return r.err_at(w[1].offset(), K::BadAvtab("duplicate rule"));
            }
        }
        Ok(())
    }

    /// Adds a rule; `cond` = Some((conditional index, true-list?)) for conditional rules.
    pub(crate) fn insert(
        &mut self,
        r: &Reader<'_>,
        it: AvItem,
        cond: Option<(u32, bool)>,
    ) -> Res<()> {
        let key = av_key(it.source, it.target, it.class);
        let bit = it.kind.bit();
        match cond {
            None => {
                self.nrules += 1;
                self.uncond.push(Uncond {
                    kb: (key << 8) | u64::from(bit),
                    data: it.data,
                    off: it.offset as u32 | if it.enabled_flag { ENABLED_FLAG } else { 0 },
                });
            }
            Some((ci, when)) => {
                self.seal(r)?;
                self.ncond += 1;
                let list = self.conds.entry(key).or_default();
                if it.kind.is_type_rule() {
                    if self
                        .uncond
                        .binary_search_by_key(&((key << 8) | u64::from(bit)), |u| u.kb)
                        .is_ok()
                    {
                        return r.err_at(
                            it.offset,
                            K::BadAvtab("type rule already exists outside of a conditional"),
                        );
                    }
                    let same: Vec<&CondRule> = list.iter().filter(|c| c.kind == it.kind).collect();
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
                list.push(CondRule {
                    cond: ci,
                    when,
                    kind: it.kind,
                    data: it.data,
                });
            }
        }
        Ok(())
    }

    pub(crate) fn build(mut self, r: &Reader<'_>) -> Res<AvTab> {
        self.seal(r)?;
        // Group by key: unconditional rules (sorted) merged with the
        // conditional ones (a sorted map) in one two-pointer pass.
        let conds: Vec<(u64, Vec<CondRule>)> =
            core::mem::take(&mut self.conds).into_iter().collect();
        let mut av_keys = Vec::with_capacity(self.uncond.len() + conds.len());
        let mut av = Vec::with_capacity(self.uncond.len() + conds.len());
        let mut ty_keys = Vec::new();
        let mut ty = Vec::new();
        let mut cond_rules = Vec::new();
        let mut i = 0;
        let mut ci = 0;
        let empty: Vec<CondRule> = Vec::new();
        loop {
            let ku = self.uncond.get(i).map(|u| u.key());
            let kc = conds.get(ci).map(|c| c.0);
            let key = match (ku, kc) {
                (None, None) => break,
                (Some(a), None) => a,
                (None, Some(b)) => b,
                (Some(a), Some(b)) => a.min(b),
            };
            let start = i;
            while i < self.uncond.len() && self.uncond[i].key() == key {
                i += 1;
            }
            let group = &self.uncond[start..i];
            let conds = if kc == Some(key) {
                ci += 1;
                &conds[ci - 1].1
            } else {
                &empty
            };
            let mut e = AvEntry {
                allowed: 0,
                auditallow: 0,
                auditdeny: u32::MAX,
                cond_start: 0,
                cond_len: 0,
            };
            let mut has_av = false;
            let mut uncond_type = [0u32; 3];
            for u in group {
                match u.kind() {
                    // libsepol and Xen match unconditional access vector rules by
                    // exact kind: a rule stored with the "enabled" flag never applies.
                    _ if u.enabled_flag() && !u.kind().is_type_rule() => has_av = true,
                    RuleKind::Allowed => (e.allowed, has_av) = (u.data, true),
                    RuleKind::AuditAllow => (e.auditallow, has_av) = (u.data, true),
                    RuleKind::AuditDeny => (e.auditdeny, has_av) = (u.data, true),
                    RuleKind::Transition => uncond_type[0] = u.data,
                    RuleKind::Member => uncond_type[1] = u.data,
                    RuleKind::Change => uncond_type[2] = u.data,
                }
            }
            const TYPE_KINDS: [RuleKind; 3] =
                [RuleKind::Transition, RuleKind::Member, RuleKind::Change];
            if conds.is_empty() {
                // The common case: unconditional rules only.
                if has_av {
                    av_keys.push(key);
                    av.push(e);
                }
                for (j, kind) in TYPE_KINDS.into_iter().enumerate() {
                    if uncond_type[j] != 0 {
                        ty_keys.push((key << 8) | u64::from(kind.bit()));
                        ty.push(TypeEntry {
                            uncond: uncond_type[j],
                            cond_start: cond_rules.len() as u32,
                            cond_len: 0,
                        });
                    }
                }
                continue;
            }
            let av_conds = conds.iter().filter(|c| !c.kind.is_type_rule());
            let n = av_conds.clone().count();
            if has_av || n > 0 {
                e.cond_start = cond_rules.len() as u32;
                e.cond_len = n as u32;
                cond_rules.extend(av_conds.copied());
                av_keys.push(key);
                av.push(e);
            }
            for (j, kind) in TYPE_KINDS.into_iter().enumerate() {
                let tc = conds.iter().filter(|c| c.kind == kind);
                let n = tc.clone().count();
                if uncond_type[j] != 0 || n > 0 {
                    let start = cond_rules.len() as u32;
                    cond_rules.extend(tc.copied());
                    ty_keys.push((key << 8) | u64::from(kind.bit()));
                    ty.push(TypeEntry {
                        uncond: uncond_type[j],
                        cond_start: start,
                        cond_len: n as u32,
                    });
                }
            }
        }
        // Per-source index (types are u16 values).
        let max_s = av_keys.last().map_or(0, |k| (k >> 32) as usize);
        let mut index = alloc::vec![0u32; max_s + 2];
        for k in &av_keys {
            index[(k >> 32) as usize + 1] += 1;
        }
        for s in 1..index.len() {
            index[s] += index[s - 1];
        }
        Ok(AvTab {
            av_keys,
            av,
            index,
            ty_keys,
            ty,
            cond_rules,
            nrules: self.nrules,
            ncond_rules: self.ncond,
        })
    }
}
