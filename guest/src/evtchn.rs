//! Event channels (Xen 4.17's 2-level ABI): a wrapper per event_channel_op
//! sub-op, and (with the runtime) the shared_info page: mapped with
//! XENMEM_add_to_physmap over a page of our own, scanned by the upcall
//! ([`crate::events`]) to find the pending ports.

use crate::hypercall::{Errno, HResult, call};
use warden_abi::xen::event_channel::{self as ec, Port};
use warden_abi::{DomId, Pod, hypercall as hc};

/// event_channel_op(`cmd`, `arg`) on a structure, written back on success.
pub fn op<T: Pod>(cmd: u32, arg: &mut T) -> HResult {
    call(
        hc::EVENT_CHANNEL_OP,
        [cmd as u64, arg as *mut T as u64, 0, 0, 0],
    )
}

/// A port in `dom` (DOMID_SELF: ours) that `remote` may bind.
pub fn alloc_unbound(dom: DomId, remote: DomId) -> Result<Port, Errno> {
    let mut a = ec::AllocUnbound {
        dom,
        remote_dom: remote,
        port: 0,
    };
    op(ec::ALLOC_UNBOUND, &mut a).map(|_| a.port)
}

/// Bind a new local port to `remote`'s unbound `port`.
pub fn bind_interdomain(remote: DomId, port: Port) -> Result<Port, Errno> {
    let mut a = ec::BindInterdomain {
        remote_dom: remote,
        pad: 0,
        remote_port: port,
        local_port: 0,
    };
    op(ec::BIND_INTERDOMAIN, &mut a).map(|_| a.local_port)
}

/// Bind VIRQ `virq` of vCPU `vcpu` to a new port.
pub fn bind_virq(virq: u32, vcpu: u32) -> Result<Port, Errno> {
    let mut a = ec::BindVirq {
        virq,
        vcpu,
        port: 0,
    };
    op(ec::BIND_VIRQ, &mut a).map(|_| a.port)
}

/// A new port that notifies our vCPU `vcpu` when we send on it.
pub fn bind_ipi(vcpu: u32) -> Result<Port, Errno> {
    let mut a = ec::BindIpi { vcpu, port: 0 };
    op(ec::BIND_IPI, &mut a).map(|_| a.port)
}

/// Have `port` notify vCPU `vcpu`.
pub fn bind_vcpu(port: Port, vcpu: u32) -> HResult {
    op(ec::BIND_VCPU, &mut ec::BindVcpu { port, vcpu })
}

/// Notify the other end of `port`.
pub fn send(port: Port) -> HResult {
    op(ec::SEND, &mut ec::Send { port })
}

/// Close `port`.
pub fn close(port: Port) -> HResult {
    op(ec::CLOSE, &mut ec::Close { port })
}

/// Unmask `port` (the hypervisor re-delivers it if pending).
pub fn unmask(port: Port) -> HResult {
    op(ec::UNMASK, &mut ec::Unmask { port })
}

/// The state of `dom`'s `port`.
pub fn status(dom: DomId, port: Port) -> Result<ec::Status, Errno> {
    let mut a = ec::Status {
        dom,
        port,
        ..Default::default()
    };
    op(ec::STATUS, &mut a).map(|_| a)
}

/// Close every port of `dom`.
pub fn reset(dom: DomId) -> HResult {
    op(ec::RESET, &mut ec::Reset { dom })
}

/// FIFO: a control block for `vcpu` (Warden refuses: 2-level only).
pub fn init_control(control_gfn: u64, offset: u32, vcpu: u32) -> HResult {
    op(
        ec::INIT_CONTROL,
        &mut ec::InitControl {
            control_gfn,
            offset,
            vcpu,
            ..Default::default()
        },
    )
}

/// FIFO: add an event-array page.
pub fn expand_array(array_gfn: u64) -> HResult {
    op(ec::EXPAND_ARRAY, &mut ec::ExpandArray { array_gfn })
}

/// FIFO: a port's priority.
pub fn set_priority(port: Port, priority: u32) -> HResult {
    op(ec::SET_PRIORITY, &mut ec::SetPriority { port, priority })
}

/// XENMEM_add_to_physmap of the shared_info page of `domid` at `gpfn`.
pub fn map_shared_info(domid: DomId, gpfn: u64) -> HResult {
    let mut a = warden_abi::memory::AddToPhysmap {
        domid,
        size: 0,
        space: warden_abi::memory::XENMAPSPACE_SHARED_INFO,
        idx: 0,
        gpfn,
    };
    crate::hypercall::memory_op(warden_abi::memory::ADD_TO_PHYSMAP, &mut a as *mut _ as u64)
}

/// HVMOP_set_param(HVM_PARAM_CALLBACK_IRQ) for `domid`.
pub fn set_callback_irq(domid: DomId, value: u64) -> HResult {
    let mut a = warden_abi::hvm::HvmParam {
        domid,
        pad: 0,
        index: warden_abi::hvm::PARAM_CALLBACK_IRQ,
        value,
    };
    call(
        hc::HVM_OP,
        [
            warden_abi::hvm::SET_PARAM as u64,
            &mut a as *mut _ as u64,
            0,
            0,
            0,
        ],
    )
}

#[cfg(all(feature = "rt", not(test)))]
pub use shared::*;

#[cfg(all(feature = "rt", not(test)))]
mod shared {
    use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    #[repr(C, align(4096))]
    struct Page([u8; 4096]);

    /// The page whose frame the shared_info page replaces.
    static mut SHARED: Page = Page([0; 4096]);
    static MAPPED: AtomicBool = AtomicBool::new(false);

    fn word(off: usize) -> &'static AtomicU64 {
        // SAFETY: an 8-aligned offset inside our page-aligned static; the
        // hypervisor and every vCPU update these words atomically.
        unsafe { &*((&raw mut SHARED.0).cast::<u8>().add(off) as *const AtomicU64) }
    }

    /// Map the shared_info page over our page (once); its guest-physical
    /// address (memory is identity-mapped).
    pub fn init() -> Result<u64, crate::Errno> {
        let addr = (&raw const SHARED) as u64;
        if !MAPPED.load(Ordering::Acquire) {
            super::map_shared_info(warden_abi::DOMID_SELF, addr >> 12)?;
            MAPPED.store(true, Ordering::Release);
        }
        Ok(addr)
    }

    /// Whether the shared_info page is mapped.
    pub fn mapped() -> bool {
        MAPPED.load(Ordering::Acquire)
    }

    /// Bit `port` of `evtchn_pending`.
    pub fn pending(port: u32) -> bool {
        mapped()
            && word(2048 + 8 * (port as usize / 64 % 64)).load(Ordering::Acquire)
                & (1 << (port % 64))
                != 0
    }

    /// Set or clear bit `port` of `evtchn_mask`.
    pub fn set_masked(port: u32, masked: bool) {
        if !mapped() {
            return;
        }
        let w = word(2560 + 8 * (port as usize / 64 % 64));
        if masked {
            w.fetch_or(1 << (port % 64), Ordering::AcqRel);
        } else {
            w.fetch_and(!(1 << (port % 64)), Ordering::AcqRel);
        }
    }

    /// Take the pending, unmasked ports of word `w` (clearing their bits).
    pub fn take_pending(w: usize) -> u64 {
        if !mapped() || w >= 64 {
            return 0;
        }
        let p = word(2048 + 8 * w).load(Ordering::Acquire);
        let m = word(2560 + 8 * w).load(Ordering::Acquire);
        let take = p & !m;
        if take != 0 {
            word(2048 + 8 * w).fetch_and(!take, Ordering::AcqRel);
        }
        take
    }
}
