//! The shared_info page and where each vCPU's `vcpu_info` lives.
//!
//! Every domain gets a shared_info page when it is created (a host frame
//! of its own, zeroed, not counted in its pages), kept current whether or
//! not the guest has mapped it, as Xen's. `XENMEM_add_to_physmap` with
//! `XENMAPSPACE_shared_info` inserts it in the physmap at a gfn: the RAM
//! page that was there is freed, an earlier location of the shared_info
//! page is left empty. A vCPU below 32 uses its legacy slot in the page
//! until `VCPUOP_register_vcpu_info` moves its `vcpu_info` into guest
//! memory; a vCPU above has none until then.
//!
//! The host reaches these frames only through [`HostMem`] with the
//! domain's memory lock held for reading (the lock under which frames are
//! freed), and guest frames through the domain's physmap.

use crate::domain::{Domain, GuestVcpu};
use crate::p2m::{HostMem, PhysView};
use core::sync::atomic::{AtomicU64, Ordering};
use warden_abi::xen::xen as x;

/// A domain's shared_info page.
#[derive(Debug, Default)]
pub struct SharedInfoPage {
    /// Host physical address of the page (0: none).
    pa: AtomicU64,
    /// The gfn it is mapped at (u64::MAX: not mapped). Changed under the
    /// domain's memory write lock.
    gfn: AtomicU64,
}

impl SharedInfoPage {
    pub const fn new() -> SharedInfoPage {
        SharedInfoPage {
            pa: AtomicU64::new(0),
            gfn: AtomicU64::new(u64::MAX),
        }
    }

    /// Give the domain its page (once, at creation).
    pub fn set_frame(&self, pa: u64) {
        self.pa.store(pa, Ordering::Release);
    }

    /// The host frame, if the domain has one.
    pub fn frame(&self) -> Option<u64> {
        match self.pa.load(Ordering::Acquire) {
            0 => None,
            pa => Some(pa),
        }
    }

    /// Take the frame away (destruction, under the memory write lock).
    pub fn take_frame(&self) -> Option<u64> {
        match self.pa.swap(0, Ordering::AcqRel) {
            0 => None,
            pa => Some(pa),
        }
    }

    /// Where the guest mapped it.
    pub fn gfn(&self) -> Option<u64> {
        match self.gfn.load(Ordering::Acquire) {
            u64::MAX => None,
            g => Some(g),
        }
    }

    /// Record where it is mapped (under the memory write lock).
    pub fn set_gfn(&self, gfn: Option<u64>) {
        self.gfn.store(gfn.unwrap_or(u64::MAX), Ordering::Release);
    }
}

/// Access to one domain's shared_info page and vcpu_infos, with its memory
/// lock held for reading (frames are freed only under the write lock).
pub struct Shared<'a> {
    d: &'a Domain,
    view: Option<PhysView<'a>>,
    mem: &'a dyn HostMem,
    si: Option<u64>,
}

impl<'a> Shared<'a> {
    /// Run `f` with access to `d`'s shared memory (nothing is reachable once
    /// its memory has been released).
    pub fn with<R>(d: &Domain, mem: &dyn HostMem, f: impl FnOnce(&Shared<'_>) -> R) -> R {
        let m = d.mem.read();
        let view = m.p2m.as_ref().map(|p2m| PhysView { p2m, mem });
        let si = if view.is_some() {
            d.shared_info.frame()
        } else {
            None
        };
        f(&Shared { d, view, mem, si })
    }

    /// OR `v` into the u64 at byte `off` of the shared_info page; the previous value.
    pub fn si_or(&self, off: u64, v: u64) -> Option<u64> {
        let pa = self.si?;
        Some(self.mem.fetch_or_u64(pa + off, v))
    }

    /// AND `v` into the u64 at byte `off` of the shared_info page; the previous value.
    pub fn si_and(&self, off: u64, v: u64) -> Option<u64> {
        let pa = self.si?;
        Some(self.mem.fetch_and_u64(pa + off, v))
    }

    /// The u64 at byte `off` of the shared_info page.
    pub fn si_read(&self, off: u64) -> Option<u64> {
        let pa = self.si?;
        Some(self.mem.read_u64(pa + off))
    }

    /// Write bytes at `off` of the shared_info page.
    pub fn si_write(&self, off: u64, b: &[u8]) {
        if let Some(pa) = self.si
            && off as usize + b.len() <= 4096
        {
            self.mem.write(pa + off, b);
        }
    }

    /// Host physical address of vCPU `v`'s vcpu_info: its registered place
    /// in guest memory, else its legacy slot; None if it has neither.
    pub fn vcpu_info(&self, v: &GuestVcpu) -> Option<u64> {
        let registered = v.events.lock().info_gpa;
        match registered {
            Some(gpa) => {
                let pa = self.view.as_ref()?.host_frame(gpa)?;
                Some(pa | (gpa & 4095))
            }
            None if (v.id as usize) < x::LEGACY_MAX_VCPUS => {
                Some(self.si? + x::vcpu_info_offset(v.id as usize))
            }
            None => None,
        }
    }

    /// OR into the u64 at byte `off` (8-aligned) of `v`'s vcpu_info.
    pub fn vi_or(&self, v: &GuestVcpu, off: u64, val: u64) -> Option<u64> {
        let pa = self.vcpu_info(v)?;
        Some(self.mem.fetch_or_u64(pa + off, val))
    }

    /// The u64 at byte `off` of `v`'s vcpu_info.
    pub fn vi_read(&self, v: &GuestVcpu, off: u64) -> Option<u64> {
        let pa = self.vcpu_info(v)?;
        Some(self.mem.read_u64(pa + off))
    }

    /// Copy `v`'s whole vcpu_info.
    pub fn vi_get(&self, v: &GuestVcpu, out: &mut [u8; 64]) -> bool {
        match self.vcpu_info(v) {
            Some(pa) => {
                self.mem.read(pa, out);
                true
            }
            None => false,
        }
    }

    /// The domain.
    pub fn domain(&self) -> &Domain {
        self.d
    }
}

/// Byte offset of `evtchn_upcall_pending` (with the mask byte after it, in the first u64).
pub const VI_UPCALL: u64 = 0;
/// Byte offset of `evtchn_pending_sel`.
pub const VI_PENDING_SEL: u64 = 8;

impl crate::hv::Hv {
    /// XENMAPSPACE_shared_info: map `d`'s shared_info page at `gpfn` (Xen's
    /// `xenmem_add_to_physmap_one`): the RAM page that was there is freed,
    /// an earlier location of the page is left empty.
    pub fn map_shared_info(&self, d: &Domain, gpfn: u64) -> Result<(), i32> {
        use warden_abi::errno;
        if gpfn >= crate::p2m::GFN_LIMIT {
            return Err(errno::EINVAL);
        }
        let mem = self.platform.mem();
        let mut m = d.mem.write();
        if d.dying.load(Ordering::Acquire) {
            return Err(errno::ESRCH);
        }
        let si = d.shared_info.frame().ok_or(errno::ESRCH)?;
        let p2m = m.p2m.as_mut().ok_or(errno::ESRCH)?;
        let before = d.shared_info.gfn();
        if before == Some(gpfn) {
            return Ok(());
        }
        // Only the domain's own RAM is given up for it (a grant mapping or a
        // grant-table frame there is not the domain's to free).
        if !matches!(
            p2m.lookup_kind(mem, gpfn),
            None | Some((_, crate::p2m::Kind::Ram))
        ) {
            return Err(errno::EINVAL);
        }
        let old = p2m.unmap(mem, gpfn);
        if let Some(g) = before {
            p2m.unmap(mem, g);
        }
        if p2m.map_xen(mem, gpfn, si).is_err() {
            // Put everything back (the tables of both are still there).
            if let Some(pa) = old {
                let _ = p2m.map(mem, gpfn, pa);
            }
            if let Some(g) = before {
                let _ = p2m.map_xen(mem, g, si);
            }
            return Err(errno::ENOMEM);
        }
        d.shared_info.set_gfn(Some(gpfn));
        crate::vcpu::shootdown(self.platform.guest_slots(), d.id, &d.epoch, &|c| {
            self.platform.kick(c as u32)
        });
        if let Some(pa) = old {
            m.tot_pages = m.tot_pages.saturating_sub(1);
            // Given up as decrease_reservation gives a page up (a grant pin
            // or a foreign mapping keeps it until it goes).
            if self.give_up(d, pa) {
                self.scrub_free(pa);
            }
        }
        Ok(())
    }

    /// VCPUOP_register_vcpu_info: move `v`'s vcpu_info to guest-physical
    /// `gpa` (checked by the caller: 8-aligned, within a page). As Xen's
    /// `map_vcpu_info`: once per vCPU (EINVAL again), the current content
    /// is copied, then every selector bit and `upcall_pending` are set (a
    /// spurious upcall) with `time` refreshed.
    pub fn register_vcpu_info(
        &self,
        v: &GuestVcpu,
        gpa: u64,
        time: warden_abi::vcpu::VcpuTimeInfo,
    ) -> Result<(), i32> {
        use warden_abi::Pod;
        use warden_abi::errno;
        use warden_abi::vcpu::VcpuInfo;
        let mut cur = [0u8; 64];
        if (v.id as usize) < x::LEGACY_MAX_VCPUS {
            Shared::with(&v.domain, self.platform.mem(), |s| {
                if let Some(pa) = s.si {
                    self.platform
                        .mem()
                        .read(pa + x::vcpu_info_offset(v.id as usize), &mut cur);
                }
            });
        }
        let mut ev = v.events.lock();
        if ev.info_gpa.is_some() {
            return Err(errno::EINVAL);
        }
        let mut info = VcpuInfo::from_bytes(&cur).unwrap_or_default();
        info.evtchn_pending_sel = !0;
        info.evtchn_upcall_pending = 1;
        info.time = time;
        self.write_phys(&v.domain, gpa, info.as_bytes())
            .map_err(|_| errno::EINVAL)?;
        ev.info_gpa = Some(gpa);
        drop(ev);
        self.notify_upcall(v);
        Ok(())
    }
}
