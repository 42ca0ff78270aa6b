//! HVM context records (`XEN_DOMCTL_{get,set}hvmcontext`,
//! `warden_abi::xen::hvm_save`): reading a context image a toolstack sends
//! and checking each record as Xen 4.17's `hvm_load` and its handlers do,
//! and writing the image of a domain's state.
//!
//! The records Warden keeps for a PVH guest are HEADER, CPU, LAPIC,
//! LAPIC_REGS, MTRR and END. Any other type code is one Xen knows but
//! Warden does not emulate (PIC, IOAPIC, PIT, RTC, HPET, ...: the devices
//! a PVH guest does not have; Xen refuses their records for such a guest
//! with -ENODEV) or one Xen does not know (-EINVAL). Unlike Xen, which
//! applies the records one by one, the whole image is checked before
//! anything is applied, so a refused image changes nothing.

use alloc::boxed::Box;
use alloc::vec::Vec;
use warden_abi::Pod;
use warden_abi::errno::{EINVAL, ENODATA, ENODEV};
use warden_abi::xen::hvm_save::*;

/// Largest context image sethvmcontext accepts (Xen allocates what the
/// caller asks for; Warden's largest image, 64 vCPUs with every record,
/// is about 150 KiB).
pub const MAX_IMAGE: usize = 1 << 20;

/// Guest-physical address bits (`p2m::GFN_LIMIT`): CR3 and MTRR bases above
/// them are refused, as Xen refuses them above the domain's `maxphysaddr`.
pub const PADDR_BITS: u32 = crate::p2m::GFN_LIMIT.trailing_zeros() + 12;

/// The PAT of a vCPU at reset.
pub const PAT_RESET: u64 = 0x0007_0406_0007_0406;
/// MTRRcap of a Warden vCPU (Xen's: 8 variable ranges, fixed ranges, WC).
pub const MTRR_CAP: u64 = MTRR_VCNT as u64 | (1 << 8) | (1 << 10);

/// One checked record for one vCPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Cpu(u32, Box<HwCpu>),
    Lapic(u32, HwLapic),
    LapicRegs(u32, Box<HwLapicRegs>),
    Mtrr(u32, Box<HwMtrr>),
}

impl Record {
    /// The vCPU it is for.
    pub fn vcpu(&self) -> u32 {
        match self {
            Record::Cpu(v, _)
            | Record::Lapic(v, _)
            | Record::LapicRegs(v, _)
            | Record::Mtrr(v, _) => *v,
        }
    }
}

/// A checked image: its header and its records in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub header: SaveHeader,
    pub records: Vec<Record>,
}

/// The MTRR record of a vCPU at reset (Xen's `hvm_vcpu_cacheattr_init`).
pub fn mtrr_reset() -> HwMtrr {
    HwMtrr {
        msr_pat_cr: PAT_RESET,
        msr_mtrr_cap: MTRR_CAP,
        ..Default::default()
    }
}

/// A record's body at `at`: Err if the descriptor does not describe it
/// (Xen's `_hvm_check_entry`: the type, the length — exactly, or at most
/// for a zero-extended record — and the bytes left).
fn body(
    img: &[u8],
    at: usize,
    typecode: u16,
    len: usize,
    zero_extend: bool,
) -> Option<(&[u8], usize)> {
    let d = SaveDescriptor::from_bytes(img.get(at..at.checked_add(8)?)?)?;
    let n = d.length as usize;
    let left = img.len() - at - 8;
    if d.typecode != typecode || (if zero_extend { n > len } else { n != len }) || n > left {
        return None;
    }
    Some((&img[at + 8..at + 8 + n], at + 8 + n))
}

/// A zero-extended copy of a record body.
fn zero_extended<T: Pod>(b: &[u8]) -> T {
    let mut v = T::default();
    v.as_bytes_mut()[..b.len()].copy_from_slice(b);
    v
}

/// Read and check an image for a domain with `nr_vcpus` vCPUs, as Xen
/// 4.17's `hvm_load` (errnos: a missing or malformed header or a missing
/// end marker ENODATA, a bad magic or version EINVAL; unknown type codes
/// EINVAL; a record for a device Warden does not emulate ENODEV; each
/// record's own checks EINVAL).
pub fn parse(img: &[u8], nr_vcpus: u32) -> Result<Image, i32> {
    let (h, mut at) =
        body(img, 0, HEADER, core::mem::size_of::<SaveHeader>(), false).ok_or(ENODATA)?;
    let header: SaveHeader = zero_extended(h);
    if header.magic != FILE_MAGIC || header.version != FILE_VERSION {
        return Err(EINVAL);
    }
    let mut records = Vec::new();
    loop {
        let d = img
            .get(at..at + 8)
            .and_then(SaveDescriptor::from_bytes)
            .ok_or(ENODATA)?;
        let vcpu = u32::from(d.instance);
        let known_vcpu = || if vcpu < nr_vcpus { Ok(()) } else { Err(EINVAL) };
        let r = match d.typecode {
            END => return Ok(Image { header, records }),
            CPU => {
                known_vcpu()?;
                let (b, next) =
                    body(img, at, CPU, core::mem::size_of::<HwCpu>(), true).ok_or(EINVAL)?;
                at = next;
                Record::Cpu(vcpu, Box::new(check_cpu(&zero_extended(b))?))
            }
            LAPIC => {
                known_vcpu()?;
                let (b, next) =
                    body(img, at, LAPIC, core::mem::size_of::<HwLapic>(), true).ok_or(EINVAL)?;
                at = next;
                let l: HwLapic = zero_extended(b);
                check_lapic(&l)?;
                Record::Lapic(vcpu, l)
            }
            LAPIC_REGS => {
                known_vcpu()?;
                let (b, next) = body(
                    img,
                    at,
                    LAPIC_REGS,
                    core::mem::size_of::<HwLapicRegs>(),
                    false,
                )
                .ok_or(EINVAL)?;
                at = next;
                Record::LapicRegs(vcpu, Box::new(zero_extended(b)))
            }
            MTRR => {
                known_vcpu()?;
                let (b, next) =
                    body(img, at, MTRR, core::mem::size_of::<HwMtrr>(), false).ok_or(EINVAL)?;
                at = next;
                let m: HwMtrr = zero_extended(b);
                check_mtrr(&m)?;
                Record::Mtrr(vcpu, Box::new(m))
            }
            // Devices of a full HVM guest (PIC, IOAPIC, the IRQ routing
            // records, PIT, RTC, HPET, PM timer): a PVH guest has none.
            3 | 4 | 7..=13 => return Err(ENODEV),
            // Xen's other records (Viridian, XSAVE, VMCE, TSC_ADJUST, MSRs):
            // state Warden does not keep.
            15..=CODE_MAX => return Err(ENODEV),
            _ => return Err(EINVAL),
        };
        records.push(r);
    }
}

const CR0_PE: u64 = 1;
const CR0_ET: u64 = 1 << 4;
const CR0_PG: u64 = 1 << 31;
/// CR0 bits a guest may set (PE MP EM TS ET NE WP AM NW CD PG).
const CR0_VALID: u64 = 0xE005_003F;
const CR4_PAE: u64 = 1 << 5;
/// CR4 bits of Warden's guests: VME .. OSXMMEXCPT, SMEP, SMAP (its CPUID
/// hides FSGSBASE, PCID and XSAVE).
const CR4_VALID: u64 = 0x7FF | (1 << 20) | (1 << 21);
const EFER_SCE: u64 = 1;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;
const EFER_NXE: u64 = 1 << 11;
/// MXCSR bits FXRSTOR accepts.
const MXCSR_VALID: u32 = 0xFFFF;

/// Xen's `UNFOLD_ARBYTES`: segment attributes saved in the VMCS layout by
/// old Xen versions, moved to the packed form.
fn unfold_arbytes(a: u32) -> u32 {
    if a & 0xf000 != 0 && a & 0x0f00 == 0 {
        (a & 0xff) | ((a >> 4) & 0xf00)
    } else {
        a
    }
}

/// Check a CPU record as `hvm_load_cpu_ctxt` and `svm_vmcb_restore` do
/// (EINVAL), and as Warden must (an FXSAVE image FXRSTOR would refuse, a
/// long-mode state without PAE, debug addresses it does not keep);
/// returns it normalised (attributes
/// unfolded, RFLAGS bit 1 set, the obsolete field cleared).
pub fn check_cpu(c: &HwCpu) -> Result<HwCpu, i32> {
    if c.pad0 != 0 {
        return Err(EINVAL);
    }
    if c.cr0 & !CR0_VALID != 0 || c.cr0 & CR0_ET == 0 || c.cr0 & (CR0_PE | CR0_PG) == CR0_PG {
        return Err(EINVAL);
    }
    if c.cr4 & !CR4_VALID != 0 {
        return Err(EINVAL);
    }
    // hvm_efer_valid: only the features Warden's CPUID shows; LMA needs LME
    // and paging. Warden also needs LMA exactly when LME and paging are on
    // (with PAE), the state VMRUN accepts.
    let pg = c.cr0 & CR0_PG != 0;
    let e = c.msr_efer;
    if e & !(EFER_SCE | EFER_LME | EFER_LMA | EFER_NXE) != 0
        || (e & EFER_LMA != 0 && (e & EFER_LME == 0 || !pg))
        || (e & EFER_LME != 0 && pg && (e & EFER_LMA == 0 || c.cr4 & CR4_PAE == 0))
    {
        return Err(EINVAL);
    }
    if c.cr3 >> PADDR_BITS != 0 {
        return Err(EINVAL);
    }
    if c.flags & !FPU_INITIALISED != 0 || c.msr_tsc_aux >> 32 != 0 {
        return Err(EINVAL);
    }
    // Warden keeps no guest DR0-3 (they are not switched per guest).
    if c.dr0 | c.dr1 | c.dr2 | c.dr3 != 0 {
        return Err(EINVAL);
    }
    // svm_vmcb_restore: a pending event's type (1 is reserved, above 4
    // undefined), reserved bits, a 16-bit error code.
    if c.pending_event & (1 << 31) != 0 {
        let ty = (c.pending_event >> 8) & 7;
        if ty == 1 || ty > 4 || c.pending_event & 0x7FFF_F000 != 0 {
            return Err(EINVAL);
        }
        if c.pending_event & (1 << 11) != 0 && c.error_code >> 16 != 0 {
            return Err(EINVAL);
        }
    }
    if c.flags & FPU_INITIALISED != 0 {
        let mxcsr = u32::from_le_bytes([
            c.fpu_regs[24],
            c.fpu_regs[25],
            c.fpu_regs[26],
            c.fpu_regs[27],
        ]);
        if mxcsr & !MXCSR_VALID != 0 {
            return Err(EINVAL);
        }
    }
    let mut n = *c;
    for a in [
        &mut n.cs_arbytes,
        &mut n.ds_arbytes,
        &mut n.es_arbytes,
        &mut n.fs_arbytes,
        &mut n.gs_arbytes,
        &mut n.ss_arbytes,
        &mut n.tr_arbytes,
        &mut n.ldtr_arbytes,
    ] {
        *a = unfold_arbytes(*a);
    }
    n.rflags |= 2;
    n.msr_flags = 0;
    Ok(n)
}

/// Xen's `lapic_load_hidden` check: x2APIC mode needs the APIC enabled;
/// Warden also refuses an APIC base it cannot place (reserved bits, or the
/// page above the guest's address space).
pub fn check_lapic(l: &HwLapic) -> Result<(), i32> {
    const ENABLE: u64 = 1 << 11;
    const EXTD: u64 = 1 << 10;
    const BSP: u64 = 1 << 8;
    let b = l.apic_base_msr;
    if b & EXTD != 0 && b & ENABLE == 0 {
        return Err(EINVAL);
    }
    let addr_mask = ((1u64 << PADDR_BITS) - 1) & !0xFFF;
    if b & !(addr_mask | ENABLE | EXTD | BSP) != 0 {
        return Err(EINVAL);
    }
    Ok(())
}

/// A valid memory type of an MTRR (UC WC WT WP WB).
fn mtrr_type_ok(t: u8) -> bool {
    matches!(t, 0 | 1 | 4 | 5 | 6)
}

/// Check an MTRR record as Xen's `hvm_load_mtrr_msr` does: the same
/// MTRRcap (number of variable ranges), valid PAT and memory types, no
/// reserved bits (EINVAL).
pub fn check_mtrr(m: &HwMtrr) -> Result<(), i32> {
    if (m.msr_mtrr_cap ^ MTRR_CAP) & 0xff != 0 {
        return Err(EINVAL);
    }
    if m.msr_pat_cr
        .to_le_bytes()
        .iter()
        .any(|&t| !matches!(t, 0 | 1 | 4 | 5 | 6 | 7))
    {
        return Err(EINVAL);
    }
    let d = m.msr_mtrr_def_type;
    if d & !0xCFF != 0 || !mtrr_type_ok(d as u8) {
        return Err(EINVAL);
    }
    if m.msr_mtrr_fixed
        .iter()
        .any(|f| f.to_le_bytes().iter().any(|&t| !mtrr_type_ok(t)))
    {
        return Err(EINVAL);
    }
    let phys = (1u64 << PADDR_BITS) - 1;
    for pair in m.msr_mtrr_var.chunks(2) {
        let (base, mask) = (pair[0], pair[1]);
        if base & !(phys & !0xFFF) & !0xFF != 0 || !mtrr_type_ok(base as u8) {
            return Err(EINVAL);
        }
        if mask & !(phys & !0xFFF) & !(1 << 11) != 0 {
            return Err(EINVAL);
        }
    }
    Ok(())
}

/// An image being written (gethvmcontext).
#[derive(Debug, Default)]
pub struct Writer(pub Vec<u8>);

impl Writer {
    /// Append a record.
    pub fn push<T: Pod>(&mut self, typecode: u16, instance: u16, body: &T) {
        self.push_raw(typecode, instance, body.as_bytes());
    }

    /// Append a record of any bytes.
    pub fn push_raw(&mut self, typecode: u16, instance: u16, b: &[u8]) {
        let d = SaveDescriptor {
            typecode,
            instance,
            length: b.len() as u32,
        };
        self.0.extend_from_slice(d.as_bytes());
        self.0.extend_from_slice(b);
    }

    /// Append the end marker.
    pub fn end(&mut self) {
        self.0
            .extend_from_slice(SaveDescriptor::default().as_bytes());
    }
}

/// The size of the image of a domain with `nr_vcpus` vCPUs.
pub fn image_size(nr_vcpus: u32) -> usize {
    let rec = |n: usize| 8 + n;
    rec(core::mem::size_of::<SaveHeader>())
        + nr_vcpus as usize
            * (rec(core::mem::size_of::<HwCpu>())
                + rec(core::mem::size_of::<HwLapic>())
                + rec(core::mem::size_of::<HwLapicRegs>())
                + rec(core::mem::size_of::<HwMtrr>()))
        + 8
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpu() -> HwCpu {
        HwCpu {
            cr0: CR0_PE | CR0_ET,
            cs_arbytes: 0xC9B,
            ..Default::default()
        }
    }

    fn header() -> SaveHeader {
        SaveHeader {
            magic: FILE_MAGIC,
            version: FILE_VERSION,
            ..Default::default()
        }
    }

    #[test]
    fn libxc_images_parse_and_bad_ones_are_refused_with_xens_errnos() {
        // HEADER + MTRR(1) + END, then HEADER + CPU(0) + END (xg_dom_x86.c).
        let mut w = Writer::default();
        w.push(HEADER, 0, &header());
        let mut m = mtrr_reset();
        m.msr_mtrr_def_type = 6 | (1 << 11);
        w.push(MTRR, 1, &m);
        w.end();
        let i = parse(&w.0, 2).unwrap();
        assert_eq!(i.records, alloc::vec![Record::Mtrr(1, Box::new(m))]);
        let mut w = Writer::default();
        w.push(HEADER, 0, &header());
        w.push(CPU, 0, &cpu());
        w.end();
        let i = parse(&w.0, 1).unwrap();
        assert!(matches!(&i.records[..], [Record::Cpu(0, c)] if c.rflags == 2));
        // No end marker, a short header, a bad magic.
        assert_eq!(parse(&w.0[..w.0.len() - 8], 1), Err(ENODATA));
        assert_eq!(parse(&w.0[..20], 1), Err(ENODATA));
        let mut bad = w.0.clone();
        bad[8] ^= 1;
        assert_eq!(parse(&bad, 1), Err(EINVAL));
        // A vCPU the domain lacks; a record longer than its type; a PIC record.
        assert_eq!(parse(&w.0, 0), Err(EINVAL));
        let mut w2 = Writer::default();
        w2.push(HEADER, 0, &header());
        w2.push_raw(MTRR, 0, &[0u8; 248]);
        w2.end();
        assert_eq!(parse(&w2.0, 1), Err(EINVAL));
        let mut w3 = Writer::default();
        w3.push(HEADER, 0, &header());
        w3.push_raw(3, 0, &[0u8; 16]);
        w3.end();
        assert_eq!(parse(&w3.0, 1), Err(ENODEV));
        let mut w4 = Writer::default();
        w4.push(HEADER, 0, &header());
        w4.push_raw(21, 0, &[0u8; 16]);
        w4.end();
        assert_eq!(parse(&w4.0, 1), Err(EINVAL));
        // A short CPU record is zero-extended (Xen's pre-4.7 layout).
        let mut w5 = Writer::default();
        w5.push(HEADER, 0, &header());
        w5.push_raw(CPU, 0, &cpu().as_bytes()[..1024]);
        w5.end();
        assert!(parse(&w5.0, 1).is_ok());
    }

    #[test]
    fn cpu_records_are_checked_as_xen_checks_them() {
        assert!(check_cpu(&cpu()).is_ok());
        let long = HwCpu {
            cr0: 0x8000_0011,
            cr4: CR4_PAE,
            msr_efer: EFER_LME | EFER_LMA,
            ..cpu()
        };
        assert!(check_cpu(&long).is_ok());
        for bad in [
            HwCpu { pad0: 1, ..cpu() },
            HwCpu {
                cr0: CR0_PE,
                ..cpu()
            },
            HwCpu {
                cr0: CR0_ET | CR0_PG,
                ..cpu()
            },
            HwCpu {
                cr0: CR0_PE | CR0_ET | (1 << 3) | (1 << 20),
                ..cpu()
            },
            HwCpu {
                cr4: 1 << 18,
                ..cpu()
            },
            HwCpu {
                msr_efer: EFER_LMA,
                ..long
            },
            HwCpu {
                msr_efer: EFER_LME | EFER_LMA,
                ..cpu()
            },
            HwCpu { cr4: 0, ..long },
            HwCpu {
                msr_efer: 1 << 12,
                ..cpu()
            },
            HwCpu {
                cr3: 1 << 40,
                ..cpu()
            },
            HwCpu { flags: 2, ..cpu() },
            HwCpu {
                msr_tsc_aux: 1 << 32,
                ..cpu()
            },
            HwCpu {
                pending_event: (1 << 31) | (1 << 8),
                ..cpu()
            },
            HwCpu {
                pending_event: (1 << 31) | (3 << 8) | (1 << 11),
                error_code: 1 << 16,
                ..cpu()
            },
        ] {
            assert_eq!(
                check_cpu(&bad),
                Err(EINVAL),
                "{:#x?}",
                (bad.cr0, bad.cr4, bad.msr_efer)
            );
        }
        let mut f = HwCpu {
            flags: FPU_INITIALISED,
            ..cpu()
        };
        f.fpu_regs[26] = 1;
        assert_eq!(check_cpu(&f), Err(EINVAL), "MXCSR reserved bits");
        // VMCS-style attributes are unfolded.
        let c = check_cpu(&HwCpu {
            ds_arbytes: 0xC093,
            ..cpu()
        })
        .unwrap();
        assert_eq!(c.ds_arbytes, 0xC93);
    }

    #[test]
    fn mtrr_and_lapic_records_are_checked() {
        let mut m = mtrr_reset();
        assert_eq!(check_mtrr(&m), Ok(()));
        m.msr_mtrr_def_type = 6 | (1 << 11);
        assert_eq!(check_mtrr(&m), Ok(()));
        for bad in [
            HwMtrr {
                msr_mtrr_cap: 4,
                ..m
            },
            HwMtrr {
                msr_mtrr_def_type: 2,
                ..m
            },
            HwMtrr {
                msr_mtrr_def_type: 6 | (1 << 12),
                ..m
            },
            HwMtrr {
                msr_pat_cr: 0x0207_0406_0007_0406,
                ..m
            },
        ] {
            assert_eq!(check_mtrr(&bad), Err(EINVAL));
        }
        let mut v = m;
        v.msr_mtrr_fixed[3] = 0x0303;
        assert_eq!(check_mtrr(&v), Err(EINVAL));
        let mut v = m;
        v.msr_mtrr_var[0] = (1 << 40) | 6;
        assert_eq!(check_mtrr(&v), Err(EINVAL));
        assert_eq!(
            check_lapic(&HwLapic {
                apic_base_msr: 0xFEE0_0900,
                ..Default::default()
            }),
            Ok(())
        );
        assert_eq!(
            check_lapic(&HwLapic {
                apic_base_msr: 0xFEE0_0400,
                ..Default::default()
            }),
            Err(EINVAL)
        );
        assert_eq!(
            check_lapic(&HwLapic {
                apic_base_msr: 0xFEE0_0801,
                ..Default::default()
            }),
            Err(EINVAL)
        );
    }

    #[test]
    fn the_image_size_is_what_the_writer_writes() {
        let mut w = Writer::default();
        w.push(HEADER, 0, &header());
        for v in 0..3 {
            w.push(CPU, v, &cpu());
            w.push(LAPIC, v, &HwLapic::default());
            w.push(LAPIC_REGS, v, &HwLapicRegs { data: [0; 1024] });
            w.push(MTRR, v, &mtrr_reset());
        }
        w.end();
        assert_eq!(w.0.len(), image_size(3));
        assert_eq!(parse(&w.0, 3).map(|i| i.records.len()), Ok(12));
    }
}
