//! `livepatch build` on real patches of the hypervisor source: a payload is
//! made for a changed function (and passes the hypervisor's own upload
//! checks against the image), and what cannot be patched live is refused
//! with the reason. Builds the hypervisor several times: the test image
//! (`test-hooks`), so the original tree's build in the shared work directory
//! is the one the QEMU tests' payloads use too.

use livepatch::build::{Options, build, check_reproduces};
use livepatch::image::ImageFile;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The features of the image the payloads are for.
const FEATURES: &[&str] = &["test-hooks"];

/// The test image (`warden-test`, the QEMU tests' image: the original tree's
/// build in the shared work directory serves both them and this test), built
/// once for both tests (xtask's temporary file name is per process, so two
/// threads must not build it at once).
fn image() -> PathBuf {
    static IMAGE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    IMAGE
        .get_or_init(|| xtask::build::build_image(true).expect("build the image"))
        .clone()
}

fn scratch() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("livepatch-build");
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A unified diff replacing `from` by `to` in the source file `rel`.
fn diff(dir: &Path, name: &str, rel: &str, from: &str, to: &str) -> PathBuf {
    diff_all(dir, name, rel, &[(from, to)])
}

/// A unified diff making several replacements in one source file.
fn diff_all(dir: &Path, name: &str, rel: &str, edits: &[(&str, &str)]) -> PathBuf {
    diff_on(dir, name, rel, &[], edits)
}

/// A unified diff of `edits` against the source with `below` already applied.
fn diff_on(
    dir: &Path,
    name: &str,
    rel: &str,
    below: &[(&str, &str)],
    edits: &[(&str, &str)],
) -> PathBuf {
    let mut orig = std::fs::read_to_string(root().join(rel)).unwrap();
    for (from, to) in below {
        orig = orig.replacen(from, to, 1);
    }
    let mut new = orig.clone();
    for (from, to) in edits {
        assert!(
            new.contains(from),
            "{rel} no longer contains {from:?}; update this test"
        );
        new = new.replacen(from, to, 1);
    }
    let (a, b) = (dir.join(format!("{name}.a")), dir.join(format!("{name}.b")));
    std::fs::write(&a, orig).unwrap();
    std::fs::write(&b, new).unwrap();
    let out = Command::new("diff")
        .args([
            "-u",
            "--label",
            &format!("a/{rel}"),
            "--label",
            &format!("b/{rel}"),
        ])
        .arg(&a)
        .arg(&b)
        .output()
        .expect("diff (diffutils)");
    let p = dir.join(format!("{name}.diff"));
    std::fs::write(&p, out.stdout).unwrap();
    p
}

/// A copy of the source tree outside `target/` with an operator's secret
/// keys in it, as the README's walk-through once had (`keys/ops.key`), one
/// of them under a name that does not say what it is.
fn source_with_keys() -> PathBuf {
    let src = std::env::temp_dir().join(format!("livepatch-build-src-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&src);
    livepatch::build::tree::sync(&root(), &src).unwrap();
    livepatch::keygen_from_seed(&src.join("keys/ops"), "ops", &[5; 32]).unwrap();
    let secret = std::fs::read(src.join("keys/ops.key")).unwrap();
    std::fs::write(src.join("keys/backup.txt"), secret).unwrap();
    assert_eq!(
        livepatch::build::tree::private_keys_under(&src).len(),
        2,
        "the source holds the planted keys"
    );
    src
}

#[test]
fn build_payloads_from_source_patches() {
    let image = image();
    let d = scratch();
    livepatch::keygen_from_seed(&d.join("k"), "test", &[9; 32]).unwrap();
    let source = source_with_keys();
    let work = livepatch::build::default_work_dir(&root());
    let opts = |name: &str, patch: PathBuf| Options {
        source: source.clone(),
        image: image.clone(),
        patch,
        on_top_of: vec![],
        depends: None,
        key: d.join("k.key"),
        output: d.join(format!("{name}.livepatch")),
        name: name.to_string(),
        description: Some("test".into()),
        features: FEATURES.iter().map(|f| f.to_string()).collect(),
        // The default work directory, shared with the QEMU tests' payloads:
        // unchanged trees do not rebuild, a patch rebuilds what it changes.
        work: work.clone(),
    };

    // A changed string in one function: one function patched.
    let p = diff(
        &d,
        "section",
        "hypervisor/src/image.rs",
        "Some(\".text (read-only, executable)\")",
        "Some(\".text (read-only, executable; live-patched)\")",
    );
    let r = build(&opts("section", p)).expect("build the payload");
    let names: Vec<&str> = r.functions.iter().map(|f| f.0.as_str()).collect();
    assert_eq!(names, ["warden::image::section_of"]);
    let img = ImageFile::read(&image).unwrap();
    let keys = livepatch::public_keys(&d.join("k.pub")).unwrap();
    let file = std::fs::read(&r.output).unwrap();
    let report = livepatch::verify(&file, &keys, Some(&img)).unwrap();
    assert!(report.contains("every upload check passes"), "{report}");
    let inspect = livepatch::inspect(&file, Some(&keys)).unwrap();
    assert!(
        inspect.contains("warden::image::section_of @0x"),
        "{inspect}"
    );
    assert!(inspect.contains("metadata:    name=section"), "{inspect}");

    // A payload stacked on that one, changing another function.
    let section_edit = [(
        "Some(\".text (read-only, executable)\")",
        "Some(\".text (read-only, executable; live-patched)\")",
    )];
    let p = diff_on(
        &d,
        "stacked",
        "hypervisor/src/image.rs",
        &section_edit,
        &[("f.write_str(\"<none>\")", "f.write_str(\"<no build-id>\")")],
    );
    let mut o = opts("stacked", p);
    o.depends = Some(r.output.clone());
    o.on_top_of = vec![d.join("section.diff")];
    let s = build(&o).expect("build the stacked payload");
    let names: Vec<&str> = s.functions.iter().map(|f| f.0.as_str()).collect();
    assert_eq!(names, ["<warden::image::Hex as core::fmt::Display>::fmt"]);
    let sfile = std::fs::read(&s.output).unwrap();
    let sinfo = livepatch::inspect(&sfile, Some(&keys)).unwrap();
    assert!(
        sinfo.contains(&format!(
            "depends on:  {}",
            livepatch_format::Hex(&r.build_id)
        )),
        "{sinfo}"
    );
    // The engine takes both, in stack order, against the image.
    let mut e = livepatch_engine::Engine::new(img.image(), &keys);
    let mut plat = livepatch::image::FilePlatform::new(&img);
    let err = e.upload(&mut plat, "stacked", &sfile).unwrap_err();
    assert_eq!(err.check(), "dependency");
    e.upload(&mut plat, "section", &file).unwrap();
    e.upload(&mut plat, "stacked", &sfile).unwrap();

    // One patch of two files (one build), each change refused on its own
    // account, and the refusal names both: a changed initial value of a
    // static, and a new writable static.
    let changed = diff(
        &d,
        "static",
        "hypervisor/src/time.rs",
        "static TSC_HZ: AtomicU64 = AtomicU64::new(0);",
        "static TSC_HZ: AtomicU64 = AtomicU64::new(1);",
    );
    let added = diff(
        &d,
        "newstatic",
        "hypervisor/src/image.rs",
        "#[inline(never)]\npub fn section_of(addr: u64) -> Option<&'static str> {\n",
        "pub static PATCHED_CALLS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);\n#[inline(never)]\npub fn section_of(addr: u64) -> Option<&'static str> {\n    PATCHED_CALLS.fetch_add(1, core::sync::atomic::Ordering::Relaxed);\n",
    );
    let both = d.join("statics.diff");
    let mut text = std::fs::read(&changed).unwrap();
    text.extend(std::fs::read(&added).unwrap());
    std::fs::write(&both, text).unwrap();
    let e = build(&opts("statics", both)).unwrap_err().0;
    assert!(
        e.contains("changed static data: warden::time::TSC_HZ"),
        "{e}"
    );
    assert!(
        e.contains("new static data: warden::image::PATCHED_CALLS"),
        "{e}"
    );

    // A struct gains a field (it lives on the stack only, so no static
    // shows it): refused from the type information.
    let p = diff_all(
        &d,
        "layout",
        "hypervisor/src/image.rs",
        &[
            (
                "    pub data: PhysRange,\n}",
                "    pub data: PhysRange,\n    pub generation: u64,\n}",
            ),
            (
                "        data: PhysRange::new(addr!(__data_start), addr!(__bss_end)),\n",
                "        data: PhysRange::new(addr!(__data_start), addr!(__bss_end)),\n        generation: 1,\n",
            ),
        ],
    );
    let e = build(&opts("layout", p)).unwrap_err().0;
    assert!(
        e.contains("changed data layout: warden::image::Layout (size 64 -> 72 bytes)"),
        "{e}"
    );

    // A comment-only change patches nothing.
    let p = diff(
        &d,
        "comment",
        "hypervisor/src/time.rs",
        "static TSC_HZ",
        "// comment\nstatic TSC_HZ",
    );
    let e = build(&opts("comment", p)).unwrap_err().0;
    assert!(e.contains("changes no function"), "{e}");

    // A diff that does not apply.
    let bad = d.join("bad.diff");
    std::fs::write(
        &bad,
        "--- a/hypervisor/src/nope.rs\n+++ b/hypervisor/src/nope.rs\n@@ -1 +1 @@\n-x\n+y\n",
    )
    .unwrap();
    let e = build(&opts("bad", bad)).unwrap_err().0;
    assert!(e.contains("does not apply"), "{e}");

    // No private key was copied: the work directory under target/ (every
    // tree and build in it) holds none, though the source held two.
    let keys = livepatch::build::tree::private_keys_under(&work);
    assert!(
        keys.is_empty(),
        "private keys in the work directory: {keys:?}"
    );
    assert!(work.starts_with(root().join("target")));
    let _ = std::fs::remove_dir_all(&source);
}

#[test]
fn a_different_image_is_not_reproduced() {
    let image = image();
    let data = std::fs::read(&image).unwrap();
    check_reproduces(&data, &data).unwrap();
    let f = ImageFile::parse(&data).unwrap();
    let mut other = data.clone();
    // Flip a byte inside .text (file offset of the text start + 0x40).
    let text_off = {
        use object::{Object, ObjectSection};
        let o = object::File::parse(&*data).unwrap();
        o.section_by_name(".text").unwrap().file_range().unwrap().0 as usize
    };
    other[text_off + 0x40] ^= 0xff;
    let e = check_reproduces(&data, &other).unwrap_err().0;
    assert!(
        e.contains(&format!(".text differs at {:#x}", f.text_addr + 0x40)),
        "{e}"
    );
}
