//! Errors of the policy loader and of the security server.

use alloc::string::String;
use core::fmt;

/// Why a binary policy was refused, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadError {
    /// Byte offset in the policy image at which the problem was found.
    pub offset: usize,
    /// What is wrong.
    pub kind: LoadErrorKind,
}

/// What is wrong with a binary policy.
#[allow(missing_docs)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoadErrorKind {
    /// The image ends inside a field (`what` is the field, `need` bytes were wanted).
    Truncated { what: &'static str, need: usize },
    /// First word is not 0xf97cff8c.
    BadMagic(u32),
    /// The target string is not "XenFlask".
    BadTarget(String),
    /// Only versions 24 and 30 exist for the Xen target.
    UnsupportedVersion(u32),
    /// Unknown bits in the config word.
    BadConfig(u32),
    /// Symbol-table or object-context counts differ from the Xen target's.
    BadTableSizes { sym_num: u32, ocon_num: u32 },
    /// A count or length cannot fit in the remaining bytes.
    BadLength { what: &'static str, len: u64 },
    /// A value (type, role, class, ...) is out of range or duplicated.
    BadValue { what: &'static str, value: u64 },
    /// A name is empty, not UTF-8, or duplicated.
    BadName { what: &'static str, name: String },
    /// Malformed extensible bitmap.
    BadBitmap(&'static str),
    /// Malformed constraint expression.
    BadConstraint(&'static str),
    /// Malformed or unsupported access vector table entry.
    BadAvtab(&'static str),
    /// A construct the Xen target does not support (xperms, filename transitions, genfs).
    Unsupported(&'static str),
    /// Invalid MLS level or range.
    BadMls(&'static str),
    /// A context that is not valid in this policy.
    BadContext(&'static str),
    /// Type/role/user bounds are cyclic, too deep or violate the hierarchy.
    BadBounds(String),
    /// Trailing bytes after the last table.
    TrailingData(usize),
    /// The policy's classes or permissions differ from Warden's definition.
    ClassMismatch(String),
    /// An initial SID the policy must define is missing, or one is unknown.
    BadInitialSid(String),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at offset {:#x}: ", self.offset)?;
        match &self.kind {
            LoadErrorKind::Truncated { what, need } => {
                write!(f, "truncated {what}: {need} more bytes needed")
            }
            LoadErrorKind::BadMagic(m) => write!(f, "bad magic {m:#010x} (expected 0xf97cff8c)"),
            LoadErrorKind::BadTarget(s) => write!(f, "target {s:?} is not \"XenFlask\""),
            LoadErrorKind::UnsupportedVersion(v) => {
                write!(
                    f,
                    "policy version {v} unsupported (the Xen target has 24 and 30)"
                )
            }
            LoadErrorKind::BadConfig(c) => write!(f, "unknown config bits {c:#x}"),
            LoadErrorKind::BadTableSizes { sym_num, ocon_num } => write!(
                f,
                "table sizes ({sym_num} symbol tables, {ocon_num} ocontext tables) do not match the Xen target"
            ),
            LoadErrorKind::BadLength { what, len } => write!(f, "impossible {what} {len}"),
            LoadErrorKind::BadValue { what, value } => write!(f, "invalid {what} {value}"),
            LoadErrorKind::BadName { what, name } => write!(f, "invalid {what} name {name:?}"),
            LoadErrorKind::BadBitmap(s) => write!(f, "bad bitmap: {s}"),
            LoadErrorKind::BadConstraint(s) => write!(f, "bad constraint: {s}"),
            LoadErrorKind::BadAvtab(s) => write!(f, "bad access vector rule: {s}"),
            LoadErrorKind::Unsupported(s) => write!(f, "unsupported for the Xen target: {s}"),
            LoadErrorKind::BadMls(s) => write!(f, "bad MLS data: {s}"),
            LoadErrorKind::BadContext(s) => write!(f, "invalid context: {s}"),
            LoadErrorKind::BadBounds(s) => write!(f, "bad bounds: {s}"),
            LoadErrorKind::TrailingData(n) => write!(f, "{n} bytes of trailing data"),
            LoadErrorKind::ClassMismatch(s) => {
                write!(
                    f,
                    "classes/permissions differ from Warden's definition: {s}"
                )
            }
            LoadErrorKind::BadInitialSid(s) => write!(f, "initial SIDs: {s}"),
        }
    }
}

/// Errors of security-server operations (the errno each maps to is in [`Error::errno`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// No policy is loaded.
    NoPolicy,
    /// A SID that is not in the SID table.
    UnknownSid(u32),
    /// A class value the policy does not have.
    UnknownClass(u32),
    /// A context string that does not parse or is not valid in the policy.
    InvalidContext(String),
    /// compute_create/member/relabel produced an invalid context (enforcing mode).
    InvalidNewContext(String),
    /// A boolean id or name the policy does not have.
    UnknownBool(String),
    /// An argument out of range (the message says which).
    Invalid(&'static str),
    /// An ocontext entry that already exists / does not exist.
    OcontextExists,
    /// No such ocontext entry.
    OcontextNotFound,
    /// The SID table is full.
    NoMemory,
    /// Loading a policy failed.
    Load(LoadError),
}

impl Error {
    /// The Xen errno value an xsm_op handler returns for this error (negated by the caller).
    pub fn errno(&self) -> i32 {
        match self {
            Error::NoPolicy => 22,             // EINVAL
            Error::UnknownSid(_) => 22,        // EINVAL
            Error::UnknownClass(_) => 22,      // EINVAL
            Error::InvalidContext(_) => 22,    // EINVAL
            Error::InvalidNewContext(_) => 13, // EACCES
            Error::UnknownBool(_) => 2,        // ENOENT
            Error::Invalid(_) => 22,           // EINVAL
            Error::OcontextExists => 17,       // EEXIST
            Error::OcontextNotFound => 2,      // ENOENT
            Error::NoMemory => 12,             // ENOMEM
            Error::Load(_) => 22,              // EINVAL
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoPolicy => write!(f, "no policy loaded"),
            Error::UnknownSid(s) => write!(f, "unknown SID {s}"),
            Error::UnknownClass(c) => write!(f, "unknown class {c}"),
            Error::InvalidContext(c) => write!(f, "invalid context {c}"),
            Error::InvalidNewContext(c) => write!(f, "computed context {c} is invalid"),
            Error::UnknownBool(b) => write!(f, "unknown boolean {b}"),
            Error::Invalid(s) => write!(f, "invalid argument: {s}"),
            Error::OcontextExists => write!(f, "ocontext entry exists"),
            Error::OcontextNotFound => write!(f, "no such ocontext entry"),
            Error::NoMemory => write!(f, "SID table full"),
            Error::Load(e) => write!(f, "policy load failed {e}"),
        }
    }
}

impl From<LoadError> for Error {
    fn from(e: LoadError) -> Error {
        Error::Load(e)
    }
}
