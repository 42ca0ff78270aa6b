//! The MSRs a guest reads and writes that the SVM backend does not handle
//! itself (it keeps EFER, PAT, TSC reads, SPEC_CTRL, PRED_CMD and the
//! pass-through ones), answered as Xen 4.17 answers an HVM/PVH domU on AMD
//! (xen/arch/x86/msr.c `guest_rdmsr/guest_wrmsr`, hvm/hvm.c
//! `hvm_msr_read_intercept`, hvm/svm/svm.c `svm_msr_read/write_intercept`,
//! traps.c `guest_rdmsr_xen/guest_wrmsr_xen`; `msr_relaxed` off):
//!
//! - 0x4000_0000, the hypercall page (CPUID 0x4000_0002 EBX): a write of a
//!   page-aligned guest-physical address fills that page with 128 stubs of 32
//!   bytes, stub n = `mov $n, %eax; vmmcall; ret` (stub 23, `iret`, is
//!   `ud2`), the rest int3; a page offset or a page the domain does not have
//!   is #GP. Reads as 0.
//! - Read as 0: HWCR, SYSCFG, TOP_MEM1/2, VM_CR, EX_CFG, NB_CFG, ENABLE_C1E,
//!   TSC_ADJUST, DEBUGCTL and the LBR MSRs, the performance counters and
//!   event selects (no vPMU), MISC_FEATURES_ENABLES, PLATFORM_INFO (Xen
//!   advertises CPUID faulting there; Warden does not emulate it: 0), the
//!   machine-check banks (MCE/MCA are hidden in CPUID); DE_CFG reads
//!   LFENCE_SERIALISE; MC4_MISC0-3 read "locked"; APIC_BASE reads 0xFEE00000
//!   enabled, BSP on vCPU 0 (until the virtual local APIC owns it).
//! - Writes ignored: SYSCFG, TOP_MEM1/2, VM_CR, EX_CFG, DE_CFG, the
//!   performance counters and event selects, DEBUGCTL, MISC_FEATURES_ENABLES
//!   of 0, APIC_BASE keeping its value.
//! - Everything else (MTRRs and MISC_ENABLE among them: MTRR is hidden in
//!   CPUID, MISC_ENABLE is Intel's) is #GP, as Xen; Linux reads them with
//!   `rdmsr_safe` or survives the fault.

use crate::domain::GuestVcpu;
use crate::hv::Hv;
use crate::vcpu::Vcpu;

/// The hypercall-page MSR.
pub const MSR_HYPERCALL_PAGE: u32 = crate::guestcpu::MSR_HYPERCALL_PAGE;
/// `__HYPERVISOR_iret`: not available to HVM guests (its stub is `ud2`).
pub const HYPERVISOR_IRET: usize = 23;

const APIC_BASE: u32 = 0x1B;
const APIC_DEFAULT: u64 = 0xFEE0_0000 | (1 << 11);

/// The contents Xen writes into a hypercall page (AMD: VMMCALL).
pub fn hypercall_page() -> [u8; 4096] {
    let mut p = [0xccu8; 4096];
    for (i, stub) in p.chunks_exact_mut(32).enumerate() {
        if i == HYPERVISOR_IRET {
            stub[..2].copy_from_slice(&[0x0f, 0x0b]);
            continue;
        }
        stub[0] = 0xb8;
        stub[1..5].copy_from_slice(&(i as u32).to_le_bytes());
        stub[5..9].copy_from_slice(&[0x0f, 0x01, 0xd9, 0xc3]);
    }
    p
}

/// What a read of `msr` on vCPU `vcpu_id` returns (None: #GP).
pub fn read(msr: u32, vcpu_id: u32) -> Option<u64> {
    Some(match msr {
        MSR_HYPERCALL_PAGE => 0,
        0x413 | 0xC000_0408..=0xC000_040A => 1 << 61, // MC4_MISC: locked
        APIC_BASE => APIC_DEFAULT | if vcpu_id == 0 { 1 << 8 } else { 0 },
        0xC001_0015 // HWCR
        | 0xC001_0010 // SYSCFG
        | 0xC001_001A // TOP_MEM1
        | 0xC001_001D // TOP_MEM2
        | 0xC001_0114 // VM_CR
        | 0xC001_102C // EX_CFG
        | 0xC001_001F // NB_CFG
        | 0xC001_0055 // ENABLE_C1E
        | 0x3B // TSC_ADJUST
        | 0x1D9 // DEBUGCTL
        | 0x1DB..=0x1DE // LBR from/to
        | 0xC001_0000..=0xC001_0007 // K7 event selects and counters
        | 0xC001_0200..=0xC001_020B // family 15h event selects and counters
        | 0x140 // MISC_FEATURES_ENABLES
        | 0xCE // PLATFORM_INFO
        | 0x179..=0x17B // MCG_CAP, MCG_STATUS, MCG_CTL
        | 0x400..=0x47F => 0, // MCi banks
        0xC001_1029 => 1 << 1, // DE_CFG: LFENCE serialising
        _ => return None,
    })
}

/// What a write of `value` to `msr` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// Accepted and ignored.
    Ignore,
    /// Fill the page at this guest-physical address with hypercall stubs.
    HypercallPage(u64),
    /// #GP.
    Fault,
}

/// Classify a write (`vcpu_id` for APIC_BASE's BSP bit).
pub fn write(msr: u32, value: u64, vcpu_id: u32) -> Write {
    match msr {
        MSR_HYPERCALL_PAGE if value & 0xfff == 0 => Write::HypercallPage(value),
        APIC_BASE if Some(value) == read(APIC_BASE, vcpu_id) => Write::Ignore,
        0x140 if value == 0 => Write::Ignore,
        0xC001_0010
        | 0xC001_001A
        | 0xC001_001D
        | 0xC001_0114
        | 0xC001_102C
        | 0xC001_1029
        | 0x1D9
        | 0xC001_0000..=0xC001_0007
        | 0xC001_0200..=0xC001_020B => Write::Ignore,
        _ => Write::Fault,
    }
}

/// Complete an RDMSR/WRMSR exit of `v` for an MSR the backend left to us.
pub fn access(hv: &Hv, v: &GuestVcpu, hw: &mut dyn Vcpu, msr: u32, wr: Option<u64>) {
    let ok = match wr {
        None => match read(msr, v.id) {
            Some(val) => {
                hw.finish_msr(Some(val));
                return;
            }
            None => false,
        },
        Some(value) => match write(msr, value, v.id) {
            Write::Ignore => true,
            Write::HypercallPage(gpa) => hv.write_phys(&v.domain, gpa, &hypercall_page()).is_ok(),
            Write::Fault => false,
        },
    };
    if ok {
        hw.finish_msr(None);
    } else {
        hw.inject_gp();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hypercall_page_has_xen_stubs() {
        let p = hypercall_page();
        // Stub 17 (xen_version): mov $17,%eax; vmmcall; ret.
        assert_eq!(
            &p[17 * 32..17 * 32 + 9],
            &[0xb8, 17, 0, 0, 0, 0x0f, 0x01, 0xd9, 0xc3]
        );
        assert_eq!(p[17 * 32 + 9], 0xcc);
        assert_eq!(&p[23 * 32..23 * 32 + 3], &[0x0f, 0x0b, 0xcc], "iret is ud2");
        assert_eq!(&p[127 * 32..127 * 32 + 2], &[0xb8, 127]);
        assert_ne!(p[0], 0xc3, "XTF's check");
    }

    #[test]
    fn reads_and_writes_as_xen() {
        assert_eq!(read(MSR_HYPERCALL_PAGE, 0), Some(0));
        assert_eq!(read(0xC001_0015, 1), Some(0), "HWCR");
        assert_eq!(read(0x1B, 0), Some(0xFEE0_0900));
        assert_eq!(read(0x1B, 1), Some(0xFEE0_0800));
        assert_eq!(read(0x1A0, 0), None, "MISC_ENABLE: Intel's");
        assert_eq!(read(0x2FF, 0), None, "MTRR hidden in CPUID");
        assert_eq!(read(0x413, 0), Some(1 << 61));
        assert_eq!(read(0x414, 0), Some(0));
        assert_eq!(read(0x4000_0001, 0), None);
        assert_eq!(
            write(MSR_HYPERCALL_PAGE, 0x5000, 0),
            Write::HypercallPage(0x5000)
        );
        assert_eq!(write(MSR_HYPERCALL_PAGE, 0x5008, 0), Write::Fault);
        assert_eq!(write(0x1B, 0xFEE0_0900, 0), Write::Ignore);
        assert_eq!(write(0x1B, 0xFED0_0900, 0), Write::Fault);
        assert_eq!(write(0xC001_0015, 0, 0), Write::Fault, "HWCR writes #GP");
        assert_eq!(write(0xC001_1029, 2, 0), Write::Ignore, "DE_CFG");
        assert_eq!(write(0x2FF, 0xC06, 0), Write::Fault);
    }
}
