//! Grant tables, version 1 (Xen 4.17's `grant_table_op`, hypercall 20).
//!
//! Each domain has a [`GrantTable`]: its shared entries
//! ([`GrantEntryV1`], 512 per frame) live in frames the hypervisor
//! allocates and the domain maps with `XENMAPSPACE_grant_table`
//! ([`GrantTable::frame`]); beside them the hypervisor keeps one *active
//! entry* per reference (pin counts, the grantee, the frame pinned) and, for
//! the domain as a mapper, its [`Maptrack`] of handles.
//!
//! Locking (docs/ARCHITECTURE.md, "Grant tables: locking"): there is no
//! table-wide lock on the map, unmap or copy path. The frame list and the
//! active-entry chunks only grow (under [`GrantTable`]'s grow lock) and are
//! published with a release store of the frame count, so a reference is
//! bounds-checked and found with one acquire load. Each active entry has its
//! own lock, held only while its pins and the shared entry's
//! GTF_reading/GTF_writing flags change (the flags with cmpxchg / atomic and,
//! as Xen, since the guest writes the same word). The maptrack has per-vCPU
//! free lists ([`maptrack`]). What remains shared on a map is the granter's
//! physmap lock for reading (it keeps the granted frame from being freed
//! between the lookup and the pin) and the mapper's physmap lock for writing
//! (the nested-page-table update itself). [`LockMode::Table`] puts one lock
//! around every table operation instead, the design XenServer measured as the
//! bottleneck; it exists for the benchmark (`hvcore/benches/gnttab.rs`).
//!
//! Frame lifetime: a pinned frame (mapped or being copied) is never freed
//! under its mapper. When its owner gives it up (decrease_reservation) or
//! dies while it is pinned, it is taken out of the owner's physmap and
//! *orphaned*: the release of the last pin on it scrubs and frees it. The
//! table's own frames are freed once the owner is dead and nothing is
//! pinned. A dying mapper's mappings are undone before its memory is
//! released ([`GrantTable::unmap_all`]).

pub mod maptrack;
mod physmap;
#[cfg(test)]
mod tests;

use crate::domain::{DomSnap, Domain};
use crate::frameref::FrameRefs;
use crate::p2m::{HostMem, Kind, P2m};
use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
pub use maptrack::{Mapping, Maptrack};
use warden_abi::DomId;
use warden_abi::xen::grant_table::*;

/// Grant-table frames a domain may have (Xen's default `max_grant_frames`).
pub const MAX_GRANT_FRAMES: u32 = 64;
/// Frames a table starts with (Xen's INITIAL_NR_GRANT_FRAMES).
pub const INITIAL_FRAMES: u32 = 1;
/// v1 entries per frame.
const PER_FRAME: u32 = ENTRIES_PER_FRAME_V1;
/// Pins of one kind (read-only / writable) an active entry holds at most
/// (Xen's 8-bit host pin counters: more is GNTST_general_error).
pub const MAX_PINS: u32 = 0xff;
/// A frame not in its owner's physmap (Xen's INVALID_GFN).
pub const NO_GFN: u64 = u64::MAX;

/// How a table serialises its operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// Per-active-entry locks, per-vCPU maptrack lists (Warden's design).
    PerEntry,
    /// One lock around every operation on the table and one maptrack list
    /// (the single grant-table lock XenServer found to be the bottleneck;
    /// the benchmark's "before").
    Table,
}

/// What the hypervisor keeps per grant reference.
#[derive(Debug, Default)]
struct Active {
    /// Read-only pins (read-only maps, copy sources).
    ro: u32,
    /// Writable pins (writable maps, copy destinations).
    rw: u32,
    /// The grantee, while pinned.
    domid: DomId,
    /// The granter's frame pinned, while pinned.
    gfn: u64,
    pa: u64,
    /// The frame left the granter's physmap while pinned: the last release frees it.
    orphaned: bool,
}

impl Active {
    fn pinned(&self) -> bool {
        self.ro + self.rw > 0
    }
}

type Chunk = Box<[spin::Mutex<Active>]>;

/// A domain's grant table (as granter) and maptrack (as mapper).
pub struct GrantTable {
    /// The owner.
    pub domid: DomId,
    max_frames: u32,
    /// Frames in use (published after `frames` and `active`).
    nr_frames: AtomicU32,
    /// Host address of each shared frame.
    frames: Box<[AtomicU64]>,
    /// Where the owner mapped each frame ([`NO_GFN`]: nowhere).
    gfns: Box<[AtomicU64]>,
    /// Active entries, one chunk per frame.
    active: Box<[spin::Once<Chunk>]>,
    /// Growth (and the frame list) only.
    grow: spin::Mutex<()>,
    /// The owner's maptrack.
    pub maptrack: Maptrack,
    /// The owner is dying: no new pins.
    dying: AtomicBool,
    /// Active entries with pins.
    pinned: AtomicU32,
    /// Orphaned frames: how many active entries still pin each.
    orphans: spin::Mutex<BTreeMap<u64, u32>>,
    /// Set (under this lock) once the table's frames are freed; foreign
    /// references on them are taken under it too.
    frames_freed: spin::Mutex<bool>,
    /// The hypervisor's record of frames held beyond their owner (foreign
    /// mappings): an orphaned frame or a table frame is freed only when it
    /// says so. Unset: nothing else holds frames (this module's tests).
    refs: spin::Once<Arc<FrameRefs>>,
    mode: LockMode,
    /// [`LockMode::Table`]'s lock.
    big: spin::Mutex<()>,
}

impl core::fmt::Debug for GrantTable {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "GrantTable(d{}, {} frames)",
            self.domid,
            self.nr_frames()
        )
    }
}

/// A per-entry result: GNTST_* on failure.
pub type Status = Result<(), i16>;

impl GrantTable {
    /// An empty table (no frames yet) of at most `max_frames` frames and
    /// `maptrack_chunks` maptrack chunks.
    pub fn new(domid: DomId, max_frames: u32, maptrack_chunks: u32, mode: LockMode) -> GrantTable {
        let max_frames = max_frames.clamp(1, MAX_GRANT_FRAMES);
        GrantTable {
            domid,
            max_frames,
            nr_frames: AtomicU32::new(0),
            frames: (0..max_frames).map(|_| AtomicU64::new(0)).collect(),
            gfns: (0..max_frames).map(|_| AtomicU64::new(NO_GFN)).collect(),
            active: (0..max_frames).map(|_| spin::Once::new()).collect(),
            grow: spin::Mutex::new(()),
            maptrack: Maptrack::new(maptrack_chunks),
            dying: AtomicBool::new(false),
            pinned: AtomicU32::new(0),
            orphans: spin::Mutex::new(BTreeMap::new()),
            frames_freed: spin::Mutex::new(false),
            refs: spin::Once::new(),
            mode,
            big: spin::Mutex::new(()),
        }
    }

    /// A table with Xen's default limits.
    pub fn with_defaults(domid: DomId) -> GrantTable {
        GrantTable::new(
            domid,
            MAX_GRANT_FRAMES,
            maptrack::MAX_CHUNKS,
            LockMode::PerEntry,
        )
    }

    /// Share the hypervisor's record of frames held beyond their owner
    /// (once, before the table is used).
    pub fn set_frame_refs(&self, refs: Arc<FrameRefs>) {
        self.refs.call_once(|| refs);
    }

    /// Take a foreign mapping's reference on frame `idx` of the table
    /// (grown to `idx + 1` frames; acquire_resource): its host address.
    /// EINVAL beyond the maximum, ESRCH once the owner is dying, ENOMEM
    /// when the table cannot grow or the frame has too many references.
    pub fn foreign_frame(&self, mem: &dyn HostMem, idx: u64) -> Result<u64, i32> {
        use warden_abi::errno;
        let pa = self.frame(mem, idx)?;
        let refs = self.refs.get().ok_or(errno::EOPNOTSUPP)?;
        let freed = self.frames_freed.lock();
        if *freed || self.dying.load(Ordering::SeqCst) {
            return Err(errno::ESRCH);
        }
        refs.get(pa)?;
        drop(freed);
        Ok(pa)
    }

    /// Its lock mode.
    pub fn mode(&self) -> LockMode {
        self.mode
    }

    fn big(&self) -> Option<spin::MutexGuard<'_, ()>> {
        (self.mode == LockMode::Table).then(|| self.big.lock())
    }

    /// Frames in use.
    pub fn nr_frames(&self) -> u32 {
        self.nr_frames.load(Ordering::Acquire)
    }

    /// Frames it may have.
    pub fn max_frames(&self) -> u32 {
        self.max_frames
    }

    /// The version in force (Warden implements v1 only).
    pub fn version(&self) -> u32 {
        1
    }

    /// Grow to at least `n` frames (at most the maximum): EINVAL when the
    /// maximum is smaller, ESRCH once the owner is dying, ENOMEM when memory
    /// is exhausted (the frames added before stay).
    pub fn grow(&self, mem: &dyn HostMem, n: u32) -> Result<(), i32> {
        use warden_abi::errno;
        let n = n.max(INITIAL_FRAMES);
        if n > self.max_frames {
            return Err(errno::EINVAL);
        }
        let _g = self.grow.lock();
        let mut cur = self.nr_frames.load(Ordering::Relaxed);
        while cur < n {
            if self.dying.load(Ordering::Acquire) {
                return Err(errno::ESRCH);
            }
            // Fallible: an exhausted heap refuses the growth.
            let mut v = Vec::new();
            v.try_reserve_exact(PER_FRAME as usize)
                .map_err(|_| errno::ENOMEM)?;
            v.extend((0..PER_FRAME).map(|_| spin::Mutex::new(Active::default())));
            let chunk: Chunk = v.into_boxed_slice();
            let pa = mem.alloc_frame().ok_or(errno::ENOMEM)?;
            self.active[cur as usize].call_once(|| chunk);
            self.frames[cur as usize].store(pa, Ordering::Relaxed);
            cur += 1;
            self.nr_frames.store(cur, Ordering::Release);
        }
        Ok(())
    }

    /// Host frame `idx` of the table (grown to `idx + 1` frames), for
    /// XENMAPSPACE_grant_table: EINVAL beyond the maximum (and for v2 status
    /// frames), ENOMEM if it cannot grow.
    pub fn frame(&self, mem: &dyn HostMem, idx: u64) -> Result<u64, i32> {
        if idx & XENMAPIDX_GRANT_TABLE_STATUS != 0 || idx >= self.max_frames as u64 {
            return Err(warden_abi::errno::EINVAL);
        }
        self.grow(mem, idx as u32 + 1)?;
        Ok(self.frames[idx as usize].load(Ordering::Relaxed))
    }

    /// Where the owner mapped frame `idx` ([`NO_GFN`]: nowhere).
    pub fn frame_gfn(&self, idx: u32) -> u64 {
        self.gfns
            .get(idx as usize)
            .map_or(NO_GFN, |g| g.load(Ordering::Acquire))
    }

    /// Record where the owner mapped frame `idx` (under the owner's physmap
    /// write lock); the previous place.
    pub fn set_frame_gfn(&self, idx: u32, gfn: u64) -> u64 {
        self.gfns
            .get(idx as usize)
            .map_or(NO_GFN, |g| g.swap(gfn, Ordering::AcqRel))
    }

    /// Entries in use.
    pub fn nr_entries(&self) -> u32 {
        self.nr_frames() * PER_FRAME
    }

    /// Host address of entry `gref` and its active entry (None: beyond the table).
    fn entry(&self, gref: u32) -> Option<(u64, &spin::Mutex<Active>)> {
        let f = gref / PER_FRAME;
        if f >= self.nr_frames() {
            return None;
        }
        let act = self.active[f as usize]
            .get()?
            .get((gref % PER_FRAME) as usize)?;
        let pa = self.frames[f as usize].load(Ordering::Relaxed) + (gref % PER_FRAME) as u64 * 8;
        Some((pa, act))
    }

    /// The shared entry `gref` as the guest wrote it.
    pub fn read_entry(&self, mem: &dyn HostMem, gref: u32) -> Option<GrantEntryV1> {
        let (pa, _) = self.entry(gref)?;
        let mut b = [0u8; 8];
        mem.read(pa, &mut b);
        Some(GrantEntryV1 {
            flags: u16::from_le_bytes([b[0], b[1]]),
            domid: u16::from_le_bytes([b[2], b[3]]),
            frame: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        })
    }

    /// Write shared entry `gref` (the owner's side, for tests and builders).
    pub fn write_entry(&self, mem: &dyn HostMem, gref: u32, e: &GrantEntryV1) -> bool {
        let Some((pa, _)) = self.entry(gref) else {
            return false;
        };
        mem.write(pa + 4, &e.frame.to_le_bytes());
        mem.write(pa + 2, &e.domid.to_le_bytes());
        mem.write(pa, &e.flags.to_le_bytes());
        true
    }

    /// Pin counts of `gref` (read-only, writable), for tests and invariants.
    pub fn pins(&self, gref: u32) -> Option<(u32, u32)> {
        let (_, act) = self.entry(gref)?;
        let a = act.lock();
        Some((a.ro, a.rw))
    }

    /// Active entries with pins.
    pub fn pinned_entries(&self) -> u32 {
        self.pinned.load(Ordering::Acquire)
    }

    /// Orphaned frames still pinned.
    pub fn orphans(&self) -> usize {
        self.orphans.lock().len()
    }

    /// Pin `gref` for `ldom` (read-only or writable) and set
    /// GTF_reading/GTF_writing in the shared entry, as Xen's map_grant_ref
    /// and acquire_grant_for_copy. `p2m` is the owner's physmap, held for
    /// reading by the caller (so the frame found cannot be freed before it
    /// is pinned). Returns the frame and the entry's cache-attribute flags.
    pub fn acquire(
        &self,
        mem: &dyn HostMem,
        p2m: &P2m,
        gref: u32,
        ldom: DomId,
        readonly: bool,
        mapflag: bool,
    ) -> Result<(u64, u16), i16> {
        let _big = self.big();
        let (epa, act) = self.entry(gref).ok_or(GNTST_BAD_GNTREF)?;
        let mut a = act.lock();
        if a.pinned() && a.domid != ldom {
            return Err(GNTST_GENERAL_ERROR);
        }
        if self.dying.load(Ordering::SeqCst) {
            return Err(GNTST_GENERAL_ERROR);
        }
        if (readonly && a.ro >= MAX_PINS) || (!readonly && a.rw >= MAX_PINS) {
            return Err(GNTST_GENERAL_ERROR);
        }
        let was_pinned = a.pinned();
        if !was_pinned || (!readonly && a.rw == 0) {
            set_status(mem, epa, was_pinned, readonly, ldom, mapflag)?;
        }
        if !was_pinned {
            let mut fb = [0u8; 4];
            mem.read(epa + 4, &mut fb);
            let gfn = u32::from_le_bytes(fb) as u64;
            match p2m.lookup_kind(mem, gfn) {
                Some((pa, Kind::Ram)) => {
                    a.gfn = gfn;
                    a.pa = pa;
                    a.domid = ldom;
                    a.orphaned = false;
                }
                _ => {
                    // Xen's unlock_out_clear.
                    let mut clear = GTF_READING;
                    if !readonly {
                        clear |= GTF_WRITING;
                    }
                    clear_flags(mem, epa, clear);
                    return Err(GNTST_BAD_PAGE);
                }
            }
            self.pinned.fetch_add(1, Ordering::SeqCst);
        }
        if readonly {
            a.ro += 1;
        } else {
            a.rw += 1;
        }
        let mut fl = [0u8; 2];
        mem.read(epa, &mut fl);
        let cache = u16::from_le_bytes(fl) & (GTF_PWT | GTF_PCD | GTF_PAT);
        Ok((a.pa, cache))
    }

    /// Drop one pin of `gref` taken by [`GrantTable::acquire`]; clear the
    /// flags no pin needs any more; free the frame if it was orphaned and
    /// this was its last pin.
    pub fn release(&self, mem: &dyn HostMem, gref: u32, readonly: bool) {
        let _big = self.big();
        let Some((epa, act)) = self.entry(gref) else {
            return;
        };
        let mut a = act.lock();
        let n = if readonly { &mut a.ro } else { &mut a.rw };
        if *n == 0 {
            log::error!(
                "grant table d{}: release of unpinned ref {gref}",
                self.domid
            );
            return;
        }
        *n -= 1;
        if a.rw == 0 {
            clear_flags(mem, epa, GTF_WRITING);
        }
        if a.pinned() {
            return;
        }
        clear_flags(mem, epa, GTF_READING);
        if a.orphaned {
            a.orphaned = false;
            let mut o = self.orphans.lock();
            if let Some(c) = o.get_mut(&a.pa) {
                *c -= 1;
                if *c == 0 {
                    o.remove(&a.pa);
                    // Foreign mappings may still hold it.
                    if self.refs.get().is_none_or(|r| r.grant_released(a.pa)) {
                        mem.zero_frame(a.pa);
                        mem.free_frame(a.pa);
                    }
                }
            }
        }
        drop(a);
        if self.pinned.fetch_sub(1, Ordering::SeqCst) == 1 && self.dying.load(Ordering::SeqCst) {
            self.free_frames(mem);
        }
    }

    /// Orphan every pinned entry's frame equal to `pa` (or every pinned
    /// frame, `None`); the owner's physmap is held for writing. Returns
    /// the frames orphaned.
    fn orphan(&self, pa: Option<u64>) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        if self.pinned.load(Ordering::SeqCst) == 0 {
            return out;
        }
        for gref in 0..self.nr_entries() {
            let Some((_, act)) = self.entry(gref) else {
                break;
            };
            let mut a = act.lock();
            if !a.pinned() || a.orphaned || pa.is_some_and(|p| p != a.pa) {
                continue;
            }
            a.orphaned = true;
            *self.orphans.lock().entry(a.pa).or_insert(0) += 1;
            out.push((a.gfn, a.pa));
        }
        out
    }

    /// The owner gives up the frame `pa` (decrease_reservation, under its
    /// physmap write lock): true if grants pin it, in which case it is
    /// orphaned (the last release frees it) and must not be freed now.
    pub fn orphan_if_pinned(&self, pa: u64) -> bool {
        !self.orphan(Some(pa)).is_empty()
    }

    /// The owner is dying (called once, under its physmap write lock, with
    /// its vCPUs stopped): no new pins; pinned frames leave its physmap
    /// (orphaned); its table frames leave it too and are freed once nothing
    /// is pinned (nor mapped by a foreign mapping). Returns the RAM frames
    /// that left the physmap (the owner gave them up, grant-pinned).
    pub fn close(&self, mem: &dyn HostMem, p2m: &mut P2m) -> Vec<u64> {
        self.dying.store(true, Ordering::SeqCst);
        let _g = self.grow.lock();
        let mut removed = Vec::new();
        for (gfn, pa) in self.orphan(None) {
            if p2m.unmap_if(mem, gfn, pa, Kind::Ram) {
                removed.push(pa);
            }
        }
        for i in 0..self.nr_frames() {
            let gfn = self.set_frame_gfn(i, NO_GFN);
            if gfn != NO_GFN {
                p2m.unmap_if(
                    mem,
                    gfn,
                    self.frames[i as usize].load(Ordering::Relaxed),
                    Kind::Xen,
                );
            }
        }
        if self.pinned.load(Ordering::SeqCst) == 0 {
            self.free_frames(mem);
        }
        removed
    }

    /// Whether [`GrantTable::close`] ran.
    pub fn is_dying(&self) -> bool {
        self.dying.load(Ordering::SeqCst)
    }

    fn free_frames(&self, mem: &dyn HostMem) {
        let mut freed = self.frames_freed.lock();
        if *freed {
            return;
        }
        *freed = true;
        for i in 0..self.nr_frames() {
            let pa = self.frames[i as usize].load(Ordering::Relaxed);
            // A foreign mapping (acquire_resource) keeps it until it goes.
            if self.refs.get().is_none_or(|r| r.owner_release(pa, false)) {
                mem.zero_frame(pa);
                mem.free_frame(pa);
            }
        }
    }

    /// A maptrack handle for a map by vCPU `vcpu`.
    pub fn maptrack_alloc(&self, vcpu: u32) -> Option<u32> {
        match self.big() {
            Some(_g) => self.maptrack.alloc(0),
            None => self.maptrack.alloc(vcpu),
        }
    }

    /// Give a handle back.
    pub fn maptrack_free(&self, vcpu: u32, handle: u32) {
        match self.big() {
            Some(_g) => self.maptrack.free(0, handle),
            None => self.maptrack.free(vcpu, handle),
        }
    }

    /// The owner (as mapper) is dying (under its physmap write lock, its
    /// vCPUs stopped): undo every grant it maps, releasing the granters'
    /// pins. Returns how many it undid.
    pub fn unmap_all(&self, mem: &dyn HostMem, p2m: &mut P2m) -> usize {
        let all = self.maptrack.drain();
        for m in &all {
            p2m.unmap_if(
                mem,
                m.gfn,
                m.pa,
                Kind::Grant {
                    writable: !m.readonly,
                },
            );
            m.granter.release(mem, m.gref, m.readonly);
        }
        all.len()
    }
}

/// Clear `bits` of the flags of the (8-byte aligned) shared entry at `epa`,
/// atomically against the guest (Xen's clear_bit).
fn clear_flags(mem: &dyn HostMem, epa: u64, bits: u16) {
    mem.fetch_and_u64(epa, !(bits as u64));
}

/// Set GTF_reading (and GTF_writing unless `readonly`) in the shared entry
/// at `epa`, checking type and grantee when not yet pinned (Xen's
/// `_set_status_v1`: at most five cmpxchg attempts against a guest racing
/// the same word).
fn set_status(
    mem: &dyn HostMem,
    epa: u64,
    pinned: bool,
    readonly: bool,
    ldom: DomId,
    mapflag: bool,
) -> Status {
    let mask = GTF_TYPE_MASK | if mapflag { GTF_SUB_PAGE } else { 0 };
    let mut b = [0u8; 4];
    mem.read(epa, &mut b);
    let mut cur = u32::from_le_bytes(b);
    for _ in 0..5 {
        let flags = cur as u16;
        let domid = (cur >> 16) as u16;
        if !pinned && ((flags & mask) != GTF_PERMIT_ACCESS || domid != ldom) {
            return Err(GNTST_GENERAL_ERROR);
        }
        let mut nf = flags | GTF_READING;
        if !readonly {
            if flags & GTF_READONLY != 0 {
                return Err(GNTST_GENERAL_ERROR);
            }
            nf |= GTF_WRITING;
        }
        let new = (cur & 0xffff_0000) | nf as u32;
        let prev = mem.cmpxchg_u32(epa, cur, new);
        if prev == cur {
            return Ok(());
        }
        cur = prev;
    }
    Err(GNTST_GENERAL_ERROR)
}

/// map_grant_ref for a translated mapper: map `granter`'s `op.ref_` at
/// guest-physical `op.host_addr` of `mapper` (calling vCPU `vcpu`). The
/// domain lookup and the FLASK check are the caller's (GNTST_bad_domain,
/// GNTST_permission_denied). Returns the handle.
pub fn map(
    mem: &dyn HostMem,
    mapper: &Domain,
    vcpu: u32,
    granter: &Domain,
    granter_snap: DomSnap,
    op: &MapGrantRef,
) -> Result<u32, i16> {
    if op.flags & (GNTMAP_HOST_MAP | GNTMAP_DEVICE_MAP) == 0 {
        return Err(GNTST_BAD_GNTREF);
    }
    // "No device mapping in HVM domain".
    if op.flags & (GNTMAP_DEVICE_MAP | GNTMAP_APPLICATION_MAP | GNTMAP_CONTAINS_PTE) != 0 {
        return Err(GNTST_GENERAL_ERROR);
    }
    let ro = op.flags & GNTMAP_READONLY != 0;
    let lgt = &mapper.gnttab;
    let handle = lgt.maptrack_alloc(vcpu).ok_or(GNTST_NO_SPACE)?;
    let r = map_with(mem, mapper, granter, granter_snap, op, ro, handle);
    if r.is_err() {
        lgt.maptrack_free(vcpu, handle);
    }
    r.map(|_| handle)
}

fn map_with(
    mem: &dyn HostMem,
    mapper: &Domain,
    granter: &Domain,
    granter_snap: DomSnap,
    op: &MapGrantRef,
    ro: bool,
    handle: u32,
) -> Status {
    let rgt = &granter.gnttab;
    let (pa, cache) = {
        let m = granter.mem.read();
        let p2m = m.p2m.as_ref().ok_or(GNTST_GENERAL_ERROR)?;
        rgt.acquire(mem, p2m, op.ref_, mapper.id, ro, true)?
    };
    let gfn = op.host_addr >> 12;
    let mut m = mapper.mem.write();
    let r = if cache != 0 || mapper.gnttab.is_dying() {
        Err(GNTST_GENERAL_ERROR)
    } else {
        match m.p2m.as_mut() {
            Some(p) => p
                .map_grant(mem, gfn, pa, !ro)
                .map_err(|_| GNTST_GENERAL_ERROR),
            None => Err(GNTST_GENERAL_ERROR),
        }
    };
    match r {
        Ok(()) => {
            // Recorded under the mapper's physmap lock: a concurrent death
            // of the mapper (unmap_all, under the same lock) sees it.
            if let Some(e) = mapper.gnttab.maptrack.entry(handle) {
                *e.lock() = Some(Mapping {
                    granter: granter.gnttab.clone(),
                    granter_snap,
                    gref: op.ref_,
                    gfn,
                    pa,
                    readonly: ro,
                });
            }
            Ok(())
        }
        Err(e) => {
            drop(m);
            rgt.release(mem, op.ref_, ro);
            Err(e)
        }
    }
}

/// The granter of a live handle of `mapper` (for the unmap check):
/// GNTST_bad_handle if there is none.
pub fn mapping_of(mapper: &Domain, handle: u32) -> Result<Mapping, i16> {
    mapper
        .gnttab
        .maptrack
        .entry(handle)
        .and_then(|e| e.lock().clone())
        .ok_or(GNTST_BAD_HANDLE)
}

/// unmap_grant_ref: undo `op.handle` of `mapper` (checked against granter
/// `granter_id`). `flush` makes every CPU drop the mapper's stale
/// translations; it runs before the pin is released.
pub fn unmap(
    mem: &dyn HostMem,
    mapper: &Domain,
    vcpu: u32,
    op: &UnmapGrantRef,
    granter_id: DomId,
    flush: &dyn Fn(),
) -> Status {
    let entry = mapper
        .gnttab
        .maptrack
        .entry(op.handle)
        .ok_or(GNTST_BAD_HANDLE)?;
    let mut m = mapper.mem.write();
    let mut slot = entry.lock();
    let mp = slot.as_ref().ok_or(GNTST_BAD_HANDLE)?;
    if mp.granter.domid != granter_id {
        return Err(GNTST_BAD_HANDLE);
    }
    // Xen: no host address, no host mapping undone (and the handle stays).
    if op.host_addr == 0 {
        return Ok(());
    }
    if op.host_addr >> 12 != mp.gfn {
        return Err(GNTST_GENERAL_ERROR);
    }
    let kind = Kind::Grant {
        writable: !mp.readonly,
    };
    let ok = m
        .p2m
        .as_mut()
        .is_some_and(|p| p.unmap_if(mem, mp.gfn, mp.pa, kind));
    if !ok {
        return Err(GNTST_GENERAL_ERROR);
    }
    let Some(mp) = slot.take() else {
        return Err(GNTST_BAD_HANDLE);
    };
    drop(slot);
    flush();
    drop(m);
    mp.granter.release(mem, mp.gref, mp.readonly);
    mapper.gnttab.maptrack_free(vcpu, op.handle);
    Ok(())
}

/// One side of a copy, resolved by the caller.
#[derive(Clone, Copy)]
pub enum Side<'a> {
    /// Grant `gref` of `domain`.
    Gref(&'a Domain, u32),
    /// The caller's own frame `gfn`.
    Gmfn(u64),
}

/// copy: `op.len` bytes from `src` at `op.source.offset` to `dst` at
/// `op.dest.offset`, for `caller` (the domain lookups and the FLASK check
/// are the caller's).
pub fn copy(mem: &dyn HostMem, caller: &Domain, src: Side<'_>, dst: Side<'_>, op: &Copy) -> Status {
    let s = claim(mem, caller.id, src, true)?;
    let d = match claim(mem, caller.id, dst, false) {
        Ok(d) => d,
        Err(e) => {
            unclaim(mem, src, true);
            return Err(e);
        }
    };
    let r = copy_claimed(mem, caller, src, dst, s, d, op);
    unclaim(mem, src, true);
    unclaim(mem, dst, false);
    r
}

fn claim(
    mem: &dyn HostMem,
    ldom: DomId,
    side: Side<'_>,
    readonly: bool,
) -> Result<Option<u64>, i16> {
    match side {
        Side::Gref(d, gref) => {
            let m = d.mem.read();
            let p2m = m.p2m.as_ref().ok_or(GNTST_GENERAL_ERROR)?;
            d.gnttab
                .acquire(mem, p2m, gref, ldom, readonly, false)
                .map(|(pa, _)| Some(pa))
        }
        Side::Gmfn(_) => Ok(None),
    }
}

fn unclaim(mem: &dyn HostMem, side: Side<'_>, readonly: bool) {
    if let Side::Gref(d, gref) = side {
        d.gnttab.release(mem, gref, readonly);
    }
}

fn copy_claimed(
    mem: &dyn HostMem,
    caller: &Domain,
    src: Side<'_>,
    dst: Side<'_>,
    s: Option<u64>,
    d: Option<u64>,
    op: &Copy,
) -> Status {
    // The caller's own frames stay while its physmap is held for reading.
    let own = matches!(src, Side::Gmfn(_)) || matches!(dst, Side::Gmfn(_));
    let guard = own.then(|| caller.mem.read());
    let own_frame = |gfn: u64, write: bool| -> Result<u64, i16> {
        let p2m = guard
            .as_ref()
            .and_then(|g| g.p2m.as_ref())
            .ok_or(GNTST_GENERAL_ERROR)?;
        match p2m.lookup_kind(mem, gfn) {
            Some((pa, Kind::Ram | Kind::Xen)) => Ok(pa),
            Some((_, Kind::Grant { .. })) if write => Err(GNTST_GENERAL_ERROR),
            _ => Err(GNTST_BAD_PAGE),
        }
    };
    let spa = match (src, s) {
        (Side::Gmfn(gfn), _) => own_frame(gfn, false)?,
        (_, Some(pa)) => pa,
        _ => return Err(GNTST_GENERAL_ERROR),
    };
    let dpa = match (dst, d) {
        (Side::Gmfn(gfn), _) => own_frame(gfn, true)?,
        (_, Some(pa)) => pa,
        _ => return Err(GNTST_GENERAL_ERROR),
    };
    let (so, dof, len) = (
        op.source.offset as u64,
        op.dest.offset as u64,
        op.len as u64,
    );
    if so + len > 4096 || dof + len > 4096 {
        return Err(GNTST_BAD_COPY_ARG);
    }
    let mut buf = [0u8; 512];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(512) as usize;
        mem.read(spa + so + done, &mut buf[..n]);
        mem.write(dpa + dof + done, &buf[..n]);
        done += n as u64;
    }
    drop(guard);
    Ok(())
}
