//! Issue 10 §5: grant tables v1 between two Rust test guests. A domU
//! (domU_t) maps its grant table (XENMAPSPACE_grant_table) and grants pages
//! to dom0; dom0 maps them (read and read-only), copies both ways, unmaps
//! (the GPA is empty again), and tries every refusal (bad ref, wrong
//! domain, a revoked grant) leaving nothing mapped; the domU then throws
//! 100,000 structured random grant-table calls. A second boot runs with a
//! policy without dom0_t -> domU_t grant permissions: the map and the copy
//! are refused with GNTST_permission_denied and their avc lines.

use warden_tests::{Boot, policy_variant, replace_in};

const DOMU: &str = "user_1:vm_r:domU_t";

#[test]
fn two_guests_map_copy_unmap_and_every_refusal_leaves_state_unchanged() {
    let o = Boot::new()
        .smp(2)
        .cmdline("loglvl=all")
        .guest("role=gnttab-dom0 granter=1")
        .guest(&format!(
            "domain domid=1 name=granter label={DOMU} mem=16M -- role=gnttab-granter peer=0 iterations=100000"
        ))
        .run();
    o.expect_dom0_poweroff()
        .contains("Flask:  Starting in enforcing mode.")
        .contains("gnttab-granter: granted refs 8-12 to d0")
        .contains("CHECK ok ref 8 mapped")
        .contains("CHECK ok a revoked grant stays mapped")
        .contains("CHECK ok a revoked grant cannot be mapped again")
        .contains("CHECK ok ref 8's GPA is empty again")
        .contains("gnttab-hostile: 100000 grant-table calls done")
        .contains("RESULT gnttab-granter: PASS")
        .contains("RESULT gnttab-dom0: PASS")
        .lacks("CHECK FAIL")
        .lacks("Warden fatal")
        .lacks("Warden panic")
        .lacks("avc:  denied  { map_read");
}

#[test]
fn without_the_policy_rule_map_and_copy_are_denied_and_audited() {
    let variant = policy_variant("no-dom0-domu-grants", |d| {
        replace_in(
            d,
            "modules/domU.te",
            "domain_comms(dom0_t, domU_t)\n",
            "create_channel(dom0_t, domU_t, dom0_t_channel)\ncreate_channel(domU_t, dom0_t, domU_t_channel)\n",
        )
    });
    let o = Boot::bare()
        .module(&variant, "")
        .cmdline("loglvl=all")
        .guest("role=gnttab-dom0 granter=1 deny=1")
        .guest(&format!(
            "domain domid=1 name=granter label={DOMU} mem=16M -- role=victim"
        ))
        .run();
    o.expect_dom0_poweroff()
        .contains("CHECK ok denied map of ref 8")
        .contains("CHECK ok nothing mapped after the denial")
        .contains("CHECK ok denied copy")
        .contains("RESULT gnttab-dom0: PASS")
        .lacks("CHECK FAIL");
    o.line_with_all(&[
        "avc:  denied  { map_read map_write }",
        "scontext=system_u:system_r:dom0_t",
        &format!("tcontext={DOMU}"),
        "tclass=grant",
    ]);
    o.line_with_all(&[
        "avc:  denied  { copy }",
        &format!("scontext={DOMU}"),
        "tcontext=system_u:system_r:dom0_t",
        "tclass=grant",
    ]);
}
