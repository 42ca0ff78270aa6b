//! `xen_version(cmd, arg)` (hypercall 17).

crate::subops! {
    /// Returns `(major << 16) | minor`; `arg` unused.
    VERSION = 0, "version";
    /// Writes the extra version string ([`ExtraVersion`]) to `arg`.
    EXTRAVERSION = 1, "extraversion";
    /// Writes [`CompileInfo`] to `arg`.
    COMPILE_INFO = 2, "compile_info";
    /// Writes the capabilities string ([`Capabilities`]) to `arg`.
    CAPABILITIES = 3, "capabilities";
    /// Writes the changeset string ([`Changeset`]) to `arg`.
    CHANGESET = 4, "changeset";
    /// Writes [`PlatformParameters`] to `arg`.
    PLATFORM_PARAMETERS = 5, "platform_parameters";
    /// Reads and writes [`FeatureInfo`] at `arg`.
    GET_FEATURES = 6, "get_features";
    /// Returns the page size; `arg` unused.
    PAGESIZE = 7, "pagesize";
    /// Writes the domain's 16-byte handle to `arg`.
    GUEST_HANDLE = 8, "guest_handle";
    /// Writes the hypervisor command line ([`CommandLine`]) to `arg`.
    COMMANDLINE = 9, "commandline";
    /// Reads [`BuildIdHeader`] at `arg` (`len` = room after it), writes the
    /// GNU build-id bytes after the header, returns their number (-ENOBUFS
    /// style -ERANGE if `len` is too small).
    BUILD_ID = 10, "build_id";
}

/// Major version reported by `XENVER_version`.
pub const MAJOR: u32 = 0;
/// Minor version reported by `XENVER_version`.
pub const MINOR: u32 = 1;

crate::pod! {
    /// `XENVER_extraversion`: NUL-terminated.
    pub struct ExtraVersion { pub text: [u8; 16] }
    /// `XENVER_compile_info`.
    pub struct CompileInfo {
        pub compiler: [u8; 64],
        pub compile_by: [u8; 16],
        pub compile_domain: [u8; 32],
        pub compile_date: [u8; 32],
    }
    /// `XENVER_capabilities`: space-separated, NUL-terminated.
    pub struct Capabilities { pub text: [u8; 1024] }
    /// `XENVER_changeset`: NUL-terminated.
    pub struct Changeset { pub text: [u8; 64] }
    /// `XENVER_platform_parameters`.
    pub struct PlatformParameters { pub virt_start: u64 }
    /// `XENVER_get_features`: the caller sets `submap_idx`; bit n of `submap`
    /// is feature `32 * submap_idx + n`.
    pub struct FeatureInfo { pub submap_idx: u32, pub submap: u32 }
    /// `XENVER_guest_handle`.
    pub struct DomainHandle { pub handle: [u8; 16] }
    /// `XENVER_commandline`: NUL-terminated.
    pub struct CommandLine { pub text: [u8; 1024] }
    /// `XENVER_build_id` header: `len` bytes follow it.
    pub struct BuildIdHeader { pub len: u32 }
}

/// Feature bit: the guest is an HVM guest with auto-translated physmap (submap 0).
pub const FEAT_AUTO_TRANSLATED_PHYSMAP: u32 = 1 << 2;
/// Feature bit: HVM callback vector (submap 0).
pub const FEAT_HVM_CALLBACK_VECTOR: u32 = 1 << 8;
/// Feature bit: vCPU info placement (submap 0).
pub const FEAT_VCPU_INFO_PLACEMENT: u32 = 1 << 11;
