//! The operation matrix: every (hypercall, sub-operation) of the ABI, run
//! by a guest with a given label, with the outcome the default policy
//! implies for that label. Each operation prints
//!
//! ```text
//! MATRIX d<id> <Operation>[/<variant>] rc=<result> expect=<allow|deny|stub> <OK|FAIL>
//! ```
//!
//! where `<Operation>` is the name of the operation's row in the
//! hypervisor's gate table (`hvcore::gate::table`), so the host test can
//! find its class and permissions and look for the matching `avc:` line.
//! "deny" means -EACCES; "allow" means the check passed and the operation
//! did what it should (each operation says what that is); "stub" means the
//! check passed and the operation, which Warden does not implement yet,
//! returned its documented errno (see [`Good::Stub`]). In permissive mode
//! every operation is expected to pass the check and then do exactly what
//! it does when allowed.

use crate::check;
use alloc::vec::Vec;
use warden_abi::errno::{EACCES, EINVAL, ENOSYS, EOPNOTSUPP};
use warden_abi::xen::hvm_save as hs;
use warden_abi::{DOMID_SELF, DomId, Pod, sysctl::livepatch, xsm as fx};
use warden_guest::evtchn;
use warden_guest::hypercall::{self as hc, HResult};
use warden_guest::println;

/// A page of ours for the FIFO control-block attempts.
#[repr(C, align(4096))]
struct FifoPage([u8; 4096]);
static FIFO_PAGE: FifoPage = FifoPage([0; 4096]);

/// Operations only a label that may make the channel they need can reach:
/// for the others the port is missing (EINVAL before any check). Their
/// denials are shown where a bindable port exists (tests/tests/evtchn.rs).
const NEEDS_OWN_CHANNEL: [&str; 2] = ["EvtchnBindInterdomain", "EvtchnSendInterdomain"];

/// Operations whose check only a caller past an earlier one reaches:
/// HVM_PARAM_ALTP2M's second check comes after hvm setparam on the target,
/// which no refused label of this boot has (the hvcore dispatcher test
/// shows a device model refused it).
const NEEDS_EARLIER_CHECK: [&str; 1] = ["HvmSetParamAltp2m"];

/// Operations only the hardware domain may attempt (Xen refuses the others
/// before any check: foreign mappings EPERM per page, acquire_resource
/// EACCES): run by dom0 only; their refusals are shown against the domain
/// dom0 may not touch (`/mute`).
const NEEDS_HARDWARE_DOMAIN: [&str; 4] = [
    "MemMapForeign",
    "MemMapForeign/mute",
    "MemAcquireResource",
    "MemAcquireResource/mute",
];

/// The labels the matrix is run under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    Dom0,
    DomU,
    Restricted,
    Livepatch,
}

impl Who {
    pub fn parse(s: &str) -> Option<Who> {
        Some(match s {
            "dom0" => Who::Dom0,
            "domU" => Who::DomU,
            "restricted" => Who::Restricted,
            "livepatch" => Who::Livepatch,
            _ => return None,
        })
    }
    fn bit(self) -> u8 {
        match self {
            Who::Dom0 => D0,
            Who::DomU => DU,
            Who::Restricted => RE,
            Who::Livepatch => LP,
        }
    }
}

const D0: u8 = 1;
const DU: u8 = 2;
const RE: u8 = 4;
const LP: u8 = 8;
const ALL: u8 = D0 | DU | RE | LP;
/// What every domain_type may do to itself in the default policy.
const SELF: u8 = D0 | DU | LP;

/// What "allowed" looks like for an operation.
#[derive(Debug, Clone, Copy)]
pub enum Good {
    /// Returns 0.
    Zero,
    /// Returns a value >= 0.
    NonNeg,
    /// Returns exactly this.
    Val(i64),
    /// The check passes and the operation then fails with this errno.
    Err(i32),
    /// getdomaininfolist: allowed = some domains listed.
    Listed,
    /// Not implemented by Warden yet: the check passes, then this errno.
    /// Never counted as "allowed" (the host test lists these operations).
    Stub(i32),
}

/// The running state of the matrix.
pub struct Ctx {
    pub who: Who,
    pub me: DomId,
    pub victim: DomId,
    pub permissive: bool,
    /// A policy to LOAD (dom0: the default policy, handed over as a module).
    pub policy: &'static [u8],
    /// A domain dom0 may not see (unlabeled_t; 0: none in this boot).
    pub mute: DomId,
    self_top: u64,
    victim_top: u64,
    new_dom: DomId,
    building_sid: u32,
    /// An HVM context image read (gethvmcontext).
    saved: Vec<u8>,
    threshold: u32,
    /// Event-channel ports made along the way (0: none).
    unbound: u32,
    bound: u32,
    virq: u32,
    ipi: u32,
}

struct Op {
    name: &'static str,
    allowed: u8,
    good: Good,
    run: fn(&mut Ctx) -> i64,
}

fn rc(r: HResult) -> i64 {
    match r {
        Ok(v) => v as i64,
        Err(e) => -(e.0 as i64),
    }
}

/// Xen answers a refused xen_version string sub-op with success and
/// "<denied>" (empty, 0, zeroes; build_id -EPERM): the matrix's "denied"
/// is -EACCES, so such an answer is reported as that.
fn denied_if(r: i64, denied: bool) -> i64 {
    if denied { -(EACCES as i64) } else { r }
}

/// A guest-physical address where nothing is (grant maps).
const GNT_GPA: u64 = 0x7f0_0000_0000;

/// Where dom0's foreign mappings of the matrix go.
const FOREIGN_GFN: u64 = 0x80_0000;

/// Map `d`'s frame 0 into our physmap (gmfn_foreign) and unmap it: the
/// page's result.
fn foreign_map_and_unmap(d: DomId) -> i64 {
    let mut errs = [1i32];
    if let Err(e) = hc::add_to_physmap_batch(
        DOMID_SELF,
        warden_abi::memory::XENMAPSPACE_GMFN_FOREIGN,
        d,
        &[0],
        &[FOREIGN_GFN],
        &mut errs,
    ) {
        return -(e.0 as i64);
    }
    if errs[0] == 0 {
        let _ = hc::remove_from_physmap(DOMID_SELF, FOREIGN_GFN);
    }
    i64::from(errs[0])
}

/// acquire_resource of `d`'s grant table: its size, then frame 0 mapped
/// into our physmap and unmapped.
fn acquire_and_unmap(d: DomId) -> i64 {
    use warden_abi::memory::{RESOURCE_GRANT_TABLE, RESOURCE_GRANT_TABLE_ID_SHARED};
    let size = hc::acquire_resource(
        d,
        RESOURCE_GRANT_TABLE,
        RESOURCE_GRANT_TABLE_ID_SHARED,
        0,
        &[],
    );
    if size.is_err() {
        return rc(size);
    }
    let r = rc_unit(hc::acquire_resource(
        d,
        RESOURCE_GRANT_TABLE,
        RESOURCE_GRANT_TABLE_ID_SHARED,
        0,
        &[FOREIGN_GFN + 1],
    ));
    if r == 0 {
        let _ = hc::remove_from_physmap(DOMID_SELF, FOREIGN_GFN + 1);
    }
    r
}

/// A grant-table entry's status as the matrix reports it (see `ops`).
fn gnt(r: Result<i16, warden_guest::Errno>) -> i64 {
    match r {
        Ok(warden_abi::xen::grant_table::GNTST_PERMISSION_DENIED) => -(EACCES as i64),
        Ok(s) => s as i64,
        Err(e) => -(e.0 as i64),
    }
}

fn rc_unit<T>(r: Result<T, warden_guest::Errno>) -> i64 {
    rc(r.map(|_| 0))
}

impl Ctx {
    pub fn new(
        who: Who,
        me: DomId,
        victim: DomId,
        permissive: bool,
        policy: &'static [u8],
        mem_bytes: u64,
    ) -> Ctx {
        Ctx {
            who,
            me,
            victim,
            permissive,
            policy,
            mute: 0,
            self_top: mem_bytes / 4096 - 1,
            victim_top: 0,
            new_dom: 0,
            building_sid: xsm_domu_sid(),
            saved: Vec::new(),
            threshold: 512,
            unbound: 0,
            bound: 0,
            virq: 0,
            ipi: 0,
        }
    }

    /// The domain privileged-style operations act on: a domain this guest
    /// created (dom0, or anyone in permissive mode), else the victim.
    fn target(&self) -> DomId {
        if self.new_dom != 0 {
            self.new_dom
        } else {
            self.victim
        }
    }
}

fn xsm_domu_sid() -> u32 {
    12 // initial SID domU
}

fn park(_vcpu: u32) -> ! {
    loop {
        let _ = hc::sched_block();
    }
}

/// A runstate area (48 bytes) and a time area (at +64) for the vcpu_op rows.
#[repr(C, align(64))]
struct Areas([u8; 128]);
static mut AREAS: Areas = Areas([0; 128]);

fn now() -> u64 {
    warden_guest::time::now_ns()
}

fn ops() -> Vec<Op> {
    macro_rules! op {
        ($name:literal, $allowed:expr, $good:expr, $run:expr) => {
            Op {
                name: $name,
                allowed: $allowed,
                good: $good,
                run: $run,
            }
        };
    }
    alloc::vec![
        // ---- console_io
        op!("ConsoleWrite", ALL, Good::Zero, |_| rc(hc::console_write(
            b"matrix: console write\n"
        ))),
        op!("ConsoleRead", D0 | LP, Good::NonNeg, |_| {
            let mut b = [0u8; 16];
            rc(hc::console_read(&mut b))
        }),
        // ---- platform_op (the control domain's: xen:settime, firmware, getcpuinfo)
        op!("PlatformSettime32", D0, Good::Zero, |_| {
            // 2026-01-01 00:00:00 UTC now.
            let t = warden_abi::xen::platform::Settime32 {
                secs: 1_767_225_600,
                nsecs: 0,
                system_time: now(),
            };
            rc(hc::platform_cmd(warden_abi::xen::platform::SETTIME32, t.as_bytes()).map(|_| 0))
        }),
        op!("PlatformSettime64", D0, Good::Zero, |_| rc(hc::settime64(
            1_767_225_600,
            0,
            now()
        ))),
        op!("PlatformFirmwareInfo", D0, Good::Zero, |_| {
            use warden_abi::xen::platform as pf;
            let f = pf::FirmwareInfo {
                kind: pf::FW_KBD_SHIFT_FLAGS,
                index: 0,
            };
            rc(hc::platform_cmd(pf::FIRMWARE_INFO, f.as_bytes()).map(|_| 0))
        }),
        op!("PlatformGetCpuinfo", D0, Good::Zero, |_| {
            let r = hc::pcpu_info(0);
            check!(
                r.map_or(true, |i| i.flags
                    == warden_abi::xen::platform::PCPU_FLAGS_ONLINE),
                "physical CPU 0 is online: {r:?}"
            );
            rc(r.map(|_| 0))
        }),
        // ---- xen_version
        op!("VersionVersion", SELF, Good::Val((4 << 16) | 17), |_| rc(
            hc::xen_version(warden_abi::version::VERSION, 0)
        )),
        op!("VersionExtraversion", SELF, Good::Zero, |_| {
            let mut v = warden_abi::version::ExtraVersion::default();
            denied_if(
                rc(hc::xen_version_into(
                    warden_abi::version::EXTRAVERSION,
                    &mut v,
                )),
                v.text.starts_with(b"<denied>\0"),
            )
        }),
        op!("VersionCompileInfo", SELF, Good::Zero, |_| {
            let mut v = warden_abi::version::CompileInfo::default();
            denied_if(
                rc(hc::xen_version_into(
                    warden_abi::version::COMPILE_INFO,
                    &mut v,
                )),
                v.compiler.starts_with(b"<denied>\0"),
            )
        }),
        op!("VersionCapabilities", SELF, Good::Zero, |_| {
            let mut v = warden_abi::version::Capabilities::default();
            denied_if(
                rc(hc::xen_version_into(
                    warden_abi::version::CAPABILITIES,
                    &mut v,
                )),
                v.text[0] == 0,
            )
        }),
        op!("VersionChangeset", SELF, Good::Zero, |_| {
            let mut v = warden_abi::version::Changeset::default();
            denied_if(
                rc(hc::xen_version_into(warden_abi::version::CHANGESET, &mut v)),
                v.text.starts_with(b"<denied>\0"),
            )
        }),
        op!("VersionPlatformParameters", SELF, Good::Zero, |_| {
            let mut v = warden_abi::version::PlatformParameters::default();
            rc(hc::xen_version_into(
                warden_abi::version::PLATFORM_PARAMETERS,
                &mut v,
            ))
        }),
        op!("VersionGetFeatures", SELF, Good::Zero, |_| {
            let mut v = warden_abi::version::FeatureInfo::default();
            rc(hc::xen_version_into(
                warden_abi::version::GET_FEATURES,
                &mut v,
            ))
        }),
        op!("VersionPagesize", SELF, Good::Val(4096), |_| {
            let r = rc(hc::xen_version(warden_abi::version::PAGESIZE, 0));
            denied_if(r, r == 0)
        }),
        op!("VersionGuestHandle", SELF, Good::Zero, |c| {
            let mut v = warden_abi::version::DomainHandle::default();
            // A refusal writes zeroes, like a boot-built domain's own
            // handle: only the restricted guest (refused every version
            // sub-op) can tell (the hvcore tests check the refusal itself).
            denied_if(
                rc(hc::xen_version_into(
                    warden_abi::version::GUEST_HANDLE,
                    &mut v,
                )),
                c.who == Who::Restricted && !c.permissive && v.handle == [0; 16],
            )
        }),
        op!("VersionCommandline", D0 | LP, Good::Zero, |_| {
            let mut v = warden_abi::version::CommandLine::default();
            denied_if(
                rc(hc::xen_version_into(
                    warden_abi::version::COMMANDLINE,
                    &mut v,
                )),
                v.text.starts_with(b"<denied>\0"),
            )
        }),
        op!("VersionBuildId", D0 | LP, Good::Val(20), |_| {
            let mut b = [0u8; 4 + 64];
            b[..4].copy_from_slice(&64u32.to_le_bytes());
            let r = rc(hc::xen_version(
                warden_abi::version::BUILD_ID,
                b.as_mut_ptr() as u64,
            ));
            // Xen refuses build_id with -EPERM.
            denied_if(r, r == -(warden_abi::errno::EPERM as i64))
        }),
        // ---- sched_op on oneself
        op!("SchedYield", ALL, Good::Zero, |_| rc(hc::sched_yield())),
        op!("SchedPoll", ALL, Good::Zero, |_| rc(hc::sched_poll(
            &[],
            now() + 1_000_000
        ))),
        // ---- grant_table_op: per-entry results are GNTST_* statuses; the
        // matrix reports the status as rc, GNTST_permission_denied as
        // -EACCES (so a denial is judged as every other). The victim grants
        // nothing: a map or copy that passed its check ends with
        // GNTST_general_error (-1). Unmap needs a live mapping (covered by
        // hvcore's dispatcher test and the gnttab QEMU test).
        op!("GnttabMapRw", D0 | DU, Good::Val(-1), |c| gnt(
            crate::gnttab::map(c.victim, 8, GNT_GPA, false).map(|(s, _)| s)
        )),
        op!("GnttabMapRo", D0 | DU, Good::Val(-1), |c| gnt(
            crate::gnttab::map(c.victim, 8, GNT_GPA, true).map(|(s, _)| s)
        )),
        op!("GnttabCopyFromCaller", D0 | DU, Good::Val(-1), |c| {
            use crate::gnttab::ptr;
            gnt(crate::gnttab::copy(
                ptr(1, DOMID_SELF, 0),
                ptr(8, c.victim, 0),
                8,
                warden_abi::xen::grant_table::GNTCOPY_DEST_GREF,
            ))
        }),
        op!("GnttabCopyToCaller", D0 | DU, Good::Val(-1), |c| {
            use crate::gnttab::ptr;
            gnt(crate::gnttab::copy(
                ptr(8, c.victim, 0),
                ptr(1, DOMID_SELF, 0),
                8,
                warden_abi::xen::grant_table::GNTCOPY_SOURCE_GREF,
            ))
        }),
        op!("GnttabSetupTable", SELF, Good::Zero, |_| {
            let mut frames = [0u64; 1];
            gnt(crate::gnttab::setup_table(DOMID_SELF, &mut frames))
        }),
        op!("GnttabQuerySize", SELF, Good::Zero, |_| gnt(
            crate::gnttab::query_size(DOMID_SELF).map(|(s, _, _)| s)
        )),
        op!("GnttabGetVersion", SELF, Good::Val(1), |_| rc(
            crate::gnttab::get_version(DOMID_SELF).map(|v| v as u64)
        )),
        op!("GnttabSetVersion", SELF, Good::Zero, |_| rc(
            crate::gnttab::set_version(1).0
        )),
        // ---- event_channel_op on one's own channels (a loopback pair)
        op!("EvtchnAllocUnbound", D0 | DU, Good::NonNeg, |c| {
            let r = evtchn::alloc_unbound(DOMID_SELF, DOMID_SELF);
            if let Ok(p) = r {
                c.unbound = p;
            }
            rc(r.map(u64::from))
        }),
        op!("EvtchnStatus", D0 | DU, Good::Zero, |c| rc_unit(
            evtchn::status(DOMID_SELF, c.unbound)
        )),
        op!("EvtchnBindInterdomain", D0 | DU, Good::NonNeg, |c| {
            let r = evtchn::bind_interdomain(c.me, c.unbound);
            if let Ok(p) = r {
                c.bound = p;
            }
            rc(r.map(u64::from))
        }),
        op!("EvtchnSendInterdomain", D0 | DU, Good::Zero, |c| rc(
            evtchn::send(c.bound)
        )),
        op!("EvtchnBindVirq", SELF, Good::NonNeg, |c| {
            let r = evtchn::bind_virq(warden_abi::xen::xen::VIRQ_DOM_EXC, 0);
            if let Ok(p) = r {
                c.virq = p;
            }
            rc(r.map(u64::from))
        }),
        op!("EvtchnBindVcpu", SELF, Good::Zero, |c| rc(
            evtchn::bind_vcpu(c.virq, 0)
        )),
        op!("EvtchnBindIpi", SELF, Good::NonNeg, |c| {
            let r = evtchn::bind_ipi(0);
            if let Ok(p) = r {
                c.ipi = p;
            }
            rc(r.map(u64::from))
        }),
        op!("EvtchnUnmask", SELF, Good::Zero, |c| rc(evtchn::unmask(
            c.ipi
        ))),
        op!("EvtchnSendLocal", SELF, Good::Zero, |c| rc(evtchn::send(
            c.ipi
        ))),
        op!("EvtchnSetPriority", SELF, Good::Err(ENOSYS), |c| rc(
            evtchn::set_priority(c.ipi, 7)
        )),
        op!("EvtchnClose", SELF, Good::Zero, |c| rc(evtchn::close(
            c.ipi
        ))),
        // FIFO is refused (Linux stays on 2-level): a valid control block
        // gets EOPNOTSUPP, as does expand_array while FIFO is off.
        op!("EvtchnInitControl", SELF, Good::Err(EOPNOTSUPP), |_| {
            let gfn = (&raw const FIFO_PAGE) as u64 >> 12;
            rc(evtchn::init_control(gfn, 0, 0))
        }),
        op!("EvtchnExpandArray", SELF, Good::Err(EOPNOTSUPP), |_| {
            let gfn = (&raw const FIFO_PAGE) as u64 >> 12;
            rc(evtchn::expand_array(gfn))
        }),
        op!("HvmSetParam", SELF, Good::Zero, |_| rc(
            evtchn::set_callback_irq(DOMID_SELF, 0)
        )),
        op!("MemAddToPhysmap", SELF, Good::Zero, |_| rc(
            evtchn::init().map(|_| 0)
        )),
        // ---- hvm_op
        op!("HvmSetEvtchnUpcallVector", SELF, Good::Zero, |_| {
            rc(hc::set_upcall_vector(
                0,
                warden_guest::events::UPCALL_VECTOR,
            ))
        }),
        // Nested paging: EINVAL once allowed (Xen 4.17's answer).
        op!("HvmPagetableDying", SELF, Good::Err(EINVAL), |_| rc(
            hc::pagetable_dying(DOMID_SELF, 0)
        )),
        // ---- vcpu_op on vCPU 1 (and the timer of vCPU 0)
        op!("VcpuRegisterVcpuInfo", SELF, Good::Zero, |_| {
            rc(hc::vcpu_register_info(
                1,
                warden_guest::events::info_addr(1),
            ))
        }),
        op!(
            "VcpuInitialise",
            SELF,
            Good::Zero,
            |_| match warden_guest::smp::context(1, park) {
                Ok(ctx) => rc(hc::vcpu_initialise(1, &ctx)),
                Err(e) => -(e.0 as i64),
            }
        ),
        op!("VcpuUp", SELF, Good::Zero, |_| rc(hc::vcpu_up(1))),
        op!("VcpuIsUp", SELF, Good::Val(1), |_| rc(hc::vcpu_op(
            warden_abi::vcpu::IS_UP,
            1,
            0
        ))),
        op!("VcpuGetRunstateInfo", SELF, Good::Zero, |_| rc_unit(
            hc::vcpu_runstate(1)
        )),
        op!("VcpuSetSingleshotTimer", SELF, Good::Zero, |_| rc(
            hc::vcpu_set_timer(0, now() + 10_000_000_000, 0)
        )),
        op!("VcpuStopSingleshotTimer", SELF, Good::Zero, |_| rc(
            hc::vcpu_stop_timer(0)
        )),
        op!("VcpuDown", SELF, Good::Zero, |_| rc(hc::vcpu_down(1))),
        // ---- time (vcpu_op areas and periodic timer, set_timer_op, vm_assist)
        op!("VcpuRegisterRunstateMemoryArea", SELF, Good::Zero, |_| {
            let a = warden_abi::vcpu::RegisterArea {
                addr: (&raw const AREAS) as u64,
            };
            rc(hc::vcpu_op(
                warden_abi::vcpu::REGISTER_RUNSTATE_MEMORY_AREA,
                0,
                &a as *const _ as u64,
            ))
        }),
        op!("VcpuRegisterVcpuTimeMemoryArea", SELF, Good::Zero, |_| {
            let a = warden_abi::vcpu::RegisterArea {
                addr: (&raw const AREAS) as u64 + 64,
            };
            rc(hc::vcpu_op(
                warden_abi::vcpu::REGISTER_VCPU_TIME_MEMORY_AREA,
                0,
                &a as *const _ as u64,
            ))
        }),
        op!("VcpuSetPeriodicTimer", SELF, Good::Zero, |_| {
            let a = warden_abi::vcpu::SetPeriodicTimer {
                period_ns: 10_000_000_000,
            };
            rc(hc::vcpu_op(
                warden_abi::vcpu::SET_PERIODIC_TIMER,
                1,
                &a as *const _ as u64,
            ))
        }),
        op!("VcpuStopPeriodicTimer", SELF, Good::Zero, |_| rc(
            hc::vcpu_op(warden_abi::vcpu::STOP_PERIODIC_TIMER, 1, 0)
        )),
        op!("SetTimerOp", SELF, Good::Zero, |_| rc(hc::call(
            warden_abi::hypercall::SET_TIMER_OP,
            [0, 0, 0, 0, 0]
        ))),
        op!("VmAssistEnable", SELF, Good::Zero, |_| rc(hc::call(
            warden_abi::hypercall::VM_ASSIST,
            [0, 5, 0, 0, 0]
        ))),
        op!("VmAssistDisable", SELF, Good::Zero, |_| rc(hc::call(
            warden_abi::hypercall::VM_ASSIST,
            [1, 5, 0, 0, 0]
        ))),
        // ---- HVM parameters of oneself
        op!("HvmGetParam", SELF, Good::Zero, |_| {
            let mut a = warden_abi::hvm::HvmParam {
                domid: DOMID_SELF,
                pad: 0,
                index: warden_abi::xen::hvm_params::STORE_EVTCHN,
                value: 0,
            };
            rc(hc::call(
                warden_abi::hypercall::HVM_OP,
                [
                    warden_abi::hvm::GET_PARAM as u64,
                    &mut a as *mut _ as u64,
                    0,
                    0,
                    0,
                ],
            ))
        }),
        op!("HvmSetParam", SELF, Good::Zero, |_| {
            let mut a = warden_abi::hvm::HvmParam {
                domid: DOMID_SELF,
                pad: 0,
                index: warden_abi::xen::hvm_params::STORE_EVTCHN,
                value: 0,
            };
            rc(hc::call(
                warden_abi::hypercall::HVM_OP,
                [
                    warden_abi::hvm::SET_PARAM as u64,
                    &mut a as *mut _ as u64,
                    0,
                    0,
                    0,
                ],
            ))
        }),
        // ---- memory_op on oneself, then on the victim (a privileged builder's right)
        op!("MemDecreaseReservation", SELF, Good::Val(1), |c| rc(
            hc::decrease_reservation(DOMID_SELF, &[c.self_top], 0)
        )),
        op!("MemPopulatePhysmap", SELF, Good::Val(1), |c| rc(
            hc::populate_physmap(DOMID_SELF, &[c.self_top], 0)
        )),
        op!("MemMaximumRamPage", SELF, Good::NonNeg, |_| rc(
            hc::maximum_ram_page()
        )),
        op!("MemGetSharingFreedPages", SELF, Good::Zero, |_| rc(
            hc::sharing_freed_pages()
        )),
        op!("MemGetSharingSharedPages", SELF, Good::Zero, |_| rc(
            hc::sharing_shared_pages()
        )),
        // A one-entry batch (libxc's xc_memory_op): the multicall's own
        // check, then the entry's (every caller may read the version).
        op!("Multicall", SELF, Good::Zero, |_| {
            let mut list = [warden_abi::xen::xen::multicall::MulticallEntry {
                op: warden_abi::hypercall::XEN_VERSION as u64,
                result: u64::MAX,
                args: [warden_abi::version::VERSION as u64, 0, 0, 0, 0, 0],
            }];
            let r = hc::multicall(&mut list);
            if r.is_ok() && list[0].result >> 16 != warden_abi::version::MAJOR as u64 {
                return rc(Err(hc::Errno(warden_abi::errno::EIO)));
            }
            rc(r)
        }),
        op!("MemMemoryMap", SELF, Good::Zero, |_| {
            let mut e = [warden_abi::memory::E820Entry::default(); 8];
            let mut m = warden_abi::memory::MemoryMap {
                nr_entries: 8,
                pad: 0,
                buffer: e.as_mut_ptr() as u64,
            };
            rc(hc::memory_op(
                warden_abi::memory::MEMORY_MAP,
                &mut m as *mut _ as u64,
            ))
        }),
        // The toolstack's: dom0 sets the victim's memory map (one RAM entry).
        op!("MemSetMemoryMap", D0, Good::Zero, |c| {
            let e = [warden_abi::memory::E820Entry::new(
                0,
                16 << 20,
                warden_abi::memory::E820_RAM,
            )];
            let m = warden_abi::memory::ForeignMemoryMap {
                domid: c.victim,
                pad: [0; 3],
                map: warden_abi::memory::MemoryMap {
                    nr_entries: 1,
                    pad: 0,
                    buffer: e.as_ptr() as u64,
                },
            };
            rc(hc::memory_op(
                warden_abi::memory::SET_MEMORY_MAP,
                &m as *const _ as u64,
            ))
        }),
        op!("MemCurrentReservation", SELF, Good::NonNeg, |_| rc(
            hc::current_reservation(DOMID_SELF)
        )),
        op!("MemMaximumReservation", SELF, Good::NonNeg, |_| rc(
            hc::maximum_reservation(DOMID_SELF)
        )),
        op!("MemCurrentReservation/victim", D0, Good::NonNeg, |c| {
            let r = hc::current_reservation(c.victim);
            // Its highest RAM page: a PVH domain's RAM is dense from gfn
            // 0, and its reservation also counts its three ACPI pages (at
            // 0xFC000000) and its console ring (0xFEFFF).
            if let Ok(n) = r {
                c.victim_top = n.saturating_sub(1 + 3 + 1);
            }
            rc(r)
        }),
        op!("MemDecreaseReservation/victim", D0, Good::Val(1), |c| {
            let g = if c.victim_top == 0 {
                1023
            } else {
                c.victim_top
            };
            rc(hc::decrease_reservation(c.victim, &[g], 0))
        }),
        op!("MemPopulatePhysmap/victim", D0, Good::Val(1), |c| {
            let g = if c.victim_top == 0 {
                1023
            } else {
                c.victim_top
            };
            rc(hc::populate_physmap(c.victim, &[g], 0))
        }),
        // ---- building a domain (dom0), or trying to act on the victim (others)
        op!("FlaskContextToSid", D0, Good::Zero, |c| {
            let r = hc::flask_context_to_sid("user_1:vm_r:prot_domU_t_building");
            if let Ok(s) = r {
                c.building_sid = s;
            }
            rc_unit(r)
        }),
        op!("DomctlCreateDomain", D0, Good::NonNeg, |c| {
            let r = hc::createdomain(0, c.building_sid, 1);
            if let Ok(d) = r {
                c.new_dom = d;
            }
            rc(r.map(|d| d as u64))
        }),
        op!("DomctlMaxVcpus", D0, Good::Zero, |c| rc(hc::max_vcpus(
            c.target(),
            1
        ))),
        op!("DomctlMaxMem", D0, Good::Zero, |c| rc(hc::max_mem(
            c.target(),
            4096
        ))),
        // ---- the rest of libxl's build of a PVH guest (xen-abi-map.md §5.4)
        op!("DomctlSetNodeAffinity", D0, Good::Zero, |c| rc(
            hc::setnodeaffinity(c.target(), &[0xff; 8], 64)
        )),
        op!("DomctlGetNodeAffinity", D0, Good::Zero, |c| {
            let mut b = [0u8; 8];
            rc(hc::getnodeaffinity(c.target(), &mut b))
        }),
        op!("DomctlSetTscInfo", D0, Good::Zero, |c| rc(hc::settscinfo(
            c.target(),
            warden_abi::domctl::TSC_MODE_DEFAULT,
            0
        ))),
        // Reading the TSC mode is a migration right (the victim's).
        op!("DomctlGetTscInfo", D0, Good::Zero, |c| rc_unit(
            hc::gettscinfo(c.victim)
        )),
        op!("DomctlSetPagingMempoolSize", D0, Good::Zero, |c| rc(
            hc::set_paging_mempool_size(c.target(), 1 << 20)
        )),
        op!(
            "DomctlGetPagingMempoolSize",
            D0,
            Good::Val(1 << 20),
            |c| rc(hc::get_paging_mempool_size(c.target()))
        ),
        // xl vcpu-list; xl create's (and xl sched-credit2's) credit2 parameters.
        op!("DomctlGetVcpuInfo", D0, Good::Zero, |c| rc_unit(
            hc::getvcpuinfo(c.victim, 0)
        )),
        op!("DomctlGetVcpuAffinity", D0, Good::Zero, |c| {
            let (mut h, mut s) = ([0u8; 8], [0u8; 8]);
            rc(hc::vcpuaffinity(c.victim, 0, false, &mut h, &mut s))
        }),
        // Every CPU (libxl's default): accepted.
        op!("DomctlSetVcpuAffinity", D0, Good::Zero, |c| {
            let (mut h, mut s) = ([0xffu8; 8], [0xffu8; 8]);
            rc(hc::vcpuaffinity(c.victim, 0, true, &mut h, &mut s))
        }),
        op!("DomctlSchedulerOpGet", D0, Good::Zero, |c| rc_unit(
            hc::sched_credit2_get(c.victim)
        )),
        op!("DomctlSchedulerOpPut", D0, Good::Zero, |c| rc(
            hc::sched_credit2_put(c.target(), 256, 0)
        )),
        op!("DomctlSetDomainHandle", D0, Good::Zero, |c| rc(
            hc::setdomainhandle(c.target(), [0x5a; 16])
        )),
        // x86's answer: the check, then ENOSYS (caches are coherent).
        op!("DomctlCacheflush", D0, Good::Err(ENOSYS), |c| rc(
            hc::cacheflush(c.target(), 0, 1)
        )),
        op!("SysctlGetCpuFeatureset", D0, Good::Val(19), |_| {
            let mut w = [0u32; 19];
            rc(hc::cpu_featureset(warden_abi::sysctl::featureset::HOST, &mut w).map(u64::from))
        }),
        op!("SysctlGetCpuPolicy", D0, Good::Zero, |_| rc_unit(
            hc::system_cpu_policy(
                warden_abi::sysctl::cpu_policy::HVM_DEFAULT,
                &mut [],
                &mut []
            )
        )),
        op!("DomctlGetCpuPolicy", D0, Good::Zero, |c| rc_unit(
            hc::domain_cpu_policy(c.target(), &mut [], &mut [])
        )),
        // Nothing new: compatible with any policy.
        op!("DomctlSetCpuPolicy", D0, Good::Zero, |c| {
            match hc::set_cpu_policy(c.target(), &[], &[]) {
                Ok(()) => 0,
                Err((e, ..)) => -(e.0 as i64),
            }
        }),
        op!("MemClaimPages", D0, Good::Zero, |c| {
            let r = rc(hc::claim_pages(c.target(), 16));
            if r == 0 {
                let _ = hc::claim_pages(c.target(), 0);
            }
            r
        }),
        // A running domain dom0 manages (xl mem-set): within its maximum
        // nothing to do (no populate on demand), its pages written back.
        op!("MemSetPodTarget", D0, Good::Zero, |c| rc_unit(
            hc::pod_target(c.victim, true, 16)
        )),
        op!("MemGetPodTarget", D0, Good::Zero, |c| rc_unit(
            hc::pod_target(c.victim, false, 0)
        )),
        op!("HvmSetParamAltp2m", D0, Good::Zero, |c| rc(
            hc::hvm_set_param(c.target(), warden_abi::xen::hvm_params::ALTP2M, 0)
        )),
        op!("MemMaximumGpfn", SELF, Good::NonNeg, |_| rc(
            hc::maximum_gpfn(DOMID_SELF)
        )),
        // Nothing at that frame: the check passes, then ENOENT.
        op!(
            "MemRemoveFromPhysmap",
            SELF,
            Good::Err(warden_abi::errno::ENOENT),
            |_| rc(hc::remove_from_physmap(DOMID_SELF, GNT_GPA >> 12))
        ),
        // An empty batch: the batch's check, nothing else.
        op!("MemAddToPhysmapBatch", SELF, Good::Zero, |_| rc(
            hc::add_to_physmap_batch(
                DOMID_SELF,
                warden_abi::memory::XENMAPSPACE_GMFN_FOREIGN,
                0,
                &[],
                &[],
                &mut [],
            )
        )),
        // privcmd's foreign mapping: a page of the domain being built
        // mapped into dom0, then unmapped.
        op!("MemMapForeign", D0, Good::Zero, |c| {
            let _ = hc::populate_physmap(c.target(), &[0], 0);
            foreign_map_and_unmap(c.target())
        }),
        op!("MemMapForeign/mute", 0, Good::Zero, |c| {
            foreign_map_and_unmap(if c.mute != 0 { c.mute } else { c.victim })
        }),
        // libxl's grant-entry seeding: the size, then frame 0 mapped and unmapped.
        op!("MemAcquireResource", D0, Good::Zero, |c| acquire_and_unmap(
            c.target()
        )),
        op!("MemAcquireResource/mute", 0, Good::Zero, |c| {
            acquire_and_unmap(if c.mute != 0 { c.mute } else { c.victim })
        }),
        op!("DomctlGetHvmContext", D0, Good::Zero, |c| {
            let mut b = alloc::vec![0u8; 16384];
            let r = hc::gethvmcontext(c.victim, &mut b);
            if let Ok(n) = r {
                b.truncate(n);
                c.saved = b;
            }
            rc_unit(r)
        }),
        op!("DomctlSetHvmContext", D0, Good::Zero, |c| {
            // The image just read (a domain built here takes the victim's
            // state; it never runs), else a header of Warden's with no record.
            let img = if c.saved.is_empty() {
                let mut v = Vec::new();
                hc::hvm_context_push(
                    &mut v,
                    hs::HEADER,
                    0,
                    &hs::SaveHeader {
                        magic: hs::FILE_MAGIC,
                        version: hs::FILE_VERSION,
                        ..Default::default()
                    },
                );
                v.extend_from_slice(&[0u8; 8]);
                v
            } else {
                c.saved.clone()
            };
            rc(hc::sethvmcontext(c.target(), &img))
        }),
        op!("DomctlGetDomainInfo", D0, Good::Zero, |c| rc_unit(
            hc::getdomaininfo(c.victim)
        )),
        op!("DomctlPauseDomain", D0, Good::Zero, |c| rc(
            hc::pausedomain(c.victim)
        )),
        op!("DomctlUnpauseDomain", D0, Good::Zero, |c| rc(
            hc::unpausedomain(c.victim)
        )),
        op!("FlaskRelabelDomain", D0, Good::Zero, |c| {
            let to = hc::flask_context_to_sid("user_1:vm_r:prot_domU_t").unwrap_or(xsm_domu_sid());
            rc(hc::flask_relabel_domain(c.target() as u32, to))
        }),
        op!("DomctlDestroyDomain", D0, Good::Zero, |c| {
            let r = rc(hc::destroydomain(c.target()));
            if c.new_dom != 0 && r == 0 {
                c.new_dom = 0;
            }
            r
        }),
        // ---- sysctl
        op!("SysctlReadConsole", D0 | LP, Good::Zero, |_| {
            let mut b = [0u8; 64];
            rc_unit(hc::readconsole(&mut b, 0, false, false))
        }),
        op!(
            "SysctlPhysinfo",
            D0,
            Good::Zero,
            |_| rc_unit(hc::physinfo())
        ),
        op!("SysctlGetDomainInfoList", D0, Good::Listed, |_| {
            let mut l = [warden_abi::domctl::GetDomainInfo::default(); 8];
            rc(hc::getdomaininfolist(0, &mut l).map(|n| n as u64))
        }),
        // The per-domain check: the victim is listed (0), the domain the
        // caller may not see is left out (reported as -EACCES).
        op!("SysctlGetDomainInfoListEntry", D0, Good::Zero, |c| {
            let mut l = [warden_abi::domctl::GetDomainInfo::default(); 16];
            let r = hc::getdomaininfolist(0, &mut l);
            match r {
                Ok(n) if l[..n].iter().any(|i| i.domain == c.victim) => 0,
                Ok(_) => -(EACCES as i64),
                Err(e) => -(e.0 as i64),
            }
        }),
        op!("SysctlGetDomainInfoListEntry/unseen", 0, Good::Zero, |c| {
            let mut l = [warden_abi::domctl::GetDomainInfo::default(); 16];
            let r = hc::getdomaininfolist(0, &mut l);
            match r {
                Ok(n) if c.mute != 0 && !l[..n].iter().any(|i| i.domain == c.mute) => {
                    -(EACCES as i64)
                }
                Ok(_) => 0,
                Err(e) => -(e.0 as i64),
            }
        }),
        // 'h' only lists the keys in the console ring.
        op!("SysctlDebugKeys", D0, Good::Zero, |_| rc_unit(
            hc::debug_keys(b"h")
        )),
        op!("SysctlSchedId", D0, Good::Val(6), |_| rc(
            hc::sched_id().map(u64::from)
        )),
        op!("SysctlCpuTopoInfo", D0, Good::NonNeg, |_| rc(
            hc::cputopoinfo(&mut []).map(u64::from)
        )),
        op!("SysctlNumaInfo", D0, Good::Val(1), |_| {
            let mut m = [warden_abi::sysctl::MemInfo::default(); 1];
            let mut d = [0u32; 1];
            rc(hc::numainfo(&mut m, &mut d).map(u64::from))
        }),
        op!("SysctlCpupoolOp", D0, Good::Zero, |_| {
            let mut map = [0u8; 8];
            rc_unit(hc::cpupool_op(
                warden_abi::sysctl::cpupool::INFO,
                0,
                &mut map,
            ))
        }),
        op!("LivepatchUpload", LP, Good::Err(EINVAL), |_| rc(
            hc::livepatch(livepatch::UPLOAD)
        )),
        op!("LivepatchGet", LP, Good::Err(EINVAL), |_| rc(
            hc::livepatch(livepatch::GET)
        )),
        op!("LivepatchList", LP, Good::NonNeg, |_| rc(hc::livepatch(
            livepatch::LIST
        ))),
        op!("LivepatchAction", LP, Good::Err(EINVAL), |_| rc(
            hc::livepatch(livepatch::ACTION)
        )),
        // ---- xsm_op
        op!("FlaskLoad", D0, Good::Zero, |c| {
            if c.policy.is_empty() {
                rc(hc::flask_load(&[0u8; 16]))
            } else {
                rc(hc::flask_load(c.policy))
            }
        }),
        op!("FlaskGetEnforce", D0, Good::NonNeg, |_| rc(
            hc::flask_getenforce()
        )),
        op!("FlaskSetEnforce", D0, Good::Zero, |c| {
            rc(hc::flask_setenforce(!c.permissive))
        }),
        op!("FlaskSidToContext", D0, Good::Zero, |_| {
            let mut b = [0u8; 128];
            rc_unit(hc::flask_sid_to_context(xsm_domu_sid(), &mut b))
        }),
        op!("FlaskAccess", D0, Good::Zero, |_| rc_unit(
            hc::flask_access(3, xsm_domu_sid(), 3, 1 << 1)
        )),
        op!("FlaskCreate", D0, Good::Zero, |_| rc_unit(
            hc::flask_transition(fx::CREATE, 3, 3, 3)
        )),
        op!("FlaskRelabel", D0, Good::Zero, |_| rc_unit(
            hc::flask_transition(fx::RELABEL, 3, 3, 3)
        )),
        op!("FlaskMember", D0, Good::Zero, |_| rc_unit(
            hc::flask_transition(fx::MEMBER, 3, 3, 3)
        )),
        op!("FlaskPolicyVers", D0, Good::Val(30), |_| rc(
            hc::flask_simple(fx::POLICYVERS)
        )),
        op!("FlaskGetBool", D0, Good::Zero, |_| rc_unit(
            hc::flask_getbool("guest_writeconsole")
        )),
        op!("FlaskSetBool", D0, Good::Zero, |_| rc(hc::flask_setbool(
            "guest_writeconsole",
            true,
            true
        ))),
        op!("FlaskCommitBools", D0, Good::Zero, |_| rc(
            hc::flask_simple(fx::COMMITBOOLS)
        )),
        op!("FlaskMls", D0, Good::NonNeg, |_| rc(hc::flask_simple(
            fx::MLS
        ))),
        op!("FlaskGetAvcThreshold", D0, Good::NonNeg, |c| {
            let r = hc::flask_simple(fx::GETAVC_THRESHOLD);
            if let Ok(t) = r {
                c.threshold = t as u32;
            }
            rc(r)
        }),
        op!("FlaskSetAvcThreshold", D0, Good::Zero, |c| rc(
            hc::flask_setavc_threshold(c.threshold)
        )),
        op!("FlaskAvcHashStats", D0, Good::Zero, |_| rc_unit(
            hc::flask_hashstats()
        )),
        op!("FlaskAvcCacheStats", D0, Good::Zero, |_| rc_unit(
            hc::flask_cachestats(0)
        )),
        op!("FlaskAddOcontext", D0, Good::Zero, |_| rc(
            hc::flask_ocontext(true, fx::ocon::PIRQ, 77, 77, 10)
        )),
        op!("FlaskDelOcontext", D0, Good::Zero, |_| rc(
            hc::flask_ocontext(false, fx::ocon::PIRQ, 77, 77, 10)
        )),
        // Stub: no event channels yet, so no port is an interdomain channel.
        // The loopback channel made above (its peer is dom0 itself).
        op!("FlaskGetPeerSid", D0, Good::Zero, |c| rc_unit(
            hc::flask_get_peer_sid(c.bound)
        )),
        op!("FlaskRelabelSelf", 0, Good::Zero, |c| rc(
            hc::flask_relabel_domain(c.me as u32, 3)
        )),
        // Stubs: device-tree labels are not kept (x86 describes devices with ACPI).
        op!("FlaskDevicetreeLabel", D0, Good::Stub(EOPNOTSUPP), |_| rc(
            hc::flask_devicetree_label("/test", 11)
        )),
        op!(
            "FlaskDevicetreeUnlabel",
            D0,
            Good::Stub(EOPNOTSUPP),
            |_| rc(hc::flask_devicetree_label("/test", 0))
        ),
        // Last: closes every channel made above (FlaskGetPeerSid uses one).
        op!("EvtchnReset", SELF, Good::Zero, |_| rc(evtchn::reset(
            DOMID_SELF
        ))),
    ]
}

/// Print the MATRIX line for one result and record the check.
pub fn judge(me: DomId, name: &str, allowed: bool, good: Good, r: i64) -> bool {
    let ok = judge_only(allowed, good, r);
    println!(
        "MATRIX d{me} {name} rc={r} expect={} {}",
        match (allowed, good) {
            (false, _) => "deny",
            (true, Good::Stub(_)) => "stub",
            (true, _) => "allow",
        },
        if ok { "OK" } else { "FAIL" }
    );
    check!(
        ok,
        "d{me} {name}: rc={r} (expected {})",
        if allowed { "allowed" } else { "denied" }
    )
}

fn judge_only(allowed: bool, good: Good, r: i64) -> bool {
    match (allowed, good) {
        (false, _) => r == -(EACCES as i64),
        (true, Good::Zero) => r == 0,
        (true, Good::NonNeg) => r >= 0,
        (true, Good::Val(v)) => r == v,
        (true, Good::Err(e)) | (true, Good::Stub(e)) => r == -(e as i64),
        (true, Good::Listed) => r >= 1,
    }
}

/// Run the whole matrix. In permissive mode every check passes: each
/// operation must then do exactly what it does when allowed.
pub fn run(c: &mut Ctx) {
    println!(
        "matrix: d{} running every operation as {:?}{}",
        c.me,
        c.who,
        if c.permissive {
            " (permissive mode)"
        } else {
            ""
        }
    );
    for op in ops() {
        let allowed = op.allowed & c.who.bit() != 0;
        if !allowed
            && !c.permissive
            && (NEEDS_OWN_CHANNEL.contains(&op.name) || NEEDS_EARLIER_CHECK.contains(&op.name))
        {
            continue;
        }
        if c.who != Who::Dom0 && NEEDS_HARDWARE_DOMAIN.contains(&op.name) {
            continue;
        }
        if c.permissive && op.name == "FlaskRelabelSelf" {
            // Permissive mode would really relabel the guest (to dom0_t).
            continue;
        }
        // Operations with side effects on the victim use a domain of our
        // own when this guest could create one (dom0, or permissive mode).
        let r = (op.run)(c);
        let good = if op.name == "FlaskLoad" && c.policy.is_empty() {
            // No policy to hand over: 16 zero bytes, which the security
            // server refuses once the check has passed.
            Good::Err(EINVAL)
        } else {
            op.good
        };
        judge(c.me, op.name, allowed || c.permissive, good, r);
    }
}

/// Operations that end something (the victim, the console ring's content):
/// run last, by the orchestrator (allowed) or a denied guest.
pub fn run_final(c: &mut Ctx) {
    let allowed = c.who == Who::Dom0;
    let r = {
        let mut b = [0u8; 16];
        let first = hc::readconsole(&mut b, 0, false, true);
        // As `xl dmesg -c`: a clear discards only what the call returned
        // (Xen), so read on with clear until nothing comes back.
        if let Ok((n, mut index)) = first
            && n > 0
        {
            let mut big = alloc::vec![0u8; 4096];
            while let Ok((n, next)) = hc::readconsole(&mut big, index, true, true) {
                if n == 0 {
                    break;
                }
                index = next;
            }
        }
        rc_unit(first)
    };
    judge(
        c.me,
        "SysctlReadConsoleClear",
        allowed || c.permissive,
        Good::Zero,
        r,
    );
    let r = rc(hc::sched_remote_shutdown(
        c.victim,
        warden_abi::sched::SHUTDOWN_POWEROFF,
    ));
    judge(
        c.me,
        "SchedRemoteShutdown",
        allowed || c.permissive,
        Good::Zero,
        r,
    );
}
