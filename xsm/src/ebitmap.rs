//! Extensible bitmaps (the policy format's sparse bit sets).

use alloc::vec::Vec;

use crate::error::LoadErrorKind;
use crate::reader::{Reader, Res};

const MAPSIZE: u32 = 64;

/// Receives the nodes of an on-disk bitmap as [`Ebitmap::read_nodes`] checks them.
pub(crate) trait NodeSink {
    /// The node count (checked against the bytes left), before any node.
    fn count(&mut self, _n: usize) {}
    /// A valid node (start bit, map), in increasing order.
    fn node(&mut self, start: u32, map: u64);
}

impl NodeSink for Vec<(u32, u64)> {
    fn count(&mut self, n: usize) {
        self.reserve_exact(n);
    }
    fn node(&mut self, start: u32, map: u64) {
        self.push((start, map));
    }
}

/// A sparse bit set: sorted, non-empty 64-bit nodes.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ebitmap {
    nodes: Vec<(u32, u64)>,
}

impl Ebitmap {
    /// The empty set.
    pub const fn new() -> Self {
        Ebitmap { nodes: Vec::new() }
    }

    /// Reads the on-disk form, with libsepol's checks.
    pub(crate) fn read(r: &mut Reader<'_>) -> Res<Ebitmap> {
        let mut nodes: Vec<(u32, u64)> = Vec::new();
        Self::read_nodes(r, &mut nodes)?;
        Ok(Ebitmap { nodes })
    }

    /// Reads the on-disk form with [`Ebitmap::read`]'s checks into `sink`
    /// (which need not build a bitmap).
    pub(crate) fn read_nodes(r: &mut Reader<'_>, sink: &mut impl NodeSink) -> Res<()> {
        let at = r.pos();
        let mapsize = r.u32("ebitmap map size")?;
        let highbit = r.u32("ebitmap high bit")?;
        if mapsize != MAPSIZE {
            return r.err_at(at, LoadErrorKind::BadBitmap("map size is not 64"));
        }
        if highbit & (MAPSIZE - 1) != 0 {
            return r.err_at(
                at,
                LoadErrorKind::BadBitmap("high bit is not a multiple of 64"),
            );
        }
        let n = r.count("ebitmap node count", 12)?;
        if highbit != 0 && n == 0 {
            return r.err_at(at, LoadErrorKind::BadBitmap("high bit set but no nodes"));
        }
        sink.count(n);
        let mut prev: Option<u32> = None;
        for _ in 0..n {
            let nat = r.pos();
            let start = r.u32("ebitmap node start")?;
            let map = r.u64("ebitmap node map")?;
            if start & (MAPSIZE - 1) != 0 {
                return r.err_at(
                    nat,
                    LoadErrorKind::BadBitmap("node start is not a multiple of 64"),
                );
            }
            if highbit < MAPSIZE || start > highbit - MAPSIZE {
                return r.err_at(nat, LoadErrorKind::BadBitmap("node beyond the high bit"));
            }
            if map == 0 {
                return r.err_at(nat, LoadErrorKind::BadBitmap("empty node"));
            }
            if let Some(p) = prev
                && start <= p
            {
                return r.err_at(nat, LoadErrorKind::BadBitmap("nodes out of order"));
            }
            prev = Some(start);
            sink.node(start, map);
        }
        Ok(())
    }

    /// Is bit `bit` set?
    #[inline]
    pub fn get(&self, bit: u32) -> bool {
        let start = bit & !(MAPSIZE - 1);
        // Bitmaps in policies are short: a linear scan beats a binary search.
        for &(s, m) in &self.nodes {
            if s == start {
                return m & (1u64 << (bit - s)) != 0;
            }
            if s > start {
                return false;
            }
        }
        false
    }

    /// Sets bit `bit`.
    pub fn set(&mut self, bit: u32) {
        let start = bit & !(MAPSIZE - 1);
        let b = 1u64 << (bit - start);
        match self.nodes.binary_search_by_key(&start, |n| n.0) {
            Ok(i) => self.nodes[i].1 |= b,
            Err(i) => self.nodes.insert(i, (start, b)),
        }
    }

    /// Clears bit `bit`.
    pub fn clear(&mut self, bit: u32) {
        let start = bit & !(MAPSIZE - 1);
        if let Ok(i) = self.nodes.binary_search_by_key(&start, |n| n.0) {
            self.nodes[i].1 &= !(1u64 << (bit - start));
            if self.nodes[i].1 == 0 {
                self.nodes.remove(i);
            }
        }
    }

    /// Iterates the set bits in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.nodes.iter().flat_map(|&(s, m)| {
            let mut m = m;
            core::iter::from_fn(move || {
                if m == 0 {
                    return None;
                }
                let b = m.trailing_zeros();
                m &= m - 1;
                Some(s + b)
            })
        })
    }

    /// The highest set bit + 1 (0 if empty).
    pub fn highest(&self) -> u32 {
        match self.nodes.last() {
            Some(&(s, m)) => s + 64 - m.leading_zeros(),
            None => 0,
        }
    }

    /// Is the set empty?
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Number of set bits.
    pub fn count(&self) -> usize {
        self.nodes.iter().map(|n| n.1.count_ones() as usize).sum()
    }

    /// Is every bit of `other` also in `self`?
    pub fn contains(&self, other: &Ebitmap) -> bool {
        let mut i = 0;
        for &(s, m) in &other.nodes {
            while i < self.nodes.len() && self.nodes[i].0 < s {
                i += 1;
            }
            if i >= self.nodes.len() || self.nodes[i].0 != s || self.nodes[i].1 & m != m {
                return false;
            }
        }
        true
    }

    /// Does `self` share a bit with `other`?
    pub fn intersects(&self, other: &Ebitmap) -> bool {
        let (mut i, mut j) = (0, 0);
        while i < self.nodes.len() && j < other.nodes.len() {
            let (a, b) = (self.nodes[i], other.nodes[j]);
            if a.0 == b.0 {
                if a.1 & b.1 != 0 {
                    return true;
                }
                i += 1;
                j += 1;
            } else if a.0 < b.0 {
                i += 1;
            } else {
                j += 1;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(highbit: u32, nodes: &[(u32, u64)]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&64u32.to_le_bytes());
        v.extend_from_slice(&highbit.to_le_bytes());
        v.extend_from_slice(&(nodes.len() as u32).to_le_bytes());
        for (s, m) in nodes {
            v.extend_from_slice(&s.to_le_bytes());
            v.extend_from_slice(&m.to_le_bytes());
        }
        v
    }

    #[test]
    fn read_and_query() {
        let d = enc(192, &[(0, 0b101), (128, 1 << 63)]);
        let e = Ebitmap::read(&mut Reader::new(&d)).unwrap();
        assert!(e.get(0) && !e.get(1) && e.get(2) && e.get(191) && !e.get(64));
        assert_eq!(e.iter().collect::<Vec<_>>(), [0, 2, 191]);
        assert_eq!(e.highest(), 192);
        assert_eq!(e.count(), 3);
    }

    #[test]
    fn rejects_malformed() {
        let cases: &[(Vec<u8>, &str)] = &[
            (
                {
                    let mut d = enc(64, &[(0, 1)]);
                    d[0] = 32;
                    d
                },
                "map size is not 64",
            ),
            (enc(65, &[(0, 1)]), "high bit is not a multiple of 64"),
            (enc(64, &[]), "high bit set but no nodes"),
            (enc(128, &[(1, 1)]), "node start is not a multiple of 64"),
            (enc(64, &[(64, 1)]), "node beyond the high bit"),
            (enc(64, &[(0, 0)]), "empty node"),
            (enc(128, &[(64, 1), (0, 1)]), "nodes out of order"),
        ];
        for (d, msg) in cases {
            let e = Ebitmap::read(&mut Reader::new(d)).unwrap_err();
            assert_eq!(e.kind, LoadErrorKind::BadBitmap(msg), "{msg}");
        }
        let d = enc(64, &[(0, 1)]);
        let e = Ebitmap::read(&mut Reader::new(&d[..d.len() - 1])).unwrap_err();
        assert!(matches!(e.kind, LoadErrorKind::BadLength { .. }));
    }

    #[test]
    fn set_clear_contains() {
        let mut a = Ebitmap::new();
        a.set(5);
        a.set(300);
        let mut b = Ebitmap::new();
        b.set(300);
        assert!(a.contains(&b) && !b.contains(&a) && a.intersects(&b));
        a.clear(300);
        assert!(!a.contains(&b) && !a.intersects(&b));
        a.clear(5);
        assert!(a.is_empty());
    }
}
