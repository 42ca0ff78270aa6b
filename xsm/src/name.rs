//! Symbol names of a loaded policy: ranges of one shared buffer, so a load
//! makes one allocation for all its names, not one per name.

use alloc::sync::Arc;
use core::fmt;
use core::ops::Deref;

/// A symbol name (role, type, user, boolean, sensitivity, category) of a
/// loaded policy. It reads as a `str`.
#[derive(Clone)]
pub struct Name {
    buf: Arc<str>,
    start: u32,
    end: u32,
}

impl Name {
    /// The name at `start..end` of `buf` (a buffer that will hold it: see
    /// [`Name::rebase`]).
    pub(crate) fn new(buf: &Arc<str>, start: usize, end: usize) -> Name {
        Name {
            buf: buf.clone(),
            start: start as u32,
            end: end as u32,
        }
    }

    /// The text of this name in `arena` (the buffer being filled during a load).
    pub(crate) fn in_arena<'s>(&self, arena: &'s str) -> &'s str {
        arena
            .get(self.start as usize..self.end as usize)
            .unwrap_or("")
    }

    /// Points the name at `buf`, the finished buffer of its load.
    pub(crate) fn rebase(&mut self, buf: &Arc<str>) {
        self.buf = buf.clone();
    }
}

impl Deref for Name {
    type Target = str;
    #[inline]
    fn deref(&self) -> &str {
        self.in_arena(&self.buf)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self)
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Name) -> bool {
        **self == **other
    }
}

impl Eq for Name {}
