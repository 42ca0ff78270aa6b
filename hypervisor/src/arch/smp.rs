//! Application-processor bring-up: a real-mode trampoline copied below 1 MiB
//! switches to long mode with the hypervisor's page tables and jumps to
//! [`ap_main`] on the AP's own stack; the boot CPU starts APs one at a time
//! with INIT-SIPI-SIPI.

use super::percpu::{self, AP_STACK_SIZE, CpuState, IST_COUNT, IST_STACK_SIZE, PerCpu};
use super::{MSR_EFER, apic, paging, rdmsr};
use crate::mem::alloc_frames;
use core::arch::global_asm;
use core::sync::atomic::Ordering;
use hvcore::frames::Zone;
use hvcore::{PAGE_SIZE, Result, err};

// Trampoline layout (offsets from the start of its page; the SIPI enters at 0):
//   0x00 jmp to 0x60 | 0x08 GDT (null, code32, data, code64) | 0x28 GDTR
//   0x30 CR3 (u32) | 0x34 EFER bits (u32) | 0x38 stack | 0x40 arg | 0x48 entry
//   0x60 code: real mode -> protected mode -> long mode -> jump to `entry`.
const T_GDT: u64 = 0x08;
const T_GDTR: u64 = 0x28;
const T_CR3: u64 = 0x30;
const T_EFER: u64 = 0x34;
const T_STACK: u64 = 0x38;
const T_ARG: u64 = 0x40;
const T_ENTRY: u64 = 0x48;

global_asm!(
    r#"
.section .text.ap_trampoline, "ax"
.code16
.global ap_tramp_start
ap_tramp_start:
    .byte 0xEB, 0x5E
    .balign 8
    .quad 0
    .quad 0x00CF9A000000FFFF
    .quad 0x00CF92000000FFFF
    .quad 0x00AF9A000000FFFF
    .short 31
    .long 0
    .short 0
    .long 0
    .long 0
    .quad 0
    .quad 0
    .quad 0
    .balign 32
ap_tramp_code:
    cli
    cld
    mov ax, cs
    mov ds, ax
    xor ebx, ebx
    mov bx, ax
    shl ebx, 4
    .byte 0x0F, 0x01, 0x16
    .short 0x28
    mov eax, cr0
    or eax, 1
    mov cr0, eax
    .byte 0x66, 0xEA
.global ap_tramp_jmp32
ap_tramp_jmp32:
    .long 0
    .short 0x08
.code32
.global ap_tramp_32
ap_tramp_32:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov eax, cr4
    or eax, 0x620
    mov cr4, eax
    mov eax, dword ptr [ebx + 0x30]
    mov cr3, eax
    mov ecx, 0xC0000080
    rdmsr
    or eax, dword ptr [ebx + 0x34]
    wrmsr
    mov eax, cr0
    and eax, 0xFFFFFFF3
    or eax, 0x80010023
    mov cr0, eax
    .byte 0xEA
.global ap_tramp_jmp64
ap_tramp_jmp64:
    .long 0
    .short 0x18
.code64
.global ap_tramp_64
ap_tramp_64:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov ebx, ebx
    mov rsp, qword ptr [rbx + 0x38]
    mov rdi, qword ptr [rbx + 0x40]
    mov rax, qword ptr [rbx + 0x48]
    xor ebp, ebp
    push 0
    jmp rax
.global ap_tramp_end
ap_tramp_end:
.code64
.section .text
"#
);

unsafe extern "C" {
    static ap_tramp_start: u8;
    static ap_tramp_end: u8;
    static ap_tramp_jmp32: u8;
    static ap_tramp_32: u8;
    static ap_tramp_jmp64: u8;
    static ap_tramp_64: u8;
    static ap_tramp_code: u8;
}

macro_rules! off {
    ($s:ident) => {
        ((&raw const $s) as u64) - ((&raw const ap_tramp_start) as u64)
    };
}

/// The trampoline page, ready for use.
pub struct Trampoline {
    base: u64,
}

impl Trampoline {
    /// Copy the trampoline to a free page below 1 MiB, patch it, and make it executable.
    pub fn install() -> Result<Trampoline> {
        let len = off!(ap_tramp_end);
        if len > PAGE_SIZE {
            return Err(err!(
                InvalidInput,
                "AP trampoline is {len} bytes (> one page)"
            ));
        }
        let base = alloc_frames(1, Zone::LOW_1M)?;
        // SAFETY: `base` is a fresh identity-mapped page; the source is the
        // trampoline's bytes in the image's text.
        unsafe {
            core::ptr::copy_nonoverlapping(
                &raw const ap_tramp_start,
                base as *mut u8,
                len as usize,
            );
        }
        let put32 = |o: u64, v: u32| {
            // SAFETY: `o` is an offset inside the copied trampoline page.
            unsafe { core::ptr::write_unaligned((base + o) as *mut u32, v) }
        };
        put32(off!(ap_tramp_jmp32), (base + off!(ap_tramp_32)) as u32);
        put32(off!(ap_tramp_jmp64), (base + off!(ap_tramp_64)) as u32);
        if off!(ap_tramp_code) != 0x60 {
            return Err(err!(
                InvalidInput,
                "AP trampoline code is not at offset 0x60"
            ));
        }
        put32(T_GDTR + 2, (base + T_GDT) as u32);
        put32(T_CR3, paging::cr3() as u32);
        // SAFETY: EFER exists on every x86_64 CPU.
        let efer = unsafe { rdmsr(MSR_EFER) };
        put32(T_EFER, (efer & ((1 << 8) | (1 << 11))) as u32);
        paging::set_executable(base, true)?;
        Ok(Trampoline { base })
    }

    fn set_params(&self, stack_top: u64, arg: u64) {
        let put64 = |o: u64, v: u64| {
            // SAFETY: `o` is an 8-aligned offset inside the trampoline page.
            unsafe { core::ptr::write_volatile((self.base + o) as *mut u64, v) }
        };
        put64(T_STACK, stack_top);
        put64(T_ARG, arg);
        put64(T_ENTRY, ap_main as *const () as u64);
    }

    /// Restore W^X on the page and give it back.
    pub fn remove(self) -> Result<()> {
        paging::set_executable(self.base, false)?;
        crate::mem::free_frames(self.base, 1)
    }
}

fn alloc_stack(size: usize) -> Result<core::ops::Range<u64>> {
    let pages = size as u64 / PAGE_SIZE;
    let base = alloc_frames(pages, Zone::Any)?;
    Ok(base..base + pages * PAGE_SIZE)
}

/// Allocate and register the per-CPU data and stacks for CPU `cpu_id`.
pub fn prepare_cpu(cpu_id: u32, apic_id: u32) -> Result<&'static PerCpu> {
    let stack = alloc_stack(AP_STACK_SIZE)?;
    let mut ist: [core::ops::Range<u64>; IST_COUNT] = Default::default();
    for r in ist.iter_mut() {
        *r = alloc_stack(IST_STACK_SIZE)?;
    }
    let p: &'static PerCpu = alloc::boxed::Box::leak(alloc::boxed::Box::new(PerCpu::new(
        cpu_id, apic_id, stack, ist,
    )));
    percpu::register(p);
    Ok(p)
}

/// Start one AP and wait until it is online (or failed).
pub fn start_ap(t: &Trampoline, p: &'static PerCpu) -> Result<()> {
    let hsave = alloc_frames(1, Zone::Any)?;
    p.hsave_pa.store(hsave, Ordering::Release);
    t.set_params(p.stack.end & !0xf, p as *const PerCpu as u64);
    p.set_state(CpuState::Starting);
    let page = (t.base / PAGE_SIZE) as u8;
    apic::send_init(p.apic_id)?;
    super::delay_us(10_000);
    for _ in 0..2 {
        apic::send_sipi(p.apic_id, page)?;
        super::delay_us(200);
        if p.state() != CpuState::Starting {
            break;
        }
    }
    // Generous: TCG on a loaded host is slow.
    let deadline_us = 5_000_000u64;
    let mut waited = 0;
    while p.state() == CpuState::Starting {
        if waited >= deadline_us {
            p.fail("did not come online within 5 s of INIT-SIPI-SIPI");
            return Err(err!(
                Timeout,
                "CPU{} (APIC {}) did not come online",
                p.cpu_id,
                p.apic_id
            ));
        }
        super::delay_us(100);
        waited += 100;
    }
    match p.state() {
        CpuState::Online => Ok(()),
        _ => Err(err!(
            Hardware,
            "CPU{} (APIC {}) failed to start: {}",
            p.cpu_id,
            p.apic_id,
            p.failure().unwrap_or("unknown reason")
        )),
    }
}

/// Entry of every AP, on its own stack, from the trampoline.
extern "C" fn ap_main(p: &'static PerCpu) -> ! {
    percpu::install(p);
    // SAFETY: this is CPU `p`, once, before anything uses its GDT/TSS.
    unsafe { super::gdt::load(p) };
    super::idt::load();
    match crate::cpu_setup(p) {
        Ok(()) => {
            p.set_state(CpuState::Online);
            crate::run::ap_loop(p.cpu_id)
        }
        Err(why) => {
            p.fail(why);
            super::halt_forever()
        }
    }
}
