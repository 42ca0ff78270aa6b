//! Xen's ELF notes (xen/include/public/elfnote.h): the note segments of a
//! kernel, with the name "Xen". Only what the PVH builder needs is kept:
//! `XEN_ELFNOTE_PHYS32_ENTRY` (the 32-bit physical entry point; 4-byte
//! descriptor from small test kernels, 8-byte from Linux).

use crate::{Result, err};

/// `XEN_ELFNOTE_PHYS32_ENTRY`.
pub const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;

/// What the kernel's Xen notes say.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct XenNotes {
    /// Guest-physical 32-bit entry point (PVH).
    pub phys32_entry: Option<u64>,
}

fn u32_at(b: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?))
}

/// Read the Xen notes in `file`'s note ranges (offset, size; already checked
/// to lie in the file). A malformed note segment, or a PHYS32_ENTRY with a
/// descriptor other than 4 or 8 bytes, is refused.
pub fn parse(file: &[u8], ranges: &[(u64, u64)]) -> Result<XenNotes> {
    let mut n = XenNotes::default();
    for &(off, len) in ranges {
        let seg = file
            .get(off as usize..(off as usize).saturating_add(len as usize))
            .ok_or_else(|| err!(InvalidInput, "note segment beyond the end of the file"))?;
        let mut at = 0usize;
        while at + 12 <= seg.len() {
            let (Some(namesz), Some(descsz), Some(kind)) =
                (u32_at(seg, at), u32_at(seg, at + 4), u32_at(seg, at + 8))
            else {
                break;
            };
            let name_at = at + 12;
            let desc_at = (namesz as usize)
                .checked_next_multiple_of(4)
                .and_then(|p| name_at.checked_add(p));
            let next = desc_at.and_then(|d| {
                (descsz as usize)
                    .checked_next_multiple_of(4)
                    .and_then(|p| d.checked_add(p))
            });
            let (Some(desc_at), Some(next)) = (desc_at, next) else {
                return Err(err!(
                    InvalidInput,
                    "ELF note at {:#x} overflows",
                    off as usize + at
                ));
            };
            if desc_at + descsz as usize > seg.len() || name_at + namesz as usize > seg.len() {
                return Err(err!(
                    InvalidInput,
                    "ELF note at {:#x} runs past its segment",
                    off as usize + at
                ));
            }
            let name = &seg[name_at..name_at + namesz as usize];
            let desc = &seg[desc_at..desc_at + descsz as usize];
            if name == b"Xen\0" && kind == XEN_ELFNOTE_PHYS32_ENTRY {
                let v = match desc.len() {
                    4 => u32::from_le_bytes(desc.try_into().unwrap_or([0; 4])) as u64,
                    8 => u64::from_le_bytes(desc.try_into().unwrap_or([0; 8])),
                    l => {
                        return Err(err!(
                            InvalidInput,
                            "Xen PHYS32_ENTRY note with a {l}-byte descriptor (4 or 8 expected)"
                        ));
                    }
                };
                if v >> 32 != 0 {
                    return Err(err!(InvalidInput, "Xen PHYS32_ENTRY {v:#x} is above 4 GiB"));
                }
                n.phys32_entry = Some(v);
            }
            at = next;
        }
    }
    Ok(n)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use alloc::vec::Vec;

    /// One note: name, type, descriptor (padded as ELF wants).
    pub fn note(name: &[u8], kind: u32, desc: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&(name.len() as u32).to_le_bytes());
        v.extend_from_slice(&(desc.len() as u32).to_le_bytes());
        v.extend_from_slice(&kind.to_le_bytes());
        v.extend_from_slice(name);
        while !v.len().is_multiple_of(4) {
            v.push(0);
        }
        v.extend_from_slice(desc);
        while !v.len().is_multiple_of(4) {
            v.push(0);
        }
        v
    }

    #[test]
    fn reads_both_descriptor_sizes() {
        let mut f = note(b"GNU\0", 3, &[1, 2, 3]);
        f.extend(note(b"Xen\0", 18, &0x100_0850u32.to_le_bytes()));
        let n = parse(&f, &[(0, f.len() as u64)]).unwrap();
        assert_eq!(n.phys32_entry, Some(0x100_0850));
        let f = note(b"Xen\0", 18, &0x20_0000u64.to_le_bytes());
        assert_eq!(
            parse(&f, &[(0, f.len() as u64)]).unwrap().phys32_entry,
            Some(0x20_0000)
        );
        // Another owner's type 18 is not Xen's.
        let f = note(b"Xem\0", 18, &1u32.to_le_bytes());
        assert_eq!(
            parse(&f, &[(0, f.len() as u64)]).unwrap().phys32_entry,
            None
        );
    }

    #[test]
    fn refuses_bad_notes() {
        let f = note(b"Xen\0", 18, &[1, 2]);
        let e = parse(&f, &[(0, f.len() as u64)]).unwrap_err();
        assert!(alloc::format!("{e}").contains("2-byte descriptor"), "{e}");
        let f = note(b"Xen\0", 18, &(1u64 << 33).to_le_bytes());
        assert!(parse(&f, &[(0, f.len() as u64)]).is_err());
        let mut f = note(b"Xen\0", 18, &1u32.to_le_bytes());
        f[4..8].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
        assert!(parse(&f, &[(0, f.len() as u64)]).is_err());
    }
}
