//! Guest memory as hypercall handlers see it: guest virtual addresses are
//! translated through the guest's own page tables (a software walk of the
//! x86-64 4-level format, reading the tables through the domain's
//! guest-physical memory), then copied page by page. Every address is
//! checked: canonical form, arithmetic overflow of `address + length`,
//! presence and write permission at every level (with CR0.WP), SMAP, and
//! the guest-physical frame's existence in the domain's physmap. A bad
//! address is a [`Fault`] (the hypercall returns -EFAULT); the host never
//! touches memory the guest does not own.
//!
//! Accesses are supervisor accesses, as Xen 4.17's `hvm_copy_*_guest_linear`
//! makes them for hypercall arguments whatever the caller's CPL. SMAP as
//! Xen's `guest_walk_tables`: with the guest's CR4.SMAP set, a data access
//! to a user page (U/S set at every level) faults unless EFLAGS.AC is set
//! (Linux's privcmd runs the hypercall between `stac` and `clac`); an
//! implicit access ([`Access::implicit`]: system structures, Xen's
//! `PFEC_implicit`) faults whatever AC; instruction fetches are not data
//! accesses (SMAP does not apply).

use warden_abi::Pod;

/// Why a guest access failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    /// The guest address (virtual, or physical for physical accesses).
    pub addr: u64,
    /// What was wrong.
    pub reason: &'static str,
}

impl core::fmt::Display for Fault {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "guest address {:#x}: {}", self.addr, self.reason)
    }
}

fn fault(addr: u64, reason: &'static str) -> Fault {
    Fault { addr, reason }
}

/// A domain's guest-physical memory.
pub trait GuestPhys {
    /// Copy from guest-physical `gpa` into `buf`; the range lies within one page.
    fn read_gpa(&self, gpa: u64, buf: &mut [u8]) -> Result<(), Fault>;
    /// Copy `buf` to guest-physical `gpa`; the range lies within one page.
    fn write_gpa(&self, gpa: u64, buf: &[u8]) -> Result<(), Fault>;
}

/// The guest's paging registers at the time of the hypercall, and its
/// RFLAGS (EFLAGS.AC decides SMAP's data accesses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PagingState {
    pub cr0: u64,
    pub cr3: u64,
    pub cr4: u64,
    pub efer: u64,
    pub rflags: u64,
}

/// What a translation is for (Xen's walk request, `PFEC_*`): the checks
/// made at the end of the walk depend on it. Every access is a supervisor
/// access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Access {
    /// A write (needs every level writable when CR0.WP is set).
    pub write: bool,
    /// An instruction fetch (SMAP does not apply).
    pub fetch: bool,
    /// An implicit supervisor access (to a system structure): SMAP applies
    /// whatever EFLAGS.AC.
    pub implicit: bool,
}

impl Access {
    /// An explicit data read (a hypercall argument).
    pub const READ: Access = Access {
        write: false,
        fetch: false,
        implicit: false,
    };
    /// An explicit data write.
    pub const WRITE: Access = Access {
        write: true,
        fetch: false,
        implicit: false,
    };
    /// An instruction fetch.
    pub const FETCH: Access = Access {
        write: false,
        fetch: true,
        implicit: false,
    };
}

const CR0_PG: u64 = 1 << 31;
const CR0_WP: u64 = 1 << 16;
const CR4_PAE: u64 = 1 << 5;
const CR4_LA57: u64 = 1 << 12;
const CR4_SMAP: u64 = 1 << 21;
const EFER_LMA: u64 = 1 << 10;
const RFLAGS_AC: u64 = 1 << 18;

const PTE_P: u64 = 1;
const PTE_RW: u64 = 1 << 1;
const PTE_US: u64 = 1 << 2;
const PTE_PS: u64 = 1 << 7;
/// Physical-address bits of an entry (bits 12..52).
const PTE_ADDR: u64 = 0x000f_ffff_ffff_f000;

const PAGE: u64 = 4096;

/// Is `va` canonical for 48-bit virtual addresses?
pub fn canonical(va: u64) -> bool {
    let top = (va as i64) >> 47;
    top == 0 || top == -1
}

/// Translate guest virtual `va` for `access`. Returns the guest-physical
/// address.
pub fn translate(
    mem: &dyn GuestPhys,
    p: &PagingState,
    va: u64,
    access: Access,
) -> Result<u64, Fault> {
    let write = access.write;
    if p.cr0 & CR0_PG == 0 {
        // No paging: linear = physical, 32 bits wide outside long mode.
        if va > u32::MAX as u64 {
            return Err(fault(va, "above 4 GiB with paging disabled"));
        }
        return Ok(va);
    }
    if p.efer & EFER_LMA == 0 || p.cr4 & CR4_PAE == 0 {
        return Err(fault(
            va,
            "guest paging mode not supported (needs long mode)",
        ));
    }
    if p.cr4 & CR4_LA57 != 0 {
        return Err(fault(va, "5-level paging not supported"));
    }
    if !canonical(va) {
        return Err(fault(va, "non-canonical address"));
    }
    let wp = p.cr0 & CR0_WP != 0;
    // A user page: U/S set at every level of the walk.
    let mut user = true;
    let mut table = p.cr3 & PTE_ADDR;
    // Levels: PML4 (39), PDPT (30, may map 1 GiB), PD (21, may map 2 MiB), PT (12).
    for (level, shift) in [(4, 39u32), (3, 30), (2, 21), (1, 12)] {
        let index = (va >> shift) & 511;
        let mut raw = [0u8; 8];
        mem.read_gpa(table + index * 8, &mut raw)
            .map_err(|_| fault(va, "guest page table not in guest memory"))?;
        let e = u64::from_le_bytes(raw);
        if e & PTE_P == 0 {
            return Err(fault(va, "not present in the guest page tables"));
        }
        if write && wp && e & PTE_RW == 0 {
            return Err(fault(va, "read-only in the guest page tables"));
        }
        user &= e & PTE_US != 0;
        let large = e & PTE_PS != 0 && (level == 3 || level == 2);
        if level == 4 && e & PTE_PS != 0 {
            return Err(fault(va, "reserved bit set in a PML4 entry"));
        }
        if large || level == 1 {
            if user
                && !access.fetch
                && p.cr4 & CR4_SMAP != 0
                && (access.implicit || p.rflags & RFLAGS_AC == 0)
            {
                return Err(fault(
                    va,
                    if access.implicit {
                        "SMAP: implicit supervisor access to a user page"
                    } else {
                        "SMAP: supervisor access to a user page with EFLAGS.AC clear"
                    },
                ));
            }
            let size = 1u64 << shift;
            // Large pages: bits 12..shift of the entry are the PAT bit and reserved.
            let base = e & PTE_ADDR & !(size - 1);
            return Ok(base | (va & (size - 1)));
        }
        table = e & PTE_ADDR;
    }
    unreachable!("the walk returns at level 1")
}

/// A guest address space: its memory and paging state.
#[derive(Clone, Copy)]
pub struct GuestView<'a> {
    pub mem: &'a dyn GuestPhys,
    pub paging: PagingState,
    /// Accesses are implicit supervisor accesses (see [`Access::implicit`]).
    pub implicit: bool,
}

impl<'a> GuestView<'a> {
    pub fn new(mem: &'a dyn GuestPhys, paging: PagingState) -> Self {
        GuestView {
            mem,
            paging,
            implicit: false,
        }
    }

    /// The same address space, reached by implicit supervisor accesses.
    pub fn implicit(self) -> Self {
        GuestView {
            implicit: true,
            ..self
        }
    }

    /// Check that `[va, va + len)` does not wrap.
    pub fn check_range(va: u64, len: u64) -> Result<(), Fault> {
        if len > 0 && va.checked_add(len - 1).is_none() {
            return Err(fault(va, "range wraps around the address space"));
        }
        Ok(())
    }

    /// Visit `[va, va + len)` page by page: `f(guest physical, offset in the range, chunk length)`.
    fn walk(
        &self,
        va: u64,
        len: usize,
        write: bool,
        mut f: impl FnMut(u64, usize, usize) -> Result<(), Fault>,
    ) -> Result<(), Fault> {
        Self::check_range(va, len as u64)?;
        let mut done = 0usize;
        while done < len {
            let cur = va + done as u64;
            let in_page = (PAGE - (cur & (PAGE - 1))) as usize;
            let n = in_page.min(len - done);
            let access = Access {
                write,
                fetch: false,
                implicit: self.implicit,
            };
            let gpa = translate(self.mem, &self.paging, cur, access)?;
            f(gpa, done, n)?;
            done += n;
        }
        Ok(())
    }

    /// Copy `out.len()` bytes from guest virtual `va`.
    pub fn read(&self, va: u64, out: &mut [u8]) -> Result<(), Fault> {
        let len = out.len();
        self.walk(va, len, false, |gpa, off, n| {
            self.mem.read_gpa(gpa, &mut out[off..off + n])
        })
    }

    /// Copy `data` to guest virtual `va`.
    pub fn write(&self, va: u64, data: &[u8]) -> Result<(), Fault> {
        self.walk(va, data.len(), true, |gpa, off, n| {
            self.mem.write_gpa(gpa, &data[off..off + n])
        })
    }

    /// Read a structure.
    pub fn read_pod<T: Pod>(&self, va: u64) -> Result<T, Fault> {
        let mut v = T::default();
        self.read(va, v.as_bytes_mut())?;
        Ok(v)
    }

    /// Write a structure.
    pub fn write_pod<T: Pod>(&self, va: u64, v: &T) -> Result<(), Fault> {
        self.write(va, v.as_bytes())
    }

    /// Element `index` of a guest array of `T` starting at `va`.
    pub fn read_elem<T: Pod>(&self, va: u64, index: u64) -> Result<T, Fault> {
        let at = Self::elem_addr::<T>(va, index)?;
        self.read_pod(at)
    }

    /// Write element `index` of a guest array of `T` starting at `va`.
    pub fn write_elem<T: Pod>(&self, va: u64, index: u64, v: &T) -> Result<(), Fault> {
        let at = Self::elem_addr::<T>(va, index)?;
        self.write_pod(at, v)
    }

    fn elem_addr<T>(va: u64, index: u64) -> Result<u64, Fault> {
        let size = core::mem::size_of::<T>() as u64;
        index
            .checked_mul(size)
            .and_then(|o| va.checked_add(o))
            .ok_or(fault(va, "array index overflows the address space"))
    }

    /// Read `len` bytes into a new vector, refusing lengths above `max`
    /// (checked before anything is allocated) and failing cleanly if the
    /// allocation is refused.
    pub fn read_vec(
        &self,
        va: u64,
        len: usize,
        max: usize,
    ) -> Result<alloc::vec::Vec<u8>, ReadVecError> {
        if len > max {
            return Err(ReadVecError::TooLarge);
        }
        Self::check_range(va, len as u64).map_err(ReadVecError::Fault)?;
        let mut v = alloc::vec::Vec::new();
        v.try_reserve_exact(len)
            .map_err(|_| ReadVecError::NoMemory)?;
        v.resize(len, 0);
        self.read(va, &mut v).map_err(ReadVecError::Fault)?;
        Ok(v)
    }
}

/// Why [`GuestView::read_vec`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadVecError {
    /// Longer than allowed.
    TooLarge,
    /// The host could not allocate the buffer.
    NoMemory,
    /// A bad guest address.
    Fault(Fault),
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use alloc::collections::BTreeMap;
    use core::cell::RefCell;

    /// Guest-physical memory for tests: a sparse map of frames.
    #[derive(Default)]
    pub struct TestPhys {
        pub frames: RefCell<BTreeMap<u64, [u8; 4096]>>,
    }

    impl TestPhys {
        pub fn add(&self, gfn: u64) {
            self.frames.borrow_mut().insert(gfn, [0; 4096]);
        }
        pub fn put_u64(&self, gpa: u64, v: u64) {
            self.write_gpa(gpa, &v.to_le_bytes()).unwrap();
        }
    }

    impl GuestPhys for TestPhys {
        fn read_gpa(&self, gpa: u64, buf: &mut [u8]) -> Result<(), Fault> {
            let f = self.frames.borrow();
            let page = f.get(&(gpa >> 12)).ok_or(fault(gpa, "no frame"))?;
            let o = (gpa & 4095) as usize;
            assert!(o + buf.len() <= 4096, "read crosses a page");
            buf.copy_from_slice(&page[o..o + buf.len()]);
            Ok(())
        }
        fn write_gpa(&self, gpa: u64, buf: &[u8]) -> Result<(), Fault> {
            let mut f = self.frames.borrow_mut();
            let page = f.get_mut(&(gpa >> 12)).ok_or(fault(gpa, "no frame"))?;
            let o = (gpa & 4095) as usize;
            assert!(o + buf.len() <= 4096, "write crosses a page");
            page[o..o + buf.len()].copy_from_slice(buf);
            Ok(())
        }
    }

    const LONG: PagingState = PagingState {
        cr0: CR0_PG | CR0_WP | 1,
        cr3: 0x1000,
        cr4: CR4_PAE,
        efer: EFER_LMA | (1 << 8),
        rflags: 2,
    };

    /// Page tables at 0x1000 (PML4), 0x2000 (PDPT), 0x3000 (PD), 0x4000 (PT):
    /// va 0x0040_0000.. (PD index 2) -> PT: page 0 -> gfn 0x10 (RW), page 1 -> gfn 0x11 (RO),
    /// page 2 not present; va 0x0060_0000 (PD index 3) -> 2 MiB page at 0x20_0000;
    /// va 0x4000_0000 (PDPT index 1) -> 1 GiB page at 0x4000_0000.
    pub fn setup() -> TestPhys {
        let m = TestPhys::default();
        for g in [1, 2, 3, 4, 0x10, 0x11, 0x200, 0x201, 0x40000] {
            m.add(g);
        }
        m.put_u64(0x1000, 0x2000 | 3);
        m.put_u64(0x2000, 0x3000 | 3);
        m.put_u64(0x2000 + 8, 0x4000_0000 | 0x83);
        m.put_u64(0x3000 + 2 * 8, 0x4000 | 3);
        m.put_u64(0x3000 + 3 * 8, 0x20_0000 | 0x83);
        m.put_u64(0x4000, 0x10000 | 3);
        m.put_u64(0x4000 + 8, 0x11000 | 1);
        m
    }

    #[test]
    fn walks_4k_2m_1g() {
        let m = setup();
        assert_eq!(translate(&m, &LONG, 0x40_0123, Access::READ), Ok(0x10123));
        assert_eq!(translate(&m, &LONG, 0x40_1fff, Access::READ), Ok(0x11fff));
        assert_eq!(
            translate(&m, &LONG, 0x61_2345, Access::WRITE),
            Ok(0x21_2345)
        );
        assert_eq!(
            translate(&m, &LONG, 0x4000_5678, Access::WRITE),
            Ok(0x4000_5678)
        );
    }

    #[test]
    fn refuses_bad_addresses() {
        let m = setup();
        // Not present.
        assert!(translate(&m, &LONG, 0x40_2000, Access::READ).is_err());
        assert!(translate(&m, &LONG, 0x80_0000, Access::READ).is_err());
        // Read-only page written with CR0.WP.
        assert!(translate(&m, &LONG, 0x40_1000, Access::WRITE).is_err());
        let nowp = PagingState {
            cr0: LONG.cr0 & !CR0_WP,
            ..LONG
        };
        assert_eq!(translate(&m, &nowp, 0x40_1000, Access::WRITE), Ok(0x11000));
        // Non-canonical.
        assert!(translate(&m, &LONG, 0x0000_8000_0000_0000, Access::READ).is_err());
        // Page tables pointing outside guest memory.
        let bad = PagingState {
            cr3: 0x9999_0000,
            ..LONG
        };
        assert!(translate(&m, &bad, 0x40_0000, Access::READ).is_err());
        // Unsupported modes.
        let pae32 = PagingState { efer: 0, ..LONG };
        assert!(translate(&m, &pae32, 0x40_0000, Access::READ).is_err());
        let la57 = PagingState {
            cr4: CR4_PAE | CR4_LA57,
            ..LONG
        };
        assert!(translate(&m, &la57, 0x40_0000, Access::READ).is_err());
    }

    #[test]
    fn copies_across_pages_and_stops_at_holes() {
        let m = setup();
        let v = GuestView::new(&m, LONG);
        let data: alloc::vec::Vec<u8> = (0..100u8).collect();
        // Spans page 0 (RW) into page 1 (RO): the write must fail at the RO page.
        assert!(v.write(0x40_0fd0, &data).is_err());
        // A read across the same boundary works.
        let mut out = [0u8; 100];
        v.read(0x40_0fd0, &mut out).unwrap();
        // Within the RW page.
        v.write(0x40_0100, &data).unwrap();
        v.read(0x40_0100, &mut out).unwrap();
        assert_eq!(&out[..], &data[..]);
        // Wrapping range.
        assert!(v.read(u64::MAX - 3, &mut out).is_err());
        // Element addressing overflow.
        assert!(v.read_elem::<u64>(0x40_0000, u64::MAX / 4).is_err());
        // read_vec: size limit before allocation, then a clean fault.
        assert_eq!(
            v.read_vec(0x40_0000, 1 << 30, 1 << 20),
            Err(ReadVecError::TooLarge)
        );
        assert!(matches!(
            v.read_vec(0x40_0000, 3 * 4096, 1 << 20),
            Err(ReadVecError::Fault(_))
        ));
    }

    #[test]
    fn no_paging_is_identity_below_4g() {
        let m = setup();
        let p = PagingState::default();
        assert_eq!(translate(&m, &p, 0x1234, Access::WRITE), Ok(0x1234));
        assert!(translate(&m, &p, 1 << 32, Access::READ).is_err());
    }

    /// User pages: PML4 at 0x5000 -> PDPT 0x6000 -> PD 0x7000 -> PT 0x8000,
    /// all U/S, va 0 -> gfn 0x10 with U/S clear in the PTE (supervisor),
    /// va 0x1000 -> gfn 0x11 (user); PD index 1 -> 2 MiB user page at
    /// 0x20_0000 (va 0x20_0000); PDPT index 1 with U/S clear -> PD 0x7000
    /// (va 0x4000_1000: supervisor, whatever the lower levels say).
    fn user_tables() -> (TestPhys, PagingState) {
        let m = setup();
        for g in [5, 6, 7, 8] {
            m.add(g);
        }
        m.put_u64(0x5000, 0x6000 | 7);
        m.put_u64(0x6000, 0x7000 | 7);
        m.put_u64(0x6000 + 8, 0x7000 | 3);
        m.put_u64(0x7000, 0x8000 | 7);
        m.put_u64(0x7000 + 8, 0x20_0000 | 0x87);
        m.put_u64(0x8000, 0x10000 | 3);
        m.put_u64(0x8000 + 8, 0x11000 | 7);
        let p = PagingState {
            cr3: 0x5000,
            cr4: CR4_PAE | CR4_SMAP,
            ..LONG
        };
        (m, p)
    }

    #[test]
    fn smap_refuses_supervisor_data_accesses_to_user_pages_without_ac() {
        let (m, smap) = user_tables();
        let ac = PagingState {
            rflags: smap.rflags | RFLAGS_AC,
            ..smap
        };
        let nosmap = PagingState {
            cr4: CR4_PAE,
            ..smap
        };
        let implicit = Access {
            implicit: true,
            ..Access::READ
        };
        // A user page (4 KiB or 2 MiB), CR4.SMAP, AC clear: refused,
        // reads and writes.
        for va in [0x1123, 0x20_0456] {
            for a in [Access::READ, Access::WRITE] {
                let e = translate(&m, &smap, va, a).unwrap_err();
                assert!(e.reason.contains("SMAP"), "{va:#x}: {e}");
                // AC set: allowed (an explicit access).
                assert!(translate(&m, &ac, va, a).is_ok(), "{va:#x}");
                // No SMAP: allowed.
                assert!(translate(&m, &nosmap, va, a).is_ok(), "{va:#x}");
            }
            // An implicit access is refused whatever AC.
            assert!(translate(&m, &ac, va, implicit).is_err(), "{va:#x}");
            assert!(translate(&m, &nosmap, va, implicit).is_ok(), "{va:#x}");
            // A fetch is no data access.
            assert!(translate(&m, &smap, va, Access::FETCH).is_ok(), "{va:#x}");
        }
        assert_eq!(translate(&m, &ac, 0x1123, Access::READ), Ok(0x11123));
        // Supervisor pages: U/S clear in the PTE, or at a higher level
        // only (the PDPT entry of va 0x4000_0000).
        for va in [0x234, 0x4000_1123] {
            assert!(translate(&m, &smap, va, Access::READ).is_ok(), "{va:#x}");
            assert!(translate(&m, &smap, va, Access::WRITE).is_ok(), "{va:#x}");
            assert!(translate(&m, &smap, va, implicit).is_ok(), "{va:#x}");
        }
        // Copies: a range from a supervisor page into a user page fails
        // at the user page; with AC the same copy works; an implicit view
        // refuses it even with AC.
        let mut out = [0u8; 32];
        assert!(GuestView::new(&m, smap).read(0x100, &mut out).is_ok());
        let e = GuestView::new(&m, smap).read(0xff0, &mut out).unwrap_err();
        assert_eq!(e.addr, 0x1000);
        assert!(GuestView::new(&m, ac).write(0xff0, &[1; 32]).is_ok());
        let e = GuestView::new(&m, ac).implicit().read(0xff0, &mut out);
        assert_eq!(e.unwrap_err().addr, 0x1000);
        // Paging off: no SMAP.
        let off = PagingState { cr0: 0, ..smap };
        assert!(translate(&m, &off, 0x1123, Access::READ).is_ok());
    }
}
