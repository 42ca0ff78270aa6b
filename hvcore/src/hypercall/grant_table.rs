//! grant_table_op (hypercall 20): the sub-operations an HVM/PVH guest may
//! use in Xen 4.17 (`hvm_grant_table_op`), v1 only. Per-entry refusals
//! (including FLASK denials of map, unmap and copy) are GNTST_* codes in
//! each entry's `status`; the return value is for argument-level errors.
//! The state machine is [`crate::xen::gnttab`].

use super::{Call, GrantSide, HcResult};
use crate::gate::table::*;
use warden_abi::xen::grant_table::{self as gt, *};
use warden_abi::{DOMID_SELF, Pod, errno};

/// Entries of a batch handled per call before the call continues itself.
pub const GNTTAB_OPS_PER_CALL: u32 = 128;

pub fn grant_table_op(c: &mut Call<'_>, cmd: u64, uop: u64, count: u64) -> HcResult {
    // Xen: the bits above the command are only for cache_flush (refused here).
    if cmd & !GNTTABOP_CMD_MASK != 0 || (count as u32 as i32) < 0 {
        return Err(errno::EINVAL);
    }
    let count = count as u32;
    match cmd as u32 {
        gt::MAP_GRANT_REF => batch::<MapGrantRef>(c, cmd, uop, count, map_one),
        gt::UNMAP_GRANT_REF => batch::<UnmapGrantRef>(c, cmd, uop, count, unmap_one),
        gt::COPY => batch::<gt::Copy>(c, cmd, uop, count, copy_one),
        gt::SETUP_TABLE => setup_table(c, uop, count),
        gt::QUERY_SIZE => query_size(c, uop, count),
        gt::SET_VERSION => set_version(c, uop),
        gt::GET_VERSION => get_version(c, uop),
        n => c.unknown("grant_table_op sub-op", n as u64),
    }
}

/// Run `one` over the `count` entries at `uop`, writing each back with its
/// status; continue after [`GNTTAB_OPS_PER_CALL`] entries.
fn batch<T: Pod>(
    c: &mut Call<'_>,
    cmd: u64,
    uop: u64,
    count: u32,
    one: fn(&Call<'_>, &mut T),
) -> HcResult {
    let size = core::mem::size_of::<T>() as u64;
    for i in 0..count {
        if i == GNTTAB_OPS_PER_CALL {
            let next = uop.wrapping_add(i as u64 * size);
            return Err(c.continue_with(&[cmd, next, (count - i) as u64]));
        }
        let mut op: T = c.read_elem(uop, i as u64)?;
        one(c, &mut op);
        c.write_elem(uop, i as u64, &op)?;
    }
    Ok(0)
}

fn status(r: Result<(), i16>) -> i16 {
    match r {
        Ok(()) => GNTST_OKAY,
        Err(s) => s,
    }
}

fn map_one(c: &Call<'_>, op: &mut MapGrantRef) {
    op.dev_bus_addr = 0;
    let r = (|| {
        let t = c.target(op.dom).map_err(|_| GNTST_BAD_DOMAIN)?;
        if op.flags & GNTMAP_READONLY != 0 {
            let p = c
                .check_req::<GnttabMapRo>(Some(t), None)
                .map_err(|_| GNTST_PERMISSION_DENIED)?;
            c.grant_map(&p, op)
        } else {
            let p = c
                .check_req::<GnttabMapRw>(Some(t), None)
                .map_err(|_| GNTST_PERMISSION_DENIED)?;
            c.grant_map(&p, op)
        }
    })();
    match r {
        Ok(h) => {
            op.handle = h;
            op.status = GNTST_OKAY;
        }
        Err(s) => op.status = s,
    }
}

fn unmap_one(c: &Call<'_>, op: &mut UnmapGrantRef) {
    let r = (|| {
        let recorded = c.grant_handle_granter(op.handle)?;
        // The granter as it is now, or as it was when mapped once it is gone.
        let t = match c.target(recorded.id) {
            Ok(s) if s.generation == recorded.generation => s,
            _ => recorded,
        };
        let p = c
            .check_req::<GnttabUnmap>(Some(t), None)
            .map_err(|_| GNTST_PERMISSION_DENIED)?;
        c.grant_unmap(&p, op)
    })();
    op.status = status(r);
}

fn copy_one(c: &Call<'_>, op: &mut gt::Copy) {
    let r = (|| {
        let me = c.caller.id;
        // Only DOMID_SELF may name a frame; a reference's domain is looked up.
        let side = |p: &CopyPtr, gref: bool| -> Result<(u16, bool), i16> {
            if !gref {
                return if p.domid == DOMID_SELF {
                    Ok((me, false))
                } else {
                    Err(GNTST_PERMISSION_DENIED)
                };
            }
            let t = c.target(p.domid).map_err(|_| GNTST_BAD_DOMAIN)?;
            Ok((t.id, true))
        };
        let (sd, sref) = side(&op.source, op.flags & GNTCOPY_SOURCE_GREF != 0)?;
        let (dd, dref) = side(&op.dest, op.flags & GNTCOPY_DEST_GREF != 0)?;
        let mk = |d: u16, is_ref: bool, u: u64| -> GrantSide {
            if !is_ref {
                GrantSide::OwnFrame(u)
            } else if d == me {
                GrantSide::OwnRef(u as u32)
            } else {
                GrantSide::TargetRef(u as u32)
            }
        };
        let (s, d) = (mk(sd, sref, op.source.u), mk(dd, dref, op.dest.u));
        if sd == me {
            let t = c.target(dd).map_err(|_| GNTST_BAD_DOMAIN)?;
            let p = c
                .check_req::<GnttabCopyFromCaller>(Some(t), None)
                .map_err(|_| GNTST_PERMISSION_DENIED)?;
            c.grant_copy(&p, s, d, op)
        } else if dd == me {
            let t = c.target(sd).map_err(|_| GNTST_BAD_DOMAIN)?;
            let p = c
                .check_req::<GnttabCopyToCaller>(Some(t), None)
                .map_err(|_| GNTST_PERMISSION_DENIED)?;
            c.grant_copy(&p, s, d, op)
        } else {
            // Between two other domains: both sides are references (a frame
            // is always the caller's). netback asks for it when it forwards
            // a packet whose page another guest granted (mapped in dom0) to
            // a guest: the source is that guest's reference.
            let src = c.target(sd).map_err(|_| GNTST_BAD_DOMAIN)?;
            let dst = c.target(dd).map_err(|_| GNTST_BAD_DOMAIN)?;
            let label = if src.id == dst.id {
                dst.self_sid
            } else {
                dst.sid
            };
            let p = c
                .check_req::<GnttabCopyBetween>(Some(src), Some(label))
                .map_err(|_| GNTST_PERMISSION_DENIED)?;
            c.grant_copy_between(&p, dst, op.source.u as u32, op.dest.u as u32, op)
        }
    })();
    op.status = status(r);
}

fn setup_table(c: &mut Call<'_>, uop: u64, count: u32) -> HcResult {
    if count != 1 {
        return Err(errno::EINVAL);
    }
    let mut op: SetupTable = c.read(uop)?;
    op.status = (|| {
        let t = c.target(op.dom).map_err(|_| GNTST_BAD_DOMAIN)?;
        let p = c
            .check_req::<GnttabSetupTable>(Some(t), None)
            .map_err(|_| GNTST_PERMISSION_DENIED)?;
        let d = c.resolve(&p).map_err(|_| GNTST_BAD_DOMAIN)?;
        if op.nr_frames > d.gnttab.max_frames() {
            return Err(GNTST_GENERAL_ERROR);
        }
        if op.nr_frames > d.gnttab.nr_frames() && d.grow_grant_table(op.nr_frames).is_err() {
            return Err(GNTST_GENERAL_ERROR);
        }
        let mut st = GNTST_OKAY;
        for i in 0..op.nr_frames {
            if c.write_elem(op.frame_list, i as u64, &d.gnttab.frame_gfn(i))
                .is_err()
            {
                st = GNTST_BAD_VIRT_ADDR;
            }
        }
        Ok(st)
    })()
    .unwrap_or_else(|s| s);
    c.write(uop, &op)?;
    Ok(0)
}

fn query_size(c: &mut Call<'_>, uop: u64, count: u32) -> HcResult {
    if count != 1 {
        return Err(errno::EINVAL);
    }
    let mut op: QuerySize = c.read(uop)?;
    let r = (|| {
        let t = c.target(op.dom).map_err(|_| GNTST_BAD_DOMAIN)?;
        let p = c
            .check_req::<GnttabQuerySize>(Some(t), None)
            .map_err(|_| GNTST_PERMISSION_DENIED)?;
        let d = c.resolve(&p).map_err(|_| GNTST_BAD_DOMAIN)?.into_domain();
        Ok((d.gnttab.nr_frames(), d.gnttab.max_frames()))
    })();
    match r {
        Ok((n, max)) => {
            op.nr_frames = n;
            op.max_nr_frames = max;
            op.status = GNTST_OKAY;
        }
        Err(s) => op.status = s,
    }
    c.write(uop, &op)?;
    Ok(0)
}

fn set_version(c: &mut Call<'_>, uop: u64) -> HcResult {
    let mut op: SetVersion = c.read(uop)?;
    let _p = c.check::<GnttabSetVersion>()?;
    // Xen 4.17 with the table's max_version 1: any other version than 1 or
    // 2 is EINVAL, 2 is ENOSYS; the version in force is written back.
    let r = match op.version {
        1 => Ok(0),
        2 => Err(errno::ENOSYS),
        _ => Err(errno::EINVAL),
    };
    op.version = 1;
    c.write(uop, &op)?;
    r
}

fn get_version(c: &mut Call<'_>, uop: u64) -> HcResult {
    let mut op: GetVersion = c.read(uop)?;
    let t = c.target(op.dom)?;
    let p = c.check_req::<GnttabGetVersion>(Some(t), None)?;
    op.version = c.resolve(&p)?.gnttab.version();
    c.write(uop, &op)?;
    Ok(0)
}
