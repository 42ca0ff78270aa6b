//! Running guests: the image's [`Platform`] (time, frames, vCPUs, IPIs,
//! console), building dom0 and the boot-built domains from the boot modules,
//! and starting every CPU's run loop (`hvcore::hv::Hv::cpu_loop`).

use crate::arch::{self, apic, percpu};
use crate::{console, mem, time};
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};
use hvcore::bootinfo::BootModule;
use hvcore::bootplan::{Plan, XSM_MAGIC};
use hvcore::builder::BootDomain;
use hvcore::cmdline::{FlaskMode, Options};
use hvcore::conring::ReadResult;
use hvcore::gate::Gate;
use hvcore::hv::Hv;
use hvcore::p2m::HostMem;
use hvcore::platform::Platform;
use hvcore::testexit::TestExit;
use hvcore::vcpu::{GuestSlot, Vcpu};
use hvcore::{Result, err};
use log::{error, info, warn};
use warden_abi::DomId;
use warden_abi::sched::{SHUTDOWN_CRASH, SHUTDOWN_POWEROFF, SHUTDOWN_REBOOT, reason_name};

static SLOTS: [GuestSlot; percpu::MAX_CPUS] = [const { GuestSlot::new() }; percpu::MAX_CPUS];
static FRAME_MEM: mem::FrameMem = mem::FrameMem;

/// The machine as hvcore sees it.
pub struct Machine {
    nr_cpus: u32,
    cmdline: String,
    build_id: Vec<u8>,
}

impl Platform for Machine {
    fn now_ns(&self) -> u64 {
        time::now_ns()
    }
    fn rdtsc(&self) -> u64 {
        arch::rdtsc()
    }
    fn tsc_hz(&self) -> u64 {
        time::tsc_hz()
    }
    fn tsc_to_ns(&self, tsc: u64) -> u64 {
        time::tsc_to_ns(tsc)
    }
    fn tsc_stable(&self) -> bool {
        time::tsc_invariant()
    }
    fn cpuid_signature(&self) -> u32 {
        arch::cpuid(1, 0).0
    }
    fn host_cpuid(&self, leaf: u32, subleaf: u32) -> (u32, u32, u32, u32) {
        arch::cpuid(leaf, subleaf)
    }
    fn wallclock_boot_ns(&self) -> u64 {
        time::wallclock_boot_ns()
    }
    fn mem(&self) -> &dyn HostMem {
        &FRAME_MEM
    }
    fn new_vcpu(&self, domid: DomId, vcpu: u32, npt_root: u64) -> Result<Box<dyn Vcpu>> {
        Ok(Box::new(arch::svm::SvmVcpu::new(domid, vcpu, npt_root)?))
    }
    fn nr_cpus(&self) -> u32 {
        self.nr_cpus
    }
    fn this_cpu(&self) -> u32 {
        percpu::cpu_id()
    }
    fn guest_slots(&self) -> &[GuestSlot] {
        &SLOTS[..self.nr_cpus as usize]
    }
    fn kick(&self, cpu: u32) {
        if cpu == percpu::cpu_id() {
            return;
        }
        if let Some(p) = percpu::cpu(cpu)
            && let Err(e) = apic::send_ipi(p.apic_id, apic::KICK_VECTOR)
        {
            warn!("kick of CPU{cpu} failed: {e}");
        }
    }
    fn poll_interrupts(&self) {
        arch::poll_interrupts();
    }
    fn idle(&self) {
        arch::idle_once();
    }
    fn console_read(&self, from: u64, buf: &mut [u8]) -> ReadResult {
        console::read(from, buf)
    }
    fn console_tail(&self) -> u64 {
        console::tail()
    }
    fn console_head(&self) -> u64 {
        console::head()
    }
    fn console_clear_to(&self, upto: u64) {
        console::clear_to(upto)
    }
    fn console_guest_line(&self, domid: warden_abi::DomId, line: &[u8], suppressed: u32) {
        console::guest_line(domid, line, suppressed)
    }
    fn console_hwdom_raw(&self, bytes: &[u8]) {
        console::hwdom_raw(bytes)
    }
    fn console_to_ring(&self) -> bool {
        console::to_ring()
    }
    fn guest_console_ratelimit(&self) -> (u32, u64) {
        console::guest_rate()
    }
    fn conswitch(&self) -> hvcore::cmdline::ConSwitch {
        console::conswitch()
    }
    fn serial_input(&self, buf: &mut [u8]) -> usize {
        console::input(buf)
    }
    fn pcpu(&self, cpu: u32) -> Option<hvcore::platform::Pcpu> {
        let p = percpu::cpu(cpu)?;
        Some(hvcore::platform::Pcpu {
            apic_id: p.apic_id,
            // Xen's acpi_get_processor_id: the id the MADT gives the APIC.
            acpi_id: crate::platform::acpi_id_of(p.apic_id).unwrap_or(u32::MAX),
            online: p.state() == percpu::CpuState::Online,
        })
    }
    fn max_present_cpu(&self) -> u32 {
        percpu::all().map(|p| p.cpu_id).max().unwrap_or(0)
    }
    fn cmdline(&self) -> &str {
        &self.cmdline
    }
    fn build_id(&self) -> &[u8] {
        &self.build_id
    }
    fn control_domain_stopped(&self, reason: u32) {
        let (msg, code) = match reason {
            SHUTDOWN_POWEROFF => ("halted", TestExit::Dom0Poweroff),
            SHUTDOWN_REBOOT => ("asked for a reboot", TestExit::Dom0Reboot),
            SHUTDOWN_CRASH => ("crashed", TestExit::Dom0Crash),
            _ => ("shut down", TestExit::Dom0Crash),
        };
        if reason == SHUTDOWN_CRASH {
            error!("Hardware Dom0 {msg}: halting the machine");
        } else {
            info!(
                "Hardware Dom0 {msg} (reason {}): {}",
                reason_name(reason),
                if reason == SHUTDOWN_REBOOT {
                    "rebooting"
                } else {
                    "halting the machine"
                }
            );
        }
        arch::svm::log_stats();
        crate::fatal::stop_machine(code, reason == SHUTDOWN_REBOOT);
    }
}

static HV: spin::Once<Hv> = spin::Once::new();
static MACHINE: spin::Once<Machine> = spin::Once::new();
static GO: AtomicBool = AtomicBool::new(false);

/// The hypervisor, once started.
pub fn hv() -> Option<&'static Hv> {
    GO.load(Ordering::Acquire).then(|| HV.get()).flatten()
}

/// An application processor after bring-up: wait until guests start, then run them.
pub fn ap_loop(cpu: u32) -> ! {
    loop {
        if let Some(h) = hv() {
            h.cpu_loop(cpu);
        }
        arch::idle_once();
    }
}

/// A boot module's bytes. Valid until [`start`] gives the modules' memory
/// back (after the last domain is built): no slice outlives that.
fn module_bytes(m: &BootModule) -> &'static [u8] {
    // Boot modules are reserved from the frame allocator until `start`
    // releases them, after the last use of any slice from here (the policy
    // is parsed into the security server, the domains get copies).
    // SAFETY: the range is reserved (above), identity-mapped, never written.
    unsafe { core::slice::from_raw_parts(m.range.start as *const u8, m.range.len() as usize) }
}

/// Classify the boot modules.
pub fn plan(modules: &[BootModule]) -> Result<Plan> {
    let v: Vec<(Option<u32>, &str)> = modules
        .iter()
        .map(|m| {
            let b = module_bytes(m);
            let magic = (b.len() >= 4).then(|| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
            (magic, m.cmdline.as_str())
        })
        .collect();
    hvcore::bootplan::plan(&v).map_err(|e| err!(InvalidBootInfo, "boot modules: {e}"))
}

/// The policy module's address and bytes.
pub fn policy_module(plan: &Plan, modules: &[BootModule]) -> Option<(u64, &'static [u8])> {
    plan.policy
        .map(|i| (modules[i].range.start, module_bytes(&modules[i])))
        .filter(|(_, b)| b.len() >= 4 && u32::from_le_bytes([b[0], b[1], b[2], b[3]]) == XSM_MAGIC)
}

/// Default dom0 memory when `dom0_mem=` is not given.
const DOM0_MEM_DEFAULT: u64 = 64 << 20;

/// Build dom0 and the boot domains, then run guests on every CPU. Returns
/// only if there is nothing to run (no dom0 kernel).
pub fn start(
    plan: &Plan,
    modules: &[BootModule],
    keep: &[hvcore::memmap::PhysRange],
    opts: &Options,
    gate: Gate,
    nr_cpus: u32,
    cmdline: &str,
) -> Result<()> {
    let Some(dom0_idx) = plan.dom0 else {
        info!("No dom0 kernel among the boot modules: there is nothing to run");
        return Ok(());
    };
    let machine = MACHINE.call_once(|| Machine {
        nr_cpus,
        cmdline: String::from(cmdline),
        build_id: Vec::from(crate::image::build_id()),
    });
    let hv = HV.call_once(|| Hv::new(machine, gate, opts.flask));
    crate::livepatch::register(hv, nr_cpus);
    let flask = gate.flask();

    // dom0.
    let free = FRAME_MEM.free_frames() * 4096;
    let mem_bytes = opts.dom0_mem.bytes(free, DOM0_MEM_DEFAULT.min(free / 2));
    let vcpus = opts
        .dom0_max_vcpus
        .count(nr_cpus, warden_abi::vcpu::MAX_VCPUS);
    let dom0_modules: Vec<(&[u8], &str)> = plan
        .dom0_modules
        .iter()
        .map(|&i| (module_bytes(&modules[i]), modules[i].cmdline.as_str()))
        .collect();
    let m = &modules[dom0_idx];
    let d0 = hv
        .build_boot_domain(&BootDomain {
            name: String::from("dom0"),
            want: Some(0),
            privileged: true,
            sid: if flask.is_some() {
                xsm::initial_sid::DOM0.raw()
            } else {
                0
            },
            kernel: module_bytes(m),
            cmdline: &m.cmdline,
            modules: dom0_modules,
            mem_bytes,
            vcpus,
            weight: hvcore::sched::DEFAULT_WEIGHT,
        })
        .map_err(|e| {
            err!(
                InvalidInput,
                "Could not set up DOM0 guest OS from module {dom0_idx}: {e}"
            )
        })?;
    info!(
        "Domain 0: {} MiB, {} vCPUs, {} boot modules handed over, command line '{}'",
        mem_bytes >> 20,
        vcpus,
        plan.dom0_modules.len(),
        m.cmdline
    );

    // Boot-built domains.
    let mut built = Vec::new();
    for spec in &plan.domains {
        let sid = match (&spec.label, flask) {
            (Some(l), Some(f)) => f
                .context_to_sid(l.as_bytes())
                .map_err(|e| err!(InvalidInput, "domain '{}': label {l}: {e}", spec.name))?
                .raw(),
            (Some(l), None) => {
                warn!("domain '{}': label {l} ignored (flask=disabled)", spec.name);
                0
            }
            (None, Some(_)) => xsm::initial_sid::DOMU.raw(),
            (None, None) => 0,
        };
        let m = &modules[spec.module];
        let initrd: Vec<(&[u8], &str)> = spec
            .initrd
            .map(|i| (module_bytes(&modules[i]), ""))
            .into_iter()
            .collect();
        // A domain that cannot be built is logged and skipped: it never
        // stops the hypervisor, dom0 or the other domains.
        let d = match hv.build_boot_domain(&BootDomain {
            name: spec.name.clone(),
            want: spec.domid,
            privileged: false,
            sid,
            kernel: module_bytes(m),
            cmdline: &spec.cmdline,
            modules: initrd,
            mem_bytes: spec.mem,
            vcpus: spec.vcpus,
            weight: spec.weight,
        }) {
            Ok(d) => d,
            Err(e) => {
                error!(
                    "domain '{}' (module {}) not built, skipped: {e}",
                    spec.name, spec.module
                );
                continue;
            }
        };
        info!(
            "Domain {} '{}': {} MiB, {} vCPUs, weight {}, label {}, command line '{}'",
            d.id,
            spec.name,
            spec.mem >> 20,
            spec.vcpus,
            spec.weight,
            hv.label_of(d.id),
            spec.cmdline
        );
        built.push(d);
    }
    // Xen's discard_initial_images: every domain has its copy of its
    // kernel and modules (and the policy is loaded), so the modules'
    // memory goes back to the free pool; pages shared with what is kept
    // (`keep`: the image, the loader's structures) stay reserved.
    let ranges: Vec<_> = modules.iter().map(|m| m.range).collect();
    let freed = mem::release_boot_memory(&ranges, keep);
    info!("Boot modules discarded: {} KiB freed", freed * 4096 / 1024);
    let (free, total) = mem::frame_stats();
    info!(
        "Starting {} domain{}; {} MiB free of {} MiB",
        built.len() + 1,
        if built.is_empty() { "" } else { "s" },
        (free * 4096) >> 20,
        (total * 4096) >> 20
    );
    if opts.flask != FlaskMode::Disabled {
        info!("dom0 label {}", hv.label_of(0));
    }
    hv.unpause(&d0)
        .map_err(|e| err!(InvalidInput, "unpausing dom0: {e}"))?;
    for d in &built {
        hv.unpause(d)
            .map_err(|e| err!(InvalidInput, "unpausing d{}: {e}", d.id))?;
    }
    let sw = opts.conswitch;
    info!(
        "*** Serial input to {} (type 'CTRL-{}' three times to switch input)",
        if sw.stay_with_xen { "Xen" } else { "DOM0" },
        sw.letter as char
    );
    GO.store(true, Ordering::Release);
    for c in 1..nr_cpus {
        machine.kick(c);
    }
    hv.cpu_loop(0)
}
