//! The console: the global console ring (every log line, with timestamp and
//! level, in the ring's hypervisor region; guest lines in its guest region,
//! see `hvcore::conring` and `hvcore::guestcons`) and the serial ports,
//! behind the `log` facade.
//!
//! The ring starts on a static 64 KiB buffer so the earliest lines are kept,
//! and moves to a heap buffer of `conring_size=` once the command line is
//! parsed. Readers (`sysctl readconsole` / `xl dmesg`) use [`read`] with
//! a position they keep, and [`clear_to`].
//!
//! Serial output never holds a CPU on the (polled) UART: bytes go into a
//! 16 KiB transmit queue, drained as far as the UART takes them without
//! waiting, after every write and on every timer tick. Guest output (domU
//! lines, dom0's raw output) may fill only half of the queue; a line that
//! does not fit is dropped and counted, and the count is printed once room
//! is back. Fatal reports drain the queue synchronously.

use crate::serial::Uart;
use core::fmt::Write;
use core::sync::atomic::{AtomicBool, Ordering};
use hvcore::cmdline::{LogLevel, Options};
use hvcore::conring::{ConsoleRing, ReadResult};
use hvcore::logfmt::{FixedBuf, Level};

const BOOT_RING_SIZE: usize = 64 * 1024;
static mut BOOT_RING: [u8; BOOT_RING_SIZE] = [0; BOOT_RING_SIZE];

/// Longest log line (longer ones are cut and marked).
pub const MAX_LINE: usize = 1024;

/// Serial transmit queue size.
const TXQ: usize = 16 * 1024;

/// Bytes waiting for the UARTs.
struct TxQueue {
    buf: [u8; TXQ],
    start: usize,
    len: usize,
    /// Lines dropped because the queue was full.
    dropped: u64,
}

impl TxQueue {
    /// Bytes `bytes` take in the queue ("\n" becomes "\r\n").
    fn cost(bytes: &[u8]) -> usize {
        bytes.len() + bytes.iter().filter(|&&b| b == b'\n').count()
    }

    fn put(&mut self, b: u8) {
        self.buf[(self.start + self.len) % TXQ] = b;
        self.len += 1;
    }

    /// Queue `bytes` whole if the queue stays within `limit` bytes; else
    /// drop them (counted).
    fn push(&mut self, bytes: &[u8], limit: usize) {
        if self.dropped > 0 {
            let mut note = FixedBuf::<96>::default();
            let _ = writeln!(
                note,
                "[console: {} line(s) dropped: serial port busy]",
                self.dropped
            );
            let n = note.as_bytes();
            if self.len + Self::cost(n) + Self::cost(bytes) <= limit {
                self.dropped = 0;
                self.push_raw(n);
            }
        }
        if self.len + Self::cost(bytes) > limit {
            self.dropped += 1;
            return;
        }
        self.push_raw(bytes);
    }

    fn push_raw(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if b == b'\n' {
                self.put(b'\r');
            }
            self.put(b);
        }
    }

    /// Send what the UARTs take now (a FIFO's worth each time they are
    /// empty), without waiting; with `wait`, everything (bounded per byte).
    fn drain(&mut self, uarts: &[Option<Uart>; 2], wait: bool) {
        while self.len > 0 {
            if !wait && !uarts.iter().flatten().all(|u| u.tx_empty()) {
                return;
            }
            let n = self.len.min(Uart::FIFO);
            for i in 0..n {
                let b = self.buf[(self.start + i) % TXQ];
                for u in uarts.iter().flatten() {
                    if wait {
                        u.put(b);
                    } else {
                        u.put_now(b);
                    }
                }
            }
            self.start = (self.start + n) % TXQ;
            self.len -= n;
        }
    }
}

struct Console {
    ring: Option<ConsoleRing<'static>>,
    uarts: [Option<Uart>; 2],
    loglvl: LogLevel,
    timestamps: bool,
    /// dom0's output also goes into the ring (`console_to_ring`).
    to_ring: bool,
    /// `guest_console_ratelimit=`.
    guest_rate: (u32, u64),
    conswitch: hvcore::cmdline::ConSwitch,
    tx: TxQueue,
}

static CONSOLE: spin::Mutex<Console> = spin::Mutex::new(Console {
    ring: None,
    uarts: [None, None],
    loglvl: LogLevel::Info,
    timestamps: true,
    to_ring: false,
    guest_rate: hvcore::cmdline::GUEST_CONSOLE_RATELIMIT,
    conswitch: hvcore::cmdline::ConSwitch {
        letter: b'a',
        stay_with_xen: false,
    },
    tx: TxQueue {
        buf: [0; TXQ],
        start: 0,
        len: 0,
        dropped: 0,
    },
});

static LOGGER: Logger = Logger;
static READY: AtomicBool = AtomicBool::new(false);

/// Bring up COM1 with defaults and the boot ring, and install the logger.
pub fn init_early() {
    let mut c = CONSOLE.lock();
    c.uarts[0] = Some(Uart::init(&hvcore::cmdline::SerialConfig::COM1));
    // SAFETY: BOOT_RING is used only here, once, as the ring's storage.
    let buf: &'static mut [u8] = unsafe {
        core::slice::from_raw_parts_mut((&raw mut BOOT_RING).cast::<u8>(), BOOT_RING_SIZE)
    };
    c.ring = Some(ConsoleRing::new(buf));
    drop(c);
    // `set_logger` fails only if called twice; the early console is set up once.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(log::LevelFilter::Trace);
    READY.store(true, Ordering::Release);
}

/// Apply the command line: serial ports and verbosity.
pub fn configure(o: &Options) {
    let mut c = CONSOLE.lock();
    c.uarts = [
        o.console.com1.then(|| Uart::init(&o.com1)),
        o.console.com2.then(|| Uart::init(&o.com2)),
    ];
    c.loglvl = o.loglvl;
    c.timestamps = o.console_timestamps;
    c.to_ring = o.console_to_ring;
    c.guest_rate = o.guest_console_ratelimit;
    c.conswitch = o.conswitch;
}

/// `console_to_ring`.
pub fn to_ring() -> bool {
    CONSOLE.lock().to_ring
}

/// `guest_console_ratelimit=`.
pub fn guest_rate() -> (u32, u64) {
    CONSOLE.lock().guest_rate
}

/// The serial input switch (`conswitch=`).
pub fn conswitch() -> hvcore::cmdline::ConSwitch {
    CONSOLE.lock().conswitch
}

/// Send queued serial output the UARTs take now (the timer tick calls this;
/// it does nothing if the console is busy).
pub fn poll() {
    if let Some(mut c) = CONSOLE.try_lock() {
        let Console { tx, uarts, .. } = &mut *c;
        tx.drain(uarts, false);
    }
}

/// Send every queued byte, waiting for the UARTs (bounded per byte): before
/// the machine stops.
/// Gives up after a bounded wait for the console lock (a stopped CPU may
/// hold it).
pub fn flush() {
    for _ in 0..10_000_000u64 {
        if let Some(mut c) = CONSOLE.try_lock() {
            let Console { tx, uarts, .. } = &mut *c;
            tx.drain(uarts, true);
            return;
        }
        core::hint::spin_loop();
    }
}

/// A line a domU wrote (or dom0 with `console_to_ring`): `(dN) [time] text`
/// into the ring's guest region and to the serial console (at loglvl info
/// and above). `suppressed`: lines the rate limit dropped before it.
pub fn guest_line(domid: u16, line: &[u8], suppressed: u32) {
    let now = crate::time::now_ns();
    let mut text = FixedBuf::<{ MAX_LINE + 128 }>::default();
    if suppressed > 0 {
        let _ = hvcore::guestcons::write_suppressed_note(&mut text, domid, suppressed);
    }
    let note_len = text.as_bytes().len();
    let _ = hvcore::guestcons::write_guest_line(&mut text, domid, Some(now), line);
    let mut c = CONSOLE.lock();
    if let Some(r) = c.ring.as_mut() {
        r.write_guest(text.as_bytes());
    }
    if Level::Info.enabled_at(c.loglvl) {
        let bytes = text.as_bytes();
        let mut plain = FixedBuf::<{ MAX_LINE + 128 }>::default();
        let out = if c.timestamps {
            bytes
        } else {
            let _ = plain.write_str(core::str::from_utf8(&bytes[..note_len]).unwrap_or(""));
            let _ = hvcore::guestcons::write_guest_line(&mut plain, domid, None, line);
            plain.as_bytes()
        };
        let Console { tx, uarts, .. } = &mut *c;
        tx.push(out, TXQ / 2);
        tx.drain(uarts, false);
    }
}

/// The hardware domain's output as it wrote it: serial console only.
pub fn hwdom_raw(bytes: &[u8]) {
    let mut c = CONSOLE.lock();
    let Console { tx, uarts, .. } = &mut *c;
    tx.push(bytes, TXQ / 2);
    tx.drain(uarts, false);
}

/// Move the ring to a heap buffer of `size` bytes (`conring_size=`), keeping
/// its content. If the heap cannot provide it, the current ring stays.
pub fn resize_ring(size: usize) -> hvcore::Result<()> {
    if CONSOLE
        .lock()
        .ring
        .as_ref()
        .is_none_or(|r| r.capacity() == size)
    {
        return Ok(());
    }
    let mut v: alloc::vec::Vec<u8> = alloc::vec::Vec::new();
    v.try_reserve_exact(size).map_err(|_| {
        hvcore::err!(
            NoMemory,
            "cannot allocate a {size}-byte console ring; keeping the boot ring"
        )
    })?;
    v.resize(size, 0);
    let buf: &'static mut [u8] = v.leak();
    if let Some(r) = CONSOLE.lock().ring.as_mut() {
        r.migrate(buf);
    }
    Ok(())
}

/// Console ring capacity and bytes written so far.
pub fn ring_stats() -> (usize, u64) {
    let c = CONSOLE.lock();
    c.ring.as_ref().map_or((0, 0), |r| (r.capacity(), r.head()))
}

/// Oldest readable position of the ring.
pub fn tail() -> u64 {
    CONSOLE.lock().ring.as_ref().map_or(0, |r| r.tail())
}

/// Position after the newest byte of the ring.
pub fn head() -> u64 {
    CONSOLE.lock().ring.as_ref().map_or(0, |r| r.head())
}

/// Serial console input waiting in the UARTs (CONSOLEIO_read).
pub fn input(buf: &mut [u8]) -> usize {
    let c = CONSOLE.lock();
    let mut n = 0;
    for u in c.uarts.iter().flatten() {
        while n < buf.len() {
            match u.get() {
                Some(b) => {
                    buf[n] = b;
                    n += 1;
                }
                None => break,
            }
        }
    }
    n
}

/// Read the console ring from position `from` (see [`ConsoleRing::read`]).
pub fn read(from: u64, out: &mut [u8]) -> ReadResult {
    let c = CONSOLE.lock();
    match c.ring.as_ref() {
        Some(r) => r.read(from, out),
        None => ReadResult {
            len: 0,
            start: from,
            next: from,
            lost: 0,
        },
    }
}

/// Forget the ring's content before position `upto` (what `xl dmesg -c` read).
pub fn clear_to(upto: u64) {
    if let Some(r) = CONSOLE.lock().ring.as_mut() {
        r.clear_to(upto);
    }
}

impl Console {
    fn emit(&mut self, line: &[u8], ts_len: usize, level: Level) {
        if let Some(r) = self.ring.as_mut() {
            r.write(line);
        }
        if level.enabled_at(self.loglvl) {
            let out = if self.timestamps {
                line
            } else {
                &line[ts_len..]
            };
            self.tx.push(out, TXQ);
            self.tx.drain(&self.uarts, false);
        }
    }
}

fn format(level: Level, args: core::fmt::Arguments<'_>) -> (FixedBuf<MAX_LINE>, usize) {
    let mut line = FixedBuf::<MAX_LINE>::default();
    let _ = hvcore::logfmt::write_prefix(&mut line, crate::time::now_ns(), level);
    let ts_len = line.as_bytes().len().min(15);
    let _ = line.write_fmt(args);
    let _ = line.write_char('\n');
    (line, ts_len)
}

struct Logger;

impl log::Log for Logger {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let level = match record.level() {
            log::Level::Error => Level::Error,
            log::Level::Warn => Level::Warn,
            log::Level::Info => Level::Info,
            log::Level::Debug => Level::Debug,
            log::Level::Trace => Level::Trace,
        };
        let (mut line, ts_len) = format(level, *record.args());
        CONSOLE.lock().emit(line.as_bytes(), ts_len, level);
    }

    fn flush(&self) {}
}

/// Write a line from a fatal path: never blocks for long on the console lock
/// (it may be held by the code that faulted, or by a CPU that was stopped);
/// after a bounded wait the lock is broken.
pub fn emergency(args: core::fmt::Arguments<'_>) {
    if !READY.load(Ordering::Acquire) {
        // Before init_early: raw COM1.
        let u = Uart::init(&hvcore::cmdline::SerialConfig::COM1);
        let mut b = FixedBuf::<MAX_LINE>::default();
        let _ = b.write_fmt(args);
        let _ = b.write_char('\n');
        u.write(b.as_bytes());
        return;
    }
    let (mut line, ts_len) = format(Level::Error, args);
    let mut guard = None;
    for _ in 0..50_000_000u64 {
        if let Some(g) = CONSOLE.try_lock() {
            guard = Some(g);
            break;
        }
        core::hint::spin_loop();
    }
    let mut g = match guard {
        Some(g) => g,
        None => {
            // SAFETY: we are on a fatal path with the other CPUs stopped; the
            // holder will never release the lock, and the console state is
            // consistent between the ring's and UART's individual operations.
            unsafe { CONSOLE.force_unlock() };
            CONSOLE.lock()
        }
    };
    // Make room first: a fatal line is never dropped for a full queue.
    {
        let Console { tx, uarts, .. } = &mut *g;
        tx.drain(uarts, true);
    }
    // Fatal output is shown whatever loglvl says.
    let saved = g.loglvl;
    g.loglvl = LogLevel::All;
    g.emit(line.as_bytes(), ts_len, Level::Error);
    g.loglvl = saved;
    let Console { tx, uarts, .. } = &mut *g;
    tx.drain(uarts, true);
}

/// `emergency` with format arguments.
#[macro_export]
macro_rules! emergency {
    ($($arg:tt)*) => { $crate::console::emergency(format_args!($($arg)*)) };
}
