//! Host memory for domains, and each domain's physmap: the nested page
//! tables (AMD NPT, the x86-64 4-level format) that map guest-physical frames
//! to host frames. Table and data frames come from [`HostMem`] (the frame
//! allocator, in the image); the hypervisor reaches them through its identity
//! map. A domain's guest-physical space is limited to [`GFN_LIMIT`] frames and
//! its page-table frames to a pool sized from its memory limit, so a guest
//! populating sparse addresses cannot make the host allocate without bound.

use crate::guestmem::{Fault, GuestPhys};

/// Host physical memory: frames and byte access to them (the image's frame
/// allocator and identity map; a simulated memory in host tests).
///
/// Callers pass the access methods only addresses inside frames they
/// obtained from [`HostMem::alloc_frame`] and have not freed, within one
/// frame. The methods are safe to call all the same: implementations check
/// that in release builds too (see the contract below).
///
/// # Safety
/// Every method must be memory-safe for any argument. An implementation over
/// real memory must refuse (and report) any access, zeroing or free of a
/// range that is not within one frame it lent through `alloc_frame` and has
/// not taken back: a read gives zeros, a write, zeroing or free does nothing
/// (the image's `FrameMem` keeps the lent frames in a
/// [`LentFrames`](crate::lent::LentFrames)). What the check cannot see is an
/// access racing with the free of the same frame; callers exclude that by
/// freeing a domain's frames only under its memory write lock, which every
/// access to them holds for reading.
pub unsafe trait HostMem: Sync {
    /// A zeroed frame, or None when memory is exhausted.
    fn alloc_frame(&self) -> Option<u64>;
    /// Return a frame (the caller scrubbed it if it held guest data).
    fn free_frame(&self, pa: u64);
    /// Copy from host physical `pa` (within one frame).
    fn read(&self, pa: u64, buf: &mut [u8]);
    /// Copy to host physical `pa` (within one frame).
    fn write(&self, pa: u64, buf: &[u8]);
    /// Zero a whole frame.
    fn zero_frame(&self, pa: u64);
    /// Free frames now.
    fn free_frames(&self) -> u64;
    /// Frames under the allocator's management.
    fn total_frames(&self) -> u64;
    /// Highest host frame number.
    fn max_mfn(&self) -> u64;
    /// Atomically (against guests sharing the frame too) replace the
    /// 4-byte-aligned u32 at `pa` with `new` if it equals `old`; returns the
    /// value found (the grant entries' flags and domid, as Xen's cmpxchg).
    fn cmpxchg_u32(&self, pa: u64, old: u32, new: u32) -> u32;
    /// Atomically OR `v` into the u64 at host physical `pa` (8-byte aligned,
    /// so within one frame); returns the previous value (0 for a refused
    /// access). A guest may update the same word concurrently (event bits).
    fn fetch_or_u64(&self, pa: u64, v: u64) -> u64;
    /// Atomically AND `v` into the u64 at `pa` (as [`HostMem::fetch_or_u64`]).
    fn fetch_and_u64(&self, pa: u64, v: u64) -> u64;

    /// Read a little-endian u64.
    fn read_u64(&self, pa: u64) -> u64 {
        let mut b = [0u8; 8];
        self.read(pa, &mut b);
        u64::from_le_bytes(b)
    }
    /// Write a little-endian u64.
    fn write_u64(&self, pa: u64, v: u64) {
        self.write(pa, &v.to_le_bytes());
    }
}

/// Guest frame numbers must be below this (64 GiB of guest-physical space).
pub const GFN_LIMIT: u64 = 1 << 24;

const P: u64 = 1;
const RW: u64 = 1 << 1;
const US: u64 = 1 << 2;
const ADDR: u64 = 0x000f_ffff_ffff_f000;
/// Nested entries: present, writable, user (nested walks are user accesses).
const NPT_FLAGS: u64 = P | RW | US;
/// Software bit (ignored by the walk): a grant mapping of another domain's
/// frame (grant_map_rw/ro): never freed or scrubbed through this physmap.
const GRANT: u64 = 1 << 9;
/// Software bit: a frame the hypervisor owns (a grant-table frame the
/// domain mapped with XENMAPSPACE_grant_table): never freed through this physmap.
const XEN_OWNED: u64 = 1 << 10;
/// Software bit: another domain's frame mapped with XENMAPSPACE_gmfn_foreign
/// or acquire_resource (Xen's p2m_map_foreign); the mapping holds a
/// reference ([`crate::frameref::FrameRefs`]), never frees the frame itself.
const FOREIGN: u64 = 1 << 11;

/// What a physmap entry maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The domain's own RAM.
    Ram,
    /// Another domain's frame mapped by grant.
    Grant { writable: bool },
    /// A frame of the hypervisor's (a grant-table frame).
    Xen,
    /// Another domain's frame mapped by the toolstack (foreign mapping).
    Foreign,
}

impl Kind {
    fn of(e: u64) -> Kind {
        if e & FOREIGN != 0 {
            Kind::Foreign
        } else if e & GRANT != 0 {
            Kind::Grant {
                writable: e & RW != 0,
            }
        } else if e & XEN_OWNED != 0 {
            Kind::Xen
        } else {
            Kind::Ram
        }
    }
}

/// Why a mapping failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapError {
    /// The frame is already mapped.
    Exists,
    /// The frame number is beyond [`GFN_LIMIT`].
    OutOfRange,
    /// The page-table pool or host memory is exhausted.
    NoMemory,
}

/// A domain's nested page tables.
#[derive(Debug)]
pub struct P2m {
    root: u64,
    tables: u64,
    table_limit: u64,
    mapped: u64,
    /// The highest guest frame ever mapped (Xen's `max_mapped_pfn`).
    max_mapped: u64,
}

impl P2m {
    /// Empty tables; at most `table_limit` table frames (the root included).
    pub fn new(mem: &dyn HostMem, table_limit: u64) -> Option<P2m> {
        let root = mem.alloc_frame()?;
        Some(P2m {
            root,
            tables: 1,
            table_limit: table_limit.max(4),
            mapped: 0,
            max_mapped: 0,
        })
    }

    /// The table-frame budget for a domain allowed `max_pages` pages: four
    /// times what dense memory needs, plus a few.
    pub fn table_budget(max_pages: u64) -> u64 {
        8 + 4 * max_pages.div_ceil(512)
    }

    /// Raise the table budget (the memory limit grew).
    pub fn set_table_limit(&mut self, limit: u64) {
        self.table_limit = self.table_limit.max(limit);
    }

    /// Set the table budget (the paging pool's size), never below the
    /// tables in use.
    pub fn set_table_pool(&mut self, limit: u64) {
        self.table_limit = limit.max(self.tables).max(4);
    }

    /// The table budget in frames.
    pub fn table_limit(&self) -> u64 {
        self.table_limit
    }

    /// The highest guest frame ever mapped (0 if none).
    pub fn max_mapped(&self) -> u64 {
        self.max_mapped
    }

    /// Physical address of the top-level table (the VMCB's N_CR3).
    pub fn root(&self) -> u64 {
        self.root
    }

    /// Table frames in use.
    pub fn table_frames(&self) -> u64 {
        self.tables
    }

    /// Guest frames mapped.
    pub fn mapped(&self) -> u64 {
        self.mapped
    }

    fn index(gfn: u64, level: u32) -> u64 {
        (gfn >> (9 * (level - 1))) & 511
    }

    /// The leaf entry's address for `gfn`, creating tables if `create`.
    fn leaf(&mut self, mem: &dyn HostMem, gfn: u64, create: bool) -> Result<Option<u64>, MapError> {
        let mut table = self.root;
        for level in [4u32, 3, 2] {
            let slot = table + Self::index(gfn, level) * 8;
            let e = mem.read_u64(slot);
            if e & P == 0 {
                if !create {
                    return Ok(None);
                }
                if self.tables >= self.table_limit {
                    return Err(MapError::NoMemory);
                }
                let t = mem.alloc_frame().ok_or(MapError::NoMemory)?;
                self.tables += 1;
                mem.write_u64(slot, t | NPT_FLAGS);
                table = t;
            } else {
                table = e & ADDR;
            }
        }
        Ok(Some(table + Self::index(gfn, 1) * 8))
    }

    /// The host frame mapped at `gfn` (as a physical address).
    pub fn lookup(&self, mem: &dyn HostMem, gfn: u64) -> Option<u64> {
        if gfn >= GFN_LIMIT {
            return None;
        }
        let mut table = self.root;
        for level in [4u32, 3, 2, 1] {
            let e = mem.read_u64(table + Self::index(gfn, level) * 8);
            if e & P == 0 {
                return None;
            }
            table = e & ADDR;
        }
        Some(table)
    }

    /// Map `gfn` to the host frame at `pa`.
    pub fn map(&mut self, mem: &dyn HostMem, gfn: u64, pa: u64) -> Result<(), MapError> {
        self.map_entry(mem, gfn, (pa & ADDR) | NPT_FLAGS)
    }

    fn map_entry(&mut self, mem: &dyn HostMem, gfn: u64, e: u64) -> Result<(), MapError> {
        if gfn >= GFN_LIMIT {
            return Err(MapError::OutOfRange);
        }
        let slot = self.leaf(mem, gfn, true)?.ok_or(MapError::NoMemory)?;
        if mem.read_u64(slot) & P != 0 {
            return Err(MapError::Exists);
        }
        mem.write_u64(slot, e);
        self.mapped += 1;
        self.max_mapped = self.max_mapped.max(gfn);
        Ok(())
    }

    /// Map another domain's frame `pa` at `gfn` by grant (read-only in the
    /// nested tables unless `writable`: a guest write faults).
    pub fn map_grant(
        &mut self,
        mem: &dyn HostMem,
        gfn: u64,
        pa: u64,
        writable: bool,
    ) -> Result<(), MapError> {
        let rw = if writable { RW } else { 0 };
        self.map_entry(mem, gfn, (pa & ADDR) | P | US | rw | GRANT)
    }

    /// Map a hypervisor-owned frame `pa` (writable) at `gfn`.
    pub fn map_xen(&mut self, mem: &dyn HostMem, gfn: u64, pa: u64) -> Result<(), MapError> {
        self.map_entry(mem, gfn, (pa & ADDR) | NPT_FLAGS | XEN_OWNED)
    }

    /// Map another domain's frame `pa` (writable) at `gfn` as a foreign
    /// mapping (the caller holds a reference on it).
    pub fn map_foreign(&mut self, mem: &dyn HostMem, gfn: u64, pa: u64) -> Result<(), MapError> {
        self.map_entry(mem, gfn, (pa & ADDR) | NPT_FLAGS | FOREIGN)
    }

    /// The host frame at `gfn` and what it is.
    pub fn lookup_kind(&self, mem: &dyn HostMem, gfn: u64) -> Option<(u64, Kind)> {
        if gfn >= GFN_LIMIT {
            return None;
        }
        let mut table = self.root;
        let mut e = 0;
        for level in [4u32, 3, 2, 1] {
            e = mem.read_u64(table + Self::index(gfn, level) * 8);
            if e & P == 0 {
                return None;
            }
            table = e & ADDR;
        }
        Some((table, Kind::of(e)))
    }

    /// Unmap `gfn` if it maps `pa` as `kind` (a grant or hypervisor frame
    /// being taken back); false (nothing changed) otherwise.
    pub fn unmap_if(&mut self, mem: &dyn HostMem, gfn: u64, pa: u64, kind: Kind) -> bool {
        if self.lookup_kind(mem, gfn) != Some((pa, kind)) {
            return false;
        }
        self.unmap(mem, gfn).is_some()
    }

    /// Unmap `gfn`; returns the host frame that was there. The caller must
    /// make every CPU running the domain drop stale translations before the
    /// frame is reused.
    pub fn unmap(&mut self, mem: &dyn HostMem, gfn: u64) -> Option<u64> {
        if gfn >= GFN_LIMIT {
            return None;
        }
        let slot = self.leaf(mem, gfn, false).ok().flatten()?;
        let e = mem.read_u64(slot);
        if e & P == 0 {
            return None;
        }
        mem.write_u64(slot, 0);
        self.mapped -= 1;
        Some(e & ADDR)
    }

    /// Unmap at most `budget` frames, in guest-frame order, handing the
    /// domain's RAM and its foreign mappings to `data(gfn, pa, kind)`
    /// (grant mappings and hypervisor frames are not the domain's to free
    /// or drop), and free the tables this empties. Returns true once
    /// nothing is mapped. The caller must make sure no CPU uses the tables.
    pub fn release(
        &mut self,
        mem: &dyn HostMem,
        budget: u64,
        mut data: impl FnMut(u64, u64, Kind),
    ) -> bool {
        /// Returns whether `table` is empty afterwards.
        fn walk(
            mem: &dyn HostMem,
            table: u64,
            level: u32,
            base: u64,
            left: &mut u64,
            freed_tables: &mut u64,
            data: &mut dyn FnMut(u64, u64, Kind),
        ) -> bool {
            for i in 0..512u64 {
                let slot = table + i * 8;
                let e = mem.read_u64(slot);
                if e & P == 0 {
                    continue;
                }
                if *left == 0 {
                    return false;
                }
                let gfn = base | (i << (9 * (level - 1)));
                if level == 1 {
                    mem.write_u64(slot, 0);
                    *left -= 1;
                    // Frames of other domains (grants) and of the
                    // hypervisor are not this domain's to free.
                    let k = Kind::of(e);
                    if matches!(k, Kind::Ram | Kind::Foreign) {
                        data(gfn, e & ADDR, k);
                    }
                } else if walk(mem, e & ADDR, level - 1, gfn, left, freed_tables, data) {
                    mem.write_u64(slot, 0);
                    mem.free_frame(e & ADDR);
                    *freed_tables += 1;
                } else {
                    return false;
                }
            }
            true
        }
        let mut left = budget;
        let mut freed_tables = 0;
        let done = walk(
            mem,
            self.root,
            4,
            0,
            &mut left,
            &mut freed_tables,
            &mut data,
        );
        self.mapped -= budget - left;
        self.tables -= freed_tables;
        done
    }

    /// Free every table frame; `data(gfn, pa, kind)` receives every frame
    /// of the domain's RAM and its foreign mappings still mapped.
    pub fn destroy(self, mem: &dyn HostMem, mut data: impl FnMut(u64, u64, Kind)) {
        fn walk(
            mem: &dyn HostMem,
            table: u64,
            level: u32,
            base: u64,
            data: &mut dyn FnMut(u64, u64, Kind),
        ) {
            for i in 0..512u64 {
                let e = mem.read_u64(table + i * 8);
                if e & P == 0 {
                    continue;
                }
                let gfn = base | (i << (9 * (level - 1)));
                if level == 1 {
                    let k = Kind::of(e);
                    if matches!(k, Kind::Ram | Kind::Foreign) {
                        data(gfn, e & ADDR, k);
                    }
                } else {
                    walk(mem, e & ADDR, level - 1, gfn, data);
                    mem.free_frame(e & ADDR);
                }
            }
        }
        walk(mem, self.root, 4, 0, &mut data);
        mem.free_frame(self.root);
    }
}

/// A domain's guest-physical memory through its physmap.
pub struct PhysView<'a> {
    pub p2m: &'a P2m,
    pub mem: &'a dyn HostMem,
}

impl PhysView<'_> {
    /// The host frame of guest-physical `gpa` (its host physical address).
    pub fn host_frame(&self, gpa: u64) -> Option<u64> {
        self.p2m.lookup(self.mem, gpa >> 12)
    }

    fn frame(&self, gpa: u64) -> Result<u64, Fault> {
        self.p2m.lookup(self.mem, gpa >> 12).ok_or(Fault {
            addr: gpa,
            reason: "no memory at this guest-physical address",
        })
    }
}

/// `len` bytes at `gpa` must not cross a frame (checked in release builds:
/// the next guest frame is not the next host frame).
fn within_frame(gpa: u64, len: usize) -> Result<(), Fault> {
    if (gpa & 4095) as usize + len <= 4096 {
        Ok(())
    } else {
        Err(Fault {
            addr: gpa,
            reason: "access crosses a guest-physical frame",
        })
    }
}

impl GuestPhys for PhysView<'_> {
    fn read_gpa(&self, gpa: u64, buf: &mut [u8]) -> Result<(), Fault> {
        within_frame(gpa, buf.len())?;
        let pa = self.frame(gpa)?;
        self.mem.read(pa | (gpa & 4095), buf);
        Ok(())
    }
    fn write_gpa(&self, gpa: u64, buf: &[u8]) -> Result<(), Fault> {
        within_frame(gpa, buf.len())?;
        // A read-only grant mapping is read-only for the hypervisor's
        // writes on the guest's behalf too.
        let pa = match self.p2m.lookup_kind(self.mem, gpa >> 12) {
            None => {
                return Err(Fault {
                    addr: gpa,
                    reason: "no memory at this guest-physical address",
                });
            }
            Some((_, Kind::Grant { writable: false })) => {
                return Err(Fault {
                    addr: gpa,
                    reason: "read-only grant mapping",
                });
            }
            Some((pa, _)) => pa,
        };
        self.mem.write(pa | (gpa & 4095), buf);
        Ok(())
    }
}

#[cfg(test)]
pub mod testmem {
    //! Simulated host memory for tests: `frames` frames starting at 16 MiB.
    //! A frame's bytes exist once written (a zero frame costs nothing), so
    //! a test machine may have gigabytes.
    use super::HostMem;
    use alloc::boxed::Box;
    use alloc::vec::Vec;
    use spin::Mutex;

    type Frame = Option<Box<[u8; 4096]>>;

    pub struct SimMem {
        base: u64,
        data: Mutex<Vec<Frame>>,
        /// The free frames, and whether each frame is free (double frees).
        free: Mutex<(Vec<u64>, Vec<bool>)>,
        total: u64,
    }

    impl SimMem {
        pub fn new(frames: u64) -> SimMem {
            let base = 16 << 20;
            SimMem {
                base,
                data: Mutex::new((0..frames).map(|_| None).collect()),
                free: Mutex::new((
                    (0..frames).rev().map(|i| base + i * 4096).collect(),
                    alloc::vec![true; frames as usize],
                )),
                total: frames,
            }
        }
        fn idx(&self, pa: u64) -> (usize, usize) {
            assert!(pa >= self.base, "access below simulated memory: {pa:#x}");
            let i = ((pa - self.base) / 4096) as usize;
            assert!(
                (i as u64) < self.total,
                "access beyond simulated memory: {pa:#x}"
            );
            (i, (pa & 4095) as usize)
        }
        /// Whether the frame at `pa` is all zero.
        pub fn is_zero(&self, pa: u64) -> bool {
            let (i, _) = self.idx(pa);
            self.data.lock()[i]
                .as_ref()
                .is_none_or(|f| f.iter().all(|&b| b == 0))
        }
        /// Whether the frame at `pa` is free.
        pub fn is_free(&self, pa: u64) -> bool {
            let (i, _) = self.idx(pa);
            self.free.lock().1[i]
        }
        /// The frame's bytes, materialised.
        fn with_frame<R>(&self, i: usize, f: impl FnOnce(&mut [u8; 4096]) -> R) -> R {
            let mut d = self.data.lock();
            f(d[i].get_or_insert_with(|| Box::new([0u8; 4096])))
        }
    }

    // SAFETY: every access is a bounds-checked slice operation on the
    // simulated frames (an address outside them panics: a test failure).
    unsafe impl HostMem for SimMem {
        fn alloc_frame(&self) -> Option<u64> {
            let pa = {
                let mut f = self.free.lock();
                let pa = f.0.pop()?;
                let (i, _) = self.idx(pa);
                f.1[i] = false;
                pa
            };
            self.zero_frame(pa);
            Some(pa)
        }
        fn free_frame(&self, pa: u64) {
            let (i, _) = self.idx(pa);
            let mut f = self.free.lock();
            assert!(!f.1[i], "double free of {pa:#x}");
            f.1[i] = true;
            f.0.push(pa);
        }
        fn read(&self, pa: u64, buf: &mut [u8]) {
            let (i, o) = self.idx(pa);
            match &self.data.lock()[i] {
                Some(f) => buf.copy_from_slice(&f[o..o + buf.len()]),
                None => buf.fill(0),
            }
        }
        fn write(&self, pa: u64, buf: &[u8]) {
            let (i, o) = self.idx(pa);
            self.with_frame(i, |f| f[o..o + buf.len()].copy_from_slice(buf));
        }
        fn zero_frame(&self, pa: u64) {
            let (i, _) = self.idx(pa);
            self.data.lock()[i] = None;
        }
        fn free_frames(&self) -> u64 {
            self.free.lock().0.len() as u64
        }
        fn total_frames(&self) -> u64 {
            self.total
        }
        fn max_mfn(&self) -> u64 {
            (self.base >> 12) + self.total - 1
        }
        fn cmpxchg_u32(&self, pa: u64, old: u32, new: u32) -> u32 {
            assert!(pa.is_multiple_of(4));
            let (i, o) = self.idx(pa);
            self.with_frame(i, |d| {
                let cur = u32::from_le_bytes(d[o..o + 4].try_into().unwrap());
                if cur == old {
                    d[o..o + 4].copy_from_slice(&new.to_le_bytes());
                }
                cur
            })
        }
        fn fetch_or_u64(&self, pa: u64, v: u64) -> u64 {
            assert!(pa.is_multiple_of(8), "unaligned atomic at {pa:#x}");
            let (i, o) = self.idx(pa);
            self.with_frame(i, |d| {
                let old = u64::from_le_bytes(d[o..o + 8].try_into().unwrap());
                d[o..o + 8].copy_from_slice(&(old | v).to_le_bytes());
                old
            })
        }
        fn fetch_and_u64(&self, pa: u64, v: u64) -> u64 {
            assert!(pa.is_multiple_of(8), "unaligned atomic at {pa:#x}");
            let (i, o) = self.idx(pa);
            self.with_frame(i, |d| {
                let old = u64::from_le_bytes(d[o..o + 8].try_into().unwrap());
                d[o..o + 8].copy_from_slice(&(old & v).to_le_bytes());
                old
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testmem::SimMem;
    use super::*;
    use crate::guestmem::GuestView;

    #[test]
    fn map_lookup_unmap_destroy_returns_every_frame() {
        let mem = SimMem::new(256);
        let before = mem.free_frames();
        let mut p = P2m::new(&mem, 64).unwrap();
        let mut data = alloc::vec::Vec::new();
        for gfn in [0u64, 1, 511, 512, 0x40000, GFN_LIMIT - 1] {
            let f = mem.alloc_frame().unwrap();
            p.map(&mem, gfn, f).unwrap();
            data.push((gfn, f));
        }
        assert_eq!(p.map(&mem, 1, data[0].1), Err(MapError::Exists));
        assert_eq!(p.map(&mem, GFN_LIMIT, data[0].1), Err(MapError::OutOfRange));
        for &(g, f) in &data {
            assert_eq!(p.lookup(&mem, g), Some(f));
        }
        assert_eq!(p.lookup(&mem, 2), None);
        assert_eq!(p.lookup(&mem, u64::MAX), None);
        assert_eq!(p.unmap(&mem, 1), Some(data[1].1));
        assert_eq!(p.unmap(&mem, 1), None);
        assert_eq!(p.lookup(&mem, 1), None);
        mem.free_frame(data[1].1);
        assert_eq!(p.mapped(), 5);
        let mut seen = alloc::vec::Vec::new();
        p.destroy(&mem, |g, f, _| {
            seen.push((g, f));
            mem.free_frame(f);
        });
        seen.sort();
        let mut want: alloc::vec::Vec<_> = data.iter().copied().filter(|&(g, _)| g != 1).collect();
        want.sort();
        assert_eq!(seen, want);
        assert_eq!(mem.free_frames(), before);
    }

    #[test]
    fn table_budget_bounds_sparse_mappings() {
        let mem = SimMem::new(512);
        let mut p = P2m::new(&mem, 6).unwrap();
        let mut ok = 0;
        let mut refused = false;
        // Each gfn in its own 1 GiB region needs two new tables.
        for i in 0..10u64 {
            let f = mem.alloc_frame().unwrap();
            match p.map(&mem, i << 18, f) {
                Ok(()) => ok += 1,
                Err(MapError::NoMemory) => {
                    mem.free_frame(f);
                    refused = true;
                    break;
                }
                Err(e) => panic!("{e:?}"),
            }
        }
        assert!(refused && ok >= 1, "ok={ok}");
        assert!(p.table_frames() <= 6);
    }

    #[test]
    fn guest_view_over_physmap() {
        let mem = SimMem::new(64);
        let mut p = P2m::new(&mem, 16).unwrap();
        let f0 = mem.alloc_frame().unwrap();
        let f1 = mem.alloc_frame().unwrap();
        p.map(&mem, 0, f0).unwrap();
        p.map(&mem, 1, f1).unwrap();
        let pv = PhysView { p2m: &p, mem: &mem };
        let v = GuestView::new(&pv, Default::default());
        v.write(4090, b"hello world").unwrap();
        let mut out = [0u8; 11];
        v.read(4090, &mut out).unwrap();
        assert_eq!(&out, b"hello world");
        assert!(v.read(8190, &mut out).is_err());
        // One physical access never crosses a frame, in release builds too.
        let mut b = [0u8; 16];
        assert!(pv.read_gpa(4090, &mut b).is_err());
        assert!(pv.write_gpa(4090, &b).is_err());
        assert!(pv.read_gpa(4080, &mut b).is_ok());
    }
}
