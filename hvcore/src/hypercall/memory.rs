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
    let reservation = op == POPULATE_PHYSMAP as u64 || op == DECREASE_RESERVATION as u64;
    if start != 0 && !reservation {
        return c.unknown("memory_op sub-op", cmd);
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
            if r.extent_order > MAX_EXTENT_ORDER {
                return Err(errno::EINVAL);
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
        CURRENT_RESERVATION | MAXIMUM_RESERVATION => {
            let a: DomidArg = c.read(arg)?;
            let t = c.target(a.domid)?;
            let d = if op as u32 == CURRENT_RESERVATION {
                let p = c.check_req::<MemCurrentReservation>(Some(t), None)?;
                c.resolve(&p)?.into_domain()
            } else {
                let p = c.check_req::<MemMaximumReservation>(Some(t), None)?;
                c.resolve(&p)?.into_domain()
            };
            let m = d.mem.read();
            Ok(if op as u32 == CURRENT_RESERVATION {
                m.tot_pages
            } else {
                m.max_pages
            })
        }
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

/// XENMEM_add_to_physmap: map a page of `space` at `gpfn` of the target
/// (caller -> target : mmu physmap, as Xen 4.17).
fn add_to_physmap(c: &mut Call<'_>, arg: u64) -> HcResult {
    let a: AddToPhysmap = c.read(arg)?;
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
