//! The hypervisor side of Warden live patching, as host-testable logic.
//!
//! [`Engine`] holds the loaded payloads and implements Xen's
//! `XEN_SYSCTL_livepatch_op` semantics: UPLOAD (every check before anything
//! is kept), GET, LIST, and ACTION (APPLY, REVERT, REPLACE, UNLOAD) with the
//! CHECKED/APPLIED states, `-EAGAIN` while an action is pending, a timeout,
//! the payload stack and hooks. It never touches memory or CPUs itself: the
//! hypervisor implements [`Platform`] (allocate payload memory near the
//! image, install it with its permissions, read text, hold all CPUs and
//! write text through a temporary alias, call hooks, log).
//!
//! Upload pipeline ([`Engine::upload`]), in order; each failure is its own
//! [`UploadError`] variant and log line, and nothing is kept:
//! 1. name valid and unused; file size <= 2 MiB;
//! 2. signature trailer present, key built in, ed25519 signature valid
//!    (before the ELF is parsed);
//! 3. ELF structure and every live-patch section ([`livepatch_format::payload`]);
//! 4. `.livepatch.xen_depends` is this hypervisor's build-id; the payload's
//!    own build-id is new; `.livepatch.depends` names a loaded payload (or the
//!    hypervisor);
//! 5. every hypervisor symbol resolves through the embedded symbol table;
//! 6. every old function: a function in the image's text, of the recorded
//!    size, large enough for the 5-byte jump (after ENDBR64), its first bytes
//!    as expected (compared with the image's original bytes);
//! 7. memory allocated, every relocation applied without overflow, every
//!    jump within +-2 GiB, memory installed (text RX, rodata R, data RW NX).
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod fuzzing;
pub mod insn;
pub mod load;

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use livepatch_format::payload::{HookKind, Payload, PayloadError};
use livepatch_format::sig::{self, KeyId, SigError, TrustedKey};
use livepatch_format::{Hex, MAX_PAYLOAD_SIZE};
use warden_symbols::SymbolTable;

/// Xen's default rendezvous timeout: 30 ms.
pub const DEFAULT_TIMEOUT_NS: u64 = 30_000_000;

/// Errno values (Xen's public errno.h uses the Linux x86 numbers).
pub mod errno {
    pub const ESRCH: i32 = 3;
    pub const ENOENT: i32 = 2;
    pub const E2BIG: i32 = 7;
    pub const ENOEXEC: i32 = 8;
    pub const EAGAIN: i32 = 11;
    pub const ENOMEM: i32 = 12;
    pub const EBUSY: i32 = 16;
    pub const EEXIST: i32 = 17;
    pub const EINVAL: i32 = 22;
    pub const ENOSPC: i32 = 28;
    pub const ERANGE: i32 = 34;
    pub const ENODATA: i32 = 61;
    pub const ETIME: i32 = 62;
    pub const ENOLINK: i32 = 67;
    pub const EBADMSG: i32 = 74;
    pub const ENOTUNIQ: i32 = 76;
    pub const EILSEQ: i32 = 84;
    pub const EOPNOTSUPP: i32 = 95;
    pub const ENOKEY: i32 = 126;
    pub const EKEYREJECTED: i32 = 129;
}

/// Payload states (Xen's values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum State {
    Checked = 1,
    Applied = 2,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Checked => "CHECKED",
            State::Applied => "APPLIED",
        }
    }
}

/// ACTION commands (Xen's values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Action {
    Unload = 1,
    Revert = 2,
    Apply = 3,
    Replace = 4,
}

impl Action {
    pub fn from_u32(v: u32) -> Option<Self> {
        Some(match v {
            1 => Action::Unload,
            2 => Action::Revert,
            3 => Action::Apply,
            4 => Action::Replace,
            _ => return None,
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            Action::Unload => "UNLOAD",
            Action::Revert => "REVERT",
            Action::Apply => "APPLY",
            Action::Replace => "REPLACE",
        }
    }
}

/// ACTION flag: apply without checking the stack dependency (Xen's
/// `LIVEPATCH_ACTION_APPLY_NODEPS`).
pub const APPLY_NODEPS: u32 = 1;

/// The running image, as the engine needs it.
#[derive(Debug, Clone, Copy)]
pub struct Image<'i> {
    /// GNU build-id of the running hypervisor.
    pub build_id: &'i [u8],
    /// The embedded symbol table.
    pub symbols: SymbolTable<'i>,
    /// `[start, end)` of the image's text: old functions must lie inside.
    pub text: (u64, u64),
}

/// Sizes of the three regions a payload needs (page multiples; 0 = none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AllocRequest {
    pub text: u64,
    pub ro: u64,
    pub rw: u64,
}

/// Where the platform put a payload's regions. Text must be within +-2 GiB
/// of the image's text (jumps and 32-bit relocations).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Allocation {
    pub text: u64,
    pub ro: u64,
    pub rw: u64,
    /// Platform cookie (e.g. the first frame), returned to [`Platform::free`].
    pub cookie: u64,
}

/// Why the platform could not hold all CPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuiesceError {
    /// Not every CPU reached the safe point within the timeout: `arrived` of `cpus`.
    Timeout { arrived: u32, cpus: u32 },
}

/// Log levels for [`Platform::log`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Error,
    Info,
}

/// What patching needs while every CPU is held.
pub trait Patcher {
    /// Write `bytes` at `addr` in the hypervisor's text (through a temporary
    /// writable alias; W^X holds before and after).
    ///
    /// # Safety
    /// `[addr, addr + bytes.len())` must be a patch site in the hypervisor's
    /// text (the start of a function the engine resolved at upload), and
    /// `bytes` instructions the engine encoded for it (a jump to the
    /// payload's function, NOPs) or the bytes it saved there: the text must
    /// be valid code once written, for every CPU that runs it afterwards.
    unsafe fn write_text(&mut self, addr: u64, bytes: &[u8]);
    /// Read the text's current bytes.
    fn read_text(&self, addr: u64, buf: &mut [u8]);
    /// Call a hook (a function of an installed payload). Returns its result
    /// (0 for hooks that return nothing).
    ///
    /// # Safety
    /// `addr` must be the entry point of a hook function (C ABI,
    /// `fn() -> i32`) of a payload installed through [`Platform::install`]
    /// and not freed since.
    unsafe fn call_hook(&mut self, addr: u64) -> i32;
}

/// The hypervisor's services to the engine.
pub trait Platform {
    /// Allocate memory for a payload (page-granular, text within +-2 GiB of
    /// the image's text).
    fn alloc(&mut self, req: &AllocRequest) -> Option<Allocation>;
    /// Copy the relocated regions into the allocation and set permissions:
    /// text RX, ro R, rw RW+NX.
    fn install(&mut self, at: &Allocation, text: &[u8], ro: &[u8], rw: &[u8]);
    /// Free an allocation (no CPU executes it any more).
    fn free(&mut self, at: &Allocation);
    /// Read the hypervisor's text.
    fn read_text(&self, addr: u64, buf: &mut [u8]);
    /// Call a hook outside the quiescent phase (pre/post hooks).
    ///
    /// # Safety
    /// As [`Patcher::call_hook`].
    unsafe fn call_hook(&mut self, addr: u64) -> i32;
    /// Bring every CPU to a safe point (no CPU inside hypervisor code that
    /// could be in a patched function), interrupts off, within `timeout_ns`;
    /// run `work` on one CPU; release them. Returns how long the CPUs were
    /// held, in ns. On timeout `work` is not called.
    fn quiesce(
        &mut self,
        timeout_ns: u64,
        work: &mut dyn FnMut(&mut dyn Patcher),
    ) -> Result<u64, QuiesceError>;
    /// A log line (the hypervisor prefixes `livepatch: `).
    fn log(&mut self, level: Level, msg: fmt::Arguments<'_>);
}

/// Why an upload was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadError {
    BadName,
    NameExists,
    TooLarge {
        size: usize,
        max: usize,
    },
    Signature(SigError),
    Format(PayloadError),
    WrongHypervisor {
        found: Vec<u8>,
    },
    DuplicateBuildId {
        other: String,
    },
    MissingDependency {
        build_id: Vec<u8>,
    },
    UnknownSymbol(String),
    AmbiguousSymbol {
        name: String,
        count: usize,
    },
    SymbolAddressMismatch {
        name: String,
        expected: u64,
    },
    NotAFunction(String),
    NotInText(String),
    DuplicateFunction(String),
    OldSizeMismatch {
        name: String,
        table: u64,
        payload: u32,
    },
    FunctionTooSmall {
        name: String,
        size: u64,
        need: u64,
    },
    OldBytesMismatch {
        name: String,
    },
    OutOfMemory,
    RelocationOverflow {
        section: String,
        index: usize,
        symbol: String,
    },
    JumpOutOfRange {
        name: String,
    },
    Internal(&'static str),
}

impl UploadError {
    /// The errno returned to the caller (positive; the ABI returns `-errno`).
    pub fn errno(&self) -> i32 {
        use errno::*;
        match self {
            UploadError::BadName => EINVAL,
            UploadError::NameExists | UploadError::DuplicateBuildId { .. } => EEXIST,
            UploadError::TooLarge { .. } => E2BIG,
            UploadError::Signature(SigError::Unsigned) => ENODATA,
            UploadError::Signature(SigError::Malformed(_) | SigError::Unsupported { .. }) => {
                EBADMSG
            }
            UploadError::Signature(SigError::UnknownKey(_)) => ENOKEY,
            UploadError::Signature(SigError::BadSignature(_)) => EKEYREJECTED,
            UploadError::Format(_) => ENOEXEC,
            UploadError::WrongHypervisor { .. } => EINVAL,
            UploadError::MissingDependency { .. } => ENOLINK,
            UploadError::UnknownSymbol(_) => ENOENT,
            UploadError::AmbiguousSymbol { .. } => ENOTUNIQ,
            UploadError::SymbolAddressMismatch { .. } => ESRCH,
            UploadError::NotAFunction(_) | UploadError::NotInText(_) => EINVAL,
            UploadError::OldSizeMismatch { .. } => EINVAL,
            UploadError::FunctionTooSmall { .. } => ENOSPC,
            UploadError::OldBytesMismatch { .. } => EILSEQ,
            UploadError::DuplicateFunction(_) => EINVAL,
            UploadError::OutOfMemory => ENOMEM,
            UploadError::RelocationOverflow { .. } | UploadError::JumpOutOfRange { .. } => ERANGE,
            UploadError::Internal(_) => EINVAL,
        }
    }

    /// Which check failed, as one word for log lines and tests.
    pub fn check(&self) -> &'static str {
        match self {
            UploadError::BadName | UploadError::NameExists => "name",
            UploadError::TooLarge { .. } => "size",
            UploadError::Signature(_) => "signature",
            UploadError::Format(_) => "format",
            UploadError::WrongHypervisor { .. } => "hypervisor build-id",
            UploadError::DuplicateBuildId { .. } => "build-id",
            UploadError::MissingDependency { .. } => "dependency",
            UploadError::UnknownSymbol(_)
            | UploadError::AmbiguousSymbol { .. }
            | UploadError::SymbolAddressMismatch { .. } => "symbols",
            UploadError::NotAFunction(_)
            | UploadError::NotInText(_)
            | UploadError::OldSizeMismatch { .. }
            | UploadError::FunctionTooSmall { .. }
            | UploadError::DuplicateFunction(_) => "functions",
            UploadError::OldBytesMismatch { .. } => "expected bytes",
            UploadError::OutOfMemory => "memory",
            UploadError::RelocationOverflow { .. } | UploadError::JumpOutOfRange { .. } => {
                "relocations"
            }
            UploadError::Internal(_) => "internal",
        }
    }
}

impl fmt::Display for UploadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UploadError::BadName => {
                f.write_str("invalid name (1..127 printable ASCII characters, no '/')")
            }
            UploadError::NameExists => f.write_str("a payload of this name is already loaded"),
            UploadError::TooLarge { size, max } => {
                write!(f, "payload is {size} bytes, the limit is {max}")
            }
            UploadError::Signature(e) => e.fmt(f),
            UploadError::Format(e) => write!(f, "malformed payload: {e}"),
            UploadError::WrongHypervisor { found } => {
                write!(
                    f,
                    "built for hypervisor build-id {}, not this one",
                    Hex(found)
                )
            }
            UploadError::DuplicateBuildId { other } => {
                write!(f, "payload {other} has the same build-id")
            }
            UploadError::MissingDependency { build_id } => {
                write!(
                    f,
                    "depends on build-id {}, which is not loaded",
                    Hex(build_id)
                )
            }
            UploadError::UnknownSymbol(n) => write!(f, "unknown symbol {n}"),
            UploadError::AmbiguousSymbol { name, count } => {
                write!(
                    f,
                    "symbol {name} is ambiguous ({count} symbols of that name; the payload must give the address)"
                )
            }
            UploadError::SymbolAddressMismatch { name, expected } => {
                write!(f, "no symbol {name} at {expected:#x}")
            }
            UploadError::NotAFunction(n) => write!(f, "{n} is not a function"),
            UploadError::NotInText(n) => write!(f, "{n} is not in the hypervisor's text"),
            UploadError::OldSizeMismatch {
                name,
                table,
                payload,
            } => write!(
                f,
                "{name} is {table} bytes in this hypervisor, the payload expects {payload}"
            ),
            UploadError::FunctionTooSmall { name, size, need } => write!(
                f,
                "{name} is {size} bytes, too small to patch (needs {need})"
            ),
            UploadError::OldBytesMismatch { name } => {
                write!(f, "{name}: old bytes are not as expected")
            }
            UploadError::DuplicateFunction(n) => write!(f, "{n} is patched twice by this payload"),
            UploadError::OutOfMemory => f.write_str("out of memory for the payload"),
            UploadError::RelocationOverflow {
                section,
                index,
                symbol,
            } => write!(
                f,
                "relocation {index} in {section} against {symbol} overflows"
            ),
            UploadError::JumpOutOfRange { name } => {
                write!(f, "{name}: new function beyond the reach of a 32-bit jump")
            }
            UploadError::Internal(w) => write!(f, "internal error: {w}"),
        }
    }
}

/// Why an ACTION (or GET) was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionError {
    NoSuchPayload,
    /// An action is already pending.
    Busy,
    /// REVERT of a payload that is not the top of the applied stack.
    NotTop {
        top: String,
    },
    /// UNLOAD of an applied payload.
    Applied,
    /// APPLY/REPLACE of an applied payload, REVERT of a checked one.
    WrongState(State),
    /// The payload below this one in the stack is not the top applied one.
    Dependency,
    /// REPLACE of a payload that does not stack directly on the hypervisor.
    ReplaceNotBase,
    /// REPLACE with pre/post hooks involved (as Xen).
    VetoingHooks,
    /// Re-applying a reverted payload with writable data (unload and upload again).
    MustReload,
    /// A pre-apply or pre-revert hook refused (its result).
    Vetoed(i32),
    /// The old code is not what the payload expects.
    OldBytesMismatch(String),
    BadCommand,
}

impl ActionError {
    pub fn errno(&self) -> i32 {
        use errno::*;
        match self {
            ActionError::NoSuchPayload => ENOENT,
            ActionError::Busy | ActionError::NotTop { .. } | ActionError::Applied => EBUSY,
            ActionError::WrongState(_) | ActionError::MustReload => EINVAL,
            ActionError::Dependency | ActionError::ReplaceNotBase => ENOLINK,
            ActionError::VetoingHooks | ActionError::BadCommand => EOPNOTSUPP,
            ActionError::Vetoed(rc) => {
                if *rc < 0 {
                    -*rc
                } else {
                    EINVAL
                }
            }
            ActionError::OldBytesMismatch(_) => EILSEQ,
        }
    }
}

impl fmt::Display for ActionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ActionError::NoSuchPayload => f.write_str("no payload of that name"),
            ActionError::Busy => f.write_str("another action is in progress"),
            ActionError::NotTop { top } => {
                write!(f, "not the top of the applied stack (top is {top})")
            }
            ActionError::Applied => f.write_str("payload is applied: revert it first"),
            ActionError::WrongState(s) => write!(f, "payload is {}", s.name()),
            ActionError::Dependency => {
                f.write_str("the payload it depends on is not the top of the applied stack")
            }
            ActionError::ReplaceNotBase => {
                f.write_str("REPLACE needs a payload that depends only on the hypervisor")
            }
            ActionError::VetoingHooks => {
                f.write_str("REPLACE is not supported with pre/post hooks")
            }
            ActionError::MustReload => f.write_str(
                "payload was reverted and has writable data: unload and upload it again",
            ),
            ActionError::Vetoed(rc) => write!(f, "pre-hook refused (rc={rc})"),
            ActionError::OldBytesMismatch(n) => write!(f, "{n}: old bytes are not as expected"),
            ActionError::BadCommand => f.write_str("unknown action"),
        }
    }
}

/// One patch site of a loaded payload.
#[derive(Debug, Clone)]
pub struct PatchSite {
    /// The old function's symbol-table name.
    pub name: String,
    /// Start of the old function.
    pub old_addr: u64,
    /// Where the bytes go (after ENDBR64 if present).
    pub at: u64,
    /// New function (0 for a NOP patch).
    pub new_addr: u64,
    /// The bytes written (`len` of them).
    pub bytes: [u8; insn::MAX_PATCH],
    pub len: usize,
    /// The bytes found at `at` when applied (restored by revert).
    pub saved: [u8; insn::MAX_PATCH],
    /// Expected original first bytes of the old function.
    pub expect: Vec<u8>,
}

/// A loaded payload.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub name: String,
    pub build_id: Vec<u8>,
    pub depends: Option<Vec<u8>>,
    pub key_id: KeyId,
    pub state: State,
    /// 0, `-EAGAIN` while an action is pending, or the last action's `-errno`.
    pub rc: i32,
    pub sites: Vec<PatchSite>,
    pub hooks: Vec<(HookKind, u64)>,
    /// `.modinfo` contents (`key=value\0...`).
    pub metadata: Vec<u8>,
    pub alloc: Allocation,
    pub request: AllocRequest,
    /// Has been reverted at least once.
    pub reverted: bool,
    /// Has writable data (.data/.bss): cannot be re-applied after a revert.
    pub has_rw: bool,
}

impl Loaded {
    fn vetoing(&self) -> bool {
        self.hooks.iter().any(|h| h.0.is_vetoing())
    }
}

#[derive(Debug, Clone, Copy)]
struct Work {
    index: usize,
    action: Action,
    timeout_ns: u64,
}

/// What a finished action did (also logged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub name: String,
    pub action: Action,
    /// 0 or `-errno`.
    pub rc: i32,
    /// How long every CPU was held, if the rendezvous happened.
    pub held_ns: Option<u64>,
}

/// The live-patch engine.
pub struct Engine<'i> {
    image: Image<'i>,
    keys: &'i [TrustedKey],
    payloads: Vec<Loaded>,
    /// Indices into `payloads`, bottom first.
    applied: Vec<usize>,
    pending: Option<Work>,
    version: u32,
}

impl fmt::Debug for Engine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("payloads", &self.payloads.len())
            .field("applied", &self.applied)
            .field("version", &self.version)
            .finish()
    }
}

/// A summary for LIST.
#[derive(Debug, Clone, Copy)]
pub struct ListEntry<'a> {
    pub name: &'a str,
    pub state: State,
    pub rc: i32,
    pub metadata: &'a [u8],
}

impl<'i> Engine<'i> {
    /// An engine for the running `image`, trusting `keys` (compiled into the image).
    pub fn new(image: Image<'i>, keys: &'i [TrustedKey]) -> Self {
        Engine {
            image,
            keys,
            payloads: Vec::new(),
            applied: Vec::new(),
            pending: None,
            version: 1,
        }
    }

    /// Incremented by every upload and unload (Xen's LIST `version`).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The loaded payloads, in upload order.
    pub fn payloads(&self) -> &[Loaded] {
        &self.payloads
    }

    /// A payload by name.
    pub fn get(&self, name: &str) -> Option<&Loaded> {
        self.payloads.iter().find(|p| p.name == name)
    }

    /// GET: state and rc of a payload.
    pub fn status(&self, name: &str) -> Result<(State, i32), ActionError> {
        self.get(name)
            .map(|p| (p.state, p.rc))
            .ok_or(ActionError::NoSuchPayload)
    }

    /// LIST: every payload from position `start`.
    pub fn list(&self, start: usize) -> impl Iterator<Item = ListEntry<'_>> + '_ {
        self.payloads.iter().skip(start).map(|p| ListEntry {
            name: &p.name,
            state: p.state,
            rc: p.rc,
            metadata: &p.metadata,
        })
    }

    /// Names of the applied payloads, bottom first.
    pub fn applied(&self) -> impl Iterator<Item = &str> + '_ {
        self.applied.iter().map(|&i| self.payloads[i].name.as_str())
    }

    /// Whether an action is pending.
    pub fn pending(&self) -> bool {
        self.pending.is_some()
    }

    /// UPLOAD: verify `file` completely and keep it as `name` in state
    /// CHECKED. On failure nothing is kept and a log line names the check.
    pub fn upload(
        &mut self,
        p: &mut dyn Platform,
        name: &str,
        file: &[u8],
    ) -> Result<(), UploadError> {
        match self.upload_inner(p, name, file) {
            Ok(()) => {
                let l = self.payloads.last().expect("just pushed");
                p.log(
                    Level::Info,
                    format_args!(
                        "{name}: uploaded ({} bytes, build-id {}, signed by key {}, {} function(s)): CHECKED",
                        file.len(),
                        Hex(&l.build_id),
                        l.key_id,
                        l.sites.len()
                    ),
                );
                Ok(())
            }
            Err(e) => {
                let shown = if livepatch_format::valid_name(name.as_bytes()) {
                    name
                } else {
                    "<invalid name>"
                };
                p.log(
                    Level::Error,
                    format_args!("{shown}: upload refused, {} check failed: {e}", e.check()),
                );
                Err(e)
            }
        }
    }

    fn upload_inner(
        &mut self,
        plat: &mut dyn Platform,
        name: &str,
        file: &[u8],
    ) -> Result<(), UploadError> {
        if !livepatch_format::valid_name(name.as_bytes()) {
            return Err(UploadError::BadName);
        }
        if self.get(name).is_some() {
            return Err(UploadError::NameExists);
        }
        if file.len() > MAX_PAYLOAD_SIZE {
            return Err(UploadError::TooLarge {
                size: file.len(),
                max: MAX_PAYLOAD_SIZE,
            });
        }
        let (elf, key_id) = sig::verify(file, self.keys).map_err(UploadError::Signature)?;
        let payload = Payload::parse(elf).map_err(UploadError::Format)?;
        self.check(&payload, plat)?;
        let (sites, hooks, alloc, request) = self.load(&payload, plat)?;
        self.payloads.push(Loaded {
            name: name.to_string(),
            build_id: payload.build_id.to_vec(),
            depends: payload.depends.map(|d| d.to_vec()),
            key_id,
            state: State::Checked,
            rc: 0,
            sites,
            hooks,
            metadata: payload.metadata.to_vec(),
            alloc,
            request,
            reverted: false,
            has_rw: payload
                .loaded
                .iter()
                .any(|l| l.1 == livepatch_format::payload::Region::ReadWrite),
        });
        self.version = self.version.wrapping_add(1);
        Ok(())
    }

    /// Checks that need no memory: build-ids, dependencies, symbols, functions.
    fn check(&self, pl: &Payload<'_>, plat: &dyn Platform) -> Result<(), UploadError> {
        if pl.xen_depends != self.image.build_id {
            return Err(UploadError::WrongHypervisor {
                found: pl.xen_depends.to_vec(),
            });
        }
        if let Some(o) = self.payloads.iter().find(|o| o.build_id == pl.build_id) {
            return Err(UploadError::DuplicateBuildId {
                other: o.name.clone(),
            });
        }
        if let Some(d) = pl.depends
            && d != self.image.build_id
            && !self.payloads.iter().any(|o| o.build_id == d)
        {
            return Err(UploadError::MissingDependency {
                build_id: d.to_vec(),
            });
        }
        let t = &self.image.symbols;
        for s in pl.imports() {
            load::resolve(t, s.name, s.value)?;
        }
        let mut seen: Vec<u64> = Vec::with_capacity(pl.funcs.len());
        for f in &pl.funcs {
            let old = load::resolve(t, f.old.name, f.old.value)?;
            if seen.contains(&old.addr) {
                return Err(UploadError::DuplicateFunction(old.name.to_string()));
            }
            seen.push(old.addr);
            let name = || old.name.to_string();
            if !old.is_func() {
                return Err(UploadError::NotAFunction(name()));
            }
            let end = old.addr.checked_add(old.size);
            if old.addr < self.image.text.0 || end.is_none_or(|e| e > self.image.text.1) {
                return Err(UploadError::NotInText(name()));
            }
            if old.size != f.old_size as u64 {
                return Err(UploadError::OldSizeMismatch {
                    name: name(),
                    table: old.size,
                    payload: f.old_size,
                });
            }
            let mut head = [0u8; insn::MAX_PATCH + 1];
            let n = (old.size as usize).min(head.len());
            self.pristine(plat, old.addr, &mut head[..n]);
            let skip = insn::endbr_skip(&head[..n]) as u64;
            let need = skip
                + match f.new {
                    Some(_) => insn::JMP_LEN as u64,
                    None => f.new_size as u64,
                };
            if old.size < need {
                return Err(UploadError::FunctionTooSmall {
                    name: name(),
                    size: old.size,
                    need,
                });
            }
            if head[..f.expect.len()] != *f.expect {
                return Err(UploadError::OldBytesMismatch { name: name() });
            }
        }
        Ok(())
    }

    /// The image's original bytes at `addr` (the text as it is, with every
    /// applied patch's saved bytes put back).
    fn pristine(&self, plat: &dyn Platform, addr: u64, buf: &mut [u8]) {
        plat.read_text(addr, buf);
        self.unpatch_view(addr, buf);
    }

    fn unpatch_view(&self, addr: u64, buf: &mut [u8]) {
        let end = addr + buf.len() as u64;
        // Top first, so the lowest payload's saved bytes (the originals) win.
        for &i in self.applied.iter().rev() {
            for s in &self.payloads[i].sites {
                let (a, b) = (s.at.max(addr), (s.at + s.len as u64).min(end));
                for x in a..b {
                    buf[(x - addr) as usize] = s.saved[(x - s.at) as usize];
                }
            }
        }
    }

    #[allow(clippy::type_complexity)]
    fn load(
        &self,
        pl: &Payload<'_>,
        plat: &mut dyn Platform,
    ) -> Result<
        (
            Vec<PatchSite>,
            Vec<(HookKind, u64)>,
            Allocation,
            AllocRequest,
        ),
        UploadError,
    > {
        let lay = load::layout(pl)?;
        let at = plat.alloc(&lay.request).ok_or(UploadError::OutOfMemory)?;
        let r = (|| {
            let addrs = load::symbol_addresses(pl, &self.image.symbols, &lay, &at)?;
            let images = load::relocate(pl, &lay, &at, &addrs)?;
            let mut sites = Vec::with_capacity(pl.funcs.len());
            for f in &pl.funcs {
                let old = load::resolve(&self.image.symbols, f.old.name, f.old.value)?;
                let mut head = [0u8; 4];
                let n = (old.size as usize).min(4);
                self.pristine(plat, old.addr, &mut head[..n]);
                let at_ = old.addr + insn::endbr_skip(&head[..n]) as u64;
                let mut bytes = [0u8; insn::MAX_PATCH];
                let (len, new_addr) = match f.new {
                    Some(s) => {
                        let new_addr = addrs[s.index];
                        let j = insn::jmp(at_, new_addr).ok_or_else(|| {
                            UploadError::JumpOutOfRange {
                                name: old.name.to_string(),
                            }
                        })?;
                        bytes[..insn::JMP_LEN].copy_from_slice(&j);
                        (insn::JMP_LEN, new_addr)
                    }
                    None => {
                        let n = f.new_size as usize;
                        bytes = insn::nops(n);
                        (n, 0)
                    }
                };
                sites.push(PatchSite {
                    name: old.name.to_string(),
                    old_addr: old.addr,
                    at: at_,
                    new_addr,
                    bytes,
                    len,
                    saved: [0; insn::MAX_PATCH],
                    expect: f.expect.to_vec(),
                });
            }
            let hooks = pl.hooks.iter().map(|(k, s)| (*k, addrs[s.index])).collect();
            Ok((sites, hooks, images))
        })();
        match r {
            Ok((sites, hooks, images)) => {
                plat.install(&at, &images.text, &images.ro, &images.rw);
                Ok((sites, hooks, at, lay.request))
            }
            Err(e) => {
                plat.free(&at);
                Err(e)
            }
        }
    }

    /// ACTION: validate and schedule `action` on payload `name` (UNLOAD
    /// happens at once). The payload's rc is `-EAGAIN` until
    /// [`Engine::run_pending`] has run. `timeout_ns` 0 means 30 ms.
    pub fn action(
        &mut self,
        p: &mut dyn Platform,
        name: &str,
        action: u32,
        timeout_ns: u64,
        flags: u32,
    ) -> Result<(), ActionError> {
        let r = self.action_inner(p, name, action, timeout_ns, flags);
        if let Err(e) = &r {
            let what = Action::from_u32(action).map_or("ACTION", |a| a.name());
            let shown = if livepatch_format::valid_name(name.as_bytes()) {
                name
            } else {
                "<invalid name>"
            };
            p.log(Level::Error, format_args!("{shown}: {what} refused: {e}"));
        }
        r
    }

    fn action_inner(
        &mut self,
        plat: &mut dyn Platform,
        name: &str,
        action: u32,
        timeout_ns: u64,
        flags: u32,
    ) -> Result<(), ActionError> {
        let index = self
            .payloads
            .iter()
            .position(|p| p.name == name)
            .ok_or(ActionError::NoSuchPayload)?;
        let action = Action::from_u32(action).ok_or(ActionError::BadCommand)?;
        if flags & !APPLY_NODEPS != 0 || (flags != 0 && action != Action::Apply) {
            return Err(ActionError::BadCommand);
        }
        if self.pending.is_some() {
            return Err(ActionError::Busy);
        }
        let pl = &self.payloads[index];
        match action {
            Action::Unload => {
                if pl.state == State::Applied {
                    return Err(ActionError::Applied);
                }
                let pl = self.payloads.remove(index);
                plat.free(&pl.alloc);
                for a in &mut self.applied {
                    if *a > index {
                        *a -= 1;
                    }
                }
                self.version = self.version.wrapping_add(1);
                plat.log(
                    Level::Info,
                    format_args!(
                        "{}: unloaded (build-id {}, key {})",
                        pl.name,
                        Hex(&pl.build_id),
                        pl.key_id
                    ),
                );
                return Ok(());
            }
            Action::Revert => {
                if pl.state != State::Applied {
                    return Err(ActionError::WrongState(pl.state));
                }
                // An applied payload is always on the stack.
                let Some(&top) = self.applied.last() else {
                    return Err(ActionError::WrongState(State::Checked));
                };
                if top != index {
                    return Err(ActionError::NotTop {
                        top: self.payloads[top].name.clone(),
                    });
                }
                self.pre_hook(plat, index, HookKind::PreRevert)?;
            }
            Action::Apply => {
                if pl.state != State::Checked {
                    return Err(ActionError::WrongState(pl.state));
                }
                if pl.reverted && pl.has_rw {
                    return Err(ActionError::MustReload);
                }
                if flags & APPLY_NODEPS == 0 && !self.dependency_ok(index) {
                    return Err(ActionError::Dependency);
                }
                self.check_expectations(plat, index)?;
                self.pre_hook(plat, index, HookKind::PreApply)?;
            }
            Action::Replace => {
                if pl.state != State::Checked {
                    return Err(ActionError::WrongState(pl.state));
                }
                if pl.reverted && pl.has_rw {
                    return Err(ActionError::MustReload);
                }
                if pl
                    .depends
                    .as_deref()
                    .is_some_and(|d| d != self.image.build_id)
                {
                    return Err(ActionError::ReplaceNotBase);
                }
                if pl.vetoing() || self.applied.iter().any(|&i| self.payloads[i].vetoing()) {
                    return Err(ActionError::VetoingHooks);
                }
                self.check_expectations(plat, index)?;
            }
        }
        self.payloads[index].rc = -errno::EAGAIN;
        self.pending = Some(Work {
            index,
            action,
            timeout_ns: if timeout_ns == 0 {
                DEFAULT_TIMEOUT_NS
            } else {
                timeout_ns
            },
        });
        Ok(())
    }

    fn dependency_ok(&self, index: usize) -> bool {
        let dep = self.payloads[index].depends.as_deref();
        match self.applied.last() {
            Some(&top) => dep == Some(&self.payloads[top].build_id[..]),
            None => dep.is_none_or(|d| d == self.image.build_id),
        }
    }

    fn check_expectations(&self, plat: &dyn Platform, index: usize) -> Result<(), ActionError> {
        for s in &self.payloads[index].sites {
            let mut buf = [0u8; insn::MAX_PATCH];
            let n = s.expect.len();
            self.pristine(plat, s.old_addr, &mut buf[..n]);
            if buf[..n] != *s.expect {
                return Err(ActionError::OldBytesMismatch(s.name.clone()));
            }
        }
        Ok(())
    }

    fn pre_hook(
        &mut self,
        plat: &mut dyn Platform,
        index: usize,
        kind: HookKind,
    ) -> Result<(), ActionError> {
        let hooks: Vec<u64> = self.payloads[index]
            .hooks
            .iter()
            .filter(|h| h.0 == kind)
            .map(|h| h.1)
            .collect();
        for h in hooks {
            // SAFETY: `h` is this payload's hook: the address `load` computed at
            // upload for a function defined in the payload's text, installed
            // with it; the payload stays installed while it is listed.
            let rc = unsafe { plat.call_hook(h) };
            if rc != 0 {
                self.payloads[index].rc = if rc < 0 { rc } else { -errno::EINVAL };
                return Err(ActionError::Vetoed(rc));
            }
        }
        Ok(())
    }

    /// Run the pending action, if any: the hypervisor calls this from its
    /// safe point (where this CPU's stack holds no patchable frame). Holds
    /// every CPU through [`Platform::quiesce`], writes the patch sites, runs
    /// load/unload hooks inside and post hooks after; logs the result and
    /// the hold time. A timeout leaves every state unchanged (rc `-EBUSY`).
    pub fn run_pending(&mut self, plat: &mut dyn Platform) -> Option<Outcome> {
        let w = self.pending.take()?;
        // Which payloads the rendezvous touches: REPLACE reverts the whole
        // applied stack (top first), then applies.
        let reverts: Vec<usize> = match w.action {
            Action::Revert => alloc::vec![w.index],
            Action::Replace => self.applied.iter().rev().copied().collect(),
            _ => Vec::new(),
        };
        let apply = matches!(w.action, Action::Apply | Action::Replace);
        let payloads = &mut self.payloads;
        let result = plat.quiesce(w.timeout_ns, &mut |pt: &mut dyn Patcher| {
            for &i in &reverts {
                let p = &mut payloads[i];
                for s in p.sites.iter().rev() {
                    // SAFETY: a site `load` resolved in an image-text function long
                    // enough for the patch (checked at upload); the bytes were saved
                    // there at apply (reverts run top first: the bytes below it).
                    unsafe { pt.write_text(s.at, &s.saved[..s.len]) };
                }
                for h in p.hooks.iter().filter(|h| h.0 == HookKind::Unload) {
                    // SAFETY: a hook of this installed payload (see `pre_hook`).
                    unsafe { pt.call_hook(h.1) };
                }
            }
            if apply {
                let p = &mut payloads[w.index];
                for s in p.sites.iter_mut() {
                    let mut cur = [0u8; insn::MAX_PATCH];
                    pt.read_text(s.at, &mut cur[..s.len]);
                    s.saved = cur;
                    // SAFETY: a site `load` resolved in a function of the
                    // image's text (checked at upload as above), and the jump
                    // or NOPs it encoded for it.
                    unsafe { pt.write_text(s.at, &s.bytes[..s.len]) };
                }
                for h in p.hooks.iter().filter(|h| h.0 == HookKind::Load) {
                    // SAFETY: a hook of this installed payload (see `pre_hook`).
                    unsafe { pt.call_hook(h.1) };
                }
            }
        });
        let name = self.payloads[w.index].name.clone();
        let outcome = match result {
            Ok(held) => {
                for &i in &reverts {
                    let p = &mut self.payloads[i];
                    p.state = State::Checked;
                    p.reverted = true;
                    p.rc = 0;
                }
                self.applied.retain(|i| !reverts.contains(i));
                if apply {
                    self.payloads[w.index].state = State::Applied;
                    self.applied.push(w.index);
                }
                self.payloads[w.index].rc = 0;
                let post = match w.action {
                    Action::Apply => Some(HookKind::PostApply),
                    Action::Revert => Some(HookKind::PostRevert),
                    _ => None,
                };
                if let Some(k) = post {
                    let hs: Vec<u64> = self.payloads[w.index]
                        .hooks
                        .iter()
                        .filter(|h| h.0 == k)
                        .map(|h| h.1)
                        .collect();
                    for h in hs {
                        // SAFETY: a hook of this installed payload (see `pre_hook`).
                        unsafe { plat.call_hook(h) };
                    }
                }
                let p = &self.payloads[w.index];
                plat.log(
                    Level::Info,
                    format_args!(
                        "{name}: {} completed (build-id {}, key {}): {}; all CPUs held {}.{:03} us",
                        w.action.name(),
                        Hex(&p.build_id),
                        p.key_id,
                        p.state.name(),
                        held / 1000,
                        held % 1000
                    ),
                );
                Outcome {
                    name,
                    action: w.action,
                    rc: 0,
                    held_ns: Some(held),
                }
            }
            Err(QuiesceError::Timeout { arrived, cpus }) => {
                let p = &mut self.payloads[w.index];
                p.rc = -errno::EBUSY;
                plat.log(
                    Level::Error,
                    format_args!(
                        "{name}: {} failed (build-id {}, key {}): timed out after {} ns waiting for CPUs ({arrived}/{cpus} arrived); nothing changed",
                        w.action.name(),
                        Hex(&p.build_id),
                        p.key_id,
                        w.timeout_ns
                    ),
                );
                Outcome {
                    name,
                    action: w.action,
                    rc: -errno::EBUSY,
                    held_ns: None,
                }
            }
        };
        Some(outcome)
    }
}
