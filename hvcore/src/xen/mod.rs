//! The guest-visible Xen services (docs/ARCHITECTURE.md, "hvcore"): each
//! takes the domain or the resolved target a permit unlocked, never the
//! whole hypervisor. Event channels and the shared_info page; time (PV
//! clock, runstate, timers), HVM parameters, the console ring of
//! boot-built domains.

pub mod console;
pub mod cpupolicy;
pub mod evtchn;
pub mod foreign;
pub mod gnttab;
pub mod hvmctx;
pub mod params;
pub mod shared_info;
pub mod time;

use alloc::vec::Vec;
use core::sync::atomic::AtomicU64;
use warden_abi::memory::E820Entry;

/// A domain's Xen-side state kept by these services.
#[derive(Debug, Default)]
pub struct DomainHvm {
    /// HVM parameters.
    pub params: params::HvmParams,
    /// The memory map (`XENMEM_memory_map`), as the builder made it or the
    /// toolstack set it (`XENMEM_set_memory_map`).
    pub e820: spin::Mutex<Vec<E820Entry>>,
    /// Enabled `vm_assist` types (bit n = type n).
    pub vm_assist: AtomicU64,
    /// The console ring Warden serves for it (boot-built domUs).
    pub console: console::Backend,
    /// Its TSC mode as the toolstack set it (XEN_DOMCTL_settscinfo).
    pub tsc: spin::Mutex<TscMode>,
}

/// A domain's TSC mode (Xen's `d->arch.tsc_mode`, `incarnation`). Warden's
/// guests always read the host's TSC: only the modes that mean that are
/// accepted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TscMode {
    pub mode: u32,
    pub incarnation: u32,
}
