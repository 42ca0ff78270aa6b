//! The guest's GDT and IDT, exception reports, and the event upcall.
//!
//! Exceptions print the vector, error code and RIP, then shut the domain
//! down with reason crash. The upcall (vector [`UPCALL_VECTOR`]) clears the
//! vCPU's `evtchn_upcall_pending`, takes `evtchn_pending_sel`, and for each
//! selected word of the shared_info page (once mapped: [`crate::evtchn::init`])
//! takes the pending, unmasked ports and calls the handler the program
//! registered with [`set_upcall_handler`] for each (Xen's 2-level scan).

use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use warden_abi::vcpu::{MAX_VCPUS, VcpuInfo, VcpuTimeInfo};

/// The vector the hypervisor delivers upcalls on.
pub const UPCALL_VECTOR: u8 = 0xF3;

#[repr(C, align(64))]
struct Infos([VcpuInfo; MAX_VCPUS as usize]);

static mut INFOS: Infos = Infos(
    [VcpuInfo {
        evtchn_upcall_pending: 0,
        evtchn_upcall_mask: 0,
        pad0: [0; 6],
        evtchn_pending_sel: 0,
        cr2: 0,
        pad1: 0,
        time: VcpuTimeInfo {
            version: 0,
            pad0: 0,
            tsc_timestamp: 0,
            system_time: 0,
            tsc_to_system_mul: 0,
            tsc_shift: 0,
            flags: 0,
            pad1: [0; 2],
        },
    }; MAX_VCPUS as usize],
);

/// Upcalls taken, per vCPU.
pub static UPCALLS: [AtomicU64; MAX_VCPUS as usize] =
    [const { AtomicU64::new(0) }; MAX_VCPUS as usize];

type Handler = fn(vcpu: u32, port: u32);
static HANDLER: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

/// Call `h` from the upcall for each pending port (its pending bit cleared).
pub fn set_upcall_handler(h: Handler) {
    HANDLER.store(h as *mut (), Ordering::Release);
}

type IrqHandler = fn(vector: u8);
static IRQ_HANDLER: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

/// Call `h` for every interrupt vector from 32 up other than the upcall's
/// (local APIC interrupts: the handler does the EOI).
pub fn set_irq_handler(h: IrqHandler) {
    IRQ_HANDLER.store(h as *mut (), Ordering::Release);
}

/// This vCPU's id (CPUID leaf 0x4000_0004 EBX, as Linux's `xen_vcpu_id`).
pub fn vcpu_id() -> u32 {
    let r = core::arch::x86_64::__cpuid(0x4000_0004);
    r.ebx
}

fn info_ptr(vcpu: u32) -> *mut VcpuInfo {
    let i = (vcpu as usize).min(MAX_VCPUS as usize - 1);
    // SAFETY: only the address is taken.
    unsafe { &raw mut INFOS.0[i] }
}

/// The guest-physical address of vCPU `vcpu`'s vcpu_info (memory is identity-mapped).
pub fn info_addr(vcpu: u32) -> u64 {
    info_ptr(vcpu) as u64
}

/// The time information of vCPU 0's vcpu_info.
pub fn time_info() -> VcpuTimeInfo {
    time_info_of(0)
}

/// The time information of vCPU `vcpu`'s vcpu_info, read under its version
/// seqlock (the hypervisor rewrites it while the owning vCPU is outside the
/// guest: another vCPU may be reading): retried while the version is odd
/// or changed during the read.
pub fn time_info_of(vcpu: u32) -> VcpuTimeInfo {
    let p = info_ptr(vcpu);
    loop {
        // SAFETY: `p` points into INFOS (static, 64-byte aligned); the
        // hypervisor writes it concurrently, so every access is volatile and
        // the version check below discards a torn copy.
        let (v1, t, v2) = unsafe {
            let v1 = core::ptr::read_volatile(&raw const (*p).time.version);
            core::sync::atomic::fence(Ordering::Acquire);
            let t = core::ptr::read_volatile(&raw const (*p).time);
            core::sync::atomic::fence(Ordering::Acquire);
            let v2 = core::ptr::read_volatile(&raw const (*p).time.version);
            (v1, t, v2)
        };
        if v1 % 2 == 0 && v1 == v2 {
            return t;
        }
        core::hint::spin_loop();
    }
}

/// Register vCPU `vcpu`'s vcpu_info with the hypervisor and set its upcall vector.
///
/// The upcall vector arrives through the vCPU's local APIC (as on Xen), so
/// this also software-enables the calling vCPU's APIC (SVR), and the upcall
/// handler EOIs it. Call it on the vCPU `vcpu` itself.
pub fn register(vcpu: u32) -> Result<(), crate::Errno> {
    let r = crate::hypercall::vcpu_register_info(vcpu, info_ptr(vcpu) as u64);
    apic_write(APIC_SVR, 0x100 | 0xFF);
    crate::hypercall::set_upcall_vector(vcpu, UPCALL_VECTOR)?;
    r.map(drop)
}

/// The xAPIC register page (identity-mapped by the runtime's page tables).
const APIC_BASE: usize = 0xFEE0_0000;
const APIC_SVR: usize = 0xF0;
const APIC_EOI: usize = 0xB0;

fn apic_write(reg: usize, value: u32) {
    // SAFETY: the local APIC's register page, identity-mapped (uncached
    // MMIO the hypervisor emulates); a 32-bit aligned store to a register.
    unsafe { core::ptr::write_volatile((APIC_BASE + reg) as *mut u32, value) };
}

/// Upcalls taken by `vcpu`.
pub fn upcalls(vcpu: u32) -> u64 {
    UPCALLS[(vcpu as usize).min(MAX_VCPUS as usize - 1)].load(Ordering::Acquire)
}

/// Enable interrupts (the upcall) on this vCPU.
pub fn enable() {
    // SAFETY: the IDT is loaded (by the runtime) before any program code runs.
    unsafe { asm!("sti", options(nomem, nostack)) }
}

/// Disable interrupts on this vCPU.
pub fn disable() {
    // SAFETY: clearing IF only affects this vCPU.
    unsafe { asm!("cli", options(nomem, nostack)) }
}

/// Saved registers of an interrupt, lowest address first.
#[repr(C)]
struct Frame {
    regs: [u64; 10],
    vector: u64,
    error: u64,
    rip: u64,
    cs: u64,
    rflags: u64,
}

global_asm!(
    r#"
.section .text.isr, "ax"
.balign 16
.global guest_isr_stubs
guest_isr_stubs:
.set gvec, 0
.rept 256
    .balign 16
    .if (gvec == 8) | (gvec == 10) | (gvec == 11) | (gvec == 12) | (gvec == 13) | (gvec == 14) | (gvec == 17) | (gvec == 21) | (gvec == 29) | (gvec == 30)
    .else
    .byte 0x6a, 0x00
    .endif
    .byte 0x68
    .long gvec
    jmp guest_isr_common
    .set gvec, gvec + 1
.endr
.balign 16
guest_isr_common:
    push rax
    push rcx
    push rdx
    push rsi
    push rdi
    push r8
    push r9
    push r10
    push r11
    push rbp
    mov rdi, rsp
    mov rbp, rsp
    and rsp, -16
    sub rsp, 512
    fxsave64 [rsp]
    call {dispatch}
    fxrstor64 [rsp]
    mov rsp, rbp
    pop rbp
    pop r11
    pop r10
    pop r9
    pop r8
    pop rdi
    pop rsi
    pop rdx
    pop rcx
    pop rax
    add rsp, 16
    iretq
.section .text
"#,
    dispatch = sym dispatch,
);

unsafe extern "C" {
    static guest_isr_stubs: u8;
}

extern "C" fn dispatch(f: &Frame) {
    if f.vector == UPCALL_VECTOR as u64 {
        let v = vcpu_id();
        let p = info_ptr(v);
        // SAFETY: this vCPU's vcpu_info; the hypervisor sets the fields, we clear them.
        let sel = unsafe {
            core::ptr::write_volatile(&raw mut (*p).evtchn_upcall_pending, 0);
            let s = &*(&raw const (*p).evtchn_pending_sel as *const core::sync::atomic::AtomicU64);
            s.swap(0, Ordering::AcqRel)
        };
        UPCALLS[(v as usize).min(MAX_VCPUS as usize - 1)].fetch_add(1, Ordering::AcqRel);
        let h = HANDLER.load(Ordering::Acquire);
        let mut words = sel;
        while words != 0 {
            let w = words.trailing_zeros();
            words &= words - 1;
            let mut ports = crate::evtchn::take_pending(w as usize);
            while ports != 0 {
                let b = ports.trailing_zeros();
                ports &= ports - 1;
                if !h.is_null() {
                    // SAFETY: only `set_upcall_handler` stores here, a `Handler`.
                    let h: Handler = unsafe { core::mem::transmute::<*mut (), Handler>(h) };
                    h(v, w * 64 + b);
                }
            }
        }
        apic_write(APIC_EOI, 0);
        return;
    }
    if f.vector < 32 {
        crate::println!(
            "guest exception {} (error {:#x}) at RIP {:#x} on vCPU {}",
            f.vector,
            f.error,
            f.rip,
            vcpu_id()
        );
        crate::exit::crash();
    }
    let h = IRQ_HANDLER.load(Ordering::Acquire);
    if !h.is_null() {
        // SAFETY: only `set_irq_handler` stores here, an `IrqHandler`.
        let h: IrqHandler = unsafe { core::mem::transmute::<*mut (), IrqHandler>(h) };
        h(f.vector as u8);
        return;
    }
    crate::println!(
        "unexpected interrupt vector {} on vCPU {}",
        f.vector,
        vcpu_id()
    );
}

#[repr(C, packed)]
struct Pointer {
    limit: u16,
    base: u64,
}

static GDT: [u64; 3] = [0, 0x00AF_9A00_0000_FFFF, 0x00CF_9200_0000_FFFF];

#[repr(C, align(16))]
struct Idt([[u64; 2]; 256]);
static mut IDT: Idt = Idt([[0; 2]; 256]);

/// Build the IDT (once, on vCPU 0).
pub fn build_idt() {
    let base = (&raw const guest_isr_stubs) as u64;
    for v in 0..256u64 {
        let h = base + 16 * v;
        let lo = (h & 0xffff) | (0x08 << 16) | (0x8E00u64 << 32) | (((h >> 16) & 0xffff) << 48);
        let hi = h >> 32;
        // SAFETY: built once on vCPU 0 before any vCPU loads it.
        unsafe { IDT.0[v as usize] = [lo, hi] };
    }
}

/// Load the GDT (reloading CS, DS, ES, SS) and the IDT on this vCPU.
pub fn load_tables() {
    let gdt = Pointer {
        limit: (core::mem::size_of_val(&GDT) - 1) as u16,
        base: GDT.as_ptr() as u64,
    };
    let idt = Pointer {
        limit: (core::mem::size_of::<Idt>() - 1) as u16,
        base: (&raw const IDT) as u64,
    };
    // SAFETY: the GDT has the flat code and data descriptors the hypervisor
    // started us with (same selectors); the IDT's entries point at our stubs.
    unsafe {
        asm!(
            "lgdt [{g}]",
            "push 0x08",
            "lea {t}, [rip + 2f]",
            "push {t}",
            "retfq",
            "2:",
            "mov {d:x}, 0x10",
            "mov ds, {d:x}",
            "mov es, {d:x}",
            "mov ss, {d:x}",
            "lidt [{i}]",
            g = in(reg) &gdt,
            i = in(reg) &idt,
            t = out(reg) _,
            d = out(reg) _,
        );
    }
}
