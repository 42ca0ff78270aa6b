//! Test support: builds policy.conf files from Warden's class definition and
//! the sources in tests/policies/, and compiles them with Debian's checkpolicy.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Panics with the install command if checkpolicy is missing (never skips).
pub fn require_checkpolicy() {
    let ok = Command::new("checkpolicy")
        .arg("-V")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "checkpolicy is required for this test: apt-get install -y checkpolicy libsepol-dev"
    );
}

/// policy.conf text: flask definition + (MLS declarations) + body files.
pub fn conf(bodies: &[&str], mls: bool) -> String {
    let flask = manifest().join("../policies/flask");
    let mut s = String::new();
    for f in ["security_classes", "initial_sids", "access_vectors"] {
        s += &std::fs::read_to_string(flask.join(f)).unwrap();
        s.push('\n');
    }
    if mls {
        s += &std::fs::read_to_string(manifest().join("tests/policies/mls_decl.te")).unwrap();
    }
    for b in bodies {
        s += &std::fs::read_to_string(manifest().join("tests/policies").join(b)).unwrap();
        s.push('\n');
    }
    s
}

/// A file in cargo's per-target scratch directory (target/tmp/xsm-tests/PID).
pub fn scratch(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("xsm-tests")
        .join(std::process::id().to_string());
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

/// Compiles `conf_text` with `checkpolicy -t xen -c VERSION [-M]`; returns the binary's path.
pub fn compile(name: &str, conf_text: &str, version: u32, mls: bool) -> PathBuf {
    require_checkpolicy();
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    // Tests run in parallel threads: every compilation gets its own files.
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let src = scratch(&format!("{name}.{n}.conf"));
    let out = scratch(&format!("{name}.{n}.{version}.bin"));
    std::fs::write(&src, conf_text).unwrap();
    let mut c = Command::new("checkpolicy");
    if mls {
        c.arg("-M");
    }
    let o = c
        .args(["-t", "xen", "-c", &version.to_string(), "-o"])
        .arg(&out)
        .arg(&src)
        .output()
        .expect("run checkpolicy");
    assert!(
        o.status.success(),
        "checkpolicy failed on {}:\n{}{}",
        src.display(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// The test policies: (name, bodies, version, mls).
pub fn variants() -> Vec<(&'static str, Vec<&'static str>, u32, bool)> {
    vec![
        ("base24", vec!["base.te"], 24, false),
        ("base30", vec!["base.te", "dtree.te"], 30, false),
        ("mls24", vec!["mls.te"], 24, true),
        ("mls30", vec!["mls.te"], 30, true),
        ("aliases30", vec!["aliases.te"], 30, false),
    ]
}

pub fn build(name: &str) -> PathBuf {
    let (n, bodies, v, mls) = variants()
        .into_iter()
        .find(|v| v.0 == name)
        .expect("variant");
    compile(n, &conf(&bodies, mls), v, mls)
}

pub fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap()
}
