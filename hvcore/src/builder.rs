//! Building a domain from its kernel at boot (dom0 and the boot-built
//! domains): create it, give it vCPUs and all its memory, load the kernel,
//! copy boot modules after it, write the start information, and set vCPU
//! 0's state.
//!
//! A PVH kernel (an ELF, 32- or 64-bit, with Xen's PHYS32_ENTRY note) gets
//! Xen's PVH layout, `hvm_start_info` and ACPI tables and starts in 32-bit
//! mode (`crate::domain::builder::pvh`). An ELF64 kernel without that note
//! gets Warden's own 64-bit start, below.
//!
//! Guest-physical layout of the 64-bit start:
//!
//! | range | content |
//! |---|---|
//! | `0x0000-0x1000` | unused (reserved) |
//! | `0x1000-0x7000` | boot page tables: PML4, PDPT, up to four PDs (reserved) |
//! | `0x7000-0x10000` | start info, memory map, module list, command lines (reserved) |
//! | `0x10000-` | RAM: the kernel's segments (at their ELF physical addresses), then the modules, page-aligned |

use crate::domain::Domain;
use crate::domain::builder::pvh;
use crate::hv::{Hv, NewDomain};
use crate::{Result, err};
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use warden_abi::start::*;
use warden_abi::{DomId, Pod};

/// Where the boot page tables start.
pub const PT_BASE: u64 = 0x1000;
/// Where the start information page starts.
pub const START_INFO: u64 = 0x7000;
/// End of the reserved low area; the kernel must load above.
pub const LOW_END: u64 = 0x10000;
/// Smallest domain accepted.
pub const MIN_MEM: u64 = 1 << 20;

/// What to build.
#[derive(Debug, Clone)]
pub struct BootDomain<'a> {
    pub name: String,
    pub want: Option<DomId>,
    pub privileged: bool,
    pub sid: u32,
    pub kernel: &'a [u8],
    pub cmdline: &'a str,
    /// Boot modules handed to the domain: (content, command line).
    pub modules: Vec<(&'a [u8], &'a str)>,
    pub mem_bytes: u64,
    pub vcpus: u32,
    pub weight: u32,
}

fn page_up(x: u64) -> u64 {
    x.div_ceil(4096) * 4096
}

/// Lay out the start area: returns (bytes of 0x7000..0x10000, StartInfo fields to fill).
fn start_area(
    nr_pages: u64,
    domid: DomId,
    flags: u32,
    vcpus: u32,
    cmdline: &str,
    modules: &[(u64, u64, &str)],
) -> Result<Vec<u8>> {
    let size = (LOW_END - START_INFO) as usize;
    let mut area = alloc::vec![0u8; size];
    let mut at = core::mem::size_of::<StartInfo>();
    let memmap = [
        MemmapEntry {
            addr: 0,
            size: LOW_END,
            kind: MEMMAP_RESERVED,
            reserved: 0,
        },
        MemmapEntry {
            addr: LOW_END,
            size: nr_pages * 4096 - LOW_END,
            kind: MEMMAP_RAM,
            reserved: 0,
        },
    ];
    let memmap_off = at;
    for e in &memmap {
        area[at..at + 24].copy_from_slice(e.as_bytes());
        at += 24;
    }
    let modlist_off = at;
    at += modules.len() * core::mem::size_of::<ModlistEntry>();
    let mut put_str = |area: &mut Vec<u8>, s: &str| -> Result<u64> {
        let need = s.len() + 1;
        if at + need > size {
            return Err(err!(
                InvalidInput,
                "command lines do not fit in the start information area ({size} bytes)"
            ));
        }
        area[at..at + s.len()].copy_from_slice(s.as_bytes());
        let gpa = START_INFO + at as u64;
        at += need;
        Ok(gpa)
    };
    let cmd_gpa = if cmdline.is_empty() {
        0
    } else {
        put_str(&mut area, cmdline)?
    };
    for (i, (paddr, len, args)) in modules.iter().enumerate() {
        let c = if args.is_empty() {
            0
        } else {
            put_str(&mut area, args)?
        };
        let e = ModlistEntry {
            paddr: *paddr,
            size: *len,
            cmdline_paddr: c,
            reserved: 0,
        };
        let o = modlist_off + i * 32;
        area[o..o + 32].copy_from_slice(e.as_bytes());
    }
    if at > size {
        return Err(err!(
            InvalidInput,
            "too many boot modules for the start information area"
        ));
    }
    let si = StartInfo {
        magic: START_MAGIC,
        version: START_VERSION,
        flags,
        domid,
        nr_vcpus: vcpus,
        nr_pages,
        cmdline_paddr: cmd_gpa,
        cmdline_len: cmdline.len() as u32,
        nr_modules: modules.len() as u32,
        modlist_paddr: if modules.is_empty() {
            0
        } else {
            START_INFO + modlist_off as u64
        },
        memmap_paddr: START_INFO + memmap_off as u64,
        memmap_entries: memmap.len() as u32,
        ..Default::default()
    };
    area[..core::mem::size_of::<StartInfo>()].copy_from_slice(si.as_bytes());
    Ok(area)
}

/// Identity-map the first `min(mem, BOOT_IDENTITY_MAP)` bytes with 2 MiB pages.
fn page_tables(mem: u64) -> Vec<u8> {
    let top = mem.min(BOOT_IDENTITY_MAP).div_ceil(2 << 20) * (2 << 20);
    let mut t = alloc::vec![0u8; (START_INFO - PT_BASE) as usize];
    let mut put = |gpa: u64, v: u64| {
        let o = (gpa - PT_BASE) as usize;
        t[o..o + 8].copy_from_slice(&v.to_le_bytes());
    };
    let pml4 = PT_BASE;
    let pdpt = PT_BASE + 0x1000;
    put(pml4, pdpt | 3);
    let mut a = 0u64;
    while a < top {
        let gib = a >> 30;
        let pd = PT_BASE + 0x2000 + gib * 0x1000;
        if a & ((1 << 30) - 1) == 0 {
            put(pdpt + gib * 8, pd | 3);
        }
        put(pd + ((a >> 21) & 511) * 8, a | 0x83);
        a += 2 << 20;
    }
    t
}

impl Hv {
    /// Build a domain from a PVH kernel or an ELF64 kernel; it is left paused.
    pub fn build_boot_domain(&self, b: &BootDomain<'_>) -> Result<Arc<Domain>> {
        let mem = page_up(b.mem_bytes);
        if mem < MIN_MEM {
            return Err(err!(
                InvalidInput,
                "{} bytes of memory is below the minimum of 1 MiB",
                b.mem_bytes
            ));
        }
        // (PVH: RAM above the MMIO hole moves to 4 GiB.)
        if mem > (crate::p2m::GFN_LIMIT - (pvh::HIGH_RAM >> 12)) * 4096 {
            return Err(err!(
                InvalidInput,
                "{} bytes of memory is above the guest limit",
                mem
            ));
        }
        if let pvh::Kernel::Pvh { elf, image, entry } = pvh::classify(b.kernel, mem)? {
            return self.build_pvh_domain(b, mem, elf, &image, entry);
        }
        let img = crate::elf::parse(b.kernel, LOW_END, mem)?;
        let pages = mem / 4096;
        // Modules go after the kernel.
        let mut placed = Vec::new();
        let mut at = page_up(img.end);
        for (i, (data, args)) in b.modules.iter().enumerate() {
            let end = at
                .checked_add(data.len() as u64)
                .filter(|&e| e <= mem)
                .ok_or_else(|| err!(InvalidInput, "boot module {i} ({} bytes) does not fit in {} MiB of memory after the kernel", data.len(), mem >> 20))?;
            placed.push((at, data.len() as u64, *args));
            at = page_up(end);
        }
        let flags = if b.privileged {
            SIF_PRIVILEGED | SIF_INITDOMAIN
        } else {
            0
        };
        let d = self
            .create_domain(NewDomain {
                want: b.want,
                privileged: b.privileged,
                name: b.name.clone(),
                sid: b.sid,
                max_pages: pages,
                weight: b.weight,
                handle: [0; 16],
            })
            .map_err(|e| {
                err!(
                    InvalidInput,
                    "cannot create the domain: {}",
                    warden_abi::errno::name(e)
                )
            })?;
        let r = (|| -> Result<()> {
            let area = start_area(pages, d.id, flags, b.vcpus, b.cmdline, &placed)?;
            self.set_max_vcpus(&d, b.vcpus).map_err(|e| {
                err!(
                    NoMemory,
                    "cannot create {} vCPUs: {}",
                    b.vcpus,
                    warden_abi::errno::name(e)
                )
            })?;
            for gfn in 0..pages {
                self.populate(&d, gfn).map_err(|e| {
                    err!(
                        NoMemory,
                        "cannot populate page {gfn:#x}: {}",
                        warden_abi::errno::name(e)
                    )
                })?;
            }
            let wr = |gpa: u64, data: &[u8]| {
                self.write_phys(&d, gpa, data)
                    .map_err(|f| err!(InvalidInput, "loading the domain: {f}"))
            };
            for s in &img.segments {
                let src = &b.kernel[s.offset as usize..(s.offset + s.filesz) as usize];
                wr(s.paddr, src)?;
            }
            for ((data, _), (gpa, _, _)) in b.modules.iter().zip(&placed) {
                wr(*gpa, data)?;
            }
            wr(PT_BASE, &page_tables(mem))?;
            wr(START_INFO, &area)?;
            let ctx = crate::vcpu::boot_context(img.entry, PT_BASE, START_INFO);
            let v0 = d
                .vcpu(0)
                .ok_or_else(|| err!(InvalidInput, "domain has no vCPU 0"))?;
            v0.hw.lock().set_context(&ctx);
            self.sched
                .set_initialised((d.id, 0), self.platform.now_ns());
            Ok(())
        })();
        if let Err(e) = r {
            self.destroy(&d);
            return Err(e);
        }
        Ok(d)
    }
}

impl Hv {
    fn build_pvh_domain(
        &self,
        b: &BootDomain<'_>,
        mem: u64,
        elf: &[u8],
        img: &crate::elf::Image,
        entry: u64,
    ) -> Result<Arc<Domain>> {
        use warden_abi::xen::start_info::{SIF_INITDOMAIN, SIF_PRIVILEGED};
        let flags = if b.privileged {
            SIF_PRIVILEGED | SIF_INITDOMAIN
        } else {
            0
        };
        let mods: Vec<(u64, &str)> = b
            .modules
            .iter()
            .map(|(d, a)| (d.len() as u64, *a))
            .collect();
        let layout = pvh::plan(mem, b.vcpus, flags, img, b.cmdline, &mods)?;
        let d = self
            .create_domain(NewDomain {
                want: b.want,
                privileged: b.privileged,
                name: b.name.clone(),
                sid: b.sid,
                max_pages: layout.pages(),
                weight: b.weight,
                handle: [0; 16],
            })
            .map_err(|e| {
                err!(
                    InvalidInput,
                    "cannot create the domain: {}",
                    warden_abi::errno::name(e)
                )
            })?;
        let r = (|| -> Result<()> {
            self.set_max_vcpus(&d, b.vcpus).map_err(|e| {
                err!(
                    NoMemory,
                    "cannot create {} vCPUs: {}",
                    b.vcpus,
                    warden_abi::errno::name(e)
                )
            })?;
            for &(first, n) in &layout.ram {
                for gfn in first..first + n {
                    self.populate(&d, gfn).map_err(|e| {
                        err!(
                            NoMemory,
                            "cannot populate page {gfn:#x}: {}",
                            warden_abi::errno::name(e)
                        )
                    })?;
                }
            }
            let wr = |gpa: u64, data: &[u8]| {
                self.write_phys(&d, gpa, data)
                    .map_err(|f| err!(InvalidInput, "loading the domain: {f}"))
            };
            for s in &img.segments {
                wr(
                    s.paddr,
                    &elf[s.offset as usize..(s.offset + s.filesz) as usize],
                )?;
            }
            for ((data, _), gpa) in b.modules.iter().zip(&layout.modules) {
                wr(*gpa, data)?;
            }
            wr(crate::domain::builder::acpi::ACPI_INFO, &layout.acpi.bytes)?;
            wr(layout.start_info, &layout.start_block)?;
            let ctx = crate::vcpu::pvh_boot_context(entry, layout.start_info);
            let v0 = d
                .vcpu(0)
                .ok_or_else(|| err!(InvalidInput, "domain has no vCPU 0"))?;
            v0.hw.lock().set_context(&ctx);
            self.sched
                .set_initialised((d.id, 0), self.platform.now_ns());
            Ok(())
        })();
        if let Err(e) = r {
            self.destroy(&d);
            return Err(e);
        }
        log::info!(
            "Domain {} ({}): PVH kernel, entry {entry:#x}, hvm_start_info at {:#x}, {} module(s), RSDP {:#x}",
            d.id,
            b.name,
            layout.start_info,
            b.modules.len(),
            layout.acpi.rsdp
        );
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tables_identity_map_memory() {
        let t = page_tables(5 << 30);
        let at = |gpa: u64| {
            let o = (gpa - PT_BASE) as usize;
            u64::from_le_bytes(t[o..o + 8].try_into().unwrap())
        };
        assert_eq!(at(PT_BASE), (PT_BASE + 0x1000) | 3);
        // 4 GiB cap: four PDs, each full.
        for g in 0..4 {
            assert_eq!(
                at(PT_BASE + 0x1000 + g * 8),
                (PT_BASE + 0x2000 + g * 0x1000) | 3
            );
        }
        assert_eq!(at(PT_BASE + 0x1000 + 4 * 8), 0);
        assert_eq!(at(PT_BASE + 0x2000 + 8), (2 << 20) | 0x83);
        let small = page_tables(3 << 20);
        let o = (PT_BASE + 0x2000 + 2 * 8 - PT_BASE) as usize;
        assert_eq!(
            u64::from_le_bytes(small[o..o + 8].try_into().unwrap()),
            0,
            "only 4 MiB mapped"
        );
    }

    #[test]
    fn start_area_lists_everything() {
        let a = start_area(
            1024,
            3,
            SIF_PRIVILEGED,
            2,
            "hello",
            &[(0x200000, 10, "m=1"), (0x201000, 5, "")],
        )
        .unwrap();
        let si = StartInfo::from_bytes(&a[..core::mem::size_of::<StartInfo>()]).unwrap();
        assert_eq!(si.magic, START_MAGIC);
        assert_eq!(
            (si.domid, si.nr_vcpus, si.nr_pages, si.nr_modules),
            (3, 2, 1024, 2)
        );
        let c = (si.cmdline_paddr - START_INFO) as usize;
        assert_eq!(&a[c..c + 6], b"hello\0");
        let m = (si.modlist_paddr - START_INFO) as usize;
        let m0 = ModlistEntry::from_bytes(&a[m..m + 32]).unwrap();
        assert_eq!((m0.paddr, m0.size), (0x200000, 10));
        let mc = (m0.cmdline_paddr - START_INFO) as usize;
        assert_eq!(&a[mc..mc + 4], b"m=1\0");
        let m1 = ModlistEntry::from_bytes(&a[m + 32..m + 64]).unwrap();
        assert_eq!(m1.cmdline_paddr, 0);
        let long = "x".repeat(40000);
        assert!(start_area(1024, 3, 0, 1, &long, &[]).is_err());
    }
}
