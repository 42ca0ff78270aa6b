//! The start information (`warden_abi::start`), as the program sees it.

use warden_abi::start::{MemmapEntry, ModlistEntry, SIF_PRIVILEGED, START_MAGIC, StartInfo};
use warden_abi::{DomId, Pod};

/// What the domain was started with. Guest memory is identity-mapped at
/// entry, so the guest-physical addresses in it are usable as pointers.
#[derive(Debug)]
#[repr(C)]
pub struct Boot {
    pub info: StartInfo,
}

fn phys<'a>(gpa: u64, len: usize) -> &'a [u8] {
    if gpa == 0 || len == 0 {
        return &[];
    }
    // SAFETY: the hypervisor put this data in our memory at `gpa`, which is
    // identity-mapped at entry and never freed; nothing writes it.
    unsafe { core::slice::from_raw_parts(gpa as *const u8, len) }
}

fn cstr_at<'a>(gpa: u64) -> &'a str {
    if gpa == 0 {
        return "";
    }
    let mut n = 0;
    // SAFETY: a NUL-terminated string the hypervisor wrote (see `phys`).
    while n < 4096 && unsafe { *((gpa + n as u64) as *const u8) } != 0 {
        n += 1;
    }
    core::str::from_utf8(phys(gpa, n)).unwrap_or("")
}

impl Boot {
    /// Read the start information at `gpa` (None if it is not one).
    pub fn from_phys(gpa: u64) -> Option<Boot> {
        let info = StartInfo::from_bytes(phys(gpa, core::mem::size_of::<StartInfo>()))?;
        (info.magic == START_MAGIC).then_some(Boot { info })
    }
    /// This domain's id.
    pub fn domid(&self) -> DomId {
        self.info.domid
    }
    /// Is this the control domain?
    pub fn privileged(&self) -> bool {
        self.info.flags & SIF_PRIVILEGED != 0
    }
    /// vCPUs.
    pub fn vcpus(&self) -> u32 {
        self.info.nr_vcpus
    }
    /// Memory in bytes.
    pub fn mem_bytes(&self) -> u64 {
        self.info.nr_pages * 4096
    }
    /// The command line.
    pub fn cmdline(&self) -> &'static str {
        cstr_at(self.info.cmdline_paddr)
    }
    /// The value of `key=` on the command line.
    pub fn arg(&self, key: &str) -> Option<&'static str> {
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
            let e = ModlistEntry::from_bytes(phys(base + (i * 32) as u64, 32))?;
            Some((phys(e.paddr, e.size as usize), cstr_at(e.cmdline_paddr)))
        })
    }
    /// The memory map.
    pub fn memmap(&self) -> impl Iterator<Item = MemmapEntry> {
        let n = self.info.memmap_entries as usize;
        let base = self.info.memmap_paddr;
        (0..n).filter_map(move |i| MemmapEntry::from_bytes(phys(base + (i * 24) as u64, 24)))
    }
}
