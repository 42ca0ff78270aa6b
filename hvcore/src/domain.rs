//! Domains and the domain table.
//!
//! The table has one slot per domain id below [`MAX_DOMAINS`]. Each slot
//! keeps, besides the domain itself, a copy of what access checks need — the
//! domain's generation (bumped whenever a domain is installed in the slot),
//! its label (SID and `_self` SID) and whether it is privileged — under a
//! sequence lock, so the XSM gate reads a consistent [`DomSnap`] without
//! taking any lock or writing any shared cache line. After the check, the
//! handler resolves the snapshot with [`DomainTable::resolve`], which fails if
//! the slot now holds another domain or the label changed (the operation would
//! act on something other than what was checked).

/// Domain building (PVH): `domain/builder/`.
pub mod builder;

use crate::p2m::P2m;
use crate::vcpu::Vcpu;
use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering, fence};
use warden_abi::{DOMID_FIRST_RESERVED, DomId, errno};

/// Domain ids are below this.
pub const MAX_DOMAINS: usize = 1024;

/// What the gate knows about a domain at check time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DomSnap {
    pub id: DomId,
    /// The slot's generation when the snapshot was taken.
    pub generation: u32,
    /// The domain's label.
    pub sid: u32,
    /// The label the domain acts on when it acts on itself.
    pub self_sid: u32,
    /// The control domain (dom0).
    pub privileged: bool,
}

struct Slot {
    seq: AtomicU32,
    live: AtomicBool,
    /// Reserved for a domain being created.
    reserved: AtomicBool,
    generation: AtomicU32,
    sid: AtomicU32,
    self_sid: AtomicU32,
    privileged: AtomicBool,
    dom: spin::Mutex<Option<Arc<Domain>>>,
}

impl Slot {
    fn new() -> Slot {
        Slot {
            seq: AtomicU32::new(0),
            live: AtomicBool::new(false),
            reserved: AtomicBool::new(false),
            generation: AtomicU32::new(0),
            sid: AtomicU32::new(0),
            self_sid: AtomicU32::new(0),
            privileged: AtomicBool::new(false),
            dom: spin::Mutex::new(None),
        }
    }

    /// A consistent read of the check-relevant fields (None if empty).
    fn read(&self, id: DomId) -> Option<DomSnap> {
        loop {
            let s1 = self.seq.load(Ordering::Acquire);
            if s1 & 1 != 0 {
                core::hint::spin_loop();
                continue;
            }
            let live = self.live.load(Ordering::Relaxed);
            let snap = DomSnap {
                id,
                generation: self.generation.load(Ordering::Relaxed),
                sid: self.sid.load(Ordering::Relaxed),
                self_sid: self.self_sid.load(Ordering::Relaxed),
                privileged: self.privileged.load(Ordering::Relaxed),
            };
            fence(Ordering::Acquire);
            if self.seq.load(Ordering::Relaxed) == s1 {
                return live.then_some(snap);
            }
        }
    }

    /// Update under the table's writer lock.
    fn write(&self, f: impl FnOnce(&Slot)) {
        self.seq.fetch_add(1, Ordering::AcqRel);
        fence(Ordering::Release);
        f(self);
        self.seq.fetch_add(1, Ordering::Release);
    }
}

/// All domains.
pub struct DomainTable {
    slots: Box<[Slot]>,
    /// Serialises writers (create, destroy, relabel) and holds the id rover.
    writer: spin::Mutex<DomId>,
}

impl core::fmt::Debug for DomainTable {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DomainTable").finish_non_exhaustive()
    }
}

impl Default for DomainTable {
    fn default() -> Self {
        Self::new()
    }
}

impl DomainTable {
    pub fn new() -> DomainTable {
        DomainTable {
            slots: (0..MAX_DOMAINS).map(|_| Slot::new()).collect(),
            writer: spin::Mutex::new(1),
        }
    }

    /// Lock-free snapshot of domain `id` (None if there is no such domain).
    #[inline]
    pub fn snapshot(&self, id: DomId) -> Option<DomSnap> {
        self.slots.get(id as usize)?.read(id)
    }

    /// Ids of the live domains, in order, starting at `from` (lock-free).
    pub fn snapshots_from(&self, from: DomId) -> impl Iterator<Item = DomSnap> + '_ {
        (from as usize..MAX_DOMAINS).filter_map(|i| self.slots[i].read(i as DomId))
    }

    /// The domain a snapshot was taken of: ESRCH if it is gone (or replaced),
    /// EAGAIN if it was relabelled since.
    pub fn resolve(&self, s: &DomSnap) -> Result<Arc<Domain>, i32> {
        let slot = self.slots.get(s.id as usize).ok_or(errno::ESRCH)?;
        let d = slot.dom.lock().clone().ok_or(errno::ESRCH)?;
        match slot.read(s.id) {
            Some(now) if now.generation == s.generation && d.generation == s.generation => {
                if now.sid != s.sid || now.self_sid != s.self_sid {
                    Err(errno::EAGAIN)
                } else {
                    Ok(d)
                }
            }
            _ => Err(errno::ESRCH),
        }
    }

    /// The domain with id `id`, without a check (for the hypervisor's own use).
    pub fn get(&self, id: DomId) -> Option<Arc<Domain>> {
        self.slots.get(id as usize)?.dom.lock().clone()
    }

    /// Reserve an id: `want` if free (EEXIST if taken, EINVAL if out of
    /// range), or the next free one after the rover for `None` (ENOSPC if none).
    /// Returns the id and the generation the domain must carry.
    pub fn reserve(&self, want: Option<DomId>) -> Result<(DomId, u32), i32> {
        let mut rover = self.writer.lock();
        let id = match want {
            Some(id) => {
                if id as usize >= MAX_DOMAINS || id >= DOMID_FIRST_RESERVED {
                    return Err(errno::EINVAL);
                }
                let s = &self.slots[id as usize];
                if s.live.load(Ordering::Acquire)
                    || s.reserved.load(Ordering::Acquire)
                    || s.dom.lock().is_some()
                {
                    return Err(errno::EEXIST);
                }
                id
            }
            None => {
                let mut found = None;
                for i in 0..MAX_DOMAINS - 1 {
                    let c = ((*rover as usize - 1 + i) % (MAX_DOMAINS - 1)) + 1;
                    let s = &self.slots[c];
                    if !s.live.load(Ordering::Acquire)
                        && !s.reserved.load(Ordering::Acquire)
                        && s.dom.lock().is_none()
                    {
                        found = Some(c as DomId);
                        break;
                    }
                }
                let id = found.ok_or(errno::ENOSPC)?;
                *rover = if id as usize + 1 >= MAX_DOMAINS {
                    1
                } else {
                    id + 1
                };
                id
            }
        };
        let slot = &self.slots[id as usize];
        let generation = slot.generation.load(Ordering::Relaxed).wrapping_add(1);
        // Mark the slot taken (not yet live) so another reserve skips it.
        slot.reserved.store(true, Ordering::Release);
        slot.write(|s| s.generation.store(generation, Ordering::Relaxed));
        Ok((id, generation))
    }

    /// Make `d` visible under its id with its label.
    pub fn install(&self, d: Arc<Domain>, sid: u32, self_sid: u32) {
        let _w = self.writer.lock();
        let slot = &self.slots[d.id as usize];
        *slot.dom.lock() = Some(d.clone());
        slot.write(|s| {
            s.generation.store(d.generation, Ordering::Relaxed);
            s.sid.store(sid, Ordering::Relaxed);
            s.self_sid.store(self_sid, Ordering::Relaxed);
            s.privileged.store(d.privileged, Ordering::Relaxed);
            s.live.store(true, Ordering::Relaxed);
        });
        slot.reserved.store(false, Ordering::Release);
    }

    /// Give reserved id `id` back without installing a domain (a failed create).
    pub fn unreserve(&self, id: DomId) {
        let _w = self.writer.lock();
        if let Some(slot) = self.slots.get(id as usize) {
            *slot.dom.lock() = None;
            slot.reserved.store(false, Ordering::Release);
        }
    }

    /// Change the label of the domain `checked` is a snapshot of to `sid`
    /// (with `_self` label `self_sid`), only if the slot still holds that
    /// domain (same generation: ESRCH otherwise) with the label that was
    /// checked (EAGAIN otherwise). The comparison and the write happen under
    /// the writer lock, so a domain destroyed and replaced under the same id,
    /// or relabelled by someone else, after the check is never relabelled.
    pub fn relabel(&self, checked: &DomSnap, sid: u32, self_sid: u32) -> Result<(), i32> {
        let _w = self.writer.lock();
        let slot = self.slots.get(checked.id as usize).ok_or(errno::ESRCH)?;
        let now = slot.read(checked.id).ok_or(errno::ESRCH)?;
        if now.generation != checked.generation {
            return Err(errno::ESRCH);
        }
        if now.sid != checked.sid || now.self_sid != checked.self_sid {
            return Err(errno::EAGAIN);
        }
        slot.write(|s| {
            s.sid.store(sid, Ordering::Relaxed);
            s.self_sid.store(self_sid, Ordering::Relaxed);
        });
        Ok(())
    }

    /// Change a domain's label by id, unchecked (tests).
    #[cfg(test)]
    pub(crate) fn set_label(&self, id: DomId, sid: u32, self_sid: u32) {
        let _w = self.writer.lock();
        if let Some(slot) = self.slots.get(id as usize) {
            slot.write(|s| {
                s.sid.store(sid, Ordering::Relaxed);
                s.self_sid.store(self_sid, Ordering::Relaxed);
            });
        }
    }

    /// Remove domain `id` from the table (its generation is retired).
    pub fn remove(&self, id: DomId) -> Option<Arc<Domain>> {
        let _w = self.writer.lock();
        let slot = self.slots.get(id as usize)?;
        slot.write(|s| {
            s.live.store(false, Ordering::Relaxed);
            s.sid.store(0, Ordering::Relaxed);
            s.self_sid.store(0, Ordering::Relaxed);
        });
        slot.dom.lock().take()
    }

    /// Every live domain.
    pub fn all(&self) -> Vec<Arc<Domain>> {
        self.slots
            .iter()
            .filter_map(|s| s.dom.lock().clone())
            .collect()
    }
}

/// A domain's memory.
#[derive(Debug)]
pub struct DomMem {
    /// The physmap (None once the domain's memory has been released).
    pub p2m: Option<P2m>,
    /// Pages the domain has.
    pub tot_pages: u64,
    /// Pages it may have.
    pub max_pages: u64,
    /// Pages scrubbed and freed so far by its destruction.
    pub scrubbed: u64,
    /// Pages claimed (XENMEM_claim_pages) and not yet populated.
    pub outstanding: u64,
}

/// A guest console line being assembled (printed at a newline or when
/// full), and the domain's console rate limit.
#[derive(Debug, Default)]
pub struct LineBuf {
    pub buf: Vec<u8>,
    pub limit: crate::guestcons::RateLimit,
}

/// Longest guest console line kept before it is printed anyway.
pub const CONSOLE_LINE_MAX: usize = 256;

impl LineBuf {
    /// Add bytes; `emit` receives each complete line (without the newline)
    /// and the domain's rate limit. Control characters other than tab
    /// become '.'; carriage returns are dropped.
    pub fn push(
        &mut self,
        bytes: &[u8],
        mut emit: impl FnMut(&[u8], &mut crate::guestcons::RateLimit),
    ) {
        for &b in bytes {
            match b {
                b'\n' => {
                    emit(&self.buf, &mut self.limit);
                    self.buf.clear();
                }
                b'\r' => {}
                b'\t' | 0x20..=0x7e => self.buf.push(b),
                _ => self.buf.push(b'.'),
            }
            if self.buf.len() >= CONSOLE_LINE_MAX {
                emit(&self.buf, &mut self.limit);
                self.buf.clear();
            }
        }
    }
}

/// What createdomain fixed about a domain (Xen 4.17's
/// `xen_domctl_createdomain`, as far as Warden keeps it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DomainConfig {
    /// The vCPUs `max_vcpus` must allocate (0: not fixed at creation, as for
    /// boot-built domains, whose builder allocates them directly).
    pub max_vcpus: u32,
    /// `XEN_DOMCTL_CDF_xs_domain`: a xenstore domain.
    pub xs_domain: bool,
    /// `XEN_X86_EMU_*` (reported by getdomaininfo).
    pub emulation_flags: u32,
    /// The CPU pool (Warden has pool 0 only).
    pub cpupool: u32,
}

impl Default for DomainConfig {
    /// A PVH domain: only the local APIC is emulated.
    fn default() -> Self {
        DomainConfig {
            max_vcpus: 0,
            xs_domain: false,
            emulation_flags: warden_abi::domctl::X86_EMU_LAPIC,
            cpupool: 0,
        }
    }
}

/// A domain.
pub struct Domain {
    pub id: DomId,
    /// Generation of the table slot (distinguishes reuses of the id).
    pub generation: u32,
    /// The control domain (dom0).
    pub privileged: bool,
    /// Name (boot-built domains) for logs.
    pub name: String,
    /// Toolstack handle (UUID; XEN_DOMCTL_setdomainhandle changes it).
    pub handle: spin::Mutex<[u8; 16]>,
    /// What createdomain fixed.
    pub config: DomainConfig,
    /// Memory.
    pub mem: spin::RwLock<DomMem>,
    /// vCPUs (empty until max_vcpus, cleared at destroy).
    pub vcpus: spin::RwLock<Vec<Arc<GuestVcpu>>>,
    /// Physmap epoch (see `vcpu::shootdown`).
    pub epoch: AtomicU64,
    /// Console line being assembled.
    pub console: spin::Mutex<LineBuf>,
    /// Set once destruction started.
    pub dying: AtomicBool,
    /// Set when its pause count first dropped to 0 (Xen's
    /// `creation_finished`): the toolstack built it and let it run.
    pub creation_finished: AtomicBool,
    /// NUMA node affinity as set (XEN_DOMCTL_setnodeaffinity; None: the
    /// automatic one, node 0).
    pub node_affinity: spin::Mutex<Option<u64>>,
    /// Set once its destruction has stopped it for good (its memory is
    /// being scrubbed, in bounded steps).
    pub scrubbing: AtomicBool,
    /// Set (by the scheduler, under its lock) while the domain must not run:
    /// paused, shut down or dying. Checked by CPUs about to enter its guest.
    pub stopped: Arc<AtomicBool>,
    /// HVM parameters, memory map, vm_assist (`xen`).
    pub hvm: crate::xen::DomainHvm,
    /// Its grant table and maptrack (shared with the mappings of its grants).
    pub gnttab: Arc<crate::xen::gnttab::GrantTable>,
    /// Its event channels.
    pub evtchn: crate::xen::evtchn::DomEvtchn,
    /// Its shared_info page.
    pub shared_info: crate::xen::shared_info::SharedInfoPage,
}

impl core::fmt::Debug for Domain {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Domain(d{})", self.id)
    }
}

impl Domain {
    pub fn new(
        id: DomId,
        generation: u32,
        privileged: bool,
        name: String,
        p2m: P2m,
        max_pages: u64,
    ) -> Domain {
        Domain {
            id,
            generation,
            privileged,
            name,
            handle: spin::Mutex::new([0; 16]),
            config: DomainConfig::default(),
            mem: spin::RwLock::new(DomMem {
                p2m: Some(p2m),
                tot_pages: 0,
                max_pages,
                scrubbed: 0,
                outstanding: 0,
            }),
            vcpus: spin::RwLock::new(Vec::new()),
            epoch: AtomicU64::new(0),
            console: spin::Mutex::new(LineBuf::default()),
            dying: AtomicBool::new(false),
            creation_finished: AtomicBool::new(false),
            node_affinity: spin::Mutex::new(None),
            scrubbing: AtomicBool::new(false),
            stopped: Arc::new(AtomicBool::new(true)),
            hvm: crate::xen::DomainHvm::default(),
            gnttab: Arc::new(crate::xen::gnttab::GrantTable::with_defaults(id)),
            evtchn: crate::xen::evtchn::DomEvtchn::new(),
            shared_info: crate::xen::shared_info::SharedInfoPage::new(),
        }
    }

    /// vCPU `id`, if the domain has it.
    pub fn vcpu(&self, id: u32) -> Option<Arc<GuestVcpu>> {
        self.vcpus.read().get(id as usize).cloned()
    }

    /// How many vCPUs it has.
    pub fn nr_vcpus(&self) -> u32 {
        self.vcpus.read().len() as u32
    }
}

/// Event-delivery settings of a vCPU.
#[derive(Debug, Clone, Copy, Default)]
pub struct VcpuEvents {
    /// Guest-physical address of its `vcpu_info` once registered
    /// (VCPUOP_register_vcpu_info); None: its legacy slot in the
    /// shared_info page (vCPUs 0..31).
    pub info_gpa: Option<u64>,
    /// The per-vCPU upcall vector (HVMOP_set_evtchn_upcall_vector).
    pub vector: Option<u8>,
}

/// A vCPU of a domain.
pub struct GuestVcpu {
    pub id: u32,
    pub domid: DomId,
    pub domain: Arc<Domain>,
    /// The hardware vCPU; the CPU running it holds the lock.
    pub hw: spin::Mutex<Box<dyn Vcpu>>,
    pub events: spin::Mutex<VcpuEvents>,
    /// Wake token: bit 0 set when its upcall became pending since its last
    /// entry (a SCHEDOP_block racing with it does not block).
    pub virqs: AtomicU32,
    /// Its upcall became pending: an upcall through the per-vCPU vector is
    /// owed (an edge, as Xen's vLAPIC IRR).
    pub upcall: AtomicBool,
    /// Quiet FLASK grants of the operations this vCPU made (the gate's
    /// per-vCPU decision cache in front of the AVC).
    pub decisions: crate::gate::DecisionCache,
    /// PV clock and runstate bookkeeping (`xen::time`).
    pub clock: crate::xen::time::VcpuClock,
    /// Its local APIC and the interrupt offered to it (`emul::exits`).
    pub lapic: spin::Mutex<crate::emul::exits::VcpuIntr>,
    /// Its MTRRs as the toolstack set them (the MTRR save record, PAT
    /// aside: that is in the hardware state). Kept, not applied: Warden
    /// maps guest RAM write-back and hides MTRRs in CPUID, as Xen maps an
    /// HVM guest on AMD without pass-through devices.
    pub mtrr: spin::Mutex<warden_abi::xen::hvm_save::HwMtrr>,
}

impl GuestVcpu {
    pub fn new(id: u32, domain: Arc<Domain>, hw: Box<dyn Vcpu>) -> GuestVcpu {
        GuestVcpu {
            id,
            domid: domain.id,
            domain,
            hw: spin::Mutex::new(hw),
            events: spin::Mutex::new(VcpuEvents::default()),
            virqs: AtomicU32::new(0),
            upcall: AtomicBool::new(false),
            decisions: crate::gate::DecisionCache::new(),
            clock: crate::xen::time::VcpuClock::default(),
            lapic: spin::Mutex::new(crate::emul::exits::VcpuIntr::new(id)),
            mtrr: spin::Mutex::new(crate::xen::hvmctx::mtrr_reset()),
        }
    }
}

impl core::fmt::Debug for GuestVcpu {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "d{}v{}", self.domid, self.id)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::guestmem::PagingState;
    use crate::vcpu::{Entry, HypercallArgs, VmExit};
    use warden_abi::vcpu::HvmContext;

    /// A vCPU that never runs (scheduler and table tests).
    pub struct Inert;
    impl Vcpu for Inert {
        fn run(&mut self, _: &Entry<'_>) -> crate::Result<VmExit> {
            Err(crate::err!(Unsupported, "inert test vCPU"))
        }
        fn hypercall_args(&self) -> HypercallArgs {
            HypercallArgs::default()
        }
        fn finish_hypercall(&mut self, _: u64) {}
        fn continue_hypercall(&mut self, _: &HypercallArgs) {}
        fn skip_halt(&mut self) {}
        fn paging(&self) -> PagingState {
            PagingState::default()
        }
        fn cpl(&self) -> u8 {
            0
        }
        fn rip(&self) -> u64 {
            0
        }
        fn context(&self) -> HvmContext {
            HvmContext::default()
        }
        fn set_context(&mut self, _: &HvmContext) {}
        fn dump(&self, _: &mut dyn core::fmt::Write) -> core::fmt::Result {
            Ok(())
        }
    }

    pub fn test_domain(id: DomId) -> Arc<Domain> {
        let mem = crate::p2m::testmem::SimMem::new(8);
        let p2m = P2m::new(&mem, 8).unwrap();
        // The simulated memory is dropped: tests using this never touch the physmap.
        Arc::new(Domain::new(id, 1, id == 0, String::new(), p2m, 0))
    }

    pub fn test_vcpu(domid: DomId, id: u32) -> Arc<GuestVcpu> {
        Arc::new(GuestVcpu::new(id, test_domain(domid), Box::new(Inert)))
    }

    #[test]
    fn reserve_install_snapshot_resolve_remove() {
        let t = DomainTable::new();
        let (id, generation) = t.reserve(Some(0)).unwrap();
        assert_eq!(id, 0);
        assert_eq!(t.reserve(Some(0)), Err(errno::EEXIST));
        assert!(t.snapshot(0).is_none(), "reserved, not yet live");
        let d = Arc::new(Domain {
            generation,
            ..Arc::try_unwrap(test_domain(0)).unwrap()
        });
        t.install(d, 3, 30);
        let s = t.snapshot(0).unwrap();
        assert_eq!((s.sid, s.self_sid, s.privileged), (3, 30, true));
        assert!(t.resolve(&s).is_ok());
        // Relabel: the old snapshot no longer resolves.
        t.set_label(0, 4, 40);
        assert_eq!(t.resolve(&s).unwrap_err(), errno::EAGAIN);
        let s2 = t.snapshot(0).unwrap();
        assert!(t.resolve(&s2).is_ok());
        // Auto allocation skips 0 and taken ids.
        let (a, _) = t.reserve(None).unwrap();
        let (b, _) = t.reserve(None).unwrap();
        assert_eq!((a, b), (1, 2));
        t.unreserve(a);
        assert!(t.remove(0).is_some());
        assert!(t.snapshot(0).is_none());
        assert_eq!(t.resolve(&s2).unwrap_err(), errno::ESRCH);
        // Reuse of the id gets a new generation: old snapshots stay dead.
        let (id, gen2) = t.reserve(Some(0)).unwrap();
        assert_eq!(id, 0);
        assert_ne!(gen2, generation);
        assert_eq!(t.reserve(Some(DOMID_FIRST_RESERVED)), Err(errno::EINVAL));
        assert_eq!(t.reserve(Some(MAX_DOMAINS as DomId)), Err(errno::EINVAL));
    }

    #[test]
    fn console_lines_are_split_and_sanitised() {
        let mut l = LineBuf::default();
        let mut out: Vec<Vec<u8>> = Vec::new();
        l.push(b"hello\x07 wor", |b, _| out.push(b.to_vec()));
        l.push(b"ld\r\nnext", |b, _| out.push(b.to_vec()));
        assert_eq!(out, [b"hello. world".to_vec()]);
        l.push(&[b'x'; 300], |b, _| out.push(b.to_vec()));
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].len(), CONSOLE_LINE_MAX);
    }

    #[test]
    fn snapshots_are_consistent_under_concurrent_relabels() {
        let t = Arc::new(DomainTable::new());
        let (_, generation) = t.reserve(Some(5)).unwrap();
        let d = Arc::new(Domain {
            generation,
            ..Arc::try_unwrap(test_domain(5)).unwrap()
        });
        t.install(d, 1, 1);
        let stop = Arc::new(AtomicBool::new(false));
        let (t2, stop2) = (t.clone(), stop.clone());
        let w = std::thread::spawn(move || {
            let mut i = 1u32;
            while !stop2.load(Ordering::Relaxed) {
                i += 1;
                t2.set_label(5, i, i);
            }
        });
        for _ in 0..200_000 {
            let s = t.snapshot(5).unwrap();
            assert_eq!(s.sid, s.self_sid, "torn read");
        }
        stop.store(true, Ordering::Relaxed);
        w.join().unwrap();
    }
}
