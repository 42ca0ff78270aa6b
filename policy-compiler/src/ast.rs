//! The parsed policy, before any symbol is resolved.

use std::rc::Rc;

use crate::diag::Pos;

#[derive(Clone, Debug)]
pub struct Ident {
    pub name: Rc<str>,
    pub pos: Pos,
}

/// The (negated, name) items of a set; the first is stored inline, since most
/// sets in real policies have one element.
#[derive(Clone, Debug, Default)]
pub struct Items {
    first: Option<(bool, Ident)>,
    rest: Vec<(bool, Ident)>,
}

impl Items {
    pub fn push(&mut self, x: (bool, Ident)) {
        if self.first.is_none() {
            self.first = Some(x);
        } else {
            self.rest.push(x);
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &(bool, Ident)> {
        self.first.iter().chain(self.rest.iter())
    }

    pub fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.first.is_none()
    }
}

impl<'a> IntoIterator for &'a Items {
    type Item = &'a (bool, Ident);
    type IntoIter =
        std::iter::Chain<std::option::Iter<'a, (bool, Ident)>, std::slice::Iter<'a, (bool, Ident)>>;
    fn into_iter(self) -> Self::IntoIter {
        self.first.iter().chain(self.rest.iter())
    }
}

impl IntoIterator for Items {
    type Item = (bool, Ident);
    type IntoIter =
        std::iter::Chain<std::option::IntoIter<(bool, Ident)>, std::vec::IntoIter<(bool, Ident)>>;
    fn into_iter(self) -> Self::IntoIter {
        self.first.into_iter().chain(self.rest)
    }
}

/// A set of names: `a`, `{ a -b { c } }`, `*`, `~a`, `~{ a b }`, `a - b`.
#[derive(Clone, Debug)]
pub struct Names {
    pub items: Items,
    pub star: bool,
    pub comp: bool,
    pub pos: Pos,
}

#[derive(Clone, Debug)]
pub struct Level {
    pub sens: Ident,
    /// Category names; `c0.c5` ranges are kept as one identifier.
    pub cats: Vec<Ident>,
}

#[derive(Clone, Debug)]
pub struct Range {
    pub low: Level,
    pub high: Option<Level>,
}

#[derive(Clone, Debug)]
pub struct Context {
    pub user: Ident,
    pub role: Ident,
    pub ty: Ident,
    pub range: Option<Range>,
    pub pos: Pos,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AvKind {
    Allow,
    AuditAllow,
    AuditDeny,
    DontAudit,
    NeverAllow,
}

impl AvKind {
    pub fn keyword(self) -> &'static str {
        match self {
            AvKind::Allow => "allow",
            AvKind::AuditAllow => "auditallow",
            AvKind::AuditDeny => "auditdeny",
            AvKind::DontAudit => "dontaudit",
            AvKind::NeverAllow => "neverallow",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TypeRuleKind {
    Transition,
    Member,
    Change,
}

#[derive(Clone, Debug)]
pub enum CondExpr {
    Bool(Ident),
    Not(Box<CondExpr>),
    /// op: 3 or, 4 and, 5 xor, 6 eq, 7 neq (libsepol's COND_* values)
    Bin(u32, Box<CondExpr>, Box<CondExpr>),
}

#[derive(Clone, Debug)]
pub enum CExpr {
    Not(Box<CExpr>),
    And(Box<CExpr>, Box<CExpr>),
    Or(Box<CExpr>, Box<CExpr>),
    /// attribute comparison: libsepol CEXPR_* attr and op values
    Attr {
        attr: u32,
        op: u32,
    },
    Names {
        attr: u32,
        op: u32,
        names: Names,
    },
}

#[derive(Clone, Debug)]
pub struct Constraint {
    pub mls: bool,
    pub validatetrans: bool,
    pub classes: Names,
    pub perms: Option<Names>,
    pub expr: CExpr,
    pub pos: Pos,
}

#[derive(Clone, Debug)]
pub struct AvRule {
    pub kind: AvKind,
    pub src: Names,
    pub tgt: Names,
    pub classes: Names,
    pub perms: Names,
    pub pos: Pos,
}

#[derive(Clone, Debug)]
pub struct TypeRule {
    pub kind: TypeRuleKind,
    pub src: Names,
    pub tgt: Names,
    pub classes: Names,
    pub new: Ident,
    pub pos: Pos,
}

#[derive(Clone, Debug)]
pub struct RangeTrans {
    pub src: Names,
    pub tgt: Names,
    pub classes: Option<Names>,
    pub range: Range,
    pub pos: Pos,
}

#[derive(Clone, Debug)]
pub struct RoleTrans {
    pub roles: Names,
    pub types: Names,
    pub classes: Option<Names>,
    pub new: Ident,
    pub pos: Pos,
}

#[derive(Clone, Debug)]
pub struct RoleAllow {
    pub roles: Names,
    pub new: Names,
    pub pos: Pos,
}

#[derive(Clone, Debug)]
pub enum Te {
    Attribute(Ident),
    Type {
        name: Ident,
        aliases: Vec<Ident>,
        attrs: Vec<Ident>,
    },
    TypeAlias {
        name: Ident,
        aliases: Vec<Ident>,
    },
    TypeAttribute {
        name: Ident,
        attrs: Vec<Ident>,
    },
    TypeBounds {
        parent: Ident,
        children: Vec<Ident>,
    },
    Bool {
        name: Ident,
        value: bool,
    },
    // Rules are boxed: they are most of a policy and by far the largest variants.
    Av(Box<AvRule>),
    TypeRule(Box<TypeRule>),
    RangeTrans(Box<RangeTrans>),
    Permissive(Ident),
    Role {
        name: Ident,
    },
    RoleTypes {
        name: Ident,
        types: Names,
    },
    RoleTrans(Box<RoleTrans>),
    RoleAllow(Box<RoleAllow>),
    Cond {
        expr: CondExpr,
        then: Vec<Te>,
        els: Vec<Te>,
        pos: Pos,
    },
    Policycap(Ident),
}

#[derive(Clone, Debug)]
pub struct UserDef {
    pub name: Ident,
    pub roles: Names,
    pub level: Option<Level>,
    pub range: Option<Range>,
}

#[derive(Clone, Debug)]
pub enum OconKind {
    Pirq(u64),
    Iomem(u64, u64),
    Ioport(u64, u64),
    Pci(u64),
    Dtree(String),
}

#[derive(Clone, Debug)]
pub struct Ocon {
    pub kind: OconKind,
    pub ctx: Context,
    pub pos: Pos,
}

#[derive(Clone, Debug, Default)]
pub struct Mls {
    pub sens: Vec<(Ident, Vec<Ident>)>,
    pub dominance: Vec<Ident>,
    pub cats: Vec<(Ident, Vec<Ident>)>,
    pub levels: Vec<(Ident, Vec<Ident>)>,
}

/// A whole base policy (policy.conf), section by section.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    pub classes: Vec<Ident>,
    pub sids: Vec<Ident>,
    pub commons: Vec<(Ident, Vec<Ident>)>,
    pub av_classes: Vec<(Ident, Option<Ident>, Vec<Ident>)>,
    pub mls: Option<Mls>,
    pub te: Vec<Te>,
    pub users: Vec<UserDef>,
    pub constraints: Vec<Constraint>,
    pub sid_contexts: Vec<(Ident, Context)>,
    pub ocons: Vec<Ocon>,
}
