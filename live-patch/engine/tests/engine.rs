//! The engine against a simulated image: the full life cycle, the stack,
//! REPLACE, NOP patches, hooks, and every refusal case of issue 6, each with
//! its own error, errno and log line, with the state proven unchanged.

mod common;

use common::*;
use livepatch_engine::{APPLY_NODEPS, Action, ActionError, Engine, State, UploadError, errno};
use livepatch_format::MAX_PAYLOAD_SIZE;
use livepatch_format::payload::{HookKind, PayloadError, Region};
use livepatch_format::sig::{KeyId, SigError, public_of};
use livepatch_format::write::{Builder, FuncSpec};

const APPLY: u32 = Action::Apply as u32;
const REVERT: u32 = Action::Revert as u32;
const REPLACE: u32 = Action::Replace as u32;
const UNLOAD: u32 = Action::Unload as u32;

/// Everything observable about the engine and the simulated machine.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    version: u32,
    payloads: Vec<(String, State, i32)>,
    applied: Vec<String>,
    text: Vec<u8>,
    live_allocs: usize,
    hooks_called: usize,
}

fn snap(e: &Engine<'_>, s: &Sim) -> Snapshot {
    Snapshot {
        version: e.version(),
        payloads: e
            .payloads()
            .iter()
            .map(|p| (p.name.clone(), p.state, p.rc))
            .collect(),
        applied: e.applied().map(String::from).collect(),
        text: s.text.clone(),
        live_allocs: s.live.len(),
        hooks_called: s.hooks.len(),
    }
}

/// Upload must fail with `want`, leave everything as it was, and log a line
/// naming the check.
fn refused(
    e: &mut Engine<'_>,
    s: &mut Sim,
    name: &str,
    file: &[u8],
    want: UploadError,
    errno: i32,
) {
    let before = snap(e, s);
    let got = e.upload(s, name, file).unwrap_err();
    assert_eq!(got, want);
    assert_eq!(got.errno(), errno, "errno of {got:?}");
    assert_eq!(snap(e, s), before, "state changed by a refused upload");
    let line = s.last_log();
    assert!(
        line.starts_with("Error: ")
            && line.contains(&format!(
                "upload refused, {} check failed: {got}",
                got.check()
            )),
        "log line {line:?}"
    );
}

fn act(e: &mut Engine<'_>, s: &mut Sim, name: &str, a: u32) {
    e.action(s, name, a, 0, 0).unwrap();
    if a == UNLOAD {
        assert!(e.get(name).is_none(), "UNLOAD is immediate");
        assert!(!e.pending());
        return;
    }
    assert_eq!(e.status(name).unwrap().1, -errno::EAGAIN);
    let o = e.run_pending(s).unwrap();
    assert_eq!(o.rc, 0, "{o:?}");
    assert_eq!(e.status(name).unwrap().1, 0);
}

#[test]
fn hello_apply_revert_apply_again() {
    let (mut e, mut s) = (engine(), Sim::new());
    let file = sign(&hello().build());
    e.upload(&mut s, "hello", &file).unwrap();
    assert!(s.last_log().contains("hello: uploaded"), "{}", s.last_log());
    assert!(
        s.last_log()
            .contains(&KeyId::of(&public_of(&SEED)).to_string())
    );
    assert_eq!(e.status("hello").unwrap(), (State::Checked, 0));
    assert_eq!(s.text, initial_text(), "upload must not touch text");

    let p = e.get("hello").unwrap().clone();
    let site = &p.sites[0];
    assert_eq!(site.old_addr, EXTRA.1);
    assert_eq!(site.at, EXTRA.1);
    // The installed code is relocated: lea -> the message, call -> core::fmt::write.
    let code = s.mem_at(site.new_addr, HELLO_CODE.len());
    let lea = i32::from_le_bytes(code[3..7].try_into().unwrap()) as i64;
    let msg_addr = (site.new_addr as i64 + 7 + lea) as u64;
    assert_eq!(s.mem_at(msg_addr, HELLO_MSG.len()), HELLO_MSG);
    let call = i32::from_le_bytes(code[8..12].try_into().unwrap()) as i64;
    assert_eq!((site.new_addr as i64 + 12 + call) as u64, FMT_WRITE.1);

    act(&mut e, &mut s, "hello", APPLY);
    assert_eq!(e.status("hello").unwrap(), (State::Applied, 0));
    let jmp = s.text_at(EXTRA.1, 5);
    assert_eq!(jmp[0], 0xe9);
    let rel = i32::from_le_bytes(jmp[1..5].try_into().unwrap()) as i64;
    assert_eq!((EXTRA.1 as i64 + 5 + rel) as u64, site.new_addr);
    assert_eq!(
        s.text[5..],
        initial_text()[5..],
        "only the 5 jump bytes change"
    );
    assert!(
        s.last_log().contains("hello: APPLY completed"),
        "{}",
        s.last_log()
    );
    assert!(
        s.last_log().contains("all CPUs held 12.345 us"),
        "{}",
        s.last_log()
    );

    act(&mut e, &mut s, "hello", REVERT);
    assert_eq!(e.status("hello").unwrap(), (State::Checked, 0));
    assert_eq!(s.text, initial_text(), "revert restores the old bytes");

    act(&mut e, &mut s, "hello", APPLY);
    assert_eq!(s.text_at(EXTRA.1, 5), jmp, "apply again works");
    act(&mut e, &mut s, "hello", REVERT);
    act(&mut e, &mut s, "hello", UNLOAD);
    assert!(e.payloads().is_empty());
    assert!(s.live.is_empty(), "unload frees the payload's memory");
    assert_eq!(s.text, initial_text());
}

#[test]
fn action_is_pending_until_run_and_busy_meanwhile() {
    let (mut e, mut s) = (engine(), Sim::new());
    e.upload(&mut s, "hello", &sign(&hello().build())).unwrap();
    e.upload(&mut s, "second", &sign(&patch_of(SECOND, "second").build()))
        .unwrap();
    e.action(&mut s, "hello", APPLY, 0, 0).unwrap();
    assert!(e.pending());
    assert_eq!(e.status("hello").unwrap(), (State::Checked, -errno::EAGAIN));
    assert_eq!(
        s.text,
        initial_text(),
        "nothing happens before the safe point"
    );
    let err = e.action(&mut s, "second", APPLY, 0, 0).unwrap_err();
    assert_eq!(err, ActionError::Busy);
    assert_eq!(err.errno(), errno::EBUSY);
    assert_eq!(
        e.action(&mut s, "hello", UNLOAD, 0, 0).unwrap_err(),
        ActionError::Busy
    );
    let o = e.run_pending(&mut s).unwrap();
    assert_eq!(
        (o.action, o.rc, o.held_ns),
        (Action::Apply, 0, Some(12_345))
    );
    assert!(e.run_pending(&mut s).is_none());
}

#[test]
fn timeout_leaves_everything_unchanged() {
    let (mut e, mut s) = (engine(), Sim::new());
    e.upload(&mut s, "hello", &sign(&hello().build())).unwrap();
    s.timeout = true;
    e.action(&mut s, "hello", APPLY, 1_000, 0).unwrap();
    let o = e.run_pending(&mut s).unwrap();
    assert_eq!(o.rc, -errno::EBUSY);
    assert_eq!(e.status("hello").unwrap(), (State::Checked, -errno::EBUSY));
    assert_eq!(s.text, initial_text());
    assert!(
        s.last_log().contains("timed out after 1000 ns"),
        "{}",
        s.last_log()
    );
    assert!(s.last_log().contains("nothing changed"));
    // And it can be retried.
    s.timeout = false;
    act(&mut e, &mut s, "hello", APPLY);
    // A timed-out revert leaves it applied.
    s.timeout = true;
    let jmp = s.text_at(EXTRA.1, 5);
    e.action(&mut s, "hello", REVERT, 0, 0).unwrap();
    assert_eq!(e.run_pending(&mut s).unwrap().rc, -errno::EBUSY);
    assert_eq!(e.status("hello").unwrap().0, State::Applied);
    assert_eq!(s.text_at(EXTRA.1, 5), jmp);
}

fn stacked_on(below: &[u8], target: (&str, u64, u64), tag: &str) -> Builder {
    let mut b = patch_of(target, tag);
    b.depends(below);
    b
}

#[test]
fn stack_order_and_dependencies() {
    let (mut e, mut s) = (engine(), Sim::new());
    e.upload(&mut s, "hello", &sign(&hello().build())).unwrap();
    let hello_id = e.get("hello").unwrap().build_id.clone();
    // bye patches the same function again, on top of hello.
    e.upload(
        &mut s,
        "bye",
        &sign(&stacked_on(&hello_id, EXTRA, "bye").build()),
    )
    .unwrap();
    // bye cannot be applied before hello.
    let before = snap(&e, &s);
    assert_eq!(
        e.action(&mut s, "bye", APPLY, 0, 0).unwrap_err(),
        ActionError::Dependency
    );
    assert_eq!(snap(&e, &s), before);
    act(&mut e, &mut s, "hello", APPLY);
    let hello_jmp = s.text_at(EXTRA.1, 5);
    act(&mut e, &mut s, "bye", APPLY);
    let bye = e.get("bye").unwrap().sites[0].clone();
    assert_ne!(
        s.text_at(EXTRA.1, 5),
        hello_jmp,
        "bye's jump replaces hello's"
    );
    assert_eq!(bye.saved[..5], hello_jmp[..]);
    assert_eq!(e.applied().collect::<Vec<_>>(), ["hello", "bye"]);
    // Only the top can be reverted; an applied payload cannot be unloaded.
    let err = e.action(&mut s, "hello", REVERT, 0, 0).unwrap_err();
    assert_eq!(err, ActionError::NotTop { top: "bye".into() });
    assert_eq!(err.errno(), errno::EBUSY);
    let err = e.action(&mut s, "hello", UNLOAD, 0, 0).unwrap_err();
    assert_eq!(err, ActionError::Applied);
    assert!(
        s.last_log()
            .contains("hello: UNLOAD refused: payload is applied"),
        "{}",
        s.last_log()
    );
    act(&mut e, &mut s, "bye", REVERT);
    assert_eq!(
        s.text_at(EXTRA.1, 5),
        hello_jmp,
        "reverting bye restores hello's jump"
    );
    act(&mut e, &mut s, "hello", REVERT);
    assert_eq!(s.text, initial_text());
    // A second base payload cannot go on top of an applied one (unless NODEPS).
    e.upload(&mut s, "second", &sign(&patch_of(SECOND, "second").build()))
        .unwrap();
    act(&mut e, &mut s, "hello", APPLY);
    assert_eq!(
        e.action(&mut s, "second", APPLY, 0, 0).unwrap_err(),
        ActionError::Dependency
    );
    e.action(&mut s, "second", APPLY, 0, APPLY_NODEPS).unwrap();
    assert_eq!(e.run_pending(&mut s).unwrap().rc, 0);
    assert_eq!(e.applied().collect::<Vec<_>>(), ["hello", "second"]);
}

#[test]
fn replace_swaps_the_whole_stack_in_one_rendezvous() {
    let (mut e, mut s) = (engine(), Sim::new());
    e.upload(&mut s, "hello", &sign(&hello().build())).unwrap();
    let hello_id = e.get("hello").unwrap().build_id.clone();
    e.upload(
        &mut s,
        "bye",
        &sign(&stacked_on(&hello_id, SECOND, "bye").build()),
    )
    .unwrap();
    act(&mut e, &mut s, "hello", APPLY);
    act(&mut e, &mut s, "bye", APPLY);
    // replace_world patches only SECOND.
    e.upload(
        &mut s,
        "replace",
        &sign(&patch_of(SECOND, "replace").build()),
    )
    .unwrap();
    // A stacked payload cannot REPLACE.
    let q = s.quiesces;
    e.action(&mut s, "replace", REPLACE, 0, 0).unwrap();
    e.run_pending(&mut s).unwrap();
    assert_eq!(s.quiesces, q + 1, "one rendezvous");
    assert_eq!(e.applied().collect::<Vec<_>>(), ["replace"]);
    assert_eq!(e.status("hello").unwrap().0, State::Checked);
    assert_eq!(e.status("bye").unwrap().0, State::Checked);
    assert_eq!(
        s.text_at(EXTRA.1, 9),
        orig_bytes(EXTRA.1, 9),
        "hello's site restored"
    );
    let r = e.get("replace").unwrap().sites[0].clone();
    assert_eq!(
        r.saved[..5],
        orig_bytes(SECOND.1, 5)[..],
        "replace saved the original bytes"
    );
    act(&mut e, &mut s, "replace", REVERT);
    assert_eq!(s.text, initial_text());
    // REPLACE needs a payload on the hypervisor, not on another payload.
    let err = e.action(&mut s, "bye", REPLACE, 0, 0).unwrap_err();
    assert_eq!(err, ActionError::ReplaceNotBase);
}

#[test]
fn nop_patch() {
    let (mut e, mut s) = (engine(), Sim::new());
    let mut b = Builder::new(&BUILD_ID);
    let old = b.import(SECOND.0, 0);
    b.func(FuncSpec {
        old,
        new: None,
        old_size: SECOND.2 as u32,
        new_size: 6,
        expect: orig_bytes(SECOND.1, 6),
    });
    // A payload needs a symbol table even without code.
    let t = b.section(".text", Region::Text, 16, vec![0xc3]);
    b.define("unused", t, 0, 1, true);
    e.upload(&mut s, "nop", &sign(&b.build())).unwrap();
    act(&mut e, &mut s, "nop", APPLY);
    assert_eq!(s.text_at(SECOND.1, 6), [0x66, 0x0f, 0x1f, 0x44, 0x00, 0x00]);
    act(&mut e, &mut s, "nop", REVERT);
    assert_eq!(s.text, initial_text());
    // NOPs after ENDBR64 keep the landing pad.
    let mut b = Builder::new(&BUILD_ID);
    let old = b.import(ENDBR_FN.0, 0);
    b.func(FuncSpec {
        old,
        new: None,
        old_size: ENDBR_FN.2 as u32,
        new_size: 2,
        expect: vec![],
    });
    let t = b.section(".text", Region::Text, 16, vec![0xc3]);
    b.define("unused", t, 0, 1, true);
    e.upload(&mut s, "nop2", &sign(&b.build())).unwrap();
    act(&mut e, &mut s, "nop2", APPLY);
    assert_eq!(
        s.text_at(ENDBR_FN.1, 6),
        [0xf3, 0x0f, 0x1e, 0xfa, 0x66, 0x90]
    );
}

#[test]
fn jump_goes_after_endbr64() {
    let (mut e, mut s) = (engine(), Sim::new());
    e.upload(&mut s, "e", &sign(&patch_of(ENDBR_FN, "e").build()))
        .unwrap();
    act(&mut e, &mut s, "e", APPLY);
    let site = e.get("e").unwrap().sites[0].clone();
    assert_eq!(site.at, ENDBR_FN.1 + 4);
    assert_eq!(s.text_at(ENDBR_FN.1, 5), [0xf3, 0x0f, 0x1e, 0xfa, 0xe9]);
}

fn with_hooks(kinds: &[HookKind]) -> Builder {
    let mut b = hello();
    let code = vec![0x31, 0xc0, 0xc3]; // xor eax,eax; ret
    for k in kinds {
        let t = b.section(
            &format!(".text.hook_{}", k.suffix()),
            Region::Text,
            16,
            code.clone(),
        );
        let sym = b.define(&format!("hook_{}", k.suffix()), t, 0, 3, true);
        b.hook(*k, sym);
    }
    b
}

fn hook_addr(e: &Engine<'_>, name: &str, k: HookKind) -> u64 {
    e.get(name)
        .unwrap()
        .hooks
        .iter()
        .find(|h| h.0 == k)
        .unwrap()
        .1
}

#[test]
fn hooks_run_exactly_once_each() {
    let (mut e, mut s) = (engine(), Sim::new());
    let all = HookKind::ALL;
    e.upload(&mut s, "hooks", &sign(&with_hooks(&all).build()))
        .unwrap();
    assert!(s.hooks.is_empty(), "no hook runs at upload");
    act(&mut e, &mut s, "hooks", APPLY);
    for k in [HookKind::PreApply, HookKind::Load, HookKind::PostApply] {
        assert_eq!(s.hook_calls(hook_addr(&e, "hooks", k)), 1, "{k:?}");
    }
    // Order: pre-apply, load (inside), post-apply.
    let order: Vec<u64> = s.hooks.clone();
    assert_eq!(
        order,
        [HookKind::PreApply, HookKind::Load, HookKind::PostApply]
            .map(|k| hook_addr(&e, "hooks", k))
    );
    act(&mut e, &mut s, "hooks", REVERT);
    for k in all {
        assert_eq!(s.hook_calls(hook_addr(&e, "hooks", k)), 1, "{k:?}");
    }
    // REPLACE refuses payloads with pre/post hooks, on either side.
    act(&mut e, &mut s, "hooks", APPLY);
    e.upload(&mut s, "replace", &sign(&patch_of(SECOND, "r").build()))
        .unwrap();
    let before = snap(&e, &s);
    let err = e.action(&mut s, "replace", REPLACE, 0, 0).unwrap_err();
    assert_eq!(err, ActionError::VetoingHooks);
    assert_eq!(err.errno(), errno::EOPNOTSUPP);
    assert_eq!(snap(&e, &s), before);
}

#[test]
fn load_hooks_are_fine_for_replace() {
    let (mut e, mut s) = (engine(), Sim::new());
    e.upload(
        &mut s,
        "hooks",
        &sign(&with_hooks(&[HookKind::Load, HookKind::Unload]).build()),
    )
    .unwrap();
    act(&mut e, &mut s, "hooks", APPLY);
    e.upload(&mut s, "r", &sign(&patch_of(SECOND, "r").build()))
        .unwrap();
    act(&mut e, &mut s, "r", REPLACE);
    assert_eq!(
        s.hook_calls(hook_addr(&e, "hooks", HookKind::Unload)),
        1,
        "replace reverted it"
    );
    assert_eq!(s.hook_calls(hook_addr(&e, "hooks", HookKind::Load)), 1);
}

#[test]
fn vetoing_pre_hook_stops_the_action() {
    let (mut e, mut s) = (engine(), Sim::new());
    e.upload(
        &mut s,
        "v",
        &sign(&with_hooks(&[HookKind::PreApply, HookKind::Load]).build()),
    )
    .unwrap();
    s.hook_rc
        .insert(hook_addr(&e, "v", HookKind::PreApply), -16);
    let err = e.action(&mut s, "v", APPLY, 0, 0).unwrap_err();
    assert_eq!(err, ActionError::Vetoed(-16));
    assert_eq!(err.errno(), errno::EBUSY);
    assert!(!e.pending());
    assert_eq!(e.status("v").unwrap(), (State::Checked, -16));
    assert_eq!(s.hook_calls(hook_addr(&e, "v", HookKind::Load)), 0);
    assert_eq!(s.text, initial_text());
}

#[test]
fn payload_with_data_cannot_be_reapplied_after_revert() {
    let (mut e, mut s) = (engine(), Sim::new());
    let mut b = hello();
    b.bss(".bss", 8, 64);
    e.upload(&mut s, "d", &sign(&b.build())).unwrap();
    act(&mut e, &mut s, "d", APPLY);
    act(&mut e, &mut s, "d", REVERT);
    let err = e.action(&mut s, "d", APPLY, 0, 0).unwrap_err();
    assert_eq!(err, ActionError::MustReload);
    act(&mut e, &mut s, "d", UNLOAD);
    e.upload(&mut s, "d", &sign(&b.build())).unwrap();
    act(&mut e, &mut s, "d", APPLY);
}

#[test]
fn wrong_state_and_unknown_names() {
    let (mut e, mut s) = (engine(), Sim::new());
    e.upload(&mut s, "hello", &sign(&hello().build())).unwrap();
    let before = snap(&e, &s);
    // Apply of an unknown name.
    let err = e.action(&mut s, "nope", APPLY, 0, 0).unwrap_err();
    assert_eq!(err, ActionError::NoSuchPayload);
    assert_eq!(err.errno(), errno::ENOENT);
    assert!(
        s.last_log()
            .contains("nope: APPLY refused: no payload of that name")
    );
    assert_eq!(e.status("nope").unwrap_err(), ActionError::NoSuchPayload);
    assert_eq!(
        e.action(&mut s, "hello", REVERT, 0, 0).unwrap_err(),
        ActionError::WrongState(State::Checked)
    );
    assert_eq!(
        e.action(&mut s, "hello", 9, 0, 0).unwrap_err(),
        ActionError::BadCommand
    );
    assert_eq!(
        e.action(&mut s, "hello", REVERT, 0, APPLY_NODEPS)
            .unwrap_err(),
        ActionError::BadCommand
    );
    assert_eq!(snap(&e, &s), before);
    act(&mut e, &mut s, "hello", APPLY);
    assert_eq!(
        e.action(&mut s, "hello", APPLY, 0, 0).unwrap_err(),
        ActionError::WrongState(State::Applied)
    );
    assert_eq!(
        e.action(&mut s, "hello", REPLACE, 0, 0).unwrap_err(),
        ActionError::WrongState(State::Applied)
    );
}

// ---- Refusals at upload (issue 6's list), each its own error ----

#[test]
fn refuse_unsigned() {
    let (mut e, mut s) = (engine(), Sim::new());
    let elf = hello().build();
    refused(
        &mut e,
        &mut s,
        "hello",
        &elf,
        UploadError::Signature(SigError::Unsigned),
        errno::ENODATA,
    );
}

#[test]
fn refuse_unknown_key() {
    let (mut e, mut s) = (engine(), Sim::new());
    let f = sign_with(&hello().build(), &OTHER_SEED);
    let id = KeyId::of(&public_of(&OTHER_SEED));
    refused(
        &mut e,
        &mut s,
        "hello",
        &f,
        UploadError::Signature(SigError::UnknownKey(id)),
        errno::ENOKEY,
    );
}

#[test]
fn refuse_every_flipped_byte() {
    // Exhaustive over positions: every byte of the file, ELF and trailer.
    let (mut e, mut s) = (engine(), Sim::new());
    let f = sign(&hello().build());
    let before = snap(&e, &s);
    let id = KeyId::of(&public_of(&SEED));
    for pos in 0..f.len() {
        let mut g = f.clone();
        g[pos] ^= 0x5a;
        let err = e.upload(&mut s, "hello", &g).unwrap_err();
        let tlen = livepatch_format::sig::TRAILER_LEN;
        let t = pos.checked_sub(f.len() - tlen);
        match t {
            // ELF bytes and the signature itself: the signature does not verify.
            None | Some(32..96) => assert_eq!(
                err,
                UploadError::Signature(SigError::BadSignature(id)),
                "pos {pos}"
            ),
            Some(0..8) => assert!(
                matches!(err, UploadError::Signature(SigError::Unsupported { .. })),
                "pos {pos}"
            ),
            Some(8..16) | Some(96..112) => {
                assert!(
                    matches!(err, UploadError::Signature(SigError::Malformed(_))),
                    "pos {pos}"
                )
            }
            Some(16..32) => assert!(
                matches!(err, UploadError::Signature(SigError::UnknownKey(_))),
                "pos {pos}"
            ),
            Some(_) => assert_eq!(err, UploadError::Signature(SigError::Unsigned), "pos {pos}"),
        }
        assert_eq!(snap(&e, &s), before, "pos {pos}");
    }
}

#[test]
fn refuse_other_hypervisor_build_id() {
    let (mut e, mut s) = (engine(), Sim::new());
    let mut b = hello();
    let other = [0xcd; 20];
    // Rebuild with another xen_depends.
    let elf = {
        let mut nb = Builder::new(&other);
        let _ = &mut b;
        let t = nb.section(".text", Region::Text, 16, vec![0xc3]);
        let new = nb.define("f", t, 0, 1, true);
        let old = nb.import(EXTRA.0, 0);
        nb.func(FuncSpec {
            old,
            new: Some(new),
            old_size: EXTRA.2 as u32,
            new_size: 1,
            expect: vec![],
        });
        nb.build()
    };
    refused(
        &mut e,
        &mut s,
        "x",
        &sign(&elf),
        UploadError::WrongHypervisor {
            found: other.to_vec(),
        },
        errno::EINVAL,
    );
}

#[test]
fn refuse_missing_dependency() {
    let (mut e, mut s) = (engine(), Sim::new());
    let missing = [0x77u8; 20];
    let f = sign(&stacked_on(&missing, SECOND, "bye").build());
    refused(
        &mut e,
        &mut s,
        "bye",
        &f,
        UploadError::MissingDependency {
            build_id: missing.to_vec(),
        },
        errno::ENOLINK,
    );
}

#[test]
fn refuse_truncated_elf() {
    let (mut e, mut s) = (engine(), Sim::new());
    let elf = hello().build();
    for cut in [0usize, 3, 63, elf.len() / 2, elf.len() - 1] {
        let f = sign(&elf[..cut]);
        let before = snap(&e, &s);
        let err = e.upload(&mut s, "t", &f).unwrap_err();
        assert!(
            matches!(err, UploadError::Format(PayloadError::Elf(_))),
            "cut {cut}: {err:?}"
        );
        assert_eq!(err.errno(), errno::ENOEXEC);
        assert_eq!(snap(&e, &s), before);
        assert!(
            s.last_log()
                .contains("format check failed: malformed payload"),
            "{}",
            s.last_log()
        );
    }
}

#[test]
fn refuse_malformed_elf() {
    let (mut e, mut s) = (engine(), Sim::new());
    let mut elf = hello().build();
    elf[18] = 3; // e_machine: i386
    let f = sign(&elf);
    refused(
        &mut e,
        &mut s,
        "m",
        &f,
        UploadError::Format(PayloadError::Elf(
            livepatch_format::elf::ElfError::Unsupported("machine is not x86-64"),
        )),
        errno::ENOEXEC,
    );
    refused(
        &mut e,
        &mut s,
        "m",
        &sign(b"not an elf at all"),
        UploadError::Format(PayloadError::Elf(livepatch_format::elf::ElfError::NotElf)),
        errno::ENOEXEC,
    );
}

#[test]
fn refuse_unknown_symbol() {
    let (mut e, mut s) = (engine(), Sim::new());
    let f = sign(&patch_of(("warden::no_such_function", TEXT, 0x40), "u").build());
    refused(
        &mut e,
        &mut s,
        "u",
        &f,
        UploadError::UnknownSymbol("warden::no_such_function".into()),
        errno::ENOENT,
    );
}

#[test]
fn refuse_ambiguous_symbol_and_accept_it_with_an_address() {
    let (mut e, mut s) = (engine(), Sim::new());
    let mut b = Builder::new(&BUILD_ID);
    let t = b.section(".text", Region::Text, 16, vec![0xc3]);
    let new = b.define("f", t, 0, 1, true);
    let old = b.import(DUP_A.0, 0);
    b.func(FuncSpec {
        old,
        new: Some(new),
        old_size: 0x20,
        new_size: 1,
        expect: vec![],
    });
    refused(
        &mut e,
        &mut s,
        "a",
        &sign(&b.build()),
        UploadError::AmbiguousSymbol {
            name: DUP_A.0.into(),
            count: 2,
        },
        errno::ENOTUNIQ,
    );
    // With the address of the second instance.
    let mut b = Builder::new(&BUILD_ID);
    let t = b.section(".text", Region::Text, 16, vec![0xc3]);
    let new = b.define("f", t, 0, 1, true);
    let old = b.import(DUP_B.0, DUP_B.1);
    b.func(FuncSpec {
        old,
        new: Some(new),
        old_size: 0x20,
        new_size: 1,
        expect: vec![],
    });
    e.upload(&mut s, "a", &sign(&b.build())).unwrap();
    assert_eq!(e.get("a").unwrap().sites[0].old_addr, DUP_B.1);
    // With a wrong address.
    let mut b = Builder::new(&BUILD_ID);
    let t = b.section(".text", Region::Text, 16, vec![0xc3]);
    let new = b.define("f", t, 0, 1, true);
    let old = b.import(DUP_B.0, DUP_B.1 + 1);
    b.func(FuncSpec {
        old,
        new: Some(new),
        old_size: 0x20,
        new_size: 1,
        expect: vec![],
    });
    refused(
        &mut e,
        &mut s,
        "b",
        &sign(&b.build()),
        UploadError::SymbolAddressMismatch {
            name: DUP_B.0.into(),
            expected: DUP_B.1 + 1,
        },
        errno::ESRCH,
    );
}

#[test]
fn refuse_old_bytes_mismatch() {
    let (mut e, mut s) = (engine(), Sim::new());
    let mut b = Builder::new(&BUILD_ID);
    let t = b.section(".text", Region::Text, 16, vec![0xc3]);
    let new = b.define("f", t, 0, 1, true);
    let old = b.import(EXTRA.0, 0);
    let mut expect = orig_bytes(EXTRA.1, 8);
    expect[7] ^= 1;
    b.func(FuncSpec {
        old,
        new: Some(new),
        old_size: EXTRA.2 as u32,
        new_size: 1,
        expect,
    });
    refused(
        &mut e,
        &mut s,
        "o",
        &sign(&b.build()),
        UploadError::OldBytesMismatch {
            name: EXTRA.0.into(),
        },
        errno::EILSEQ,
    );
}

#[test]
fn expected_bytes_are_checked_against_the_original_even_when_patched() {
    let (mut e, mut s) = (engine(), Sim::new());
    e.upload(&mut s, "hello", &sign(&hello().build())).unwrap();
    act(&mut e, &mut s, "hello", APPLY);
    let id = e.get("hello").unwrap().build_id.clone();
    // bye expects EXTRA's original bytes although hello's jump is there now.
    e.upload(&mut s, "bye", &sign(&stacked_on(&id, EXTRA, "bye").build()))
        .unwrap();
    act(&mut e, &mut s, "bye", APPLY);
}

#[test]
fn refuse_function_too_small() {
    let (mut e, mut s) = (engine(), Sim::new());
    let f = sign(&patch_of(TINY, "tiny").build());
    refused(
        &mut e,
        &mut s,
        "tiny",
        &f,
        UploadError::FunctionTooSmall {
            name: TINY.0.into(),
            size: 4,
            need: 5,
        },
        errno::ENOSPC,
    );
    // 8 bytes are enough for a jump but not after ENDBR64 (needs 9).
    let f = sign(&patch_of(ENDBR_TINY, "et").build());
    refused(
        &mut e,
        &mut s,
        "et",
        &f,
        UploadError::FunctionTooSmall {
            name: ENDBR_TINY.0.into(),
            size: 8,
            need: 9,
        },
        errno::ENOSPC,
    );
}

#[test]
fn refuse_over_the_size_limit() {
    let (mut e, mut s) = (engine(), Sim::new());
    let mut b = hello();
    b.section(
        ".rodata.big",
        Region::ReadOnly,
        8,
        vec![0; MAX_PAYLOAD_SIZE],
    );
    let f = sign(&b.build());
    let size = f.len();
    refused(
        &mut e,
        &mut s,
        "big",
        &f,
        UploadError::TooLarge {
            size,
            max: MAX_PAYLOAD_SIZE,
        },
        errno::E2BIG,
    );
}

#[test]
fn refuse_names() {
    let (mut e, mut s) = (engine(), Sim::new());
    let f = sign(&hello().build());
    refused(&mut e, &mut s, "", &f, UploadError::BadName, errno::EINVAL);
    refused(
        &mut e,
        &mut s,
        "a/b",
        &f,
        UploadError::BadName,
        errno::EINVAL,
    );
    refused(
        &mut e,
        &mut s,
        &"x".repeat(128),
        &f,
        UploadError::BadName,
        errno::EINVAL,
    );
    e.upload(&mut s, &"x".repeat(127), &f).unwrap();
    let f2 = sign(&patch_of(SECOND, "s").build());
    refused(
        &mut e,
        &mut s,
        &"x".repeat(127),
        &f2,
        UploadError::NameExists,
        errno::EEXIST,
    );
    refused(
        &mut e,
        &mut s,
        "again",
        &f,
        UploadError::DuplicateBuildId {
            other: "x".repeat(127),
        },
        errno::EEXIST,
    );
}

#[test]
fn refuse_non_functions_and_outside_text_and_size_mismatch() {
    let (mut e, mut s) = (engine(), Sim::new());
    let f = sign(&patch_of(DATA, "d").build());
    refused(
        &mut e,
        &mut s,
        "d",
        &f,
        UploadError::NotAFunction(DATA.0.into()),
        errno::EINVAL,
    );
    let f = sign(&patch_of((EXTRA.0, EXTRA.1, 0x41), "w").build());
    refused(
        &mut e,
        &mut s,
        "w",
        &f,
        UploadError::OldSizeMismatch {
            name: EXTRA.0.into(),
            table: 0x40,
            payload: 0x41,
        },
        errno::EINVAL,
    );
}

#[test]
fn refuse_out_of_memory_and_overflowing_relocations() {
    let (mut e, mut s) = (engine(), Sim::new());
    s.fail_alloc = true;
    refused(
        &mut e,
        &mut s,
        "h",
        &sign(&hello().build()),
        UploadError::OutOfMemory,
        errno::ENOMEM,
    );
    s.fail_alloc = false;
    // Memory beyond +-2 GiB: the PC-relative call cannot reach.
    s.next = 0x2_0000_0000;
    let before = snap(&e, &s);
    let err = e.upload(&mut s, "h", &sign(&hello().build())).unwrap_err();
    assert!(
        matches!(err, UploadError::RelocationOverflow { .. }),
        "{err:?}"
    );
    assert_eq!(err.errno(), errno::ERANGE);
    assert_eq!(snap(&e, &s), before, "the allocation is freed");
    assert_eq!(s.freed, 1);
}

#[test]
fn refuse_jump_out_of_range() {
    let (mut e, mut s) = (engine(), Sim::new());
    s.next = 0x2_0000_0000;
    let mut b = Builder::new(&BUILD_ID);
    let t = b.section(".text", Region::Text, 16, vec![0xc3]);
    let new = b.define("f", t, 0, 1, true);
    let old = b.import(EXTRA.0, 0);
    b.func(FuncSpec {
        old,
        new: Some(new),
        old_size: EXTRA.2 as u32,
        new_size: 1,
        expect: vec![],
    });
    refused(
        &mut e,
        &mut s,
        "j",
        &sign(&b.build()),
        UploadError::JumpOutOfRange {
            name: EXTRA.0.into(),
        },
        errno::ERANGE,
    );
}

#[test]
fn every_upload_error_is_distinct() {
    // The refusal cases of issue 6 map to different errors and log checks.
    let cases: Vec<UploadError> = vec![
        UploadError::Signature(SigError::Unsigned),
        UploadError::Signature(SigError::BadSignature(KeyId([0; 16]))),
        UploadError::Signature(SigError::UnknownKey(KeyId([0; 16]))),
        UploadError::WrongHypervisor { found: vec![] },
        UploadError::MissingDependency { build_id: vec![] },
        UploadError::Format(PayloadError::MissingSection("x")),
        UploadError::UnknownSymbol(String::new()),
        UploadError::OldBytesMismatch {
            name: String::new(),
        },
        UploadError::FunctionTooSmall {
            name: String::new(),
            size: 0,
            need: 0,
        },
        UploadError::TooLarge { size: 0, max: 0 },
    ];
    let errnos: std::collections::BTreeSet<i32> = cases.iter().map(|c| c.errno()).collect();
    assert_eq!(errnos.len(), cases.len(), "errnos: {errnos:?}");
}
