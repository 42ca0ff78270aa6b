//! Live patching: dom0 drives the operator commands (`warden_guest::livepatch`)
//! with payload files handed to it as boot modules (module command line =
//! file name); domUs run `xen_version` loops and check every answer is one
//! version's or another's.

use crate::check;
use crate::scenarios::ids;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use warden_abi::errno::{EACCES, EAGAIN};
use warden_abi::sysctl::livepatch as lp;
use warden_abi::version::{EXTRAVERSION, ExtraVersion};
use warden_guest::hypercall::{self as hc, Errno};
use warden_guest::livepatch as cmd;
use warden_guest::println;
use warden_guest::start::Boot;
use warden_guest::time::now_ns;
use warden_guest::util::cstr;

/// Every extraversion a test payload may give.
const KNOWN: &[&str] = &["-warden", "Hello World", "Bye World", "Replace World"];

/// XENVER_extraversion as text.
pub fn extraversion() -> String {
    let mut v = ExtraVersion::default();
    match hc::xen_version_into(EXTRAVERSION, &mut v) {
        Ok(_) => String::from(cstr(&v.text)),
        Err(e) => alloc::format!("<error {e}>"),
    }
}

fn file<'a>(boot: &'a Boot, name: &str) -> Option<&'a [u8]> {
    boot.modules().find(|(_, c)| *c == name).map(|(d, _)| d)
}

/// Run an operator command line; check it succeeded (or failed with `want`).
fn run(boot: &'static Boot, line: &str, want: Result<(), i32>) -> bool {
    println!("# xen-livepatch {line}");
    let files = |n: &str| file(boot, n);
    let r = cmd::run(line, &files).map_err(|e| e.0);
    check!(
        r == want,
        "'{line}' -> {}",
        match r {
            Ok(()) => String::from("ok"),
            Err(e) => alloc::format!("-{e} ({})", Errno(e).name()),
        }
    )
}

fn names() -> Vec<(String, u32)> {
    cmd::entries()
        .map(|(v, _)| v.into_iter().map(|(n, s)| (n, s.state)).collect())
        .unwrap_or_default()
}

fn enable_dom0_livepatch() {
    check!(
        hc::flask_setbool("dom0_livepatch", true, true).is_ok(),
        "setbool dom0_livepatch=1 (committed)"
    );
}

fn cpu_time(d: u16) -> u64 {
    hc::getdomaininfo(d).map(|i| i.cpu_time).unwrap_or(0)
}

/// The domUs in `load=` are still running (not crashed, not shut down).
fn load_alive(boot: &Boot) {
    for d in ids(boot, "load") {
        let i = hc::getdomaininfo(d);
        let alive = matches!(i, Ok(ref i) if i.flags & warden_abi::domctl::DOMINF_SHUTDOWN == 0);
        check!(alive, "load guest d{d} still running");
    }
}

/// dom0 of the live-patch scenarios (`scenario=`).
pub fn dom0(boot: &'static Boot) -> ! {
    // `timeout_ms=`: the rendezvous timeout of actions (default 30 ms). Under
    // TCG on a loaded host a vCPU thread may not run for longer than that.
    let ms: u32 = boot
        .arg("timeout_ms")
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    cmd::set_timeout_ns(ms.saturating_mul(1_000_000));
    match boot.arg("scenario").unwrap_or("hello") {
        "hello" => hello(boot),
        "stack" => stack(boot),
        "refusals" => refusals(boot),
        "load" => under_load(boot),
        "bench" => bench(boot),
        s => {
            println!("livepatch-dom0: unknown scenario '{s}'");
        }
    }
    for d in ids(boot, "load") {
        let _ = hc::destroydomain(d);
    }
    crate::report::finish("livepatch-dom0")
}

/// Policy denial, then hello: upload, apply (the extraversion changes while
/// the load guests run), revert, apply again, revert, unload.
fn hello(boot: &'static Boot) {
    let before = extraversion();
    check!(before == "-warden", "extraversion before: {before:?}");
    // Enforcing, dom0_livepatch off: denied, nothing uploaded.
    let hello = file(boot, "hello.livepatch").unwrap_or(&[]);
    check!(!hello.is_empty(), "hello.livepatch is a boot module");
    let r = hc::lp_upload("hello", hello);
    check!(
        r == Err(Errno(EACCES)),
        "upload denied by the policy: {r:?}"
    );
    enable_dom0_livepatch();
    check!(names().is_empty(), "denied upload left nothing loaded");
    check!(extraversion() == "-warden", "denied upload changed nothing");

    run(boot, "upload hello hello.livepatch", Ok(()));
    check!(
        names() == [(String::from("hello"), lp::STATE_CHECKED)],
        "hello CHECKED: {:?}",
        names()
    );
    check!(extraversion() == "-warden", "upload alone changes nothing");
    let loads = ids(boot, "load");
    let t0: Vec<u64> = loads.iter().map(|&d| cpu_time(d)).collect();
    run(boot, "apply hello", Ok(()));
    let after = extraversion();
    check!(
        after == "Hello World",
        "extraversion after apply: {after:?}"
    );
    run(boot, "list", Ok(()));
    check!(
        names() == [(String::from("hello"), lp::STATE_APPLIED)],
        "hello APPLIED"
    );
    run(boot, "revert hello", Ok(()));
    check!(
        extraversion() == "-warden",
        "revert restores: {:?}",
        extraversion()
    );
    run(boot, "apply hello", Ok(()));
    check!(
        extraversion() == "Hello World",
        "applied again: {:?}",
        extraversion()
    );
    // The load guests kept running through it all.
    for (i, &d) in loads.iter().enumerate() {
        let t1 = cpu_time(d);
        check!(
            t1 > t0[i],
            "load guest d{d} ran meanwhile ({} -> {} ns)",
            t0[i],
            t1
        );
    }
    load_alive(boot);
    run(boot, "unload hello", Err(warden_abi::errno::EBUSY));
    run(boot, "revert hello", Ok(()));
    run(boot, "unload hello", Ok(()));
    check!(names().is_empty(), "nothing loaded at the end");
    check!(extraversion() == "-warden", "back to the original");
}

/// Stacked payloads (bye on hello), REPLACE, NOP and hooks.
fn stack(boot: &'static Boot) {
    enable_dom0_livepatch();
    // bye depends on hello: refused while hello is not applied.
    run(
        boot,
        "upload bye bye.livepatch",
        Err(warden_abi::errno::ENOLINK),
    );
    run(boot, "upload hello hello.livepatch", Ok(()));
    run(boot, "upload bye bye.livepatch", Ok(()));
    run(boot, "apply bye", Err(warden_abi::errno::ENOLINK));
    check!(extraversion() == "-warden", "refused apply changed nothing");
    run(boot, "apply hello", Ok(()));
    run(boot, "apply bye", Ok(()));
    check!(
        extraversion() == "Bye World",
        "stacked: {:?}",
        extraversion()
    );
    run(boot, "revert hello", Err(warden_abi::errno::EBUSY));
    run(boot, "list", Ok(()));
    // REPLACE reverts the whole stack and applies, in one rendezvous.
    run(boot, "upload replace replace.livepatch", Ok(()));
    run(boot, "replace replace", Ok(()));
    check!(
        extraversion() == "Replace World",
        "replaced: {:?}",
        extraversion()
    );
    check!(
        names()
            == [
                (String::from("hello"), lp::STATE_CHECKED),
                (String::from("bye"), lp::STATE_CHECKED),
                (String::from("replace"), lp::STATE_APPLIED)
            ],
        "after REPLACE: {:?}",
        names()
    );
    run(boot, "revert replace", Ok(()));
    check!(extraversion() == "-warden", "reverted REPLACE");
    for n in ["replace", "bye", "hello"] {
        run(boot, &alloc::format!("unload {n}"), Ok(()));
    }
    // A NOP patch with hooks (each logs itself once per action; the test
    // counts the lines). REPLACE is refused with pre/post hooks, as Xen.
    run(boot, "upload nop nop.livepatch", Ok(()));
    run(boot, "replace nop", Err(warden_abi::errno::EOPNOTSUPP));
    run(boot, "apply nop", Ok(()));
    run(boot, "revert nop", Ok(()));
    run(boot, "unload nop", Ok(()));
    check!(names().is_empty(), "nothing loaded at the end");
    check!(extraversion() == "-warden", "back to the original");
    load_alive(boot);
}

/// Every refusal: its errno, and nothing changed.
fn refusals(boot: &'static Boot) {
    enable_dom0_livepatch();
    // (file, errno) from the test's command line: `refuse=FILE:ERRNO,...`.
    let list: Vec<(&str, i32)> = boot
        .arg("refuse")
        .unwrap_or("")
        .split(',')
        .filter_map(|x| {
            let (f, e) = x.split_once(':')?;
            Some((f, e.parse().ok()?))
        })
        .collect();
    check!(!list.is_empty(), "refusal cases given: {}", list.len());
    for (f, e) in &list {
        let name = cmd::name_of(f);
        run(boot, &alloc::format!("upload {name} {f}"), Err(*e));
        check!(names().is_empty(), "{f}: nothing loaded");
    }
    check!(extraversion() == "-warden", "refusals changed nothing");
    // Actions: unknown name; unload of an applied payload.
    run(boot, "apply nosuch", Err(warden_abi::errno::ENOENT));
    run(boot, "upload hello hello.livepatch", Ok(()));
    // A rendezvous timeout (1 ns: the other CPUs cannot arrive in time)
    // aborts cleanly: -EBUSY, still CHECKED, the text unchanged.
    let t = cmd::timeout_ns();
    cmd::set_timeout_ns(1);
    run(boot, "apply hello", Err(warden_abi::errno::EBUSY));
    cmd::set_timeout_ns(t);
    check!(
        names() == [(String::from("hello"), lp::STATE_CHECKED)],
        "timed-out apply left hello CHECKED"
    );
    check!(
        extraversion() == "-warden",
        "timed-out apply changed nothing"
    );
    run(boot, "apply hello", Ok(()));
    run(boot, "unload hello", Err(warden_abi::errno::EBUSY));
    check!(
        names() == [(String::from("hello"), lp::STATE_APPLIED)],
        "refused unload changed nothing"
    );
    check!(extraversion() == "Hello World", "still applied");
    run(boot, "revert hello", Ok(()));
    run(boot, "unload hello", Ok(()));
    // `load FILE`: upload under the file's base name, then apply.
    run(boot, "load hello.livepatch", Ok(()));
    check!(
        names() == [(String::from("hello"), lp::STATE_APPLIED)] && extraversion() == "Hello World",
        "load uploaded and applied hello"
    );
    run(boot, "revert hello", Ok(()));
    run(boot, "unload hello", Ok(()));
    check!(names().is_empty(), "nothing loaded at the end");
}

/// Apply and revert `rounds=` times while the load guests run xen_version
/// loops on every CPU.
fn under_load(boot: &'static Boot) {
    enable_dom0_livepatch();
    let rounds: u32 = boot
        .arg("rounds")
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    run(boot, "upload hello hello.livepatch", Ok(()));
    let start = now_ns();
    let mut ok = 0u32;
    let mut busy = 0u32;
    for _ in 0..rounds * 2 {
        let applied = matches!(hc::lp_get("hello"), Ok(s) if s.state == lp::STATE_APPLIED);
        let (c, want) = if applied {
            (lp::ACTION_REVERT, lp::STATE_CHECKED)
        } else {
            (lp::ACTION_APPLY, lp::STATE_APPLIED)
        };
        let r = hc::lp_action("hello", c, cmd::timeout_ns(), 0).map_err(|e| e.0);
        let st = cmd::wait("hello");
        match (r, st) {
            (Ok(_), Ok(s)) if s.rc == 0 && s.state == want => ok += 1,
            // A rendezvous timeout changes nothing (the next round retries).
            (Ok(_), Ok(s)) if s.rc == -warden_abi::errno::EBUSY => busy += 1,
            (Err(EAGAIN | warden_abi::errno::EBUSY), _) => busy += 1,
            (r, s) => {
                check!(false, "action {c}: {r:?}, then {s:?}");
                return;
            }
        }
        let v = extraversion();
        let expect = if matches!(hc::lp_get("hello"), Ok(s) if s.state == lp::STATE_APPLIED) {
            "Hello World"
        } else {
            "-warden"
        };
        if v != expect {
            check!(false, "extraversion {v:?}, expected {expect:?}");
            return;
        }
    }
    let ms = (now_ns() - start) / 1_000_000;
    println!(
        "livepatch-dom0: {ok} of {} actions completed, {busy} refused as busy or timed out (state unchanged), in {ms} ms",
        rounds * 2
    );
    check!(
        ok + busy == rounds * 2,
        "{} apply/revert actions ran",
        rounds * 2
    );
    check!(ok > 0, "actions completed under load: {ok}");
    let st = hc::lp_get("hello");
    if matches!(st, Ok(s) if s.state == lp::STATE_APPLIED) {
        run(boot, "revert hello", Ok(()));
    }
    run(boot, "unload hello", Ok(()));
    check!(extraversion() == "-warden", "original at the end");
    load_alive(boot);
}

/// Benchmark: apply + revert `rounds=` times; the hypervisor logs each hold time.
fn bench(boot: &'static Boot) {
    enable_dom0_livepatch();
    let rounds: u32 = boot
        .arg("rounds")
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let hello = file(boot, "hello.livepatch").unwrap_or(&[]);
    // Upload (signature verification) timed from here, per round.
    let mut up = Vec::new();
    for i in 0..rounds {
        let t = now_ns();
        let r = hc::lp_upload("hello", hello);
        up.push(now_ns() - t);
        check!(r.is_ok(), "upload {i}: {r:?}");
        let _ = cmd::apply("hello", false);
        let _ = cmd::revert("hello");
        let _ = cmd::unload("hello");
    }
    up.sort_unstable();
    println!(
        "livepatch-bench: upload of {} bytes (signature verification and every check): median {} us over {rounds}",
        hello.len(),
        up[up.len() / 2] / 1000
    );
}

static CALLS: AtomicU64 = AtomicU64::new(0);
static CHANGES: AtomicU64 = AtomicU64::new(0);

fn spin_versions(_v: u32) -> ! {
    let mut last = String::new();
    loop {
        let v = extraversion();
        if !KNOWN.contains(&v.as_str()) {
            println!("lp-load: FAIL: xen_version returned {v:?}");
            warden_guest::exit::crash()
        }
        if v != last {
            CHANGES.fetch_add(1, Ordering::Relaxed);
            last = v;
        }
        CALLS.fetch_add(1, Ordering::Relaxed);
    }
}

/// A domU calling xen_version(EXTRAVERSION) in a loop on every vCPU; crashes
/// on an answer no payload gives. Reports its counts every 100 ms.
pub fn load(boot: &Boot) -> ! {
    for v in 1..boot.vcpus().min(8) {
        let r = warden_guest::smp::start(v, spin_versions);
        check!(r.is_ok(), "vCPU {v} started: {r:?}");
    }
    let mut last = String::new();
    // Report often: the whole apply/revert run may take little more than a
    // second of guest time, and the host test looks for these lines.
    const REPORT_NS: u64 = 100_000_000;
    let mut next = now_ns() + REPORT_NS;
    loop {
        let v = extraversion();
        if !KNOWN.contains(&v.as_str()) {
            println!("lp-load: FAIL: xen_version returned {v:?}");
            warden_guest::exit::crash()
        }
        if v != last {
            CHANGES.fetch_add(1, Ordering::Relaxed);
            last = v;
        }
        CALLS.fetch_add(1, Ordering::Relaxed);
        if now_ns() > next {
            println!(
                "lp-load: {} calls, {} version changes seen",
                CALLS.load(Ordering::Relaxed),
                CHANGES.load(Ordering::Relaxed)
            );
            next = now_ns() + REPORT_NS;
        }
    }
}
