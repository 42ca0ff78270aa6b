//! Stopping the machine: CPU exceptions, panics and refused boots are
//! reported (vector, error code, registers, a symbolised backtrace) on the
//! console, the other CPUs are stopped with an NMI, and this CPU halts. In a
//! test build with `test_exit`, the agreed fatal code goes to the debug-exit
//! port; a refused boot writes the "boot refused" code there in every image
//! when the device exists (`hvcore::testexit`).

use crate::arch::idt::{Frame, exception_name};
use crate::arch::{self, percpu};
use crate::emergency;
use crate::image::{Sym, section_of};
use core::ops::Range;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

static STOPPING: AtomicBool = AtomicBool::new(false);
const NO_CPU: u32 = u32::MAX;
static FATAL_CPU: AtomicU32 = AtomicU32::new(NO_CPU);

/// Whether the machine is being stopped (other CPUs halt on NMI).
pub fn stopping() -> bool {
    STOPPING.load(Ordering::Acquire)
}

/// Claim the fatal path. Returns false if another CPU has it (this one then
/// just halts) or this CPU faulted while reporting (a short note is printed).
fn begin() -> bool {
    let me = percpu::cpu_id();
    match FATAL_CPU.compare_exchange(NO_CPU, me, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => {}
        Err(owner) if owner == me => {
            emergency!("*** Warden: fault while reporting a fatal error on CPU{me}; stopping");
            finish();
        }
        Err(_) => arch::halt_forever(),
    }
    STOPPING.store(true, Ordering::Release);
    arch::apic::stop_other_cpus();
    true
}

fn finish() -> ! {
    emergency!("*** Warden stopped: the machine is halted.");
    crate::test_exit(hvcore::testexit::TestExit::Fatal);
    arch::halt_forever()
}

fn stack_for(rsp: u64) -> Range<u64> {
    percpu::try_current()
        .and_then(|p| p.stack_containing(rsp))
        .unwrap_or_else(|| {
            let s = arch::boot::boot_stack();
            if s.start <= rsp && rsp <= s.end {
                s
            } else {
                rsp..rsp
            }
        })
}

/// Print a backtrace from frame pointer `rbp` within `stack`.
pub fn backtrace(rbp: u64, stack: Range<u64>) {
    emergency!("Backtrace:");
    let mut n = 0;
    // SAFETY: the walk only reads 8-byte aligned addresses inside `stack`,
    // a mapped stack of this CPU.
    let read = |a: u64| Some(unsafe { core::ptr::read_volatile(a as *const u64) });
    for f in hvcore::backtrace::walk(rbp, stack, 48, read) {
        // The return address points after the call; look up the call itself.
        emergency!("  [<{:#018x}>] {}", f.return_addr, Sym(f.return_addr - 1));
        n += 1;
    }
    if n == 0 {
        emergency!("  (no frames)");
    }
}

fn pf_reason(code: u64) -> &'static str {
    match (code & 1 != 0, code & 2 != 0, code & 0x10 != 0) {
        (_, _, true) => "instruction fetch from a no-execute page",
        (true, true, false) => "write to a read-only page",
        (true, false, false) => "protection violation on read",
        (false, true, false) => "write to a non-present page",
        (false, false, false) => "read from a non-present page",
    }
}

/// Report a CPU exception and stop.
pub fn exception(f: &Frame) -> ! {
    begin();
    let cpu = percpu::cpu_id();
    emergency!(
        "*** Warden fatal error on CPU{cpu}: {} (vector {}), error code {:#x}",
        exception_name(f.vector),
        f.vector,
        f.error_code
    );
    if f.vector == 14 {
        let cr2 = arch::read_cr2();
        emergency!(
            "    page fault at {cr2:#x}: {} [{}{}{}{}]",
            pf_reason(f.error_code),
            if f.error_code & 1 != 0 { "P" } else { "-" },
            if f.error_code & 2 != 0 { "W" } else { "R" },
            if f.error_code & 4 != 0 { "U" } else { "S" },
            if f.error_code & 0x10 != 0 { "I" } else { "D" },
        );
        if let Some(s) = section_of(cr2) {
            emergency!("    {cr2:#x} is in the hypervisor's {s} (W^X)");
        }
    }
    emergency!("RIP: {:#06x}:[<{:#018x}>] {}", f.cs, f.rip, Sym(f.rip));
    emergency!(
        "RFLAGS: {:#018x}  RSP: {:#018x}  SS: {:#06x}",
        f.rflags,
        f.rsp,
        f.ss
    );
    emergency!(
        "RAX: {:#018x}  RBX: {:#018x}  RCX: {:#018x}",
        f.rax,
        f.rbx,
        f.rcx
    );
    emergency!(
        "RDX: {:#018x}  RSI: {:#018x}  RDI: {:#018x}",
        f.rdx,
        f.rsi,
        f.rdi
    );
    emergency!(
        "RBP: {:#018x}  R8:  {:#018x}  R9:  {:#018x}",
        f.rbp,
        f.r8,
        f.r9
    );
    emergency!(
        "R10: {:#018x}  R11: {:#018x}  R12: {:#018x}",
        f.r10,
        f.r11,
        f.r12
    );
    emergency!(
        "R13: {:#018x}  R14: {:#018x}  R15: {:#018x}",
        f.r13,
        f.r14,
        f.r15
    );
    emergency!(
        "CR0: {:#018x}  CR3: {:#018x}  CR4: {:#018x}",
        arch::read_cr0(),
        arch::read_cr3(),
        arch::read_cr4()
    );
    backtrace(f.rbp, stack_for(f.rsp));
    finish()
}

/// Report a panic and stop.
pub fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let rbp = arch::read_rbp();
    let rsp = arch::read_rsp();
    begin();
    let cpu = percpu::cpu_id();
    match info.location() {
        Some(l) => emergency!(
            "*** Warden panic on CPU{cpu} at {}:{}:{}: {}",
            l.file(),
            l.line(),
            l.column(),
            info.message()
        ),
        None => emergency!("*** Warden panic on CPU{cpu}: {}", info.message()),
    }
    backtrace(rbp, stack_for(rsp));
    finish()
}

/// Stop the machine in an orderly way (dom0 shut down): stop the other CPUs,
/// write the test exit `code` (test builds), then reboot if asked, else halt.
pub fn stop_machine(code: hvcore::testexit::TestExit, reboot: bool) -> ! {
    let me = percpu::cpu_id();
    if FATAL_CPU
        .compare_exchange(NO_CPU, me, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        arch::halt_forever();
    }
    STOPPING.store(true, Ordering::Release);
    arch::apic::stop_other_cpus();
    crate::test_exit(code);
    if reboot {
        // SAFETY: the reset control register (0xCF9) and the keyboard
        // controller's reset line are the platform's; we are stopping it.
        unsafe {
            arch::outb(0xCF9, 0x06);
            arch::outb(0x64, 0xFE);
        }
    }
    emergency!("*** Warden stopped: the machine is halted.");
    arch::halt_forever()
}

/// Refuse to continue booting, with the reason; under QEMU with the
/// debug-exit device (every image) QEMU exits with the "boot refused" code,
/// otherwise the machine halts.
pub fn refuse_boot(e: &hvcore::Error) -> ! {
    begin();
    emergency!("*** Warden cannot boot: {e}");
    emergency!("*** Warden stopped: the machine is halted.");
    crate::boot_refused_exit();
    arch::halt_forever()
}
