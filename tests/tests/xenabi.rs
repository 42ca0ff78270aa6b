//! Issue 10 §3, §6, §7: Xen 4.17's time, HVM parameter, memory and console
//! ABI as a boot-built domU sees it. (The single-shot timer's upcall and a
//! past deadline firing at once: tests/tests/domains.rs, role `timer`.)

use std::time::Duration;
use warden_tests::Boot;

const DOMU: &str = "user_1:vm_r:domU_t";

/// The tests of this file boot one at a time (the time test measures
/// host time; a concurrent boot would only add noise).
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// HVM parameters refused and allowed per Xen's rules (state unchanged on
/// refusal), the memory map, ballooning out and in with counts, and the
/// console ring Warden serves copied out as `(d1)` lines.
#[test]
fn params_memory_map_balloon_and_the_console_ring() {
    let _one = one_at_a_time();
    let o = Boot::new()
        .guest("role=wait-dom0 ok=1")
        .guest(&format!(
            "domain domid=1 label={DOMU} mem=8M -- role=xen-abi"
        ))
        .run();
    o.expect_dom0_poweroff()
        .guest_says(1, "RESULT xen-abi: PASS")
        .guest_says(1, "xenabi: hello through the console ring")
        .lacks("CHECK FAIL")
        .lacks("avc:  denied");
}

fn time_boot(sleep_s: u64) -> (Duration, warden_tests::Outcome) {
    // Timed by the serial lines' arrival, from QEMU's start to its last
    // line: not the wait for a QEMU slot, which long tests beside it make
    // minutes (the CI run where a 0 s boot "took" 48 s and a 20 s one 280 s).
    let b = Boot::new()
        .guest("role=wait-dom0 ok=1")
        .guest(&format!(
            "domain domid=1 label={DOMU} vcpus=2 -- role=xen-time sleep={sleep_s}"
        ))
        .timeout(Duration::from_secs(600));
    let o = b.run();
    let last = o.lines.last().map_or(Duration::ZERO, |(t, _)| *t);
    (last, o)
}

/// The PV clock: seqlocked records, the runstate area kept for real, the
/// secondary time area, monotonic across vCPUs; and measured against the
/// host: a boot that sleeps 20 s of system time lasts at least 18 s of host
/// time (the clock does not run fast), and at most 30 s longer than the
/// same boot sleeping 0 s (it does not run slow; generous for TCG on a
/// loaded host).
#[test]
fn pvclock_runstate_and_time_against_the_host() {
    let _one = one_at_a_time();
    let (base, o) = time_boot(0);
    o.expect_dom0_poweroff()
        .guest_says(1, "RESULT xen-time: PASS")
        .lacks("CHECK FAIL");
    // The wall clock (shared_info) is the host's UTC, give or take the
    // boot's duration.
    let host = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let wall: i64 = o
        .serial
        .lines()
        .find_map(|l| l.split("xen-time: wallclock ").nth(1))
        .and_then(|w| w.trim().parse().ok())
        .expect("the guest printed its wall clock");
    assert!(
        (host - 600..=host + 60).contains(&wall),
        "guest wall clock {wall}, host {host}"
    );
    let (long, o) = time_boot(20);
    o.expect_dom0_poweroff()
        .guest_says(1, "RESULT xen-time: PASS")
        .lacks("CHECK FAIL");
    for l in o
        .serial
        .lines()
        .filter(|l| l.contains("TSC:") || l.contains("xen-time: slept"))
    {
        eprintln!("{l}");
    }
    let extra = long.as_secs_f64() - base.as_secs_f64();
    eprintln!("xen-time: 0 s boot {base:?}, 20 s boot {long:?}: {extra:.2} s more");
    assert!(
        long.as_secs_f64() >= 18.0,
        "a boot sleeping 20 s of system time lasted {long:?} of host time"
    );
    assert!(
        extra <= 30.0,
        "20 s of guest system time took {extra:.2} s more host time"
    );
}
