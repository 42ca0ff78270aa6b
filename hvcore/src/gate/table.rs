//! The table: every operation of the ABI and its checks, in one place.
//!
//! Each line declares an operation type and generates its check code and its
//! [`Row`]. Syntax:
//!
//! ```text
//! Name: HYPERCALL / sub-op, "variant", dummy <default action>,
//!     [Subject -> Object : class { PERM ... }], ...;
//! ```
//!
//! Checks run in order; the first refusal ends the operation. The class of
//! each check is the class of its permission constants (`xsm::perms::<class>`),
//! so a permission of another class does not compile. Where Xen checks
//! nothing, Warden checks a permission of its own (see
//! `policies/flask/access_vectors`, "Warden:" entries).

use super::{CheckDesc, Ctx, Dummy, Object, Op, Permit, Row, Subject, class_id, class_name, mint};
use warden_abi::hypercall as hc;
use warden_abi::xen::event_channel as evtchn;
use warden_abi::xen::grant_table as gt;
use warden_abi::xen::platform as pf;
use warden_abi::xen::xen::{multicall, set_timer_op, vm_assist};
use warden_abi::{console, domctl, hvm, memory, sched, sysctl, vcpu, version, xsm as fx};
use xsm::perms;

macro_rules! ops {
    ($(
        $(#[$m:meta])*
        $name:ident : $hc:ident / $sub:expr, $variant:literal, dummy $dummy:ident,
            $( [ $subj:ident -> $obj:ident : $class:ident { $p0:ident $($pn:ident)* } ] ),+ ;
    )*) => {
        $(
            $(#[$m])*
            #[derive(Debug)]
            pub enum $name {}

            impl Op for $name {
                const INDEX: usize = Index::$name as usize;
                const ROW: Row = Row {
                    name: stringify!($name),
                    hypercall: hc::$hc,
                    subop: $sub,
                    variant: $variant,
                    dummy: Dummy::$dummy,
                    checks: &[$(
                        CheckDesc {
                            subject: Subject::$subj,
                            object: Object::$obj,
                            class: class_name(perms::$class::$p0),
                            class_id: class_id(perms::$class::$p0),
                            perms: perms::$class::$p0 $( .union(perms::$class::$pn) )* .bits(),
                        }
                    ),+],
                };

                #[inline]
                fn flask(ctx: &Ctx<'_>) -> Result<(Permit<Self>, bool), i32> {
                    let proof = ($(
                        ctx.has_perm(
                            Subject::$subj,
                            Object::$obj,
                            perms::$class::$p0 $( .union(perms::$class::$pn) )*,
                        )?,
                    )+);
                    Ok(mint(ctx, proof))
                }
            }
        )*

        /// Positions in [`TABLE`].
        #[allow(clippy::enum_variant_names)]
        enum Index { $( $name ),* }

        /// Every row, in declaration order.
        pub const TABLE: &[Row] = &[ $( <$name as Op>::ROW ),* ];
    };
}

ops! {
    // ---- console_io
    /// CONSOLEIO_write (Xen: xen:writeconsole; the dummy module allows it, as Xen debug builds do).
    ConsoleWrite: CONSOLE_IO / console::WRITE, "", dummy Hook,
        [Caller -> Xen : xen { WRITECONSOLE }];
    /// CONSOLEIO_read: serial input.
    ConsoleRead: CONSOLE_IO / console::READ, "", dummy Priv,
        [Caller -> Xen : xen { READCONSOLE }];

    // ---- platform_op (Xen: xsm_platform_op, XSM_PRIV; flask_platform_op
    // checks the caller against xen)
    PlatformSettime32: PLATFORM_OP / pf::SETTIME32, "", dummy Priv,
        [Caller -> Xen : xen { SETTIME }];
    PlatformSettime64: PLATFORM_OP / pf::SETTIME64, "", dummy Priv,
        [Caller -> Xen : xen { SETTIME }];
    PlatformFirmwareInfo: PLATFORM_OP / pf::FIRMWARE_INFO, "", dummy Priv,
        [Caller -> Xen : xen { FIRMWARE }];
    PlatformGetCpuinfo: PLATFORM_OP / pf::GET_CPUINFO, "", dummy Priv,
        [Caller -> Xen : xen { GETCPUINFO }];

    // ---- xen_version (Warden checks version, get_features and
    // platform_parameters too; Xen answers them unchecked)
    VersionVersion: XEN_VERSION / version::VERSION, "", dummy Hook,
        [Caller -> Xen : version { XEN_VERSION }];
    VersionExtraversion: XEN_VERSION / version::EXTRAVERSION, "", dummy Hook,
        [Caller -> Xen : version { XEN_EXTRAVERSION }];
    VersionCompileInfo: XEN_VERSION / version::COMPILE_INFO, "", dummy Hook,
        [Caller -> Xen : version { XEN_COMPILE_INFO }];
    VersionCapabilities: XEN_VERSION / version::CAPABILITIES, "", dummy Hook,
        [Caller -> Xen : version { XEN_CAPABILITIES }];
    VersionChangeset: XEN_VERSION / version::CHANGESET, "", dummy Hook,
        [Caller -> Xen : version { XEN_CHANGESET }];
    VersionPlatformParameters: XEN_VERSION / version::PLATFORM_PARAMETERS, "", dummy Hook,
        [Caller -> Xen : version { XEN_PLATFORM_PARAMETERS }];
    VersionGetFeatures: XEN_VERSION / version::GET_FEATURES, "", dummy Hook,
        [Caller -> Xen : version { XEN_GET_FEATURES }];
    VersionPagesize: XEN_VERSION / version::PAGESIZE, "", dummy Hook,
        [Caller -> Xen : version { XEN_PAGESIZE }];
    VersionGuestHandle: XEN_VERSION / version::GUEST_HANDLE, "", dummy Hook,
        [Caller -> Xen : version { XEN_GUEST_HANDLE }];
    VersionCommandline: XEN_VERSION / version::COMMANDLINE, "", dummy Priv,
        [Caller -> Xen : version { XEN_COMMANDLINE }];
    VersionBuildId: XEN_VERSION / version::BUILD_ID, "", dummy Priv,
        [Caller -> Xen : version { XEN_BUILD_ID }];

    // ---- sched_op (Warden: domain2:sched_self on oneself; Xen checks only remote_shutdown)
    SchedYield: SCHED_OP / sched::YIELD, "", dummy Hook,
        [Caller -> CallerSelf : domain2 { SCHED_SELF }];
    SchedBlock: SCHED_OP / sched::BLOCK, "", dummy Hook,
        [Caller -> CallerSelf : domain2 { SCHED_SELF }];
    SchedShutdown: SCHED_OP / sched::SHUTDOWN, "", dummy Hook,
        [Caller -> CallerSelf : domain2 { SCHED_SELF }];
    SchedPoll: SCHED_OP / sched::POLL, "", dummy Hook,
        [Caller -> CallerSelf : domain2 { SCHED_SELF }];
    SchedRemoteShutdown: SCHED_OP / sched::REMOTE_SHUTDOWN, "", dummy DmPriv,
        [Caller -> Target : domain { SHUTDOWN }];

    // ---- vcpu_op (Warden: domain2:vcpu_op on oneself; Xen checks none)
    VcpuInitialise: VCPU_OP / vcpu::INITIALISE, "", dummy Hook,
        [Caller -> CallerSelf : domain2 { VCPU_OP }];
    VcpuUp: VCPU_OP / vcpu::UP, "", dummy Hook,
        [Caller -> CallerSelf : domain2 { VCPU_OP }];
    VcpuDown: VCPU_OP / vcpu::DOWN, "", dummy Hook,
        [Caller -> CallerSelf : domain2 { VCPU_OP }];
    VcpuIsUp: VCPU_OP / vcpu::IS_UP, "", dummy Hook,
        [Caller -> CallerSelf : domain2 { VCPU_OP }];
    VcpuGetRunstateInfo: VCPU_OP / vcpu::GET_RUNSTATE_INFO, "", dummy Hook,
        [Caller -> CallerSelf : domain2 { VCPU_OP }];
    VcpuSetSingleshotTimer: VCPU_OP / vcpu::SET_SINGLESHOT_TIMER, "", dummy Hook,
        [Caller -> CallerSelf : domain2 { VCPU_OP }];
    VcpuStopSingleshotTimer: VCPU_OP / vcpu::STOP_SINGLESHOT_TIMER, "", dummy Hook,
        [Caller -> CallerSelf : domain2 { VCPU_OP }];
    VcpuRegisterVcpuInfo: VCPU_OP / vcpu::REGISTER_VCPU_INFO, "", dummy Hook,
        [Caller -> CallerSelf : domain2 { VCPU_OP }];

    // ---- time (xen::time): vcpu_op areas and timers, set_timer_op,
    // vm_assist (Warden: domain2:vcpu_op on oneself; Xen checks none)
    VcpuRegisterRunstateMemoryArea: VCPU_OP / vcpu::REGISTER_RUNSTATE_MEMORY_AREA, "", dummy Hook,
        [Caller -> CallerSelf : domain2 { VCPU_OP }];
    VcpuSetPeriodicTimer: VCPU_OP / vcpu::SET_PERIODIC_TIMER, "", dummy Hook,
        [Caller -> CallerSelf : domain2 { VCPU_OP }];
    VcpuStopPeriodicTimer: VCPU_OP / vcpu::STOP_PERIODIC_TIMER, "", dummy Hook,
        [Caller -> CallerSelf : domain2 { VCPU_OP }];
    VcpuRegisterVcpuTimeMemoryArea: VCPU_OP / vcpu::REGISTER_VCPU_TIME_MEMORY_AREA, "", dummy Hook,
        [Caller -> CallerSelf : domain2 { VCPU_OP }];
    SetTimerOp: SET_TIMER_OP / set_timer_op::SET_TIMER, "", dummy Hook,
        [Caller -> CallerSelf : domain2 { VCPU_OP }];
    VmAssistEnable: VM_ASSIST / vm_assist::ENABLE, "", dummy Hook,
        [Caller -> CallerSelf : domain2 { VCPU_OP }];
    VmAssistDisable: VM_ASSIST / vm_assist::DISABLE, "", dummy Hook,
        [Caller -> CallerSelf : domain2 { VCPU_OP }];

    // ---- multicall (Xen checks nothing for the batch itself: each entry is
    // checked as the hypercall it is; Warden: domain2:vcpu_op on oneself,
    // the batch being run by the calling vCPU)
    Multicall: MULTICALL / multicall::MULTICALL, "", dummy Hook,
        [Caller -> CallerSelf : domain2 { VCPU_OP }];

    // ---- HVM parameters (xen::params; Xen: xsm_hvm_param, XSM_TARGET)
    /// Every parameter (the first check).
    HvmSetParam: HVM_OP / hvm::SET_PARAM, "every parameter", dummy Target,
        [Caller -> Target : hvm { SETPARAM }];
    /// HVM_PARAM_ALTP2M's second check, after the per-parameter rules
    /// (Xen's xsm_hvm_param_altp2mhvm in hvm_set_param).
    HvmSetParamAltp2m: HVM_OP / hvm::SET_PARAM, "HVM_PARAM_ALTP2M (second check)", dummy Priv,
        [Caller -> Target : hvm { ALTP2MHVM }];
    HvmGetParam: HVM_OP / hvm::GET_PARAM, "", dummy Target,
        [Caller -> Target : hvm { GETPARAM }];

    // ---- memory maps
    /// Warden: mmu:stat on oneself (Xen answers XENMEM_memory_map unchecked).
    MemMemoryMap: MEMORY_OP / memory::MEMORY_MAP, "", dummy Hook,
        [Caller -> CallerSelf : mmu { STAT }];
    MemSetMemoryMap: MEMORY_OP / memory::SET_MEMORY_MAP, "", dummy Target,
        [Caller -> Target : mmu { MEMORYMAP }];
    // ---- event_channel_op (Xen 4.17's flask_evtchn_* hooks; where Xen checks
    // nothing, Warden checks domain2:evtchn_self on the caller itself)
    /// A new unbound channel in the target domain, labelled
    /// type_transition(target, remote):event.
    EvtchnAllocUnbound: EVENT_CHANNEL_OP / evtchn::ALLOC_UNBOUND, "", dummy Target,
        [Caller -> Chan : event { CREATE }],
        [Chan -> Peer : event { BIND }];
    /// A new channel labelled type_transition(caller, remote):event, bound to
    /// the remote's unbound channel, which is checked again against the caller.
    EvtchnBindInterdomain: EVENT_CHANNEL_OP / evtchn::BIND_INTERDOMAIN, "", dummy Hook,
        [Caller -> Chan : event { CREATE }],
        [Chan -> Peer : event { BIND }],
        [PeerChan -> Local : event { BIND }];
    EvtchnBindVirq: EVENT_CHANNEL_OP / evtchn::BIND_VIRQ, "", dummy Hook,
        [Caller -> CallerSelf : domain2 { EVTCHN_SELF }];
    EvtchnClose: EVENT_CHANNEL_OP / evtchn::CLOSE, "", dummy Hook,
        [Caller -> CallerSelf : domain2 { EVTCHN_SELF }];
    EvtchnSendInterdomain: EVENT_CHANNEL_OP / evtchn::SEND, "interdomain port", dummy Hook,
        [Caller -> Chan : event { SEND }];
    /// An IPI port (or an unbound one: dropped), as Xen unchecked.
    EvtchnSendLocal: EVENT_CHANNEL_OP / evtchn::SEND, "IPI, unbound or other port", dummy Hook,
        [Caller -> CallerSelf : domain2 { EVTCHN_SELF }];
    /// The port's owner against the channel (Xen's domain_has_evtchn(d, chn)).
    EvtchnStatus: EVENT_CHANNEL_OP / evtchn::STATUS, "", dummy Target,
        [Target -> Chan : event { STATUS }];
    EvtchnBindIpi: EVENT_CHANNEL_OP / evtchn::BIND_IPI, "", dummy Hook,
        [Caller -> CallerSelf : domain2 { EVTCHN_SELF }];
    EvtchnBindVcpu: EVENT_CHANNEL_OP / evtchn::BIND_VCPU, "", dummy Hook,
        [Caller -> CallerSelf : domain2 { EVTCHN_SELF }];
    EvtchnUnmask: EVENT_CHANNEL_OP / evtchn::UNMASK, "", dummy Hook,
        [Caller -> CallerSelf : domain2 { EVTCHN_SELF }];
    EvtchnReset: EVENT_CHANNEL_OP / evtchn::RESET, "", dummy Target,
        [Caller -> Target : event { RESET }];
    EvtchnInitControl: EVENT_CHANNEL_OP / evtchn::INIT_CONTROL, "", dummy Hook,
        [Caller -> CallerSelf : domain2 { EVTCHN_SELF }];
    EvtchnExpandArray: EVENT_CHANNEL_OP / evtchn::EXPAND_ARRAY, "", dummy Hook,
        [Caller -> CallerSelf : domain2 { EVTCHN_SELF }];
    EvtchnSetPriority: EVENT_CHANNEL_OP / evtchn::SET_PRIORITY, "", dummy Hook,
        [Caller -> CallerSelf : domain2 { EVTCHN_SELF }];

    // ---- hvm_op
    HvmSetEvtchnUpcallVector: HVM_OP / hvm::SET_EVTCHN_UPCALL_VECTOR, "", dummy Target,
        [Caller -> CallerSelf : hvm { SETPARAM }];
    /// Warden: hvm:setparam on oneself (with nested paging Xen 4.17 checks
    /// nothing and answers EINVAL; under shadow paging it checks hvmctl).
    HvmPagetableDying: HVM_OP / hvm::PAGETABLE_DYING, "", dummy Target,
        [Caller -> CallerSelf : hvm { SETPARAM }];

    // ---- memory_op
    MemPopulatePhysmap: MEMORY_OP / memory::POPULATE_PHYSMAP, "", dummy Target,
        [Caller -> Target : mmu { ADJUST }];
    MemDecreaseReservation: MEMORY_OP / memory::DECREASE_RESERVATION, "", dummy Target,
        [Caller -> Target : mmu { ADJUST }];
    /// Warden: mmu:stat on oneself (Xen answers it unchecked).
    MemMaximumRamPage: MEMORY_OP / memory::MAXIMUM_RAM_PAGE, "", dummy Hook,
        [Caller -> CallerSelf : mmu { STAT }];
    MemCurrentReservation: MEMORY_OP / memory::CURRENT_RESERVATION, "", dummy Target,
        [Caller -> Target : mmu { STAT }];
    MemMaximumReservation: MEMORY_OP / memory::MAXIMUM_RESERVATION, "", dummy Target,
        [Caller -> Target : mmu { STAT }];
    MemAddToPhysmap: MEMORY_OP / memory::ADD_TO_PHYSMAP, "", dummy Target,
        [Caller -> Target : mmu { PHYSMAP }];
    MemMaximumGpfn: MEMORY_OP / memory::MAXIMUM_GPFN, "", dummy Target,
        [Caller -> Target : mmu { STAT }];
    /// Xen's xsm_remove_from_physmap.
    MemRemoveFromPhysmap: MEMORY_OP / memory::REMOVE_FROM_PHYSMAP, "", dummy Target,
        [Caller -> Target : mmu { PHYSMAP }];
    /// The batch's own check (Xen's xatp_permission_check), before any page.
    MemAddToPhysmapBatch: MEMORY_OP / memory::ADD_TO_PHYSMAP_BATCH, "the batch", dummy Target,
        [Caller -> Target : mmu { PHYSMAP }];
    /// XENMAPSPACE_gmfn_foreign, checked for each page (Xen's
    /// xsm_map_gmfn_foreign in p2m_add_foreign; a refusal is that page's
    /// error): the mapper against the domain whose frame it maps. Warden
    /// maps foreign frames only into the caller's own physmap, so the
    /// mapper is the caller and the target is the foreign domain.
    MemMapForeign: MEMORY_OP / memory::ADD_TO_PHYSMAP_BATCH, "gmfn_foreign (per page)", dummy Target,
        [Caller -> Target : mmu { MAP_READ MAP_WRITE }];
    /// Xen's xsm_claim_pages.
    MemClaimPages: MEMORY_OP / memory::CLAIM_PAGES, "", dummy Priv,
        [Caller -> Target : domain2 { SETCLAIM }];
    /// Xen's xsm_set_pod_target (`xl mem-set`).
    MemSetPodTarget: MEMORY_OP / memory::SET_POD_TARGET, "", dummy Priv,
        [Caller -> Target : domain { SETPODTARGET }];
    /// Xen's xsm_get_pod_target.
    MemGetPodTarget: MEMORY_OP / memory::GET_POD_TARGET, "", dummy Priv,
        [Caller -> Target : domain { GETPODTARGET }];
    /// Xen's xsm_domain_resource_map.
    MemAcquireResource: MEMORY_OP / memory::ACQUIRE_RESOURCE, "", dummy DmPriv,
        [Caller -> Target : domain2 { RESOURCE_MAP }];
    /// Warden: mmu:stat on oneself (Xen answers the sharing counters unchecked).
    MemGetSharingFreedPages: MEMORY_OP / memory::GET_SHARING_FREED_PAGES, "", dummy Hook,
        [Caller -> CallerSelf : mmu { STAT }];
    /// Warden: mmu:stat on oneself (Xen answers the sharing counters unchecked).
    MemGetSharingSharedPages: MEMORY_OP / memory::GET_SHARING_SHARED_PAGES, "", dummy Hook,
        [Caller -> CallerSelf : mmu { STAT }];

    // ---- grant_table_op (per-entry refusals are GNTST_permission_denied
    // in the entry's status, not the hypercall's errno)
    /// map_grant_ref, writable: mapper -> granter (Xen's flask_grant_mapref).
    GnttabMapRw: GRANT_TABLE_OP / gt::MAP_GRANT_REF, "writable", dummy Hook,
        [Caller -> Target : grant { MAP_READ MAP_WRITE }];
    /// map_grant_ref with GNTMAP_readonly.
    GnttabMapRo: GRANT_TABLE_OP / gt::MAP_GRANT_REF, "read-only", dummy Hook,
        [Caller -> Target : grant { MAP_READ }];
    /// unmap_grant_ref: mapper -> granter.
    GnttabUnmap: GRANT_TABLE_OP / gt::UNMAP_GRANT_REF, "", dummy Hook,
        [Caller -> Target : grant { UNMAP }];
    GnttabSetupTable: GRANT_TABLE_OP / gt::SETUP_TABLE, "", dummy Target,
        [Caller -> Target : grant { SETUP }];
    /// copy whose source is the caller (target: the destination's domain;
    /// the caller itself when both sides are its own).
    GnttabCopyFromCaller: GRANT_TABLE_OP / gt::COPY, "source is the caller", dummy Hook,
        [Caller -> Target : grant { COPY }];
    /// copy from another domain (the target) into the caller.
    GnttabCopyToCaller: GRANT_TABLE_OP / gt::COPY, "source another domain, destination the caller", dummy Hook,
        [Target -> Caller : grant { COPY }];
    /// copy between two other domains' grants (netback forwarding a page
    /// one guest granted, mapped in dom0, into another guest's grant):
    /// source -> destination as Xen's flask_grant_copy; the target is the
    /// source, the label argument the destination's label (its `_self`
    /// label when it is the source, Xen's `domain_target_sid`).
    GnttabCopyBetween: GRANT_TABLE_OP / gt::COPY, "between two other domains", dummy Hook,
        [Target -> NewSid : grant { COPY }];
    GnttabQuerySize: GRANT_TABLE_OP / gt::QUERY_SIZE, "", dummy Target,
        [Caller -> Target : grant { QUERY }];
    /// Xen checks query_size's permission for get_version.
    GnttabGetVersion: GRANT_TABLE_OP / gt::GET_VERSION, "", dummy Target,
        [Caller -> Target : grant { QUERY }];
    /// Warden: grant:setup on oneself (Xen checks nothing).
    GnttabSetVersion: GRANT_TABLE_OP / gt::SET_VERSION, "", dummy Hook,
        [Caller -> CallerSelf : grant { SETUP }];

    // ---- domctl (Xen 4.17's flask_domctl and hooks; checked before the
    // domctl path takes any lock: XSA-492/499)
    /// domain:create against the new domain's label (ssidref; 0 = unlabeled).
    DomctlCreateDomain: DOMCTL / domctl::CREATEDOMAIN, "", dummy Priv,
        [Caller -> NewSid : domain { CREATE }];
    DomctlDestroyDomain: DOMCTL / domctl::DESTROYDOMAIN, "", dummy Priv,
        [Caller -> Target : domain { DESTROY }];
    DomctlPauseDomain: DOMCTL / domctl::PAUSEDOMAIN, "", dummy Priv,
        [Caller -> Target : domain { PAUSE }];
    DomctlUnpauseDomain: DOMCTL / domctl::UNPAUSEDOMAIN, "", dummy Priv,
        [Caller -> Target : domain { UNPAUSE }];
    /// Checked against the domain found (the first with id >= the one asked for).
    DomctlGetDomainInfo: DOMCTL / domctl::GETDOMAININFO, "", dummy XsPriv,
        [Caller -> Target : domain { GETDOMAININFO }];
    DomctlMaxMem: DOMCTL / domctl::MAX_MEM, "", dummy Priv,
        [Caller -> Target : domain { SETDOMAINMAXMEM }];
    /// HVM context records into the target (Xen: hvm sethvmc).
    DomctlSetHvmContext: DOMCTL / domctl::SETHVMCONTEXT, "", dummy Priv,
        [Caller -> Target : hvm { SETHVMC }];
    /// The target's HVM context records (Xen: hvm gethvmc).
    DomctlGetHvmContext: DOMCTL / domctl::GETHVMCONTEXT, "", dummy Priv,
        [Caller -> Target : hvm { GETHVMC }];
    DomctlMaxVcpus: DOMCTL / domctl::MAX_VCPUS, "", dummy Priv,
        [Caller -> Target : domain { MAX_VCPUS }];
    DomctlSetDomainHandle: DOMCTL / domctl::SETDOMAINHANDLE, "", dummy Priv,
        [Caller -> Target : domain { SETDOMAINHANDLE }];
    DomctlSetVcpuAffinity: DOMCTL / domctl::SETVCPUAFFINITY, "", dummy Priv,
        [Caller -> Target : domain { SETAFFINITY }];
    DomctlGetVcpuAffinity: DOMCTL / domctl::GETVCPUAFFINITY, "", dummy Priv,
        [Caller -> Target : domain { GETAFFINITY }];
    /// A vCPU's state (`xl vcpu-list`).
    DomctlGetVcpuInfo: DOMCTL / domctl::GETVCPUINFO, "", dummy Priv,
        [Caller -> Target : domain { GETVCPUINFO }];
    /// scheduler_op putinfo and putvcpuinfo (Xen's flask_domctl_scheduler_op;
    /// another command gets avc_unknown_permission's answer).
    DomctlSchedulerOpPut: DOMCTL / domctl::SCHEDULER_OP, "putinfo, putvcpuinfo", dummy Priv,
        [Caller -> Target : domain2 { SETSCHEDULER }];
    /// scheduler_op getinfo and getvcpuinfo.
    DomctlSchedulerOpGet: DOMCTL / domctl::SCHEDULER_OP, "getinfo, getvcpuinfo", dummy Priv,
        [Caller -> Target : domain { GETSCHEDULER }];
    DomctlGetTscInfo: DOMCTL / domctl::GETTSCINFO, "", dummy Priv,
        [Caller -> Target : domain2 { GETTSC }];
    DomctlSetTscInfo: DOMCTL / domctl::SETTSCINFO, "", dummy Priv,
        [Caller -> Target : domain2 { SETTSC }];
    DomctlSetNodeAffinity: DOMCTL / domctl::SETNODEAFFINITY, "", dummy Priv,
        [Caller -> Target : domain { SETAFFINITY }];
    DomctlGetNodeAffinity: DOMCTL / domctl::GETNODEAFFINITY, "", dummy Priv,
        [Caller -> Target : domain { GETAFFINITY }];
    /// Checked, then -ENOSYS as on an x86 Xen (caches are coherent; libxc
    /// never issues it on x86).
    DomctlCacheflush: DOMCTL / domctl::CACHEFLUSH, "", dummy Priv,
        [Caller -> Target : domain2 { CACHEFLUSH }];
    DomctlGetCpuPolicy: DOMCTL / domctl::GET_CPU_POLICY, "", dummy Priv,
        [Caller -> Target : domain2 { GET_CPU_POLICY }];
    DomctlSetCpuPolicy: DOMCTL / domctl::SET_CPU_POLICY, "", dummy Priv,
        [Caller -> Target : domain2 { SET_CPU_POLICY }];
    DomctlGetPagingMempoolSize: DOMCTL / domctl::GET_PAGING_MEMPOOL_SIZE, "", dummy Priv,
        [Caller -> Target : domain { GETPAGINGMEMPOOL }];
    DomctlSetPagingMempoolSize: DOMCTL / domctl::SET_PAGING_MEMPOOL_SIZE, "", dummy Priv,
        [Caller -> Target : domain { SETPAGINGMEMPOOL }];

    // ---- sysctl (Xen 4.17's flask_sysctl)
    SysctlReadConsole: SYSCTL / sysctl::READCONSOLE, "read", dummy Priv,
        [Caller -> Xen : xen { READCONSOLE }];
    SysctlReadConsoleClear: SYSCTL / sysctl::READCONSOLE, "read and clear", dummy Priv,
        [Caller -> Xen : xen { READCONSOLE CLEARCONSOLE }];
    SysctlPhysinfo: SYSCTL / sysctl::PHYSINFO, "", dummy Priv,
        [Caller -> Xen : xen { PHYSINFO }];
    SysctlSchedId: SYSCTL / sysctl::SCHED_ID, "", dummy Priv,
        [Caller -> Xen : xen { GETSCHEDULER }];
    /// Every key of the call (Xen checks the sysctl, not each key).
    SysctlDebugKeys: SYSCTL / sysctl::DEBUG_KEYS, "", dummy Priv,
        [Caller -> Xen : xen { DEBUG }];
    /// The sysctl's own check (Xen: flask_getdomaininfo(dom_xen)).
    SysctlGetDomainInfoList: SYSCTL / sysctl::GETDOMAININFOLIST, "the list", dummy Priv,
        [Caller -> DomXen : domain { GETDOMAININFO }];
    /// Checked once per listed domain (Xen's xsm_getdomaininfo); domains
    /// refused are skipped.
    SysctlGetDomainInfoListEntry: SYSCTL / sysctl::GETDOMAININFOLIST, "per listed domain", dummy XsPriv,
        [Caller -> Target : domain { GETDOMAININFO }];
    SysctlCpuTopoInfo: SYSCTL / sysctl::CPUTOPOINFO, "", dummy Priv,
        [Caller -> Xen : xen { PHYSINFO }];
    SysctlNumaInfo: SYSCTL / sysctl::NUMAINFO, "", dummy Priv,
        [Caller -> Xen : xen { PHYSINFO }];
    SysctlGetCpuFeatureset: SYSCTL / sysctl::GET_CPU_FEATURESET, "", dummy Priv,
        [Caller -> Xen : xen2 { GET_CPU_FEATURESET }];
    /// Xen checks xen:physinfo for the system policies.
    SysctlGetCpuPolicy: SYSCTL / sysctl::GET_CPU_POLICY, "", dummy Priv,
        [Caller -> Xen : xen { PHYSINFO }];
    /// Every cpupool sub-operation (Xen checks the sysctl, not the sub-op).
    SysctlCpupoolOp: SYSCTL / sysctl::CPUPOOL_OP, "", dummy Priv,
        [Caller -> Xen : xen { CPUPOOL_OP }];
    LivepatchUpload: SYSCTL / sysctl::LIVEPATCH_OP, "upload", dummy Priv,
        [Caller -> Xen : xen2 { LIVEPATCH_OP LIVEPATCH_UPLOAD }];
    LivepatchGet: SYSCTL / sysctl::LIVEPATCH_OP, "get", dummy Priv,
        [Caller -> Xen : xen2 { LIVEPATCH_OP }];
    LivepatchList: SYSCTL / sysctl::LIVEPATCH_OP, "list", dummy Priv,
        [Caller -> Xen : xen2 { LIVEPATCH_OP }];
    LivepatchAction: SYSCTL / sysctl::LIVEPATCH_OP, "action", dummy Priv,
        [Caller -> Xen : xen2 { LIVEPATCH_OP LIVEPATCH_ACTION }];

    // ---- xsm_op (FLASK)
    FlaskLoad: XSM_OP / fx::LOAD, "", dummy NoXsm,
        [Caller -> Security : security { LOAD_POLICY }];
    FlaskGetEnforce: XSM_OP / fx::GETENFORCE, "", dummy NoXsm,
        [Caller -> Security : security { GETSECPARAM }];
    /// Checked whether or not the mode changes (Xen checks only a change).
    FlaskSetEnforce: XSM_OP / fx::SETENFORCE, "", dummy NoXsm,
        [Caller -> Security : security { SETENFORCE }];
    FlaskContextToSid: XSM_OP / fx::CONTEXT_TO_SID, "", dummy NoXsm,
        [Caller -> Security : security { CHECK_CONTEXT }];
    FlaskSidToContext: XSM_OP / fx::SID_TO_CONTEXT, "", dummy NoXsm,
        [Caller -> Security : security { CHECK_CONTEXT }];
    FlaskAccess: XSM_OP / fx::ACCESS, "", dummy NoXsm,
        [Caller -> Security : security { COMPUTE_AV }];
    FlaskCreate: XSM_OP / fx::CREATE, "", dummy NoXsm,
        [Caller -> Security : security { COMPUTE_CREATE }];
    FlaskRelabel: XSM_OP / fx::RELABEL, "", dummy NoXsm,
        [Caller -> Security : security { COMPUTE_RELABEL }];
    FlaskPolicyVers: XSM_OP / fx::POLICYVERS, "", dummy NoXsm,
        [Caller -> Security : security { GETSECPARAM }];
    FlaskGetBool: XSM_OP / fx::GETBOOL, "", dummy NoXsm,
        [Caller -> Security : security { GETSECPARAM }];
    FlaskSetBool: XSM_OP / fx::SETBOOL, "", dummy NoXsm,
        [Caller -> Security : security { SETBOOL }];
    FlaskCommitBools: XSM_OP / fx::COMMITBOOLS, "", dummy NoXsm,
        [Caller -> Security : security { SETBOOL }];
    FlaskMls: XSM_OP / fx::MLS, "", dummy NoXsm,
        [Caller -> Security : security { GETSECPARAM }];
    FlaskGetAvcThreshold: XSM_OP / fx::GETAVC_THRESHOLD, "", dummy NoXsm,
        [Caller -> Security : security { GETSECPARAM }];
    /// Checked whether or not the value changes (Xen checks only a change).
    FlaskSetAvcThreshold: XSM_OP / fx::SETAVC_THRESHOLD, "", dummy NoXsm,
        [Caller -> Security : security { SETSECPARAM }];
    FlaskAvcHashStats: XSM_OP / fx::AVC_HASHSTATS, "", dummy NoXsm,
        [Caller -> Security : security { GETSECPARAM }];
    FlaskAvcCacheStats: XSM_OP / fx::AVC_CACHESTATS, "", dummy NoXsm,
        [Caller -> Security : security { GETSECPARAM }];
    FlaskMember: XSM_OP / fx::MEMBER, "", dummy NoXsm,
        [Caller -> Security : security { COMPUTE_MEMBER }];
    FlaskAddOcontext: XSM_OP / fx::ADD_OCONTEXT, "", dummy NoXsm,
        [Caller -> Security : security { ADD_OCONTEXT }];
    FlaskDelOcontext: XSM_OP / fx::DEL_OCONTEXT, "", dummy NoXsm,
        [Caller -> Security : security { DEL_OCONTEXT }];
    FlaskGetPeerSid: XSM_OP / fx::GET_PEER_SID, "", dummy NoXsm,
        [Caller -> Security : security { GETSECPARAM }];
    /// A domain relabelling itself (domid DOMID_SELF or its own id).
    FlaskRelabelSelf: XSM_OP / fx::RELABEL_DOMAIN, "self", dummy NoXsm,
        [Caller -> NewSid : domain2 { RELABELSELF }],
        [Caller -> NewSid : domain { TRANSITION }];
    /// A domain relabelling another one.
    FlaskRelabelDomain: XSM_OP / fx::RELABEL_DOMAIN, "other domain", dummy NoXsm,
        [Caller -> TargetOwn : domain2 { RELABELFROM }],
        [Caller -> NewSid : domain2 { RELABELTO }],
        [Target -> NewSid : domain { TRANSITION }];
    FlaskDevicetreeLabel: XSM_OP / fx::DEVICETREE_LABEL, "label (sid != 0)", dummy NoXsm,
        [Caller -> Security : security { ADD_OCONTEXT }];
    FlaskDevicetreeUnlabel: XSM_OP / fx::DEVICETREE_LABEL, "remove (sid 0)", dummy NoXsm,
        [Caller -> Security : security { DEL_OCONTEXT }];
}

#[cfg(test)]
mod tests {
    use super::TABLE;
    use alloc::vec::Vec;
    use warden_abi::HYPERCALLS;

    #[test]
    fn every_abi_operation_has_a_row_and_every_row_an_operation() {
        for h in HYPERCALLS {
            for s in h.subops {
                let rows: Vec<_> = TABLE
                    .iter()
                    .filter(|r| r.hypercall == h.number && r.subop == s.number)
                    .collect();
                assert!(
                    !rows.is_empty(),
                    "{}:{} has no row in the gate table",
                    h.name,
                    s.name
                );
                if rows.len() > 1 {
                    // Several forms: each must say which.
                    for r in &rows {
                        assert!(!r.variant.is_empty(), "{} needs a variant", r.name);
                    }
                }
            }
        }
        for r in TABLE {
            assert!(
                warden_abi::subop_name(r.hypercall, r.subop).is_some(),
                "row {} names no ABI operation ({}, {})",
                r.name,
                r.hypercall,
                r.subop
            );
        }
    }

    #[test]
    fn every_row_checks_something_real() {
        for r in TABLE {
            assert!(!r.checks.is_empty(), "{} has no check", r.name);
            for (i, c) in r.checks.iter().enumerate() {
                assert!(c.perms != 0, "{} check {i} has no permission", r.name);
                let names = r.perm_names(i);
                assert!(names.iter().all(|n| *n != "?"), "{}: unnamed bit", r.name);
                let id = xsm::ClassId::from_raw(c.class_id).expect("class exists");
                assert_eq!(id.name(), c.class);
            }
        }
        let mut names: Vec<_> = TABLE.iter().map(|r| r.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), TABLE.len(), "duplicate operation names");
    }

    #[test]
    fn rows_say_what_xen_checks() {
        let row = |n: &str| TABLE.iter().find(|r| r.name == n).unwrap();
        let pause = row("DomctlPauseDomain");
        assert_eq!(pause.checks[0].class, "domain");
        assert_eq!(pause.perm_names(0), ["pause"]);
        let rc = row("SysctlReadConsoleClear");
        assert_eq!(rc.perm_names(0), ["readconsole", "clearconsole"]);
        let relabel = row("FlaskRelabelDomain");
        assert_eq!(relabel.checks.len(), 3);
        assert_eq!(relabel.perm_names(2), ["transition"]);
        assert_eq!(relabel.checks[2].subject, super::Subject::Target);
        let lp = row("LivepatchUpload");
        assert_eq!(lp.checks[0].class, "xen2");
        assert_eq!(lp.perm_names(0), ["livepatch_op", "livepatch_upload"]);
    }
}
