//! xen_version.

use super::{Call, HcResult};
use crate::gate::table::*;
use crate::version::{fill, xen_extra_version};
use warden_abi::errno;
use warden_abi::version::*;

/// Xen's HYPERVISOR_VIRT_START on x86-64 (XENVER_platform_parameters).
const VIRT_START: u64 = 0xFFFF_8000_0000_0000;

/// `XENVER_get_features` submap 0 for an HVM/PVH domain (Xen 4.17's
/// answer for a translated HVM domain without PIRQs), plus `XENFEAT_dom0`
/// for the hardware domain.
pub fn features(hardware_domain: bool) -> u32 {
    FEAT_HVM_DOMAIN | if hardware_domain { FEAT_DOM0 } else { 0 }
}

pub fn xen_version(c: &mut Call<'_>, cmd: u64, arg: u64) -> HcResult {
    if cmd > u32::MAX as u64 {
        return c.unknown("xen_version sub-op", cmd);
    }
    match cmd as u32 {
        VERSION => {
            let _p = c.check::<VersionVersion>()?;
            Ok(((MAJOR as u64) << 16) | MINOR as u64)
        }
        // The string sub-ops Xen checks: a refusal still succeeds, with
        // "<denied>" (capabilities: empty; pagesize: 0; guest_handle:
        // zeroes); only build_id fails (-EPERM). The refusal is audited.
        EXTRAVERSION => {
            let deny = c.check::<VersionExtraversion>().is_err();
            let mut v = ExtraVersion::default();
            fill(&mut v.text, if deny { DENIED } else { xen_extra_version() });
            c.write(arg, &v)?;
            Ok(0)
        }
        COMPILE_INFO => {
            let deny = c.check::<VersionCompileInfo>().is_err();
            let pick = |s: &'static str| if deny { DENIED } else { s };
            let mut v = CompileInfo::default();
            fill(&mut v.compiler, pick(crate::version::COMPILER));
            fill(&mut v.compile_by, pick(crate::version::COMPILE_BY));
            fill(&mut v.compile_domain, pick(""));
            fill(&mut v.compile_date, pick(crate::version::COMPILE_DATE));
            c.write(arg, &v)?;
            Ok(0)
        }
        CAPABILITIES => {
            let deny = c.check::<VersionCapabilities>().is_err();
            let mut v = Capabilities::default();
            if !deny {
                fill(&mut v.text, crate::version::CAPABILITIES);
            }
            c.write(arg, &v)?;
            Ok(0)
        }
        CHANGESET => {
            let deny = c.check::<VersionChangeset>().is_err();
            let mut v = Changeset::default();
            fill(
                &mut v.text,
                if deny {
                    DENIED
                } else {
                    crate::version::CHANGESET
                },
            );
            c.write(arg, &v)?;
            Ok(0)
        }
        PLATFORM_PARAMETERS => {
            let _p = c.check::<VersionPlatformParameters>()?;
            c.write(
                arg,
                &PlatformParameters {
                    virt_start: VIRT_START,
                },
            )?;
            Ok(0)
        }
        GET_FEATURES => {
            let p = c.check::<VersionGetFeatures>()?;
            let mut f: FeatureInfo = c.read(arg)?;
            f.submap = match f.submap_idx {
                0 => features(c.global(&p).caller_is_hardware_domain()),
                _ => return Err(errno::EINVAL),
            };
            c.write(arg, &f)?;
            Ok(0)
        }
        PAGESIZE => {
            if c.check::<VersionPagesize>().is_err() {
                return Ok(0);
            }
            // The argument must be NULL.
            if arg != 0 {
                return Err(errno::EINVAL);
            }
            Ok(warden_abi::PAGE_SIZE)
        }
        GUEST_HANDLE => {
            let handle = match c.check::<VersionGuestHandle>() {
                Ok(p) => c.global(&p).caller_handle(),
                Err(_) => [0; 16],
            };
            c.write(arg, &DomainHandle { handle })?;
            Ok(0)
        }
        COMMANDLINE => {
            let mut v = CommandLine::default();
            match c.check::<VersionCommandline>() {
                Ok(p) => {
                    fill(&mut v.text, c.global(&p).cmdline());
                    c.write(arg, &v)?;
                }
                // Only the string and its NUL are written.
                Err(_) => c.write_bytes(arg, b"<denied>\0")?,
            }
            Ok(0)
        }
        BUILD_ID => {
            let p = c.check::<VersionBuildId>().map_err(|_| errno::EPERM)?;
            let id = c.global(&p).build_id();
            // A NULL argument asks for the size only.
            if arg == 0 {
                return Ok(id.len() as u64);
            }
            let h: BuildIdHeader = c.read(arg)?;
            if h.len == 0 {
                return Err(errno::EINVAL);
            }
            if (h.len as usize) < id.len() {
                return Err(errno::ENOBUFS);
            }
            // The id follows the header; a header in the last bytes of the
            // address space has no room for it (never wrap to address 0).
            let at = arg
                .checked_add(core::mem::size_of::<BuildIdHeader>() as u64)
                .ok_or(errno::EFAULT)?;
            c.write_bytes(at, id)?;
            Ok(id.len() as u64)
        }
        n => c.unknown("xen_version sub-op", n as u64),
    }
}
