//! Building a domain from its kernel at boot (dom0 and the boot-built
//! domains), as Xen 4.17 builds a PVH domain: the kernel is an ELF (32- or
//! 64-bit) with Xen's PHYS32_ENTRY note (or a bzImage around one); the
//! domain gets Xen's PVH layout, `hvm_start_info`, memory map and ACPI
//! tables, and vCPU 0 starts in 32-bit mode (`crate::domain::builder`).
//! Create it, give it vCPUs and all its memory, load the kernel at its
//! physical addresses, copy the boot modules after it, write the start
//! information and the ACPI tables, set vCPU 0's state.

use crate::domain::Domain;
use crate::domain::builder::pvh;
use crate::hv::{Hv, NewDomain};
use crate::{Result, err};
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use warden_abi::DomId;

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

impl Hv {
    /// Build a domain from a PVH kernel; it is left paused.
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
        let pvh::Kernel { elf, image, entry } = pvh::classify(b.kernel, mem)?;
        self.build_pvh_domain(b, mem, elf, &image, entry)
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
            if !b.privileged {
                self.attach_boot_console(&d).map_err(|e| {
                    err!(
                        NoMemory,
                        "cannot give the domain its console ring: {}",
                        warden_abi::errno::name(e)
                    )
                })?;
            }
            // What XENMEM_memory_map returns: the map hvm_start_info lists.
            *d.hvm.e820.lock() = layout
                .memmap
                .iter()
                .map(|e| warden_abi::memory::E820Entry::new(e.addr, e.size, e.kind))
                .collect();
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
