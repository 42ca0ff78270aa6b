//! Maptrack: a mapper's record of the grants it has mapped, one entry per
//! handle, with per-vCPU free lists.
//!
//! Handles live in chunks of [`CHUNK`] entries allocated on demand (at most
//! [`MAX_CHUNKS`], Xen's default of 1024 maptrack frames of 256 entries);
//! a chunk, once published, is never freed before the table, so looking a
//! handle up takes no lock. Each entry has its own lock (an unmap racing an
//! unmap of the same handle: one of them finds it empty). Free handles sit
//! on [`LISTS`] free lists, one per vCPU (vCPU id modulo [`LISTS`]): a map
//! takes a handle from its own vCPU's list, and only when that is empty
//! grows the table (under the grow lock) or steals half of another vCPU's
//! list, as Xen's `get_maptrack_handle` steals from other vCPUs.

use super::GrantTable;
use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering};
use warden_abi::DomId;

/// Handles per chunk (one 4 KiB maptrack frame of Xen's 16-byte entries).
pub const CHUNK: u32 = 256;
/// Chunks at most: 128 (32,768 handles, what Linux's gntdev allows by
/// default) rather than Xen's 1024 maptrack frames, so a domain mapping
/// its own grants cannot take more than about 2 MiB of hypervisor heap.
pub const MAX_CHUNKS: u32 = 128;
/// Free lists (vCPU ids are folded onto them).
pub const LISTS: usize = 8;

/// One live mapping.
#[derive(Clone)]
pub struct Mapping {
    /// The granter's table (kept alive while mapped).
    pub granter: Arc<GrantTable>,
    /// The granter's label snapshot when it was mapped (for the unmap check
    /// once the granter is gone).
    pub granter_snap: crate::domain::DomSnap,
    pub gref: u32,
    /// Where it is mapped in the mapper's physmap.
    pub gfn: u64,
    /// The granted host frame.
    pub pa: u64,
    pub readonly: bool,
}

impl core::fmt::Debug for Mapping {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "Mapping(d{} ref {} at gfn {:#x}{})",
            self.granter.domid,
            self.gref,
            self.gfn,
            if self.readonly { " ro" } else { "" }
        )
    }
}

type Chunk = Box<[spin::Mutex<Option<Mapping>>]>;

/// A mapper's maptrack.
pub struct Maptrack {
    chunks: Box<[spin::Once<Chunk>]>,
    nr_chunks: AtomicU32,
    max_chunks: u32,
    grow: spin::Mutex<()>,
    free: [spin::Mutex<Vec<u32>>; LISTS],
}

impl Maptrack {
    pub fn new(max_chunks: u32) -> Maptrack {
        let max_chunks = max_chunks.clamp(1, MAX_CHUNKS);
        Maptrack {
            chunks: (0..max_chunks).map(|_| spin::Once::new()).collect(),
            nr_chunks: AtomicU32::new(0),
            max_chunks,
            grow: spin::Mutex::new(()),
            free: [const { spin::Mutex::new(Vec::new()) }; LISTS],
        }
    }

    /// The entry of `handle`, if that handle exists.
    pub fn entry(&self, handle: u32) -> Option<&spin::Mutex<Option<Mapping>>> {
        let c = handle / CHUNK;
        if c >= self.nr_chunks.load(Ordering::Acquire) {
            return None;
        }
        self.chunks
            .get(c as usize)?
            .get()?
            .get((handle % CHUNK) as usize)
    }

    /// A free handle for vCPU `vcpu`, or None when every handle is in use.
    pub fn alloc(&self, vcpu: u32) -> Option<u32> {
        let own = vcpu as usize % LISTS;
        if let Some(h) = self.free[own].lock().pop() {
            return Some(h);
        }
        if let Some(h) = self.grow_into(own) {
            return Some(h);
        }
        // Steal half of another vCPU's list.
        for i in 1..LISTS {
            let other = (own + i) % LISTS;
            let mut l = self.free[other].lock();
            if l.is_empty() {
                continue;
            }
            let keep = l.len() / 2;
            let mut taken = l.split_off(keep);
            drop(l);
            let h = taken.pop();
            if !taken.is_empty() {
                self.free[own].lock().append(&mut taken);
            }
            return h;
        }
        None
    }

    /// Add a chunk; its handles go to list `own` (one returned).
    fn grow_into(&self, own: usize) -> Option<u32> {
        let _g = self.grow.lock();
        // Another vCPU may have grown meanwhile: check our list again.
        if let Some(h) = self.free[own].lock().pop() {
            return Some(h);
        }
        let n = self.nr_chunks.load(Ordering::Relaxed);
        if n >= self.max_chunks {
            return None;
        }
        // Fallible: an exhausted heap refuses the map (GNTST_no_space).
        let mut v = Vec::new();
        v.try_reserve_exact(CHUNK as usize).ok()?;
        v.extend((0..CHUNK).map(|_| spin::Mutex::new(None)));
        let chunk: Chunk = v.into_boxed_slice();
        self.chunks[n as usize].call_once(|| chunk);
        self.nr_chunks.store(n + 1, Ordering::Release);
        let base = n * CHUNK;
        let mut l = self.free[own].lock();
        l.extend((base + 1..base + CHUNK).rev());
        Some(base)
    }

    /// Give `handle` back (onto vCPU `vcpu`'s list).
    pub fn free(&self, vcpu: u32, handle: u32) {
        self.free[vcpu as usize % LISTS].lock().push(handle);
    }

    /// Handles in existence.
    pub fn capacity(&self) -> u32 {
        self.nr_chunks.load(Ordering::Acquire) * CHUNK
    }

    /// Take every live mapping out (the mapper is dying).
    pub fn drain(&self) -> Vec<Mapping> {
        let mut out = Vec::new();
        for h in 0..self.capacity() {
            if let Some(e) = self.entry(h)
                && let Some(m) = e.lock().take()
            {
                out.push(m);
            }
        }
        out
    }

    /// Live mappings of granter `domid` (for tests and the invariant checks).
    pub fn count_of(&self, domid: Option<DomId>) -> usize {
        (0..self.capacity())
            .filter(|&h| {
                self.entry(h).is_some_and(|e| {
                    e.lock()
                        .as_ref()
                        .is_some_and(|m| domid.is_none_or(|d| m.granter.domid == d))
                })
            })
            .count()
    }
}
