//! Per-CPU GDT and TSS. Selectors: 0x08 kernel code (64-bit), 0x10 kernel
//! data, 0x18 TSS. The TSS holds the IST stacks every IDT vector runs on.

use super::percpu::{IST_COUNT, PerCpu};
use core::arch::asm;

pub const KERNEL_CS: u16 = 0x08;
pub const KERNEL_DS: u16 = 0x10;
pub const TSS_SEL: u16 = 0x18;

/// The 64-bit task-state segment.
#[derive(Debug, Clone, Copy)]
#[repr(C, packed(4))]
pub struct Tss {
    _r0: u32,
    pub rsp: [u64; 3],
    _r1: u64,
    pub ist: [u64; 7],
    _r2: u64,
    _r3: u16,
    pub iomap_base: u16,
}

impl Tss {
    pub const fn new() -> Self {
        Tss {
            _r0: 0,
            rsp: [0; 3],
            _r1: 0,
            ist: [0; 7],
            _r2: 0,
            _r3: 0,
            iomap_base: core::mem::size_of::<Tss>() as u16,
        }
    }
}

/// A GDT: null, code, data, TSS (two slots).
#[derive(Debug, Clone, Copy)]
#[repr(C, align(16))]
pub struct Gdt(pub [u64; 5]);

impl Gdt {
    pub const fn new() -> Self {
        Gdt([0, 0x00AF_9A00_0000_FFFF, 0x00CF_9200_0000_FFFF, 0, 0])
    }
}

#[repr(C, packed)]
struct Pointer {
    limit: u16,
    base: u64,
}

/// Fill this CPU's TSS with its IST stacks, build its GDT and load both.
///
/// # Safety
/// Must run on the CPU that owns `p`, once, before anything else uses its GDT/TSS.
pub unsafe fn load(p: &'static PerCpu) {
    // SAFETY: per the contract, only this CPU touches its TSS/GDT now.
    let (tss, gdt) = unsafe { (&mut *p.tss.get(), &mut *p.gdt.get()) };
    for i in 0..IST_COUNT {
        tss.ist[i] = p.ist[i].end & !0xf;
    }
    tss.rsp[0] = p.stack.end & !0xf;
    let base = tss as *const Tss as u64;
    let limit = (core::mem::size_of::<Tss>() - 1) as u64;
    // 64-bit available TSS descriptor (type 9, present).
    gdt.0[3] = (limit & 0xffff)
        | ((base & 0xff_ffff) << 16)
        | (0x89 << 40)
        | (((limit >> 16) & 0xf) << 48)
        | (((base >> 24) & 0xff) << 56);
    gdt.0[4] = base >> 32;
    let ptr = Pointer {
        limit: (core::mem::size_of::<Gdt>() - 1) as u16,
        base: gdt as *const Gdt as u64,
    };
    // SAFETY: the GDT is valid and 'static; the code and data selectors match
    // the ones in use, so reloading CS/DS/SS keeps executing the same code.
    unsafe {
        asm!(
            "lgdt [{ptr}]",
            "push {cs}",
            "lea {tmp}, [rip + 2f]",
            "push {tmp}",
            "retfq",
            "2:",
            "mov ds, {ds:x}",
            "mov es, {ds:x}",
            "mov ss, {ds:x}",
            "ltr {tss:x}",
            ptr = in(reg) &ptr,
            cs = const KERNEL_CS as u64,
            tmp = out(reg) _,
            ds = in(reg) KERNEL_DS as u64,
            tss = in(reg) TSS_SEL as u64,
        );
    }
}
