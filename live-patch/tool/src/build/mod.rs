//! `livepatch build`: a payload from a unified diff against the hypervisor
//! source of a given build (the approach of Xen's livepatch-build-tools).
//!
//! 1. Copy the source tree twice (`orig/`, `patched/`, without `target/`
//!    and `.git/`) and apply the diff to `patched/` (with `--on-top-of`
//!    diffs: those go into both, and a third copy `base/` is the diff base).
//! 2. Build each with the image's own flags (`xtask::build::RUSTFLAGS`,
//!    release, full DWARF as `xtask::build::IMAGE_DEBUG`, the same features)
//!    plus `--emit-relocs` and a linker map. rustc puts every function in its
//!    own section on ELF targets, so the map lists one input section per
//!    function; the DWARF gives the type layouts for step 4.
//! 3. Check that `orig/` reproduces the given image: every loaded section
//!    (text, rodata, data, GOT) byte for byte, so old functions, their bytes
//!    and every symbol address the payload uses are the running image's.
//!    (The GNU build-id itself differs when the tree is built in another
//!    directory: debug info holds absolute paths; the payload records the
//!    given image's build-id.)
//! 4. Compare base and patched function by function ([`diff`]) and refuse,
//!    naming the reason, what cannot be patched safely.
//! 5. Write the payload, sign it, and run the hypervisor's own upload
//!    checks on it against the given image.

pub mod diff;
pub mod layout;
pub mod linked;
pub mod tree;

use crate::image::ImageFile;
use crate::{Error, Result};
use linked::Linked;
use livepatch_format::Hex;
use livepatch_format::payload::Payload;
use livepatch_format::sig::{self, TrustedKey};
use object::{Object, ObjectSection};
use std::path::{Path, PathBuf};
use std::process::Command;

/// What `livepatch build` needs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Hypervisor source tree (the workspace root) the image was built from.
    pub source: PathBuf,
    /// The image the payload is for (as built by `cargo xtask build`).
    pub image: PathBuf,
    /// The unified diff (applied with `patch -p1`).
    pub patch: PathBuf,
    /// Diffs of the payloads below this one in the stack, in order.
    pub on_top_of: Vec<PathBuf>,
    /// The payload below this one (its build-id goes into `.livepatch.depends`).
    pub depends: Option<PathBuf>,
    /// Secret key to sign with.
    pub key: PathBuf,
    pub output: PathBuf,
    /// Metadata `name=` (and the default file name).
    pub name: String,
    pub description: Option<String>,
    /// Cargo features of the image (e.g. `test-hooks` for `warden-test`).
    pub features: Vec<String>,
    /// Scratch directory (kept for inspection).
    pub work: PathBuf,
}

/// What the build produced.
#[derive(Debug, Clone)]
pub struct Report {
    pub output: PathBuf,
    pub size: usize,
    pub build_id: Vec<u8>,
    pub functions: Vec<(String, u64, u64)>,
    pub units: usize,
}

fn apply_patch(dir: &Path, patch: &Path) -> Result<()> {
    let patch = std::fs::canonicalize(patch).map_err(|e| Error::io(patch, e))?;
    let out = Command::new("patch")
        .args([
            "-p1",
            "--batch",
            "--forward",
            "--no-backup-if-mismatch",
            "-i",
        ])
        .arg(&patch)
        .current_dir(dir)
        .output()
        .map_err(|e| Error(format!("cannot run patch (apt-get install patch): {e}")))?;
    if !out.status.success() {
        return Err(Error(format!(
            "{} does not apply to the source:\n{}{}",
            patch.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(())
}

/// Hold the work directory for this build: two builds in one work
/// directory wait for each other (the trees are shared).
fn lock_work_dir(work: &Path) -> Result<std::fs::File> {
    let p = work.join(".lock");
    let f = std::fs::File::create(&p).map_err(|e| Error::io(&p, e))?;
    match f.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            eprintln!("livepatch: waiting for another build in {}", work.display());
            f.lock().map_err(|e| Error::io(&p, e))?;
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&p, e)),
    }
    Ok(f)
}

/// Mirror the source into `work/NAME` with `patches` applied (in order).
/// The patches are applied to a staging copy first, so a file the patches
/// leave as it was keeps its modification time in `work/NAME` too.
fn prepare_tree(o: &Options, name: &str, patches: &[&Path]) -> Result<()> {
    let stage = o.work.join("stage");
    tree::sync(&o.source, &stage)?;
    for p in patches {
        apply_patch(&stage, p)?;
    }
    tree::sync(&stage, &o.work.join(name))?;
    Ok(())
}

/// The default work directory of `livepatch build` for a source tree:
/// `SOURCE/target/livepatch-build`, shared by every payload built from that
/// source, so each build recompiles only what its patch changes.
pub fn default_work_dir(source: &Path) -> PathBuf {
    source.join("target").join("livepatch-build")
}

/// Build the image in `dir` for analysis; returns (ELF, map).
fn build_tree(
    dir: &Path,
    target: &Path,
    features: &[String],
    what: &str,
) -> Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(target).map_err(|e| Error::io(target, e))?;
    let map = target.join(format!("{what}.map"));
    // The flags of every crate are the same in every tree (so a tree made
    // from orig's copy reuses its builds: see [`seed_tree`]); the linker map,
    // whose path is the tree's own, is an argument of the final crate only.
    let flags = format!("{} -Clink-arg=-Wl,--emit-relocs", xtask::build::RUSTFLAGS);
    let link = [format!("-Clink-arg=-Wl,-Map={}", map.display())];
    // The linker writes the map only when it links. Cargo hands out a
    // binary it linked earlier for the same features without linking again,
    // so after a build with other features (the QEMU tests' payloads use
    // `test-hooks`, the tool's own test none, in the same work directory)
    // the map would be the other build's. Keep each feature set's map of its
    // last link beside it, and force a link when there is none.
    let kept = target.join(format!("{what}.last-link{}.map", feature_suffix(features)));
    let started = std::time::SystemTime::now();
    let mut elf = cargo_build(dir, target, features, what, &flags, &link)?;
    if !written_since(&map, started) && !kept.is_file() {
        let deps = target
            .join(xtask::build::TARGET)
            .join("release")
            .join("deps");
        for e in std::fs::read_dir(&deps).map_err(|e| Error::io(&deps, e))? {
            let e = e.map_err(|e| Error::io(&deps, e))?;
            if e.file_name().to_string_lossy().starts_with("warden-") {
                std::fs::remove_file(e.path()).map_err(|err| Error::io(&e.path(), err))?;
            }
        }
        elf = cargo_build(dir, target, features, what, &flags, &link)?;
        if !written_since(&map, started) {
            return Err(Error(format!(
                "building the {what} hypervisor wrote no linker map ({})",
                map.display()
            )));
        }
    }
    if written_since(&map, started) {
        std::fs::copy(&map, &kept).map_err(|e| Error::io(&map, e))?;
    }
    Ok((elf, kept))
}

/// `-` and the features joined with `+` (empty for none): file-name part.
fn feature_suffix(features: &[String]) -> String {
    if features.is_empty() {
        return String::new();
    }
    let joined: String = features
        .join("+")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '+' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("-{joined}")
}

/// Was `path` written at or after `t`?
fn written_since(path: &Path, t: std::time::SystemTime) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .is_ok_and(|m| m >= t)
}

fn cargo_build(
    dir: &Path,
    target: &Path,
    features: &[String],
    what: &str,
    flags: &str,
    final_args: &[String],
) -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    // Built as `cargo xtask` builds the image: never as nightly (a
    // RUSTC_BOOTSTRAP in the environment changes the code; see
    // xtask::build::build_bare_metal).
    cmd.env_remove("RUSTC_BOOTSTRAP");
    cmd.current_dir(dir)
        .args([
            "rustc",
            "--release",
            "--package",
            "warden",
            "--bin",
            "warden",
            "--target",
            xtask::build::TARGET,
        ])
        .arg("--target-dir")
        .arg(target)
        .env("RUSTFLAGS", flags)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("WARDEN_TARGET_DIR")
        .env("CARGO_PROFILE_RELEASE_STRIP", "none")
        // The image's debug-info level: it changes the code, and its full
        // DWARF gives the type layouts.
        .env("CARGO_PROFILE_RELEASE_DEBUG", xtask::build::IMAGE_DEBUG)
        // The image's trusted keys are part of its .rodata: build with the
        // same ring (WARDEN_LIVEPATCH_KEYS, else the development key's).
        .env(
            "WARDEN_LIVEPATCH_KEYS",
            xtask::build::livepatch_keys().map_err(|e| Error(e.to_string()))?,
        );
    if !features.is_empty() {
        cmd.arg("--features").arg(features.join(","));
    }
    if !final_args.is_empty() {
        cmd.arg("--").args(final_args);
    }
    eprintln!(
        "livepatch: building the {what} hypervisor ({})",
        dir.display()
    );
    let status = cmd
        .status()
        .map_err(|e| Error(format!("cannot run cargo: {e}")))?;
    if !status.success() {
        return Err(Error(format!(
            "building the {what} hypervisor failed ({status})"
        )));
    }
    let elf = target
        .join(xtask::build::TARGET)
        .join("release")
        .join("warden");
    let keep = target.join(format!("{what}.elf"));
    std::fs::copy(&elf, &keep).map_err(|e| Error::io(&elf, e))?;
    Ok(keep)
}

/// Check that `built` has the same loaded contents as `image`.
pub fn check_reproduces(image: &[u8], built: &[u8]) -> Result<()> {
    let a = object::File::parse(image).map_err(|e| Error(format!("image: {e}")))?;
    let b = object::File::parse(built).map_err(|e| Error(format!("rebuild: {e}")))?;
    let loaded = |f: &object::File<'_>| -> Vec<(String, u64, u64)> {
        f.sections()
            .filter(|s| s.address() != 0 && s.size() != 0)
            .map(|s| (s.name().unwrap_or("").to_string(), s.address(), s.size()))
            .collect()
    };
    let (la, lb) = (loaded(&a), loaded(&b));
    let hint = "build the payload from the exact source, toolchain, Cargo.lock and features the image was built with";
    if la != lb {
        return Err(Error(format!(
            "the original source does not reproduce the image: section layout differs ({la:?} vs {lb:?}); {hint}"
        )));
    }
    for (name, addr, _) in la {
        if matches!(name.as_str(), ".note.gnu.build-id" | ".wsymtab" | ".bss") {
            continue;
        }
        let da = a
            .section_by_name(&name)
            .and_then(|s| s.data().ok())
            .unwrap_or(&[]);
        let db = b
            .section_by_name(&name)
            .and_then(|s| s.data().ok())
            .unwrap_or(&[]);
        if da != db {
            let at = da
                .iter()
                .zip(db)
                .position(|(x, y)| x != y)
                .unwrap_or(da.len().min(db.len()));
            return Err(Error(format!(
                "the original source does not reproduce the image: {name} differs at {:#x}; {hint}",
                addr + at as u64
            )));
        }
    }
    Ok(())
}

/// The files a unified diff touches (`--- a/X`, `+++ b/X`; `-p1` paths).
pub fn touched_files(diff: &str) -> Vec<String> {
    let mut v: Vec<String> = diff
        .lines()
        .filter_map(|l| l.strip_prefix("+++ ").or_else(|| l.strip_prefix("--- ")))
        .map(|l| l.split('\t').next().unwrap_or("").trim())
        .filter(|p| *p != "/dev/null")
        .map(|p| p.split_once('/').map_or(p, |(_, rest)| rest).to_string())
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Whether a tree made from orig's copy may carry `diffs`: they change only
/// Rust sources (`*.rs`, no `build.rs`). A copied target directory keeps
/// orig's build-script results, which name orig's files by absolute path
/// (`hypervisor/linker.ld`, `policies/flask/*`): a change to such a file
/// in the copy would not be seen.
fn rust_only(diffs: &[&Path]) -> Result<bool> {
    for d in diffs {
        let text = std::fs::read_to_string(d).map_err(|e| Error::io(d, e))?;
        let files = touched_files(&text);
        if files.is_empty()
            || files
                .iter()
                .any(|f| !f.ends_with(".rs") || f == "build.rs" || f.ends_with("/build.rs"))
        {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The name of the tree of `kind` (`patched`, `base`) that carries `diffs`:
/// `KIND-DIRS`, DIRS the top-level directories the diffs touch (joined by
/// `+`), e.g. `patched-hvcore`. Builds whose diffs touch the same crates
/// share a tree and rebuild only what the last one changed; builds of
/// other crates (the tool's own test patches `hypervisor/`, the QEMU tests'
/// payloads `hvcore/`, in the same work directory) keep their own tree,
/// instead of recompiling the other's crate back to the original's on every
/// switch.
fn tree_name(kind: &str, diffs: &[&Path]) -> Result<String> {
    let mut dirs = std::collections::BTreeSet::new();
    for d in diffs {
        let text = std::fs::read_to_string(d).map_err(|e| Error::io(d, e))?;
        for f in touched_files(&text) {
            let top = f.split('/').next().unwrap_or_default();
            let clean: String = top
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            dirs.insert(clean);
        }
    }
    if dirs.is_empty() {
        return Ok(kind.to_string());
    }
    Ok(format!(
        "{kind}-{}",
        dirs.into_iter().collect::<Vec<_>>().join("+")
    ))
}

/// The target directory of a tree `NAME` of the work directory:
/// `target-NAME`.
fn target_of(work: &Path, name: &str) -> PathBuf {
    work.join(format!("target-{name}"))
}

fn remove_dir(p: &Path) -> Result<()> {
    if p.exists() {
        std::fs::remove_dir_all(p).map_err(|e| Error::io(p, e))?;
    }
    Ok(())
}

/// Share orig's builds with the tree `NAME` (`patched`, `base`), which is
/// to carry `diffs`.
///
/// A tree that does not exist yet starts as a copy of `orig/` with a copy
/// of orig's target directory, every modification time kept (`cp -a`):
/// the new tree is then in the state of a tree built with the original's
/// contents, and [`prepare_tree`] rewrites only the files the diffs change,
/// all newer than the copied build outputs (orig's builds come first), so
/// cargo rebuilds what the diffs change instead of the whole hypervisor
/// (each build from scratch is minutes). Such a tree is marked
/// (`NAME.seeded`) for as long as it lives: diffs that change anything but
/// Rust sources ([`rust_only`]) never use it: it is removed first, and the
/// tree is built from scratch as it would have been without the copy. An
/// existing tree is otherwise left alone (its own targets match it).
fn seed_tree(work: &Path, name: &str, diffs: &[&Path]) -> Result<()> {
    let tree = work.join(name);
    let marker = work.join(format!("{name}.seeded"));
    if !rust_only(diffs)? {
        if marker.exists() {
            remove_dir(&tree)?;
            remove_dir(&target_of(work, name))?;
            std::fs::remove_file(&marker).map_err(|e| Error::io(&marker, e))?;
        }
        return Ok(());
    }
    let orig_target = target_of(work, "orig");
    if tree.exists() || !orig_target.is_dir() {
        return Ok(());
    }
    // Marked before anything is copied: a copy cut short is still marked.
    std::fs::write(&marker, b"made from orig/ and its target directory\n")
        .map_err(|e| Error::io(&marker, e))?;
    remove_dir(&target_of(work, name))?;
    let copy = |from: &Path, to: &Path| -> Result<()> {
        let tmp = to.with_extension("seeding");
        remove_dir(&tmp)?;
        let st = Command::new("cp")
            .args(["-a", "--reflink=auto"])
            .arg(from)
            .arg(&tmp)
            .status()
            .map_err(|e| Error(format!("cannot run cp: {e}")))?;
        if !st.success() {
            return Err(Error(format!(
                "copying {} to {} failed ({st})",
                from.display(),
                tmp.display()
            )));
        }
        std::fs::rename(&tmp, to).map_err(|e| Error::io(to, e))
    };
    copy(&orig_target, &target_of(work, name))?;
    // The tree last: its presence says the copy is complete.
    copy(&work.join("orig"), &tree)?;
    eprintln!("livepatch: the {name} tree starts as a copy of the original's tree and builds");
    Ok(())
}

/// Run `livepatch build`.
pub fn build(o: &Options) -> Result<Report> {
    // Cargo runs in the copied trees: every path it is given must be absolute.
    let abs = |p: &Path| std::path::absolute(p).map_err(|e| Error::io(p, e));
    let o = &Options {
        source: abs(&o.source)?,
        image: abs(&o.image)?,
        patch: abs(&o.patch)?,
        on_top_of: o
            .on_top_of
            .iter()
            .map(|p| abs(p))
            .collect::<Result<Vec<_>>>()?,
        depends: o.depends.as_deref().map(abs).transpose()?,
        key: abs(&o.key)?,
        output: abs(&o.output)?,
        work: abs(&o.work)?,
        ..o.clone()
    };
    // The trees mirror the source without target/: a work directory
    // elsewhere inside the source would be mirrored into itself.
    if let Ok(rel) = o.work.strip_prefix(&o.source)
        && rel.components().next() != Some(std::path::Component::Normal("target".as_ref()))
    {
        return Err(Error(format!(
            "the work directory {} is inside the source tree: put it under {}/target/ or outside",
            o.work.display(),
            o.source.display()
        )));
    }
    let image_bytes = crate::read(&o.image)?;
    let image =
        ImageFile::parse(&image_bytes).map_err(|e| Error(format!("{}: {e}", o.image.display())))?;
    let seed = crate::secret_key(&o.key)?;
    let depends = match &o.depends {
        Some(p) => {
            let f = crate::read(p)?;
            let (elf, _) = sig::split(&f).map_err(|e| Error(format!("{}: {e}", p.display())))?;
            let pl = Payload::parse(elf).map_err(|e| Error(format!("{}: {e}", p.display())))?;
            if pl.xen_depends != image.build_id.as_slice() {
                return Err(Error(format!(
                    "{} is for another hypervisor build",
                    p.display()
                )));
            }
            Some(pl.build_id.to_vec())
        }
        None => None,
    };
    if !o.on_top_of.is_empty() && depends.is_none() {
        return Err(Error(
            "--on-top-of needs --depends (the lower payload's file)".into(),
        ));
    }
    let dirs = |n: &str| o.work.join(n);
    std::fs::create_dir_all(&o.work).map_err(|e| Error::io(&o.work, e))?;
    let _lock = lock_work_dir(&o.work)?;
    // The source trees are mirrored, not copied afresh: files whose
    // contents did not change keep their modification time, so cargo
    // rebuilds only what the patch (or a new source) changed, and a tree
    // that did not change at all does not rebuild. Each tree has its own
    // target directory (the trees' crates have the same metadata hashes,
    // so a shared one would mix their artifacts).
    // Trees of the one-tree-per-kind layout before [`tree_name`]: gone.
    for old in ["patched", "base"] {
        remove_dir(&dirs(old))?;
        remove_dir(&target_of(&o.work, old))?;
        let _ = std::fs::remove_file(o.work.join(format!("{old}.seeded")));
    }
    let synced = tree::sync(&o.source, &dirs("orig"))?;
    for k in &synced.keys_skipped {
        eprintln!("livepatch: not copying the private key {}", k.display());
    }
    let lower: Vec<&Path> = o.on_top_of.iter().map(PathBuf::as_path).collect();
    let mut all = lower.clone();
    all.push(&o.patch);
    // The original first, so a tree made below from its copy sees every
    // changed file written after the copied build outputs.
    let (r_elf, r_map) = build_tree(
        &dirs("orig"),
        &target_of(&o.work, "orig"),
        &o.features,
        "original",
    )?;
    check_reproduces(&image_bytes, &crate::read(&r_elf)?)?;
    eprintln!(
        "livepatch: the original build reproduces {} (build-id {})",
        o.image.display(),
        Hex(&image.build_id)
    );
    let base = if o.on_top_of.is_empty() {
        None
    } else {
        let name = tree_name("base", &lower)?;
        seed_tree(&o.work, &name, &lower)?;
        prepare_tree(o, &name, &lower)?;
        Some(build_tree(
            &dirs(&name),
            &target_of(&o.work, &name),
            &o.features,
            "base",
        )?)
    };
    let name = tree_name("patched", &all)?;
    seed_tree(&o.work, &name, &all)?;
    prepare_tree(o, &name, &all)?;
    let (p_elf, p_map) = build_tree(
        &dirs(&name),
        &target_of(&o.work, &name),
        &o.features,
        "patched",
    )?;
    let r = Linked::read("original build", &r_elf, &r_map)?;
    let b_owned = match &base {
        Some((e, m)) => Some(Linked::read("base build", e, m)?),
        None => None,
    };
    let b = b_owned.as_ref().unwrap_or(&r);
    let p = Linked::read("patched build", &p_elf, &p_map)?;
    let mut bv = diff::View::new(b);
    let mut pv = diff::View::new(&p);
    let ch = diff::changes(&mut bv, &mut pv);
    if !ch.refusals.is_empty() {
        return Err(Error(format!(
            "this patch cannot be applied live:\n  - {}",
            ch.refusals.join("\n  - ")
        )));
    }
    let mut plan = diff::plan(&r, b, &mut pv, &ch, &image.build_id)?;
    // Data layouts, from the full type information of the same builds
    // (base and patched trees).
    let base_elf = base.as_ref().map_or(&r_elf, |(e, _)| e);
    let la = layout::layouts(&crate::read(base_elf)?)?;
    let lb = layout::layouts(&crate::read(&p_elf)?)?;
    if std::env::var_os("LIVEPATCH_DEBUG").is_some() {
        eprintln!(
            "livepatch: {} / {} type layouts compared",
            la.len(),
            lb.len()
        );
    }
    let layout_changes = layout::changed(&la, &lb);
    if !layout_changes.is_empty() {
        return Err(Error(format!(
            "this patch cannot be applied live:\n  - {}",
            layout_changes.join("\n  - ")
        )));
    }
    if let Some(d) = &depends {
        plan.builder.depends(d);
    }
    plan.builder.meta("name", &o.name);
    if let Some(d) = &o.description {
        plan.builder.meta("description", d);
    }
    let patch_name = o
        .patch
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    plan.builder.meta("patch", &patch_name);
    plan.builder
        .meta("tool", concat!("livepatch ", env!("CARGO_PKG_VERSION")));
    let elf = plan.builder.build();
    let signed = crate::sign(&elf, &seed)?;
    // The hypervisor's own checks, against the image.
    let key = [TrustedKey::new(sig::public_of(&seed))];
    crate::verify(&signed, &key, Some(&image))
        .map_err(|e| Error(format!("the payload fails the hypervisor's checks: {e}")))?;
    if let Some(dir) = o.output.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    std::fs::write(&o.output, &signed).map_err(|e| Error::io(&o.output, e))?;
    let (elf_part, _) = sig::split(&signed).map_err(|e| Error(e.to_string()))?;
    let build_id = Payload::parse(elf_part)
        .map_err(|e| Error(e.to_string()))?
        .build_id
        .to_vec();
    Ok(Report {
        output: o.output.clone(),
        size: signed.len(),
        build_id,
        functions: plan.functions,
        units: plan.included,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trees_are_named_by_the_directories_their_diffs_touch() {
        let d = std::env::temp_dir().join(format!("lp-tree-name-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let write = |n: &str, files: &[&str]| {
            let p = d.join(n);
            let text: String = files
                .iter()
                .map(|f| format!("--- a/{f}\n+++ b/{f}\n@@ -1 +1 @@\n-x\n+y\n"))
                .collect();
            std::fs::write(&p, text).unwrap();
            p
        };
        let hv = write("hv.diff", &["hypervisor/src/image.rs"]);
        let core = write("core.diff", &["hvcore/src/version.rs", "hvcore/src/lib.rs"]);
        assert_eq!(tree_name("patched", &[&hv]).unwrap(), "patched-hypervisor");
        assert_eq!(tree_name("base", &[&core]).unwrap(), "base-hvcore");
        assert_eq!(
            tree_name("patched", &[&core, &hv]).unwrap(),
            "patched-hvcore+hypervisor"
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn the_files_a_diff_touches() {
        let d = "--- a/hypervisor/src/image.rs\t2026-01-01\n+++ b/hypervisor/src/image.rs\n@@ -1 +1 @@\n-x\n+y\n\
                 --- /dev/null\n+++ b/hvcore/src/new.rs\n@@ -0,0 +1 @@\n+z\n";
        assert_eq!(
            touched_files(d),
            ["hvcore/src/new.rs", "hypervisor/src/image.rs"]
        );
    }

    #[test]
    fn only_rust_sources_may_use_a_copied_tree() {
        let dir = std::env::temp_dir().join(format!("lp-rust-only-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |n: &str, files: &[&str]| {
            let mut t = String::new();
            for f in files {
                t.push_str(&format!("--- a/{f}\n+++ b/{f}\n@@ -1 +1 @@\n-a\n+b\n"));
            }
            let p = dir.join(n);
            std::fs::write(&p, t).unwrap();
            p
        };
        let rs = write("rs.diff", &["hypervisor/src/image.rs", "hvcore/src/a.rs"]);
        let ld = write(
            "ld.diff",
            &["hypervisor/src/image.rs", "hypervisor/linker.ld"],
        );
        let flask = write("flask.diff", &["policies/flask/access_vectors"]);
        let script = write("script.diff", &["xsm/build.rs"]);
        let empty = write("empty.diff", &[]);
        assert!(rust_only(&[&rs]).unwrap());
        assert!(!rust_only(&[&rs, &ld]).unwrap());
        assert!(!rust_only(&[&flask]).unwrap());
        assert!(!rust_only(&[&script]).unwrap());
        assert!(!rust_only(&[&empty]).unwrap());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
