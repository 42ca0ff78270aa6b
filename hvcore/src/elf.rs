//! ELF kernel images (dom0's kernel, boot-built domains): parsing and
//! validation. Only statically linked x86 executables are accepted: ELF64
//! x86-64, or ELF32 (x86-64 or i386 machine, as Xen's loader: small PVH test
//! kernels are often ELF32 with a 64-bit body); every offset, size and
//! address is checked against the file and against the guest memory it will
//! be loaded into, with overflow-safe arithmetic. [`parse_any`] also returns
//! the file ranges of the note segments (the PVH builder reads Xen's ELF
//! notes from them, `domain::builder::pvh`).

use crate::{Result, err};
use alloc::vec::Vec;

/// One loadable segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Guest-physical load address.
    pub paddr: u64,
    /// Bytes copied from the file.
    pub filesz: u64,
    /// Bytes in memory (the rest is zeroed).
    pub memsz: u64,
    /// Offset in the file.
    pub offset: u64,
    /// Executable.
    pub exec: bool,
}

/// A validated image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub entry: u64,
    pub segments: Vec<Segment>,
    /// Lowest and highest (exclusive) guest-physical addresses occupied.
    pub start: u64,
    pub end: u64,
    /// ELF class: 32 or 64.
    pub class: u8,
    /// File ranges (offset, size) of the PT_NOTE segments, checked to lie in the file.
    pub notes: Vec<(u64, u64)>,
}

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;
const PT_NOTE: u32 = 4;
const EM_386: u16 = 3;
const PF_X: u32 = 1;
const EM_X86_64: u16 = 62;
const ET_EXEC: u16 = 2;
const MAX_SEGMENTS: usize = 64;

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap_or([0; 4]))
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap_or([0; 8]))
}

/// Parse and validate an ELF64 x86-64 `file` entered at its ELF entry point:
/// segments must lie in `[min_addr, mem_size)`, must not overlap, and the
/// entry point must be in an executable segment.
pub fn parse(file: &[u8], min_addr: u64, mem_size: u64) -> Result<Image> {
    let img = parse_any(file, min_addr, mem_size)?;
    if img.class != 64 {
        return Err(err!(InvalidInput, "not an ELF64 image (class 1)"));
    }
    img.check_entry(img.entry)?;
    Ok(img)
}

impl Image {
    /// Is `entry` (a guest-physical address) inside an executable segment?
    pub fn check_entry(&self, entry: u64) -> Result<()> {
        if self
            .segments
            .iter()
            .any(|s| s.exec && s.paddr <= entry && entry < s.paddr + s.memsz)
        {
            Ok(())
        } else {
            Err(err!(
                InvalidInput,
                "entry point {entry:#x} is not in an executable segment"
            ))
        }
    }
}

/// Parse and validate an ELF32 or ELF64 x86 `file` without checking its
/// entry point (the caller knows which entry it will use): segments must lie
/// in `[min_addr, mem_size)` and must not overlap.
pub fn parse_any(file: &[u8], min_addr: u64, mem_size: u64) -> Result<Image> {
    if file.len() < 52 {
        return Err(err!(
            InvalidInput,
            "{} bytes is too short for an ELF header",
            file.len()
        ));
    }
    if &file[..4] != b"\x7fELF" {
        return Err(err!(InvalidInput, "not an ELF image (bad magic)"));
    }
    let class = match file[4] {
        1 => 32u8,
        2 => 64u8,
        c => return Err(err!(InvalidInput, "unknown ELF class {c}")),
    };
    if class == 64 && file.len() < 64 {
        return Err(err!(
            InvalidInput,
            "{} bytes is too short for an ELF64 header",
            file.len()
        ));
    }
    if file[5] != 1 {
        return Err(err!(InvalidInput, "not a little-endian ELF image"));
    }
    let etype = u16_at(file, 16);
    if etype != ET_EXEC {
        return Err(err!(
            InvalidInput,
            "ELF type {etype} is not a static executable (ET_EXEC)"
        ));
    }
    let machine = u16_at(file, 18);
    if !(machine == EM_X86_64 || (class == 32 && machine == EM_386)) {
        return Err(err!(
            InvalidInput,
            "ELF machine {machine} is not x86-64{}",
            if class == 32 { " or i386" } else { "" }
        ));
    }
    let (entry, phoff, phentsize, phnum, min_phent) = if class == 64 {
        (
            u64_at(file, 24),
            u64_at(file, 32),
            u16_at(file, 54) as u64,
            u16_at(file, 56) as usize,
            56,
        )
    } else {
        (
            u32_at(file, 24) as u64,
            u32_at(file, 28) as u64,
            u16_at(file, 42) as u64,
            u16_at(file, 44) as usize,
            32,
        )
    };
    if phentsize < min_phent {
        return Err(err!(
            InvalidInput,
            "program header size {phentsize} < {min_phent}"
        ));
    }
    if phnum == 0 || phnum > 256 {
        return Err(err!(InvalidInput, "{phnum} program headers"));
    }
    let table_end = phentsize
        .checked_mul(phnum as u64)
        .and_then(|n| n.checked_add(phoff))
        .ok_or_else(|| err!(InvalidInput, "program header table overflows"))?;
    if table_end > file.len() as u64 {
        return Err(err!(
            InvalidInput,
            "program header table beyond the end of the file"
        ));
    }
    let mut segments = Vec::new();
    let mut notes = Vec::new();
    for i in 0..phnum {
        let o = (phoff + i as u64 * phentsize) as usize;
        let ptype = u32_at(file, o);
        // (flags, offset, paddr, filesz, memsz)
        let (flags, offset, paddr, filesz, memsz) = if class == 64 {
            (
                u32_at(file, o + 4),
                u64_at(file, o + 8),
                u64_at(file, o + 24),
                u64_at(file, o + 32),
                u64_at(file, o + 40),
            )
        } else {
            (
                u32_at(file, o + 24),
                u32_at(file, o + 4) as u64,
                u32_at(file, o + 12) as u64,
                u32_at(file, o + 16) as u64,
                u32_at(file, o + 20) as u64,
            )
        };
        match ptype {
            PT_LOAD => {}
            PT_DYNAMIC | PT_INTERP => {
                return Err(err!(
                    InvalidInput,
                    "dynamically linked image (segment type {ptype})"
                ));
            }
            PT_NOTE => {
                let end = offset.checked_add(filesz);
                if end.is_none_or(|e| e > file.len() as u64) {
                    return Err(err!(
                        InvalidInput,
                        "segment {i}: note range {offset:#x}+{filesz:#x} beyond the end of the file"
                    ));
                }
                if notes.len() < MAX_SEGMENTS {
                    notes.push((offset, filesz));
                }
                continue;
            }
            _ => continue,
        }
        if memsz == 0 {
            continue;
        }
        if filesz > memsz {
            return Err(err!(
                InvalidInput,
                "segment {i}: file size {filesz:#x} > memory size {memsz:#x}"
            ));
        }
        let fend = offset
            .checked_add(filesz)
            .ok_or_else(|| err!(InvalidInput, "segment {i}: file range overflows"))?;
        if fend > file.len() as u64 {
            return Err(err!(
                InvalidInput,
                "segment {i}: file range {offset:#x}+{filesz:#x} beyond the end of the file"
            ));
        }
        let mend = paddr
            .checked_add(memsz)
            .ok_or_else(|| err!(InvalidInput, "segment {i}: address range overflows"))?;
        if paddr < min_addr || mend > mem_size {
            return Err(err!(
                InvalidInput,
                "segment {i}: {paddr:#x}-{mend:#x} outside guest memory {min_addr:#x}-{mem_size:#x}"
            ));
        }
        if segments.len() == MAX_SEGMENTS {
            return Err(err!(
                InvalidInput,
                "more than {MAX_SEGMENTS} loadable segments"
            ));
        }
        segments.push(Segment {
            paddr,
            filesz,
            memsz,
            offset,
            exec: flags & PF_X != 0,
        });
    }
    if segments.is_empty() {
        return Err(err!(InvalidInput, "no loadable segment"));
    }
    segments.sort_by_key(|s| s.paddr);
    for w in segments.windows(2) {
        if w[0].paddr + w[0].memsz > w[1].paddr {
            return Err(err!(
                InvalidInput,
                "segments at {:#x} and {:#x} overlap",
                w[0].paddr,
                w[1].paddr
            ));
        }
    }
    let start = segments[0].paddr;
    let end = segments
        .iter()
        .map(|s| s.paddr + s.memsz)
        .max()
        .unwrap_or(start);
    Ok(Image {
        entry,
        segments,
        start,
        end,
        class,
        notes,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal valid ELF64 executable: one RX segment at `paddr` holding
    /// `code`, memsz `memsz`, entry at `paddr`.
    pub fn tiny(paddr: u64, code: &[u8], memsz: u64) -> Vec<u8> {
        let mut f = alloc::vec![0u8; 120];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = 2;
        f[5] = 1;
        f[6] = 1;
        f[16..18].copy_from_slice(&ET_EXEC.to_le_bytes());
        f[18..20].copy_from_slice(&EM_X86_64.to_le_bytes());
        f[24..32].copy_from_slice(&paddr.to_le_bytes());
        f[32..40].copy_from_slice(&64u64.to_le_bytes());
        f[52..54].copy_from_slice(&64u16.to_le_bytes());
        f[54..56].copy_from_slice(&56u16.to_le_bytes());
        f[56..58].copy_from_slice(&1u16.to_le_bytes());
        let ph = 64;
        f[ph..ph + 4].copy_from_slice(&PT_LOAD.to_le_bytes());
        f[ph + 4..ph + 8].copy_from_slice(&5u32.to_le_bytes());
        f[ph + 8..ph + 16].copy_from_slice(&120u64.to_le_bytes());
        f[ph + 16..ph + 24].copy_from_slice(&paddr.to_le_bytes());
        f[ph + 24..ph + 32].copy_from_slice(&paddr.to_le_bytes());
        f[ph + 32..ph + 40].copy_from_slice(&(code.len() as u64).to_le_bytes());
        f[ph + 40..ph + 48].copy_from_slice(&memsz.to_le_bytes());
        f.extend_from_slice(code);
        f
    }

    #[test]
    fn accepts_a_valid_image() {
        let f = tiny(0x100000, &[0xf4; 16], 0x2000);
        let img = parse(&f, 0x10000, 1 << 24).unwrap();
        assert_eq!(img.entry, 0x100000);
        assert_eq!(img.start, 0x100000);
        assert_eq!(img.end, 0x102000);
        assert_eq!(img.segments.len(), 1);
    }

    #[test]
    fn refuses_bad_images() {
        let good = tiny(0x100000, &[0xf4; 16], 0x2000);
        assert!(parse(&good[..40], 0, 1 << 24).is_err());
        let mut bad = good.clone();
        bad[0] = 0;
        assert!(parse(&bad, 0, 1 << 24).is_err());
        // Outside guest memory / below the minimum.
        assert!(parse(&good, 0x10000, 0x101000).is_err());
        assert!(parse(&good, 0x200000, 1 << 24).is_err());
        // File range beyond the end.
        let mut b = good.clone();
        b[64 + 32..64 + 40].copy_from_slice(&0x1000u64.to_le_bytes());
        assert!(parse(&b, 0, 1 << 24).is_err());
        // Overflowing address.
        let mut b = good.clone();
        b[64 + 24..64 + 32].copy_from_slice(&(u64::MAX - 4).to_le_bytes());
        assert!(parse(&b, 0, u64::MAX).is_err());
        // Entry outside the segment.
        let mut b = good.clone();
        b[24..32].copy_from_slice(&0x500000u64.to_le_bytes());
        assert!(parse(&b, 0, 1 << 24).is_err());
        // Program header table beyond the file.
        let mut b = good.clone();
        b[56..58].copy_from_slice(&200u16.to_le_bytes());
        assert!(parse(&b, 0, 1 << 24).is_err());
        // Wrong machine.
        let mut b = good;
        b[18] = 3;
        assert!(parse(&b, 0, 1 << 24).is_err());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = parse(&data, 0, 1 << 30);
        }

        #[test]
        fn mutated_headers_never_panic(i in 0usize..168, v in proptest::num::u8::ANY) {
            let mut f = tiny(0x100000, &[0x90; 48], 0x1000);
            f[i] = v;
            if let Ok(img) = parse(&f, 0x1000, 1 << 24) {
                for s in &img.segments {
                    proptest::prop_assert!(s.offset + s.filesz <= f.len() as u64);
                    proptest::prop_assert!(s.paddr + s.memsz <= 1 << 24);
                }
            }
        }
    }
}
