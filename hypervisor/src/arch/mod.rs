//! x86_64 hardware access. Everything that touches CPU state, I/O ports, MSRs
//! or the local APIC lives under this module; `arch::svm` is the one place for
//! vendor virtualization code.

pub mod apic;
pub mod boot;
pub mod gdt;
pub mod idt;
pub mod paging;
pub mod percpu;
pub mod pit;
pub mod smp;
pub mod svm;

use core::arch::asm;

/// Write a byte to an I/O port.
///
/// # Safety
/// The port must belong to a device whose driver is the caller.
pub unsafe fn outb(port: u16, v: u8) {
    // SAFETY: the caller owns the device at `port`.
    unsafe {
        asm!("out dx, al", in("dx") port, in("al") v, options(nomem, nostack, preserves_flags))
    }
}

/// Read a byte from an I/O port.
///
/// # Safety
/// The port must belong to a device whose driver is the caller.
pub unsafe fn inb(port: u16) -> u8 {
    let v: u8;
    // SAFETY: the caller owns the device at `port`.
    unsafe {
        asm!("in al, dx", out("al") v, in("dx") port, options(nomem, nostack, preserves_flags))
    }
    v
}

/// Read a dword from an I/O port.
///
/// # Safety
/// The port must belong to a device whose driver is the caller, or reading
/// it must have no effect.
pub unsafe fn inl(port: u16) -> u32 {
    let v: u32;
    // SAFETY: the caller owns the device at `port` (or the read is harmless).
    unsafe {
        asm!("in eax, dx", out("eax") v, in("dx") port, options(nomem, nostack, preserves_flags))
    }
    v
}

/// Write a dword to an I/O port.
///
/// # Safety
/// The port must belong to a device whose driver is the caller.
pub unsafe fn outl(port: u16, v: u32) {
    // SAFETY: the caller owns the device at `port`.
    unsafe {
        asm!("out dx, eax", in("dx") port, in("eax") v, options(nomem, nostack, preserves_flags))
    }
}

/// Read a model-specific register.
///
/// # Safety
/// The MSR must exist on this CPU (else #GP).
pub unsafe fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: the caller guarantees the MSR exists.
    unsafe {
        asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    }
    ((hi as u64) << 32) | lo as u64
}

/// Write a model-specific register.
///
/// # Safety
/// The MSR must exist and the value must be valid for it.
pub unsafe fn wrmsr(msr: u32, v: u64) {
    // SAFETY: the caller guarantees the MSR and value are valid.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") v as u32, in("edx") (v >> 32) as u32, options(nostack, preserves_flags))
    }
}

/// CPUID leaf/subleaf: (eax, ebx, ecx, edx).
pub fn cpuid(leaf: u32, sub: u32) -> (u32, u32, u32, u32) {
    let r = core::arch::x86_64::__cpuid_count(leaf, sub);
    (r.eax, r.ebx, r.ecx, r.edx)
}

/// Time-stamp counter.
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no side effects (CR4.TSD is clear).
    unsafe { core::arch::x86_64::_rdtsc() }
}

pub fn read_cr0() -> u64 {
    let v;
    // SAFETY: reading a control register has no side effects.
    unsafe { asm!("mov {}, cr0", out(reg) v, options(nomem, nostack, preserves_flags)) }
    v
}
pub fn read_cr2() -> u64 {
    let v;
    // SAFETY: reading a control register has no side effects.
    unsafe { asm!("mov {}, cr2", out(reg) v, options(nomem, nostack, preserves_flags)) }
    v
}
pub fn read_cr3() -> u64 {
    let v;
    // SAFETY: reading a control register has no side effects.
    unsafe { asm!("mov {}, cr3", out(reg) v, options(nomem, nostack, preserves_flags)) }
    v
}
pub fn read_cr4() -> u64 {
    let v;
    // SAFETY: reading a control register has no side effects.
    unsafe { asm!("mov {}, cr4", out(reg) v, options(nomem, nostack, preserves_flags)) }
    v
}

/// The current frame pointer.
#[inline(always)]
pub fn read_rbp() -> u64 {
    let v;
    // SAFETY: reading RBP has no side effects.
    unsafe { asm!("mov {}, rbp", out(reg) v, options(nomem, nostack, preserves_flags)) }
    v
}

/// The current stack pointer.
#[inline(always)]
pub fn read_rsp() -> u64 {
    let v;
    // SAFETY: reading RSP has no side effects.
    unsafe { asm!("mov {}, rsp", out(reg) v, options(nomem, nostack, preserves_flags)) }
    v
}

pub const MSR_EFER: u32 = 0xC000_0080;
pub const MSR_GS_BASE: u32 = 0xC000_0101;

/// Stop this CPU for good: interrupts off, halt forever (NMIs return to the halt).
pub fn halt_forever() -> ! {
    loop {
        // SAFETY: disabling interrupts and halting affects only this CPU.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) }
    }
}

/// Enable interrupts and wait for one.
pub fn idle_once() {
    // SAFETY: "sti; hlt" atomically enables interrupts and waits; handlers are installed.
    unsafe { asm!("sti", "hlt", "cli", options(nomem, nostack)) }
}

/// Let pending interrupts be taken, then hold them off again (the run loop
/// keeps interrupts disabled except at these points and when idle).
pub fn poll_interrupts() {
    // SAFETY: STI's one-instruction shadow covers the NOP; pending interrupts
    // are taken after it, on their IST stacks; then interrupts are off again.
    unsafe { asm!("sti", "nop", "cli", options(nomem, nostack)) }
}

/// Spin for about `us` microseconds (needs the TSC calibrated).
pub fn delay_us(us: u64) {
    let hz = crate::time::tsc_hz();
    let ticks = hvcore::cpu::ns_to_ticks(us * 1000, hz.max(1_000_000_000));
    let start = rdtsc();
    while rdtsc().wrapping_sub(start) < ticks {
        core::hint::spin_loop();
    }
}
