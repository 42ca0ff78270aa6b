//! ACPI tables for a PVH domain, as libxl builds them for a PVH domU
//! (xen-abi-map.md §1.5; libxl_x86_acpi.c and libacpi in Xen 4.17):
//! RSDP (revision 2) → XSDT and RSDT → FADT (revision 5, hardware-reduced,
//! no PM timer, no CMOS RTC, no VGA) → DSDT, FACS; MADT with one enabled
//! Processor Local APIC per vCPU (ACPI processor id i, APIC id 2·i), the
//! local APIC at 0xFEE00000, PCAT_COMPAT, no I/O APIC and no overrides.
//!
//! Placement (libxl's): the `acpi_info` page at [`ACPI_INFO`] (zeroed: the
//! DSDT here has no methods that read it), the tables from [`ACPI_TABLES`],
//! the RSDP on the page right after them; the whole range is ACPI memory in
//! the domain's memory map. The DSDT carries no AML: Linux enumerates the
//! vCPUs from the MADT, and a PVH domU has no devices for the DSDT to
//! describe.

use alloc::vec::Vec;

/// Guest-physical address of libxl's `acpi_info` page.
pub const ACPI_INFO: u64 = 0xFC00_0000;
/// Guest-physical address of the first table.
pub const ACPI_TABLES: u64 = 0xFC00_1000;
/// The local APIC's address in the MADT.
pub const LAPIC_ADDRESS: u32 = 0xFEE0_0000;
/// Most vCPUs the MADT describes with xAPIC entries (APIC id 2·i < 256).
pub const MAX_VCPUS: u32 = 128;

const OEM_ID: &[u8; 6] = b"Xen   ";
const OEM_TABLE_ID: &[u8; 8] = b"HVM     ";
const CREATOR_ID: &[u8; 4] = b"HVML";

/// FADT flags.
pub const FADT_PROC_C1: u32 = 1 << 2;
pub const FADT_PWR_BUTTON: u32 = 1 << 4;
pub const FADT_SLP_BUTTON: u32 = 1 << 5;
pub const FADT_RESET_REG_SUP: u32 = 1 << 10;
pub const FADT_HW_REDUCED_ACPI: u32 = 1 << 20;
/// IA-PC boot architecture flags: no VGA, no CMOS RTC.
pub const BOOT_NO_VGA: u16 = 1 << 2;
pub const BOOT_NO_CMOS_RTC: u16 = 1 << 5;

/// The built tables: `bytes` go at [`ACPI_INFO`]; `rsdp` is the RSDP's address.
#[derive(Debug, Clone)]
pub struct Tables {
    pub bytes: Vec<u8>,
    pub rsdp: u64,
}

impl Tables {
    /// End (exclusive) of the range, page-aligned.
    pub fn end(&self) -> u64 {
        ACPI_INFO + self.bytes.len() as u64
    }
}

fn checksum(b: &[u8]) -> u8 {
    0u8.wrapping_sub(b.iter().fold(0u8, |a, &x| a.wrapping_add(x)))
}

/// A table: header + body, with its length and checksum filled in.
fn table(sig: &[u8; 4], revision: u8, body: &[u8]) -> Vec<u8> {
    let mut t = Vec::with_capacity(36 + body.len());
    t.extend_from_slice(sig);
    t.extend_from_slice(&((36 + body.len()) as u32).to_le_bytes());
    t.push(revision);
    t.push(0);
    t.extend_from_slice(OEM_ID);
    t.extend_from_slice(OEM_TABLE_ID);
    t.extend_from_slice(&0u32.to_le_bytes());
    t.extend_from_slice(CREATOR_ID);
    t.extend_from_slice(&0u32.to_le_bytes());
    t.extend_from_slice(body);
    t[9] = checksum(&t);
    t
}

/// A Generic Address Structure in system I/O space.
fn gas_io(bits: u8, port: u64) -> [u8; 12] {
    let mut g = [0u8; 12];
    if port != 0 {
        g[0] = 1; // SystemIO
        g[1] = bits;
        g[3] = match bits {
            8 => 1,
            16 => 2,
            _ => 3,
        };
        g[4..].copy_from_slice(&port.to_le_bytes());
    }
    g
}

fn fadt(facs: u64, dsdt: u64) -> Vec<u8> {
    let mut b = alloc::vec![0u8; 268 - 36];
    let mut put = |off: usize, v: &[u8]| b[off - 36..off - 36 + v.len()].copy_from_slice(v);
    put(36, &(facs as u32).to_le_bytes());
    put(40, &(dsdt as u32).to_le_bytes());
    put(46, &9u16.to_le_bytes()); // SCI
    put(56, &0xB000u32.to_le_bytes()); // PM1a event block
    put(64, &0xB004u32.to_le_bytes()); // PM1a control block
    put(80, &0xAFE0u32.to_le_bytes()); // GPE0 block
    put(88, &[4, 2, 0, 0, 4]); // PM1 event, PM1 control, PM2, PM timer (none), GPE0 lengths
    put(109, &(BOOT_NO_VGA | BOOT_NO_CMOS_RTC).to_le_bytes());
    put(
        112,
        &(FADT_PROC_C1
            | FADT_PWR_BUTTON
            | FADT_SLP_BUTTON
            | FADT_RESET_REG_SUP
            | FADT_HW_REDUCED_ACPI)
            .to_le_bytes(),
    );
    put(116, &gas_io(8, 0xCF9)); // reset register
    put(128, &[6]); // reset value
    put(131, &[0]); // minor version
    put(132, &facs.to_le_bytes());
    put(140, &dsdt.to_le_bytes());
    put(148, &gas_io(32, 0xB000));
    put(172, &gas_io(16, 0xB004));
    put(220, &gas_io(32, 0xAFE0));
    table(b"FACP", 5, &b)
}

fn madt(vcpus: u32) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&LAPIC_ADDRESS.to_le_bytes());
    b.extend_from_slice(&1u32.to_le_bytes()); // PCAT_COMPAT
    for i in 0..vcpus {
        b.extend_from_slice(&[0, 8, i as u8, (2 * i) as u8]);
        b.extend_from_slice(&1u32.to_le_bytes()); // enabled
    }
    table(b"APIC", 4, &b)
}

fn facs() -> Vec<u8> {
    let mut f = alloc::vec![0u8; 64];
    f[..4].copy_from_slice(b"FACS");
    f[4..8].copy_from_slice(&64u32.to_le_bytes());
    f[32] = 2; // version
    f
}

/// Build the tables for a domain with `vcpus` vCPUs (1 to [`MAX_VCPUS`]).
pub fn build(vcpus: u32) -> Tables {
    let vcpus = vcpus.clamp(1, MAX_VCPUS);
    let mut t = Vec::new();
    let mut at = ACPI_TABLES;
    let mut place = |t: &mut Vec<u8>, data: &[u8], align: u64| -> u64 {
        at = at.next_multiple_of(align);
        let off = (at - ACPI_TABLES) as usize;
        if t.len() < off + data.len() {
            t.resize(off + data.len(), 0);
        }
        t[off..off + data.len()].copy_from_slice(data);
        let a = at;
        at += data.len() as u64;
        a
    };
    let facs_at = place(&mut t, &facs(), 64);
    let dsdt_at = place(&mut t, &table(b"DSDT", 2, &[]), 16);
    let fadt_at = place(&mut t, &fadt(facs_at, dsdt_at), 16);
    let madt_at = place(&mut t, &madt(vcpus), 16);
    let mut xsdt = Vec::new();
    let mut rsdt = Vec::new();
    for a in [fadt_at, madt_at] {
        xsdt.extend_from_slice(&a.to_le_bytes());
        rsdt.extend_from_slice(&(a as u32).to_le_bytes());
    }
    let xsdt_at = place(&mut t, &table(b"XSDT", 1, &xsdt), 16);
    let rsdt_at = place(&mut t, &table(b"RSDT", 1, &rsdt), 16);
    let rsdp_at = at.next_multiple_of(4096);
    let mut rsdp = alloc::vec![0u8; 36];
    rsdp[..8].copy_from_slice(b"RSD PTR ");
    rsdp[9..15].copy_from_slice(OEM_ID);
    rsdp[15] = 2;
    rsdp[16..20].copy_from_slice(&(rsdt_at as u32).to_le_bytes());
    rsdp[20..24].copy_from_slice(&36u32.to_le_bytes());
    rsdp[24..32].copy_from_slice(&xsdt_at.to_le_bytes());
    rsdp[8] = checksum(&rsdp[..20]);
    rsdp[32] = checksum(&rsdp);
    let mut bytes = alloc::vec![0u8; (rsdp_at + 4096 - ACPI_INFO) as usize];
    let off = (ACPI_TABLES - ACPI_INFO) as usize;
    bytes[off..off + t.len()].copy_from_slice(&t);
    let r = (rsdp_at - ACPI_INFO) as usize;
    bytes[r..r + 36].copy_from_slice(&rsdp);
    Tables {
        bytes,
        rsdp: rsdp_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::acpi::madt::{Madt, MadtEntry};
    use ::acpi::{AcpiHandler, AcpiTables, PhysicalMapping};
    use core::ptr::NonNull;

    /// Maps guest-physical addresses into a copy of the tables' bytes.
    #[derive(Clone, Copy)]
    struct InBuffer {
        base: usize,
        len: usize,
    }

    impl AcpiHandler for InBuffer {
        unsafe fn map_physical_region<T>(
            &self,
            phys: usize,
            size: usize,
        ) -> PhysicalMapping<Self, T> {
            let off = phys.wrapping_sub(ACPI_INFO as usize);
            assert!(
                off < self.len && off + size <= self.len,
                "map of {phys:#x}+{size:#x} outside the tables"
            );
            let p = NonNull::new((self.base + off) as *mut T).unwrap();
            // SAFETY: the region lies inside the leaked buffer (checked above),
            // which lives for the rest of the test.
            unsafe { PhysicalMapping::new(phys, p, size, size, *self) }
        }
        fn unmap_physical_region<T>(_region: &PhysicalMapping<Self, T>) {}
    }

    fn parsed(vcpus: u32) -> (Tables, AcpiTables<InBuffer>) {
        let t = build(vcpus);
        let leaked: &'static mut [u8] = alloc::boxed::Box::leak(t.bytes.clone().into_boxed_slice());
        let h = InBuffer {
            base: leaked.as_ptr() as usize,
            len: leaked.len(),
        };
        // SAFETY: the handler maps only inside the buffer, which is never freed.
        let a = unsafe { AcpiTables::from_rsdp(h, t.rsdp as usize) }.unwrap();
        (t, a)
    }

    #[test]
    fn round_trip_through_the_acpi_crate() {
        let (t, a) = parsed(3);
        assert_eq!(a.revision(), 2, "XSDT in use");
        assert_eq!(t.rsdp % 4096, 0);
        assert!(t.rsdp > ACPI_TABLES && t.end() == t.rsdp + 4096);
        let madt = a.find_table::<Madt>().unwrap();
        assert_eq!({ madt.get().local_apic_address }, LAPIC_ADDRESS);
        assert!(madt.get().supports_8259());
        let mut ids = Vec::new();
        for e in madt.get().entries() {
            match e {
                MadtEntry::LocalApic(l) => {
                    ids.push((l.processor_id, l.apic_id, { l.flags } & 1));
                }
                other => panic!("unexpected MADT entry {other:?}"),
            }
        }
        assert_eq!(ids, [(0, 0, 1), (1, 2, 1), (2, 4, 1)]);
        let fadt = a.find_table::<::acpi::fadt::Fadt>().unwrap();
        let f = fadt.get();
        use ::acpi::sdt::SdtHeader;
        let _: &SdtHeader = &madt.get().header;
        let flags = { f.flags };
        assert!(flags.system_is_hw_reduced_acpi());
        assert_eq!({ f.sci_interrupt }, 9);
        assert_eq!(f.dsdt_address().unwrap(), (ACPI_TABLES + 64) as usize);
        let reset = f.reset_register().unwrap();
        assert_eq!((reset.address, f.reset_value), (0xCF9, 6));
        assert_eq!(f.pm1a_control_block().unwrap().address, 0xB004);
        assert!(f.pm_timer_block().unwrap().is_none(), "no PM timer");
        let dsdt = a.dsdt().unwrap();
        assert_eq!(
            dsdt.address,
            (ACPI_TABLES + 64 + 36) as usize,
            "AML after the header"
        );
        assert_eq!(dsdt.length, 0, "no AML");
        // Every table's checksum is right (the crate checked the ones it read).
        for sig in [b"FACP", b"APIC", b"XSDT", b"RSDT", b"DSDT"] {
            let bytes = &t.bytes;
            let pos = bytes
                .windows(4)
                .position(|w| w == sig)
                .unwrap_or_else(|| panic!("{sig:?} missing"));
            let len = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().unwrap()) as usize;
            assert_eq!(checksum(&bytes[pos..pos + len]), 0, "{sig:?}");
        }
    }

    #[test]
    fn one_entry_per_vcpu() {
        for n in [1, 2, 64] {
            let (_, a) = parsed(n);
            let madt = a.find_table::<Madt>().unwrap();
            let lapics: Vec<u8> = madt
                .get()
                .entries()
                .filter_map(|e| match e {
                    MadtEntry::LocalApic(l) => Some(l.apic_id),
                    _ => None,
                })
                .collect();
            assert_eq!(lapics.len(), n as usize);
            assert_eq!(lapics.last().copied(), Some((2 * (n - 1)) as u8));
        }
    }
}
