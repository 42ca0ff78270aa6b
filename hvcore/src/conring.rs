//! The console ring: the hypervisor's log buffer, read with `xl dmesg`
//! (`sysctl readconsole`).
//!
//! One stream of lines with absolute positions (byte counts since boot that
//! never wrap), so a reader keeps the position it got back and reads again
//! from there (Xen's `readconsole` with `incremental`). The storage is split
//! in two regions so guests cannot push the hypervisor's own lines (audit
//! records above all) out of the ring:
//!
//! - the **hypervisor region** (three quarters of the storage) holds the
//!   hypervisor's own lines ([`ConsoleRing::write`]);
//! - the **guest region** (the last quarter) holds what guests wrote
//!   ([`ConsoleRing::write_guest`]: `(dN) ` lines, and dom0's output with
//!   `console_to_ring`).
//!
//! Each region evicts only its own oldest lines, so a flooding guest evicts
//! only older guest lines. A reader sees the lines of both regions merged in
//! the order they were written; positions of evicted lines are skipped (the
//! first gap is reported as `lost`). Lines are kept whole (a line longer than
//! its region keeps its end).
//!
//! `clear_to(p)` makes everything before `p` unreadable: Xen's `readconsole`
//! with `clear` discards exactly what that call returned, never what the
//! caller has not seen.

use core::cell::Cell;

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

/// Bytes of a record's header: position (u64) and length (u32).
const HDR: usize = 12;

/// One region: records (header + line bytes) in a byte ring, oldest first.
#[derive(Debug)]
struct Region<'a> {
    buf: &'a mut [u8],
    /// Offset of the oldest record.
    start: usize,
    /// Bytes of records held.
    used: usize,
    /// Records held.
    count: usize,
    /// Where the last read stopped: (record position, record offset).
    cursor: Cell<Option<(u64, usize)>>,
}

/// One record: its position, length and the offset of its first byte of text.
#[derive(Debug, Clone, Copy)]
struct Rec {
    pos: u64,
    len: usize,
    /// Offset of the header.
    at: usize,
}

impl<'a> Region<'a> {
    fn new(buf: &'a mut [u8]) -> Self {
        Region {
            buf,
            start: 0,
            used: 0,
            count: 0,
            cursor: Cell::new(None),
        }
    }

    fn cap(&self) -> usize {
        self.buf.len()
    }

    fn byte(&self, off: usize) -> u8 {
        self.buf[off % self.cap()]
    }

    fn put(&mut self, off: usize, bytes: &[u8]) {
        let cap = self.cap();
        for (i, &b) in bytes.iter().enumerate() {
            self.buf[(off + i) % cap] = b;
        }
    }

    fn rec_at(&self, at: usize) -> Rec {
        let mut h = [0u8; HDR];
        for (i, b) in h.iter_mut().enumerate() {
            *b = self.byte(at + i);
        }
        let mut p = [0u8; 8];
        p.copy_from_slice(&h[..8]);
        let mut l = [0u8; 4];
        l.copy_from_slice(&h[8..]);
        Rec {
            pos: u64::from_le_bytes(p),
            len: u32::from_le_bytes(l) as usize,
            at: at % self.cap(),
        }
    }

    fn oldest(&self) -> Option<Rec> {
        (self.count > 0).then(|| self.rec_at(self.start))
    }

    fn evict_oldest(&mut self) {
        if let Some(r) = self.oldest() {
            self.start = (self.start + HDR + r.len) % self.cap();
            self.used -= HDR + r.len;
            self.count -= 1;
        }
    }

    /// Append a record for `bytes` written at `pos`, evicting the oldest
    /// records as needed. Returns false if the region cannot hold any of it.
    fn push(&mut self, pos: u64, bytes: &[u8]) -> bool {
        let cap = self.cap();
        if cap <= HDR || bytes.is_empty() {
            return false;
        }
        let cut = bytes.len().saturating_sub(cap - HDR);
        let (pos, bytes) = (pos + cut as u64, &bytes[cut..]);
        let need = HDR + bytes.len();
        while cap - self.used < need {
            self.evict_oldest();
        }
        let at = (self.start + self.used) % cap;
        let mut h = [0u8; HDR];
        h[..8].copy_from_slice(&pos.to_le_bytes());
        h[8..].copy_from_slice(&(bytes.len() as u32).to_le_bytes());
        self.put(at, &h);
        self.put(at + HDR, bytes);
        self.used += need;
        self.count += 1;
        true
    }

    /// Bytes of records from the record at `at` to the newest's end.
    fn remaining_from(&self, at: usize) -> usize {
        self.used - (at + self.cap() - self.start) % self.cap()
    }

    /// The first record that ends after `pos` (records are in position
    /// order), with the bytes of records from it on.
    fn first_ending_after(&self, pos: u64) -> Option<(Rec, usize)> {
        let oldest = self.oldest()?;
        let mut at = self.start;
        // Resume where the last read stopped if that record is still held
        // (records are evicted oldest first and never move).
        if let Some((cpos, cat)) = self.cursor.get()
            && cpos >= oldest.pos
            && cpos <= pos
            && self.rec_at(cat).pos == cpos
        {
            at = cat;
        }
        let mut left = self.remaining_from(at);
        while left > 0 {
            let r = self.rec_at(at);
            if r.pos + r.len as u64 > pos {
                return Some((r, left));
            }
            at = (at + HDR + r.len) % self.cap();
            left -= HDR + r.len;
        }
        None
    }

    /// The record after `r` (with `left` bytes of records from `r` on).
    fn next_rec(&self, r: Rec, left: usize) -> Option<(Rec, usize)> {
        let left = left - (HDR + r.len);
        (left > 0).then(|| (self.rec_at(r.at + HDR + r.len), left))
    }

    #[cfg(test)]
    fn clear(&mut self) {
        self.start = 0;
        self.used = 0;
        self.count = 0;
        self.cursor.set(None);
    }
}

/// Which region a write goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The hypervisor's own lines.
    Hypervisor,
    /// Guest output.
    Guest,
}

/// A console ring over caller-provided storage.
#[derive(Debug)]
pub struct ConsoleRing<'a> {
    hv: Region<'a>,
    guest: Region<'a>,
    /// Total bytes ever written.
    head: u64,
    /// Position before which reads see nothing (set by `clear`).
    cleared: u64,
}

/// How a buffer is split: the guest region's share of `len` bytes.
fn guest_share(len: usize) -> usize {
    len / 4
}

impl<'a> ConsoleRing<'a> {
    /// A ring using `buf` as its storage (its size is the ring's capacity:
    /// three quarters for the hypervisor's lines, one quarter for guests').
    pub fn new(buf: &'a mut [u8]) -> Self {
        let g = guest_share(buf.len());
        let split = buf.len() - g;
        let (h, gb) = buf.split_at_mut(split);
        ConsoleRing {
            hv: Region::new(h),
            guest: Region::new(gb),
            head: 0,
            cleared: 0,
        }
    }

    /// Capacity in bytes (both regions).
    pub fn capacity(&self) -> usize {
        self.hv.cap() + self.guest.cap()
    }

    /// Capacity of the guest region.
    pub fn guest_capacity(&self) -> usize {
        self.guest.cap()
    }

    /// Position after the last byte written.
    pub fn head(&self) -> u64 {
        self.head
    }

    /// Oldest position still readable.
    pub fn tail(&self) -> u64 {
        let oldest = [self.hv.oldest(), self.guest.oldest()]
            .into_iter()
            .flatten()
            .map(|r| r.pos)
            .min()
            .unwrap_or(self.head);
        oldest.max(self.cleared).min(self.head)
    }

    /// Append a hypervisor line (the oldest hypervisor lines are evicted when full).
    pub fn write(&mut self, bytes: &[u8]) {
        self.write_from(Source::Hypervisor, bytes);
    }

    /// Append guest output (only older guest output is evicted for it).
    pub fn write_guest(&mut self, bytes: &[u8]) {
        self.write_from(Source::Guest, bytes);
    }

    /// Append bytes to the region of `src`.
    pub fn write_from(&mut self, src: Source, bytes: &[u8]) {
        let pos = self.head;
        self.head += bytes.len() as u64;
        match src {
            Source::Hypervisor => self.hv.push(pos, bytes),
            Source::Guest => self.guest.push(pos, bytes),
        };
    }

    /// Copy bytes from position `from` into `out`: the lines of both
    /// regions in the order they were written. If `from` is older than the
    /// oldest readable byte, `lost` says how many bytes before the first one
    /// copied are gone.
    pub fn read(&self, from: u64, out: &mut [u8]) -> ReadResult {
        let from_eff = from.max(self.cleared).min(self.head);
        let mut a = self.hv.first_ending_after(from_eff);
        let mut b = self.guest.first_ending_after(from_eff);
        let mut pos = from_eff;
        let mut start = None;
        let mut len = 0;
        while len < out.len() {
            // The record with the lower position next.
            let take_a = match (&a, &b) {
                (Some((ra, _)), Some((rb, _))) => ra.pos <= rb.pos,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            let (region, cur) = if take_a {
                (&self.hv, &mut a)
            } else {
                (&self.guest, &mut b)
            };
            let Some((r, left)) = *cur else { break };
            let s = pos.max(r.pos);
            let skip = (s - r.pos) as usize;
            let n = (r.len - skip).min(out.len() - len);
            for (i, o) in out[len..len + n].iter_mut().enumerate() {
                *o = region.byte(r.at + HDR + skip + i);
            }
            if start.is_none() {
                start = Some(s);
            }
            len += n;
            pos = s + n as u64;
            region.cursor.set(Some((r.pos, r.at)));
            if skip + n == r.len {
                *cur = region.next_rec(r, left);
            }
        }
        if start.is_none() && !out.is_empty() {
            // Nothing readable at or after `from`: continue at the head.
            pos = self.head;
        }
        let start = start.unwrap_or(pos);
        ReadResult {
            len,
            start,
            next: pos,
            lost: start.saturating_sub(from),
        }
    }

    /// Forget everything written so far.
    pub fn clear(&mut self) {
        self.cleared = self.head;
    }

    /// Forget everything before position `upto` (what a reader has read).
    pub fn clear_to(&mut self, upto: u64) {
        self.cleared = self.cleared.max(upto.min(self.head));
    }

    /// Move to new storage (e.g. from the boot-time static buffer to one sized
    /// by `conring_size=`), keeping as much of the newest content of each
    /// region as fits and every position unchanged.
    pub fn migrate(&mut self, new: &'a mut [u8]) {
        let g = guest_share(new.len());
        let split = new.len() - g;
        let (h, gb) = new.split_at_mut(split);
        let mut nh = Region::new(h);
        let mut ng = Region::new(gb);
        for (old, new) in [(&self.hv, &mut nh), (&self.guest, &mut ng)] {
            let mut r = old.oldest().map(|r| (r, old.used));
            let mut line = alloc::vec::Vec::new();
            while let Some((rec, left)) = r {
                line.clear();
                line.extend((0..rec.len).map(|i| old.byte(rec.at + HDR + i)));
                new.push(rec.pos, &line);
                r = old.next_rec(rec, left);
            }
        }
        self.hv = nh;
        self.guest = ng;
    }

    /// Drop every line (tests).
    #[cfg(test)]
    fn reset(&mut self) {
        self.hv.clear();
        self.guest.clear();
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
        let mut buf = [0u8; 256];
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
        let mut buf = [0u8; 256];
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
    fn overwrite_reports_loss_and_keeps_whole_lines() {
        // Hypervisor region: 48 bytes = two records of 7 + 12 bytes, plus change.
        let mut buf = [0u8; 64];
        let mut r = ConsoleRing::new(&mut buf);
        r.write(b"line-1\n");
        r.write(b"line-2\n");
        r.write(b"line-3\n"); // 3 * 19 > 48: line-1 is gone
        assert_eq!(r.tail(), 7);
        let (s, res) = read_all(&r, 0);
        assert_eq!(s, "line-2\nline-3\n");
        assert_eq!(res.start, 7);
        assert_eq!(res.lost, 7);
    }

    #[test]
    fn wrap_around_content_is_in_order() {
        let mut buf = [0u8; 80];
        let mut r = ConsoleRing::new(&mut buf);
        for i in 0..7u8 {
            r.write(&[b'0' + i, b'\n']);
        }
        // 60 bytes of hypervisor region hold four 14-byte records.
        let (s, res) = read_all(&r, 0);
        assert_eq!(s, "3\n4\n5\n6\n");
        assert_eq!(res.lost, 6);
        let (s, _) = read_all(&r, 10);
        assert_eq!(s, "5\n6\n");
    }

    #[test]
    fn huge_write_keeps_the_end() {
        let mut buf = [0u8; 32];
        let mut r = ConsoleRing::new(&mut buf);
        r.write(b"0123456789abcdef\nxyz\n");
        assert_eq!(r.head(), 21);
        let (s, _) = read_all(&r, r.tail());
        // 24 bytes of region - 12 of header: the last 12 bytes.
        assert_eq!(s, "9abcdef\nxyz\n");
    }

    #[test]
    fn clear_hides_old_content() {
        let mut buf = [0u8; 256];
        let mut r = ConsoleRing::new(&mut buf);
        r.write(b"old\n");
        r.clear();
        r.write(b"new\n");
        let (s, res) = read_all(&r, 0);
        assert_eq!(s, "new\n");
        assert_eq!(res.start, 4);
        assert_eq!(res.lost, 4);
    }

    #[test]
    fn clear_to_keeps_what_was_not_read() {
        let mut buf = [0u8; 256];
        let mut r = ConsoleRing::new(&mut buf);
        r.write(b"first\n");
        r.write(b"second\n");
        let mut out = [0u8; 8];
        let a = r.read(0, &mut out);
        r.clear_to(a.next);
        let (s, _) = read_all(&r, 0);
        assert_eq!(s, "cond\n", "only the bytes returned are cleared");
    }

    #[test]
    fn guest_lines_never_evict_hypervisor_lines() {
        let mut buf = [0u8; 1024];
        let mut r = ConsoleRing::new(&mut buf);
        r.write(b"early\n");
        r.write(b"audit(1.0:1): avc:  denied  { x }\n");
        for i in 0..1000 {
            r.write_guest(alloc::format!("(d1) flood {i}\n").as_bytes());
        }
        r.write(b"later\n");
        let (s, res) = read_all(&r, 0);
        assert!(
            s.starts_with("early\naudit(1.0:1): avc:  denied  { x }\n(d1) flood 9"),
            "{s}"
        );
        assert!(s.ends_with("(d1) flood 999\nlater\n"), "{s}");
        assert_eq!(res.lost, 0, "the oldest hypervisor line is still there");
        // Guest output keeps its quarter: the newest lines.
        assert!(!s.contains("flood 0\n"));
        assert!(s.matches("(d1)").count() > 5);
    }

    #[test]
    fn interleaved_regions_read_in_write_order_in_any_chunks() {
        let mut buf = [0u8; 4096];
        let mut r = ConsoleRing::new(&mut buf);
        let mut want = alloc::string::String::new();
        for i in 0..40 {
            let l = alloc::format!("hv {i}\n");
            r.write(l.as_bytes());
            want.push_str(&l);
            let g = alloc::format!("(d2) g {i}\n");
            r.write_guest(g.as_bytes());
            want.push_str(&g);
        }
        for chunk in [1usize, 3, 7, 64, 4096] {
            let mut got = alloc::vec::Vec::new();
            let mut pos = 0;
            loop {
                let mut out = alloc::vec![0u8; chunk];
                let res = r.read(pos, &mut out);
                if res.len == 0 {
                    break;
                }
                got.extend_from_slice(&out[..res.len]);
                pos = res.next;
            }
            assert_eq!(alloc::string::String::from_utf8(got).unwrap(), want);
        }
    }

    #[test]
    fn migrate_keeps_positions_and_newest_lines() {
        let mut small = [0u8; 128];
        let mut big = [0u8; 256];
        let mut r = ConsoleRing::new(&mut small);
        r.write(b"aa\n");
        r.write(b"bb\n");
        r.write_guest(b"(d1) g\n");
        let head = r.head();
        r.migrate(&mut big);
        assert_eq!(r.head(), head);
        assert_eq!(r.capacity(), 256);
        let (s, _) = read_all(&r, 1);
        assert_eq!(s, "a\nbb\n(d1) g\n");
        r.write(b"dd\n");
        let (s, _) = read_all(&r, 6);
        assert_eq!(s, "(d1) g\ndd\n");
        // Shrinking keeps the newest.
        let mut tiny = [0u8; 32]; // 24 bytes for the hypervisor: one line
        r.migrate(&mut tiny);
        let (s, _) = read_all(&r, r.tail());
        assert_eq!(s, "dd\n");
        r.reset();
        assert_eq!(read_all(&r, 0).0, "");
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
