//! Foreign mappings: the toolstack in the hardware domain maps another
//! domain's frames into its own physmap (Xen 4.17's `p2m_add_foreign`
//! for `XENMAPSPACE_gmfn_foreign`, `set_foreign_p2m_entry` for
//! `XENMEM_acquire_resource`; privcmd's MMAPBATCH_V2 and MMAP_RESOURCE in
//! a PVH dom0, xen-abi-map.md §4.6 and §5.7), and unmaps them
//! (`XENMEM_remove_from_physmap`).
//!
//! A foreign mapping is a physmap entry of kind [`Kind::Foreign`] that
//! holds a reference on the frame ([`FrameRefs`]): the frame stays
//! allocated while any mapper maps it, even after its owner gave it up or
//! died; whoever lets go last scrubs and frees it. The mapper's mappings go
//! with it when it is destroyed (their references dropped).
//!
//! [`FrameRefs`]: crate::frameref::FrameRefs

use crate::domain::Domain;
use crate::hv::Hv;
use crate::p2m::{GFN_LIMIT, Kind, MapError, P2m};
use core::sync::atomic::Ordering;
use warden_abi::errno;

/// What is at the place a foreign mapping goes, and what to do with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replace {
    /// `XENMAPSPACE_gmfn_foreign` (Xen's `p2m_add_foreign`): the
    /// domain's RAM there is given up (as decrease_reservation), a page of
    /// the hypervisor's (shared_info, a grant-table frame) is unhooked, a
    /// grant or foreign mapping is not the domain's to remove (ENXIO).
    GmfnForeign,
    /// `acquire_resource` (Xen's `set_foreign_p2m_entry`): RAM and
    /// hypervisor pages as above; the same frame mapped the same way is
    /// left as it is; another grant or foreign mapping is refused (EPERM;
    /// Xen also crashes the caller, Warden does not).
    Resource,
}

impl Hv {
    /// Take `p2m`'s hypervisor page at `gpfn` out of it (under `d`'s
    /// memory write lock): the shared_info page or a grant-table frame is
    /// then mapped nowhere.
    fn unhook_xen_page(&self, d: &Domain, p2m: &mut P2m, gpfn: u64) {
        p2m.unmap(self.platform.mem(), gpfn);
        if d.shared_info.gfn() == Some(gpfn) {
            d.shared_info.set_gfn(None);
            return;
        }
        for i in 0..d.gnttab.nr_frames() {
            if d.gnttab.frame_gfn(i) == gpfn {
                d.gnttab.set_frame_gfn(i, crate::xen::gnttab::NO_GFN);
            }
        }
    }

    /// Map `pa`, on which the caller holds a reference, at `gpfn` of `t`'s
    /// physmap as a foreign mapping. On success the mapping owns the
    /// reference; on an error the caller still holds it.
    fn insert_foreign(&self, t: &Domain, gpfn: u64, pa: u64, how: Replace) -> Result<(), i32> {
        let mem = self.platform.mem();
        if gpfn >= GFN_LIMIT {
            return Err(errno::EINVAL);
        }
        let mut free = None;
        let mut drop_ref = None;
        {
            let mut guard = t.mem.write();
            if t.dying.load(Ordering::Acquire) {
                return Err(errno::ESRCH);
            }
            let m = &mut *guard;
            let p2m = m.p2m.as_mut().ok_or(errno::ESRCH)?;
            let old = p2m.lookup_kind(mem, gpfn);
            match (old, how) {
                (Some((opa, Kind::Foreign)), Replace::Resource) if opa == pa => {
                    // Already this mapping: the new reference is not needed.
                    drop(guard);
                    if self.frame_refs.put(pa) {
                        self.scrub_free(pa);
                    }
                    return Ok(());
                }
                (Some((_, Kind::Foreign | Kind::Grant { .. })), Replace::GmfnForeign) => {
                    return Err(errno::ENXIO);
                }
                (Some((_, Kind::Foreign | Kind::Grant { .. })), Replace::Resource) => {
                    log::warn!(
                        "d{}: gfn {gpfn:#x} is already another mapping: not replaced by a foreign frame",
                        t.id
                    );
                    return Err(errno::EPERM);
                }
                (Some((opa, Kind::Ram)), _) => {
                    p2m.unmap(mem, gpfn);
                    m.tot_pages = m.tot_pages.saturating_sub(1);
                    if self.give_up(t, opa) {
                        free = Some(opa);
                    }
                }
                (Some((_, Kind::Xen)), _) => self.unhook_xen_page(t, p2m, gpfn),
                (None, _) => {}
            }
            // The slot's tables exist if something was there: only an empty
            // place can fail for want of a table frame.
            p2m.map_foreign(mem, gpfn, pa).map_err(|e| match e {
                MapError::Exists => errno::EEXIST,
                MapError::OutOfRange => errno::EINVAL,
                MapError::NoMemory => errno::ENOMEM,
            })?;
            if old.is_some() {
                crate::vcpu::shootdown(self.platform.guest_slots(), t.id, &t.epoch, &|c| {
                    self.platform.kick(c as u32)
                });
                if let Some((opa, Kind::Foreign)) = old {
                    drop_ref = Some(opa);
                }
            }
        }
        if let Some(pa) = free {
            self.scrub_free(pa);
        }
        if let Some(o) = drop_ref
            && self.frame_refs.put(o)
        {
            self.scrub_free(o);
        }
        Ok(())
    }

    /// XENMAPSPACE_gmfn_foreign for one page: map `fd`'s frame at guest
    /// frame `fgfn` at `gpfn` of `t`'s physmap. EINVAL if `fd` has no RAM
    /// there (Xen's `get_page_from_gfn` and its RAM-only rule), the
    /// errors of [`Replace::GmfnForeign`], ENOMEM for want of a table frame.
    pub fn map_foreign(&self, t: &Domain, fd: &Domain, fgfn: u64, gpfn: u64) -> Result<(), i32> {
        let mem = self.platform.mem();
        let pa = {
            // The owner's memory lock (read) keeps the frame from being
            // given up between the lookup and the reference.
            let m = fd.mem.read();
            let p2m = m.p2m.as_ref().ok_or(errno::EINVAL)?;
            match p2m.lookup_kind(mem, fgfn) {
                Some((pa, Kind::Ram)) => {
                    self.frame_refs.get(pa)?;
                    pa
                }
                _ => return Err(errno::EINVAL),
            }
        };
        self.insert_foreign(t, gpfn, pa, Replace::GmfnForeign)
            .inspect_err(|_| {
                if self.frame_refs.put(pa) {
                    self.scrub_free(pa);
                }
            })
    }

    /// acquire_resource of `fd`'s grant-table frame `idx` (the table grown
    /// to it): mapped at `gpfn` of `t`'s physmap. EINVAL beyond the
    /// table's maximum, ESRCH once `fd` is dying, the errors of
    /// [`Replace::Resource`].
    pub fn map_grant_frame_foreign(
        &self,
        t: &Domain,
        fd: &Domain,
        idx: u64,
        gpfn: u64,
    ) -> Result<(), i32> {
        let pa = fd.gnttab.foreign_frame(self.platform.mem(), idx)?;
        self.insert_foreign(t, gpfn, pa, Replace::Resource)
            .inspect_err(|_| {
                if self.frame_refs.put(pa) {
                    self.scrub_free(pa);
                }
            })
    }

    /// XENMEM_remove_from_physmap: take the page at `gpfn` out of `t`'s
    /// physmap. A foreign mapping drops its reference (the frame is freed
    /// if its owner gave it up and nothing else holds it); the domain's own
    /// RAM is given up (Xen leaves it allocated to the domain, unmapped,
    /// until the domain dies; Warden keeps no such pages); a page of the
    /// hypervisor's is unhooked. ENOENT if nothing is there, or a grant
    /// mapping (those go with unmap_grant_ref).
    pub fn remove_from_physmap(&self, t: &Domain, gpfn: u64) -> Result<(), i32> {
        let mem = self.platform.mem();
        let mut free = None;
        let mut drop_ref = None;
        {
            let mut guard = t.mem.write();
            let m = &mut *guard;
            let p2m = m.p2m.as_mut().ok_or(errno::ESRCH)?;
            let (pa, kind) = p2m.lookup_kind(mem, gpfn).ok_or(errno::ENOENT)?;
            match kind {
                Kind::Grant { .. } => return Err(errno::ENOENT),
                Kind::Foreign => {
                    p2m.unmap(mem, gpfn);
                    drop_ref = Some(pa);
                }
                Kind::Ram => {
                    p2m.unmap(mem, gpfn);
                    m.tot_pages = m.tot_pages.saturating_sub(1);
                    if self.give_up(t, pa) {
                        free = Some(pa);
                    }
                }
                Kind::Xen => self.unhook_xen_page(t, p2m, gpfn),
            }
            crate::vcpu::shootdown(self.platform.guest_slots(), t.id, &t.epoch, &|c| {
                self.platform.kick(c as u32)
            });
        }
        if let Some(pa) = free {
            self.scrub_free(pa);
        }
        if let Some(pa) = drop_ref
            && self.frame_refs.put(pa)
        {
            self.scrub_free(pa);
        }
        Ok(())
    }

    /// XENMEM_maximum_gpfn: the highest guest frame `d` ever had mapped
    /// (Xen's `max_mapped_pfn`).
    pub fn maximum_gpfn(&self, d: &Domain) -> u64 {
        d.mem.read().p2m.as_ref().map_or(0, |p| p.max_mapped())
    }

    /// The foreign mappings in `d`'s physmap: (gfn, host frame), for tests.
    #[cfg(test)]
    pub fn foreign_mappings(
        &self,
        d: &Domain,
        gfns: core::ops::Range<u64>,
    ) -> alloc::vec::Vec<(u64, u64)> {
        let mem = self.platform.mem();
        let m = d.mem.read();
        let Some(p) = m.p2m.as_ref() else {
            return Vec::new();
        };
        gfns.filter_map(|g| match p.lookup_kind(mem, g) {
            Some((pa, Kind::Foreign)) => Some((g, pa)),
            _ => None,
        })
        .collect()
    }
}
