//! The vendor-neutral vCPU interface. The VMRUN loop (AMD SVM, in the image's
//! `arch::svm` module) implements [`Vcpu`]; domain, scheduling and hypercall
//! code sees only this trait, [`VmExit`] and [`Entry`], so a VMX backend can
//! be added behind the same interface.
//!
//! ## Entering a guest
//! Before entering, the backend publishes in its CPU's [`GuestSlot`] which
//! domain it is about to run and the domain's physmap epoch it read
//! ([`GuestSlot::enter`]), with interrupts held off (SVM: GIF clear) so that
//! a kick arriving after that point forces an exit as soon as the guest runs.
//! If the epoch differs from the one the vCPU last ran with, the backend
//! flushes guest translations on entry. After the exit it clears the slot
//! ([`GuestSlot::leave`]) before doing anything else. [`shootdown`] relies on
//! this to make sure no CPU still uses a translation the physmap dropped.

use crate::Result;
use crate::guestmem::PagingState;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use warden_abi::DomId;
use warden_abi::vcpu::HvmContext;
use warden_abi::xen::hvm_save::HwCpu;

/// Why a guest stopped running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmExit {
    /// The guest executed a hypercall instruction (VMMCALL).
    Hypercall,
    /// The guest executed HLT.
    Halt,
    /// An interrupt arrived for the host.
    ExternalInterrupt,
    /// The guest shut down (triple fault).
    Shutdown,
    /// A nested page fault: the guest touched guest-physical memory it does not have.
    NestedPageFault { gpa: u64, error_code: u64 },
    /// Port I/O (no guest is given I/O ports; `crate::emul::ports`).
    Io { port: u16, size: u8, write: bool },
    /// RDMSR (`write` None) or WRMSR of an MSR the backend does not handle
    /// itself (the vLAPIC's, `crate::emul::vlapic::owns_msr`, else
    /// `crate::emul::msr`); completed with [`Vcpu::finish_msr`] or
    /// [`Vcpu::inject_gp`].
    Msr { index: u32, write: Option<u64> },
    /// Anything else the backend does not handle itself, by vendor exit code.
    Unexpected { code: u64, info1: u64, info2: u64 },
    /// The guest was not entered: its domain's stop flag was set.
    Cancelled,
}

/// How an MSR access handed up as [`VmExit::Msr`] ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsrResult {
    /// A read: this value into EDX:EAX.
    Read(u64),
    /// A write that took effect.
    Written,
    /// #GP(0).
    Fault,
}

/// The registers instruction emulation needs (MMIO), and the code segment's
/// view of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EmulRegs {
    /// RAX..R15 in x86 encoding order.
    pub gpr: [u64; 16],
    pub rip: u64,
    pub rflags: u64,
    /// CS's base (real and 32-bit code; 0 in 64-bit mode).
    pub cs_base: u64,
    /// Code size: 16, 32 or 64.
    pub bitness: u32,
    pub paging: PagingState,
}

/// The hypercall registers (Xen's x86-64 convention).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HypercallArgs {
    /// RAX: the hypercall number.
    pub nr: u64,
    /// RDI, RSI, RDX, R10, R8.
    pub a: [u64; 5],
}

/// Which domain a CPU is running guest code of, and the physmap epoch it entered with.
#[derive(Debug, Default)]
pub struct GuestSlot {
    /// Domain id + 1, or 0 when not in a guest.
    dom: AtomicU32,
    epoch: AtomicU64,
}

impl GuestSlot {
    pub const fn new() -> GuestSlot {
        GuestSlot {
            dom: AtomicU32::new(0),
            epoch: AtomicU64::new(0),
        }
    }

    /// Publish "about to enter `domid`" and return the epoch to enter with.
    /// Call with interrupts held off, right before entering.
    pub fn enter(&self, domid: DomId, epoch: &AtomicU64) -> u64 {
        let e = epoch.load(Ordering::SeqCst);
        self.epoch.store(e, Ordering::SeqCst);
        self.dom.store(domid as u32 + 1, Ordering::SeqCst);
        // Re-read: a physmap change between the first read and the publication
        // is seen either here or by the shootdown's scan of this slot.
        let e2 = epoch.load(Ordering::SeqCst);
        if e2 != e {
            self.epoch.store(e2, Ordering::SeqCst);
        }
        e2
    }

    /// Publish "no longer in a guest". Call right after the exit.
    pub fn leave(&self) {
        self.dom.store(0, Ordering::SeqCst);
    }

    /// The domain this CPU is in, if any.
    pub fn domain(&self) -> Option<DomId> {
        match self.dom.load(Ordering::SeqCst) {
            0 => None,
            d => Some((d - 1) as DomId),
        }
    }

    fn stale_for(&self, domid: DomId, epoch: u64) -> bool {
        self.dom.load(Ordering::SeqCst) == domid as u32 + 1
            && self.epoch.load(Ordering::SeqCst) < epoch
    }
}

/// After changing `domid`'s physmap: advance its epoch and wait until no CPU
/// runs that domain with an older epoch (`kick(cpu)` forces a CPU out of its guest).
pub fn shootdown(slots: &[GuestSlot], domid: DomId, epoch: &AtomicU64, kick: &dyn Fn(usize)) {
    let new = epoch.fetch_add(1, Ordering::SeqCst) + 1;
    for (cpu, s) in slots.iter().enumerate() {
        if s.stale_for(domid, new) {
            kick(cpu);
            let mut spins = 0u64;
            while s.stale_for(domid, new) {
                core::hint::spin_loop();
                spins += 1;
                if spins.is_multiple_of(1 << 20) {
                    // The CPU may have been busy with interrupts held off; ask again.
                    kick(cpu);
                }
            }
        }
    }
}

/// What the backend is asked to do on this entry.
pub struct Entry<'a> {
    /// This CPU's slot.
    pub slot: &'a GuestSlot,
    pub domid: DomId,
    /// The domain's physmap epoch.
    pub epoch: &'a AtomicU64,
    /// The domain's stop flag (paused, shut down, dying): checked after the
    /// slot is published; if set, the backend does not enter and returns
    /// [`VmExit::Cancelled`].
    pub stop: &'a core::sync::atomic::AtomicBool,
    /// Offer this vector to the guest as a virtual interrupt, taken when its
    /// IF allows (None: offer nothing). After the exit,
    /// [`Vcpu::irq_offered`] tells whether it is still waiting.
    pub inject: Option<u8>,
}

/// A virtual CPU that can be entered.
pub trait Vcpu: Send {
    /// Enter the guest until it exits for a reason the hypervisor must handle.
    /// Exits the backend can handle alone (CPUID, MSRs, ...) do not return.
    fn run(&mut self, entry: &Entry<'_>) -> Result<VmExit>;
    /// The hypercall registers.
    fn hypercall_args(&self) -> HypercallArgs;
    /// Complete a hypercall: RAX = `ret`, RIP past the instruction.
    fn finish_hypercall(&mut self, ret: u64);
    /// Do not complete the hypercall: leave RIP on the hypercall instruction
    /// and load `args` into the hypercall registers, so that the guest
    /// executes the hypercall again, with these arguments, the next time it
    /// runs (Xen's `hypercall_create_continuation`). Between the two, the
    /// CPU can run interrupts, timers and other vCPUs.
    fn continue_hypercall(&mut self, args: &HypercallArgs);
    /// Step RIP past a HLT.
    fn skip_halt(&mut self);
    /// RFLAGS.IF is clear (a HLT then cannot end but by NMI). The default
    /// reads [`Vcpu::emul_regs`]; a backend without them says no.
    fn interrupts_off(&self) -> bool {
        self.emul_regs().is_some_and(|r| r.rflags & (1 << 9) == 0)
    }
    /// The value an `OUT` that exited ([`VmExit::Io`] with `write`) writes (AL/AX/EAX).
    fn io_out_value(&self) -> u32 {
        0
    }
    /// Complete the `IN`/`OUT` that exited: a read's destination gets
    /// `read` (its low bytes, as the access size), RIP moves past it.
    fn finish_io(&mut self, _read: Option<u32>) {}
    /// Complete the RDMSR (EDX:EAX = `read`) or WRMSR that exited; RIP moves past it.
    fn finish_msr(&mut self, _read: Option<u64>) {}
    /// Raise #GP(0) in the guest instead of completing the instruction.
    fn inject_gp(&mut self) {}
    /// The paging registers (to translate hypercall pointers).
    fn paging(&self) -> PagingState;
    /// Current privilege level.
    fn cpl(&self) -> u8;
    /// RIP.
    fn rip(&self) -> u64;
    /// The state in [`HvmContext`] form.
    fn context(&self) -> HvmContext;
    /// Load a state already checked by [`validate_context`].
    fn set_context(&mut self, c: &HvmContext);
    /// Registers, for crash reports.
    fn dump(&self, out: &mut dyn core::fmt::Write) -> core::fmt::Result;

    /// The state as Xen's HVM CPU save record (gethvmcontext). The default
    /// is for backends that hold no more than an [`HvmContext`] (the test
    /// fakes): the record of that context.
    fn cpu_record(&self) -> HwCpu {
        record_of_context(&self.context())
    }
    /// Load a CPU record checked by [`crate::xen::hvmctx::check_cpu`]
    /// (sethvmcontext). The default keeps what an [`HvmContext`] holds.
    fn set_cpu_record(&mut self, c: &HwCpu) {
        self.set_context(&context_of_record(c));
    }
    /// IA32_PAT (the MTRR record's `msr_pat_cr`).
    fn pat(&self) -> u64 {
        crate::xen::hvmctx::PAT_RESET
    }
    /// Set IA32_PAT (a value checked by [`crate::xen::hvmctx::check_mtrr`]).
    fn set_pat(&mut self, _pat: u64) {}

    /// After an exit: the interrupt offered by the last [`Entry::inject`]
    /// has not been taken yet (or its delivery was cut short by the exit
    /// and must be offered again).
    fn irq_offered(&self) -> bool {
        false
    }
    /// After an exit: the exit interrupted the delivery of an event (a
    /// nested page fault then came from the delivery, not the instruction).
    fn delivering_event(&self) -> bool {
        false
    }
    /// The registers for instruction emulation (None: not supported).
    fn emul_regs(&self) -> Option<EmulRegs> {
        None
    }
    /// Write back the general-purpose registers, RIP and RFLAGS of `r`.
    fn set_emul_regs(&mut self, _r: &EmulRegs) {}
    /// Load the state a Startup IPI with `vector` gives (real mode at
    /// CS = vector << 8, IP = 0; Xen's `vlapic_init_sipi_one`).
    fn start_real_mode(&mut self, _vector: u8) {}
}

const CR0_PE: u64 = 1;
const CR0_MP: u64 = 1 << 1;
const CR0_ET: u64 = 1 << 4;
const CR0_NE: u64 = 1 << 5;
const CR0_WP: u64 = 1 << 16;
const CR0_PG: u64 = 1 << 31;
/// CR0 bits a guest may set (PE MP EM TS ET NE WP AM NW CD PG).
const CR0_ALLOWED: u64 = 0xE005_003F;
const CR4_PAE: u64 = 1 << 5;
/// CR4 bits a guest may start with (VME .. OSXMMEXCPT).
const CR4_ALLOWED: u64 = 0x7FF;
const EFER_SCE: u64 = 1;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;
const EFER_NXE: u64 = 1 << 11;
/// RFLAGS bits that must be zero: the reserved ones, and VM (no virtual-8086 mode).
const RFLAGS_RESERVED: u64 = !0x003F_7FD7 | (1 << 17);

/// The initial state of a domain's boot vCPU: long mode at `rip` with `cr3`
/// and `rdi` (the start information address).
pub fn boot_context(rip: u64, cr3: u64, rdi: u64) -> HvmContext {
    HvmContext {
        mode: warden_abi::vcpu::HVM_MODE_64B,
        rip,
        rdi,
        cr0: CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG,
        cr3,
        cr4: CR4_PAE | (1 << 9) | (1 << 10),
        efer: EFER_LME | EFER_LMA | EFER_NXE,
        rflags: 2,
        ..Default::default()
    }
}

/// The PVH entry state (Xen 4.17's, docs/misc/pvh.pandoc): 32-bit protected
/// mode at `entry`, paging off, CR0 = PE|ET, CR4 = EFER = 0, flat 4 GiB
/// code (attributes 0xC9B) and data (0xC93) segments, RFLAGS = 2,
/// `EBX` = `start_info` (the `hvm_start_info` address).
pub fn pvh_boot_context(entry: u64, start_info: u64) -> HvmContext {
    HvmContext {
        mode: warden_abi::vcpu::HVM_MODE_32B,
        rip: entry,
        rbx: start_info,
        cr0: CR0_PE | CR0_ET,
        rflags: 2,
        ..Default::default()
    }
}

/// The CPU save record of an [`HvmContext`]: its registers, flat ring-0
/// segments (32-bit code for the PVH entry state, else 64-bit code).
pub fn record_of_context(c: &HvmContext) -> HwCpu {
    let code = if c.mode == warden_abi::vcpu::HVM_MODE_32B {
        0xC9B
    } else {
        0xA9B
    };
    HwCpu {
        rax: c.rax,
        rbx: c.rbx,
        rcx: c.rcx,
        rdx: c.rdx,
        rbp: c.rbp,
        rsi: c.rsi,
        rdi: c.rdi,
        rsp: c.rsp,
        rip: c.rip,
        rflags: c.rflags,
        cr0: c.cr0,
        cr3: c.cr3,
        cr4: c.cr4,
        msr_efer: c.efer,
        dr6: 0xFFFF_0FF0,
        dr7: 0x400,
        cs_sel: 0x08,
        ds_sel: 0x10,
        es_sel: 0x10,
        fs_sel: 0x10,
        gs_sel: 0x10,
        ss_sel: 0x10,
        tr_sel: 0x18,
        cs_limit: u32::MAX,
        ds_limit: u32::MAX,
        es_limit: u32::MAX,
        fs_limit: u32::MAX,
        gs_limit: u32::MAX,
        ss_limit: u32::MAX,
        tr_limit: 0x67,
        ldtr_limit: 0xFFFF,
        cs_arbytes: code,
        ds_arbytes: 0xC93,
        es_arbytes: 0xC93,
        fs_arbytes: 0xC93,
        gs_arbytes: 0xC93,
        ss_arbytes: 0xC93,
        tr_arbytes: 0x8B,
        ldtr_arbytes: 0x82,
        ..Default::default()
    }
}

/// The [`HvmContext`] part of a CPU record (the default of
/// [`Vcpu::set_cpu_record`]).
pub fn context_of_record(c: &HwCpu) -> HvmContext {
    HvmContext {
        mode: if c.msr_efer & EFER_LMA != 0 {
            warden_abi::vcpu::HVM_MODE_64B
        } else {
            warden_abi::vcpu::HVM_MODE_32B
        },
        pad: 0,
        rax: c.rax,
        rcx: c.rcx,
        rdx: c.rdx,
        rbx: c.rbx,
        rsp: c.rsp,
        rbp: c.rbp,
        rsi: c.rsi,
        rdi: c.rdi,
        rip: c.rip,
        rflags: c.rflags,
        cr0: c.cr0,
        cr3: c.cr3,
        cr4: c.cr4,
        efer: c.msr_efer,
    }
}

/// Check a guest-supplied vCPU state (`VCPUOP_initialise`)
/// and normalise it: 64-bit mode only, paging and PAE on, no reserved bits.
/// Err is the errno (EINVAL).
pub fn validate_context(c: &HvmContext) -> core::result::Result<HvmContext, i32> {
    use warden_abi::errno::EINVAL;
    if c.mode != warden_abi::vcpu::HVM_MODE_64B {
        return Err(EINVAL);
    }
    if c.cr0 & !CR0_ALLOWED != 0 || c.cr0 & (CR0_PE | CR0_PG) != CR0_PE | CR0_PG {
        return Err(EINVAL);
    }
    if c.cr4 & !CR4_ALLOWED != 0 || c.cr4 & CR4_PAE == 0 {
        return Err(EINVAL);
    }
    if c.efer & !(EFER_SCE | EFER_LME | EFER_LMA | EFER_NXE) != 0 || c.efer & EFER_LME == 0 {
        return Err(EINVAL);
    }
    if c.cr3 >> 52 != 0 || c.rflags & RFLAGS_RESERVED != 0 {
        return Err(EINVAL);
    }
    if !crate::guestmem::canonical(c.rip) || !crate::guestmem::canonical(c.rsp) {
        return Err(EINVAL);
    }
    let mut n = *c;
    n.cr0 |= CR0_ET | CR0_NE;
    n.efer |= EFER_LMA;
    n.rflags |= 2;
    n.pad = 0;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use core::sync::atomic::AtomicUsize;

    #[test]
    fn boot_context_is_valid() {
        let c = boot_context(0x100000, 0x1000, 0x7000);
        assert_eq!(validate_context(&c), Ok(c));
    }

    #[test]
    fn invalid_contexts_are_refused() {
        let good = boot_context(0x100000, 0x1000, 0x7000);
        for bad in [
            HvmContext { mode: 0, ..good },
            HvmContext {
                cr0: good.cr0 & !CR0_PG,
                ..good
            },
            HvmContext {
                cr0: good.cr0 | (1 << 40),
                ..good
            },
            HvmContext { cr4: 0, ..good },
            HvmContext {
                cr4: good.cr4 | (1 << 13),
                ..good
            },
            HvmContext { efer: 0, ..good },
            HvmContext {
                efer: good.efer | (1 << 12),
                ..good
            },
            HvmContext {
                cr3: 1 << 60,
                ..good
            },
            HvmContext {
                rflags: 1 << 40,
                ..good
            },
            HvmContext {
                rip: 0x0000_8000_0000_0000,
                ..good
            },
        ] {
            assert!(validate_context(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn shootdown_kicks_only_stale_cpus_and_waits() {
        let slots: Vec<GuestSlot> = (0..4).map(|_| GuestSlot::new()).collect();
        let epoch = AtomicU64::new(5);
        slots[1].enter(7, &epoch);
        slots[2].enter(8, &epoch);
        let kicked = AtomicUsize::new(0);
        let kick = |cpu: usize| {
            kicked.fetch_add(1, Ordering::SeqCst);
            // The kicked CPU exits its guest.
            slots[cpu].leave();
        };
        shootdown(&slots, 7, &epoch, &kick);
        assert_eq!(kicked.load(Ordering::SeqCst), 1);
        assert_eq!(epoch.load(Ordering::SeqCst), 6);
        assert_eq!(slots[1].domain(), None);
        assert_eq!(slots[2].domain(), Some(8));
        // A CPU that entered with the current epoch is kicked by the next shootdown only.
        slots[3].enter(7, &epoch);
        assert!(!slots[3].stale_for(7, 6));
        assert!(slots[3].stale_for(7, 7));
    }
}
