//! Warden live-patch payloads: the one definition of the format.
//!
//! A payload file is a relocatable ELF64 object (x86-64) followed by a
//! signature trailer:
//!
//! ```text
//! +--------------------------------------+
//! | ELF relocatable object (the payload) |  <- parsed by [`elf`], interpreted by [`payload`]
//! +--------------------------------------+
//! | signature trailer, 128 bytes         |  <- [`sig`]: ed25519 over SHA-256, key id
//! +--------------------------------------+
//! ```
//!
//! The hypervisor verifies the trailer *before* it parses the ELF, so the
//! parser only ever sees bytes signed by a trusted key; the parser is strict
//! all the same (fuzzed; see `live-patch/fuzz`).
//!
//! - [`sig`]: the trailer, key ids, signing and verification.
//! - [`keys`]: the text formats of key files (secret, public, key rings).
//! - [`elf`]: a strict ELF64 reader (sections, symbols, relocations).
//! - [`payload`]: the live-patch sections (`.livepatch.funcs`, dependencies,
//!   build-ids, hooks, metadata) and every structural check on them.
//! - [`write`]: the writer, used by the `livepatch` tool and by tests.
//!
//! docs/LIVEPATCH.md describes the format for operators and tool writers.
#![cfg_attr(not(any(test, feature = "std")), no_std)]

extern crate alloc;

#[cfg(feature = "std")]
pub mod keyfiles;

pub mod elf;
pub mod keys;
pub mod payload;
pub mod sig;
pub mod write;

/// Largest payload file accepted (ELF plus signature), as in Xen.
pub const MAX_PAYLOAD_SIZE: usize = 2 * 1024 * 1024;

/// Longest payload name in bytes (Xen: 128 including the NUL).
pub const NAME_MAX: usize = 127;

/// Lower-case hex of a byte string.
#[derive(Debug, Clone, Copy)]
pub struct Hex<'a>(pub &'a [u8]);

impl core::fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if self.0.is_empty() {
            return f.write_str("<none>");
        }
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Whether `name` is acceptable as a payload name: 1..=[`NAME_MAX`] bytes of
/// printable ASCII other than space, `/` and `\`.
pub fn valid_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= NAME_MAX
        && name
            .iter()
            .all(|&c| c.is_ascii_graphic() && c != b'/' && c != b'\\')
}
