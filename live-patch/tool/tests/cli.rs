//! The `livepatch` binary: keygen, sign, verify, inspect, and their refusals.

use livepatch_format::elf::R_X86_64_PLT32;
use livepatch_format::payload::Region;
use livepatch_format::write::{Builder, FuncSpec};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn tool(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_livepatch"))
        .args(args)
        .output()
        .expect("run livepatch")
}

fn ok(args: &[&str]) -> String {
    let o = tool(args);
    assert!(
        o.status.success(),
        "livepatch {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn fails(args: &[&str]) -> String {
    let o = tool(args);
    assert!(!o.status.success(), "livepatch {args:?} succeeded");
    String::from_utf8(o.stderr).unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("livepatch-cli")
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn payload() -> Vec<u8> {
    let mut b = Builder::new(&[0xab; 20]);
    let t = b.section(".text", Region::Text, 16, vec![0xe8, 0, 0, 0, 0, 0xc3]);
    let new = b.define("new_fn", t, 0, 6, true);
    let w = b.import("core::fmt::write", 0);
    b.reloc(t, 1, R_X86_64_PLT32, w, -4);
    let old = b.import("warden::version::extra_version", 0);
    b.func(FuncSpec {
        old,
        new: Some(new),
        old_size: 64,
        new_size: 6,
        expect: vec![0x55, 0x48],
    });
    b.meta("name", "hello");
    b.build()
}

#[test]
fn keygen_sign_verify_inspect() {
    let d = scratch("flow");
    let s = |p: &str| d.join(p).to_string_lossy().into_owned();
    let out = ok(&["keygen", "--comment", "ops", &s("ops")]);
    assert!(out.contains("key id "), "{out}");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(d.join("ops.key")).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "secret key must be private");
    assert!(fails(&["keygen", &s("ops")]).contains("not overwriting"));
    ok(&["keygen", &s("other")]);

    std::fs::write(d.join("p.elf"), payload()).unwrap();
    assert!(ok(&["inspect", &s("p.elf")]).contains("none (unsigned)"));
    assert!(fails(&["verify", "--keys", &s("ops.pub"), &s("p.elf")]).contains("not signed"));
    ok(&[
        "sign",
        "--key",
        &s("ops.key"),
        "-o",
        &s("p.lp"),
        &s("p.elf"),
    ]);
    assert!(
        fails(&[
            "sign",
            "--key",
            &s("ops.key"),
            "-o",
            &s("p2.lp"),
            &s("p.lp")
        ])
        .contains("already signed")
    );
    assert!(
        fails(&[
            "sign",
            "--key",
            &s("ops.pub"),
            "-o",
            &s("p2.lp"),
            &s("p.elf")
        ])
        .contains("this is a public key")
    );

    let v = ok(&["verify", "--keys", &s("ops.pub"), &s("p.lp")]);
    assert!(v.contains("signature: good") && v.contains("OK"), "{v}");
    let e = fails(&["verify", "--keys", &s("other.pub"), &s("p.lp")]);
    assert!(e.contains("unknown key"), "{e}");
    // A key ring with both keys works.
    let ring = format!(
        "{}{}",
        std::fs::read_to_string(d.join("other.pub")).unwrap(),
        std::fs::read_to_string(d.join("ops.pub")).unwrap()
    );
    std::fs::write(d.join("ring.pub"), ring).unwrap();
    ok(&["verify", "--keys", &s("ring.pub"), &s("p.lp")]);
    // One flipped byte.
    let mut bad = std::fs::read(d.join("p.lp")).unwrap();
    bad[100] ^= 1;
    std::fs::write(d.join("bad.lp"), bad).unwrap();
    assert!(fails(&["verify", "--keys", &s("ops.pub"), &s("bad.lp")]).contains("does not verify"));

    let i = ok(&["inspect", "--keys", &s("ops.pub"), &s("p.lp")]);
    for want in [
        "(verified)",
        "hypervisor:  abababab",
        "depends on:  the hypervisor only",
        "metadata:    name=hello",
        "warden::version::extra_version (64 bytes) -> new_fn (6 bytes); expects 2 bytes [5548]",
        "core::fmt::write",
    ] {
        assert!(i.contains(want), "inspect lacks {want:?}:\n{i}");
    }
    assert!(ok(&["inspect", "--keys", &s("other.pub"), &s("p.lp")]).contains("NOT VALID"));
}

#[test]
fn usage_errors() {
    assert_eq!(tool(&[]).status.code(), Some(2));
    assert!(fails(&["frobnicate"]).contains("unknown command"));
    assert!(fails(&["frobnicate", "--x"]).contains("unknown command"));
    assert!(fails(&["sign", "--bogus", "x"]).contains("unknown option --bogus"));
    assert!(fails(&["sign", "-o"]).contains("-o needs a value"));
    assert!(ok(&["build", "--help"]).contains("usage: livepatch <command>"));
    let e = fails(&[
        "build",
        "--source",
        "/src",
        "--image",
        "/i",
        "--patch",
        "/p.diff",
        "--key",
        "/k.key",
        "--work",
        "/src/lpwork",
    ]);
    assert!(e.contains("is inside the source tree"), "{e}");
    assert!(fails(&["sign", "x"]).contains("--key is required"));
    assert!(fails(&["verify", "--keys"]).contains("--keys needs a value"));
    assert!(ok(&["help"]).contains("usage: livepatch"));
}
