//! The PVH boot protocol (Xen 4.17's, docs/misc/pvh.pandoc): which kernels
//! are PVH kernels, the guest-physical layout libxc/libxl give a PVH domU,
//! the `hvm_start_info` block and the 32-bit entry state.
//!
//! Layout (guest-physical), for `mem` bytes of RAM:
//!
//! | range | content | memory map |
//! |---|---|---|
//! | `0 - min(mem, 0xF0000000)` | RAM: the kernel's segments at their ELF physical addresses, then the modules (page-aligned, module 0 is the initrd), then the start-info block (`hvm_start_info`, command line, module list and module command lines, memory map) | RAM |
//! | `0xFC000000 -` | ACPI: `acpi_info` page, tables, RSDP page ([`super::acpi`]) | ACPI |
//! | `0xFEFF8000 - 0xFF000000` | libxl's 8 special pages (xenstore 0xFEFFC, console 0xFEFFF); not populated here | reserved |
//! | `4 GiB -` | the RAM above the MMIO hole, if `mem` > 0xF0000000 | RAM |
//!
//! vCPU 0 starts at the kernel's `XEN_ELFNOTE_PHYS32_ENTRY` in 32-bit
//! protected mode, paging off, `EBX` = the `hvm_start_info` address
//! ([`crate::vcpu::pvh_boot_context`]).

use super::acpi;
use super::bzimage;
use super::notes;
use crate::elf::Image;
use crate::{Result, err};
use alloc::vec::Vec;
use warden_abi::Pod;
use warden_abi::xen::start_info::*;

/// Start of the MMIO hole below 4 GiB (RAM above it moves to 4 GiB).
pub const MMIO_HOLE_START: u64 = 0xF000_0000;
/// libxl's special pages: start and end (exclusive).
pub const SPECIAL_PAGES: (u64, u64) = (0xFEFF_8000, 0xFF00_0000);
/// Where RAM above the hole starts.
pub const HIGH_RAM: u64 = 1 << 32;

/// A PVH kernel: the ELF (the bzImage payload, for a bzImage), its image
/// and its 32-bit entry point.
#[derive(Debug, Clone)]
pub struct Kernel<'a> {
    pub elf: &'a [u8],
    pub image: Image,
    pub entry: u64,
}

/// Check `file` for a domain of `mem` bytes. Refuses (with the reason)
/// what cannot be loaded: compressed bzImages, kernels without the
/// PHYS32_ENTRY note, malformed images, an entry outside executable code.
pub fn classify(file: &[u8], mem: u64) -> Result<Kernel<'_>> {
    let elf = match bzimage::detect(file) {
        None => file,
        Some(Err(why)) => return Err(err!(InvalidInput, "bzImage kernel: {why}")),
        Some(Ok(p)) if p.compression == bzimage::Compression::None => p.data,
        Some(Ok(p)) => {
            return Err(err!(
                InvalidInput,
                "bzImage kernel with a {} payload: Warden loads the ELF vmlinux inside it; unpack it first (`cargo xtask run` does that for --module files)",
                p.compression.name()
            ));
        }
    };
    let low = mem.min(MMIO_HOLE_START);
    let image = crate::elf::parse_any(elf, 0, low)?;
    let n = notes::parse(elf, &image.notes)?;
    match n.phys32_entry {
        Some(entry) => {
            image.check_entry(entry).map_err(|_| {
                err!(
                    InvalidInput,
                    "PHYS32_ENTRY {entry:#x} is not in an executable segment"
                )
            })?;
            Ok(Kernel { elf, image, entry })
        }
        None => Err(err!(
            InvalidInput,
            "ELF{} kernel without a Xen PHYS32_ENTRY note (not a PVH kernel)",
            image.class
        )),
    }
}

/// A planned PVH domain.
#[derive(Debug, Clone)]
pub struct Layout {
    /// RAM to populate: (first gfn, number of pages).
    pub ram: Vec<(u64, u64)>,
    /// Where each module goes.
    pub modules: Vec<u64>,
    /// Address of `hvm_start_info` (the start of `start_block`).
    pub start_info: u64,
    pub start_block: Vec<u8>,
    pub acpi: acpi::Tables,
    pub memmap: Vec<HvmMemmapTableEntry>,
}

impl Layout {
    /// Every page the domain gets (RAM + ACPI).
    pub fn pages(&self) -> u64 {
        self.ram.iter().map(|r| r.1).sum()
    }
}

fn page_up(x: u64) -> u64 {
    x.div_ceil(4096) * 4096
}

/// Plan a PVH domain of `mem` bytes with `vcpus` vCPUs whose kernel
/// occupies `image`; `modules` are (size, command line), module 0 the initrd.
pub fn plan(
    mem: u64,
    vcpus: u32,
    flags: u32,
    image: &Image,
    cmdline: &str,
    modules: &[(u64, &str)],
) -> Result<Layout> {
    let mem = page_up(mem);
    let low = mem.min(MMIO_HOLE_START);
    let high = mem - low;
    let acpi = acpi::build(vcpus);
    let mut memmap = alloc::vec![HvmMemmapTableEntry {
        addr: 0,
        size: low,
        kind: XEN_HVM_MEMMAP_TYPE_RAM,
        reserved: 0,
    }];
    memmap.push(HvmMemmapTableEntry {
        addr: acpi::ACPI_INFO,
        size: acpi.end() - acpi::ACPI_INFO,
        kind: XEN_HVM_MEMMAP_TYPE_ACPI,
        reserved: 0,
    });
    memmap.push(HvmMemmapTableEntry {
        addr: SPECIAL_PAGES.0,
        size: SPECIAL_PAGES.1 - SPECIAL_PAGES.0,
        kind: XEN_HVM_MEMMAP_TYPE_RESERVED,
        reserved: 0,
    });
    if high > 0 {
        memmap.push(HvmMemmapTableEntry {
            addr: HIGH_RAM,
            size: high,
            kind: XEN_HVM_MEMMAP_TYPE_RAM,
            reserved: 0,
        });
    }
    let too_big = |what: &str, end: u64| {
        err!(
            InvalidInput,
            "{what} ends at {end:#x}, beyond the {} MiB of RAM below the MMIO hole",
            low >> 20
        )
    };
    let mut at = page_up(image.end);
    let mut placed = Vec::new();
    for (i, (size, _)) in modules.iter().enumerate() {
        let end = at.saturating_add(*size);
        if end > low {
            return Err(too_big(
                &alloc::format!("boot module {i} ({size} bytes)"),
                end,
            ));
        }
        placed.push(at);
        at = page_up(end);
    }
    // The start-info block: struct, command line, module list, module
    // command lines, memory map (libxc's order, strings NUL-terminated).
    let start_info = at;
    let mut blk = alloc::vec![0u8; core::mem::size_of::<HvmStartInfo>()];
    let put_str = |blk: &mut Vec<u8>, s: &str| -> u64 {
        let gpa = start_info + blk.len() as u64;
        blk.extend_from_slice(s.as_bytes());
        blk.push(0);
        while !blk.len().is_multiple_of(8) {
            blk.push(0);
        }
        gpa
    };
    let cmdline_paddr = if cmdline.is_empty() {
        0
    } else {
        put_str(&mut blk, cmdline)
    };
    let mut entries = Vec::new();
    for ((size, args), gpa) in modules.iter().zip(&placed) {
        let c = if args.is_empty() {
            0
        } else {
            put_str(&mut blk, args)
        };
        entries.push(HvmModlistEntry {
            paddr: *gpa,
            size: *size,
            cmdline_paddr: c,
            reserved: 0,
        });
    }
    let modlist_paddr = start_info + blk.len() as u64;
    for e in &entries {
        blk.extend_from_slice(e.as_bytes());
    }
    // The initial domain gets version 0 without the memory map, as Xen's
    // PVH dom0 builder writes it (the kernel asks XENMEM_memory_map); a
    // domU version 1 with the map, as libxl's.
    let dom0 = flags & SIF_INITDOMAIN != 0;
    let (version, memmap_paddr, memmap_entries) = if dom0 {
        (0, 0, 0)
    } else {
        let at = start_info + blk.len() as u64;
        for e in &memmap {
            blk.extend_from_slice(e.as_bytes());
        }
        (HVM_START_INFO_VERSION, at, memmap.len() as u32)
    };
    let si = HvmStartInfo {
        magic: HVM_START_MAGIC_VALUE,
        version,
        flags,
        nr_modules: modules.len() as u32,
        modlist_paddr: if modules.is_empty() { 0 } else { modlist_paddr },
        cmdline_paddr,
        rsdp_paddr: acpi.rsdp,
        memmap_paddr,
        memmap_entries,
        reserved: 0,
    };
    blk[..core::mem::size_of::<HvmStartInfo>()].copy_from_slice(si.as_bytes());
    let end = start_info + blk.len() as u64;
    if end > low {
        return Err(too_big("the start information", end));
    }
    let mut ram = alloc::vec![(0, low / 4096)];
    ram.push((acpi::ACPI_INFO / 4096, acpi.bytes.len() as u64 / 4096));
    if high > 0 {
        ram.push((HIGH_RAM / 4096, high / 4096));
    }
    Ok(Layout {
        ram,
        modules: placed,
        start_info,
        start_block: blk,
        acpi,
        memmap,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use alloc::vec::Vec;

    /// A PVH ELF: one RX segment at `paddr` (code `code`), a note segment
    /// with PHYS32_ENTRY = `entry` (`desc` bytes: 4 or 8); class 32 or 64.
    pub fn pvh_elf(class: u8, paddr: u64, code: &[u8], entry: u64, desc: usize) -> Vec<u8> {
        let note = if desc == 4 {
            super::notes::tests::note(b"Xen\0", 18, &(entry as u32).to_le_bytes())
        } else {
            super::notes::tests::note(b"Xen\0", 18, &entry.to_le_bytes())
        };
        let (eh, ph) = if class == 64 { (64, 56) } else { (52, 32) };
        let data_at = eh + 2 * ph;
        let note_at = data_at + code.len();
        let mut f = alloc::vec![0u8; data_at];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = if class == 64 { 2 } else { 1 };
        f[5] = 1;
        f[6] = 1;
        f[16..18].copy_from_slice(&2u16.to_le_bytes());
        f[18..20].copy_from_slice(&62u16.to_le_bytes());
        let w = |f: &mut Vec<u8>, o: usize, v: u64, n: usize| {
            f[o..o + n].copy_from_slice(&v.to_le_bytes()[..n]);
        };
        // (type, flags, offset, paddr, size)
        let segs = [
            (1u64, 5u64, data_at as u64, paddr, code.len() as u64),
            (4, 4, note_at as u64, 0, note.len() as u64),
        ];
        if class == 64 {
            w(&mut f, 24, 0xffff_ffff_8100_0000, 8);
            w(&mut f, 32, eh as u64, 8);
            w(&mut f, 52, eh as u64, 2);
            w(&mut f, 54, ph as u64, 2);
            w(&mut f, 56, 2, 2);
            for (i, (t, fl, off, pa, sz)) in segs.iter().enumerate() {
                let o = eh + i * ph;
                w(&mut f, o, *t, 4);
                w(&mut f, o + 4, *fl, 4);
                w(&mut f, o + 8, *off, 8);
                w(&mut f, o + 16, *pa, 8);
                w(&mut f, o + 24, *pa, 8);
                w(&mut f, o + 32, *sz, 8);
                w(&mut f, o + 40, *sz, 8);
            }
        } else {
            w(&mut f, 24, entry, 4);
            w(&mut f, 28, eh as u64, 4);
            w(&mut f, 40, eh as u64, 2);
            w(&mut f, 42, ph as u64, 2);
            w(&mut f, 44, 2, 2);
            for (i, (t, fl, off, pa, sz)) in segs.iter().enumerate() {
                let o = eh + i * ph;
                w(&mut f, o, *t, 4);
                w(&mut f, o + 4, *off, 4);
                w(&mut f, o + 8, *pa, 4);
                w(&mut f, o + 12, *pa, 4);
                w(&mut f, o + 16, *sz, 4);
                w(&mut f, o + 20, *sz, 4);
                w(&mut f, o + 24, *fl, 4);
            }
        }
        f.extend_from_slice(code);
        f.extend_from_slice(&note);
        f
    }

    #[test]
    fn classifies_elf32_and_elf64_with_both_note_sizes() {
        for class in [32, 64] {
            for desc in [4, 8] {
                let f = pvh_elf(class, 0x100000, &[0x90; 64], 0x100010, desc);
                let Kernel { image, entry, .. } = classify(&f, 16 << 20).unwrap();
                assert_eq!(entry, 0x100010, "class {class} desc {desc}");
                assert_eq!(image.class, class);
                assert_eq!((image.start, image.end), (0x100000, 0x100040));
            }
        }
    }

    #[test]
    fn refuses_bad_kernels_with_a_reason() {
        let msg = |f: &[u8]| alloc::format!("{}", classify(f, 16 << 20).unwrap_err());
        // Entry outside the code.
        let f = pvh_elf(64, 0x100000, &[0x90; 64], 0x200000, 8);
        assert!(
            msg(&f).contains("not in an executable segment"),
            "{}",
            msg(&f)
        );
        // An ELF64 without the note (no other start protocol exists).
        let plain = crate::elf::tests::tiny(0x100000, &[0xf4; 16], 0x1000);
        assert!(
            msg(&plain).contains("ELF64 kernel without a Xen PHYS32_ENTRY"),
            "{}",
            msg(&plain)
        );
        // ELF32 without the note.
        let mut f = pvh_elf(32, 0x100000, &[0x90; 64], 0x100000, 4);
        let n = f.len() - 20;
        f[n + 8] = 17; // note type 17, not PHYS32_ENTRY
        assert!(
            msg(&f).contains("without a Xen PHYS32_ENTRY"),
            "{}",
            msg(&f)
        );
        // Bad note descriptor size.
        let mut f = pvh_elf(64, 0x100000, &[0x90; 64], 0x100000, 8);
        let n = f.len() - 24;
        f[n + 4] = 6;
        assert!(msg(&f).contains("6-byte descriptor"), "{}", msg(&f));
        // Compressed bzImage.
        let bz = super::bzimage::tests::bzimage(b"\xfd7zXZ\0data");
        assert!(msg(&bz).contains("xz payload"), "{}", msg(&bz));
        // A bzImage whose payload is an uncompressed PVH ELF loads.
        let inner = pvh_elf(64, 0x100000, &[0x90; 64], 0x100000, 8);
        let bz = super::bzimage::tests::bzimage(&inner);
        assert!(classify(&bz, 16 << 20).is_ok());
        // Kernel beyond memory; not ELF at all.
        let f = pvh_elf(64, 0x1000000, &[0x90; 64], 0x1000000, 8);
        assert!(msg(&f).contains("outside guest memory"), "{}", msg(&f));
        assert!(
            msg(b"MZ not an elf file at all, really, no, it is long enough to be checked ..")
                .contains("bad magic")
        );
    }

    fn si_of(l: &Layout) -> HvmStartInfo {
        HvmStartInfo::from_bytes(&l.start_block[..56]).unwrap()
    }

    fn at(l: &Layout, gpa: u64, len: usize) -> &[u8] {
        let o = (gpa - l.start_info) as usize;
        &l.start_block[o..o + len]
    }

    #[test]
    fn start_info_lists_cmdline_modules_memmap_rsdp() {
        let f = pvh_elf(64, 0x100000, &[0x90; 64], 0x100000, 8);
        let Kernel { image, .. } = classify(&f, 256 << 20).unwrap();
        let l = plan(
            256 << 20,
            2,
            0,
            &image,
            "console=hvc0",
            &[(5000, "initrd"), (10, "")],
        )
        .unwrap();
        assert_eq!(l.modules, [0x101000, 0x103000]);
        assert_eq!(l.start_info, 0x104000);
        let si = si_of(&l);
        assert_eq!(si.magic, 0x336e_c578);
        assert_eq!((si.version, si.flags, si.nr_modules), (1, 0, 2));
        assert_eq!(at(&l, si.cmdline_paddr, 13), b"console=hvc0\0");
        assert_eq!(si.rsdp_paddr, l.acpi.rsdp);
        let m0 = HvmModlistEntry::from_bytes(at(&l, si.modlist_paddr, 32)).unwrap();
        assert_eq!((m0.paddr, m0.size), (0x101000, 5000));
        assert_eq!(at(&l, m0.cmdline_paddr, 7), b"initrd\0");
        let m1 = HvmModlistEntry::from_bytes(at(&l, si.modlist_paddr + 32, 32)).unwrap();
        assert_eq!((m1.paddr, m1.size, m1.cmdline_paddr), (0x103000, 10, 0));
        assert_eq!(si.memmap_entries, 3);
        let mm: Vec<(u64, u64, u32)> = (0..3)
            .map(|i| {
                let e =
                    HvmMemmapTableEntry::from_bytes(at(&l, si.memmap_paddr + 24 * i, 24)).unwrap();
                (e.addr, e.size, e.kind)
            })
            .collect();
        assert_eq!(
            mm,
            [
                (0, 256 << 20, XEN_HVM_MEMMAP_TYPE_RAM),
                (
                    0xFC00_0000,
                    l.acpi.end() - 0xFC00_0000,
                    XEN_HVM_MEMMAP_TYPE_ACPI
                ),
                (0xFEFF_8000, 0x8000, XEN_HVM_MEMMAP_TYPE_RESERVED),
            ]
        );
        assert_eq!(
            l.ram,
            [
                (0, (256 << 20) / 4096),
                (0xFC000, l.acpi.bytes.len() as u64 / 4096)
            ]
        );
        // No command line, no modules: zero pointers.
        let l = plan(
            16 << 20,
            1,
            SIF_PRIVILEGED | SIF_INITDOMAIN,
            &image,
            "",
            &[],
        )
        .unwrap();
        let si = si_of(&l);
        assert_eq!(
            (si.cmdline_paddr, si.modlist_paddr, si.nr_modules),
            (0, 0, 0)
        );
        assert_eq!(si.flags, 3);
        // The initial domain's start info is version 0 without a memory map
        // (as Xen's PVH dom0 builder); its map is XENMEM_memory_map's.
        assert_eq!((si.version, si.memmap_paddr, si.memmap_entries), (0, 0, 0));
        assert_eq!(si.rsdp_paddr, l.acpi.rsdp);
        assert_eq!(l.memmap.len(), 3);
    }

    #[test]
    fn memory_above_the_hole_moves_to_4g() {
        let f = pvh_elf(64, 0x100000, &[0x90; 64], 0x100000, 8);
        let Kernel { image, .. } = classify(&f, 16 << 20).unwrap();
        let l = plan(0x1_0000_0000, 1, 0, &image, "", &[]).unwrap();
        let last = l.memmap.last().unwrap();
        assert_eq!(
            (last.addr, last.size, last.kind),
            (1 << 32, 0x1000_0000, XEN_HVM_MEMMAP_TYPE_RAM)
        );
        assert_eq!(l.memmap[0].size, MMIO_HOLE_START);
        assert_eq!(
            l.pages(),
            (1u64 << 32) / 4096 + l.acpi.bytes.len() as u64 / 4096
        );
        // Modules that do not fit are refused.
        let e = plan(2 << 20, 1, 0, &image, "", &[(4 << 20, "initrd")]).unwrap_err();
        assert!(alloc::format!("{e}").contains("boot module 0"), "{e}");
    }
}
