//! The access vector cache table: 512 buckets (Xen's hash), lock-free reads,
//! inserts and evictions under the table's own spin lock.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicUsize, Ordering};

/// Number of hash buckets (Xen's AVC_CACHE_SLOTS).
pub const AVC_CACHE_SLOTS: usize = 512;
/// Nodes evicted at a time when the threshold is exceeded (Xen's AVC_CACHE_RECLAIM).
pub const AVC_CACHE_RECLAIM: usize = 16;
/// Default threshold (Xen's AVC_DEF_CACHE_THRESHOLD).
pub const AVC_DEF_CACHE_THRESHOLD: u32 = 512;

#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) ssid: u32,
    pub(crate) tsid: u32,
    pub(crate) class: u16,
    pub(crate) permissive: bool,
    pub(crate) allowed: u32,
    pub(crate) auditallow: u32,
    pub(crate) auditdeny: u32,
    /// Denied permissions already reported while permissive (each at least once).
    pub(crate) reported: AtomicU32,
    next: AtomicPtr<Node>,
}

#[inline]
fn hash(ssid: u32, tsid: u32, class: u16) -> usize {
    ((ssid ^ (tsid << 2) ^ (u32::from(class) << 4)) as usize) & (AVC_CACHE_SLOTS - 1)
}

/// A retired node pointer, freed after a grace period.
pub(crate) struct Retired(pub(crate) *mut Node);
// SAFETY: a retired node is unreachable from the table and owned by the retire list.
unsafe impl Send for Retired {}

impl Retired {
    /// Frees the node.
    ///
    /// # Safety
    /// A grace period must have passed since the node was unlinked.
    pub(crate) unsafe fn free(self) {
        // SAFETY: the caller guarantees no reader can still reach the node;
        // it came from Box::into_raw in `insert`.
        unsafe { drop(Box::from_raw(self.0)) };
    }
}

#[derive(Debug)]
pub(crate) struct AvcTable {
    buckets: Box<[AtomicPtr<Node>]>,
    lock: spin::Mutex<usize>,
    pub(crate) count: AtomicUsize,
}

pub(crate) struct Decision {
    pub(crate) allowed: u32,
    pub(crate) auditallow: u32,
    pub(crate) auditdeny: u32,
    pub(crate) permissive: bool,
}

impl AvcTable {
    pub(crate) fn new() -> AvcTable {
        AvcTable {
            buckets: (0..AVC_CACHE_SLOTS)
                .map(|_| AtomicPtr::new(ptr::null_mut()))
                .collect(),
            lock: spin::Mutex::new(0),
            count: AtomicUsize::new(0),
        }
    }

    /// Finds a node. The caller must be inside a read section of the RCU
    /// that guards this table's nodes; the reference must not outlive it.
    #[inline]
    pub(crate) fn lookup(&self, ssid: u32, tsid: u32, class: u16) -> Option<&Node> {
        let mut p = self.buckets[hash(ssid, tsid, class)].load(Ordering::Acquire);
        while !p.is_null() {
            // SAFETY: nodes reachable from a bucket are freed only after a grace
            // period that waits for the caller's read section.
            let n = unsafe { &*p };
            if n.ssid == ssid && n.tsid == tsid && n.class == class {
                return Some(n);
            }
            p = n.next.load(Ordering::Acquire);
        }
        None
    }

    /// Inserts a decision unless one is present; evicts up to
    /// AVC_CACHE_RECLAIM nodes into `retired` when over `threshold`.
    /// Returns the node and whether it was allocated here.
    pub(crate) fn insert(
        &self,
        ssid: u32,
        tsid: u32,
        class: u16,
        d: Decision,
        threshold: usize,
        retired: &mut Vec<Retired>,
    ) -> (&Node, bool) {
        let mut rover = self.lock.lock();
        if let Some(n) = self.lookup(ssid, tsid, class) {
            return (n, false);
        }
        if self.count.load(Ordering::Relaxed) >= threshold {
            let mut freed = 0;
            for _ in 0..AVC_CACHE_SLOTS {
                if freed >= AVC_CACHE_RECLAIM {
                    break;
                }
                let b = &self.buckets[*rover];
                *rover = (*rover + 1) % AVC_CACHE_SLOTS;
                let head = b.load(Ordering::Acquire);
                if head.is_null() {
                    continue;
                }
                // SAFETY: head is a live node (we hold the table lock; nodes are
                // unlinked only under it and freed after a grace period).
                let next = unsafe { &*head }.next.load(Ordering::Acquire);
                b.store(next, Ordering::Release);
                retired.push(Retired(head));
                self.count.fetch_sub(1, Ordering::Relaxed);
                freed += 1;
            }
        }
        let b = &self.buckets[hash(ssid, tsid, class)];
        let node = Box::into_raw(Box::new(Node {
            ssid,
            tsid,
            class,
            permissive: d.permissive,
            allowed: d.allowed,
            auditallow: d.auditallow,
            auditdeny: d.auditdeny,
            reported: AtomicU32::new(0),
            next: AtomicPtr::new(b.load(Ordering::Acquire)),
        }));
        b.store(node, Ordering::Release);
        self.count.fetch_add(1, Ordering::Relaxed);
        // SAFETY: just published; freed only after a grace period covering the caller.
        (unsafe { &*node }, true)
    }

    /// (entries, buckets used, total buckets, longest chain). Caller inside a read section.
    pub(crate) fn hash_stats(&self) -> (u32, u32, u32, u32) {
        let (mut entries, mut used, mut longest) = (0u32, 0u32, 0u32);
        for b in self.buckets.iter() {
            let mut p = b.load(Ordering::Acquire);
            let mut len = 0;
            while !p.is_null() {
                len += 1;
                // SAFETY: as in `lookup`.
                p = unsafe { &*p }.next.load(Ordering::Acquire);
            }
            if len > 0 {
                used += 1;
            }
            entries += len;
            longest = longest.max(len);
        }
        (entries, used, AVC_CACHE_SLOTS as u32, longest)
    }
}

impl Drop for AvcTable {
    fn drop(&mut self) {
        for b in self.buckets.iter() {
            let mut p = b.load(Ordering::Acquire);
            while !p.is_null() {
                // SAFETY: `&mut self`, and the table is dropped only after a grace
                // period: no reader can reach these nodes; they came from Box::into_raw.
                let n = unsafe { Box::from_raw(p) };
                p = n.next.load(Ordering::Acquire);
            }
        }
    }
}
