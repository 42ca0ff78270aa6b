//! [`LentFrames`]: which host frames are lent to domains, for the release-build
//! checks of a [`HostMem`](crate::p2m::HostMem) implementation over real memory.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

const FRAME: u64 = 4096;

/// A set of host frames (one bit per frame below a limit), lock-free.
pub struct LentFrames {
    bits: Box<[AtomicU64]>,
}

impl core::fmt::Debug for LentFrames {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("LentFrames")
            .field("frames", &self.limit())
            .finish_non_exhaustive()
    }
}

impl LentFrames {
    /// An empty set for frames `0..frames` (one bit each).
    pub fn new(frames: u64) -> LentFrames {
        let words = frames.div_ceil(64) as usize;
        let bits: Vec<AtomicU64> = (0..words).map(|_| AtomicU64::new(0)).collect();
        LentFrames {
            bits: bits.into_boxed_slice(),
        }
    }

    /// Frames the set can hold.
    pub fn limit(&self) -> u64 {
        self.bits.len() as u64 * 64
    }

    /// The word and bit of the frame at `pa` (page-aligned, below the limit).
    fn slot(&self, pa: u64) -> Option<(&AtomicU64, u64)> {
        if !pa.is_multiple_of(FRAME) {
            return None;
        }
        let f = pa / FRAME;
        let w = self.bits.get((f / 64) as usize)?;
        Some((w, 1u64 << (f % 64)))
    }

    /// Add the frame at `pa`; false if it is not a frame address below the
    /// limit or is already in the set.
    pub fn insert(&self, pa: u64) -> bool {
        self.slot(pa)
            .is_some_and(|(w, b)| w.fetch_or(b, Ordering::AcqRel) & b == 0)
    }

    /// Remove the frame at `pa`; false if it was not in the set.
    pub fn remove(&self, pa: u64) -> bool {
        self.slot(pa)
            .is_some_and(|(w, b)| w.fetch_and(!b, Ordering::AcqRel) & b != 0)
    }

    /// Whether the frame containing `pa` is in the set.
    pub fn contains(&self, pa: u64) -> bool {
        self.slot(pa & !(FRAME - 1))
            .is_some_and(|(w, b)| w.load(Ordering::Acquire) & b != 0)
    }

    /// Whether `len` bytes at `pa` lie within one frame of the set.
    pub fn covers(&self, pa: u64, len: usize) -> bool {
        len as u64 <= FRAME - (pa & (FRAME - 1)) && self.contains(pa)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_remove_and_ranges() {
        let s = LentFrames::new(100);
        assert_eq!(s.limit(), 128);
        assert!(s.insert(5 * FRAME));
        assert!(!s.insert(5 * FRAME), "already lent");
        assert!(!s.insert(5 * FRAME + 8), "not a frame address");
        assert!(!s.insert(128 * FRAME), "beyond the limit");
        assert!(s.contains(5 * FRAME + 4095));
        assert!(!s.contains(6 * FRAME));
        assert!(s.covers(5 * FRAME, 4096));
        assert!(s.covers(5 * FRAME + 4000, 96));
        assert!(
            !s.covers(5 * FRAME + 4000, 97),
            "crosses into the next frame"
        );
        assert!(!s.covers(4 * FRAME, 1), "not lent");
        assert!(!s.covers(u64::MAX, 1));
        assert!(s.remove(5 * FRAME));
        assert!(!s.remove(5 * FRAME), "double free");
        assert!(!s.contains(5 * FRAME));
    }
}
