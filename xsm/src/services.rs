//! The security server proper: access decisions, new-object labels,
//! contexts as strings, booleans. Pure functions over an immutable
//! [`PolicyDb`] and a boolean state ([`CondState`]); the AVC, the SID table
//! and the concurrency live in [`crate::flask`].

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write as _;

use crate::avtab::RuleKind;
use crate::ebitmap::Ebitmap;
use crate::policydb::*;

/// An access vector decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AvDecision {
    /// Granted permissions.
    pub allowed: u32,
    /// Permissions audited when granted (auditallow).
    pub auditallow: u32,
    /// Permissions audited when denied (complement of dontaudit).
    pub auditdeny: u32,
    /// The source type is permissive (Xen's AVD_FLAGS_PERMISSIVE).
    pub permissive: bool,
}

/// Boolean values and the resulting state of each conditional.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CondState {
    /// Current (committed) value of each boolean, index = value - 1.
    pub bools: Vec<bool>,
    /// Result of each conditional expression.
    pub(crate) enabled: Vec<bool>,
}

impl CondState {
    /// The state with the policy's default boolean values.
    pub fn new(db: &PolicyDb) -> CondState {
        let bools: Vec<bool> = db.bools.iter().map(|b| b.state).collect();
        CondState::with_bools(db, bools)
    }

    /// The state for the given boolean values (`bools.len()` must equal the policy's count).
    pub fn with_bools(db: &PolicyDb, bools: Vec<bool>) -> CondState {
        let enabled = db
            .conds
            .iter()
            .map(|c| eval_cond(&c.expr, &bools))
            .collect();
        CondState { bools, enabled }
    }
}

fn eval_cond(expr: &[CondOp], bools: &[bool]) -> bool {
    // Depth validated at load (<= COND_EXPR_MAXDEPTH, exactly one result).
    let mut st = [false; COND_EXPR_MAXDEPTH];
    let mut sp = 0usize;
    for op in expr {
        match *op {
            CondOp::Bool(b) => {
                st[sp] = bools.get(b as usize - 1).copied().unwrap_or(false);
                sp += 1;
            }
            CondOp::Not => st[sp - 1] = !st[sp - 1],
            _ => {
                sp -= 1;
                let (a, b) = (st[sp - 1], st[sp]);
                st[sp - 1] = match *op {
                    CondOp::Or => a | b,
                    CondOp::And => a & b,
                    CondOp::Xor => a ^ b,
                    CondOp::Eq => a == b,
                    _ => a != b,
                };
            }
        }
    }
    st[0]
}

fn constraint_eval(
    db: &PolicyDb,
    s: &Context,
    t: &Context,
    x: Option<&Context>,
    expr: &[CExpr],
) -> bool {
    // Stack depth and operand counts were validated at load.
    let mut st = [false; CEXPR_MAXDEPTH];
    let mut sp = 0usize;
    for e in expr {
        match e {
            CExpr::Not => st[sp - 1] = !st[sp - 1],
            CExpr::And => {
                sp -= 1;
                st[sp - 1] &= st[sp];
            }
            CExpr::Or => {
                sp -= 1;
                st[sp - 1] |= st[sp];
            }
            CExpr::Attr { attr, op } => {
                let v = match *attr {
                    CEXPR_USER => cmp_eq(*op, s.user == t.user),
                    CEXPR_TYPE => cmp_eq(*op, s.ty == t.ty),
                    CEXPR_ROLE => {
                        let (r1, r2) = (s.role, t.role);
                        match *op {
                            CEXPR_DOM => role_dom(db, r1, r2),
                            CEXPR_DOMBY => role_dom(db, r2, r1),
                            CEXPR_INCOMP => !role_dom(db, r1, r2) && !role_dom(db, r2, r1),
                            _ => cmp_eq(*op, r1 == r2),
                        }
                    }
                    _ => {
                        let (l1, l2) = match *attr {
                            CEXPR_L1L2 => (&s.range.low, &t.range.low),
                            CEXPR_L1H2 => (&s.range.low, &t.range.high),
                            CEXPR_H1L2 => (&s.range.high, &t.range.low),
                            CEXPR_H1H2 => (&s.range.high, &t.range.high),
                            CEXPR_L1H1 => (&s.range.low, &s.range.high),
                            _ => (&t.range.low, &t.range.high),
                        };
                        match *op {
                            CEXPR_EQ => l1 == l2,
                            CEXPR_NEQ => l1 != l2,
                            CEXPR_DOM => l1.dom(l2),
                            CEXPR_DOMBY => l2.dom(l1),
                            _ => l2.incomp(l1),
                        }
                    }
                };
                st[sp] = v;
                sp += 1;
            }
            CExpr::Names { attr, op, names } => {
                let c = if attr & CEXPR_TARGET != 0 {
                    t
                } else if attr & CEXPR_XTARGET != 0 {
                    match x {
                        Some(x) => x,
                        None => return false,
                    }
                } else {
                    s
                };
                let v = if attr & CEXPR_USER != 0 {
                    c.user
                } else if attr & CEXPR_ROLE != 0 {
                    c.role
                } else {
                    c.ty
                };
                let hit = v != 0 && names.get(v - 1);
                st[sp] = if *op == CEXPR_EQ { hit } else { !hit };
                sp += 1;
            }
        }
    }
    st[0]
}

#[inline]
fn cmp_eq(op: u32, eq: bool) -> bool {
    if op == CEXPR_EQ { eq } else { !eq }
}

fn role_dom(db: &PolicyDb, r1: u32, r2: u32) -> bool {
    db.roles
        .get(r1 as usize - 1)
        .is_some_and(|r| r.dominates.get(r2 - 1))
}

/// Type enforcement, constraints and the role-allow check, without bounds.
fn te_constraints(
    db: &PolicyDb,
    cs: &CondState,
    s: &Context,
    t: &Context,
    class: u32,
) -> (u32, u32, u32) {
    let (mut allowed, mut auditallow, mut auditdeny) = (0u32, 0u32, u32::MAX);
    let c = class as u16;
    let sattrs = db.type_attrs.of(s.ty as usize - 1);
    let tattrs = db.type_attrs.of(t.ty as usize - 1);
    for &sa in sattrs.iter() {
        // One index lookup per source attribute, then one binary search per target.
        let Some((keys, entries)) = db.avtab.source(sa) else {
            continue;
        };
        for &ta in tattrs.iter() {
            if let Ok(i) = keys.binary_search(&crate::avtab::av_key(sa, ta, c)) {
                let e = &entries[i];
                allowed |= e.allowed;
                auditallow |= e.auditallow;
                auditdeny &= e.auditdeny;
                if e.cond_len != 0 {
                    for r in db.avtab.conds(e.cond_start, e.cond_len) {
                        if cs.enabled[r.cond as usize] != r.when {
                            continue;
                        }
                        match r.kind {
                            RuleKind::Allowed => allowed |= r.data,
                            RuleKind::AuditAllow => auditallow |= r.data,
                            RuleKind::AuditDeny => auditdeny &= r.data,
                            _ => {}
                        }
                    }
                }
            }
        }
    }
    let cd = &db.classes[class as usize - 1];
    for con in &cd.constraints {
        if con.perms & allowed != 0 && !constraint_eval(db, s, t, None, &con.expr) {
            allowed &= !con.perms;
        }
    }
    if class == db.domain_class
        && allowed & db.domain_transition != 0
        && s.role != t.role
        && !db
            .role_allow
            .iter()
            .any(|&(r, n)| r == s.role && n == t.role)
    {
        allowed &= !db.domain_transition;
    }
    (allowed, auditallow, auditdeny)
}

/// Xen's `context_struct_compute_av`, including its type-bounds masking.
fn ctx_compute_av(
    db: &PolicyDb,
    cs: &CondState,
    s: &Context,
    t: &Context,
    class: u32,
    depth: usize,
) -> (u32, u32, u32) {
    let (mut allowed, auditallow, auditdeny) = te_constraints(db, cs, s, t, class);
    // Bounds chains are at most BOUNDS_MAXDEPTH long (checked at load); the
    // depth argument is a second guard against unbounded recursion.
    if depth > BOUNDS_MAXDEPTH + 1 {
        return (allowed, auditallow, auditdeny);
    }
    let sb = db.types[s.ty as usize - 1].bounds;
    let tb = db.types[t.ty as usize - 1].bounds;
    if sb == 0 && tb == 0 {
        return (allowed, auditallow, auditdeny);
    }
    let mut masked = 0u32;
    let bound = |c: &Context, ty: u32| Context { ty, ..c.clone() };
    // Xen's order and early returns (differs from libsepol 3.4, which only
    // masks when the source is bounded, against (bound(s), bound(t) or t)).
    if sb != 0 {
        let lo = ctx_compute_av(db, cs, &bound(s, sb), t, class, depth + 1).0;
        if lo & allowed == allowed {
            return (allowed, auditallow, auditdeny);
        }
        masked = !lo & allowed;
    }
    if tb != 0 {
        let lo = ctx_compute_av(db, cs, s, &bound(t, tb), class, depth + 1).0;
        if lo & allowed == allowed {
            return (allowed, auditallow, auditdeny);
        }
        masked = !lo & allowed;
    }
    if sb != 0 && tb != 0 {
        let lo = ctx_compute_av(db, cs, &bound(s, sb), &bound(t, tb), class, depth + 1).0;
        if lo & allowed == allowed {
            return (allowed, auditallow, auditdeny);
        }
        masked = !lo & allowed;
    }
    allowed &= !masked;
    (allowed, auditallow, auditdeny)
}

/// `security_compute_av` for two contexts valid in `db` and a class value of `db`.
pub fn compute_av(
    db: &PolicyDb,
    cs: &CondState,
    s: &Context,
    t: &Context,
    class: u32,
) -> AvDecision {
    let (allowed, auditallow, auditdeny) = ctx_compute_av(db, cs, s, t, class, 0);
    AvDecision {
        allowed,
        auditallow,
        auditdeny,
        permissive: db.permissive.get(s.ty),
    }
}

/// Which new-label computation (type_transition, type_member, type_change).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SidKind {
    /// type_transition: compute_create.
    Create,
    /// type_member: compute_member.
    Member,
    /// type_change: compute_relabel.
    Relabel,
}

impl SidKind {
    fn rule(self) -> RuleKind {
        match self {
            SidKind::Create => RuleKind::Transition,
            SidKind::Member => RuleKind::Member,
            SidKind::Relabel => RuleKind::Change,
        }
    }
}

/// Xen's `security_compute_sid`: the context of a new object (or its
/// validity error, carrying the invalid context).
pub fn compute_sid(
    db: &PolicyDb,
    cs: &CondState,
    s: &Context,
    t: &Context,
    class: u32,
    kind: SidKind,
) -> Result<Context, Context> {
    let mut n = Context {
        user: if kind == SidKind::Member {
            t.user
        } else {
            s.user
        },
        ..Context::default()
    };
    if class == db.domain_class {
        n.role = s.role;
        n.ty = s.ty;
    } else {
        n.role = OBJECT_R_VAL;
        n.ty = t.ty;
    }
    if let Some(e) = db
        .avtab
        .ty(s.ty as u16, t.ty as u16, class as u16, kind.rule())
    {
        if e.uncond != 0 {
            n.ty = e.uncond;
        } else if let Some(r) = db
            .avtab
            .conds(e.cond_start, e.cond_len)
            .iter()
            .find(|r| cs.enabled[r.cond as usize] == r.when)
        {
            n.ty = r.data;
        }
    }
    // Xen: role_transition applies to class domain only (and v24 rules carry no class).
    if class == db.domain_class
        && kind == SidKind::Create
        && let Some(rt) = db
            .role_trans
            .iter()
            .find(|rt| rt.role == s.role && rt.ty == t.ty && (rt.class == 0 || rt.class == class))
    {
        n.role = rt.new_role;
    }
    if db.mls {
        let rtr = if kind == SidKind::Create {
            db.range_trans
                .iter()
                .find(|r| r.source == s.ty && r.target == t.ty && r.class == class)
        } else {
            None
        };
        n.range = match rtr {
            Some(r) => r.range.clone(),
            None if kind != SidKind::Member && class == db.domain_class => s.range.clone(),
            None => Range {
                low: s.range.low.clone(),
                high: s.range.low.clone(),
            },
        };
    }
    if db.context_isvalid(&n) {
        Ok(n)
    } else {
        Err(n)
    }
}

/// Formats a context as `user:role:type[:mls]` (libsepol's category notation).
pub fn context_to_string(db: &PolicyDb, c: &Context) -> String {
    let mut s = String::new();
    let user = db
        .users
        .get((c.user as usize).wrapping_sub(1))
        .map_or("?", |u| &*u.name);
    let role = db
        .roles
        .get((c.role as usize).wrapping_sub(1))
        .map_or("?", |r| &*r.name);
    let ty = db
        .types
        .get((c.ty as usize).wrapping_sub(1))
        .map_or("?", |t| &*t.name);
    let _ = write!(s, "{user}:{role}:{ty}");
    if db.mls {
        s.push(':');
        write_level(db, &mut s, &c.range.low);
        if c.range.high != c.range.low {
            s.push('-');
            write_level(db, &mut s, &c.range.high);
        }
    }
    s
}

fn write_level(db: &PolicyDb, s: &mut String, l: &Level) {
    s.push_str(
        db.sens
            .get((l.sens as usize).wrapping_sub(1))
            .map_or("?", |x| &*x.name),
    );
    let cat = |i: u32| db.cats.get(i as usize).map_or("?", |c| &**c);
    let mut first = true;
    let bits: Vec<u32> = l.cats.iter().collect();
    let mut i = 0;
    while i < bits.len() {
        let mut j = i;
        while j + 1 < bits.len() && bits[j + 1] == bits[j] + 1 {
            j += 1;
        }
        s.push(if first { ':' } else { ',' });
        first = false;
        s.push_str(cat(bits[i]));
        if j > i {
            // libsepol: two consecutive categories are written "a,b", three or more "a.c".
            s.push(if j - i >= 2 { '.' } else { ',' });
            s.push_str(cat(bits[j]));
        }
        i = j + 1;
    }
}

/// Why a context string was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContextError {
    /// Not of the form `user:role:type[:mls]`.
    Syntax,
    /// Unknown user.
    User,
    /// Unknown role.
    Role,
    /// Unknown type, or an attribute.
    Type,
    /// Bad MLS part.
    Mls,
    /// Well-formed but not valid in the policy (role/type/user/range authorisation).
    Invalid,
}

impl core::fmt::Display for ContextError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            ContextError::Syntax => "not of the form user:role:type[:level]",
            ContextError::User => "unknown user",
            ContextError::Role => "unknown role",
            ContextError::Type => "unknown type",
            ContextError::Mls => "bad MLS level or range",
            ContextError::Invalid => "not authorised by the policy",
        })
    }
}

/// Parses and validates a context string (a trailing NUL is accepted, as Xen does).
pub fn parse_context(db: &PolicyDb, text: &[u8]) -> Result<Context, ContextError> {
    let text = match text.split_last() {
        Some((0, rest)) => rest,
        _ => text,
    };
    let text = core::str::from_utf8(text).map_err(|_| ContextError::Syntax)?;
    let mut it = text.splitn(4, ':');
    let (Some(u), Some(r), Some(t)) = (it.next(), it.next(), it.next()) else {
        return Err(ContextError::Syntax);
    };
    let mls = it.next();
    let user = *db.user_by_name.get(u).ok_or(ContextError::User)?;
    let role = *db.role_by_name.get(r).ok_or(ContextError::Role)?;
    let ty = *db.type_by_name.get(t).ok_or(ContextError::Type)?;
    if db.types[ty as usize - 1].attribute {
        return Err(ContextError::Type);
    }
    let range = match (db.mls, mls) {
        (false, None) => Range::default(),
        (false, Some(_)) => return Err(ContextError::Syntax),
        (true, None) => return Err(ContextError::Mls),
        (true, Some(m)) => parse_range(db, m)?,
    };
    let c = Context {
        user,
        role,
        ty,
        range,
    };
    if !db.context_isvalid(&c) {
        return Err(ContextError::Invalid);
    }
    Ok(c)
}

fn parse_level(db: &PolicyDb, s: &str) -> Result<Level, ContextError> {
    let (sens, cats) = match s.split_once(':') {
        Some((a, b)) => (a, Some(b)),
        None => (s, None),
    };
    let sens = *db.sens_by_name.get(sens).ok_or(ContextError::Mls)?;
    let mut set = Ebitmap::new();
    if let Some(cats) = cats {
        for part in cats.split(',') {
            let (lo, hi) = match part.split_once('.') {
                Some((a, b)) => (a, Some(b)),
                None => (part, None),
            };
            let lo = *db.cat_by_name.get(lo).ok_or(ContextError::Mls)?;
            match hi {
                None => set.set(lo - 1),
                Some(h) => {
                    let h = *db.cat_by_name.get(h).ok_or(ContextError::Mls)?;
                    if lo > h {
                        return Err(ContextError::Mls);
                    }
                    for v in lo..=h {
                        set.set(v - 1);
                    }
                }
            }
        }
    }
    let l = Level { sens, cats: set };
    if !db.level_isvalid(&l) {
        return Err(ContextError::Mls);
    }
    Ok(l)
}

fn parse_range(db: &PolicyDb, s: &str) -> Result<Range, ContextError> {
    let (lo, hi) = match s.split_once('-') {
        Some((a, b)) => (a, Some(b)),
        None => (s, None),
    };
    let low = parse_level(db, lo)?;
    let high = match hi {
        Some(h) => parse_level(db, h)?,
        None => low.clone(),
    };
    Ok(Range { low, high })
}
