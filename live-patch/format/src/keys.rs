//! Key files (text, one key a line, `#` comments and blank lines ignored):
//!
//! ```text
//! # secret key file (mode 0600): the ed25519 seed
//! warden-livepatch-secret-key-v1 <64 hex digits>
//! # public key file or key ring (any number of lines): the ed25519 public key
//! warden-livepatch-public-key-v1 <64 hex digits> [comment]
//! ```
//!
//! The hypervisor's build reads a public key ring ([`parse_public_keys`]) and
//! compiles the keys in; `livepatch sign` reads a secret key file
//! ([`parse_secret_key`]).

use crate::sig::{KeyId, TrustedKey, public_of};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// First word of a secret key line.
pub const SECRET_TAG: &str = "warden-livepatch-secret-key-v1";
/// First word of a public key line.
pub const PUBLIC_TAG: &str = "warden-livepatch-public-key-v1";

/// Why a key file was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFileError {
    /// 1-based line number (0: the file as a whole).
    pub line: usize,
    pub why: &'static str,
}

impl fmt::Display for KeyFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            f.write_str(self.why)
        } else {
            write!(f, "line {}: {}", self.line, self.why)
        }
    }
}

fn hex32(s: &str) -> Option<[u8; 32]> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        let d = |c: u8| (c as char).to_digit(16);
        *o = (d(b[2 * i])? * 16 + d(b[2 * i + 1])?) as u8;
    }
    Some(out)
}

fn lines(text: &str) -> impl Iterator<Item = (usize, Vec<&str>)> {
    text.lines().enumerate().filter_map(|(i, l)| {
        let l = l.trim();
        if l.is_empty() || l.starts_with('#') {
            None
        } else {
            Some((i + 1, l.split_whitespace().collect()))
        }
    })
}

/// Parse a public key file or key ring (one or more keys).
pub fn parse_public_keys(text: &str) -> Result<Vec<TrustedKey>, KeyFileError> {
    let mut keys: Vec<TrustedKey> = Vec::new();
    for (n, words) in lines(text) {
        let err = |why| KeyFileError { line: n, why };
        match words[0] {
            PUBLIC_TAG => {}
            SECRET_TAG => return Err(err("this is a secret key; give the public key file (.pub)")),
            _ => return Err(err("not a Warden live-patch public key line")),
        }
        let key = words
            .get(1)
            .and_then(|w| hex32(w))
            .ok_or(err("the public key must be 64 hex digits"))?;
        if ed25519_dalek::VerifyingKey::from_bytes(&key).is_err() {
            return Err(err("not a valid ed25519 public key"));
        }
        let k = TrustedKey::new(key);
        if keys.iter().any(|o| o.id == k.id) {
            return Err(err("the same key is listed twice"));
        }
        keys.push(k);
    }
    if keys.is_empty() {
        return Err(KeyFileError {
            line: 0,
            why: "no public key in the file",
        });
    }
    Ok(keys)
}

/// Parse a secret key file: the 32-byte ed25519 seed.
pub fn parse_secret_key(text: &str) -> Result<[u8; 32], KeyFileError> {
    let mut found = None;
    for (n, words) in lines(text) {
        let err = |why| KeyFileError { line: n, why };
        match words[0] {
            SECRET_TAG => {}
            PUBLIC_TAG => return Err(err("this is a public key; signing needs the secret key")),
            _ => return Err(err("not a Warden live-patch secret key line")),
        }
        if found.is_some() {
            return Err(err("more than one secret key in the file"));
        }
        found = Some(
            words
                .get(1)
                .and_then(|w| hex32(w))
                .ok_or(err("the secret key must be 64 hex digits"))?,
        );
    }
    found.ok_or(KeyFileError {
        line: 0,
        why: "no secret key in the file",
    })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The text of a secret key file for `seed`.
pub fn format_secret_key(seed: &[u8; 32]) -> String {
    let id = KeyId::of(&public_of(seed));
    format!(
        "# Warden live-patch signing key: SECRET, keep it private. Key id {id}\n{SECRET_TAG} {}\n",
        hex(seed)
    )
}

/// The text of a public key file for `seed`'s public key.
pub fn format_public_key(seed: &[u8; 32], comment: &str) -> String {
    let public = public_of(seed);
    let id = KeyId::of(&public);
    let comment: String = comment
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    format!(
        "# Warden live-patch public key, key id {id}\n{PUBLIC_TAG} {} {}\n",
        hex(&public),
        comment.trim()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let seed = [3u8; 32];
        let sk = format_secret_key(&seed);
        let pk = format_public_key(&seed, "ops team\n2026");
        assert_eq!(parse_secret_key(&sk).unwrap(), seed);
        let keys = parse_public_keys(&pk).unwrap();
        assert_eq!(keys, [TrustedKey::new(public_of(&seed))]);
        let ring = format!("{pk}\n# another\n{}", format_public_key(&[4; 32], ""));
        assert_eq!(parse_public_keys(&ring).unwrap().len(), 2);
        assert_eq!(parse_public_keys(&sk).unwrap_err().line, 2);
        assert_eq!(parse_secret_key(&pk).unwrap_err().line, 2);
        assert_eq!(parse_public_keys("").unwrap_err().line, 0);
        assert_eq!(
            parse_public_keys(&format!("{pk}{pk}")).unwrap_err().why,
            "the same key is listed twice"
        );
        assert!(parse_public_keys("warden-livepatch-public-key-v1 abcd").is_err());
        assert!(parse_secret_key(&format!("{sk}{sk}")).is_err());
    }
}
