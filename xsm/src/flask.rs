//! The FLASK security server as the hypervisor uses it: one [`Flask`] shared
//! by all CPUs (e.g. in a `spin::Once` global), holding the current policy
//! generation, the SID table, the AVC, the enforcing mode and the audit state.
//!
//! * A cache hit ([`Flask::has_perm`]) executes no locked instruction and
//!   writes no shared cache line: a generation load, one bucket walk over a
//!   seqlocked, type-stable node pool (`avc.rs`), and per-CPU counters.
//! * A miss enters an RCU read section ([`crate::rcu`]), asks the security
//!   server, and inserts the decision under the AVC's spin lock.
//! * Everything a decision depends on (policy, booleans, SID table, object
//!   contexts, mode) is one immutable `Gen` behind one atomic pointer. Load,
//!   boolean commit, mode change and flush build a new generation under the
//!   writer lock, publish it, bump the AVC generation (invalidating every
//!   cached decision at once) and free the old generation after a grace
//!   period. A failed load changes nothing: it is parsed and validated before
//!   the writer lock is even taken.
//! * Writer operations must not be called from the audit sink.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::marker::PhantomData;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, Ordering};

use crate::audit::{AuditData, AuditEvent, AuditRecord, AuditSink, RateLimit};
use crate::avc::{AVC_DEF_CACHE_THRESHOLD, AVC_MAX_NODES, Avc, Decision, Hit};
use crate::definition::{self, DefinitionCheck};
use crate::error::{Error, LoadError, LoadErrorKind};
use crate::policydb::{Context, PolicyDb};
use crate::rcu::{MAX_CPUS, Rcu};
use crate::services::{self, AvDecision, CondState, SidKind};
use crate::sidtab::{SidEntry, SidTab};
use crate::{
    CLASS_NAMES, Class, ClassId, NUM_CLASSES, NUM_INITIAL_SIDS, PERM_NAMES, Perms, Sid, initial_sid,
};

/// The highest policy version this server reads (Xen's FLASK POLICYVERS answer).
pub const POLICYDB_VERSION_MAX: u32 = 30;

/// Proof that a check of permissions `perms` of class `C` passed. Only this
/// crate can make one; the hypervisor's gate demands it to reach a handler.
#[derive(Debug)]
pub struct Granted<C: Class> {
    perms: Perms<C>,
    permissive: bool,
    quiet: bool,
    _c: PhantomData<C>,
}

impl<C: Class> Granted<C> {
    /// The permissions granted.
    pub fn perms(&self) -> Perms<C> {
        self.perms
    }
    /// Granted only because of permissive mode or a permissive type.
    pub fn permissive(&self) -> bool {
        self.permissive
    }
    /// Granted by the policy itself with no audit record (no auditallow for
    /// these permissions, not permissive): the same check gives the same
    /// silent grant until [`Flask::cache_generation`] changes, so a caller
    /// may cache it under that generation (the hypervisor's gate does).
    pub fn quiet(&self) -> bool {
        self.quiet
    }
}

/// A denial (the audit record, if any, went to the sink).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Denied {
    /// The permissions refused (bits of the class).
    pub denied: u32,
    /// The class checked.
    pub class: ClassId,
    /// A SID was not valid (Xen returns -EINVAL instead of -EACCES).
    pub invalid_sid: bool,
}

impl Denied {
    /// Xen's errno for the denial (EACCES, or EINVAL for an invalid SID).
    pub fn errno(&self) -> i32 {
        if self.invalid_sid { 22 } else { 13 }
    }
}

/// check_raw outcome flags (low 32 bits: denied permissions).
const V_PERMISSIVE: u64 = 1 << 32;
const V_INVALID: u64 = 1 << 33;
/// Granted, and an auditallow record was written.
const V_AUDITED: u64 = 1 << 35;
/// Set with V_INVALID so that an invalid SID is a denial even when `requested` is 0.
const V_DENIED_FLAG: u64 = 1 << 34;
const V_DENIED_MASK: u64 = 0xffff_ffff | V_DENIED_FLAG;

/// Per-CPU AVC statistics (AVC_CACHESTATS).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Lookups.
    pub lookups: u64,
    /// Hits.
    pub hits: u64,
    /// Misses.
    pub misses: u64,
    /// Nodes allocated.
    pub allocations: u64,
    /// Nodes evicted.
    pub reclaims: u64,
    /// Nodes freed.
    pub frees: u64,
}

/// AVC hash statistics (AVC_HASHSTATS).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HashStats {
    /// Nodes in the cache.
    pub entries: u32,
    /// Buckets holding at least one node.
    pub buckets_used: u32,
    /// Buckets.
    pub buckets_total: u32,
    /// Longest chain.
    pub max_chain_len: u32,
}

/// A boolean as BOOL queries report it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BoolInfo {
    /// Boolean id (value, from 1).
    pub id: u32,
    /// Name.
    pub name: String,
    /// Committed value.
    pub current: bool,
    /// Pending value (what COMMITBOOLS will apply).
    pub pending: bool,
}

/// Kinds of object contexts (Xen's OCON_* numbering).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OconKind {
    /// Physical IRQ (pirqcon).
    Pirq = 1,
    /// I/O port range (ioportcon).
    Ioport = 2,
    /// Memory frame range (iomemcon).
    Iomem = 3,
    /// PCI device (pcidevicecon).
    Device = 4,
}

#[derive(Clone, Debug, Default)]
struct Ocons {
    pirqs: Vec<(u32, Sid)>,
    ioports: Vec<(u64, u64, Sid)>,
    iomems: Vec<(u64, u64, Sid)>,
    devices: Vec<(u32, Sid)>,
    dtrees: Vec<(String, Sid)>,
}

struct Loaded {
    db: PolicyDb,
    /// Per class: bits the policy lacks and handle_unknown=allow grants.
    unknown_allow: [u32; NUM_CLASSES],
    /// Where each class and permission of Warden's definition is in the policy.
    def: DefinitionCheck,
}

/// One immutable generation of everything a decision depends on.
struct Gen {
    policy: Option<Arc<Loaded>>,
    conds: Arc<CondState>,
    sids: Arc<SidTab>,
    ocons: Arc<Ocons>,
    enforcing: bool,
}

struct Writer {
    pending_bools: Vec<bool>,
}

/// The security server.
pub struct Flask {
    rcu: Rcu,
    current: AtomicPtr<Gen>,
    writer: spin::Mutex<Writer>,
    threshold: AtomicU32,
    avc: Avc,
    /// AVC generation: entries of another generation are ignored.
    cgen: AtomicU32,
    /// Mirror of the current generation's mode, for the lock-free hit path.
    enforcing: AtomicBool,
    serial: AtomicU64,
    rate: spin::Mutex<RateLimit>,
    sink: Option<&'static dyn AuditSink>,
    seqno: AtomicU32,
}

impl core::fmt::Debug for Flask {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Flask").finish_non_exhaustive()
    }
}

// `Flask` is Send + Sync by construction (atomics, spin locks, the RCU scheme).
const _: () = {
    const fn assert_sync_send<T: Sync + Send>() {}
    assert_sync_send::<Flask>();
};

impl Drop for Flask {
    fn drop(&mut self) {
        let g = self.current.swap(core::ptr::null_mut(), Ordering::AcqRel);
        if !g.is_null() {
            // SAFETY: `&mut self`: no reader exists; `g` came from Box::into_raw.
            drop(unsafe { Box::from_raw(g) });
        }
    }
}

fn mask_all(n: usize) -> u32 {
    if n >= 32 { u32::MAX } else { (1u32 << n) - 1 }
}

impl Flask {
    /// A server with no policy loaded (everything is allowed until a load,
    /// as in Xen), enforcing mode set to `enforcing`, audit records to `sink`.
    pub fn new(enforcing: bool, sink: Option<&'static dyn AuditSink>) -> Flask {
        let g = Gen {
            policy: None,
            conds: Arc::new(CondState {
                bools: Vec::new(),
                enabled: Vec::new(),
            }),
            sids: Arc::new(SidTab::new()),
            ocons: Arc::new(Ocons::default()),
            enforcing,
        };
        Flask {
            rcu: Rcu::new(),
            current: AtomicPtr::new(Box::into_raw(Box::new(g))),
            writer: spin::Mutex::new(Writer {
                pending_bools: Vec::new(),
            }),
            threshold: AtomicU32::new(AVC_DEF_CACHE_THRESHOLD),
            avc: Avc::new(),
            cgen: AtomicU32::new(1),
            enforcing: AtomicBool::new(enforcing),
            serial: AtomicU64::new(0),
            rate: spin::Mutex::new(RateLimit::new(64, 1000)),
            sink,
            seqno: AtomicU32::new(0),
        }
    }

    /// Sets the audit rate limit: at most `burst` records per `interval_ms`.
    pub fn set_audit_ratelimit(&self, burst: u32, interval_ms: u64) {
        let mut r = self.rate.lock();
        r.burst = burst;
        r.interval_ms = interval_ms;
    }

    #[inline]
    fn cur<'a>(&'a self, _guard: &'a crate::rcu::ReadGuard<'a>) -> &'a Gen {
        // SAFETY: the pointer is never null while `self` lives (replaced, not
        // cleared, except in Drop) and a replaced generation is freed only after
        // a grace period, which waits for `_guard`'s read section.
        unsafe { &*self.current.load(Ordering::Acquire) }
    }

    /// The current generation for writers (caller holds the writer lock, so it cannot change).
    fn wgen(&self, _w: &Writer) -> &Gen {
        // SAFETY: generations are replaced only under the writer lock, which the
        // caller holds for as long as it uses the reference.
        unsafe { &*self.current.load(Ordering::Acquire) }
    }

    /// Publishes `g`, invalidates the AVC (unless `keep_avc`), and frees the
    /// old generation after a grace period.
    fn swap(&self, _w: &mut Writer, g: Gen, keep_avc: bool) {
        self.enforcing.store(g.enforcing, Ordering::Release);
        let old = self
            .current
            .swap(Box::into_raw(Box::new(g)), Ordering::AcqRel);
        self.seqno.fetch_add(1, Ordering::Relaxed);
        if !keep_avc {
            self.cgen.fetch_add(1, Ordering::AcqRel);
            let n = self.avc.flush();
            let f = &self.rcu.slot(0).stats.frees;
            f.fetch_add(u64::from(n), Ordering::Relaxed);
        }
        self.rcu.synchronize();
        // SAFETY: unpublished above and a grace period has passed; it came from Box::into_raw.
        drop(unsafe { Box::from_raw(old) });
    }

    fn next_gen(g: &Gen) -> Gen {
        Gen {
            policy: g.policy.clone(),
            conds: g.conds.clone(),
            sids: g.sids.clone(),
            ocons: g.ocons.clone(),
            enforcing: g.enforcing,
        }
    }

    // ---------------------------------------------------------------- load

    /// Loads (or reloads) a binary policy. On any error nothing changes.
    pub fn load_policy(&self, image: &[u8]) -> Result<(), Error> {
        let db = PolicyDb::from_bytes(image)?;
        let def = definition::check(&db);
        if def.refused(db.handle_unknown) {
            return Err(Error::Load(LoadError {
                offset: 0,
                kind: LoadErrorKind::ClassMismatch(def.describe()),
            }));
        }
        if !def.missing.is_empty() {
            log::warn!(
                "Flask: policy lacks {} (handle_unknown={})",
                def.missing.join(", "),
                db.handle_unknown.name()
            );
        }
        if !def.moved.is_empty() {
            log::info!(
                "Flask: {} classes/permissions matched by name at another value or bit",
                def.moved.len()
            );
        }
        // Every initial SID of Warden's definition must have a context.
        let mut isid_ctx: Vec<Option<Context>> = alloc::vec![None; NUM_INITIAL_SIDS];
        for (sid, c) in &db.ocontexts.isids {
            match isid_ctx.get_mut(*sid as usize - 1) {
                Some(slot) => *slot = Some(c.clone()),
                None => {
                    return Err(Error::Load(LoadError {
                        offset: 0,
                        kind: LoadErrorKind::BadInitialSid(format!(
                            "initial SID {sid} is not in Warden's definition"
                        )),
                    }));
                }
            }
        }
        let missing: Vec<&str> = isid_ctx
            .iter()
            .enumerate()
            .filter(|(_, c)| c.is_none())
            .map(|(i, _)| crate::INITIAL_SID_NAMES[i])
            .collect();
        if !missing.is_empty() {
            return Err(Error::Load(LoadError {
                offset: 0,
                kind: LoadErrorKind::BadInitialSid(format!(
                    "no context for {}",
                    missing.join(", ")
                )),
            }));
        }
        let mut unknown_allow = [0u32; NUM_CLASSES];
        if db.handle_unknown == crate::HandleUnknown::Allow {
            for (i, u) in unknown_allow.iter_mut().enumerate() {
                let all = mask_all(PERM_NAMES[i].len());
                *u = def.missing_bits.get(i).copied().unwrap_or(all);
            }
        }
        let mut w = self.writer.lock();
        let old = self.wgen(&w);
        // As Xen's security_preserve_bools: a boolean the running policy
        // also has (by name) keeps its current value; a new one starts at
        // the new policy's default. Pending values restart from these.
        let mut bools: Vec<bool> = db.bools.iter().map(|b| b.state).collect();
        if let Some(running) = old.policy.as_ref() {
            for (i, b) in db.bools.iter().enumerate() {
                let kept = running
                    .db
                    .bool_value(&b.name)
                    .and_then(|id| old.conds.bools.get((id as usize).wrapping_sub(1)));
                if let Some(&v) = kept {
                    bools[i] = v;
                }
            }
        }
        let conds = CondState::with_bools(&db, bools);
        // New SID table: same SIDs, contexts re-resolved in the new policy.
        let sids = SidTab::new();
        for (i, c) in isid_ctx.iter().enumerate() {
            let c = c.clone().unwrap_or_default();
            let text = services::context_to_string(&db, &c);
            if sids
                .push(SidEntry {
                    ctx: c,
                    text,
                    orig: None,
                })
                .is_none()
            {
                return Err(Error::NoMemory);
            }
            debug_assert_eq!(sids.len() as usize, i + 1);
        }
        let unlabeled = sids
            .get(initial_sid::UNLABELED.raw())
            .map(|e| e.ctx.clone())
            .unwrap_or_default();
        let unlabeled_text = services::context_to_string(&db, &unlabeled);
        for sid in (NUM_INITIAL_SIDS as u32 + 1)..=old.sids.len() {
            let Some(e) = old.sids.get(sid) else { break };
            let src = e.orig.as_deref().unwrap_or(&e.text);
            let entry = match services::parse_context(&db, src.as_bytes()) {
                Ok(c) => {
                    let text = services::context_to_string(&db, &c);
                    SidEntry {
                        ctx: c,
                        text,
                        orig: None,
                    }
                }
                Err(why) => {
                    log::warn!(
                        "Flask: context {src} (SID {sid}) is invalid in the new policy ({why}); SID {sid} is now unlabeled"
                    );
                    SidEntry {
                        ctx: unlabeled.clone(),
                        text: unlabeled_text.clone(),
                        orig: Some(String::from(src)),
                    }
                }
            };
            if sids.push(entry).is_none() {
                return Err(Error::NoMemory);
            }
        }
        // Object contexts -> SIDs.
        let mut ocons = Ocons::default();
        let sid_of = |c: &Context| -> Result<Sid, Error> {
            if let Some(s) = sids.lookup(c) {
                return Ok(Sid(s));
            }
            let text = services::context_to_string(&db, c);
            sids.push(SidEntry {
                ctx: c.clone(),
                text,
                orig: None,
            })
            .map(Sid)
            .ok_or(Error::NoMemory)
        };
        let oc = &db.ocontexts;
        for (irq, c) in &oc.pirqs {
            ocons.pirqs.push((*irq, sid_of(c)?));
        }
        for (lo, hi, c) in &oc.ioports {
            ocons
                .ioports
                .push((u64::from(*lo), u64::from(*hi), sid_of(c)?));
        }
        for (lo, hi, c) in &oc.iomems {
            ocons.iomems.push((*lo, *hi, sid_of(c)?));
        }
        for (d, c) in &oc.devices {
            ocons.devices.push((*d, sid_of(c)?));
        }
        for (p, c) in &oc.dtrees {
            ocons.dtrees.push((p.clone(), sid_of(c)?));
        }
        w.pending_bools = conds.bools.clone();
        log::info!(
            "Flask:  {} users, {} roles, {} types, {} bools",
            db.users.len(),
            db.roles.len(),
            db.types.len(),
            db.bools.len()
        );
        log::info!(
            "Flask:  {} classes, {} rules",
            db.classes.len(),
            db.rule_count()
        );
        let g = Gen {
            policy: Some(Arc::new(Loaded {
                db,
                unknown_allow,
                def,
            })),
            conds: Arc::new(conds),
            sids: Arc::new(sids),
            ocons: Arc::new(ocons),
            enforcing: old.enforcing,
        };
        self.swap(&mut w, g, false);
        Ok(())
    }

    /// Is a policy loaded?
    pub fn policy_loaded(&self) -> bool {
        let g = self.rcu.read(0);
        self.cur(&g).policy.is_some()
    }

    /// Whether the loaded policy allows permissions it does not define
    /// (`handle_unknown allow`; Xen's `security_get_allow_unknown`): false
    /// without a policy.
    pub fn allow_unknown(&self) -> bool {
        let g = self.rcu.read(0);
        self.cur(&g)
            .policy
            .as_ref()
            .is_some_and(|p| p.db.handle_unknown == crate::HandleUnknown::Allow)
    }

    /// The loaded policy's definition differences (missing permissions under handle_unknown).
    pub fn definition_check(&self) -> Option<DefinitionCheck> {
        let g = self.rcu.read(0);
        self.cur(&g).policy.as_ref().map(|p| p.def.clone())
    }

    // ------------------------------------------------------------ decisions

    /// Checks `perms` of class `C` for (ssid, tsid) on CPU `cpu` (any index; it
    /// selects the statistics and reader slot). Denials and auditallow grants
    /// are audited. In permissive mode (global, or a permissive source type)
    /// a denial is reported and the access granted.
    #[inline]
    pub fn has_perm<C: Class>(
        &self,
        cpu: usize,
        ssid: Sid,
        tsid: Sid,
        perms: Perms<C>,
        ad: &AuditData,
    ) -> Result<Granted<C>, Denied> {
        let v = self.check_raw(cpu, ssid, tsid, C::ID, perms.bits(), ad);
        if v & V_DENIED_MASK == 0 {
            Ok(Granted {
                perms,
                permissive: v & V_PERMISSIVE != 0,
                quiet: v == 0,
                _c: PhantomData,
            })
        } else {
            Err(Denied {
                denied: v as u32,
                class: C::ID,
                invalid_sid: v & V_INVALID != 0,
            })
        }
    }

    /// The decision-cache generation: it changes whenever any decision may
    /// change (policy load, boolean commit, SID remapping), exactly when the
    /// AVC is invalidated. A [`Granted::quiet`] grant stays valid while it
    /// is unchanged.
    #[inline]
    pub fn cache_generation(&self) -> u32 {
        self.cgen.load(Ordering::Acquire)
    }

    /// Counts a lookup answered from a caller's cache of quiet grants (see
    /// [`Granted::quiet`]) as an AVC lookup and hit, so the statistics keep
    /// counting every check.
    #[inline]
    pub fn note_cached_hit(&self, cpu: usize) {
        bump(&self.rcu.slot(cpu).stats.lookups);
    }

    /// The untyped check behind [`Flask::has_perm`] (for xsm_op paths that
    /// take a class from a guest). `Ok(true)` = granted only because permissive.
    #[inline]
    pub fn check(
        &self,
        cpu: usize,
        ssid: Sid,
        tsid: Sid,
        class: ClassId,
        requested: u32,
        ad: &AuditData,
    ) -> Result<bool, Denied> {
        let v = self.check_raw(cpu, ssid, tsid, class, requested, ad);
        if v & V_DENIED_MASK == 0 {
            Ok(v & V_PERMISSIVE != 0)
        } else {
            Err(Denied {
                denied: v as u32,
                class,
                invalid_sid: v & V_INVALID != 0,
            })
        }
    }

    /// The check, with its outcome packed in a register: low 32 bits = the
    /// denied permissions, plus the V_* flags (no struct crosses the call).
    /// The quiet grant from the cache (one mask test) is all that is
    /// inlined; everything else (denials, audited grants, misses) is out of
    /// line, so the hot path saves no registers.
    #[inline(always)]
    fn check_raw(
        &self,
        cpu: usize,
        ssid: Sid,
        tsid: Sid,
        class: ClassId,
        requested: u32,
        ad: &AuditData,
    ) -> u64 {
        bump(&self.rcu.slot(cpu).stats.lookups);
        let cgen = self.cgen.load(Ordering::Acquire);
        match self
            .avc
            .lookup_quiet(ssid.0, tsid.0, class.raw() as u16, cgen)
        {
            Some(q) if requested & !q == 0 => 0,
            _ => self.check_slow(cpu, cgen, ssid, tsid, class, requested, ad),
        }
    }

    /// Everything but a quiet cached grant: the whole entry is looked up again.
    #[allow(clippy::too_many_arguments)]
    #[cold]
    #[inline(never)]
    fn check_slow(
        &self,
        cpu: usize,
        cgen: u32,
        ssid: Sid,
        tsid: Sid,
        class: ClassId,
        requested: u32,
        ad: &AuditData,
    ) -> u64 {
        match self.avc.lookup(ssid.0, tsid.0, class.raw() as u16, cgen) {
            Some(h) if requested & !h.allowed == 0 && requested & h.auditallow == 0 => 0,
            Some(h) => self.hit_slow(ssid, tsid, class, requested, ad, &h),
            None => self.miss(cpu, cgen, ssid, tsid, class, requested, ad),
        }
    }

    /// A cached decision that denies something or is audited.
    #[inline(always)]
    fn hit_slow(
        &self,
        ssid: Sid,
        tsid: Sid,
        class: ClassId,
        requested: u32,
        ad: &AuditData,
        h: &Hit,
    ) -> u64 {
        let denied = requested & !h.allowed;
        if denied != 0
            && self.enforcing.load(Ordering::Relaxed)
            && !h.permissive
            && (denied & h.auditdeny == 0 || self.sink.is_none())
        {
            return u64::from(denied);
        }
        self.decide(ssid, tsid, class, requested, ad, h)
    }

    #[allow(clippy::too_many_arguments)]
    #[cold]
    #[inline(never)]
    fn miss(
        &self,
        cpu: usize,
        cgen: u32,
        ssid: Sid,
        tsid: Sid,
        class: ClassId,
        requested: u32,
        ad: &AuditData,
    ) -> u64 {
        bump(&self.rcu.slot(cpu).stats.misses);
        let guard = self.rcu.read(cpu);
        let g = self.cur(&guard);
        let Some(pol) = g.policy.as_ref() else {
            return 0;
        };
        let (Some(se), Some(te)) = (g.sids.get(ssid.0), g.sids.get(tsid.0)) else {
            drop(guard);
            self.audit_invalid(ssid, tsid, class, requested, ad);
            return u64::from(requested) | V_INVALID | V_DENIED_FLAG;
        };
        let d = effective(pol, &g.conds, &se.ctx, &te.ctx, class);
        let dec = Decision {
            allowed: d.allowed,
            auditallow: d.auditallow,
            auditdeny: d.auditdeny,
            permissive: d.permissive,
        };
        drop(guard);
        let thr = self.threshold.load(Ordering::Relaxed);
        let (hit, new, evicted) =
            self.avc
                .insert(ssid.0, tsid.0, class.raw() as u16, cgen, &dec, thr);
        let stats = &self.rcu.slot(cpu).stats;
        if new {
            bump(&stats.allocations);
        }
        if evicted > 0 {
            stats
                .reclaims
                .fetch_add(u64::from(evicted), Ordering::Relaxed);
            stats.frees.fetch_add(u64::from(evicted), Ordering::Relaxed);
        }
        let h = hit.unwrap_or_else(|| Hit::uncached(&dec));
        self.decide(ssid, tsid, class, requested, ad, &h)
    }

    /// The outcome of a decision, with its audit record.
    #[cold]
    #[inline(never)]
    fn decide(
        &self,
        ssid: Sid,
        tsid: Sid,
        class: ClassId,
        requested: u32,
        ad: &AuditData,
        h: &Hit,
    ) -> u64 {
        let denied = requested & !h.allowed;
        if denied == 0 {
            let audit = requested & h.auditallow;
            self.record(ssid, tsid, class, audit, true, false, ad);
            return if audit == 0 { 0 } else { V_AUDITED };
        }
        let permissive = !self.enforcing.load(Ordering::Relaxed) || h.permissive;
        let mut audit = denied & h.auditdeny;
        if permissive {
            // Report every distinct denied permission at least once per cache lifetime.
            audit &= self.avc.report(h, denied);
            self.record(ssid, tsid, class, audit, false, true, ad);
            return V_PERMISSIVE;
        }
        self.record(ssid, tsid, class, audit, false, false, ad);
        u64::from(denied)
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        ssid: Sid,
        tsid: Sid,
        class: ClassId,
        bits: u32,
        granted: bool,
        permissive: bool,
        ad: &AuditData,
    ) {
        if bits == 0 || self.sink.is_none() {
            return;
        }
        let guard = self.rcu.read(0);
        let g = self.cur(&guard);
        let event = AuditEvent::Avc {
            granted,
            perms: perm_list(class, bits),
            data: *ad,
            scontext: ctx_text(g, ssid),
            tcontext: ctx_text(g, tsid),
            tclass: class.name(),
            permissive,
        };
        drop(guard);
        self.audit(event);
    }

    fn audit_invalid(&self, ssid: Sid, tsid: Sid, class: ClassId, requested: u32, ad: &AuditData) {
        let guard = self.rcu.read(0);
        let g = self.cur(&guard);
        let e = AuditEvent::Avc {
            granted: false,
            perms: perm_list(class, requested),
            data: *ad,
            scontext: ctx_text(g, ssid),
            tcontext: ctx_text(g, tsid),
            tclass: class.name(),
            permissive: false,
        };
        drop(guard);
        self.audit(e);
    }

    fn audit(&self, e: AuditEvent) {
        let Some(sink) = self.sink else { return };
        let now = sink.now_ms();
        let admitted = self.rate.lock().admit(now);
        let serial = self.serial.fetch_add(1, Ordering::Relaxed) + 1;
        let Some(suppressed) = admitted else { return };
        if suppressed > 0 {
            sink.emit(&AuditRecord {
                serial: serial - 1,
                time_ms: now,
                event: AuditEvent::Suppressed { count: suppressed },
            });
        }
        sink.emit(&AuditRecord {
            serial,
            time_ms: now,
            event: e,
        });
    }

    /// Uncached `security_compute_av` (xsm_op ACCESS, and the property tests'
    /// reference): the raw decision, as libsepol would report it.
    pub fn compute_av(&self, ssid: Sid, tsid: Sid, class: u32) -> Result<AvDecision, Error> {
        let guard = self.rcu.read(0);
        let g = self.cur(&guard);
        let pol = g.policy.as_ref().ok_or(Error::NoPolicy)?;
        if class == 0 || class as usize > pol.db.classes.len() {
            return Err(Error::UnknownClass(class));
        }
        let s = g.sids.get(ssid.0).ok_or(Error::UnknownSid(ssid.0))?;
        let t = g.sids.get(tsid.0).ok_or(Error::UnknownSid(tsid.0))?;
        Ok(services::compute_av(
            &pol.db, &g.conds, &s.ctx, &t.ctx, class,
        ))
    }

    /// The decision the AVC would cache for (ssid, tsid, class): [`Flask::compute_av`]
    /// with handle_unknown applied to permissions the policy lacks.
    pub fn compute_av_effective(
        &self,
        ssid: Sid,
        tsid: Sid,
        class: ClassId,
    ) -> Result<AvDecision, Error> {
        let guard = self.rcu.read(0);
        let g = self.cur(&guard);
        let pol = g.policy.as_ref().ok_or(Error::NoPolicy)?;
        let s = g.sids.get(ssid.0).ok_or(Error::UnknownSid(ssid.0))?;
        let t = g.sids.get(tsid.0).ok_or(Error::UnknownSid(tsid.0))?;
        Ok(effective(pol, &g.conds, &s.ctx, &t.ctx, class))
    }

    fn compute_sid(&self, ssid: Sid, tsid: Sid, class: u32, kind: SidKind) -> Result<Sid, Error> {
        let w = self.writer.lock();
        let g = self.wgen(&w);
        let pol = g.policy.as_ref().ok_or(Error::NoPolicy)?;
        if class == 0 || class as usize > pol.db.classes.len() {
            return Err(Error::UnknownClass(class));
        }
        let s = g.sids.get(ssid.0).ok_or(Error::UnknownSid(ssid.0))?;
        let t = g.sids.get(tsid.0).ok_or(Error::UnknownSid(tsid.0))?;
        let ctx = match services::compute_sid(&pol.db, &g.conds, &s.ctx, &t.ctx, class, kind) {
            Ok(c) => c,
            Err(bad) => {
                let text = services::context_to_string(&pol.db, &bad);
                log::warn!(
                    "security_compute_sid:  invalid context {text} for scontext={} tcontext={} tclass={}",
                    s.text,
                    t.text,
                    pol.db.classes[class as usize - 1].name
                );
                if g.enforcing {
                    return Err(Error::InvalidNewContext(text));
                }
                bad
            }
        };
        Self::sid_for(&pol.db, &g.sids, ctx)
    }

    fn sid_for(db: &PolicyDb, sids: &SidTab, ctx: Context) -> Result<Sid, Error> {
        if let Some(s) = sids.lookup(&ctx) {
            return Ok(Sid(s));
        }
        let text = services::context_to_string(db, &ctx);
        sids.push(SidEntry {
            ctx,
            text,
            orig: None,
        })
        .map(Sid)
        .ok_or(Error::NoMemory)
    }

    /// type_transition label (xsm_op CREATE).
    pub fn compute_create(&self, ssid: Sid, tsid: Sid, class: u32) -> Result<Sid, Error> {
        self.compute_sid(ssid, tsid, class, SidKind::Create)
    }
    /// type_member label (xsm_op MEMBER).
    pub fn compute_member(&self, ssid: Sid, tsid: Sid, class: u32) -> Result<Sid, Error> {
        self.compute_sid(ssid, tsid, class, SidKind::Member)
    }
    /// type_change label (xsm_op RELABEL).
    pub fn compute_relabel(&self, ssid: Sid, tsid: Sid, class: u32) -> Result<Sid, Error> {
        self.compute_sid(ssid, tsid, class, SidKind::Relabel)
    }

    // ------------------------------------------------------------ contexts

    /// CONTEXT_TO_SID: the SID of a context (allocated if new).
    pub fn context_to_sid(&self, text: &[u8]) -> Result<Sid, Error> {
        let w = self.writer.lock();
        let g = self.wgen(&w);
        let pol = g.policy.as_ref().ok_or(Error::NoPolicy)?;
        let ctx = services::parse_context(&pol.db, text).map_err(|e| {
            Error::InvalidContext(format!("{} ({e})", String::from_utf8_lossy(text)))
        })?;
        Self::sid_for(&pol.db, &g.sids, ctx)
    }

    /// SID_TO_CONTEXT: the context of a SID.
    pub fn sid_to_context(&self, sid: Sid) -> Result<String, Error> {
        let guard = self.rcu.read(0);
        let g = self.cur(&guard);
        if g.policy.is_none() {
            return Err(Error::NoPolicy);
        }
        g.sids
            .get(sid.0)
            .map(|e| e.text.clone())
            .ok_or(Error::UnknownSid(sid.0))
    }

    // ------------------------------------------------------------ booleans

    fn bool_info(&self, w: &Writer, id: u32) -> Result<BoolInfo, Error> {
        let g = self.wgen(w);
        let pol = g.policy.as_ref().ok_or(Error::NoPolicy)?;
        let b = pol
            .db
            .bools
            .get((id as usize).wrapping_sub(1))
            .ok_or_else(|| Error::UnknownBool(format!("{id}")))?;
        Ok(BoolInfo {
            id,
            name: String::from(&*b.name),
            current: g.conds.bools[id as usize - 1],
            pending: w.pending_bools[id as usize - 1],
        })
    }

    /// Number of booleans.
    pub fn bool_count(&self) -> u32 {
        let w = self.writer.lock();
        w.pending_bools.len() as u32
    }

    /// GETBOOL by id.
    pub fn get_bool(&self, id: u32) -> Result<BoolInfo, Error> {
        let w = self.writer.lock();
        self.bool_info(&w, id)
    }

    /// GETBOOL by name.
    pub fn get_bool_by_name(&self, name: &str) -> Result<BoolInfo, Error> {
        let w = self.writer.lock();
        let g = self.wgen(&w);
        let pol = g.policy.as_ref().ok_or(Error::NoPolicy)?;
        let id = pol
            .db
            .bool_value(name)
            .ok_or_else(|| Error::UnknownBool(String::from(name)))?;
        self.bool_info(&w, id)
    }

    /// SETBOOL: sets the pending value; with `commit`, commits all pending values.
    pub fn set_bool(&self, id: u32, value: bool, commit: bool) -> Result<(), Error> {
        let mut w = self.writer.lock();
        self.bool_info(&w, id)?;
        w.pending_bools[id as usize - 1] = value;
        if commit {
            self.commit_locked(&mut w)?;
        }
        Ok(())
    }

    /// COMMITBOOLS: applies the pending values; the AVC is flushed.
    pub fn commit_bools(&self) -> Result<(), Error> {
        let mut w = self.writer.lock();
        self.commit_locked(&mut w)
    }

    fn commit_locked(&self, w: &mut Writer) -> Result<(), Error> {
        let g = self.wgen(w);
        let pol = g.policy.as_ref().ok_or(Error::NoPolicy)?;
        for (i, (&old, &new)) in g.conds.bools.iter().zip(w.pending_bools.iter()).enumerate() {
            if old != new {
                log::info!(
                    "Flask: committed boolean {}={}",
                    pol.db.bools[i].name,
                    u8::from(new)
                );
            }
        }
        let conds = CondState::with_bools(&pol.db, w.pending_bools.clone());
        let mut ng = Self::next_gen(g);
        ng.conds = Arc::new(conds);
        self.swap(w, ng, false);
        Ok(())
    }

    // --------------------------------------------------------------- modes

    /// GETENFORCE.
    pub fn enforcing(&self) -> bool {
        let g = self.rcu.read(0);
        self.cur(&g).enforcing
    }

    /// SETENFORCE: changes the mode (and flushes the AVC) if it differs; returns whether it changed.
    pub fn set_enforcing(&self, enforcing: bool) -> bool {
        let mut w = self.writer.lock();
        let g = self.wgen(&w);
        if g.enforcing == enforcing {
            return false;
        }
        let mut ng = Self::next_gen(g);
        ng.enforcing = enforcing;
        self.swap(&mut w, ng, false);
        log::info!(
            "Flask: {} mode",
            if enforcing { "enforcing" } else { "permissive" }
        );
        true
    }

    /// Empties the AVC.
    pub fn flush(&self) {
        let mut w = self.writer.lock();
        let ng = Self::next_gen(self.wgen(&w));
        self.swap(&mut w, ng, false);
    }

    /// POLICYVERS: the highest policy version understood.
    pub fn policyvers(&self) -> u32 {
        POLICYDB_VERSION_MAX
    }

    /// MLS: is the loaded policy MLS?
    pub fn mls_enabled(&self) -> bool {
        let g = self.rcu.read(0);
        self.cur(&g).policy.as_ref().is_some_and(|p| p.db.mls)
    }

    /// GETAVC_THRESHOLD.
    pub fn avc_threshold(&self) -> u32 {
        self.threshold.load(Ordering::Relaxed)
    }

    /// SETAVC_THRESHOLD (at least 1).
    pub fn set_avc_threshold(&self, t: u32) -> Result<(), Error> {
        if t == 0 || t > AVC_MAX_NODES {
            return Err(Error::Invalid("AVC threshold must be between 1 and 262144"));
        }
        self.threshold.store(t, Ordering::Relaxed);
        Ok(())
    }

    /// AVC_HASHSTATS.
    pub fn hash_stats(&self) -> HashStats {
        let (entries, buckets_used, buckets_total, max_chain_len) = self.avc.hash_stats();
        HashStats {
            entries,
            buckets_used,
            buckets_total,
            max_chain_len,
        }
    }

    /// AVC_CACHESTATS for one CPU slot (`cpu` < [`MAX_CPUS`]).
    pub fn cache_stats(&self, cpu: usize) -> Option<CacheStats> {
        let s = &self.rcu.slots.get(cpu)?.stats;
        let misses = s.misses.load(Ordering::Relaxed);
        let lookups = s.lookups.load(Ordering::Relaxed);
        Some(CacheStats {
            lookups,
            // Not counted on the hit path: every lookup is a hit or a miss.
            hits: lookups.saturating_sub(misses),
            misses,
            allocations: s.allocations.load(Ordering::Relaxed),
            reclaims: s.reclaims.load(Ordering::Relaxed),
            frees: s.frees.load(Ordering::Relaxed),
        })
    }

    /// Sequence number of the current generation (changes at every load, commit, mode change, flush).
    pub fn seqno(&self) -> u32 {
        self.seqno.load(Ordering::Relaxed)
    }

    // ----------------------------------------------------------- ocontexts

    /// The SID labelling a physical IRQ (unlabeled... Xen: initial SID irq if none).
    pub fn pirq_sid(&self, irq: u32) -> Sid {
        let g = self.rcu.read(0);
        let o = &self.cur(&g).ocons;
        o.pirqs
            .iter()
            .find(|e| e.0 == irq)
            .map_or(initial_sid::IRQ, |e| e.1)
    }

    /// The SID labelling an I/O port (initial SID ioport if none).
    pub fn ioport_sid(&self, port: u64) -> Sid {
        let g = self.rcu.read(0);
        let o = &self.cur(&g).ocons;
        o.ioports
            .iter()
            .find(|e| e.0 <= port && port <= e.1)
            .map_or(initial_sid::IOPORT, |e| e.2)
    }

    /// The SID labelling a memory frame (initial SID iomem if none).
    pub fn iomem_sid(&self, mfn: u64) -> Sid {
        let g = self.rcu.read(0);
        let o = &self.cur(&g).ocons;
        o.iomems
            .iter()
            .find(|e| e.0 <= mfn && mfn <= e.1)
            .map_or(initial_sid::IOMEM, |e| e.2)
    }

    /// The SID labelling a PCI device (initial SID device if none).
    pub fn device_sid(&self, sbdf: u32) -> Sid {
        let g = self.rcu.read(0);
        let o = &self.cur(&g).ocons;
        o.devices
            .iter()
            .find(|e| e.0 == sbdf)
            .map_or(initial_sid::DEVICE, |e| e.1)
    }

    /// The SID labelling a device-tree node (initial SID device if none).
    pub fn dtdevice_sid(&self, path: &str) -> Sid {
        let g = self.rcu.read(0);
        let o = &self.cur(&g).ocons;
        o.dtrees
            .iter()
            .find(|e| e.0 == path)
            .map_or(initial_sid::DEVICE, |e| e.1)
    }

    /// ADD_OCONTEXT (Xen semantics: an identical entry is accepted, an overlapping one is EEXIST).
    pub fn add_ocontext(&self, kind: OconKind, low: u64, high: u64, sid: Sid) -> Result<(), Error> {
        let mut w = self.writer.lock();
        let g = self.wgen(&w);
        if g.policy.is_none() {
            return Err(Error::NoPolicy);
        }
        if g.sids.get(sid.0).is_none() {
            return Err(Error::UnknownSid(sid.0));
        }
        if low > high {
            return Err(Error::Invalid("ocontext range low > high"));
        }
        let mut o: Ocons = (*g.ocons).clone();
        match kind {
            OconKind::Pirq | OconKind::Device => {
                let v = u32::try_from(low)
                    .map_err(|_| Error::Invalid("ocontext value out of range"))?;
                if low != high {
                    return Err(Error::Invalid("pirq/device ocontexts are single values"));
                }
                let list = if kind == OconKind::Pirq {
                    &mut o.pirqs
                } else {
                    &mut o.devices
                };
                if let Some(e) = list.iter().find(|e| e.0 == v) {
                    return if e.1 == sid {
                        Ok(())
                    } else {
                        Err(Error::OcontextExists)
                    };
                }
                list.push((v, sid));
            }
            OconKind::Ioport | OconKind::Iomem => {
                let list = if kind == OconKind::Ioport {
                    &mut o.ioports
                } else {
                    &mut o.iomems
                };
                if let Some(e) = list.iter().find(|e| e.0 <= high && low <= e.1) {
                    return if e.0 == low && e.1 == high && e.2 == sid {
                        Ok(())
                    } else {
                        Err(Error::OcontextExists)
                    };
                }
                let at = list.iter().position(|e| e.0 > low).unwrap_or(list.len());
                list.insert(at, (low, high, sid));
            }
        }
        let mut ng = Self::next_gen(g);
        ng.ocons = Arc::new(o);
        self.swap(&mut w, ng, true);
        Ok(())
    }

    /// DEL_OCONTEXT (exact match required).
    pub fn del_ocontext(&self, kind: OconKind, low: u64, high: u64) -> Result<(), Error> {
        let mut w = self.writer.lock();
        let g = self.wgen(&w);
        if g.policy.is_none() {
            return Err(Error::NoPolicy);
        }
        let mut o: Ocons = (*g.ocons).clone();
        let found = match kind {
            OconKind::Pirq | OconKind::Device => {
                let list = if kind == OconKind::Pirq {
                    &mut o.pirqs
                } else {
                    &mut o.devices
                };
                let n = list.len();
                list.retain(|e| !(u64::from(e.0) == low && low == high));
                n != list.len()
            }
            OconKind::Ioport | OconKind::Iomem => {
                let list = if kind == OconKind::Ioport {
                    &mut o.ioports
                } else {
                    &mut o.iomems
                };
                let n = list.len();
                list.retain(|e| !(e.0 == low && e.1 == high));
                n != list.len()
            }
        };
        if !found {
            return Err(Error::OcontextNotFound);
        }
        let mut ng = Self::next_gen(g);
        ng.ocons = Arc::new(o);
        self.swap(&mut w, ng, true);
        Ok(())
    }
}

/// The decision in Warden's numbering: the policy's decision for the class
/// and permissions of the same names, with handle_unknown applied to what
/// the policy lacks (a whole class, or single permissions).
fn effective(
    pol: &Loaded,
    conds: &CondState,
    s: &Context,
    t: &Context,
    class: ClassId,
) -> AvDecision {
    let ci = class.raw() as usize - 1;
    let m = &pol.def.maps[ci];
    if m.value == 0 {
        return AvDecision {
            allowed: pol.unknown_allow[ci],
            auditallow: 0,
            auditdeny: u32::MAX,
            permissive: pol.db.permissive.get(s.ty),
        };
    }
    let d = services::compute_av(&pol.db, conds, s, t, m.value);
    AvDecision {
        allowed: m.to_warden(d.allowed) | pol.unknown_allow[ci],
        auditallow: m.to_warden(d.auditallow),
        auditdeny: m.to_warden(d.auditdeny) | !m.defined,
        permissive: d.permissive,
    }
}

/// Statistics counters live in the caller's CPU slot and are written only by
/// that CPU: a plain load + store (no locked instruction on the hit path).
/// Interrupt nesting on one CPU cannot lose counts (a nested check completes
/// its own update before ours resumes); callers sharing a slot from several
/// host threads may lose increments, never corrupt anything.
#[inline]
fn bump(c: &AtomicU64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
}

fn ctx_text(g: &Gen, sid: Sid) -> String {
    match g.sids.get(sid.0) {
        Some(e) => e.text.clone(),
        None => format!("ssid={}", sid.0),
    }
}

fn perm_list(class: ClassId, bits: u32) -> String {
    let names = class.perm_names();
    let mut s = String::new();
    let mut unnamed = 0u32;
    for b in 0..32 {
        if bits & (1 << b) == 0 {
            continue;
        }
        match names.get(b) {
            Some(n) => {
                if !s.is_empty() {
                    s.push(' ');
                }
                s.push_str(n);
            }
            None => unnamed |= 1 << b,
        }
    }
    if unnamed != 0 {
        if !s.is_empty() {
            s.push(' ');
        }
        s.push_str(&format!("0x{unnamed:x}"));
    }
    s
}

const _: () = assert!(CLASS_NAMES.len() == NUM_CLASSES && MAX_CPUS > 0);
