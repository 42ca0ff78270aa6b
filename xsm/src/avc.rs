//! The access vector cache: 512 buckets, a read path with no
//! locked instruction and no shared write.
//!
//! Memory scheme: nodes live in a type-stable pool (chunks allocated on
//! demand, returned to the allocator only when the server is dropped), so a
//! reader can never touch freed memory. Each node is a seqlock: writers (under
//! the table's spin lock) make the sequence odd, rewrite the fields, make it
//! even again; a reader copies the fields and accepts them only if the
//! sequence was even and unchanged. Every entry carries the cache generation
//! it was computed in; a flush (policy load, boolean commit, mode change) bumps
//! the generation, which invalidates every entry at once, and returns all
//! nodes to the free list. A reader that follows a `next` link of a node
//! being recycled may wander into another chain: walks are bounded, and the
//! worst case is a spurious miss, answered by the security server.
//!
//! The hit path ([`Avc::lookup_quiet`]) follows plain node pointers (bucket
//! heads and `next` links point into the pool; no index-to-chunk step) and
//! reads only what a quiet grant needs: key, generation tag and one mask
//! (`allowed & !auditallow`) under the node's sequence. Anything else
//! (denial, audited grant, miss) looks the entry up again in full.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering, fence};

/// Number of hash buckets (Xen's AVC_CACHE_SLOTS).
pub const AVC_CACHE_SLOTS: usize = 512;
/// Nodes evicted at a time when the threshold is reached (Xen's AVC_CACHE_RECLAIM).
pub const AVC_CACHE_RECLAIM: usize = 16;
/// Default threshold (Xen's AVC_DEF_CACHE_THRESHOLD).
pub const AVC_DEF_CACHE_THRESHOLD: u32 = 512;
const CHUNK: usize = 256;
const MAX_CHUNKS: usize = 1024;
/// Largest threshold (pool size).
pub const AVC_MAX_NODES: u32 = (CHUNK * MAX_CHUNKS) as u32;
/// Bound on a chain walk (chains are short; a walk through recycled nodes may not be).
const MAX_WALK: usize = 128;

#[derive(Debug)]
struct Node {
    /// This node's index in the pool (fixed).
    idx: u32,
    seq: AtomicU32,
    next: AtomicPtr<Node>,
    /// ssid | tsid << 32
    key: AtomicU64,
    /// class | permissive << 16 | cache generation << 32
    meta: AtomicU64,
    /// allowed & !auditallow: the permissions a quiet grant may cover (the
    /// hit path tests one mask).
    quiet: AtomicU32,
    allowed: AtomicU32,
    auditallow: AtomicU32,
    auditdeny: AtomicU32,
    /// seq << 32 | denied permissions already reported while permissive.
    reported: AtomicU64,
}

impl Node {
    fn new(idx: u32) -> Node {
        Node {
            idx,
            seq: AtomicU32::new(0),
            next: AtomicPtr::new(ptr::null_mut()),
            key: AtomicU64::new(0),
            meta: AtomicU64::new(0),
            quiet: AtomicU32::new(0),
            allowed: AtomicU32::new(0),
            auditallow: AtomicU32::new(0),
            auditdeny: AtomicU32::new(0),
            reported: AtomicU64::new(0),
        }
    }
}

const PERMISSIVE_BIT: u64 = 1 << 16;

#[inline]
fn key(ssid: u32, tsid: u32) -> u64 {
    u64::from(ssid) | u64::from(tsid) << 32
}

#[inline]
fn meta(class: u16, cgen: u32) -> u64 {
    u64::from(class) | u64::from(cgen) << 32
}

/// A decision copied out of the cache.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Hit {
    pub(crate) allowed: u32,
    pub(crate) auditallow: u32,
    pub(crate) auditdeny: u32,
    pub(crate) permissive: bool,
    /// The node the decision was copied from (null: not cached).
    node: *const Node,
    seq: u32,
}

impl Hit {
    /// A decision that could not be cached (pool exhausted).
    pub(crate) fn uncached(d: &Decision) -> Hit {
        Hit {
            allowed: d.allowed,
            auditallow: d.auditallow,
            auditdeny: d.auditdeny,
            permissive: d.permissive,
            node: ptr::null(),
            seq: 0,
        }
    }
}

pub(crate) struct Decision {
    pub(crate) allowed: u32,
    pub(crate) auditallow: u32,
    pub(crate) auditdeny: u32,
    pub(crate) permissive: bool,
}

type Chunk = [Node; CHUNK];

struct Inner {
    free: Vec<u32>,
    allocated: u32,
    rover: usize,
}

pub(crate) struct Avc {
    /// Chain heads (null: empty). Nodes are never freed while the cache lives.
    buckets: Box<[AtomicPtr<Node>; AVC_CACHE_SLOTS]>,
    chunks: Box<[AtomicPtr<Chunk>]>,
    lock: spin::Mutex<Inner>,
    count: AtomicU32,
}

impl core::fmt::Debug for Avc {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Avc")
            .field("count", &self.count)
            .finish_non_exhaustive()
    }
}

/// Bucket of (ssid, tsid, class). Xen hashes `ssid ^ (tsid << 2) ^ (class << 4)`,
/// which puts the small SIDs and class values of a running system in a few
/// hundred buckets with chains of two or three; a multiplicative mix spreads
/// them over all buckets.
#[inline]
fn hash(ssid: u32, tsid: u32, class: u16) -> usize {
    let k = key(ssid, tsid) ^ u64::from(class) << 20;
    (k.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - AVC_CACHE_SLOTS.trailing_zeros())) as usize
}

const _: () = assert!(AVC_CACHE_SLOTS.is_power_of_two());

impl Avc {
    pub(crate) fn new() -> Avc {
        Avc {
            buckets: crate::boxed_array(|| AtomicPtr::new(ptr::null_mut())),
            chunks: (0..MAX_CHUNKS)
                .map(|_| AtomicPtr::new(ptr::null_mut()))
                .collect(),
            lock: spin::Mutex::new(Inner {
                free: Vec::new(),
                allocated: 0,
                rover: 0,
            }),
            count: AtomicU32::new(0),
        }
    }

    #[inline]
    fn node(&self, idx: u32) -> Option<&Node> {
        let c = self
            .chunks
            .get(idx as usize / CHUNK)?
            .load(Ordering::Acquire);
        if c.is_null() {
            return None;
        }
        // SAFETY: chunks are leaked Boxes published with release stores and
        // freed only in Drop (`&mut self`); nodes are never freed individually.
        Some(unsafe { &(*c)[idx as usize % CHUNK] })
    }

    /// The node at `p`, a chain link or bucket head (non-null).
    #[inline(always)]
    fn at(&self, p: *const Node) -> &Node {
        // Links and bucket heads hold null or a node of a chunk leaked by
        // `insert`; chunks are freed only in Drop (`&mut self`: no reader),
        // nodes never one by one (a type-stable pool, recycled in place).
        // SAFETY: `p` is such a non-null node, valid for as long as `self`.
        unsafe { &*p }
    }

    /// The hit path: the quiet-grant mask (allowed and not audited) of the
    /// current-generation entry for (ssid, tsid, class), if cached.
    #[inline(always)]
    pub(crate) fn lookup_quiet(&self, ssid: u32, tsid: u32, class: u16, cgen: u32) -> Option<u32> {
        let mut p = self.buckets[hash(ssid, tsid, class)].load(Ordering::Acquire);
        let (k, m) = (key(ssid, tsid), meta(class, cgen));
        let mut steps = 0;
        while !p.is_null() && steps < MAX_WALK {
            let n = self.at(p);
            let s1 = n.seq.load(Ordering::Acquire);
            let next = n.next.load(Ordering::Acquire);
            if n.key.load(Ordering::Relaxed) == k
                && n.meta.load(Ordering::Relaxed) & !PERMISSIVE_BIT == m
            {
                let quiet = n.quiet.load(Ordering::Relaxed);
                fence(Ordering::Acquire);
                if s1 & 1 == 0 && n.seq.load(Ordering::Relaxed) == s1 {
                    return Some(quiet);
                }
            }
            p = next;
            steps += 1;
        }
        None
    }

    /// Finds the current-generation entry for (ssid, tsid, class).
    #[inline]
    pub(crate) fn lookup(&self, ssid: u32, tsid: u32, class: u16, cgen: u32) -> Option<Hit> {
        let mut p = self.buckets[hash(ssid, tsid, class)].load(Ordering::Acquire);
        let mut steps = 0;
        let (k, m) = (key(ssid, tsid), meta(class, cgen));
        while !p.is_null() && steps < MAX_WALK {
            let n = self.at(p);
            let s1 = n.seq.load(Ordering::Acquire);
            let next = n.next.load(Ordering::Acquire);
            if n.key.load(Ordering::Relaxed) == k {
                let nm = n.meta.load(Ordering::Relaxed);
                if nm & !PERMISSIVE_BIT == m {
                    let hit = Hit {
                        allowed: n.allowed.load(Ordering::Relaxed),
                        auditallow: n.auditallow.load(Ordering::Relaxed),
                        auditdeny: n.auditdeny.load(Ordering::Relaxed),
                        permissive: nm & PERMISSIVE_BIT != 0,
                        node: p,
                        seq: s1,
                    };
                    fence(Ordering::Acquire);
                    if s1 & 1 == 0 && n.seq.load(Ordering::Relaxed) == s1 {
                        return Some(hit);
                    }
                }
            }
            p = next;
            steps += 1;
        }
        None
    }

    /// Marks `denied` as reported for the entry `hit` came from; returns the
    /// bits not reported before (all of `denied` if the entry was recycled).
    pub(crate) fn report(&self, hit: &Hit, denied: u32) -> u32 {
        if hit.node.is_null() {
            return denied;
        }
        let n = self.at(hit.node);
        let mut cur = n.reported.load(Ordering::Acquire);
        loop {
            if (cur >> 32) as u32 != hit.seq {
                return denied;
            }
            let new = cur | u64::from(denied);
            match n
                .reported
                .compare_exchange_weak(cur, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return denied & !(cur as u32),
                Err(c) => cur = c,
            }
        }
    }

    /// Inserts a decision (unless a current one exists). Returns the entry and
    /// (allocated, evicted) counts, or None if the pool is exhausted.
    pub(crate) fn insert(
        &self,
        ssid: u32,
        tsid: u32,
        class: u16,
        cgen: u32,
        d: &Decision,
        threshold: u32,
    ) -> (Option<Hit>, bool, u32) {
        let mut inner = self.lock.lock();
        if let Some(h) = self.lookup(ssid, tsid, class, cgen) {
            return (Some(h), false, 0);
        }
        let mut evicted = 0;
        if self.count.load(Ordering::Relaxed) >= threshold {
            for _ in 0..AVC_CACHE_SLOTS {
                if evicted as usize >= AVC_CACHE_RECLAIM {
                    break;
                }
                let b = &self.buckets[inner.rover];
                inner.rover = (inner.rover + 1) % AVC_CACHE_SLOTS;
                let head = b.load(Ordering::Acquire);
                if head.is_null() {
                    continue;
                }
                let n = self.at(head);
                b.store(n.next.load(Ordering::Relaxed), Ordering::Release);
                inner.free.push(n.idx);
                self.count.fetch_sub(1, Ordering::Relaxed);
                evicted += 1;
            }
        }
        let idx = match inner.free.pop() {
            Some(i) => i,
            None => {
                let i = inner.allocated;
                if i >= AVC_MAX_NODES {
                    return (None, false, evicted);
                }
                let slot = &self.chunks[i as usize / CHUNK];
                if slot.load(Ordering::Acquire).is_null() {
                    // Built on the heap (no 12 KiB temporary on a hypervisor stack).
                    let v: Vec<Node> = (i..i + CHUNK as u32).map(Node::new).collect();
                    let Ok(fresh) = <Box<Chunk>>::try_from(v.into_boxed_slice()) else {
                        return (None, false, evicted);
                    };
                    slot.store(Box::into_raw(fresh), Ordering::Release);
                }
                inner.allocated += 1;
                i
            }
        };
        let Some(n) = self.node(idx) else {
            return (None, false, evicted);
        };
        let p: *const Node = n;
        let b = &self.buckets[hash(ssid, tsid, class)];
        let s = n.seq.load(Ordering::Relaxed).wrapping_add(1) | 1;
        n.seq.store(s, Ordering::Relaxed);
        fence(Ordering::Release);
        n.key.store(key(ssid, tsid), Ordering::Relaxed);
        n.meta.store(
            meta(class, cgen) | if d.permissive { PERMISSIVE_BIT } else { 0 },
            Ordering::Relaxed,
        );
        n.quiet.store(d.allowed & !d.auditallow, Ordering::Relaxed);
        n.allowed.store(d.allowed, Ordering::Relaxed);
        n.auditallow.store(d.auditallow, Ordering::Relaxed);
        n.auditdeny.store(d.auditdeny, Ordering::Relaxed);
        // Release: a reader that follows this link (Acquire) sees the chunk
        // of the node it points to initialised.
        n.next.store(b.load(Ordering::Relaxed), Ordering::Release);
        let seq = s.wrapping_add(1);
        n.reported.store(u64::from(seq) << 32, Ordering::Relaxed);
        n.seq.store(seq, Ordering::Release);
        b.store(p.cast_mut(), Ordering::Release);
        self.count.fetch_add(1, Ordering::Relaxed);
        let hit = Hit {
            allowed: d.allowed,
            auditallow: d.auditallow,
            auditdeny: d.auditdeny,
            permissive: d.permissive,
            node: p,
            seq,
        };
        (Some(hit), true, evicted)
    }

    /// Unlinks every node (they were invalidated by a generation bump); returns how many.
    pub(crate) fn flush(&self) -> u32 {
        let mut inner = self.lock.lock();
        let mut n = 0;
        for b in self.buckets.iter() {
            let mut p = b.swap(ptr::null_mut(), Ordering::AcqRel);
            while !p.is_null() {
                let node = self.at(p);
                inner.free.push(node.idx);
                n += 1;
                p = node.next.load(Ordering::Relaxed);
            }
        }
        self.count.store(0, Ordering::Relaxed);
        n
    }

    /// (entries, buckets used, total buckets, longest chain).
    pub(crate) fn hash_stats(&self) -> (u32, u32, u32, u32) {
        let _inner = self.lock.lock();
        let (mut entries, mut used, mut longest) = (0u32, 0u32, 0u32);
        for b in self.buckets.iter() {
            let mut p = b.load(Ordering::Acquire);
            let mut len = 0;
            while !p.is_null() {
                len += 1;
                p = self.at(p).next.load(Ordering::Relaxed);
            }
            used += u32::from(len > 0);
            entries += len;
            longest = longest.max(len);
        }
        (entries, used, AVC_CACHE_SLOTS as u32, longest)
    }
}

impl Drop for Avc {
    fn drop(&mut self) {
        for c in self.chunks.iter() {
            let p = c.load(Ordering::Acquire);
            if !p.is_null() {
                // SAFETY: `&mut self`: no reader exists; `p` came from Box::into_raw.
                drop(unsafe { Box::from_raw(p) });
            }
        }
    }
}
