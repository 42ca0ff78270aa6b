//! # xsm — Warden's FLASK security server and access vector cache
//!
//! (Crate documentation: see the "Semantics" section below and docs/ARCHITECTURE.md.)
#![cfg_attr(not(test), no_std)]
#![deny(missing_docs)]

extern crate alloc;

pub mod audit;
mod avc;
pub(crate) mod avtab;
pub mod definition;
pub mod ebitmap;
pub mod error;
pub mod flask;
#[doc(hidden)]
pub mod fuzzing;
pub mod policydb;
pub mod rcu;
mod reader;
pub mod services;
mod sidtab;

use core::marker::PhantomData;
use core::ops::{BitAnd, BitOr, BitOrAssign, Not};

pub use audit::{AuditData, AuditObject, AuditRecord, AuditSink};
pub use error::{Error, LoadError, LoadErrorKind};
pub use flask::{Denied, Flask, Granted};
pub use policydb::{Context, HandleUnknown, PolicyDb};
pub use services::{AvDecision, CondState, ContextError, SidKind};

mod generated {
    #![allow(missing_docs)]
    include!(concat!(env!("OUT_DIR"), "/flask_defs.rs"));
}
pub use generated::{
    CLASS_NAMES, INITIAL_SID_NAMES, NUM_CLASSES, NUM_INITIAL_SIDS, PERM_NAMES, class, initial_sid,
    perms,
};

/// A security identifier: a small integer standing for a security context.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sid(pub(crate) u32);

impl Sid {
    /// A SID from its raw value (e.g. from a guest); checked when used.
    pub const fn from_raw(v: u32) -> Sid {
        Sid(v)
    }
    pub(crate) const fn from_raw_const(v: u32) -> Sid {
        Sid(v)
    }
    /// The raw value.
    pub const fn raw(self) -> u32 {
        self.0
    }
}

impl core::fmt::Display for Sid {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A class value (1-based position in `policies/flask/security_classes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClassId(u16);

impl ClassId {
    pub(crate) const fn from_raw_const(v: u16) -> ClassId {
        ClassId(v)
    }
    /// A class id from a raw value (e.g. from a guest), if it names a class of Warden's definition.
    pub fn from_raw(v: u32) -> Option<ClassId> {
        if v >= 1 && v as usize <= NUM_CLASSES {
            Some(ClassId(v as u16))
        } else {
            None
        }
    }
    /// The raw value.
    pub const fn raw(self) -> u32 {
        self.0 as u32
    }
    /// The class name.
    pub fn name(self) -> &'static str {
        CLASS_NAMES[self.0 as usize - 1]
    }
    /// Permission names of the class, by bit.
    pub fn perm_names(self) -> &'static [&'static str] {
        PERM_NAMES[self.0 as usize - 1]
    }
}

mod sealed {
    pub trait Sealed {}
}

/// A class of Warden's definition; implemented only by the generated types in [`class`].
pub trait Class: sealed::Sealed + Copy + 'static {
    /// Its class value.
    const ID: ClassId;
    /// Its name.
    const NAME: &'static str;
}

macro_rules! seal_all {
    ($($t:ident),*) => { $(impl sealed::Sealed for class::$t {})* };
}
seal_all!(
    Xen, Xen2, Domain, Domain2, Hvm, Mmu, Resource, Shadow, Event, Grant, Security, Version, Argo
);

/// A set of permissions of class `C`. Sets of different classes do not mix:
/// `perms::domain::PAUSE | perms::domain2::SETCLAIM` does not compile.
pub struct Perms<C: Class> {
    bits: u32,
    _c: PhantomData<fn() -> C>,
}

impl<C: Class> Perms<C> {
    pub(crate) const fn from_bits_const(bits: u32) -> Self {
        Perms {
            bits,
            _c: PhantomData,
        }
    }
    /// The empty set.
    pub const fn empty() -> Self {
        Self::from_bits_const(0)
    }
    /// The access vector bits (bit n-1 = permission with value n).
    pub const fn bits(self) -> u32 {
        self.bits
    }
    /// Is the set empty?
    pub const fn is_empty(self) -> bool {
        self.bits == 0
    }
    /// Union (usable in `const` items).
    pub const fn union(self, o: Self) -> Self {
        Self::from_bits_const(self.bits | o.bits)
    }
    /// Does the set contain all of `o`?
    pub const fn contains(self, o: Self) -> bool {
        self.bits & o.bits == o.bits
    }
}

impl<C: Class> Clone for Perms<C> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<C: Class> Copy for Perms<C> {}
impl<C: Class> PartialEq for Perms<C> {
    fn eq(&self, o: &Self) -> bool {
        self.bits == o.bits
    }
}
impl<C: Class> Eq for Perms<C> {}
impl<C: Class> core::fmt::Debug for Perms<C> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} {{", C::NAME)?;
        for (i, n) in C::ID.perm_names().iter().enumerate() {
            if self.bits & (1 << i) != 0 {
                write!(f, " {n}")?;
            }
        }
        write!(f, " }}")
    }
}
impl<C: Class> BitOr for Perms<C> {
    type Output = Self;
    fn bitor(self, o: Self) -> Self {
        self.union(o)
    }
}
impl<C: Class> BitOrAssign for Perms<C> {
    fn bitor_assign(&mut self, o: Self) {
        self.bits |= o.bits;
    }
}
impl<C: Class> BitAnd for Perms<C> {
    type Output = Self;
    fn bitand(self, o: Self) -> Self {
        Self::from_bits_const(self.bits & o.bits)
    }
}
impl<C: Class> Not for Perms<C> {
    type Output = Self;
    fn not(self) -> Self {
        Self::from_bits_const(!self.bits & perms_all::<C>())
    }
}

fn perms_all<C: Class>() -> u32 {
    let n = C::ID.perm_names().len();
    if n >= 32 { u32::MAX } else { (1u32 << n) - 1 }
}
