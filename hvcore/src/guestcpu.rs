//! What guests see of the CPU: CPUID filtering and the MSRs a guest may use.
//! The SVM backend calls these when it intercepts CPUID, RDMSR and WRMSR.
//!
//! Guests get the host's CPUID with everything Warden does not virtualise
//! hidden: SVM and VMX, XSAVE/AVX (guest FPU state is saved with FXSAVE, and
//! XSETBV is refused), MONITOR/MWAIT, MTRRs and machine-check architecture
//! (no such MSRs), PCID and
//! performance counters, VIRT_SSBD; the hypervisor bit is set. The vendor
//! (leaf 0) is the host's (AuthenticAMD: Linux picks VMMCALL from it). IBPB
//! and the SPEC_CTRL bits the CPU has stay visible: the SVM backend emulates
//! PRED_CMD and SPEC_CTRL. The local APIC, x2APIC and the TSC-deadline timer
//! are shown: each vCPU has a virtual local APIC (`emul::vlapic`).
//!
//! The hypervisor leaves 0x4000_0000.. are Xen 4.17's for an HVM/PVH guest
//! (xen/include/public/arch-x86/cpuid.h, `cpuid_hypervisor_leaves`;
//! xen-abi-map.md §1.6): signature "XenVMMXenVMM" with max leaf base+5,
//! version 4.17 at base+1, one hypercall page and its MSR at base+2, TSC
//! information at base+3 (zeros: no TSC mode is advertised; Linux's PVH
//! path does not read it), base+4 with the vCPU id, the domain id and the
//! flags Xen sets on AMD (IOMMU mappings, vCPU id and domid present, per-vCPU
//! upcall vector), base+5 zero (PV only). Leaf 1 reports APIC id 2·vCPU
//! id, as the MADT (`domain::builder::acpi`).

/// CPUID leaf 0x4000_0000 signature (EBX, ECX, EDX).
pub const SIGNATURE: &[u8; 12] = b"XenVMMXenVMM";
/// The first hypervisor leaf.
pub const XEN_CPUID_BASE: u32 = 0x4000_0000;
/// Xen's version at base+1: 4.17.
pub const XEN_VERSION: u32 = (warden_abi::version::MAJOR << 16) | warden_abi::version::MINOR;
/// The hypercall-page MSR (base+2 EBX).
pub const MSR_HYPERCALL_PAGE: u32 = 0x4000_0000;
/// base+4 EAX: IOMMU mappings (Xen always sets it).
pub const XEN_HVM_CPUID_IOMMU_MAPPINGS: u32 = 1 << 2;
/// base+4 EAX: EBX holds the vCPU id.
pub const XEN_HVM_CPUID_VCPU_ID_PRESENT: u32 = 1 << 3;
/// base+4 EAX: ECX holds the domain id.
pub const XEN_HVM_CPUID_DOMID_PRESENT: u32 = 1 << 4;
/// base+4 EAX: per-vCPU upcall vectors (HVMOP_set_evtchn_upcall_vector).
pub const XEN_HVM_CPUID_UPCALL_VECTOR: u32 = 1 << 6;

/// Who asks: the vCPU and its domain.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Asker {
    pub vcpu_id: u32,
    pub domid: u16,
}

/// The CPUID result a guest sees for (`leaf`, `sub`), given the host's answer.
pub fn cpuid(leaf: u32, sub: u32, host: (u32, u32, u32, u32), who: Asker) -> (u32, u32, u32, u32) {
    let vcpu_id = who.vcpu_id;
    let (mut a, mut b, mut c, mut d) = host;
    match leaf {
        1 => {
            // ECX: clear MONITOR(3) VMX(5) SMX(6) PCID(17) XSAVE(26)
            // OSXSAVE(27) AVX(28) F16C(29), RDRAND kept; set x2APIC(21),
            // TSC-deadline(24) as the vLAPIC has it, hypervisor(31).
            c &= !((1 << 3)
                | (1 << 5)
                | (1 << 6)
                | (1 << 17)
                | (1 << 24)
                | (1 << 26)
                | (1 << 27)
                | (1 << 28)
                | (1 << 29));
            c |= (1 << 31) | (1 << 21);
            if crate::emul::vlapic::TSC_DEADLINE {
                c |= 1 << 24;
            }
            // EDX: clear MCE(7) MTRR(12) MCA(14) ACPI(22) TM(29); set APIC(9).
            d &= !((1 << 7) | (1 << 12) | (1 << 14) | (1 << 22) | (1 << 29));
            d |= 1 << 9;
            // EBX[31:24]: initial APIC id = 2·vCPU id (Xen's, as in the
            // MADT); [23:16] logical count 1.
            b = (b & 0x0000_FFFF) | (((2 * vcpu_id) & 0xff) << 24) | (1 << 16);
        }
        5 | 6 | 0xA | 0xD | 0xF | 0x10 | 0x12 | 0x14 | 0x15 => (a, b, c, d) = (0, 0, 0, 0),
        7 => {
            if sub == 0 {
                // Keep FSGSBASE(0)? No: the guest cannot be given CR4 bits it did
                // not start with portably; keep only SMEP(7), BMI1(3), BMI2(8), ERMS(9), SMAP(20).
                b &= (1 << 3) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 20);
                a = 0;
            } else {
                b = 0;
                a = 0;
            }
            c = 0;
            d = 0;
        }
        0x4000_0000 => {
            a = XEN_CPUID_BASE + 5;
            b = u32::from_le_bytes([SIGNATURE[0], SIGNATURE[1], SIGNATURE[2], SIGNATURE[3]]);
            c = u32::from_le_bytes([SIGNATURE[4], SIGNATURE[5], SIGNATURE[6], SIGNATURE[7]]);
            d = u32::from_le_bytes([SIGNATURE[8], SIGNATURE[9], SIGNATURE[10], SIGNATURE[11]]);
        }
        0x4000_0001 => (a, b, c, d) = (XEN_VERSION, 0, 0, 0),
        0x4000_0002 => (a, b, c, d) = (1, MSR_HYPERCALL_PAGE, 0, 0),
        0x4000_0004 if sub == 0 => {
            a = XEN_HVM_CPUID_IOMMU_MAPPINGS
                | XEN_HVM_CPUID_VCPU_ID_PRESENT
                | XEN_HVM_CPUID_DOMID_PRESENT
                | XEN_HVM_CPUID_UPCALL_VECTOR;
            (b, c, d) = (vcpu_id, who.domid as u32, 0);
        }
        0x4000_0003..=0x4FFF_FFFF => (a, b, c, d) = (0, 0, 0, 0),
        0x8000_0001 => {
            // ECX: clear SVM(2) ExtApicSpace(3) SKINIT(12) WDT(13) LWP(15) TopoExt(22) PerfCtr(23,24).
            c &= !((1 << 2)
                | (1 << 3)
                | (1 << 12)
                | (1 << 13)
                | (1 << 15)
                | (1 << 22)
                | (1 << 23)
                | (1 << 24));
        }
        0x8000_0008 => {
            // EBX: speculation controls. IBPB (PRED_CMD) and the SPEC_CTRL
            // bits are emulated for the guest (`arch::svm`); VIRT_SSBD (the
            // VIRT_SPEC_CTRL MSR) is not: hide it.
            b &= !crate::cpu::ext8::VIRT_SSBD;
        }
        0x8000_000A => (a, b, c, d) = (0, 0, 0, 0),
        _ => {}
    }
    (a, b, c, d)
}

/// MSRs the guest reads and writes directly (saved and restored by
/// VMSAVE/VMLOAD around every entry): FS/GS bases, SYSCALL and SYSENTER targets.
pub const PASSTHROUGH_MSRS: &[u32] = &[
    0x174,       // SYSENTER_CS
    0x175,       // SYSENTER_ESP
    0x176,       // SYSENTER_EIP
    0xC000_0081, // STAR
    0xC000_0082, // LSTAR
    0xC000_0083, // CSTAR
    0xC000_0084, // SFMASK
    0xC000_0100, // FS_BASE
    0xC000_0101, // GS_BASE
    0xC000_0102, // KERNEL_GS_BASE
];

/// EFER.
pub const MSR_EFER: u32 = 0xC000_0080;
/// PAT.
pub const MSR_PAT: u32 = 0x277;
/// TSC.
pub const MSR_TSC: u32 = 0x10;

/// EFER bits a guest may set (SCE, LME, LMA, NXE).
pub const EFER_GUEST_BITS: u64 = 1 | (1 << 8) | (1 << 10) | (1 << 11);

/// Is `pat` a valid PAT value (every entry a defined memory type)?
pub fn pat_valid(pat: u64) -> bool {
    (0..8).all(|i| matches!((pat >> (i * 8)) & 0xff, 0 | 1 | 4 | 5 | 6 | 7))
}

/// Offset of `msr`'s two bits in the SVM MSR permission map, if it has any.
pub fn msrpm_bit(msr: u32) -> Option<usize> {
    let base = match msr {
        0..=0x1FFF => 0,
        0xC000_0000..=0xC000_1FFF => 0x800 * 8,
        0xC001_0000..=0xC001_1FFF => 0x1000 * 8,
        _ => return None,
    };
    Some(base + (msr as usize & 0x1FFF) * 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hides_what_is_not_virtualised() {
        let all = (u32::MAX, u32::MAX, u32::MAX, u32::MAX);
        let who = |vcpu_id| Asker { vcpu_id, domid: 7 };
        let (_, b, c, d) = cpuid(1, 0, all, who(3));
        assert_eq!(c & (1 << 5), 0, "VMX");
        assert_eq!(c & (1 << 26), 0, "XSAVE");
        assert_ne!(c & (1 << 31), 0, "hypervisor bit");
        assert_ne!(d & (1 << 9), 0, "APIC (the vLAPIC)");
        assert_ne!(c & (1 << 21), 0, "x2APIC (the vLAPIC)");
        assert_eq!(b >> 24, 6, "APIC id 2·vCPU id");
        let (_, _, c, _) = cpuid(0x8000_0001, 0, all, who(0));
        assert_eq!(c & (1 << 2), 0, "SVM");
        assert_eq!(cpuid(0x8000_000A, 0, all, who(0)), (0, 0, 0, 0));
        assert_eq!(cpuid(0xD, 1, all, who(0)), (0, 0, 0, 0));
        let (a, b, c, d) = cpuid(0x4000_0000, 0, all, who(0));
        assert_eq!(a, 0x4000_0005);
        let mut sig = [0u8; 12];
        sig[..4].copy_from_slice(&b.to_le_bytes());
        sig[4..8].copy_from_slice(&c.to_le_bytes());
        sig[8..].copy_from_slice(&d.to_le_bytes());
        assert_eq!(&sig, b"XenVMMXenVMM");
        assert_eq!(cpuid(0x4000_0001, 0, all, who(0)), (0x0004_0011, 0, 0, 0));
        assert_eq!(cpuid(0x4000_0002, 0, all, who(0)), (1, 0x4000_0000, 0, 0));
        assert_eq!(cpuid(0x4000_0004, 0, all, who(2)), (0x5c, 2, 7, 0));
        assert_eq!(cpuid(0x4000_0005, 0, all, who(2)), (0, 0, 0, 0));
        assert_eq!(cpuid(0x4000_0100, 0, all, who(2)), (0, 0, 0, 0));
        assert_eq!(
            cpuid(0, 0, (1, 0x6874_7541, 0x444d_4163, 0x6974_6e65), who(0)),
            (1, 0x6874_7541, 0x444d_4163, 0x6974_6e65),
            "vendor passed through"
        );
        assert_eq!(
            cpuid(0x8000_0006, 0, (1, 2, 3, 4), who(0)),
            (1, 2, 3, 4),
            "untouched leaf"
        );
        let (_, b, _, _) = cpuid(0x8000_0008, 0, all, who(0));
        assert_eq!(b & crate::cpu::ext8::VIRT_SSBD, 0, "VIRT_SSBD");
        assert_ne!(b & crate::cpu::ext8::IBPB, 0, "IBPB stays");
    }

    #[test]
    fn msr_map_positions() {
        assert_eq!(msrpm_bit(0), Some(0));
        assert_eq!(msrpm_bit(0x174), Some(0x2e8));
        assert_eq!(msrpm_bit(0xC000_0080), Some(0x4000 + 0x100));
        assert_eq!(msrpm_bit(0xC001_0000), Some(0x8000));
        assert_eq!(msrpm_bit(0x4000_0000), None);
        assert!(pat_valid(0x0007_0406_0007_0406));
        assert!(!pat_valid(0x0007_0406_0007_0402));
    }
}
