//! The console ring: the hypervisor's log buffer, which `xl dmesg` will read.
//!
//! A byte ring over caller-provided storage. Positions are absolute byte
//! counts since boot (they never wrap), so a reader keeps the position it got
//! back and reads again from there (incremental reads, like Xen's
//! `sysctl readconsole` with `incremental`). When the writer has overwritten
//! what a reader had not yet read, the reader is told how much it lost and
//! resumes at the start of the next complete line. `clear` makes everything
//! written so far unreadable (`xl dmesg -c`).
//!
//! Writers call [`ConsoleRing::write`] with whole log lines; the image wraps the
//! ring in a lock.

/// What a read returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadResult {
    /// Bytes copied into the caller's buffer.
    pub len: usize,
    /// Position of the first byte copied (>= the position asked for).
    pub start: u64,
    /// Position to pass to the next read.
    pub next: u64,
    /// Bytes between the position asked for and `start` that are gone.
    pub lost: u64,
}

/// A console ring over `buf`.
#[derive(Debug)]
pub struct ConsoleRing<'a> {
    buf: &'a mut [u8],
    /// Total bytes ever written.
    head: u64,
    /// Position before which reads see nothing (set by `clear`).
    cleared: u64,
}

impl<'a> ConsoleRing<'a> {
    /// A ring using `buf` as its storage (its size is the ring's capacity).
    pub fn new(buf: &'a mut [u8]) -> Self {
        ConsoleRing {
            buf,
            head: 0,
            cleared: 0,
        }
    }

    /// Capacity in bytes.
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Position after the last byte written.
    pub fn head(&self) -> u64 {
        self.head
    }

    /// Oldest position still readable.
    pub fn tail(&self) -> u64 {
        self.head
            .saturating_sub(self.buf.len() as u64)
            .max(self.cleared)
    }

    /// Append bytes; the oldest bytes are overwritten when full.
    pub fn write(&mut self, bytes: &[u8]) {
        let cap = self.buf.len();
        if cap == 0 {
            self.head += bytes.len() as u64;
            return;
        }
        // Only the last `cap` bytes of a huge write can survive.
        let skip = bytes.len().saturating_sub(cap);
        self.head += skip as u64;
        let mut rest = &bytes[skip..];
        while !rest.is_empty() {
            let at = (self.head % cap as u64) as usize;
            let n = rest.len().min(cap - at);
            self.buf[at..at + n].copy_from_slice(&rest[..n]);
            self.head += n as u64;
            rest = &rest[n..];
        }
    }

    fn byte_at(&self, pos: u64) -> u8 {
        self.buf[(pos % self.buf.len() as u64) as usize]
    }

    /// Copy bytes from position `from` into `out`. If `from` is older than the
    /// oldest readable byte, the read starts at the first complete line after
    /// it and `lost` says how many bytes were skipped.
    pub fn read(&self, from: u64, out: &mut [u8]) -> ReadResult {
        let tail = self.tail();
        let mut start = from.clamp(tail, self.head);
        if from < tail && tail > self.cleared {
            // Overwritten, not cleared: skip the partial line at the tail.
            let mut p = tail;
            while p < self.head && self.byte_at(p) != b'\n' {
                p += 1;
            }
            start = if p < self.head { p + 1 } else { tail };
        }
        let avail = (self.head - start) as usize;
        let len = avail.min(out.len());
        for (i, o) in out[..len].iter_mut().enumerate() {
            *o = self.byte_at(start + i as u64);
        }
        ReadResult {
            len,
            start,
            next: start + len as u64,
            lost: start.saturating_sub(from),
        }
    }

    /// Forget everything written so far.
    pub fn clear(&mut self) {
        self.cleared = self.head;
    }

    /// Move to new storage (e.g. from the boot-time static buffer to one sized
    /// by `conring_size=`), keeping as much of the newest content as fits and
    /// every position unchanged. Returns the old storage.
    pub fn migrate(&mut self, new: &'a mut [u8]) -> &'a mut [u8] {
        let keep_from = self.head.saturating_sub(new.len() as u64).max(self.tail());
        if !new.is_empty() {
            for pos in keep_from..self.head {
                new[(pos % new.len() as u64) as usize] = self.byte_at(pos);
            }
        }
        self.cleared = self.cleared.max(keep_from);
        core::mem::replace(&mut self.buf, new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(r: &ConsoleRing, from: u64) -> (alloc::string::String, ReadResult) {
        let mut out = [0u8; 4096];
        let res = r.read(from, &mut out);
        (
            alloc::string::String::from_utf8_lossy(&out[..res.len]).into_owned(),
            res,
        )
    }

    #[test]
    fn incremental_reads() {
        let mut buf = [0u8; 64];
        let mut r = ConsoleRing::new(&mut buf);
        r.write(b"one\n");
        let (s, res) = read_all(&r, 0);
        assert_eq!(s, "one\n");
        assert_eq!(res.next, 4);
        r.write(b"two\n");
        let (s, res2) = read_all(&r, res.next);
        assert_eq!(s, "two\n");
        assert_eq!(res2.lost, 0);
        let (s, _) = read_all(&r, res2.next);
        assert_eq!(s, "");
    }

    #[test]
    fn small_reader_buffer_continues() {
        let mut buf = [0u8; 64];
        let mut r = ConsoleRing::new(&mut buf);
        r.write(b"abcdefgh\n");
        let mut out = [0u8; 4];
        let a = r.read(0, &mut out);
        assert_eq!(&out, b"abcd");
        let b = r.read(a.next, &mut out);
        assert_eq!(&out, b"efgh");
        assert_eq!(b.next, 8);
    }

    #[test]
    fn overwrite_reports_loss_and_resyncs_on_a_line() {
        let mut buf = [0u8; 16];
        let mut r = ConsoleRing::new(&mut buf);
        r.write(b"line-1\n");
        r.write(b"line-2\n");
        r.write(b"line-3\n"); // 21 bytes: the first 5 are gone
        assert_eq!(r.tail(), 5);
        let (s, res) = read_all(&r, 0);
        assert_eq!(s, "line-2\nline-3\n");
        assert_eq!(res.start, 7);
        assert_eq!(res.lost, 7);
    }

    #[test]
    fn wrap_around_content_is_in_order() {
        let mut buf = [0u8; 10];
        let mut r = ConsoleRing::new(&mut buf);
        for i in 0..7u8 {
            r.write(&[b'0' + i, b'\n']);
        }
        let (s, res) = read_all(&r, 4);
        assert_eq!(s, "2\n3\n4\n5\n6\n");
        assert_eq!(res.lost, 0);
    }

    #[test]
    fn huge_write_keeps_the_end() {
        let mut buf = [0u8; 8];
        let mut r = ConsoleRing::new(&mut buf);
        r.write(b"0123456789abcdef\nxyz\n");
        assert_eq!(r.head(), 21);
        let (s, _) = read_all(&r, r.tail());
        assert_eq!(s, "def\nxyz\n");
    }

    #[test]
    fn clear_hides_old_content() {
        let mut buf = [0u8; 64];
        let mut r = ConsoleRing::new(&mut buf);
        r.write(b"old\n");
        r.clear();
        r.write(b"new\n");
        let (s, res) = read_all(&r, 0);
        assert_eq!(s, "new\n");
        assert_eq!(res.start, 4);
        // After a clear the reader starts exactly at the clear point (no line skipping).
        assert_eq!(res.lost, 4);
    }

    #[test]
    fn migrate_keeps_positions_and_newest_bytes() {
        let mut small = [0u8; 8];
        let mut big = [0u8; 32];
        let mut r = ConsoleRing::new(&mut small);
        r.write(b"aa\nbb\ncc\n");
        let head = r.head();
        r.migrate(&mut big);
        assert_eq!(r.head(), head);
        assert_eq!(r.capacity(), 32);
        let (s, _) = read_all(&r, 1);
        assert_eq!(s, "a\nbb\ncc\n");
        r.write(b"dd\n");
        let (s, _) = read_all(&r, 6);
        assert_eq!(s, "cc\ndd\n");
        // Shrinking keeps the newest.
        let mut tiny = [0u8; 4];
        r.migrate(&mut tiny);
        let (s, _) = read_all(&r, r.tail());
        assert_eq!(s, "\ndd\n");
    }

    #[test]
    fn zero_capacity_is_harmless() {
        let mut r = ConsoleRing::new(&mut []);
        r.write(b"x\n");
        let (s, res) = read_all(&r, 0);
        assert_eq!(s, "");
        assert_eq!(res.next, 2);
    }
}
