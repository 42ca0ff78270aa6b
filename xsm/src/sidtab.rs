//! The SID table: SID -> context, readable without a lock, append-only.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::String;
use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicU32, Ordering};

use crate::policydb::Context;

const CHUNK: usize = 1024;
const NCHUNKS: usize = 1024;
/// Largest number of SIDs a table holds.
pub const MAX_SIDS: u32 = (CHUNK * NCHUNKS) as u32;

/// One SID's context in the current policy.
#[derive(Debug)]
pub(crate) struct SidEntry {
    pub(crate) ctx: Context,
    /// Canonical text of `ctx`.
    pub(crate) text: String,
    /// The context this SID had before a reload made it invalid (it now
    /// stands for the unlabeled context); retried at the next reload.
    pub(crate) orig: Option<String>,
}

type Chunk = [AtomicPtr<SidEntry>; CHUNK];

/// An append-only table; entries are published with release stores and
/// never move or change until the table is dropped.
#[derive(Debug)]
pub(crate) struct SidTab {
    chunks: Box<[AtomicPtr<Chunk>]>,
    len: AtomicU32,
    /// Context -> SID, used only by writers (under the server's writer lock).
    pub(crate) map: spin::Mutex<BTreeMap<Context, u32>>,
}

impl SidTab {
    pub(crate) fn new() -> SidTab {
        let chunks: Box<[AtomicPtr<Chunk>]> = (0..NCHUNKS)
            .map(|_| AtomicPtr::new(ptr::null_mut()))
            .collect();
        SidTab {
            chunks,
            len: AtomicU32::new(0),
            map: spin::Mutex::new(BTreeMap::new()),
        }
    }

    /// Number of SIDs (the highest SID).
    pub(crate) fn len(&self) -> u32 {
        self.len.load(Ordering::Acquire)
    }

    #[inline]
    pub(crate) fn get(&self, sid: u32) -> Option<&SidEntry> {
        let idx = (sid as usize).checked_sub(1)?;
        let c = self.chunks.get(idx / CHUNK)?.load(Ordering::Acquire);
        if c.is_null() {
            return None;
        }
        // SAFETY: a non-null chunk pointer was published (release) by `push`
        // from a leaked Box and is freed only in `Drop`, which needs `&mut self`.
        let e = unsafe { &(*c)[idx % CHUNK] }.load(Ordering::Acquire);
        if e.is_null() {
            return None;
        }
        // SAFETY: as above: entries are leaked Boxes published after full
        // initialisation and freed only in `Drop`.
        Some(unsafe { &*e })
    }

    /// Appends an entry as the next SID. Callers serialise pushes (writer lock).
    pub(crate) fn push(&self, e: SidEntry) -> Option<u32> {
        let n = self.len.load(Ordering::Acquire);
        if n >= MAX_SIDS {
            return None;
        }
        let idx = n as usize;
        let slot = &self.chunks[idx / CHUNK];
        let mut c = slot.load(Ordering::Acquire);
        if c.is_null() {
            // Built on the heap (no 8 KiB temporary on a hypervisor stack).
            let v: alloc::vec::Vec<AtomicPtr<SidEntry>> = (0..CHUNK)
                .map(|_| AtomicPtr::new(ptr::null_mut()))
                .collect();
            let Ok(fresh) = <Box<Chunk>>::try_from(v.into_boxed_slice()) else {
                return None;
            };
            c = Box::into_raw(fresh);
            slot.store(c, Ordering::Release);
        }
        let sid = n + 1;
        self.map.lock().entry(e.ctx.clone()).or_insert(sid);
        let p = Box::into_raw(Box::new(e));
        // SAFETY: `c` is a live chunk (published above or earlier, freed only in Drop).
        unsafe { &(*c)[idx % CHUNK] }.store(p, Ordering::Release);
        self.len.store(n + 1, Ordering::Release);
        Some(sid)
    }

    pub(crate) fn lookup(&self, ctx: &Context) -> Option<u32> {
        self.map.lock().get(ctx).copied()
    }
}

impl Drop for SidTab {
    fn drop(&mut self) {
        for slot in self.chunks.iter() {
            let c = slot.load(Ordering::Acquire);
            if c.is_null() {
                continue;
            }
            // SAFETY: `&mut self`: no reader can hold a reference; every
            // non-null pointer came from Box::into_raw in `push`.
            unsafe {
                for e in (*c).iter() {
                    let p = e.load(Ordering::Acquire);
                    if !p.is_null() {
                        drop(Box::from_raw(p));
                    }
                }
                drop(Box::from_raw(c));
            }
        }
    }
}
