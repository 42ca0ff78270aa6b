//! The console: the global console ring (every log line, with timestamp and
//! level) and the serial ports, behind the `log` facade.
//!
//! The ring starts on a static 64 KiB buffer so the earliest lines are kept,
//! and moves to a heap buffer of `conring_size=` once the command line is
//! parsed. Readers (`sysctl readconsole` / `xl dmesg` later) use [`read`] with
//! a position they keep, and [`clear`].

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

struct Console {
    ring: Option<ConsoleRing<'static>>,
    uarts: [Option<Uart>; 2],
    loglvl: LogLevel,
    timestamps: bool,
}

static CONSOLE: spin::Mutex<Console> = spin::Mutex::new(Console {
    ring: None,
    uarts: [None, None],
    loglvl: LogLevel::Info,
    timestamps: true,
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

/// Forget the ring's content (`xl dmesg -c`).
pub fn clear() {
    if let Some(r) = CONSOLE.lock().ring.as_mut() {
        r.clear();
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
            for u in self.uarts.iter().flatten() {
                u.write(out);
            }
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
    // Fatal output is shown whatever loglvl says.
    let saved = g.loglvl;
    g.loglvl = LogLevel::All;
    g.emit(line.as_bytes(), ts_len, Level::Error);
    g.loglvl = saved;
}

/// `emergency` with format arguments.
#[macro_export]
macro_rules! emergency {
    ($($arg:tt)*) => { $crate::console::emergency(format_args!($($arg)*)) };
}
