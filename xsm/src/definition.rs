//! Matching a policy's classes and permissions with Warden's one definition
//! (`policies/flask/`, compiled in by build.rs), by name.
//!
//! Warden's definition is Xen 4.17's vocabulary with Warden's own
//! permissions after Xen's last one in each class. A policy built from any
//! Xen vocabulary (4.17, or a later one that dropped, added or moved
//! permissions) is matched name by name: every class and permission Warden
//! checks is looked up in the policy, wherever the policy puts it. What the
//! policy does not define follows its handle_unknown: `reject` refuses the
//! policy, `deny` denies the permission, `allow` grants it. Classes and
//! permissions the policy defines beyond Warden's are ignored (Xen does the
//! same with permissions beyond its own).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::policydb::{HandleUnknown, PolicyDb};
use crate::{CLASS_NAMES, NUM_CLASSES, PERM_NAMES};

/// Marks a permission the policy does not define in [`ClassMap::bits`].
pub const NO_BIT: u8 = 0xff;

/// Where one class of Warden's definition is in a policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClassMap {
    /// The policy's value of the class (0: the policy does not define it).
    pub value: u32,
    /// Per bit of Warden's definition: the policy's bit, or [`NO_BIT`].
    pub bits: [u8; 32],
    /// Bits of Warden's definition the policy defines.
    pub defined: u32,
    /// Every defined permission has the same bit in the policy (no permutation needed).
    pub identity: bool,
}

impl ClassMap {
    const MISSING: ClassMap = ClassMap {
        value: 0,
        bits: [NO_BIT; 32],
        defined: 0,
        identity: false,
    };

    /// A vector in the policy's bits -> the same permissions in Warden's bits
    /// (permissions the policy lacks are 0).
    #[inline]
    pub fn to_warden(&self, policy_bits: u32) -> u32 {
        if self.identity {
            return policy_bits & self.defined;
        }
        let mut out = 0u32;
        let mut d = self.defined;
        while d != 0 {
            let b = d.trailing_zeros();
            d &= d - 1;
            let p = self.bits[b as usize];
            out |= ((policy_bits >> p) & 1) << b;
        }
        out
    }
}

/// How a policy's classes relate to Warden's definition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DefinitionCheck {
    /// Classes (`class C`) or permissions (`C:P`) of Warden's definition the policy lacks.
    pub missing: Vec<String>,
    /// Per class (index = value - 1): bits of permissions the policy lacks.
    pub missing_bits: Vec<u32>,
    /// Per class (index = value - 1): where the policy has it.
    pub maps: [ClassMap; NUM_CLASSES],
    /// Classes or permissions at another value or bit in the policy than in
    /// Warden's definition (matched by name; informational).
    pub moved: Vec<String>,
}

impl Default for DefinitionCheck {
    fn default() -> Self {
        DefinitionCheck {
            missing: Vec::new(),
            missing_bits: Vec::new(),
            maps: [ClassMap::MISSING; NUM_CLASSES],
            moved: Vec::new(),
        }
    }
}

impl DefinitionCheck {
    /// One message naming every permission the policy lacks.
    pub fn describe(&self) -> String {
        if self.missing.is_empty() {
            String::new()
        } else {
            format!("missing: {}", self.missing.join(", "))
        }
    }

    /// Is the policy refused under its handle_unknown setting (reject, and something is missing)?
    pub fn refused(&self, hu: HandleUnknown) -> bool {
        !self.missing.is_empty() && hu == HandleUnknown::Reject
    }
}

/// Matches `db` with the compiled-in definition, by name.
pub fn check(db: &PolicyDb) -> DefinitionCheck {
    let mut out = DefinitionCheck::default();
    for (i, &cname) in CLASS_NAMES.iter().enumerate() {
        let want = PERM_NAMES[i];
        let all = if want.len() >= 32 {
            u32::MAX
        } else {
            (1u32 << want.len()) - 1
        };
        let Some(pi) = db.classes.iter().position(|c| c.name == cname) else {
            out.missing.push(format!("class {cname}"));
            out.missing_bits.push(all);
            continue;
        };
        if pi != i {
            out.moved
                .push(format!("class {cname} (value {} -> {})", i + 1, pi + 1));
        }
        let c = &db.classes[pi];
        let mut map = ClassMap {
            value: pi as u32 + 1,
            bits: [NO_BIT; 32],
            defined: 0,
            identity: true,
        };
        let mut miss = 0u32;
        for (b, &p) in want.iter().enumerate() {
            match c
                .perms
                .iter()
                .take(32)
                .position(|q| q.as_deref() == Some(p))
            {
                Some(pb) => {
                    map.bits[b] = pb as u8;
                    map.defined |= 1 << b;
                    if pb != b {
                        map.identity = false;
                        out.moved.push(format!("{cname}:{p} (bit {b} -> {pb})"));
                    }
                }
                None => {
                    miss |= 1 << b;
                    out.missing.push(format!("{cname}:{p}"));
                }
            }
        }
        out.maps[i] = map;
        out.missing_bits.push(miss);
    }
    out
}
