//! Issue 5: FLASK at run time (setenforce, booleans, loadpolicy) and labels
//! (createdomain with an ssidref, RELABEL_DOMAIN, a guest relabelling itself).

use warden_tests::{Boot, policy, policy_variant, policy_variant_with, replace_in, scratch_file};

#[test]
fn setenforce_booleans_and_loadpolicy_change_decisions_and_bad_policies_change_nothing() {
    // A variant of the default policy that takes xen:physinfo from dom0.
    let variant = policy_variant("no-physinfo", |d| {
        replace_in(
            d,
            "modules/dom0.te",
            "microcode physinfo quirk",
            "microcode quirk",
        )
    });
    // A policy that lacks a permission Warden checks (xen:mtrr_del renamed)
    // and says handle_unknown=reject: refused at load (policies are matched
    // with Warden's definition by name; with deny or allow it would load).
    let reject = policy_compiler::compile::Options {
        handle_unknown: 2,
        ..Default::default()
    };
    let wrongclass = policy_variant_with("wrongclass", reject, |d| {
        replace_in(
            d,
            "flask/access_vectors",
            "    mtrr_del\n",
            "    mtrr_delete\n",
        )
    });
    let good = std::fs::read(policy()).expect("read the default policy");
    let corrupt = scratch_file("corrupt-policy", &good[..good.len() * 2 / 3]);
    let o = Boot::new()
        .cmdline("loglvl=all")
        .guest("role=runtime-dom0")
        .module(policy(), "policy")
        .module(&variant, "variant")
        .module(&corrupt, "corrupt")
        .module(&wrongclass, "wrongclass")
        .run();
    o.expect_dom0_poweroff()
        .contains("RESULT runtime-dom0: PASS")
        .lacks("CHECK FAIL")
        .contains("Flask: d0 switched to permissive mode")
        .contains("Flask: d0 switched to enforcing mode")
        .contains("Flask: committed boolean dom0_livepatch=1")
        .contains("Flask: committed boolean dom0_livepatch=0")
        .contains("Flask: policy load from d0 refused: policy load failed at offset")
        .contains("classes/permissions differ from Warden's definition");
    // Denied while enforcing, logged as permissive=1 while permissive.
    o.line_with_all(&[
        "avc:  denied  { livepatch_op }",
        "scontext=system_u:system_r:dom0_t",
        "permissive=0",
    ])
    .line_with_all(&[
        "avc:  denied  { livepatch_op }",
        "scontext=system_u:system_r:dom0_t",
        "permissive=1",
    ])
    .line_with_all(&[
        "avc:  denied  { physinfo }",
        "scontext=system_u:system_r:dom0_t",
        "tclass=xen permissive=0",
    ]);
}

#[test]
fn labels_from_createdomain_and_relabel_and_self_relabel_only_where_allowed() {
    let o = Boot::new()
        .cmdline("loglvl=all")
        .guest("role=labels-dom0 selfguest=2")
        .guest("domain domid=1 name=iso label=user_1:vm_r:isolated_domU_t -- role=victim")
        .guest("domain domid=2 name=selfish label=user_1:vm_r:domU_t -- role=relabel-self maxsid=40 domu=12")
        .run();
    o.expect_dom0_poweroff()
        .contains("RESULT labels-dom0: PASS")
        .guest_says(2, "RESULT relabel-self: PASS")
        .lacks("CHECK FAIL")
        .contains("Flask: d2 relabelled d2 from user_1:vm_r:domU_t to user_1:vm_r:isolated_domU_t")
        .contains("to user_1:vm_r:prot_domU_t");
    o.line_with_all(&[
        "avc:  denied  { relabelself }",
        "scontext=user_1:vm_r:domU_t tcontext=system_u:system_r:dom0_t tclass=domain2",
    ])
    .line_with_all(&[
        "avc:  denied  { relabelself }",
        "scontext=user_1:vm_r:isolated_domU_t tcontext=user_1:vm_r:domU_t tclass=domain2",
    ])
    .line_with_all(&[
        "avc:  denied  { transition }",
        "tcontext=user_1:vm_r:domU_t tclass=domain",
    ]);
}
