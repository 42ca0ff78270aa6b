//! Warden, the hypervisor image: boot on the boot CPU, bring up the platform,
//! FLASK and every CPU, report readiness, build dom0 and the boot-built
//! domains, then run guests on every CPU. Logic that needs no hardware lives
//! in `hvcore`; this crate is the hardware side and the glue.
#![no_std]
#![no_main]

extern crate alloc;

mod arch;
mod console;
mod fatal;
mod image;
mod livepatch;
mod mem;
mod platform;
mod run;
mod security;
mod serial;
#[cfg(feature = "test-hooks")]
mod test_hooks;
mod time;

// The C memory functions the prebuilt core/alloc call.
use warden_bare_rt as _;

use alloc::vec::Vec;
use arch::percpu::{self, CpuState, IST_COUNT, IST_STACK_SIZE, PerCpu};
use core::sync::atomic::{AtomicBool, Ordering};
use hvcore::bootinfo::{BootInfo, PhysMemory};
use hvcore::cmdline::{self, Options};
use hvcore::frames::{FrameAllocator, Zone};
use hvcore::memmap::{self, PhysRange};
use hvcore::testexit::TestExit;
use hvcore::{PAGE_SIZE, Result, err};
use log::{error, info, warn};

/// Physical memory as seen through the identity map.
struct IdentityMemory;

impl PhysMemory for IdentityMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<()> {
        let end = addr
            .checked_add(buf.len() as u64)
            .ok_or_else(|| err!(InvalidBootInfo, "read at {addr:#x} wraps"))?;
        // The boot page tables map the first 4 GiB; page 0 holds nothing we read.
        if addr < 0x1000 || end > 1 << 32 {
            return Err(err!(
                InvalidBootInfo,
                "boot structure at {addr:#x}+{} outside low 4 GiB",
                buf.len()
            ));
        }
        // SAFETY: the range is inside the identity-mapped first 4 GiB and
        // holds boot-loader structures that nothing writes while we read.
        unsafe { core::ptr::copy_nonoverlapping(addr as *const u8, buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }
}

// The boot CPU's IST stacks live in the image.
#[repr(C, align(16))]
struct IstStacks([[u8; IST_STACK_SIZE]; IST_COUNT]);
static mut BSP_IST: IstStacks = IstStacks([[0; IST_STACK_SIZE]; IST_COUNT]);
static BSP: spin::Once<PerCpu> = spin::Once::new();

static TEST_EXIT: AtomicBool = AtomicBool::new(false);

/// Write `code` to QEMU's debug-exit port if this is a test build and the
/// command line asked for it (`test_exit`). Otherwise does nothing: port 0xf4
/// is not ours to write on real hardware.
pub fn test_exit(code: TestExit) {
    if cfg!(feature = "test-hooks") && TEST_EXIT.load(Ordering::Acquire) {
        console::flush();
        // SAFETY: test builds run under QEMU with isa-debug-exit at this port.
        unsafe { arch::outl(hvcore::testexit::DEBUG_EXIT_PORT, code.value()) };
    }
}

/// Whether QEMU's `isa-debug-exit` device is at its port: only under QEMU
/// (CPUID's hypervisor leaf says TCG or KVM), and only if a 32-bit read of the
/// port gives the device's 0 (an unclaimed port reads all ones). Real
/// hardware never passes the first test, so its port 0xf4 is never touched.
pub fn debug_exit_present() -> bool {
    let (_, _, ecx, _) = arch::cpuid(1, 0);
    if ecx & (1 << 31) == 0 {
        return false;
    }
    let (_, b, c, d) = arch::cpuid(0x4000_0000, 0);
    let mut sig = [0u8; 12];
    sig[..4].copy_from_slice(&b.to_le_bytes());
    sig[4..8].copy_from_slice(&c.to_le_bytes());
    sig[8..].copy_from_slice(&d.to_le_bytes());
    if &sig != b"TCGTCGTCGTCG" && &sig != b"KVMKVMKVM\0\0\0" {
        return false;
    }
    // SAFETY: under QEMU, port 0xf4 is either isa-debug-exit (reads 0) or
    // unclaimed (reads all ones); reading it changes nothing.
    unsafe { arch::inl(hvcore::testexit::DEBUG_EXIT_PORT) == 0 }
}

/// Warden refused to boot: end QEMU with the agreed code when its debug-exit
/// device is there (every image; see `hvcore::testexit`). Returns otherwise.
pub fn boot_refused_exit() {
    if debug_exit_present() {
        console::flush();
        // SAFETY: the device was found at this port (QEMU's isa-debug-exit).
        unsafe {
            arch::outl(
                hvcore::testexit::DEBUG_EXIT_PORT,
                TestExit::BootRefused.value(),
            )
        };
    }
}

pub(crate) fn bsp_percpu() -> &'static PerCpu {
    BSP.call_once(|| {
        // BSP_IST is used only as the boot CPU's IST stacks, set up once here.
        let base = (&raw mut BSP_IST) as u64;
        let ist = core::array::from_fn(|i| {
            let s = base + (i * IST_STACK_SIZE) as u64;
            s..s + IST_STACK_SIZE as u64
        });
        PerCpu::new(0, 0, arch::boot::boot_stack(), ist)
    })
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    fatal::panic(info)
}

/// Entered from the 32-bit boot code on the boot stack.
#[unsafe(no_mangle)]
pub extern "C" fn kmain(magic: u32, info: u32) -> ! {
    time::mark_boot();
    let bsp = bsp_percpu();
    percpu::register(bsp);
    percpu::install(bsp);
    // SAFETY: first and only GDT/TSS load on the boot CPU.
    unsafe { arch::gdt::load(bsp) };
    arch::idt::load();
    console::init_early();
    match boot(magic, info as u64) {
        Ok(()) => idle(),
        Err(e) => fatal::refuse_boot(&e),
    }
}

fn boot(magic: u32, info: u64) -> Result<()> {
    let tsc_hz = time::calibrate()?;
    let bi: BootInfo = match magic {
        hvcore::multiboot1::BOOT_MAGIC => hvcore::multiboot1::parse(&IdentityMemory, info)?,
        hvcore::multiboot2::BOOT_MAGIC => hvcore::multiboot2::parse(&IdentityMemory, info)?,
        m => {
            return Err(err!(
                InvalidBootInfo,
                "unknown boot protocol (magic {m:#x}); boot with Multiboot 1 or 2"
            ));
        }
    };
    let parsed = cmdline::parse(&bi.cmdline);
    let opts = parsed.options.clone();
    console::configure(&opts);

    info!(
        "Warden {} (build-id {}) booting via {}{}",
        env!("CARGO_PKG_VERSION"),
        image::Hex(image::build_id()),
        bi.protocol,
        bi.loader
            .as_deref()
            .map(|l| alloc::format!(" from {l}"))
            .unwrap_or_default()
    );
    info!(
        "Command line: {}",
        if bi.cmdline.is_empty() {
            "(empty)"
        } else {
            &bi.cmdline
        }
    );
    for d in &parsed.diagnostics {
        warn!("cmdline: {d}");
    }
    for w in &bi.warnings {
        warn!("boot info: {w}");
    }
    apply_test_options(&opts);
    info!(
        "Console: {}, ring {}, loglvl={}; flask={}",
        match (opts.console.com1, opts.console.com2) {
            (true, true) => alloc::format!("com1 {} + com2 {}", opts.com1, opts.com2),
            (true, false) => alloc::format!("com1 {}", opts.com1),
            (false, true) => alloc::format!("com2 {}", opts.com2),
            (false, false) => "none (ring only)".into(),
        },
        cmdline::format_size(opts.conring_size as u64),
        opts.loglvl.name(),
        opts.flask.name()
    );
    info!(
        "TSC: {}.{:03} MHz (calibrated against the PIT)",
        tsc_hz / 1_000_000,
        (tsc_hz / 1000) % 1000
    );
    match image::symbols() {
        Ok(t) => info!("Symbol table: {} symbols", t.len()),
        Err(e) => warn!("Symbol table: {e}; backtraces will show addresses only"),
    }

    // Memory.
    let map = memmap::normalize(&bi.memory_map);
    info!("Memory map:");
    for r in &map {
        info!("  {} {}", r.range, r.kind);
    }
    let layout = image::layout();
    let mut reserved: Vec<PhysRange> = Vec::new();
    reserved.push(layout.image);
    reserved.extend(bi.modules.iter().map(|m| m.range));
    reserved.extend(bi.structures.iter().copied());
    let fa = FrameAllocator::new(&map, &reserved);
    info!(
        "Frames: {} MiB usable, {} MiB free (image {:#x}-{:#x}, {} modules and boot structures reserved)",
        (fa.total_frames() * PAGE_SIZE) >> 20,
        (fa.free_frames() * PAGE_SIZE) >> 20,
        layout.image.start,
        layout.image.end,
        bi.modules.len()
    );
    mem::set_frame_allocator(fa);
    grow_heap(opts.conring_size as u64)?;
    if let Err(e) = console::resize_ring(opts.conring_size) {
        warn!(
            "conring_size={}: {e}",
            cmdline::format_size(opts.conring_size as u64)
        );
    }

    // Modules: listed, then classified (policy, dom0 kernel, boot domains, dom0's modules).
    info!("Boot modules: {}", bi.modules.len());
    for (i, m) in bi.modules.iter().enumerate() {
        info!(
            "  module {i}: {:#x}-{:#x} ({} bytes){} cmdline '{}'",
            m.range.start,
            m.range.end,
            m.range.len(),
            m.name
                .as_deref()
                .map(|n| alloc::format!(" {n}"))
                .unwrap_or_default(),
            m.cmdline
        );
    }
    let plan = run::plan(&bi.modules)?;
    if let Some(i) = plan.policy {
        info!("  module {i}: FLASK policy");
    }
    if let Some(i) = plan.dom0 {
        info!("  module {i}: dom0 kernel");
    }
    for d in &plan.domains {
        info!("  module {}: boot domain '{}'", d.module, d.name);
    }
    for i in &plan.dom0_modules {
        info!("  module {i}: handed to dom0");
    }
    for i in &plan.other_policies {
        warn!(
            "  module {i} also carries the FLASK policy magic: it is NOT the boot policy (module {}, the first with the magic, as Xen) and is treated as an ordinary module; to boot with it, make it the first policy module",
            plan.policy.map_or(0, |p| p)
        );
    }
    let gate = security::init(
        opts.flask,
        opts.flask_invalid.as_deref(),
        opts.audit_ratelimit,
        run::policy_module(&plan, &bi.modules),
    )?;
    mem::set_max_mfn(
        map.iter()
            .filter(|r| r.kind.is_ram())
            .map(|r| r.range.end)
            .max()
            .unwrap_or(0)
            .saturating_sub(1)
            >> 12,
    );

    // ACPI (while the boot page tables still map the BIOS areas).
    let plat = platform::discover(bi.rsdp)?;
    info!(
        "ACPI: RSDP {}, OEM '{}', local APIC at {:#x}, {} CPUs, {} I/O APICs",
        if plat.rsdp_from_loader {
            "from the boot loader"
        } else {
            "found by BIOS scan"
        },
        plat.oem,
        plat.lapic_address,
        plat.cpus.len(),
        plat.ioapics.len()
    );
    for io in &plat.ioapics {
        info!(
            "  I/O APIC {}: {:#x}, GSI base {}",
            io.id, io.address, io.gsi_base
        );
    }
    for (irq, gsi) in &plat.overrides {
        info!("  ISA IRQ {irq} -> GSI {gsi}");
    }

    // Paging with W^X.
    let pool = livepatch::reserve_pool()?;
    let s = arch::paging::build_and_activate(&map, &layout, &[pool])?;
    check_wx(&layout)?;
    info!(
        "Paging: identity map up to {:#x} ({} 4 KiB pages); W^X: text {:#x}-{:#x} RX, rodata {:#x}-{:#x} R, data {:#x}-{:#x} RW+NX",
        s.top,
        s.small_pages,
        layout.text.start,
        layout.text.end,
        layout.rodata.start,
        layout.rodata.end,
        layout.data.start,
        layout.data.end
    );

    livepatch::init()?;

    // The boot CPU.
    let bsp = bsp_percpu();
    let apic_id = arch::apic::init(true)?;
    let timer_hz = arch::apic::calibrate_timer()?;
    info!(
        "Local APIC: boot CPU APIC ID {apic_id}; timer {}.{:03} MHz, ticking at {} Hz",
        timer_hz / 1_000_000,
        (timer_hz / 1000) % 1000,
        arch::apic::TIMER_HZ
    );
    let hsave = mem::alloc_frames(1, Zone::Any)?;
    let svm = arch::svm::enable(bsp, hsave)?;
    info!(
        "SVM: revision {}, {} ASIDs, NPT yes, nRIP {}, VMCB clean bits {}, decode assists {}",
        svm.revision,
        svm.asids,
        if svm.nrip { "yes" } else { "no" },
        if svm.vmcb_clean { "yes" } else { "no" },
        if svm.decode_assists { "yes" } else { "no" }
    );
    arch::apic::start_timer()?;
    bsp.set_state(CpuState::Online);
    info!("CPU0: APIC {apic_id} online, SVM enabled (host save area {hsave:#x})");

    // Application processors.
    let limit = opts.maxcpus.unwrap_or(u32::MAX) as usize;
    let aps: Vec<_> = plat
        .cpus
        .iter()
        .filter(|c| c.usable && c.apic_id != apic_id)
        .collect();
    let wanted = aps.len().min(limit.saturating_sub(1));
    if wanted < aps.len() {
        info!(
            "maxcpus={limit}: starting {wanted} of {} application processors",
            aps.len()
        );
    }
    if wanted > 0 {
        let tramp = arch::smp::Trampoline::install()?;
        for (i, c) in aps.iter().take(wanted).enumerate() {
            let p = arch::smp::prepare_cpu(i as u32 + 1, c.apic_id)?;
            arch::smp::start_ap(&tramp, p)?;
        }
        tramp.remove()?;
    }

    // Every CPU's timer must tick (interrupts work everywhere).
    let online: Vec<&PerCpu> = percpu::all()
        .filter(|p| p.state() == CpuState::Online)
        .collect();
    for p in &online {
        let mut waited = 0u64;
        while p.timer_ticks.load(Ordering::Relaxed) == 0 {
            if waited > 5_000_000 {
                return Err(err!(Timeout, "CPU{}'s APIC timer never fired", p.cpu_id));
            }
            arch::idle_once();
            waited += 1_000_000 / arch::apic::TIMER_HZ;
        }
    }
    let svm_on = online
        .iter()
        .filter(|p| p.hsave_pa.load(Ordering::Acquire) != 0)
        .count();
    let (free, total) = mem::frame_stats();
    let (ring, used) = console::ring_stats();
    info!("Console ring: {} bytes, {} written so far", ring, used);
    info!(
        "Warden ready: {}/{} CPUs online, SVM enabled on {}; {} MiB free of {} MiB; boot took {} ms",
        online.len(),
        plat.cpus.iter().filter(|c| c.usable).count(),
        svm_on,
        (free * PAGE_SIZE) >> 20,
        (total * PAGE_SIZE) >> 20,
        time::now_ns() / 1_000_000
    );
    let has_dom0 = plan.dom0.is_some();
    if !has_dom0 {
        info!("No dom0 kernel among the boot modules: there is nothing to run");
    }
    after_ready(&opts, has_dom0);
    if has_dom0 {
        // Still in use once the domains are built: the image and the
        // loader's structures (not the modules: the domains have copies).
        let mut keep = alloc::vec![layout.image];
        keep.extend(bi.structures.iter().copied());
        run::start(
            &plan,
            &bi.modules,
            &keep,
            &opts,
            gate,
            online.len() as u32,
            &bi.cmdline,
        )?;
    }
    Ok(())
}

/// Check the live page tables give each image section the intended rights.
fn check_wx(l: &image::Layout) -> Result<()> {
    let expect = [
        (".text", l.text.start, (true, false, true)),
        (".rodata", l.rodata.start, (true, false, false)),
        (".data", l.data.start, (true, true, false)),
        (".bss end", l.data.end - PAGE_SIZE, (true, true, false)),
    ];
    for (name, addr, want) in expect {
        let got = arch::paging::flags(addr)?;
        if got != want {
            return Err(err!(
                Hardware,
                "W^X check: {name} at {addr:#x} is mapped (present, write, exec) = {got:?}, expected {want:?}"
            ));
        }
    }
    Ok(())
}

/// Per-CPU hardware setup common to APs (the boot CPU does the same steps inline).
pub fn cpu_setup(p: &'static PerCpu) -> core::result::Result<(), &'static str> {
    let r = (|| -> Result<()> {
        let apic_id = arch::apic::init(false)?;
        if apic_id != p.apic_id {
            return Err(err!(
                Hardware,
                "APIC ID {apic_id} differs from the MADT's {}",
                p.apic_id
            ));
        }
        let svm = arch::svm::enable(p, p.hsave_pa.load(Ordering::Acquire))?;
        arch::apic::start_timer()?;
        info!(
            "CPU{}: APIC {} online, SVM enabled (revision {}, NPT yes, host save area {:#x})",
            p.cpu_id,
            apic_id,
            svm.revision,
            p.hsave_pa.load(Ordering::Acquire)
        );
        Ok(())
    })();
    r.map_err(|e| {
        error!("CPU{}: bring-up failed: {e}", p.cpu_id);
        "bring-up failed (see the log)"
    })
}

/// Give the heap a share of free memory (the boot heap is small), plus
/// room for the console ring (`extra` bytes) when memory allows.
fn grow_heap(extra: u64) -> Result<()> {
    let (free, _) = mem::frame_stats();
    let free = free * PAGE_SIZE;
    let bytes = (free / 16).clamp(4 << 20, 32 << 20);
    let bytes = (bytes + extra)
        .min(free / 2)
        .max(4 << 20)
        .next_multiple_of(PAGE_SIZE);
    let pages = bytes / PAGE_SIZE;
    // Below 4 GiB: this runs on the boot page tables, which map only that.
    let base = mem::alloc_frames_uninit(pages, Zone::BELOW_4G)?;
    // SAFETY: the frames were just allocated for the heap, are identity-mapped
    // read-write, and are never freed.
    unsafe { mem::extend_heap(base, pages * PAGE_SIZE)? };
    info!(
        "Heap: {} MiB at {:#x} (plus the 4 MiB boot heap)",
        bytes >> 20,
        base
    );
    Ok(())
}

/// Idle forever, taking interrupts.
pub fn idle() -> ! {
    loop {
        arch::idle_once();
    }
}

#[cfg(feature = "test-hooks")]
fn apply_test_options(o: &Options) {
    if o.test.exit {
        TEST_EXIT.store(true, Ordering::Release);
    }
    if o.test.any() {
        warn!("test options active: {:?}", o.test);
    }
}

#[cfg(not(feature = "test-hooks"))]
fn apply_test_options(o: &Options) {
    if o.test.any() {
        warn!("cmdline: test_* options ignored: this image was built without test hooks");
    }
}

/// Test hooks after the ready line; without a dom0 the test build exits with
/// `Ready` (with one, dom0's shutdown decides the exit code).
#[cfg(feature = "test-hooks")]
fn after_ready(o: &Options, has_dom0: bool) {
    test_hooks::after_ready(o, has_dom0);
    if !has_dom0 {
        test_exit(TestExit::Ready);
    }
}

#[cfg(not(feature = "test-hooks"))]
fn after_ready(_: &Options, _: bool) {}
