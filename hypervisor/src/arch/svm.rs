//! AMD SVM: detection and enabling (EFER.SVME + host save area) on each CPU,
//! and the vCPU backend: [`SvmVcpu`] implements [`hvcore::vcpu::Vcpu`].
//!
//! This module is the one place for vendor virtualization code; a VMX
//! backend would sit beside it behind the same trait.
//!
//! Entering a guest (`SvmVcpu::run`): CLGI; publish the CPU's guest slot and
//! check the domain's stop flag (see `hvcore::vcpu`); take the vCPU's ASID on
//! this CPU and what to flush (`hvcore::asid`: a new ASID when it moved CPU
//! or its physmap epoch moved, a full flush only when the CPU's ASIDs run
//! out); IBPB if another domain ran on this CPU last (where the CPU has
//! IBPB); then `warden_svm_enter`: save the host FPU/SSE state (FXSAVE), load
//! the guest's; VMSAVE the host's FS/GS/TR/LDTR/syscall state into this CPU's
//! host-state page and VMLOAD the guest's; load the guest's SPEC_CTRL if
//! software must swap it; load the guest GPRs; STI (GIF is still clear, so
//! nothing is taken yet), then a NOP so that VMRUN is not in STI's
//! interrupt shadow (QEMU's TCG carries that shadow into the guest, which
//! then cannot take a V_IRQ offered at entry); VMRUN. On #VMEXIT: save the guest GPRs, fill the
//! return-stack buffer and restore the host's SPEC_CTRL (where enabled),
//! then the rest in reverse, interrupts off; then the slot is cleared and
//! STGI. Pending host interrupts are taken later by the run loop
//! (`Platform::poll_interrupts`).
//!
//! Exits handled here without returning: CPUID (filtered by
//! `hvcore::guestcpu`), RDMSR/WRMSR of the few emulated MSRs (SPEC_CTRL and
//! PRED_CMD where the CPU has them; #GP for the
//! rest), INVD (skipped), and the instructions a guest may not use (VMRUN,
//! VMLOAD, VMSAVE, STGI, CLGI, SKINIT, INVLPGA, MONITOR, MWAIT, XSETBV: #UD).
//! Everything else goes up as a [`VmExit`], the vLAPIC's MSRs included
//! (`VmExit::Msr`).
//!
//! Interrupts: the vector the run loop offers (`Entry::inject`) goes into
//! V_IRQ/V_INTR_VECTOR; a cleared V_IRQ after the exit means the guest took
//! it (`Vcpu::irq_offered`). After every #VMEXIT an event whose delivery was
//! cut short (EXITINTINFO) is delivered again (`after_exit_event`).

use super::percpu::{self, PerCpu};
use super::{MSR_EFER, cpuid, rdmsr, wrmsr};
use crate::mem;
use alloc::boxed::Box;
use core::arch::{asm, global_asm};
use core::sync::atomic::Ordering;
use hvcore::asid::TlbFlush;
use hvcore::cpu::{
    EFER_AIBRSE, EFER_SVME, MSR_PRED_CMD, MSR_SPEC_CTRL, MSR_VM_CR, MSR_VM_HSAVE_PA, SpecSupport,
    SvmSupport,
};
use hvcore::frames::Zone;
use hvcore::guestmem::PagingState;
use hvcore::vcpu::{EmulRegs, Entry, HypercallArgs, Vcpu, VmExit};
use hvcore::{PAGE_SIZE, Result, err};
use warden_abi::DomId;
use warden_abi::vcpu::HvmContext;
use warden_abi::xen::hvm_save::{FPU_INITIALISED, HwCpu};

/// Read what this CPU supports.
pub fn detect() -> SvmSupport {
    let max_ext = cpuid(0x8000_0000, 0).0;
    let ext_ecx = if max_ext >= 0x8000_0001 {
        cpuid(0x8000_0001, 0).2
    } else {
        0
    };
    let leaf_a = if max_ext >= 0x8000_000A {
        let (a, b, _, d) = cpuid(0x8000_000A, 0);
        (a, b, d)
    } else {
        (0, 0, 0)
    };
    let vm_cr = if ext_ecx & hvcore::cpu::CPUID_EXT_ECX_SVM != 0 {
        // SAFETY: VM_CR exists on every CPU that advertises SVM.
        unsafe { rdmsr(MSR_VM_CR) }
    } else {
        0
    };
    SvmSupport::decode(ext_ecx, leaf_a, vm_cr)
}

/// What this CPU offers against speculative execution (`SpecSupport`).
pub fn detect_spec() -> SpecSupport {
    let max_ext = cpuid(0x8000_0000, 0).0;
    let leaf = |l: u32| (max_ext >= l).then(|| cpuid(l, 0));
    SpecSupport::decode(
        leaf(0x8000_0008).map_or(0, |r| r.1),
        leaf(0x8000_000A).map_or(0, |r| r.3),
        leaf(0x8000_0021).map_or(0, |r| r.0),
    )
}

static NRIP: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
/// The boot CPU's speculation controls (every CPU must have the same).
static SPEC: spin::Once<SpecSupport> = spin::Once::new();
/// The host's SPEC_CTRL value (read at boot; Warden never changes it).
static HOST_SPEC_CTRL: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

fn spec() -> SpecSupport {
    SPEC.get().copied().unwrap_or_default()
}

/// What every guest entry does, from `SPEC` (set once by the boot CPU), as
/// bits: `SPEC_RSB_FILL` and the `P_*` bits.
static ENTRY_POLICY: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
const P_IBPB: u64 = 1 << 8;
const P_SPEC_CTRL: u64 = 1 << 9;
const P_V_SPEC_CTRL: u64 = 1 << 10;
const P_FLUSH_BY_ASID: u64 = 1 << 11;

/// Check SVM and NPT, set EFER.SVME and point VM_HSAVE_PA at `hsave_pa`
/// (a zeroed 4 KiB frame owned by this CPU); allocate the CPU's host-state
/// page; set up its ASID space and the speculation controls it has
/// (docs/ARCHITECTURE.md, "ASIDs and speculative execution"; the boot CPU
/// logs them).
pub fn enable(p: &PerCpu, hsave_pa: u64) -> Result<SvmSupport> {
    let s = detect();
    s.check()?;
    let sp = detect_spec();
    let boot = *SPEC.call_once(|| {
        let bit = |b: bool, v: u64| if b { v } else { 0 };
        ENTRY_POLICY.store(
            bit(sp.rsb_fill(), SPEC_RSB_FILL)
                | bit(sp.ibpb, P_IBPB)
                | bit(sp.spec_ctrl_bits != 0, P_SPEC_CTRL)
                | bit(sp.v_spec_ctrl, P_V_SPEC_CTRL)
                | bit(sp.flush_by_asid, P_FLUSH_BY_ASID),
            Ordering::Relaxed,
        );
        sp
    });
    if sp != boot {
        return Err(err!(
            Unsupported,
            "CPU{} has other speculation controls than the boot CPU ({sp:?} vs {boot:?})",
            p.cpu_id
        ));
    }
    // SAFETY: SVM is present and enabled (checked above): EFER.SVME can be
    // set, VM_HSAVE_PA exists, the save area is our own page; EFER.AIBRSE and
    // SPEC_CTRL exist where CPUID reports AutoIBRS / one of SPEC_CTRL's bits.
    unsafe {
        let aibrs = if sp.auto_ibrs { EFER_AIBRSE } else { 0 };
        wrmsr(MSR_EFER, rdmsr(MSR_EFER) | EFER_SVME | aibrs);
        wrmsr(MSR_VM_HSAVE_PA, hsave_pa);
        if sp.spec_ctrl_bits != 0 && p.cpu_id == 0 {
            HOST_SPEC_CTRL.store(rdmsr(MSR_SPEC_CTRL), Ordering::Relaxed);
        }
    }
    p.hsave_pa.store(hsave_pa, Ordering::Release);
    let host = mem::alloc_frames(1, Zone::Any)?;
    p.host_state_pa.store(host, Ordering::Release);
    // SAFETY: this is CPU `p` (its own bring-up), which runs no guest yet:
    // nothing else touches its ASID space.
    unsafe { *p.asids.get() = hvcore::asid::AsidSpace::new(s.asids) };
    NRIP.store(s.nrip, Ordering::Relaxed);
    if p.cpu_id == 0 {
        let yn = |b: bool| if b { "yes" } else { "no" };
        log::info!(
            "Speculation: IBPB between domains {}, RSB fill on #VMEXIT {}, guest SPEC_CTRL {}, AutoIBRS {}; ASIDs per CPU {} (flush by ASID {})",
            yn(sp.ibpb),
            yn(sp.rsb_fill()),
            if sp.spec_ctrl_bits == 0 {
                "none (no SPEC_CTRL)"
            } else if sp.v_spec_ctrl {
                "in the VMCB (V_SPEC_CTRL)"
            } else {
                "swapped by software"
            },
            yn(sp.auto_ibrs),
            s.asids.saturating_sub(1),
            yn(sp.flush_by_asid)
        );
    }
    Ok(s)
}

/// One line per CPU: guest entries, TLB flushes, ASIDs, IBPBs (logged when
/// the machine stops).
pub fn log_stats() {
    for c in percpu::all() {
        let n = |a: &core::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        log::info!(
            "CPU{}: {} guest entries, {} full TLB flushes, {} single-ASID flushes, {} ASIDs assigned, {} IBPBs",
            c.cpu_id,
            n(&c.entries),
            n(&c.tlb_flushes),
            n(&c.asid_flushes),
            n(&c.asids_assigned),
            n(&c.ibpbs)
        );
    }
}

// ---------------------------------------------------------------- VMCB layout

const C_INTERCEPT_VEC3: usize = 0x00C;
const C_INTERCEPT_VEC4: usize = 0x010;
const C_IOPM: usize = 0x040;
const C_MSRPM: usize = 0x048;
const C_ASID: usize = 0x058;
const C_TLB_CONTROL: usize = 0x05C;
const C_INT_CTL: usize = 0x060;
const C_INT_STATE: usize = 0x068;
const C_EXITCODE: usize = 0x070;
const C_EXITINFO1: usize = 0x078;
const C_EXITINFO2: usize = 0x080;
const C_EXITINTINFO: usize = 0x088;
const C_NP_ENABLE: usize = 0x090;
const C_EVENTINJ: usize = 0x0A8;
const C_NCR3: usize = 0x0B0;
const C_NRIP: usize = 0x0C8;

const S_ES: usize = 0x400;
const S_CS: usize = 0x410;
const S_SS: usize = 0x420;
const S_DS: usize = 0x430;
const S_FS: usize = 0x440;
const S_GS: usize = 0x450;
const S_GDTR: usize = 0x460;
const S_LDTR: usize = 0x470;
const S_IDTR: usize = 0x480;
const S_TR: usize = 0x490;
const S_CPL: usize = 0x4CB;
const S_EFER: usize = 0x4D0;
const S_CR4: usize = 0x548;
const S_CR3: usize = 0x550;
const S_CR0: usize = 0x558;
const S_DR7: usize = 0x560;
const S_DR6: usize = 0x568;
const S_RFLAGS: usize = 0x570;
const S_RIP: usize = 0x578;
const S_RSP: usize = 0x5D8;
const S_RAX: usize = 0x5F8;
const S_CR2: usize = 0x640;
const S_GPAT: usize = 0x668;
const S_SPEC_CTRL: usize = 0x6E0;

// Intercept vector 3.
const I_INTR: u32 = 1 << 0;
const I_NMI: u32 = 1 << 1;
const I_CPUID: u32 = 1 << 18;
const I_INVD: u32 = 1 << 22;
const I_HLT: u32 = 1 << 24;
const I_INVLPGA: u32 = 1 << 26;
const I_IOIO: u32 = 1 << 27;
const I_MSR: u32 = 1 << 28;
const I_SHUTDOWN: u32 = 1 << 31;
// Intercept vector 4.
const I_VMRUN: u32 = 1 << 0;
const I_VMMCALL: u32 = 1 << 1;
const I_VMLOAD: u32 = 1 << 2;
const I_VMSAVE: u32 = 1 << 3;
const I_STGI: u32 = 1 << 4;
const I_CLGI: u32 = 1 << 5;
const I_SKINIT: u32 = 1 << 6;
const I_MONITOR: u32 = 1 << 10;
const I_MWAIT: u32 = 1 << 11;
const I_MWAIT_COND: u32 = 1 << 12;
const I_XSETBV: u32 = 1 << 13;

const V_IRQ: u64 = 1 << 8;
const V_PRIO_SHIFT: u64 = 16;
const V_IGN_TPR: u64 = 1 << 20;
const V_INTR_MASKING: u64 = 1 << 24;
const V_VECTOR_SHIFT: u64 = 32;

const EXIT_INTR: u64 = 0x60;
const EXIT_NMI: u64 = 0x61;
const EXIT_CPUID: u64 = 0x72;
const EXIT_INVD: u64 = 0x76;
const EXIT_HLT: u64 = 0x78;
const EXIT_INVLPGA: u64 = 0x7A;
const EXIT_IOIO: u64 = 0x7B;
const EXIT_MSR: u64 = 0x7C;
const EXIT_SHUTDOWN: u64 = 0x7F;
const EXIT_VMRUN: u64 = 0x80;
const EXIT_VMMCALL: u64 = 0x81;
const EXIT_SKINIT: u64 = 0x86;
const EXIT_MONITOR: u64 = 0x8A;
const EXIT_MWAIT: u64 = 0x8B;
const EXIT_MWAIT_COND: u64 = 0x8C;
const EXIT_XSETBV: u64 = 0x8D;
const EXIT_NPF: u64 = 0x400;
const EXIT_INVALID: u64 = u64::MAX;

const GPAT_DEFAULT: u64 = 0x0007_0406_0007_0406;

// EXITINTINFO / EVENTINJ.
const EVENT_VALID: u64 = 1 << 31;
const EVENT_TYPE_INTR: u64 = 0;
const EVENT_TYPE_NMI: u64 = 2;
const EVENT_TYPE_EXCEPTION: u64 = 3;

// Save-area fields VMLOAD/VMSAVE move (reset by a Startup IPI).
const S_STAR: usize = 0x600;
const S_LSTAR: usize = 0x608;
const S_CSTAR: usize = 0x610;
const S_SFMASK: usize = 0x618;
const S_KERNEL_GS_BASE: usize = 0x620;
const S_SYSENTER_CS: usize = 0x628;
const S_SYSENTER_ESP: usize = 0x630;
const S_SYSENTER_EIP: usize = 0x638;

// ---------------------------------------------------------------- shared maps

struct Maps {
    iopm: u64,
    msrpm: u64,
}

static MAPS: spin::Once<Maps> = spin::Once::new();

/// The I/O permission map (every port intercepted) and the MSR permission
/// map (every MSR intercepted except `hvcore::guestcpu::PASSTHROUGH_MSRS`),
/// shared by all vCPUs.
fn maps() -> Result<&'static Maps> {
    if let Some(m) = MAPS.get() {
        return Ok(m);
    }
    let iopm = mem::alloc_frames(3, Zone::Any)?;
    let msrpm = mem::alloc_frames(2, Zone::Any)?;
    // SAFETY: both ranges were just allocated to us and are identity-mapped.
    unsafe {
        core::ptr::write_bytes(iopm as *mut u8, 0xff, 3 * PAGE_SIZE as usize);
        core::ptr::write_bytes(msrpm as *mut u8, 0xff, 2 * PAGE_SIZE as usize);
    }
    for &msr in hvcore::guestcpu::PASSTHROUGH_MSRS {
        if let Some(bit) = hvcore::guestcpu::msrpm_bit(msr) {
            let byte = msrpm + (bit / 8) as u64;
            // SAFETY: `byte` is inside the MSR map allocated above.
            unsafe {
                let b = byte as *mut u8;
                b.write(b.read() & !(3 << (bit % 8)));
            }
        }
    }
    Ok(MAPS.call_once(|| Maps { iopm, msrpm }))
}

// ---------------------------------------------------------------- the entry stub

/// Guest general-purpose registers not kept in the VMCB.
#[derive(Debug, Default, Clone, Copy)]
#[repr(C)]
pub struct Gprs {
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rbp: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    /// Not registers: what the entry stub does about speculation (offsets
    /// 112.., read by the stub through the same pointer).
    spec: SpecEntry,
}

/// An FXSAVE area.
#[derive(Debug)]
#[repr(C, align(16))]
pub struct FxArea(pub [u8; 512]);

impl FxArea {
    /// The reset state: FCW 0x37F, MXCSR 0x1F80 (exceptions masked).
    pub fn reset() -> FxArea {
        let mut a = [0u8; 512];
        a[0..2].copy_from_slice(&0x037Fu16.to_le_bytes());
        a[24..28].copy_from_slice(&0x1F80u32.to_le_bytes());
        FxArea(a)
    }
}

/// What the entry stub does about speculation on each entry (kept after the
/// GPRs, at offset 112: `SvmVcpu::update_spec` keeps it current).
#[derive(Debug, Default, Clone, Copy)]
#[repr(C)]
struct SpecEntry {
    /// `SPEC_RSB_FILL` | `SPEC_SWAP_CTRL`.
    flags: u64,
    /// SPEC_CTRL while the guest runs, and the host's after the exit (used
    /// with `SPEC_SWAP_CTRL`).
    guest: u64,
    host: u64,
}

// The entry stub's offsets.
const _: () = assert!(core::mem::offset_of!(Gprs, spec) == 112);
const _: () = assert!(core::mem::offset_of!(SpecEntry, guest) == 8);
const _: () = assert!(core::mem::offset_of!(SpecEntry, host) == 16);

/// Fill the return-stack buffer after #VMEXIT, before the first RET.
const SPEC_RSB_FILL: u64 = 1;
/// Load the guest's SPEC_CTRL before VMRUN and the host's after #VMEXIT
/// (CPUs with SPEC_CTRL but no V_SPEC_CTRL, when the two values differ).
const SPEC_SWAP_CTRL: u64 = 2;

global_asm!(
    r#"
.section .text.svm, "ax"
.global warden_svm_enter
warden_svm_enter:
    push rbp
    push rbx
    push r12
    push r13
    push r14
    push r15
    fxsave64 [r8]
    fxrstor64 [rcx]
    push rdi
    push rsi
    push rdx
    push r8
    push rcx
    mov rax, rdx
    vmsave rax
    mov rax, rsi
    vmload rax
    test byte ptr [rdi + 112], 2
    jz .Lwarden_svm_no_guest_spec
    mov ecx, 0x48
    mov eax, dword ptr [rdi + 120]
    mov edx, dword ptr [rdi + 124]
    wrmsr
    mov rax, rsi
.Lwarden_svm_no_guest_spec:
    mov rbx, [rdi + 0]
    mov rcx, [rdi + 8]
    mov rdx, [rdi + 16]
    mov rsi, [rdi + 24]
    mov rbp, [rdi + 40]
    mov r8,  [rdi + 48]
    mov r9,  [rdi + 56]
    mov r10, [rdi + 64]
    mov r11, [rdi + 72]
    mov r12, [rdi + 80]
    mov r13, [rdi + 88]
    mov r14, [rdi + 96]
    mov r15, [rdi + 104]
    mov rdi, [rdi + 32]
    sti
    nop
    vmrun rax
.global warden_svm_after_vmrun
warden_svm_after_vmrun:
    cli
    push rdi
    mov rdi, [rsp + 40]
    mov [rdi + 0], rbx
    mov [rdi + 8], rcx
    mov [rdi + 16], rdx
    mov [rdi + 24], rsi
    mov [rdi + 40], rbp
    mov [rdi + 48], r8
    mov [rdi + 56], r9
    mov [rdi + 64], r10
    mov [rdi + 72], r11
    mov [rdi + 80], r12
    mov [rdi + 88], r13
    mov [rdi + 96], r14
    mov [rdi + 104], r15
    pop rax
    mov [rdi + 32], rax
    test byte ptr [rdi + 112], 1
    jz .Lwarden_svm_no_rsb_fill
    mov ecx, 16
.Lwarden_svm_rsb_loop:
    call .Lwarden_svm_rsb_a
    int3
.Lwarden_svm_rsb_a:
    call .Lwarden_svm_rsb_b
    int3
.Lwarden_svm_rsb_b:
    dec ecx
    jnz .Lwarden_svm_rsb_loop
    add rsp, 256
    lfence
.Lwarden_svm_no_rsb_fill:
    test byte ptr [rdi + 112], 2
    jz .Lwarden_svm_no_host_spec
    mov ecx, 0x48
    mov eax, dword ptr [rdi + 128]
    mov edx, dword ptr [rdi + 132]
    wrmsr
.Lwarden_svm_no_host_spec:
    mov rax, [rsp + 24]
    vmsave rax
    mov rax, [rsp + 16]
    vmload rax
    pop rcx
    pop r8
    fxsave64 [rcx]
    fxrstor64 [r8]
    add rsp, 24
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbx
    pop rbp
    ret
.section .text
"#
);

unsafe extern "C" {
    /// Enter the guest (see the module documentation). Called with GIF clear
    /// and interrupts disabled; returns after #VMEXIT with interrupts disabled
    /// and GIF still clear.
    fn warden_svm_enter(
        regs: *mut Gprs,
        vmcb: u64,
        host_state: u64,
        guest_fx: *mut FxArea,
        host_fx: *mut FxArea,
    );
    /// The instruction after VMRUN in `warden_svm_enter` (the host's RIP at #VMEXIT).
    static warden_svm_after_vmrun: u8;
}

fn clgi() {
    // SAFETY: EFER.SVME is set on every CPU that runs guests; CLGI only holds
    // off interrupts and NMIs until STGI.
    unsafe { asm!("clgi", options(nomem, nostack)) }
}

fn stgi() {
    // SAFETY: as for CLGI.
    unsafe { asm!("stgi", options(nomem, nostack)) }
}

// ---------------------------------------------------------------- the vCPU

/// A vCPU: its VMCB (one frame), the GPRs the VMCB does not hold, its FPU/SSE state.
pub struct SvmVcpu {
    vmcb: u64,
    regs: Gprs,
    fx: Box<FxArea>,
    /// The physmap epoch it last ran with (a newer one drops its translations).
    last_epoch: u64,
    /// Its ASID, CPU and ASID generation (`hvcore::asid`).
    asid: hvcore::asid::AsidTag,
    /// The guest's SPEC_CTRL (0 unless the guest wrote it).
    spec_ctrl: u64,
    /// Identifies its domain for IBPB decisions: the domain id and the NPT
    /// root (a later domain with the same id has another root while this
    /// one lives; see docs/ARCHITECTURE.md, "ASIDs and speculative execution").
    dom_key: u64,
    domid: DomId,
    id: u32,
    /// The last exit interrupted an event's delivery (EXITINTINFO valid).
    delivering: bool,
}

// SAFETY: the VMCB frame is owned by this value; it is touched only through
// `&self`/`&mut self`, and a vCPU runs on one CPU at a time (its lock).
unsafe impl Send for SvmVcpu {}

impl Drop for SvmVcpu {
    fn drop(&mut self) {
        // SAFETY: the VMCB is ours and no CPU runs this vCPU (it is being dropped).
        unsafe { core::ptr::write_bytes(self.vmcb as *mut u8, 0, PAGE_SIZE as usize) };
        let _ = mem::free_frames(self.vmcb, 1);
    }
}

impl SvmVcpu {
    /// A vCPU of `domid` using nested page tables at `npt_root`; not runnable
    /// until its state is set.
    pub fn new(domid: DomId, id: u32, npt_root: u64) -> Result<SvmVcpu> {
        let m = maps()?;
        let vmcb = mem::alloc_frames(1, Zone::Any)?;
        let mut v = SvmVcpu {
            vmcb,
            regs: Gprs::default(),
            fx: Box::new(FxArea::reset()),
            last_epoch: u64::MAX,
            asid: hvcore::asid::AsidTag::default(),
            spec_ctrl: 0,
            dom_key: npt_root ^ ((domid as u64) << 52) ^ (1 << 63),
            domid,
            id,
            delivering: false,
        };
        v.w32(
            C_INTERCEPT_VEC3,
            I_INTR | I_NMI | I_CPUID | I_INVD | I_HLT | I_INVLPGA | I_IOIO | I_MSR | I_SHUTDOWN,
        );
        v.w32(
            C_INTERCEPT_VEC4,
            I_VMRUN
                | I_VMMCALL
                | I_VMLOAD
                | I_VMSAVE
                | I_STGI
                | I_CLGI
                | I_SKINIT
                | I_MONITOR
                | I_MWAIT
                | I_MWAIT_COND
                | I_XSETBV,
        );
        v.w64(C_IOPM, m.iopm);
        v.w64(C_MSRPM, m.msrpm);
        v.w64(C_INT_CTL, V_INTR_MASKING);
        v.w64(C_NP_ENABLE, 1);
        v.w64(C_NCR3, npt_root);
        v.w64(S_GPAT, GPAT_DEFAULT);
        v.w64(S_DR6, 0xFFFF_0FF0);
        v.w64(S_DR7, 0x400);
        v.update_spec();
        Ok(v)
    }

    /// Recompute what the entry stub does about speculation (after a
    /// SPEC_CTRL change): RSB fill where enabled; swap SPEC_CTRL by software
    /// where the CPU has it without V_SPEC_CTRL and the guest's value is not
    /// the host's.
    fn update_spec(&mut self) {
        let policy = ENTRY_POLICY.load(Ordering::Relaxed);
        let host = HOST_SPEC_CTRL.load(Ordering::Relaxed);
        let swap =
            policy & P_SPEC_CTRL != 0 && policy & P_V_SPEC_CTRL == 0 && self.spec_ctrl != host;
        self.regs.spec = SpecEntry {
            flags: (policy & SPEC_RSB_FILL) | if swap { SPEC_SWAP_CTRL } else { 0 },
            guest: self.spec_ctrl,
            host,
        };
    }

    /// The save area holds this CPU's own state (RIP after Warden's VMRUN,
    /// Warden's CR3), not a guest's.
    fn holds_host_state(&self) -> bool {
        self.r64(S_RIP) == (&raw const warden_svm_after_vmrun) as u64
            && self.r64(S_CR3) == super::read_cr3()
    }

    fn ptr(&self, off: usize) -> u64 {
        debug_assert!(off < PAGE_SIZE as usize);
        self.vmcb + off as u64
    }
    fn r64(&self, off: usize) -> u64 {
        // SAFETY: inside the VMCB frame this vCPU owns.
        unsafe { core::ptr::read_unaligned(self.ptr(off) as *const u64) }
    }
    fn w64(&mut self, off: usize, v: u64) {
        // SAFETY: as for r64.
        unsafe { core::ptr::write_unaligned(self.ptr(off) as *mut u64, v) }
    }
    fn w32(&mut self, off: usize, v: u32) {
        // SAFETY: as for r64.
        unsafe { core::ptr::write_unaligned(self.ptr(off) as *mut u32, v) }
    }
    fn r8(&self, off: usize) -> u8 {
        // SAFETY: as for r64.
        unsafe { core::ptr::read(self.ptr(off) as *const u8) }
    }
    fn w8(&mut self, off: usize, v: u8) {
        // SAFETY: as for r64.
        unsafe { core::ptr::write(self.ptr(off) as *mut u8, v) }
    }
    fn seg(&mut self, off: usize, sel: u16, attrib: u16, limit: u32, base: u64) {
        let v = (sel as u64) | ((attrib as u64) << 16) | ((limit as u64) << 32);
        self.w64(off, v);
        self.w64(off + 8, base);
    }

    /// Advance RIP past an instruction of `len` bytes (using the CPU's
    /// next-RIP where it saves one).
    fn skip(&mut self, len: u64) {
        let next = if NRIP.load(Ordering::Relaxed) {
            self.r64(C_NRIP)
        } else {
            0
        };
        let rip = self.r64(S_RIP);
        let next = if next > rip && next - rip <= 15 {
            next
        } else {
            rip + len
        };
        self.w64(S_RIP, next);
        self.end_interrupt_shadow();
    }

    /// An emulated instruction completed: the interrupt shadow of an STI or
    /// MOV SS before it ends with it (else `sti; hlt` would leave it on the
    /// instruction after the HLT, and an interrupt pending at the HLT would
    /// wait past a following CLI).
    fn end_interrupt_shadow(&mut self) {
        let s = self.r64(C_INT_STATE);
        self.w64(C_INT_STATE, s & !1);
    }

    /// Inject exception `vector` (with an error code for #GP).
    fn inject_exception(&mut self, vector: u8, error: Option<u32>) {
        let mut e = vector as u64 | (3 << 8) | (1 << 31);
        if let Some(code) = error {
            e |= (1 << 11) | ((code as u64) << 32);
        }
        self.w64(C_EVENTINJ, e);
    }

    /// After a #VMEXIT: an event whose delivery the exit interrupted
    /// (EXITINTINFO) is delivered again. An external interrupt (the V_IRQ
    /// this vCPU offered; QEMU reports it as an exception of vector 32 or
    /// more) is offered again through V_IRQ; an NMI or an
    /// exception is re-injected through EVENTINJ; a software interrupt, #BP
    /// or #OF is not (RIP is still on the instruction, which raises it again).
    fn after_exit_event(&mut self) {
        let info = self.r64(C_EXITINTINFO);
        self.delivering = info & EVENT_VALID != 0;
        if !self.delivering {
            return;
        }
        let vector = info & 0xFF;
        match (info >> 8) & 7 {
            // QEMU marks an interrupted hardware-interrupt delivery as an
            // "exception" with its vector (32 and up): the offered V_IRQ.
            EVENT_TYPE_INTR | EVENT_TYPE_EXCEPTION if vector >= 32 => {
                let ctl = self.r64(C_INT_CTL) & !(0xFF << V_VECTOR_SHIFT);
                self.w64(C_INT_CTL, ctl | V_IRQ | (vector << V_VECTOR_SHIFT));
            }
            EVENT_TYPE_EXCEPTION if vector == 3 || vector == 4 => {}
            EVENT_TYPE_NMI | EVENT_TYPE_EXCEPTION => self.w64(C_EVENTINJ, info),
            _ => {}
        }
    }

    fn emulate_cpuid(&mut self) {
        let leaf = self.r64(S_RAX) as u32;
        let sub = self.regs.rcx as u32;
        let host = cpuid(leaf, sub);
        let (a, b, c, d) = hvcore::guestcpu::cpuid(
            leaf,
            sub,
            host,
            hvcore::guestcpu::Asker {
                vcpu_id: self.id,
                domid: self.domid,
            },
        );
        self.w64(S_RAX, a as u64);
        self.regs.rbx = b as u64;
        self.regs.rcx = c as u64;
        self.regs.rdx = d as u64;
        self.skip(2);
    }

    /// Handle an MSR access the backend owns; false: not one of them (left
    /// to `hvcore::emul::msr`, nothing done).
    fn emulate_msr(&mut self, write: bool) -> bool {
        use hvcore::guestcpu::*;
        let msr = self.regs.rcx as u32;
        let value = (self.r64(S_RAX) & 0xffff_ffff) | (self.regs.rdx << 32);
        let ok = if write {
            match msr {
                MSR_EFER if value & !EFER_GUEST_BITS == 0 => {
                    // LMA follows the hardware; SVME must stay set under SVM.
                    let lma = self.r64(S_EFER) & (1 << 10);
                    self.w64(S_EFER, (value & !(1 << 10)) | lma | EFER_SVME);
                    true
                }
                MSR_PAT if pat_valid(value) => {
                    self.w64(S_GPAT, value);
                    true
                }
                MSR_SPEC_CTRL if spec().spec_ctrl_bits != 0 && spec().guest_spec_ctrl_ok(value) => {
                    // Takes effect at the next entry (VMCB field or the stub).
                    self.spec_ctrl = value;
                    self.update_spec();
                    true
                }
                MSR_PRED_CMD if spec().ibpb && value <= 1 => {
                    if value == 1 {
                        // SAFETY: PRED_CMD exists (CPUID reports IBPB).
                        unsafe { wrmsr(MSR_PRED_CMD, 1) };
                    }
                    true
                }
                MSR_EFER | MSR_PAT | MSR_SPEC_CTRL | MSR_PRED_CMD => false,
                MSR_TSC => true, // Accepted and ignored.
                _ => return false,
            }
        } else {
            let v = match msr {
                MSR_EFER => Some(self.r64(S_EFER) & !EFER_SVME),
                MSR_PAT => Some(self.r64(S_GPAT)),
                MSR_TSC => Some(super::rdtsc()),
                MSR_SPEC_CTRL if spec().spec_ctrl_bits != 0 => Some(self.spec_ctrl),
                MSR_SPEC_CTRL => None,
                _ => return false,
            };
            if let Some(v) = v {
                self.w64(S_RAX, v & 0xffff_ffff);
                self.regs.rdx = v >> 32;
            }
            v.is_some()
        };
        if ok {
            self.skip(2);
        } else {
            self.inject_exception(13, Some(0));
        }
        true
    }
}

impl Vcpu for SvmVcpu {
    fn run(&mut self, e: &Entry<'_>) -> Result<VmExit> {
        let pc = percpu::current();
        // The interrupt to offer (V_IRQ: taken when the guest's IF allows,
        // never through EVENTINJ, which QEMU 7.2 may deliver twice); the
        // vLAPIC already filtered it by priority, so the guest's V_TPR is
        // ignored.
        let mut ctl = V_INTR_MASKING | V_IGN_TPR;
        if let Some(vector) = e.inject {
            ctl |= V_IRQ | (0xf << V_PRIO_SHIFT) | ((vector as u64) << V_VECTOR_SHIFT);
        }
        self.w64(C_INT_CTL, ctl);
        loop {
            // The save area already holds this CPU's state (see the check
            // after the exit): it was overwritten after that check, and the
            // guest state is lost. Checked here too so that the log tells
            // which of the two happened (docs/ARCHITECTURE.md, "Known issues").
            if self.holds_host_state() {
                return Err(err!(
                    Hardware,
                    "VMCB found before VMRUN with the host's state in its save area: a #VMEXIT saved the host's state in place of the guest's after the last check (an emulator fault; the guest state is lost)"
                ));
            }
            clgi();
            let epoch = e.slot.enter(e.domid, e.epoch);
            if e.stop.load(Ordering::SeqCst) {
                e.slot.leave();
                stgi();
                return Ok(VmExit::Cancelled);
            }
            // The vCPU keeps its ASID (and the TLB its translations) unless
            // it moved CPU, the CPU's ASID generation moved on, or its
            // physmap changed (`hvcore::asid`).
            // SAFETY: this CPU's ASID space, touched only by this CPU, here
            // with GIF clear (and once at bring-up).
            let asids = unsafe { &mut *pc.asids.get() };
            let policy = ENTRY_POLICY.load(Ordering::Relaxed);
            pc.entries.fetch_add(1, Ordering::Relaxed);
            if self.asid.cpu != pc.cpu_id
                || self.asid.generation != asids.generation()
                || epoch != self.last_epoch
            {
                let (asid, flush) = asids.enter(
                    &mut self.asid,
                    pc.cpu_id,
                    epoch != self.last_epoch,
                    policy & P_FLUSH_BY_ASID != 0,
                );
                self.w32(C_ASID, asid);
                self.w8(C_TLB_CONTROL, flush.tlb_control());
                self.last_epoch = epoch;
                match flush {
                    TlbFlush::All => pc.tlb_flushes.fetch_add(1, Ordering::Relaxed),
                    TlbFlush::Asid => pc.asid_flushes.fetch_add(1, Ordering::Relaxed),
                    TlbFlush::None => 0,
                };
                pc.asids_assigned.store(asids.assigned, Ordering::Relaxed);
            } else {
                self.w8(C_TLB_CONTROL, 0);
            }
            // Another domain than the last one on this CPU: its branch
            // predictions must not steer this one's (IBPB).
            if policy & P_IBPB != 0
                && pc.last_guest.swap(self.dom_key, Ordering::Relaxed) != self.dom_key
            {
                // SAFETY: PRED_CMD exists (CPUID reports IBPB); writing 1
                // only flushes branch predictions.
                unsafe { wrmsr(MSR_PRED_CMD, 1) };
                pc.ibpbs.fetch_add(1, Ordering::Relaxed);
            }
            if policy & P_V_SPEC_CTRL != 0 {
                self.w64(S_SPEC_CTRL, self.spec_ctrl);
            }
            // GIF is clear and interrupts are off; the VMCB, register block and
            // FXSAVE areas are valid and owned (the guest's by this vCPU, the
            // host's by this CPU); the VMCB was set up by `new` and
            // `set_context`; the entry stub restores every host register the
            // ABI requires and the host's FS/GS/TR state (and SPEC_CTRL where
            // it swapped it).
            // SAFETY: see above: owned, valid areas; interrupts off.
            unsafe {
                warden_svm_enter(
                    &mut self.regs,
                    self.vmcb,
                    pc.host_state_pa.load(Ordering::Relaxed),
                    &mut *self.fx,
                    pc.host_fx.get(),
                );
            }
            e.slot.leave();
            stgi();
            let code = self.r64(C_EXITCODE);
            // A #VMEXIT that stored this CPU's own state as the guest's: the
            // guest's RIP is the instruction after our VMRUN and its CR3 ours.
            // Hardware never does this; QEMU 7.2's multi-threaded TCG was seen
            // to (docs/ARCHITECTURE.md, "Known issues"). The guest state is
            // lost, so the vCPU cannot go on; running it would only fault.
            if self.holds_host_state() {
                return Err(err!(
                    Hardware,
                    "#VMEXIT {code:#x} saved the host's state in place of the guest's (an emulator fault; the guest state is lost; the save area was sound before this VMRUN)"
                ));
            }
            self.after_exit_event();
            match code {
                EXIT_CPUID => self.emulate_cpuid(),
                EXIT_MSR => {
                    let write = self.r64(C_EXITINFO1) & 1 != 0;
                    if !self.emulate_msr(write) {
                        let value = (self.r64(S_RAX) & 0xffff_ffff) | (self.regs.rdx << 32);
                        return Ok(VmExit::Msr {
                            index: self.regs.rcx as u32,
                            write: write.then_some(value),
                        });
                    }
                }
                EXIT_INVD => self.skip(2),
                EXIT_VMMCALL => return Ok(VmExit::Hypercall),
                EXIT_VMRUN..=EXIT_SKINIT
                | EXIT_INVLPGA
                | EXIT_MONITOR
                | EXIT_MWAIT
                | EXIT_MWAIT_COND
                | EXIT_XSETBV => self.inject_exception(6, None),
                EXIT_INTR | EXIT_NMI => return Ok(VmExit::ExternalInterrupt),
                EXIT_HLT => return Ok(VmExit::Halt),
                EXIT_SHUTDOWN => return Ok(VmExit::Shutdown),
                EXIT_NPF => {
                    return Ok(VmExit::NestedPageFault {
                        gpa: self.r64(C_EXITINFO2),
                        error_code: self.r64(C_EXITINFO1),
                    });
                }
                EXIT_IOIO if self.r64(C_EXITINFO1) & (1 << 2) != 0 => {
                    // INS/OUTS: no port is emulated for string I/O; the
                    // instruction is skipped (REP: its count consumed).
                    if self.r64(C_EXITINFO1) & (1 << 3) != 0 {
                        self.regs.rcx = 0;
                    }
                    let next = self.r64(C_EXITINFO2);
                    self.w64(S_RIP, next);
                }
                EXIT_IOIO => {
                    let i = self.r64(C_EXITINFO1);
                    let size = if i & (1 << 4) != 0 {
                        1
                    } else if i & (1 << 5) != 0 {
                        2
                    } else {
                        4
                    };
                    return Ok(VmExit::Io {
                        port: (i >> 16) as u16,
                        size,
                        write: i & 1 == 0,
                    });
                }
                EXIT_INVALID => {
                    return Err(err!(
                        InvalidInput,
                        "VMRUN refused the guest state (VMEXIT_INVALID)"
                    ));
                }
                c => {
                    return Ok(VmExit::Unexpected {
                        code: c,
                        info1: self.r64(C_EXITINFO1),
                        info2: self.r64(C_EXITINFO2),
                    });
                }
            }
        }
    }

    fn hypercall_args(&self) -> HypercallArgs {
        HypercallArgs {
            nr: self.r64(S_RAX),
            a: [
                self.regs.rdi,
                self.regs.rsi,
                self.regs.rdx,
                self.regs.r10,
                self.regs.r8,
            ],
        }
    }

    fn finish_hypercall(&mut self, ret: u64) {
        self.w64(S_RAX, ret);
        self.skip(3);
    }

    fn continue_hypercall(&mut self, args: &HypercallArgs) {
        // RIP still points at the VMMCALL (SVM does not advance it).
        self.w64(S_RAX, args.nr);
        self.regs.rdi = args.a[0];
        self.regs.rsi = args.a[1];
        self.regs.rdx = args.a[2];
        self.regs.r10 = args.a[3];
        self.regs.r8 = args.a[4];
    }

    fn skip_halt(&mut self) {
        self.skip(1);
    }

    fn finish_msr(&mut self, read: Option<u64>) {
        if let Some(v) = read {
            self.w64(S_RAX, v & 0xffff_ffff);
            self.regs.rdx = v >> 32;
        }
        self.skip(2);
    }

    fn inject_gp(&mut self) {
        self.inject_exception(13, Some(0));
    }

    fn io_out_value(&self) -> u32 {
        self.r64(S_RAX) as u32
    }

    fn finish_io(&mut self, read: Option<u32>) {
        if let Some(v) = read {
            let i = self.r64(C_EXITINFO1);
            let rax = self.r64(S_RAX);
            let new = if i & (1 << 4) != 0 {
                (rax & !0xff) | (v as u64 & 0xff)
            } else if i & (1 << 5) != 0 {
                (rax & !0xffff) | (v as u64 & 0xffff)
            } else {
                v as u64
            };
            self.w64(S_RAX, new);
        }
        // IOIO exits save the next RIP in EXITINFO2.
        let next = self.r64(C_EXITINFO2);
        self.w64(S_RIP, next);
    }

    fn paging(&self) -> PagingState {
        PagingState {
            cr0: self.r64(S_CR0),
            cr3: self.r64(S_CR3),
            cr4: self.r64(S_CR4),
            efer: self.r64(S_EFER),
            rflags: self.r64(S_RFLAGS),
        }
    }

    fn cpl(&self) -> u8 {
        self.r8(S_CPL)
    }

    fn rip(&self) -> u64 {
        self.r64(S_RIP)
    }

    fn context(&self) -> HvmContext {
        HvmContext {
            mode: if self.r64(S_EFER) & (1 << 10) != 0 {
                warden_abi::vcpu::HVM_MODE_64B
            } else {
                warden_abi::vcpu::HVM_MODE_32B
            },
            pad: 0,
            rax: self.r64(S_RAX),
            rcx: self.regs.rcx,
            rdx: self.regs.rdx,
            rbx: self.regs.rbx,
            rsp: self.r64(S_RSP),
            rbp: self.regs.rbp,
            rsi: self.regs.rsi,
            rdi: self.regs.rdi,
            rip: self.r64(S_RIP),
            rflags: self.r64(S_RFLAGS),
            cr0: self.r64(S_CR0),
            cr3: self.r64(S_CR3),
            cr4: self.r64(S_CR4),
            efer: self.r64(S_EFER) & !EFER_SVME,
        }
    }

    fn set_context(&mut self, c: &HvmContext) {
        self.regs = Gprs {
            rbx: c.rbx,
            rcx: c.rcx,
            rdx: c.rdx,
            rsi: c.rsi,
            rdi: c.rdi,
            rbp: c.rbp,
            spec: self.regs.spec,
            ..Gprs::default()
        };
        self.w64(S_RAX, c.rax);
        self.w64(S_RSP, c.rsp);
        self.w64(S_RIP, c.rip);
        self.w64(S_RFLAGS, c.rflags);
        self.w64(S_CR0, c.cr0);
        self.w64(S_CR3, c.cr3);
        self.w64(S_CR4, c.cr4);
        self.w64(S_CR2, 0);
        self.w64(S_EFER, c.efer | EFER_SVME);
        // Flat segments, ring 0: 64-bit code, or 32-bit code for the PVH
        // entry state (`hvcore::vcpu::pvh_boot_context`: paging off).
        if c.mode == warden_abi::vcpu::HVM_MODE_32B {
            self.seg(S_CS, 0x08, 0x0C9B, 0xFFFF_FFFF, 0);
        } else {
            self.seg(S_CS, 0x08, 0x0A9B, 0xFFFF_FFFF, 0);
        }
        for s in [S_DS, S_ES, S_SS, S_FS, S_GS] {
            self.seg(s, 0x10, 0x0C93, 0xFFFF_FFFF, 0);
        }
        self.seg(S_GDTR, 0, 0, 0, 0);
        self.seg(S_IDTR, 0, 0, 0, 0);
        self.seg(S_LDTR, 0, 0x0082, 0xFFFF, 0);
        self.seg(S_TR, 0x18, 0x008B, 0x67, 0);
        self.w8(S_CPL, 0);
        self.w64(C_EVENTINJ, 0);
        self.w64(C_INT_CTL, V_INTR_MASKING);
        self.spec_ctrl = 0;
        self.update_spec();
        *self.fx = FxArea::reset();
    }

    fn irq_offered(&self) -> bool {
        self.r64(C_INT_CTL) & V_IRQ != 0
    }

    fn delivering_event(&self) -> bool {
        self.delivering
    }

    fn emul_regs(&self) -> Option<EmulRegs> {
        let r = &self.regs;
        let attr = (self.r64(S_CS) >> 16) & 0xFFFF;
        let long = self.r64(S_EFER) & (1 << 10) != 0 && attr & (1 << 9) != 0;
        Some(EmulRegs {
            gpr: [
                self.r64(S_RAX),
                r.rcx,
                r.rdx,
                r.rbx,
                self.r64(S_RSP),
                r.rbp,
                r.rsi,
                r.rdi,
                r.r8,
                r.r9,
                r.r10,
                r.r11,
                r.r12,
                r.r13,
                r.r14,
                r.r15,
            ],
            rip: self.r64(S_RIP),
            rflags: self.r64(S_RFLAGS),
            cs_base: if long { 0 } else { self.r64(S_CS + 8) },
            bitness: if long {
                64
            } else if attr & (1 << 10) != 0 {
                32
            } else {
                16
            },
            paging: self.paging(),
        })
    }

    fn set_emul_regs(&mut self, e: &EmulRegs) {
        let g = &e.gpr;
        self.w64(S_RAX, g[0]);
        self.w64(S_RSP, g[4]);
        self.w64(S_RIP, e.rip);
        self.w64(S_RFLAGS, e.rflags);
        self.end_interrupt_shadow();
        let r = &mut self.regs;
        (r.rcx, r.rdx, r.rbx, r.rbp, r.rsi, r.rdi) = (g[1], g[2], g[3], g[5], g[6], g[7]);
        (r.r8, r.r9, r.r10, r.r11) = (g[8], g[9], g[10], g[11]);
        (r.r12, r.r13, r.r14, r.r15) = (g[12], g[13], g[14], g[15]);
    }

    fn cpu_record(&self) -> HwCpu {
        let seg = |off: usize| {
            let v = self.r64(off);
            (
                v as u16 as u32,
                ((v >> 16) & 0xFFFF) as u32,
                (v >> 32) as u32,
                self.r64(off + 8),
            )
        };
        let (cs, ds, es, fs, gs, ss, tr, ldtr, idtr, gdtr) = (
            seg(S_CS),
            seg(S_DS),
            seg(S_ES),
            seg(S_FS),
            seg(S_GS),
            seg(S_SS),
            seg(S_TR),
            seg(S_LDTR),
            seg(S_IDTR),
            seg(S_GDTR),
        );
        let inj = self.r64(C_EVENTINJ);
        let r = &self.regs;
        HwCpu {
            fpu_regs: self.fx.0,
            rax: self.r64(S_RAX),
            rbx: r.rbx,
            rcx: r.rcx,
            rdx: r.rdx,
            rbp: r.rbp,
            rsi: r.rsi,
            rdi: r.rdi,
            rsp: self.r64(S_RSP),
            r8: r.r8,
            r9: r.r9,
            r10: r.r10,
            r11: r.r11,
            r12: r.r12,
            r13: r.r13,
            r14: r.r14,
            r15: r.r15,
            rip: self.r64(S_RIP),
            rflags: self.r64(S_RFLAGS),
            cr0: self.r64(S_CR0),
            cr2: self.r64(S_CR2),
            cr3: self.r64(S_CR3),
            cr4: self.r64(S_CR4),
            // DR0-3 are not switched per guest (never intercepted): none kept.
            dr0: 0,
            dr1: 0,
            dr2: 0,
            dr3: 0,
            dr6: self.r64(S_DR6),
            dr7: self.r64(S_DR7),
            cs_sel: cs.0,
            ds_sel: ds.0,
            es_sel: es.0,
            fs_sel: fs.0,
            gs_sel: gs.0,
            ss_sel: ss.0,
            tr_sel: tr.0,
            ldtr_sel: ldtr.0,
            cs_limit: cs.2,
            ds_limit: ds.2,
            es_limit: es.2,
            fs_limit: fs.2,
            gs_limit: gs.2,
            ss_limit: ss.2,
            tr_limit: tr.2,
            ldtr_limit: ldtr.2,
            idtr_limit: idtr.2,
            gdtr_limit: gdtr.2,
            cs_base: cs.3,
            ds_base: ds.3,
            es_base: es.3,
            fs_base: fs.3,
            gs_base: gs.3,
            ss_base: ss.3,
            tr_base: tr.3,
            ldtr_base: ldtr.3,
            idtr_base: idtr.3,
            gdtr_base: gdtr.3,
            cs_arbytes: cs.1,
            ds_arbytes: ds.1,
            es_arbytes: es.1,
            fs_arbytes: fs.1,
            gs_arbytes: gs.1,
            ss_arbytes: ss.1,
            tr_arbytes: tr.1,
            ldtr_arbytes: ldtr.1,
            sysenter_cs: self.r64(S_SYSENTER_CS),
            sysenter_esp: self.r64(S_SYSENTER_ESP),
            sysenter_eip: self.r64(S_SYSENTER_EIP),
            shadow_gs: self.r64(S_KERNEL_GS_BASE),
            msr_flags: 0,
            msr_lstar: self.r64(S_LSTAR),
            msr_star: self.r64(S_STAR),
            msr_cstar: self.r64(S_CSTAR),
            msr_syscall_mask: self.r64(S_SFMASK),
            msr_efer: self.r64(S_EFER) & !EFER_SVME,
            msr_tsc_aux: 0,
            // Warden's guests read the host's TSC (no offset).
            tsc: super::rdtsc(),
            pending_event: if inj & EVENT_VALID != 0 {
                inj as u32
            } else {
                0
            },
            error_code: (inj >> 32) as u32,
            flags: FPU_INITIALISED,
            pad0: 0,
        }
    }

    fn set_cpu_record(&mut self, c: &HwCpu) {
        // Checked by hvcore::xen::hvmctx::check_cpu (control registers,
        // EFER, the pending event, MXCSR).
        self.regs = Gprs {
            rbx: c.rbx,
            rcx: c.rcx,
            rdx: c.rdx,
            rsi: c.rsi,
            rdi: c.rdi,
            rbp: c.rbp,
            r8: c.r8,
            r9: c.r9,
            r10: c.r10,
            r11: c.r11,
            r12: c.r12,
            r13: c.r13,
            r14: c.r14,
            r15: c.r15,
            spec: self.regs.spec,
        };
        self.w64(S_RAX, c.rax);
        self.w64(S_RSP, c.rsp);
        self.w64(S_RIP, c.rip);
        self.w64(S_RFLAGS, c.rflags | 2);
        self.w64(S_CR0, c.cr0);
        self.w64(S_CR2, c.cr2);
        self.w64(S_CR3, c.cr3);
        self.w64(S_CR4, c.cr4);
        self.w64(S_EFER, c.msr_efer | EFER_SVME);
        self.w64(S_DR6, c.dr6);
        self.w64(S_DR7, c.dr7);
        let attr = |a: u32| (a & 0xFFFF) as u16;
        self.seg(
            S_CS,
            c.cs_sel as u16,
            attr(c.cs_arbytes),
            c.cs_limit,
            c.cs_base,
        );
        self.seg(
            S_DS,
            c.ds_sel as u16,
            attr(c.ds_arbytes),
            c.ds_limit,
            c.ds_base,
        );
        self.seg(
            S_ES,
            c.es_sel as u16,
            attr(c.es_arbytes),
            c.es_limit,
            c.es_base,
        );
        self.seg(
            S_FS,
            c.fs_sel as u16,
            attr(c.fs_arbytes),
            c.fs_limit,
            c.fs_base,
        );
        self.seg(
            S_GS,
            c.gs_sel as u16,
            attr(c.gs_arbytes),
            c.gs_limit,
            c.gs_base,
        );
        self.seg(
            S_SS,
            c.ss_sel as u16,
            attr(c.ss_arbytes),
            c.ss_limit,
            c.ss_base,
        );
        self.seg(
            S_TR,
            c.tr_sel as u16,
            attr(c.tr_arbytes),
            c.tr_limit,
            c.tr_base,
        );
        self.seg(
            S_LDTR,
            c.ldtr_sel as u16,
            attr(c.ldtr_arbytes),
            c.ldtr_limit,
            c.ldtr_base,
        );
        self.seg(S_IDTR, 0, 0, c.idtr_limit, c.idtr_base);
        self.seg(S_GDTR, 0, 0, c.gdtr_limit, c.gdtr_base);
        // The CPL is the stack segment's DPL (SVM keeps it apart).
        self.w8(S_CPL, ((c.ss_arbytes >> 5) & 3) as u8);
        self.w64(S_SYSENTER_CS, c.sysenter_cs);
        self.w64(S_SYSENTER_ESP, c.sysenter_esp);
        self.w64(S_SYSENTER_EIP, c.sysenter_eip);
        self.w64(S_KERNEL_GS_BASE, c.shadow_gs);
        self.w64(S_STAR, c.msr_star);
        self.w64(S_LSTAR, c.msr_lstar);
        self.w64(S_CSTAR, c.msr_cstar);
        self.w64(S_SFMASK, c.msr_syscall_mask);
        let inj = if c.pending_event & (1 << 31) != 0 {
            u64::from(c.pending_event) | (u64::from(c.error_code) << 32)
        } else {
            0
        };
        self.w64(C_EVENTINJ, inj);
        self.w64(C_INT_CTL, V_INTR_MASKING);
        self.w64(C_INT_STATE, 0);
        self.delivering = false;
        self.spec_ctrl = 0;
        self.update_spec();
        *self.fx = if c.flags & FPU_INITIALISED != 0 {
            FxArea(c.fpu_regs)
        } else {
            FxArea::reset()
        };
    }

    fn pat(&self) -> u64 {
        self.r64(S_GPAT)
    }

    fn set_pat(&mut self, pat: u64) {
        self.w64(S_GPAT, pat);
    }

    fn start_real_mode(&mut self, vector: u8) {
        // The state after INIT and a Startup IPI (Xen's
        // `vlapic_init_sipi_one` and `hvm_vcpu_reset_state`): real mode,
        // CS = vector << 8 with base vector << 12, IP = 0.
        self.regs = Gprs {
            spec: self.regs.spec,
            ..Gprs::default()
        };
        self.w64(S_RAX, 0);
        self.w64(S_RSP, 0);
        self.w64(S_RIP, 0);
        self.w64(S_RFLAGS, 2);
        self.w64(S_CR0, 1 << 4);
        self.w64(S_CR2, 0);
        self.w64(S_CR3, 0);
        self.w64(S_CR4, 0);
        self.w64(S_EFER, EFER_SVME);
        self.w64(S_DR6, 0xFFFF_0FF0);
        self.w64(S_DR7, 0x400);
        self.w64(S_GPAT, GPAT_DEFAULT);
        let v = vector as u64;
        self.seg(S_CS, (v << 8) as u16, 0x9B, 0xFFFF, v << 12);
        for s in [S_DS, S_ES, S_SS, S_FS, S_GS] {
            self.seg(s, 0, 0x93, 0xFFFF, 0);
        }
        self.seg(S_GDTR, 0, 0, 0xFFFF, 0);
        self.seg(S_IDTR, 0, 0, 0xFFFF, 0);
        self.seg(S_LDTR, 0, 0x82, 0xFFFF, 0);
        self.seg(S_TR, 0, 0x8B, 0xFFFF, 0);
        let mut off = S_STAR;
        while off <= S_SYSENTER_EIP {
            self.w64(off, 0);
            off += 8;
        }
        self.w8(S_CPL, 0);
        self.w64(C_EVENTINJ, 0);
        self.w64(C_INT_CTL, V_INTR_MASKING);
        self.w64(C_INT_STATE, 0);
        self.delivering = false;
        self.spec_ctrl = 0;
        self.update_spec();
        *self.fx = FxArea::reset();
    }

    fn dump(&self, out: &mut dyn core::fmt::Write) -> core::fmt::Result {
        writeln!(
            out,
            "RIP {:#018x} RSP {:#018x} RFLAGS {:#x} CPL {}",
            self.r64(S_RIP),
            self.r64(S_RSP),
            self.r64(S_RFLAGS),
            self.r8(S_CPL)
        )?;
        let r = &self.regs;
        writeln!(
            out,
            "RAX {:#018x} RBX {:#018x} RCX {:#018x} RDX {:#018x}",
            self.r64(S_RAX),
            r.rbx,
            r.rcx,
            r.rdx
        )?;
        writeln!(
            out,
            "RSI {:#018x} RDI {:#018x} RBP {:#018x} R8  {:#018x}",
            r.rsi, r.rdi, r.rbp, r.r8
        )?;
        writeln!(
            out,
            "CR0 {:#x} CR2 {:#x} CR3 {:#x} CR4 {:#x} EFER {:#x}",
            self.r64(S_CR0),
            self.r64(S_CR2),
            self.r64(S_CR3),
            self.r64(S_CR4),
            self.r64(S_EFER)
        )?;
        write!(
            out,
            "exit {:#x} info1 {:#x} info2 {:#x} intinfo {:#x} (d{}v{})",
            self.r64(C_EXITCODE),
            self.r64(C_EXITINFO1),
            self.r64(C_EXITINFO2),
            self.r64(C_EXITINTINFO),
            self.domid,
            self.id
        )
    }
}
