//! The image's own layout (from the linker script), build-id and embedded
//! symbol table.

use core::fmt;
use hvcore::memmap::PhysRange;
use hvcore::symbols::{SymbolTable, TableError};

unsafe extern "C" {
    static __image_start: u8;
    static __image_end: u8;
    static __text_start: u8;
    static __text_end: u8;
    static __rodata_start: u8;
    static __rodata_end: u8;
    static __data_start: u8;
    static __bss_end: u8;
    static __build_id_note: u8;
    static __build_id_note_end: u8;
    static __wsymtab_start: u8;
    static __wsymtab_end: u8;
}

macro_rules! addr {
    ($s:ident) => {
        (&raw const $s) as u64
    };
}

/// Where each part of the image is.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    pub image: PhysRange,
    pub text: PhysRange,
    pub rodata: PhysRange,
    /// .data and .bss.
    pub data: PhysRange,
}

pub fn layout() -> Layout {
    Layout {
        image: PhysRange::new(addr!(__image_start), addr!(__image_end)),
        text: PhysRange::new(addr!(__text_start), addr!(__text_end)),
        rodata: PhysRange::new(addr!(__rodata_start), addr!(__rodata_end)),
        data: PhysRange::new(addr!(__data_start), addr!(__bss_end)),
    }
}

/// Which part of the image an address is in, for fault reports. Never
/// inlined: `livepatch build`'s tests patch it as a one-function change.
#[inline(never)]
pub fn section_of(addr: u64) -> Option<&'static str> {
    let l = layout();
    if l.text.contains(addr) {
        Some(".text (read-only, executable)")
    } else if l.rodata.contains(addr) {
        Some(".rodata (read-only, no-execute)")
    } else if l.data.contains(addr) {
        Some(".data/.bss (read-write, no-execute)")
    } else {
        None
    }
}

/// The GNU build-id (SHA-1 from the linker), as bytes.
pub fn build_id() -> &'static [u8] {
    let start = addr!(__build_id_note);
    let end = addr!(__build_id_note_end);
    let len = end.saturating_sub(start) as usize;
    // SAFETY: the linker placed the note between these symbols, in rodata.
    let note = unsafe { core::slice::from_raw_parts(start as *const u8, len) };
    if note.len() < 16 {
        return &[];
    }
    let word =
        |o: usize| u32::from_le_bytes([note[o], note[o + 1], note[o + 2], note[o + 3]]) as usize;
    let (namesz, descsz, ty) = (word(0), word(4), word(8));
    let desc = 12 + namesz.div_ceil(4) * 4;
    if ty != 3 || desc + descsz > note.len() {
        return &[];
    }
    &note[desc..desc + descsz]
}

/// Lower-case hex of the build-id.
pub struct Hex(pub &'static [u8]);
impl fmt::Display for Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("<none>");
        }
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// The embedded symbol table (written into `.wsymtab` by xtask after linking).
pub fn symbols() -> Result<SymbolTable<'static>, TableError> {
    let start = addr!(__wsymtab_start);
    let end = addr!(__wsymtab_end);
    // SAFETY: `.wsymtab` is a read-only section of the image between these symbols.
    let bytes = unsafe {
        core::slice::from_raw_parts(start as *const u8, end.saturating_sub(start) as usize)
    };
    SymbolTable::parse(bytes)
}

/// `name+0xoff/0xsize` for an address, or `??`.
pub struct Sym(pub u64);
impl fmt::Display for Sym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match symbols().ok().and_then(|t| t.lookup_addr(self.0)) {
            Some((s, off)) if s.size == 0 => write!(f, "{}+{:#x}", s.name, off),
            Some((s, off)) => write!(f, "{}+{:#x}/{:#x}", s.name, off, s.size),
            None => f.write_str("??"),
        }
    }
}

// The symbol table's storage: RESERVED zero bytes in their own section,
// filled in by `cargo xtask` after linking.
core::arch::global_asm!(
    ".section .wsymtab, \"a\", @progbits",
    ".balign 16",
    ".skip {size}",
    ".section .text",
    size = const hvcore::symbols::RESERVED,
);
