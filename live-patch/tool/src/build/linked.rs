//! A linked hypervisor image built for analysis: its sections, symbols, the
//! relocations kept by `--emit-relocs`, and its input sections ("units")
//! from the linker map. With `-Zfunction-sections` (rustc's default on ELF)
//! every Rust function is one unit.

use crate::{Error, Result};
use object::read::elf::ElfFile64;
use object::{
    LittleEndian, Object, ObjectSection, ObjectSymbol, RelocationFlags, RelocationTarget,
    SectionFlags, SymbolKind,
};
use std::collections::BTreeMap;
use std::path::Path;

/// What a unit holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitKind {
    /// A Rust function (its own `.text.<symbol>` section).
    Func,
    /// Read-only data.
    ReadOnly,
    /// Writable data (.data, .bss).
    Writable,
    /// Anything else in text (assembly, boot code, linker-made).
    Other,
}

/// One input section placed by the linker.
#[derive(Debug, Clone)]
pub struct Unit {
    pub addr: u64,
    pub size: u64,
    pub align: u64,
    pub out: String,
    pub input: String,
    /// Crate the object file belongs to (for messages and assembly keys).
    pub krate: String,
    /// Stable identity across builds (None: anonymous, matched by content).
    pub key: Option<String>,
    pub kind: UnitKind,
    /// Mergeable section: `Some(0)` strings (`.rodata.str*`), `Some(n)`
    /// n-byte constants (`.rodata.cstN`).
    pub merge: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct Sym {
    pub name: String,
    pub addr: u64,
    pub size: u64,
    pub kind: SymbolKind,
    pub section: Option<usize>,
}

#[derive(Debug, Clone, Copy)]
pub struct Reloc {
    /// Address of the field.
    pub at: u64,
    pub kind: u32,
    pub sym: usize,
    pub addend: i64,
}

#[derive(Debug, Clone)]
pub struct OutSection {
    pub name: String,
    pub addr: u64,
    pub size: u64,
    pub alloc: bool,
    pub data: Vec<u8>,
}

/// A linked image with its map.
#[derive(Debug)]
pub struct Linked {
    pub what: String,
    pub sections: Vec<OutSection>,
    pub symbols: Vec<Sym>,
    /// Sorted by address.
    pub relocs: Vec<Reloc>,
    /// Sorted by address.
    pub units: Vec<Unit>,
    pub build_id: Vec<u8>,
    by_key: BTreeMap<String, Vec<usize>>,
}

/// Remove ThinLTO's `.llvm.<digits>` promotion suffix.
pub fn strip_llvm(name: &str) -> &str {
    match name.find(".llvm.") {
        Some(i) if name[i + 6..].bytes().all(|b| b.is_ascii_digit()) => &name[..i],
        _ => name,
    }
}

/// Whether a symbol name is anonymous (compiler-made, unstable across builds).
pub fn is_anonymous(name: &str) -> bool {
    name.is_empty() || name.starts_with(".L") || name.starts_with("anon.") || name.starts_with('$')
}

/// The stable key of a named symbol.
pub fn symbol_key(name: &str) -> String {
    strip_llvm(name).to_string()
}

const PREFIXES: [&str; 9] = [
    ".text.unlikely.",
    ".text.hot.",
    ".text.",
    ".rodata.",
    ".data.rel.ro.",
    ".data.",
    ".bss.",
    ".tdata.",
    ".tbss.",
];

fn crate_of(object: &str) -> String {
    let member = match (object.rfind('('), object.ends_with(')')) {
        (Some(i), true) => &object[i + 1..object.len() - 1],
        _ => object,
    };
    let base = member.rsplit('/').next().unwrap_or(member);
    base.split(['-', '.']).next().unwrap_or(base).to_string()
}

fn classify(out: &str, input: &str, krate: &str) -> (Option<String>, UnitKind) {
    let data_kind = if out == ".text" {
        UnitKind::Other
    } else if out == ".data" || out == ".bss" {
        UnitKind::Writable
    } else {
        UnitKind::ReadOnly
    };
    for p in PREFIXES {
        if let Some(rest) = input.strip_prefix(p) {
            if rest.starts_with("_ZN") || rest.starts_with("_R") {
                let kind = if out == ".text" {
                    UnitKind::Func
                } else {
                    data_kind
                };
                // .data and .bss are one group: a static whose initial value
                // becomes non-zero moves from .bss to .data.
                let group = match kind {
                    UnitKind::Func => ".text",
                    UnitKind::Writable => ".data",
                    _ => ".rodata",
                };
                return (Some(format!("{group}:{}", strip_llvm(rest))), kind);
            }
            if is_anonymous(rest) && out != ".text" {
                return (None, data_kind);
            }
            break;
        }
    }
    // Read-only sections without a symbol name (merged strings, constant
    // pools, assembly data) are compared by content, like anonymous ones.
    if data_kind == UnitKind::ReadOnly {
        return (None, UnitKind::ReadOnly);
    }
    // Assembly and other named sections: one identity per crate and name.
    (Some(format!("other:{krate}:{input}")), data_kind)
}

fn parse_num(s: &str, hex: bool) -> Option<u64> {
    if hex {
        u64::from_str_radix(s, 16).ok()
    } else {
        s.parse().ok()
    }
}

impl Linked {
    /// Read an image linked with `--emit-relocs` and its lld map file.
    pub fn read(what: &str, elf_path: &Path, map_path: &Path) -> Result<Self> {
        let data = std::fs::read(elf_path).map_err(|e| Error::io(elf_path, e))?;
        let map = std::fs::read_to_string(map_path).map_err(|e| Error::io(map_path, e))?;
        Self::parse(what, &data, &map)
    }

    pub fn parse(what: &str, data: &[u8], map: &str) -> Result<Self> {
        let bad = |m: String| Error(format!("{what}: {m}"));
        let file = ElfFile64::<LittleEndian>::parse(data)
            .map_err(|e| bad(format!("not an ELF image: {e}")))?;
        let build_id = match file.build_id() {
            Ok(Some(id)) => id.to_vec(),
            _ => Vec::new(),
        };
        let mut sections = Vec::new();
        let mut index_of = BTreeMap::new();
        for s in file.sections() {
            let alloc = match s.flags() {
                SectionFlags::Elf { sh_flags } => sh_flags & u64::from(object::elf::SHF_ALLOC) != 0,
                _ => false,
            };
            index_of.insert(s.index().0, sections.len());
            let data = if alloc {
                s.data().unwrap_or(&[]).to_vec()
            } else {
                Vec::new()
            };
            sections.push(OutSection {
                name: s.name().unwrap_or("").to_string(),
                addr: s.address(),
                size: s.size(),
                alloc,
                data,
            });
        }
        let mut symbols = Vec::new();
        let mut sym_pos = BTreeMap::new();
        for s in file.symbols() {
            sym_pos.insert(s.index().0, symbols.len());
            symbols.push(Sym {
                name: s.name().unwrap_or("").to_string(),
                addr: s.address(),
                size: s.size(),
                kind: s.kind(),
                section: s.section_index().and_then(|i| index_of.get(&i.0).copied()),
            });
        }
        let mut relocs = Vec::new();
        for s in file.sections() {
            let alloc = matches!(s.flags(), SectionFlags::Elf { sh_flags } if sh_flags & u64::from(object::elf::SHF_ALLOC) != 0);
            if !alloc {
                continue;
            }
            for (off, r) in s.relocations() {
                let RelocationFlags::Elf { r_type } = r.flags() else {
                    continue;
                };
                let sym = match r.target() {
                    RelocationTarget::Symbol(i) => *sym_pos.get(&i.0).ok_or_else(|| {
                        bad(format!("relocation at {off:#x} against an unknown symbol"))
                    })?,
                    _ => return Err(bad(format!("relocation at {off:#x} without a symbol"))),
                };
                if r_type == object::elf::R_X86_64_NONE {
                    continue;
                }
                relocs.push(Reloc {
                    at: off,
                    kind: r_type,
                    sym,
                    addend: r.addend(),
                });
            }
        }
        if relocs.is_empty() {
            return Err(bad(
                "no relocations (was it linked with --emit-relocs?)".into()
            ));
        }
        relocs.sort_by_key(|r| r.at);
        let mut units = parse_map(map, &sections).map_err(|m| bad(format!("linker map: {m}")))?;
        // `#[no_mangle]` functions have unmangled section names: a
        // `.text.NAME` section holding the function symbol NAME is a function.
        for u in units.iter_mut().filter(|u| u.kind == UnitKind::Other) {
            let Some(rest) = u.input.strip_prefix(".text.") else {
                continue;
            };
            if symbols
                .iter()
                .any(|s| s.kind == SymbolKind::Text && s.addr == u.addr && s.name == rest)
            {
                u.kind = UnitKind::Func;
                u.key = Some(format!(".text:{rest}"));
            }
        }
        // Read-only data named after a function (its jump tables and
        // constants) belongs to that function: compare it by content. Only
        // data a named object symbol starts is a static with an identity.
        for u in units
            .iter_mut()
            .filter(|u| u.kind == UnitKind::ReadOnly && u.key.is_some())
        {
            let is_static = symbols.iter().any(|s| {
                s.kind == SymbolKind::Data
                    && s.addr == u.addr
                    && u.input.ends_with(strip_llvm(&s.name))
                    && !s.name.is_empty()
            });
            if !is_static {
                u.key = None;
            }
        }
        let mut by_key: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, u) in units.iter().enumerate() {
            if let Some(k) = &u.key {
                by_key.entry(k.clone()).or_default().push(i);
            }
        }
        Ok(Linked {
            what: what.to_string(),
            sections,
            symbols,
            relocs,
            units,
            build_id,
            by_key,
        })
    }

    /// Units with this key, in address order.
    pub fn units_with_key(&self, key: &str) -> &[usize] {
        self.by_key.get(key).map_or(&[], |v| v.as_slice())
    }

    pub fn keys(&self) -> impl Iterator<Item = (&String, &Vec<usize>)> {
        self.by_key.iter()
    }

    /// The unit containing `addr`.
    pub fn unit_at(&self, addr: u64) -> Option<usize> {
        let i = self.units.partition_point(|u| u.addr <= addr);
        let i = i.checked_sub(1)?;
        let u = &self.units[i];
        (addr < u.addr + u.size.max(1)).then_some(i)
    }

    /// The unit that ends exactly at `addr`, for a reference one past the
    /// end of a constant (a slice's end pointer folded by LLVM into
    /// `anon+len`) that falls into the alignment gap after it, where
    /// [`Linked::unit_at`] finds nothing. (Where the next unit starts right
    /// there, `unit_at` answers with that one, and the map cannot tell
    /// which was meant.)
    pub fn unit_ending_at(&self, addr: u64) -> Option<usize> {
        let i = self
            .units
            .partition_point(|u| u.addr < addr)
            .checked_sub(1)?;
        let u = &self.units[i];
        (u.size != 0 && u.addr + u.size == addr).then_some(i)
    }

    /// Bytes at `addr` (loaded sections only).
    pub fn bytes(&self, addr: u64, len: u64) -> Option<&[u8]> {
        let s = self
            .sections
            .iter()
            .find(|s| s.alloc && addr >= s.addr && addr + len <= s.addr + s.size)?;
        let off = (addr - s.addr) as usize;
        s.data.get(off..off + len as usize)
    }

    /// Relocations whose field lies in `[addr, addr+len)`.
    pub fn relocs_in(&self, addr: u64, len: u64) -> &[Reloc] {
        let a = self.relocs.partition_point(|r| r.at < addr);
        let b = self.relocs.partition_point(|r| r.at < addr + len);
        &self.relocs[a..b]
    }

    /// The function symbol at the start of a unit (the one the embedded
    /// symbol table names it by).
    pub fn func_symbol(&self, unit: usize) -> Option<&Sym> {
        let u = &self.units[unit];
        self.symbols
            .iter()
            .filter(|s| s.kind == SymbolKind::Text && s.addr == u.addr && !is_anonymous(&s.name))
            .max_by_key(|s| s.size)
    }

    /// Named (non-anonymous) symbols with this key.
    pub fn symbols_with_key(&self, key: &str) -> impl Iterator<Item = &Sym> + '_ {
        let key = key.to_string();
        self.symbols.iter().filter(move |s| {
            !is_anonymous(&s.name)
                && s.kind != SymbolKind::Section
                && s.kind != SymbolKind::File
                && symbol_key(&s.name) == key
        })
    }
}

fn parse_map(map: &str, sections: &[OutSection]) -> std::result::Result<Vec<Unit>, String> {
    let mut units = Vec::new();
    let mut out = String::new();
    let mut lines = map.lines();
    let header = lines.next().ok_or("empty map")?;
    if !header.contains("VMA") || !header.contains("Symbol") {
        return Err("not an lld map file".into());
    }
    for line in lines {
        // Columns: VMA LMA Size Align, then the text indented by level.
        let mut rest = line;
        let mut nums = [0u64; 4];
        let mut ok = true;
        for (i, n) in nums.iter_mut().enumerate() {
            rest = rest.trim_start();
            let end = rest.find(' ').unwrap_or(rest.len());
            match parse_num(&rest[..end], i < 3) {
                Some(v) => *n = v,
                None => {
                    ok = false;
                    break;
                }
            }
            rest = &rest[end..];
        }
        if !ok {
            continue;
        }
        let text = rest.strip_prefix(' ').unwrap_or(rest);
        let indent = text.len() - text.trim_start().len();
        let text = text.trim();
        match indent {
            0 => out = text.to_string(),
            8 => {
                let Some(sec) = sections.iter().find(|s| s.name == out && s.alloc) else {
                    continue;
                };
                if matches!(out.as_str(), ".note.gnu.build-id" | ".wsymtab" | ".got") {
                    continue;
                }
                let Some(i) = text.rfind(":(") else { continue };
                let (object, input) = (&text[..i], text[i + 2..].trim_end_matches(')'));
                let (addr, size, align) = (nums[0], nums[2], nums[3]);
                if size == 0 {
                    continue;
                }
                if addr < sec.addr || addr + size > sec.addr + sec.size {
                    return Err(format!("{input} lies outside {out}"));
                }
                let krate = crate_of(object);
                let (key, kind) = classify(&out, input, &krate);
                let merge = if input.starts_with(".rodata.str") {
                    Some(0)
                } else {
                    input
                        .strip_prefix(".rodata.cst")
                        .and_then(|n| n.parse().ok())
                };
                units.push(Unit {
                    addr,
                    size,
                    align,
                    out: out.clone(),
                    input: input.to_string(),
                    krate,
                    key,
                    kind,
                    merge,
                });
            }
            _ => {}
        }
    }
    units.sort_by_key(|u| u.addr);
    for w in units.windows(2) {
        if w[0].addr + w[0].size > w[1].addr {
            return Err(format!("{} and {} overlap", w[0].input, w[1].input));
        }
    }
    Ok(units)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reference_one_past_a_unit_in_the_gap_after_it_is_that_units() {
        let unit = |addr, size| Unit {
            addr,
            size,
            align: 8,
            out: ".rodata".into(),
            input: format!(".rodata..Lanon.x.{addr:x}"),
            krate: "k".into(),
            key: None,
            kind: UnitKind::ReadOnly,
            merge: None,
        };
        let l = Linked {
            what: "test".into(),
            sections: vec![],
            symbols: vec![],
            relocs: vec![],
            units: vec![unit(0x1000, 6), unit(0x1008, 8), unit(0x1010, 4)],
            build_id: vec![],
            by_key: BTreeMap::new(),
        };
        assert_eq!(l.unit_at(0x1006), None);
        assert_eq!(l.unit_ending_at(0x1006), Some(0));
        assert_eq!(l.unit_ending_at(0x1005), None);
        assert_eq!(l.unit_ending_at(0x1007), None);
        // Adjacent: the start of the next unit is that unit's.
        assert_eq!(l.unit_at(0x1010), Some(2));
        assert_eq!(l.unit_ending_at(0x1014), Some(2));
        assert_eq!(l.unit_ending_at(0x1000), None);
    }

    #[test]
    fn keys_and_crates() {
        assert_eq!(
            strip_llvm("_ZN3foo3bar17h0123456789abcdefE.llvm.12345"),
            "_ZN3foo3bar17h0123456789abcdefE"
        );
        assert_eq!(strip_llvm("a.llvm.x"), "a.llvm.x");
        assert_eq!(
            crate_of("/t/release/deps/warden-f087.warden.8a58-cgu.4.rcgu.o"),
            "warden"
        );
        assert_eq!(
            crate_of("/t/deps/libhvcore-1234.rlib(hvcore-1234.hvcore.ab-cgu.0.rcgu.o)"),
            "hvcore"
        );
        assert_eq!(
            classify(".text", ".text._ZN1a1b17hE", "w"),
            (Some(".text:_ZN1a1b17hE".into()), UnitKind::Func)
        );
        assert_eq!(
            classify(".text", ".text.unlikely._RNvC1a1b", "w"),
            (Some(".text:_RNvC1a1b".into()), UnitKind::Func)
        );
        assert_eq!(
            classify(".rodata", ".rodata..Lanon.abc.3", "w"),
            (None, UnitKind::ReadOnly)
        );
        assert_eq!(
            classify(".rodata", ".data.rel.ro..L__unnamed_1", "w"),
            (None, UnitKind::ReadOnly)
        );
        assert_eq!(
            classify(".bss", ".bss._ZN1a5STATE17hE", "w"),
            (Some(".data:_ZN1a5STATE17hE".into()), UnitKind::Writable)
        );
        assert_eq!(
            classify(".text", ".text.boot", "warden"),
            (Some("other:warden:.text.boot".into()), UnitKind::Other)
        );
    }
}
