//! memory_op.

use super::{Call, HcResult};
use crate::gate::table::*;
use alloc::vec::Vec;
use warden_abi::errno;
use warden_abi::memory::*;

pub fn memory_op(c: &mut Call<'_>, cmd: u64, arg: u64) -> HcResult {
    if cmd > u32::MAX as u64 {
        return c.unknown("memory_op sub-op", cmd);
    }
    match cmd as u32 {
        POPULATE_PHYSMAP | DECREASE_RESERVATION => {
            let r: Reservation = c.read(arg)?;
            let t = c.target(r.domid)?;
            let populate = cmd as u32 == POPULATE_PHYSMAP;
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
            let per = 1u64 << r.extent_order;
            let mut done = 0u64;
            let mut err = None;
            while done < r.nr_extents {
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
            let d = if cmd as u32 == CURRENT_RESERVATION {
                let p = c.check_req::<MemCurrentReservation>(Some(t), None)?;
                c.resolve(&p)?.into_domain()
            } else {
                let p = c.check_req::<MemMaximumReservation>(Some(t), None)?;
                c.resolve(&p)?.into_domain()
            };
            let m = d.mem.read();
            Ok(if cmd as u32 == CURRENT_RESERVATION {
                m.tot_pages
            } else {
                m.max_pages
            })
        }
        n => c.unknown("memory_op sub-op", n as u64),
    }
}
