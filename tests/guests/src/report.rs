//! Reporting: every check prints one line; a scenario ends with a power-off
//! when every check passed (the harness's success code, when this guest is
//! dom0) or a crash when one failed.

use core::sync::atomic::{AtomicU32, Ordering};
use warden_guest::println;

static FAILED: AtomicU32 = AtomicU32::new(0);
static PASSED: AtomicU32 = AtomicU32::new(0);

/// Record a check: `CHECK ok <what>` or `CHECK FAIL <what>: <detail>`.
pub fn check(ok: bool, what: core::fmt::Arguments<'_>) -> bool {
    if ok {
        PASSED.fetch_add(1, Ordering::Relaxed);
        println!("CHECK ok {what}");
    } else {
        FAILED.fetch_add(1, Ordering::Relaxed);
        println!("CHECK FAIL {what}");
    }
    ok
}

/// `check` with format arguments.
#[macro_export]
macro_rules! check {
    ($cond:expr, $($arg:tt)*) => { $crate::report::check($cond, format_args!($($arg)*)) };
}

/// Checks failed so far.
pub fn failures() -> u32 {
    FAILED.load(Ordering::Relaxed)
}

/// End the scenario: power off if everything passed, else crash.
pub fn finish(name: &str) -> ! {
    let (p, f) = (PASSED.load(Ordering::Relaxed), failures());
    if f == 0 {
        println!("RESULT {name}: PASS ({p} checks)");
        warden_guest::exit::poweroff()
    } else {
        println!("RESULT {name}: FAIL ({f} of {} checks failed)", p + f);
        warden_guest::exit::crash()
    }
}
