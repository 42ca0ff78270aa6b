//! What `xen_version` reports.

/// The extra version string (`XENVER_extraversion`). A plain, never-inlined
/// function returning the string: the first target of live patching, which
/// replaces it by name (`hvcore::version::xen_extra_version`) through the
/// image's symbol table.
#[inline(never)]
pub fn xen_extra_version() -> &'static str {
    core::hint::black_box("-warden")
}

/// `XENVER_capabilities`: Warden runs HVM/PVH guests only (Xen on x86-64
/// also lists `xen-3.0-x86_64` for PV guests); the 32-bit, PAE and 64-bit
/// HVM forms, as Xen lists them.
pub const CAPABILITIES: &str = "hvm-3.0-x86_32 hvm-3.0-x86_32p hvm-3.0-x86_64";

/// `XENVER_changeset`: the source revision given at build time, if any.
pub const CHANGESET: &str = match option_env!("WARDEN_CHANGESET") {
    Some(c) => c,
    None => "unavailable",
};

/// `XENVER_compile_info`.
pub const COMPILER: &str = "rustc (stable)";
/// `XENVER_compile_info`.
pub const COMPILE_BY: &str = "warden";
/// `XENVER_compile_info`: the package version (builds are reproducible, so no date).
pub const COMPILE_DATE: &str = env!("CARGO_PKG_VERSION");

/// Copy `s` into a NUL-terminated fixed field, truncating.
pub fn fill(dst: &mut [u8], s: &str) {
    dst.fill(0);
    let n = s.len().min(dst.len().saturating_sub(1));
    dst[..n].copy_from_slice(&s.as_bytes()[..n]);
}

#[cfg(test)]
mod tests {
    #[test]
    fn fill_truncates_and_terminates() {
        let mut b = [0xffu8; 8];
        super::fill(&mut b, "0123456789");
        assert_eq!(&b, b"0123456\0");
        super::fill(&mut b, "ab");
        assert_eq!(&b[..3], b"ab\0");
        assert_eq!(super::xen_extra_version(), "-warden");
    }
}
