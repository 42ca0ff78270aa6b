//! Test-only behaviour, compiled in only with the `test-hooks` feature (the
//! image `cargo xtask` builds for the QEMU tests). Production images warn
//! about and ignore `test_*` options.
//!
//! - `test_exit`: write the agreed code to QEMU's debug-exit port after the
//!   ready line (or after a fatal error report).
//! - `test_fault=ud|panic|write_text|write_rodata|exec_data`: after boot,
//!   provoke that fault two calls deep, so the report must show a symbolised
//!   backtrace through `inject_fault` -> `fault_level_one` -> `fault_level_two`.
//! - Live-patch test targets: `warden_lp_test_hook(kind)`, which live-patch
//!   test payloads' hooks call (it logs the hook and the value of
//!   `warden_lp_nop_probe`), and `warden_lp_nop_probe`, a function whose
//!   first two bytes (a short jump) a NOP patch removes: it returns 1, and 2
//!   while the NOP patch is applied.

use crate::console;
use alloc::vec::Vec;
use hvcore::cmdline::{Options, TestFault};
use log::{error, info};

/// A `ret` instruction placed in writable, no-execute data.
static mut DATA_RET: [u8; 16] = [0xC3; 16];
/// Read-only data to write to.
static RODATA_BYTES: [u8; 16] = [0x5A; 16];

// Returns 1; with its first two bytes (the short jump) replaced by NOPs, 2.
core::arch::global_asm!(
    ".section .text.warden_lp_nop_probe, \"ax\", @progbits",
    ".globl warden_lp_nop_probe",
    ".type warden_lp_nop_probe, @function",
    ".p2align 4",
    "warden_lp_nop_probe:",
    "jmp 2f",
    "mov eax, 2",
    "ret",
    "2:",
    "mov eax, 1",
    "ret",
    ".size warden_lp_nop_probe, . - warden_lp_nop_probe",
    ".text",
);

unsafe extern "C" {
    fn warden_lp_nop_probe() -> u32;
}

/// Called by the hooks of live-patch test payloads (hook kind as Xen's
/// section names it: 0 load, 1 unload, 2 preapply, 3 postapply, 4
/// prerevert, 5 postrevert). Logs one line per call; returns 0 (no veto).
#[unsafe(no_mangle)]
pub extern "C" fn warden_lp_test_hook(kind: u32) -> i32 {
    let name = [
        "load",
        "unload",
        "preapply",
        "postapply",
        "prerevert",
        "postrevert",
    ]
    .get(kind as usize)
    .copied()
    .unwrap_or("?");
    // SAFETY: the probe is a leaf function of the C ABI defined above.
    let probe = unsafe { warden_lp_nop_probe() };
    info!("livepatch test hook: {name} ran (nop probe {probe})");
    0
}

pub fn after_ready(o: &Options, has_dom0: bool) {
    // Keep the live-patch test targets in the image (nothing else calls them).
    core::hint::black_box(warden_lp_test_hook as *const () as usize);
    // The ring check clears the ring: only without a dom0, which reads it.
    if !has_dom0 {
        check_console_ring();
    }
    if let Some(f) = o.test.fault {
        info!("test_fault: injecting {f:?}");
        inject_fault(f);
        error!("test_fault: {f:?} did not fault; the protection it tests is missing");
    }
}

/// Read the ring incrementally from the start, find the ready line, clear it,
/// and check a reader then sees only newer lines.
fn check_console_ring() {
    let mut all = Vec::new();
    let mut pos = 0u64;
    let mut chunk = [0u8; 512];
    loop {
        let r = console::read(pos, &mut chunk);
        if r.len == 0 {
            break;
        }
        all.extend_from_slice(&chunk[..r.len]);
        pos = r.next;
    }
    let text = core::str::from_utf8(&all).unwrap_or("");
    let ready = text.lines().any(|l| l.contains("INFO  Warden ready:"));
    console::clear_to(pos);
    info!("test: console ring after clear");
    let r = console::read(0, &mut chunk);
    let after = core::str::from_utf8(&chunk[..r.len]).unwrap_or("");
    let only_new = after.lines().count() == 1 && after.contains("test: console ring after clear");
    if ready && only_new {
        info!(
            "test: console ring OK ({} bytes read incrementally, ready line found, clear works)",
            all.len()
        );
    } else {
        error!(
            "test: console ring check FAILED (ready line found: {ready}, clear works: {only_new})"
        );
    }
}

#[inline(never)]
fn inject_fault(f: TestFault) {
    fault_level_one(f);
    core::hint::black_box(());
}

#[inline(never)]
fn fault_level_one(f: TestFault) {
    fault_level_two(f);
    core::hint::black_box(());
}

#[inline(never)]
fn fault_level_two(f: TestFault) {
    match f {
        // SAFETY: deliberately raises #UD, which the IDT reports as fatal.
        TestFault::InvalidOpcode => unsafe { core::arch::asm!("ud2") },
        TestFault::Panic => panic!("injected panic (test_fault=panic)"),
        TestFault::WriteText => {
            let target = fault_level_two as *const () as *mut u8;
            // SAFETY: deliberately writes to our own text; W^X must make it fault.
            unsafe { core::ptr::write_volatile(target, 0xCC) };
        }
        TestFault::WriteRodata => {
            let target = RODATA_BYTES.as_ptr() as *mut u8;
            // SAFETY: deliberately writes to read-only data; it must fault.
            unsafe { core::ptr::write_volatile(target, 0) };
        }
        TestFault::ExecData => {
            // Written at run time, so the compiler must keep it in writable data.
            // SAFETY: DATA_RET is only touched here, on one CPU.
            unsafe { (&raw mut DATA_RET).cast::<u8>().write_volatile(0xC3) };
            // SAFETY: deliberately jumps into no-execute data; it must fault
            // (were it executed, it is a plain `ret`).
            let f: extern "C" fn() =
                unsafe { core::mem::transmute((&raw const DATA_RET) as *const u8) };
            f();
        }
    }
    core::hint::black_box(());
}
