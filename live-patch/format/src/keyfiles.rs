//! Key-pair files on disk (feature `std`): what `livepatch keygen` writes and
//! what a build uses to make its development key on first use.

use crate::keys::{format_public_key, format_secret_key, parse_public_keys, parse_secret_key};
use crate::sig::{KeyId, public_of};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::string::String;

/// The files of a key pair: `PREFIX.key` (secret, mode 0600) and `PREFIX.pub`.
pub fn paths(prefix: &Path) -> (PathBuf, PathBuf) {
    (prefix.with_extension("key"), prefix.with_extension("pub"))
}

/// 32 random bytes from the kernel.
pub fn random_seed() -> Result<[u8; 32], String> {
    let mut seed = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut seed))
        .map_err(|e| std::format!("reading /dev/urandom: {e}"))?;
    Ok(seed)
}

/// Write a new key pair for `seed`; refuses to overwrite either file.
pub fn write_key_pair(prefix: &Path, comment: &str, seed: &[u8; 32]) -> Result<KeyId, String> {
    let (secret, public) = paths(prefix);
    for p in [&secret, &public] {
        if p.exists() {
            return Err(std::format!(
                "{} exists; not overwriting a key",
                p.display()
            ));
        }
    }
    if let Some(dir) = secret.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| std::format!("{}: {e}", dir.display()))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&secret)
        .map_err(|e| std::format!("{}: {e}", secret.display()))?;
    f.write_all(format_secret_key(seed).as_bytes())
        .map_err(|e| std::format!("{}: {e}", secret.display()))?;
    std::fs::write(&public, format_public_key(seed, comment))
        .map_err(|e| std::format!("{}: {e}", public.display()))?;
    Ok(KeyId::of(&public_of(seed)))
}

/// The development key: if `PREFIX.key` and `PREFIX.pub` exist, check that
/// they are a matching pair; otherwise make a new random pair. Returns the
/// key id and whether it was created. (xtask's use: `target/keys/dev`.)
pub fn ensure_key_pair(prefix: &Path, comment: &str) -> Result<(KeyId, bool), String> {
    let (secret, public) = paths(prefix);
    if !secret.exists() && !public.exists() {
        return write_key_pair(prefix, comment, &random_seed()?).map(|id| (id, true));
    }
    let read =
        |p: &Path| std::fs::read_to_string(p).map_err(|e| std::format!("{}: {e}", p.display()));
    let seed =
        parse_secret_key(&read(&secret)?).map_err(|e| std::format!("{}: {e}", secret.display()))?;
    let keys = parse_public_keys(&read(&public)?)
        .map_err(|e| std::format!("{}: {e}", public.display()))?;
    let id = KeyId::of(&public_of(&seed));
    if keys.len() != 1 || keys[0].id != id {
        return Err(std::format!(
            "{} is not the public key of {}",
            public.display(),
            secret.display()
        ));
    }
    Ok((id, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ensure_creates_once_and_checks_pairs() {
        let dir = std::env::temp_dir().join(std::format!("lp-keyfiles-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let prefix = dir.join("keys/dev");
        let (id, created) = ensure_key_pair(&prefix, "dev").unwrap();
        assert!(created);
        let (again, created) = ensure_key_pair(&prefix, "dev").unwrap();
        assert_eq!((again, created), (id, false));
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(prefix.with_extension("key"))
                .unwrap()
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        assert!(
            write_key_pair(&prefix, "", &[1; 32])
                .unwrap_err()
                .contains("not overwriting")
        );
        // A public key that does not match.
        std::fs::write(
            prefix.with_extension("pub"),
            format_public_key(&[1; 32], ""),
        )
        .unwrap();
        assert!(
            ensure_key_pair(&prefix, "dev")
                .unwrap_err()
                .contains("is not the public key")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
