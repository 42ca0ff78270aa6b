//! The physical frame allocator.
//!
//! Built from the normalised memory map minus every reserved range (the image,
//! boot modules, the loader's structures, the null page): it never hands out a
//! frame outside usable RAM or inside a reserved range. Free memory is kept as
//! a sorted list of disjoint, non-adjacent frame ranges. Allocation takes the
//! highest suitable frames within a [`Zone`], so low memory (below 1 MiB for AP
//! trampolines, below 4 GiB for 32-bit structures) lasts.

use crate::memmap::{MemoryKind, MemoryRegion, PhysRange};
use crate::{PAGE_SIZE, Result, align_down, align_up, err};
use alloc::vec::Vec;
use core::ops::Range;

/// Where an allocation may come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zone {
    /// Anywhere.
    Any,
    /// Entirely below this physical address.
    Below(u64),
}

impl Zone {
    /// Real-mode reachable memory (AP start-up trampolines).
    pub const LOW_1M: Zone = Zone::Below(1 << 20);
    /// 32-bit addressable memory (page tables loaded by 32-bit code).
    pub const BELOW_4G: Zone = Zone::Below(1 << 32);

    fn limit_frame(self) -> u64 {
        match self {
            Zone::Any => u64::MAX / PAGE_SIZE,
            Zone::Below(a) => a / PAGE_SIZE,
        }
    }
}

/// The allocator. Frame numbers are physical addresses divided by [`PAGE_SIZE`].
#[derive(Debug, Clone)]
pub struct FrameAllocator {
    free: Vec<Range<u64>>,
    usable: Vec<Range<u64>>,
    total: u64,
}

fn subtract(ranges: &mut Vec<Range<u64>>, cut: Range<u64>) {
    if cut.start >= cut.end {
        return;
    }
    let mut out = Vec::with_capacity(ranges.len() + 1);
    for r in ranges.drain(..) {
        if r.end <= cut.start || cut.end <= r.start {
            out.push(r);
            continue;
        }
        if r.start < cut.start {
            out.push(r.start..cut.start);
        }
        if cut.end < r.end {
            out.push(cut.end..r.end);
        }
    }
    *ranges = out;
}

impl FrameAllocator {
    /// Build from a normalised memory map (see [`crate::memmap::normalize`])
    /// and the ranges that must never be handed out. Partial pages at the edges
    /// of usable regions are not used; any page touched by a reserved range is
    /// excluded. Frame 0 is always excluded.
    pub fn new(map: &[MemoryRegion], reserved: &[PhysRange]) -> Self {
        let mut usable: Vec<Range<u64>> = Vec::new();
        for r in map.iter().filter(|r| r.kind == MemoryKind::Usable) {
            let Some(s) = align_up(r.range.start, PAGE_SIZE) else {
                continue;
            };
            let e = align_down(r.range.end, PAGE_SIZE);
            if s < e {
                usable.push(s / PAGE_SIZE..e / PAGE_SIZE);
            }
        }
        usable.sort_by_key(|r| r.start);
        let mut free = usable.clone();
        subtract(&mut free, 0..1);
        for r in reserved.iter().filter(|r| !r.is_empty()) {
            let s = r.start / PAGE_SIZE;
            let e = align_up(r.end, PAGE_SIZE).map_or(u64::MAX / PAGE_SIZE + 1, |v| v / PAGE_SIZE);
            subtract(&mut free, s..e);
        }
        let total = usable.iter().map(|r| r.end - r.start).sum();
        let mut fa = FrameAllocator {
            free: Vec::new(),
            usable,
            total,
        };
        for r in free {
            fa.insert(r);
        }
        fa
    }

    /// Insert a range into the free list, merging neighbours. The caller
    /// guarantees it does not overlap the list.
    fn insert(&mut self, r: Range<u64>) {
        let i = self.free.partition_point(|f| f.start < r.start);
        let merge_prev = i > 0 && self.free[i - 1].end == r.start;
        let merge_next = i < self.free.len() && self.free[i].start == r.end;
        match (merge_prev, merge_next) {
            (true, true) => {
                self.free[i - 1].end = self.free[i].end;
                self.free.remove(i);
            }
            (true, false) => self.free[i - 1].end = r.end,
            (false, true) => self.free[i].start = r.start,
            (false, false) => self.free.insert(i, r),
        }
    }

    /// Allocate `count` contiguous frames aligned to `align` frames (a power
    /// of two), from the highest suitable free memory in `zone`. Returns the
    /// physical address of the first frame.
    pub fn alloc(&mut self, count: u64, align: u64, zone: Zone) -> Result<u64> {
        if count == 0 || !align.is_power_of_two() {
            return Err(err!(
                InvalidInput,
                "frame allocation of {count} frames aligned to {align} is not valid"
            ));
        }
        let limit = zone.limit_frame();
        for i in (0..self.free.len()).rev() {
            let r = self.free[i].clone();
            let top = r.end.min(limit);
            if top < r.start + count {
                continue;
            }
            let start = align_down(top - count, align);
            if start < r.start {
                continue;
            }
            let taken = start..start + count;
            self.free.remove(i);
            if r.start < taken.start {
                self.free.insert(i, r.start..taken.start);
            }
            if taken.end < r.end {
                let at = if r.start < taken.start { i + 1 } else { i };
                self.free.insert(at, taken.end..r.end);
            }
            return Ok(start * PAGE_SIZE);
        }
        Err(err!(
            NoMemory,
            "no {count} contiguous free frames (alignment {align}) {}",
            match zone {
                Zone::Any => alloc::string::String::from("anywhere"),
                Zone::Below(a) => alloc::format!("below {a:#x}"),
            }
        ))
    }

    /// Return `count` frames at `addr`. Refuses frames that are not usable RAM
    /// or are already free (a double free), leaving the allocator unchanged.
    pub fn free(&mut self, addr: u64, count: u64) -> Result<()> {
        if !addr.is_multiple_of(PAGE_SIZE) || count == 0 {
            return Err(err!(
                InvalidInput,
                "free of {count} frames at {addr:#x}: not page-aligned or empty"
            ));
        }
        let s = addr / PAGE_SIZE;
        let Some(e) = s.checked_add(count) else {
            return Err(err!(
                InvalidInput,
                "free of {count} frames at {addr:#x} overflows"
            ));
        };
        if !self.usable.iter().any(|u| u.start <= s && e <= u.end) {
            return Err(err!(
                InvalidInput,
                "free of [{addr:#x}, +{count} frames) outside usable RAM"
            ));
        }
        if self.free.iter().any(|f| f.start < e && s < f.end) {
            return Err(err!(
                InvalidInput,
                "double free of frames in [{addr:#x}, +{count} frames)"
            ));
        }
        self.insert(s..e);
        Ok(())
    }

    /// Give back memory reserved at boot that is no longer needed (the boot
    /// modules once the domains have their copies): every page a range of
    /// `release` touches, except pages a range of `keep` touches (what is
    /// still in use, e.g. the image or a loader structure sharing a page
    /// with a module), frame 0, memory outside usable RAM and pages already
    /// free. Returns the number of frames added to the free list.
    pub fn release(&mut self, release: &[PhysRange], keep: &[PhysRange]) -> u64 {
        let pages = |r: &PhysRange| {
            let s = r.start / PAGE_SIZE;
            let e = align_up(r.end, PAGE_SIZE).map_or(u64::MAX / PAGE_SIZE + 1, |v| v / PAGE_SIZE);
            s..e
        };
        let mut give: Vec<Range<u64>> = Vec::new();
        for r in release.iter().filter(|r| !r.is_empty()) {
            let p = pages(r);
            // Within usable RAM only.
            for u in &self.usable {
                let (s, e) = (p.start.max(u.start), p.end.min(u.end));
                if s < e {
                    give.push(s..e);
                }
            }
        }
        for k in keep.iter().filter(|r| !r.is_empty()) {
            subtract(&mut give, pages(k));
        }
        subtract(&mut give, 0..1);
        let free = self.free.clone();
        for f in free {
            subtract(&mut give, f);
        }
        // Ranges of `release` may overlap each other: add each page once.
        give.sort_by_key(|r| r.start);
        let mut added = 0;
        let mut upto = 0u64;
        for r in give {
            let s = r.start.max(upto);
            if s < r.end {
                self.insert(s..r.end);
                added += r.end - s;
                upto = r.end;
            }
        }
        added
    }

    /// Free frames.
    pub fn free_frames(&self) -> u64 {
        self.free.iter().map(|r| r.end - r.start).sum()
    }

    /// Usable frames in the memory map (free or not).
    pub fn total_frames(&self) -> u64 {
        self.total
    }

    /// The free ranges, as physical ranges, lowest first.
    pub fn free_ranges(&self) -> impl Iterator<Item = PhysRange> + '_ {
        self.free
            .iter()
            .map(|r| PhysRange::new(r.start * PAGE_SIZE, r.end * PAGE_SIZE))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memmap::normalize;
    use proptest::prelude::*;

    fn usable(s: u64, e: u64) -> MemoryRegion {
        MemoryRegion {
            range: PhysRange::new(s, e),
            kind: MemoryKind::Usable,
        }
    }

    fn qemu_map() -> Vec<MemoryRegion> {
        normalize(&[
            usable(0, 0x9fc00),
            MemoryRegion {
                range: PhysRange::new(0xf0000, 0x100000),
                kind: MemoryKind::Reserved(2),
            },
            usable(0x100000, 0x7fe0000),
        ])
    }

    #[test]
    fn never_hands_out_reserved_frames() {
        let image = PhysRange::new(0x100000, 0x1a3000);
        let module = PhysRange::new(0x1a3000, 0x1a4321);
        let info = PhysRange::new(0x9000, 0x9078);
        let mut fa = FrameAllocator::new(&qemu_map(), &[image, module, info]);
        let n = fa.free_frames();
        // Everything usable minus frame 0, the info page, image+module pages.
        let expected = (0x9f) - 1 - 1 + (0x7fe0 - 0x100) - (0x1a5 - 0x100);
        assert_eq!(n, expected);
        let mut got = Vec::new();
        while let Ok(a) = fa.alloc(1, 1, Zone::Any) {
            got.push(a);
        }
        assert_eq!(got.len() as u64, n);
        for a in &got {
            let f = PhysRange::with_len(*a, PAGE_SIZE);
            assert!(
                !f.overlaps(&image) && !f.overlaps(&module) && !f.overlaps(&info),
                "{a:#x}"
            );
            assert!(*a != 0);
            assert!(
                *a < 0x9f000 || (0x100000..0x7fe0000).contains(a),
                "{a:#x} outside RAM"
            );
        }
        // Highest first.
        assert_eq!(got[0], 0x7fdf000);
        assert_eq!(fa.free_frames(), 0);
        assert!(
            fa.alloc(1, 1, Zone::Any)
                .unwrap_err()
                .detail()
                .contains("no 1 contiguous")
        );
    }

    #[test]
    fn released_boot_modules_become_free_except_what_is_kept() {
        let image = PhysRange::new(0x100000, 0x1a3000);
        // Two modules; the second ends in the page where a loader structure
        // starts; a third lies partly outside RAM.
        let m1 = PhysRange::new(0x1a3000, 0x1c0800);
        let m2 = PhysRange::new(0x1c0800, 0x1d0100);
        let info = PhysRange::new(0x1d0200, 0x1d0300);
        let m3 = PhysRange::new(0x7fd0000, 0x8000000);
        let mut fa = FrameAllocator::new(&qemu_map(), &[image, m1, m2, info, m3]);
        let before = fa.free_frames();
        let n = fa.release(&[m1, m2, m3, m1], &[image, info]);
        // m1+m2: pages 0x1a3..0x1d1 less 0x1d0 (info's page); m3: up to
        // the end of RAM (0x7fe0).
        let want = (0x1d0 - 0x1a3) + (0x7fe0 - 0x7fd0);
        assert_eq!(n, want);
        assert_eq!(fa.free_frames(), before + want);
        // The structure's page and the image are never handed out.
        let mut got = Vec::new();
        while let Ok(a) = fa.alloc(1, 1, Zone::Any) {
            got.push(a);
        }
        assert_eq!(got.len() as u64, before + want);
        for a in &got {
            let f = PhysRange::with_len(*a, PAGE_SIZE);
            assert!(!f.overlaps(&image) && !f.overlaps(&info), "{a:#x}");
            assert!(*a < 0x7fe0000 && *a != 0, "{a:#x}");
        }
        // Pages already free are skipped: releasing twice adds nothing.
        let mut fa = FrameAllocator::new(&qemu_map(), &[image, m1]);
        let n1 = fa.release(&[m1], &[]);
        assert_eq!(n1, 0x1c1 - 0x1a3);
        assert_eq!(fa.release(&[m1], &[]), 0);
        // Frame 0 is never released.
        let mut fa = FrameAllocator::new(&qemu_map(), &[PhysRange::new(0, 0x2000)]);
        assert_eq!(fa.release(&[PhysRange::new(0, 0x2000)], &[]), 1);
        assert!(fa.alloc(1, 1, Zone::Below(0x1000)).is_err());
    }

    #[test]
    fn zones_and_alignment() {
        let mut fa = FrameAllocator::new(&qemu_map(), &[]);
        let low = fa.alloc(1, 1, Zone::LOW_1M).unwrap();
        assert_eq!(low, 0x9e000);
        let big = fa.alloc(512, 512, Zone::Any).unwrap();
        assert_eq!(big % (2 << 20), 0);
        assert!(big + 512 * PAGE_SIZE <= 0x7fe0000);
        let b4g = fa.alloc(3, 1, Zone::BELOW_4G).unwrap();
        assert!(b4g + 3 * PAGE_SIZE <= 1 << 32);
        assert!(fa.alloc(0, 1, Zone::Any).is_err());
        assert!(fa.alloc(1, 3, Zone::Any).is_err());
        assert!(
            fa.alloc(1, 1, Zone::Below(0x1000)).is_err(),
            "frame 0 never given"
        );
    }

    #[test]
    fn free_merges_and_refuses_bad_frees() {
        let mut fa = FrameAllocator::new(&qemu_map(), &[]);
        let before = fa.free_frames();
        let ranges_before: Vec<_> = fa.free_ranges().collect();
        let a = fa.alloc(4, 1, Zone::Any).unwrap();
        assert_eq!(fa.free_frames(), before - 4);
        fa.free(a, 4).unwrap();
        assert_eq!(fa.free_frames(), before);
        assert_eq!(fa.free_ranges().collect::<Vec<_>>(), ranges_before);
        assert!(fa.free(a, 1).unwrap_err().detail().contains("double free"));
        assert!(
            fa.free(0xf0000, 1)
                .unwrap_err()
                .detail()
                .contains("outside usable")
        );
        assert!(fa.free(a + 1, 1).is_err());
        assert!(fa.free(!0xfff, 2).is_err());
        assert_eq!(fa.free_frames(), before);
    }

    #[test]
    fn partial_pages_and_odd_maps() {
        let fa = FrameAllocator::new(&[usable(0x1800, 0x3800)], &[]);
        assert_eq!(
            fa.free_ranges().collect::<Vec<_>>(),
            vec![PhysRange::new(0x2000, 0x3000)]
        );
        let fa = FrameAllocator::new(
            &[usable(u64::MAX - 10, u64::MAX)],
            &[PhysRange::new(u64::MAX - 5, u64::MAX)],
        );
        assert_eq!(fa.free_frames(), 0);
        let fa = FrameAllocator::new(&[], &[]);
        assert_eq!(fa.free_frames(), 0);
    }

    proptest! {
        #[test]
        fn random_maps_respect_reservations(
            regions in proptest::collection::vec((0u64..1 << 24, 0u64..1 << 22, 1u32..6), 1..12),
            reserved in proptest::collection::vec((0u64..1 << 24, 0u64..1 << 20), 0..6),
            ops in proptest::collection::vec((1u64..9, 0u32..3, any::<bool>()), 1..60),
        ) {
            let map: Vec<MemoryRegion> = regions.iter().map(|&(s, l, t)| MemoryRegion {
                range: PhysRange::with_len(s, l), kind: MemoryKind::from_e820(t)
            }).collect();
            let norm = normalize(&map);
            let res: Vec<PhysRange> = reserved.iter().map(|&(s, l)| PhysRange::with_len(s, l)).collect();
            let mut fa = FrameAllocator::new(&norm, &res);
            let mut live: Vec<(u64, u64)> = Vec::new();
            for (count, zone, free_one) in ops {
                if free_one && !live.is_empty() {
                    let (a, c) = live.swap_remove(0);
                    prop_assert!(fa.free(a, c).is_ok());
                    continue;
                }
                let zone = [Zone::Any, Zone::LOW_1M, Zone::Below(1 << 23)][zone as usize];
                if let Ok(a) = fa.alloc(count, 1, zone) {
                    let got = PhysRange::with_len(a, count * PAGE_SIZE);
                    if let Zone::Below(l) = zone { prop_assert!(got.end <= l); }
                    prop_assert!(a != 0);
                    for r in &res { prop_assert!(!got.overlaps(r)); }
                    // Wholly inside one usable region of the normalised map.
                    prop_assert!(norm.iter().any(|m| m.kind == MemoryKind::Usable
                        && m.range.start <= got.start && got.end <= m.range.end));
                    for &(b, c) in &live {
                        prop_assert!(!got.overlaps(&PhysRange::with_len(b, c * PAGE_SIZE)));
                    }
                    live.push((a, count));
                }
            }
            let held: u64 = live.iter().map(|l| l.1).sum();
            let fresh = FrameAllocator::new(&norm, &res);
            prop_assert_eq!(fa.free_frames() + held, fresh.free_frames());
        }
    }
}
