//! Issue 6: signed live patching inside the hypervisor, end to end. dom0
//! (the test guest, role `livepatch-dom0`) drives the `xen-livepatch`
//! commands of the guest runtime with payload files given as boot modules;
//! domUs (`lp-load`) call xen_version in loops and crash on an answer no
//! payload gives. Payloads: `warden_tests::livepatch` (built by `livepatch
//! build` from the diffs in tests/livepatch/, signed with the build's
//! development key; refused ones derived from them).

use std::time::Duration;
use warden_tests::livepatch::{Payloads, REFUSALS, payloads};
use warden_tests::{Boot, test_image};

const LONG: Duration = Duration::from_secs(900);

fn p() -> Payloads {
    payloads(&test_image())
}

#[test]
fn hello_changes_xen_version_without_reboot_while_guests_run_revert_restores_and_policy_denies() {
    let p = p();
    let o = Boot::new()
        .cmdline("loglvl=all")
        .guest("role=livepatch-dom0 scenario=hello load=1 timeout_ms=3000")
        .module(p.file("hello.livepatch"), "hello.livepatch")
        .guest("domain domid=1 name=load vcpus=1 mem=16M -- role=lp-load")
        .timeout(LONG);
    let o = o.run();
    o.expect_dom0_poweroff()
        .contains("RESULT livepatch-dom0: PASS")
        .lacks("CHECK FAIL")
        .lacks("lp-load: FAIL")
        .contains("Live patching: 1 trusted key(s)")
        .contains("Uploading hello... completed")
        .contains("Applying hello... completed")
        .contains("Reverting hello... completed")
        .contains("Unloading hello... completed")
        .contains("hello                                   | APPLIED")
        .contains("livepatch: hello: uploaded (")
        .contains("livepatch: hello: APPLY completed (build-id ")
        .contains("livepatch: hello: REVERT completed (build-id ")
        .contains("all CPUs held ")
        .contains("livepatch: W^X holds: the patched text is still mapped read-only and executable")
        .contains("livepatch: hello: UNLOAD refused: payload is applied: revert it first")
        .lacks("W^X broken");
    // The policy denial: audited, and nothing was uploaded (checked by dom0).
    o.line_with_all(&[
        "avc:  denied  {",
        "livepatch_upload",
        "scontext=system_u:system_r:dom0_t",
        "tclass=xen2",
    ]);
    // Both applies and both reverts logged with the key id.
    assert_eq!(o.lines_with("livepatch: hello: APPLY completed").len(), 2);
    assert_eq!(o.lines_with("livepatch: hello: REVERT completed").len(), 2);
}

#[test]
fn every_refused_upload_has_its_own_error_and_log_line_and_changes_nothing() {
    let p = p();
    let refuse: Vec<String> = REFUSALS.iter().map(|(f, e)| format!("{f}:{e}")).collect();
    let mut b = Boot::new()
        .cmdline("loglvl=all")
        .guest(&format!(
            "role=livepatch-dom0 scenario=refusals timeout_ms=3000 refuse={}",
            refuse.join(",")
        ))
        .module(p.file("hello.livepatch"), "hello.livepatch");
    for (f, _) in REFUSALS {
        b = b.module(p.file(f), f);
    }
    let o = b.memory(768).timeout(LONG).run();
    o.expect_dom0_poweroff()
        .contains("RESULT livepatch-dom0: PASS")
        .lacks("CHECK FAIL");
    for (name, line) in [
        ("unsigned", "signature check failed"),
        ("flipped", "signature check failed"),
        ("otherkey", "signature check failed"),
        ("otherbuild", "hypervisor build-id check failed"),
        ("nodep", "dependency check failed"),
        ("truncated", "format check failed"),
        ("badsym", "symbols check failed: unknown symbol"),
        ("badbytes", "expected bytes check failed"),
        ("small", "functions check failed"),
        ("huge", "size check failed"),
    ] {
        o.line_with_all(&[&format!("livepatch: {name}: upload refused, "), line]);
    }
    o.contains("livepatch: nosuch: APPLY refused: no payload of that name")
        .contains("livepatch: hello: APPLY failed (build-id ")
        .line_with_all(&[
            "livepatch: hello: APPLY failed (build-id ",
            "timed out after 1 ns waiting for CPUs (",
            "nothing changed",
        ])
        .contains("livepatch: hello: UNLOAD refused: payload is applied");
}

#[test]
fn stacked_payloads_and_replace() {
    let p = p();
    let o = Boot::new()
        .cmdline("loglvl=all")
        .guest("role=livepatch-dom0 scenario=stack load=1 timeout_ms=3000")
        .module(p.file("hello.livepatch"), "hello.livepatch")
        .module(p.file("bye.livepatch"), "bye.livepatch")
        .module(p.file("replace.livepatch"), "replace.livepatch")
        .module(p.file("nop.livepatch"), "nop.livepatch")
        .guest("domain domid=1 name=load vcpus=1 mem=16M -- role=lp-load")
        .timeout(LONG);
    let o = o.run();
    o.expect_dom0_poweroff()
        .contains("RESULT livepatch-dom0: PASS")
        .lacks("CHECK FAIL")
        .lacks("lp-load: FAIL")
        .contains("livepatch: bye: APPLY completed")
        .contains("livepatch: replace: REPLACE completed")
        .contains(
            "livepatch: hello: REVERT refused: not the top of the applied stack (top is bye)",
        );
    // REPLACE: one rendezvous for reverting bye and hello and applying replace.
    let rv = o.lines_with("livepatch: rendezvous of");
    assert!(
        rv.iter()
            .any(|l| l.contains("byte(s) written at 3 site(s)")),
        "REPLACE writes three sites in one rendezvous: {rv:#?}"
    );
}

#[test]
fn apply_and_revert_a_hundred_times_while_guests_call_xen_version_on_every_cpu() {
    let p = p();
    let o = Boot::new()
        .cmdline("loglvl=info")
        .guest("role=livepatch-dom0 scenario=load rounds=100 load=1")
        .module(p.file("hello.livepatch"), "hello.livepatch")
        .guest("domain domid=1 name=load vcpus=2 mem=16M -- role=lp-load")
        .timeout(LONG);
    let o = o.run();
    o.expect_dom0_poweroff()
        .contains("RESULT livepatch-dom0: PASS")
        .lacks("CHECK FAIL")
        .lacks("lp-load: FAIL")
        .contains("livepatch-dom0: ")
        .contains("lp-load: ");
}
