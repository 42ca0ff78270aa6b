// Shared by the build scripts of guest binaries (included with `include!`):
// link arguments for a static, non-PIE ELF laid out by guest/guest.ld.
fn link_guest() {
    let dir = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let mut script = dir.clone();
    while !script.join("guest/guest.ld").is_file() {
        if !script.pop() {
            panic!("guest/guest.ld not found above {}", dir.display());
        }
    }
    let script = script.join("guest/guest.ld");
    println!("cargo:rerun-if-changed={}", script.display());
    println!("cargo:rerun-if-changed=build.rs");
    for arg in [
        "-nostartfiles",
        "-nostdlib",
        "-static",
        "-no-pie",
        "-Wl,--no-dynamic-linker",
        "-Wl,-z,max-page-size=0x1000",
        "-Wl,--build-id=none",
        "-Wl,--gc-sections",
    ] {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
    println!("cargo:rustc-link-arg-bins=-Wl,-T,{}", script.display());
}
