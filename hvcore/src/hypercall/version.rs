//! xen_version.

use super::{Call, HcResult};
use crate::gate::table::*;
use crate::version::{fill, xen_extra_version};
use warden_abi::errno;
use warden_abi::version::*;

/// Xen's HYPERVISOR_VIRT_START on x86-64 (XENVER_platform_parameters).
const VIRT_START: u64 = 0xFFFF_8000_0000_0000;

pub fn xen_version(c: &mut Call<'_>, cmd: u64, arg: u64) -> HcResult {
    if cmd > u32::MAX as u64 {
        return c.unknown("xen_version sub-op", cmd);
    }
    match cmd as u32 {
        VERSION => {
            let _p = c.check::<VersionVersion>()?;
            Ok(((MAJOR as u64) << 16) | MINOR as u64)
        }
        EXTRAVERSION => {
            let _p = c.check::<VersionExtraversion>()?;
            let mut v = ExtraVersion::default();
            fill(&mut v.text, xen_extra_version());
            c.write(arg, &v)?;
            Ok(0)
        }
        COMPILE_INFO => {
            let _p = c.check::<VersionCompileInfo>()?;
            let mut v = CompileInfo::default();
            fill(&mut v.compiler, crate::version::COMPILER);
            fill(&mut v.compile_by, crate::version::COMPILE_BY);
            fill(&mut v.compile_date, crate::version::COMPILE_DATE);
            c.write(arg, &v)?;
            Ok(0)
        }
        CAPABILITIES => {
            let _p = c.check::<VersionCapabilities>()?;
            let mut v = Capabilities::default();
            fill(&mut v.text, crate::version::CAPABILITIES);
            c.write(arg, &v)?;
            Ok(0)
        }
        CHANGESET => {
            let _p = c.check::<VersionChangeset>()?;
            let mut v = Changeset::default();
            fill(&mut v.text, crate::version::CHANGESET);
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
            let _p = c.check::<VersionGetFeatures>()?;
            let mut f: FeatureInfo = c.read(arg)?;
            f.submap = match f.submap_idx {
                0 => {
                    FEAT_AUTO_TRANSLATED_PHYSMAP
                        | FEAT_HVM_CALLBACK_VECTOR
                        | FEAT_VCPU_INFO_PLACEMENT
                }
                _ => 0,
            };
            c.write(arg, &f)?;
            Ok(0)
        }
        PAGESIZE => {
            let _p = c.check::<VersionPagesize>()?;
            Ok(warden_abi::PAGE_SIZE)
        }
        GUEST_HANDLE => {
            let p = c.check::<VersionGuestHandle>()?;
            c.write(
                arg,
                &DomainHandle {
                    handle: c.global(&p).caller_handle(),
                },
            )?;
            Ok(0)
        }
        COMMANDLINE => {
            let p = c.check::<VersionCommandline>()?;
            let mut v = CommandLine::default();
            fill(&mut v.text, c.global(&p).cmdline());
            c.write(arg, &v)?;
            Ok(0)
        }
        BUILD_ID => {
            let p = c.check::<VersionBuildId>()?;
            let h: BuildIdHeader = c.read(arg)?;
            let id = c.global(&p).build_id();
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
