//! The hypercall dispatcher: the one entry point for every hypercall.
//!
//! For each call: a caller outside ring 0 gets -EPERM; the hypercall number
//! and sub-operation select an operation type of the gate table (unknown ones
//! get -ENOSYS and a rate-limited log line); the arguments the checks need
//! (the target domain's snapshot, a label argument) are resolved from the
//! caller's own memory without taking any lock shared with other domains;
//! [`Gate::check`](crate::gate::Gate::check) runs the operation's checks; only
//! its [`Permit`](crate::gate::Permit) lets the handler run. Guest memory is
//! touched only through [`Call`]'s checked copy helpers (-EFAULT on a bad
//! address).
//!
//! Handlers never see the hypervisor itself: [`Call`] (in its own module,
//! beside the handlers) keeps it private and hands out only what a permit of
//! the right operation type unlocks ([`Own`], [`Resolved`], [`Global`], the
//! security server; the kinds are listed in [`unlocks`]). A handler whose
//! check line is deleted has no permit to present and does not compile:
//!
//! ```compile_fail,E0616
//! // Call does not expose the hypervisor.
//! fn yield_now(c: &mut hvcore::hypercall::Call<'_>) {
//!     let _ = c.hv;
//! }
//! ```

pub mod console;
pub mod domctl;
pub mod evtchn;
pub mod grant_table;
pub mod hvm;
pub mod memory;
pub mod platform;
pub mod sched;
pub mod sysctl;
pub mod timer;
pub mod vcpu;
pub mod version;
pub mod xsm;

#[cfg(test)]
pub(crate) mod tests;

use crate::domain::GuestVcpu;
use crate::hv::Hv;
use crate::vcpu::Vcpu;
use alloc::sync::Arc;
use warden_abi::{errno, hypercall as hc};

mod call;
pub mod unlocks;

pub use call::{
    AdjustMemory, Call, Channels, ConsoleRing, Global, GrantSide, Own, Relabel, Resolved,
    SafePoints,
};

/// A hypercall's result: a non-negative value, or an errno.
pub type HcResult = Result<u64, i32>;

/// Not an errno the guest sees (Xen's internal -ERESTART): a handler that
/// returns it has not completed; the guest executes the same hypercall
/// again (with the arguments [`Call::continue_with`] set, else unchanged)
/// once the CPU has run its housekeeping and whatever the scheduler picks.
pub const ERESTART: i32 = 85;

/// Handle the hypercall `v` just made. Returns whether the run loop must
/// re-evaluate scheduling.
pub fn hypercall(hv: &Hv, cpu: u32, v: &Arc<GuestVcpu>, hw: &mut dyn Vcpu) -> bool {
    let args = hw.hypercall_args();
    let paging = hw.paging();
    let cpl = hw.cpl();
    let (ret, resched, continued) = match hv.caller_snapshot(v.domid) {
        _ if cpl != 0 => (Err(errno::EPERM), false, false),
        None => (Err(errno::ESRCH), true, false),
        Some(caller) => {
            let mut c = Call::new(hv, cpu, v, hw, caller, paging);
            let r = dispatch(&mut c, args.nr, &args.a);
            (r, c.resched, c.continued())
        }
    };
    let raw = match ret {
        Ok(x) => x,
        Err(ERESTART) => {
            restart(hw, &args, continued);
            return true;
        }
        Err(e) => (-(e as i64)) as u64,
    };
    v.hw_finish(hw, raw);
    resched
}

/// The hypercall did not complete: the guest executes it again (the run
/// loop runs its housekeeping and scheduling checks first), with the
/// arguments `continue_with` set (`continued`) or else unchanged.
#[cold]
#[inline(never)]
fn restart(hw: &mut dyn Vcpu, args: &crate::vcpu::HypercallArgs, continued: bool) {
    if !continued {
        hw.continue_hypercall(args);
    }
}

fn dispatch(c: &mut Call<'_>, nr: u64, a: &[u64; 5]) -> HcResult {
    if nr > u32::MAX as u64 {
        return c.unknown("hypercall", nr);
    }
    match nr as u32 {
        hc::CONSOLE_IO => console::console_io(c, a[0], a[1], a[2]),
        hc::XEN_VERSION => version::xen_version(c, a[0], a[1]),
        hc::SET_TIMER_OP => timer::set_timer_op(c, a[0]),
        hc::VM_ASSIST => timer::vm_assist(c, a[0], a[1]),
        hc::SCHED_OP => sched::sched_op(c, a[0], a[1]),
        hc::VCPU_OP => vcpu::vcpu_op(c, a[0], a[1], a[2]),
        hc::HVM_OP => hvm::hvm_op(c, a[0], a[1]),
        hc::EVENT_CHANNEL_OP => evtchn::event_channel_op(c, a[0], a[1]),
        hc::MEMORY_OP => memory::memory_op(c, a[0], a[1]),
        hc::DOMCTL => domctl::domctl(c, a[0]),
        hc::SYSCTL => sysctl::sysctl(c, a[0]),
        hc::XSM_OP => xsm::xsm_op(c, a[0]),
        hc::GRANT_TABLE_OP => grant_table::grant_table_op(c, a[0], a[1], a[2]),
        hc::PLATFORM_OP => platform::platform_op(c, a[0]),
        hc::MULTICALL => multicall(c, a[0], a[1]),
        // Xen 4.17 gives an HVM/PVH caller no mca at all, and physdev_op
        // only the PCI sub-ops for the hardware domain (hvm_physdev_op):
        // -ENOSYS without a check. Warden has no PCI devices to add,
        // remove or configure: -ENOSYS for those too, logged once.
        hc::MCA => c.absent(
            "mca",
            0,
            errno::ENOSYS,
            format_args!("mca: not available to HVM/PVH domains (as Xen 4.17)"),
        ),
        hc::PHYSDEV_OP => physdev_op(c, a[0]),
        n => c.unknown("hypercall", n as u64),
    }
}

/// Entries a multicall runs per execution before it continues itself from
/// the next one (Xen continues when `hypercall_preempt_check` asks it to):
/// bounded work between two chances for the CPU to run its housekeeping.
pub const MULTICALL_ENTRIES_PER_CALL: u32 = 16;

/// multicall(call_list, nr_calls) (Xen's `do_multicall` with
/// `hvm_do_multicall_call`, a 64-bit caller): each entry runs as the
/// hypercall it names, through the dispatcher and its checks, as if the
/// caller had made it; its result goes to the entry's `result` field. An
/// entry that continues itself has its arguments written back to it, and
/// the multicall continues from that entry (as Xen). A multicall inside a
/// multicall is -EINVAL (Xen: "Multicall reentry is disallowed"); an entry
/// that cannot be read or whose result cannot be written ends the call
/// with -EFAULT.
fn multicall(c: &mut Call<'_>, list: u64, nr: u64) -> HcResult {
    use warden_abi::xen::xen::multicall::{MulticallEntry, RESULT_OFFSET};
    if c.in_multicall() {
        return Err(errno::EINVAL);
    }
    let _p = c.check::<crate::gate::table::Multicall>()?;
    // Xen's handler takes a uint32_t count.
    let nr = nr as u32;
    const SIZE: u64 = core::mem::size_of::<MulticallEntry>() as u64;
    for i in 0..nr {
        let at = (i as u64)
            .checked_mul(SIZE)
            .and_then(|o| list.checked_add(o))
            .ok_or(errno::EFAULT)?;
        if i == MULTICALL_ENTRIES_PER_CALL {
            return Err(c.continue_with(&[at, (nr - i) as u64]));
        }
        let mut e: MulticallEntry = c.read(at)?;
        let mut args = [0u64; 5];
        args.copy_from_slice(&e.args[..5]);
        c.begin_entry(args);
        let r = dispatch(c, e.op, &args);
        let after = c.end_entry();
        match r {
            Err(ERESTART) => {
                // The entry continues: its new arguments into the list,
                // then the multicall from this entry on.
                e.args[..5].copy_from_slice(&after);
                c.write(at, &e)?;
                return Err(c.continue_with(&[at, (nr - i) as u64]));
            }
            r => {
                let raw = match r {
                    Ok(x) => x,
                    Err(e) => (-(e as i64)) as u64,
                };
                let field = at.checked_add(RESULT_OFFSET).ok_or(errno::EFAULT)?;
                c.write(field, &raw)?;
            }
        }
        c.refresh_caller()?;
    }
    Ok(0)
}

/// physdev_op for an HVM/PVH caller (Xen's `hvm_physdev_op`): the PIRQ
/// sub-ops need PIRQ support (none for PVH), the PCI ones are for the
/// hardware domain only, everything else is refused: -ENOSYS, with no
/// check. The hardware domain's PCI sub-ops (pci_mmcfg_reserved 24,
/// pci_device_add 25, pci_device_remove 26, dbgp_op 29) need the PCI
/// support Warden lacks: -ENOSYS too (Linux then manages without), logged
/// once.
fn physdev_op(c: &mut Call<'_>, cmd: u64) -> HcResult {
    const HWDOM_PCI: &[(u64, &str)] = &[
        (24, "pci_mmcfg_reserved"),
        (25, "pci_device_add"),
        (26, "pci_device_remove"),
        (29, "dbgp_op"),
    ];
    match HWDOM_PCI.iter().find(|(n, _)| *n == cmd) {
        Some((n, name)) if c.caller_is_hardware_domain() => c.absent(
            "physdev_op",
            *n as u32,
            errno::ENOSYS,
            format_args!("physdev_op {name} ({n}): Warden has no PCI devices to manage"),
        ),
        _ => Err(errno::ENOSYS),
    }
}

impl GuestVcpu {
    /// Complete a hypercall on this vCPU's hardware state.
    fn hw_finish(&self, hw: &mut dyn Vcpu, ret: u64) {
        hw.finish_hypercall(ret);
    }
}
