//! Issue 5: FLASK at boot — the policy module, the four modes and their
//! messages, and the boots Xen refuses. Besides the messages, each boot
//! that runs guests checks what the mode does: a domU_t guest (`role=probe`)
//! asks for sysctl physinfo, which the default policy refuses it — refused
//! and audited (permissive=0) when enforcing, done and audited
//! (permissive=1) when permissive, done without a record with no policy.

use warden_tests::{Boot, Outcome, policy, policy_mls, scratch_file};

const DOMU: &str = "user_1:vm_r:domU_t";

/// dom0 waits for the probe (domain 1, label `label` if any) to power off.
fn with_probe(b: Boot, label: Option<&str>) -> Boot {
    let label = label.map_or(String::new(), |l| format!("label={l} "));
    b.guest("role=wait-dom0 ok=1")
        .guest(&format!("domain domid=1 {label}-- role=probe"))
}

/// The probe's physinfo was refused by the policy and audited as enforced.
fn probe_denied(o: &Outcome) {
    o.guest_says(1, "probe: physinfo rc=-13").line_with_all(&[
        "avc:  denied  { physinfo }",
        &format!("scontext={DOMU} "),
        "permissive=0",
    ]);
}

#[test]
fn enforcing_with_the_default_policy_prints_xens_messages_and_enforces_it() {
    let o = Boot::new().run();
    o.expect_ready()
        .contains("module 0: FLASK policy")
        .contains("INFO  XSM Framework v1.0.1 initialized")
        .contains("INFO  Policy len 0x")
        .contains("INFO  Flask:  3 users, 4 roles, ")
        .contains(" types, 3 bools")
        .contains("INFO  Flask:  13 classes, ")
        .contains("INFO  Flask:  Starting in enforcing mode.")
        .contains("No dom0 kernel among the boot modules: there is nothing to run");
    let o = with_probe(Boot::new(), Some(DOMU)).run();
    o.expect_dom0_poweroff()
        .contains("Flask:  Starting in enforcing mode.")
        .contains("dom0 label system_u:system_r:dom0_t")
        .contains("RESULT wait-dom0: PASS")
        .lacks("CHECK FAIL");
    probe_denied(&o);
}

#[test]
fn the_policy_is_the_first_module_with_the_magic_wherever_it_is() {
    let junk = scratch_file("not-a-policy", b"just some bytes for dom0");
    let o = Boot::bare()
        .guest("role=hello")
        .module(&junk, "payload")
        .module(policy(), "")
        .module(policy(), "second")
        .run();
    o.expect_dom0_poweroff()
        .contains("module 2: FLASK policy")
        .contains("WARN    module 3 also carries the FLASK policy magic: it is NOT the boot policy (module 2, the first with the magic, as Xen)")
        .contains("module 3: handed to dom0")
        .contains("module 0: dom0 kernel")
        .contains("module 1: handed to dom0")
        .contains("Flask:  Starting in enforcing mode.")
        .contains("tguest: module 0: 24 bytes, command line 'payload'");
    // The policy found there is the one in force.
    let o = with_probe(Boot::bare(), Some(DOMU))
        .module(&junk, "payload")
        .module(policy(), "")
        .run();
    o.expect_dom0_poweroff()
        .contains("module 3: FLASK policy")
        .contains("dom0 label system_u:system_r:dom0_t")
        .lacks("CHECK FAIL");
    probe_denied(&o);
}

#[test]
fn enforcing_without_a_policy_refuses_to_boot() {
    Boot::bare()
        .run()
        .expect_refused()
        .contains("*** Warden cannot boot: invalid input: Unable to load FLASK policy: no boot module is a FLASK policy (first u32 0xf97cff8c)")
        .lacks("Warden ready");
}

#[test]
fn enforcing_with_a_corrupt_policy_refuses_to_boot() {
    let good = std::fs::read(policy()).unwrap();
    let bad = scratch_file("truncated-policy", &good[..good.len() / 2]);
    Boot::bare()
        .module(&bad, "")
        .run()
        .expect_refused()
        .contains("*** Warden cannot boot: invalid input: Unable to load FLASK policy: policy load failed at offset")
        .contains("truncated");
}

#[test]
fn an_unknown_flask_mode_refuses_to_boot() {
    Boot::new()
        .cmdline("flask=maybe")
        .run()
        .expect_refused()
        .contains("*** Warden cannot boot: invalid input: flask=maybe: not a FLASK mode (enforcing, permissive, late or disabled)")
        // One message: no "keeping flask=enforcing" warning before the refusal.
        .lacks("keeping flask=")
        .lacks("Warden ready");
}

#[test]
fn permissive_without_a_policy_boots_says_so_and_allows_everything() {
    let o = with_probe(Boot::bare().cmdline("flask=permissive"), None).run();
    o.expect_dom0_poweroff()
        .contains("Flask:  no policy module; everything is allowed until a policy is loaded")
        .contains("Flask:  Starting in permissive mode.")
        .guest_says(1, "probe: physinfo rc=0")
        .contains("RESULT wait-dom0: PASS")
        .lacks("CHECK FAIL")
        .lacks("avc:");
}

#[test]
fn permissive_with_the_default_policy_allows_and_audits_what_it_would_refuse() {
    let o = with_probe(Boot::new().cmdline("flask=permissive"), Some(DOMU)).run();
    o.expect_dom0_poweroff()
        .contains("Flask:  Starting in permissive mode.")
        .guest_says(1, "probe: physinfo rc=0")
        .contains("RESULT wait-dom0: PASS")
        .lacks("CHECK FAIL")
        .lacks("permissive=0")
        .line_with_all(&[
            "avc:  denied  { physinfo }",
            &format!("scontext={DOMU} "),
            "permissive=1",
        ]);
}

#[test]
fn disabled_behaves_like_xens_dummy_module() {
    let o = Boot::new()
        .cmdline("flask=disabled")
        .guest("role=dummy-dom0 guest=1 victim=2")
        .guest("domain domid=1 -- role=dummy-guest victim=2")
        .guest("domain domid=2 mem=8M -- role=victim")
        .run();
    o.expect_dom0_poweroff()
        .contains("Flask:  Disabled at boot.")
        .contains("Flask:  the policy module is not used (flask=disabled)")
        .guest_says(1, "RESULT dummy-guest: PASS")
        .contains("RESULT dummy-dom0: PASS")
        .lacks("CHECK FAIL")
        .lacks("avc:");
}

#[test]
fn late_allows_everything_until_dom0_loads_a_policy_then_enforces() {
    let o = Boot::new()
        .cmdline("flask=late")
        .guest("role=late-dom0 guest=1")
        .module(policy(), "policy")
        .guest("domain domid=1 -- role=late-guest")
        .run();
    o.expect_dom0_poweroff()
        .contains("Flask:  Access controls disabled until policy is loaded.")
        .contains("Flask: Policy loaded, continuing in enforcing mode.")
        .guest_says(1, "RESULT late-guest: PASS")
        .contains("RESULT late-dom0: PASS")
        .lacks("CHECK FAIL")
        .line_with_all(&[
            "avc:  denied  { physinfo }",
            "scontext=user_1:vm_r:domU_t",
            "permissive=0",
        ]);
}

#[test]
fn the_mls_build_of_the_default_policy_boots_enforcing() {
    let o = Boot::bare()
        .module(policy_mls(), "")
        .guest("role=hello")
        .run();
    o.expect_dom0_poweroff()
        .contains("Flask:  Starting in enforcing mode.")
        .contains("dom0 label system_u:system_r:dom0_t:s0-s3:c0.c15")
        .contains("tguest: hello from d0");
}

/// Issue 13: a boot-built domain whose label the policy does not allow stops
/// the boot with the reason and the "boot refused" code (domU_t is in role
/// vm_r in the default policy, not system_r).
#[test]
fn a_domain_label_the_policy_refuses_stops_the_boot() {
    Boot::new()
        .guest("role=hello")
        .guest("domain name=web label=system_u:system_r:domU_t -- role=hello")
        .run()
        .expect_refused()
        .contains(
            "*** Warden cannot boot: invalid input: domain 'web': label system_u:system_r:domU_t: ",
        );
}
