//! The virtual local APIC of a vCPU, as Xen 4.17's `xen/arch/x86/hvm/vlapic.c`
//! presents it to HVM/PVH guests: the xAPIC register page (MMIO at
//! [`APIC_DEFAULT_BASE`]) and the x2APIC MSRs 0x800..0x8FF, IA32_APIC_BASE
//! with the SDM's mode transitions, APIC id = 2 × vCPU id ([`apic_id`], the
//! MADT's and CPUID's value), TPR/PPR, EOI, LDR/DFR, SVR, ISR/TMR/IRR, ESR,
//! ICR (the IPI is returned to the caller, which routes it: `emul::exits`),
//! the LVTs, and the timer (one-shot, periodic, TSC-deadline) counted from
//! time, with Xen's 100 MHz bus ([`BUS_CYCLE_NS`]).
//!
//! This is a pure state machine: time comes in as a [`Clock`], interrupts
//! leave as IRR bits ([`Vlapic::highest_deliverable`], [`Vlapic::ack`]),
//! IPIs as [`Ipi`] values, and the timer's next deadline is published for
//! the scheduler ([`Vlapic::take_timer_change`]). It never panics on guest
//! input: a bad access is `Err(Gp)` (#GP for MSRs; ignored for MMIO).

/// The xAPIC MMIO window (the only base accepted in xAPIC mode, as Xen).
pub const APIC_DEFAULT_BASE: u64 = 0xFEE0_0000;
/// IA32_APIC_BASE.
pub const MSR_APIC_BASE: u32 = 0x1B;
/// IA32_TSC_DEADLINE.
pub const MSR_TSC_DEADLINE: u32 = 0x6E0;
/// First and last x2APIC MSR.
pub const MSR_X2APIC_FIRST: u32 = 0x800;
pub const MSR_X2APIC_LAST: u32 = 0x8FF;
/// APIC_BASE bits.
pub const BASE_BSP: u64 = 1 << 8;
pub const BASE_EXTD: u64 = 1 << 10;
pub const BASE_ENABLE: u64 = 1 << 11;
const BASE_ADDR_MASK: u64 = 0x000F_FFFF_FFFF_F000;
/// Version register: version 0x14, 6 LVT entries (max LVT 5), as Xen.
pub const VERSION: u32 = 0x0005_0014;
/// Nanoseconds per APIC bus cycle (Xen: `APIC_BUS_CYCLE_NS`, 100 MHz).
pub const BUS_CYCLE_NS: u64 = 10;
/// Whether the vLAPIC implements the TSC-deadline timer mode and MSR (Xen
/// advertises it to HVM guests in CPUID.1:ECX[24]; this is the one place
/// that says whether Warden's guests may be told so).
pub const TSC_DEADLINE: bool = true;

/// The APIC id of vCPU `vcpu` (Xen and libxl's MADT: 2 × vCPU id). CPUID
/// (leaf 1 EBX[31:24], leaf 0xB) and the MADT must use this too.
pub const fn apic_id(vcpu: u32) -> u32 {
    vcpu.wrapping_mul(2)
}

// Register offsets in the xAPIC page.
pub const REG_ID: u32 = 0x20;
pub const REG_VERSION: u32 = 0x30;
pub const REG_TPR: u32 = 0x80;
pub const REG_APR: u32 = 0x90;
pub const REG_PPR: u32 = 0xA0;
pub const REG_EOI: u32 = 0xB0;
pub const REG_RRD: u32 = 0xC0;
pub const REG_LDR: u32 = 0xD0;
pub const REG_DFR: u32 = 0xE0;
pub const REG_SVR: u32 = 0xF0;
pub const REG_ISR: u32 = 0x100;
pub const REG_TMR: u32 = 0x180;
pub const REG_IRR: u32 = 0x200;
pub const REG_ESR: u32 = 0x280;
pub const REG_LVT_CMCI: u32 = 0x2F0;
pub const REG_ICR_LO: u32 = 0x300;
pub const REG_ICR_HI: u32 = 0x310;
pub const REG_LVT_TIMER: u32 = 0x320;
pub const REG_LVT_THERMAL: u32 = 0x330;
pub const REG_LVT_PERF: u32 = 0x340;
pub const REG_LVT_LINT0: u32 = 0x350;
pub const REG_LVT_LINT1: u32 = 0x360;
pub const REG_LVT_ERROR: u32 = 0x370;
pub const REG_TIMER_INITIAL: u32 = 0x380;
pub const REG_TIMER_CURRENT: u32 = 0x390;
pub const REG_TIMER_DIVIDE: u32 = 0x3E0;
pub const REG_SELF_IPI: u32 = 0x3F0;

pub const SVR_ENABLE: u32 = 1 << 8;
pub const LVT_MASKED: u32 = 1 << 16;
const LVT_VECTOR: u32 = 0xFF;
const TIMER_MODE_MASK: u32 = 3 << 17;
pub const TIMER_ONESHOT: u32 = 0;
pub const TIMER_PERIODIC: u32 = 1 << 17;
pub const TIMER_TSC_DEADLINE: u32 = 2 << 17;
/// Writable bits of each LVT, in the order CMCI, timer, thermal, perf,
/// LINT0, LINT1, error (Xen's `vlapic_lvt_mask`; the timer's mode bits
/// depend on TSC-deadline support).
const LVT_MASK_BASIC: u32 = LVT_MASKED | (1 << 12) | LVT_VECTOR;
const LVT_MASK_DM: u32 = LVT_MASK_BASIC | (7 << 8);
const LINT_MASK: u32 = LVT_MASK_DM | (1 << 13) | (1 << 14) | (1 << 15);
const LVT_REGS: [u32; 7] = [
    REG_LVT_CMCI,
    REG_LVT_TIMER,
    REG_LVT_THERMAL,
    REG_LVT_PERF,
    REG_LVT_LINT0,
    REG_LVT_LINT1,
    REG_LVT_ERROR,
];
const fn lvt_mask(i: usize) -> u32 {
    match i {
        0 | 2 | 3 => LVT_MASK_DM,
        1 => LVT_MASK_BASIC | TIMER_MODE_MASK,
        4 | 5 => LINT_MASK,
        _ => LVT_MASK_BASIC,
    }
}
const LVT_TIMER: usize = 1;
/// Index in `LVT_REGS` of an LVT register offset.
fn lvt_index(offset: u32) -> usize {
    LVT_REGS.iter().position(|&r| r == offset).unwrap_or(0)
}
const LVT_ERROR: usize = 6;

/// ESR: a vector below 16 was sent / received.
pub const ESR_SEND_ILLEGAL: u32 = 1 << 5;
pub const ESR_RECV_ILLEGAL: u32 = 1 << 6;

/// An access the guest may not make (an MSR access raises #GP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gp;

/// The time, in the two forms the timer needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    /// Hypervisor time in nanoseconds.
    pub ns: u64,
    /// The guest's TSC at the same moment.
    pub tsc: u64,
    /// TSC ticks per second.
    pub tsc_hz: u64,
}

impl Clock {
    /// Nanoseconds from now until TSC value `tsc` (0 if it is past).
    fn ns_until_tsc(&self, tsc: u64) -> u64 {
        let d = tsc.saturating_sub(self.tsc) as u128;
        let ns = d * 1_000_000_000 / self.tsc_hz.max(1) as u128;
        ns.min(u64::MAX as u128) as u64
    }
}

/// ICR delivery modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Fixed,
    LowestPriority,
    Smi,
    Nmi,
    Init,
    Startup,
    /// ExtINT and the reserved encoding.
    Other,
}

/// ICR destination shorthand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shorthand {
    None,
    SelfOnly,
    AllIncludingSelf,
    AllExcludingSelf,
}

/// An interprocessor interrupt written to the ICR, for the caller to route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipi {
    pub vector: u8,
    pub mode: Delivery,
    pub logical: bool,
    /// Level: assert (1) or de-assert (0).
    pub assert: bool,
    pub level_triggered: bool,
    pub shorthand: Shorthand,
    /// Destination: 8 bits in xAPIC mode, 32 in x2APIC mode.
    pub dest: u32,
    /// The sender was in x2APIC mode (decides the broadcast id).
    pub x2apic: bool,
}

impl Ipi {
    /// Decode an ICR value (high half = destination field).
    pub fn decode(icr: u64, x2apic: bool) -> Ipi {
        let lo = icr as u32;
        let hi = (icr >> 32) as u32;
        Ipi {
            vector: lo as u8,
            mode: match (lo >> 8) & 7 {
                0 => Delivery::Fixed,
                1 => Delivery::LowestPriority,
                2 => Delivery::Smi,
                4 => Delivery::Nmi,
                5 => Delivery::Init,
                6 => Delivery::Startup,
                _ => Delivery::Other,
            },
            logical: lo & (1 << 11) != 0,
            assert: lo & (1 << 14) != 0,
            level_triggered: lo & (1 << 15) != 0,
            shorthand: match (lo >> 18) & 3 {
                0 => Shorthand::None,
                1 => Shorthand::SelfOnly,
                2 => Shorthand::AllIncludingSelf,
                _ => Shorthand::AllExcludingSelf,
            },
            dest: if x2apic { hi } else { hi >> 24 },
            x2apic,
        }
    }

    /// The broadcast destination in the sender's mode.
    pub fn broadcast(&self) -> u32 {
        if self.x2apic { u32::MAX } else { 0xFF }
    }

    /// An INIT de-assert (level-triggered, level 0): ignored by modern CPUs.
    pub fn is_init_deassert(&self) -> bool {
        self.mode == Delivery::Init && self.level_triggered && !self.assert
    }
}

/// 256 bits, one per vector.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct VecBits([u32; 8]);

impl VecBits {
    fn set(&mut self, v: u8) -> bool {
        let (w, b) = ((v >> 5) as usize, v & 31);
        let was = self.0[w] & (1 << b) != 0;
        self.0[w] |= 1 << b;
        !was
    }
    fn clear(&mut self, v: u8) {
        self.0[(v >> 5) as usize] &= !(1 << (v & 31));
    }
    fn test(&self, v: u8) -> bool {
        self.0[(v >> 5) as usize] & (1 << (v & 31)) != 0
    }
    fn highest(&self) -> Option<u8> {
        (0..8).rev().find_map(|w| {
            let x = self.0[w];
            (x != 0).then(|| (w as u32 * 32 + 31 - x.leading_zeros()) as u8)
        })
    }
}

/// The timer's running state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Timer {
    initial: u32,
    /// TDCR as written (bits 0, 1, 3).
    tdcr: u32,
    /// One-shot / periodic: when the count (re)started; None = stopped
    /// (the current count reads 0).
    start: Option<u64>,
    /// TSC-deadline mode: the MSR's value (0 = disarmed).
    tsc_deadline: u64,
    /// When the next interrupt is due (ns), if armed.
    due: Option<u64>,
}

impl Timer {
    fn divisor(&self) -> u64 {
        let v = (self.tdcr & 3) | ((self.tdcr & 8) >> 1);
        if v == 7 { 1 } else { 2 << v }
    }
    fn period_ns(&self) -> u64 {
        (self.initial as u64)
            .saturating_mul(BUS_CYCLE_NS)
            .saturating_mul(self.divisor())
    }
}

/// The local APIC of one vCPU.
#[derive(Debug, Clone)]
pub struct Vlapic {
    vcpu: u32,
    base: u64,
    id: u32,
    tpr: u32,
    ldr: u32,
    dfr: u32,
    svr: u32,
    isr: VecBits,
    tmr: VecBits,
    irr: VecBits,
    /// ESR as the guest reads it, and errors gathered since the last write.
    esr: u32,
    esr_pending: u32,
    icr: u64,
    lvt: [u32; 7],
    timer: Timer,
    /// The timer deadline last published for the scheduler.
    published: Option<u64>,
    /// A Startup IPI arrived while the vCPU was waiting for one: the vector,
    /// for the vCPU's own CPU to load the real-mode start state.
    pub startup: Option<u8>,
}

impl Vlapic {
    /// The APIC of vCPU `vcpu` at reset: xAPIC mode, enabled in the MSR,
    /// software-disabled (SVR 0xFF), every LVT masked; vCPU 0 is the BSP.
    pub fn new(vcpu: u32) -> Vlapic {
        let mut v = Vlapic {
            vcpu,
            base: APIC_DEFAULT_BASE | BASE_ENABLE | if vcpu == 0 { BASE_BSP } else { 0 },
            id: 0,
            tpr: 0,
            ldr: 0,
            dfr: 0,
            svr: 0,
            isr: VecBits::default(),
            tmr: VecBits::default(),
            irr: VecBits::default(),
            esr: 0,
            esr_pending: 0,
            icr: 0,
            lvt: [0; 7],
            timer: Timer::default(),
            published: None,
            startup: None,
        };
        v.reset();
        v
    }

    /// INIT (or enabling in the MSR): registers to their power-up values;
    /// the mode (APIC_BASE) is kept.
    pub fn reset(&mut self) {
        self.id = apic_id(self.vcpu) << 24;
        self.tpr = 0;
        self.ldr = 0;
        self.dfr = u32::MAX;
        self.svr = 0xFF;
        self.isr = VecBits::default();
        self.tmr = VecBits::default();
        self.irr = VecBits::default();
        self.esr = 0;
        self.esr_pending = 0;
        self.icr = 0;
        self.lvt = [LVT_MASKED; 7];
        self.timer = Timer::default();
        if self.x2apic() {
            self.set_x2apic_id();
        }
    }

    fn set_x2apic_id(&mut self) {
        let id = apic_id(self.vcpu);
        self.id = id;
        self.ldr = ((id & !0xF) << 12) | (1 << (id & 0xF));
    }

    /// The vCPU this APIC belongs to.
    pub fn vcpu(&self) -> u32 {
        self.vcpu
    }
    /// IA32_APIC_BASE.
    pub fn base_msr(&self) -> u64 {
        self.base
    }
    /// Enabled in IA32_APIC_BASE.
    pub fn hw_enabled(&self) -> bool {
        self.base & BASE_ENABLE != 0
    }
    /// In x2APIC mode.
    pub fn x2apic(&self) -> bool {
        self.hw_enabled() && self.base & BASE_EXTD != 0
    }
    /// Enabled in hardware and software (SVR): accepts and delivers interrupts.
    pub fn enabled(&self) -> bool {
        self.hw_enabled() && self.svr & SVR_ENABLE != 0
    }
    /// The xAPIC MMIO page's guest-physical address, if the APIC answers there.
    pub fn mmio_base(&self) -> Option<u64> {
        (self.hw_enabled() && !self.x2apic()).then_some(self.base & BASE_ADDR_MASK)
    }
    /// The APIC id as IPI routing sees it (8 bits in xAPIC mode).
    pub fn current_id(&self) -> u32 {
        if self.x2apic() {
            self.id
        } else {
            self.id >> 24
        }
    }

    // ------------------------------------------------------------ priority

    fn isrv(&self) -> u32 {
        self.isr.highest().map_or(0, |v| v as u32)
    }

    /// The processor priority (PPR).
    pub fn ppr(&self) -> u32 {
        let isrv = self.isrv();
        if (self.tpr & 0xF0) >= (isrv & 0xF0) {
            self.tpr & 0xFF
        } else {
            isrv & 0xF0
        }
    }

    /// The vector the APIC would deliver now: the highest IRR vector whose
    /// priority class is above the PPR's (None when disabled).
    pub fn highest_deliverable(&self) -> Option<u8> {
        if !self.enabled() {
            return None;
        }
        let v = self.irr.highest()?;
        ((v as u32 & 0xF0) > (self.ppr() & 0xF0)).then_some(v)
    }

    /// Set `vector` in the IRR (an interrupt arrived). Vectors below 16 are
    /// refused with the receive-illegal-vector error. Returns whether the
    /// APIC accepted it (a disabled APIC drops fixed interrupts).
    pub fn set_irr(&mut self, vector: u8) -> bool {
        if !self.hw_enabled() {
            return false;
        }
        if vector < 16 {
            self.error(ESR_RECV_ILLEGAL);
            return false;
        }
        if !self.enabled() {
            return false;
        }
        self.irr.set(vector);
        self.tmr.clear(vector);
        true
    }

    /// Whether `vector` is pending in the IRR.
    pub fn irr_pending(&self, vector: u8) -> bool {
        self.irr.test(vector)
    }

    /// Whether `vector` is in service.
    pub fn in_service(&self, vector: u8) -> bool {
        self.isr.test(vector)
    }

    /// The guest took `vector` (it was delivered): IRR -> ISR.
    pub fn ack(&mut self, vector: u8) {
        if self.irr.test(vector) {
            self.irr.clear(vector);
            self.isr.set(vector);
        }
    }

    /// End of interrupt: the highest in-service vector is done.
    pub fn eoi(&mut self) {
        if let Some(v) = self.isr.highest() {
            self.isr.clear(v);
        }
    }

    fn error(&mut self, bits: u32) {
        self.esr_pending |= bits;
        let lvt = self.lvt[LVT_ERROR];
        if lvt & LVT_MASKED == 0 {
            let v = (lvt & LVT_VECTOR) as u8;
            if v >= 16 && self.enabled() {
                self.irr.set(v);
            }
        }
    }

    // ------------------------------------------------------------ routing

    /// Does this APIC match destination `dest` of `ipi` (no shorthand)?
    pub fn matches(&self, ipi: &Ipi) -> bool {
        if !self.hw_enabled() {
            return false;
        }
        let dest = ipi.dest;
        if dest == ipi.broadcast() {
            return true;
        }
        if !ipi.logical {
            return dest == self.current_id();
        }
        if self.x2apic() {
            // Cluster (high 16 bits) equal, bit set in the low 16.
            return (dest >> 16) == (self.ldr >> 16) && (dest & self.ldr & 0xFFFF) != 0;
        }
        let ldr = self.ldr >> 24;
        let dest = dest & 0xFF;
        if (self.dfr >> 28) == 0xF {
            // Flat model.
            ldr & dest != 0
        } else {
            // Cluster model.
            (ldr >> 4) == (dest >> 4) && (ldr & dest & 0xF) != 0
        }
    }

    // ------------------------------------------------------------ timer

    fn timer_mode(&self) -> u32 {
        self.lvt[LVT_TIMER] & TIMER_MODE_MASK
    }

    /// The timer's current count.
    pub fn current_count(&self, clk: &Clock) -> u32 {
        let t = &self.timer;
        let (Some(start), true) = (t.start, self.timer_mode() != TIMER_TSC_DEADLINE) else {
            return 0;
        };
        let tick = BUS_CYCLE_NS * t.divisor();
        let ticks = clk.ns.saturating_sub(start) / tick;
        if t.initial == 0 {
            return 0;
        }
        if self.timer_mode() == TIMER_PERIODIC {
            t.initial - (ticks % t.initial as u64) as u32
        } else if ticks >= t.initial as u64 {
            0
        } else {
            t.initial - ticks as u32
        }
    }

    /// Restart the count from the initial count (a TMICT write).
    fn start_count(&mut self, clk: &Clock) {
        let t = &mut self.timer;
        if t.initial == 0 {
            t.start = None;
            t.due = None;
        } else {
            t.start = Some(clk.ns);
            t.due = Some(clk.ns.saturating_add(t.period_ns()));
        }
    }

    /// When the timer's next interrupt is due (ns), if armed.
    pub fn timer_due(&self) -> Option<u64> {
        self.timer.due
    }

    /// The timer deadline, if it changed since the last call (for the
    /// scheduler's per-vCPU LAPIC timer): Some(new deadline or None).
    pub fn take_timer_change(&mut self) -> Option<Option<u64>> {
        let now = self.timer.due;
        (now != self.published).then(|| {
            self.published = now;
            now
        })
    }

    /// The timer's deadline passed (`clk` is now): raise the LVT timer
    /// vector unless masked, and re-arm a periodic timer at its next
    /// period. Returns whether an interrupt was raised. A call before the
    /// deadline (a stale wake-up) does nothing.
    pub fn timer_expired(&mut self, clk: &Clock) -> bool {
        let Some(due) = self.timer.due else {
            return false;
        };
        if due > clk.ns {
            return false;
        }
        match self.timer_mode() {
            TIMER_PERIODIC => {
                let p = self.timer.period_ns().max(1);
                // The next boundary after now, keeping the phase.
                let start = self.timer.start.unwrap_or(due);
                let k = clk.ns.saturating_sub(start) / p + 1;
                self.timer.due = Some(start.saturating_add(k.saturating_mul(p)));
            }
            TIMER_TSC_DEADLINE => {
                self.timer.tsc_deadline = 0;
                self.timer.due = None;
            }
            _ => self.timer.due = None,
        }
        let lvt = self.lvt[LVT_TIMER];
        if lvt & LVT_MASKED == 0 {
            let v = (lvt & LVT_VECTOR) as u8;
            if v < 16 {
                self.error(ESR_RECV_ILLEGAL);
                return false;
            }
            return self.set_irr(v);
        }
        false
    }

    /// IA32_TSC_DEADLINE read.
    pub fn tsc_deadline(&self) -> u64 {
        if self.timer_mode() == TIMER_TSC_DEADLINE {
            self.timer.tsc_deadline
        } else {
            0
        }
    }

    /// IA32_TSC_DEADLINE write (ignored outside TSC-deadline mode).
    pub fn set_tsc_deadline(&mut self, value: u64, clk: &Clock) {
        if self.timer_mode() != TIMER_TSC_DEADLINE {
            return;
        }
        self.timer.tsc_deadline = value;
        self.timer.due = (value != 0).then(|| clk.ns.saturating_add(clk.ns_until_tsc(value)));
    }

    // ------------------------------------------------------------ save records

    /// Xen's LAPIC save record (`hvm_hw_lapic`): the mode, the timer's
    /// divisor and TSC deadline.
    pub fn hidden_record(&self) -> warden_abi::xen::hvm_save::HwLapic {
        use warden_abi::xen::hvm_save::{VLAPIC_HW_DISABLED, VLAPIC_SW_DISABLED};
        warden_abi::xen::hvm_save::HwLapic {
            apic_base_msr: self.base,
            disabled: if self.hw_enabled() {
                0
            } else {
                VLAPIC_HW_DISABLED
            } | if self.svr & SVR_ENABLE == 0 {
                VLAPIC_SW_DISABLED
            } else {
                0
            },
            timer_divisor: self.timer.divisor() as u32,
            tdt_msr: self.timer.tsc_deadline,
        }
    }

    /// Xen's LAPIC_REGS record: the register page as the guest reads it.
    pub fn regs_record(&self, clk: &Clock) -> warden_abi::xen::hvm_save::HwLapicRegs {
        let mut r = warden_abi::xen::hvm_save::HwLapicRegs { data: [0; 1024] };
        for off in (0..0x400u32).step_by(16) {
            let v = self.read_reg(off, clk);
            r.data[off as usize..off as usize + 4].copy_from_slice(&v.to_le_bytes());
        }
        r
    }

    /// Load a LAPIC record (checked by `xen::hvmctx::check_lapic`): the
    /// mode in IA32_APIC_BASE and the TSC deadline. In x2APIC mode the
    /// APIC id is the one Warden gives the vCPU.
    pub fn load_hidden(&mut self, h: &warden_abi::xen::hvm_save::HwLapic, clk: &Clock) {
        self.base = h.apic_base_msr;
        if self.x2apic() {
            self.set_x2apic_id();
        }
        self.timer.tsc_deadline = h.tdt_msr;
        if self.timer_mode() == TIMER_TSC_DEADLINE {
            self.timer.due =
                (h.tdt_msr != 0).then(|| clk.ns.saturating_add(clk.ns_until_tsc(h.tdt_msr)));
        }
    }

    /// Load a LAPIC_REGS record (Xen's `lapic_load_regs`): the registers,
    /// each with the bits a guest write keeps; the timer restarts from its
    /// initial count (Xen's `lapic_rearm`). In x2APIC mode the id and LDR
    /// are the ones Warden gives the vCPU.
    pub fn load_regs(&mut self, r: &warden_abi::xen::hvm_save::HwLapicRegs, clk: &Clock) {
        let reg = |off: u32| {
            let o = off as usize;
            u32::from_le_bytes([r.data[o], r.data[o + 1], r.data[o + 2], r.data[o + 3]])
        };
        if self.x2apic() {
            self.set_x2apic_id();
        } else {
            self.id = reg(REG_ID) & 0xFF00_0000;
            self.ldr = reg(REG_LDR) & 0xFF00_0000;
            self.dfr = reg(REG_DFR) | 0x0FFF_FFFF;
        }
        self.tpr = reg(REG_TPR) & 0xFF;
        self.svr = reg(REG_SVR) & 0x3FF;
        for i in 0..8u32 {
            self.isr.0[i as usize] = reg(REG_ISR + 16 * i);
            self.tmr.0[i as usize] = reg(REG_TMR + 16 * i);
            self.irr.0[i as usize] = reg(REG_IRR + 16 * i);
        }
        self.esr = reg(REG_ESR);
        self.esr_pending = 0;
        self.icr = u64::from(reg(REG_ICR_LO) & !(1 << 12)) | (u64::from(reg(REG_ICR_HI)) << 32);
        for (i, &off) in LVT_REGS.iter().enumerate() {
            let mut v = reg(off) & lvt_mask(i);
            if i == LVT_TIMER && v & TIMER_MODE_MASK == TIMER_MODE_MASK {
                v &= !TIMER_MODE_MASK;
            }
            if self.svr & SVR_ENABLE == 0 {
                v |= LVT_MASKED;
            }
            self.lvt[i] = v;
        }
        self.timer.tdcr = reg(REG_TIMER_DIVIDE) & 0xB;
        if self.timer_mode() == TIMER_TSC_DEADLINE {
            self.timer.initial = 0;
            self.timer.start = None;
            let d = self.timer.tsc_deadline;
            self.timer.due = (d != 0).then(|| clk.ns.saturating_add(clk.ns_until_tsc(d)));
        } else {
            self.timer.initial = reg(REG_TIMER_INITIAL);
            self.start_count(clk);
        }
    }

    // ------------------------------------------------------------ registers

    /// Read the 32-bit register at `offset` (16-byte aligned) as the xAPIC
    /// page shows it. Unknown offsets read 0.
    pub fn read_reg(&self, offset: u32, clk: &Clock) -> u32 {
        match offset {
            REG_ID => self.id,
            REG_VERSION => VERSION,
            REG_TPR => self.tpr,
            REG_PPR => self.ppr(),
            REG_LDR => self.ldr,
            REG_DFR => {
                if self.x2apic() {
                    0
                } else {
                    self.dfr
                }
            }
            REG_SVR => self.svr,
            0x100..=0x170 => self.isr.0[((offset - REG_ISR) >> 4) as usize],
            0x180..=0x1F0 => self.tmr.0[((offset - REG_TMR) >> 4) as usize],
            0x200..=0x270 => self.irr.0[((offset - REG_IRR) >> 4) as usize],
            REG_ESR => self.esr,
            REG_ICR_LO => self.icr as u32,
            REG_ICR_HI => (self.icr >> 32) as u32,
            REG_LVT_CMCI => self.lvt[0],
            REG_LVT_TIMER..=REG_LVT_ERROR => self.lvt[lvt_index(offset)],
            REG_TIMER_INITIAL => self.timer.initial,
            REG_TIMER_CURRENT => self.current_count(clk),
            REG_TIMER_DIVIDE => self.timer.tdcr,
            _ => 0,
        }
    }

    /// Write the 32-bit register at `offset` (16-byte aligned); an ICR
    /// write returns the IPI to send. Read-only and unknown registers ignore
    /// the write.
    pub fn write_reg(&mut self, offset: u32, val: u32, clk: &Clock) -> Option<Ipi> {
        match offset {
            REG_ID if !self.x2apic() => self.id = val & 0xFF00_0000,
            REG_TPR => self.tpr = val & 0xFF,
            REG_EOI => self.eoi(),
            REG_LDR if !self.x2apic() => self.ldr = val & 0xFF00_0000,
            REG_DFR if !self.x2apic() => self.dfr = val | 0x0FFF_FFFF,
            REG_SVR => {
                self.svr = val & 0x3FF;
                if val & SVR_ENABLE == 0 {
                    for l in &mut self.lvt {
                        *l |= LVT_MASKED;
                    }
                }
            }
            REG_ESR => {
                self.esr = self.esr_pending;
                self.esr_pending = 0;
            }
            REG_ICR_LO => {
                let lo = val & !(1 << 12);
                self.icr = (self.icr & !0xFFFF_FFFF) | lo as u64;
                let ipi = Ipi::decode(self.icr, self.x2apic());
                if matches!(ipi.mode, Delivery::Fixed | Delivery::LowestPriority) && ipi.vector < 16
                {
                    self.error(ESR_SEND_ILLEGAL);
                    return None;
                }
                return Some(ipi);
            }
            REG_ICR_HI if !self.x2apic() => {
                self.icr = (self.icr & 0xFFFF_FFFF) | (((val & 0xFF00_0000) as u64) << 32);
            }
            REG_LVT_CMCI | REG_LVT_TIMER..=REG_LVT_ERROR => {
                let i = lvt_index(offset);
                let mut v = val & lvt_mask(i);
                if i == LVT_TIMER {
                    if v & TIMER_MODE_MASK == TIMER_MODE_MASK
                        || (!TSC_DEADLINE && v & TIMER_MODE_MASK == TIMER_TSC_DEADLINE)
                    {
                        // Reserved mode: keep the current one.
                        v = (v & !TIMER_MODE_MASK) | self.timer_mode();
                    }
                    let was = self.timer_mode();
                    let now = v & TIMER_MODE_MASK;
                    if (was == TIMER_TSC_DEADLINE) != (now == TIMER_TSC_DEADLINE) {
                        // Switching to or from TSC-deadline disarms the timer.
                        self.timer.initial = 0;
                        self.timer.start = None;
                        self.timer.tsc_deadline = 0;
                        self.timer.due = None;
                    } else if was != now
                        && let Some(start) = self.timer.start
                    {
                        // One-shot <-> periodic: the count goes on in the new mode.
                        let p = self.timer.period_ns().max(1);
                        let passed = clk.ns.saturating_sub(start);
                        self.timer.due = if now == TIMER_PERIODIC {
                            Some(start.saturating_add((passed / p + 1).saturating_mul(p)))
                        } else if passed < p {
                            Some(start + p)
                        } else {
                            self.timer.start = None;
                            None
                        };
                        if now == TIMER_PERIODIC && passed >= p {
                            // Re-phase so the current count stays continuous.
                            self.timer.start = Some(start + (passed / p) * p);
                        }
                    }
                }
                if self.svr & SVR_ENABLE == 0 {
                    v |= LVT_MASKED;
                }
                self.lvt[i] = v;
            }
            REG_TIMER_INITIAL if self.timer_mode() != TIMER_TSC_DEADLINE => {
                self.timer.initial = val;
                self.start_count(clk);
            }
            REG_TIMER_DIVIDE => {
                let before = self.current_count(clk);
                self.timer.tdcr = val & 0xB;
                // The count goes on from where it is, at the new rate.
                if self.timer.start.is_some() && self.timer.initial != 0 {
                    let tick = BUS_CYCLE_NS * self.timer.divisor();
                    let done = (self.timer.initial - before) as u64;
                    self.timer.start = Some(clk.ns.saturating_sub(done * tick));
                    self.timer.due = Some(clk.ns.saturating_add(before as u64 * tick));
                }
            }
            _ => {}
        }
        None
    }

    /// An MMIO read of `len` bytes at `offset` in the xAPIC page. Accesses
    /// that do not fit in one 32-bit register read 0.
    pub fn mmio_read(&self, offset: u64, len: u8, clk: &Clock) -> u64 {
        let align = (offset & 0xF) as u32;
        if len == 0 || align + len as u32 > 4 || offset >= 0x1000 {
            return 0;
        }
        let reg = self.read_reg((offset & !0xF) as u32, clk) as u64;
        let v = reg >> (align * 8);
        if len >= 4 {
            v
        } else {
            v & ((1u64 << (len * 8)) - 1)
        }
    }

    /// An MMIO write of `len` bytes at `offset` in the xAPIC page (narrow
    /// writes merge into the register, as Xen; wider or misaligned ones are
    /// ignored).
    pub fn mmio_write(&mut self, offset: u64, len: u8, val: u64, clk: &Clock) -> Option<Ipi> {
        let align = (offset & 0xF) as u32;
        let reg = (offset & !0xF) as u32;
        if len == 0 || align + len as u32 > 4 || reg > REG_TIMER_DIVIDE {
            return None;
        }
        let val = if len < 4 {
            let old = self.read_reg(reg, clk);
            let m = ((1u32 << (len * 8)) - 1) << (align * 8);
            (old & !m) | (((val as u32) << (align * 8)) & m)
        } else {
            val as u32
        };
        self.write_reg(reg, val, clk)
    }

    /// RDMSR of an MSR this module owns ([`owns_msr`]).
    pub fn rdmsr(&self, msr: u32, clk: &Clock) -> Result<u64, Gp> {
        match msr {
            MSR_APIC_BASE => Ok(self.base),
            MSR_TSC_DEADLINE if TSC_DEADLINE => Ok(self.tsc_deadline()),
            MSR_X2APIC_FIRST..=MSR_X2APIC_LAST => {
                if !self.x2apic() {
                    return Err(Gp);
                }
                let off = (msr - MSR_X2APIC_FIRST) << 4;
                let readable = matches!(
                    off,
                    REG_ID
                        | REG_VERSION
                        | REG_TPR
                        | REG_PPR
                        | REG_LDR
                        | REG_SVR
                        | REG_ESR
                        | REG_ICR_LO
                        | REG_LVT_CMCI
                        | REG_TIMER_INITIAL
                        | REG_TIMER_CURRENT
                        | REG_TIMER_DIVIDE
                        | 0x100..=0x270
                        | REG_LVT_TIMER..=REG_LVT_ERROR
                );
                if !readable {
                    return Err(Gp);
                }
                let v = self.read_reg(off, clk) as u64;
                Ok(if off == REG_ICR_LO {
                    v | (self.icr & 0xFFFF_FFFF_0000_0000)
                } else {
                    v
                })
            }
            _ => Err(Gp),
        }
    }

    /// WRMSR of an MSR this module owns; an ICR or SELF_IPI write returns
    /// the IPI to send.
    pub fn wrmsr(&mut self, msr: u32, val: u64, clk: &Clock) -> Result<Option<Ipi>, Gp> {
        match msr {
            MSR_APIC_BASE => self.write_base(val).map(|()| None),
            MSR_TSC_DEADLINE if TSC_DEADLINE => {
                self.set_tsc_deadline(val, clk);
                Ok(None)
            }
            MSR_X2APIC_FIRST..=MSR_X2APIC_LAST => {
                if !self.x2apic() {
                    return Err(Gp);
                }
                let off = (msr - MSR_X2APIC_FIRST) << 4;
                let lvt_ok = |m: u32| val & !(m as u64) == 0;
                let ok = match off {
                    REG_TPR => val & !0xFF == 0,
                    REG_SVR => val & !0x3FF & !(1 << 9) == 0 && val & (1 << 12) == 0,
                    REG_LVT_TIMER => lvt_ok(lvt_mask(LVT_TIMER)),
                    REG_LVT_THERMAL | REG_LVT_PERF | REG_LVT_CMCI => lvt_ok(LVT_MASK_DM),
                    REG_LVT_LINT0 | REG_LVT_LINT1 => lvt_ok(LINT_MASK),
                    REG_LVT_ERROR => lvt_ok(LVT_MASK_BASIC),
                    REG_TIMER_INITIAL => val >> 32 == 0,
                    REG_TIMER_DIVIDE => val & !0xB == 0,
                    REG_ICR_LO => val as u32 & !0x000C_CFFF == 0,
                    REG_SELF_IPI => val & !0xFF == 0,
                    REG_EOI | REG_ESR => val == 0,
                    _ => false,
                };
                if !ok {
                    return Err(Gp);
                }
                match off {
                    REG_ICR_LO => {
                        self.icr = val & 0xFFFF_FFFF_FFFF_EFFF;
                        let ipi = Ipi::decode(self.icr, true);
                        if matches!(ipi.mode, Delivery::Fixed | Delivery::LowestPriority)
                            && ipi.vector < 16
                        {
                            self.error(ESR_SEND_ILLEGAL);
                            return Ok(None);
                        }
                        Ok(Some(ipi))
                    }
                    REG_SELF_IPI => {
                        let v = val as u8;
                        if v < 16 {
                            self.error(ESR_SEND_ILLEGAL);
                            return Ok(None);
                        }
                        Ok(Some(Ipi {
                            vector: v,
                            mode: Delivery::Fixed,
                            logical: false,
                            assert: true,
                            level_triggered: false,
                            shorthand: Shorthand::SelfOnly,
                            dest: 0,
                            x2apic: true,
                        }))
                    }
                    _ => Ok(self.write_reg(off, val as u32, clk)),
                }
            }
            _ => Err(Gp),
        }
    }

    /// IA32_APIC_BASE write with the SDM's (and Xen's) rules: no reserved
    /// bits, the xAPIC window stays at its default address, xAPIC ->
    /// x2APIC but not back, no direct disabled -> x2APIC, x2APIC ->
    /// disabled allowed; enabling resets the APIC; BSP is read-only.
    pub fn write_base(&mut self, val: u64) -> Result<(), Gp> {
        if val & !(BASE_ADDR_MASK | BASE_ENABLE | BASE_BSP | BASE_EXTD) != 0 {
            return Err(Gp);
        }
        let val = (val & !BASE_BSP) | (self.base & BASE_BSP);
        if val & (BASE_EXTD | BASE_ENABLE) == BASE_ENABLE
            && val & BASE_ADDR_MASK != APIC_DEFAULT_BASE
        {
            return Err(Gp);
        }
        let old = self.base;
        if (old ^ val) & BASE_ENABLE != 0 {
            if val & BASE_EXTD != 0 {
                return Err(Gp);
            }
            self.base = val;
            self.reset();
            if val & BASE_ENABLE == 0 {
                // Disabled: nothing pending, nothing counting.
                self.timer = Timer::default();
            }
            return Ok(());
        }
        let xapic_mode = old & (BASE_ENABLE | BASE_EXTD) == BASE_ENABLE;
        if (old ^ val) & BASE_EXTD != 0 && !xapic_mode {
            return Err(Gp);
        }
        self.base = val;
        if self.x2apic() && old & BASE_EXTD == 0 {
            self.set_x2apic_id();
        }
        Ok(())
    }
}

/// Does the vLAPIC own MSR `msr` (APIC_BASE, TSC_DEADLINE, the x2APIC range)?
pub fn owns_msr(msr: u32) -> bool {
    matches!(msr, MSR_APIC_BASE | MSR_X2APIC_FIRST..=MSR_X2APIC_LAST)
        || (TSC_DEADLINE && msr == MSR_TSC_DEADLINE)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HZ: u64 = 2_000_000_000;
    fn clk(ns: u64) -> Clock {
        Clock {
            ns,
            tsc: ns * 2,
            tsc_hz: HZ,
        }
    }

    fn enabled(vcpu: u32) -> Vlapic {
        let mut a = Vlapic::new(vcpu);
        a.write_reg(REG_SVR, SVR_ENABLE | 0xFF, &clk(0));
        a
    }

    fn x2(vcpu: u32) -> Vlapic {
        let mut a = enabled(vcpu);
        a.wrmsr(MSR_APIC_BASE, a.base_msr() | BASE_EXTD, &clk(0))
            .unwrap();
        a
    }

    #[test]
    fn reset_state_and_ids() {
        let c = clk(0);
        let a = Vlapic::new(0);
        assert_eq!(a.base_msr(), 0xFEE0_0900);
        assert_eq!(
            Vlapic::new(3).base_msr(),
            0xFEE0_0800,
            "only vCPU 0 is the BSP"
        );
        assert_eq!(
            Vlapic::new(3).read_reg(REG_ID, &c),
            6 << 24,
            "APIC id 2 x vCPU"
        );
        assert_eq!(a.read_reg(REG_VERSION, &c), 0x0005_0014);
        assert_eq!(a.read_reg(REG_SVR, &c), 0xFF);
        assert_eq!(a.read_reg(REG_DFR, &c), u32::MAX);
        for r in LVT_REGS {
            assert_eq!(a.read_reg(r, &c), LVT_MASKED, "{r:#x}");
        }
        assert!(!a.enabled(), "software-disabled at reset");
        assert_eq!(a.mmio_base(), Some(APIC_DEFAULT_BASE));
        assert_eq!(apic_id(5), 10);
    }

    #[test]
    fn x2apic_switching_rules() {
        let c = clk(0);
        let mut a = Vlapic::new(2);
        let base = a.base_msr();
        // x2APIC MSRs are #GP in xAPIC mode.
        assert_eq!(a.rdmsr(0x802, &c), Err(Gp));
        assert_eq!(a.wrmsr(0x80B, 0, &c), Err(Gp));
        // Reserved bits, relocation.
        assert_eq!(a.write_base(base | 1), Err(Gp));
        assert_eq!(a.write_base((base & 0xFFF) | 0xFEC0_0000), Err(Gp));
        // xAPIC -> x2APIC.
        a.write_base(base | BASE_EXTD).unwrap();
        assert!(a.x2apic());
        assert_eq!(a.mmio_base(), None, "no MMIO page in x2APIC mode");
        assert_eq!(a.rdmsr(0x802, &c), Ok(4), "x2APIC id = 2 x vCPU");
        assert_eq!(a.rdmsr(0x80D, &c), Ok(1 << 4), "LDR derived from the id");
        assert_eq!(a.rdmsr(0x803, &c), Ok(0x0005_0014));
        // x2APIC -> xAPIC is refused; the mode stays.
        assert_eq!(a.write_base(base), Err(Gp));
        assert!(a.x2apic());
        // x2APIC -> disabled is allowed.
        a.write_base(base & !(BASE_ENABLE | BASE_EXTD)).unwrap();
        assert!(!a.hw_enabled());
        // Disabled -> x2APIC directly is refused, and EXTD without ENABLE.
        assert_eq!(a.write_base(base | BASE_EXTD), Err(Gp));
        assert_eq!(a.write_base((base & !BASE_ENABLE) | BASE_EXTD), Err(Gp));
        // Disabled -> xAPIC resets the APIC.
        a.write_base(base).unwrap();
        assert!(a.hw_enabled() && !a.x2apic());
        assert_eq!(a.read_reg(REG_ID, &c), 4 << 24);
        // The BSP bit cannot be changed.
        a.write_base(base | BASE_BSP).unwrap();
        assert_eq!(a.base_msr() & BASE_BSP, 0);
    }

    #[test]
    fn x2apic_msr_access_rules() {
        let c = clk(0);
        let mut a = x2(1);
        // Write-only and read-only registers.
        assert_eq!(a.rdmsr(0x80B, &c), Err(Gp), "EOI is write-only");
        assert_eq!(a.rdmsr(0x83F, &c), Err(Gp), "SELF_IPI is write-only");
        assert_eq!(a.wrmsr(0x802, 0, &c), Err(Gp), "ID is read-only");
        assert_eq!(a.wrmsr(0x80A, 0, &c), Err(Gp), "PPR is read-only");
        assert_eq!(a.rdmsr(0x80E, &c), Err(Gp), "no DFR in x2APIC mode");
        assert_eq!(a.rdmsr(0x809, &c), Err(Gp), "no APR");
        assert_eq!(a.wrmsr(0x80B, 1, &c), Err(Gp), "EOI of a non-zero value");
        assert_eq!(a.wrmsr(0x808, 0x100, &c), Err(Gp), "TPR reserved bits");
        assert_eq!(a.wrmsr(0x83E, 0x10, &c), Err(Gp), "TDCR reserved bits");
        assert_eq!(
            a.wrmsr(0x830, 1 << 12, &c),
            Err(Gp),
            "ICR delivery-status bit"
        );
        a.wrmsr(0x808, 0x20, &c).unwrap();
        assert_eq!(a.rdmsr(0x808, &c), Ok(0x20));
        // ICR is one 64-bit register.
        let ipi = a.wrmsr(0x830, (7u64 << 32) | 0x40, &c).unwrap().unwrap();
        assert_eq!((ipi.vector, ipi.dest, ipi.mode), (0x40, 7, Delivery::Fixed));
        assert_eq!(a.rdmsr(0x830, &c), Ok((7u64 << 32) | 0x40));
        let ipi = a.wrmsr(0x83F, 0x51, &c).unwrap().unwrap();
        assert_eq!((ipi.vector, ipi.shorthand), (0x51, Shorthand::SelfOnly));
    }

    #[test]
    fn priority_ppr_ack_eoi() {
        let c = clk(0);
        let mut a = enabled(0);
        assert!(a.set_irr(0x31));
        assert!(a.set_irr(0x52));
        assert_eq!(a.highest_deliverable(), Some(0x52));
        a.ack(0x52);
        assert_eq!(a.read_reg(REG_PPR, &c), 0x50);
        assert_eq!(a.read_reg(REG_ISR + 0x20, &c), 1 << (0x52 - 64));
        // 0x31 is below the in-service class.
        assert_eq!(a.highest_deliverable(), None);
        // A higher class nests.
        a.set_irr(0x61);
        assert_eq!(a.highest_deliverable(), Some(0x61));
        a.ack(0x61);
        a.eoi();
        assert!(!a.in_service(0x61) && a.in_service(0x52));
        a.eoi();
        assert_eq!(a.highest_deliverable(), Some(0x31));
        // TPR masks classes at or below it.
        a.write_reg(REG_TPR, 0x30, &c);
        assert_eq!(a.read_reg(REG_PPR, &c), 0x30);
        assert_eq!(a.highest_deliverable(), None);
        a.write_reg(REG_TPR, 0x2F, &c);
        assert_eq!(a.highest_deliverable(), Some(0x31));
        // Illegal vectors set the ESR, latched by an ESR write.
        assert!(!a.set_irr(5));
        assert_eq!(a.read_reg(REG_ESR, &c), 0);
        a.write_reg(REG_ESR, 0, &c);
        assert_eq!(a.read_reg(REG_ESR, &c), ESR_RECV_ILLEGAL);
        a.write_reg(REG_ESR, 0, &c);
        assert_eq!(a.read_reg(REG_ESR, &c), 0);
        // A software-disabled APIC delivers nothing and drops fixed interrupts.
        a.write_reg(REG_SVR, 0xFF, &c);
        assert_eq!(a.highest_deliverable(), None);
        assert!(!a.set_irr(0x70));
        assert_eq!(a.read_reg(REG_LVT_TIMER, &c) & LVT_MASKED, LVT_MASKED);
    }

    #[test]
    fn icr_xapic_and_routing() {
        let c = clk(0);
        let mut a = enabled(0);
        assert_eq!(a.write_reg(REG_ICR_HI, 0x0200_0000, &c), None);
        let ipi = a.write_reg(REG_ICR_LO, 0x4000 | 0x500, &c).unwrap();
        assert_eq!(ipi.mode, Delivery::Init);
        assert_eq!(ipi.dest, 2);
        assert_eq!(a.read_reg(REG_ICR_LO, &c) & (1 << 12), 0, "idle");
        let ipi = a.write_reg(REG_ICR_LO, 0x0600 | 0x9A, &c).unwrap();
        assert_eq!((ipi.mode, ipi.vector), (Delivery::Startup, 0x9A));
        // Sending an illegal fixed vector is an error, not an IPI.
        assert_eq!(a.write_reg(REG_ICR_LO, 0x05, &c), None);
        a.write_reg(REG_ESR, 0, &c);
        assert_eq!(a.read_reg(REG_ESR, &c), ESR_SEND_ILLEGAL);
        // Physical destinations.
        let b = enabled(1); // APIC id 2
        let phys = |dest| Ipi::decode(((dest as u64) << 56) | 0x40, false);
        assert!(b.matches(&phys(2)));
        assert!(!b.matches(&phys(1)));
        assert!(b.matches(&phys(0xFF)), "broadcast");
        // Logical, flat model.
        let mut b = enabled(1);
        b.write_reg(REG_LDR, 0x0400_0000, &c);
        let log = |dest| Ipi::decode(((dest as u64) << 56) | 0x800 | 0x40, false);
        assert!(b.matches(&log(0x06)));
        assert!(!b.matches(&log(0x01)));
        // Cluster model.
        b.write_reg(REG_DFR, 0x0FFF_FFFF, &c);
        b.write_reg(REG_LDR, 0x2100_0000, &c);
        assert!(b.matches(&log(0x23)));
        assert!(!b.matches(&log(0x13)));
        // x2APIC logical: cluster 0, bit (id & 15).
        let x = x2(3); // id 6, LDR 1 << 6
        let xl = |dest: u32| Ipi::decode(((dest as u64) << 32) | 0x800 | 0x40, true);
        assert!(x.matches(&xl(1 << 6)));
        assert!(!x.matches(&xl(1 << 5)));
        assert!(!x.matches(&xl((1 << 16) | (1 << 6))));
        let xp = |dest: u32| Ipi::decode(((dest as u64) << 32) | 0x40, true);
        assert!(x.matches(&xp(6)));
        assert!(x.matches(&xp(u32::MAX)));
        assert!(
            !x.matches(&xp(0xFF)),
            "0xFF is not a broadcast in x2APIC mode"
        );
        let d = Ipi::decode((1 << 15) | 0x500, false);
        assert!(d.is_init_deassert());
    }

    #[test]
    fn one_shot_timer_counts_down_and_fires_once() {
        let mut a = enabled(0);
        a.write_reg(REG_TIMER_DIVIDE, 0x3, &clk(0)); // divide by 16: 160 ns per tick
        a.write_reg(REG_LVT_TIMER, 0x40, &clk(0));
        a.write_reg(REG_TIMER_INITIAL, 1000, &clk(1000));
        assert_eq!(a.take_timer_change(), Some(Some(1000 + 160_000)));
        assert_eq!(a.take_timer_change(), None);
        assert_eq!(a.read_reg(REG_TIMER_CURRENT, &clk(1000)), 1000);
        assert_eq!(a.read_reg(REG_TIMER_CURRENT, &clk(1000 + 1600)), 990);
        assert!(!a.timer_expired(&clk(100_000)), "not yet due");
        assert!(a.timer_expired(&clk(161_500)));
        assert_eq!(a.highest_deliverable(), Some(0x40));
        assert_eq!(a.read_reg(REG_TIMER_CURRENT, &clk(170_000)), 0);
        assert_eq!(a.take_timer_change(), Some(None));
        assert!(!a.timer_expired(&clk(400_000)), "one-shot fires once");
        // Writing 0 stops it.
        a.write_reg(REG_TIMER_INITIAL, 5, &clk(500_000));
        a.write_reg(REG_TIMER_INITIAL, 0, &clk(500_001));
        assert_eq!(a.timer_due(), None);
    }

    #[test]
    fn periodic_timer_rearms_and_masked_timer_counts() {
        let mut a = enabled(0);
        a.write_reg(REG_TIMER_DIVIDE, 0xB, &clk(0)); // divide by 1: 10 ns per tick
        a.write_reg(REG_LVT_TIMER, TIMER_PERIODIC | LVT_MASKED | 0x41, &clk(0));
        a.write_reg(REG_TIMER_INITIAL, 100, &clk(0)); // 1 us
        assert_eq!(a.read_reg(REG_TIMER_CURRENT, &clk(2_500)), 50);
        // Masked: counts, re-arms, raises nothing.
        assert!(!a.timer_expired(&clk(1_000)));
        assert_eq!(a.timer_due(), Some(2_000));
        a.write_reg(REG_LVT_TIMER, TIMER_PERIODIC | 0x41, &clk(1_500));
        // A late wake-up skips missed periods, keeping the phase.
        assert!(a.timer_expired(&clk(5_300)));
        assert_eq!(a.timer_due(), Some(6_000));
        assert_eq!(a.highest_deliverable(), Some(0x41));
        // Divide changes keep the current count.
        let before = a.read_reg(REG_TIMER_CURRENT, &clk(5_500));
        a.write_reg(REG_TIMER_DIVIDE, 0x0, &clk(5_500)); // by 2
        assert_eq!(a.read_reg(REG_TIMER_CURRENT, &clk(5_500)), before);
        assert_eq!(a.timer_due(), Some(5_500 + before as u64 * 20));
    }

    #[test]
    fn tsc_deadline_mode() {
        let mut a = x2(0);
        let c = clk(1_000);
        // Outside the mode the MSR reads 0 and ignores writes.
        a.wrmsr(MSR_TSC_DEADLINE, 5_000, &c).unwrap();
        assert_eq!(a.rdmsr(MSR_TSC_DEADLINE, &c), Ok(0));
        a.wrmsr(0x832, (TIMER_TSC_DEADLINE | 0x42) as u64, &c)
            .unwrap();
        // TMICT is ignored in this mode.
        a.wrmsr(0x838, 100, &c).unwrap();
        assert_eq!(a.rdmsr(0x838, &c), Ok(0));
        a.wrmsr(MSR_TSC_DEADLINE, 2_000 + 4_000, &c).unwrap(); // TSC 2/ns: 2000 ns ahead
        assert_eq!(a.timer_due(), Some(3_000));
        assert_eq!(a.rdmsr(MSR_TSC_DEADLINE, &c), Ok(6_000));
        assert!(a.timer_expired(&clk(3_000)));
        assert_eq!(
            a.rdmsr(MSR_TSC_DEADLINE, &c),
            Ok(0),
            "cleared when it fires"
        );
        assert_eq!(a.highest_deliverable(), Some(0x42));
        // A deadline in the past is due now; 0 disarms.
        a.wrmsr(MSR_TSC_DEADLINE, 1, &clk(4_000)).unwrap();
        assert_eq!(a.timer_due(), Some(4_000));
        a.wrmsr(MSR_TSC_DEADLINE, 0, &clk(4_000)).unwrap();
        assert_eq!(a.timer_due(), None);
        // Leaving the mode disarms.
        a.wrmsr(MSR_TSC_DEADLINE, 100_000, &clk(4_000)).unwrap();
        a.wrmsr(0x832, 0x42, &clk(4_000)).unwrap();
        assert_eq!(a.timer_due(), None);
    }

    #[test]
    fn mmio_widths() {
        let c = clk(0);
        let mut a = Vlapic::new(1);
        assert_eq!(a.mmio_read(0x20, 4, &c), 2 << 24);
        assert_eq!(a.mmio_read(0x23, 1, &c), 2);
        assert_eq!(a.mmio_read(0x22, 4, &c), 0, "straddles the register");
        a.mmio_write(0xF0, 4, 0x1FF, &c);
        assert!(a.enabled());
        a.mmio_write(0x80, 1, 0x7733, &c);
        assert_eq!(a.read_reg(REG_TPR, &c), 0x33, "byte write merges");
        assert_eq!(
            a.mmio_write(0x300, 8, 0x40, &c),
            None,
            "8-byte write ignored"
        );
        assert_eq!(a.mmio_read(0x5000, 4, &c), 0);
    }

    #[test]
    fn garbage_never_panics() {
        // Every register offset and MSR with assorted values, in both modes.
        let vals = [
            0u64,
            1,
            0xFF,
            0x1FF,
            0xFFFF_FFFF,
            u64::MAX,
            0x0002_0040,
            0x6_0040,
        ];
        for mode in 0..3 {
            let mut a = match mode {
                0 => Vlapic::new(1),
                1 => enabled(1),
                _ => x2(1),
            };
            for (i, &v) in vals.iter().cycle().take(4096).enumerate() {
                let c = clk(i as u64 * 997);
                let off = (i as u64 * 16) & 0xFFF;
                let _ = a.mmio_write(off, 4, v, &c);
                let _ = a.mmio_read(off, 4, &c);
                let msr = 0x800 + (i as u32 & 0xFF);
                let _ = a.wrmsr(msr, v, &c);
                let _ = a.rdmsr(msr, &c);
                let _ = a.timer_expired(&c);
                a.set_irr((v as u8).wrapping_add(i as u8));
                if let Some(x) = a.highest_deliverable() {
                    a.ack(x);
                }
                a.eoi();
            }
        }
    }
}
