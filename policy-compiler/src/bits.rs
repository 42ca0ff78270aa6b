//! A growable bit set (bit n = value n+1), serialisable as libsepol's ebitmap.

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Bits(Vec<u64>);

impl Bits {
    pub fn new() -> Bits {
        Bits(Vec::new())
    }

    pub fn set(&mut self, i: usize) {
        let w = i / 64;
        if self.0.len() <= w {
            self.0.resize(w + 1, 0);
        }
        self.0[w] |= 1 << (i % 64);
    }

    pub fn clear(&mut self, i: usize) {
        if let Some(w) = self.0.get_mut(i / 64) {
            *w &= !(1 << (i % 64));
        }
    }

    pub fn get(&self, i: usize) -> bool {
        self.0.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    pub fn union(&mut self, o: &Bits) {
        if self.0.len() < o.0.len() {
            self.0.resize(o.0.len(), 0);
        }
        for (a, b) in self.0.iter_mut().zip(&o.0) {
            *a |= b;
        }
    }

    pub fn subtract(&mut self, o: &Bits) {
        for (a, b) in self.0.iter_mut().zip(&o.0) {
            *a &= !b;
        }
    }

    pub fn intersects(&self, o: &Bits) -> bool {
        self.0.iter().zip(&o.0).any(|(a, b)| a & b != 0)
    }

    pub fn intersection(&self, o: &Bits) -> Bits {
        Bits(self.0.iter().zip(&o.0).map(|(a, b)| a & b).collect())
    }

    pub fn is_subset(&self, o: &Bits) -> bool {
        self.0
            .iter()
            .enumerate()
            .all(|(i, a)| a & !o.0.get(i).copied().unwrap_or(0) == 0)
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }

    pub fn count(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }

    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().enumerate().flat_map(|(wi, &w)| {
            let mut w = w;
            std::iter::from_fn(move || {
                if w == 0 {
                    return None;
                }
                let b = w.trailing_zeros() as usize;
                w &= w - 1;
                Some(wi * 64 + b)
            })
        })
    }

    pub fn first(&self) -> Option<usize> {
        self.iter().next()
    }

    /// libsepol's ebitmap_write: MAPSIZE, highbit, node count, then (startbit, map) per node.
    pub fn write(&self, out: &mut Vec<u8>) {
        let nodes: Vec<(usize, u64)> = self
            .0
            .iter()
            .enumerate()
            .filter(|(_, w)| **w != 0)
            .map(|(i, w)| (i * 64, *w))
            .collect();
        let highbit = nodes.last().map(|n| n.0 + 64).unwrap_or(0);
        out.extend_from_slice(&64u32.to_le_bytes());
        out.extend_from_slice(&(highbit as u32).to_le_bytes());
        out.extend_from_slice(&(nodes.len() as u32).to_le_bytes());
        for (start, map) in nodes {
            out.extend_from_slice(&(start as u32).to_le_bytes());
            out.extend_from_slice(&map.to_le_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_ops_and_ebitmap() {
        let mut a = Bits::new();
        a.set(1);
        a.set(130);
        assert!(a.get(130) && !a.get(2));
        assert_eq!(a.iter().collect::<Vec<_>>(), vec![1, 130]);
        let mut out = Vec::new();
        a.write(&mut out);
        // mapsize 64, highbit 192, 2 nodes: (0, 0b10), (128, 1<<2)
        assert_eq!(&out[0..12], &[64, 0, 0, 0, 192, 0, 0, 0, 2, 0, 0, 0]);
        assert_eq!(out.len(), 12 + 2 * 12);
        let mut b = Bits::new();
        b.set(130);
        assert!(b.is_subset(&a) && !a.is_subset(&b) && a.intersects(&b));
        a.subtract(&b);
        assert_eq!(a.count(), 1);
    }
}
