//! The console ring of a boot-built domain (`io/console.h`), served by
//! Warden itself until a console backend (xenconsoled, in dom0) takes the
//! domain over.
//!
//! The builder gives such a domain a ring page at [`CONSOLE_GFN`] (libxl's
//! place for it) and sets `HVM_PARAM_CONSOLE_PFN`; the event channel
//! (`HVM_PARAM_CONSOLE_EVTCHN`) is an unbound port of the domain whose
//! remote end is the console backend's domain (dom0), so that xenconsoled
//! can bind it later. Until then Warden is the backend: it drains the
//! output ring into the domain's console lines (`(dN)` prefixed and rate
//! limited, the path `console_io` writes take) whenever the domain signals
//! the port and at least every [`POLL_NS`]. ([`feed_input`] fills the input
//! ring; serial input is not routed to domUs yet: Warden has no console
//! focus.)
//!
//! The ring is guest memory: every index read from it is untrusted. A
//! producer index more than a ring ahead of the consumer index is a
//! corrupt ring: Warden skips to the producer (drops what cannot be
//! trusted) rather than read stale bytes.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use warden_abi::xen::console::{IN_CONS, IN_PROD, IN_SIZE, OUT, OUT_CONS, OUT_PROD, OUT_SIZE};

/// Guest frame of the ring (libxl's `XC_DOM_HVM_CONSOLE` special page, the
/// last page below 0xFF000000).
pub const CONSOLE_GFN: u64 = 0xFEFFF;
/// Longest time between two drains of a ring nobody signalled.
pub const POLL_NS: u64 = 10_000_000;

/// Access to one domain's ring page (offsets inside the page).
pub trait RingPage {
    fn read(&self, off: u64, buf: &mut [u8]) -> bool;
    fn write(&self, off: u64, data: &[u8]) -> bool;
}

fn read_u32(p: &dyn RingPage, off: u64) -> Option<u32> {
    let mut b = [0u8; 4];
    p.read(off, &mut b).then(|| u32::from_le_bytes(b))
}

/// Take what the guest wrote to the output ring: `out` gets it in at most
/// two pieces; `out_cons` is advanced. Returns the number of bytes taken
/// (the backend then notifies the guest, which may be waiting for room).
pub fn drain_output(p: &dyn RingPage, out: &mut dyn FnMut(&[u8])) -> usize {
    let (Some(cons), Some(prod)) = (read_u32(p, OUT_CONS), read_u32(p, OUT_PROD)) else {
        return 0;
    };
    core::sync::atomic::fence(Ordering::Acquire);
    let avail = prod.wrapping_sub(cons);
    if avail == 0 {
        return 0;
    }
    if avail > OUT_SIZE {
        // Corrupt indexes: resynchronise, take nothing.
        p.write(OUT_CONS, &prod.to_le_bytes());
        return 0;
    }
    let mut buf = [0u8; OUT_SIZE as usize];
    let mut taken = 0usize;
    let mut at = cons;
    while taken < avail as usize {
        let idx = (at & (OUT_SIZE - 1)) as usize;
        let n = (OUT_SIZE as usize - idx).min(avail as usize - taken);
        if !p.read(OUT + idx as u64, &mut buf[taken..taken + n]) {
            return 0;
        }
        taken += n;
        at = at.wrapping_add(n as u32);
    }
    out(&buf[..taken]);
    core::sync::atomic::fence(Ordering::Release);
    p.write(OUT_CONS, &prod.to_le_bytes());
    taken
}

/// Put `data` into the input ring, as much as fits; returns how much.
pub fn feed_input(p: &dyn RingPage, data: &[u8]) -> usize {
    let (Some(cons), Some(prod)) = (read_u32(p, IN_CONS), read_u32(p, IN_PROD)) else {
        return 0;
    };
    core::sync::atomic::fence(Ordering::Acquire);
    let used = prod.wrapping_sub(cons);
    if used > IN_SIZE {
        return 0;
    }
    let room = (IN_SIZE - used) as usize;
    let n = room.min(data.len());
    for (i, &b) in data[..n].iter().enumerate() {
        let idx = prod.wrapping_add(i as u32) & (IN_SIZE - 1);
        if !p.write(idx as u64, &[b]) {
            return 0;
        }
    }
    core::sync::atomic::fence(Ordering::Release);
    p.write(IN_PROD, &prod.wrapping_add(n as u32).to_le_bytes());
    n
}

/// A domain's console ring, while Warden serves it.
#[derive(Debug, Default)]
pub struct Backend {
    /// Guest frame of the ring + 1 (0: Warden serves no ring for the domain).
    gfn1: AtomicU64,
    /// The guest signalled its port: drain at the next opportunity.
    kicked: AtomicBool,
}

impl Backend {
    /// Serve the ring at `gfn`.
    pub fn attach(&self, gfn: u64) {
        self.gfn1.store(gfn.wrapping_add(1), Ordering::Release);
    }

    /// Stop serving (a console backend took the domain over).
    pub fn detach(&self) {
        self.gfn1.store(0, Ordering::Release);
    }

    /// The ring Warden serves, if any.
    pub fn gfn(&self) -> Option<u64> {
        match self.gfn1.load(Ordering::Acquire) {
            0 => None,
            g => Some(g - 1),
        }
    }

    /// The guest signalled its console port.
    pub fn kick(&self) {
        self.kicked.store(true, Ordering::Release);
    }

    /// Was it signalled since the last call?
    pub fn take_kick(&self) -> bool {
        self.kicked.load(Ordering::Relaxed) && self.kicked.swap(false, Ordering::AcqRel)
    }
}

/// Where serial input goes (Xen's `console_rx` with `conswitch=`): to the
/// hardware domain, or to Warden's debug keys. The switch code (CTRL-A by
/// default) typed three times in a row toggles between the two and is
/// swallowed; fewer than three are passed on before the next byte, as Xen
/// does. (Xen also rotates through boot-built domUs, which on x86 only
/// prints that they have no UART; Warden toggles between the two.)
#[derive(Debug, Clone, Copy)]
pub struct InputSwitch {
    code: u8,
    to_xen: bool,
    held: u8,
}

/// What one byte of serial input became.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// A byte for the hardware domain.
    Dom0(u8),
    /// A debug key for Warden.
    Key(u8),
    /// Input now goes to Warden (true) or to the hardware domain (false).
    Switched { to_xen: bool },
}

impl InputSwitch {
    pub fn new(sw: crate::cmdline::ConSwitch) -> InputSwitch {
        InputSwitch {
            code: sw.code(),
            to_xen: sw.stay_with_xen,
            held: 0,
        }
    }

    /// Input goes to Warden's debug keys?
    pub fn to_xen(&self) -> bool {
        self.to_xen
    }

    /// The switch code's letter (for messages: `CTRL-a`).
    pub fn letter(&self) -> char {
        (self.code + b'a' - 1) as char
    }

    /// Route byte `c`; `out` receives what it became, in order.
    pub fn feed(&mut self, c: u8, out: &mut dyn FnMut(Input)) {
        if c == self.code {
            self.held += 1;
            if self.held == 3 {
                self.held = 0;
                self.to_xen = !self.to_xen;
                out(Input::Switched {
                    to_xen: self.to_xen,
                });
            }
            return;
        }
        for _ in 0..core::mem::take(&mut self.held) {
            out(self.route(self.code));
        }
        out(self.route(c));
    }

    fn route(&self, c: u8) -> Input {
        if self.to_xen {
            Input::Key(c)
        } else {
            Input::Dom0(c)
        }
    }
}

/// Serial console input waiting for the hardware domain (Xen's
/// `serial_rx_ring`, drivers/char/console.c): [`SERIAL_RX_SIZE`] bytes; a
/// byte that arrives while it is full is dropped, and the hardware domain
/// is notified (VIRQ_CONSOLE) for every arrival all the same, so a reader
/// that missed an event cannot stay stuck. `CONSOLEIO_read` empties it.
#[derive(Debug)]
pub struct SerialRx {
    buf: [u8; SERIAL_RX_SIZE],
    prod: u32,
    cons: u32,
}

/// Xen's `SERIAL_RX_SIZE`.
pub const SERIAL_RX_SIZE: usize = 128;

impl Default for SerialRx {
    fn default() -> Self {
        SerialRx {
            buf: [0; SERIAL_RX_SIZE],
            prod: 0,
            cons: 0,
        }
    }
}

impl SerialRx {
    /// Bytes that arrived on the serial line: kept while there is room.
    pub fn push(&mut self, data: &[u8]) {
        for &b in data {
            if self.prod.wrapping_sub(self.cons) as usize != SERIAL_RX_SIZE {
                self.buf[self.prod as usize % SERIAL_RX_SIZE] = b;
                self.prod = self.prod.wrapping_add(1);
            }
        }
    }

    /// Take up to `out.len()` bytes, oldest first; returns how many.
    pub fn take(&mut self, out: &mut [u8]) -> usize {
        let mut n = 0;
        while n < out.len() && self.cons != self.prod {
            out[n] = self.buf[self.cons as usize % SERIAL_RX_SIZE];
            self.cons = self.cons.wrapping_add(1);
            n += 1;
        }
        n
    }

    /// Bytes waiting.
    pub fn len(&self) -> usize {
        self.prod.wrapping_sub(self.cons) as usize
    }

    /// Nothing waiting?
    pub fn is_empty(&self) -> bool {
        self.prod == self.cons
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_switch_codes_toggle_input_and_fewer_pass_through() {
        let mut sw = InputSwitch::new(crate::cmdline::ConSwitch::default());
        let mut got = Vec::new();
        let feed = |sw: &mut InputSwitch, bytes: &[u8]| {
            let mut v = Vec::new();
            for &b in bytes {
                sw.feed(b, &mut |i| v.push(i));
            }
            v
        };
        got.extend(feed(&mut sw, b"l\x01\x01s"));
        assert_eq!(
            got,
            [
                Input::Dom0(b'l'),
                Input::Dom0(1),
                Input::Dom0(1),
                Input::Dom0(b's')
            ]
        );
        assert_eq!(
            feed(&mut sw, b"\x01\x01\x01q"),
            [Input::Switched { to_xen: true }, Input::Key(b'q')]
        );
        assert!(sw.to_xen());
        assert_eq!(
            feed(&mut sw, b"\x01\x01\x01x"),
            [Input::Switched { to_xen: false }, Input::Dom0(b'x')]
        );
        let mut b = InputSwitch::new(crate::cmdline::ConSwitch {
            letter: b'b',
            stay_with_xen: true,
        });
        assert_eq!(b.letter(), 'b');
        assert_eq!(feed(&mut b, b"\x01h"), [Input::Key(1), Input::Key(b'h')]);
    }
    use alloc::vec::Vec;
    use core::cell::RefCell;

    #[test]
    fn serial_input_keeps_what_fits_in_order() {
        let mut r = SerialRx::default();
        r.push(b"abc");
        let mut out = [0u8; 2];
        assert_eq!(r.take(&mut out), 2);
        assert_eq!(&out, b"ab");
        // Fill it: what does not fit is dropped, the oldest bytes stay.
        let many: Vec<u8> = (0..200u32).map(|i| i as u8).collect();
        r.push(&many);
        assert_eq!(r.len(), SERIAL_RX_SIZE);
        let mut all = [0u8; 256];
        let n = r.take(&mut all);
        assert_eq!(n, SERIAL_RX_SIZE);
        assert_eq!(all[0], b'c');
        assert_eq!(&all[1..n], &many[..SERIAL_RX_SIZE - 1]);
        assert!(r.is_empty());
        assert_eq!(r.take(&mut all), 0);
    }

    struct Page(RefCell<Vec<u8>>);
    impl RingPage for Page {
        fn read(&self, off: u64, buf: &mut [u8]) -> bool {
            let p = self.0.borrow();
            let o = off as usize;
            match p.get(o..o + buf.len()) {
                Some(s) => {
                    buf.copy_from_slice(s);
                    true
                }
                None => false,
            }
        }
        fn write(&self, off: u64, data: &[u8]) -> bool {
            let mut p = self.0.borrow_mut();
            let o = off as usize;
            match p.get_mut(o..o + data.len()) {
                Some(s) => {
                    s.copy_from_slice(data);
                    true
                }
                None => false,
            }
        }
    }

    fn page() -> Page {
        Page(RefCell::new(alloc::vec![0; 4096]))
    }

    /// What a guest does (Linux's hvc_xen `__write_console`).
    fn guest_write(p: &Page, data: &[u8]) {
        let prod = read_u32(p, OUT_PROD).unwrap();
        for (i, &b) in data.iter().enumerate() {
            let idx = prod.wrapping_add(i as u32) & (OUT_SIZE - 1);
            p.write(OUT + idx as u64, &[b]);
        }
        p.write(
            OUT_PROD,
            &prod.wrapping_add(data.len() as u32).to_le_bytes(),
        );
    }

    #[test]
    fn output_is_drained_across_the_wrap() {
        let p = page();
        // Start near the end of the ring and near u32 wrap-around.
        let start = u32::MAX - 5;
        p.write(OUT_CONS, &start.to_le_bytes());
        p.write(OUT_PROD, &start.to_le_bytes());
        let text = b"hello from the ring\n";
        guest_write(&p, text);
        let mut got = Vec::new();
        assert_eq!(
            drain_output(&p, &mut |b| got.extend_from_slice(b)),
            text.len()
        );
        assert_eq!(got, text);
        assert_eq!(
            read_u32(&p, OUT_CONS),
            Some(start.wrapping_add(text.len() as u32))
        );
        assert_eq!(drain_output(&p, &mut |_| panic!("nothing new")), 0);
    }

    #[test]
    fn corrupt_indexes_take_nothing_and_resynchronise() {
        let p = page();
        p.write(OUT_CONS, &0u32.to_le_bytes());
        p.write(OUT_PROD, &(OUT_SIZE + 1).to_le_bytes());
        assert_eq!(drain_output(&p, &mut |_| panic!("read a corrupt ring")), 0);
        assert_eq!(read_u32(&p, OUT_CONS), Some(OUT_SIZE + 1));
    }

    #[test]
    fn input_fills_only_the_room_there_is() {
        let p = page();
        p.write(IN_PROD, &(IN_SIZE - 2).to_le_bytes());
        assert_eq!(feed_input(&p, b"abcdef"), 2);
        assert_eq!(read_u32(&p, IN_PROD), Some(IN_SIZE));
        p.write(IN_CONS, &3u32.to_le_bytes());
        assert_eq!(feed_input(&p, b"xyz"), 3);
        let mut b = [0u8; 3];
        p.read(0, &mut b);
        assert_eq!(&b, b"xyz");
    }

    #[test]
    fn the_backend_remembers_its_ring_and_kicks() {
        let b = Backend::default();
        assert_eq!(b.gfn(), None);
        b.attach(CONSOLE_GFN);
        assert_eq!(b.gfn(), Some(CONSOLE_GFN));
        assert!(!b.take_kick());
        b.kick();
        assert!(b.take_kick());
        assert!(!b.take_kick());
        b.detach();
        assert_eq!(b.gfn(), None);
    }
}
