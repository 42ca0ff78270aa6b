//! The command line: checkpolicy's Xen-target traps (issue 4, item 8) each beaten,
//! atomic output, -E, check-only mode, and audit2allow on real policies.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn basic() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/accept/basic.conf")
}

fn run(args: &[&str]) -> (bool, String, String) {
    let o = Command::new(our_bin()).args(args).output().unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn version_24_warns_about_each_dropped_role_transition_and_devicetreecon() {
    let dir = scratch("trap-v24");
    let out = dir.join("p24");
    let (ok, _, err) = run(&[
        "-c",
        "24",
        "-o",
        out.to_str().unwrap(),
        basic().to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let src = std::fs::read_to_string(basic()).unwrap();
    let lines = |pat: &str| -> Vec<usize> {
        src.lines()
            .enumerate()
            .filter(|(_, l)| l.starts_with(pat))
            .map(|(i, _)| i + 1)
            .collect()
    };
    let rts = lines("role_transition");
    let dts = lines("devicetreecon");
    assert!(rts.len() >= 2 && dts.len() >= 2);
    for l in rts.iter().chain(&dts) {
        let loc = format!("basic.conf:{l}:");
        assert!(err.contains(&loc), "no warning at {loc}:\n{err}");
    }
    assert!(err.contains("cannot hold this role_transition"), "{err}");
    assert!(err.contains("devicetreecon `/soc/gpio`"), "{err}");
    // and the binary indeed has none (libsepol's view)
    let o = sepol_oracle::Oracle::load(&out, &[]).unwrap();
    assert!(!o.ocontexts().iter().any(|l| l.starts_with("devicetree")));
}

#[test]
fn pirqcon_above_65535_is_rejected_where_checkpolicy_truncates() {
    need_tools();
    let dir = scratch("trap-pirq");
    let src = std::fs::read_to_string(basic())
        .unwrap()
        .replace("pirqcon 33 ", "pirqcon 65569 ");
    let p = dir.join("pirq.conf");
    std::fs::write(&p, src).unwrap();
    // checkpolicy 3.4 accepts it and stores 65569 & 0xffff = 33
    let refp = dir.join("ref.bin");
    reference(std::slice::from_ref(&p), &[], false, &refp).unwrap();
    let o = sepol_oracle::Oracle::load(&refp, &[]).unwrap();
    assert!(
        o.ocontexts().iter().any(|l| l.starts_with("pirq 21 ")),
        "checkpolicy no longer truncates? {:?}",
        o.ocontexts()
    );
    drop(o);
    let ourp = dir.join("our.bin");
    let err = ours(std::slice::from_ref(&p), &[], &ourp).unwrap_err();
    assert!(
        err.contains("pirqcon 65569 is out of range: a PIRQ is 16 bits"),
        "{err}"
    );
    assert!(err.contains("pirq.conf:"), "{err}");
}

#[test]
fn a_failed_build_never_leaves_an_output_file() {
    need_tools();
    let dir = scratch("trap-atomic");
    // checkpolicy leaves a stub behind when writing fails (here: version 25)
    let stub = dir.join("ref-stub");
    let o = Command::new("checkpolicy")
        .args(["-t", "xen", "-c", "25", "-o"])
        .arg(&stub)
        .arg(basic())
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        stub.exists(),
        "checkpolicy no longer leaves a stub; keep the test honest"
    );
    // ours: a compile error leaves an existing output untouched...
    let out = dir.join("policy");
    std::fs::write(&out, b"previous").unwrap();
    let bad = dir.join("bad.conf");
    std::fs::write(&bad, "class c\n").unwrap();
    let (ok, _, _) = run(&["-o", out.to_str().unwrap(), bad.to_str().unwrap()]);
    assert!(!ok);
    assert_eq!(std::fs::read(&out).unwrap(), b"previous");
    // ...and a failed write (the output is a directory) leaves no temporary file
    let target = dir.join("is-a-dir");
    std::fs::create_dir_all(&target).unwrap();
    let (ok, _, err) = run(&["-o", target.to_str().unwrap(), basic().to_str().unwrap()]);
    assert!(!ok && err.contains("cannot write"), "{err}");
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    // a successful build writes the whole policy
    let (ok, _, err) = run(&["-o", out.to_str().unwrap(), basic().to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(sepol_oracle::Oracle::load(&out, &[]).is_ok());
}

#[test]
fn invalid_versions_get_a_clear_error_listing_24_and_30() {
    for v in ["25", "33", "abc", "31"] {
        let (ok, _, err) = run(&["-c", v, basic().to_str().unwrap()]);
        assert!(!ok);
        assert!(
            err.contains(&format!("invalid policy version `{v}`"))
                && err.contains("-c 24 or -c 30"),
            "{err}"
        );
    }
    let (ok, _, err) = run(&["-t", "selinux", basic().to_str().unwrap()]);
    assert!(!ok && err.contains("Xen-target policies only"), "{err}");
}

#[test]
fn check_only_and_expand_only() {
    let dir = scratch("cli-modes");
    let (ok, out, err) = run(&[basic().to_str().unwrap()]);
    assert!(ok && out.is_empty(), "{err}");
    let m4 = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/accept/macros.m4");
    let (ok, out, _) = run(&[
        "-E",
        "-D",
        "with_guest_pause",
        "-Dnguests=3",
        m4.to_str().unwrap(),
    ]);
    assert!(ok);
    assert!(
        out.contains("allow guest_type self:domain pause;") && !out.contains("define("),
        "{out}"
    );
    let bad = dir.join("bad.conf");
    std::fs::write(&bad, "class c\nsid k\nclass c { p }\ntype t\n").unwrap();
    let (ok, _, err) = run(&[bad.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("bad.conf:4:7: error: expected `;`"), "{err}");
    assert!(err.contains("  type t\n"), "source line missing: {err}");
    assert!(err.contains("1 error found; nothing written"), "{err}");
    // a plain policy.conf passes through the expander unchanged
    for f in ["basic.conf", "mls.conf"] {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/corpus/accept")
            .join(f);
        let (ok, out, _) = run(&["-E", p.to_str().unwrap()]);
        assert!(ok);
        assert_eq!(out, std::fs::read_to_string(&p).unwrap(), "{f}");
    }
    let (ok, out, _) = run(&["--help"]);
    assert!(ok && out.contains("audit2allow"));
}

#[test]
fn audit2allow_reads_denials_and_both_compilers_policies() {
    need_tools();
    let dir = scratch("audit2allow");
    let ourp = dir.join("our.bin");
    let refp = dir.join("ref.bin");
    ours(&[basic()], &[], &ourp).unwrap();
    reference(&[basic()], &[], false, &refp).unwrap();
    let log = "(XEN) avc:  denied  { 0x1 } for current=d1 scontext=system_u:vm_r:domU_t tcontext=system_u:system_r:xen_t tclass=xen\n\
               (XEN) avc:  denied  { settime } for current=d1 scontext=system_u:vm_r:domU_t tcontext=system_u:system_r:xen_t tclass=xen\n\
               (XEN) avc:  denied  { fly } for current=d1 scontext=system_u:vm_r:domU_t tcontext=system_u:system_r:ghost_t tclass=xen\n";
    for p in [&ourp, &refp] {
        let mut child = Command::new(our_bin())
            .args(["audit2allow"])
            .arg(p)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(log.as_bytes())
            .unwrap();
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success());
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            out.contains("# 2 denials\nallow domU_t xen_t:xen settime;"),
            "{out}"
        );
        assert!(
            out.contains("#!!!! type ghost_t is not in the policy"),
            "{out}"
        );
        assert!(
            out.contains("#!!!! xen has no permission fly in the policy"),
            "{out}"
        );
    }
}

#[test]
fn runaway_macros_fail_cleanly_with_the_default_limits() {
    // Each of these recurses forever in GNU m4. With the CLI's default limits
    // they must end in a located error: no stack overflow in the expander thread,
    // no hang, no unbounded memory (the exponential one once took 24 GB).
    let dir = scratch("runaway");
    for (i, src) in [
        "define(`a', `a(a')a\n",
        "define(`a', `a a')a\n",
        "define(`a', `a')a\n",
        "define(`d', `$1$1$1$1$1$1$1$1')d(d(d(d(d(d(d(d(d(d(x))))))))))\n",
    ]
    .iter()
    .enumerate()
    {
        let p = dir.join(format!("r{i}.m4"));
        std::fs::write(&p, src).unwrap();
        let t = std::time::Instant::now();
        let (ok, _, err) = run(&[p.to_str().unwrap()]);
        assert!(!ok);
        assert!(
            err.contains("is a macro recursive?") && err.contains(&format!("r{i}.m4:1:")),
            "{src}: {err}"
        );
        assert!(
            t.elapsed() < std::time::Duration::from_secs(120),
            "{src}: took {:?}",
            t.elapsed()
        );
    }
}

/// object_r is written dominating nothing and with no types, as checkpolicy
/// writes it (libsepol and Xen discard the record; Warden's loader must not
/// find a self-dominance there that makes `r1 dom r2` hold for object_r).
#[test]
fn object_r_record_is_written_as_checkpolicy_writes_it() {
    need_tools();
    let dir = scratch("object-r");
    for (name, out) in [
        ("ours", dir.join("ours.bin")),
        ("checkpolicy", dir.join("ref.bin")),
    ] {
        if name == "ours" {
            let (ok, _, err) = run(&["-o", out.to_str().unwrap(), basic().to_str().unwrap()]);
            assert!(ok, "{err}");
        } else {
            let o = Command::new("checkpolicy")
                .args(["-t", "xen", "-c", "30", "-o"])
                .arg(&out)
                .arg(basic())
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        }
        let b = std::fs::read(&out).unwrap();
        // role record: u32 name length, u32 value, u32 bounds, name, dominates, types
        let name_at = b
            .windows(20)
            .position(|w| {
                w[..12] == [8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0] && &w[12..] == b"object_r"
            })
            .unwrap_or_else(|| panic!("{name}: no object_r record"));
        let after = &b[name_at + 20..name_at + 20 + 24];
        let empty = [64u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(after[..12], empty, "{name}: object_r dominates something");
        assert_eq!(after[12..], empty, "{name}: object_r has types");
    }
}

/// Unquoted devicetreecon paths take every non-blank byte, as checkpolicy's
/// PATH token does (`/soc/serial@1c28000`, `,`, `:`, ...): both compilers'
/// policies hold the same device-tree contexts (and decisions), through libsepol.
#[test]
fn unquoted_devicetree_paths_match_checkpolicy() {
    need_tools();
    let src = std::fs::read_to_string(basic()).unwrap();
    for p in ["/soc/serial@1c28000", "/soc/i2c@1,2/eeprom:port+0=a~b!c"] {
        assert!(
            src.contains(&format!("devicetreecon {p} ")),
            "the corpus lacks {p}"
        );
    }
    let d = differential(
        "dtree-paths",
        &[basic()],
        &["-c".into(), "30".into()],
        false,
    );
    assert!(d.is_empty(), "{}", d.join("\n"));
}
