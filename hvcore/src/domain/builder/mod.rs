//! Building domains the way Xen 4.17 does for a PVH guest (boot-built
//! domains now; the toolstack's builder later): Xen's ELF notes
//! ([`notes`]), bzImage detection ([`bzimage`]), the guest-physical layout,
//! `hvm_start_info` and the 32-bit entry state ([`pvh`]), and the ACPI
//! tables libxl builds for a PVH domU ([`acpi`]). `crate::builder` drives
//! them with the hypervisor's memory operations.

pub mod acpi;
pub mod bzimage;
pub mod notes;
pub mod pvh;
