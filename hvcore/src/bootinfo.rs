//! What the boot loader told us, independent of the protocol, and the reader
//! used to fetch it from physical memory.

use crate::memmap::{MemoryRegion, PhysRange};
use crate::{Error, Result, err};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// Read access to physical memory, by physical address. The image implements
/// it over its identity map; host tests over a byte buffer.
pub trait PhysMemory {
    /// Fill `buf` from physical address `addr`, or fail if the range is not readable.
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<()>;

    fn read_u8(&self, addr: u64) -> Result<u8> {
        let mut b = [0u8; 1];
        self.read(addr, &mut b)?;
        Ok(b[0])
    }
    fn read_u16(&self, addr: u64) -> Result<u16> {
        let mut b = [0u8; 2];
        self.read(addr, &mut b)?;
        Ok(u16::from_le_bytes(b))
    }
    fn read_u32(&self, addr: u64) -> Result<u32> {
        let mut b = [0u8; 4];
        self.read(addr, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    fn read_u64(&self, addr: u64) -> Result<u64> {
        let mut b = [0u8; 8];
        self.read(addr, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }
}

/// Longest string accepted from the boot loader (command lines, names).
pub const MAX_STRING: usize = 4096;
/// Most modules accepted.
pub const MAX_MODULES: usize = 256;
/// Most memory-map entries accepted.
pub const MAX_MMAP_ENTRIES: usize = 1024;

/// Read a NUL-terminated string of at most [`MAX_STRING`] bytes. Returns the
/// text (invalid UTF-8 replaced), the bytes occupied (including the NUL) and
/// whether it was cut short.
pub fn read_cstr(mem: &dyn PhysMemory, addr: u64, limit: usize) -> Result<(String, u64, bool)> {
    let limit = limit.min(MAX_STRING);
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 64];
    let mut at = addr;
    loop {
        // Read byte by byte at the end of what may be mapped: a chunk read could
        // cross into unreadable memory while the string itself does not.
        let want = chunk.len().min(limit + 1 - bytes.len());
        let n = if mem.read(at, &mut chunk[..want]).is_ok() {
            want
        } else {
            chunk[0] = mem.read_u8(at)?;
            1
        };
        for &b in &chunk[..n] {
            if b == 0 {
                let len = bytes.len() as u64 + 1;
                return Ok((String::from_utf8_lossy(&bytes).into_owned(), len, false));
            }
            if bytes.len() == limit {
                return Ok((
                    String::from_utf8_lossy(&bytes).into_owned(),
                    limit as u64,
                    true,
                ));
            }
            bytes.push(b);
        }
        at = at.checked_add(n as u64).ok_or_else(|| {
            err!(
                InvalidBootInfo,
                "string at {addr:#x} runs past the end of memory"
            )
        })?;
    }
}

/// Which protocol we were booted with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootProtocol {
    Multiboot1,
    Multiboot2,
}

impl fmt::Display for BootProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BootProtocol::Multiboot1 => "Multiboot 1",
            BootProtocol::Multiboot2 => "Multiboot 2",
        })
    }
}

/// A module loaded by the boot loader. Later code walks the list: the FLASK
/// policy is the first module starting with its magic, dom0's kernel the first
/// other one. Nothing here interprets the contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootModule {
    /// Where the module lies in physical memory.
    pub range: PhysRange,
    /// The module's command line (for Multiboot 1, without its leading file name).
    pub cmdline: String,
    /// The file name, where the protocol passes it (Multiboot 1 does, as the first word).
    pub name: Option<String>,
}

/// Everything Warden uses from the boot loader, copied out of its structures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootInfo {
    pub protocol: BootProtocol,
    /// Boot loader name, if given.
    pub loader: Option<String>,
    /// The hypervisor command line (for Multiboot 1, without the image's file name).
    pub cmdline: String,
    /// The memory map as given (not yet normalised).
    pub memory_map: Vec<MemoryRegion>,
    pub modules: Vec<BootModule>,
    /// Physical address of an ACPI RSDP, if the loader gave one.
    pub rsdp: Option<u64>,
    /// Physical ranges occupied by the loader's structures (to keep out of the allocator).
    pub structures: Vec<PhysRange>,
    /// Problems met while reading (truncated strings, ignored entries).
    pub warnings: Vec<String>,
}

/// Split a Multiboot 1 command line into (first word, rest): Multiboot 1
/// loaders (GRUB, QEMU) pass the file name as the first word.
pub fn split_name(line: &str) -> (Option<String>, String) {
    let t = line.trim_start();
    if t.is_empty() {
        return (None, String::new());
    }
    match t.split_once(char::is_whitespace) {
        Some((name, rest)) => (Some(name.into()), rest.trim_start().into()),
        None => (Some(t.into()), String::new()),
    }
}

/// Check that a module range is sane.
pub fn check_module(start: u64, end: u64, index: usize) -> Result<PhysRange> {
    if end < start {
        return Err(Error::new(
            crate::ErrorKind::InvalidBootInfo,
            alloc::format!("module {index} ends ({end:#x}) before it starts ({start:#x})"),
        ));
    }
    Ok(PhysRange::new(start, end))
}

/// Host-test helper: physical memory made of byte buffers at addresses.
#[cfg(test)]
pub(crate) mod testmem {
    use super::*;

    pub struct TestMem {
        pub chunks: Vec<(u64, Vec<u8>)>,
    }

    impl PhysMemory for TestMem {
        fn read(&self, addr: u64, buf: &mut [u8]) -> Result<()> {
            for (base, bytes) in &self.chunks {
                let end = base + bytes.len() as u64;
                if addr >= *base && addr + buf.len() as u64 <= end {
                    let off = (addr - base) as usize;
                    buf.copy_from_slice(&bytes[off..off + buf.len()]);
                    return Ok(());
                }
            }
            Err(err!(
                InvalidBootInfo,
                "unreadable {:#x}+{}",
                addr,
                buf.len()
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testmem::TestMem;
    use super::*;

    #[test]
    fn cstr_reading() {
        let mut data = b"hello world\0".to_vec();
        data.extend(b"tail-without-nul");
        let mem = TestMem {
            chunks: vec![(0x1000, data)],
        };
        assert_eq!(
            read_cstr(&mem, 0x1000, 100).unwrap(),
            ("hello world".into(), 12, false)
        );
        assert_eq!(
            read_cstr(&mem, 0x1000, 5).unwrap(),
            ("hello".into(), 5, true)
        );
        // Runs into unreadable memory: an error, not a panic.
        assert!(read_cstr(&mem, 0x100c, 100).is_err());
    }

    #[test]
    fn name_split() {
        assert_eq!(
            split_name("/boot/warden console=com1  x"),
            (Some("/boot/warden".into()), "console=com1  x".into())
        );
        assert_eq!(split_name("kernel"), (Some("kernel".into()), "".into()));
        assert_eq!(split_name("  "), (None, "".into()));
    }
}
