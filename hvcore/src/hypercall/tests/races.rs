//! Relabel races (issue 14, section 2): each interleaving is driven
//! deterministically by calling the steps of the racing operations in the
//! racy order.

use super::*;
use crate::domain::DomSnap;
use crate::gate::Request;
use crate::gate::table::SchedYield;

const ISOLATED: &str = "user_1:vm_r:isolated_domU_t";
const COND: &str = "user_1:vm_r:cond_t";

/// The default policy with `te` (type-enforcement text) added before the
/// roles and `roles` after them (compiled once per pair).
pub(super) fn policy_with(te: &str, roles: &str) -> Vec<u8> {
    type Compiled = Vec<((String, String), Vec<u8>)>;
    static P: std::sync::Mutex<Compiled> = std::sync::Mutex::new(Vec::new());
    let key = (String::from(te), String::from(roles));
    if let Some((_, p)) = P.lock().unwrap().iter().find(|(k, _)| *k == key) {
        return p.clone();
    }
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let top = std::fs::read_to_string(dir.join("warden.m4")).unwrap();
    let include_roles = "include(`policy/roles')dnl\n";
    assert!(top.contains(include_roles));
    let text = top
        .replace(
            include_roles,
            &alloc::format!("{te}{include_roles}{roles}\n"),
        )
        .replace("include(`", &alloc::format!("include(`{}/", dir.display()));
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let tmp = std::env::temp_dir().join(alloc::format!(
        "warden-test-policy-{}-{}.m4",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::write(&tmp, text).unwrap();
    let job = policy_compiler::Job {
        files: alloc::vec![tmp.clone()],
        ..Default::default()
    };
    let mut sm = policy_compiler::diag::SourceMap::default();
    let out =
        policy_compiler::compile(&job, &mut sm).unwrap_or_else(|e| panic!("{}", e.render(&sm)));
    let _ = std::fs::remove_file(&tmp);
    let p = policy_compiler::write::write(&out.db);
    P.lock().unwrap().push((key, p.clone()));
    p
}

/// The default policy plus a domain type whose `_self` label depends on a
/// boolean (`guest_argo`, off by default): `cond_a_self` (on), which may
/// use sched_op on itself, or `cond_b_self` (off), which may not.
fn cond_policy() -> Vec<u8> {
    policy_with(
        "
type cond_t, domain_type;
type cond_a_self, domain_type, domain_self_type;
type cond_b_self, domain_type, domain_self_type;
allow cond_t cond_a_self:domain2 sched_self;
if (guest_argo) {
    type_transition cond_t cond_t:domain cond_a_self;
} else {
    type_transition cond_t cond_t:domain cond_b_self;
}
",
        "role vm_r types { cond_t cond_a_self cond_b_self };",
    )
}

fn cond_world() -> World {
    let w = world(true);
    w.hv.gate
        .flask()
        .unwrap()
        .load_policy(&cond_policy())
        .unwrap();
    w
}

/// The `_self` SID the table holds for domain `id`.
fn self_sid_of(w: &World, id: u16) -> u32 {
    w.hv.domains.snapshot(id).unwrap().self_sid
}

#[test]
fn a_relabel_checked_against_a_domain_never_relabels_its_reused_id() {
    let w = world(true);
    let d0 = w.domain(0, "system_u:system_r:dom0_t");
    let _d5 = w.domain(5, DOMU);
    // The relabel is checked against d5 ...
    let checked = w.hv.domains.snapshot(5).unwrap();
    // ... d5 is destroyed and another domain gets id 5 ...
    w.put(&d0, ARG, &dc::Domctl::new(dc::DESTROYDOMAIN, 5, &()));
    assert_eq!(w.call(&d0, hc::DOMCTL, [ARG, 0, 0, 0, 0]), 0);
    let _new5 = w.domain(5, DOMU);
    let before = w.hv.domains.snapshot(5).unwrap();
    assert_ne!(before.generation, checked.generation);
    // ... then the relabel's write: refused, the new domain keeps its label.
    assert_eq!(w.hv.relabel(&checked, w.sid(ISOLATED)), Err(errno::ESRCH));
    assert_eq!(w.hv.domains.snapshot(5).unwrap(), before);

    // The same relabel through the hypercall, checked against the domain
    // that is there, happens.
    let new = w.sid(ISOLATED);
    w.put(
        &d0,
        ARG,
        &fx::FlaskOp::new(fx::RELABEL_DOMAIN, &fx::Relabel { domid: 5, sid: new }),
    );
    assert_eq!(w.call(&d0, hc::XSM_OP, [ARG, 0, 0, 0, 0]), 0);
    let after = w.hv.domains.snapshot(5).unwrap();
    assert_eq!(after.sid, new);
    assert_eq!(after.self_sid, w.sid("user_1:vm_r:isolated_domU_t_self"));
    // A relabel checked against the label before that one is refused too.
    assert_eq!(w.hv.relabel(&before, w.sid(DOMU)), Err(errno::EAGAIN));
    assert_eq!(w.hv.domains.snapshot(5).unwrap(), after);
}

#[test]
fn recomputing_self_labels_after_a_load_never_undoes_a_concurrent_relabel() {
    let w = world(true);
    let _d0 = w.domain(0, "system_u:system_r:dom0_t");
    let _d1 = w.domain(1, DOMU);
    // relabel_all (after a policy load) reads d1 ...
    let read = w.hv.domains.snapshot(1).unwrap();
    // ... d1 is relabelled meanwhile ...
    let checked = w.hv.domains.snapshot(1).unwrap();
    w.hv.relabel(&checked, w.sid(ISOLATED)).unwrap();
    // ... then relabel_all writes d1's `_self` label: it must see the
    // relabel and leave it standing.
    assert!(
        !w.hv.refresh_self_label(&read),
        "the stale write was refused"
    );
    let s = w.hv.domains.snapshot(1).unwrap();
    assert_eq!(s.sid, w.sid(ISOLATED), "the relabel was not undone");
    assert_eq!(s.self_sid, w.sid("user_1:vm_r:isolated_domU_t_self"));
    // The whole pass keeps it too.
    w.hv.relabel_all();
    assert_eq!(w.hv.domains.snapshot(1).unwrap(), s);
}

#[test]
fn a_boolean_commit_recomputes_self_labels() {
    let w = cond_world();
    let d0 = w.domain(0, "system_u:system_r:dom0_t");
    let d1 = w.domain(1, COND);
    let (a, b) = (
        w.sid("user_1:vm_r:cond_a_self"),
        w.sid("user_1:vm_r:cond_b_self"),
    );
    assert_eq!(self_sid_of(&w, 1), b, "guest_argo is off");
    let yield_ = |w: &World| w.call(&d1, hc::SCHED_OP, [sched::YIELD as u64, 0, 0, 0, 0]);
    assert_eq!(yield_(&w), -(errno::EACCES as i64));
    // dom0 turns guest_argo on and commits (xl setbool -c).
    let setbool = |on: u8| {
        w.put(
            &d0,
            ARG,
            &fx::FlaskOp::new(
                fx::SETBOOL,
                &fx::Boolean {
                    bool_id: w
                        .hv
                        .gate
                        .flask()
                        .unwrap()
                        .get_bool_by_name("guest_argo")
                        .unwrap()
                        .id
                        - 1,
                    new_value: on,
                    commit: 1,
                    ..Default::default()
                },
            ),
        );
        assert_eq!(w.call(&d0, hc::XSM_OP, [ARG, 0, 0, 0, 0]), 0);
    };
    setbool(1);
    assert_eq!(
        self_sid_of(&w, 1),
        a,
        "the commit recomputed d1's _self label"
    );
    assert_eq!(yield_(&w), 0);
    // And back with COMMITBOOLS (set without commit, then commit).
    w.put(
        &d0,
        ARG,
        &fx::FlaskOp::new(
            fx::SETBOOL,
            &fx::Boolean {
                bool_id: w
                    .hv
                    .gate
                    .flask()
                    .unwrap()
                    .get_bool_by_name("guest_argo")
                    .unwrap()
                    .id
                    - 1,
                new_value: 0,
                commit: 0,
                ..Default::default()
            },
        ),
    );
    assert_eq!(w.call(&d0, hc::XSM_OP, [ARG, 0, 0, 0, 0]), 0);
    assert_eq!(self_sid_of(&w, 1), a, "nothing committed yet");
    w.put(&d0, ARG, &fx::FlaskOp::new(fx::COMMITBOOLS, &()));
    assert_eq!(w.call(&d0, hc::XSM_OP, [ARG, 0, 0, 0, 0]), 0);
    assert_eq!(self_sid_of(&w, 1), b);
    assert_eq!(yield_(&w), -(errno::EACCES as i64));
}

#[test]
fn a_grant_computed_with_a_stale_self_label_during_a_load_is_not_reused() {
    let w = cond_world();
    let f = w.hv.gate.flask().unwrap();
    let _d0 = w.domain(0, "system_u:system_r:dom0_t");
    let d1 = w.domain(1, COND);
    let v = d1.vcpu(0).unwrap();
    let check = |caller: &DomSnap| {
        w.hv.gate
            .check::<SchedYield>(&Request {
                caller,
                target: None,
                new_sid: None,
                chan: None,
                cpu: 0,
                cache: Some(&v.decisions),
            })
            .map(drop)
    };
    // guest_argo on (committed): d1's `_self` is cond_a_self.
    let id = f.get_bool_by_name("guest_argo").unwrap().id;
    f.set_bool(id, true, true).unwrap();
    w.hv.relabel_all();
    let stale: DomSnap = w.hv.domains.snapshot(1).unwrap();
    assert_eq!(stale.self_sid, w.sid("user_1:vm_r:cond_a_self"));
    // A hypercall of d1 took its snapshot; a policy load lands before its
    // check, with guest_argo turned off (a load keeps the booleans'
    // values, as Xen's, so the operator commits the change with it) ...
    f.load_policy(&cond_policy()).unwrap();
    assert!(
        f.get_bool_by_name("guest_argo").unwrap().current,
        "kept by the load"
    );
    f.set_bool(id, false, true).unwrap();
    // ... the check runs under the new policy with the old `_self` label and
    // is granted (and cached) ...
    assert_eq!(check(&stale), Ok(()));
    // ... then the `_self` labels are recomputed for the new policy.
    w.hv.relabel_all();
    let fresh = w.hv.domains.snapshot(1).unwrap();
    assert_eq!(fresh.self_sid, w.sid("user_1:vm_r:cond_b_self"));
    assert_eq!(fresh.sid, stale.sid);
    // The next check must be the AVC's answer for the new label: denied.
    let lookups = f.cache_stats(0).unwrap().lookups;
    assert_eq!(check(&fresh), Err(errno::EACCES));
    assert!(f.cache_stats(0).unwrap().lookups > lookups);
    assert!(
        w.audit_lines()
            .iter()
            .any(|l| l.contains("denied  { sched_self }")),
    );
}

#[test]
fn between_a_rules_change_and_the_relabel_a_domain_acts_on_itself_under_the_new_rules() {
    // flask=late's first load and every boolean commit put new rules in
    // force, then recompute the `_self` labels: a hypercall in between
    // must not be checked against a `_self` label of the old rules (the
    // late-mode test saw its guest's SCHEDOP_shutdown refused there).
    let w = cond_world();
    let f = w.hv.gate.flask().unwrap();
    let _d0 = w.domain(0, "system_u:system_r:dom0_t");
    let d1 = w.domain(1, COND);
    let b = w.sid("user_1:vm_r:cond_b_self");
    assert_eq!(self_sid_of(&w, 1), b, "guest_argo is off");
    let yield_ = || w.call(&d1, hc::SCHED_OP, [sched::YIELD as u64, 0, 0, 0, 0]);
    assert_eq!(yield_(), -(errno::EACCES as i64));
    // The change is under way: guest_argo is on and committed, d1's stored
    // `_self` label is still the old rules' one.
    w.hv.relabels_pending
        .fetch_add(1, core::sync::atomic::Ordering::AcqRel);
    let id = f.get_bool_by_name("guest_argo").unwrap().id;
    f.set_bool(id, true, true).unwrap();
    assert_eq!(self_sid_of(&w, 1), b, "not recomputed yet");
    assert_eq!(
        yield_(),
        0,
        "checked with the `_self` label of the rules in force"
    );
    // Once relabelled, the same answer from the stored label.
    w.hv.relabel_all();
    w.hv.relabels_pending
        .fetch_sub(1, core::sync::atomic::Ordering::AcqRel);
    assert_eq!(self_sid_of(&w, 1), w.sid("user_1:vm_r:cond_a_self"));
    assert_eq!(yield_(), 0);
}
