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
use crate::policydb::{AvItem, TypeDatum};
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

/// A rule's fixed 12 bytes, decoded and checked.
pub(crate) struct RawRule {
    pub(crate) source: u16,
    pub(crate) target: u16,
    pub(crate) class: u16,
    /// The kind's bit (`RuleKind::bit`).
    pub(crate) bit: u8,
    pub(crate) enabled_flag: bool,
    pub(crate) data: u32,
}

impl RawRule {
    pub(crate) fn kind(&self) -> RuleKind {
        kind_of_bit(self.bit)
    }
}

fn kind_of_bit(bit: u8) -> RuleKind {
    match bit {
        1 => RuleKind::Allowed,
        2 => RuleKind::AuditAllow,
        4 => RuleKind::AuditDeny,
        8 => RuleKind::Transition,
        16 => RuleKind::Member,
        _ => RuleKind::Change,
    }
}

/// Decodes and checks one rule (source, target, class, specified, data):
/// the one validation every rule goes through, conditional or not.
#[inline(always)]
pub(crate) fn decode_rule(
    b: &[u8],
    ntypes: u32,
    nclasses: u32,
    types: &[TypeDatum],
) -> Result<RawRule, K> {
    let b: &[u8; 12] = match b.first_chunk() {
        Some(b) => b,
        None => {
            return Err(K::Truncated {
                what: "access vector rule",
                need: 12 - b.len(),
            });
        }
    };
    let source = u16::from_le_bytes([b[0], b[1]]);
    let target = u16::from_le_bytes([b[2], b[3]]);
    let class = u16::from_le_bytes([b[4], b[5]]);
    let spec = u16::from_le_bytes([b[6], b[7]]);
    let data = u32::from_le_bytes([b[8], b[9], b[10], b[11]]);
    if spec & 0x0700 != 0 {
        return Err(K::Unsupported("extended permission rules"));
    }
    let enabled_flag = spec & 0x8000 != 0;
    // Exactly one of allow (1), auditallow (2), dontaudit (4),
    // type_transition (0x10), type_member (0x20), type_change (0x40).
    let v = spec & !0x8000;
    if !v.is_power_of_two() || v & 0x77 == 0 {
        return Err(K::BadAvtab(
            "rule kind is not exactly one of allow/auditallow/dontaudit/type_*",
        ));
    }
    // RuleKind::bit: 1, 2, 4 for the vectors, 8, 16, 32 for the type rules.
    let bit = if v >= 0x10 { (v >> 1) as u8 } else { v as u8 };
    if source == 0 || u32::from(source) > ntypes || target == 0 || u32::from(target) > ntypes {
        return Err(K::BadAvtab("rule names an unknown type"));
    }
    if class == 0 || u32::from(class) > nclasses {
        return Err(K::BadAvtab("rule names an unknown class"));
    }
    if bit >= 8
        && (data == 0 || data > ntypes || types.get(data as usize - 1).is_none_or(|t| t.attribute))
    {
        return Err(K::BadAvtab("type rule result is not a type"));
    }
    Ok(RawRule {
        source,
        target,
        class,
        bit,
        enabled_flag,
        data,
    })
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

/// Tables up to this many unconditional rules are sorted by comparison.
const SMALL_TABLE: usize = 64;

impl Uncond {
    fn key(&self) -> u64 {
        self.kb >> 8
    }
    fn bit(&self) -> u8 {
        self.kb as u8
    }
    fn offset(&self) -> usize {
        (self.off & !ENABLED_FLAG) as usize
    }
    fn enabled_flag(&self) -> bool {
        self.off & ENABLED_FLAG != 0
    }
}

/// One stable counting-sort pass of `from` into `to` by `digit`; `count[d + 1]`
/// holds the number of elements of digit `d` (consumed: it becomes the end offsets).
fn scatter(
    from: &[Uncond],
    to: &mut [Uncond],
    count: &mut [u32],
    digit: impl Fn(&Uncond) -> usize,
) {
    let mut sum = 0;
    for c in count.iter_mut() {
        sum += *c;
        *c = sum;
    }
    for u in from {
        if let Some(slot) = count.get_mut(digit(u)) {
            if let Some(t) = to.get_mut(*slot as usize) {
                *t = *u;
            }
            *slot += 1;
        }
    }
}

/// Collects rules while loading and checks them as libsepol does
/// (duplicates refused; conditional type rules may not conflict).
pub(crate) struct AvTabBuilder {
    uncond: Vec<Uncond>,
    /// Rules per source and per target type (index value + 1), counted
    /// while reading, for the counting sorts of `seal`.
    by_src: Vec<u32>,
    by_tgt: Vec<u32>,
    sorted: bool,
    conds: alloc::collections::BTreeMap<u64, Vec<CondRule>>,
    nrules: usize,
    ncond: usize,
}

impl AvTabBuilder {
    pub(crate) fn new(_ntypes: u32, _nclasses: u32) -> Self {
        AvTabBuilder {
            uncond: Vec::new(),
            by_src: Vec::new(),
            by_tgt: Vec::new(),
            sorted: false,
            conds: alloc::collections::BTreeMap::new(),
            nrules: 0,
            ncond: 0,
        }
    }

    /// Reads the unconditional table's `n` rules (the caller checked that
    /// `n` * 12 bytes are left: every rule is 12 bytes, extended permission
    /// rules being refused), in one pass over one slice.
    pub(crate) fn read_uncond(
        &mut self,
        r: &mut Reader<'_>,
        n: usize,
        ntypes: u32,
        nclasses: u32,
        types: &[TypeDatum],
    ) -> Res<()> {
        let base = r.pos();
        let all = r.bytes(n.saturating_mul(12), "access vector rules")?;
        // Locals, not fields: the loop keeps lengths in registers.
        let mut out = Vec::with_capacity(n);
        // Type values are 1..=ntypes (checked per rule); slot v + 1 counts
        // value v. Small tables are sorted by comparison (no counts).
        let counts = ntypes as usize + 2;
        let mut by_src = alloc::vec![0u32; counts];
        let mut by_tgt = alloc::vec![0u32; counts];
        for (i, b) in all.chunks_exact(12).enumerate() {
            let off = base + 12 * i;
            let (Some(lo), Some(hi)) = (b.first_chunk::<8>(), b.last_chunk::<4>()) else {
                continue; // chunks_exact: never
            };
            let lo = u64::from_le_bytes(*lo);
            let data = u32::from_le_bytes(*hi);
            let (source, target, class) = (lo as u16, (lo >> 16) as u16, (lo >> 32) as u16);
            let spec = (lo >> 48) as u16;
            // The common case checked at once: an allow, auditallow or
            // dontaudit rule on known types and class. Anything else (type
            // rules, and every error) goes through the full decode.
            let (bit, enabled_flag) = if u32::from(source).wrapping_sub(1) < ntypes
                && u32::from(target).wrapping_sub(1) < ntypes
                && u32::from(class).wrapping_sub(1) < nclasses
                && matches!(spec & 0x7fff, 1 | 2 | 4)
            {
                ((spec & 0x7) as u8, spec & 0x8000 != 0)
            } else {
                match decode_rule(b, ntypes, nclasses, types) {
                    Ok(d) => (d.bit, d.enabled_flag),
                    Err(k) => return r.err_at(off, k),
                }
            };
            if let Some(c) = by_src.get_mut(usize::from(source) + 1) {
                *c += 1;
            }
            if let Some(c) = by_tgt.get_mut(usize::from(target) + 1) {
                *c += 1;
            }
            let key = av_key(source, target, class);
            out.push(Uncond {
                kb: (key << 8) | u64::from(bit),
                data,
                off: off as u32 | if enabled_flag { ENABLED_FLAG } else { 0 },
            });
        }
        self.uncond = out;
        self.by_src = by_src;
        self.by_tgt = by_tgt;
        self.nrules += n;
        Ok(())
    }

    /// Sorts the unconditional rules and refuses duplicates (called once,
    /// after the unconditional table and before the conditional lists).
    fn seal(&mut self, r: &Reader<'_>) -> Res<()> {
        if self.sorted {
            return Ok(());
        }
        self.sorted = true;
        let n = self.uncond.len();
        if n <= SMALL_TABLE || self.by_src.len() != self.by_tgt.len() || self.by_src.is_empty() {
            self.uncond.sort_unstable_by_key(|u| u.kb);
        } else {
            // Two stable counting passes (by target, then by source; the
            // counts were taken while reading) order the rules by (source,
            // target); then the rare pair whose rules are out of (class,
            // kind) order is sorted on its own.
            let mut tmp = alloc::vec![
                Uncond {
                    kb: 0,
                    data: 0,
                    off: 0
                };
                n
            ];
            scatter(&self.uncond, &mut tmp, &mut self.by_tgt, |u| {
                ((u.kb >> 24) & 0xffff) as usize
            });
            scatter(&tmp, &mut self.uncond, &mut self.by_src, |u| {
                (u.kb >> 40) as usize
            });
            // The counting sorts leave (source, target) in order, so a key
            // not above the one before it is a duplicate or a (source,
            // target) run out of (class, kind) order: a tight scan finds
            // them; such a run is sorted alone and checked for duplicates.
            let u = &mut self.uncond[..];
            let mut from = 0;
            while let Some(p) = u[from..].windows(2).position(|w| w[0].kb >= w[1].kb) {
                let i = from + p + 1;
                let (a, b) = (u[i - 1].kb, u[i].kb);
                if a == b {
                    return r.err_at(u[i].offset(), K::BadAvtab("duplicate rule"));
                }
                let st = b >> 24;
                let mut run = i - 1;
                while run > 0 && u[run - 1].kb >> 24 == st {
                    run -= 1;
                }
                let mut end = i + 1;
                while end < n && u[end].kb >> 24 == st {
                    end += 1;
                }
                let rs = &mut u[run..end];
                rs.sort_unstable_by_key(|u| u.kb);
                if let Some(w) = rs.windows(2).find(|w| w[0].kb == w[1].kb) {
                    return r.err_at(w[1].offset(), K::BadAvtab("duplicate rule"));
                }
                // Go on from the run's last rule (compared with the next run's first).
                from = end - 1;
            }
            self.by_src = Vec::new();
            self.by_tgt = Vec::new();
            return Ok(());
        }
        self.by_src = Vec::new();
        self.by_tgt = Vec::new();
        for w in self.uncond.windows(2) {
            if w[0].kb == w[1].kb {
                return r.err_at(w[1].offset(), K::BadAvtab("duplicate rule"));
            }
        }
        Ok(())
    }

    /// Adds a conditional rule of conditional `ci`'s true (`when`) or false list.
    pub(crate) fn insert_cond(
        &mut self,
        r: &Reader<'_>,
        it: AvItem,
        ci: u32,
        when: bool,
    ) -> Res<()> {
        let key = av_key(it.source, it.target, it.class);
        let bit = it.kind.bit();
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
                return r.err_at(it.offset, K::BadAvtab("conflicting conditional type rules"));
            }
        }
        list.push(CondRule {
            cond: ci,
            when,
            kind: it.kind,
            data: it.data,
        });
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
        let mut cond_rules = Vec::with_capacity(self.ncond);
        let uncond = core::mem::take(&mut self.uncond);
        let mut rest = &uncond[..];
        let mut ci = 0;
        const TYPE_KINDS: [RuleKind; 3] =
            [RuleKind::Transition, RuleKind::Member, RuleKind::Change];
        loop {
            // Keys are below 2^48: u64::MAX marks an exhausted list.
            let kc = conds.get(ci).map_or(u64::MAX, |c| c.0);
            // The common case first: a lone unconditional access vector
            // rule, its key in no other rule.
            while let [u, tail @ ..] = rest {
                let key = u.key();
                if key >= kc || u.bit() > 4 || tail.first().is_some_and(|n| n.key() == key) {
                    break;
                }
                let mut e = AvEntry {
                    allowed: 0,
                    auditallow: 0,
                    auditdeny: u32::MAX,
                    cond_start: 0,
                    cond_len: 0,
                };
                if !u.enabled_flag() {
                    match u.bit() {
                        1 => e.allowed = u.data,
                        2 => e.auditallow = u.data,
                        _ => e.auditdeny = u.data,
                    }
                }
                av_keys.push(key);
                av.push(e);
                rest = tail;
            }
            let ku = rest.first().map_or(u64::MAX, Uncond::key);
            let key = ku.min(kc);
            if key == u64::MAX {
                break;
            }
            let g = rest.iter().take_while(|u| u.key() == key).count();
            let (group, tail) = rest.split_at(g);
            rest = tail;
            let mut e = AvEntry {
                allowed: 0,
                auditallow: 0,
                auditdeny: u32::MAX,
                cond_start: 0,
                cond_len: 0,
            };
            let mut has_av = false;
            // Unconditional type_transition, type_member, type_change results.
            let mut uncond_type = [0u32; 3];
            for u in group {
                let bit = u.bit();
                if bit <= 4 {
                    has_av = true;
                    // libsepol and Xen match unconditional access vector rules by
                    // exact kind: a rule stored with the "enabled" flag never applies.
                    if !u.enabled_flag() {
                        match bit {
                            1 => e.allowed = u.data,
                            2 => e.auditallow = u.data,
                            _ => e.auditdeny = u.data,
                        }
                    }
                } else if let Some(t) = uncond_type.get_mut(usize::from(bit >> 4)) {
                    // bits 8, 16, 32 -> 0, 1, 2
                    *t = u.data;
                }
            }
            if kc != key {
                // The common case: unconditional rules only.
                if has_av {
                    av_keys.push(key);
                    av.push(e);
                }
                if uncond_type != [0; 3] {
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
                }
                continue;
            }
            let conds = &conds[ci].1;
            ci += 1;
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
