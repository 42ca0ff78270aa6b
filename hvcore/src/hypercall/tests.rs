//! Host tests of the dispatcher and the handlers: a simulated machine
//! (memory, clock, console ring), scripted vCPUs, the real security server
//! with the default policy compiled from `policies/`.

use super::*;
use crate::conring::{ConsoleRing, ReadResult};
use crate::domain::Domain;
use crate::gate::{Gate, Module};
use crate::hv::{Hv, NewDomain};
use crate::p2m::HostMem;
use crate::p2m::testmem::SimMem;
use crate::platform::Platform;
use crate::vcpu::{Entry, GuestSlot, HypercallArgs, VmExit};
use ::xsm::{AuditRecord, AuditSink, Flask};
use alloc::boxed::Box;
use alloc::string::String;
use std::sync::Mutex;
use warden_abi::vcpu::HvmContext;
use warden_abi::{Pod, domctl as dc, errno, sched, sysctl as sc, xsm as fx};

// ---------------------------------------------------------------- the machine

pub(crate) struct TestPlatform {
    mem: SimMem,
    slots: [GuestSlot; 1],
    ring: Mutex<ConsoleRing<'static>>,
    /// What went to the serial console.
    serial: Mutex<Vec<u8>>,
    /// `guest_console_ratelimit` and `console_to_ring`.
    rate: Mutex<(u32, u64)>,
    to_ring: std::sync::atomic::AtomicBool,
    pub(crate) time: std::sync::atomic::AtomicU64,
    stopped: Mutex<Option<u32>>,
    /// Bytes waiting in the simulated UART.
    pub(crate) uart: Mutex<Vec<u8>>,
}

impl Platform for TestPlatform {
    fn now_ns(&self) -> u64 {
        self.time
            .fetch_add(1000, std::sync::atomic::Ordering::Relaxed)
    }
    fn rdtsc(&self) -> u64 {
        self.now_ns()
    }
    fn tsc_hz(&self) -> u64 {
        1_000_000_000
    }
    fn tsc_to_ns(&self, tsc: u64) -> u64 {
        tsc
    }
    fn mem(&self) -> &dyn HostMem {
        &self.mem
    }
    fn new_vcpu(&self, _: warden_abi::DomId, _: u32, _: u64) -> crate::Result<Box<dyn Vcpu>> {
        Ok(Box::new(FakeVcpu::default()))
    }
    fn nr_cpus(&self) -> u32 {
        1
    }
    fn this_cpu(&self) -> u32 {
        0
    }
    fn guest_slots(&self) -> &[GuestSlot] {
        &self.slots
    }
    fn host_cpuid(&self, leaf: u32, sub: u32) -> (u32, u32, u32, u32) {
        crate::xen::cpupolicy::tests::host(leaf, sub)
    }
    fn kick(&self, _: u32) {}
    fn poll_interrupts(&self) {}
    fn idle(&self) {}
    fn console_read(&self, from: u64, buf: &mut [u8]) -> ReadResult {
        self.ring.lock().unwrap().read(from, buf)
    }
    fn console_tail(&self) -> u64 {
        self.ring.lock().unwrap().tail()
    }
    fn console_head(&self) -> u64 {
        self.ring.lock().unwrap().head()
    }
    fn console_clear_to(&self, upto: u64) {
        self.ring.lock().unwrap().clear_to(upto)
    }
    fn console_guest_line(&self, domid: warden_abi::DomId, line: &[u8], suppressed: u32) {
        let mut text = String::new();
        if suppressed > 0 {
            crate::guestcons::write_suppressed_note(&mut text, domid, suppressed).unwrap();
        }
        crate::guestcons::write_guest_line(&mut text, domid, Some(self.now_ns()), line).unwrap();
        self.ring.lock().unwrap().write_guest(text.as_bytes());
        self.serial
            .lock()
            .unwrap()
            .extend_from_slice(text.as_bytes());
    }
    fn console_hwdom_raw(&self, bytes: &[u8]) {
        self.serial.lock().unwrap().extend_from_slice(bytes);
    }
    fn console_to_ring(&self) -> bool {
        self.to_ring.load(std::sync::atomic::Ordering::Relaxed)
    }
    fn guest_console_ratelimit(&self) -> (u32, u64) {
        *self.rate.lock().unwrap()
    }
    fn serial_input(&self, buf: &mut [u8]) -> usize {
        let mut u = self.uart.lock().unwrap();
        let n = buf.len().min(u.len());
        buf[..n].copy_from_slice(&u[..n]);
        u.drain(..n);
        n
    }
    fn cmdline(&self) -> &str {
        "console=com1 flask=enforcing"
    }
    fn build_id(&self) -> &[u8] {
        &[0xab; 20]
    }
    fn control_domain_stopped(&self, reason: u32) {
        *self.stopped.lock().unwrap() = Some(reason);
    }
}

/// A vCPU whose registers a test sets; it never runs.
#[derive(Default)]
struct FakeVcpu {
    args: HypercallArgs,
    ret: u64,
    paging: crate::guestmem::PagingState,
    ctx: HvmContext,
    /// The full CPU record (sethvmcontext), and the PAT.
    record: Option<Box<warden_abi::xen::hvm_save::HwCpu>>,
    pat: Option<u64>,
}

impl Vcpu for FakeVcpu {
    fn run(&mut self, _: &Entry<'_>) -> crate::Result<VmExit> {
        Err(crate::err!(Unsupported, "scripted vCPU"))
    }
    fn hypercall_args(&self) -> HypercallArgs {
        self.args
    }
    fn finish_hypercall(&mut self, ret: u64) {
        self.ret = ret;
    }
    fn continue_hypercall(&mut self, args: &HypercallArgs) {
        self.args = *args;
    }
    fn skip_halt(&mut self) {}
    fn paging(&self) -> crate::guestmem::PagingState {
        self.paging
    }
    fn cpl(&self) -> u8 {
        0
    }
    fn rip(&self) -> u64 {
        0
    }
    fn context(&self) -> HvmContext {
        self.ctx
    }
    fn set_context(&mut self, c: &HvmContext) {
        self.ctx = *c;
        self.record = None;
    }
    fn cpu_record(&self) -> warden_abi::xen::hvm_save::HwCpu {
        match &self.record {
            Some(r) => **r,
            None => crate::vcpu::record_of_context(&self.ctx),
        }
    }
    fn set_cpu_record(&mut self, c: &warden_abi::xen::hvm_save::HwCpu) {
        self.ctx = crate::vcpu::context_of_record(c);
        self.record = Some(Box::new(*c));
    }
    fn pat(&self) -> u64 {
        self.pat.unwrap_or(crate::xen::hvmctx::PAT_RESET)
    }
    fn set_pat(&mut self, pat: u64) {
        self.pat = Some(pat);
    }
    fn dump(&self, _: &mut dyn core::fmt::Write) -> core::fmt::Result {
        Ok(())
    }
}

struct Audit(Mutex<Vec<String>>);
impl AuditSink for Audit {
    fn now_ms(&self) -> u64 {
        0
    }
    fn emit(&self, r: &AuditRecord) {
        self.0.lock().unwrap().push(alloc::format!("{r}"));
    }
}

fn default_policy() -> Vec<u8> {
    static P: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    P.get_or_init(|| {
        let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policies");
        let job = policy_compiler::Job {
            files: alloc::vec![dir.join("warden.m4")],
            ..Default::default()
        };
        let mut sm = policy_compiler::diag::SourceMap::default();
        let out =
            policy_compiler::compile(&job, &mut sm).unwrap_or_else(|e| panic!("{}", e.render(&sm)));
        policy_compiler::write::write(&out.db)
    })
    .clone()
}

#[derive(Clone, Copy)]
pub(crate) struct World {
    pub(crate) hv: &'static Hv,
    audit: &'static Audit,
    pub(crate) plat: &'static TestPlatform,
}

/// Guest RAM of every test domain (identity-addressed: paging off).
const PAGES: u64 = 64;

pub(crate) fn world(flask: bool) -> World {
    world_sized(flask, 2048)
}

/// A machine with `frames` frames of memory.
pub(crate) fn world_sized(flask: bool, frames: u64) -> World {
    let audit: &'static Audit = Box::leak(Box::new(Audit(Mutex::new(Vec::new()))));
    let ring: &'static mut [u8] = Box::leak(alloc::vec![0u8; 1 << 16].into_boxed_slice());
    let plat: &'static TestPlatform = Box::leak(Box::new(TestPlatform {
        mem: SimMem::new(frames),
        slots: [GuestSlot::new()],
        ring: Mutex::new(ConsoleRing::new(ring)),
        serial: Mutex::new(Vec::new()),
        rate: Mutex::new(crate::cmdline::GUEST_CONSOLE_RATELIMIT),
        to_ring: false.into(),
        time: 0.into(),
        stopped: Mutex::new(None),
        uart: Mutex::new(Vec::new()),
    }));
    let (gate, mode) = if flask {
        let f: &'static Flask = Box::leak(Box::new(Flask::new(true, Some(audit))));
        f.set_audit_ratelimit(u32::MAX, 1);
        f.load_policy(&default_policy())
            .expect("default policy loads");
        (
            Gate::new(Module::Flask(f)),
            crate::cmdline::FlaskMode::Enforcing,
        )
    } else {
        (
            Gate::new(Module::Dummy),
            crate::cmdline::FlaskMode::Disabled,
        )
    };
    let hv: &'static Hv = Box::leak(Box::new(Hv::new(plat, gate, mode)));
    World { hv, audit, plat }
}

impl World {
    fn sid(&self, ctx: &str) -> u32 {
        match self.hv.gate.flask() {
            Some(f) => f.context_to_sid(ctx.as_bytes()).unwrap().raw(),
            None => 0,
        }
    }

    /// A running domain with `PAGES` pages and one vCPU.
    fn domain(&self, id: u16, label: &str) -> Arc<Domain> {
        let d = self
            .hv
            .create_domain(NewDomain {
                want: Some(id),
                privileged: id == 0,
                name: alloc::format!("d{id}"),
                sid: if label.is_empty() { 0 } else { self.sid(label) },
                max_pages: PAGES,
                weight: 256,
                handle: [id as u8; 16],
            })
            .unwrap();
        self.hv.set_max_vcpus(&d, 1).unwrap();
        for g in 0..PAGES {
            self.hv.populate(&d, g).unwrap();
        }
        *d.hvm.e820.lock() = alloc::vec![warden_abi::memory::E820Entry::new(
            0,
            PAGES * 4096,
            warden_abi::memory::E820_RAM
        )];
        self.hv.sched.set_initialised((id, 0), 0);
        self.hv.unpause(&d).unwrap();
        d
    }

    /// Put `v` in domain `d`'s memory at guest address `gpa`.
    fn put<T: Pod>(&self, d: &Domain, gpa: u64, v: &T) {
        self.hv.write_phys(d, gpa, v.as_bytes()).unwrap();
    }

    fn get<T: Pod>(&self, d: &Domain, gpa: u64) -> T {
        let mut v = T::default();
        self.hv.read_phys(d, gpa, v.as_bytes_mut()).unwrap();
        v
    }

    /// Make hypercall `nr` from vCPU 0 of `d`; the raw result as a signed value.
    fn call(&self, d: &Domain, nr: u32, a: [u64; 5]) -> i64 {
        let v = d.vcpu(0).unwrap();
        let mut hw = v.hw.lock();
        *hw = Box::new(RecordingVcpu(FakeVcpu {
            args: HypercallArgs { nr: nr as u64, a },
            ..Default::default()
        }));
        hypercall(self.hv, 0, &v, &mut **hw);
        RESULT.with(|r| r.get()) as i64
    }

    fn audit_lines(&self) -> Vec<String> {
        core::mem::take(&mut *self.audit.0.lock().unwrap())
    }

    fn ring_text(&self) -> String {
        let r = self.plat.ring.lock().unwrap();
        let mut b = alloc::vec![0u8; 1 << 16];
        let n = r.read(0, &mut b).len;
        String::from_utf8_lossy(&b[..n]).into_owned()
    }
}

std::thread_local! {
    static RESULT: core::cell::Cell<u64> = const { core::cell::Cell::new(0) };
    /// The arguments of the last hypercall continued instead of completed.
    static CONTINUED: core::cell::Cell<Option<HypercallArgs>> = const { core::cell::Cell::new(None) };
}

/// A fake that records the hypercall result in a thread-local.
struct RecordingVcpu(FakeVcpu);
impl Vcpu for RecordingVcpu {
    fn run(&mut self, e: &Entry<'_>) -> crate::Result<VmExit> {
        self.0.run(e)
    }
    fn hypercall_args(&self) -> HypercallArgs {
        self.0.args
    }
    fn finish_hypercall(&mut self, ret: u64) {
        RESULT.with(|r| r.set(ret));
        self.0.ret = ret;
    }
    fn continue_hypercall(&mut self, args: &HypercallArgs) {
        CONTINUED.with(|c| c.set(Some(*args)));
        self.0.args = *args;
    }
    fn skip_halt(&mut self) {}
    fn paging(&self) -> crate::guestmem::PagingState {
        self.0.paging
    }
    fn cpl(&self) -> u8 {
        0
    }
    fn rip(&self) -> u64 {
        0
    }
    fn context(&self) -> HvmContext {
        self.0.ctx
    }
    fn set_context(&mut self, c: &HvmContext) {
        self.0.ctx = *c;
    }
    fn dump(&self, _: &mut dyn core::fmt::Write) -> core::fmt::Result {
        Ok(())
    }
}

const ARG: u64 = 0x1000;
const BUF: u64 = 0x2000;
const DOMU: &str = "user_1:vm_r:domU_t";

// ---------------------------------------------------------------- tests

#[test]
fn a_denied_pause_returns_eacces_changes_nothing_and_is_audited() {
    let w = world(true);
    let _d0 = w.domain(0, "system_u:system_r:dom0_t");
    let d1 = w.domain(1, DOMU);
    let d2 = w.domain(2, DOMU);
    w.put(&d1, ARG, &dc::Domctl::new(dc::PAUSEDOMAIN, 2, &()));
    let r = w.call(&d1, hc::DOMCTL, [ARG, 0, 0, 0, 0]);
    assert_eq!(r, -(errno::EACCES as i64));
    assert_eq!(
        w.hv.sched.domain_state(2, 0).unwrap().pause,
        0,
        "d2 was not paused"
    );
    let a = w.audit_lines();
    assert_eq!(a.len(), 1, "{a:?}");
    assert!(
        a[0].contains("avc:  denied  { pause } for source=d1 target=d2 scontext=user_1:vm_r:domU_t tcontext=user_1:vm_r:domU_t tclass=domain permissive=0"),
        "{}",
        a[0]
    );
    let _ = d2;
}

#[test]
fn dom0_pauses_gets_info_and_destroys_and_memory_comes_back() {
    let w = world(true);
    let d0 = w.domain(0, "system_u:system_r:dom0_t");
    let free0 = w.plat.mem.free_frames();
    let _d1 = w.domain(1, DOMU);
    w.put(&d0, ARG, &dc::Domctl::new(dc::PAUSEDOMAIN, 1, &()));
    assert_eq!(w.call(&d0, hc::DOMCTL, [ARG, 0, 0, 0, 0]), 0);
    assert_eq!(w.hv.sched.domain_state(1, 0).unwrap().pause, 1);
    w.put(&d0, ARG, &dc::Domctl::new(dc::GETDOMAININFO, 1, &()));
    assert_eq!(w.call(&d0, hc::DOMCTL, [ARG, 0, 0, 0, 0]), 0);
    let info: dc::GetDomainInfo = w.get::<dc::Domctl>(&d0, ARG).arg();
    assert_eq!(info.domain, 1);
    assert_eq!(info.tot_pages, PAGES);
    assert!(info.flags & dc::DOMINF_PAUSED != 0);
    assert_eq!(info.ssidref, w.sid(DOMU));
    w.put(&d0, ARG, &dc::Domctl::new(dc::DESTROYDOMAIN, 1, &()));
    assert_eq!(w.call(&d0, hc::DOMCTL, [ARG, 0, 0, 0, 0]), 0);
    assert_eq!(w.plat.mem.free_frames(), free0, "every frame came back");
    assert!(w.hv.domains.snapshot(1).is_none());
    // Every step was allowed: the security server reported no denial.
    let audit = w.audit_lines();
    assert!(audit.is_empty(), "{audit:?}");
}

#[test]
fn every_row_of_the_table_is_reached_and_checked_by_the_dispatcher() {
    // A domain labelled unlabeled_t has no permission at all: every
    // operation must be refused by its check (EACCES), and the audit record
    // must name the class of the row's first check. A row the dispatcher
    // does not route to its own check would show another class or succeed.
    let w = world(true);
    let d0 = w.domain(0, "system_u:system_r:dom0_t");
    let m = w.domain(1, "system_u:system_r:unlabeled_t");
    let _v = w.domain(2, DOMU);
    // A device model of domU_t: hvm setparam on it, not altp2mhvm.
    let dm = w.domain(3, "system_u:system_r:dm_dom_t");
    // The source of a copy between two other domains (its label may copy
    // to no one).
    let _u = w.domain(4, "system_u:system_r:unlabeled_t");
    for row in crate::gate::table::TABLE {
        // Rows reached only by callers that pass what comes before their
        // check: the hardware domain (foreign mappings, acquire_resource,
        // both against the unlabeled domain), a domain that may set the
        // target's parameters (altp2m's second check).
        let (caller, target) = match row.name {
            "MemMapForeign" | "MemAcquireResource" => (&d0, 1),
            "HvmSetParamAltp2m" => (&dm, 2),
            _ => (&m, 2),
        };
        let (nr, a) = invoke_on(&w, caller, row.name, target);
        let r = w.call(caller, nr, a);
        let lines = w.audit_lines();
        if row.name == "MemMapForeign" {
            // Each page's refusal is in its result.
            assert_eq!(r, 0, "{}", row.name);
            assert_eq!(w.get::<i32>(caller, BUF + 16), -errno::EACCES);
        } else if XEN_DENIED_STRINGS.contains(&row.name) {
            // Xen answers a refused string sub-op with "<denied>" (rc 0).
            assert_eq!(r, 0, "{}", row.name);
        } else if row.name == "VersionBuildId" {
            assert_eq!(r, -(errno::EPERM as i64), "{}: rc {r}", row.name);
        } else if let Some(st) = gnttab_status(&w, &m, row.name) {
            // Grant-table entries report the refusal in their status.
            assert_eq!(r, 0, "{}", row.name);
            assert_eq!(
                st,
                warden_abi::xen::grant_table::GNTST_PERMISSION_DENIED,
                "{}",
                row.name
            );
        } else {
            assert_eq!(r, -(errno::EACCES as i64), "{}: rc {r}", row.name);
        }
        let c = &row.checks[0];
        let want = alloc::format!("tclass={} ", c.class);
        assert!(
            lines
                .iter()
                .any(|l| l.contains(&want) && row.perm_names(0).iter().any(|p| l.contains(p))),
            "{}: no audit record of {}:{:?} in {lines:?}",
            row.name,
            c.class,
            row.perm_names(0)
        );
    }
}

/// The xen_version sub-ops Xen answers with "<denied>" (success) when
/// the policy refuses them.
const XEN_DENIED_STRINGS: &[&str] = &[
    "VersionExtraversion",
    "VersionCompileInfo",
    "VersionCapabilities",
    "VersionChangeset",
    "VersionPagesize",
    "VersionGuestHandle",
    "VersionCommandline",
];

/// Arguments that route to row `name` (memory of `d` is set up as needed).
fn invoke(w: &World, d: &Domain, name: &str) -> (u32, [u64; 5]) {
    invoke_on(w, d, name, 2)
}

/// [`invoke`], with domain `t` as the target of the rows added for the
/// toolstack's memory operations (the others target domain 2).
fn invoke_on(w: &World, d: &Domain, name: &str, t: u16) -> (u32, [u64; 5]) {
    use warden_abi::{console, hvm, memory, vcpu, version};
    let s = |x: u32| x as u64;
    match name {
        "MemMaximumGpfn" => {
            w.put(d, ARG, &memory::DomidArg { domid: t });
            (hc::MEMORY_OP, [s(memory::MAXIMUM_GPFN), ARG, 0, 0, 0])
        }
        "MemRemoveFromPhysmap" => {
            w.put(
                d,
                ARG,
                &memory::RemoveFromPhysmap {
                    domid: t,
                    gpfn: 3,
                    ..Default::default()
                },
            );
            (
                hc::MEMORY_OP,
                [s(memory::REMOVE_FROM_PHYSMAP), ARG, 0, 0, 0],
            )
        }
        "MemAddToPhysmapBatch" | "MemMapForeign" => {
            w.put(d, BUF, &0u64);
            w.put(d, BUF + 8, &0x9000u64);
            w.put(d, BUF + 16, &0u64);
            w.put(
                d,
                ARG,
                &memory::AddToPhysmapBatch {
                    domid: warden_abi::DOMID_SELF,
                    space: memory::XENMAPSPACE_GMFN_FOREIGN as u16,
                    size: 1,
                    foreign_domid: t,
                    idxs: BUF,
                    gpfns: BUF + 8,
                    errs: BUF + 16,
                },
            );
            (
                hc::MEMORY_OP,
                [s(memory::ADD_TO_PHYSMAP_BATCH), ARG, 0, 0, 0],
            )
        }
        "MemClaimPages" => {
            w.put(
                d,
                ARG,
                &memory::Reservation {
                    nr_extents: PAGES + 4,
                    domid: t,
                    ..Default::default()
                },
            );
            (hc::MEMORY_OP, [s(memory::CLAIM_PAGES), ARG, 0, 0, 0])
        }
        "MemSetPodTarget" | "MemGetPodTarget" => {
            w.put(
                d,
                ARG,
                &memory::PodTarget {
                    target_pages: PAGES,
                    domid: t,
                    ..Default::default()
                },
            );
            let sub = if name == "MemSetPodTarget" {
                memory::SET_POD_TARGET
            } else {
                memory::GET_POD_TARGET
            };
            (hc::MEMORY_OP, [s(sub), ARG, 0, 0, 0])
        }
        "MemAcquireResource" => {
            w.put(
                d,
                ARG,
                &memory::AcquireResource {
                    domid: t,
                    kind: memory::RESOURCE_GRANT_TABLE,
                    ..Default::default()
                },
            );
            (hc::MEMORY_OP, [s(memory::ACQUIRE_RESOURCE), ARG, 0, 0, 0])
        }
        "HvmSetParamAltp2m" => {
            w.put(
                d,
                ARG,
                &hvm::HvmParam {
                    domid: t,
                    pad: 0,
                    index: warden_abi::xen::hvm_params::ALTP2M,
                    value: 0,
                },
            );
            (hc::HVM_OP, [s(hvm::SET_PARAM), ARG, 0, 0, 0])
        }
        "SysctlGetCpuFeatureset" => {
            w.put(
                d,
                ARG,
                &sc::Sysctl::new(
                    sc::GET_CPU_FEATURESET,
                    &sc::CpuFeatureset {
                        index: sc::featureset::HOST,
                        nr_features: 4,
                        features: BUF,
                    },
                ),
            );
            (hc::SYSCTL, [ARG, 0, 0, 0, 0])
        }
        "SysctlGetCpuPolicy" => {
            w.put(
                d,
                ARG,
                &sc::Sysctl::new(
                    sc::GET_CPU_POLICY,
                    &sc::SysCpuPolicy {
                        index: sc::cpu_policy::HVM_DEFAULT,
                        ..Default::default()
                    },
                ),
            );
            (hc::SYSCTL, [ARG, 0, 0, 0, 0])
        }
        "ConsoleWrite" => (hc::CONSOLE_IO, [s(console::WRITE), 4, BUF, 0, 0]),
        "ConsoleRead" => (hc::CONSOLE_IO, [s(console::READ), 4, BUF, 0, 0]),
        n if n.starts_with("Version") => {
            let sub = match n {
                "VersionVersion" => version::VERSION,
                "VersionExtraversion" => version::EXTRAVERSION,
                "VersionCompileInfo" => version::COMPILE_INFO,
                "VersionCapabilities" => version::CAPABILITIES,
                "VersionChangeset" => version::CHANGESET,
                "VersionPlatformParameters" => version::PLATFORM_PARAMETERS,
                "VersionGetFeatures" => version::GET_FEATURES,
                "VersionPagesize" => version::PAGESIZE,
                "VersionGuestHandle" => version::GUEST_HANDLE,
                "VersionCommandline" => version::COMMANDLINE,
                _ => version::BUILD_ID,
            };
            (hc::XEN_VERSION, [s(sub), BUF, 0, 0, 0])
        }
        n if n.starts_with("Platform") => {
            use warden_abi::xen::platform as pf;
            let cmd = match n {
                "PlatformSettime32" => pf::SETTIME32,
                "PlatformSettime64" => pf::SETTIME64,
                "PlatformFirmwareInfo" => pf::FIRMWARE_INFO,
                "PlatformGetCpuinfo" => pf::GET_CPUINFO,
                other => panic!("no invocation for row {other}"),
            };
            w.put(
                d,
                ARG,
                &pf::PlatformOp {
                    cmd,
                    interface_version: pf::INTERFACE_VERSION,
                    u: [0; 128],
                },
            );
            (hc::PLATFORM_OP, [ARG, 0, 0, 0, 0])
        }
        "SchedYield" => (hc::SCHED_OP, [s(sched::YIELD), 0, 0, 0, 0]),
        "SchedBlock" => (hc::SCHED_OP, [s(sched::BLOCK), 0, 0, 0, 0]),
        "SchedShutdown" => {
            w.put(d, ARG, &sched::Shutdown { reason: 0 });
            (hc::SCHED_OP, [s(sched::SHUTDOWN), ARG, 0, 0, 0])
        }
        "SchedPoll" => {
            w.put(d, ARG, &sched::Poll::default());
            (hc::SCHED_OP, [s(sched::POLL), ARG, 0, 0, 0])
        }
        "SchedRemoteShutdown" => {
            w.put(
                d,
                ARG,
                &sched::RemoteShutdown {
                    domain_id: 2,
                    pad: 0,
                    reason: 0,
                },
            );
            (hc::SCHED_OP, [s(sched::REMOTE_SHUTDOWN), ARG, 0, 0, 0])
        }
        n if n.starts_with("Vcpu") => {
            let sub = match n {
                "VcpuInitialise" => vcpu::INITIALISE,
                "VcpuUp" => vcpu::UP,
                "VcpuDown" => vcpu::DOWN,
                "VcpuIsUp" => vcpu::IS_UP,
                "VcpuGetRunstateInfo" => vcpu::GET_RUNSTATE_INFO,
                "VcpuSetSingleshotTimer" => vcpu::SET_SINGLESHOT_TIMER,
                "VcpuStopSingleshotTimer" => vcpu::STOP_SINGLESHOT_TIMER,
                "VcpuRegisterRunstateMemoryArea" => vcpu::REGISTER_RUNSTATE_MEMORY_AREA,
                "VcpuSetPeriodicTimer" => vcpu::SET_PERIODIC_TIMER,
                "VcpuStopPeriodicTimer" => vcpu::STOP_PERIODIC_TIMER,
                "VcpuRegisterVcpuTimeMemoryArea" => vcpu::REGISTER_VCPU_TIME_MEMORY_AREA,
                _ => vcpu::REGISTER_VCPU_INFO,
            };
            (hc::VCPU_OP, [s(sub), 0, ARG, 0, 0])
        }
        "HvmSetEvtchnUpcallVector" => {
            w.put(
                d,
                ARG,
                &hvm::UpcallVector {
                    vcpu: 0,
                    vector: 0x40,
                    pad: [0; 3],
                },
            );
            (hc::HVM_OP, [s(hvm::SET_EVTCHN_UPCALL_VECTOR), ARG, 0, 0, 0])
        }
        "HvmPagetableDying" => {
            w.put(
                d,
                ARG,
                &hvm::PagetableDying {
                    domid: 0x7FF0,
                    pad: [0; 3],
                    gpa: 0,
                },
            );
            (hc::HVM_OP, [s(hvm::PAGETABLE_DYING), ARG, 0, 0, 0])
        }
        n if n.starts_with("Evtchn") => {
            use warden_abi::xen::event_channel as ec;
            let me = warden_abi::DOMID_SELF;
            let sub = match n {
                "EvtchnAllocUnbound" => {
                    w.put(
                        d,
                        ARG,
                        &ec::AllocUnbound {
                            dom: me,
                            remote_dom: me,
                            port: 0,
                        },
                    );
                    ec::ALLOC_UNBOUND
                }
                "EvtchnBindInterdomain" => {
                    let d2 = w.hv.domains.get(2).unwrap();
                    let rp = w.hv.evtchn_alloc_unbound_unchecked(&d2, d.id).unwrap();
                    w.put(
                        d,
                        ARG,
                        &ec::BindInterdomain {
                            remote_dom: 2,
                            pad: 0,
                            remote_port: rp,
                            local_port: 0,
                        },
                    );
                    ec::BIND_INTERDOMAIN
                }
                "EvtchnSendInterdomain" => {
                    // An interdomain port of the caller, bound by d2 behind the checks.
                    let me = w.hv.domains.get(d.id).unwrap();
                    let d2 = w.hv.domains.get(2).unwrap();
                    let lp = w.hv.evtchn_alloc_unbound_unchecked(&me, 2).unwrap();
                    let snap = w.hv.evtchn_bindable(&me, lp, 2).unwrap();
                    w.hv.evtchn_bind_interdomain(
                        &d2,
                        &me,
                        lp,
                        &snap,
                        crate::xen::evtchn::UNLABELED,
                    )
                    .unwrap();
                    w.put(d, ARG, &ec::Send { port: lp });
                    ec::SEND
                }
                "EvtchnSendLocal" => {
                    w.put(d, ARG, &ec::Send { port: 0 });
                    ec::SEND
                }
                "EvtchnStatus" => {
                    w.put(
                        d,
                        ARG,
                        &ec::Status {
                            dom: me,
                            ..Default::default()
                        },
                    );
                    ec::STATUS
                }
                "EvtchnReset" => {
                    w.put(d, ARG, &ec::Reset { dom: me });
                    ec::RESET
                }
                "EvtchnBindVirq" => {
                    w.put(
                        d,
                        ARG,
                        &ec::BindVirq {
                            virq: 0,
                            vcpu: 0,
                            port: 0,
                        },
                    );
                    ec::BIND_VIRQ
                }
                "EvtchnBindIpi" => {
                    w.put(d, ARG, &ec::BindIpi { vcpu: 0, port: 0 });
                    ec::BIND_IPI
                }
                "EvtchnBindVcpu" => {
                    w.put(d, ARG, &ec::BindVcpu { port: 0, vcpu: 0 });
                    ec::BIND_VCPU
                }
                "EvtchnClose" => {
                    w.put(d, ARG, &ec::Close { port: 0 });
                    ec::CLOSE
                }
                "EvtchnUnmask" => {
                    w.put(d, ARG, &ec::Unmask { port: 0 });
                    ec::UNMASK
                }
                "EvtchnInitControl" => {
                    // An unaligned control block: EINVAL once checked.
                    w.put(
                        d,
                        ARG,
                        &ec::InitControl {
                            control_gfn: 5,
                            offset: 3,
                            ..Default::default()
                        },
                    );
                    ec::INIT_CONTROL
                }
                "EvtchnExpandArray" => {
                    w.put(d, ARG, &ec::ExpandArray { array_gfn: 5 });
                    ec::EXPAND_ARRAY
                }
                "EvtchnSetPriority" => {
                    w.put(
                        d,
                        ARG,
                        &ec::SetPriority {
                            port: 99_999,
                            priority: 7,
                        },
                    );
                    ec::SET_PRIORITY
                }
                other => panic!("no invocation for row {other}"),
            };
            (hc::EVENT_CHANNEL_OP, [s(sub), ARG, 0, 0, 0])
        }
        "MemAddToPhysmap" => {
            w.put(
                d,
                ARG,
                &memory::AddToPhysmap {
                    domid: warden_abi::DOMID_SELF,
                    space: memory::XENMAPSPACE_SHARED_INFO,
                    gpfn: 40,
                    ..Default::default()
                },
            );
            (hc::MEMORY_OP, [s(memory::ADD_TO_PHYSMAP), ARG, 0, 0, 0])
        }
        "MemPopulatePhysmap" | "MemDecreaseReservation" => {
            w.put(d, BUF, &0u64);
            w.put(
                d,
                ARG,
                &memory::Reservation {
                    extent_start: BUF,
                    nr_extents: 1,
                    domid: 2,
                    ..Default::default()
                },
            );
            let sub = if name == "MemPopulatePhysmap" {
                memory::POPULATE_PHYSMAP
            } else {
                memory::DECREASE_RESERVATION
            };
            (hc::MEMORY_OP, [s(sub), ARG, 0, 0, 0])
        }
        "SetTimerOp" => (hc::SET_TIMER_OP, [0, 0, 0, 0, 0]),
        // An empty batch: the multicall's own check only.
        "Multicall" => (hc::MULTICALL, [ARG, 0, 0, 0, 0]),
        "MemGetSharingFreedPages" => (
            hc::MEMORY_OP,
            [s(memory::GET_SHARING_FREED_PAGES), 0, 0, 0, 0],
        ),
        "MemGetSharingSharedPages" => (
            hc::MEMORY_OP,
            [s(memory::GET_SHARING_SHARED_PAGES), 0, 0, 0, 0],
        ),
        "VmAssistEnable" | "VmAssistDisable" => {
            let cmd = if name == "VmAssistEnable" { 0 } else { 1 };
            (hc::VM_ASSIST, [cmd, 5, 0, 0, 0])
        }
        "HvmSetParam" | "HvmGetParam" => {
            w.put(
                d,
                ARG,
                &hvm::HvmParam {
                    domid: 2,
                    pad: 0,
                    index: warden_abi::xen::hvm_params::CONSOLE_EVTCHN,
                    value: 1,
                },
            );
            let sub = if name == "HvmSetParam" {
                hvm::SET_PARAM
            } else {
                hvm::GET_PARAM
            };
            (hc::HVM_OP, [s(sub), ARG, 0, 0, 0])
        }
        "MemMemoryMap" => {
            w.put(
                d,
                ARG,
                &memory::MemoryMap {
                    nr_entries: 4,
                    pad: 0,
                    buffer: BUF,
                },
            );
            (hc::MEMORY_OP, [s(memory::MEMORY_MAP), ARG, 0, 0, 0])
        }
        "MemSetMemoryMap" => {
            w.put(
                d,
                ARG,
                &memory::ForeignMemoryMap {
                    domid: 2,
                    pad: [0; 3],
                    map: memory::MemoryMap {
                        nr_entries: 1,
                        pad: 0,
                        buffer: BUF,
                    },
                },
            );
            (hc::MEMORY_OP, [s(memory::SET_MEMORY_MAP), ARG, 0, 0, 0])
        }
        n if n.starts_with("Gnttab") => gnttab_invoke(w, d, n),
        "MemMaximumRamPage" => (hc::MEMORY_OP, [s(memory::MAXIMUM_RAM_PAGE), 0, 0, 0, 0]),
        "MemCurrentReservation" | "MemMaximumReservation" => {
            w.put(d, ARG, &memory::DomidArg { domid: 2 });
            let sub = if name == "MemCurrentReservation" {
                memory::CURRENT_RESERVATION
            } else {
                memory::MAXIMUM_RESERVATION
            };
            (hc::MEMORY_OP, [s(sub), ARG, 0, 0, 0])
        }
        "DomctlSchedulerOpPut" | "DomctlSchedulerOpGet" => {
            let cmd = if name == "DomctlSchedulerOpPut" {
                dc::SCHEDOP_PUTINFO
            } else {
                dc::SCHEDOP_GETINFO
            };
            w.put(
                d,
                ARG,
                &dc::Domctl::new(
                    dc::SCHEDULER_OP,
                    2,
                    &dc::SchedulerOp {
                        sched_id: sc::SCHEDULER_CREDIT2,
                        cmd,
                        ..Default::default()
                    },
                ),
            );
            (hc::DOMCTL, [ARG, 0, 0, 0, 0])
        }
        n if n.starts_with("Domctl") => {
            let (cmd, dom) = match n {
                "DomctlGetVcpuInfo" => (dc::GETVCPUINFO, 2),
                "DomctlSetVcpuAffinity" => (dc::SETVCPUAFFINITY, 2),
                "DomctlGetVcpuAffinity" => (dc::GETVCPUAFFINITY, 2),
                "DomctlCreateDomain" => (dc::CREATEDOMAIN, 0),
                "DomctlDestroyDomain" => (dc::DESTROYDOMAIN, 2),
                "DomctlPauseDomain" => (dc::PAUSEDOMAIN, 2),
                "DomctlUnpauseDomain" => (dc::UNPAUSEDOMAIN, 2),
                "DomctlGetDomainInfo" => (dc::GETDOMAININFO, 2),
                "DomctlMaxMem" => (dc::MAX_MEM, 2),
                "DomctlSetHvmContext" => (dc::SETHVMCONTEXT, 2),
                "DomctlGetHvmContext" => (dc::GETHVMCONTEXT, 2),
                "DomctlSetDomainHandle" => (dc::SETDOMAINHANDLE, 2),
                "DomctlGetTscInfo" => (dc::GETTSCINFO, 2),
                "DomctlSetTscInfo" => (dc::SETTSCINFO, 2),
                "DomctlSetNodeAffinity" => (dc::SETNODEAFFINITY, 2),
                "DomctlGetNodeAffinity" => (dc::GETNODEAFFINITY, 2),
                "DomctlCacheflush" => (dc::CACHEFLUSH, 2),
                "DomctlGetCpuPolicy" => (dc::GET_CPU_POLICY, 2),
                "DomctlSetCpuPolicy" => (dc::SET_CPU_POLICY, 2),
                "DomctlGetPagingMempoolSize" => (dc::GET_PAGING_MEMPOOL_SIZE, 2),
                "DomctlSetPagingMempoolSize" => (dc::SET_PAGING_MEMPOOL_SIZE, 2),
                "DomctlMaxVcpus" => (dc::MAX_VCPUS, 2),
                other => panic!("no invocation for row {other}"),
            };
            w.put(
                d,
                ARG,
                &dc::Domctl::new(
                    cmd,
                    dom,
                    &dc::CreateDomain {
                        ssidref: 12,
                        ..Default::default()
                    },
                ),
            );
            (hc::DOMCTL, [ARG, 0, 0, 0, 0])
        }
        "SysctlReadConsole" | "SysctlReadConsoleClear" => {
            let clear = (name == "SysctlReadConsoleClear") as u8;
            w.put(
                d,
                ARG,
                &sc::Sysctl::new(
                    sc::READCONSOLE,
                    &sc::ReadConsole {
                        clear,
                        buffer: BUF,
                        count: 16,
                        ..Default::default()
                    },
                ),
            );
            (hc::SYSCTL, [ARG, 0, 0, 0, 0])
        }
        "SysctlPhysinfo" => {
            w.put(d, ARG, &sc::Sysctl::new(sc::PHYSINFO, &()));
            (hc::SYSCTL, [ARG, 0, 0, 0, 0])
        }
        "SysctlDebugKeys" => {
            w.put(d, BUF, &b'q');
            let a = sc::DebugKeys {
                keys: BUF,
                nr_keys: 1,
                pad: 0,
            };
            w.put(d, ARG, &sc::Sysctl::new(sc::DEBUG_KEYS, &a));
            (hc::SYSCTL, [ARG, 0, 0, 0, 0])
        }
        "SysctlSchedId" => {
            w.put(d, ARG, &sc::Sysctl::new(sc::SCHED_ID, &()));
            (hc::SYSCTL, [ARG, 0, 0, 0, 0])
        }
        "SysctlCpuTopoInfo" => {
            w.put(d, ARG, &sc::Sysctl::new(sc::CPUTOPOINFO, &()));
            (hc::SYSCTL, [ARG, 0, 0, 0, 0])
        }
        "SysctlNumaInfo" => {
            w.put(d, ARG, &sc::Sysctl::new(sc::NUMAINFO, &()));
            (hc::SYSCTL, [ARG, 0, 0, 0, 0])
        }
        "SysctlCpupoolOp" => {
            w.put(
                d,
                ARG,
                &sc::Sysctl::new(
                    sc::CPUPOOL_OP,
                    &sc::CpupoolOp {
                        op: sc::cpupool::INFO,
                        ..Default::default()
                    },
                ),
            );
            (hc::SYSCTL, [ARG, 0, 0, 0, 0])
        }
        "SysctlGetDomainInfoList" | "SysctlGetDomainInfoListEntry" => {
            w.put(
                d,
                ARG,
                &sc::Sysctl::new(
                    sc::GETDOMAININFOLIST,
                    &sc::GetDomainInfoList {
                        max_domains: 4,
                        buffer: BUF,
                        ..Default::default()
                    },
                ),
            );
            (hc::SYSCTL, [ARG, 0, 0, 0, 0])
        }
        n if n.starts_with("Livepatch") => {
            let cmd = match n {
                "LivepatchUpload" => sc::livepatch::UPLOAD,
                "LivepatchGet" => sc::livepatch::GET,
                "LivepatchList" => sc::livepatch::LIST,
                _ => sc::livepatch::ACTION,
            };
            w.put(
                d,
                ARG,
                &sc::Sysctl::new(
                    sc::LIVEPATCH_OP,
                    &sc::Livepatch {
                        cmd,
                        ..Default::default()
                    },
                ),
            );
            (hc::SYSCTL, [ARG, 0, 0, 0, 0])
        }
        n => {
            let (cmd, op) = match n {
                "FlaskLoad" => (
                    fx::LOAD,
                    fx::FlaskOp::new(
                        fx::LOAD,
                        &fx::Load {
                            buffer: BUF,
                            size: 8,
                            pad: 0,
                        },
                    ),
                ),
                "FlaskGetEnforce" => (fx::GETENFORCE, fx::FlaskOp::new(fx::GETENFORCE, &())),
                "FlaskSetEnforce" => (
                    fx::SETENFORCE,
                    fx::FlaskOp::new(fx::SETENFORCE, &fx::SetEnforce { enforcing: 1 }),
                ),
                "FlaskContextToSid" => (
                    fx::CONTEXT_TO_SID,
                    fx::FlaskOp::new(
                        fx::CONTEXT_TO_SID,
                        &fx::SidContext {
                            sid: 0,
                            size: 4,
                            context: BUF,
                        },
                    ),
                ),
                "FlaskSidToContext" => (
                    fx::SID_TO_CONTEXT,
                    fx::FlaskOp::new(
                        fx::SID_TO_CONTEXT,
                        &fx::SidContext {
                            sid: 3,
                            size: 64,
                            context: BUF,
                        },
                    ),
                ),
                "FlaskAccess" => (
                    fx::ACCESS,
                    fx::FlaskOp::new(
                        fx::ACCESS,
                        &fx::Access {
                            ssid: 3,
                            tsid: 3,
                            tclass: 3,
                            ..Default::default()
                        },
                    ),
                ),
                "FlaskCreate" => (
                    fx::CREATE,
                    fx::FlaskOp::new(
                        fx::CREATE,
                        &fx::Transition {
                            ssid: 3,
                            tsid: 3,
                            tclass: 3,
                            ..Default::default()
                        },
                    ),
                ),
                "FlaskRelabel" => (
                    fx::RELABEL,
                    fx::FlaskOp::new(
                        fx::RELABEL,
                        &fx::Transition {
                            ssid: 3,
                            tsid: 3,
                            tclass: 3,
                            ..Default::default()
                        },
                    ),
                ),
                "FlaskMember" => (
                    fx::MEMBER,
                    fx::FlaskOp::new(
                        fx::MEMBER,
                        &fx::Transition {
                            ssid: 3,
                            tsid: 3,
                            tclass: 3,
                            ..Default::default()
                        },
                    ),
                ),
                "FlaskPolicyVers" => (fx::POLICYVERS, fx::FlaskOp::new(fx::POLICYVERS, &())),
                "FlaskGetBool" => (
                    fx::GETBOOL,
                    fx::FlaskOp::new(
                        fx::GETBOOL,
                        &fx::Boolean {
                            bool_id: 0,
                            ..Default::default()
                        },
                    ),
                ),
                "FlaskSetBool" => (
                    fx::SETBOOL,
                    fx::FlaskOp::new(
                        fx::SETBOOL,
                        &fx::Boolean {
                            bool_id: 0,
                            ..Default::default()
                        },
                    ),
                ),
                "FlaskCommitBools" => (fx::COMMITBOOLS, fx::FlaskOp::new(fx::COMMITBOOLS, &())),
                "FlaskMls" => (fx::MLS, fx::FlaskOp::new(fx::MLS, &())),
                "FlaskGetAvcThreshold" => (
                    fx::GETAVC_THRESHOLD,
                    fx::FlaskOp::new(fx::GETAVC_THRESHOLD, &()),
                ),
                "FlaskSetAvcThreshold" => (
                    fx::SETAVC_THRESHOLD,
                    fx::FlaskOp::new(
                        fx::SETAVC_THRESHOLD,
                        &fx::SetAvcThreshold { threshold: 512 },
                    ),
                ),
                "FlaskAvcHashStats" => {
                    (fx::AVC_HASHSTATS, fx::FlaskOp::new(fx::AVC_HASHSTATS, &()))
                }
                "FlaskAvcCacheStats" => (
                    fx::AVC_CACHESTATS,
                    fx::FlaskOp::new(fx::AVC_CACHESTATS, &fx::CacheStats::default()),
                ),
                "FlaskAddOcontext" => (
                    fx::ADD_OCONTEXT,
                    fx::FlaskOp::new(
                        fx::ADD_OCONTEXT,
                        &fx::Ocontext {
                            ocon: 1,
                            sid: 10,
                            low: 5,
                            high: 5,
                        },
                    ),
                ),
                "FlaskDelOcontext" => (
                    fx::DEL_OCONTEXT,
                    fx::FlaskOp::new(
                        fx::DEL_OCONTEXT,
                        &fx::Ocontext {
                            ocon: 1,
                            sid: 10,
                            low: 5,
                            high: 5,
                        },
                    ),
                ),
                "FlaskGetPeerSid" => (
                    fx::GET_PEER_SID,
                    fx::FlaskOp::new(fx::GET_PEER_SID, &fx::PeerSid::default()),
                ),
                "FlaskRelabelSelf" => (
                    fx::RELABEL_DOMAIN,
                    fx::FlaskOp::new(
                        fx::RELABEL_DOMAIN,
                        &fx::Relabel {
                            domid: warden_abi::DOMID_SELF as u32,
                            sid: 3,
                        },
                    ),
                ),
                "FlaskRelabelDomain" => (
                    fx::RELABEL_DOMAIN,
                    fx::FlaskOp::new(fx::RELABEL_DOMAIN, &fx::Relabel { domid: 2, sid: 3 }),
                ),
                "FlaskDevicetreeLabel" => (
                    fx::DEVICETREE_LABEL,
                    fx::FlaskOp::new(
                        fx::DEVICETREE_LABEL,
                        &fx::DevicetreeLabel {
                            sid: 11,
                            length: 2,
                            path: BUF,
                        },
                    ),
                ),
                "FlaskDevicetreeUnlabel" => (
                    fx::DEVICETREE_LABEL,
                    fx::FlaskOp::new(
                        fx::DEVICETREE_LABEL,
                        &fx::DevicetreeLabel {
                            sid: 0,
                            length: 2,
                            path: BUF,
                        },
                    ),
                ),
                other => panic!("no invocation for row {other}"),
            };
            let _ = cmd;
            w.put(d, ARG, &op);
            (hc::XSM_OP, [ARG, 0, 0, 0, 0])
        }
    }
}

/// Where [`gnttab_invoke`] maps domain 2's grant for the unmap row.
const GNT_MAP_GFN: u64 = 0x800;

/// Arguments that route to the grant-table row `name`, against domain 2
/// (for unmap: a mapping of domain 2's grant ref 8 made for `d` first).
fn gnttab_invoke(w: &World, d: &Domain, name: &str) -> (u32, [u64; 5]) {
    use warden_abi::xen::grant_table as gt;
    let cmd = |c: u32, count: u64| (hc::GRANT_TABLE_OP, [c as u64, ARG, count, 0, 0]);
    let map = |flags| gt::MapGrantRef {
        host_addr: 0x900 << 12,
        flags,
        ref_: 8,
        dom: 2,
        ..Default::default()
    };
    let copy = |flags, src: gt::CopyPtr, dest: gt::CopyPtr| gt::Copy {
        source: src,
        dest,
        len: 8,
        flags,
        ..Default::default()
    };
    let own = gt::CopyPtr {
        u: 5,
        domid: warden_abi::DOMID_SELF,
        ..Default::default()
    };
    let theirs = gt::CopyPtr {
        u: 8,
        domid: 2,
        ..Default::default()
    };
    match name {
        "GnttabMapRw" => {
            w.put(d, ARG, &map(gt::GNTMAP_HOST_MAP));
            cmd(gt::MAP_GRANT_REF, 1)
        }
        "GnttabMapRo" => {
            w.put(d, ARG, &map(gt::GNTMAP_HOST_MAP | gt::GNTMAP_READONLY));
            cmd(gt::MAP_GRANT_REF, 1)
        }
        "GnttabUnmap" => {
            let handle = gnttab_test_mapping(w, d);
            w.put(
                d,
                ARG,
                &gt::UnmapGrantRef {
                    host_addr: GNT_MAP_GFN << 12,
                    handle,
                    ..Default::default()
                },
            );
            cmd(gt::UNMAP_GRANT_REF, 1)
        }
        "GnttabSetupTable" => {
            w.put(
                d,
                ARG,
                &gt::SetupTable {
                    dom: 2,
                    nr_frames: 1,
                    frame_list: BUF,
                    ..Default::default()
                },
            );
            cmd(gt::SETUP_TABLE, 1)
        }
        "GnttabCopyFromCaller" => {
            w.put(d, ARG, &copy(gt::GNTCOPY_DEST_GREF, own, theirs));
            cmd(gt::COPY, 1)
        }
        "GnttabCopyToCaller" => {
            w.put(d, ARG, &copy(gt::GNTCOPY_SOURCE_GREF, theirs, own));
            cmd(gt::COPY, 1)
        }
        "GnttabCopyBetween" => {
            // From domain 4's grant (the unlabeled third domain of the
            // dispatcher test) to domain 2's: neither is the caller.
            let src = gt::CopyPtr {
                u: 8,
                domid: 4,
                ..Default::default()
            };
            let flags = gt::GNTCOPY_SOURCE_GREF | gt::GNTCOPY_DEST_GREF;
            w.put(d, ARG, &copy(flags, src, theirs));
            cmd(gt::COPY, 1)
        }
        "GnttabQuerySize" => {
            w.put(
                d,
                ARG,
                &gt::QuerySize {
                    dom: 2,
                    ..Default::default()
                },
            );
            cmd(gt::QUERY_SIZE, 1)
        }
        "GnttabGetVersion" => {
            w.put(
                d,
                ARG,
                &gt::GetVersion {
                    dom: 2,
                    ..Default::default()
                },
            );
            cmd(gt::GET_VERSION, 1)
        }
        "GnttabSetVersion" => {
            w.put(d, ARG, &gt::SetVersion { version: 1 });
            cmd(gt::SET_VERSION, 1)
        }
        other => panic!("no invocation for row {other}"),
    }
}

/// A handle of `d`'s mapping of domain 2's grant ref 8 at [`GNT_MAP_GFN`]
/// (made directly through the grant-table service, bypassing the checks).
fn gnttab_test_mapping(w: &World, d: &Domain) -> u32 {
    use warden_abi::xen::grant_table as gt;
    let g = w.hv.domains.get(2).unwrap();
    let mem = w.hv.platform.mem();
    for h in 0..d.gnttab.maptrack.capacity() {
        if let Ok(m) = crate::xen::gnttab::mapping_of(d, h)
            && m.gfn == GNT_MAP_GFN
        {
            return h;
        }
    }
    g.gnttab.write_entry(
        mem,
        8,
        &gt::GrantEntryV1 {
            flags: gt::GTF_PERMIT_ACCESS,
            domid: d.id,
            frame: 3,
        },
    );
    let snap = w.hv.domains.snapshot(2).unwrap();
    let op = gt::MapGrantRef {
        host_addr: GNT_MAP_GFN << 12,
        flags: gt::GNTMAP_HOST_MAP,
        ref_: 8,
        dom: 2,
        ..Default::default()
    };
    crate::xen::gnttab::map(mem, d, 0, &g, snap, &op).expect("test mapping")
}

/// The GNTST_* status a grant-table row reports per entry (None: the row
/// reports through the hypercall's return value).
fn gnttab_status(w: &World, d: &Domain, name: &str) -> Option<i16> {
    use warden_abi::xen::grant_table as gt;
    Some(match name {
        "GnttabMapRw" | "GnttabMapRo" => w.get::<gt::MapGrantRef>(d, ARG).status,
        "GnttabUnmap" => w.get::<gt::UnmapGrantRef>(d, ARG).status,
        "GnttabSetupTable" => w.get::<gt::SetupTable>(d, ARG).status,
        "GnttabCopyFromCaller" | "GnttabCopyToCaller" | "GnttabCopyBetween" => {
            w.get::<gt::Copy>(d, ARG).status
        }
        "GnttabQuerySize" => w.get::<gt::QuerySize>(d, ARG).status,
        _ => return None,
    })
}

#[test]
fn unknown_hypercalls_and_sub_ops_are_enosys_and_logged() {
    let w = world(true);
    let d0 = w.domain(0, "system_u:system_r:dom0_t");
    let enosys = -(errno::ENOSYS as i64);
    assert_eq!(w.call(&d0, 99, [0; 5]), enosys);
    assert_eq!(w.call(&d0, hc::XEN_VERSION, [77, 0, 0, 0, 0]), enosys);
    w.put(&d0, ARG, &dc::Domctl::new(999, 0, &()));
    assert_eq!(w.call(&d0, hc::DOMCTL, [ARG, 0, 0, 0, 0]), enosys);
    w.put(&d0, ARG, &fx::FlaskOp::new(9, &()));
    assert_eq!(
        w.call(&d0, hc::XSM_OP, [ARG, 0, 0, 0, 0]),
        enosys,
        "FLASK_USER was removed"
    );
    w.put(
        &d0,
        ARG,
        &fx::FlaskOp {
            interface_version: 7,
            ..fx::FlaskOp::new(2, &())
        },
    );
    assert_eq!(
        w.call(&d0, hc::XSM_OP, [ARG, 0, 0, 0, 0]),
        enosys,
        "wrong interface version"
    );
    // The log lines went through the `log` facade (not captured here); the
    // rate limiter admitted them.
}

#[test]
fn bad_guest_pointers_are_efault_never_a_host_fault() {
    let w = world(true);
    let d0 = w.domain(0, "system_u:system_r:dom0_t");
    let efault = -(errno::EFAULT as i64);
    let outside = PAGES * 4096;
    assert_eq!(w.call(&d0, hc::DOMCTL, [outside, 0, 0, 0, 0]), efault);
    assert_eq!(w.call(&d0, hc::DOMCTL, [u64::MAX - 8, 0, 0, 0, 0]), efault);
    assert_eq!(
        w.call(
            &d0,
            hc::XEN_VERSION,
            [
                warden_abi::version::CAPABILITIES as u64,
                outside - 100,
                0,
                0,
                0
            ]
        ),
        efault
    );
    assert_eq!(
        w.call(&d0, hc::CONSOLE_IO, [0, 64, outside - 8, 0, 0]),
        efault
    );
    // A huge readconsole count is capped at what the ring holds ...
    let text: Vec<u8> = (0..100u8).map(|i| b'a' + i % 26).collect();
    w.plat.ring.lock().unwrap().write(&text);
    let readconsole = |buffer: u64| {
        sc::Sysctl::new(
            sc::READCONSOLE,
            &sc::ReadConsole {
                buffer,
                count: u32::MAX,
                ..Default::default()
            },
        )
    };
    w.put(&d0, ARG, &readconsole(BUF));
    assert_eq!(w.call(&d0, hc::SYSCTL, [ARG, 0, 0, 0, 0]), 0);
    let a: sc::ReadConsole = w.get::<sc::Sysctl>(&d0, ARG).arg();
    assert_eq!(a.count, 100);
    let mut got = [0u8; 100];
    w.hv.read_phys(&d0, BUF, &mut got).unwrap();
    assert_eq!(&got[..], &text[..]);
    // ... and a buffer that runs off the end of guest memory is -EFAULT
    // (nothing is written beyond it: the guest has no memory there).
    w.put(&d0, ARG, &readconsole(outside - 4));
    assert_eq!(w.call(&d0, hc::SYSCTL, [ARG, 0, 0, 0, 0]), efault);
    // LOAD with a size beyond the limit is refused before anything is allocated.
    w.put(
        &d0,
        ARG,
        &fx::FlaskOp::new(
            fx::LOAD,
            &fx::Load {
                buffer: BUF,
                size: u32::MAX,
                pad: 0,
            },
        ),
    );
    assert_eq!(
        w.call(&d0, hc::XSM_OP, [ARG, 0, 0, 0, 0]),
        -(errno::EINVAL as i64)
    );
}

#[test]
fn flask_disabled_follows_the_dummy_module() {
    let w = world(false);
    let d0 = w.domain(0, "");
    let d1 = w.domain(1, "");
    let eperm = -(errno::EPERM as i64);
    w.put(&d1, ARG, &dc::Domctl::new(dc::PAUSEDOMAIN, 0, &()));
    assert_eq!(w.call(&d1, hc::DOMCTL, [ARG, 0, 0, 0, 0]), eperm);
    w.put(&d0, ARG, &dc::Domctl::new(dc::PAUSEDOMAIN, 1, &()));
    assert_eq!(w.call(&d0, hc::DOMCTL, [ARG, 0, 0, 0, 0]), 0);
    assert_eq!(
        w.call(&d1, hc::XEN_VERSION, [0, 0, 0, 0, 0]),
        (4 << 16) | 17
    );
    w.put(&d0, ARG, &fx::FlaskOp::new(fx::GETENFORCE, &()));
    assert_eq!(
        w.call(&d0, hc::XSM_OP, [ARG, 0, 0, 0, 0]),
        -(errno::ENOSYS as i64)
    );
}

#[test]
fn a_domain_shutting_down_is_reported_and_dom0_stops_the_machine() {
    let w = world(true);
    let d0 = w.domain(0, "system_u:system_r:dom0_t");
    let d1 = w.domain(1, DOMU);
    w.put(
        &d1,
        ARG,
        &sched::Shutdown {
            reason: sched::SHUTDOWN_REBOOT,
        },
    );
    assert_eq!(
        w.call(&d1, hc::SCHED_OP, [sched::SHUTDOWN as u64, ARG, 0, 0, 0]),
        0
    );
    assert_eq!(
        w.hv.sched.life(1),
        Some(crate::sched::Life::Shutdown(sched::SHUTDOWN_REBOOT))
    );
    assert_eq!(*w.plat.stopped.lock().unwrap(), None);
    w.put(&d0, ARG, &sched::Shutdown { reason: 99 });
    assert_eq!(
        w.call(&d0, hc::SCHED_OP, [sched::SHUTDOWN as u64, ARG, 0, 0, 0]),
        -(errno::EINVAL as i64)
    );
    w.put(
        &d0,
        ARG,
        &sched::Shutdown {
            reason: sched::SHUTDOWN_POWEROFF,
        },
    );
    assert_eq!(
        w.call(&d0, hc::SCHED_OP, [sched::SHUTDOWN as u64, ARG, 0, 0, 0]),
        0
    );
    assert_eq!(
        *w.plat.stopped.lock().unwrap(),
        Some(sched::SHUTDOWN_POWEROFF)
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]
    /// Random hypercalls from a domU_t guest, structured so that they get
    /// past the dispatcher: each is an operation of the gate table invoked
    /// as [`invoke`] does (right hypercall, sub-operation and interface
    /// version, target d2), then mutated: the payload after the routing
    /// header randomised, or the other argument registers, or both. Never a
    /// panic; the unmodified calls are never -ENOSYS (each reaches its
    /// operation); the other domU_t domain (d2), which the policy does not
    /// let d1 touch, is untouched.
    #[test]
    fn structured_random_hypercalls_reach_the_checks_and_never_touch_other_domains(
        calls in proptest::collection::vec(
            (
                0usize..crate::gate::table::TABLE.len(),
                0u8..4,
                proptest::collection::vec(proptest::num::u8::ANY, 48),
                proptest::array::uniform4(proptest::num::u64::ANY),
            ),
            1..24,
        )
    ) {
        let w = world(true);
        let _d0 = w.domain(0, "system_u:system_r:dom0_t");
        let g = w.domain(1, DOMU);
        let v = w.domain(2, DOMU);
        let before = w.hv.domains.snapshot(2).unwrap();
        let max_before = v.mem.read().max_pages;
        for (row, mode, bytes, regs) in calls {
            let name = crate::gate::table::TABLE[row].name;
            let (nr, mut a) = invoke(&w, &g, name);
            if mode & 1 != 0 {
                // Keep what routes the call (and the target of domctls).
                let keep = match nr {
                    hc::DOMCTL => 16,
                    hc::SYSCTL | hc::XSM_OP | hc::PLATFORM_OP => 8,
                    _ => 0,
                };
                w.hv.write_phys(&g, ARG + keep, &bytes).unwrap();
            }
            if mode & 2 != 0 {
                // The registers after the first argument (the sub-op, or
                // the pointer the versioned hypercalls take).
                let first = if matches!(nr, hc::DOMCTL | hc::SYSCTL | hc::XSM_OP | hc::PLATFORM_OP) { 1 } else { 2 };
                a[first..].copy_from_slice(&regs[..5 - first]);
            }
            let r = w.call(&g, nr, a);
            if mode == 0 {
                proptest::prop_assert_ne!(r, -(errno::ENOSYS as i64), "{} was not routed", name);
            }
        }
        let s = w.hv.sched.domain_state(2, 0).unwrap();
        proptest::prop_assert_eq!(s.pause, 0);
        proptest::prop_assert_eq!(s.life, crate::sched::Life::Active);
        proptest::prop_assert_eq!(v.mem.read().tot_pages, PAGES);
        proptest::prop_assert_eq!(v.mem.read().max_pages, max_before);
        proptest::prop_assert_eq!(w.hv.domains.snapshot(2), Some(before));
        proptest::prop_assert!(!v.dying.load(core::sync::atomic::Ordering::Relaxed));
        for i in 0..warden_abi::xen::hvm_params::NR_PARAMS {
            proptest::prop_assert_eq!(v.hvm.params.value(i), 0, "d2's param {} changed", i);
        }
        proptest::prop_assert_eq!(v.hvm.e820.lock().len(), 1);
    }
}

/// Not a check: the instruction cost of xen_version(XENVER_version) through
/// the dispatcher, for `valgrind --tool=callgrind` (see BENCHMARKS.md).
/// WARDEN_COST_FLASK=1 selects FLASK (enforcing, default policy).
#[test]
#[ignore]
fn cost_of_a_null_hypercall() {
    let flask = std::env::var("WARDEN_COST_FLASK").is_ok_and(|v| v == "1");
    let w = world(flask);
    let d = w.domain(0, "system_u:system_r:dom0_t");
    let v = d.vcpu(0).unwrap();
    let mut hw = v.hw.lock();
    *hw = Box::new(FakeVcpu {
        args: HypercallArgs {
            nr: warden_abi::hypercall::XEN_VERSION as u64,
            a: [warden_abi::version::VERSION as u64, 0, 0, 0, 0],
        },
        ..Default::default()
    });
    for _ in 0..10_000 {
        hypercall(w.hv, 0, &v, &mut **hw);
    }
}

/// The gate's per-vCPU cache of quiet grants never answers differently from
/// the AVC: a boolean commit, a relabel and a policy load each make the next
/// check go back to the security server, and a denial is never cached.
#[test]
fn cached_grants_follow_boolean_commits_relabels_and_policy_loads() {
    let w = world(true);
    let f = w.hv.gate.flask().unwrap();
    let _d0 = w.domain(0, "system_u:system_r:dom0_t");
    let d1 = w.domain(1, DOMU);
    let write = |w: &World, text: &[u8]| {
        w.hv.write_phys(&d1, BUF, text).unwrap();
        w.call(
            &d1,
            hc::CONSOLE_IO,
            [
                warden_abi::console::WRITE as u64,
                text.len() as u64,
                BUF,
                0,
                0,
            ],
        )
    };
    let hits = |f: &Flask| f.cache_stats(0).unwrap().hits;
    // Without a newline the text stays in d1's console line buffer.
    let written = |t: &str| {
        let b = d1.console.lock();
        String::from_utf8_lossy(&b.buf).contains(t)
    };
    // guest_writeconsole is on in the default policy: domU_t may write.
    const { assert!(<crate::gate::table::ConsoleWrite as crate::gate::Op>::CACHEABLE) };
    assert_eq!(write(&w, b"one"), 0);
    let h = hits(f);
    assert_eq!(write(&w, b"two"), 0);
    assert_eq!(hits(f), h + 1, "the second write is a cache hit");
    assert!(written("two"));
    assert!(w.audit_lines().is_empty());

    // Boolean off and committed: the cached grant is gone.
    let b = f.get_bool_by_name("guest_writeconsole").unwrap();
    f.set_bool(b.id, false, true).unwrap();
    assert_eq!(write(&w, b"three"), -(errno::EACCES as i64));
    assert!(!written("three"), "the write did not happen");
    let a = w.audit_lines();
    assert!(
        a.iter()
            .any(|l| l.contains("avc:  denied  { writeconsole }")),
        "{a:?}"
    );
    // A denial is not cached: every attempt is checked and audited again
    // (the AVC reports it; the rate limit is off in this world).
    assert_eq!(write(&w, b"four"), -(errno::EACCES as i64));
    assert!(!written("four"));

    // Back on: allowed again.
    f.set_bool(b.id, true, true).unwrap();
    assert_eq!(write(&w, b"five"), 0);
    assert_eq!(write(&w, b"six"), 0);
    assert!(written("six"));

    // Relabel d1 to a type without writeconsole: the cached grant (keyed by
    // the old SID) does not apply.
    let mute = w.sid("system_u:system_r:unlabeled_t");
    w.hv.domains.set_label(1, mute, w.hv.self_sid(mute));
    assert_eq!(write(&w, b"seven"), -(errno::EACCES as i64));
    assert!(!written("seven"));
    w.hv.domains
        .set_label(1, w.sid(DOMU), w.hv.self_sid(w.sid(DOMU)));
    assert_eq!(write(&w, b"eight"), 0);
    assert_eq!(write(&w, b"nine"), 0);

    // A policy load (the same policy with guest_writeconsole off by default
    // is not at hand; reloading the default resets the boolean to its
    // default, on) flushes too: the decision is recomputed (a miss).
    let misses = f.cache_stats(0).unwrap().misses;
    f.load_policy(&default_policy()).unwrap();
    w.hv.relabel_all();
    assert_eq!(write(&w, b"ten"), 0);
    assert!(
        f.cache_stats(0).unwrap().misses > misses,
        "the first check after a load goes to the security server"
    );
}

// ------------------------------------------------------------ console (issue 13/14)

impl World {
    /// CONSOLEIO_write of `text` from `d`.
    fn console_write(&self, d: &Domain, text: &[u8]) -> i64 {
        self.hv.write_phys(d, BUF, text).unwrap();
        self.call(
            d,
            hc::CONSOLE_IO,
            [
                warden_abi::console::WRITE as u64,
                text.len() as u64,
                BUF,
                0,
                0,
            ],
        )
    }

    /// readconsole from `d`: (bytes, returned index).
    fn readconsole(
        &self,
        d: &Domain,
        count: u32,
        index: u32,
        incr: bool,
        clear: bool,
    ) -> (Vec<u8>, u32) {
        self.put(
            d,
            ARG,
            &sc::Sysctl::new(
                sc::READCONSOLE,
                &sc::ReadConsole {
                    clear: clear as u8,
                    incremental: incr as u8,
                    index,
                    buffer: BUF,
                    count,
                    ..Default::default()
                },
            ),
        );
        assert_eq!(self.call(d, hc::SYSCTL, [ARG, 0, 0, 0, 0]), 0);
        let r: sc::ReadConsole = self.get::<sc::Sysctl>(d, ARG).arg();
        let mut b = alloc::vec![0u8; r.count as usize];
        self.hv.read_phys(d, BUF, &mut b).unwrap();
        (b, r.index)
    }
}

/// `xl dmesg -c` as libxl does it: readconsole with clear and incremental
/// in chunks until nothing comes back. Every byte is returned before it is
/// cleared, a line written between two chunks is not lost, and only what was
/// returned is cleared.
#[test]
fn readconsole_with_clear_returns_the_whole_ring_before_clearing_it() {
    let w = world(true);
    let d0 = w.domain(0, "system_u:system_r:dom0_t");
    let mut want = String::new();
    for i in 0..400 {
        let l = alloc::format!("[    0.{i:06}] INFO  hypervisor line {i}\n");
        w.plat.ring.lock().unwrap().write(l.as_bytes());
        want.push_str(&l);
    }
    assert!(want.len() > 3 * 4096);
    let mut got = Vec::new();
    let (mut index, mut first) = (0u32, true);
    loop {
        let (b, next) = w.readconsole(&d0, 4096, index, !first, true);
        if b.is_empty() {
            break;
        }
        if first {
            // A denial provoked after the first chunk was read and cleared.
            let l = "[    1.000000] WARN  audit(1.000:9): avc:  denied  { pause } after the first chunk\n";
            w.plat.ring.lock().unwrap().write(l.as_bytes());
            want.push_str(l);
        }
        got.extend_from_slice(&b);
        index = next;
        first = false;
    }
    assert_eq!(String::from_utf8(got).unwrap(), want);
    // Everything returned is cleared; what comes later is kept.
    let (b, _) = w.readconsole(&d0, 1 << 16, 0, false, false);
    assert!(b.is_empty(), "{}", String::from_utf8_lossy(&b));
    w.plat.ring.lock().unwrap().write(b"later\n");
    let (b, _) = w.readconsole(&d0, 1 << 16, 0, false, false);
    assert_eq!(b, b"later\n");
}

/// One readconsole with clear and a small buffer clears only what it returned.
#[test]
fn readconsole_clear_discards_only_what_it_returned() {
    let w = world(true);
    let d0 = w.domain(0, "system_u:system_r:dom0_t");
    w.plat.ring.lock().unwrap().write(b"0123456789\n");
    let (b, _) = w.readconsole(&d0, 4, 0, false, true);
    assert_eq!(b, b"0123");
    let (b, _) = w.readconsole(&d0, 64, 0, false, false);
    assert_eq!(b, b"456789\n");
}

/// A domU's lines carry `(dN) ` in the ring, so a forged audit record cannot
/// pass for the hypervisor's; dom0's output goes to the serial console only,
/// unless console_to_ring.
#[test]
fn guest_console_lines_are_prefixed_and_dom0_output_stays_out_of_the_ring() {
    let w = world(true);
    let d0 = w.domain(0, "system_u:system_r:dom0_t");
    let d1 = w.domain(1, DOMU);
    let forged = b"[    1.000000] WARN  audit(1.000:1): avc:  denied  { setenforce } for source=d1 scontext=user_1:vm_r:domU_t tcontext=system_u:system_r:security_t tclass=security permissive=0\n";
    assert_eq!(w.console_write(&d1, forged), 0);
    let ring = w.ring_text();
    let line = ring
        .lines()
        .find(|l| l.contains("avc:"))
        .expect("the guest line");
    assert!(line.starts_with("(d1) ["), "{line}");
    // dom0: serial only.
    assert_eq!(w.console_write(&d0, b"dom0: | [ 0.1] WARN  echoed\n"), 0);
    assert!(!w.ring_text().contains("echoed"));
    assert!(
        String::from_utf8_lossy(&w.plat.serial.lock().unwrap())
            .contains("dom0: | [ 0.1] WARN  echoed\n")
    );
    // With console_to_ring, dom0's lines go into the ring as (d0) lines.
    w.plat
        .to_ring
        .store(true, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(w.console_write(&d0, b"to the ring\n"), 0);
    assert!(
        w.ring_text()
            .lines()
            .any(|l| l.starts_with("(d0) [") && l.ends_with("] to the ring"))
    );
}

/// A flooding domU is rate limited per domain, cannot evict the hypervisor's
/// audit records (written before or after the flood), and does not limit
/// another domain.
#[test]
fn a_console_flood_is_rate_limited_and_does_not_evict_audit_records() {
    let w = world(true);
    let _d0 = w.domain(0, "system_u:system_r:dom0_t");
    let d1 = w.domain(1, DOMU);
    let d2 = w.domain(2, DOMU);
    let before = "[    0.500000] WARN  audit(0.500:1): avc:  denied  { pause } before the flood\n";
    w.plat.ring.lock().unwrap().write(before.as_bytes());
    *w.plat.rate.lock().unwrap() = (50, 1000);
    let flood = [b'x'; 64 * 1024 - 1];
    for _ in 0..8 {
        // 64 KiB per call: 256 lines of 256 bytes.
        assert_eq!(w.console_write(&d1, &flood), 0);
    }
    let ring = w.ring_text();
    let d1_lines = ring.lines().filter(|l| l.starts_with("(d1) ")).count();
    assert!(d1_lines <= 50, "the burst of 50 lines, no more: {d1_lines}");
    assert!(
        ring.contains(before.trim_end()),
        "the earlier record is still there"
    );
    // Another domain still writes.
    assert_eq!(w.console_write(&d2, b"d2 is fine\n"), 0);
    assert!(
        w.ring_text()
            .lines()
            .any(|l| l.starts_with("(d2) [") && l.ends_with("d2 is fine"))
    );
    // Without any limit the flood fills only the guest region.
    *w.plat.rate.lock().unwrap() = (0, 1);
    for _ in 0..8 {
        assert_eq!(w.console_write(&d1, &flood), 0);
    }
    let after = "[    2.000000] WARN  audit(2.000:2): avc:  denied  { pause } after the flood\n";
    w.plat.ring.lock().unwrap().write(after.as_bytes());
    for _ in 0..8 {
        assert_eq!(w.console_write(&d1, &flood), 0);
    }
    let ring = w.ring_text();
    assert!(ring.contains(before.trim_end()), "{}", &ring[..200]);
    assert!(ring.contains(after.trim_end()));
    // The dropped lines were counted and reported when the limit let one pass.
    let mut rl = crate::guestcons::RateLimit::default();
    assert_eq!(rl.admit(0, (1, 1000)), Some(0));
    assert_eq!(rl.admit(0, (1, 1000)), None);
    assert_eq!(rl.admit(1000, (1, 1000)), Some(1));
}

mod evtchn;
mod gnttab;
mod liveness;
mod multicall;
mod overflow;
mod platform;
mod races;
mod smap;
mod toolabi;
mod xenabi;
mod xlcreate;
