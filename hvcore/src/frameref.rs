//! References to a domain's frames from outside its own physmap, which keep
//! a frame allocated after its owner gave it up (Xen's page reference
//! counts, for what Warden needs of them).
//!
//! Two things hold frames of another domain:
//! - *foreign mappings* (`XENMAPSPACE_gmfn_foreign`, `acquire_resource`):
//!   the mapper's physmap maps the owner's RAM or grant-table frame;
//!   each mapping holds one reference ([`FrameRefs::get`], [`FrameRefs::put`]);
//! - *grant pins* (a grant mapped or being copied): the owner's grant table
//!   *orphans* a pinned frame its owner gives up and reports the release of
//!   its last pin ([`FrameRefs::grant_released`]).
//!
//! A frame leaves its owner (decrease_reservation, remove_from_physmap, a
//! foreign map over RAM, the owner's death: [`FrameRefs::owner_release`])
//! and is freed only once neither holds it any more, by whichever lets go
//! last. Every decision is taken under one lock, so a frame is freed exactly
//! once and never while a physmap maps it (the mapper's physmap entry is
//! removed, and its TLBs shot down, before its reference is dropped).
//!
//! A reference is taken only on a frame found in its owner's physmap under
//! the owner's memory lock (held for reading), and the owner gives frames up
//! under the same lock held for writing, so a reference is never taken on a
//! frame already given up. The owner's grant-table frames are guarded the
//! same way by the grant table's frame lock.

use alloc::collections::BTreeMap;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Held {
    /// Foreign mappings of the frame.
    foreign: u32,
    /// Grant-table orphanings not yet matched by their release (a release
    /// may be reported before the owner's giving up is recorded: -1).
    grant: i32,
    /// Its owner gave it up.
    orphaned: bool,
}

/// The frames held beyond their owner's physmap, by host address.
#[derive(Debug, Default)]
pub struct FrameRefs {
    held: spin::Mutex<BTreeMap<u64, Held>>,
}

/// The entry is done with when nothing holds it; then the frame is to be
/// freed if its owner gave it up.
fn settle(map: &mut BTreeMap<u64, Held>, pa: u64) -> bool {
    match map.get(&pa) {
        Some(h) if h.foreign == 0 && h.grant == 0 => {
            let free = h.orphaned;
            map.remove(&pa);
            free
        }
        _ => false,
    }
}

impl FrameRefs {
    pub fn new() -> FrameRefs {
        FrameRefs::default()
    }

    /// A foreign mapping takes a reference on `pa` (found in its owner's
    /// physmap, under the owner's memory lock). ENOMEM when the count is
    /// exhausted.
    pub fn get(&self, pa: u64) -> Result<(), i32> {
        let mut m = self.held.lock();
        let h = m.entry(pa).or_default();
        h.foreign = h.foreign.checked_add(1).ok_or(warden_abi::errno::ENOMEM)?;
        Ok(())
    }

    /// A foreign mapping of `pa` is gone (out of the mapper's physmap, its
    /// TLBs shot down): true if the caller must now scrub and free the frame.
    pub fn put(&self, pa: u64) -> bool {
        let mut m = self.held.lock();
        match m.get_mut(&pa) {
            Some(h) if h.foreign > 0 => h.foreign -= 1,
            _ => {
                log::error!("frame {pa:#x}: foreign reference dropped twice");
                return false;
            }
        }
        settle(&mut m, pa)
    }

    /// The owner gives `pa` up (under its memory write lock, the frame out
    /// of its physmap); `grant_pinned`: its grant table orphaned the frame
    /// and will report the last pin's release. True: free it now.
    pub fn owner_release(&self, pa: u64, grant_pinned: bool) -> bool {
        let mut m = self.held.lock();
        if !grant_pinned && !m.contains_key(&pa) {
            return true;
        }
        let h = m.entry(pa).or_default();
        h.orphaned = true;
        if grant_pinned {
            h.grant += 1;
        }
        settle(&mut m, pa)
    }

    /// The last grant pin of the orphaned frame `pa` went. True: free it now.
    pub fn grant_released(&self, pa: u64) -> bool {
        let mut m = self.held.lock();
        let h = m.entry(pa).or_default();
        h.grant -= 1;
        settle(&mut m, pa)
    }

    /// Foreign mappings of `pa`.
    pub fn foreign_refs(&self, pa: u64) -> u32 {
        self.held.lock().get(&pa).map_or(0, |h| h.foreign)
    }

    /// Frames given up by their owner and still held.
    pub fn orphans(&self) -> usize {
        self.held.lock().values().filter(|h| h.orphaned).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_is_freed_once_by_whoever_lets_go_last() {
        let r = FrameRefs::new();
        // Nothing holds it: the owner frees it.
        assert!(r.owner_release(0x1000, false));
        // A foreign mapping outlives the owner's giving up.
        r.get(0x2000).unwrap();
        r.get(0x2000).unwrap();
        assert!(!r.owner_release(0x2000, false));
        assert_eq!(r.orphans(), 1);
        assert!(!r.put(0x2000));
        assert!(r.put(0x2000), "the last mapping frees it");
        assert_eq!(r.orphans(), 0);
        // Still the owner's: dropping the mapping frees nothing.
        r.get(0x3000).unwrap();
        assert!(!r.put(0x3000));
        assert!(r.owner_release(0x3000, false));
        // Grant pins and a foreign mapping: the later of the two frees.
        r.get(0x4000).unwrap();
        assert!(!r.owner_release(0x4000, true));
        assert!(!r.grant_released(0x4000));
        assert!(r.put(0x4000));
        r.get(0x5000).unwrap();
        assert!(!r.owner_release(0x5000, true));
        assert!(!r.put(0x5000));
        assert!(r.grant_released(0x5000));
        // The grant's release reported before the owner's giving up.
        assert!(!r.grant_released(0x6000));
        assert!(r.owner_release(0x6000, true));
        // A grant-pinned frame without foreign mappings (the grant table's
        // own case).
        assert!(!r.owner_release(0x7000, true));
        assert!(r.grant_released(0x7000));
        assert_eq!(r.orphans(), 0);
        // A stray put frees nothing.
        assert!(!r.put(0x8000));
    }
}
