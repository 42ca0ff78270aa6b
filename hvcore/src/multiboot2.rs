//! Multiboot 2 boot information (GRUB `multiboot2` + `module2`).

use crate::bootinfo::{
    BootInfo, BootModule, BootProtocol, MAX_MMAP_ENTRIES, MAX_MODULES, PhysMemory, check_module,
    read_cstr,
};
use crate::memmap::{MemoryKind, MemoryRegion, PhysRange};
use crate::{Result, err};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// Value of EAX at entry from a Multiboot 2 loader.
pub const BOOT_MAGIC: u32 = 0x36D7_6289;
/// Magic at the start of the image's Multiboot 2 header.
pub const HEADER_MAGIC: u32 = 0xE852_50D6;

const TAG_END: u32 = 0;
const TAG_CMDLINE: u32 = 1;
const TAG_LOADER_NAME: u32 = 2;
const TAG_MODULE: u32 = 3;
const TAG_MMAP: u32 = 6;
const TAG_ACPI_OLD: u32 = 14;
const TAG_ACPI_NEW: u32 = 15;

/// Largest information structure accepted.
pub const MAX_INFO_SIZE: u32 = 1 << 20;

/// Parse the Multiboot 2 information structure at `info`.
pub fn parse(mem: &dyn PhysMemory, info: u64) -> Result<BootInfo> {
    if !info.is_multiple_of(8) {
        return Err(err!(
            InvalidBootInfo,
            "information structure at {info:#x} is not 8-byte aligned"
        ));
    }
    let total = mem.read_u32(info)?;
    if !(16..=MAX_INFO_SIZE).contains(&total) {
        return Err(err!(
            InvalidBootInfo,
            "information structure size {total} out of range"
        ));
    }
    let end = info + total as u64;
    let mut bi = BootInfo {
        protocol: BootProtocol::Multiboot2,
        loader: None,
        cmdline: String::new(),
        memory_map: Vec::new(),
        modules: Vec::new(),
        rsdp: None,
        structures: alloc::vec![PhysRange::new(info, end)],
        warnings: Vec::new(),
    };
    let tag_string = |bi: &mut BootInfo, at: u64, limit: u64, what: &str| -> Result<String> {
        let (s, _, cut) = read_cstr(mem, at, limit as usize)?;
        if cut {
            bi.warnings
                .push(format!("{what} not terminated within its tag; truncated"));
        }
        Ok(s)
    };
    let mut at = info + 8;
    let mut saw_end = false;
    let mut rsdp_new = None;
    let mut rsdp_old = None;
    while at + 8 <= end {
        let ty = mem.read_u32(at)?;
        let size = mem.read_u32(at + 4)? as u64;
        if size < 8 || at + size > end {
            return Err(err!(
                InvalidBootInfo,
                "tag type {ty} at {at:#x} has size {size}, outside the structure"
            ));
        }
        let body = at + 8;
        let body_len = size - 8;
        match ty {
            TAG_END => {
                saw_end = true;
                break;
            }
            TAG_CMDLINE => bi.cmdline = tag_string(&mut bi, body, body_len, "command line")?,
            TAG_LOADER_NAME => {
                bi.loader = Some(tag_string(&mut bi, body, body_len, "boot loader name")?)
            }
            TAG_MODULE => {
                if body_len < 8 {
                    return Err(err!(InvalidBootInfo, "module tag too short ({size} bytes)"));
                }
                if bi.modules.len() == MAX_MODULES {
                    return Err(err!(
                        InvalidBootInfo,
                        "more than {MAX_MODULES} modules are not supported"
                    ));
                }
                let start = mem.read_u32(body)? as u64;
                let mend = mem.read_u32(body + 4)? as u64;
                let cmdline = tag_string(&mut bi, body + 8, body_len - 8, "module command line")?;
                let range = check_module(start, mend, bi.modules.len())?;
                bi.modules.push(BootModule {
                    range,
                    cmdline,
                    name: None,
                });
            }
            TAG_MMAP => {
                if body_len < 8 {
                    return Err(err!(InvalidBootInfo, "memory map tag too short"));
                }
                let esize = mem.read_u32(body)? as u64;
                if esize < 24 {
                    return Err(err!(
                        InvalidBootInfo,
                        "memory map entry size {esize} (< 24)"
                    ));
                }
                let mut e = body + 8;
                while e + esize <= at + size {
                    if bi.memory_map.len() == MAX_MMAP_ENTRIES {
                        bi.warnings.push(format!(
                            "memory map has more than {MAX_MMAP_ENTRIES} entries; the rest ignored"
                        ));
                        break;
                    }
                    let base = mem.read_u64(e)?;
                    let len = mem.read_u64(e + 8)?;
                    let kind = mem.read_u32(e + 16)?;
                    bi.memory_map.push(MemoryRegion {
                        range: PhysRange::with_len(base, len),
                        kind: MemoryKind::from_e820(kind),
                    });
                    e += esize;
                }
            }
            TAG_ACPI_NEW => rsdp_new = Some(body),
            TAG_ACPI_OLD => rsdp_old = Some(body),
            _ => {}
        }
        at = match (at + size).checked_add(7) {
            Some(v) => v & !7,
            None => break,
        };
    }
    if !saw_end {
        bi.warnings
            .push("information structure has no end tag".into());
    }
    if bi.memory_map.is_empty() {
        return Err(err!(InvalidBootInfo, "the boot loader gave no memory map"));
    }
    // The tags hold a copy of the RSDP; the copy is a valid RSDP in place.
    bi.rsdp = rsdp_new.or(rsdp_old);
    Ok(bi)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bootinfo::testmem::TestMem;

    struct Builder(Vec<u8>);
    impl Builder {
        fn new() -> Self {
            Builder(vec![0; 8])
        }
        fn tag(&mut self, ty: u32, body: &[u8]) -> &mut Self {
            self.0.extend(ty.to_le_bytes());
            self.0.extend((8 + body.len() as u32).to_le_bytes());
            self.0.extend(body);
            while !self.0.len().is_multiple_of(8) {
                self.0.push(0);
            }
            self
        }
        fn finish(&mut self) -> Vec<u8> {
            self.tag(TAG_END, &[]);
            let n = self.0.len() as u32;
            self.0[..4].copy_from_slice(&n.to_le_bytes());
            self.0.clone()
        }
    }

    fn module(start: u32, end: u32, s: &str) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend(start.to_le_bytes());
        v.extend(end.to_le_bytes());
        v.extend(s.as_bytes());
        v.push(0);
        v
    }

    fn mmap(entries: &[(u64, u64, u32)]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend(24u32.to_le_bytes());
        v.extend(0u32.to_le_bytes());
        for (b, l, t) in entries {
            v.extend(b.to_le_bytes());
            v.extend(l.to_le_bytes());
            v.extend(t.to_le_bytes());
            v.extend(0u32.to_le_bytes());
        }
        v
    }

    fn grub_like() -> Vec<u8> {
        Builder::new()
            .tag(TAG_CMDLINE, b"console=com1 flask=permissive\0")
            .tag(TAG_LOADER_NAME, b"GRUB 2.06\0")
            .tag(TAG_MODULE, &module(0x30_0000, 0x30_8000, ""))
            .tag(TAG_MODULE, &module(0x30_8000, 0x30_9000, "x=1"))
            .tag(4, &[0; 8])
            .tag(
                TAG_MMAP,
                &mmap(&[
                    (0, 0x9fc00, 1),
                    (0x10_0000, 0x3ff0_0000, 1),
                    (0xfffc_0000, 0x4_0000, 2),
                ]),
            )
            .tag(
                TAG_ACPI_OLD,
                b"RSD PTR \x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
            )
            .finish()
    }

    #[test]
    fn parses_grub_style_info() {
        let mem = TestMem {
            chunks: vec![(0x1_0000, grub_like())],
        };
        let bi = parse(&mem, 0x1_0000).unwrap();
        assert_eq!(bi.protocol, BootProtocol::Multiboot2);
        assert_eq!(bi.cmdline, "console=com1 flask=permissive");
        assert_eq!(bi.loader.as_deref(), Some("GRUB 2.06"));
        assert_eq!(bi.modules.len(), 2);
        assert_eq!(bi.modules[1].range, PhysRange::new(0x30_8000, 0x30_9000));
        assert_eq!(bi.modules[1].cmdline, "x=1");
        assert_eq!(bi.modules[0].name, None);
        assert_eq!(bi.memory_map.len(), 3);
        assert_eq!(bi.memory_map[2].kind, MemoryKind::Reserved(2));
        assert!(bi.rsdp.is_some());
        let rsdp = bi.rsdp.unwrap();
        assert_eq!(
            &mem.chunks[0].1[(rsdp - 0x1_0000) as usize..][..8],
            b"RSD PTR "
        );
        assert!(bi.warnings.is_empty());
        assert_eq!(bi.structures[0].start, 0x1_0000);
    }

    #[test]
    fn bad_structures_are_errors_not_panics() {
        let good = grub_like();
        // Misaligned.
        let mem = TestMem {
            chunks: vec![(0x1_0000, good.clone())],
        };
        assert!(parse(&mem, 0x1_0004).is_err());
        // A tag whose size runs past the end.
        let mut bad = good.clone();
        bad[12..16].copy_from_slice(&0xffffu32.to_le_bytes());
        assert!(
            parse(
                &TestMem {
                    chunks: vec![(0x1_0000, bad)]
                },
                0x1_0000
            )
            .is_err()
        );
        // A zero-size tag (would loop forever).
        let mut bad = good.clone();
        bad[12..16].copy_from_slice(&0u32.to_le_bytes());
        assert!(
            parse(
                &TestMem {
                    chunks: vec![(0x1_0000, bad)]
                },
                0x1_0000
            )
            .is_err()
        );
        // Total size absurd.
        let mut bad = good.clone();
        bad[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(
            parse(
                &TestMem {
                    chunks: vec![(0x1_0000, bad)]
                },
                0x1_0000
            )
            .is_err()
        );
        // No memory map.
        let nomap = Builder::new().tag(TAG_CMDLINE, b"x\0").finish();
        let e = parse(
            &TestMem {
                chunks: vec![(0x1_0000, nomap)],
            },
            0x1_0000,
        )
        .unwrap_err();
        assert!(e.detail().contains("no memory map"));
        // Unterminated command line: truncated to its tag, with a warning.
        let unterminated = Builder::new()
            .tag(TAG_CMDLINE, b"abcdefgh")
            .tag(TAG_MMAP, &mmap(&[(0, 0x1000, 1)]))
            .finish();
        let bi = parse(
            &TestMem {
                chunks: vec![(0x1_0000, unterminated)],
            },
            0x1_0000,
        )
        .unwrap();
        assert_eq!(bi.cmdline, "abcdefgh");
        assert_eq!(bi.warnings.len(), 1);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let mut v = vec![0u8; 8];
            v.extend(&body);
            let n = v.len() as u32;
            v[..4].copy_from_slice(&n.to_le_bytes());
            let _ = parse(&TestMem { chunks: vec![(0x1_0000, v)] }, 0x1_0000);
        }
    }
}
