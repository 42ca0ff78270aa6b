//! The `lapic` role (dom0 with two vCPUs): the emulated local APIC and
//! MMIO. vCPU 0 programs its LAPIC timer through the xAPIC MMIO page
//! (one-shot, then periodic), takes the interrupts halted and EOIs them;
//! reads and writes unclaimed MMIO (all-ones, writes ignored); switches to
//! x2APIC mode and uses the TSC-deadline timer; sends IPIs to vCPU 1
//! (started with VCPUOP_up, its APIC in xAPIC mode); then INIT, SIPI, SIPI
//! restart vCPU 1 in real mode at a trampoline below 1 MiB, which switches
//! to 32-bit protected mode and reads its APIC id and unclaimed MMIO.

use crate::check;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use warden_guest::events;
use warden_guest::println;
use warden_guest::start::Boot;
use warden_guest::time::{now_ns, rdtsc, sleep_ns};

const APIC: u64 = 0xFEE0_0000;
/// An address with nothing behind it (the HPET's, absent in a PVH domain).
const UNCLAIMED: u64 = 0xFED0_0000;
const V_ONESHOT: u8 = 0x40;
const V_PERIODIC: u8 = 0x41;
const V_DEADLINE: u8 = 0x42;
const V_IPI: u8 = 0x43;
const V_IPI_ALL: u8 = 0x44;
/// Where the AP trampoline goes (real mode CS 0x7000) and its SIPI vector.
const TRAMPOLINE: u64 = 0x70000;
const SIPI_VECTOR: u64 = TRAMPOLINE >> 12;

static COUNTS: [AtomicU64; 256] = [const { AtomicU64::new(0) }; 256];
static AP_READY: AtomicU32 = AtomicU32::new(0);

fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: the MSRs read here are the APIC's, which the hypervisor emulates.
    unsafe { core::arch::asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi) };
    ((hi as u64) << 32) | lo as u64
}

fn wrmsr(msr: u32, v: u64) {
    // SAFETY: as for rdmsr; every value written here is valid for its MSR.
    unsafe {
        core::arch::asm!("wrmsr", in("ecx") msr, in("eax") v as u32, in("edx") (v >> 32) as u32)
    };
}

fn mmio_r32(a: u64) -> u32 {
    // SAFETY: `map_high` mapped 3..4 GiB uncached; the hypervisor emulates the access.
    unsafe { core::ptr::read_volatile(a as *const u32) }
}

fn mmio_w32(a: u64, v: u32) {
    // SAFETY: as for mmio_r32.
    unsafe { core::ptr::write_volatile(a as *mut u32, v) }
}

fn apic_r(off: u64) -> u32 {
    mmio_r32(APIC + off)
}

fn apic_w(off: u64, v: u32) {
    mmio_w32(APIC + off, v)
}

fn x2apic() -> bool {
    rdmsr(0x1B) & (1 << 10) != 0
}

/// Map guest-physical 3..4 GiB (the MMIO hole) at the same virtual
/// addresses, uncached, in the runtime's page tables.
fn map_high() {
    let cr3: u64;
    // SAFETY: reading CR3 in ring 0.
    unsafe { core::arch::asm!("mov {}, cr3", out(reg) cr3) };
    let pml4 = (cr3 & !0xfff) as *const u64;
    // SAFETY: the runtime's page tables are identity-mapped and ours; PDPT
    // entry 3 is unused in a guest with less than 3 GiB of RAM.
    unsafe {
        let pdpt = (pml4.read() & 0x000f_ffff_ffff_f000) as *mut u64;
        // 1 GiB page: present, writable, PWT, PCD.
        pdpt.add(3).write_volatile((3u64 << 30) | 0x9B);
        core::arch::asm!("mov cr3, {}", in(reg) cr3);
    }
}

fn on_irq(vector: u8) {
    COUNTS[vector as usize].fetch_add(1, Ordering::AcqRel);
    if x2apic() {
        wrmsr(0x80B, 0);
    } else {
        apic_w(0xB0, 0);
    }
}

fn count(v: u8) -> u64 {
    COUNTS[v as usize].load(Ordering::Acquire)
}

/// Halt with interrupts on until `vector` has fired `n` times (or 10 s).
fn wait_irqs(vector: u8, n: u64) -> bool {
    let t0 = now_ns();
    while count(vector) < n && now_ns() - t0 < 10_000_000_000 {
        // SAFETY: STI's shadow covers HLT: an interrupt arriving in between
        // ends the HLT instead of being taken before it.
        unsafe { core::arch::asm!("sti", "hlt", "cli", options(nomem, nostack)) };
    }
    count(vector) >= n
}

fn ap_main(v: u32) -> ! {
    // xAPIC: enable it in the SVR, then wait for IPIs.
    apic_w(0xF0, 0x1FF);
    AP_READY.store(v, Ordering::Release);
    loop {
        // SAFETY: as in wait_irqs; interrupts on while halted.
        unsafe { core::arch::asm!("sti", "hlt", "cli", options(nomem, nostack)) };
    }
}

/// The AP trampoline: real mode at 0x7000:0, marks 0xA5A5, loads a flat
/// GDT, enters 32-bit protected mode, stores its APIC id (xAPIC MMIO) and
/// an unclaimed MMIO read, marks done and halts.
fn trampoline() -> [u8; 0x90] {
    let mut t = [0u8; 0x90];
    let code16: &[u8] = &[
        0x8C, 0xC8, // mov ax, cs
        0x8E, 0xD8, // mov ds, ax
        0xC7, 0x06, 0x00, 0x0F, 0xA5, 0xA5, // mov word [0xF00], 0xA5A5
        0x66, 0x0F, 0x01, 0x16, 0x30, 0x00, // lgdt [0x30] (32-bit base)
        0x0F, 0x20, 0xC0, // mov eax, cr0
        0x66, 0x83, 0xC8, 0x01, // or eax, 1
        0x0F, 0x22, 0xC0, // mov cr0, eax
        0x66, 0xEA, 0x60, 0x00, 0x07, 0x00, 0x08, 0x00, // jmp dword 0x08:0x70060
    ];
    t[..code16.len()].copy_from_slice(code16);
    // GDTR at 0x30: limit, base 0x70040; GDT at 0x40: null, code32, data32.
    t[0x30..0x32].copy_from_slice(&0x17u16.to_le_bytes());
    t[0x32..0x36].copy_from_slice(&0x70040u32.to_le_bytes());
    t[0x48..0x50].copy_from_slice(&0x00CF_9A00_0000_FFFFu64.to_le_bytes());
    t[0x50..0x58].copy_from_slice(&0x00CF_9200_0000_FFFFu64.to_le_bytes());
    let code32: &[u8] = &[
        0x66, 0xB8, 0x10, 0x00, // mov ax, 0x10
        0x8E, 0xD8, // mov ds, ax
        0xA1, 0x20, 0x00, 0xE0, 0xFE, // mov eax, [0xFEE00020]
        0xA3, 0x04, 0x0F, 0x07, 0x00, // mov [0x70F04], eax
        0xA1, 0x00, 0x00, 0xD0, 0xFE, // mov eax, [0xFED00000]
        0xA3, 0x08, 0x0F, 0x07, 0x00, // mov [0x70F08], eax
        0xC7, 0x05, 0x0C, 0x0F, 0x07, 0x00, 0x01, 0x00, 0x00, 0x00, // mov dword [0x70F0C], 1
        0xFA, // cli
        0xF4, // hlt
        0xEB, 0xFD, // jmp back to hlt
    ];
    t[0x60..0x60 + code32.len()].copy_from_slice(code32);
    t
}

fn marker(off: u64) -> u32 {
    // SAFETY: the trampoline page is RAM of ours (identity-mapped), written
    // by the AP; read with a volatile load.
    unsafe { core::ptr::read_volatile((TRAMPOLINE + off) as *const u32) }
}

pub fn lapic(boot: &Boot) -> ! {
    map_high();
    events::set_irq_handler(on_irq);
    let base = rdmsr(0x1B);
    check!(
        base == 0xFEE0_0900,
        "APIC_BASE {base:#x}: enabled, xAPIC, BSP, at 0xFEE00000"
    );
    check!(apic_r(0x20) == 0, "APIC id 0 (xAPIC MMIO)");
    check!(apic_r(0x30) == 0x0005_0014, "version {:#x}", apic_r(0x30));
    apic_w(0xF0, 0x1FF);
    check!(apic_r(0xF0) == 0x1FF, "SVR enables the APIC");
    apic_w(0x3E0, 0xB); // divide by 1: 10 ns per count

    // One-shot: 20 ms.
    apic_w(0x320, V_ONESHOT as u32);
    let t0 = now_ns();
    apic_w(0x380, 2_000_000);
    let c1 = apic_r(0x390);
    sleep_ns(1_000_000);
    let c2 = apic_r(0x390);
    // (Zero only if the 20 ms really went by: a loaded host can deschedule
    // this vCPU for longer than the 1 ms sleep.)
    let elapsed = now_ns() - t0;
    check!(
        c1 <= 2_000_000 && c2 < c1 && (c2 > 0 || elapsed >= 20_000_000),
        "the current count goes down ({c1} then {c2}, {elapsed} ns after the start)"
    );
    check!(
        wait_irqs(V_ONESHOT, 1),
        "the one-shot timer interrupt arrived"
    );
    let dt = now_ns() - t0;
    check!(dt >= 20_000_000, "not before its deadline ({dt} ns)");
    check!(apic_r(0x390) == 0, "the count stops at 0");
    sleep_ns(30_000_000);
    check!(count(V_ONESHOT) == 1, "the one-shot timer fired once");

    // Periodic: 5 ms, five interrupts.
    apic_w(0x320, (1 << 17) | V_PERIODIC as u32);
    let t0 = now_ns();
    apic_w(0x380, 500_000);
    check!(wait_irqs(V_PERIODIC, 5), "five periodic interrupts");
    let dt = now_ns() - t0;
    check!(dt >= 25_000_000, "not before the fifth period ({dt} ns)");
    apic_w(0x380, 0);
    let n = count(V_PERIODIC);
    sleep_ns(20_000_000);
    check!(count(V_PERIODIC) == n, "writing 0 stops the timer");
    check!(
        apic_r(0x100 + 0x20) == 0,
        "nothing left in service (EOIs done)"
    );

    // Unclaimed MMIO: all-ones, writes ignored, any width.
    check!(
        mmio_r32(UNCLAIMED) == u32::MAX,
        "unclaimed MMIO reads all-ones"
    );
    mmio_w32(UNCLAIMED, 0x1234_5678);
    // SAFETY: as for mmio_r32, other widths.
    let (b, q) = unsafe {
        (
            core::ptr::read_volatile((UNCLAIMED + 3) as *const u8),
            core::ptr::read_volatile((UNCLAIMED + 8) as *const u64),
        )
    };
    check!(
        mmio_r32(UNCLAIMED) == u32::MAX && b == 0xFF && q == u64::MAX,
        "writes to it are ignored; byte and quadword reads are all-ones too"
    );

    // x2APIC mode and the TSC-deadline timer.
    wrmsr(0x1B, base | (1 << 10));
    check!(x2apic(), "switched to x2APIC mode");
    check!(rdmsr(0x802) == 0, "x2APIC id 0");
    check!(rdmsr(0x80F) == 0x1FF, "the SVR survives the switch");
    wrmsr(0x832, (2 << 17) | V_DEADLINE as u64);
    wrmsr(0x6E0, rdtsc() + 20_000_000);
    check!(rdmsr(0x6E0) != 0, "TSC deadline armed");
    check!(
        wait_irqs(V_DEADLINE, 1),
        "the TSC-deadline interrupt arrived"
    );
    check!(rdmsr(0x6E0) == 0, "the deadline MSR reads 0 once it fired");

    // IPIs to vCPU 1 (APIC id 2).
    let r = warden_guest::smp::start(1, ap_main);
    check!(r.is_ok(), "vCPU 1 started: {r:?}");
    let t0 = now_ns();
    while AP_READY.load(Ordering::Acquire) != 1 && now_ns() - t0 < 10_000_000_000 {
        sleep_ns(1_000_000);
    }
    check!(AP_READY.load(Ordering::Acquire) == 1, "vCPU 1 is ready");
    for i in 1..=4u64 {
        wrmsr(0x830, (2u64 << 32) | V_IPI as u64);
        let t0 = now_ns();
        while count(V_IPI) < i && now_ns() - t0 < 10_000_000_000 {
            sleep_ns(100_000);
        }
    }
    check!(count(V_IPI) == 4, "4 fixed IPIs to APIC id 2 arrived");
    wrmsr(0x830, (3 << 18) | V_IPI_ALL as u64);
    let t0 = now_ns();
    while count(V_IPI_ALL) < 1 && now_ns() - t0 < 10_000_000_000 {
        sleep_ns(100_000);
    }
    sleep_ns(10_000_000);
    check!(
        count(V_IPI_ALL) == 1,
        "an all-but-self IPI reached vCPU 1 only"
    );

    // INIT, SIPI, SIPI: vCPU 1 restarts in real mode at the trampoline.
    let t = trampoline();
    // SAFETY: guest-physical 0x70000 is RAM of ours (below the kernel at
    // 2 MiB, above the builder's low area), identity-mapped, unused.
    unsafe {
        core::ptr::copy_nonoverlapping(t.as_ptr(), TRAMPOLINE as *mut u8, t.len());
        core::ptr::write_bytes((TRAMPOLINE + 0xF00) as *mut u8, 0, 16);
    }
    wrmsr(0x830, (2u64 << 32) | 0x4500); // INIT, assert
    sleep_ns(1_000_000);
    wrmsr(0x830, (2u64 << 32) | 0x0600 | SIPI_VECTOR);
    sleep_ns(200_000);
    wrmsr(0x830, (2u64 << 32) | 0x0600 | SIPI_VECTOR);
    let t0 = now_ns();
    while marker(0xF0C) != 1 && now_ns() - t0 < 20_000_000_000 {
        sleep_ns(1_000_000);
    }
    check!(marker(0xF0C) == 1, "the AP ran the trampoline to its end");
    check!(
        marker(0xF00) & 0xFFFF == 0xA5A5,
        "it started in real mode at CS 0x7000"
    );
    check!(
        marker(0xF04) == 2 << 24,
        "its 32-bit code read APIC id 2 from the xAPIC page ({:#x})",
        marker(0xF04)
    );
    check!(
        marker(0xF08) == u32::MAX,
        "and all-ones from unclaimed MMIO"
    );
    println!(
        "lapic: vCPUs {}, interrupts: one-shot {}, periodic {}, deadline {}, IPI {} + {}",
        boot.vcpus(),
        count(V_ONESHOT),
        count(V_PERIODIC),
        count(V_DEADLINE),
        count(V_IPI),
        count(V_IPI_ALL)
    );
    crate::report::finish("lapic")
}
