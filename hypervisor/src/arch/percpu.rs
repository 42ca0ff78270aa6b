//! Per-CPU data. Each CPU's GS base points at its [`PerCpu`]; the boot CPU's
//! lives in the image, the others are allocated when they are brought up.
//!
//! Holds the CPU's identity, its GDT and TSS, the ranges of its stacks (main
//! and IST), the SVM host save area and host-state page, timer ticks, and
//! what the VMRUN loop needs per CPU (ASID space, last domain entered, host
//! FPU area, entry and flush counters).

use super::gdt::{Gdt, Tss};
use core::cell::UnsafeCell;
use core::ops::Range;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, Ordering};

/// Most CPUs supported.
pub const MAX_CPUS: usize = 256;
/// Size of each interrupt stack.
pub const IST_STACK_SIZE: usize = 16 * 1024;
/// Size of an application processor's main stack.
pub const AP_STACK_SIZE: usize = 64 * 1024;
/// Number of IST stacks used (see `idt`).
pub const IST_COUNT: usize = 5;

/// Where a CPU is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum CpuState {
    Offline = 0,
    Starting = 1,
    Online = 2,
    Failed = 3,
}

/// One CPU's data. `#[repr(C)]` with the self pointer first, so `gs:[0]` finds it.
#[repr(C)]
pub struct PerCpu {
    self_ptr: AtomicPtr<PerCpu>,
    /// Logical CPU number (0 = boot CPU).
    pub cpu_id: u32,
    /// Local APIC ID.
    pub apic_id: u32,
    pub gdt: UnsafeCell<Gdt>,
    pub tss: UnsafeCell<Tss>,
    /// Main stack.
    pub stack: Range<u64>,
    /// IST stacks 1..=IST_COUNT.
    pub ist: [Range<u64>; IST_COUNT],
    /// Physical address of the SVM host save area (VM_HSAVE_PA), 0 until enabled.
    pub hsave_pa: AtomicU64,
    pub state: AtomicU32,
    /// Why bring-up failed, if it did (a static message).
    pub failure: AtomicPtr<u8>,
    pub failure_len: AtomicU64,
    /// Local APIC timer interrupts taken.
    pub timer_ticks: AtomicU64,
    /// Kick IPIs taken.
    pub kicks: AtomicU64,
    /// Set while this CPU reports a fatal error.
    pub in_fatal: AtomicBool,
    /// Physical address of the page VMSAVE/VMLOAD keep the host's FS, GS, TR,
    /// LDTR and syscall MSRs in around guest entries (0 until SVM is enabled).
    pub host_state_pa: AtomicU64,
    /// This CPU's guest ASIDs (`hvcore::asid`); only this CPU touches them,
    /// with GIF clear, right before VMRUN.
    pub asids: UnsafeCell<hvcore::asid::AsidSpace>,
    /// The domain last entered on this CPU (`SvmVcpu`'s domain key; 0 =
    /// none): entering another one takes an IBPB where the CPU has it.
    pub last_guest: AtomicU64,
    /// Guest entries, full TLB flushes (ASID generations), single-ASID
    /// flushes, ASIDs assigned and IBPBs on this CPU (written by this CPU
    /// only, read by `svm::log_stats`).
    pub entries: AtomicU64,
    pub tlb_flushes: AtomicU64,
    pub asid_flushes: AtomicU64,
    pub asids_assigned: AtomicU64,
    pub ibpbs: AtomicU64,
    /// The host's FPU/SSE state while a guest runs (only this CPU touches it).
    pub host_fx: UnsafeCell<super::svm::FxArea>,
}

// SAFETY: the UnsafeCell fields (GDT, TSS, ASID space, host FPU area) are
// touched only by the owning CPU (GDT/TSS during its bring-up, the ASID space
// and the FPU area around guest entries, the ASID space also once by
// `svm::enable` on that CPU); everything else is atomic or locked.
unsafe impl Sync for PerCpu {}

impl PerCpu {
    pub fn new(cpu_id: u32, apic_id: u32, stack: Range<u64>, ist: [Range<u64>; IST_COUNT]) -> Self {
        PerCpu {
            self_ptr: AtomicPtr::new(core::ptr::null_mut()),
            cpu_id,
            apic_id,
            gdt: UnsafeCell::new(Gdt::new()),
            tss: UnsafeCell::new(Tss::new()),
            stack,
            ist,
            hsave_pa: AtomicU64::new(0),
            state: AtomicU32::new(CpuState::Offline as u32),
            failure: AtomicPtr::new(core::ptr::null_mut()),
            failure_len: AtomicU64::new(0),
            timer_ticks: AtomicU64::new(0),
            kicks: AtomicU64::new(0),
            in_fatal: AtomicBool::new(false),
            host_state_pa: AtomicU64::new(0),
            asids: UnsafeCell::new(hvcore::asid::AsidSpace::new(0)),
            last_guest: AtomicU64::new(0),
            entries: AtomicU64::new(0),
            tlb_flushes: AtomicU64::new(0),
            asid_flushes: AtomicU64::new(0),
            asids_assigned: AtomicU64::new(0),
            ibpbs: AtomicU64::new(0),
            host_fx: UnsafeCell::new(super::svm::FxArea::reset()),
        }
    }

    pub fn state(&self) -> CpuState {
        match self.state.load(Ordering::Acquire) {
            1 => CpuState::Starting,
            2 => CpuState::Online,
            3 => CpuState::Failed,
            _ => CpuState::Offline,
        }
    }

    pub fn set_state(&self, s: CpuState) {
        self.state.store(s as u32, Ordering::Release);
    }

    /// Record why bring-up failed.
    pub fn fail(&self, why: &'static str) {
        self.failure_len.store(why.len() as u64, Ordering::Relaxed);
        self.failure
            .store(why.as_ptr() as *mut u8, Ordering::Release);
        self.set_state(CpuState::Failed);
    }

    /// The failure message, if any.
    pub fn failure(&self) -> Option<&'static str> {
        let p = self.failure.load(Ordering::Acquire);
        if p.is_null() {
            return None;
        }
        let len = self.failure_len.load(Ordering::Relaxed) as usize;
        // SAFETY: `fail` stored the pointer and length of a &'static str.
        let bytes = unsafe { core::slice::from_raw_parts(p, len) };
        core::str::from_utf8(bytes).ok()
    }

    /// The stack (main or IST) containing `addr`, if any.
    pub fn stack_containing(&self, addr: u64) -> Option<Range<u64>> {
        core::iter::once(&self.stack)
            .chain(self.ist.iter())
            .find(|r| r.start <= addr && addr <= r.end)
            .cloned()
    }
}

static CPUS: [AtomicPtr<PerCpu>; MAX_CPUS] =
    [const { AtomicPtr::new(core::ptr::null_mut()) }; MAX_CPUS];
static CPU_COUNT: AtomicU32 = AtomicU32::new(0);

/// Register a CPU's data (called by the boot CPU before starting it).
pub fn register(p: &'static PerCpu) {
    let id = p.cpu_id as usize;
    if id < MAX_CPUS {
        CPUS[id].store(p as *const PerCpu as *mut PerCpu, Ordering::Release);
        CPU_COUNT.fetch_max(p.cpu_id + 1, Ordering::AcqRel);
    }
}

/// CPU `id`'s data, if registered.
pub fn cpu(id: u32) -> Option<&'static PerCpu> {
    let p = CPUS.get(id as usize)?.load(Ordering::Acquire);
    // SAFETY: only `register` stores pointers, and they are 'static.
    unsafe { p.as_ref() }
}

/// All registered CPUs.
pub fn all() -> impl Iterator<Item = &'static PerCpu> {
    (0..CPU_COUNT.load(Ordering::Acquire)).filter_map(cpu)
}

/// Make `p` this CPU's per-CPU data (sets GS base).
pub fn install(p: &'static PerCpu) {
    p.self_ptr
        .store(p as *const PerCpu as *mut PerCpu, Ordering::Release);
    // SAFETY: IA32_GS_BASE exists on every x86_64 CPU; GS is used only for per-CPU data.
    unsafe { super::wrmsr(super::MSR_GS_BASE, p as *const PerCpu as u64) }
}

/// This CPU's data, if installed.
pub fn try_current() -> Option<&'static PerCpu> {
    // SAFETY: IA32_GS_BASE exists on every x86_64 CPU.
    let base = unsafe { super::rdmsr(super::MSR_GS_BASE) } as *const PerCpu;
    // SAFETY: GS base is 0 or set by `install` to a 'static PerCpu.
    unsafe { base.as_ref() }
}

/// This CPU's data. Every CPU installs its data before running anything
/// else; before that (early boot on the boot CPU) this is CPU 0's.
pub fn current() -> &'static PerCpu {
    try_current()
        .or_else(|| cpu(0))
        .unwrap_or_else(|| crate::bsp_percpu())
}

/// This CPU's number (0 before per-CPU data is installed).
pub fn cpu_id() -> u32 {
    try_current().map_or(0, |p| p.cpu_id)
}
