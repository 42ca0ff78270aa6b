//! The `livepatch` operator tool, as a library (the binary is `src/main.rs`).
//!
//! - [`keygen`], [`sign`], [`verify`], [`inspect`]: key and payload handling.
//! - [`build`]: payloads from a unified diff against the hypervisor source.
//! - [`image`]: an image file as the engine sees the running hypervisor.

pub mod build;
pub mod image;

use livepatch_format::keys;
use livepatch_format::payload::Payload;
use livepatch_format::sig::{self, KeyId, TrustedKey};
use livepatch_format::{Hex, MAX_PAYLOAD_SIZE};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// A message for the operator.
#[derive(Debug)]
pub struct Error(pub String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl Error {
    pub fn io(path: &Path, e: std::io::Error) -> Self {
        Error(format!("{}: {e}", path.display()))
    }
}

pub type Result<T> = std::result::Result<T, Error>;

pub fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

pub fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::io(path, e))
}

/// Write `PREFIX.key` (secret, mode 0600) and `PREFIX.pub` for a random
/// key. Refuses to overwrite. Returns (secret path, public path, key id).
pub fn keygen(prefix: &Path, comment: &str) -> Result<(PathBuf, PathBuf, KeyId)> {
    let seed = livepatch_format::keyfiles::random_seed().map_err(Error)?;
    keygen_from_seed(prefix, comment, &seed)
}

/// [`keygen`] with a given seed (tests).
pub fn keygen_from_seed(
    prefix: &Path,
    comment: &str,
    seed: &[u8; 32],
) -> Result<(PathBuf, PathBuf, KeyId)> {
    let id = livepatch_format::keyfiles::write_key_pair(prefix, comment, seed).map_err(Error)?;
    let (secret, public) = livepatch_format::keyfiles::paths(prefix);
    Ok((secret, public, id))
}

/// Read a secret key file.
pub fn secret_key(path: &Path) -> Result<[u8; 32]> {
    keys::parse_secret_key(&read_text(path)?).map_err(|e| Error(format!("{}: {e}", path.display())))
}

/// Read a public key file or key ring.
pub fn public_keys(path: &Path) -> Result<Vec<TrustedKey>> {
    keys::parse_public_keys(&read_text(path)?)
        .map_err(|e| Error(format!("{}: {e}", path.display())))
}

/// Sign an unsigned payload ELF: returns the signed file.
pub fn sign(elf: &[u8], seed: &[u8; 32]) -> Result<Vec<u8>> {
    if sig::split(elf).is_ok() || elf.ends_with(sig::END_MAGIC) {
        return Err(Error("the payload is already signed".into()));
    }
    Payload::parse(elf).map_err(|e| Error(format!("not a valid payload: {e}")))?;
    let mut out = elf.to_vec();
    out.extend_from_slice(&sig::sign(elf, seed));
    if out.len() > MAX_PAYLOAD_SIZE {
        return Err(Error(format!(
            "signed payload is {} bytes, over the hypervisor's limit of {MAX_PAYLOAD_SIZE}",
            out.len()
        )));
    }
    Ok(out)
}

/// Verify a signed payload: signature against `keys`, structure, and, with
/// an image, every check the hypervisor makes at upload. Returns a report.
pub fn verify(
    file: &[u8],
    keys: &[TrustedKey],
    image: Option<&image::ImageFile>,
) -> Result<String> {
    let mut out = String::new();
    if file.len() > MAX_PAYLOAD_SIZE {
        return Err(Error(format!(
            "payload is {} bytes, the limit is {MAX_PAYLOAD_SIZE}",
            file.len()
        )));
    }
    let (elf, id) = sig::verify(file, keys).map_err(|e| Error(e.to_string()))?;
    let _ = writeln!(out, "signature: good, key {id}");
    let p = Payload::parse(elf).map_err(|e| Error(format!("malformed payload: {e}")))?;
    let _ = writeln!(
        out,
        "structure: good ({} function(s), build-id {})",
        p.funcs.len(),
        Hex(p.build_id)
    );
    if let Some(img) = image {
        let keys: &[TrustedKey] = keys;
        let mut engine = livepatch_engine::Engine::new(img.image(), keys);
        let mut plat = image::FilePlatform::new(img);
        if let Some(dep) = p.depends
            && dep != img.build_id.as_slice()
        {
            let _ = writeln!(
                out,
                "note: stacks on payload {}; checked as if it were loaded",
                Hex(dep)
            );
            return check_stacked(out, &p, img, file, keys);
        }
        engine.upload(&mut plat, "verify", file).map_err(|e| {
            Error(format!(
                "refused by the image's checks ({} check): {e}",
                e.check()
            ))
        })?;
        let _ = writeln!(
            out,
            "image {}: every upload check passes",
            Hex(&img.build_id)
        );
    }
    Ok(out)
}

fn check_stacked(
    mut out: String,
    p: &Payload<'_>,
    img: &image::ImageFile,
    _file: &[u8],
    _keys: &[TrustedKey],
) -> Result<String> {
    // Without the lower payload the dependency check cannot pass; check the
    // rest (hypervisor build-id, symbols, functions) directly.
    if p.xen_depends != img.build_id.as_slice() {
        return Err(Error(format!(
            "built for hypervisor build-id {}, the image is {}",
            Hex(p.xen_depends),
            Hex(&img.build_id)
        )));
    }
    let image = img.image();
    for s in p.imports() {
        livepatch_engine::load::resolve(&image.symbols, s.name, s.value)
            .map_err(|e| Error(format!("refused by the image's checks: {e}")))?;
    }
    let _ = writeln!(
        out,
        "image {}: build-id and symbols check out",
        Hex(&img.build_id)
    );
    Ok(out)
}

/// Describe a payload file (signature not verified unless `keys` given).
pub fn inspect(file: &[u8], keys: Option<&[TrustedKey]>) -> Result<String> {
    let mut o = String::new();
    let (elf, sig_line) = match sig::split(file) {
        Ok((elf, t)) => {
            let status = match keys {
                Some(k) => match sig::verify(file, k) {
                    Ok(_) => "verified".to_string(),
                    Err(e) => format!("NOT VALID: {e}"),
                },
                None => "not verified (give --keys)".to_string(),
            };
            (
                elf,
                format!("ed25519 over SHA-256, key {} ({status})", t.key_id),
            )
        }
        Err(sig::SigError::Unsigned) => (file, "none (unsigned)".to_string()),
        Err(e) => return Err(Error(e.to_string())),
    };
    let p = Payload::parse(elf).map_err(|e| Error(format!("malformed payload: {e}")))?;
    let _ = writeln!(
        o,
        "size:        {} bytes (ELF {} + signature {})",
        file.len(),
        elf.len(),
        file.len() - elf.len()
    );
    let _ = writeln!(o, "signature:   {sig_line}");
    let _ = writeln!(o, "build-id:    {}", Hex(p.build_id));
    let _ = writeln!(o, "hypervisor:  {}", Hex(p.xen_depends));
    match p.depends {
        Some(d) => {
            let _ = writeln!(o, "depends on:  {}", Hex(d));
        }
        None => {
            let _ = writeln!(o, "depends on:  the hypervisor only");
        }
    }
    for (k, v) in p.metadata() {
        let _ = writeln!(o, "metadata:    {k}={v}");
    }
    let _ = writeln!(o, "functions:   {}", p.funcs.len());
    for f in &p.funcs {
        let at = if f.old.value == 0 {
            String::new()
        } else {
            format!(" @{:#x}", f.old.value)
        };
        let new = match f.new {
            Some(s) => format!("{} ({} bytes)", s.name, f.new_size),
            None => format!("NOP x{}", f.new_size),
        };
        let _ = writeln!(
            o,
            "  {}{at} ({} bytes) -> {new}; expects {} bytes [{}]",
            f.old.name,
            f.old_size,
            f.expect.len(),
            Hex(f.expect)
        );
    }
    for (k, s) in &p.hooks {
        let _ = writeln!(o, "hook:        {} -> {}", k.suffix(), s.name);
    }
    for &(i, r) in &p.loaded {
        let s = &p.elf.sections[i];
        let _ = writeln!(o, "section:     {} {:?} {} bytes", s.name, r, s.size);
    }
    let imports: Vec<_> = p.imports().collect();
    let _ = writeln!(o, "imports:     {} hypervisor symbol(s)", imports.len());
    for s in imports {
        let at = if s.value == 0 {
            String::new()
        } else {
            format!(" @{:#x}", s.value)
        };
        let _ = writeln!(o, "  {}{at}", s.name);
    }
    Ok(o)
}
