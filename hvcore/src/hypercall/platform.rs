//! platform_op (hypercall 7): the hardware domain's platform operations,
//! as Xen 4.17's `do_platform_op` answers them (xen/arch/x86/platform_hypercall.c).
//!
//! The whole `xen_platform_op` is read first (-EFAULT), its interface
//! version checked (-EACCES), then the command's check runs (Xen's
//! `xsm_platform_op`: the dummy module lets only the control domain in;
//! FLASK checks the caller against `xen`), then the command. What Linux 6.1
//! calls as a PVH dom0:
//!
//! - `settime64` (`settime32` after -ENOSYS): the wall clock of every
//!   domain (Linux sets it at boot and every 11 minutes);
//! - `firmware_info`: the EFI probe of `xen_pvh_init` (type EFI_INFO;
//!   Warden is not booted through EFI: -ENOSYS, as Xen on a BIOS boot);
//! - `get_cpuinfo`: the pcpu driver (`/sys/devices/system/xen_cpu/`).
//!
//! Xen's other commands (MTRRs, microcode, ACPI sleep and processor power
//! data, CPU hotplug, ...) are features Warden lacks: -ENOSYS, logged once.
//! A command Xen's FLASK hook does not know (Linux 6.1.y probes
//! `XENPF_get_dom0_console`, 64, from Xen 4.18) is answered as Xen 4.17's
//! `avc_unknown_permission` does: -EPERM when FLASK enforces a policy that
//! does not allow unknown permissions, else -ENOSYS (the dummy module:
//! -EPERM for a domain other than the control domain).

use super::{Call, HcResult};
use crate::gate::table::{
    PlatformFirmwareInfo, PlatformGetCpuinfo, PlatformSettime32, PlatformSettime64,
};
use warden_abi::xen::platform::{self as pf, PlatformOp};
use warden_abi::{Pod, errno};

pub fn platform_op(c: &mut Call<'_>, arg: u64) -> HcResult {
    let op: PlatformOp = c.read(arg)?;
    if op.interface_version != pf::INTERFACE_VERSION {
        return Err(errno::EACCES);
    }
    let u = arg.checked_add(pf::UNION_OFFSET).ok_or(errno::EFAULT)?;
    match op.cmd {
        pf::SETTIME32 => {
            let p = c.check::<PlatformSettime32>()?;
            let t: pf::Settime32 = op.member();
            c.global(&p)
                .set_wallclock(t.secs as u64, t.nsecs, t.system_time);
            Ok(0)
        }
        pf::SETTIME64 => {
            let p = c.check::<PlatformSettime64>()?;
            let t: pf::Settime64 = op.member();
            if t.mbz != 0 {
                return Err(errno::EINVAL);
            }
            c.global(&p).set_wallclock(t.secs, t.nsecs, t.system_time);
            Ok(0)
        }
        pf::FIRMWARE_INFO => {
            let _p = c.check::<PlatformFirmwareInfo>()?;
            let f: pf::FirmwareInfo = op.member();
            firmware_info(c, u, &f)
        }
        pf::GET_CPUINFO => {
            let p = c.check::<PlatformGetCpuinfo>()?;
            let mut i: pf::PcpuInfo = op.member();
            let g = c.global(&p);
            match g.pcpu(i.xen_cpuid) {
                Some(cpu) => {
                    i.apic_id = cpu.apic_id;
                    i.acpi_id = cpu.acpi_id;
                    i.flags = if cpu.online { pf::PCPU_FLAGS_ONLINE } else { 0 };
                }
                None => i.flags = pf::PCPU_FLAGS_INVALID,
            }
            i.max_present = g.max_present_cpu();
            c.write_bytes(u, i.as_bytes())?;
            Ok(0)
        }
        n => match pf::XEN_COMMANDS.iter().find(|(x, _)| *x == n) {
            Some((_, name)) => c.absent(
                "platform_op",
                n,
                errno::ENOSYS,
                format_args!("platform_op {name} ({n}): not implemented by Warden"),
            ),
            None => c.unknown_to_xsm("platform_op", n),
        },
    }
}

/// XENPF_firmware_info: what the firmware told Xen at boot. Warden is
/// booted by Multiboot, reads no BIOS data and is not an EFI application:
/// no EDD disk, MBR signature or EDID (-ESRCH, as Xen without them), EFI
/// information -ENOSYS (Xen's `efi_get_info` when not booted through EFI);
/// the BIOS keyboard shift flags read as 0.
fn firmware_info(c: &Call<'_>, u: u64, f: &pf::FirmwareInfo) -> HcResult {
    match f.kind {
        pf::FW_DISK_INFO | pf::FW_DISK_MBR_SIGNATURE | pf::FW_VBEDDC_INFO => Err(errno::ESRCH),
        pf::FW_EFI_INFO => Err(errno::ENOSYS),
        pf::FW_KBD_SHIFT_FLAGS => {
            if f.index != 0 {
                return Err(errno::ESRCH);
            }
            let at = u
                .checked_add(pf::KBD_SHIFT_FLAGS_OFFSET)
                .ok_or(errno::EFAULT)?;
            c.write_bytes(at, &[0])?;
            Ok(0)
        }
        _ => Err(errno::EINVAL),
    }
}
