//! Comparison of a policy's classes and permissions with Warden's one
//! definition (`policies/flask/`, compiled in by build.rs).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::policydb::{HandleUnknown, PolicyDb};
use crate::{CLASS_NAMES, PERM_NAMES};

/// How a policy's classes relate to Warden's definition.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DefinitionCheck {
    /// Differences that make the policy unusable (renamed, reordered or extra classes/permissions).
    pub conflicts: Vec<String>,
    /// Classes or permissions of Warden's definition the policy lacks (trailing ones).
    pub missing: Vec<String>,
    /// Per class (index = value - 1): bits of permissions the policy lacks.
    pub missing_bits: Vec<u32>,
}

impl DefinitionCheck {
    /// One message naming every difference.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self.conflicts.clone();
        if !self.missing.is_empty() {
            parts.push(format!("missing: {}", self.missing.join(", ")));
        }
        parts.join("; ")
    }

    /// Is the policy refused under its handle_unknown setting?
    pub fn refused(&self, hu: HandleUnknown) -> bool {
        !self.conflicts.is_empty() || (!self.missing.is_empty() && hu == HandleUnknown::Reject)
    }
}

/// Compares `db` with the compiled-in definition.
pub fn check(db: &PolicyDb) -> DefinitionCheck {
    let mut out = DefinitionCheck::default();
    for (i, c) in db.classes.iter().enumerate() {
        match CLASS_NAMES.get(i) {
            None => out.conflicts.push(format!(
                "class {} (value {}) is not in Warden's definition",
                c.name,
                i + 1
            )),
            Some(&n) if n != c.name => out.conflicts.push(format!(
                "class value {} is {} in the policy but {} in Warden's definition",
                i + 1,
                c.name,
                n
            )),
            Some(_) => {}
        }
    }
    for (i, &cname) in CLASS_NAMES.iter().enumerate() {
        let want = PERM_NAMES[i];
        let all = if want.len() >= 32 {
            u32::MAX
        } else {
            (1u32 << want.len()) - 1
        };
        let Some(c) = db.classes.get(i) else {
            out.missing.push(format!("class {cname}"));
            out.missing_bits.push(all);
            continue;
        };
        if c.name != cname {
            out.missing_bits.push(0);
            continue;
        }
        let mut miss = 0u32;
        for (b, &p) in want.iter().enumerate() {
            match c.perms.get(b).and_then(|x| x.as_deref()) {
                Some(q) if q == p => {}
                Some(q) => out.conflicts.push(format!(
                    "{cname} permission bit {b} is {q} in the policy but {p} in Warden's definition"
                )),
                None if b >= c.nperms as usize => {
                    miss |= 1 << b;
                    out.missing.push(format!("{cname}:{p}"));
                }
                None => out.conflicts.push(format!(
                    "{cname} permission bit {b} ({p}) is unnamed in the policy"
                )),
            }
        }
        for (b, q) in c.perms.iter().enumerate().skip(want.len()) {
            if let Some(q) = q {
                out.conflicts.push(format!(
                    "{cname}:{q} (bit {b}) is not in Warden's definition"
                ));
            }
        }
        out.missing_bits.push(miss);
    }
    out
}
