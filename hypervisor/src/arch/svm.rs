//! AMD SVM: detection, enabling (EFER.SVME + host save area) on each CPU.
//!
//! This module is the one place for vendor virtualization code. The VMRUN
//! loop will live here as an implementation of [`hvcore::vcpu::Vcpu`]
//! (`fn run(&mut self) -> Result<VmExit>`: save host state, clgi, vmrun,
//! stgi, decode the exit), installed in the per-CPU `current_vcpu` slot; a VMX
//! backend would sit beside it behind the same trait.

use super::percpu::PerCpu;
use super::{MSR_EFER, cpuid, rdmsr, wrmsr};
use core::sync::atomic::Ordering;
use hvcore::Result;
use hvcore::cpu::{EFER_SVME, MSR_VM_CR, MSR_VM_HSAVE_PA, SvmSupport};

/// Read what this CPU supports.
pub fn detect() -> SvmSupport {
    let max_ext = cpuid(0x8000_0000, 0).0;
    let ext_ecx = if max_ext >= 0x8000_0001 {
        cpuid(0x8000_0001, 0).2
    } else {
        0
    };
    let leaf_a = if max_ext >= 0x8000_000A {
        let (a, b, _, d) = cpuid(0x8000_000A, 0);
        (a, b, d)
    } else {
        (0, 0, 0)
    };
    let vm_cr = if ext_ecx & hvcore::cpu::CPUID_EXT_ECX_SVM != 0 {
        // SAFETY: VM_CR exists on every CPU that advertises SVM.
        unsafe { rdmsr(MSR_VM_CR) }
    } else {
        0
    };
    SvmSupport::decode(ext_ecx, leaf_a, vm_cr)
}

/// Check SVM and NPT, set EFER.SVME and point VM_HSAVE_PA at `hsave_pa`
/// (a zeroed 4 KiB frame owned by this CPU).
pub fn enable(p: &PerCpu, hsave_pa: u64) -> Result<SvmSupport> {
    let s = detect();
    s.check()?;
    // SAFETY: SVM is present and not disabled (checked above), so EFER.SVME
    // can be set and VM_HSAVE_PA exists; the save area is a page of our own.
    unsafe {
        wrmsr(MSR_EFER, rdmsr(MSR_EFER) | EFER_SVME);
        wrmsr(MSR_VM_HSAVE_PA, hsave_pa);
    }
    p.hsave_pa.store(hsave_pa, Ordering::Release);
    Ok(s)
}
