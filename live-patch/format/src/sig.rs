//! The signature trailer: ed25519 over the SHA-256 of the payload and its
//! metadata, with the signing key's id.
//!
//! A signed payload file is `ELF || trailer`; the trailer is [`TRAILER_LEN`]
//! bytes at the very end of the file, all integers little-endian:
//!
//! ```text
//! 0    u32      version            1
//! 4    u32      algorithm          1 = ed25519 over SHA-256
//! 8    u64      signed_len         length of the ELF (= file length - 128)
//! 16   [u8;16]  key_id             first 16 bytes of SHA-256(public key)
//! 32   [u8;64]  signature          ed25519 signature of the digest
//! 96   [u8;16]  reserved           zero
//! 112  [u8;16]  end magic          "~WLP signature~\n"
//! ```
//!
//! The digest is `SHA-256(DOMAIN || ELF || trailer[0..32] || trailer[96..128])`:
//! it covers every byte of the file except the signature itself, so the key
//! id, the lengths and the (metadata-carrying) ELF are all bound to the
//! signature. The ed25519 message is the 32-byte digest.

use crate::Hex;
use core::fmt;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

/// Bytes of the trailer.
pub const TRAILER_LEN: usize = 128;
/// The last 16 bytes of every signed payload.
pub const END_MAGIC: &[u8; 16] = b"~WLP signature~\n";
/// Trailer version.
pub const VERSION: u32 = 1;
/// Algorithm: ed25519 over SHA-256.
pub const ALG_ED25519_SHA256: u32 = 1;
/// Domain separation for the digest.
pub const DOMAIN: &[u8] = b"Warden live patch v1\0";
/// Length of a key id.
pub const KEY_ID_LEN: usize = 16;

/// A key id: the first 16 bytes of SHA-256 of the 32-byte public key.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(pub [u8; KEY_ID_LEN]);

impl KeyId {
    /// The id of a public key.
    pub fn of(public: &[u8; 32]) -> Self {
        let d = Sha256::digest(public);
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&d[..KEY_ID_LEN]);
        KeyId(id)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Hex(&self.0).fmt(f)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// A public key trusted to sign payloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrustedKey {
    pub id: KeyId,
    pub public: [u8; 32],
}

impl TrustedKey {
    pub fn new(public: [u8; 32]) -> Self {
        TrustedKey {
            id: KeyId::of(&public),
            public,
        }
    }
}

/// Why a payload's signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigError {
    /// No signature trailer (the file does not end with [`END_MAGIC`]).
    Unsigned,
    /// A trailer whose fields are inconsistent (lengths, reserved bytes).
    Malformed(&'static str),
    /// A trailer version or algorithm this build does not know.
    Unsupported { version: u32, algorithm: u32 },
    /// Signed by a key that is not built into this hypervisor.
    UnknownKey(KeyId),
    /// The signature does not verify with the named key: the payload (or
    /// the trailer) was changed after signing, or the key's public part is
    /// not the one that signed.
    BadSignature(KeyId),
}

impl fmt::Display for SigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SigError::Unsigned => f.write_str("payload is not signed"),
            SigError::Malformed(why) => write!(f, "malformed signature trailer: {why}"),
            SigError::Unsupported { version, algorithm } => write!(
                f,
                "unsupported signature (trailer version {version}, algorithm {algorithm})"
            ),
            SigError::UnknownKey(id) => write!(f, "signed by unknown key {id}"),
            SigError::BadSignature(id) => write!(f, "signature by key {id} does not verify"),
        }
    }
}

/// A parsed (not yet verified) trailer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trailer {
    pub version: u32,
    pub algorithm: u32,
    pub key_id: KeyId,
    pub signature: [u8; 64],
}

/// Split a payload file into its ELF and its trailer.
pub fn split(file: &[u8]) -> Result<(&[u8], Trailer), SigError> {
    if file.len() < TRAILER_LEN || &file[file.len() - 16..] != END_MAGIC {
        return Err(SigError::Unsigned);
    }
    let (elf, t) = file.split_at(file.len() - TRAILER_LEN);
    let version = u32::from_le_bytes([t[0], t[1], t[2], t[3]]);
    let algorithm = u32::from_le_bytes([t[4], t[5], t[6], t[7]]);
    if version != VERSION || algorithm != ALG_ED25519_SHA256 {
        return Err(SigError::Unsupported { version, algorithm });
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&t[8..16]);
    if u64::from_le_bytes(len) != elf.len() as u64 {
        return Err(SigError::Malformed(
            "signed length is not the payload's length",
        ));
    }
    if t[96..112].iter().any(|&b| b != 0) {
        return Err(SigError::Malformed("reserved bytes are not zero"));
    }
    let mut key_id = [0u8; KEY_ID_LEN];
    key_id.copy_from_slice(&t[16..32]);
    let mut signature = [0u8; 64];
    signature.copy_from_slice(&t[32..96]);
    Ok((
        elf,
        Trailer {
            version,
            algorithm,
            key_id: KeyId(key_id),
            signature,
        },
    ))
}

fn trailer_head(elf_len: usize, key_id: &KeyId) -> [u8; 32] {
    let mut h = [0u8; 32];
    h[0..4].copy_from_slice(&VERSION.to_le_bytes());
    h[4..8].copy_from_slice(&ALG_ED25519_SHA256.to_le_bytes());
    h[8..16].copy_from_slice(&(elf_len as u64).to_le_bytes());
    h[16..32].copy_from_slice(&key_id.0);
    h
}

fn trailer_tail() -> [u8; 32] {
    let mut t = [0u8; 32];
    t[16..].copy_from_slice(END_MAGIC);
    t
}

/// The digest that is signed.
pub fn digest(elf: &[u8], key_id: &KeyId) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update(elf);
    h.update(trailer_head(elf.len(), key_id));
    h.update(trailer_tail());
    h.finalize().into()
}

/// Sign `elf` with the ed25519 secret key `seed` (32 bytes): returns the
/// trailer to append.
pub fn sign(elf: &[u8], seed: &[u8; 32]) -> [u8; TRAILER_LEN] {
    let key = SigningKey::from_bytes(seed);
    let id = KeyId::of(key.verifying_key().as_bytes());
    let sig = key.sign(&digest(elf, &id));
    let mut t = [0u8; TRAILER_LEN];
    t[..32].copy_from_slice(&trailer_head(elf.len(), &id));
    t[32..96].copy_from_slice(&sig.to_bytes());
    t[96..].copy_from_slice(&trailer_tail());
    t
}

/// The public key of a secret key.
pub fn public_of(seed: &[u8; 32]) -> [u8; 32] {
    SigningKey::from_bytes(seed).verifying_key().to_bytes()
}

/// Verify a payload file against the trusted keys. On success returns the
/// ELF part and the id of the key that signed it.
pub fn verify<'a>(file: &'a [u8], trusted: &[TrustedKey]) -> Result<(&'a [u8], KeyId), SigError> {
    let (elf, t) = split(file)?;
    let mut known = false;
    for k in trusted.iter().filter(|k| k.id == t.key_id) {
        known = true;
        let Ok(vk) = VerifyingKey::from_bytes(&k.public) else {
            continue;
        };
        let sig = Signature::from_bytes(&t.signature);
        // verify_strict: no small-order keys or malleable signatures.
        if vk.verify_strict(&digest(elf, &t.key_id), &sig).is_ok() {
            return Ok((elf, t.key_id));
        }
    }
    if known {
        Err(SigError::BadSignature(t.key_id))
    } else {
        Err(SigError::UnknownKey(t.key_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    const SEED: [u8; 32] = [7; 32];

    fn signed(elf: &[u8]) -> Vec<u8> {
        let mut f = elf.to_vec();
        f.extend_from_slice(&sign(elf, &SEED));
        f
    }

    #[test]
    fn sign_then_verify() {
        let key = TrustedKey::new(public_of(&SEED));
        let f = signed(b"hello payload");
        let (elf, id) = verify(&f, &[key]).unwrap();
        assert_eq!(elf, b"hello payload");
        assert_eq!(id, key.id);
    }

    #[test]
    fn refusals() {
        let key = TrustedKey::new(public_of(&SEED));
        let other = TrustedKey::new(public_of(&[9; 32]));
        assert_eq!(verify(b"hello", &[key]).unwrap_err(), SigError::Unsigned);
        let f = signed(b"hello payload");
        assert_eq!(
            verify(&f, &[other]).unwrap_err(),
            SigError::UnknownKey(key.id)
        );
        assert_eq!(verify(&f, &[]).unwrap_err(), SigError::UnknownKey(key.id));
        // A trusted key entry with the right id but another public key.
        let forged = TrustedKey {
            id: key.id,
            public: other.public,
        };
        assert_eq!(
            verify(&f, &[forged]).unwrap_err(),
            SigError::BadSignature(key.id)
        );
        // Appending or removing bytes.
        let mut g = f.clone();
        g.insert(0, 0);
        assert_eq!(
            verify(&g, &[key]).unwrap_err(),
            SigError::Malformed("signed length is not the payload's length")
        );
        let mut g = f.clone();
        let n = g.len();
        g[n - TRAILER_LEN] = 2;
        assert_eq!(
            verify(&g, &[key]).unwrap_err(),
            SigError::Unsupported {
                version: 2,
                algorithm: 1
            }
        );
    }

    #[test]
    fn every_flipped_bit_is_refused() {
        let key = TrustedKey::new(public_of(&SEED));
        let f = signed(b"a small payload body");
        for pos in 0..f.len() {
            for bit in 0..8 {
                let mut g = f.clone();
                g[pos] ^= 1 << bit;
                assert!(
                    verify(&g, &[key]).is_err(),
                    "flip at {pos} bit {bit} accepted"
                );
            }
        }
    }
}
