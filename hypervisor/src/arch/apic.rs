//! The local APIC (xAPIC, memory-mapped): enabling, EOI, the timer
//! (calibrated against the PIT), and IPIs (INIT, SIPI, NMI).

use super::{inb, outb, rdmsr};
use core::sync::atomic::{AtomicU64, Ordering};
use hvcore::{Result, err};

pub const TIMER_VECTOR: u8 = 0xF0;
/// IPI forcing a CPU out of guest mode (`Platform::kick`); the handler only EOIs.
pub const KICK_VECTOR: u8 = 0xF1;
pub const SPURIOUS_VECTOR: u8 = 0xFF;
/// Timer interrupts per second on every CPU.
pub const TIMER_HZ: u64 = 100;

const MSR_APIC_BASE: u32 = 0x1B;
const APIC_BASE_ENABLE: u64 = 1 << 11;

const REG_ID: u32 = 0x20;
const REG_TPR: u32 = 0x80;
const REG_EOI: u32 = 0xB0;
const REG_SVR: u32 = 0xF0;
const REG_ESR: u32 = 0x280;
const REG_ICR_LO: u32 = 0x300;
const REG_ICR_HI: u32 = 0x310;
const REG_LVT_TIMER: u32 = 0x320;
const REG_TIMER_INIT: u32 = 0x380;
const REG_TIMER_CUR: u32 = 0x390;
const REG_TIMER_DIV: u32 = 0x3E0;

const LVT_MASKED: u32 = 1 << 16;
const LVT_PERIODIC: u32 = 1 << 17;
const ICR_PENDING: u32 = 1 << 12;

static BASE: AtomicU64 = AtomicU64::new(0);
static TIMER_APIC_HZ: AtomicU64 = AtomicU64::new(0);

fn read(reg: u32) -> u32 {
    let base = BASE.load(Ordering::Relaxed);
    // SAFETY: BASE is the identity-mapped (uncached) local APIC page, set by
    // `init` before any register access; reads have no side effects we rely on.
    unsafe { core::ptr::read_volatile((base + reg as u64) as *const u32) }
}

fn write(reg: u32, v: u32) {
    let base = BASE.load(Ordering::Relaxed);
    // SAFETY: as for `read`; the register is one this driver owns.
    unsafe { core::ptr::write_volatile((base + reg as u64) as *mut u32, v) }
}

/// Whether the APIC has been set up (IPIs possible).
pub fn ready() -> bool {
    BASE.load(Ordering::Acquire) != 0
}

/// Enable this CPU's local APIC. On the boot CPU, also mask the legacy PICs
/// and record the APIC's address.
pub fn init(bsp: bool) -> Result<u32> {
    // SAFETY: IA32_APIC_BASE exists on every x86_64 CPU with an APIC (CPUID checked by caller).
    let msr = unsafe { rdmsr(MSR_APIC_BASE) };
    let base = msr & 0x000f_ffff_ffff_f000;
    if bsp {
        if base == 0 {
            return Err(err!(Hardware, "local APIC base is 0"));
        }
        // SAFETY: masking every line of both 8259 PICs (ports 0x21, 0xA1); Warden uses the APICs only.
        unsafe {
            outb(0x21, 0xff);
            outb(0xA1, 0xff);
            let _ = inb(0x21);
        }
        BASE.store(base, Ordering::Release);
    } else if base != BASE.load(Ordering::Acquire) {
        return Err(err!(
            Hardware,
            "local APIC base {base:#x} differs from the boot CPU's"
        ));
    }
    if msr & APIC_BASE_ENABLE == 0 {
        // SAFETY: setting the global enable bit of IA32_APIC_BASE.
        unsafe { super::wrmsr(MSR_APIC_BASE, msr | APIC_BASE_ENABLE) };
    }
    write(REG_TPR, 0);
    write(REG_SVR, 0x100 | SPURIOUS_VECTOR as u32);
    write(REG_ESR, 0);
    write(REG_LVT_TIMER, LVT_MASKED);
    Ok(id())
}

/// This CPU's APIC ID.
pub fn id() -> u32 {
    read(REG_ID) >> 24
}

/// Signal end of interrupt.
pub fn eoi() {
    if ready() {
        write(REG_EOI, 0);
    }
}

/// Measure the APIC timer (divide by 16) against the PIT; returns its frequency.
pub fn calibrate_timer() -> Result<u64> {
    write(REG_TIMER_DIV, 0b0011);
    write(REG_LVT_TIMER, LVT_MASKED);
    write(REG_TIMER_INIT, u32::MAX);
    let hz = super::pit::measure_hz(|| read(REG_TIMER_CUR) as u64)?;
    write(REG_TIMER_INIT, 0);
    TIMER_APIC_HZ.store(hz, Ordering::Release);
    Ok(hz)
}

/// Start this CPU's periodic timer at [`TIMER_HZ`] (calibration must have run).
pub fn start_timer() -> Result<()> {
    let hz = TIMER_APIC_HZ.load(Ordering::Acquire);
    let count = hz / TIMER_HZ;
    if count == 0 || count > u32::MAX as u64 {
        return Err(err!(
            Hardware,
            "APIC timer frequency {hz} Hz cannot give {TIMER_HZ} Hz"
        ));
    }
    write(REG_TIMER_DIV, 0b0011);
    write(REG_LVT_TIMER, LVT_PERIODIC | TIMER_VECTOR as u32);
    write(REG_TIMER_INIT, count as u32);
    Ok(())
}

fn wait_icr() -> Result<()> {
    for _ in 0..1_000_000 {
        if read(REG_ICR_LO) & ICR_PENDING == 0 {
            return Ok(());
        }
        core::hint::spin_loop();
    }
    Err(err!(Timeout, "local APIC did not deliver an IPI"))
}

fn send(dest: u32, low: u32) -> Result<()> {
    wait_icr()?;
    write(REG_ICR_HI, dest << 24);
    write(REG_ICR_LO, low);
    wait_icr()
}

/// INIT IPI (assert, level).
pub fn send_init(apic_id: u32) -> Result<()> {
    send(apic_id, 0x0000_C500)?;
    // De-assert (needed by old CPUs; harmless on new ones).
    send(apic_id, 0x0000_8500)
}

/// Start-up IPI with the page number of the real-mode entry.
pub fn send_sipi(apic_id: u32, page: u8) -> Result<()> {
    send(apic_id, 0x0000_0600 | page as u32)
}

/// A fixed-delivery IPI with `vector` to the CPU with APIC id `apic_id`.
pub fn send_ipi(apic_id: u32, vector: u8) -> Result<()> {
    send(apic_id, vector as u32)
}

/// NMI to every other CPU Warden brought online (used to stop the machine).
/// CPUs never started are left alone: they may still be parked in firmware
/// code, where an NMI would triple-fault the machine.
pub fn stop_other_cpus() {
    if !ready() {
        return;
    }
    let me = super::percpu::cpu_id();
    for p in super::percpu::all() {
        if p.cpu_id != me && p.state() == super::percpu::CpuState::Online {
            // Delivery mode NMI, physical destination.
            let _ = send(p.apic_id, 0x0000_4400);
        }
    }
}
