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

pub mod console;
pub mod domctl;
pub mod hvm;
pub mod memory;
pub mod sched;
pub mod sysctl;
pub mod vcpu;
pub mod version;
pub mod xsm;

#[cfg(test)]
mod tests;

use crate::domain::{DomSnap, Domain, GuestVcpu};
use crate::gate::{Op, Permit, Request};
use crate::guestmem::{GuestView, PagingState, ReadVecError};
use crate::hv::Hv;
use crate::p2m::PhysView;
use crate::vcpu::Vcpu;
use alloc::sync::Arc;
use alloc::vec::Vec;
use warden_abi::{DOMID_SELF, DomId, Pod, errno, hypercall as hc};

/// A hypercall's result: a non-negative value, or an errno.
pub type HcResult = Result<u64, i32>;

/// Not an errno the guest sees (Xen's internal -ERESTART): a handler that
/// returns it has not completed; the guest executes the same hypercall
/// again (with the arguments [`Call::continue_with`] set, else unchanged)
/// once the CPU has run its housekeeping and whatever the scheduler picks.
pub const ERESTART: i32 = 85;

/// One hypercall in progress.
pub struct Call<'a> {
    pub hv: &'a Hv,
    pub cpu: u32,
    /// The calling vCPU.
    pub vcpu: &'a Arc<GuestVcpu>,
    /// Its hardware state (locked by the run loop).
    pub hw: &'a mut dyn Vcpu,
    /// The caller as the gate sees it.
    pub caller: DomSnap,
    paging: PagingState,
    /// Set by handlers after which the run loop must reconsider what runs.
    pub resched: bool,
    /// The handler set the arguments the hypercall is executed again with.
    continued: bool,
}

impl<'a> Call<'a> {
    /// The calling domain.
    pub fn dom(&self) -> &Arc<Domain> {
        &self.vcpu.domain
    }

    /// Scheduler key of the calling vCPU.
    pub fn key(&self) -> (DomId, u32) {
        (self.vcpu.domid, self.vcpu.id)
    }

    /// Run `f` on the caller's address space.
    fn guest<R>(&self, f: impl FnOnce(&GuestView<'_>) -> R) -> Result<R, i32> {
        let m = self.dom().mem.read();
        let p2m = m.p2m.as_ref().ok_or(errno::ESRCH)?;
        let pv = PhysView {
            p2m,
            mem: self.hv.platform.mem(),
        };
        Ok(f(&GuestView::new(&pv, self.paging)))
    }

    /// Read a structure from the caller's memory.
    pub fn read<T: Pod>(&self, va: u64) -> Result<T, i32> {
        self.guest(|g| g.read_pod::<T>(va))?
            .map_err(|_| errno::EFAULT)
    }

    /// Write a structure to the caller's memory.
    pub fn write<T: Pod>(&self, va: u64, v: &T) -> Result<(), i32> {
        self.guest(|g| g.write_pod(va, v))?
            .map_err(|_| errno::EFAULT)
    }

    /// Element `i` of an array of `T` in the caller's memory.
    pub fn read_elem<T: Pod>(&self, va: u64, i: u64) -> Result<T, i32> {
        self.guest(|g| g.read_elem::<T>(va, i))?
            .map_err(|_| errno::EFAULT)
    }

    /// Write element `i` of an array of `T` in the caller's memory.
    pub fn write_elem<T: Pod>(&self, va: u64, i: u64, v: &T) -> Result<(), i32> {
        self.guest(|g| g.write_elem(va, i, v))?
            .map_err(|_| errno::EFAULT)
    }

    /// Write bytes to the caller's memory.
    pub fn write_bytes(&self, va: u64, data: &[u8]) -> Result<(), i32> {
        self.guest(|g| g.write(va, data))?
            .map_err(|_| errno::EFAULT)
    }

    /// Read `len` bytes (at most `max`, else `too_large`) from the caller's memory.
    pub fn read_bytes(
        &self,
        va: u64,
        len: usize,
        max: usize,
        too_large: i32,
    ) -> Result<Vec<u8>, i32> {
        self.guest(|g| g.read_vec(va, len, max))?
            .map_err(|e| match e {
                ReadVecError::TooLarge => too_large,
                ReadVecError::NoMemory => errno::ENOMEM,
                ReadVecError::Fault(_) => errno::EFAULT,
            })
    }

    /// Snapshot of domain `id` (DOMID_SELF: the caller) for a check.
    pub fn target(&self, id: DomId) -> Result<DomSnap, i32> {
        if id == DOMID_SELF || id == self.caller.id {
            return Ok(self.caller);
        }
        self.hv.domains.snapshot(id).ok_or(errno::ESRCH)
    }

    /// Run operation `O`'s checks with no target.
    pub fn check<O: Op>(&self) -> Result<Permit<O>, i32> {
        self.check_req::<O>(None, None)
    }

    /// Run operation `O`'s checks against `target` (and a label argument).
    pub fn check_req<O: Op>(
        &self,
        target: Option<DomSnap>,
        new_sid: Option<u32>,
    ) -> Result<Permit<O>, i32> {
        self.hv.gate.check::<O>(&Request {
            caller: &self.caller,
            target,
            new_sid,
            cpu: self.cpu,
            cache: Some(&self.vcpu.decisions),
        })
    }

    /// The domain a permit was checked for.
    pub fn resolve<O: Op>(&self, p: &Permit<O>) -> Result<Arc<Domain>, i32> {
        let t = p.target().ok_or(errno::ESRCH)?;
        if t.id == self.caller.id && t.generation == self.dom().generation {
            return Ok(self.dom().clone());
        }
        self.hv.domains.resolve(t)
    }

    /// Stop here and have the guest execute this hypercall again with its
    /// first `a.len()` (at most 5) arguments replaced by `a`, the others
    /// unchanged (Xen's `hypercall_create_continuation`): bounded work per
    /// call. Returns [`ERESTART`] for the handler to return.
    pub fn continue_with(&mut self, a: &[u64]) -> i32 {
        let mut args = self.hw.hypercall_args();
        let n = a.len().min(5);
        args.a[..n].copy_from_slice(&a[..n]);
        self.hw.continue_hypercall(&args);
        self.continued = true;
        ERESTART
    }

    /// Log an unknown sub-operation (rate limited) and return ENOSYS.
    pub fn unknown(&self, what: &str, n: u64) -> HcResult {
        self.hv
            .log_unknown(self.caller.id, format_args!("{what} {n}"));
        Err(errno::ENOSYS)
    }
}

/// Handle the hypercall `v` just made. Returns whether the run loop must
/// re-evaluate scheduling.
pub fn hypercall(hv: &Hv, cpu: u32, v: &Arc<GuestVcpu>, hw: &mut dyn Vcpu) -> bool {
    let args = hw.hypercall_args();
    let paging = hw.paging();
    let cpl = hw.cpl();
    let (ret, resched, continued) = match hv.domains.snapshot(v.domid) {
        _ if cpl != 0 => (Err(errno::EPERM), false, false),
        None => (Err(errno::ESRCH), true, false),
        Some(caller) => {
            let mut c = Call {
                hv,
                cpu,
                vcpu: v,
                hw,
                caller,
                paging,
                resched: false,
                continued: false,
            };
            let r = dispatch(&mut c, args.nr, &args.a);
            (r, c.resched, c.continued)
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
        hc::SCHED_OP => sched::sched_op(c, a[0], a[1]),
        hc::VCPU_OP => vcpu::vcpu_op(c, a[0], a[1], a[2]),
        hc::HVM_OP => hvm::hvm_op(c, a[0], a[1]),
        hc::MEMORY_OP => memory::memory_op(c, a[0], a[1]),
        hc::DOMCTL => domctl::domctl(c, a[0]),
        hc::SYSCTL => sysctl::sysctl(c, a[0]),
        hc::XSM_OP => xsm::xsm_op(c, a[0]),
        n => c.unknown("hypercall", n as u64),
    }
}

impl GuestVcpu {
    /// Complete a hypercall on this vCPU's hardware state.
    fn hw_finish(&self, hw: &mut dyn Vcpu, ret: u64) {
        hw.finish_hypercall(ret);
    }
}
