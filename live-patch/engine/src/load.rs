//! Resolving a payload against the running image and relocating it.

use crate::{AllocRequest, Allocation, UploadError};
use alloc::string::ToString;
use alloc::vec;
use alloc::vec::Vec;
use livepatch_format::elf::{self, SHN_UNDEF};
use livepatch_format::payload::{Payload, Region, reloc_width};
use warden_symbols::{Symbol, SymbolTable};

/// Page size the regions are rounded to.
pub const PAGE: u64 = 4096;

/// Where each loaded section goes: region and offset within it.
#[derive(Debug, Clone)]
pub struct Layout {
    /// Indexed by ELF section index; `None` for sections not loaded.
    pub place: Vec<Option<(Region, u64)>>,
    pub request: AllocRequest,
}

fn align_up(v: u64, a: u64) -> Option<u64> {
    let a = a.max(1);
    v.checked_add(a - 1).map(|x| x & !(a - 1))
}

/// Lay out the loaded sections in three regions.
pub fn layout(p: &Payload<'_>) -> Result<Layout, UploadError> {
    let mut place = vec![None; p.elf.sections.len()];
    let mut sizes = [0u64; 3];
    for &(i, region) in &p.loaded {
        let s = &p.elf.sections[i];
        let r = region as usize;
        let off = align_up(sizes[r], s.align).unwrap_or(u64::MAX);
        sizes[r] = off.saturating_add(s.size);
        if sizes[r] > livepatch_format::MAX_PAYLOAD_SIZE as u64 * 4 {
            // .bss can be larger than the file, but not without bound.
            return Err(UploadError::TooLarge {
                size: usize::try_from(sizes[r]).unwrap_or(usize::MAX),
                max: livepatch_format::MAX_PAYLOAD_SIZE * 4,
            });
        }
        place[i] = Some((region, off));
    }
    let page = |v: u64| align_up(v, PAGE).unwrap_or(u64::MAX);
    Ok(Layout {
        place,
        request: AllocRequest {
            text: page(sizes[0]),
            ro: page(sizes[1]),
            rw: page(sizes[2]),
        },
    })
}

/// Find the symbol named `name` at exactly `addr`.
pub fn find_at<'t>(t: &SymbolTable<'t>, name: &str, addr: u64) -> Option<Symbol<'t>> {
    // First entry with entry.addr >= addr (entries are sorted by address).
    let (mut lo, mut hi) = (0, t.len());
    while lo < hi {
        let mid = (lo + hi) / 2;
        match t.get(mid) {
            Some(s) if s.addr < addr => lo = mid + 1,
            _ => hi = mid,
        }
    }
    (lo..t.len())
        .map_while(|i| t.get(i).filter(|s| s.addr == addr))
        .find(|s| s.name == name)
}

/// Resolve a payload's reference to a hypervisor symbol.
pub fn resolve<'t>(
    t: &SymbolTable<'t>,
    name: &str,
    expected: u64,
) -> Result<Symbol<'t>, UploadError> {
    if expected != 0 {
        return find_at(t, name, expected).ok_or_else(|| {
            if t.lookup_name(name).is_some() {
                UploadError::SymbolAddressMismatch {
                    name: name.to_string(),
                    expected,
                }
            } else {
                UploadError::UnknownSymbol(name.to_string())
            }
        });
    }
    let first = t
        .lookup_name(name)
        .ok_or_else(|| UploadError::UnknownSymbol(name.to_string()))?;
    let count = t.iter().filter(|s| s.name == name).count();
    if count > 1 {
        return Err(UploadError::AmbiguousSymbol {
            name: name.to_string(),
            count,
        });
    }
    Ok(first)
}

/// Final addresses of every symbol (imports resolved, payload symbols placed).
pub fn symbol_addresses(
    p: &Payload<'_>,
    table: &SymbolTable<'_>,
    lay: &Layout,
    at: &Allocation,
) -> Result<Vec<u64>, UploadError> {
    let mut out = Vec::with_capacity(p.elf.symbols.len());
    for s in &p.elf.symbols {
        let a = if s.index == 0 || s.kind == elf::STT_FILE {
            0
        } else if s.shndx == SHN_UNDEF {
            resolve(table, s.name, s.value)?.addr
        } else {
            section_addr(lay, at, s.shndx as usize).ok_or(UploadError::Internal(
                "defined symbol in an unplaced section",
            ))? + s.value
        };
        out.push(a);
    }
    Ok(out)
}

/// The run-time address of a loaded section.
pub fn section_addr(lay: &Layout, at: &Allocation, index: usize) -> Option<u64> {
    let (region, off) = (*lay.place.get(index)?)?;
    Some(
        match region {
            Region::Text => at.text,
            Region::ReadOnly => at.ro,
            Region::ReadWrite => at.rw,
        } + off,
    )
}

/// The three region images, relocated for `at`.
#[derive(Debug, Clone, Default)]
pub struct Images {
    pub text: Vec<u8>,
    pub ro: Vec<u8>,
    pub rw: Vec<u8>,
}

/// Copy the sections into their regions and apply every relocation.
pub fn relocate(
    p: &Payload<'_>,
    lay: &Layout,
    at: &Allocation,
    addrs: &[u64],
) -> Result<Images, UploadError> {
    let mut im = Images {
        text: vec![0; lay.request.text as usize],
        ro: vec![0; lay.request.ro as usize],
        rw: vec![0; lay.request.rw as usize],
    };
    for &(i, region) in &p.loaded {
        let s = &p.elf.sections[i];
        let (_, off) = lay.place[i].ok_or(UploadError::Internal("unplaced section"))?;
        let buf = match region {
            Region::Text => &mut im.text,
            Region::ReadOnly => &mut im.ro,
            Region::ReadWrite => &mut im.rw,
        };
        let off = off as usize;
        buf[off..off + s.data.len()].copy_from_slice(s.data);
    }
    for rs in p.elf.sections.iter().filter(|s| s.kind == elf::SHT_RELA) {
        let target = rs.info as usize;
        let (region, base_off) =
            lay.place[target].ok_or(UploadError::Internal("relocation target not placed"))?;
        let sec_addr = section_addr(lay, at, target)
            .ok_or(UploadError::Internal("relocation target not placed"))?;
        for (n, r) in p.elf.relocations(rs).enumerate() {
            let sym = &p.elf.symbols[r.sym as usize];
            let s = addrs[r.sym as usize];
            let pc = sec_addr.wrapping_add(r.offset);
            let a = r.addend;
            let overflow = || UploadError::RelocationOverflow {
                section: p.elf.sections[target].name.to_string(),
                index: n,
                symbol: sym.name.to_string(),
            };
            let sa = (s as i128) + (a as i128);
            let pcrel = sa - (pc as i128);
            let (bytes, width): ([u8; 8], usize) = match r.kind {
                elf::R_X86_64_64 => ((sa as u64).to_le_bytes(), 8),
                elf::R_X86_64_PC64 => ((pcrel as i64 as u64).to_le_bytes(), 8),
                elf::R_X86_64_PC32 | elf::R_X86_64_PLT32 => {
                    let v = i32::try_from(pcrel).map_err(|_| overflow())?;
                    ((v as i64 as u64).to_le_bytes(), 4)
                }
                elf::R_X86_64_32 => {
                    let v = u32::try_from(sa).map_err(|_| overflow())?;
                    ((v as u64).to_le_bytes(), 4)
                }
                elf::R_X86_64_32S => {
                    let v = i32::try_from(sa).map_err(|_| overflow())?;
                    ((v as i64 as u64).to_le_bytes(), 4)
                }
                _ => {
                    return Err(UploadError::Internal(
                        "unsupported relocation passed the format check",
                    ));
                }
            };
            debug_assert_eq!(reloc_width(r.kind), Some(width as u64));
            let buf = match region {
                Region::Text => &mut im.text,
                Region::ReadOnly => &mut im.ro,
                Region::ReadWrite => &mut im.rw,
            };
            let at = base_off as usize + r.offset as usize;
            buf[at..at + width].copy_from_slice(&bytes[..width]);
        }
    }
    Ok(im)
}
