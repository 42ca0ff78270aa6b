//! Compiles oracle.c against Debian's static libsepol (package libsepol-dev).
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=oracle.c");
    println!("cargo:rerun-if-changed=build.rs");
    let header = Path::new("/usr/include/sepol/policydb/services.h");
    let archive = [
        "/usr/lib/x86_64-linux-gnu/libsepol.a",
        "/usr/lib/libsepol.a",
    ]
    .iter()
    .find(|p| Path::new(p).exists());
    let Some(archive) = archive else {
        panic!(
            "sepol-oracle needs Debian's libsepol-dev (static libsepol and headers). \
             Install it with: apt-get install -y libsepol-dev  (or run `cargo xtask test` as root, which installs it)"
        );
    };
    if !header.exists() {
        panic!("libsepol headers missing: apt-get install -y libsepol-dev");
    }
    cc::Build::new()
        .file("oracle.c")
        .warnings(false)
        .compile("sepol_oracle_c");
    let dir = Path::new(archive)
        .parent()
        .expect("archive has a directory");
    println!("cargo:rustc-link-search=native={}", dir.display());
    println!("cargo:rustc-link-lib=static=sepol");
}
