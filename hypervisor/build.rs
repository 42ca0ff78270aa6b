//! Link settings for the bare-metal image (see shared/reference/bare-metal-build.md):
//! a static, non-PIE ELF laid out by `linker.ld`, with a GNU build-id; and
//! the live-patch keys the image trusts, compiled in from the key ring named
//! by `WARDEN_LIVEPATCH_KEYS` (`cargo xtask` passes its development key's
//! ring, `target/keys/dev.pub`, unless the variable is set). There is no way
//! to build an image without trusted keys or with verification off.
use std::fmt::Write as _;
use std::path::PathBuf;

fn trusted_keys() {
    println!("cargo:rerun-if-env-changed=WARDEN_LIVEPATCH_KEYS");
    let ring = match std::env::var("WARDEN_LIVEPATCH_KEYS") {
        Ok(v) if !v.trim().is_empty() => PathBuf::from(v),
        _ => panic!(
            "WARDEN_LIVEPATCH_KEYS is not set: name the public key ring of the live-patch keys this \
             image trusts (`cargo xtask build` sets it to its development key, target/keys/dev.pub)"
        ),
    };
    println!("cargo:rerun-if-changed={}", ring.display());
    let text = std::fs::read_to_string(&ring)
        .unwrap_or_else(|e| panic!("WARDEN_LIVEPATCH_KEYS={}: {e}", ring.display()));
    let keys = livepatch_format::keys::parse_public_keys(&text)
        .unwrap_or_else(|e| panic!("WARDEN_LIVEPATCH_KEYS={}: {e}", ring.display()));
    if keys.is_empty() {
        panic!(
            "WARDEN_LIVEPATCH_KEYS={}: no public key in the file",
            ring.display()
        );
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "/// The live-patch signing keys this image trusts (from the build's key ring).\n\
         pub static TRUSTED_KEYS: [livepatch_format::sig::TrustedKey; {}] = [",
        keys.len()
    );
    for k in &keys {
        let _ = writeln!(
            out,
            "    livepatch_format::sig::TrustedKey {{ id: livepatch_format::sig::KeyId({:?}), public: {:?} }},",
            k.id.0, k.public
        );
    }
    out.push_str("];\n");
    let dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(dir.join("trusted_keys.rs"), out).expect("write trusted_keys.rs");
}

fn main() {
    trusted_keys();
    let dir =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let script = dir.join("linker.ld");
    // Relative to the package (cargo's rule), so a copy of the tree with
    // its target directory (livepatch build's trees) watches its own script.
    println!("cargo:rerun-if-changed=linker.ld");
    println!("cargo:rerun-if-changed=build.rs");
    for arg in [
        "-nostartfiles",
        "-nostdlib",
        "-static",
        "-no-pie",
        "-Wl,--no-dynamic-linker",
        "-Wl,-z,max-page-size=0x1000",
        "-Wl,--build-id=sha1",
        "-Wl,--gc-sections",
    ] {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
    println!("cargo:rustc-link-arg-bins=-Wl,-T,{}", script.display());
}
