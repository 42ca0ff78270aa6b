//! Small helpers.

/// The text of a NUL-terminated byte field.
pub fn cstr(b: &[u8]) -> &str {
    let n = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    core::str::from_utf8(&b[..n]).unwrap_or("<not utf-8>")
}

/// A xorshift64* generator (deterministic test randomness).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform below `n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cstr_stops_at_nul() {
        assert_eq!(super::cstr(b"abc\0def"), "abc");
        assert_eq!(super::cstr(b"abc"), "abc");
        let mut r = super::Rng::new(1);
        assert_ne!(r.next_u64(), r.next_u64());
        assert!(r.below(10) < 10);
    }
}
