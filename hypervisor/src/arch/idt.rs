//! The IDT. Every vector has a small stub (16 bytes apart, generated below)
//! that pushes the vector (and a zero error code where the CPU pushes none)
//! and jumps to a common path that saves all registers and the FPU/SSE state
//! (host Rust code uses SSE) and calls [`dispatch`].
//!
//! Every vector runs on an IST stack, never on the interrupted stack (the
//! prebuilt `core` uses the red zone): NMI on IST2, #DF on IST3, #MC on IST4,
//! other exceptions on IST1, interrupts (IF clear while they run) on IST5.

use super::apic;
use super::gdt::KERNEL_CS;
use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicU64, Ordering};

/// Registers saved on interrupt entry, lowest address first.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub struct Frame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

global_asm!(
    r#"
.section .text.isr, "ax"
.balign 16
.global isr_stubs
isr_stubs:
.set isr_vec, 0
.rept 256
    .balign 16
    .if (isr_vec == 8) | (isr_vec == 10) | (isr_vec == 11) | (isr_vec == 12) | (isr_vec == 13) | (isr_vec == 14) | (isr_vec == 17) | (isr_vec == 21) | (isr_vec == 29) | (isr_vec == 30)
    .else
    .byte 0x6a, 0x00
    .endif
    .byte 0x68
    .long isr_vec
    jmp isr_common
    .set isr_vec, isr_vec + 1
.endr

.balign 16
isr_common:
    push rax
    push rbx
    push rcx
    push rdx
    push rsi
    push rdi
    push rbp
    push r8
    push r9
    push r10
    push r11
    push r12
    push r13
    push r14
    push r15
    cld
    sub rsp, 512
    fxsave64 [rsp]
    lea rdi, [rsp + 512]
    call {dispatch}
    fxrstor64 [rsp]
    add rsp, 512
    pop r15
    pop r14
    pop r13
    pop r12
    pop r11
    pop r10
    pop r9
    pop r8
    pop rbp
    pop rdi
    pop rsi
    pop rdx
    pop rcx
    pop rbx
    pop rax
    add rsp, 16
    iretq
.section .text
"#,
    dispatch = sym dispatch,
);

unsafe extern "C" {
    static isr_stubs: u8;
}

#[derive(Clone, Copy)]
#[repr(C)]
struct Entry {
    off_lo: u16,
    sel: u16,
    ist: u8,
    attr: u8,
    off_mid: u16,
    off_hi: u32,
    _r: u32,
}

#[repr(C, align(16))]
struct Idt([Entry; 256]);

static IDT: spin::Once<Idt> = spin::Once::new();

/// IST slot (1-based) for a vector.
pub fn ist_for(vector: usize) -> u8 {
    match vector {
        2 => 2,
        8 => 3,
        18 => 4,
        0..=31 => 1,
        _ => 5,
    }
}

fn build() -> Idt {
    let base = (&raw const isr_stubs) as u64;
    let mut idt = Idt([Entry {
        off_lo: 0,
        sel: 0,
        ist: 0,
        attr: 0,
        off_mid: 0,
        off_hi: 0,
        _r: 0,
    }; 256]);
    for (v, e) in idt.0.iter_mut().enumerate() {
        let h = base + 16 * v as u64;
        *e = Entry {
            off_lo: h as u16,
            sel: KERNEL_CS,
            ist: ist_for(v),
            attr: 0x8E, // present, DPL 0, 64-bit interrupt gate (IF cleared)
            off_mid: (h >> 16) as u16,
            off_hi: (h >> 32) as u32,
            _r: 0,
        };
    }
    idt
}

/// Load the IDT on this CPU (building it on first use).
pub fn load() {
    let idt = IDT.call_once(build);
    #[repr(C, packed)]
    struct Pointer {
        limit: u16,
        base: u64,
    }
    let p = Pointer {
        limit: (core::mem::size_of::<Idt>() - 1) as u16,
        base: idt as *const Idt as u64,
    };
    // SAFETY: the IDT is 'static and every entry points at a valid stub; the
    // TSS with the IST stacks is loaded before any interrupt is enabled.
    unsafe { asm!("lidt [{}]", in(reg) &p, options(readonly, nostack, preserves_flags)) }
}

/// Interrupts on vectors nobody handles (counted, not logged: the console
/// lock may be held by the interrupted code).
pub static UNEXPECTED_INTERRUPTS: AtomicU64 = AtomicU64::new(0);

extern "C" fn dispatch(f: &mut Frame) {
    match f.vector {
        2 => {
            if crate::fatal::stopping() {
                super::halt_forever();
            }
            crate::fatal::exception(f)
        }
        0..=31 => crate::fatal::exception(f),
        v if v == apic::TIMER_VECTOR as u64 => {
            if let Some(p) = super::percpu::try_current() {
                p.timer_ticks.fetch_add(1, Ordering::Relaxed);
            }
            crate::console::poll();
            apic::eoi();
        }
        v if v == apic::KICK_VECTOR as u64 => {
            if let Some(p) = super::percpu::try_current() {
                p.kicks.fetch_add(1, Ordering::Relaxed);
            }
            apic::eoi();
        }
        v if v == apic::SPURIOUS_VECTOR as u64 => {}
        _ => {
            UNEXPECTED_INTERRUPTS.fetch_add(1, Ordering::Relaxed);
            apic::eoi();
        }
    }
}

/// Names of the architectural exceptions.
pub fn exception_name(v: u64) -> &'static str {
    match v {
        0 => "#DE divide error",
        1 => "#DB debug",
        2 => "NMI",
        3 => "#BP breakpoint",
        4 => "#OF overflow",
        5 => "#BR bound range",
        6 => "#UD invalid opcode",
        7 => "#NM device not available",
        8 => "#DF double fault",
        10 => "#TS invalid TSS",
        11 => "#NP segment not present",
        12 => "#SS stack fault",
        13 => "#GP general protection",
        14 => "#PF page fault",
        16 => "#MF x87 floating point",
        17 => "#AC alignment check",
        18 => "#MC machine check",
        19 => "#XM SIMD floating point",
        20 => "#VE virtualization",
        21 => "#CP control protection",
        29 => "#VC VMM communication",
        30 => "#SX security",
        _ => "reserved exception",
    }
}
