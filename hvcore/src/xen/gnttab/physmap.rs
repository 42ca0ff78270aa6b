//! XENMAPSPACE_grant_table: a domain maps its grant-table frames into its
//! own physmap (the `add_to_physmap` dispatch calls [`Hv::map_grant_frame`]).

use crate::domain::Domain;
use crate::hv::Hv;
use crate::p2m::{Kind, MapError};
use warden_abi::errno;

impl Hv {
    /// Map frame `idx` of `d`'s grant table (grown to `idx + 1` frames) at
    /// `gpfn` of `d`'s physmap, moving it if it was mapped elsewhere (Xen's
    /// `xenmem_add_to_physmap_one` for XENMAPSPACE_grant_table). RAM at
    /// `gpfn` is given up first (as decrease_reservation); a grant mapping
    /// or another hypervisor frame there is refused (EINVAL). EINVAL beyond
    /// the table's maximum or for a v2 status frame, ENOMEM when it cannot
    /// grow, ESRCH once `d` is dying.
    pub fn map_grant_frame(&self, d: &Domain, idx: u64, gpfn: u64) -> Result<(), i32> {
        let mem = self.platform.mem();
        if gpfn >= crate::p2m::GFN_LIMIT {
            return Err(errno::EINVAL);
        }
        let pa = d.gnttab.frame(mem, idx)?;
        let idx = idx as u32;
        let ram_there = {
            let m = d.mem.read();
            let p2m = m.p2m.as_ref().ok_or(errno::ESRCH)?;
            match p2m.lookup_kind(mem, gpfn) {
                None => false,
                Some((p, Kind::Xen)) if p == pa => return Ok(()),
                Some((_, Kind::Ram)) => true,
                Some(_) => return Err(errno::EINVAL),
            }
        };
        if ram_there {
            self.decrease(d, &[gpfn])?;
        }
        let mut m = d.mem.write();
        if d.gnttab.is_dying() {
            return Err(errno::ESRCH);
        }
        let p2m = m.p2m.as_mut().ok_or(errno::ESRCH)?;
        p2m.map_xen(mem, gpfn, pa).map_err(|e| match e {
            MapError::Exists => errno::EBUSY,
            MapError::OutOfRange => errno::EINVAL,
            MapError::NoMemory => errno::ENOMEM,
        })?;
        let before = d.gnttab.set_frame_gfn(idx, gpfn);
        if before != crate::xen::gnttab::NO_GFN && before != gpfn {
            p2m.unmap_if(mem, before, pa, Kind::Xen);
            crate::vcpu::shootdown(self.platform.guest_slots(), d.id, &d.epoch, &|c| {
                self.platform.kick(c as u32)
            });
        }
        Ok(())
    }
}
