//! The hypervisor's page tables: an identity map of all memory with W^X.
//!
//! RAM and firmware areas are mapped write-back, the rest (MMIO holes, APIC)
//! uncacheable; everything is no-execute except the image's text. The 2 MiB
//! regions overlapping the image are mapped with 4 KiB pages so that text is
//! read-only + executable, rodata read-only, data/bss read-write; page 0 is
//! left unmapped to catch null pointers. CR0.WP makes the read-only mappings
//! binding on the hypervisor itself.

use crate::image::Layout;
use crate::mem::alloc_frames;
use hvcore::frames::Zone;
use hvcore::memmap::{MemoryRegion, PhysRange};
use hvcore::{PAGE_SIZE, Result, err};

const P: u64 = 1;
const RW: u64 = 1 << 1;
const PWT: u64 = 1 << 3;
const PCD: u64 = 1 << 4;
const PS: u64 = 1 << 7;
const NX: u64 = 1 << 63;
const ADDR: u64 = 0x000f_ffff_ffff_f000;
const HUGE: u64 = 2 << 20;

static CR3: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// The hypervisor's CR3 (after [`build_and_activate`]).
pub fn cr3() -> u64 {
    CR3.load(core::sync::atomic::Ordering::Acquire)
}

fn table(phys: u64) -> &'static mut [u64; 512] {
    // SAFETY: page-table frames are identity-mapped, 4 KiB aligned, owned by
    // this module, and only modified by the boot CPU (before the APs run or
    // while they are parked), so no other reference is live.
    unsafe { &mut *(phys as *mut [u64; 512]) }
}

fn new_table() -> Result<u64> {
    // The PML4 must be below 4 GiB: APs load CR3 from 32-bit code. Keep all
    // tables there for simplicity.
    alloc_frames(1, Zone::BELOW_4G)
}

/// Get (creating) the next-level table under `entry`.
fn next(entry: &mut u64) -> Result<u64> {
    if *entry & P == 0 {
        *entry = new_table()? | P | RW;
    }
    if *entry & PS != 0 {
        return Err(err!(InvalidInput, "expected a table, found a large page"));
    }
    Ok(*entry & ADDR)
}

/// Summary of what was mapped.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub top: u64,
    pub small_pages: u64,
}

/// Build the identity map for `map` with the image's W^X layout and load it.
/// `small` ranges (the live-patch pool) are mapped with 4 KiB pages,
/// read-write and no-execute, so their pages can change rights one by one.
pub fn build_and_activate(
    map: &[MemoryRegion],
    image: &Layout,
    small: &[PhysRange],
) -> Result<Summary> {
    // RAM (and ACPI areas) wherever it is; other reserved ranges (MMIO
    // holes) only below 4 GiB, which is mapped whole.
    let top = map
        .iter()
        .filter(|r| r.kind.is_ram())
        .map(|r| r.range.end)
        .max()
        .unwrap_or(0)
        .max(1 << 32)
        .next_multiple_of(1 << 30);
    if top > 1 << 46 {
        return Err(err!(
            Unsupported,
            "memory map reaches {top:#x}; at most 64 TiB is supported"
        ));
    }
    let pml4 = new_table()?;
    let mut small_pages = 0;
    let mut chunk = 0u64;
    while chunk < top {
        let span = PhysRange::with_len(chunk, HUGE);
        let ram = map
            .iter()
            .any(|r| r.kind.is_ram() && r.range.overlaps(&span));
        let cache = if ram { 0 } else { PCD | PWT };
        let pdpt = next(&mut table(pml4)[(chunk >> 39) as usize & 511])?;
        let pd = next(&mut table(pdpt)[(chunk >> 30) as usize & 511])?;
        let pde = &mut table(pd)[(chunk >> 21) as usize & 511];
        if span.overlaps(&image.image) || chunk == 0 || small.iter().any(|r| r.overlaps(&span)) {
            let pt = next(pde)?;
            for i in 0..512u64 {
                let a = chunk + i * PAGE_SIZE;
                let flags = if a == 0 {
                    0
                } else if image.text.contains(a) {
                    P
                } else if image.rodata.contains(a) {
                    P | NX
                } else {
                    P | RW | NX
                };
                table(pt)[i as usize] = if flags == 0 { 0 } else { a | flags | cache };
                small_pages += 1;
            }
        } else {
            *pde = chunk | P | RW | PS | NX | cache;
        }
        chunk += HUGE;
    }
    // SAFETY: the new tables map everything the old ones did that is in use
    // (the image, stacks, heap, boot structures, MMIO) at the same addresses.
    unsafe { core::arch::asm!("mov cr3, {}", in(reg) pml4, options(nostack, preserves_flags)) };
    CR3.store(pml4, core::sync::atomic::Ordering::Release);
    Ok(Summary { top, small_pages })
}

/// Find the 4 KiB entry for `addr` (which must be in a region mapped with small pages).
fn pte(addr: u64) -> Result<&'static mut u64> {
    let mut t = cr3() & ADDR;
    for shift in [39u64, 30, 21] {
        let e = table(t)[(addr >> shift) as usize & 511];
        if e & P == 0 || e & PS != 0 {
            return Err(err!(
                InvalidInput,
                "{addr:#x} is not mapped with 4 KiB pages"
            ));
        }
        t = e & ADDR;
    }
    Ok(&mut table(t)[(addr >> 12) as usize & 511])
}

/// Allow or forbid execution of the 4 KiB page at `addr` (the AP start-up
/// trampoline in low memory; W^X is restored when the APs are up).
pub fn set_executable(addr: u64, exec: bool) -> Result<()> {
    let e = pte(addr)?;
    *e = if exec { *e & !NX } else { *e | NX };
    // SAFETY: invalidating a TLB entry has no other effect.
    unsafe { core::arch::asm!("invlpg [{}]", in(reg) addr, options(nostack, preserves_flags)) };
    Ok(())
}

/// The flags of the 4 KiB mapping at `addr`: (present, writable, executable).
pub fn flags(addr: u64) -> Result<(bool, bool, bool)> {
    let e = *pte(addr)?;
    Ok((e & P != 0, e & RW != 0, e & NX == 0))
}

/// Set the rights of the 4 KiB page at `addr` (mapped with small pages):
/// `write` and `exec` are never both set (W^X). Invalidates this CPU's TLB
/// entry; other CPUs flush theirs in the live-patch rendezvous before they
/// can reach the page.
pub fn set_page(addr: u64, write: bool, exec: bool) -> Result<()> {
    if write && exec {
        return Err(err!(
            InvalidInput,
            "{addr:#x}: a page is never writable and executable"
        ));
    }
    let e = pte(addr)?;
    let mut v = (*e & ADDR) | P;
    if write {
        v |= RW;
    }
    if !exec {
        v |= NX;
    }
    *e = v;
    // SAFETY: invalidating a TLB entry has no other effect.
    unsafe { core::arch::asm!("invlpg [{}]", in(reg) addr, options(nostack, preserves_flags)) };
    Ok(())
}

/// Flush this CPU's TLB (non-global entries: all of Warden's).
pub fn flush_tlb() {
    // SAFETY: reloading CR3 with its current value only flushes the TLB.
    unsafe {
        core::arch::asm!("mov {t}, cr3", "mov cr3, {t}", t = out(reg) _, options(nostack, preserves_flags))
    };
}

/// Virtual address of the text alias: two 4 KiB pages outside the identity
/// map (which ends at 64 TiB at most), mapped only while live patching
/// writes text.
pub const ALIAS_VA: u64 = 0x0000_7f00_0000_0000;

static ALIAS_PT: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Create the page tables of the text alias (no page mapped). Boot CPU,
/// before the APs start.
pub fn init_alias() -> Result<()> {
    let pml4 = cr3() & ADDR;
    let pdpt = next(&mut table(pml4)[(ALIAS_VA >> 39) as usize & 511])?;
    let pd = next(&mut table(pdpt)[(ALIAS_VA >> 30) as usize & 511])?;
    let pt = next(&mut table(pd)[(ALIAS_VA >> 21) as usize & 511])?;
    ALIAS_PT.store(pt, core::sync::atomic::Ordering::Release);
    Ok(())
}

/// Write `bytes` to the image's text at `addr` through a temporary
/// read-write, no-execute alias of its (at most two) pages: mapped, written,
/// unmapped and invalidated here. The text mapping itself stays read-only
/// and executable. A range outside the image's text is refused (release
/// builds too).
///
/// # Safety
/// Every other CPU must be held where it runs none of the bytes written and
/// cannot start to (live patching's rendezvous), and the text must be valid
/// code once written, for every CPU that runs it afterwards.
pub unsafe fn write_text_via_alias(addr: u64, bytes: &[u8]) -> Result<()> {
    let pt = ALIAS_PT.load(core::sync::atomic::Ordering::Acquire);
    if pt == 0 {
        return Err(err!(InvalidInput, "text alias not initialised"));
    }
    if bytes.is_empty() {
        return Ok(());
    }
    let text = crate::image::layout().text;
    let end = addr.checked_add(bytes.len() as u64);
    if addr < text.start || end.is_none_or(|e| e > text.end) {
        return Err(err!(
            InvalidInput,
            "text write of {} bytes at {addr:#x} is outside the image's text",
            bytes.len()
        ));
    }
    let first = addr & !(PAGE_SIZE - 1);
    let last = (addr + bytes.len() as u64 - 1) & !(PAGE_SIZE - 1);
    let pages = if last == first { 1 } else { 2 };
    if last > first + PAGE_SIZE {
        return Err(err!(
            InvalidInput,
            "text write of {} bytes spans more than two pages",
            bytes.len()
        ));
    }
    let t = table(pt);
    for i in 0..pages {
        t[i as usize] = (first + i * PAGE_SIZE) | P | RW | NX;
        let va = ALIAS_VA + i * PAGE_SIZE;
        // SAFETY: invalidating a TLB entry has no other effect.
        unsafe { core::arch::asm!("invlpg [{}]", in(reg) va, options(nostack, preserves_flags)) };
    }
    let dst = ALIAS_VA + (addr - first);
    // SAFETY: [dst, dst + len) lies in the alias pages just mapped
    // read-write onto the text frames; no other CPU runs hypervisor code
    // (they are held), so nothing executes the bytes while they change.
    unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), dst as *mut u8, bytes.len()) };
    for i in 0..pages {
        t[i as usize] = 0;
        let va = ALIAS_VA + i * PAGE_SIZE;
        // SAFETY: invalidating a TLB entry has no other effect.
        unsafe { core::arch::asm!("invlpg [{}]", in(reg) va, options(nostack, preserves_flags)) };
    }
    Ok(())
}
