//! The image's embedded symbol table (crate `warden-symbols`, the one
//! definition of its format): the hypervisor uses it to symbolise
//! backtraces, the live-patch engine to resolve functions by name, and
//! `xtask` writes it. `hvcore::symbols` re-exports this crate.
//!
//! `xtask` builds the table from the linked ELF's symbols (demangled, hash
//! suffix dropped) and writes it into the image's reserved `.wsymtab` section
//! ([`RESERVED`] bytes), so no address moves. Layout, all little-endian:
//!
//! ```text
//! header   (32 bytes) magic "WSYMTAB1", count u32, names_off u32, names_len u32,
//!                     by_name_off u32, total_len u32, reserved u32
//! entries  count x 24 bytes, sorted by address:
//!                     addr u64, size u32, name_off u32, name_len u32, flags u32
//! by_name  count x u32 entry indices, sorted by (name, addr)
//! names    the name bytes (UTF-8), referenced by name_off/name_len
//! ```
#![cfg_attr(not(test), no_std)]

extern crate alloc;

use alloc::vec::Vec;
use core::cmp::Ordering;
use core::fmt;

/// Bytes reserved in the image for the table.
pub const RESERVED: usize = 512 * 1024;
/// Magic at the start of a table.
pub const MAGIC: &[u8; 8] = b"WSYMTAB1";
const HEADER: usize = 32;
const ENTRY: usize = 24;
/// Entry flag: the symbol is a function (text).
pub const FLAG_FUNC: u32 = 1;

/// One symbol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Symbol<'a> {
    pub name: &'a str,
    pub addr: u64,
    pub size: u64,
    pub flags: u32,
}

impl Symbol<'_> {
    /// Whether this is a function.
    pub fn is_func(&self) -> bool {
        self.flags & FLAG_FUNC != 0
    }
}

/// Why a table could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableError {
    /// No table was written (the image was not post-processed by xtask).
    Missing,
    /// The table's layout is inconsistent.
    Corrupt(&'static str),
}

impl fmt::Display for TableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TableError::Missing => f.write_str("no symbol table in the image"),
            TableError::Corrupt(why) => write!(f, "corrupt symbol table: {why}"),
        }
    }
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    (u32_at(b, off) as u64) | ((u32_at(b, off + 4) as u64) << 32)
}

/// A validated view of a table.
#[derive(Debug, Clone, Copy)]
pub struct SymbolTable<'a> {
    entries: &'a [u8],
    by_name: &'a [u8],
    names: &'a str,
    count: usize,
}

impl<'a> SymbolTable<'a> {
    /// Validate `bytes` (the reserved section, possibly longer than the table).
    pub fn parse(bytes: &'a [u8]) -> Result<Self, TableError> {
        if bytes.len() < HEADER || &bytes[..8] != MAGIC {
            return Err(TableError::Missing);
        }
        let count = u32_at(bytes, 8) as usize;
        let names_off = u32_at(bytes, 12) as usize;
        let names_len = u32_at(bytes, 16) as usize;
        let by_name_off = u32_at(bytes, 20) as usize;
        let total = u32_at(bytes, 24) as usize;
        if total > bytes.len() {
            return Err(TableError::Corrupt("longer than its section"));
        }
        let entries_end = count
            .checked_mul(ENTRY)
            .and_then(|n| n.checked_add(HEADER))
            .ok_or(TableError::Corrupt("count overflows"))?;
        let by_name_end = count
            .checked_mul(4)
            .and_then(|n| n.checked_add(by_name_off))
            .ok_or(TableError::Corrupt("count overflows"))?;
        let names_end = names_off
            .checked_add(names_len)
            .ok_or(TableError::Corrupt("names overflow"))?;
        if entries_end > by_name_off || by_name_end > names_off || names_end > total {
            return Err(TableError::Corrupt(
                "sections out of order or out of bounds",
            ));
        }
        let names = core::str::from_utf8(&bytes[names_off..names_end])
            .map_err(|_| TableError::Corrupt("names are not UTF-8"))?;
        let t = SymbolTable {
            entries: &bytes[HEADER..entries_end],
            by_name: &bytes[by_name_off..by_name_end],
            names,
            count,
        };
        for i in 0..count {
            let e = &t.entries[i * ENTRY..];
            let off = u32_at(e, 12) as usize;
            let len = u32_at(e, 16) as usize;
            let end = off
                .checked_add(len)
                .ok_or(TableError::Corrupt("name overflows"))?;
            if end > names.len() || !names.is_char_boundary(off) || !names.is_char_boundary(end) {
                return Err(TableError::Corrupt("name out of bounds"));
            }
            if u32_at(t.by_name, i * 4) as usize >= count {
                return Err(TableError::Corrupt("name index out of bounds"));
            }
            if i > 0 && u64_at(t.entries, (i - 1) * ENTRY) > u64_at(e, 0) {
                return Err(TableError::Corrupt("entries not sorted by address"));
            }
        }
        Ok(t)
    }

    /// Number of symbols.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The `i`-th symbol in address order.
    pub fn get(&self, i: usize) -> Option<Symbol<'a>> {
        if i >= self.count {
            return None;
        }
        let e = &self.entries[i * ENTRY..];
        let off = u32_at(e, 12) as usize;
        let len = u32_at(e, 16) as usize;
        Some(Symbol {
            name: self.names.get(off..off + len)?,
            addr: u64_at(e, 0),
            size: u32_at(e, 8) as u64,
            flags: u32_at(e, 20),
        })
    }

    /// All symbols in address order.
    pub fn iter(&self) -> impl Iterator<Item = Symbol<'a>> + '_ {
        (0..self.count).filter_map(|i| self.get(i))
    }

    /// The symbol containing `addr` and the offset into it. A symbol of size 0
    /// extends to the next symbol.
    pub fn lookup_addr(&self, addr: u64) -> Option<(Symbol<'a>, u64)> {
        // Last entry with entry.addr <= addr.
        let mut lo = 0;
        let mut hi = self.count;
        while lo < hi {
            let mid = (lo + hi) / 2;
            if u64_at(self.entries, mid * ENTRY) <= addr {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        // Among symbols at or below addr, prefer the nearest that contains it.
        let mut i = lo;
        while i > 0 {
            i -= 1;
            let s = self.get(i)?;
            let off = addr - s.addr;
            if s.size == 0 {
                let next = self.get(i + 1).map_or(u64::MAX, |n| n.addr);
                if addr < next || next == s.addr {
                    return Some((s, off));
                }
            } else if off < s.size {
                return Some((s, off));
            }
            // Only look back through symbols at the same address.
            if i > 0 && self.get(i - 1)?.addr != s.addr {
                break;
            }
        }
        None
    }

    /// The lowest-addressed symbol named exactly `name`.
    pub fn lookup_name(&self, name: &str) -> Option<Symbol<'a>> {
        let name_of = |k: usize| -> Option<Symbol<'a>> {
            if k >= self.count {
                return None;
            }
            self.get(u32_at(self.by_name, k * 4) as usize)
        };
        let mut lo = 0;
        let mut hi = self.count;
        while lo < hi {
            let mid = (lo + hi) / 2;
            match name_of(mid)?.name.cmp(name) {
                Ordering::Less => lo = mid + 1,
                _ => hi = mid,
            }
        }
        name_of(lo).filter(|s| s.name == name)
    }
}

/// A symbol given to [`build`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputSymbol {
    pub name: alloc::string::String,
    pub addr: u64,
    pub size: u64,
    pub flags: u32,
}

/// Serialise symbols into the table format. Names are de-duplicated in the
/// string area; sizes above `u32::MAX` are clamped.
pub fn build(mut syms: Vec<InputSymbol>) -> Vec<u8> {
    syms.sort_by(|a, b| a.addr.cmp(&b.addr).then_with(|| a.name.cmp(&b.name)));
    let count = syms.len();
    let mut names: Vec<u8> = Vec::new();
    let mut name_at: Vec<(u32, u32)> = Vec::with_capacity(count);
    let mut seen: alloc::collections::BTreeMap<&str, u32> = alloc::collections::BTreeMap::new();
    for s in &syms {
        let off = *seen.entry(s.name.as_str()).or_insert_with(|| {
            let off = names.len() as u32;
            names.extend_from_slice(s.name.as_bytes());
            off
        });
        name_at.push((off, s.name.len() as u32));
    }
    let mut order: Vec<u32> = (0..count as u32).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (&syms[a as usize], &syms[b as usize]);
        a.name.cmp(&b.name).then(a.addr.cmp(&b.addr))
    });
    let by_name_off = HEADER + count * ENTRY;
    let names_off = by_name_off + count * 4;
    let total = names_off + names.len();
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(MAGIC);
    for v in [
        count as u32,
        names_off as u32,
        names.len() as u32,
        by_name_off as u32,
        total as u32,
        0,
    ] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for (s, (off, len)) in syms.iter().zip(&name_at) {
        out.extend_from_slice(&s.addr.to_le_bytes());
        out.extend_from_slice(&(s.size.min(u32::MAX as u64) as u32).to_le_bytes());
        out.extend_from_slice(&off.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&s.flags.to_le_bytes());
    }
    for i in order {
        out.extend_from_slice(&i.to_le_bytes());
    }
    out.extend_from_slice(&names);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use proptest::prelude::*;

    fn sym(name: &str, addr: u64, size: u64) -> InputSymbol {
        InputSymbol {
            name: name.to_string(),
            addr,
            size,
            flags: FLAG_FUNC,
        }
    }

    fn table() -> Vec<u8> {
        build(vec![
            sym("warden::main", 0x1000, 0x80),
            sym("hvcore::cmdline::parse", 0x2000, 0x400),
            sym("_start32", 0x100, 0),
            sym("memcpy", 0x1080, 0x20),
            sym("alias_of_main", 0x1000, 0x80),
        ])
    }

    #[test]
    fn lookup_by_address() {
        let bytes = table();
        let t = SymbolTable::parse(&bytes).unwrap();
        assert_eq!(t.len(), 5);
        let (s, off) = t.lookup_addr(0x1010).unwrap();
        assert!(s.name == "warden::main" || s.name == "alias_of_main");
        assert_eq!(off, 0x10);
        let (s, off) = t.lookup_addr(0x109f).unwrap();
        assert_eq!((s.name, off), ("memcpy", 0x1f));
        assert!(t.lookup_addr(0x10a0).is_none(), "gap after memcpy");
        let (s, off) = t.lookup_addr(0x200).unwrap();
        assert_eq!(
            (s.name, off),
            ("_start32", 0x100),
            "size-0 symbol extends to next"
        );
        assert!(t.lookup_addr(0x50).is_none());
        assert!(t.lookup_addr(0x2400).is_none());
        assert!(
            t.iter()
                .zip(t.iter().skip(1))
                .all(|(a, b)| a.addr <= b.addr)
        );
    }

    #[test]
    fn lookup_by_name() {
        let bytes = table();
        let t = SymbolTable::parse(&bytes).unwrap();
        let s = t.lookup_name("hvcore::cmdline::parse").unwrap();
        assert_eq!((s.addr, s.size), (0x2000, 0x400));
        assert!(s.is_func());
        assert_eq!(t.lookup_name("memcpy").unwrap().addr, 0x1080);
        assert!(t.lookup_name("memcp").is_none());
        assert!(t.lookup_name("zzz").is_none());
        assert!(t.lookup_name("").is_none());
    }

    #[test]
    fn missing_and_corrupt_tables_are_refused() {
        assert_eq!(
            SymbolTable::parse(&[0u8; 4096]).unwrap_err(),
            TableError::Missing
        );
        assert_eq!(SymbolTable::parse(&[]).unwrap_err(), TableError::Missing);
        let good = table();
        let mut bad = good.clone();
        bad[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            SymbolTable::parse(&bad),
            Err(TableError::Corrupt(_))
        ));
        let mut bad = good.clone();
        let n = bad.len();
        bad.truncate(n - 3);
        assert!(matches!(
            SymbolTable::parse(&bad),
            Err(TableError::Corrupt(_))
        ));
        let mut bad = good.clone();
        bad[HEADER + 12..HEADER + 16].copy_from_slice(&9999u32.to_le_bytes());
        assert!(matches!(
            SymbolTable::parse(&bad),
            Err(TableError::Corrupt(_))
        ));
        // Extra trailing space (the reserved section) is fine.
        let mut padded = good.clone();
        padded.resize(RESERVED, 0);
        assert_eq!(SymbolTable::parse(&padded).unwrap().len(), 5);
    }

    proptest! {
        #[test]
        fn every_symbol_is_found(
            syms in proptest::collection::btree_map("[a-z:_]{1,12}", (0u64..1 << 20, 1u64..64), 1..50)
        ) {
            let input: Vec<InputSymbol> = syms.iter().map(|(n, &(a, s))| sym(n, a, s)).collect();
            let bytes = build(input.clone());
            let t = SymbolTable::parse(&bytes).unwrap();
            for s in &input {
                let f = t.lookup_name(&s.name).unwrap();
                prop_assert_eq!(f.name, s.name.as_str());
                let (found, off) = t.lookup_addr(s.addr).unwrap();
                prop_assert!(found.addr <= s.addr && off < found.size.max(1));
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            if bytes.len() >= 8 { bytes[..8].copy_from_slice(MAGIC); }
            if let Ok(t) = SymbolTable::parse(&bytes) {
                for s in t.iter() { let _ = t.lookup_addr(s.addr); let _ = t.lookup_name(s.name); }
                let _ = t.lookup_addr(0x1234);
            }
        }
    }
}
