//! Issue 11, item 6: Warden's operator tools from the Linux dom0 with
//! Debian 12's own binaries (the dom0 image of `xtask::dom0img`), FLASK
//! enforcing with the default policy: `xl loadpolicy` of policies built by
//! policy-compiler (and of bad files), FLASK booleans with `flask-get-bool`
//! / `flask-set-bool`, and a signed live patch driven by Debian's
//! `xen-livepatch` while the demo domU runs.
//!
//! One boot serves every check. dom0's initramfs is the image's with a
//! second archive appended: the script below as `/etc/warden-exec` and the
//! files it uses in `/root/ops/` (two compiled policies, two bad policy
//! files, live-patch payloads signed with the test image's development key
//! and refused ones, built as `tests/tests/livepatch.rs` builds them).

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;
use warden_tests::livepatch::payloads;
use warden_tests::{Outcome, policy, policy_variant, replace_in, test_image};

/// Where the script finds its files in dom0.
const DIR: &str = "root/ops";

/// What dom0 runs once the toolstack is up. Each step's output is framed by
/// `== NAME` lines; a command's status is printed as `rc=N`.
const SCRIPT: &str = r#"
cd /root/ops
rc() { echo "rc=$?"; }
echo '== bools default'; flask-get-bool -a; rc
echo '== lp denied'; xen-livepatch upload hello hello.livepatch; rc
echo '== set dom0_livepatch'; flask-set-bool dom0_livepatch 1; rc; flask-get-bool dom0_livepatch; rc
echo '== set unknown bool'; flask-set-bool no_such_bool 1; r=$?; echo; echo "rc=$r"
echo '== flask-getenforce'; flask-getenforce; rc
echo '== flask-setenforce'; flask-setenforce 0; rc; flask-getenforce; flask-setenforce 1; rc; flask-getenforce
echo '== load garbage'; xl loadpolicy garbage.bin; rc
echo '== bools after garbage'; flask-get-bool -a; rc
echo '== setenforce after garbage'; xl setenforce 1; rc
echo '== load B'; xl loadpolicy policy-b.bin; rc
echo '== bools B'; flask-get-bool -a; rc
echo '== setenforce under B'; xl setenforce 1; rc
echo '== load truncated'; flask-loadpolicy truncated.bin; rc
echo '== bools after truncated'; flask-get-bool -a; rc
echo '== setenforce after truncated'; xl setenforce 1; rc
echo '== load A'; flask-loadpolicy policy-a.bin; rc
echo '== bools A'; flask-get-bool -a; rc
echo '== setenforce under A'; xl setenforce 1; rc
echo '== demo'; xl create /etc/xen/demo.cfg; rc
wait-log /var/log/xen/console/guest-demo.log 'demo: userspace up' 600; rc
echo '== demo label'; xl list -Z
echo '== extra before'; cat /sys/hypervisor/version/extra
echo '== lp unsigned'; xen-livepatch upload unsigned unsigned.livepatch; rc
echo '== lp otherkey'; xen-livepatch upload otherkey otherkey.livepatch; rc
echo '== lp flipped'; xen-livepatch upload flipped flipped.livepatch; rc
echo '== lp list refused'; xen-livepatch list; rc
echo '== extra refused'; cat /sys/hypervisor/version/extra
echo '== lp upload'; xen-livepatch upload hello hello.livepatch; rc
echo '== lp list'; xen-livepatch list; rc
echo '== lp apply'; xen-livepatch apply hello; rc
echo '== extra applied'; cat /sys/hypervisor/version/extra; xl info | grep '^xen_extra'
echo '== lp list applied'; xen-livepatch list; rc
echo '== lp revert'; xen-livepatch revert hello; rc
echo '== extra reverted'; cat /sys/hypervisor/version/extra; xl info | grep '^xen_extra'
echo '== lp upload replace'; xen-livepatch upload replace replace.livepatch; rc
echo '== lp apply again'; xen-livepatch apply hello; rc
echo '== extra applied again'; cat /sys/hypervisor/version/extra
echo '== lp replace'; xen-livepatch replace replace; rc
echo '== extra replaced'; cat /sys/hypervisor/version/extra
echo '== lp list replaced'; xen-livepatch list; rc
echo '== lp revert replace'; xen-livepatch revert replace; rc
echo '== extra after replace'; cat /sys/hypervisor/version/extra
echo '== lp unload'; xen-livepatch unload replace; rc; xen-livepatch unload hello; rc
echo '== lp list unloaded'; xen-livepatch list; rc
echo '== lp load'; xen-livepatch load hello.livepatch; rc
echo '== extra loaded'; cat /sys/hypervisor/version/extra
echo '== lp revert loaded'; xen-livepatch revert hello; rc; xen-livepatch unload hello; rc
echo '== extra end'; cat /sys/hypervisor/version/extra
echo '== lp list end'; xen-livepatch list; rc
echo '== demo alive'; xl list
tty=$(xenstore-read /local/domain/$(xl domid demo)/console/tty)
echo 'echo demo-alive-$((6*7))' > "$tty"
wait-log /var/log/xen/console/guest-demo.log 'demo-alive-42' 120; rc
echo '== dmesg'; xl dmesg | sed 's/^/dmesg| /'
echo '== end'
"#;

fn ops_file(name: &str) -> String {
    format!("{DIR}/{name}")
}

/// Policy B: the default policy with a new boolean `dom0ops_demo` (true)
/// and without dom0's `setenforce`.
fn policy_b() -> PathBuf {
    policy_variant("dom0ops-b", |d| {
        replace_in(
            d,
            "policy/booleans",
            "bool guest_argo false;",
            "bool guest_argo false;\n\n# dom0ops test: only in policy B.\nbool dom0ops_demo true;",
        );
        replace_in(
            d,
            "modules/dom0.te",
            "compute_relabel setenforce setbool",
            "compute_relabel setbool",
        );
    })
}

/// dom0's initramfs: the image's, with the script and the files added as
/// `cargo xtask run --dom0 linux --exec CMD --dom0-file FILE:PATH` adds them.
fn initrd(img: &xtask::dom0img::Image) -> PathBuf {
    let p = payloads(&test_image());
    let a = std::fs::read(policy()).expect("the default policy");
    let b = std::fs::read(policy_b()).expect("policy B");
    let mut files = vec![
        (ops_file("policy-a.bin"), a),
        (ops_file("truncated.bin"), b[..b.len() / 2].to_vec()),
        (ops_file("policy-b.bin"), b),
        (
            ops_file("garbage.bin"),
            b"this is not a FLASK policy\n".repeat(40),
        ),
    ];
    for f in ["hello", "replace", "unsigned", "otherkey", "flipped"] {
        let name = format!("{f}.livepatch");
        let bytes = std::fs::read(p.file(&name)).expect("payload");
        files.push((ops_file(&name), bytes));
    }
    xtask::dom0img::initrd_with_files(img, Some(SCRIPT), &files)
        .unwrap_or_else(|e| panic!("dom0's initramfs with the script and files: {e}"))
}

fn boot() -> &'static Outcome {
    static O: OnceLock<Outcome> = OnceLock::new();
    O.get_or_init(|| {
        let initrd = initrd(warden_tests::dom0_image());
        warden_tests::linux_dom0(&initrd, Duration::from_secs(1500)).run()
    })
}

/// The section's status line (`rc=N`, the `n`th of the section).
fn rc(o: &Outcome, name: &str, n: usize) -> i32 {
    let s = o.section(name);
    s.iter()
        .filter_map(|l| l.strip_prefix("rc="))
        .nth(n)
        .unwrap_or_else(|| panic!("{name}: no status #{n}:\n{}", s.join("\n")))
        .parse()
        .expect("a status")
}

/// Lines of the section without Warden's console lines (which interleave
/// with dom0's output on the serial console).
fn out<'a>(o: &'a Outcome, name: &str) -> Vec<&'a str> {
    o.section(name)
        .into_iter()
        .filter(|l| !l.starts_with('['))
        .collect()
}

/// Whether a line of the section contains `s`.
fn has(o: &Outcome, name: &str, s: &str) -> bool {
    o.section(name).iter().any(|l| l.contains(s))
}

fn assert_has(o: &Outcome, name: &str, s: &str) {
    assert!(
        has(o, name, s),
        "{name} lacks '{s}':\n{}",
        o.section(name).join("\n")
    );
}

/// Warden's own console lines containing `s` (not `xl dmesg`'s copies).
fn hv_lines<'a>(o: &'a Outcome, s: &str) -> Vec<&'a str> {
    o.lines_with(s)
        .into_iter()
        .filter(|l| !l.starts_with("dmesg| "))
        .collect()
}

/// `xl dmesg`'s lines containing `s`.
fn ring_lines<'a>(o: &'a Outcome, s: &str) -> Vec<&'a str> {
    o.section("dmesg")
        .into_iter()
        .filter(|l| l.starts_with("dmesg| ") && l.contains(s))
        .collect()
}

/// `flask-get-bool -a`'s answer in a section.
fn bools<'a>(o: &'a Outcome, name: &str) -> Vec<&'a str> {
    out(o, name)
        .into_iter()
        .filter(|l| !l.starts_with("rc="))
        .collect()
}

/// A `xen-livepatch list` row: name and status.
fn lp_rows(o: &Outcome, name: &str) -> Vec<(String, String)> {
    out(o, name)
        .iter()
        .filter(|l| l.contains('|') && !l.starts_with(" ID") && !l.starts_with('-'))
        .map(|l| {
            let c: Vec<&str> = l.split('|').map(str::trim).collect();
            (c[0].to_string(), c[1].to_string())
        })
        .collect()
}

#[test]
fn the_script_ran_to_its_end_and_dom0_powered_off() {
    let o = boot();
    o.expect_dom0_poweroff()
        .contains("Flask:  Starting in enforcing mode.")
        .contains("dom0: toolstack up")
        .contains("== end")
        .contains("dom0: exec status 0")
        .contains("Domain 0 shut down: reason 0 (poweroff)");
    // Every hypercall the tools made was known but Linux's probe of
    // XENPF_get_dom0_console (Xen 4.18's).
    let unknown = o.lines_with("xsm: unknown");
    assert!(
        unknown
            .iter()
            .all(|l| l.contains("xsm: unknown platform_op 64 ")),
        "unknown operations: {unknown:#?}"
    );
}

#[test]
fn xl_loadpolicy_puts_a_compiled_policy_in_force_and_a_bad_file_changes_nothing() {
    let o = boot();
    o.expect_dom0_poweroff();
    let with_lp = [
        "guest_writeconsole: 1",
        "dom0_livepatch: 1",
        "guest_argo: 0",
    ];
    // Garbage: refused with EINVAL and the reason; the default policy, its
    // booleans (dom0_livepatch as set) and dom0's setenforce stay.
    assert_ne!(rc(o, "load garbage", 0), 0);
    assert_has(o, "load garbage", "Unable to load new Flask policy");
    o.line_with_all(&[
        "Flask: policy load from d0 refused: policy load failed at offset 0x0: bad magic",
        "(-22 EINVAL); the policy in force is unchanged",
    ]);
    assert_eq!(bools(o, "bools after garbage"), with_lp);
    assert_eq!(rc(o, "setenforce after garbage", 0), 0);
    // Policy B: loaded and logged; its new boolean is listed, the boolean
    // both policies have keeps its value (as Xen), and dom0 may no longer
    // switch modes: refused with an avc record.
    assert_eq!(rc(o, "load B", 0), 0);
    assert_has(o, "load B", "Successfully loaded policy.");
    let b_size = std::fs::metadata(policy_b()).unwrap().len();
    o.contains(&format!("Flask: policy ({b_size} bytes) loaded by d0"))
        .contains("Flask:  3 users, 4 roles, 46 types, 4 bools");
    assert_eq!(
        bools(o, "bools B"),
        [with_lp[0], with_lp[1], with_lp[2], "dom0ops_demo: 1"]
    );
    assert_ne!(rc(o, "setenforce under B", 0), 0);
    let denied = hv_lines(o, "avc:  denied  { setenforce }");
    assert!(
        denied
            .iter()
            .all(|l| l.contains("scontext=system_u:system_r:dom0_t")
                && l.contains("tclass=security")),
        "{denied:#?}"
    );
    // A truncated B (Debian's flask-loadpolicy, which exits 0 whatever
    // happened, as Xen 4.17's): refused, B stays in force.
    assert_has(o, "load truncated", "Unable to load new Flask policy");
    o.line_with_all(&[
        "Flask: policy load from d0 refused: policy load failed at offset",
        "truncated",
        "(-22 EINVAL); the policy in force is unchanged",
    ]);
    assert_eq!(bools(o, "bools after truncated"), bools(o, "bools B"));
    assert_ne!(rc(o, "setenforce after truncated", 0), 0);
    assert_eq!(
        denied.len(),
        2,
        "setenforce refused under B, twice: {denied:#?}"
    );
    assert_eq!(
        ring_lines(o, "avc:  denied  { setenforce }").len(),
        2,
        "xl dmesg shows both avc records"
    );
    // The default policy again (flask-loadpolicy): B's boolean is gone,
    // setenforce is allowed again.
    assert_eq!(rc(o, "load A", 0), 0);
    assert_eq!(bools(o, "bools A"), with_lp);
    assert_eq!(rc(o, "setenforce under A", 0), 0);
    assert_eq!(hv_lines(o, "loaded by d0").len(), 2);
    assert_eq!(ring_lines(o, "refused: policy load failed").len(), 2);
}

#[test]
fn flask_booleans_and_modes_with_debians_flask_tools() {
    let o = boot();
    o.expect_dom0_poweroff();
    assert_eq!(
        bools(o, "bools default"),
        [
            "guest_writeconsole: 1",
            "dom0_livepatch: 0",
            "guest_argo: 0"
        ]
    );
    // dom0_livepatch off (the default policy's default): no upload, an avc
    // record, and nothing loaded (the first list is empty).
    assert_ne!(rc(o, "lp denied", 0), 0);
    assert_has(o, "lp denied", "Error 13: Permission denied");
    o.line_with_all(&[
        "avc:  denied  { livepatch_op livepatch_upload }",
        "scontext=system_u:system_r:dom0_t",
        "tclass=xen2",
    ]);
    // flask-set-bool sets and commits it.
    assert_eq!(rc(o, "set dom0_livepatch", 0), 0);
    assert_eq!(out(o, "set dom0_livepatch")[1], "dom0_livepatch: 1");
    o.contains("Flask: committed boolean dom0_livepatch=1");
    // An unknown boolean: ENOENT, as Xen.
    assert_eq!(rc(o, "set unknown bool", 0), 2);
    assert_has(
        o,
        "set unknown bool",
        "Unable to set boolean no_such_bool=1: No such file or directory",
    );
    // flask-getenforce / flask-setenforce.
    // Xen 4.17's flask-getenforce exits with the mode (1: enforcing).
    assert_eq!(out(o, "flask-getenforce"), ["Enforcing", "rc=1"]);
    assert_eq!(
        out(o, "flask-setenforce"),
        ["rc=0", "Permissive", "rc=0", "Enforcing"]
    );
    o.contains("Flask: d0 switched to permissive mode")
        .contains("Flask: d0 switched to enforcing mode");
}

#[test]
fn debians_xen_livepatch_uploads_applies_reverts_replaces_and_unloads_while_the_demo_runs() {
    let o = boot();
    o.expect_dom0_poweroff();
    let extra = |name: &str| out(o, name)[0].to_string();
    assert_eq!(rc(o, "demo", 1), 0, "the demo domU reached its userspace");
    let demo = out(o, "demo label")
        .into_iter()
        .find(|l| l.starts_with("demo "))
        .expect("xl list -Z shows the demo");
    // libxl's label for a domU without seclabel= (the default policy's
    // domU initial SID).
    assert!(demo.ends_with("user_1:vm_r:domU_t"), "{demo}");
    assert_eq!(extra("extra before"), "-warden");
    // Uploads: completed, listed as CHECKED.
    assert_eq!(rc(o, "lp upload", 0), 0);
    assert_has(o, "lp upload", "completed");
    assert_eq!(lp_rows(o, "lp list"), [("hello".into(), "CHECKED".into())]);
    o.contains("livepatch: hello: uploaded (");
    // Apply: xen_version's extraversion changes, for Linux's sysfs and xl.
    assert_eq!(rc(o, "lp apply", 0), 0);
    assert_has(o, "lp apply", "completed");
    assert_eq!(
        out(o, "extra applied"),
        ["Hello World", "xen_extra              : Hello World"]
    );
    assert_eq!(
        lp_rows(o, "lp list applied"),
        [("hello".into(), "APPLIED".into())]
    );
    // Revert: back.
    assert_eq!(rc(o, "lp revert", 0), 0);
    assert_eq!(
        out(o, "extra reverted"),
        ["-warden", "xen_extra              : -warden"]
    );
    // Replace: hello applied again, then replace takes its place in one go.
    assert_eq!(rc(o, "lp upload replace", 0), 0);
    assert_eq!(rc(o, "lp apply again", 0), 0);
    assert_eq!(extra("extra applied again"), "Hello World");
    assert_eq!(rc(o, "lp replace", 0), 0);
    assert_has(o, "lp replace", "completed");
    assert_eq!(extra("extra replaced"), "Replace World");
    assert_eq!(
        lp_rows(o, "lp list replaced"),
        [
            ("hello".into(), "CHECKED".into()),
            ("replace".into(), "APPLIED".into())
        ]
    );
    assert_eq!(rc(o, "lp revert replace", 0), 0);
    assert_eq!(extra("extra after replace"), "-warden");
    // Unload both: nothing listed.
    assert_eq!(rc(o, "lp unload", 0), 0);
    assert_eq!(rc(o, "lp unload", 1), 0);
    assert_eq!(out(o, "lp list unloaded"), ["Nothing to list", "rc=0"]);
    // `load`: upload and apply, named after the file.
    assert_eq!(rc(o, "lp load", 0), 0);
    assert_eq!(extra("extra loaded"), "Hello World");
    assert_eq!(rc(o, "lp revert loaded", 0), 0);
    assert_eq!(rc(o, "lp revert loaded", 1), 0);
    assert_eq!(extra("extra end"), "-warden");
    assert_eq!(out(o, "lp list end"), ["Nothing to list", "rc=0"]);
    // The hypervisor's record of each action (console and xl dmesg).
    for s in [
        "livepatch: hello: APPLY completed (build-id ",
        "livepatch: hello: REVERT completed (build-id ",
        "livepatch: replace: REPLACE completed (build-id ",
        "livepatch: replace: REVERT completed (build-id ",
        "livepatch: replace: unloaded (build-id ",
        "livepatch: hello: unloaded (build-id ",
    ] {
        assert!(!ring_lines(o, s).is_empty(), "xl dmesg lacks '{s}'");
    }
    assert_eq!(hv_lines(o, "livepatch: hello: APPLY completed").len(), 3);
    o.lacks("W^X broken");
    // The demo domU ran through it all: listed, and its shell answers on
    // its console (xenconsoled's log).
    assert!(
        out(o, "demo alive").iter().any(|l| l.starts_with("demo ")),
        "{:?}",
        out(o, "demo alive")
    );
    assert_eq!(rc(o, "demo alive", 0), 0);
    assert_has(o, "demo alive", "demo-alive-42");
}

#[test]
fn unsigned_and_wrongly_signed_payloads_are_refused_with_the_reason_in_xl_dmesg() {
    let o = boot();
    o.expect_dom0_poweroff();
    for (name, errno, why) in [
        (
            "unsigned",
            "Error 61: No data available",
            "signature check failed: payload is not signed",
        ),
        (
            "otherkey",
            "Error 126: Required key not available",
            "signature check failed: signed by unknown key",
        ),
        (
            "flipped",
            "Error 129: Key was rejected by service",
            "signature check failed: signature by key",
        ),
    ] {
        let sec = format!("lp {name}");
        assert_ne!(rc(o, &sec, 0), 0, "{name} refused");
        assert_has(o, &sec, errno);
        let line = format!("livepatch: {name}: upload refused, {why}");
        assert_eq!(ring_lines(o, &line).len(), 1, "xl dmesg: {line}");
    }
    // Nothing was kept, nothing changed.
    assert_eq!(out(o, "lp list refused"), ["Nothing to list", "rc=0"]);
    assert_eq!(out(o, "extra refused"), ["-warden"]);
}
