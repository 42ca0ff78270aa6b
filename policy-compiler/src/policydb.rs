//! The compiled policy, in the shape libsepol's kernel policydb has.

use crate::bits::Bits;
use crate::diag::Pos;

pub const AVTAB_ALLOWED: u16 = 1;
pub const AVTAB_AUDITALLOW: u16 = 2;
pub const AVTAB_AUDITDENY: u16 = 4;
pub const AVTAB_TRANSITION: u16 = 16;
pub const AVTAB_MEMBER: u16 = 32;
pub const AVTAB_CHANGE: u16 = 64;
pub const AVTAB_ENABLED: u16 = 0x8000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AvKey {
    pub src: u16,
    pub tgt: u16,
    pub class: u16,
    pub spec: u16,
}

/// An access vector table with unique keys, in insertion order.
#[derive(Clone, Debug, Default)]
pub struct Avtab {
    pub entries: Vec<(AvKey, u32)>,
    /// The rule that created each entry (for diagnostics).
    pub origins: Vec<Pos>,
    index: rustc_hash::FxHashMap<AvKey, usize>,
}

impl Avtab {
    pub fn get(&self, k: &AvKey) -> Option<u32> {
        self.index.get(k).map(|&i| self.entries[i].1)
    }

    /// Returns the datum for `k`, inserting `init` (made by the rule at `origin`) if absent.
    pub fn entry(&mut self, k: AvKey, init: u32, origin: Pos) -> &mut u32 {
        let i = match self.index.get(&k) {
            Some(&i) => i,
            None => {
                self.entries.push((k, init));
                self.origins.push(origin);
                self.index.insert(k, self.entries.len() - 1);
                self.entries.len() - 1
            }
        };
        &mut self.entries[i].1
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Level {
    pub sens: u32,
    pub cats: Bits,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MlsRange {
    pub low: Level,
    pub high: Level,
}

#[derive(Clone, Debug, Default)]
pub struct Ctx {
    pub user: u32,
    pub role: u32,
    pub ty: u32,
    pub range: MlsRange,
}

#[derive(Clone, Debug, Default)]
pub struct TypeSet {
    pub types: Bits,
    pub negset: Bits,
    pub flags: u32,
}

#[derive(Clone, Debug)]
pub struct CExprNode {
    pub expr_type: u32,
    pub attr: u32,
    pub op: u32,
    pub names: Bits,
    pub type_names: TypeSet,
}

#[derive(Clone, Debug)]
pub struct ConstraintNode {
    pub perms: u32,
    pub expr: Vec<CExprNode>,
}

#[derive(Clone, Debug)]
pub struct Common {
    pub name: String,
    pub perms: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct Class {
    pub name: String,
    pub common: Option<usize>,
    /// Own permissions; their values follow the common's.
    pub perms: Vec<String>,
    pub constraints: Vec<ConstraintNode>,
    pub validatetrans: Vec<ConstraintNode>,
}

#[derive(Clone, Debug)]
pub struct TypeDatum {
    pub name: String,
    pub attr: bool,
    pub bounds: u32,
    /// For attributes: member types (bit = value-1).
    pub members: Bits,
    pub pos: Pos,
}

#[derive(Clone, Debug)]
pub struct Role {
    pub name: String,
    pub types: Bits,
    pub dominates: Bits,
}

#[derive(Clone, Debug)]
pub struct User {
    pub name: String,
    pub roles: Bits,
    pub range: MlsRange,
    pub dflt: Level,
}

#[derive(Clone, Debug)]
pub struct Sens {
    pub name: String,
    pub alias: bool,
    pub level: Level,
}

#[derive(Clone, Debug)]
pub struct Cat {
    pub name: String,
    pub value: u32,
    pub alias: bool,
}

#[derive(Clone, Debug, Default)]
pub struct CondNode {
    /// Postfix (expr_type, bool value) items.
    pub expr: Vec<(u32, u32)>,
    pub cur_state: bool,
    pub true_list: Avtab,
    pub false_list: Avtab,
}

/// The Xen object contexts, in libsepol's OCON_XEN_* order.
#[derive(Clone, Debug, Default)]
pub struct Ocontexts {
    pub isids: Vec<(u32, Ctx)>,
    pub pirqs: Vec<(u32, Ctx)>,
    pub ioports: Vec<(u32, u32, Ctx)>,
    pub iomems: Vec<(u64, u64, Ctx)>,
    pub pcidevs: Vec<(u32, Ctx)>,
    pub dtrees: Vec<(String, Ctx)>,
}

#[derive(Clone, Debug, Default)]
pub struct PolicyDb {
    pub version: u32,
    pub mls: bool,
    /// 0 deny, 2 reject, 4 allow (POLICYDB_CONFIG_* bits)
    pub handle_unknown: u32,
    pub polcaps: Bits,
    pub permissive: Bits,
    pub commons: Vec<Common>,
    pub classes: Vec<Class>,
    /// Index 0 is object_r.
    pub roles: Vec<Role>,
    pub types: Vec<TypeDatum>,
    pub aliases: Vec<(String, u32)>,
    pub users: Vec<User>,
    pub bools: Vec<(String, bool)>,
    pub sens: Vec<Sens>,
    pub cats: Vec<Cat>,
    pub avtab: Avtab,
    pub conds: Vec<CondNode>,
    /// (role, type, new_role, class)
    pub role_trans: Vec<(u32, u32, u32, u32)>,
    pub role_allow: Vec<(u32, u32)>,
    pub ocons: Ocontexts,
    /// (source type, target type, class, range)
    pub range_trans: Vec<(u32, u32, u32, MlsRange)>,
    /// Per type value-1: the type itself and the attributes containing it.
    pub type_attr_map: Vec<Bits>,
}

impl PolicyDb {
    pub fn class_nperms(&self, c: usize) -> usize {
        let cl = &self.classes[c];
        cl.common.map(|i| self.commons[i].perms.len()).unwrap_or(0) + cl.perms.len()
    }

    /// The name of permission value `v` (1-based) of class index `c`.
    pub fn perm_name(&self, c: usize, v: u32) -> Option<&str> {
        let cl = &self.classes[c];
        let ncommon = cl.common.map(|i| self.commons[i].perms.len()).unwrap_or(0);
        let i = (v as usize).checked_sub(1)?;
        if i < ncommon {
            cl.common.map(|ci| self.commons[ci].perms[i].as_str())
        } else {
            cl.perms.get(i - ncommon).map(String::as_str)
        }
    }

    pub fn class_index(&self, name: &str) -> Option<usize> {
        self.classes.iter().position(|c| c.name == name)
    }

    pub fn perm_value(&self, c: usize, name: &str) -> Option<u32> {
        let n = self.class_nperms(c);
        (1..=n as u32).find(|&v| self.perm_name(c, v) == Some(name))
    }
}
