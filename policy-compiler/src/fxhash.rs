//! A small, fast, non-cryptographic hasher (the Fx hash of rustc) for the
//! compiler's symbol tables; inputs are policy sources, not attacker-chosen
//! network data, and every table is bounded by the input size.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

#[derive(Clone, Copy, Default)]
pub struct FxHasher(u64);

const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(K);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        // Identifiers are short: mix up to 16 bytes with one multiplication.
        let n = bytes.len();
        if n <= 16 {
            let mut a = [0u8; 8];
            let mut b = [0u8; 8];
            if n >= 8 {
                a.copy_from_slice(&bytes[..8]);
                b.copy_from_slice(&bytes[n - 8..]);
            } else {
                a[..n].copy_from_slice(bytes);
            }
            let w =
                u64::from_le_bytes(a) ^ u64::from_le_bytes(b).rotate_left(29) ^ (n as u64) << 56;
            self.add(w);
            return;
        }
        let mut c = bytes.chunks_exact(8);
        for w in &mut c {
            let mut a = [0u8; 8];
            a.copy_from_slice(w);
            self.add(u64::from_le_bytes(a));
        }
        let r = c.remainder();
        if !r.is_empty() {
            let mut a = [0u8; 8];
            a[..r.len()].copy_from_slice(r);
            self.add(u64::from_le_bytes(a));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        // The multiplication leaves the entropy in the high bits; hash tables index
        // with the low ones.
        self.0.rotate_left(26)
    }
}

pub type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;
pub type FxSet<K> = HashSet<K, BuildHasherDefault<FxHasher>>;
