//! The start information as the program sees it: Xen's `hvm_start_info`
//! (`warden_abi::xen::start_info`; the PVH entry hands its address in EBX,
//! `rt`), plus what Xen tells a PVH guest elsewhere: the domain id (CPUID
//! leaf 0x4000_0004 ECX, as Linux reads it) and the vCPUs (the ACPI MADT's
//! enabled local APICs). The command line is copied at entry (the
//! start-info block lies in RAM, as on Xen). The memory map is the start
//! info's (version 1, a domU) or XENMEM_memory_map's (version 0: the
//! initial domain, as Xen builds it).

use warden_abi::xen::start_info::{
    HVM_START_MAGIC_VALUE, HvmMemmapTableEntry, HvmModlistEntry, HvmStartInfo, SIF_PRIVILEGED,
    XEN_HVM_MEMMAP_TYPE_RAM,
};
use warden_abi::{DomId, Pod};

/// Longest command line kept.
pub const CMDLINE_MAX: usize = 1024;

/// What the domain was started with. Guest memory below 4 GiB is
/// identity-mapped after entry, so the guest-physical addresses in it are
/// usable as pointers.
#[derive(Debug)]
#[repr(C)]
pub struct Boot {
    pub info: HvmStartInfo,
    domid: DomId,
    vcpus: u32,
    mem_bytes: u64,
    cmdline: [u8; CMDLINE_MAX],
    cmdline_len: usize,
}

fn phys<'a>(gpa: u64, len: usize) -> &'a [u8] {
    if gpa == 0 || len == 0 {
        return &[];
    }
    // SAFETY: the hypervisor put this data in our memory at `gpa`, which is
    // identity-mapped and never freed; nothing writes it.
    unsafe { core::slice::from_raw_parts(gpa as *const u8, len) }
}

fn cstr_at<'a>(gpa: u64) -> &'a [u8] {
    if gpa == 0 {
        return &[];
    }
    let mut n = 0;
    // SAFETY: a NUL-terminated string the hypervisor wrote (see `phys`).
    while n < 4096 && unsafe { *((gpa + n as u64) as *const u8) } != 0 {
        n += 1;
    }
    phys(gpa, n)
}

/// Enabled local APICs in the MADT reached from the RSDP at `rsdp` (0 if none).
fn madt_cpus(rsdp: u64) -> u32 {
    let r = phys(rsdp, 36);
    if r.len() < 36 || &r[..8] != b"RSD PTR " || r[15] < 2 {
        return 0;
    }
    let xsdt = u64::from_le_bytes(r[24..32].try_into().unwrap_or([0; 8]));
    let len_of = |a: u64| u32::from_le_bytes(phys(a + 4, 4).try_into().unwrap_or([0; 4])) as u64;
    let xlen = len_of(xsdt);
    if !(36..=4096).contains(&xlen) {
        return 0;
    }
    for i in 0..(xlen - 36) / 8 {
        let t = u64::from_le_bytes(phys(xsdt + 36 + 8 * i, 8).try_into().unwrap_or([0; 8]));
        if phys(t, 4) != b"APIC" {
            continue;
        }
        let tlen = len_of(t).min(65536);
        let body = phys(t, tlen as usize);
        let mut at = 44;
        let mut n = 0;
        while at + 2 <= body.len() {
            let (kind, len) = (body[at], body[at + 1] as usize);
            if len < 2 || at + len > body.len() {
                break;
            }
            if kind == 0 && len >= 8 && body[at + 4] & 1 != 0 {
                n += 1;
            }
            at += len;
        }
        return n;
    }
    0
}

/// The end of RAM below 4 GiB from XENMEM_memory_map (0 if refused).
fn ram_end_from_hypervisor() -> u64 {
    use warden_abi::memory::{E820_RAM, E820Entry, MEMORY_MAP, MemoryMap};
    let mut map = [E820Entry::default(); 16];
    let mut m = MemoryMap {
        nr_entries: map.len() as u32,
        pad: 0,
        buffer: map.as_mut_ptr() as u64,
    };
    if crate::hypercall::memory_op(MEMORY_MAP, &mut m as *mut MemoryMap as u64).is_err() {
        return 0;
    }
    map.iter()
        .take(m.nr_entries as usize)
        .filter(|e| e.kind == E820_RAM)
        .map(|e| e.addr() + e.size())
        .filter(|&end| end <= 1 << 32)
        .max()
        .unwrap_or(0)
}

impl Boot {
    /// Read the `hvm_start_info` at `gpa` (None if it is not one).
    /// Call while the first 4 GiB are identity-mapped (the ACPI tables lie
    /// above the RAM).
    pub fn from_phys(gpa: u64) -> Option<Boot> {
        let info = HvmStartInfo::from_bytes(phys(gpa, core::mem::size_of::<HvmStartInfo>()))?;
        if info.magic != HVM_START_MAGIC_VALUE {
            return None;
        }
        let c = cstr_at(info.cmdline_paddr);
        let mut cmdline = [0u8; CMDLINE_MAX];
        let cmdline_len = c.len().min(CMDLINE_MAX);
        cmdline[..cmdline_len].copy_from_slice(&c[..cmdline_len]);
        let mut b = Boot {
            info,
            domid: core::arch::x86_64::__cpuid(0x4000_0004).ecx as DomId,
            vcpus: madt_cpus(info.rsdp_paddr).max(1),
            mem_bytes: 0,
            cmdline,
            cmdline_len,
        };
        b.mem_bytes = if info.version >= 1 {
            b.memmap()
                .filter(|e| e.kind == XEN_HVM_MEMMAP_TYPE_RAM && e.addr < 1 << 32)
                .map(|e| e.addr + e.size)
                .max()
                .unwrap_or(0)
        } else {
            ram_end_from_hypervisor()
        };
        Some(b)
    }
    /// This domain's id.
    pub fn domid(&self) -> DomId {
        self.domid
    }
    /// Is this the control domain?
    pub fn privileged(&self) -> bool {
        self.info.flags & SIF_PRIVILEGED != 0
    }
    /// vCPUs.
    pub fn vcpus(&self) -> u32 {
        self.vcpus
    }
    /// Memory in bytes (the end of RAM below 4 GiB).
    pub fn mem_bytes(&self) -> u64 {
        self.mem_bytes
    }
    /// The command line.
    pub fn cmdline(&self) -> &str {
        core::str::from_utf8(&self.cmdline[..self.cmdline_len]).unwrap_or("")
    }
    /// The value of `key=` on the command line.
    pub fn arg(&self, key: &str) -> Option<&str> {
        self.cmdline().split_whitespace().find_map(|t| {
            let (k, v) = t.split_once('=')?;
            (k == key).then_some(v)
        })
    }
    /// Boot modules handed to this domain: (content, command line).
    pub fn modules(&self) -> impl Iterator<Item = (&'static [u8], &'static str)> {
        let n = self.info.nr_modules as usize;
        let base = self.info.modlist_paddr;
        (0..n).filter_map(move |i| {
            let e = HvmModlistEntry::from_bytes(phys(base + (i * 32) as u64, 32))?;
            Some((
                phys(e.paddr, e.size as usize),
                core::str::from_utf8(cstr_at(e.cmdline_paddr)).unwrap_or(""),
            ))
        })
    }
    /// The memory map.
    pub fn memmap(&self) -> impl Iterator<Item = HvmMemmapTableEntry> {
        let n = self.info.memmap_entries as usize;
        let base = self.info.memmap_paddr;
        (0..n)
            .filter_map(move |i| HvmMemmapTableEntry::from_bytes(phys(base + (i * 24) as u64, 24)))
    }
}
