//! The XSM gate: the one place where hypercalls are checked.
//!
//! Every (hypercall, sub-operation) of the ABI is an *operation type* (a
//! zero-sized type implementing [`Op`]), declared once in [`table`] with its
//! checks: subject, object, class and permissions, and the default action of
//! the no-policy module (`flask=disabled`). The declaration generates both the
//! check code and the row of [`table::TABLE`] that tests enumerate against
//! the ABI, so the two cannot disagree.
//!
//! A handler takes a [`Permit<O>`] for its operation type. Only this module
//! can mint one, and only from the outcome of the operation's checks: in
//! FLASK mode from xsm's [`Granted<C>`](xsm::Granted) values (which only the
//! security server can create), in `flask=disabled` mode from the default
//! action. Permissions are typed by class (`xsm::Perms<C>`), and the class of
//! each check is inferred from its permission constants, so checking a
//! permission against the wrong class does not compile:
//!
//! ```compile_fail,E0425
//! // domain2:set_vnumainfo is not a permission of class domain.
//! let _ = xsm::perms::domain::SET_VNUMAINFO;
//! ```
//!
//! and a handler cannot be reached with another operation's permit:
//!
//! ```compile_fail,E0308
//! use hvcore::gate::{Permit, table::{DomctlPauseDomain, DomctlDestroyDomain}};
//! fn destroy(_: Permit<DomctlDestroyDomain>) {}
//! fn pause(p: Permit<DomctlPauseDomain>) { destroy(p) }
//! ```
//!
//! nor can code outside the gate make a permit:
//!
//! ```compile_fail,E0451
//! use hvcore::gate::{Permit, table::DomctlPauseDomain};
//! let p: Permit<DomctlPauseDomain> = Permit { target: None, new_sid: None, _op: core::marker::PhantomData };
//! ```
//!
//! The check runs on a [`Request`] the dispatcher builds before taking any
//! lock shared between domains: the caller's and the target's labels come
//! from lock-free snapshots of the domain table ([`DomSnap`]). The handler
//! later resolves the permit's target and refuses if that domain was
//! destroyed or relabelled in between (so it acts on exactly what was checked).

pub mod table;

use crate::domain::DomSnap;
use core::marker::PhantomData;
use warden_abi::errno;
use xsm::{AuditData, Class, Flask, Granted, Perms, Sid, initial_sid};

/// What the no-policy module (`flask=disabled`) decides, as Xen's dummy module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dummy {
    /// Always allowed.
    Hook,
    /// The caller acting on itself, or the control domain.
    Target,
    /// The xenstore domain or the control domain (Warden has no xenstore domain yet).
    XsPriv,
    /// The target's device model or the control domain (no device models yet).
    DmPriv,
    /// The control domain only.
    Priv,
    /// No security server: the operation does not exist (-ENOSYS), as xsm_op without FLASK.
    NoXsm,
}

/// Whose label is the source of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// The calling domain.
    Caller,
    /// The target domain (its own label).
    Target,
    /// An event channel's label ([`ChanSids::chan`]).
    Chan,
    /// The label of the remote end of an event channel being bound
    /// ([`ChanSids::peer_chan`]).
    PeerChan,
}

/// What a check is against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Object {
    /// The hypervisor (initial SID `xen`).
    Xen,
    /// Xen's `dom_xen` pseudo-domain (initial SID `domxen`): the object of
    /// getdomaininfolist's first check.
    DomXen,
    /// The security server (initial SID `security`).
    Security,
    /// The target domain: its label, or the caller's `_self` label when the
    /// caller targets itself (Xen's `domain_target_sid`).
    Target,
    /// The target domain's own label (never the `_self` label).
    TargetOwn,
    /// The caller's `_self` label (operations a domain can only do to itself).
    CallerSelf,
    /// A label given as an argument (createdomain's ssidref, a relabel's new SID).
    NewSid,
    /// The caller's own label, as the object of a check whose subject is
    /// the target (grant copy from another domain into the caller: Xen's
    /// `domain_target_sid(source, dest)` with dest the caller).
    Caller,
    /// An event channel's label ([`ChanSids::chan`]).
    Chan,
    /// The domain an event channel binds to, as its owner sees it
    /// ([`ChanSids::peer`]: Xen's `domain_target_sid(owner, remote)`).
    Peer,
    /// The local domain as the remote end sees it ([`ChanSids::local`]).
    Local,
}

/// The labels an event-channel check refers to (Xen 4.17's
/// `flask_evtchn_*` hooks), computed by the handler before the check.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChanSids {
    /// The channel's label: for a new channel
    /// `security_transition_sid(owner, peer, event)`, else the label it got.
    pub chan: u32,
    /// The remote domain's label as the owner sees it (`_self` if the same domain).
    pub peer: u32,
    /// The remote channel's label (bind_interdomain).
    pub peer_chan: u32,
    /// The local domain's label as the remote domain sees it (bind_interdomain).
    pub local: u32,
}

/// One check of an operation, as the table describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckDesc {
    pub subject: Subject,
    pub object: Object,
    /// Class name (from the permission type).
    pub class: &'static str,
    /// Class value.
    pub class_id: u32,
    /// Permission bits of the class.
    pub perms: u32,
}

/// One row of the table: an operation and its checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row {
    /// The operation type's name.
    pub name: &'static str,
    pub hypercall: u32,
    pub subop: u32,
    /// Which form of the sub-operation this row covers, when its arguments
    /// select different checks (`""` when there is one form).
    pub variant: &'static str,
    pub dummy: Dummy,
    pub checks: &'static [CheckDesc],
}

impl Row {
    /// Permission names of check `i`.
    pub fn perm_names(&self, i: usize) -> alloc::vec::Vec<&'static str> {
        let c = &self.checks[i];
        let names = xsm::ClassId::from_raw(c.class_id)
            .map(|id| id.perm_names())
            .unwrap_or(&[]);
        (0..32)
            .filter(|b| c.perms & (1 << b) != 0)
            .map(|b| names.get(b).copied().unwrap_or("?"))
            .collect()
    }
}

/// An operation type (generated by [`table`]).
pub trait Op: Sized + 'static {
    /// Its row.
    const ROW: Row;
    /// Its position in [`table::TABLE`].
    const INDEX: usize;
    /// Whether its decision depends on the caller's label alone (every
    /// check is the caller's against the hypervisor, the security server or
    /// itself), so a quiet grant can be kept in the caller's
    /// [`DecisionCache`].
    const CACHEABLE: bool = caller_only(Self::ROW.checks);
    #[doc(hidden)]
    fn flask(ctx: &Ctx<'_>) -> Result<(Permit<Self>, bool), i32>;
}

/// True when every check's subject is the caller and its object is fixed
/// for a given caller label.
const fn caller_only(checks: &[CheckDesc]) -> bool {
    let mut i = 0;
    while i < checks.len() {
        let c = &checks[i];
        if !matches!(c.subject, Subject::Caller)
            || !matches!(
                c.object,
                Object::Xen | Object::DomXen | Object::Security | Object::CallerSelf
            )
        {
            return false;
        }
        i += 1;
    }
    true
}

/// A vCPU's cache of quiet grants (see [`xsm::Granted::quiet`]), one slot
/// per operation of the table: the slot holds the security server's cache
/// generation, the caller's SID and the caller's `_self` SID for which the
/// operation's checks last passed silently. Only operations whose decision
/// depends on nothing but the caller's labels use it ([`Op::CACHEABLE`]). A
/// policy load, a boolean commit or a SID remapping changes the generation,
/// a relabel changes the SID, the recomputation of `_self` labels after a
/// load or a commit changes the `_self` SID, and each makes every slot
/// stale: a grant computed during a policy load with the `_self` label of
/// the previous policy is never reused for the new one. So the cache never
/// answers differently from the AVC behind it. Denials, auditallow grants
/// and permissive grants are never cached (they must be audited each
/// time). Only the vCPU's own hypercalls (serialised by its hardware lock)
/// read and write it.
pub struct DecisionCache {
    slots: [CacheSlot; table::TABLE.len()],
}

struct CacheSlot {
    /// (generation, SID), see [`DecisionCache::key`].
    key: core::sync::atomic::AtomicU64,
    self_sid: core::sync::atomic::AtomicU32,
}

/// A slot value no key equals (no valid SID is u32::MAX).
const NO_KEY: u64 = u64::MAX;

impl DecisionCache {
    pub const fn new() -> DecisionCache {
        DecisionCache {
            slots: [const {
                CacheSlot {
                    key: core::sync::atomic::AtomicU64::new(NO_KEY),
                    self_sid: core::sync::atomic::AtomicU32::new(0),
                }
            }; table::TABLE.len()],
        }
    }

    #[inline(always)]
    fn key(generation: u32, sid: u32) -> u64 {
        (u64::from(generation) << 32) | u64::from(sid)
    }
}

impl Default for DecisionCache {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for DecisionCache {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("DecisionCache")
    }
}

/// Proof that operation `O`'s checks passed, for the labels in the request.
/// Only the gate constructs it.
#[derive(Debug)]
pub struct Permit<O: Op> {
    target: Option<DomSnap>,
    new_sid: Option<u32>,
    _op: PhantomData<fn() -> O>,
}

impl<O: Op> Permit<O> {
    /// The target domain as it was checked.
    pub fn target(&self) -> Option<&DomSnap> {
        self.target.as_ref()
    }
    /// The label argument that was checked.
    pub fn new_sid(&self) -> Option<u32> {
        self.new_sid
    }
}

/// Anything that proves checks passed: `Granted<C>` values, tuples of them.
/// Sealed: implemented here only.
pub trait Proof: sealed::Sealed {
    /// Every grant in it was quiet ([`xsm::Granted::quiet`]).
    fn quiet(&self) -> bool;
}
mod sealed {
    pub trait Sealed {}
}
impl<C: Class> sealed::Sealed for Granted<C> {}
impl<C: Class> Proof for Granted<C> {
    #[inline(always)]
    fn quiet(&self) -> bool {
        Granted::quiet(self)
    }
}
macro_rules! tuple_proof {
    ($($t:ident),+) => {
        impl<$($t: Proof),+> sealed::Sealed for ($($t,)+) {}
        impl<$($t: Proof),+> Proof for ($($t,)+) {
            #[inline(always)]
            #[allow(non_snake_case)]
            fn quiet(&self) -> bool {
                let ($($t,)+) = self;
                true $( && $t.quiet() )+
            }
        }
    };
}
tuple_proof!(A);
tuple_proof!(A, B);
tuple_proof!(A, B, C);

/// Mint a permit from the proofs of its checks (FLASK mode), with whether
/// all of them were quiet grants.
#[inline(always)]
fn mint<O: Op, P: Proof>(ctx: &Ctx<'_>, proof: P) -> (Permit<O>, bool) {
    (
        Permit {
            target: ctx.req.target,
            new_sid: ctx.req.new_sid,
            _op: PhantomData,
        },
        proof.quiet(),
    )
}

/// Everything a check may refer to, resolved before the check.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The calling domain.
    pub caller: &'a DomSnap,
    /// The target domain, for operations on a domain.
    pub target: Option<DomSnap>,
    /// A label argument (createdomain's ssidref, relabel's new SID).
    pub new_sid: Option<u32>,
    /// Event-channel labels, for the `event` class checks.
    pub chan: Option<ChanSids>,
    /// The CPU the check runs on (selects the AVC statistics slot).
    pub cpu: u32,
    /// The calling vCPU's cache of quiet grants, if it has one.
    pub cache: Option<&'a DecisionCache>,
}

/// The context of a FLASK check.
pub struct Ctx<'a> {
    flask: &'a Flask,
    req: &'a Request<'a>,
}

// The check path is inlined into each operation's generated code, where the
// subject and object are constants: the hit path is then the AVC lookup and
// little else (BENCHMARKS.md, "Hypercalls").
impl Ctx<'_> {
    #[inline(always)]
    fn sid(&self, who: Result<u32, i32>) -> Result<Sid, i32> {
        who.map(Sid::from_raw)
    }

    #[inline(always)]
    fn subject(&self, s: Subject) -> Result<Sid, i32> {
        self.sid(match s {
            Subject::Caller => Ok(self.req.caller.sid),
            Subject::Target => self.req.target.map(|t| t.sid).ok_or(errno::ESRCH),
            Subject::Chan => self.req.chan.map(|c| c.chan).ok_or(errno::EINVAL),
            Subject::PeerChan => self.req.chan.map(|c| c.peer_chan).ok_or(errno::EINVAL),
        })
    }

    #[inline(always)]
    fn object(&self, o: Object) -> Result<Sid, i32> {
        let r = self.req;
        match o {
            Object::Xen => Ok(initial_sid::XEN),
            Object::DomXen => Ok(initial_sid::DOMXEN),
            Object::Security => Ok(initial_sid::SECURITY),
            Object::Target => {
                let t = r.target.ok_or(errno::ESRCH)?;
                Ok(Sid::from_raw(if t.id == r.caller.id {
                    r.caller.self_sid
                } else {
                    t.sid
                }))
            }
            Object::TargetOwn => r.target.map(|t| Sid::from_raw(t.sid)).ok_or(errno::ESRCH),
            Object::CallerSelf => Ok(Sid::from_raw(r.caller.self_sid)),
            Object::NewSid => r.new_sid.map(Sid::from_raw).ok_or(errno::EINVAL),
            Object::Caller => {
                let t = r.target.ok_or(errno::ESRCH)?;
                Ok(Sid::from_raw(if t.id == r.caller.id {
                    r.caller.self_sid
                } else {
                    r.caller.sid
                }))
            }
            Object::Chan => r.chan.map(|c| Sid::from_raw(c.chan)).ok_or(errno::EINVAL),
            Object::Peer => r.chan.map(|c| Sid::from_raw(c.peer)).ok_or(errno::EINVAL),
            Object::Local => r.chan.map(|c| Sid::from_raw(c.local)).ok_or(errno::EINVAL),
        }
    }

    #[inline(always)]
    fn audit_data(&self) -> AuditData {
        match self.req.target {
            Some(t) => AuditData {
                source: Some(self.req.caller.id),
                target: Some(t.id),
                ..Default::default()
            },
            None => AuditData {
                current: Some(self.req.caller.id),
                ..Default::default()
            },
        }
    }

    /// One check: `perms` (of the class their type names) for (subject, object).
    #[inline(always)]
    fn has_perm<C: Class>(
        &self,
        s: Subject,
        o: Object,
        perms: Perms<C>,
    ) -> Result<Granted<C>, i32> {
        let ssid = self.subject(s)?;
        let tsid = self.object(o)?;
        self.flask
            .has_perm(self.req.cpu as usize, ssid, tsid, perms, &self.audit_data())
            .map_err(|d| d.errno())
    }
}

/// Which security module decides.
#[derive(Debug, Clone, Copy)]
pub enum Module {
    /// `flask=disabled`: Xen's dummy module (default actions).
    Dummy,
    /// FLASK (enforcing, permissive, or late before a policy is loaded).
    Flask(&'static Flask),
}

/// The gate.
#[derive(Debug, Clone, Copy)]
pub struct Gate {
    module: Module,
}

impl Gate {
    pub fn new(module: Module) -> Gate {
        Gate { module }
    }

    /// The security server, if FLASK is in use.
    pub fn flask(&self) -> Option<&'static Flask> {
        match self.module {
            Module::Flask(f) => Some(f),
            Module::Dummy => None,
        }
    }

    /// Run operation `O`'s checks for `req`. Err is the errno to return:
    /// EACCES for a FLASK denial (EINVAL for an invalid SID), EPERM for a
    /// default-action refusal, ENOSYS for xsm_op without FLASK.
    #[inline]
    pub fn check<O: Op>(&self, req: &Request<'_>) -> Result<Permit<O>, i32> {
        match self.module {
            Module::Flask(flask) => {
                let cached = match req.cache {
                    Some(c) if O::CACHEABLE => Some((
                        &c.slots[O::INDEX],
                        DecisionCache::key(flask.cache_generation(), req.caller.sid),
                    )),
                    _ => None,
                };
                if let Some((slot, key)) = cached
                    && slot.key.load(core::sync::atomic::Ordering::Relaxed) == key
                    && slot.self_sid.load(core::sync::atomic::Ordering::Relaxed)
                        == req.caller.self_sid
                {
                    flask.note_cached_hit(req.cpu as usize);
                    return Ok(Permit {
                        target: req.target,
                        new_sid: req.new_sid,
                        _op: PhantomData,
                    });
                }
                // The generation was read before the check: if it moves
                // during the check, the key stored below is already stale.
                let (permit, quiet) = O::flask(&Ctx { flask, req })?;
                if let Some((slot, key)) = cached
                    && quiet
                {
                    slot.self_sid
                        .store(req.caller.self_sid, core::sync::atomic::Ordering::Relaxed);
                    slot.key.store(key, core::sync::atomic::Ordering::Relaxed);
                }
                Ok(permit)
            }
            Module::Dummy => {
                dummy(O::ROW.dummy, req)?;
                Ok(Permit {
                    target: req.target,
                    new_sid: req.new_sid,
                    _op: PhantomData,
                })
            }
        }
    }
}

/// Xen's `xsm_default_action`.
fn dummy(action: Dummy, req: &Request<'_>) -> Result<(), i32> {
    let priv_ok = || {
        if req.caller.privileged {
            Ok(())
        } else {
            Err(errno::EPERM)
        }
    };
    match action {
        Dummy::Hook => Ok(()),
        Dummy::Target => match req.target {
            Some(t) if t.id != req.caller.id => priv_ok(),
            _ => Ok(()),
        },
        Dummy::XsPriv | Dummy::DmPriv | Dummy::Priv => priv_ok(),
        Dummy::NoXsm => Err(errno::ENOSYS),
    }
}

/// The class name of a permission set's type (for table rows).
pub const fn class_name<C: Class>(_: Perms<C>) -> &'static str {
    C::NAME
}

/// The class value of a permission set's type (for table rows).
pub const fn class_id<C: Class>(_: Perms<C>) -> u32 {
    C::ID.raw()
}
