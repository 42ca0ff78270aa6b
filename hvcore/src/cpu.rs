//! Decoding of CPU features Warden depends on (AMD SVM), and clock
//! calibration arithmetic.

use crate::{Result, err};

/// CPUID 0x8000_0001 ECX bit: SVM.
pub const CPUID_EXT_ECX_SVM: u32 = 1 << 2;
/// VM_CR MSR.
pub const MSR_VM_CR: u32 = 0xC001_0114;
/// VM_CR.SVMDIS: firmware disabled SVM.
pub const VM_CR_SVMDIS: u64 = 1 << 4;
/// VM_CR.LOCK: the SVMDIS bit is locked.
pub const VM_CR_LOCK: u64 = 1 << 3;
/// VM_HSAVE_PA MSR: physical address of the host save area.
pub const MSR_VM_HSAVE_PA: u32 = 0xC001_0117;
/// EFER.SVME.
pub const EFER_SVME: u64 = 1 << 12;

/// What the CPU says about SVM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SvmSupport {
    /// CPUID advertises SVM.
    pub svm: bool,
    /// Firmware disabled SVM (VM_CR.SVMDIS).
    pub disabled: bool,
    /// The disable bit is locked (cannot be changed by software).
    pub locked: bool,
    /// SVM revision (CPUID 0x8000_000A EAX).
    pub revision: u8,
    /// Number of ASIDs (CPUID 0x8000_000A EBX).
    pub asids: u32,
    /// Nested paging (CPUID 0x8000_000A EDX bit 0).
    pub npt: bool,
    /// Next-RIP saved on #VMEXIT (EDX bit 3).
    pub nrip: bool,
    /// VMCB clean bits (EDX bit 5).
    pub vmcb_clean: bool,
    /// Decode assists (EDX bit 7).
    pub decode_assists: bool,
}

impl SvmSupport {
    /// From CPUID 0x8000_0001 ECX, CPUID 0x8000_000A (EAX, EBX, EDX) — pass
    /// zeros if the leaf is absent — and the VM_CR MSR (0 if SVM is absent).
    pub fn decode(ext_ecx: u32, leaf_a: (u32, u32, u32), vm_cr: u64) -> Self {
        let svm = ext_ecx & CPUID_EXT_ECX_SVM != 0;
        let (eax, ebx, edx) = if svm { leaf_a } else { (0, 0, 0) };
        SvmSupport {
            svm,
            disabled: svm && vm_cr & VM_CR_SVMDIS != 0,
            locked: svm && vm_cr & VM_CR_LOCK != 0,
            revision: eax as u8,
            asids: ebx,
            npt: edx & 1 != 0,
            nrip: edx & (1 << 3) != 0,
            vmcb_clean: edx & (1 << 5) != 0,
            decode_assists: edx & (1 << 7) != 0,
        }
    }

    /// Refuse a CPU Warden cannot run guests on, with a reason an operator can act on.
    pub fn check(&self) -> Result<()> {
        if !self.svm {
            return Err(err!(
                Unsupported,
                "this CPU has no AMD SVM (CPUID 0x80000001 ECX bit 2); Warden needs AMD-V"
            ));
        }
        if self.disabled {
            return Err(err!(
                Unsupported,
                "SVM is disabled by firmware (VM_CR.SVMDIS{}); enable SVM/AMD-V in the firmware setup",
                if self.locked { ", locked" } else { "" }
            ));
        }
        if !self.npt {
            return Err(err!(
                Unsupported,
                "this CPU has SVM but no nested paging (CPUID 0x8000000A EDX bit 0); Warden needs NPT"
            ));
        }
        if self.asids < 2 {
            return Err(err!(
                Unsupported,
                "SVM reports {} ASIDs; at least 2 are needed",
                self.asids
            ));
        }
        Ok(())
    }
}

/// SPEC_CTRL MSR (IBRS, STIBP, SSBD, PSFD).
pub const MSR_SPEC_CTRL: u32 = 0x48;
/// PRED_CMD MSR (write 1: IBPB).
pub const MSR_PRED_CMD: u32 = 0x49;
/// EFER.AIBRSE: automatic IBRS for CPL 0.
pub const EFER_AIBRSE: u64 = 1 << 21;

/// CPUID 0x8000_0008 EBX bits (AMD's speculation controls).
pub mod ext8 {
    pub const IBPB: u32 = 1 << 12;
    pub const IBRS: u32 = 1 << 14;
    pub const STIBP: u32 = 1 << 15;
    pub const SSBD: u32 = 1 << 24;
    pub const VIRT_SSBD: u32 = 1 << 25;
    pub const PSFD: u32 = 1 << 28;
}

/// What the CPU offers against speculative-execution attacks between
/// domains, and what Warden does with it (docs/ARCHITECTURE.md, "ASIDs and
/// speculative execution"). Everything is off on a CPU that reports none of
/// these features (QEMU's TCG models), so emulated runs are unaffected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SpecSupport {
    /// IBPB through PRED_CMD (CPUID 0x8000_0008 EBX bit 12).
    pub ibpb: bool,
    /// SPEC_CTRL bits the CPU implements (IBRS 0, STIBP 1, SSBD 2, PSFD 7);
    /// 0 = no SPEC_CTRL MSR.
    pub spec_ctrl_bits: u64,
    /// The VMCB swaps SPEC_CTRL itself (CPUID 0x8000_000A EDX bit 20, V_SPEC_CTRL).
    pub v_spec_ctrl: bool,
    /// Automatic IBRS for CPL 0 (CPUID 0x8000_0021 EAX bit 8).
    pub auto_ibrs: bool,
    /// TLB flush of one ASID (CPUID 0x8000_000A EDX bit 6).
    pub flush_by_asid: bool,
}

impl SpecSupport {
    /// From CPUID 0x8000_0008 EBX, 0x8000_000A EDX and 0x8000_0021 EAX
    /// (zeros for absent leaves).
    pub fn decode(ext8_ebx: u32, leaf_a_edx: u32, ext21_eax: u32) -> SpecSupport {
        let mut bits = 0;
        for (cpuid, msr) in [
            (ext8::IBRS, 1 << 0),
            (ext8::STIBP, 1 << 1),
            (ext8::SSBD, 1 << 2),
            (ext8::PSFD, 1 << 7),
        ] {
            if ext8_ebx & cpuid != 0 {
                bits |= msr;
            }
        }
        SpecSupport {
            ibpb: ext8_ebx & ext8::IBPB != 0,
            spec_ctrl_bits: bits,
            v_spec_ctrl: bits != 0 && leaf_a_edx & (1 << 20) != 0,
            auto_ibrs: ext21_eax & (1 << 8) != 0,
            flush_by_asid: leaf_a_edx & (1 << 6) != 0,
        }
    }

    /// Fill the return-stack buffer after every #VMEXIT. AMD CPUs do not
    /// clear the RSB on #VMEXIT, so return predictions the guest trained
    /// would otherwise steer the hypervisor's first RETs. Done on every CPU
    /// that reports any speculation control (all AMD CPUs with current
    /// microcode), not on one that reports none (QEMU's emulated models).
    pub fn rsb_fill(&self) -> bool {
        self.ibpb || self.spec_ctrl_bits != 0 || self.auto_ibrs
    }

    /// A guest's SPEC_CTRL write is valid (only bits the CPU implements).
    pub fn guest_spec_ctrl_ok(&self, value: u64) -> bool {
        value & !self.spec_ctrl_bits == 0
    }
}

/// Ticks per second of a counter that advanced `ticks` during `window_ns`.
pub fn rate_hz(ticks: u64, window_ns: u64) -> Option<u64> {
    if window_ns == 0 {
        return None;
    }
    let hz = (ticks as u128 * 1_000_000_000) / window_ns as u128;
    u64::try_from(hz).ok().filter(|&h| h > 0)
}

/// Nanoseconds for `ticks` of a counter running at `hz`.
pub fn ticks_to_ns(ticks: u64, hz: u64) -> u64 {
    if hz == 0 {
        return 0;
    }
    ((ticks as u128 * 1_000_000_000) / hz as u128).min(u64::MAX as u128) as u64
}

/// Ticks of a counter at `hz` in `ns` nanoseconds.
pub fn ns_to_ticks(ns: u64, hz: u64) -> u64 {
    ((ns as u128 * hz as u128) / 1_000_000_000).min(u64::MAX as u128) as u64
}

/// The PIT's input clock.
pub const PIT_HZ: u64 = 1_193_182;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_svm_npt() {
        // qemu64,+svm,+npt: SVM rev 1, 16 ASIDs, NP only.
        let s = SvmSupport::decode(CPUID_EXT_ECX_SVM, (1, 16, 1), 0);
        assert!(s.check().is_ok());
        assert!(s.npt && !s.nrip);
        assert_eq!(s.revision, 1);
        // EPYC-like with nRIP.
        let s = SvmSupport::decode(CPUID_EXT_ECX_SVM, (1, 32768, 0b1011_1001), 0);
        assert!(s.nrip && s.decode_assists && s.vmcb_clean);
    }

    #[test]
    fn refusals_name_the_reason() {
        let e = SvmSupport::decode(0, (1, 16, 1), 0).check().unwrap_err();
        assert!(e.detail().contains("no AMD SVM"), "{e}");
        let e = SvmSupport::decode(CPUID_EXT_ECX_SVM, (1, 16, 1), VM_CR_SVMDIS | VM_CR_LOCK)
            .check()
            .unwrap_err();
        assert!(e.detail().contains("disabled by firmware") && e.detail().contains("locked"));
        let e = SvmSupport::decode(CPUID_EXT_ECX_SVM, (1, 16, 0), 0)
            .check()
            .unwrap_err();
        assert!(e.detail().contains("no nested paging"));
        // Leaf contents are ignored when SVM is absent.
        assert!(!SvmSupport::decode(0, (1, 16, 1), 0).npt);
    }

    #[test]
    fn speculation_controls() {
        // QEMU's qemu64 and EPYC models: nothing, so nothing is done.
        let none = SpecSupport::decode(0, 1, 0);
        assert_eq!(none, SpecSupport::default());
        assert!(!none.rsb_fill());
        assert!(none.guest_spec_ctrl_ok(0) && !none.guest_spec_ctrl_ok(1));
        // A Zen 3 like CPU: IBPB, IBRS, STIBP, SSBD, V_SPEC_CTRL, flush by ASID.
        let z = SpecSupport::decode(
            ext8::IBPB | ext8::IBRS | ext8::STIBP | ext8::SSBD,
            (1 << 20) | (1 << 6) | 1,
            0,
        );
        assert!(z.ibpb && z.v_spec_ctrl && z.flush_by_asid && !z.auto_ibrs);
        assert_eq!(z.spec_ctrl_bits, 0b111);
        assert!(z.rsb_fill());
        assert!(z.guest_spec_ctrl_ok(0b101) && !z.guest_spec_ctrl_ok(1 << 7));
        // V_SPEC_CTRL means nothing without a SPEC_CTRL MSR.
        assert!(!SpecSupport::decode(ext8::IBPB, 1 << 20, 0).v_spec_ctrl);
        // PSFD and AutoIBRS (Zen 4).
        let z4 = SpecSupport::decode(ext8::PSFD, 0, 1 << 8);
        assert_eq!(z4.spec_ctrl_bits, 1 << 7);
        assert!(z4.auto_ibrs && z4.rsb_fill());
    }

    #[test]
    fn calibration_math() {
        assert_eq!(rate_hz(2_000_000, 10_000_000), Some(200_000_000));
        assert_eq!(rate_hz(0, 10), None);
        assert_eq!(rate_hz(10, 0), None);
        assert_eq!(ticks_to_ns(3_000_000_000, 3_000_000_000), 1_000_000_000);
        assert_eq!(ticks_to_ns(5, 0), 0);
        assert_eq!(ns_to_ticks(10_000_000, PIT_HZ), 11_931);
        assert_eq!(ticks_to_ns(u64::MAX, 1), u64::MAX);
    }
}
