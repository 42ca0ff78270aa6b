//! A strict reader for the ELF64 relocatable objects that carry payloads.
//!
//! Only what a payload may contain is accepted: little-endian ELF64, `ET_REL`,
//! `EM_X86_64`, no program headers, at most [`MAX_SECTIONS`] sections of the
//! types `PROGBITS`, `NOBITS`, `NOTE`, `SYMTAB` (one), `STRTAB` and `RELA`,
//! every offset and size inside the file, names NUL-terminated ASCII. Every
//! refusal names the check that failed and where.

use alloc::vec::Vec;
use core::fmt;

/// Most sections a payload may have.
pub const MAX_SECTIONS: usize = 256;
/// Largest section alignment accepted.
pub const MAX_ALIGN: u64 = 4096;

pub const SHT_NULL: u32 = 0;
pub const SHT_PROGBITS: u32 = 1;
pub const SHT_SYMTAB: u32 = 2;
pub const SHT_STRTAB: u32 = 3;
pub const SHT_RELA: u32 = 4;
pub const SHT_NOTE: u32 = 7;
pub const SHT_NOBITS: u32 = 8;

pub const SHF_WRITE: u64 = 1;
pub const SHF_ALLOC: u64 = 2;
pub const SHF_EXECINSTR: u64 = 4;
pub const SHF_MERGE: u64 = 0x10;
pub const SHF_STRINGS: u64 = 0x20;
pub const SHF_INFO_LINK: u64 = 0x40;
/// Section flags a payload may use.
pub const SHF_KNOWN: u64 =
    SHF_WRITE | SHF_ALLOC | SHF_EXECINSTR | SHF_MERGE | SHF_STRINGS | SHF_INFO_LINK;

pub const SHN_UNDEF: u16 = 0;
pub const SHN_ABS: u16 = 0xfff1;

pub const STB_LOCAL: u8 = 0;
pub const STB_GLOBAL: u8 = 1;
pub const STB_WEAK: u8 = 2;

pub const STT_NOTYPE: u8 = 0;
pub const STT_OBJECT: u8 = 1;
pub const STT_FUNC: u8 = 2;
pub const STT_SECTION: u8 = 3;
pub const STT_FILE: u8 = 4;

pub const R_X86_64_NONE: u32 = 0;
pub const R_X86_64_64: u32 = 1;
pub const R_X86_64_PC32: u32 = 2;
pub const R_X86_64_PLT32: u32 = 4;
pub const R_X86_64_32: u32 = 10;
pub const R_X86_64_32S: u32 = 11;
pub const R_X86_64_PC64: u32 = 24;

const EHDR: usize = 64;
const SHDR: usize = 64;
const SYM: usize = 24;
const RELA: usize = 24;

/// Why an ELF object was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElfError {
    /// Shorter than the ELF header or the header's tables.
    Truncated(&'static str),
    /// Not an ELF file (bad magic).
    NotElf,
    /// An ELF file of a kind a payload cannot be (class, byte order, type,
    /// machine, version, program headers...).
    Unsupported(&'static str),
    /// A header field is out of range.
    BadHeader(&'static str),
    /// Section `index` is malformed.
    BadSection { index: usize, why: &'static str },
    /// Symbol `index` is malformed.
    BadSymbol { index: usize, why: &'static str },
    /// Relocation `index` of section `section` is malformed.
    BadRelocation {
        section: usize,
        index: usize,
        why: &'static str,
    },
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ElfError::Truncated(what) => write!(f, "truncated ELF: {what}"),
            ElfError::NotElf => f.write_str("not an ELF file"),
            ElfError::Unsupported(what) => write!(f, "unsupported ELF: {what}"),
            ElfError::BadHeader(what) => write!(f, "bad ELF header: {what}"),
            ElfError::BadSection { index, why } => write!(f, "bad section [{index}]: {why}"),
            ElfError::BadSymbol { index, why } => write!(f, "bad symbol [{index}]: {why}"),
            ElfError::BadRelocation {
                section,
                index,
                why,
            } => write!(f, "bad relocation [{index}] in section [{section}]: {why}"),
        }
    }
}

pub(crate) fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}
pub(crate) fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}
pub(crate) fn u64_at(b: &[u8], off: usize) -> u64 {
    (u32_at(b, off) as u64) | ((u32_at(b, off + 4) as u64) << 32)
}

/// One section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Section<'a> {
    pub index: usize,
    pub name: &'a str,
    pub kind: u32,
    pub flags: u64,
    pub size: u64,
    pub align: u64,
    pub link: u32,
    pub info: u32,
    pub entsize: u64,
    /// File contents (empty for `NOBITS`).
    pub data: &'a [u8],
}

impl Section<'_> {
    pub fn is_alloc(&self) -> bool {
        self.flags & SHF_ALLOC != 0
    }
    pub fn is_exec(&self) -> bool {
        self.flags & SHF_EXECINSTR != 0
    }
    pub fn is_write(&self) -> bool {
        self.flags & SHF_WRITE != 0
    }
}

/// One symbol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Symbol<'a> {
    pub index: usize,
    pub name: &'a str,
    pub value: u64,
    pub size: u64,
    pub kind: u8,
    pub bind: u8,
    /// Section index, [`SHN_UNDEF`] or [`SHN_ABS`].
    pub shndx: u16,
}

impl Symbol<'_> {
    pub fn is_undefined(&self) -> bool {
        self.shndx == SHN_UNDEF
    }
}

/// One relocation (with addend).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rela {
    pub offset: u64,
    pub kind: u32,
    pub sym: u32,
    pub addend: i64,
}

/// A validated ELF object.
#[derive(Debug, Clone)]
pub struct Elf<'a> {
    pub data: &'a [u8],
    pub sections: Vec<Section<'a>>,
    /// Index of the symbol table section, if any.
    pub symtab: Option<usize>,
    pub symbols: Vec<Symbol<'a>>,
}

fn cstr_at(table: &[u8], off: usize) -> Option<&str> {
    let rest = table.get(off..)?;
    let end = rest.iter().position(|&c| c == 0)?;
    let s = &rest[..end];
    if !s.is_ascii() {
        return None;
    }
    core::str::from_utf8(s).ok()
}

impl<'a> Elf<'a> {
    /// Parse and validate `data`.
    pub fn parse(data: &'a [u8]) -> Result<Self, ElfError> {
        if data.len() < 4 || &data[..4] != b"\x7fELF" {
            return Err(if data.len() < 4 && b"\x7fELF".starts_with(data) {
                ElfError::Truncated("shorter than the ELF magic")
            } else {
                ElfError::NotElf
            });
        }
        if data.len() < EHDR {
            return Err(ElfError::Truncated("shorter than the ELF header"));
        }
        if data[4] != 2 {
            return Err(ElfError::Unsupported("not ELF64"));
        }
        if data[5] != 1 {
            return Err(ElfError::Unsupported("not little-endian"));
        }
        if data[6] != 1 || u32_at(data, 20) != 1 {
            return Err(ElfError::Unsupported("ELF version is not 1"));
        }
        if data[7] != 0 {
            return Err(ElfError::Unsupported("OS ABI is not System V"));
        }
        if u16_at(data, 16) != 1 {
            return Err(ElfError::Unsupported("not a relocatable object (ET_REL)"));
        }
        if u16_at(data, 18) != 62 {
            return Err(ElfError::Unsupported("machine is not x86-64"));
        }
        if u64_at(data, 24) != 0 {
            return Err(ElfError::BadHeader("entry point in a relocatable object"));
        }
        if u64_at(data, 32) != 0 || u16_at(data, 56) != 0 {
            return Err(ElfError::Unsupported(
                "program headers in a relocatable object",
            ));
        }
        if u16_at(data, 52) as usize != EHDR {
            return Err(ElfError::BadHeader("e_ehsize is not 64"));
        }
        let shoff = u64_at(data, 40);
        let shentsize = u16_at(data, 58) as usize;
        let shnum = u16_at(data, 60) as usize;
        let shstrndx = u16_at(data, 62) as usize;
        if shentsize != SHDR {
            return Err(ElfError::BadHeader("e_shentsize is not 64"));
        }
        if shnum == 0 {
            return Err(ElfError::BadHeader("no sections"));
        }
        if shnum > MAX_SECTIONS {
            return Err(ElfError::BadHeader("too many sections"));
        }
        if !shoff.is_multiple_of(8) || shoff < EHDR as u64 {
            return Err(ElfError::BadHeader("section header table misplaced"));
        }
        let sh_end = shoff
            .checked_add((shnum * SHDR) as u64)
            .ok_or(ElfError::BadHeader("section header table overflows"))?;
        if sh_end > data.len() as u64 {
            return Err(ElfError::Truncated(
                "section header table beyond the end of the file",
            ));
        }
        if shstrndx == 0 || shstrndx >= shnum {
            return Err(ElfError::BadHeader("no section name table"));
        }
        let shoff = shoff as usize;
        let hdr = |i: usize| &data[shoff + i * SHDR..shoff + (i + 1) * SHDR];
        if hdr(0).iter().any(|&b| b != 0) {
            return Err(ElfError::BadSection {
                index: 0,
                why: "the null section is not all zero",
            });
        }
        // Raw headers first, then names (the name table is one of them).
        let mut raw = Vec::with_capacity(shnum);
        for i in 0..shnum {
            let h = hdr(i);
            let bad = |why| ElfError::BadSection { index: i, why };
            let kind = u32_at(h, 4);
            let flags = u64_at(h, 8);
            let addr = u64_at(h, 16);
            let offset = u64_at(h, 24);
            let size = u64_at(h, 32);
            let link = u32_at(h, 40);
            let info = u32_at(h, 44);
            let align = u64_at(h, 48);
            let entsize = u64_at(h, 56);
            if i == 0 {
                raw.push((
                    0u32,
                    kind,
                    flags,
                    size,
                    align,
                    link,
                    info,
                    entsize,
                    &data[..0],
                ));
                continue;
            }
            match kind {
                SHT_PROGBITS | SHT_SYMTAB | SHT_STRTAB | SHT_RELA | SHT_NOTE | SHT_NOBITS => {}
                SHT_NULL => return Err(bad("SHT_NULL section other than [0]")),
                _ => return Err(bad("unsupported section type")),
            }
            if flags & !SHF_KNOWN != 0 {
                return Err(bad("unsupported section flags"));
            }
            if addr != 0 {
                return Err(bad("section address in a relocatable object"));
            }
            if align > MAX_ALIGN || (align != 0 && !align.is_power_of_two()) {
                return Err(bad("alignment is not a power of two up to 4096"));
            }
            if kind != SHT_NOBITS && size > 0 {
                let end = offset
                    .checked_add(size)
                    .ok_or(bad("section contents overflow"))?;
                if end > data.len() as u64 {
                    return Err(ElfError::Truncated(
                        "section contents beyond the end of the file",
                    ));
                }
                if offset < EHDR as u64 {
                    return Err(bad("section contents overlap the ELF header"));
                }
            }
            let contents = if kind == SHT_NOBITS || size == 0 {
                &data[..0]
            } else {
                &data[offset as usize..(offset + size) as usize]
            };
            raw.push((
                u32_at(h, 0),
                kind,
                flags,
                size,
                align,
                link,
                info,
                entsize,
                contents,
            ));
        }
        let (_, sk, ..) = raw[shstrndx];
        if sk != SHT_STRTAB {
            return Err(ElfError::BadSection {
                index: shstrndx,
                why: "section name table is not SHT_STRTAB",
            });
        }
        let shstr = raw[shstrndx].8;
        let mut sections = Vec::with_capacity(shnum);
        for (i, &(name_off, kind, flags, size, align, link, info, entsize, contents)) in
            raw.iter().enumerate()
        {
            let name = if i == 0 {
                ""
            } else {
                cstr_at(shstr, name_off as usize).ok_or(ElfError::BadSection {
                    index: i,
                    why: "name is not a NUL-terminated ASCII string in the name table",
                })?
            };
            sections.push(Section {
                index: i,
                name,
                kind,
                flags,
                size,
                align,
                link,
                info,
                entsize,
                data: contents,
            });
        }
        for s in &sections[1..] {
            let bad = |why| ElfError::BadSection {
                index: s.index,
                why,
            };
            if s.kind == SHT_STRTAB
                && s.size > 0
                && (s.data[0] != 0 || s.data[s.data.len() - 1] != 0)
            {
                return Err(bad("string table does not start and end with NUL"));
            }
            if s.kind == SHT_STRTAB && s.is_alloc() {
                return Err(bad("string table is SHF_ALLOC"));
            }
        }
        let mut elf = Elf {
            data,
            sections,
            symtab: None,
            symbols: Vec::new(),
        };
        elf.parse_symbols()?;
        for s in elf.sections.iter().filter(|s| s.kind == SHT_RELA) {
            elf.check_rela(s)?;
        }
        Ok(elf)
    }

    fn parse_symbols(&mut self) -> Result<(), ElfError> {
        let mut tabs = self.sections.iter().filter(|s| s.kind == SHT_SYMTAB);
        let Some(tab) = tabs.next().copied() else {
            return Ok(());
        };
        let bad = |why| ElfError::BadSection {
            index: tab.index,
            why,
        };
        if tabs.next().is_some() {
            return Err(bad("more than one symbol table"));
        }
        if tab.entsize != SYM as u64 || tab.size % SYM as u64 != 0 || tab.size == 0 {
            return Err(bad(
                "symbol table entry size is not 24 or its size not a multiple",
            ));
        }
        if tab.is_alloc() {
            return Err(bad("symbol table is SHF_ALLOC"));
        }
        let strtab = self
            .sections
            .get(tab.link as usize)
            .filter(|s| s.index != 0 && s.kind == SHT_STRTAB)
            .ok_or(bad("symbol table's link is not a string table"))?;
        let strs = strtab.data;
        let count = (tab.size / SYM as u64) as usize;
        if tab.info as usize > count || tab.info == 0 {
            return Err(bad("symbol table's first global index is out of range"));
        }
        let nsec = self.sections.len();
        let mut symbols = Vec::with_capacity(count);
        for i in 0..count {
            let e = &tab.data[i * SYM..(i + 1) * SYM];
            let bad = |why| ElfError::BadSymbol { index: i, why };
            if i == 0 {
                if e.iter().any(|&b| b != 0) {
                    return Err(bad("the null symbol is not all zero"));
                }
                symbols.push(Symbol {
                    index: 0,
                    name: "",
                    value: 0,
                    size: 0,
                    kind: STT_NOTYPE,
                    bind: STB_LOCAL,
                    shndx: SHN_UNDEF,
                });
                continue;
            }
            let name = cstr_at(strs, u32_at(e, 0) as usize).ok_or(bad(
                "name is not a NUL-terminated ASCII string in the string table",
            ))?;
            let info = e[4];
            let (bind, kind) = (info >> 4, info & 0xf);
            if e[5] != 0 {
                return Err(bad("non-default visibility"));
            }
            let shndx = u16_at(e, 6);
            let value = u64_at(e, 8);
            let size = u64_at(e, 16);
            if !matches!(bind, STB_LOCAL | STB_GLOBAL | STB_WEAK) {
                return Err(bad("unsupported binding"));
            }
            if !matches!(
                kind,
                STT_NOTYPE | STT_OBJECT | STT_FUNC | STT_SECTION | STT_FILE
            ) {
                return Err(bad("unsupported type"));
            }
            if (bind == STB_LOCAL) != (i < tab.info as usize) {
                return Err(bad(
                    "local symbol after the first global, or global before it",
                ));
            }
            if shndx != SHN_UNDEF && shndx != SHN_ABS && (shndx as usize >= nsec || shndx == 0) {
                return Err(bad("section index out of range"));
            }
            if shndx != SHN_UNDEF && shndx != SHN_ABS {
                let sec = &self.sections[shndx as usize];
                if kind != STT_FILE && !sec.is_alloc() {
                    return Err(bad("defined in a section that is not loaded"));
                }
                let end = value
                    .checked_add(size)
                    .ok_or(bad("value + size overflows"))?;
                if end > sec.size {
                    return Err(bad("extends beyond its section"));
                }
            }
            symbols.push(Symbol {
                index: i,
                name,
                value,
                size,
                kind,
                bind,
                shndx,
            });
        }
        self.symtab = Some(tab.index);
        self.symbols = symbols;
        Ok(())
    }

    fn check_rela(&self, s: &Section<'a>) -> Result<(), ElfError> {
        let bad = |why| ElfError::BadSection {
            index: s.index,
            why,
        };
        if s.entsize != RELA as u64 || !s.size.is_multiple_of(RELA as u64) {
            return Err(bad(
                "relocation entry size is not 24 or its size not a multiple",
            ));
        }
        if s.is_alloc() {
            return Err(bad("relocation section is SHF_ALLOC"));
        }
        if Some(s.link as usize) != self.symtab {
            return Err(bad("relocation section's link is not the symbol table"));
        }
        let target = self
            .sections
            .get(s.info as usize)
            .filter(|t| t.index != 0)
            .ok_or(bad("relocation section's target is out of range"))?;
        if !target.is_alloc() || target.kind != SHT_PROGBITS {
            return Err(bad(
                "relocation section's target is not a loaded PROGBITS section",
            ));
        }
        for (i, r) in self.relocations(s).enumerate() {
            if r.sym as usize >= self.symbols.len() {
                return Err(ElfError::BadRelocation {
                    section: s.index,
                    index: i,
                    why: "symbol index out of range",
                });
            }
        }
        Ok(())
    }

    /// The relocations of a `RELA` section (validated by [`Elf::parse`]).
    pub fn relocations<'s>(&'s self, s: &'s Section<'a>) -> impl Iterator<Item = Rela> + 's {
        let n = if s.kind == SHT_RELA {
            s.data.len() / RELA
        } else {
            0
        };
        (0..n).map(move |i| {
            let e = &s.data[i * RELA..(i + 1) * RELA];
            let info = u64_at(e, 8);
            Rela {
                offset: u64_at(e, 0),
                kind: info as u32,
                sym: (info >> 32) as u32,
                addend: u64_at(e, 16) as i64,
            }
        })
    }

    /// The section named `name` (the first, if several).
    pub fn section_by_name(&self, name: &str) -> Option<&Section<'a>> {
        self.sections.iter().find(|s| s.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_foreign_inputs() {
        assert_eq!(
            Elf::parse(b"").unwrap_err(),
            ElfError::Truncated("shorter than the ELF magic")
        );
        assert_eq!(
            Elf::parse(b"\x7fEL").unwrap_err(),
            ElfError::Truncated("shorter than the ELF magic")
        );
        assert_eq!(Elf::parse(b"MZ\x90\x00").unwrap_err(), ElfError::NotElf);
        assert_eq!(
            Elf::parse(b"\x7fELF\x02\x01\x01").unwrap_err(),
            ElfError::Truncated("shorter than the ELF header")
        );
        let mut h = [0u8; 64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = 1;
        assert_eq!(
            Elf::parse(&h).unwrap_err(),
            ElfError::Unsupported("not ELF64")
        );
    }
}
