//! ACPI discovery through the `acpi` crate: the RSDP (from the boot loader,
//! else a BIOS-area scan), then the MADT's processors and I/O APICs.

use acpi::madt::{Madt, MadtEntry};
use acpi::{AcpiHandler, AcpiTables, PhysicalMapping};
use alloc::string::String;
use alloc::vec::Vec;
use core::ptr::NonNull;
use hvcore::{Result, err};

/// ACPI tables are reached through the identity map.
#[derive(Debug, Clone, Copy)]
struct Identity;

impl AcpiHandler for Identity {
    unsafe fn map_physical_region<T>(&self, phys: usize, size: usize) -> PhysicalMapping<Self, T> {
        // Address 0 is never a table; a dangling pointer there faults cleanly on use.
        let virt = NonNull::new(phys as *mut T).unwrap_or(NonNull::dangling());
        // SAFETY: physical memory is identity-mapped; the acpi crate reads within `size`.
        unsafe { PhysicalMapping::new(phys, virt, size, size, *self) }
    }

    fn unmap_physical_region<T>(_region: &PhysicalMapping<Self, T>) {}
}

/// A processor from the MADT.
#[derive(Debug, Clone, Copy)]
pub struct Cpu {
    pub apic_id: u32,
    /// The ACPI processor id (the MADT entry's processor UID).
    pub acpi_id: u32,
    /// Usable now (enabled) or can be brought online.
    pub usable: bool,
}

/// An I/O APIC from the MADT.
#[derive(Debug, Clone, Copy)]
pub struct IoApic {
    pub id: u8,
    pub address: u32,
    pub gsi_base: u32,
}

/// What the firmware says about the machine.
#[derive(Debug, Clone)]
pub struct Platform {
    /// Whether the boot loader gave the RSDP (else a BIOS scan found it).
    pub rsdp_from_loader: bool,
    pub oem: String,
    pub lapic_address: u64,
    pub cpus: Vec<Cpu>,
    pub ioapics: Vec<IoApic>,
    pub overrides: Vec<(u8, u32)>,
}

/// Find and read the ACPI tables.
pub fn discover(rsdp_hint: Option<u64>) -> Result<Platform> {
    // SAFETY: the identity map covers the BIOS areas and ACPI tables (this
    // runs on the boot page tables, which map the first 4 GiB).
    let tables = unsafe {
        match rsdp_hint {
            Some(a) => AcpiTables::from_rsdp(Identity, a as usize),
            None => AcpiTables::search_for_rsdp_bios(Identity),
        }
    }
    .map_err(|e| {
        err!(
            Unsupported,
            "no usable ACPI tables ({e:?}); Warden needs ACPI (RSDP, MADT)"
        )
    })?;
    let madt = tables
        .find_table::<Madt>()
        .map_err(|e| err!(Unsupported, "ACPI MADT not found ({e:?})"))?;
    let oem = String::from_utf8_lossy(&madt.get().header.oem_id)
        .trim()
        .into();
    let mut p = Platform {
        rsdp_from_loader: rsdp_hint.is_some(),
        oem,
        lapic_address: madt.get().local_apic_address as u64,
        cpus: Vec::new(),
        ioapics: Vec::new(),
        overrides: Vec::new(),
    };
    for e in madt.get().entries() {
        match e {
            MadtEntry::LocalApic(l) => {
                let flags = l.flags;
                p.cpus.push(Cpu {
                    apic_id: l.apic_id as u32,
                    acpi_id: l.processor_id as u32,
                    usable: flags & 0b11 != 0,
                })
            }
            MadtEntry::LocalX2Apic(l) => {
                let (flags, id, uid) = (l.flags, l.x2apic_id, l.processor_uid);
                if !p.cpus.iter().any(|c| c.apic_id == id) {
                    p.cpus.push(Cpu {
                        apic_id: id,
                        acpi_id: uid,
                        usable: flags & 0b11 != 0,
                    })
                }
            }
            MadtEntry::IoApic(io) => p.ioapics.push(IoApic {
                id: io.io_apic_id,
                address: io.io_apic_address,
                gsi_base: io.global_system_interrupt_base,
            }),
            MadtEntry::InterruptSourceOverride(o) => {
                p.overrides.push((o.irq, o.global_system_interrupt))
            }
            MadtEntry::LocalApicAddressOverride(o) => p.lapic_address = o.local_apic_address,
            _ => {}
        }
    }
    if p.cpus.is_empty() {
        return Err(err!(Unsupported, "the ACPI MADT lists no processors"));
    }
    ACPI_IDS.call_once(|| p.cpus.iter().map(|c| (c.apic_id, c.acpi_id)).collect());
    Ok(p)
}

/// (APIC id, ACPI processor id) of every processor of the MADT.
static ACPI_IDS: spin::Once<Vec<(u32, u32)>> = spin::Once::new();

/// The ACPI processor id of the processor with local APIC id `apic_id`.
pub fn acpi_id_of(apic_id: u32) -> Option<u32> {
    ACPI_IDS
        .get()?
        .iter()
        .find(|(a, _)| *a == apic_id)
        .map(|(_, id)| *id)
}
