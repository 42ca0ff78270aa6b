//! The physical memory map: region kinds, physical ranges, and normalisation of
//! a boot loader's (possibly unsorted, overlapping) map into sorted, disjoint
//! regions.

use alloc::vec::Vec;
use core::fmt;

/// A half-open physical address range `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PhysRange {
    pub start: u64,
    pub end: u64,
}

impl PhysRange {
    /// `[start, end)`; an inverted range becomes empty.
    pub const fn new(start: u64, end: u64) -> Self {
        PhysRange {
            start,
            end: if end < start { start } else { end },
        }
    }

    /// `[start, start + len)`, saturating at the top of the address space.
    pub const fn with_len(start: u64, len: u64) -> Self {
        PhysRange::new(start, start.saturating_add(len))
    }

    pub const fn len(&self) -> u64 {
        self.end - self.start
    }

    pub const fn is_empty(&self) -> bool {
        self.end <= self.start
    }

    pub const fn overlaps(&self, o: &PhysRange) -> bool {
        self.start < o.end && o.start < self.end
    }

    pub const fn contains(&self, addr: u64) -> bool {
        self.start <= addr && addr < self.end
    }
}

impl fmt::Display for PhysRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{:#014x}-{:#014x})", self.start, self.end)
    }
}

/// What a region of the physical address space is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryKind {
    /// RAM free for the OS (E820 type 1).
    Usable,
    /// ACPI tables, reclaimable after they are read (type 3).
    AcpiReclaimable,
    /// ACPI non-volatile storage (type 4).
    AcpiNvs,
    /// Defective RAM (type 5).
    Bad,
    /// Reserved (type 2 and any unknown type).
    Reserved(u32),
}

impl MemoryKind {
    /// From an E820 / Multiboot memory type.
    pub fn from_e820(t: u32) -> Self {
        match t {
            1 => MemoryKind::Usable,
            3 => MemoryKind::AcpiReclaimable,
            4 => MemoryKind::AcpiNvs,
            5 => MemoryKind::Bad,
            t => MemoryKind::Reserved(t),
        }
    }

    /// When regions overlap, the higher rank wins (never hand out anything
    /// that any entry says is not free RAM).
    fn rank(self) -> u8 {
        match self {
            MemoryKind::Usable => 0,
            MemoryKind::AcpiReclaimable => 1,
            MemoryKind::Reserved(_) => 2,
            MemoryKind::AcpiNvs => 3,
            MemoryKind::Bad => 4,
        }
    }

    /// Whether the region holds RAM (cacheable memory).
    pub fn is_ram(self) -> bool {
        matches!(
            self,
            MemoryKind::Usable | MemoryKind::AcpiReclaimable | MemoryKind::AcpiNvs
        )
    }
}

impl fmt::Display for MemoryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MemoryKind::Usable => f.write_str("usable"),
            MemoryKind::AcpiReclaimable => f.write_str("ACPI data"),
            MemoryKind::AcpiNvs => f.write_str("ACPI NVS"),
            MemoryKind::Bad => f.write_str("bad RAM"),
            MemoryKind::Reserved(2) => f.write_str("reserved"),
            MemoryKind::Reserved(t) => write!(f, "reserved (type {t})"),
        }
    }
}

/// One region of the memory map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryRegion {
    pub range: PhysRange,
    pub kind: MemoryKind,
}

/// Sort, resolve overlaps (the more restrictive kind wins), drop empty
/// regions and merge adjacent regions of the same kind.
pub fn normalize(regions: &[MemoryRegion]) -> Vec<MemoryRegion> {
    let mut points: Vec<u64> = regions
        .iter()
        .filter(|r| !r.range.is_empty())
        .flat_map(|r| [r.range.start, r.range.end])
        .collect();
    points.sort_unstable();
    points.dedup();
    let mut out: Vec<MemoryRegion> = Vec::new();
    for w in points.windows(2) {
        let piece = PhysRange::new(w[0], w[1]);
        let kind = regions
            .iter()
            .filter(|r| r.range.start <= piece.start && piece.end <= r.range.end)
            .map(|r| r.kind)
            .max_by_key(|k| k.rank());
        let Some(kind) = kind else { continue };
        match out.last_mut() {
            Some(last) if last.kind == kind && last.range.end == piece.start => {
                last.range.end = piece.end
            }
            _ => out.push(MemoryRegion { range: piece, kind }),
        }
    }
    out
}

/// Total bytes of the given kind.
pub fn total(regions: &[MemoryRegion], kind: MemoryKind) -> u64 {
    regions
        .iter()
        .filter(|r| r.kind == kind)
        .map(|r| r.range.len())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: u64, e: u64, t: u32) -> MemoryRegion {
        MemoryRegion {
            range: PhysRange::new(s, e),
            kind: MemoryKind::from_e820(t),
        }
    }

    #[test]
    fn sorts_merges_and_resolves_overlaps() {
        let input = [
            r(0x100000, 0x200000, 1),
            r(0, 0x9fc00, 1),
            r(0x200000, 0x300000, 1),
            r(0x250000, 0x260000, 2), // reserved inside usable
            r(0xf0000, 0x100000, 2),
            r(0x500000, 0x500000, 1), // empty
        ];
        let out = normalize(&input);
        assert_eq!(
            out,
            vec![
                r(0, 0x9fc00, 1),
                r(0xf0000, 0x100000, 2),
                r(0x100000, 0x250000, 1),
                r(0x250000, 0x260000, 2),
                r(0x260000, 0x300000, 1),
            ]
        );
        assert_eq!(
            total(&out, MemoryKind::Usable),
            0x9fc00 + 0x150000 + 0xa0000
        );
    }

    #[test]
    fn restrictive_kind_wins() {
        let out = normalize(&[r(0, 0x1000, 3), r(0, 0x1000, 1), r(0, 0x1000, 5)]);
        assert_eq!(out, vec![r(0, 0x1000, 5)]);
    }

    #[test]
    fn range_helpers() {
        let a = PhysRange::new(10, 20);
        assert!(a.overlaps(&PhysRange::new(19, 30)));
        assert!(!a.overlaps(&PhysRange::new(20, 30)));
        assert!(PhysRange::new(5, 1).is_empty());
        assert_eq!(PhysRange::with_len(u64::MAX - 1, 10).end, u64::MAX);
        assert_eq!(MemoryKind::from_e820(12), MemoryKind::Reserved(12));
    }
}
