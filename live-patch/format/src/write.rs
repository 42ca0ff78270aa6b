//! The payload writer: builds the ELF part of a payload (sign it with
//! [`crate::sig::sign`]). Used by the `livepatch` tool and by tests, so the
//! format has one writer and one reader.
//!
//! The payload's own build-id is the first 20 bytes of SHA-256 over the whole
//! ELF with the build-id bytes zeroed (a GNU build-id is an opaque unique id;
//! linkers use SHA-1 over the same span).

use crate::elf::{
    SHF_ALLOC, SHF_EXECINSTR, SHF_INFO_LINK, SHF_WRITE, SHT_NOBITS, SHT_NOTE, SHT_PROGBITS,
    SHT_RELA, SHT_STRTAB, SHT_SYMTAB, STB_GLOBAL, STB_LOCAL, STT_FUNC, STT_NOTYPE, STT_OBJECT,
};
use crate::payload::{
    FUNC_ENTRY_SIZE, FUNC_VERSION, HookKind, Region, SEC_BUILD_ID, SEC_DEPENDS, SEC_FUNCS,
    SEC_HOOKS_PREFIX, SEC_MODINFO, SEC_XEN_DEPENDS, entry,
};
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use alloc::{format, vec};
use sha2::{Digest, Sha256};

/// Length of the build-ids the writer makes.
pub const BUILD_ID_LEN: usize = 20;

/// A section being written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecId(usize);
/// A symbol being written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SymId(usize);

#[derive(Debug, Clone)]
struct WSection {
    name: String,
    region: Region,
    bss: bool,
    align: u64,
    data: Vec<u8>,
    size: u64,
}

#[derive(Debug, Clone)]
struct WSymbol {
    name: String,
    /// None: undefined (an import).
    section: Option<SecId>,
    value: u64,
    size: u64,
    kind: u8,
}

/// One function record.
#[derive(Debug, Clone)]
pub struct FuncSpec {
    /// An import naming the old function.
    pub old: SymId,
    /// The new function (a defined function symbol), or `None` for a NOP patch.
    pub new: Option<SymId>,
    pub old_size: u32,
    /// For a NOP patch, how many bytes to NOP out; otherwise the new
    /// function's size.
    pub new_size: u32,
    /// Expected first bytes of the old function (up to 31).
    pub expect: Vec<u8>,
}

/// Builds a payload's ELF.
#[derive(Debug, Clone)]
pub struct Builder {
    xen_depends: Vec<u8>,
    depends: Option<Vec<u8>>,
    sections: Vec<WSection>,
    symbols: Vec<WSymbol>,
    relocs: Vec<(SecId, u64, u32, SymId, i64)>,
    funcs: Vec<FuncSpec>,
    hooks: Vec<(HookKind, SymId)>,
    metadata: Vec<(String, String)>,
}

fn note(desc: &[u8]) -> Vec<u8> {
    let mut n = Vec::new();
    n.extend_from_slice(&4u32.to_le_bytes());
    n.extend_from_slice(&(desc.len() as u32).to_le_bytes());
    n.extend_from_slice(&3u32.to_le_bytes());
    n.extend_from_slice(b"GNU\0");
    n.extend_from_slice(desc);
    while n.len() % 4 != 0 {
        n.push(0);
    }
    n
}

struct Shdr {
    name: u32,
    kind: u32,
    flags: u64,
    offset: u64,
    size: u64,
    link: u32,
    info: u32,
    align: u64,
    entsize: u64,
}

impl Builder {
    /// A payload for the hypervisor with build-id `xen_build_id`.
    pub fn new(xen_build_id: &[u8]) -> Self {
        Builder {
            xen_depends: xen_build_id.to_vec(),
            depends: None,
            sections: Vec::new(),
            symbols: Vec::new(),
            relocs: Vec::new(),
            funcs: Vec::new(),
            hooks: Vec::new(),
            metadata: Vec::new(),
        }
    }

    /// Stack this payload on the payload with build-id `id`.
    pub fn depends(&mut self, id: &[u8]) -> &mut Self {
        self.depends = Some(id.to_vec());
        self
    }

    /// Add a loaded section with contents. `name` should match `region`
    /// (`.text*`, `.rodata*`, `.data*`).
    pub fn section(&mut self, name: &str, region: Region, align: u64, data: Vec<u8>) -> SecId {
        let size = data.len() as u64;
        self.sections.push(WSection {
            name: name.to_string(),
            region,
            bss: false,
            align,
            data,
            size,
        });
        SecId(self.sections.len() - 1)
    }

    /// Add a zero-initialised (`.bss*`) section.
    pub fn bss(&mut self, name: &str, align: u64, size: u64) -> SecId {
        self.sections.push(WSection {
            name: name.to_string(),
            region: Region::ReadWrite,
            bss: true,
            align,
            data: Vec::new(),
            size,
        });
        SecId(self.sections.len() - 1)
    }

    /// Define a symbol in the payload (`func`: a function, else data).
    pub fn define(&mut self, name: &str, sec: SecId, value: u64, size: u64, func: bool) -> SymId {
        self.symbols.push(WSymbol {
            name: name.to_string(),
            section: Some(sec),
            value,
            size,
            kind: if func { STT_FUNC } else { STT_OBJECT },
        });
        SymId(self.symbols.len() - 1)
    }

    /// Refer to a hypervisor symbol by its symbol-table name; `expected_addr`
    /// is its address in the target build (0: the name must be unique).
    /// The same (name, address) yields the same symbol.
    pub fn import(&mut self, name: &str, expected_addr: u64) -> SymId {
        if let Some(i) = self
            .symbols
            .iter()
            .position(|s| s.section.is_none() && s.name == name && s.value == expected_addr)
        {
            return SymId(i);
        }
        self.symbols.push(WSymbol {
            name: name.to_string(),
            section: None,
            value: expected_addr,
            size: 0,
            kind: STT_NOTYPE,
        });
        SymId(self.symbols.len() - 1)
    }

    /// A relocation in a loaded section.
    pub fn reloc(
        &mut self,
        sec: SecId,
        offset: u64,
        kind: u32,
        sym: SymId,
        addend: i64,
    ) -> &mut Self {
        self.relocs.push((sec, offset, kind, sym, addend));
        self
    }

    /// A function record.
    pub fn func(&mut self, f: FuncSpec) -> &mut Self {
        self.funcs.push(f);
        self
    }

    /// A hook.
    pub fn hook(&mut self, kind: HookKind, sym: SymId) -> &mut Self {
        self.hooks.push((kind, sym));
        self
    }

    /// A metadata entry (`.modinfo`).
    pub fn meta(&mut self, key: &str, value: &str) -> &mut Self {
        self.metadata.push((key.to_string(), value.to_string()));
        self
    }

    /// Write the ELF.
    pub fn build(&self) -> Vec<u8> {
        // Symbol order: null, defined (local), imports (global).
        let mut order: Vec<usize> = (0..self.symbols.len())
            .filter(|&i| self.symbols[i].section.is_some())
            .collect();
        let first_global = order.len() + 1;
        order.extend((0..self.symbols.len()).filter(|&i| self.symbols[i].section.is_none()));
        let mut sym_index = vec![0u32; self.symbols.len()];
        for (pos, &i) in order.iter().enumerate() {
            sym_index[i] = pos as u32 + 1;
        }

        let mut shstr = vec![0u8];
        let mut name = |n: &str| -> u32 {
            let off = shstr.len() as u32;
            shstr.extend_from_slice(n.as_bytes());
            shstr.push(0);
            off
        };
        // Section indices: 1.. loaded, then the rest.
        let loaded_index = |s: SecId| (s.0 + 1) as u32;
        struct Out {
            hdr: Shdr,
            data: Vec<u8>,
        }
        let mut out: Vec<Out> = Vec::new();
        for s in &self.sections {
            let flags = SHF_ALLOC
                | match s.region {
                    Region::Text => SHF_EXECINSTR,
                    Region::ReadOnly => 0,
                    Region::ReadWrite => SHF_WRITE,
                };
            out.push(Out {
                hdr: Shdr {
                    name: name(&s.name),
                    kind: if s.bss { SHT_NOBITS } else { SHT_PROGBITS },
                    flags,
                    offset: 0,
                    size: s.size,
                    link: 0,
                    info: 0,
                    align: s.align,
                    entsize: 0,
                },
                data: if s.bss { Vec::new() } else { s.data.clone() },
            });
        }
        let n_loaded = out.len();
        let symtab_index = {
            // Count the sections that come before .symtab.
            let relas = (0..self.sections.len())
                .filter(|&i| self.relocs.iter().any(|r| r.0.0 == i))
                .count();
            let hooks = HookKind::ALL
                .iter()
                .filter(|k| self.hooks.iter().any(|h| h.0 == **k))
                .count();
            1 + n_loaded
                + relas
                + 3
                + usize::from(self.depends.is_some())
                + hooks
                + usize::from(!self.metadata.is_empty())
        } as u32;
        for (i, s) in self.sections.iter().enumerate() {
            let rs: Vec<_> = self.relocs.iter().filter(|r| r.0.0 == i).collect();
            if rs.is_empty() {
                continue;
            }
            let mut d = Vec::with_capacity(rs.len() * 24);
            for &&(_, off, kind, sym, addend) in &rs {
                d.extend_from_slice(&off.to_le_bytes());
                let info = ((sym_index[sym.0] as u64) << 32) | kind as u64;
                d.extend_from_slice(&info.to_le_bytes());
                d.extend_from_slice(&addend.to_le_bytes());
            }
            out.push(Out {
                hdr: Shdr {
                    name: name(&format!(".rela{}", s.name)),
                    kind: SHT_RELA,
                    flags: SHF_INFO_LINK,
                    offset: 0,
                    size: d.len() as u64,
                    link: symtab_index,
                    info: loaded_index(SecId(i)),
                    align: 8,
                    entsize: 24,
                },
                data: d,
            });
        }
        let mut funcs = Vec::with_capacity(self.funcs.len() * FUNC_ENTRY_SIZE);
        for f in &self.funcs {
            let mut e = [0u8; FUNC_ENTRY_SIZE];
            e[entry::OLD_SYM..entry::OLD_SYM + 4]
                .copy_from_slice(&sym_index[f.old.0].to_le_bytes());
            let new = f.new.map_or(0, |s| sym_index[s.0]);
            e[entry::NEW_SYM..entry::NEW_SYM + 4].copy_from_slice(&new.to_le_bytes());
            e[entry::OLD_SIZE..entry::OLD_SIZE + 4].copy_from_slice(&f.old_size.to_le_bytes());
            e[entry::NEW_SIZE..entry::NEW_SIZE + 4].copy_from_slice(&f.new_size.to_le_bytes());
            e[entry::VERSION] = FUNC_VERSION;
            let n = f.expect.len().min(31);
            e[entry::EXPECT_LEN] = n as u8;
            e[entry::EXPECT..entry::EXPECT + n].copy_from_slice(&f.expect[..n]);
            funcs.extend_from_slice(&e);
        }
        let meta_sec = |out: &mut Vec<Out>, n: u32, kind: u32, align: u64, data: Vec<u8>| {
            out.push(Out {
                hdr: Shdr {
                    name: n,
                    kind,
                    flags: 0,
                    offset: 0,
                    size: data.len() as u64,
                    link: 0,
                    info: 0,
                    align,
                    entsize: 0,
                },
                data,
            });
        };
        meta_sec(&mut out, name(SEC_FUNCS), SHT_PROGBITS, 8, funcs);
        meta_sec(
            &mut out,
            name(SEC_XEN_DEPENDS),
            SHT_NOTE,
            4,
            note(&self.xen_depends),
        );
        if let Some(d) = &self.depends {
            meta_sec(&mut out, name(SEC_DEPENDS), SHT_NOTE, 4, note(d));
        }
        let build_id_sec = out.len();
        meta_sec(
            &mut out,
            name(SEC_BUILD_ID),
            SHT_NOTE,
            4,
            note(&[0u8; BUILD_ID_LEN]),
        );
        for k in HookKind::ALL {
            let hs: Vec<u8> = self
                .hooks
                .iter()
                .filter(|h| h.0 == k)
                .flat_map(|h| sym_index[h.1.0].to_le_bytes())
                .collect();
            if !hs.is_empty() {
                meta_sec(
                    &mut out,
                    name(&format!("{SEC_HOOKS_PREFIX}{}", k.suffix())),
                    SHT_PROGBITS,
                    4,
                    hs,
                );
            }
        }
        if !self.metadata.is_empty() {
            let mut m = Vec::new();
            for (k, v) in &self.metadata {
                m.extend_from_slice(k.as_bytes());
                m.push(b'=');
                m.extend_from_slice(v.as_bytes());
                m.push(0);
            }
            meta_sec(&mut out, name(SEC_MODINFO), SHT_PROGBITS, 1, m);
        }
        debug_assert_eq!(out.len() + 1, symtab_index as usize);
        // Symbols.
        let mut strtab = vec![0u8];
        let mut symtab = vec![0u8; 24];
        for &i in &order {
            let s = &self.symbols[i];
            let off = strtab.len() as u32;
            strtab.extend_from_slice(s.name.as_bytes());
            strtab.push(0);
            let (bind, shndx) = match s.section {
                Some(sec) => (STB_LOCAL, loaded_index(sec) as u16),
                None => (STB_GLOBAL, 0u16),
            };
            symtab.extend_from_slice(&off.to_le_bytes());
            symtab.push((bind << 4) | s.kind);
            symtab.push(0);
            symtab.extend_from_slice(&shndx.to_le_bytes());
            symtab.extend_from_slice(&s.value.to_le_bytes());
            symtab.extend_from_slice(&s.size.to_le_bytes());
        }
        let n = name(".symtab");
        out.push(Out {
            hdr: Shdr {
                name: n,
                kind: SHT_SYMTAB,
                flags: 0,
                offset: 0,
                size: symtab.len() as u64,
                link: symtab_index + 1,
                info: first_global as u32,
                align: 8,
                entsize: 24,
            },
            data: symtab,
        });
        let n = name(".strtab");
        meta_sec(&mut out, n, SHT_STRTAB, 1, strtab);
        let n = name(".shstrtab");
        let shstrndx = out.len() + 1;
        let shstr_data = shstr.clone();
        meta_sec(&mut out, n, SHT_STRTAB, 1, shstr_data);

        // Lay out the file.
        let mut file = vec![0u8; 64];
        let mut build_id_off = 0;
        for (i, o) in out.iter_mut().enumerate() {
            let align = o.hdr.align.max(1) as usize;
            while !file.len().is_multiple_of(align) {
                file.push(0);
            }
            o.hdr.offset = if o.data.is_empty() {
                0
            } else {
                file.len() as u64
            };
            if i == build_id_sec {
                build_id_off = file.len() + 16;
            }
            file.extend_from_slice(&o.data);
        }
        while !file.len().is_multiple_of(8) {
            file.push(0);
        }
        let shoff = file.len() as u64;
        file.extend_from_slice(&[0u8; 64]);
        for o in &out {
            let h = &o.hdr;
            file.extend_from_slice(&h.name.to_le_bytes());
            file.extend_from_slice(&h.kind.to_le_bytes());
            file.extend_from_slice(&h.flags.to_le_bytes());
            file.extend_from_slice(&0u64.to_le_bytes());
            file.extend_from_slice(&h.offset.to_le_bytes());
            file.extend_from_slice(&h.size.to_le_bytes());
            file.extend_from_slice(&h.link.to_le_bytes());
            file.extend_from_slice(&h.info.to_le_bytes());
            file.extend_from_slice(&h.align.to_le_bytes());
            file.extend_from_slice(&h.entsize.to_le_bytes());
        }
        // ELF header.
        file[..4].copy_from_slice(b"\x7fELF");
        file[4] = 2;
        file[5] = 1;
        file[6] = 1;
        file[16..18].copy_from_slice(&1u16.to_le_bytes());
        file[18..20].copy_from_slice(&62u16.to_le_bytes());
        file[20..24].copy_from_slice(&1u32.to_le_bytes());
        file[40..48].copy_from_slice(&shoff.to_le_bytes());
        file[52..54].copy_from_slice(&64u16.to_le_bytes());
        file[58..60].copy_from_slice(&64u16.to_le_bytes());
        file[60..62].copy_from_slice(&((out.len() + 1) as u16).to_le_bytes());
        file[62..64].copy_from_slice(&(shstrndx as u16).to_le_bytes());
        let id = Sha256::digest(&file);
        file[build_id_off..build_id_off + BUILD_ID_LEN].copy_from_slice(&id[..BUILD_ID_LEN]);
        file
    }
}
