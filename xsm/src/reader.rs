//! A bounds-checked little-endian reader over a policy image.
//!
//! Every read checks the remaining length first; every count read from the
//! image is checked against the bytes left (times the smallest encoding of
//! one element) before anything is allocated for it, so the loader never
//! allocates more than a small multiple of the image size and every loop is
//! bounded by the input length.

use alloc::string::String;
use alloc::vec::Vec;

use crate::error::{LoadError, LoadErrorKind};

pub(crate) struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

pub(crate) type Res<T> = Result<T, LoadError>;

impl<'a> Reader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Reader { data, pos: 0 }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    pub(crate) fn err<T>(&self, kind: LoadErrorKind) -> Res<T> {
        Err(LoadError {
            offset: self.pos,
            kind,
        })
    }

    pub(crate) fn err_at<T>(&self, offset: usize, kind: LoadErrorKind) -> Res<T> {
        Err(LoadError { offset, kind })
    }

    #[inline]
    pub(crate) fn bytes(&mut self, n: usize, what: &'static str) -> Res<&'a [u8]> {
        if n > self.remaining() {
            return self.err(LoadErrorKind::Truncated {
                what,
                need: n - self.remaining(),
            });
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// The next `n` bytes without consuming them (`n` checked by the caller: at most what is left).
    pub(crate) fn peek(&self, n: usize) -> &'a [u8] {
        &self.data[self.pos..self.pos + n]
    }

    /// Skips `n` bytes (checked by the caller).
    pub(crate) fn skip(&mut self, n: usize) {
        self.pos += n;
    }

    #[inline]
    pub(crate) fn u32(&mut self, what: &'static str) -> Res<u32> {
        let b = self.bytes(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn u64(&mut self, what: &'static str) -> Res<u64> {
        let b = self.bytes(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// A count of elements each at least `min_size` bytes long.
    #[inline]
    pub(crate) fn count(&mut self, what: &'static str, min_size: usize) -> Res<usize> {
        let at = self.pos;
        let n = self.u32(what)? as usize;
        if n.saturating_mul(min_size.max(1)) > self.remaining() {
            return self.err_at(
                at,
                LoadErrorKind::BadLength {
                    what,
                    len: n as u64,
                },
            );
        }
        Ok(n)
    }

    /// Checks that a length read earlier fits in what is left.
    pub(crate) fn check_len(&self, at: usize, what: &'static str, len: u32) -> Res<usize> {
        if len as usize > self.remaining() {
            return self.err_at(
                at,
                LoadErrorKind::BadLength {
                    what,
                    len: u64::from(len),
                },
            );
        }
        Ok(len as usize)
    }

    /// A name of `len` bytes (length read before): non-empty UTF-8 without NUL.
    pub(crate) fn name(&mut self, len: usize, what: &'static str) -> Res<String> {
        self.name_str(len, what).map(String::from)
    }

    /// Like [`Reader::name`], borrowing from the image.
    pub(crate) fn name_str(&mut self, len: usize, what: &'static str) -> Res<&'a str> {
        let at = self.pos;
        let b = self.bytes(len, what)?;
        // Names end up in context strings `user:role:type:level`: no
        // separators, blanks or control characters. The common case, printable
        // ASCII, is one pass over the bytes.
        if !b.is_empty() && b.iter().all(|&c| c > b' ' && c < 0x7f && c != b':') {
            // SAFETY: every byte is below 0x80 (checked just above): ASCII,
            // which is valid UTF-8.
            return Ok(unsafe { core::str::from_utf8_unchecked(b) });
        }
        // Otherwise checked on bytes (every byte of a multi-byte UTF-8
        // character is >= 0x80), then as characters.
        let bad_byte = b.iter().any(|&c| c == b':' || c <= b' ' || c == 0x7f);
        match core::str::from_utf8(b) {
            Ok(s)
                if !s.is_empty()
                    && !bad_byte
                    && !s.chars().any(|c| c.is_whitespace() || c.is_control()) =>
            {
                Ok(s)
            }
            _ => self.err_at(
                at,
                LoadErrorKind::BadName {
                    what,
                    name: String::from_utf8_lossy(b).into_owned(),
                },
            ),
        }
    }

    /// Allocates a vector for `n` elements already checked by [`Reader::count`].
    pub(crate) fn vec<T>(n: usize) -> Vec<T> {
        Vec::with_capacity(n)
    }
}
