//! The live-patch sections of a payload and their structural checks.
//!
//! Sections a payload may have (any other name is refused):
//!
//! | name | type | loaded | contents |
//! |---|---|---|---|
//! | `.text`, `.text.*` | PROGBITS, AX | yes (RX) | new code |
//! | `.rodata`, `.rodata.*` | PROGBITS, A | yes (R) | constants |
//! | `.data`, `.data.*` | PROGBITS, WA | yes (RW, NX) | payload-private data |
//! | `.bss`, `.bss.*` | NOBITS, WA | yes (RW, NX) | payload-private data |
//! | `.rela<section>` | RELA | no | relocations of a loaded section |
//! | `.livepatch.funcs` | PROGBITS | no | [`FuncEntry`] records, [`FUNC_ENTRY_SIZE`] bytes each |
//! | `.livepatch.xen_depends` | NOTE | no | GNU build-id note: the hypervisor this payload is for |
//! | `.livepatch.depends` | NOTE | no | optional GNU build-id note: the payload below in the stack |
//! | `.note.gnu.build-id` | NOTE | no | GNU build-id note: this payload's own id |
//! | `.livepatch.hooks.<kind>` | PROGBITS | no | u32 symbol indices of hook functions |
//! | `.modinfo` | PROGBITS | no | metadata, `key=value\0` strings |
//! | `.symtab`, `.strtab`, `.shstrtab` | | no | symbols and names |
//!
//! Undefined symbols name hypervisor symbols, exactly as the hypervisor's
//! embedded symbol table spells them (demangled, without hash suffix). An
//! undefined symbol's `st_value` is 0 (the name must be unique in the table)
//! or the address the payload expects the symbol at (the name must have a
//! symbol at that address): that is how a payload names one of several
//! same-named symbols (generic instances, closures).

use crate::elf::{
    self, Elf, ElfError, SHT_NOBITS, SHT_NOTE, SHT_PROGBITS, SHT_RELA, SHT_STRTAB, SHT_SYMTAB,
    Section, Symbol, u32_at, u64_at,
};
use alloc::vec::Vec;
use core::fmt;

/// Bytes of one `.livepatch.funcs` record.
pub const FUNC_ENTRY_SIZE: usize = 64;
/// The record version this build writes and accepts.
pub const FUNC_VERSION: u8 = 1;
/// Most expected old bytes a record carries (as Xen).
pub const EXPECT_MAX: usize = 31;
/// Most bytes a NOP patch may overwrite (as Xen).
pub const NOP_MAX: usize = 31;
/// Most functions one payload may patch.
pub const FUNCS_MAX: usize = 1024;
/// Longest build-id accepted.
pub const BUILD_ID_MAX: usize = 64;
/// Most load/unload hooks of each kind.
pub const HOOKS_MAX: usize = 16;
/// Largest `.modinfo`.
pub const METADATA_MAX: usize = 4096;
/// Longest symbol name referring to the hypervisor.
pub const SYMBOL_NAME_MAX: usize = 1024;

/// Section names.
pub const SEC_FUNCS: &str = ".livepatch.funcs";
pub const SEC_XEN_DEPENDS: &str = ".livepatch.xen_depends";
pub const SEC_DEPENDS: &str = ".livepatch.depends";
pub const SEC_BUILD_ID: &str = ".note.gnu.build-id";
pub const SEC_MODINFO: &str = ".modinfo";
pub const SEC_HOOKS_PREFIX: &str = ".livepatch.hooks.";

/// `.livepatch.funcs` record layout (little-endian):
///
/// ```text
/// 0   u32  old_sym     index of the undefined symbol naming the old function
/// 4   u32  new_sym     index of the new function's symbol; 0 = NOP patch
/// 8   u32  old_size    size of the old function (must equal the symbol table's)
/// 12  u32  new_size    new function's size (= its st_size); NOP: bytes to NOP out
/// 16  u8   version     1
/// 17  u8   expect_len  0..=31: how many expected old bytes follow
/// 18  u16  flags       0
/// 20  u32  reserved    0
/// 24  [u8;32] expect   the old function's first expect_len bytes, then zeros
/// 56  u64  reserved    0
/// ```
pub mod entry {
    pub const OLD_SYM: usize = 0;
    pub const NEW_SYM: usize = 4;
    pub const OLD_SIZE: usize = 8;
    pub const NEW_SIZE: usize = 12;
    pub const VERSION: usize = 16;
    pub const EXPECT_LEN: usize = 17;
    pub const FLAGS: usize = 18;
    pub const RESERVED1: usize = 20;
    pub const EXPECT: usize = 24;
    pub const RESERVED2: usize = 56;
}

/// Hook kinds, with their section suffixes. Load hooks run inside the
/// quiescent phase after the patch is applied, unload hooks inside it after
/// revert (as Xen); pre-* hooks run before the rendezvous and may veto with a
/// non-zero result; post-* hooks run after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum HookKind {
    Load,
    Unload,
    PreApply,
    PostApply,
    PreRevert,
    PostRevert,
}

impl HookKind {
    pub const ALL: [HookKind; 6] = [
        HookKind::Load,
        HookKind::Unload,
        HookKind::PreApply,
        HookKind::PostApply,
        HookKind::PreRevert,
        HookKind::PostRevert,
    ];

    pub fn suffix(self) -> &'static str {
        match self {
            HookKind::Load => "load",
            HookKind::Unload => "unload",
            HookKind::PreApply => "preapply",
            HookKind::PostApply => "postapply",
            HookKind::PreRevert => "prerevert",
            HookKind::PostRevert => "postrevert",
        }
    }

    /// Most hooks of this kind in one payload.
    pub fn max_count(self) -> usize {
        match self {
            HookKind::Load | HookKind::Unload => HOOKS_MAX,
            _ => 1,
        }
    }

    /// Pre/post hooks may veto or change state outside the quiescent phase
    /// (REPLACE refuses payloads that have them, as Xen).
    pub fn is_vetoing(self) -> bool {
        !matches!(self, HookKind::Load | HookKind::Unload)
    }
}

/// Why a payload's structure was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadError {
    /// The ELF container itself.
    Elf(ElfError),
    /// A required section is absent.
    MissingSection(&'static str),
    /// A section that may appear once appears twice.
    DuplicateSection(usize),
    /// A section whose name is not part of the format.
    UnknownSection(usize),
    /// A known section with the wrong type, flags or size.
    BadSection { index: usize, why: &'static str },
    /// A build-id note is malformed.
    BadNote {
        section: &'static str,
        why: &'static str,
    },
    /// `.livepatch.funcs` record `index` is malformed.
    BadFunc { index: usize, why: &'static str },
    /// A hook section is malformed.
    BadHook { kind: HookKind, why: &'static str },
    /// `.modinfo` is malformed.
    BadMetadata(&'static str),
    /// A symbol is not acceptable in a payload.
    BadSymbol { index: usize, why: &'static str },
    /// A relocation is not acceptable in a payload.
    BadRelocation {
        section: usize,
        index: usize,
        why: &'static str,
    },
}

impl From<ElfError> for PayloadError {
    fn from(e: ElfError) -> Self {
        PayloadError::Elf(e)
    }
}

impl fmt::Display for PayloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PayloadError::Elf(e) => e.fmt(f),
            PayloadError::MissingSection(s) => write!(f, "missing section {s}"),
            PayloadError::DuplicateSection(i) => write!(f, "section [{i}] appears more than once"),
            PayloadError::UnknownSection(i) => {
                write!(f, "section [{i}] is not part of the payload format")
            }
            PayloadError::BadSection { index, why } => write!(f, "section [{index}]: {why}"),
            PayloadError::BadNote { section, why } => write!(f, "{section}: {why}"),
            PayloadError::BadFunc { index, why } => write!(f, "{SEC_FUNCS} record {index}: {why}"),
            PayloadError::BadHook { kind, why } => {
                write!(f, "{SEC_HOOKS_PREFIX}{}: {why}", kind.suffix())
            }
            PayloadError::BadMetadata(why) => write!(f, "{SEC_MODINFO}: {why}"),
            PayloadError::BadSymbol { index, why } => write!(f, "symbol [{index}]: {why}"),
            PayloadError::BadRelocation {
                section,
                index,
                why,
            } => write!(f, "relocation [{index}] in section [{section}]: {why}"),
        }
    }
}

/// One function to patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FuncEntry<'a> {
    /// The undefined symbol naming the old function (and its expected address, or 0).
    pub old: Symbol<'a>,
    /// The new function; `None` for a NOP patch.
    pub new: Option<Symbol<'a>>,
    pub old_size: u32,
    pub new_size: u32,
    /// The expected first bytes of the old function.
    pub expect: &'a [u8],
}

/// What kind of memory a loaded section needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Region {
    /// Read + execute.
    Text,
    /// Read only.
    ReadOnly,
    /// Read + write, no execute.
    ReadWrite,
}

/// A structurally valid payload (signature already checked by the caller).
#[derive(Debug, Clone)]
pub struct Payload<'a> {
    pub elf: Elf<'a>,
    pub funcs: Vec<FuncEntry<'a>>,
    /// Build-id of the hypervisor this payload is for.
    pub xen_depends: &'a [u8],
    /// Build-id of the payload below this one, if any (none: it stacks
    /// directly on the hypervisor).
    pub depends: Option<&'a [u8]>,
    /// This payload's own build-id.
    pub build_id: &'a [u8],
    /// Hook functions (symbol indices), by kind, in order.
    pub hooks: Vec<(HookKind, Symbol<'a>)>,
    /// `.modinfo` contents (`key=value\0...`), possibly empty.
    pub metadata: &'a [u8],
    /// Loaded sections and their regions, in section order.
    pub loaded: Vec<(usize, Region)>,
}

fn starts(name: &str, base: &str) -> bool {
    name == base || (name.starts_with(base) && name.as_bytes()[base.len()] == b'.')
}

/// Which region a loaded section belongs to, by name; `None` if the name is
/// not a loaded-section name.
pub fn region_of(name: &str) -> Option<Region> {
    if starts(name, ".text") {
        Some(Region::Text)
    } else if starts(name, ".rodata") {
        Some(Region::ReadOnly)
    } else if starts(name, ".data") || starts(name, ".bss") {
        Some(Region::ReadWrite)
    } else {
        None
    }
}

/// Parse a GNU build-id note section (exactly one note).
pub fn parse_build_id_note<'a>(
    data: &'a [u8],
    section: &'static str,
) -> Result<&'a [u8], PayloadError> {
    let bad = |why| PayloadError::BadNote { section, why };
    if data.len() < 16 {
        return Err(bad("shorter than a note header"));
    }
    let namesz = u32_at(data, 0) as usize;
    let descsz = u32_at(data, 4) as usize;
    let ty = u32_at(data, 8);
    if namesz != 4 || &data[12..16] != b"GNU\0" {
        return Err(bad("note name is not \"GNU\""));
    }
    if ty != 3 {
        return Err(bad("note type is not NT_GNU_BUILD_ID"));
    }
    if descsz == 0 || descsz > BUILD_ID_MAX {
        return Err(bad("build-id length is not 1..=64 bytes"));
    }
    if data.len() != 16 + descsz.div_ceil(4) * 4 {
        return Err(bad("section size is not exactly one note"));
    }
    if data[16 + descsz..].iter().any(|&b| b != 0) {
        return Err(bad("note padding is not zero"));
    }
    Ok(&data[16..16 + descsz])
}

/// Width in bytes of the field a relocation type writes, if the type is supported.
pub fn reloc_width(kind: u32) -> Option<u64> {
    match kind {
        elf::R_X86_64_64 | elf::R_X86_64_PC64 => Some(8),
        elf::R_X86_64_PC32 | elf::R_X86_64_PLT32 | elf::R_X86_64_32 | elf::R_X86_64_32S => Some(4),
        _ => None,
    }
}

impl<'a> Payload<'a> {
    /// Parse the ELF part of a payload (after its signature was verified).
    pub fn parse(elf_bytes: &'a [u8]) -> Result<Self, PayloadError> {
        let elf = Elf::parse(elf_bytes)?;
        let mut funcs_sec = None;
        let mut xen_dep = None;
        let mut dep = None;
        let mut bid = None;
        let mut modinfo = None;
        let mut hook_secs: [Option<usize>; 6] = [None; 6];
        let mut loaded = Vec::new();
        let once = |slot: &mut Option<usize>, i: usize| -> Result<(), PayloadError> {
            if slot.replace(i).is_some() {
                Err(PayloadError::DuplicateSection(i))
            } else {
                Ok(())
            }
        };
        let mut symtab_seen = false;
        for s in &elf.sections[1..] {
            let bad = |why| PayloadError::BadSection {
                index: s.index,
                why,
            };
            let need = |kind: u32, alloc: bool| -> Result<(), PayloadError> {
                if s.kind != kind {
                    return Err(bad("wrong section type for its name"));
                }
                if s.is_alloc() != alloc {
                    return Err(bad(if alloc {
                        "loaded section is not SHF_ALLOC"
                    } else {
                        "metadata section is SHF_ALLOC"
                    }));
                }
                Ok(())
            };
            if let Some(region) = region_of(s.name) {
                let bss = starts(s.name, ".bss");
                need(if bss { SHT_NOBITS } else { SHT_PROGBITS }, true)?;
                let (w, x) = (s.is_write(), s.is_exec());
                let ok = match region {
                    Region::Text => x && !w,
                    Region::ReadOnly => !x && !w,
                    Region::ReadWrite => w && !x,
                };
                if !ok {
                    return Err(bad("write/execute flags do not match the section's name"));
                }
                loaded.push((s.index, region));
                continue;
            }
            match s.name {
                SEC_FUNCS => {
                    need(SHT_PROGBITS, false)?;
                    once(&mut funcs_sec, s.index)?;
                }
                SEC_XEN_DEPENDS => {
                    need(SHT_NOTE, false)?;
                    once(&mut xen_dep, s.index)?;
                }
                SEC_DEPENDS => {
                    need(SHT_NOTE, false)?;
                    once(&mut dep, s.index)?;
                }
                SEC_BUILD_ID => {
                    need(SHT_NOTE, false)?;
                    once(&mut bid, s.index)?;
                }
                SEC_MODINFO => {
                    need(SHT_PROGBITS, false)?;
                    once(&mut modinfo, s.index)?;
                }
                ".symtab" => {
                    need(SHT_SYMTAB, false)?;
                    symtab_seen = true;
                }
                ".strtab" | ".shstrtab" => need(SHT_STRTAB, false)?,
                n if n.starts_with(".rela") => {
                    need(SHT_RELA, false)?;
                    let target = &elf.sections[s.info as usize];
                    if n[5..] != *target.name {
                        return Err(bad("relocation section name does not match its target"));
                    }
                }
                n if n.starts_with(SEC_HOOKS_PREFIX) => {
                    let suffix = &n[SEC_HOOKS_PREFIX.len()..];
                    let Some(k) = HookKind::ALL.iter().position(|k| k.suffix() == suffix) else {
                        return Err(if suffix == "apply" || suffix == "revert" {
                            bad(
                                "action hooks (replacing the apply/revert action) are not supported",
                            )
                        } else {
                            PayloadError::UnknownSection(s.index)
                        });
                    };
                    need(SHT_PROGBITS, false)?;
                    once(&mut hook_secs[k], s.index)?;
                }
                _ => return Err(PayloadError::UnknownSection(s.index)),
            }
        }
        if !symtab_seen {
            return Err(PayloadError::MissingSection(".symtab"));
        }
        let sec = |i: Option<usize>, name: &'static str| -> Result<&Section<'a>, PayloadError> {
            i.map(|i| &elf.sections[i])
                .ok_or(PayloadError::MissingSection(name))
        };
        let xen_depends =
            parse_build_id_note(sec(xen_dep, SEC_XEN_DEPENDS)?.data, SEC_XEN_DEPENDS)?;
        let build_id = parse_build_id_note(sec(bid, SEC_BUILD_ID)?.data, SEC_BUILD_ID)?;
        let depends = match dep {
            Some(i) => Some(parse_build_id_note(elf.sections[i].data, SEC_DEPENDS)?),
            None => None,
        };
        if build_id == xen_depends || Some(build_id) == depends {
            return Err(PayloadError::BadNote {
                section: SEC_BUILD_ID,
                why: "the payload's build-id equals one it depends on",
            });
        }
        let metadata = match modinfo {
            Some(i) => check_metadata(elf.sections[i].data)?,
            None => &[][..],
        };
        check_symbols(&elf)?;
        check_relocations(&elf)?;
        let funcs = parse_funcs(&elf, sec(funcs_sec, SEC_FUNCS)?)?;
        let mut hooks = Vec::new();
        for (k, slot) in HookKind::ALL.iter().zip(hook_secs) {
            let Some(i) = slot else { continue };
            let data = elf.sections[i].data;
            let bad = |why| PayloadError::BadHook { kind: *k, why };
            if data.is_empty() || data.len() % 4 != 0 {
                return Err(bad("size is not a non-zero multiple of 4"));
            }
            if data.len() / 4 > k.max_count() {
                return Err(bad("too many hooks of this kind"));
            }
            for c in data.chunks_exact(4) {
                let idx = u32_at(c, 0) as usize;
                let sym = elf
                    .symbols
                    .get(idx)
                    .filter(|s| is_code_symbol(&elf, s))
                    .ok_or(bad("entry is not a function defined in the payload's text"))?;
                hooks.push((*k, *sym));
            }
        }
        Ok(Payload {
            elf,
            funcs,
            xen_depends,
            depends,
            build_id,
            hooks,
            metadata,
            loaded,
        })
    }

    /// Metadata as `(key, value)` pairs.
    pub fn metadata(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.metadata
            .split(|&b| b == 0)
            .filter(|s| !s.is_empty())
            .filter_map(|s| core::str::from_utf8(s).ok())
            .filter_map(|s| s.split_once('='))
    }

    /// Hooks of one kind.
    pub fn hooks_of(&self, kind: HookKind) -> impl Iterator<Item = &Symbol<'a>> + '_ {
        self.hooks.iter().filter(move |h| h.0 == kind).map(|h| &h.1)
    }

    /// Whether the payload has pre/post (vetoing) hooks.
    pub fn has_vetoing_hooks(&self) -> bool {
        self.hooks.iter().any(|h| h.0.is_vetoing())
    }

    /// Undefined symbols (references to the hypervisor).
    pub fn imports(&self) -> impl Iterator<Item = &Symbol<'a>> + '_ {
        self.elf.symbols.iter().skip(1).filter(|s| s.is_undefined())
    }
}

fn is_code_symbol(elf: &Elf<'_>, s: &Symbol<'_>) -> bool {
    s.kind == elf::STT_FUNC
        && !s.is_undefined()
        && s.shndx != elf::SHN_ABS
        && elf.sections[s.shndx as usize].is_exec()
        && s.size > 0
}

fn check_metadata(data: &[u8]) -> Result<&[u8], PayloadError> {
    let bad = PayloadError::BadMetadata;
    if data.len() > METADATA_MAX {
        return Err(bad("larger than 4096 bytes"));
    }
    if data.is_empty() {
        return Ok(data);
    }
    if data[data.len() - 1] != 0 {
        return Err(bad("does not end with NUL"));
    }
    for s in data[..data.len() - 1].split(|&b| b == 0) {
        let s = core::str::from_utf8(s).map_err(|_| bad("not UTF-8"))?;
        let (k, v) = s.split_once('=').ok_or(bad("an entry is not key=value"))?;
        if k.is_empty()
            || !k
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
        {
            return Err(bad("a key is empty or not [A-Za-z0-9_-]"));
        }
        if v.chars().any(|c| c.is_control()) {
            return Err(bad("a value contains control characters"));
        }
    }
    Ok(data)
}

fn check_symbols(elf: &Elf<'_>) -> Result<(), PayloadError> {
    for s in elf.symbols.iter().skip(1) {
        let bad = |why| PayloadError::BadSymbol {
            index: s.index,
            why,
        };
        if s.shndx == elf::SHN_ABS {
            if s.kind == elf::STT_FILE {
                continue;
            }
            return Err(bad("absolute symbols are not allowed"));
        }
        if s.kind == elf::STT_FILE {
            return Err(bad("STT_FILE symbol not in SHN_ABS"));
        }
        if s.is_undefined() {
            if s.bind == elf::STB_LOCAL {
                return Err(bad("undefined local symbol"));
            }
            if s.name.is_empty() || s.name.len() > SYMBOL_NAME_MAX {
                return Err(bad(
                    "undefined symbol without a name, or a name over 1024 bytes",
                ));
            }
            if !matches!(s.kind, elf::STT_NOTYPE | elf::STT_FUNC | elf::STT_OBJECT) {
                return Err(bad("undefined symbol of an unsupported type"));
            }
            if s.size != 0 {
                return Err(bad("undefined symbol with a size"));
            }
        } else if region_of(elf.sections[s.shndx as usize].name).is_none() {
            return Err(bad("defined in a section that is not loaded"));
        }
    }
    Ok(())
}

fn check_relocations(elf: &Elf<'_>) -> Result<(), PayloadError> {
    for s in elf.sections.iter().filter(|s| s.kind == SHT_RELA) {
        let target = &elf.sections[s.info as usize];
        for (i, r) in elf.relocations(s).enumerate() {
            let bad = |why| PayloadError::BadRelocation {
                section: s.index,
                index: i,
                why,
            };
            let width = reloc_width(r.kind).ok_or(bad("unsupported relocation type"))?;
            if r.sym == 0 {
                return Err(bad("relocation against the null symbol"));
            }
            let sym = &elf.symbols[r.sym as usize];
            if sym.kind == elf::STT_FILE {
                return Err(bad("relocation against a file symbol"));
            }
            let end = r.offset.checked_add(width).ok_or(bad("offset overflows"))?;
            if end > target.size {
                return Err(bad("relocation writes beyond its section"));
            }
        }
    }
    Ok(())
}

fn parse_funcs<'a>(elf: &Elf<'a>, sec: &Section<'a>) -> Result<Vec<FuncEntry<'a>>, PayloadError> {
    let d = sec.data;
    if d.is_empty() || !d.len().is_multiple_of(FUNC_ENTRY_SIZE) {
        return Err(PayloadError::BadSection {
            index: sec.index,
            why: "size is not a non-zero multiple of the record size (64)",
        });
    }
    if d.len() / FUNC_ENTRY_SIZE > FUNCS_MAX {
        return Err(PayloadError::BadSection {
            index: sec.index,
            why: "more than 1024 functions",
        });
    }
    let mut out: Vec<FuncEntry<'a>> = Vec::with_capacity(d.len() / FUNC_ENTRY_SIZE);
    for (index, e) in d.chunks_exact(FUNC_ENTRY_SIZE).enumerate() {
        let bad = |why| PayloadError::BadFunc { index, why };
        if e[entry::VERSION] != FUNC_VERSION {
            return Err(bad("record version is not 1"));
        }
        if u16::from_le_bytes([e[entry::FLAGS], e[entry::FLAGS + 1]]) != 0
            || u32_at(e, entry::RESERVED1) != 0
            || u64_at(e, entry::RESERVED2) != 0
        {
            return Err(bad("reserved fields are not zero"));
        }
        let expect_len = e[entry::EXPECT_LEN] as usize;
        if expect_len > EXPECT_MAX {
            return Err(bad("more than 31 expected bytes"));
        }
        if e[entry::EXPECT + expect_len..entry::EXPECT + 32]
            .iter()
            .any(|&b| b != 0)
        {
            return Err(bad("expected-bytes padding is not zero"));
        }
        let old_size = u32_at(e, entry::OLD_SIZE);
        let new_size = u32_at(e, entry::NEW_SIZE);
        if old_size == 0 {
            return Err(bad("old function size is 0"));
        }
        if expect_len > old_size as usize {
            return Err(bad("more expected bytes than the old function has"));
        }
        let old = elf
            .symbols
            .get(u32_at(e, entry::OLD_SYM) as usize)
            .filter(|s| s.index != 0 && s.is_undefined())
            .ok_or(bad("old function is not an undefined (hypervisor) symbol"))?;
        let new_idx = u32_at(e, entry::NEW_SYM) as usize;
        let new = if new_idx == 0 {
            if new_size == 0 || new_size as usize > NOP_MAX {
                return Err(bad("NOP patch length is not 1..=31"));
            }
            None
        } else {
            let s = elf
                .symbols
                .get(new_idx)
                .filter(|s| is_code_symbol(elf, s))
                .ok_or(bad(
                    "new function is not a function defined in the payload's text",
                ))?;
            if s.size != new_size as u64 {
                return Err(bad("new_size differs from the new function's symbol size"));
            }
            Some(*s)
        };
        if out
            .iter()
            .any(|f| f.old.name == old.name && f.old.value == old.value)
        {
            return Err(bad("the same old function is patched twice"));
        }
        out.push(FuncEntry {
            old: *old,
            new,
            old_size,
            new_size,
            expect: &e[entry::EXPECT..entry::EXPECT + expect_len],
        });
    }
    Ok(out)
}
