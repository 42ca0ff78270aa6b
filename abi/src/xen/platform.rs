//! xen/include/public/platform.h: `platform_op(op)` (hypercall 7), the
//! hardware domain's platform operations.
//!
//! The argument is one [`PlatformOp`]: `cmd`, `interface_version` (must be
//! [`INTERFACE_VERSION`], else -EACCES before any check) and a 128-byte
//! union whose member `cmd` selects. Xen copies the whole structure in,
//! and back out only the member's output fields.

crate::subops! {
    /// [`Settime32`]: set the wall clock (32-bit seconds).
    SETTIME32 = 17, "settime32";
    /// [`FirmwareInfo`]: what the firmware told the hypervisor at boot.
    FIRMWARE_INFO = 50, "firmware_info";
    /// [`PcpuInfo`]: a physical CPU's APIC and ACPI ids, whether online.
    GET_CPUINFO = 55, "get_cpuinfo";
    /// [`Settime64`]: set the wall clock.
    SETTIME64 = 62, "settime64";
}

/// `XENPF_INTERFACE_VERSION`.
pub const INTERFACE_VERSION: u32 = 0x0300_0001;

/// Every `XENPF_*` command of Xen 4.17 (its FLASK hook checks each of them
/// with its own permission; any other number is an "unknown platform_op"
/// there). Warden implements those of [`SUBOPS`].
pub const XEN_COMMANDS: &[(u32, &str)] = &[
    (17, "settime32"),
    (31, "add_memtype"),
    (32, "del_memtype"),
    (33, "read_memtype"),
    (35, "microcode_update"),
    (39, "platform_quirk"),
    (48, "get_cpu_version"),
    (49, "efi_runtime_call"),
    (50, "firmware_info"),
    (51, "enter_acpi_sleep"),
    (52, "change_freq"),
    (53, "getidletime"),
    (54, "set_processor_pminfo"),
    (55, "get_cpuinfo"),
    (56, "cpu_online"),
    (57, "cpu_offline"),
    (58, "cpu_hotadd"),
    (59, "mem_hotadd"),
    (60, "core_parking"),
    (61, "resource_op"),
    (62, "settime64"),
    (63, "get_symbol"),
];

/// `xenpf_firmware_info.type`.
pub const FW_DISK_INFO: u32 = 1;
pub const FW_DISK_MBR_SIGNATURE: u32 = 2;
pub const FW_VBEDDC_INFO: u32 = 3;
pub const FW_EFI_INFO: u32 = 4;
pub const FW_KBD_SHIFT_FLAGS: u32 = 5;

/// `xenpf_pcpuinfo.flags`.
pub const PCPU_FLAGS_ONLINE: u32 = 1;
/// The asked-for CPU is not present.
pub const PCPU_FLAGS_INVALID: u32 = 2;

crate::pod! {
    /// `struct xen_platform_op` (136 bytes): `u` is the union, read through
    /// [`PlatformOp::member`].
    pub struct PlatformOp {
        pub cmd: u32,
        pub interface_version: u32,
        pub u: [u8; 128],
    }
    /// `xenpf_settime32`.
    pub struct Settime32 { pub secs: u32, pub nsecs: u32, pub system_time: u64 }
    /// `xenpf_settime64` (`mbz` must be zero: else -EINVAL).
    pub struct Settime64 { pub secs: u64, pub nsecs: u32, pub mbz: u32, pub system_time: u64 }
    /// `xenpf_firmware_info`'s fixed part (`type`, `index`); the union after
    /// it is written only for the types that answer.
    pub struct FirmwareInfo { pub kind: u32, pub index: u32 }
    /// `xenpf_pcpuinfo`.
    pub struct PcpuInfo {
        pub xen_cpuid: u32,
        pub max_present: u32,
        pub flags: u32,
        pub apic_id: u32,
        pub acpi_id: u32,
    }
}

/// Offset of the union in [`PlatformOp`].
pub const UNION_OFFSET: u64 = 8;
/// Offset of `xenpf_firmware_info.u.kbd_shift_flags` in the union.
pub const KBD_SHIFT_FLAGS_OFFSET: u64 = 8;

impl PlatformOp {
    /// The union read as member `T` (its first `size_of::<T>()` bytes).
    pub fn member<T: crate::Pod>(&self) -> T {
        let n = core::mem::size_of::<T>();
        T::from_bytes(&self.u[..n]).unwrap_or_default()
    }
}

const _: () = assert!(core::mem::size_of::<PlatformOp>() == 136);
const _: () = assert!(core::mem::size_of::<Settime32>() == 16);
const _: () = assert!(core::mem::size_of::<Settime64>() == 24);
const _: () = assert!(core::mem::size_of::<PcpuInfo>() == 20);
