//! Multiboot 1 boot information (QEMU `-kernel`, GRUB `multiboot`).

use crate::bootinfo::{
    BootInfo, BootModule, BootProtocol, MAX_MMAP_ENTRIES, MAX_MODULES, MAX_STRING, PhysMemory,
    check_module, read_cstr, split_name,
};
use crate::memmap::{MemoryKind, MemoryRegion, PhysRange};
use crate::{Result, err};
use alloc::format;
use alloc::vec::Vec;

/// Value of EAX at entry from a Multiboot 1 loader.
pub const BOOT_MAGIC: u32 = 0x2BAD_B002;
/// Magic at the start of the image's Multiboot 1 header.
pub const HEADER_MAGIC: u32 = 0x1BAD_B002;

const FLAG_MEM: u32 = 1 << 0;
const FLAG_CMDLINE: u32 = 1 << 2;
const FLAG_MODS: u32 = 1 << 3;
const FLAG_MMAP: u32 = 1 << 6;
const FLAG_LOADER_NAME: u32 = 1 << 9;
const INFO_SIZE: u64 = 120;

/// Parse the Multiboot 1 information structure at `info`.
pub fn parse(mem: &dyn PhysMemory, info: u64) -> Result<BootInfo> {
    let flags = mem.read_u32(info)?;
    let mut bi = BootInfo {
        protocol: BootProtocol::Multiboot1,
        loader: None,
        cmdline: alloc::string::String::new(),
        memory_map: Vec::new(),
        modules: Vec::new(),
        rsdp: None,
        structures: alloc::vec![PhysRange::with_len(info, INFO_SIZE)],
        warnings: Vec::new(),
    };
    let string = |bi: &mut BootInfo, what: &str, addr: u64| -> Result<alloc::string::String> {
        let (s, len, cut) = read_cstr(mem, addr, MAX_STRING)?;
        bi.structures.push(PhysRange::with_len(addr, len));
        if cut {
            bi.warnings
                .push(format!("{what} longer than {MAX_STRING} bytes; truncated"));
        }
        Ok(s)
    };

    if flags & FLAG_CMDLINE != 0 {
        let addr = mem.read_u32(info + 16)? as u64;
        let line = string(&mut bi, "command line", addr)?;
        // The loader passes the image's file name as the first word.
        bi.cmdline = split_name(&line).1;
    }
    if flags & FLAG_LOADER_NAME != 0 {
        let addr = mem.read_u32(info + 64)? as u64;
        bi.loader = Some(string(&mut bi, "boot loader name", addr)?);
    }
    if flags & FLAG_MODS != 0 {
        let count = mem.read_u32(info + 20)? as usize;
        let addr = mem.read_u32(info + 24)? as u64;
        if count > MAX_MODULES {
            return Err(err!(
                InvalidBootInfo,
                "{count} modules (at most {MAX_MODULES} are supported)"
            ));
        }
        bi.structures
            .push(PhysRange::with_len(addr, count as u64 * 16));
        for i in 0..count {
            let e = addr + i as u64 * 16;
            let start = mem.read_u32(e)? as u64;
            let end = mem.read_u32(e + 4)? as u64;
            let s = mem.read_u32(e + 8)? as u64;
            let line = if s != 0 {
                string(&mut bi, "module command line", s)?
            } else {
                alloc::string::String::new()
            };
            let (name, cmdline) = split_name(&line);
            bi.modules.push(BootModule {
                range: check_module(start, end, i)?,
                cmdline,
                name,
            });
        }
    }
    if flags & FLAG_MMAP != 0 {
        let len = mem.read_u32(info + 44)? as u64;
        let addr = mem.read_u32(info + 48)? as u64;
        bi.structures.push(PhysRange::with_len(addr, len));
        let mut off = 0u64;
        while off + 4 <= len {
            if bi.memory_map.len() == MAX_MMAP_ENTRIES {
                bi.warnings.push(format!(
                    "memory map has more than {MAX_MMAP_ENTRIES} entries; the rest ignored"
                ));
                break;
            }
            let size = mem.read_u32(addr + off)? as u64;
            if size < 20 {
                return Err(err!(
                    InvalidBootInfo,
                    "memory map entry at offset {off} has size {size} (< 20)"
                ));
            }
            let e = addr + off + 4;
            let base = mem.read_u64(e)?;
            let length = mem.read_u64(e + 8)?;
            let kind = mem.read_u32(e + 16)?;
            bi.memory_map.push(MemoryRegion {
                range: PhysRange::with_len(base, length),
                kind: MemoryKind::from_e820(kind),
            });
            off += size + 4;
        }
    } else if flags & FLAG_MEM != 0 {
        // Only the basic lower/upper sizes (in KiB).
        let lower = mem.read_u32(info + 4)? as u64;
        let upper = mem.read_u32(info + 8)? as u64;
        bi.warnings
            .push("no memory map from the boot loader; using the basic memory sizes".into());
        bi.memory_map.push(MemoryRegion {
            range: PhysRange::with_len(0, lower * 1024),
            kind: MemoryKind::Usable,
        });
        bi.memory_map.push(MemoryRegion {
            range: PhysRange::with_len(0x10_0000, upper * 1024),
            kind: MemoryKind::Usable,
        });
    } else {
        return Err(err!(
            InvalidBootInfo,
            "the boot loader gave no memory information (flags {flags:#x})"
        ));
    }
    Ok(bi)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::bootinfo::testmem::TestMem;

    fn put32(v: &mut [u8], off: usize, x: u32) {
        v[off..off + 4].copy_from_slice(&x.to_le_bytes());
    }

    /// A Multiboot 1 info block as QEMU builds it: info at 0x9000, strings at
    /// 0xa000, module list at 0xb000, memory map at 0xc000.
    pub fn qemu_like() -> TestMem {
        let mut info = vec![0u8; INFO_SIZE as usize];
        put32(
            &mut info,
            0,
            FLAG_MEM | FLAG_CMDLINE | FLAG_MODS | FLAG_MMAP | FLAG_LOADER_NAME,
        );
        put32(&mut info, 4, 639);
        put32(&mut info, 8, 130048);
        put32(&mut info, 16, 0xa000);
        put32(&mut info, 20, 2);
        put32(&mut info, 24, 0xb000);
        put32(&mut info, 44, 3 * 24);
        put32(&mut info, 48, 0xc000);
        put32(&mut info, 64, 0xa100);
        let mut strings = vec![0u8; 0x300];
        let s = b"/tmp/warden console=com1 loglvl=all\0";
        strings[..s.len()].copy_from_slice(s);
        strings[0x100..0x105].copy_from_slice(b"qemu\0");
        strings[0x200..0x20c].copy_from_slice(b"/tmp/a.bin\0\0");
        let s = b"/tmp/b.bin x=1 y\0";
        strings[0x280..0x280 + s.len()].copy_from_slice(s);
        let mut mods = vec![0u8; 32];
        put32(&mut mods, 0, 0x20_0000);
        put32(&mut mods, 4, 0x20_1234);
        put32(&mut mods, 8, 0xa200);
        put32(&mut mods, 16, 0x20_2000);
        put32(&mut mods, 20, 0x20_2000);
        put32(&mut mods, 24, 0xa280);
        let mut mmap = Vec::new();
        for (base, len, t) in [
            (0u64, 0x9fc00u64, 1u32),
            (0xf0000, 0x10000, 2),
            (0x10_0000, 0x7ee_0000, 1),
        ] {
            mmap.extend(20u32.to_le_bytes());
            mmap.extend(base.to_le_bytes());
            mmap.extend(len.to_le_bytes());
            mmap.extend(t.to_le_bytes());
        }
        TestMem {
            chunks: vec![
                (0x9000, info),
                (0xa000, strings),
                (0xb000, mods),
                (0xc000, mmap),
            ],
        }
    }

    #[test]
    fn parses_qemu_style_info() {
        let bi = parse(&qemu_like(), 0x9000).unwrap();
        assert_eq!(bi.protocol, BootProtocol::Multiboot1);
        assert_eq!(bi.cmdline, "console=com1 loglvl=all");
        assert_eq!(bi.loader.as_deref(), Some("qemu"));
        assert_eq!(bi.modules.len(), 2);
        assert_eq!(bi.modules[0].range, PhysRange::new(0x20_0000, 0x20_1234));
        assert_eq!(bi.modules[0].name.as_deref(), Some("/tmp/a.bin"));
        assert_eq!(bi.modules[0].cmdline, "");
        assert_eq!(bi.modules[1].cmdline, "x=1 y");
        assert_eq!(bi.memory_map.len(), 3);
        assert_eq!(
            bi.memory_map[2].range,
            PhysRange::new(0x10_0000, 0x7fe_0000)
        );
        assert_eq!(bi.memory_map[1].kind, MemoryKind::Reserved(2));
        assert!(
            bi.structures
                .contains(&PhysRange::new(0x9000, 0x9000 + INFO_SIZE))
        );
        assert!(bi.structures.contains(&PhysRange::new(0xb000, 0xb020)));
        assert!(bi.structures.contains(&PhysRange::new(0xc000, 0xc000 + 72)));
        assert!(bi.warnings.is_empty());
        assert_eq!(bi.rsdp, None);
    }

    #[test]
    fn bad_structures_are_errors_not_panics() {
        let mut mem = qemu_like();
        // Module list pointing nowhere.
        put32(&mut mem.chunks[0].1, 24, 0xdead_0000);
        assert!(parse(&mem, 0x9000).is_err());
        let mut mem = qemu_like();
        put32(&mut mem.chunks[0].1, 20, 100_000);
        assert!(
            parse(&mem, 0x9000)
                .unwrap_err()
                .detail()
                .contains("modules")
        );
        let mut mem = qemu_like();
        // Memory-map entry with a size that would loop forever.
        put32(&mut mem.chunks[3].1, 0, 0);
        assert!(parse(&mem, 0x9000).is_err());
        // Info block unreadable.
        assert!(parse(&mem, 0x5_0000).is_err());
        let mut mem = qemu_like();
        put32(&mut mem.chunks[2].1, 0, 0x30_0000); // start > end
        assert!(
            parse(&mem, 0x9000)
                .unwrap_err()
                .detail()
                .contains("before it starts")
        );
    }

    #[test]
    fn basic_memory_fallback() {
        let mut mem = qemu_like();
        put32(&mut mem.chunks[0].1, 0, FLAG_MEM);
        let bi = parse(&mem, 0x9000).unwrap();
        assert_eq!(
            bi.memory_map[1].range,
            PhysRange::new(0x10_0000, 0x10_0000 + 130048 * 1024)
        );
        assert_eq!(bi.warnings.len(), 1);
        put32(&mut mem.chunks[0].1, 0, 0);
        assert!(parse(&mem, 0x9000).is_err());
    }
}
