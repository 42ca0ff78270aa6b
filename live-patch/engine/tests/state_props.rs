//! Random action sequences against a model of the stack rules: the engine
//! agrees with the model on every accepted and refused action, and the text
//! always equals what the applied stack implies.

mod common;

use common::*;
use livepatch_engine::{APPLY_NODEPS, Action, Engine, State};
use proptest::prelude::*;

/// Three payloads: A on the hypervisor (patches EXTRA), B on A (patches
/// EXTRA again and SECOND), C on the hypervisor (patches SECOND, usable
/// for REPLACE).
fn payloads(e: &mut Engine<'static>, s: &mut Sim) -> Vec<String> {
    e.upload(s, "A", &sign(&patch_of(EXTRA, "a").build()))
        .unwrap();
    let a_id = e.get("A").unwrap().build_id.clone();
    let mut b = patch_of(EXTRA, "b");
    b.depends(&a_id);
    e.upload(s, "B", &sign(&b.build())).unwrap();
    e.upload(s, "C", &sign(&patch_of(SECOND, "c").build()))
        .unwrap();
    vec!["A".into(), "B".into(), "C".into()]
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Act(usize, Action, bool),
    Reupload(usize),
    Timeout(bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..3usize, prop_oneof![Just(Action::Apply), Just(Action::Revert), Just(Action::Replace), Just(Action::Unload)], any::<bool>())
            .prop_map(|(i, a, n)| Op::Act(i, a, n)),
        1 => (0..3usize).prop_map(Op::Reupload),
        1 => any::<bool>().prop_map(Op::Timeout),
    ]
}

/// The text the applied stack implies: each applied payload's jump, in order.
fn expected_text(e: &Engine<'_>) -> Vec<u8> {
    let mut t = initial_text();
    for name in e.applied() {
        for site in &e.get(name).unwrap().sites {
            let o = (site.at - TEXT) as usize;
            t[o..o + site.len].copy_from_slice(&site.bytes[..site.len]);
        }
    }
    t
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn stack_rules_hold(ops in proptest::collection::vec(op(), 1..40)) {
        let (mut e, mut s) = (engine(), Sim::new());
        let names = payloads(&mut e, &mut s);
        let mut timeout = false;
        for op in ops {
            match op {
                Op::Timeout(t) => timeout = t,
                Op::Reupload(i) => {
                    let name = &names[i];
                    if e.get(name).is_none() {
                        let b = match i {
                            0 => patch_of(EXTRA, "a"),
                            1 => {
                                let Some(a) = e.get("A") else { continue };
                                let mut b = patch_of(EXTRA, "b");
                                b.depends(&a.build_id.clone());
                                b
                            }
                            _ => patch_of(SECOND, "c"),
                        };
                        // B's dependency must be loaded; otherwise refused.
                        let r = e.upload(&mut s, name, &sign(&b.build()));
                        prop_assert!(r.is_ok(), "{:?}", r);
                    }
                }
                Op::Act(i, a, nodeps) => {
                    let name = &names[i];
                    let applied: Vec<String> = e.applied().map(String::from).collect();
                    let before = e.get(name).map(|p| p.state);
                    let flags = if nodeps && a == Action::Apply { APPLY_NODEPS } else { 0 };
                    s.timeout = timeout;
                    let r = e.action(&mut s, name, a as u32, 0, flags);
                    // Model: which actions must be accepted.
                    let top = applied.last().cloned();
                    let dep_ok = match (name.as_str(), top.as_deref()) {
                        ("B", Some("A")) => true,
                        ("B", _) => false,
                        (_, None) => true,
                        _ => false,
                    };
                    let want = match (before, a) {
                        (None, _) => false,
                        (Some(State::Checked), Action::Unload) => true,
                        (Some(State::Applied), Action::Unload) => false,
                        (Some(State::Checked), Action::Apply) => nodeps || dep_ok,
                        (Some(State::Applied), Action::Revert) => top.as_deref() == Some(name.as_str()),
                        (Some(State::Checked), Action::Replace) => name != "B",
                        _ => false,
                    };
                    prop_assert_eq!(r.is_ok(), want, "{:?} {} in {:?}: {:?}", a, name, applied, r);
                    if r.is_ok() && a != Action::Unload {
                        let o = e.run_pending(&mut s).unwrap();
                        let after: Vec<String> = e.applied().map(String::from).collect();
                        if timeout {
                            prop_assert_eq!(o.rc, -16);
                            prop_assert_eq!(&after, &applied, "a timeout changed the stack");
                        } else {
                            prop_assert_eq!(o.rc, 0);
                            let mut model = applied.clone();
                            match a {
                                Action::Apply => model.push(name.clone()),
                                Action::Revert => { model.pop(); }
                                Action::Replace => model = vec![name.clone()],
                                Action::Unload => {}
                            }
                            prop_assert_eq!(&after, &model);
                        }
                    }
                    prop_assert!(!e.pending());
                }
            }
            prop_assert_eq!(&s.text, &expected_text(&e), "text does not match the applied stack");
            // Memory: one live allocation per loaded payload.
            prop_assert_eq!(s.live.len(), e.payloads().len());
        }
    }
}
