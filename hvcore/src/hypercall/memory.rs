//! memory_op.

use super::{Call, HcResult};
use crate::gate::table::*;
use alloc::vec::Vec;
use warden_abi::errno;
use warden_abi::memory::*;

/// Pages populate_physmap and decrease_reservation handle per call (whole
/// extents: up to this many plus one extent less one page) before they
/// continue themselves.
pub const MEMOP_PAGES_PER_CALL: u64 = 512;

pub fn memory_op(c: &mut Call<'_>, cmd: u64, arg: u64) -> HcResult {
    // As Xen: the sub-operation in the low bits, the extent a continued
    // reservation operation starts at above them.
    let start = cmd >> MEMOP_EXTENT_SHIFT;
    let op = cmd & MEMOP_CMD_MASK;
    // Operations that continue themselves with the start index above the
    // sub-operation (Xen's encoding).
    let continued = [
        POPULATE_PHYSMAP,
        DECREASE_RESERVATION,
        ADD_TO_PHYSMAP_BATCH,
        ACQUIRE_RESOURCE,
    ]
    .iter()
    .any(|&o| o as u64 == op);
    if start != 0 && !continued {
        // Xen: -EINVAL from the operations it knows, -ENOSYS otherwise.
        return match op as u32 {
            CLAIM_PAGES | CURRENT_RESERVATION | MAXIMUM_RESERVATION | MAXIMUM_GPFN
            | REMOVE_FROM_PHYSMAP | MAXIMUM_RAM_PAGE | SET_POD_TARGET | GET_POD_TARGET => {
                Err(errno::EINVAL)
            }
            _ => c.unknown("memory_op sub-op", cmd),
        };
    }
    match op as u32 {
        POPULATE_PHYSMAP | DECREASE_RESERVATION => {
            let r: Reservation = c.read(arg)?;
            let t = c.target(r.domid)?;
            let populate = op as u32 == POPULATE_PHYSMAP;
            let d = if populate {
                let p = c.check_req::<MemPopulatePhysmap>(Some(t), None)?;
                c.resolve(&p)?.adjust()
            } else {
                let p = c.check_req::<MemDecreaseReservation>(Some(t), None)?;
                c.resolve(&p)?.adjust()
            };
            // Xen's max_order(): larger extents for the control domain;
            // beyond it nothing is done (the extents done so far: none).
            let max_order = if c.caller.privileged {
                CTLDOM_MAX_ORDER
            } else {
                DOMU_MAX_ORDER
            };
            if r.extent_order > max_order {
                return Ok(start);
            }
            // Nothing left, or too many extents to encode a continuation:
            // Xen returns the extents done so far.
            if start >= r.nr_extents || r.nr_extents > u64::MAX >> MEMOP_EXTENT_SHIFT {
                return Ok(start);
            }
            let per = 1u64 << r.extent_order;
            let mut done = start;
            let mut err = None;
            let mut pages = 0u64;
            while done < r.nr_extents {
                if pages >= MEMOP_PAGES_PER_CALL {
                    let next = op | (done << MEMOP_EXTENT_SHIFT);
                    return Err(c.continue_with(&[next, arg]));
                }
                pages += per;
                let gfn: u64 = match c.read_elem(r.extent_start, done) {
                    Ok(g) => g,
                    Err(e) => {
                        err = Some(e);
                        break;
                    }
                };
                if !gfn.is_multiple_of(per)
                    || gfn
                        .checked_add(per)
                        .is_none_or(|e| e > crate::p2m::GFN_LIMIT)
                {
                    err = Some(errno::EINVAL);
                    break;
                }
                let r = if populate {
                    let mut res = Ok(());
                    for g in gfn..gfn + per {
                        if let Err(e) = d.populate(g) {
                            // Undo the partial extent.
                            let added: Vec<u64> = (gfn..g).collect();
                            let _ = d.decrease(&added);
                            res = Err(e);
                            break;
                        }
                    }
                    res
                } else {
                    let gfns: Vec<u64> = (gfn..gfn + per).collect();
                    d.decrease(&gfns)
                };
                if let Err(e) = r {
                    err = Some(e);
                    break;
                }
                done += 1;
            }
            match err {
                Some(e) if done == 0 => Err(e),
                _ => Ok(done),
            }
        }
        MAXIMUM_RAM_PAGE => {
            let p = c.check::<MemMaximumRamPage>()?;
            Ok(c.global(&p).max_mfn())
        }
        CURRENT_RESERVATION | MAXIMUM_RESERVATION | MAXIMUM_GPFN => {
            let a: DomidArg = c.read(arg)?;
            let t = c.target(a.domid)?;
            let d = match op as u32 {
                CURRENT_RESERVATION => {
                    let p = c.check_req::<MemCurrentReservation>(Some(t), None)?;
                    c.resolve(&p)?.into_domain()
                }
                MAXIMUM_RESERVATION => {
                    let p = c.check_req::<MemMaximumReservation>(Some(t), None)?;
                    c.resolve(&p)?.into_domain()
                }
                _ => {
                    let p = c.check_req::<MemMaximumGpfn>(Some(t), None)?;
                    c.resolve(&p)?.into_domain()
                }
            };
            let m = d.mem.read();
            Ok(match op as u32 {
                CURRENT_RESERVATION => m.tot_pages,
                MAXIMUM_RESERVATION => m.max_pages,
                // Xen's max_mapped_pfn: the highest frame ever mapped.
                _ => m.p2m.as_ref().map_or(0, |p| p.max_mapped()),
            })
        }
        CLAIM_PAGES => {
            let r: Reservation = c.read(arg)?;
            if r.extent_start != 0 || r.extent_order != 0 || r.mem_flags != 0 {
                return Err(errno::EINVAL);
            }
            // Xen looks the domain up by id only (DOMID_SELF finds none),
            // and answers EINVAL when there is none.
            if r.domid >= warden_abi::DOMID_FIRST_RESERVED {
                return Err(errno::EINVAL);
            }
            let t = c.target(r.domid).map_err(|_| errno::EINVAL)?;
            let p = c.check_req::<MemClaimPages>(Some(t), None)?;
            c.resolve(&p)?.claim(r.nr_extents)?;
            Ok(0)
        }
        REMOVE_FROM_PHYSMAP => {
            let a: RemoveFromPhysmap = c.read(arg)?;
            let t = c.target(a.domid)?;
            let p = c.check_req::<MemRemoveFromPhysmap>(Some(t), None)?;
            c.resolve(&p)?.remove_from_physmap(a.gpfn)?;
            Ok(0)
        }
        SET_POD_TARGET | GET_POD_TARGET => pod_target(c, op as u32 == SET_POD_TARGET, arg),
        ADD_TO_PHYSMAP_BATCH => add_to_physmap_batch(c, op, start, arg),
        ACQUIRE_RESOURCE => acquire_resource(c, start, arg),
        MEMORY_MAP => {
            let p = c.check::<MemMemoryMap>()?;
            let mut m: MemoryMap = c.read(arg)?;
            let map = c.own(&p).memory_map();
            // No map: Xen's "backwards compatibility" answer.
            if map.is_empty() {
                return Err(errno::ENOSYS);
            }
            let n = (m.nr_entries as usize).min(map.len());
            for (i, e) in map[..n].iter().enumerate() {
                c.write_elem(m.buffer, i as u64, e)?;
            }
            m.nr_entries = n as u32;
            c.write(arg, &m)?;
            Ok(0)
        }
        SET_MEMORY_MAP => {
            let f: ForeignMemoryMap = c.read(arg)?;
            if f.map.nr_entries > E820_MAX {
                return Err(errno::EINVAL);
            }
            let t = c.target(f.domid)?;
            let p = c.check_req::<MemSetMemoryMap>(Some(t), None)?;
            let d = c.resolve(&p)?;
            let mut map = Vec::new();
            map.try_reserve_exact(f.map.nr_entries as usize)
                .map_err(|_| errno::ENOMEM)?;
            for i in 0..f.map.nr_entries as u64 {
                map.push(c.read_elem::<E820Entry>(f.map.buffer, i)?);
            }
            d.set_memory_map(map);
            Ok(0)
        }
        ADD_TO_PHYSMAP => add_to_physmap(c, arg),
        // Xen 4.17 without CONFIG_MEM_SHARING (Debian's build): nothing is
        // ever shared, so 0 pages, for any argument. `xl info` and libxl's
        // physinfo read them.
        GET_SHARING_FREED_PAGES => {
            let _p = c.check::<MemGetSharingFreedPages>()?;
            Ok(0)
        }
        GET_SHARING_SHARED_PAGES => {
            let _p = c.check::<MemGetSharingSharedPages>()?;
            Ok(0)
        }
        n => c.unknown("memory_op sub-op", n as u64),
    }
}

/// XENMEM_set_pod_target / get_pod_target, as Xen 4.17's for an HVM
/// domain (every Warden guest) whose memory is all populated: Warden has no
/// populate-on-demand, so a set within the domain's maximum has nothing to
/// do (Xen's `p2m_pod_set_mem_target` when the domain has pages and no PoD
/// entries: what `xl mem-set` meets; the guest's balloon driver then gives
/// the memory back), and the counts written back are its pages, an empty
/// PoD cache and no PoD entries. A target for a domain without any page
/// yet (a guest built with `maxmem` above `memory`, which Xen starts in
/// PoD mode) is refused with EOPNOTSUPP rather than pretended.
fn pod_target(c: &mut Call<'_>, set: bool, arg: u64) -> HcResult {
    let mut t: PodTarget = c.read(arg)?;
    let target = c.target(t.domid)?;
    let d = if set {
        let p = c.check_req::<MemSetPodTarget>(Some(target), None)?;
        c.resolve(&p)?.into_domain()
    } else {
        let p = c.check_req::<MemGetPodTarget>(Some(target), None)?;
        c.resolve(&p)?.into_domain()
    };
    let tot_pages = {
        let m = d.mem.read();
        if set {
            if t.target_pages > m.max_pages {
                return Err(errno::EINVAL);
            }
            if m.tot_pages == 0
                && t.target_pages > 0
                && !d.dying.load(core::sync::atomic::Ordering::Acquire)
            {
                log::warn!(
                    "memory_op set_pod_target: d{} has no memory yet; populate-on-demand is not supported (build it with memory = maxmem)",
                    d.id
                );
                return Err(errno::EOPNOTSUPP);
            }
        }
        m.tot_pages
    };
    t.tot_pages = tot_pages;
    t.pod_cache_pages = 0;
    t.pod_entries = 0;
    c.write(arg, &t)?;
    Ok(0)
}

/// XENMEM_add_to_physmap: map a page of `space` at `gpfn` of the target
/// (caller -> target : mmu physmap, as Xen 4.17).
fn add_to_physmap(c: &mut Call<'_>, arg: u64) -> HcResult {
    let a: AddToPhysmap = c.read(arg)?;
    // Xen: foreign mapping is only possible through the batch form.
    if a.space == XENMAPSPACE_GMFN_FOREIGN {
        return Err(errno::ENOSYS);
    }
    let t = c.target(a.domid)?;
    let p = c.check_req::<MemAddToPhysmap>(Some(t), None)?;
    let d = c.resolve(&p)?;
    match a.space {
        XENMAPSPACE_SHARED_INFO => {
            // Xen: only index 0 names the shared_info page.
            if a.idx != 0 {
                return Err(errno::EINVAL);
            }
            d.map_shared_info(a.gpfn)?;
            Ok(0)
        }
        XENMAPSPACE_GRANT_TABLE => add_grant_table_frame(c, &d, a.idx, a.gpfn),
        // Moving guest frames (gmfn, gmfn_range) is not offered yet;
        // gmfn_foreign exists only in the batch form.
        XENMAPSPACE_GMFN | XENMAPSPACE_GMFN_RANGE => Err(errno::ENOSYS),
        _ => Err(errno::EINVAL),
    }
}

/// XENMAPSPACE_grant_table: map frame `idx` of the target's grant table at
/// `gpfn` (the grant-table service, `Hv::map_grant_frame`).
fn add_grant_table_frame(
    _c: &mut Call<'_>,
    d: &super::Resolved<'_, MemAddToPhysmap>,
    idx: u64,
    gpfn: u64,
) -> HcResult {
    d.map_grant_frame(idx, gpfn)?;
    Ok(0)
}

/// Pages of a batch handled per call before it continues itself.
pub const BATCH_PER_CALL: u64 = 512;

/// XENMEM_add_to_physmap_batch (Xen's `xenmem_add_to_physmap_batch`):
/// the batch's own check (caller -> target : mmu physmap), then one result
/// per page in `errs`; the hypercall's errno is for the batch's arguments.
/// With XENMAPSPACE_gmfn_foreign each page is also checked (mapper ->
/// foreign domain : mmu {map_read map_write}) and needs Xen's conditions:
/// the mapper is the hardware domain (EPERM) — in Warden also the caller
/// itself —, the foreign domain exists (ESRCH) and is another one (EPERM),
/// its page is RAM (EINVAL).
fn add_to_physmap_batch(c: &mut Call<'_>, op: u64, start: u64, arg: u64) -> HcResult {
    // Xen: a continuation index that cannot be one of the u16 `size`.
    if start > u64::from(u16::MAX) {
        return Err(errno::EDOM);
    }
    let b: AddToPhysmapBatch = c.read(arg)?;
    if u32::from(b.space) == XENMAPSPACE_GMFN_RANGE {
        return Err(errno::EOPNOTSUPP);
    }
    let t = c.target(b.domid)?;
    let p = c.check_req::<MemAddToPhysmapBatch>(Some(t), None)?;
    let d = c.resolve(&p)?;
    let size = u64::from(b.size);
    if size < start {
        return Err(errno::EILSEQ);
    }
    if size == start {
        return if start != 0 {
            Err(errno::EILSEQ)
        } else {
            Ok(0)
        };
    }
    if u32::from(b.space) == XENMAPSPACE_DEV_MMIO && b.foreign_domid != 0 {
        return Err(errno::EOPNOTSUPP);
    }
    let foreign = u32::from(b.space) == XENMAPSPACE_GMFN_FOREIGN;
    let mut i = start;
    while i < size {
        if i > start && (i - start).is_multiple_of(BATCH_PER_CALL) {
            return Err(c.continue_with(&[op | (i << MEMOP_EXTENT_SHIFT), arg]));
        }
        let idx: u64 = c.read_elem(b.idxs, i)?;
        let gpfn: u64 = c.read_elem(b.gpfns, i)?;
        if gpfn == u64::MAX {
            return Err(errno::EINVAL);
        }
        let rc = if foreign {
            map_foreign_page(c, &d, b.foreign_domid, idx, gpfn)
        } else {
            match u32::from(b.space) {
                XENMAPSPACE_SHARED_INFO if idx == 0 => d.map_shared_info(gpfn),
                XENMAPSPACE_GRANT_TABLE => d.map_grant_frame(idx, gpfn),
                // Moving a domain's own frames is not offered (as
                // add_to_physmap).
                XENMAPSPACE_GMFN => Err(errno::ENOSYS),
                // No such page (Xen: an invalid MFN).
                _ => Err(errno::EINVAL),
            }
        };
        let e: i32 = match rc {
            Ok(()) => 0,
            Err(e) => -e,
        };
        c.write_elem(b.errs, i, &e)?;
        i += 1;
    }
    Ok(0)
}

/// One page of XENMAPSPACE_gmfn_foreign (Xen's `p2m_add_foreign`): the
/// page's result.
fn map_foreign_page(
    c: &mut Call<'_>,
    mapper: &super::Resolved<'_, MemAddToPhysmapBatch>,
    foreign_domid: u16,
    fgfn: u64,
    gpfn: u64,
) -> Result<(), i32> {
    // Xen: only the hardware domain maps foreign frames into its physmap
    // (nothing tears such mappings down for other domains); Warden also
    // maps them only into the caller's own.
    if !mapper.privileged || mapper.id != c.caller.id {
        return Err(errno::EPERM);
    }
    // The hypervisor's own frames are not offered to guests.
    if foreign_domid == warden_abi::DOMID_XEN {
        return Err(errno::EINVAL);
    }
    // rcu_lock_remote_domain_by_id: not the caller itself.
    if foreign_domid >= warden_abi::DOMID_FIRST_RESERVED {
        return Err(errno::ESRCH);
    }
    let f = c.target(foreign_domid)?;
    if f.id == c.caller.id {
        return Err(errno::EPERM);
    }
    let p = c.check_req::<MemMapForeign>(Some(f), None)?;
    let fd = c.resolve(&p)?;
    mapper.map_foreign(&fd, fgfn, gpfn)
}

/// Grant-table frames an acquire_resource maps per step (Xen's `mfn_list`).
const ACQUIRE_CHUNK: u64 = 32;

/// XENMEM_acquire_resource (Xen's `acquire_resource`): frames of the
/// target's grant table mapped at the caller's guest frames listed in
/// `frame_list` (the caller must be the hardware domain: a translated
/// caller gets the frames in its physmap). A null `frame_list` asks for the
/// resource's size. Warden's resources are the grant table's shared frames;
/// its status frames (v2), ioreq servers and trace buffers do not exist
/// (EINVAL, as a Xen without them).
fn acquire_resource(c: &mut Call<'_>, start: u64, arg: u64) -> HcResult {
    // Xen's arch_acquire_resource_check, before anything is read.
    if !c.caller.privileged {
        return Err(errno::EACCES);
    }
    let mut a: AcquireResource = c.read(arg)?;
    if a.pad != 0 {
        return Err(errno::EINVAL);
    }
    if a.frame >> 32 != 0 || (a.frame + u64::from(a.nr_frames)) >> 32 != 0 {
        return Err(errno::EINVAL);
    }
    // rcu_lock_remote_domain_by_id: a domain by id, not the caller.
    if a.domid >= warden_abi::DOMID_FIRST_RESERVED {
        return Err(errno::ESRCH);
    }
    let t = c.target(a.domid)?;
    if t.id == c.caller.id {
        return Err(errno::EPERM);
    }
    let p = c.check_req::<MemAcquireResource>(Some(t), None)?;
    let d = c.resolve(&p)?;
    let max_frames = match (a.kind, a.id) {
        (RESOURCE_GRANT_TABLE, RESOURCE_GRANT_TABLE_ID_SHARED) => d.gnttab.max_frames(),
        (RESOURCE_GRANT_TABLE | RESOURCE_IOREQ_SERVER | RESOURCE_VMTRACE_BUF, _) => 0,
        _ => return Err(errno::EOPNOTSUPP),
    };
    if max_frames == 0 {
        return Err(errno::EINVAL);
    }
    if a.frame_list == 0 {
        if a.nr_frames != 0 || start != 0 {
            return Err(errno::EINVAL);
        }
        a.nr_frames = max_frames;
        c.write(arg, &a)?;
        return Ok(0);
    }
    if start >= u64::from(a.nr_frames) || a.nr_frames > u32::MAX >> MEMOP_EXTENT_SHIFT {
        return Err(errno::EINVAL);
    }
    let mut done = start;
    let total = u64::from(a.nr_frames);
    while done < total {
        let todo = ACQUIRE_CHUNK.min(total - done);
        let first = a.frame + done;
        // gnttab_acquire_resource: the whole step within the table's maximum.
        if first + todo > u64::from(max_frames) {
            return Err(errno::EINVAL);
        }
        for i in 0..todo {
            let gfn: u64 = c.read_elem(a.frame_list, done + i)?;
            if let Err(e) = c.acquire_grant_frame(&d, first + i, gfn) {
                // Xen: only the first frame of a step reports its own error.
                return Err(if i == 0 { e } else { errno::EIO });
            }
        }
        done += todo;
    }
    Ok(0)
}
