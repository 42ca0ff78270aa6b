//! The binary policy: its in-memory form and the loader for the Xen target
//! (magic 0xf97cff8c, "XenFlask", versions 24 and 30, with or without MLS).
//!
//! The loader follows libsepol's `policydb_read` for what it accepts and
//! validates every value it reads (symbol values, bitmaps, contexts, bounds)
//! so that the security server never indexes out of range.

use alloc::borrow::Cow;
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use crate::avtab::{AvTab, AvTabBuilder, RuleKind};
use crate::ebitmap::{Ebitmap, NodeSink};
use crate::error::{LoadError, LoadErrorKind as K};
pub use crate::name::Name;
use crate::reader::{Reader, Res};

/// `0xf97cff8c`, the first word of every binary policy.
pub const POLICYDB_MAGIC: u32 = 0xf97c_ff8c;
const TARGET: &str = "XenFlask";
const CONFIG_MLS: u32 = 1;
const CONFIG_REJECT_UNKNOWN: u32 = 2;
const CONFIG_ALLOW_UNKNOWN: u32 = 4;

pub(crate) const V_BOUNDARY: u32 = 24;
pub(crate) const V_FILENAME_TRANS: u32 = 25;
pub(crate) const V_ROLETRANS: u32 = 26;
pub(crate) const V_NEW_OBJECT_DEFAULTS: u32 = 27;
pub(crate) const V_DEFAULT_TYPE: u32 = 28;
pub(crate) const V_CONSTRAINT_NAMES: u32 = 29;
pub(crate) const V_XEN_DEVICETREE: u32 = 30;

/// Role value of `object_r`.
pub const OBJECT_R_VAL: u32 = 1;
/// Maximum depth of a constraint expression stack (libsepol's CEXPR_MAXDEPTH).
pub(crate) const CEXPR_MAXDEPTH: usize = 5;
/// Maximum depth of a boolean expression stack (libsepol's COND_EXPR_MAXDEPTH).
pub(crate) const COND_EXPR_MAXDEPTH: usize = 10;
/// Maximum depth of a bounds chain (POLICYDB_BOUNDS_MAXDEPTH).
pub(crate) const BOUNDS_MAXDEPTH: usize = 4;

/// What the security server does with permissions or classes of Warden's
/// definition that the policy lacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandleUnknown {
    /// Missing permissions are denied (checkpolicy's default).
    Deny,
    /// A policy lacking any class or permission is refused.
    Reject,
    /// Missing permissions are allowed.
    Allow,
}

impl HandleUnknown {
    /// The name used by `checkpolicy -U`: `deny`, `reject` or `allow`.
    pub fn name(self) -> &'static str {
        match self {
            HandleUnknown::Deny => "deny",
            HandleUnknown::Reject => "reject",
            HandleUnknown::Allow => "allow",
        }
    }
}

/// An MLS level: a sensitivity and a category set (bit n = category value n+1).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Level {
    /// Sensitivity value (1-based; 0 only in non-MLS policies).
    pub sens: u32,
    /// Categories.
    pub cats: Ebitmap,
}

impl Level {
    /// `self` dominates `other`.
    pub fn dom(&self, other: &Level) -> bool {
        self.sens >= other.sens && self.cats.contains(&other.cats)
    }
    /// Neither dominates the other.
    pub fn incomp(&self, other: &Level) -> bool {
        !self.dom(other) && !other.dom(self)
    }
}

/// An MLS range (low, high).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Range {
    /// The low (current) level.
    pub low: Level,
    /// The high (clearance) level.
    pub high: Level,
}

impl Range {
    /// `self` contains `r`.
    pub fn contains(&self, r: &Range) -> bool {
        r.low.dom(&self.low) && self.high.dom(&r.high)
    }
}

/// A security context in numeric form (values of one loaded policy).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Context {
    /// User value.
    pub user: u32,
    /// Role value.
    pub role: u32,
    /// Type value.
    pub ty: u32,
    /// MLS range (all zero in a non-MLS policy).
    pub range: Range,
}

/// A constraint expression node (postfix).
#[derive(Clone, Debug)]
pub(crate) enum CExpr {
    Not,
    And,
    Or,
    /// Compare an attribute of both contexts (attr bits, op).
    Attr {
        attr: u32,
        op: u32,
    },
    /// Compare one context's user/role/type with a name set.
    Names {
        attr: u32,
        op: u32,
        names: Ebitmap,
    },
}

pub(crate) const CEXPR_USER: u32 = 1;
pub(crate) const CEXPR_ROLE: u32 = 2;
pub(crate) const CEXPR_TYPE: u32 = 4;
pub(crate) const CEXPR_TARGET: u32 = 8;
pub(crate) const CEXPR_XTARGET: u32 = 16;
pub(crate) const CEXPR_L1L2: u32 = 32;
pub(crate) const CEXPR_L1H2: u32 = 64;
pub(crate) const CEXPR_H1L2: u32 = 128;
pub(crate) const CEXPR_H1H2: u32 = 256;
pub(crate) const CEXPR_L1H1: u32 = 512;
pub(crate) const CEXPR_L2H2: u32 = 1024;
pub(crate) const CEXPR_EQ: u32 = 1;
pub(crate) const CEXPR_NEQ: u32 = 2;
pub(crate) const CEXPR_DOM: u32 = 3;
pub(crate) const CEXPR_DOMBY: u32 = 4;
pub(crate) const CEXPR_INCOMP: u32 = 5;

/// A constraint: permissions it applies to and its expression.
#[derive(Clone, Debug)]
pub(crate) struct Constraint {
    pub(crate) perms: u32,
    pub(crate) expr: Vec<CExpr>,
}

/// A class of the policy.
#[derive(Clone, Debug)]
pub struct ClassDatum {
    /// Name (borrowed from Warden's definition when it matches: no allocation).
    pub name: Cow<'static, str>,
    /// Permission names by bit (own and common), `None` for unused bits.
    pub perms: Vec<Option<Cow<'static, str>>>,
    /// Number of permissions defined (highest bit + 1).
    pub nperms: u32,
    pub(crate) constraints: Vec<Constraint>,
    pub(crate) validatetrans: Vec<Constraint>,
    /// default_user / default_role / default_range / default_type (read, ignored as Xen does).
    pub defaults: [u32; 4],
}

/// A role.
#[derive(Clone, Debug)]
pub struct RoleDatum {
    /// Name.
    pub name: Name,
    /// Bounding role (0 = none).
    pub bounds: u32,
    /// Roles dominated (bit = value - 1).
    pub dominates: Ebitmap,
    /// Types authorised (bit = value - 1).
    pub types: Ebitmap,
}

/// A type or attribute.
#[derive(Clone, Debug)]
pub struct TypeDatum {
    /// Name.
    pub name: Name,
    /// Is it an attribute?
    pub attribute: bool,
    /// Bounding type (0 = none).
    pub bounds: u32,
}

/// A user.
#[derive(Clone, Debug)]
pub struct UserDatum {
    /// Name.
    pub name: Name,
    /// Bounding user (0 = none).
    pub bounds: u32,
    /// Roles authorised (bit = value - 1).
    pub roles: Ebitmap,
    /// MLS range.
    pub range: Range,
    /// MLS default level.
    pub dfltlevel: Level,
}

/// A boolean.
#[derive(Clone, Debug)]
pub struct BoolDatum {
    /// Name.
    pub name: Name,
    /// Default state in the policy image.
    pub state: bool,
}

/// A sensitivity.
#[derive(Clone, Debug)]
pub struct SensDatum {
    /// Name.
    pub name: Name,
    /// Categories allowed with this sensitivity.
    pub cats: Ebitmap,
}

/// A conditional boolean expression node (postfix).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CondOp {
    Bool(u32),
    Not,
    Or,
    And,
    Xor,
    Eq,
    Neq,
}

/// A conditional node: an expression over booleans.
#[derive(Clone, Debug)]
pub(crate) struct CondNode {
    pub(crate) expr: Vec<CondOp>,
}

/// A role_transition rule.
#[derive(Clone, Copy, Debug)]
pub struct RoleTrans {
    /// Current role.
    pub role: u32,
    /// Target type.
    pub ty: u32,
    /// Class (v24 policies: 0, no class).
    pub class: u32,
    /// New role.
    pub new_role: u32,
}

/// A range_transition rule.
#[derive(Clone, Debug)]
pub struct RangeTrans {
    /// Source type.
    pub source: u32,
    /// Target type.
    pub target: u32,
    /// Class.
    pub class: u32,
    /// New range.
    pub range: Range,
}

/// Object contexts (labels of hardware resources and initial SIDs).
#[derive(Clone, Debug, Default)]
pub struct Ocontexts {
    /// Initial SIDs: (SID value, context).
    pub isids: Vec<(u32, Context)>,
    /// pirqcon: (irq, context).
    pub pirqs: Vec<(u32, Context)>,
    /// ioportcon: (low, high, context).
    pub ioports: Vec<(u32, u32, Context)>,
    /// iomemcon: (low, high, context), page frame numbers.
    pub iomems: Vec<(u64, u64, Context)>,
    /// pcidevicecon: (SBDF, context).
    pub devices: Vec<(u32, Context)>,
    /// devicetreecon: (path, context).
    pub dtrees: Vec<(String, Context)>,
}

/// A loaded binary policy (immutable after load).
#[derive(Debug)]
pub struct PolicyDb {
    /// Policy version (24 or 30).
    pub version: u32,
    /// Is MLS enabled?
    pub mls: bool,
    /// handle_unknown setting.
    pub handle_unknown: HandleUnknown,
    /// Policy capabilities (read, unused by the Xen target).
    pub polcaps: Ebitmap,
    /// Permissive types (bit = type value).
    pub permissive: Ebitmap,
    /// Classes, index = value - 1.
    pub classes: Vec<ClassDatum>,
    /// Roles, index = value - 1.
    pub roles: Vec<RoleDatum>,
    /// Types and attributes, index = value - 1.
    pub types: Vec<TypeDatum>,
    /// Users, index = value - 1.
    pub users: Vec<UserDatum>,
    /// Booleans, index = value - 1.
    pub bools: Vec<BoolDatum>,
    /// Sensitivities, index = value - 1.
    pub sens: Vec<SensDatum>,
    /// Category names, index = value - 1.
    pub cats: Vec<Name>,
    pub(crate) class_by_name: NameMap,
    pub(crate) role_by_name: NameMap,
    pub(crate) type_by_name: NameMap,
    pub(crate) user_by_name: NameMap,
    pub(crate) bool_by_name: NameMap,
    pub(crate) sens_by_name: NameMap,
    pub(crate) cat_by_name: NameMap,
    /// Number of type aliases.
    pub type_aliases: usize,
    pub(crate) avtab: AvTab,
    pub(crate) conds: Vec<CondNode>,
    /// role_transition rules.
    pub role_trans: Vec<RoleTrans>,
    /// role allow rules (role, new_role).
    pub role_allow: Vec<(u32, u32)>,
    /// Object contexts.
    pub ocontexts: Ocontexts,
    /// range_transition rules.
    pub range_trans: Vec<RangeTrans>,
    /// Per type: its attributes (and itself), as type values.
    pub(crate) type_attrs: TypeAttrs,
    /// The policy's value of class `domain` (Xen's process class; 0 if none).
    pub(crate) domain_class: u32,
    /// The policy's bit of `domain:transition` (0 if none).
    pub(crate) domain_transition: u32,
}

/// Per type, its attributes and itself (type values, ascending): one
/// vector for all types, not one allocation per type.
#[derive(Debug, Default)]
pub(crate) struct TypeAttrs {
    /// Type `i` (value - 1) has `vals[spans[i].0..spans[i].1]`.
    spans: Vec<(u32, u32)>,
    vals: Vec<u16>,
}

impl TypeAttrs {
    /// The attributes of type index `i` (value - 1), itself included.
    #[inline]
    pub(crate) fn of(&self, i: usize) -> &[u16] {
        let (s, e) = self.spans[i];
        &self.vals[s as usize..e as usize]
    }
}

/// Collects a type_attr_map bitmap's bits as type values (bit + 1).
struct TypeAttrSink<'v> {
    vals: &'v mut Vec<u16>,
    /// The highest bit + 1 seen.
    highest: u32,
    /// Bits from here on are not types (the map is refused after it is read).
    limit: u32,
}

impl NodeSink for TypeAttrSink<'_> {
    fn node(&mut self, start: u32, mut map: u64) {
        self.highest = start + 64 - map.leading_zeros();
        while map != 0 {
            let bit = start + map.trailing_zeros();
            if bit >= self.limit {
                break;
            }
            self.vals.push((bit + 1) as u16);
            map &= map - 1;
        }
    }
}

/// Name -> value, sorted by name (built once per load; looked up by binary search).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct NameMap(Vec<(Name, u32)>);

impl NameMap {
    /// The value of `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&u32> {
        self.0
            .binary_search_by(|(n, _)| (**n).cmp(name))
            .ok()
            .map(|i| &self.0[i].1)
    }

    /// Like `get`, while the names' buffer is still `arena` (during a load).
    fn get_in(&self, arena: &str, name: &str) -> Option<u32> {
        self.0
            .binary_search_by(|(n, _)| n.in_arena(arena).cmp(name))
            .ok()
            .map(|i| self.0[i].1)
    }

    fn rebase(&mut self, buf: &Arc<str>) {
        for (n, _) in &mut self.0 {
            n.rebase(buf);
        }
    }
}

struct Sym<'a, T> {
    nprim: usize,
    slots: Vec<Option<T>>,
    /// (text in the image, name, value, offset of its record, sort prefix):
    /// sorted and checked for duplicates in `finish`.
    names: Vec<(&'a str, Name, u32, usize, u64)>,
    /// What a record is (for a duplicate name's error), as given to `add`.
    what: &'static str,
}

impl<'a, T> Sym<'a, T> {
    fn new(nprim: usize) -> Self {
        let mut slots = Vec::with_capacity(nprim);
        slots.resize_with(nprim, || None);
        Sym {
            nprim,
            slots,
            names: Vec::with_capacity(nprim),
            what: "",
        }
    }

    fn add(
        &mut self,
        r: &Reader<'_>,
        at: usize,
        what: &'static str,
        (name, text): (Name, &'a str),
        value: u32,
        datum: Option<T>,
    ) -> Res<()> {
        if value == 0 || value as usize > self.nprim {
            return r.err_at(
                at,
                K::BadValue {
                    what,
                    value: u64::from(value),
                },
            );
        }
        if let Some(d) = datum {
            let slot = &mut self.slots[value as usize - 1];
            if slot.is_some() {
                return r.err_at(
                    at,
                    K::BadValue {
                        what,
                        value: u64::from(value),
                    },
                );
            }
            *slot = Some(d);
        }
        self.names.push((text, name, value, at, sort_prefix(text)));
        self.what = what;
        Ok(())
    }

    /// Like `finish`, but `nprim` also counts aliases (sensitivities and
    /// categories): the primary values must be 1..=k with no hole.
    fn finish_aliased(mut self, r: &Reader<'_>, what: &'static str) -> Res<(Vec<T>, NameMap)> {
        let k = self.slots.iter().take_while(|s| s.is_some()).count();
        if self.slots[k..].iter().any(|s| s.is_some()) {
            return r.err(K::BadValue {
                what,
                value: k as u64 + 1,
            });
        }
        if let Some((n, _, v, _, _)) = self.names.iter().find(|e| e.2 as usize > k) {
            return r.err(K::BadName {
                what,
                name: format!("{n} (value {v})"),
            });
        }
        self.slots.truncate(k);
        self.nprim = k;
        self.finish(r, what)
    }

    fn finish(mut self, r: &Reader<'_>, what: &'static str) -> Res<(Vec<T>, NameMap)> {
        let names = NameMap(sorted_names(
            core::mem::take(&mut self.names),
            self.what,
            r,
        )?);
        if let Some(i) = self.slots.iter().position(Option::is_none) {
            return r.err(K::BadValue {
                what,
                value: i as u64 + 1,
            });
        }
        // Every slot is filled: this keeps them all, in the same allocation.
        let out: Vec<T> = self.slots.into_iter().map_while(|s| s).collect();
        Ok((out, names))
    }
}

/// A symbol table's names sorted by (prefix, text, record offset); a name
/// declared twice is refused at its second record.
fn sorted_names(
    mut e: Vec<(&str, Name, u32, usize, u64)>,
    what: &'static str,
    r: &Reader<'_>,
) -> Res<Vec<(Name, u32)>> {
    let dup = |text: &str, at: usize| {
        r.err_at(
            at,
            K::BadName {
                what,
                name: String::from(text),
            },
        )
    };
    if e.len() <= 32 {
        // Small tables: the records themselves, sorted in place.
        e.sort_unstable_by(|a, b| a.4.cmp(&b.4).then_with(|| a.0.cmp(b.0)).then(a.3.cmp(&b.3)));
        if let Some(w) = e.windows(2).find(|w| w[0].0 == w[1].0) {
            return dup(w[1].0, w[1].3);
        }
        let mut names = Vec::with_capacity(e.len());
        names.extend(e.into_iter().map(|(_, n, v, _, _)| (n, v)));
        return Ok(names);
    }
    // Large tables: 16-byte keys (prefix, index) sorted as integers, then
    // the rare run of equal prefixes by text.
    let mut keys: Vec<u128> = e
        .iter()
        .enumerate()
        .map(|(i, n)| (u128::from(n.4) << 64) | i as u128)
        .collect();
    keys.sort_unstable();
    let at = |k: u128| &e[k as u64 as usize];
    let mut i = 0;
    while i < keys.len() {
        let p = keys[i] >> 64;
        let j = i + keys[i..].iter().take_while(|k| *k >> 64 == p).count();
        if j - i > 1 {
            keys[i..j].sort_unstable_by(|a, b| {
                let (x, y) = (at(*a), at(*b));
                x.0.cmp(y.0).then(x.3.cmp(&y.3))
            });
            if let Some(w) = keys[i..j].windows(2).find(|w| at(w[0]).0 == at(w[1]).0) {
                return dup(at(w[1]).0, at(w[1]).3);
            }
        }
        i = j;
    }
    let mut taken: Vec<Option<(Name, u32)>> = Vec::with_capacity(keys.len());
    taken.extend(e.into_iter().map(|(_, n, v, _, _)| Some((n, v))));
    let mut names = Vec::with_capacity(keys.len());
    names.extend(
        keys.iter()
            .filter_map(|k| taken.get_mut(*k as u64 as usize).and_then(Option::take)),
    );
    Ok(names)
}

/// `a == b` for byte strings, without a call into `memcmp` for the short
/// names of a policy (4 to 16 bytes: two overlapping word compares).
#[inline]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if (8..=16).contains(&n)
        && let (Some(a0), Some(b0), Some(a1), Some(b1)) = (
            a.first_chunk::<8>(),
            b.first_chunk::<8>(),
            a.last_chunk::<8>(),
            b.last_chunk::<8>(),
        )
    {
        return a0 == b0 && a1 == b1;
    }
    if (4..8).contains(&n)
        && let (Some(a0), Some(b0), Some(a1), Some(b1)) = (
            a.first_chunk::<4>(),
            b.first_chunk::<4>(),
            a.last_chunk::<4>(),
            b.last_chunk::<4>(),
        )
    {
        return a0 == b0 && a1 == b1;
    }
    a == b
}

/// The first 8 bytes of a name, zero-padded, as a big-endian number: names
/// whose prefixes differ compare as their prefixes do (names hold no NUL
/// byte), so most comparisons of a sort need no byte-string comparison.
fn sort_prefix(s: &str) -> u64 {
    let mut p = [0u8; 8];
    let n = s.len().min(8);
    p[..n].copy_from_slice(&s.as_bytes()[..n]);
    u64::from_be_bytes(p)
}

struct Loader<'a> {
    r: Reader<'a>,
    version: u32,
    mls: bool,
    /// Every symbol name read so far, back to back (one buffer for all).
    names: String,
    /// What the names point at until `names` is finished (see `Name::rebase`).
    placeholder: Arc<str>,
}

fn read_level(r: &mut Reader<'_>) -> Res<Level> {
    let sens = r.u32("MLS sensitivity")?;
    let cats = Ebitmap::read(r)?;
    Ok(Level { sens, cats })
}

fn read_range(r: &mut Reader<'_>) -> Res<Range> {
    let at = r.pos();
    let items = r.u32("MLS range item count")?;
    if items == 0 || items > 2 {
        return r.err_at(at, K::BadMls("range must have 1 or 2 levels"));
    }
    let ls = r.u32("MLS low sensitivity")?;
    let hs = if items > 1 {
        r.u32("MLS high sensitivity")?
    } else {
        ls
    };
    let lc = Ebitmap::read(r)?;
    let hc = if items > 1 {
        Ebitmap::read(r)?
    } else {
        lc.clone()
    };
    Ok(Range {
        low: Level { sens: ls, cats: lc },
        high: Level { sens: hs, cats: hc },
    })
}

impl<'a> Loader<'a> {
    /// A symbol name, appended to the load's name buffer; also its text.
    fn sym_name(&mut self, len: u32, what: &'static str) -> Res<(Name, &'a str)> {
        let at = self.r.pos();
        let n = self.r.check_len(at, what, len)?;
        let s = self.r.name_str(n, what)?;
        let start = self.names.len();
        self.names.push_str(s);
        Ok((Name::new(&self.placeholder, start, self.names.len()), s))
    }

    fn name(&mut self, len: u32, what: &'static str) -> Res<String> {
        let at = self.r.pos();
        let n = self.r.check_len(at, what, len)?;
        self.r.name(n, what)
    }

    /// Sensitivity and category names also must not contain the MLS separators.
    fn mls_name(&mut self, len: u32, what: &'static str) -> Res<(Name, &'a str)> {
        let at = self.r.pos();
        let (n, s) = self.sym_name(len, what)?;
        if s.contains(['-', ',', '.']) {
            return self.r.err_at(
                at,
                K::BadName {
                    what,
                    name: String::from(s),
                },
            );
        }
        Ok((n, s))
    }

    /// Reads `nel` permissions into `table`; names equal to Warden's
    /// definition (`expect`, by bit) are borrowed from it, not allocated.
    /// `inherited`: the bits of `table` already filled (from a common).
    fn perms(
        &mut self,
        nel: usize,
        table: &mut [Option<Cow<'static, str>>; 32],
        expect: &[&'static str],
        inherited: u32,
    ) -> Res<()> {
        // Names borrowed from `expect` are distinct from each other (build.rs
        // checks), so only names of the policy's own (and a common's, already
        // in `table`) need the duplicate scan.
        let mut own = if expect.is_empty() { 0 } else { inherited };
        for _ in 0..nel {
            let at = self.r.pos();
            let h = self.r.bytes(8, "permission")?;
            let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
            let value = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
            if value == 0 || value > 32 {
                return self.r.err_at(
                    at,
                    K::BadValue {
                        what: "permission value",
                        value: u64::from(value),
                    },
                );
            }
            let n = self.r.check_len(self.r.pos(), "permission", len)?;
            let slot = value as usize - 1;
            let name = match expect.get(slot) {
                // Warden's own name: valid by construction.
                Some(&e) if e.len() == n && same_bytes(self.r.peek(n), e.as_bytes()) => {
                    self.r.skip(n);
                    Cow::Borrowed(e)
                }
                _ => {
                    own |= 1 << slot;
                    Cow::Owned(String::from(self.r.name_str(n, "permission")?))
                }
            };
            if table[slot].is_some() {
                return self.r.err_at(
                    at,
                    K::BadName {
                        what: "permission",
                        name: String::from(&*name),
                    },
                );
            }
            table[slot] = Some(name);
        }
        // A name of the policy's own may repeat any other (at most 32 names).
        let mut m = own;
        while m != 0 {
            let i = m.trailing_zeros() as usize;
            m &= m - 1;
            let Some(n) = table[i].as_deref() else {
                continue;
            };
            if table
                .iter()
                .enumerate()
                .any(|(j, o)| j != i && o.as_deref() == Some(n))
            {
                return self.r.err_at(
                    self.r.pos(),
                    K::BadName {
                        what: "permission",
                        name: String::from(n),
                    },
                );
            }
        }
        Ok(())
    }

    fn constraints(&mut self, n: usize, allow_xtarget: bool) -> Res<Vec<Constraint>> {
        let mut out = Reader::vec(n);
        for _ in 0..n {
            let perms = self.r.u32("constraint permissions")?;
            let nexpr = self.r.count("constraint expression length", 12)?;
            let mut expr = Reader::vec(nexpr);
            let mut depth: isize = -1;
            for _ in 0..nexpr {
                let at = self.r.pos();
                let ty = self.r.u32("constraint expression type")?;
                let attr = self.r.u32("constraint attribute")?;
                let op = self.r.u32("constraint operator")?;
                let bad = |r: &Reader<'_>, m| r.err_at(at, K::BadConstraint(m));
                let e = match ty {
                    1 => {
                        if depth < 0 {
                            return bad(&self.r, "`not` on an empty stack");
                        }
                        CExpr::Not
                    }
                    2 | 3 => {
                        if depth < 1 {
                            return bad(&self.r, "`and`/`or` with fewer than two operands");
                        }
                        depth -= 1;
                        if ty == 2 { CExpr::And } else { CExpr::Or }
                    }
                    4 => {
                        if depth == CEXPR_MAXDEPTH as isize - 1 {
                            return bad(&self.r, "expression too deep");
                        }
                        depth += 1;
                        let ok = match attr {
                            CEXPR_USER | CEXPR_TYPE => matches!(op, CEXPR_EQ | CEXPR_NEQ),
                            CEXPR_ROLE => (CEXPR_EQ..=CEXPR_INCOMP).contains(&op),
                            CEXPR_L1L2 | CEXPR_L1H2 | CEXPR_H1L2 | CEXPR_H1H2 | CEXPR_L1H1
                            | CEXPR_L2H2 => self.mls && (CEXPR_EQ..=CEXPR_INCOMP).contains(&op),
                            _ => false,
                        };
                        if !ok {
                            return bad(&self.r, "invalid attribute/operator pair");
                        }
                        CExpr::Attr { attr, op }
                    }
                    5 => {
                        if depth == CEXPR_MAXDEPTH as isize - 1 {
                            return bad(&self.r, "expression too deep");
                        }
                        depth += 1;
                        if attr & CEXPR_XTARGET != 0 && !allow_xtarget {
                            return bad(&self.r, "xtarget outside validatetrans");
                        }
                        let kind = attr & (CEXPR_USER | CEXPR_ROLE | CEXPR_TYPE);
                        if !matches!(kind, CEXPR_USER | CEXPR_ROLE | CEXPR_TYPE)
                            || attr & !(kind | CEXPR_TARGET | CEXPR_XTARGET) != 0
                            || !matches!(op, CEXPR_EQ | CEXPR_NEQ)
                        {
                            return bad(&self.r, "invalid name-set attribute/operator");
                        }
                        let names = Ebitmap::read(&mut self.r)?;
                        if self.version >= V_CONSTRAINT_NAMES {
                            // type_set: types, negset, flags (kept for tools only).
                            Ebitmap::read(&mut self.r)?;
                            Ebitmap::read(&mut self.r)?;
                            self.r.u32("constraint type-set flags")?;
                        }
                        CExpr::Names { attr, op, names }
                    }
                    _ => return bad(&self.r, "unknown expression type"),
                };
                expr.push(e);
            }
            if depth != 0 {
                return self.r.err(K::BadConstraint(
                    "expression does not leave exactly one value",
                ));
            }
            out.push(Constraint { perms, expr });
        }
        Ok(out)
    }

    fn context(&mut self) -> Res<Context> {
        let user = self.r.u32("context user")?;
        let role = self.r.u32("context role")?;
        let ty = self.r.u32("context type")?;
        // Written for every policy of version >= 19; meaningless without MLS.
        let range = read_range(&mut self.r)?;
        let range = if self.mls { range } else { Range::default() };
        Ok(Context {
            user,
            role,
            ty,
            range,
        })
    }
}

impl PolicyDb {
    /// Parses and validates a binary policy image.
    pub fn from_bytes(data: &[u8]) -> Result<PolicyDb, LoadError> {
        let mut l = Loader {
            r: Reader::new(data),
            version: 0,
            mls: false,
            names: String::with_capacity(1024),
            placeholder: Arc::from(""),
        };
        if data.len() >= 1 << 31 {
            return l.r.err(K::BadLength {
                what: "policy image size",
                len: data.len() as u64,
            });
        }
        let magic = l.r.u32("magic")?;
        if magic != POLICYDB_MAGIC {
            return l.r.err_at(0, K::BadMagic(magic));
        }
        let at = l.r.pos();
        let slen = l.r.u32("target string length")?;
        if slen as usize != TARGET.len() {
            let shown =
                l.r.bytes((slen as usize).min(l.r.remaining()).min(32), "target")?;
            return l.r.err_at(
                at,
                K::BadTarget(String::from_utf8_lossy(shown).into_owned()),
            );
        }
        let s = l.r.bytes(TARGET.len(), "target string")?;
        if s != TARGET.as_bytes() {
            return l
                .r
                .err_at(at, K::BadTarget(String::from_utf8_lossy(s).into_owned()));
        }
        let at = l.r.pos();
        let version = l.r.u32("policy version")?;
        if version != V_BOUNDARY && version != V_XEN_DEVICETREE {
            return l.r.err_at(at, K::UnsupportedVersion(version));
        }
        l.version = version;
        let at = l.r.pos();
        let config = l.r.u32("config")?;
        if config & !(CONFIG_MLS | CONFIG_REJECT_UNKNOWN | CONFIG_ALLOW_UNKNOWN) != 0 {
            return l.r.err_at(at, K::BadConfig(config));
        }
        l.mls = config & CONFIG_MLS != 0;
        let handle_unknown = match config & (CONFIG_REJECT_UNKNOWN | CONFIG_ALLOW_UNKNOWN) {
            0 => HandleUnknown::Deny,
            CONFIG_REJECT_UNKNOWN => HandleUnknown::Reject,
            CONFIG_ALLOW_UNKNOWN => HandleUnknown::Allow,
            _ => return l.r.err_at(at, K::BadConfig(config)),
        };
        let at = l.r.pos();
        let sym_num = l.r.u32("symbol table count")?;
        let ocon_num = l.r.u32("ocontext table count")?;
        let want_ocon = if version == V_XEN_DEVICETREE { 6 } else { 5 };
        if sym_num != 8 || ocon_num != want_ocon {
            return l.r.err_at(at, K::BadTableSizes { sym_num, ocon_num });
        }
        let polcaps = Ebitmap::read(&mut l.r)?;
        let permissive = Ebitmap::read(&mut l.r)?;

        // --- symbol tables ---
        // commons
        let nprim = l.r.u32("commons nprim")?;
        let nel = l.r.count("commons count", 16)?;
        if nprim as usize != nel {
            return l.r.err(K::BadValue {
                what: "commons nprim",
                value: u64::from(nprim),
            });
        }
        type CommonPerms = [Option<Cow<'static, str>>; 32];
        let mut commons: Sym<CommonPerms> = Sym::new(nel);
        for _ in 0..nel {
            let at = l.r.pos();
            let len = l.r.u32("common name length")?;
            let value = l.r.u32("common value")?;
            let _pnprim = l.r.u32("common permission nprim")?;
            let pnel = l.r.count("common permission count", 8)?;
            let (name, text) = l.sym_name(len, "common")?;
            let mut table = [const { None }; 32];
            l.perms(pnel, &mut table, &[], 0)?;
            commons.add(&l.r, at, "common", (name, text), value, Some(table))?;
        }
        let (commons, common_names) = commons.finish(&l.r, "common value")?;

        // classes
        let nprim = l.r.u32("classes nprim")?;
        let nel = l.r.count("classes count", 24)?;
        if nprim as usize != nel {
            return l.r.err(K::BadValue {
                what: "classes nprim",
                value: u64::from(nprim),
            });
        }
        let mut classes: Sym<ClassDatum> = Sym::new(nel);
        for _ in 0..nel {
            let at = l.r.pos();
            let len = l.r.u32("class name length")?;
            let comlen = l.r.u32("class common name length")?;
            let value = l.r.u32("class value")?;
            let _pnprim = l.r.u32("class permission nprim")?;
            let pnel = l.r.count("class permission count", 8)?;
            let ncons = l.r.count("class constraint count", 8)?;
            let (name, text) = l.sym_name(len, "class")?;
            let mut table: [Option<Cow<'static, str>>; 32] = [const { None }; 32];
            let mut inherited = 0u32;
            if comlen != 0 {
                let cat = l.r.pos();
                let cname = l.name(comlen, "common")?;
                let Some(cv) = common_names.get_in(&l.names, cname.as_str()) else {
                    return l.r.err_at(
                        cat,
                        K::BadName {
                            what: "common",
                            name: cname,
                        },
                    );
                };
                let ctable = &commons[cv as usize - 1];
                table.clone_from(ctable);
                inherited = table
                    .iter()
                    .enumerate()
                    .filter(|(_, o)| o.is_some())
                    .fold(0u32, |m, (i, _)| m | 1 << i);
            }
            let expect: &[&'static str] = crate::PERM_NAMES
                .get((value as usize).wrapping_sub(1))
                .copied()
                .unwrap_or(&[]);
            l.perms(pnel, &mut table, expect, inherited)?;
            let constraints = l.constraints(ncons, false)?;
            let nvt = l.r.count("validatetrans count", 8)?;
            let validatetrans = l.constraints(nvt, true)?;
            let mut defaults = [0u32; 4];
            if version >= V_NEW_OBJECT_DEFAULTS {
                defaults[0] = l.r.u32("default_user")?;
                defaults[1] = l.r.u32("default_role")?;
                defaults[2] = l.r.u32("default_range")?;
            }
            if version >= V_DEFAULT_TYPE {
                defaults[3] = l.r.u32("default_type")?;
            }
            let nperms = table
                .iter()
                .rposition(|p| p.is_some())
                .map_or(0, |i| i as u32 + 1);
            let table: Vec<Option<Cow<'static, str>>> = table[..nperms as usize]
                .iter_mut()
                .map(Option::take)
                .collect();
            let datum = ClassDatum {
                name: match crate::CLASS_NAMES.get((value as usize).wrapping_sub(1)) {
                    Some(&n) if n == text => Cow::Borrowed(n),
                    _ => Cow::Owned(String::from(text)),
                },
                perms: table,
                nperms,
                constraints,
                validatetrans,
                defaults,
            };
            classes.add(&l.r, at, "class", (name, text), value, Some(datum))?;
        }
        let (classes, mut class_by_name) = classes.finish(&l.r, "class value")?;

        // roles
        let nprim = l.r.u32("roles nprim")?;
        let nel = l.r.count("roles count", 36)?;
        if nprim as usize != nel {
            return l.r.err(K::BadValue {
                what: "roles nprim",
                value: u64::from(nprim),
            });
        }
        let mut roles: Sym<RoleDatum> = Sym::new(nel);
        for _ in 0..nel {
            let at = l.r.pos();
            let len = l.r.u32("role name length")?;
            let value = l.r.u32("role value")?;
            let bounds = l.r.u32("role bounds")?;
            let (name, text) = l.sym_name(len, "role")?;
            let dominates = Ebitmap::read(&mut l.r)?;
            let types = Ebitmap::read(&mut l.r)?;
            if (text == "object_r") != (value == OBJECT_R_VAL) {
                return l.r.err_at(
                    at,
                    K::BadValue {
                        what: "object_r role value",
                        value: u64::from(value),
                    },
                );
            }
            // libsepol and Xen discard object_r's record and keep their built-in
            // object_r, which dominates nothing and has no types (a `dom`
            // constraint never holds for it, whatever a compiler wrote).
            let d = if value == OBJECT_R_VAL {
                RoleDatum {
                    name: name.clone(),
                    bounds: 0,
                    dominates: Ebitmap::default(),
                    types: Ebitmap::default(),
                }
            } else {
                RoleDatum {
                    name: name.clone(),
                    bounds,
                    dominates,
                    types,
                }
            };
            roles.add(&l.r, at, "role", (name, text), value, Some(d))?;
        }
        let (mut roles, mut role_by_name) = roles.finish(&l.r, "role value")?;

        // types
        let nprim = l.r.u32("types nprim")?;
        let nel = l.r.count("types count", 16)?;
        if nprim as usize > nel || nprim > u32::from(u16::MAX) {
            return l.r.err(K::BadValue {
                what: "types nprim",
                value: u64::from(nprim),
            });
        }
        let mut types: Sym<TypeDatum> = Sym::new(nprim as usize);
        let mut type_aliases = 0;
        for _ in 0..nel {
            let at = l.r.pos();
            let len = l.r.u32("type name length")?;
            let value = l.r.u32("type value")?;
            let props = l.r.u32("type properties")?;
            let bounds = l.r.u32("type bounds")?;
            let (name, text) = l.sym_name(len, "type")?;
            if props & !3 != 0 {
                return l.r.err_at(
                    at,
                    K::BadValue {
                        what: "type properties",
                        value: u64::from(props),
                    },
                );
            }
            let primary = props & 1 != 0;
            let d = if primary {
                Some(TypeDatum {
                    name: name.clone(),
                    attribute: props & 2 != 0,
                    bounds,
                })
            } else {
                type_aliases += 1;
                None
            };
            types.add(&l.r, at, "type", (name, text), value, d)?;
        }
        let (mut types, mut type_by_name) = types.finish(&l.r, "type value")?;

        // users
        let nprim = l.r.u32("users nprim")?;
        let nel = l.r.count("users count", 24)?;
        if nprim as usize != nel {
            return l.r.err(K::BadValue {
                what: "users nprim",
                value: u64::from(nprim),
            });
        }
        let mut users: Sym<UserDatum> = Sym::new(nel);
        for _ in 0..nel {
            let at = l.r.pos();
            let len = l.r.u32("user name length")?;
            let value = l.r.u32("user value")?;
            let bounds = l.r.u32("user bounds")?;
            let (name, text) = l.sym_name(len, "user")?;
            let uroles = Ebitmap::read(&mut l.r)?;
            // Written for every policy of version >= 19, MLS or not.
            let (range, dfltlevel) = (read_range(&mut l.r)?, read_level(&mut l.r)?);
            let d = UserDatum {
                name: name.clone(),
                bounds,
                roles: uroles,
                range,
                dfltlevel,
            };
            users.add(&l.r, at, "user", (name, text), value, Some(d))?;
        }
        let (mut users, mut user_by_name) = users.finish(&l.r, "user value")?;

        // booleans
        let nprim = l.r.u32("booleans nprim")?;
        let nel = l.r.count("booleans count", 12)?;
        if nprim as usize != nel {
            return l.r.err(K::BadValue {
                what: "booleans nprim",
                value: u64::from(nprim),
            });
        }
        let mut bools: Sym<BoolDatum> = Sym::new(nel);
        for _ in 0..nel {
            let at = l.r.pos();
            let value = l.r.u32("boolean value")?;
            let state = l.r.u32("boolean state")?;
            let len = l.r.u32("boolean name length")?;
            let (name, text) = l.sym_name(len, "boolean")?;
            if state > 1 {
                return l.r.err_at(
                    at,
                    K::BadValue {
                        what: "boolean state",
                        value: u64::from(state),
                    },
                );
            }
            let d = BoolDatum {
                name: name.clone(),
                state: state == 1,
            };
            bools.add(&l.r, at, "boolean", (name, text), value, Some(d))?;
        }
        let (mut bools, mut bool_by_name) = bools.finish(&l.r, "boolean value")?;

        // sensitivities (levels)
        let nprim = l.r.u32("sensitivities nprim")?;
        let nel = l.r.count("sensitivities count", 24)?;
        if nprim as usize > nel {
            return l.r.err(K::BadValue {
                what: "sensitivities nprim",
                value: u64::from(nprim),
            });
        }
        let mut sens: Sym<SensDatum> = Sym::new(nprim as usize);
        for _ in 0..nel {
            let at = l.r.pos();
            let len = l.r.u32("sensitivity name length")?;
            let isalias = l.r.u32("sensitivity alias flag")?;
            let (name, text) = l.mls_name(len, "sensitivity")?;
            let level = read_level(&mut l.r)?;
            let d = if isalias == 0 {
                Some(SensDatum {
                    name: name.clone(),
                    cats: level.cats,
                })
            } else {
                None
            };
            sens.add(&l.r, at, "sensitivity", (name, text), level.sens, d)?;
        }
        let (mut sens, mut sens_by_name) = sens.finish_aliased(&l.r, "sensitivity value")?;

        // categories
        let nprim = l.r.u32("categories nprim")?;
        let nel = l.r.count("categories count", 12)?;
        if nprim as usize > nel {
            return l.r.err(K::BadValue {
                what: "categories nprim",
                value: u64::from(nprim),
            });
        }
        let mut cats: Sym<Name> = Sym::new(nprim as usize);
        for _ in 0..nel {
            let at = l.r.pos();
            let len = l.r.u32("category name length")?;
            let value = l.r.u32("category value")?;
            let isalias = l.r.u32("category alias flag")?;
            let (name, text) = l.mls_name(len, "category")?;
            let d = if isalias == 0 {
                Some(name.clone())
            } else {
                None
            };
            cats.add(&l.r, at, "category", (name, text), value, d)?;
        }
        let (mut cats, mut cat_by_name) = cats.finish_aliased(&l.r, "category value")?;

        // Every symbol name is read: one buffer for all of them.
        let names: Arc<str> = Arc::from(core::mem::take(&mut l.names));
        for n in roles.iter_mut().map(|d| &mut d.name) {
            n.rebase(&names);
        }
        for n in types.iter_mut().map(|d| &mut d.name) {
            n.rebase(&names);
        }
        for n in users.iter_mut().map(|d| &mut d.name) {
            n.rebase(&names);
        }
        for n in bools.iter_mut().map(|d| &mut d.name) {
            n.rebase(&names);
        }
        for n in sens.iter_mut().map(|d| &mut d.name) {
            n.rebase(&names);
        }
        for n in cats.iter_mut() {
            n.rebase(&names);
        }
        for m in [
            &mut class_by_name,
            &mut role_by_name,
            &mut type_by_name,
            &mut user_by_name,
            &mut bool_by_name,
            &mut sens_by_name,
            &mut cat_by_name,
        ] {
            m.rebase(&names);
        }
        drop(names);

        if !l.mls && (!sens.is_empty() || !cats.is_empty()) {
            return l.r.err(K::BadMls("sensitivities in a non-MLS policy"));
        }
        if l.mls && sens.is_empty() {
            return l.r.err(K::BadMls("MLS policy without sensitivities"));
        }

        let ntypes = types.len() as u32;
        let nclasses = classes.len() as u32;
        let nroles = roles.len() as u32;

        // --- access vector table ---
        let mut avb = AvTabBuilder::new(ntypes, nclasses);
        let at = l.r.pos();
        let nel = l.r.count("access vector rule count", 12)?;
        if nel == 0 {
            return l.r.err_at(at, K::BadAvtab("table is empty"));
        }
        avb.read_uncond(&mut l.r, nel, ntypes, nclasses, &types)?;

        // --- conditional rules ---
        let ncond = l.r.count("conditional count", 16)?;
        let mut conds: Vec<CondNode> = Reader::vec(ncond);
        for ci in 0..ncond {
            let _cur = l.r.u32("conditional state")?;
            let nexpr = l.r.count("conditional expression length", 8)?;
            let mut expr = Reader::vec(nexpr);
            let mut depth: usize = 0;
            for _ in 0..nexpr {
                let at = l.r.pos();
                let ty = l.r.u32("conditional expression type")?;
                let b = l.r.u32("conditional boolean")?;
                let bad = |r: &Reader<'_>, m| r.err_at(at, K::BadAvtab(m));
                let op = match ty {
                    1 => {
                        if b == 0 || b as usize > bools.len() {
                            return bad(&l.r, "conditional refers to an unknown boolean");
                        }
                        if depth == COND_EXPR_MAXDEPTH {
                            return bad(&l.r, "conditional expression too deep");
                        }
                        depth += 1;
                        CondOp::Bool(b)
                    }
                    2 => {
                        if depth < 1 {
                            return bad(&l.r, "conditional `not` on an empty stack");
                        }
                        CondOp::Not
                    }
                    3..=7 => {
                        if depth < 2 {
                            return bad(&l.r, "conditional operator with fewer than two operands");
                        }
                        depth -= 1;
                        match ty {
                            3 => CondOp::Or,
                            4 => CondOp::And,
                            5 => CondOp::Xor,
                            6 => CondOp::Eq,
                            _ => CondOp::Neq,
                        }
                    }
                    _ => return bad(&l.r, "unknown conditional expression type"),
                };
                expr.push(op);
            }
            if depth != 1 {
                return l.r.err(K::BadAvtab(
                    "conditional expression does not leave one value",
                ));
            }
            conds.push(CondNode { expr });
            for list in [true, false] {
                let n = l.r.count("conditional rule count", 12)?;
                for _ in 0..n {
                    let item = read_av_item(&mut l.r, ntypes, nclasses, &types)?;
                    avb.insert_cond(&l.r, item, ci as u32, list)?;
                }
            }
        }
        let avtab = avb.build(&l.r)?;

        // --- role transitions and allows ---
        let per = if version >= V_ROLETRANS { 16 } else { 12 };
        let n = l.r.count("role_transition count", per)?;
        let mut role_trans = Reader::vec(n);
        for _ in 0..n {
            let at = l.r.pos();
            let role = l.r.u32("role_transition role")?;
            let ty = l.r.u32("role_transition type")?;
            let new_role = l.r.u32("role_transition new role")?;
            let class = if version >= V_ROLETRANS {
                l.r.u32("role_transition class")?
            } else {
                0
            };
            if role == 0 || role > nroles || new_role == 0 || new_role > nroles {
                return l.r.err_at(
                    at,
                    K::BadValue {
                        what: "role_transition role",
                        value: u64::from(role.max(new_role)),
                    },
                );
            }
            if ty == 0 || ty > ntypes {
                return l.r.err_at(
                    at,
                    K::BadValue {
                        what: "role_transition type",
                        value: u64::from(ty),
                    },
                );
            }
            if version >= V_ROLETRANS && (class == 0 || class > nclasses) {
                return l.r.err_at(
                    at,
                    K::BadValue {
                        what: "role_transition class",
                        value: u64::from(class),
                    },
                );
            }
            role_trans.push(RoleTrans {
                role,
                ty,
                class,
                new_role,
            });
        }
        let n = l.r.count("role allow count", 8)?;
        let mut role_allow = Reader::vec(n);
        for _ in 0..n {
            let at = l.r.pos();
            let role = l.r.u32("role allow role")?;
            let new_role = l.r.u32("role allow new role")?;
            if role == 0 || role > nroles || new_role == 0 || new_role > nroles {
                return l.r.err_at(
                    at,
                    K::BadValue {
                        what: "role allow role",
                        value: u64::from(role.max(new_role)),
                    },
                );
            }
            role_allow.push((role, new_role));
        }
        if version >= V_FILENAME_TRANS {
            let at = l.r.pos();
            let n = l.r.u32("filename transition count")?;
            if n != 0 {
                return l.r.err_at(at, K::Unsupported("filename type transitions"));
            }
        }

        // --- object contexts ---
        let mut oc = Ocontexts::default();
        for i in 0..ocon_num {
            let n = l.r.count("ocontext count", 16)?;
            match i {
                0 => oc.isids.reserve_exact(n),
                1 => oc.pirqs.reserve_exact(n),
                2 => oc.ioports.reserve_exact(n),
                3 => oc.iomems.reserve_exact(n),
                4 => oc.devices.reserve_exact(n),
                _ => oc.dtrees.reserve_exact(n),
            }
            for _ in 0..n {
                let at = l.r.pos();
                match i {
                    0 => {
                        let sid = l.r.u32("initial SID")?;
                        let c = l.context()?;
                        if sid == 0 {
                            return l.r.err_at(
                                at,
                                K::BadValue {
                                    what: "initial SID",
                                    value: 0,
                                },
                            );
                        }
                        oc.isids.push((sid, c));
                    }
                    1 => {
                        let irq = l.r.u32("pirq")?;
                        let c = l.context()?;
                        oc.pirqs.push((irq, c));
                    }
                    2 => {
                        let lo = l.r.u32("ioport low")?;
                        let hi = l.r.u32("ioport high")?;
                        let c = l.context()?;
                        if lo > hi {
                            return l.r.err_at(
                                at,
                                K::BadValue {
                                    what: "ioport range",
                                    value: u64::from(lo),
                                },
                            );
                        }
                        oc.ioports.push((lo, hi, c));
                    }
                    3 => {
                        let (lo, hi) = if version >= V_XEN_DEVICETREE {
                            (l.r.u64("iomem low")?, l.r.u64("iomem high")?)
                        } else {
                            (
                                u64::from(l.r.u32("iomem low")?),
                                u64::from(l.r.u32("iomem high")?),
                            )
                        };
                        let c = l.context()?;
                        if lo > hi {
                            return l.r.err_at(
                                at,
                                K::BadValue {
                                    what: "iomem range",
                                    value: lo,
                                },
                            );
                        }
                        oc.iomems.push((lo, hi, c));
                    }
                    4 => {
                        let d = l.r.u32("pcidevice")?;
                        let c = l.context()?;
                        oc.devices.push((d, c));
                    }
                    _ => {
                        let len = l.r.u32("devicetree path length")?;
                        let p = l.name(len, "devicetree path")?;
                        let c = l.context()?;
                        oc.dtrees.push((p, c));
                    }
                }
            }
        }
        let at = l.r.pos();
        if l.r.u32("genfs count")? != 0 {
            return l.r.err_at(at, K::Unsupported("genfs contexts"));
        }

        // --- range transitions ---
        let n = l.r.count("range_transition count", 28)?;
        let mut range_trans = Reader::vec(n);
        for _ in 0..n {
            let at = l.r.pos();
            let source = l.r.u32("range_transition source")?;
            let target = l.r.u32("range_transition target")?;
            let class = l.r.u32("range_transition class")?;
            let range = read_range(&mut l.r)?;
            if source == 0 || source > ntypes || target == 0 || target > ntypes {
                return l.r.err_at(
                    at,
                    K::BadValue {
                        what: "range_transition type",
                        value: u64::from(source.max(target)),
                    },
                );
            }
            if class == 0 || class > nclasses {
                return l.r.err_at(
                    at,
                    K::BadValue {
                        what: "range_transition class",
                        value: u64::from(class),
                    },
                );
            }
            if !l.mls {
                return l
                    .r
                    .err_at(at, K::BadMls("range_transition in a non-MLS policy"));
            }
            range_trans.push(RangeTrans {
                source,
                target,
                class,
                range,
            });
        }

        // --- type -> attribute map ---
        let mut type_attrs = TypeAttrs {
            spans: Vec::with_capacity(ntypes as usize),
            vals: Vec::with_capacity(2 * ntypes as usize),
        };
        for i in 0..ntypes {
            let at = l.r.pos();
            let first = type_attrs.vals.len();
            let mut sink = TypeAttrSink {
                vals: &mut type_attrs.vals,
                highest: 0,
                limit: ntypes,
            };
            Ebitmap::read_nodes(&mut l.r, &mut sink)?;
            let highest = sink.highest;
            if highest > ntypes {
                return l.r.err_at(
                    at,
                    K::BadValue {
                        what: "type_attr_map type",
                        value: u64::from(highest),
                    },
                );
            }
            // Xen adds the type itself as the degenerate case.
            let own = (i + 1) as u16;
            if let Err(p) = type_attrs.vals[first..].binary_search(&own) {
                type_attrs.vals.insert(first + p, own);
            }
            type_attrs
                .spans
                .push((first as u32, type_attrs.vals.len() as u32));
        }
        if l.r.remaining() != 0 {
            return l.r.err(K::TrailingData(l.r.remaining()));
        }
        let end = l.r.pos();
        // Xen's process class and its transition permission, found by name.
        let domain_class = class_by_name.get("domain").copied().unwrap_or(0);
        let domain_transition = classes
            .get((domain_class as usize).wrapping_sub(1))
            .and_then(|c| {
                c.perms
                    .iter()
                    .position(|p| p.as_deref() == Some("transition"))
            })
            .map_or(0, |b| 1u32 << b);

        let db = PolicyDb {
            version,
            mls: l.mls,
            handle_unknown,
            polcaps,
            permissive,
            classes,
            roles,
            types,
            users,
            bools,
            sens,
            cats,
            class_by_name,
            role_by_name,
            type_by_name,
            user_by_name,
            bool_by_name,
            sens_by_name,
            cat_by_name,
            type_aliases,
            avtab,
            conds,
            role_trans,
            role_allow,
            ocontexts: oc,
            range_trans,
            type_attrs,
            domain_class,
            domain_transition,
        };
        db.validate()
            .map_err(|kind| LoadError { offset: end, kind })?;
        Ok(db)
    }

    /// Cross-table checks done after parsing (the offset reported is the end of the image).
    fn validate(&self) -> Result<(), K> {
        let nt = self.types.len() as u32;
        let nr = self.roles.len() as u32;
        let nu = self.users.len() as u32;
        let nb = |b: &Ebitmap, n: u32| b.highest() <= n;
        if self.permissive.highest() > nt + 1 || self.permissive.get(0) {
            return Err(K::BadValue {
                what: "permissive type",
                value: u64::from(self.permissive.highest()),
            });
        }
        for r in &self.roles {
            if !nb(&r.dominates, nr) || !nb(&r.types, nt) {
                return Err(K::BadName {
                    what: "role (bitmap out of range)",
                    name: String::from(&*r.name),
                });
            }
        }
        for u in &self.users {
            if !nb(&u.roles, nr) {
                return Err(K::BadName {
                    what: "user (role bitmap out of range)",
                    name: String::from(&*u.name),
                });
            }
            if self.mls && (!self.range_isvalid(&u.range) || !self.level_isvalid(&u.dfltlevel)) {
                return Err(K::BadName {
                    what: "user (MLS range)",
                    name: String::from(&*u.name),
                });
            }
        }
        for s in &self.sens {
            if s.cats.highest() > self.cats.len() as u32 {
                return Err(K::BadMls("sensitivity allows an unknown category"));
            }
        }
        for c in &self.classes {
            for con in c.constraints.iter().chain(c.validatetrans.iter()) {
                for e in &con.expr {
                    if let CExpr::Names { attr, names, .. } = e {
                        let lim = match attr & 7 {
                            CEXPR_USER => nu,
                            CEXPR_ROLE => nr,
                            _ => nt,
                        };
                        if !nb(names, lim) {
                            return Err(K::BadConstraint("name set refers to unknown values"));
                        }
                    }
                }
            }
        }
        for rt in &self.range_trans {
            if !self.range_isvalid(&rt.range) {
                return Err(K::BadMls("range_transition range is invalid"));
            }
        }
        // Bounds: valid values, depth <= 4, no cycles, hierarchy respected (as Xen checks).
        for (i, u) in self.users.iter().enumerate() {
            let mut cur = u.bounds;
            let mut depth = 0;
            while cur != 0 {
                if cur > nu {
                    return Err(K::BadBounds(format!(
                        "user {} bounded by unknown user {cur}",
                        u.name
                    )));
                }
                depth += 1;
                if depth > BOUNDS_MAXDEPTH || cur as usize == i + 1 {
                    return Err(K::BadBounds(format!(
                        "user {}: bounds too deep or cyclic",
                        u.name
                    )));
                }
                let up = &self.users[cur as usize - 1];
                if !up.roles.contains(&u.roles) {
                    return Err(K::BadBounds(format!(
                        "user {} has roles beyond its bound {}",
                        u.name, up.name
                    )));
                }
                cur = up.bounds;
            }
        }
        for (i, r) in self.roles.iter().enumerate() {
            let mut cur = r.bounds;
            let mut depth = 0;
            while cur != 0 {
                if cur > nr {
                    return Err(K::BadBounds(format!(
                        "role {} bounded by unknown role {cur}",
                        r.name
                    )));
                }
                depth += 1;
                if depth > BOUNDS_MAXDEPTH || cur as usize == i + 1 {
                    return Err(K::BadBounds(format!(
                        "role {}: bounds too deep or cyclic",
                        r.name
                    )));
                }
                let up = &self.roles[cur as usize - 1];
                if !up.types.contains(&r.types) {
                    return Err(K::BadBounds(format!(
                        "role {} has types beyond its bound {}",
                        r.name, up.name
                    )));
                }
                cur = up.bounds;
            }
        }
        for (i, t) in self.types.iter().enumerate() {
            let mut cur = t.bounds;
            let mut depth = 0;
            while cur != 0 {
                if cur > nt {
                    return Err(K::BadBounds(format!(
                        "type {} bounded by unknown type {cur}",
                        t.name
                    )));
                }
                depth += 1;
                if depth > BOUNDS_MAXDEPTH || cur as usize == i + 1 {
                    return Err(K::BadBounds(format!(
                        "type {}: bounds too deep or cyclic",
                        t.name
                    )));
                }
                let up = &self.types[cur as usize - 1];
                if up.attribute {
                    return Err(K::BadBounds(format!(
                        "type {} bounded by attribute {}",
                        t.name, up.name
                    )));
                }
                cur = up.bounds;
            }
        }
        let oc = &self.ocontexts;
        let all = oc
            .isids
            .iter()
            .map(|x| &x.1)
            .chain(oc.pirqs.iter().map(|x| &x.1))
            .chain(oc.ioports.iter().map(|x| &x.2))
            .chain(oc.iomems.iter().map(|x| &x.2))
            .chain(oc.devices.iter().map(|x| &x.1))
            .chain(oc.dtrees.iter().map(|x| &x.1));
        for c in all {
            if !self.context_isvalid(c) {
                return Err(K::BadContext(
                    "an initial SID or object context is not valid in the policy",
                ));
            }
        }
        Ok(())
    }

    /// Xen's `mls_level_isvalid`.
    pub fn level_isvalid(&self, l: &Level) -> bool {
        if l.sens == 0 || l.sens as usize > self.sens.len() {
            return false;
        }
        self.sens[l.sens as usize - 1].cats.contains(&l.cats)
    }

    /// Both levels valid and high dominates low.
    pub fn range_isvalid(&self, r: &Range) -> bool {
        self.level_isvalid(&r.low) && self.level_isvalid(&r.high) && r.high.dom(&r.low)
    }

    /// Xen's `policydb_context_isvalid`.
    pub fn context_isvalid(&self, c: &Context) -> bool {
        if c.role == 0 || c.role as usize > self.roles.len() {
            return false;
        }
        if c.user == 0 || c.user as usize > self.users.len() {
            return false;
        }
        // Unlike Xen's policydb_context_isvalid, an attribute never labels
        // anything (Xen refuses it only when parsing a context string).
        if c.ty == 0 || c.ty as usize > self.types.len() || self.types[c.ty as usize - 1].attribute
        {
            return false;
        }
        let user = &self.users[c.user as usize - 1];
        if c.role != OBJECT_R_VAL {
            if !self.roles[c.role as usize - 1].types.get(c.ty - 1) {
                return false;
            }
            if !user.roles.get(c.role - 1) {
                return false;
            }
        }
        if self.mls {
            if !self.range_isvalid(&c.range) {
                return false;
            }
            if c.role != OBJECT_R_VAL && !user.range.contains(&c.range) {
                return false;
            }
        }
        true
    }

    /// Number of unconditional rules (what Xen's `Flask:  N rules` boot line reports).
    pub fn rule_count(&self) -> usize {
        self.avtab.nrules
    }

    /// Number of conditional rules.
    pub fn cond_rule_count(&self) -> usize {
        self.avtab.ncond_rules
    }

    /// Looks up a class value by name.
    pub fn class_value(&self, name: &str) -> Option<u32> {
        self.class_by_name.get(name).copied()
    }

    /// Looks up a type value by name (aliases included).
    pub fn type_value(&self, name: &str) -> Option<u32> {
        self.type_by_name.get(name).copied()
    }

    /// Looks up a boolean value by name.
    pub fn bool_value(&self, name: &str) -> Option<u32> {
        self.bool_by_name.get(name).copied()
    }

    /// Number of attributes among the types.
    pub fn attribute_count(&self) -> usize {
        self.types.iter().filter(|t| t.attribute).count()
    }
}

/// One access vector table entry as read.
pub(crate) struct AvItem {
    pub(crate) source: u16,
    pub(crate) target: u16,
    pub(crate) class: u16,
    pub(crate) kind: RuleKind,
    /// The on-disk specified field carried AVTAB_ENABLED.
    pub(crate) data: u32,
    pub(crate) offset: usize,
}

fn read_av_item(
    r: &mut Reader<'_>,
    ntypes: u32,
    nclasses: u32,
    types: &[TypeDatum],
) -> Res<AvItem> {
    let offset = r.pos();
    // One bounds check for the fixed part (source, target, class, kind, data).
    let b = r.bytes(12, "access vector rule")?;
    match crate::avtab::decode_rule(b, ntypes, nclasses, types) {
        Ok(d) => Ok(AvItem {
            source: d.source,
            target: d.target,
            class: d.class,
            kind: d.kind(),
            data: d.data,
            offset,
        }),
        Err(k) => r.err_at(offset, k),
    }
}

#[cfg(test)]
mod tests {
    use super::same_bytes;

    #[test]
    fn same_bytes_is_slice_equality_at_every_length() {
        let base: Vec<u8> = (b'a'..=b'z').collect();
        for n in 0..=20 {
            let a = &base[..n];
            assert!(same_bytes(a, a), "{n}");
            assert!(
                !same_bytes(a, &base[..n.saturating_sub(1)]) || n == 0,
                "{n}"
            );
            for i in 0..n {
                let mut b = a.to_vec();
                b[i] ^= 1;
                assert!(!same_bytes(a, &b), "{n} differs at {i}");
            }
        }
    }
}
