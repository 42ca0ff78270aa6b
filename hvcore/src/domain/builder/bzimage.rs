//! bzImage kernels (Linux's x86 boot protocol, `Documentation/x86/boot.rst`):
//! detection and the compressed payload's location and format. Warden's
//! builder loads ELF kernels only; a bzImage's payload is the ELF vmlinux,
//! compressed (Debian: xz). Decompressing it is left to the host side
//! (`cargo xtask` unpacks a bzImage module with `xz` before the boot; see
//! docs/ARCHITECTURE.md, "PVH domain building"), so the builder refuses a
//! compressed bzImage with a message naming the compression, and takes the
//! ELF out of an uncompressed one.

/// Compression of a bzImage payload, by its magic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Not compressed: the payload is the ELF itself.
    None,
    Gzip,
    Bzip2,
    Lzma,
    Xz,
    Lzo,
    Lz4,
    Zstd,
    Unknown,
}

impl Compression {
    /// Its usual name.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none (ELF)",
            Compression::Gzip => "gzip",
            Compression::Bzip2 => "bzip2",
            Compression::Lzma => "lzma",
            Compression::Xz => "xz",
            Compression::Lzo => "lzo",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
            Compression::Unknown => "unknown",
        }
    }
}

/// A bzImage's payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Payload<'a> {
    pub data: &'a [u8],
    pub compression: Compression,
}

/// The magic of an xz stream (what `cargo xtask` looks for).
pub const XZ_MAGIC: &[u8; 6] = b"\xfd7zXZ\0";

fn compression(d: &[u8]) -> Compression {
    if d.starts_with(b"\x7fELF") {
        Compression::None
    } else if d.starts_with(&[0x1f, 0x8b]) || d.starts_with(&[0x1f, 0x9e]) {
        Compression::Gzip
    } else if d.starts_with(b"BZh") {
        Compression::Bzip2
    } else if d.starts_with(&[0x5d, 0, 0]) {
        Compression::Lzma
    } else if d.starts_with(XZ_MAGIC) {
        Compression::Xz
    } else if d.starts_with(&[0x89, b'L', b'Z', b'O']) {
        Compression::Lzo
    } else if d.starts_with(&[0x02, 0x21, 0x4c, 0x18]) {
        Compression::Lz4
    } else if d.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::Unknown
    }
}

/// Is `file` a bzImage (boot protocol 2.08 or later, which locates the
/// payload)? Returns its payload. `Err` is a bzImage whose header is
/// inconsistent (with the reason).
pub fn detect(file: &[u8]) -> Option<Result<Payload<'_>, &'static str>> {
    if file.len() < 0x250 || &file[0x202..0x206] != b"HdrS" {
        return None;
    }
    let version = u16::from_le_bytes([file[0x206], file[0x207]]);
    if version < 0x208 {
        return Some(Err("boot protocol older than 2.08 (no payload fields)"));
    }
    let setup_sects = match file[0x1f1] {
        0 => 4,
        n => n as usize,
    };
    let rd = |o: usize| u32::from_le_bytes(file[o..o + 4].try_into().unwrap_or([0; 4])) as usize;
    let (off, len) = (rd(0x248), rd(0x24c));
    let start = (setup_sects + 1) * 512 + off;
    match start.checked_add(len) {
        Some(end) if end <= file.len() && len > 0 => {
            let data = &file[start..end];
            Some(Ok(Payload {
                data,
                compression: compression(data),
            }))
        }
        _ => Some(Err("payload outside the file")),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use alloc::vec::Vec;

    /// A bzImage with `payload` (protocol 2.15, one setup sector).
    pub fn bzimage(payload: &[u8]) -> Vec<u8> {
        let mut f = alloc::vec![0u8; 1024];
        f[0x1f1] = 1;
        f[0x202..0x206].copy_from_slice(b"HdrS");
        f[0x206..0x208].copy_from_slice(&0x20fu16.to_le_bytes());
        f[0x248..0x24c].copy_from_slice(&16u32.to_le_bytes());
        f[0x24c..0x250].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        f.extend_from_slice(&[0; 16]);
        f.extend_from_slice(payload);
        f.extend_from_slice(&[0; 4]);
        f
    }

    #[test]
    fn finds_the_payload() {
        let f = bzimage(b"\xfd7zXZ\0rest");
        let p = detect(&f).unwrap().unwrap();
        assert_eq!(p.compression, Compression::Xz);
        assert_eq!(p.data, b"\xfd7zXZ\0rest");
        let f = bzimage(b"\x7fELF....");
        assert_eq!(detect(&f).unwrap().unwrap().compression, Compression::None);
        assert!(detect(b"\x7fELF").is_none());
        let mut bad = bzimage(b"abc");
        bad[0x24c..0x250].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
        assert!(detect(&bad).unwrap().is_err());
        let mut old = bzimage(b"abc");
        old[0x206..0x208].copy_from_slice(&0x206u16.to_le_bytes());
        assert!(detect(&old).unwrap().is_err());
    }
}
