//! The work directory's source trees: mirrored from the operator's source
//! without build output and without private keys, keeping the modification
//! time of every file whose contents did not change (so cargo's fingerprints
//! hold and an unchanged tree does not rebuild).

use crate::{Error, Result};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Directory entries never copied: build output, version control, ISOs.
fn skipped_name(name: &str) -> bool {
    name == "target" || name == ".git" || name.ends_with(".iso")
}

/// Headers that start a private key: the live-patch secret key line
/// ([`livepatch_format::keys::SECRET_TAG`]) and PEM / OpenSSH private keys
/// (`-----BEGIN ... PRIVATE KEY-----`).
pub fn is_private_key(contents: &[u8]) -> bool {
    let text = String::from_utf8_lossy(&contents[..contents.len().min(1 << 16)]);
    text.lines().any(|l| {
        let l = l.trim_start();
        l.starts_with(livepatch_format::keys::SECRET_TAG)
            || (l.starts_with("-----BEGIN ") && l.contains("PRIVATE KEY-----"))
    })
}

/// A private key by name (`*.key`) or by contents ([`is_private_key`]).
fn private_key_file(name: &str, contents: &[u8]) -> bool {
    name.ends_with(".key") || is_private_key(contents)
}

/// What a [`sync`] did.
#[derive(Debug, Default)]
pub struct Synced {
    /// Files written (new or changed).
    pub written: usize,
    /// Files and directories removed from the copy.
    pub removed: usize,
    /// Private keys found in the source and not copied.
    pub keys_skipped: Vec<PathBuf>,
}

/// Make `to` a copy of `from` (without `target/`, `.git/`, `*.iso` and
/// private keys). Files whose contents are already the same are not
/// touched, so they keep their modification time.
pub fn sync(from: &Path, to: &Path) -> Result<Synced> {
    let mut s = Synced::default();
    sync_dir(from, to, &mut s)?;
    Ok(s)
}

fn remove_any(p: &Path) -> Result<()> {
    let md = std::fs::symlink_metadata(p).map_err(|e| Error::io(p, e))?;
    if md.is_dir() {
        std::fs::remove_dir_all(p).map_err(|e| Error::io(p, e))
    } else {
        std::fs::remove_file(p).map_err(|e| Error::io(p, e))
    }
}

fn sync_dir(from: &Path, to: &Path, s: &mut Synced) -> Result<()> {
    match std::fs::symlink_metadata(to) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            remove_any(to)?;
            std::fs::create_dir_all(to).map_err(|e| Error::io(to, e))?;
        }
        Err(_) => std::fs::create_dir_all(to).map_err(|e| Error::io(to, e))?,
    }
    let mut keep = BTreeSet::new();
    for entry in std::fs::read_dir(from).map_err(|e| Error::io(from, e))? {
        let entry = entry.map_err(|e| Error::io(from, e))?;
        let name = entry.file_name();
        let n = name.to_string_lossy();
        if skipped_name(&n) {
            continue;
        }
        let src = entry.path();
        let dst = to.join(&name);
        let ft = entry.file_type().map_err(|e| Error::io(&src, e))?;
        if ft.is_dir() {
            keep.insert(name.clone());
            sync_dir(&src, &dst, s)?;
        } else if ft.is_file() {
            let data = std::fs::read(&src).map_err(|e| Error::io(&src, e))?;
            if private_key_file(&n, &data) {
                s.keys_skipped.push(src);
                continue;
            }
            keep.insert(name.clone());
            sync_file(&src, &dst, &data, s)?;
        } else if ft.is_symlink() {
            let target = std::fs::read_link(&src).map_err(|e| Error::io(&src, e))?;
            // A link to a private key is a way to copy it too.
            if let Ok(data) = std::fs::read(&src)
                && private_key_file(&n, &data)
            {
                s.keys_skipped.push(src);
                continue;
            }
            keep.insert(name.clone());
            if std::fs::read_link(&dst).ok().as_ref() == Some(&target) {
                continue;
            }
            if std::fs::symlink_metadata(&dst).is_ok() {
                remove_any(&dst)?;
            }
            std::os::unix::fs::symlink(&target, &dst).map_err(|e| Error::io(&dst, e))?;
            s.written += 1;
        }
    }
    for entry in std::fs::read_dir(to).map_err(|e| Error::io(to, e))? {
        let entry = entry.map_err(|e| Error::io(to, e))?;
        if !keep.contains(&entry.file_name()) {
            remove_any(&entry.path())?;
            s.removed += 1;
        }
    }
    Ok(())
}

fn sync_file(src: &Path, dst: &Path, data: &[u8], s: &mut Synced) -> Result<()> {
    let perms = std::fs::metadata(src)
        .map_err(|e| Error::io(src, e))?
        .permissions();
    match std::fs::symlink_metadata(dst) {
        Ok(m) if m.is_file() => {
            if std::fs::read(dst).is_ok_and(|d| d == data) {
                if m.permissions() != perms {
                    std::fs::set_permissions(dst, perms).map_err(|e| Error::io(dst, e))?;
                }
                return Ok(());
            }
        }
        Ok(_) => remove_any(dst)?,
        Err(_) => {}
    }
    // Write a new file (not in place: a hard link would change the source).
    if std::fs::symlink_metadata(dst).is_ok() {
        std::fs::remove_file(dst).map_err(|e| Error::io(dst, e))?;
    }
    std::fs::write(dst, data).map_err(|e| Error::io(dst, e))?;
    std::fs::set_permissions(dst, perms).map_err(|e| Error::io(dst, e))?;
    s.written += 1;
    Ok(())
}

/// Every private key under `dir` (by name, or by contents for files up to
/// 1 MiB), following no symlinks.
pub fn private_keys_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            out.extend(private_keys_under(&p));
        } else if ft.is_file() {
            let name = e.file_name().to_string_lossy().into_owned();
            let small = e.metadata().is_ok_and(|m| m.len() <= 1 << 20);
            if private_key_file(&name, &[])
                || (small && std::fs::read(&p).is_ok_and(|d| is_private_key(&d)))
            {
                out.push(p);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("livepatch-tree-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn mtime(p: &Path) -> (i64, i64) {
        let m = std::fs::metadata(p).unwrap();
        (m.mtime(), m.mtime_nsec())
    }

    #[test]
    fn keeps_unchanged_files_and_mirrors_the_rest() {
        let d = scratch("mirror");
        let (src, dst) = (d.join("src"), d.join("dst"));
        std::fs::create_dir_all(src.join("a/target")).unwrap();
        std::fs::create_dir_all(src.join(".git")).unwrap();
        std::fs::write(src.join("a/same.rs"), "same").unwrap();
        std::fs::write(src.join("a/changed.rs"), "old").unwrap();
        std::fs::write(src.join("a/target/out"), "build output").unwrap();
        std::fs::write(src.join(".git/HEAD"), "ref").unwrap();
        std::fs::write(src.join("gone.rs"), "x").unwrap();
        let s = sync(&src, &dst).unwrap();
        assert_eq!(s.written, 3);
        assert!(!dst.join("a/target").exists() && !dst.join(".git").exists());
        let t_same = mtime(&dst.join("a/same.rs"));
        let t_changed = mtime(&dst.join("a/changed.rs"));
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(src.join("a/changed.rs"), "new").unwrap();
        std::fs::remove_file(src.join("gone.rs")).unwrap();
        std::fs::write(dst.join("extra.rs"), "not in the source").unwrap();
        let s = sync(&src, &dst).unwrap();
        assert_eq!((s.written, s.removed), (1, 2));
        assert_eq!(
            mtime(&dst.join("a/same.rs")),
            t_same,
            "unchanged file touched"
        );
        assert_ne!(mtime(&dst.join("a/changed.rs")), t_changed);
        assert_eq!(
            std::fs::read_to_string(dst.join("a/changed.rs")).unwrap(),
            "new"
        );
        assert!(!dst.join("gone.rs").exists() && !dst.join("extra.rs").exists());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn never_copies_private_keys() {
        let d = scratch("keys");
        let (src, dst) = (d.join("src"), d.join("dst"));
        std::fs::create_dir_all(src.join("keys")).unwrap();
        crate::keygen_from_seed(&src.join("keys/ops"), "ops", &[3; 32]).unwrap();
        // The same secret under a name that does not say so, indented.
        let secret = std::fs::read_to_string(src.join("keys/ops.key")).unwrap();
        std::fs::write(src.join("keys/notes.txt"), format!("  {secret}")).unwrap();
        std::fs::write(
            src.join("id_pem"),
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n-----END OPENSSH PRIVATE KEY-----\n",
        )
        .unwrap();
        std::os::unix::fs::symlink(src.join("keys/ops.key"), src.join("link")).unwrap();
        let s = sync(&src, &dst).unwrap();
        assert_eq!(s.keys_skipped.len(), 4, "{:?}", s.keys_skipped);
        assert!(dst.join("keys/ops.pub").is_file(), "public keys are copied");
        assert!(private_keys_under(&dst).is_empty());
        assert!(!dst.join("link").exists());
        assert_eq!(private_keys_under(&src).len(), 3);
        let _ = std::fs::remove_dir_all(&d);
    }
}
