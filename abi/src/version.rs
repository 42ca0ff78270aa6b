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

/// Major version reported by `XENVER_version` (and CPUID leaf
/// 0x40000001): the Xen ABI Warden implements, 4.17.
pub const MAJOR: u32 = 4;
/// Minor version reported by `XENVER_version`.
pub const MINOR: u32 = 17;

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

// Feature bits of submap 0 (xen/include/public/features.h).
/// `XENFEAT_writable_page_tables`.
pub const FEAT_WRITABLE_PAGE_TABLES: u32 = 1 << 0;
/// `XENFEAT_auto_translated_physmap`: the guest's frames are translated (HVM/PVH).
pub const FEAT_AUTO_TRANSLATED_PHYSMAP: u32 = 1 << 2;
/// `XENFEAT_hvm_callback_vector`: the upcall may be a vector (`HVM_PARAM_CALLBACK_IRQ`).
pub const FEAT_HVM_CALLBACK_VECTOR: u32 = 1 << 8;
/// `XENFEAT_hvm_safe_pvclock`: the PV clock is usable by an HVM guest.
pub const FEAT_HVM_SAFE_PVCLOCK: u32 = 1 << 9;
/// `XENFEAT_hvm_pirqs`.
pub const FEAT_HVM_PIRQS: u32 = 1 << 10;
/// `XENFEAT_dom0`: the guest is the hardware domain.
pub const FEAT_DOM0: u32 = 1 << 11;
/// `XENFEAT_memory_op_vnode_supported`.
pub const FEAT_MEMORY_OP_VNODE_SUPPORTED: u32 = 1 << 13;
/// `XENFEAT_not_direct_mapped`.
pub const FEAT_NOT_DIRECT_MAPPED: u32 = 1 << 16;
/// Number of feature submaps (`XENFEAT_NR_SUBMAPS`).
pub const FEAT_NR_SUBMAPS: u32 = 1;

/// What an HVM/PVH domain learns from `XENVER_get_features` submap 0 (Xen
/// 4.17 for a translated HVM domain without PIRQs); the hardware domain
/// also gets [`FEAT_DOM0`].
pub const FEAT_HVM_DOMAIN: u32 = FEAT_MEMORY_OP_VNODE_SUPPORTED
    | FEAT_WRITABLE_PAGE_TABLES
    | FEAT_AUTO_TRANSLATED_PHYSMAP
    | FEAT_HVM_SAFE_PVCLOCK
    | FEAT_HVM_CALLBACK_VECTOR
    | FEAT_NOT_DIRECT_MAPPED;

/// What a string sub-op returns when the policy refuses it (Xen still succeeds).
pub const DENIED: &str = "<denied>";
