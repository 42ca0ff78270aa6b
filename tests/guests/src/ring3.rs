//! `role=ring3`: hypercalls made from ring 3 (user mode) of an HVM guest
//! must be refused with -EPERM and have no effect, as Xen does
//! (`hvm_hypercall`: "if ( hvm_get_cpl(curr) ) ... -EPERM"). The guest
//! makes its identity map user-accessible, installs a GDT with user
//! segments and a TSS, and a DPL-3 interrupt gate to come back; it then
//! drops to ring 3, executes VMMCALL there and returns with `int 0x81`.

use crate::check;
use core::arch::{asm, global_asm};
use warden_abi::errno::EPERM;
use warden_abi::hypercall as nr;
use warden_guest::hypercall as hc;
use warden_guest::println;

/// Vector of the gate ring 3 comes back through.
const BACK_VECTOR: usize = 0x81;
const KCODE: u64 = 0x08;
const UDATA: u64 = 0x18;
const UCODE: u64 = 0x20;
const TSS_SEL: u16 = 0x28;

#[repr(C, align(16))]
struct Stack([u8; 16384]);
static mut RING0_STACK: Stack = Stack([0; 16384]);
static mut RING3_STACK: Stack = Stack([0; 16384]);

#[repr(C, packed)]
struct Tss {
    reserved0: u32,
    rsp0: u64,
    rest: [u8; 92],
}
static mut TSS: Tss = Tss {
    reserved0: 0,
    rsp0: 0,
    rest: [0; 92],
};

/// null, kernel code (0x08) and data (0x10) as the runtime's, user data
/// (0x18), user code (0x20), the TSS (0x28, two slots).
static mut GDT: [u64; 7] = [
    0,
    0x00AF_9A00_0000_FFFF,
    0x00CF_9200_0000_FFFF,
    0x00CF_F200_0000_FFFF,
    0x00AF_FA00_0000_FFFF,
    0,
    0,
];

#[repr(C, packed)]
struct Pointer {
    limit: u16,
    base: u64,
}

/// Kernel stack pointer saved while ring 3 runs.
#[unsafe(no_mangle)]
static mut RING3_KSP: u64 = 0;

global_asm!(
    r#"
.section .text
.global ring3_enter
// rdi = user stack top, rsi = hypercall number, rdx, rcx, r8 = its first
// three arguments. Returns the hypercall's RAX.
ring3_enter:
    pushfq
    push rbx
    push rbp
    push r12
    push r13
    push r14
    push r15
    mov [rip + RING3_KSP], rsp
    push {udata}
    push rdi
    push 2
    push {ucode}
    lea rax, [rip + ring3_code]
    push rax
    mov rax, rsi
    mov rdi, rdx
    mov rsi, rcx
    mov rdx, r8
    iretq
ring3_code:
    vmmcall
    int {back}
    ud2
.global ring3_back
ring3_back:
    mov rsp, [rip + RING3_KSP]
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbp
    pop rbx
    popfq
    ret
"#,
    udata = const UDATA | 3,
    ucode = const UCODE | 3,
    back = const BACK_VECTOR,
);

unsafe extern "C" {
    fn ring3_enter(user_rsp: u64, nr: u64, a0: u64, a1: u64, a2: u64) -> i64;
    static ring3_back: u8;
}

/// Set bit 2 (user) in every entry of the identity map (4 levels walked
/// from CR3; 2 MiB leaves), then reload CR3.
fn identity_map_user() {
    const US: u64 = 1 << 2;
    const ADDR: u64 = 0x000f_ffff_ffff_f000;
    let cr3: u64;
    // SAFETY: reading CR3 has no side effect.
    unsafe { asm!("mov {}, cr3", out(reg) cr3, options(nomem, nostack)) };
    let walk = |table: u64, f: &mut dyn FnMut(u64)| {
        for i in 0..512u64 {
            let e = (table & ADDR) + i * 8;
            // SAFETY: the page tables are identity-mapped guest memory the
            // runtime owns; setting the user bit keeps every mapping.
            unsafe {
                let v = core::ptr::read_volatile(e as *const u64);
                if v & 1 != 0 {
                    core::ptr::write_volatile(e as *mut u64, v | US);
                    f(v);
                }
            }
        }
    };
    walk(cr3, &mut |pml4e| {
        walk(pml4e, &mut |pdpte| {
            if pdpte & (1 << 7) == 0 {
                walk(pdpte, &mut |_| {});
            }
        })
    });
    // SAFETY: reloading CR3 flushes the translations just changed.
    unsafe { asm!("mov cr3, {}", in(reg) cr3, options(nostack)) };
}

/// GDT with user segments and the TSS; the DPL-3 gate back.
fn install_tables() {
    let tss = (&raw const TSS) as u64;
    let limit = core::mem::size_of::<Tss>() as u64 - 1;
    // SAFETY: only this vCPU runs this code, once, before ring 3 is entered.
    unsafe {
        TSS.rsp0 = (&raw const RING0_STACK) as u64 + 16384;
        GDT[5] = (limit & 0xFFFF)
            | ((tss & 0xFF_FFFF) << 16)
            | (0x89 << 40)
            | (((limit >> 16) & 0xF) << 48)
            | (((tss >> 24) & 0xFF) << 56);
        GDT[6] = tss >> 32;
    }
    let gdt = Pointer {
        limit: (core::mem::size_of::<[u64; 7]>() - 1) as u16,
        base: (&raw const GDT) as u64,
    };
    let mut idt = Pointer { limit: 0, base: 0 };
    // SAFETY: the new GDT keeps the kernel selectors' descriptors (CS 0x08,
    // data 0x10 unchanged); the TSS descriptor is valid; the gate written
    // into the runtime's IDT points at `ring3_back` with the kernel CS.
    unsafe {
        asm!("lgdt [{}]", in(reg) &gdt, options(nostack));
        asm!("ltr {0:x}", in(reg) TSS_SEL, options(nostack));
        asm!("sidt [{}]", in(reg) &mut idt, options(nostack));
        let off = (&raw const ring3_back) as u64;
        let lo = (off & 0xFFFF) | (KCODE << 16) | (0xEE << 40) | (((off >> 16) & 0xFFFF) << 48);
        let gate = idt.base as *mut [u64; 2];
        core::ptr::write_volatile(gate.add(BACK_VECTOR), [lo, off >> 32]);
    }
}

/// Make hypercall `n` with the first three arguments from ring 3.
fn from_ring3(n: u32, a0: u64, a1: u64, a2: u64) -> i64 {
    let top = (&raw const RING3_STACK) as u64 + 16384 - 64;
    // SAFETY: the tables set up by `install_tables` and `identity_map_user`
    // are in place; `ring3_enter` comes back through the gate with every
    // callee-saved register and RFLAGS restored.
    unsafe { ring3_enter(top, n as u64, a0, a1, a2) }
}

pub fn ring3() -> ! {
    identity_map_user();
    install_tables();
    let eperm = -(EPERM as i64);

    let r = from_ring3(nr::XEN_VERSION, warden_abi::version::VERSION as u64, 0, 0);
    println!("ring3: xen_version from ring 3 -> {r}");
    check!(r == eperm, "xen_version from ring 3 is -EPERM (rc {r})");

    let text = b"RING3-LEAK: this must not reach the console\n";
    let r = from_ring3(
        nr::CONSOLE_IO,
        warden_abi::console::WRITE as u64,
        text.len() as u64,
        text.as_ptr() as u64,
    );
    println!("ring3: console_io write from ring 3 -> {r}");
    check!(r == eperm, "console_io from ring 3 is -EPERM (rc {r})");

    let reason = warden_abi::sched::Shutdown {
        reason: warden_abi::sched::SHUTDOWN_CRASH,
    };
    let r = from_ring3(
        nr::SCHED_OP,
        warden_abi::sched::SHUTDOWN as u64,
        (&raw const reason) as u64,
        0,
    );
    println!("ring3: sched_op shutdown(crash) from ring 3 -> {r}");
    check!(
        r == eperm,
        "sched_op shutdown from ring 3 is -EPERM (rc {r})"
    );
    // Still alive (not crashed by the refused shutdown), and ring 0 still works.
    let v = hc::xen_version(warden_abi::version::VERSION, 0);
    check!(
        v.is_ok_and(|v| v > 0),
        "xen_version from ring 0 afterwards works ({v:?})"
    );
    crate::report::finish("ring3")
}
