//! A lock-free rate limiter for log lines that any guest can trigger (the
//! unknown-operation warning): at most `burst` lines per `interval_ns`
//! window, the rest counted and reported with the next admitted line. It
//! takes no lock, so a guest flooding the hypervisor with refused calls
//! never makes other CPUs wait on a lock shared with it; a refused line
//! costs one shared read and one atomic add.

use core::sync::atomic::{AtomicU64, Ordering};

/// Bits of the state word holding the count of lines admitted in the window.
const USED_BITS: u32 = 16;
const USED_MASK: u64 = (1 << USED_BITS) - 1;

/// See the module documentation.
#[derive(Debug)]
pub struct AtomicRateLimit {
    burst: u64,
    interval_ns: u64,
    /// (window number << USED_BITS) | lines admitted in it.
    state: AtomicU64,
    suppressed: AtomicU64,
}

impl AtomicRateLimit {
    /// `burst` is capped at 65535 lines per window; `interval_ns` at least 1.
    pub const fn new(burst: u32, interval_ns: u64) -> AtomicRateLimit {
        let burst = if burst as u64 > USED_MASK {
            USED_MASK
        } else {
            burst as u64
        };
        AtomicRateLimit {
            burst,
            interval_ns: if interval_ns == 0 { 1 } else { interval_ns },
            state: AtomicU64::new(u64::MAX),
            suppressed: AtomicU64::new(0),
        }
    }

    /// None: drop this line. Some(n): print it, after reporting `n` dropped ones.
    pub fn admit(&self, now: u64) -> Option<u64> {
        // Window numbers wrap at 2^48 windows: harmless (a window starts anew).
        let window = (now / self.interval_ns) & (u64::MAX >> USED_BITS);
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            let (w, used) = (s >> USED_BITS, s & USED_MASK);
            let next = if w != window {
                (window << USED_BITS) | 1
            } else if used >= self.burst {
                self.suppressed.fetch_add(1, Ordering::Relaxed);
                return None;
            } else {
                s + 1
            };
            match self
                .state
                .compare_exchange_weak(s, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return Some(self.suppressed.swap(0, Ordering::AcqRel)),
                Err(now_s) => s = now_s,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::sync::Arc;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn admits_a_burst_per_window_and_counts_the_rest() {
        let r = AtomicRateLimit::new(2, 100);
        assert_eq!(r.admit(0), Some(0));
        assert_eq!(r.admit(1), Some(0));
        assert_eq!(r.admit(2), None);
        assert_eq!(r.admit(3), None);
        assert_eq!(r.admit(100), Some(2));
        assert_eq!(r.admit(150), Some(0));
        assert_eq!(r.admit(160), None);
    }

    #[test]
    fn concurrent_callers_get_exactly_the_burst_and_nothing_is_lost() {
        let r = Arc::new(AtomicRateLimit::new(16, 1_000_000));
        let admitted = Arc::new(AtomicU64::new(0));
        let threads: alloc::vec::Vec<_> = (0..4)
            .map(|_| {
                let (r, a) = (r.clone(), admitted.clone());
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        if r.admit(5).is_some() {
                            a.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(admitted.load(Ordering::Relaxed), 16);
        assert_eq!(r.admit(1_000_000), Some(40_000 - 16));
    }
}
