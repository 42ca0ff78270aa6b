//! Which operation types unlock which state (see [`Call`](super::Call)).
//!
//! Each trait below is implemented for exactly the operation types listed
//! here; the accessors of [`Call`](super::Call), [`Resolved`](super::Resolved)
//! and [`Global`](super::Global) require it of the permit they are given. The
//! traits and the operation types are this crate's, so no other crate can add
//! an operation to a list. A test compares the kind lists with the checks of
//! the gate table (a self-only operation checks only the caller's `_self`
//! label, a target operation checks the target, and so on).
//!
//! What does not compile, for each kind of handler (each test pinned to the
//! error it must fail with):
//!
//! A self-only handler whose check line is deleted has no permit for the
//! caller's own state:
//!
//! ```compile_fail,E0425
//! use hvcore::hypercall::{Call, HcResult};
//! fn sched_yield(c: &mut Call<'_>) -> HcResult {
//!     // let p = c.check::<hvcore::gate::table::SchedYield>()?;
//!     c.own(&p).yield_now();
//!     Ok(0)
//! }
//! ```
//!
//! and the permit of an operation that is not self-only does not unlock it:
//!
//! ```compile_fail,E0277
//! use hvcore::gate::{Permit, table::ConsoleWrite};
//! use hvcore::hypercall::Call;
//! fn console_write(c: &Call<'_>, p: Permit<ConsoleWrite>) {
//!     c.own(&p).yield_now();
//! }
//! ```
//!
//! A target-domain handler gets only the operations its permit is for (a
//! pausedomain permit does not destroy):
//!
//! ```compile_fail,E0599
//! use hvcore::gate::{Permit, table::DomctlPauseDomain};
//! use hvcore::hypercall::Call;
//! fn pause(c: &Call<'_>, p: Permit<DomctlPauseDomain>) -> Result<(), i32> {
//!     c.resolve(&p)?.destroy();
//!     Ok(())
//! }
//! ```
//!
//! and a permit without a target resolves none:
//!
//! ```compile_fail,E0277
//! use hvcore::gate::{Permit, table::SysctlPhysinfo};
//! use hvcore::hypercall::Call;
//! fn physinfo(c: &Call<'_>, p: Permit<SysctlPhysinfo>) {
//!     let _ = c.resolve(&p);
//! }
//! ```
//!
//! A handler of a hypervisor-wide (sysctl-type) operation gets only its
//! service (reading the console ring does not clear it):
//!
//! ```compile_fail,E0599
//! use hvcore::gate::{Permit, table::SysctlReadConsole};
//! use hvcore::hypercall::Call;
//! fn readconsole(c: &Call<'_>, p: Permit<SysctlReadConsole>) {
//!     c.global(&p).console_clear_to(0);
//! }
//! ```
//!
//! and only security-server operations unlock the security server:
//!
//! ```compile_fail,E0277
//! use hvcore::gate::{Permit, table::SysctlPhysinfo};
//! use hvcore::hypercall::Call;
//! fn physinfo(c: &Call<'_>, p: Permit<SysctlPhysinfo>) {
//!     let _ = c.flask(&p);
//! }
//! ```
//!
//! With the right permits the same lines compile (so the tests above fail for
//! the permit, not for a typo):
//!
//! ```no_run
//! use hvcore::gate::{Permit, table::*};
//! use hvcore::hypercall::{Call, HcResult};
//! fn sched_yield(c: &mut Call<'_>) -> HcResult {
//!     let p = c.check::<SchedYield>()?;
//!     c.own(&p).yield_now();
//!     Ok(0)
//! }
//! fn destroy(c: &Call<'_>, p: Permit<DomctlDestroyDomain>) -> Result<(), i32> {
//!     c.resolve(&p)?.destroy();
//!     Ok(())
//! }
//! fn readconsole_clear(c: &Call<'_>, p: Permit<SysctlReadConsoleClear>) {
//!     c.global(&p).console_clear_to(0);
//! }
//! fn getenforce(c: &Call<'_>, p: Permit<FlaskGetEnforce>) -> Result<bool, i32> {
//!     Ok(c.flask(&p)?.enforcing())
//! }
//! ```

use crate::gate::Op;
use crate::gate::table::*;

macro_rules! unlocks {
    ($(
        $(#[$m:meta])*
        $tr:ident ($list:ident): $($op:ident),+ $(,)?;
    )*) => {
        $(
            $(#[$m])*
            pub trait $tr: Op {}
            $( impl $tr for $op {} )+
            #[cfg(test)]
            pub(crate) const $list: &[&str] = &[$(stringify!($op)),+];
        )*
    };
}

unlocks! {
    // ---- kinds: what the permit's checks were about

    /// Operations a domain can only do to itself (every check is against the
    /// caller's `_self` label): the permit unlocks [`Own`](super::Own), the
    /// caller's own domain and vCPUs.
    OnSelf (ON_SELF):
        SchedYield, SchedBlock, SchedShutdown, SchedPoll,
        VcpuInitialise, VcpuUp, VcpuDown, VcpuIsUp, VcpuGetRunstateInfo,
        VcpuSetSingleshotTimer, VcpuStopSingleshotTimer, VcpuRegisterVcpuInfo,
        HvmSetEvtchnUpcallVector, HvmPagetableDying, MemMaximumRamPage,
        VcpuRegisterRunstateMemoryArea, VcpuSetPeriodicTimer, VcpuStopPeriodicTimer,
        VcpuRegisterVcpuTimeMemoryArea, SetTimerOp, VmAssistEnable, VmAssistDisable,
        MemMemoryMap, GnttabSetVersion, Multicall, MemGetSharingFreedPages,
        MemGetSharingSharedPages,
        EvtchnBindVirq, EvtchnClose, EvtchnSendLocal, EvtchnBindIpi, EvtchnBindVcpu,
        EvtchnUnmask, EvtchnInitControl, EvtchnExpandArray, EvtchnSetPriority;

    /// Operations on a target domain (checked against its label, or the
    /// target is the caller relabelling itself): the permit unlocks
    /// [`Resolved`](super::Resolved), exactly the domain that was checked.
    OnTarget (ON_TARGET):
        SchedRemoteShutdown,
        MemPopulatePhysmap, MemDecreaseReservation, MemCurrentReservation, MemMaximumReservation,
        DomctlDestroyDomain, DomctlPauseDomain, DomctlUnpauseDomain, DomctlGetDomainInfo,
        DomctlMaxMem, DomctlSetHvmContext, DomctlGetHvmContext, DomctlMaxVcpus,
        SysctlGetDomainInfoListEntry, FlaskRelabelSelf, FlaskRelabelDomain,
        HvmSetParam, HvmGetParam, MemSetMemoryMap,
        GnttabMapRw, GnttabMapRo, GnttabUnmap, GnttabSetupTable, GnttabCopyFromCaller,
        GnttabCopyToCaller, GnttabCopyBetween, GnttabQuerySize, GnttabGetVersion,
        EvtchnReset, MemAddToPhysmap, HvmSetParamAltp2m, MemMaximumGpfn, MemRemoveFromPhysmap,
        MemAddToPhysmapBatch, MemMapForeign, MemClaimPages, MemAcquireResource,
        MemSetPodTarget, MemGetPodTarget,
        DomctlSetDomainHandle, DomctlGetTscInfo, DomctlSetTscInfo, DomctlSetNodeAffinity,
        DomctlGetNodeAffinity, DomctlCacheflush, DomctlGetCpuPolicy, DomctlSetCpuPolicy,
        DomctlGetPagingMempoolSize, DomctlSetPagingMempoolSize, DomctlGetVcpuInfo,
        DomctlSchedulerOpPut, DomctlSchedulerOpGet, DomctlSetVcpuAffinity,
        DomctlGetVcpuAffinity;

    /// Operations checked against an event channel's label (the channel, the
    /// domain it binds to): the permit unlocks the event-channel service
    /// ([`Call::channels`](super::Call::channels)) for the domain it was
    /// checked for.
    OnChannel (ON_CHANNEL):
        EvtchnAllocUnbound, EvtchnBindInterdomain, EvtchnSendInterdomain, EvtchnStatus;

    /// Operations of the security server (xsm_op): the permit unlocks the
    /// server ([`Call::flask`](super::Call::flask)).
    OnSecurity (ON_SECURITY):
        FlaskLoad, FlaskGetEnforce, FlaskSetEnforce, FlaskContextToSid, FlaskSidToContext,
        FlaskAccess, FlaskCreate, FlaskRelabel, FlaskPolicyVers, FlaskGetBool, FlaskSetBool,
        FlaskCommitBools, FlaskMls, FlaskGetAvcThreshold, FlaskSetAvcThreshold,
        FlaskAvcHashStats, FlaskAvcCacheStats, FlaskMember, FlaskAddOcontext,
        FlaskDelOcontext, FlaskGetPeerSid, FlaskRelabelSelf, FlaskRelabelDomain,
        FlaskDevicetreeLabel, FlaskDevicetreeUnlabel;

    // ---- services shared by a few operations

    /// populate_physmap / decrease_reservation (both check mmu:adjust).
    AdjustsMemory (ADJUSTS_MEMORY): MemPopulatePhysmap, MemDecreaseReservation;
    /// Pausing the target (pausedomain; the HVM-context operations pause
    /// around their access).
    Pauses (PAUSES):
        DomctlPauseDomain, DomctlSetHvmContext, DomctlGetHvmContext, DomctlGetTscInfo,
        DomctlSetTscInfo, DomctlSetCpuPolicy;
    /// Undoing a pause of the target.
    Unpauses (UNPAUSES):
        DomctlUnpauseDomain, DomctlSetHvmContext, DomctlGetHvmContext, DomctlGetTscInfo,
        DomctlSetTscInfo, DomctlSetCpuPolicy;
    /// Destroying the target.
    Destroys (DESTROYS): DomctlDestroyDomain;
    /// Giving the target its vCPUs.
    SetsVcpus (SETS_VCPUS): DomctlMaxVcpus;
    /// getdomaininfo of the target.
    ReadsDomainInfo (READS_DOMAIN_INFO): DomctlGetDomainInfo, SysctlGetDomainInfoListEntry;
    /// Changing the target's label.
    Relabels (RELABELS): FlaskRelabelSelf, FlaskRelabelDomain;
    /// Recomputing every domain's `_self` label after the policy's rules
    /// changed (a policy load, a boolean commit).
    RecomputesLabels (RECOMPUTES_LABELS): FlaskLoad, FlaskSetBool, FlaskCommitBools;
    /// Reading the hypervisor's console ring.
    ReadsConsoleRing (READS_CONSOLE_RING): SysctlReadConsole, SysctlReadConsoleClear;
    /// The number of physical CPUs.
    CountsCpus (COUNTS_CPUS):
        SysctlPhysinfo, FlaskAvcCacheStats, SysctlCpuTopoInfo, SysctlCpupoolOp;
    /// The host's total and free memory.
    SeesMemory (SEES_MEMORY): SysctlPhysinfo, SysctlNumaInfo;
    /// The number of domains.
    CountsDomains (COUNTS_DOMAINS): SysctlCpupoolOp;
    /// The highest machine frame number.
    SeesMaxMfn (SEES_MAX_MFN): SysctlPhysinfo, MemMaximumRamPage;
    /// The target's HVM parameters.
    HvmParams (HVM_PARAMS): HvmSetParam, HvmGetParam;
    /// Replacing the target's memory map.
    SetsMemoryMap (SETS_MEMORY_MAP): MemSetMemoryMap;
    /// Mapping the target's grants into the caller's physmap.
    MapsGrants (MAPS_GRANTS): GnttabMapRw, GnttabMapRo;
    /// Copying between the target's grants and the caller's frames (or
    /// another domain's grants).
    CopiesGrants (COPIES_GRANTS): GnttabCopyFromCaller, GnttabCopyToCaller, GnttabCopyBetween;
    /// The caller's own event channels (every event_channel_op sub-op but
    /// reset, which resolves its target).
    OwnChannels (OWN_CHANNELS):
        EvtchnAllocUnbound, EvtchnBindInterdomain, EvtchnBindVirq, EvtchnClose,
        EvtchnSendInterdomain, EvtchnSendLocal, EvtchnStatus, EvtchnBindIpi, EvtchnBindVcpu,
        EvtchnUnmask, EvtchnInitControl, EvtchnExpandArray, EvtchnSetPriority;
    /// Setting the domains' wall clock (XENPF_settime).
    SetsTime (SETS_TIME): PlatformSettime32, PlatformSettime64;
    /// A vCPU of the target, by index (the affinity domctls).
    NamesVcpu (NAMES_VCPU): DomctlGetVcpuInfo, DomctlSetVcpuAffinity, DomctlGetVcpuAffinity;
    /// The physical CPUs' ids and state.
    ReadsPcpus (READS_PCPUS): PlatformGetCpuinfo;
    /// Mapping pages into the target's physmap (add_to_physmap, and the
    /// batch form's shared_info and grant-table pages).
    MapsPhysmap (MAPS_PHYSMAP): MemAddToPhysmap, MemAddToPhysmapBatch;
    /// Running debug keys (what a key typed on the serial console does).
    RunsDebugKeys (RUNS_DEBUG_KEYS): SysctlDebugKeys;
    /// The CPUID policies Warden shows (the system's and every domain's).
    SeesCpuPolicy (SEES_CPU_POLICY):
        SysctlGetCpuFeatureset, SysctlGetCpuPolicy, DomctlGetCpuPolicy, DomctlSetCpuPolicy;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::{Object, Row, table::TABLE};
    use warden_abi::hypercall as hc;

    fn row(name: &str) -> &'static Row {
        TABLE
            .iter()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("{name} is not an operation of the table"))
    }

    #[test]
    fn kinds_match_the_checks_of_the_table() {
        for r in TABLE {
            let objects = || r.checks.iter().map(|c| c.object);
            let self_only = objects().all(|o| o == Object::CallerSelf);
            assert_eq!(
                ON_SELF.contains(&r.name),
                self_only,
                "{}: OnSelf exactly for rows that check only the caller's _self label",
                r.name
            );
            let on_target = objects().any(|o| matches!(o, Object::Target | Object::TargetOwn))
                // The target acting on the caller (a grant copy into the
                // caller) or on another domain (a copy between two others).
                || r.checks
                    .iter()
                    .any(|c| {
                        c.subject == crate::gate::Subject::Target
                            && matches!(c.object, Object::Caller | Object::NewSid)
                    });
            // A domain relabelling itself: the target is the caller (checked
            // against the new label only).
            let relabel_self = r.name == "FlaskRelabelSelf";
            assert_eq!(
                ON_TARGET.contains(&r.name),
                on_target || relabel_self,
                "{}: OnTarget exactly for rows that check a target",
                r.name
            );
            let chan = objects().any(|o| matches!(o, Object::Chan | Object::Peer | Object::Local))
                || r.checks.iter().any(|c| {
                    matches!(
                        c.subject,
                        crate::gate::Subject::Chan | crate::gate::Subject::PeerChan
                    )
                });
            assert_eq!(
                ON_CHANNEL.contains(&r.name),
                chan,
                "{}: OnChannel exactly for rows that check an event channel's label",
                r.name
            );
            let security = objects().any(|o| o == Object::Security);
            if security {
                assert!(ON_SECURITY.contains(&r.name), "{}: not OnSecurity", r.name);
            }
            if ON_SECURITY.contains(&r.name) {
                assert_eq!(
                    r.hypercall,
                    hc::XSM_OP,
                    "{}: OnSecurity outside xsm_op",
                    r.name
                );
            }
        }
    }

    #[test]
    fn every_listed_operation_exists() {
        for list in [
            ON_SELF,
            ON_TARGET,
            ON_SECURITY,
            ADJUSTS_MEMORY,
            PAUSES,
            UNPAUSES,
            DESTROYS,
            SETS_VCPUS,
            READS_DOMAIN_INFO,
            RELABELS,
            READS_CONSOLE_RING,
            COUNTS_CPUS,
            SEES_MEMORY,
            COUNTS_DOMAINS,
            SEES_MAX_MFN,
            RECOMPUTES_LABELS,
            HVM_PARAMS,
            SETS_MEMORY_MAP,
            MAPS_GRANTS,
            COPIES_GRANTS,
            ON_CHANNEL,
            OWN_CHANNELS,
            MAPS_PHYSMAP,
            SETS_TIME,
            READS_PCPUS,
            SEES_CPU_POLICY,
            NAMES_VCPU,
            RUNS_DEBUG_KEYS,
        ] {
            for name in list {
                row(name);
            }
        }
        // Recomputing every label is for operations that change the policy.
        for name in RECOMPUTES_LABELS {
            assert!(ON_SECURITY.contains(name), "{name} is not OnSecurity");
        }
        // Services on a target are only for operations that have one
        // (createdomain's target is the domain it creates).
        for list in [
            ADJUSTS_MEMORY,
            PAUSES,
            UNPAUSES,
            READS_DOMAIN_INFO,
            RELABELS,
            HVM_PARAMS,
            SETS_MEMORY_MAP,
            MAPS_GRANTS,
            COPIES_GRANTS,
            MAPS_PHYSMAP,
        ] {
            for name in list {
                assert!(ON_TARGET.contains(name), "{name} is not OnTarget");
            }
        }
    }
}
