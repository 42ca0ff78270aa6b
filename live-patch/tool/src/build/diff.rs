//! Relocation-aware comparison of two builds and the payload it implies.
//!
//! Units (input sections) of the patched build `p` are paired with those of
//! the base build `b` by key (the mangled symbol name without ThinLTO's
//! `.llvm.N` suffix; several units of one key pair in address order).
//! Anonymous units (string literals, constant pools, vtables) have no key and
//! are compared by content. Two units are equivalent when their bytes are
//! equal outside relocation fields and every relocation refers to the same
//! thing: the same named symbol with the same addend, or equivalent units at
//! the same offset. Addresses never enter the comparison, so code that only
//! moved is unchanged.
//!
//! Addresses, names and sizes of old functions and of every hypervisor symbol
//! the payload refers to come from `r`, the reproduction of the running
//! image (the same as `b` unless the payload stacks on others).

use super::linked::{Linked, Unit, UnitKind, is_anonymous, symbol_key};
use crate::{Error, Result};
use iced_x86::{Decoder, DecoderOptions, Instruction, Mnemonic, OpKind};
use livepatch_format::elf::{
    R_X86_64_32, R_X86_64_32S, R_X86_64_64, R_X86_64_PC32, R_X86_64_PC64, R_X86_64_PLT32,
};
use livepatch_format::payload::Region;
use livepatch_format::write::{Builder, FuncSpec, SymId};
use object::SymbolKind;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

const R_GOTPCREL: u32 = 9;
const R_GOTPCRELX: u32 = 41;
const R_REX_GOTPCRELX: u32 = 42;

/// What a relocation refers to, independent of addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ref {
    /// A named symbol (by key) plus addend.
    Named {
        key: String,
        sym: usize,
        addend: i64,
    },
    /// An input section plus offset (the relocation's S+A relative to it);
    /// `at` is where the reference really points, relative to the section.
    Unit { unit: usize, off: i64, at: i64 },
    /// The GOT slot of a named symbol, plus addend.
    Got {
        key: String,
        sym: usize,
        addend: i64,
    },
    /// Nothing placed by the map: an output section plus offset.
    Loose { section: String, off: i64 },
}

impl Ref {
    /// Without the symbol index (which differs between images).
    fn strip(self) -> Ref {
        match self {
            Ref::Named { key, addend, .. } => Ref::Named {
                key,
                sym: 0,
                addend,
            },
            Ref::Got { key, addend, .. } => Ref::Got {
                key,
                sym: 0,
                addend,
            },
            r => r,
        }
    }
}

/// One relocation of a unit, made address-independent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct URel {
    /// Field offset within the unit.
    pub off: u64,
    /// Relocation type as it will be in the payload (GOT loads relaxed to
    /// `lea` become PC32).
    pub kind: u32,
    pub width: u64,
    pub target: Ref,
}

fn width_of(kind: u32) -> Option<u64> {
    match kind {
        R_X86_64_64 | R_X86_64_PC64 => Some(8),
        R_X86_64_PC32 | R_X86_64_PLT32 | R_X86_64_32 | R_X86_64_32S | R_GOTPCREL | R_GOTPCRELX
        | R_REX_GOTPCRELX => Some(4),
        _ => None,
    }
}

/// Per-image caches.
pub struct View<'a> {
    pub l: &'a Linked,
    rels: HashMap<usize, std::result::Result<std::rc::Rc<Vec<URel>>, String>>,
}

impl<'a> View<'a> {
    pub fn new(l: &'a Linked) -> Self {
        View {
            l,
            rels: HashMap::new(),
        }
    }

    fn decode(&self, u: &Unit, at: u64) -> std::result::Result<Instruction, String> {
        let bytes = self.l.bytes(u.addr, u.size).ok_or("unit has no bytes")?;
        let mut d = Decoder::with_ip(64, bytes, u.addr, DecoderOptions::NONE);
        let mut ins = Instruction::default();
        while d.can_decode() {
            d.decode_out(&mut ins);
            if ins.is_invalid() {
                return Err(format!("undecodable instruction at {:#x}", ins.ip()));
            }
            if at >= ins.ip() && at < ins.next_ip() {
                return Ok(ins);
            }
        }
        Err(format!("no instruction holds the relocation at {at:#x}"))
    }

    /// The unit's relocations, address-independent.
    pub fn rels(&mut self, unit: usize) -> std::result::Result<std::rc::Rc<Vec<URel>>, String> {
        if let Some(r) = self.rels.get(&unit) {
            return r.clone();
        }
        let r = self.compute(unit).map(std::rc::Rc::new);
        self.rels.insert(unit, r.clone());
        r
    }

    fn compute(&self, unit: usize) -> std::result::Result<Vec<URel>, String> {
        let l = self.l;
        let u = &l.units[unit];
        let mut out = Vec::new();
        for r in l.relocs_in(u.addr, u.size) {
            let sym = &l.symbols[r.sym];
            let width = width_of(r.kind).ok_or_else(|| {
                format!(
                    "unsupported relocation type {} at {:#x} in {}",
                    r.kind, r.at, u.input
                )
            })?;
            if r.at + width > u.addr + u.size {
                return Err(format!(
                    "relocation at {:#x} straddles the end of {}",
                    r.at, u.input
                ));
            }
            let named = !is_anonymous(&sym.name)
                && !matches!(sym.kind, SymbolKind::Section | SymbolKind::File);
            let mut kind = r.kind;
            if matches!(r.kind, R_GOTPCREL | R_GOTPCRELX | R_REX_GOTPCRELX) {
                let ins = if u.kind == UnitKind::Func {
                    self.decode(u, r.at)?
                } else {
                    return Err(format!("GOT relocation outside a function at {:#x}", r.at));
                };
                if !named {
                    return Err(format!(
                        "GOT relocation against an anonymous symbol at {:#x}",
                        r.at
                    ));
                }
                if ins.mnemonic() == Mnemonic::Lea || ins.op0_kind() == OpKind::NearBranch64 {
                    // The linker relaxed the GOT load into a direct reference.
                    kind = R_X86_64_PC32;
                } else {
                    out.push(URel {
                        off: r.at - u.addr,
                        kind: R_X86_64_PC32,
                        width,
                        target: Ref::Got {
                            key: symbol_key(&sym.name),
                            sym: r.sym,
                            addend: r.addend,
                        },
                    });
                    continue;
                }
            }
            let target = if named {
                Ref::Named {
                    key: symbol_key(&sym.name),
                    sym: r.sym,
                    addend: r.addend,
                }
            } else {
                let sa = (sym.addr as i64).wrapping_add(r.addend);
                let pcrel = matches!(kind, R_X86_64_PC32 | R_X86_64_PLT32 | R_X86_64_PC64);
                // Where the reference really points: for PC-relative fields the
                // addend also holds the distance from the field to the end of
                // the instruction, so decode it.
                let t = if sym.kind != SymbolKind::Section {
                    sym.addr
                } else if pcrel && u.kind == UnitKind::Func {
                    let ins = self.decode(u, r.at)?;
                    if ins.is_ip_rel_memory_operand() {
                        ins.ip_rel_memory_address()
                    } else if matches!(ins.op0_kind(), OpKind::NearBranch64 | OpKind::NearBranch32)
                    {
                        ins.near_branch_target()
                    } else {
                        return Err(format!(
                            "cannot tell what the relocation at {:#x} refers to",
                            r.at
                        ));
                    }
                } else if pcrel {
                    (sa + width as i64) as u64
                } else {
                    sa as u64
                };
                match l.unit_at(t).or_else(|| l.unit_ending_at(t)) {
                    Some(e) => Ref::Unit {
                        unit: e,
                        off: sa - l.units[e].addr as i64,
                        at: t as i64 - l.units[e].addr as i64,
                    },
                    None => {
                        let sec = l
                            .sections
                            .iter()
                            .find(|s| s.alloc && t >= s.addr && t <= s.addr + s.size)
                            .map_or("?", |s| s.name.as_str());
                        let base = l
                            .sections
                            .iter()
                            .find(|s| s.name == sec)
                            .map_or(0, |s| s.addr);
                        Ref::Loose {
                            section: sec.to_string(),
                            off: sa - base as i64,
                        }
                    }
                }
            };
            out.push(URel {
                off: r.at - u.addr,
                kind,
                width,
                target,
            });
        }
        Ok(out)
    }

    /// Bytes of a unit with relocation fields zeroed (.bss: zeros).
    fn masked(&mut self, unit: usize) -> std::result::Result<Vec<u8>, String> {
        let u = &self.l.units[unit];
        let mut b = match self.l.bytes(u.addr, u.size) {
            Some(b) => b.to_vec(),
            None => vec![0; u.size as usize],
        };
        for r in self.rels(unit)?.iter() {
            b[r.off as usize..(r.off + r.width) as usize].fill(0);
        }
        Ok(b)
    }
}

/// Compares units of two images.
pub struct Cmp<'a, 'b> {
    pub x: &'b mut View<'a>,
    pub y: &'b mut View<'a>,
    memo: HashMap<(usize, usize), bool>,
    busy: HashSet<(usize, usize)>,
}

impl<'a, 'b> Cmp<'a, 'b> {
    pub fn new(x: &'b mut View<'a>, y: &'b mut View<'a>) -> Self {
        Cmp {
            x,
            y,
            memo: HashMap::new(),
            busy: HashSet::new(),
        }
    }

    /// Whether unit `a` of x and unit `b` of y are equivalent.
    pub fn equiv(&mut self, a: usize, b: usize) -> bool {
        if let Some(&v) = self.memo.get(&(a, b)) {
            return v;
        }
        if !self.busy.insert((a, b)) {
            return true; // a cycle: equal unless something else differs
        }
        let v = self.equiv_inner(a, b);
        self.busy.remove(&(a, b));
        self.memo.insert((a, b), v);
        v
    }

    fn equiv_inner(&mut self, a: usize, b: usize) -> bool {
        let (ua, ub) = (&self.x.l.units[a], &self.y.l.units[b]);
        if ua.size != ub.size || ua.kind != ub.kind {
            return false;
        }
        let (Ok(ra), Ok(rb)) = (self.x.rels(a), self.y.rels(b)) else {
            return false;
        };
        if ra.len() != rb.len() {
            return false;
        }
        match (self.x.masked(a), self.y.masked(b)) {
            (Ok(ba), Ok(bb)) if ba == bb => {}
            _ => return false,
        }
        for (p, q) in ra.iter().zip(rb.iter()) {
            if p.off != q.off || p.kind != q.kind {
                return false;
            }
            let same = match (&p.target, &q.target) {
                (
                    Ref::Named {
                        key: k1,
                        addend: a1,
                        ..
                    },
                    Ref::Named {
                        key: k2,
                        addend: a2,
                        ..
                    },
                )
                | (
                    Ref::Got {
                        key: k1,
                        addend: a1,
                        ..
                    },
                    Ref::Got {
                        key: k2,
                        addend: a2,
                        ..
                    },
                ) => k1 == k2 && a1 == a2,
                (
                    Ref::Unit {
                        unit: u1,
                        off: o1,
                        at: t1,
                    },
                    Ref::Unit {
                        unit: u2,
                        off: o2,
                        at: t2,
                    },
                ) => self.same_target(*u1, *o1, *t1, *u2, *o2, *t2),
                (
                    Ref::Loose {
                        section: s1,
                        off: o1,
                    },
                    Ref::Loose {
                        section: s2,
                        off: o2,
                    },
                ) => s1 == s2 && o1 == o2,
                _ => false,
            };
            if !same {
                return false;
            }
        }
        true
    }

    /// Why two units differ (for `LIVEPATCH_DEBUG=1`).
    pub fn explain(&mut self, a: usize, b: usize) -> String {
        let (ua, ub) = (&self.x.l.units[a], &self.y.l.units[b]);
        if ua.size != ub.size || ua.kind != ub.kind {
            return format!(
                "size/kind {}/{:?} vs {}/{:?}",
                ua.size, ua.kind, ub.size, ub.kind
            );
        }
        let (ra, rb) = match (self.x.rels(a), self.y.rels(b)) {
            (Ok(x), Ok(y)) => (x, y),
            (x, y) => return format!("relocations: {:?} / {:?}", x.err(), y.err()),
        };
        if ra.len() != rb.len() {
            return format!("{} vs {} relocations", ra.len(), rb.len());
        }
        if let (Ok(ba), Ok(bb)) = (self.x.masked(a), self.y.masked(b))
            && let Some(i) = ba.iter().zip(&bb).position(|(p, q)| p != q)
        {
            return format!("bytes differ at +{i:#x}");
        }
        for (p, q) in ra.iter().zip(rb.iter()) {
            let same = p.off == q.off && p.kind == q.kind && {
                let mut c = Cmp::new(self.x, self.y);
                match (&p.target, &q.target) {
                    (
                        Ref::Unit {
                            unit: u1,
                            off: o1,
                            at: t1,
                        },
                        Ref::Unit {
                            unit: u2,
                            off: o2,
                            at: t2,
                        },
                    ) => c.same_target(*u1, *o1, *t1, *u2, *o2, *t2),
                    (x, y) => x.clone().strip() == y.clone().strip(),
                }
            };
            if !same {
                let show = |l: &Linked, r: &Ref| match r {
                    Ref::Unit { unit, off, .. } => format!(
                        "unit {} {:?}{off:+}",
                        l.units[*unit].input, l.units[*unit].key
                    ),
                    other => format!("{other:?}"),
                };
                return format!(
                    "relocation at +{:#x} type {}: {} vs {}",
                    p.off,
                    p.kind,
                    show(self.x.l, &p.target),
                    show(self.y.l, &q.target)
                );
            }
        }
        "equal".into()
    }

    /// Whether two references into units point at the same thing. In
    /// merged string and constant sections only the referenced item counts
    /// (the linker merges and reorders them).
    fn same_target(&mut self, u1: usize, o1: i64, t1: i64, u2: usize, o2: i64, t2: i64) -> bool {
        let merge = self.x.l.units[u1].merge;
        if merge.is_some() && merge == self.y.l.units[u2].merge {
            if o1 - t1 != o2 - t2 {
                return false;
            }
            let item = |l: &Linked, u: usize, t: i64| -> Option<Vec<u8>> {
                let unit = &l.units[u];
                let bytes = l.bytes(unit.addr, unit.size)?;
                let rest = bytes.get(usize::try_from(t).ok()?..)?;
                Some(match merge {
                    Some(0) => rest[..rest.iter().position(|&b| b == 0)? + 1].to_vec(),
                    Some(n) => rest.get(..n as usize)?.to_vec(),
                    None => return None,
                })
            };
            return match (item(self.x.l, u1, t1), item(self.y.l, u2, t2)) {
                (Some(a), Some(b)) => a == b,
                _ => false,
            };
        }
        o1 == o2 && self.same_identity(u1, u2)
    }

    fn same_identity(&mut self, a: usize, b: usize) -> bool {
        match (&self.x.l.units[a].key, &self.y.l.units[b].key) {
            (Some(k1), Some(k2)) => k1 == k2,
            (None, None) => self.equiv(a, b),
            _ => false,
        }
    }
}

/// What changed between the base and the patched build.
#[derive(Debug, Default)]
pub struct Changes {
    /// Changed functions: (patched unit, base unit).
    pub changed: Vec<(usize, usize)>,
    /// Units of the patched build with no counterpart in the base.
    pub new: BTreeSet<usize>,
    /// Reasons the patch cannot be a live patch.
    pub refusals: Vec<String>,
}

fn describe(l: &Linked, u: usize) -> String {
    let unit = &l.units[u];
    let name = l
        .symbols
        .iter()
        .find(|s| {
            s.addr == unit.addr
                && !is_anonymous(&s.name)
                && !matches!(s.kind, SymbolKind::Section | SymbolKind::File)
        })
        .map(|s| xtask::build::demangle(&s.name))
        .unwrap_or_else(|| unit.input.clone());
    format!("{name} ({} of crate {})", unit.input, unit.krate)
}

/// Find what changed from `b` to `p`.
pub fn changes<'a>(b: &mut View<'a>, p: &mut View<'a>) -> Changes {
    let mut ch = Changes::default();
    let pl = p.l;
    let bl = b.l;
    let mut cmp = Cmp::new(b, p);
    for (key, pus) in pl.keys() {
        let bus = bl.units_with_key(key);
        for (i, &pu) in pus.iter().enumerate() {
            let kind = pl.units[pu].kind;
            match bus.get(i) {
                Some(&bu) => {
                    if cmp.equiv(bu, pu) {
                        continue;
                    }
                    if std::env::var_os("LIVEPATCH_DEBUG").is_some() {
                        eprintln!(
                            "livepatch: changed {}: {}",
                            describe(pl, pu),
                            cmp.explain(bu, pu)
                        );
                    }
                    match kind {
                        UnitKind::Func => ch.changed.push((pu, bu)),
                        UnitKind::ReadOnly | UnitKind::Writable => ch.refusals.push(format!(
                            "changed static data: {} (its size, initial value or the data it points to differ); live patches cannot change existing data",
                            describe(pl, pu)
                        )),
                        UnitKind::Other => ch.refusals.push(format!(
                            "changed code or data outside a Rust function section: {}",
                            describe(pl, pu)
                        )),
                    }
                }
                None => {
                    match kind {
                        UnitKind::Func | UnitKind::ReadOnly => {}
                        UnitKind::Writable => ch.refusals.push(format!(
                            "new static data: {}; live patches cannot add writable statics",
                            describe(pl, pu)
                        )),
                        UnitKind::Other => ch.refusals.push(format!(
                            "new code or data outside a Rust function section: {}",
                            describe(pl, pu)
                        )),
                    }
                    ch.new.insert(pu);
                }
            }
        }
    }
    ch.changed.sort();
    // Symbol hashes depend on crate metadata (versions, features, the
    // lock file). If most functions have no counterpart, the two builds are
    // not of the same crates: say so instead of listing everything.
    let funcs = pl.units.iter().filter(|u| u.kind == UnitKind::Func).count();
    let unpaired = ch
        .new
        .iter()
        .filter(|&&u| pl.units[u].kind == UnitKind::Func)
        .count();
    if funcs > 0 && unpaired * 2 > funcs {
        ch.refusals = vec![format!(
            "{unpaired} of {funcs} functions of the patched build have no counterpart in the original: \
             symbol hashes differ, so the patch changes crate metadata (Cargo.toml, Cargo.lock, features); \
             such a change cannot be live-patched"
        )];
    }
    ch
}

/// The payload the changes imply.
pub struct Plan {
    pub builder: Builder,
    /// (old function name, address, size) per patched function.
    pub functions: Vec<(String, u64, u64)>,
    /// Units copied into the payload (functions and data).
    pub included: usize,
}

struct Emit<'a, 'v> {
    p: &'v mut View<'a>,
    r: &'a Linked,
    /// base unit -> reproduction unit, for keyed units.
    b: &'a Linked,
    changed: &'v BTreeSet<usize>,
    new: &'v BTreeSet<usize>,
}

impl Emit<'_, '_> {
    /// Whether a referenced unit of p goes into the payload.
    fn include(&self, t: usize) -> Result<bool> {
        let u = &self.p.l.units[t];
        Ok(match (u.kind, &u.key) {
            (UnitKind::Func, _) => self.changed.contains(&t) || self.new.contains(&t),
            (UnitKind::ReadOnly, None) => true,
            (UnitKind::ReadOnly, Some(_)) => self.new.contains(&t),
            (UnitKind::Writable, None) => {
                return Err(Error(format!(
                    "the patched code refers to anonymous writable data {}: cannot be live-patched",
                    u.input
                )));
            }
            (UnitKind::Writable, Some(_)) | (UnitKind::Other, _) => false,
        })
    }

    /// The unit of p a reference lands in.
    fn target_unit(&self, r: &Ref) -> Option<usize> {
        match r {
            Ref::Named { sym, .. } | Ref::Got { sym, .. } => {
                let s = &self.p.l.symbols[*sym];
                self.p
                    .l
                    .unit_at(s.addr)
                    .filter(|&u| self.p.l.units[u].addr == s.addr)
            }
            Ref::Unit { unit, .. } => Some(*unit),
            Ref::Loose { .. } => None,
        }
    }

    /// The reproduction's unit for a keyed unit of p.
    fn r_unit(&self, pu: usize) -> Option<usize> {
        let key = self.p.l.units[pu].key.as_ref()?;
        let i = self.p.l.units_with_key(key).iter().position(|&x| x == pu)?;
        let bu = *self.b.units_with_key(key).get(i)?;
        if std::ptr::eq(self.b, self.r) {
            return Some(bu);
        }
        let j = self.b.units_with_key(key).iter().position(|&x| x == bu)?;
        self.r.units_with_key(key).get(j).copied()
    }
}

fn align_up(v: usize, a: usize) -> usize {
    v.div_ceil(a.max(1)) * a.max(1)
}

/// Build the payload for `changes`: changed functions, the new functions
/// and read-only data they need; every other reference is an import of the
/// running image's symbol.
pub fn plan<'a>(
    r: &'a Linked,
    b: &'a Linked,
    p: &mut View<'a>,
    ch: &Changes,
    xen_build_id: &[u8],
) -> Result<Plan> {
    if ch.changed.is_empty() {
        return Err(Error(
            "the patch changes no function: nothing to live-patch".into(),
        ));
    }
    let changed: BTreeSet<usize> = ch.changed.iter().map(|c| c.0).collect();
    let pl = p.l;
    let e = Emit {
        p,
        r,
        b,
        changed: &changed,
        new: &ch.new,
    };
    // Closure of what goes into the payload.
    let mut included: BTreeSet<usize> = changed.clone();
    let mut queue: Vec<usize> = changed.iter().copied().collect();
    while let Some(u) = queue.pop() {
        let rels =
            e.p.rels(u)
                .map_err(|m| Error(format!("{}: {m}", describe(pl, u))))?;
        for rel in rels.iter() {
            let Some(t) = e.target_unit(&rel.target) else {
                continue;
            };
            if !included.contains(&t) && e.include(t)? {
                included.insert(t);
                queue.push(t);
            }
        }
    }
    // Lay out text and rodata.
    let mut text = Vec::new();
    let mut ro = Vec::new();
    let (mut text_align, mut ro_align) = (16usize, 8usize);
    let mut place: BTreeMap<usize, (Region, usize)> = BTreeMap::new();
    for &u in &included {
        let unit = &pl.units[u];
        let bytes = pl
            .bytes(unit.addr, unit.size)
            .ok_or_else(|| Error(format!("{}: no contents", unit.input)))?;
        let a = (unit.align as usize).clamp(1, 4096);
        let (buf, region, maxa) = if unit.kind == UnitKind::Func {
            (&mut text, Region::Text, &mut text_align)
        } else {
            (&mut ro, Region::ReadOnly, &mut ro_align)
        };
        *maxa = (*maxa).max(a);
        let off = align_up(buf.len(), a);
        buf.resize(off, if region == Region::Text { 0xcc } else { 0 });
        buf.extend_from_slice(bytes);
        place.insert(u, (region, off));
    }
    // GOT slots go at the end of rodata.
    let mut got_slots: BTreeMap<String, usize> = BTreeMap::new();
    for &u in &included {
        for rel in e.p.rels(u).map_err(Error)?.iter() {
            if let Ref::Got { key, .. } = &rel.target
                && !got_slots.contains_key(key)
            {
                let off = align_up(ro.len(), 8);
                ro.resize(off + 8, 0);
                got_slots.insert(key.clone(), off);
            }
        }
    }
    let mut bld = Builder::new(xen_build_id);
    let text_sec = bld.section(".text", Region::Text, text_align as u64, text);
    let ro_sec =
        (!ro.is_empty()).then(|| bld.section(".rodata", Region::ReadOnly, ro_align as u64, ro));
    let mut local: BTreeMap<usize, SymId> = BTreeMap::new();
    for (&u, &(region, off)) in &place {
        let unit = &pl.units[u];
        let name = if unit.kind == UnitKind::Func {
            pl.func_symbol(u)
                .map(|s| xtask::build::demangle(&s.name))
                .unwrap_or_else(|| unit.input.clone())
        } else {
            format!("{}@{:#x}", unit.input, unit.addr)
        };
        let sec = if region == Region::Text {
            text_sec
        } else {
            ro_sec.expect("rodata placed")
        };
        local.insert(
            u,
            bld.define(
                &name,
                sec,
                off as u64,
                unit.size,
                unit.kind == UnitKind::Func,
            ),
        );
    }
    // Imports: the running image's symbol for a key.
    let import = |bld: &mut Builder, key: &str, what: &str| -> Result<SymId> {
        let s = r.symbols_with_key(key).next().ok_or_else(|| {
            Error(format!(
                "the patched code refers to {what}, which the running image does not have (a new symbol only a lower payload adds is not supported)"
            ))
        })?;
        Ok(bld.import(&xtask::build::demangle(&s.name), s.addr))
    };
    let mut got_syms: BTreeMap<String, SymId> = BTreeMap::new();
    for (&u, &(region, base)) in &place {
        let sec = if region == Region::Text {
            text_sec
        } else {
            ro_sec.expect("rodata placed")
        };
        let rels = e.p.rels(u).map_err(Error)?;
        for rel in rels.iter() {
            let field = base as u64 + rel.off;
            let (sym, addend) = match &rel.target {
                Ref::Named { key, sym, addend } => {
                    let s = &pl.symbols[*sym];
                    match e
                        .target_unit(&rel.target)
                        .and_then(|t| local.get(&t).map(|id| (t, *id)))
                    {
                        Some((t, id)) => (id, s.addr as i64 - pl.units[t].addr as i64 + addend),
                        None => (
                            import(&mut bld, key, &xtask::build::demangle(&s.name))?,
                            *addend,
                        ),
                    }
                }
                Ref::Unit { unit, off, .. } => match local.get(unit) {
                    Some(id) => (*id, *off),
                    None => {
                        let ru = e.r_unit(*unit).ok_or_else(|| {
                            Error(format!(
                                "the patched code refers to {}, which has no counterpart in the running image",
                                describe(pl, *unit)
                            ))
                        })?;
                        let ruu = &r.units[ru];
                        let s = r
                            .symbols
                            .iter()
                            .find(|s| {
                                s.addr == ruu.addr
                                    && !is_anonymous(&s.name)
                                    && !matches!(s.kind, SymbolKind::Section | SymbolKind::File)
                            })
                            .ok_or_else(|| {
                                Error(format!(
                                    "no symbol names {} in the running image",
                                    ruu.input
                                ))
                            })?;
                        (bld.import(&xtask::build::demangle(&s.name), s.addr), *off)
                    }
                },
                Ref::Got { key, sym, addend } => {
                    let slot = *got_slots.get(key).expect("slot reserved");
                    let sid = match got_syms.get(key) {
                        Some(id) => *id,
                        None => {
                            let ro_sec = ro_sec.expect("rodata holds GOT slots");
                            let id =
                                bld.define(&format!("got:{key}"), ro_sec, slot as u64, 8, false);
                            let s = &pl.symbols[*sym];
                            let (tsym, tadd) = match e
                                .target_unit(&rel.target)
                                .and_then(|t| local.get(&t).map(|id| (t, *id)))
                            {
                                Some((t, id)) => (id, s.addr as i64 - pl.units[t].addr as i64),
                                None => {
                                    (import(&mut bld, key, &xtask::build::demangle(&s.name))?, 0)
                                }
                            };
                            bld.reloc(ro_sec, slot as u64, R_X86_64_64, tsym, tadd);
                            got_syms.insert(key.clone(), id);
                            id
                        }
                    };
                    (sid, *addend)
                }
                Ref::Loose { section, off } => {
                    return Err(Error(format!(
                        "{} refers to {section}{off:+#x}, outside every input section the linker map lists",
                        describe(pl, u)
                    )));
                }
            };
            bld.reloc(sec, field, rel.kind, sym, addend);
        }
    }
    // One record per changed function.
    let mut functions = Vec::new();
    for &(pu, _bu) in &ch.changed {
        let ru = e.r_unit(pu).ok_or_else(|| {
            Error(format!(
                "{} has no counterpart in the running image",
                describe(pl, pu)
            ))
        })?;
        let fs = r
            .func_symbol(ru)
            .ok_or_else(|| Error(format!("no function symbol at {}", r.units[ru].input)))?;
        let name = xtask::build::demangle(&fs.name);
        let head = r.bytes(fs.addr, fs.size.min(31)).unwrap_or(&[]);
        let skip = if head.starts_with(&[0xf3, 0x0f, 0x1e, 0xfa]) {
            4
        } else {
            0
        };
        if fs.size < skip + 5 {
            return Err(Error(format!(
                "function {name} is {} bytes, too small for the 5-byte jump{} (it cannot be live-patched; patch its callers instead)",
                fs.size,
                if skip > 0 { " after ENDBR64" } else { "" }
            )));
        }
        let old = bld.import(&name, fs.addr);
        let new = local[&pu];
        bld.func(FuncSpec {
            old,
            new: Some(new),
            old_size: fs.size as u32,
            new_size: pl.units[pu].size as u32,
            expect: head.to_vec(),
        });
        functions.push((name, fs.addr, fs.size));
    }
    Ok(Plan {
        builder: bld,
        functions,
        included: included.len(),
    })
}
