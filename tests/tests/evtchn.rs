//! Issue 10 §4: event channels between Rust test guests (Xen 4.17's 2-level
//! ABI): interdomain bind and send both ways with the upcall arriving, the
//! refusal paths leaving the ports as they were, a policy that forbids the
//! channel (with its avc line), and 100,000 random well-formed
//! event-channel calls without a hypervisor fault.

use std::time::Duration;
use warden_tests::{Boot, policy_variant_with, replace_in};

const DOMU: &str = "user_1:vm_r:domU_t";

#[test]
fn interdomain_bind_and_send_both_ways_and_every_refusal_changes_nothing() {
    let o = Boot::new()
        .guest("role=wait-dom0 ok=1,2")
        .guest(&format!(
            "domain domid=1 label={DOMU} -- role=evtchn-front peer=2 third=3 rounds=2000"
        ))
        .guest(&format!(
            "domain domid=2 label={DOMU} -- role=evtchn-back peer=1"
        ))
        .guest(&format!(
            "domain domid=3 label={DOMU} mem=8M -- role=victim"
        ))
        .timeout(Duration::from_secs(900))
        .run();
    o.expect_dom0_poweroff()
        .guest_says(1, "RESULT evtchn-front: PASS")
        .guest_says(2, "RESULT evtchn-back: PASS")
        .lacks("CHECK FAIL")
        .lacks("Warden fatal")
        .lacks("Warden panic");
    for l in o.lines_with("round trips/s") {
        eprintln!("{l}");
    }
}

#[test]
fn a_policy_without_the_channel_refuses_it_with_an_avc_line() {
    let variant = policy_variant_with("no-domu-comms", Default::default(), |d| {
        replace_in(d, "modules/domU.te", "domain_comms(domU_t, domU_t)\n", "\n")
    });
    let o = Boot::bare()
        .module(&variant, "")
        .guest("role=wait-dom0 ok=1")
        .guest(&format!(
            "domain domid=1 label={DOMU} -- role=evtchn-deny peer=2"
        ))
        .guest(&format!("domain domid=2 label={DOMU} -- role=victim"))
        .timeout(Duration::from_secs(600))
        .run();
    o.expect_dom0_poweroff()
        .guest_says(1, "RESULT evtchn-deny: PASS")
        .lacks("CHECK FAIL");
    // The channel d1 would have made (domU_t_channel) may not bind to domU_t.
    o.line_with_all(&[
        "avc:  denied  { bind }",
        "scontext=user_1:object_r:domU_t_channel",
        &format!("tcontext={DOMU} tclass=event"),
    ]);
}

#[test]
fn hostile_guest_random_event_channel_calls_never_fault_the_hypervisor() {
    let o = Boot::new()
        .memory(768)
        .guest("role=wait-dom0 ok=1,2")
        .guest(&format!(
            "domain domid=1 label={DOMU} mem=16M -- role=evtchn-hostile iterations=100000 seed=4242"
        ))
        .guest(&format!(
            "domain domid=2 label={DOMU} -- role=evtchn-hostile iterations=20000 seed=99"
        ))
        .timeout(Duration::from_secs(900))
        .run();
    o.expect_dom0_poweroff()
        .guest_says(1, "RESULT evtchn-hostile: PASS")
        .guest_says(1, "evtchn-hostile: 100000 calls made")
        .guest_says(2, "RESULT evtchn-hostile: PASS")
        .lacks("CHECK FAIL")
        .lacks("Warden fatal")
        .lacks("Warden panic");
    for l in o.lines_with("evtchn-hostile: 100000 calls:") {
        eprintln!("{l}");
    }
}
