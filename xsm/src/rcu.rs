//! Read-side critical sections without a global lock, protecting the policy
//! generation pointer (the AVC's own hit path needs none: see `avc.rs`).
//!
//! Scheme (a two-phase, SRCU-like epoch counter per CPU slot):
//! * a reader picks the parity of the global epoch, increments that parity's
//!   counter in *its own* CPU slot (a cache line of its own), re-reads the
//!   epoch and retries if it moved; it decrements the counter when done;
//! * a writer that unpublished an object calls `Rcu::synchronize`: it flips
//!   the epoch and waits until every slot's counter of the old parity is zero.
//!   Every reader that could have seen the object entered before the flip,
//!   with the old parity, so once those counters drain the object can be
//!   freed. Synchronisations are serialised.
//!
//! Reclamation is immediate after the grace period (no leak, no deferred
//! list). Read sections are short (a security-server computation at most) and
//! never wait for anything, so a writer's wait is bounded. The one rule: never
//! call a writer operation (load, commit, setenforce, flush, ocontext change,
//! SID allocation) from inside a read section; the crate holds read sections
//! only internally, and never across a call into the audit sink.

use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Number of reader slots; CPU ids are taken modulo this.
pub const MAX_CPUS: usize = 64;

/// Per-CPU AVC statistics (Xen's AVC_CACHESTATS).
#[derive(Debug, Default)]
pub(crate) struct CpuStats {
    pub(crate) lookups: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) allocations: AtomicU64,
    pub(crate) reclaims: AtomicU64,
    pub(crate) frees: AtomicU64,
}

#[repr(align(128))]
#[derive(Debug, Default)]
pub(crate) struct Slot {
    active: [AtomicUsize; 2],
    pub(crate) stats: CpuStats,
}

#[derive(Debug)]
pub(crate) struct Rcu {
    epoch: AtomicUsize,
    pub(crate) slots: alloc::boxed::Box<[Slot; MAX_CPUS]>,
    sync_lock: spin::Mutex<()>,
}

pub(crate) struct ReadGuard<'a> {
    counter: &'a AtomicUsize,
}

impl Drop for ReadGuard<'_> {
    fn drop(&mut self) {
        self.counter.fetch_sub(1, Ordering::Release);
    }
}

impl Rcu {
    pub(crate) fn new() -> Self {
        Rcu {
            epoch: AtomicUsize::new(0),
            slots: crate::boxed_array(Slot::default),
            sync_lock: spin::Mutex::new(()),
        }
    }

    #[inline]
    pub(crate) fn slot(&self, cpu: usize) -> &Slot {
        &self.slots[cpu % MAX_CPUS]
    }

    #[inline]
    pub(crate) fn read(&self, cpu: usize) -> ReadGuard<'_> {
        let slot = self.slot(cpu);
        loop {
            let e = self.epoch.load(Ordering::SeqCst);
            let c = &slot.active[e & 1];
            c.fetch_add(1, Ordering::SeqCst);
            if self.epoch.load(Ordering::SeqCst) == e {
                return ReadGuard { counter: c };
            }
            c.fetch_sub(1, Ordering::Release);
        }
    }

    /// Waits until no reader that started before this call is still inside.
    pub(crate) fn synchronize(&self) {
        let _g = self.sync_lock.lock();
        let old = self.epoch.fetch_add(1, Ordering::SeqCst) & 1;
        for s in self.slots.iter() {
            while s.active[old].load(Ordering::SeqCst) != 0 {
                core::hint::spin_loop();
            }
        }
    }
}
