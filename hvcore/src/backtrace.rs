//! Frame-pointer backtraces (the image is built with
//! `-Cforce-frame-pointers=yes`): each frame's `rbp` points at the caller's
//! saved `rbp`, with the return address just above it.
//!
//! The walk only dereferences addresses inside the given stack range and
//! requires frames to move strictly up the stack, so a corrupt chain ends the
//! walk instead of faulting or looping.

use core::ops::Range;

/// One frame: the return address into the caller, and the frame pointer that held it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    pub rbp: u64,
    pub return_addr: u64,
}

/// Iterator over the frames above `rbp`.
#[derive(Debug)]
pub struct Walk<F> {
    rbp: u64,
    stack: Range<u64>,
    left: usize,
    read: F,
}

/// Walk from frame pointer `rbp` within `stack`, at most `max` frames; `read`
/// loads a u64 from an address the walk has checked is inside `stack`.
pub fn walk<F: Fn(u64) -> Option<u64>>(
    rbp: u64,
    stack: Range<u64>,
    max: usize,
    read: F,
) -> Walk<F> {
    Walk {
        rbp,
        stack,
        left: max,
        read,
    }
}

impl<F: Fn(u64) -> Option<u64>> Iterator for Walk<F> {
    type Item = Frame;

    fn next(&mut self) -> Option<Frame> {
        if self.left == 0 || self.rbp == 0 || !self.rbp.is_multiple_of(8) {
            return None;
        }
        let top = self.rbp.checked_add(16)?;
        if self.rbp < self.stack.start || top > self.stack.end {
            return None;
        }
        let saved = (self.read)(self.rbp)?;
        let ret = (self.read)(self.rbp + 8)?;
        if ret == 0 {
            return None;
        }
        let frame = Frame {
            rbp: self.rbp,
            return_addr: ret,
        };
        self.left -= 1;
        // The caller's frame is higher up the stack; anything else ends the walk.
        self.rbp = if saved > self.rbp { saved } else { 0 };
        Some(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    /// A fake stack at 0x10000..0x11000 as a list of (addr, value).
    fn reader(words: &[(u64, u64)]) -> impl Fn(u64) -> Option<u64> + '_ {
        move |a| words.iter().find(|w| w.0 == a).map(|w| w.1)
    }

    #[test]
    fn walks_a_chain() {
        let words = [
            (0x10100, 0x10200),
            (0x10108, 0xaaaa),
            (0x10200, 0x10300),
            (0x10208, 0xbbbb),
            (0x10300, 0),
            (0x10308, 0xcccc),
        ];
        let frames: Vec<u64> = walk(0x10100, 0x10000..0x11000, 16, reader(&words))
            .map(|f| f.return_addr)
            .collect();
        assert_eq!(frames, vec![0xaaaa, 0xbbbb, 0xcccc]);
    }

    #[test]
    fn stops_on_corruption() {
        // Loop: frame points to itself.
        let words = [(0x10100, 0x10100), (0x10108, 0xaaaa)];
        assert_eq!(
            walk(0x10100, 0x10000..0x11000, 16, reader(&words)).count(),
            1
        );
        // Points downwards.
        let words = [(0x10100, 0x10000), (0x10108, 0xaaaa)];
        assert_eq!(
            walk(0x10100, 0x10000..0x11000, 16, reader(&words)).count(),
            1
        );
        // Outside the stack: nothing is read.
        let never = |_a: u64| -> Option<u64> { panic!("read outside the stack") };
        assert_eq!(walk(0x20000, 0x10000..0x11000, 16, never).count(), 0);
        assert_eq!(walk(0x10ff8, 0x10000..0x11000, 16, never).count(), 0);
        // Misaligned.
        assert_eq!(walk(0x10101, 0x10000..0x11000, 16, never).count(), 0);
        // Near the top of the address space.
        assert_eq!(walk(u64::MAX - 7, 0..u64::MAX, 16, never).count(), 0);
        // Bounded length.
        let words: Vec<(u64, u64)> = (0..100u64)
            .flat_map(|i| {
                [
                    (0x10000 + i * 16, 0x10000 + (i + 1) * 16),
                    (0x10008 + i * 16, 1),
                ]
            })
            .collect();
        assert_eq!(
            walk(0x10000, 0x10000..0x11000, 10, reader(&words)).count(),
            10
        );
    }
}
