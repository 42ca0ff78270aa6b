//! HVM parameters (`HVMOP_set_param` / `HVMOP_get_param`) with Xen 4.17's
//! per-parameter rules (`hvm_allow_get_param`, `hvm_allow_set_param`,
//! `hvm_set_param`, `hvm_get_param`):
//!
//! - a guest may read only CALLBACK_IRQ, the VM86 TSS ones,
//!   ACPI_IOPORTS_LOCATION, VM_GENERATION_ID_ADDR, STORE_PFN/EVTCHN,
//!   CONSOLE_PFN/EVTCHN, ALTP2M and X87_FIP_WIDTH of itself, and set only
//!   CALLBACK_IRQ, the VM86 TSS ones, ACPI_IOPORTS_LOCATION,
//!   VM_GENERATION_ID_ADDR, STORE_EVTCHN, CONSOLE_EVTCHN and X87_FIP_WIDTH;
//!   any other parameter of itself is -EPERM;
//! - deprecated parameters are -EINVAL for everyone;
//! - another domain (the toolstack, after the FLASK check `hvm {getparam}` /
//!   `{setparam}` on the target) may read and set the rest;
//! - a few parameters may be set only once (-EEXIST for a different
//!   non-zero value later), and some values are validated.
//!
//! Warden has no S3, viridian, ACPI PM block or altp2m: those parameters
//! are stored as Xen stores them where their value has no effect, and
//! refused as Xen refuses them on a domain without the feature
//! (ACPI_IOPORTS_LOCATION: -ENODEV, like a PVH domain in Xen; ALTP2M other
//! than 0: -EOPNOTSUPP). A refused set leaves every parameter unchanged.

use warden_abi::errno;
use warden_abi::xen::hvm_params::*;

const N: usize = NR_PARAMS as usize;

/// Xen's mark of a VM86 TSS set since creation (bit 63).
const VM86_TSS_UPDATED: u64 = 1 << 63;
/// Size of a 32-bit TSS.
const TSS32: u64 = 104;
/// The largest useful VM86 TSS: the TSS, the interrupt redirection bitmap,
/// the I/O bitmap and a padding byte.
const TSS_MAX: u64 = TSS32 + 0x100 / 8 + 0x10000 / 8 + 1;
/// Viridian: the base-frequency bit every valid value has.
const VIRIDIAN_BASE_FREQ: u64 = 1;
/// Viridian: every feature bit Xen 4.17 knows.
const VIRIDIAN_MASK: u64 = (1 << 13) - 1;
/// MCA_CAP: LMCE, the only capability.
const MCA_CAP_MASK: u64 = 1;

/// Is `index` deprecated (-EINVAL for everyone)?
fn deprecated(index: u32) -> bool {
    matches!(
        index,
        PAE_ENABLED
            | DM_DOMAIN
            | MEMORY_EVENT_CR0
            | MEMORY_EVENT_CR3
            | MEMORY_EVENT_CR4
            | MEMORY_EVENT_INT3
            | NESTEDHVM
            | MEMORY_EVENT_SINGLE_STEP
            | BUFIOREQ_EVTCHN
            | MEMORY_EVENT_MSR
    )
}

/// May a domain read parameter `index` of itself (`on_self`), or of another
/// domain (checked by FLASK already)? (`hvm_allow_get_param` after its XSM
/// check.) `index` < [`NR_PARAMS`].
pub fn allow_get(index: u32, on_self: bool) -> Result<(), i32> {
    match index {
        CALLBACK_IRQ
        | VM86_TSS
        | VM86_TSS_SIZED
        | ACPI_IOPORTS_LOCATION
        | VM_GENERATION_ID_ADDR
        | STORE_PFN
        | STORE_EVTCHN
        | CONSOLE_PFN
        | CONSOLE_EVTCHN
        | ALTP2M
        | X87_FIP_WIDTH => Ok(()),
        i if deprecated(i) => Err(errno::EINVAL),
        _ if on_self => Err(errno::EPERM),
        _ => Ok(()),
    }
}

/// May a domain set parameter `index` of itself (`on_self`) or of another
/// domain? (`hvm_allow_set_param`'s first part.)
pub fn allow_set(index: u32, on_self: bool) -> Result<(), i32> {
    match index {
        CALLBACK_IRQ
        | VM86_TSS
        | VM86_TSS_SIZED
        | ACPI_IOPORTS_LOCATION
        | VM_GENERATION_ID_ADDR
        | STORE_EVTCHN
        | CONSOLE_EVTCHN
        | X87_FIP_WIDTH => Ok(()),
        i if deprecated(i) => Err(errno::EINVAL),
        _ if on_self => Err(errno::EPERM),
        _ => Ok(()),
    }
}

/// A domain's HVM parameters.
#[derive(Debug)]
pub struct HvmParams {
    vals: spin::Mutex<[u64; N]>,
}

impl Default for HvmParams {
    fn default() -> Self {
        HvmParams {
            vals: spin::Mutex::new([0; N]),
        }
    }
}

impl HvmParams {
    /// `HVMOP_get_param` after the FLASK check: the value of `index`
    /// (-EINVAL past the last parameter).
    pub fn get(&self, index: u32, on_self: bool) -> Result<u64, i32> {
        if index >= NR_PARAMS {
            return Err(errno::EINVAL);
        }
        allow_get(index, on_self)?;
        let v = self.vals.lock();
        Ok(match index {
            VM86_TSS => v[VM86_TSS_SIZED as usize] as u32 as u64,
            VM86_TSS_SIZED => v[VM86_TSS_SIZED as usize] & !VM86_TSS_UPDATED,
            i => v[i as usize],
        })
    }

    /// `HVMOP_set_param` after the FLASK check. On an error nothing changes.
    pub fn set(&self, index: u32, value: u64, on_self: bool) -> Result<(), i32> {
        if index >= NR_PARAMS {
            return Err(errno::EINVAL);
        }
        allow_set(index, on_self)?;
        let mut v = self.vals.lock();
        let old = v[index as usize];
        // Set once: a different non-zero value later is refused.
        if matches!(
            index,
            VIRIDIAN
                | IOREQ_PFN
                | BUFIOREQ_PFN
                | IOREQ_SERVER_PFN
                | NR_IOREQ_SERVER_PAGES
                | ALTP2M
                | MCA_CAP
        ) && old != 0
            && value != old
        {
            return Err(errno::EEXIST);
        }
        let (slot, stored) = match index {
            TIMER_MODE if value > TIMER_MODE_MAX => return Err(errno::EINVAL),
            VIRIDIAN if value & !VIRIDIAN_MASK != 0 || value & VIRIDIAN_BASE_FREQ == 0 => {
                return Err(errno::EINVAL);
            }
            ACPI_S_STATE if value != 0 && value != 3 => return Err(errno::EINVAL),
            // No ACPI PM block in a PVH domain (Xen: pmtimer_change_ioport).
            ACPI_IOPORTS_LOCATION => return Err(errno::ENODEV),
            ALTP2M if value > ALTP2M_MAX => return Err(errno::EINVAL),
            ALTP2M if value != 0 => return Err(errno::EOPNOTSUPP),
            TRIPLE_FAULT_REASON if value > warden_abi::sched::SHUTDOWN_MAX as u64 => {
                return Err(errno::EINVAL);
            }
            NR_IOREQ_SERVER_PAGES if value == 0 || value > 64 => return Err(errno::EINVAL),
            X87_FIP_WIDTH if !matches!(value, 0 | 4 | 8) => return Err(errno::EINVAL),
            MCA_CAP if value & !MCA_CAP_MASK != 0 => return Err(errno::EINVAL),
            VM86_TSS => {
                if value != value as u32 as u64 {
                    return Err(errno::EINVAL);
                }
                // Old hvmloaders assume 128 bytes.
                let v = if value != 0 {
                    value | (128 << 32) | VM86_TSS_UPDATED
                } else {
                    value
                };
                (VM86_TSS_SIZED, v)
            }
            VM86_TSS_SIZED => {
                if value >> 32 < TSS32 {
                    return Err(errno::EINVAL);
                }
                let v = if value >> 32 > TSS_MAX {
                    (value as u32 as u64) | (TSS_MAX << 32)
                } else {
                    value
                };
                (VM86_TSS_SIZED, v | VM86_TSS_UPDATED)
            }
            i => (i, value),
        };
        v[slot as usize] = stored;
        Ok(())
    }

    /// Set a parameter as the hypervisor itself (the domain builder, the
    /// console backend): no rules.
    pub fn set_internal(&self, index: u32, value: u64) {
        if let Some(s) = self.vals.lock().get_mut(index as usize) {
            *s = value;
        }
    }

    /// A parameter's stored value (0 past the last one).
    pub fn value(&self, index: u32) -> u64 {
        self.vals.lock().get(index as usize).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guest_reads_only_its_listed_parameters() {
        let p = HvmParams::default();
        p.set_internal(CONSOLE_PFN, 0xfefff);
        p.set_internal(IOREQ_PFN, 7);
        assert_eq!(p.get(CONSOLE_PFN, true), Ok(0xfefff));
        assert_eq!(p.get(STORE_PFN, true), Ok(0));
        assert_eq!(p.get(IOREQ_PFN, true), Err(errno::EPERM));
        assert_eq!(p.get(TIMER_MODE, true), Err(errno::EPERM));
        // The toolstack reads them.
        assert_eq!(p.get(IOREQ_PFN, false), Ok(7));
        // Deprecated: EINVAL for everyone; past the end: EINVAL.
        assert_eq!(p.get(DM_DOMAIN, false), Err(errno::EINVAL));
        assert_eq!(p.get(PAE_ENABLED, true), Err(errno::EINVAL));
        assert_eq!(p.get(NR_PARAMS, false), Err(errno::EINVAL));
        assert_eq!(p.get(u32::MAX, false), Err(errno::EINVAL));
    }

    #[test]
    fn a_guest_sets_only_its_listed_parameters_and_refusals_change_nothing() {
        let p = HvmParams::default();
        p.set_internal(CONSOLE_PFN, 0xfefff);
        assert_eq!(p.set(CONSOLE_EVTCHN, 3, true), Ok(()));
        assert_eq!(p.value(CONSOLE_EVTCHN), 3);
        assert_eq!(p.set(CALLBACK_IRQ, (2 << 56) | 0xf3, true), Ok(()));
        assert_eq!(p.set(CONSOLE_PFN, 1, true), Err(errno::EPERM));
        assert_eq!(p.set(STORE_PFN, 1, true), Err(errno::EPERM));
        assert_eq!(p.set(TIMER_MODE, 1, true), Err(errno::EPERM));
        assert_eq!(p.set(IDENT_PT, 1, true), Err(errno::EPERM));
        assert_eq!(p.value(CONSOLE_PFN), 0xfefff);
        assert_eq!(p.value(STORE_PFN), 0);
        // The toolstack may.
        assert_eq!(p.set(STORE_PFN, 0xfeffc, false), Ok(()));
        assert_eq!(p.value(STORE_PFN), 0xfeffc);
        assert_eq!(p.set(DM_DOMAIN, 0x7ff0, false), Err(errno::EINVAL));
    }

    #[test]
    fn values_are_validated_as_xen_does() {
        let p = HvmParams::default();
        assert_eq!(p.set(TIMER_MODE, 4, false), Err(errno::EINVAL));
        assert_eq!(p.set(TIMER_MODE, 2, false), Ok(()));
        assert_eq!(p.set(X87_FIP_WIDTH, 2, true), Err(errno::EINVAL));
        assert_eq!(p.set(X87_FIP_WIDTH, 8, true), Ok(()));
        assert_eq!(p.set(TRIPLE_FAULT_REASON, 6, false), Err(errno::EINVAL));
        assert_eq!(p.set(NR_IOREQ_SERVER_PAGES, 0, false), Err(errno::EINVAL));
        assert_eq!(p.set(NR_IOREQ_SERVER_PAGES, 65, false), Err(errno::EINVAL));
        assert_eq!(p.set(VIRIDIAN, 2, false), Err(errno::EINVAL));
        assert_eq!(p.set(ACPI_IOPORTS_LOCATION, 1, true), Err(errno::ENODEV));
        assert_eq!(p.set(MCA_CAP, 2, false), Err(errno::EINVAL));
        for i in 0..NR_PARAMS {
            if i != TIMER_MODE && i != X87_FIP_WIDTH {
                assert_eq!(p.value(i), 0, "param {i} changed by a refusal");
            }
        }
    }

    #[test]
    fn set_once_parameters_refuse_a_new_value() {
        let p = HvmParams::default();
        assert_eq!(p.set(IOREQ_SERVER_PFN, 0x1000, false), Ok(()));
        assert_eq!(p.set(IOREQ_SERVER_PFN, 0x1000, false), Ok(()));
        assert_eq!(p.set(IOREQ_SERVER_PFN, 0x2000, false), Err(errno::EEXIST));
        assert_eq!(p.value(IOREQ_SERVER_PFN), 0x1000);
    }

    #[test]
    fn vm86_tss_is_stored_sized() {
        let p = HvmParams::default();
        assert_eq!(p.set(VM86_TSS, 1 << 32, true), Err(errno::EINVAL));
        assert_eq!(p.set(VM86_TSS, 0x1000, true), Ok(()));
        assert_eq!(p.get(VM86_TSS, true), Ok(0x1000));
        assert_eq!(p.get(VM86_TSS_SIZED, true), Ok((128 << 32) | 0x1000));
        assert_eq!(p.set(VM86_TSS_SIZED, 50 << 32, true), Err(errno::EINVAL));
        assert_eq!(p.set(VM86_TSS_SIZED, (1 << 48) | 0x2000, true), Ok(()));
        assert_eq!(p.get(VM86_TSS_SIZED, true), Ok((TSS_MAX << 32) | 0x2000));
    }
}
