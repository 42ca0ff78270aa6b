//! xen/include/public/event_channel.h: `event_channel_op(cmd, arg)` (hypercall 32).
//!
//! Argument layouts and sizes as xen-abi-map.md §3.1 (asserted below).

use crate::DomId;

crate::subops! {
    /// Bind a new local port to a remote domain's unbound port: [`BindInterdomain`].
    BIND_INTERDOMAIN = 0, "bind_interdomain";
    /// Bind a virtual IRQ to a new port: [`BindVirq`].
    BIND_VIRQ = 1, "bind_virq";
    /// Close a port: [`Close`].
    CLOSE = 3, "close";
    /// Notify the other end: [`Send`].
    SEND = 4, "send";
    /// A port's state: [`Status`].
    STATUS = 5, "status";
    /// Allocate an unbound port another domain may bind: [`AllocUnbound`].
    ALLOC_UNBOUND = 6, "alloc_unbound";
    /// Bind an inter-vCPU port: [`BindIpi`].
    BIND_IPI = 7, "bind_ipi";
    /// Change the vCPU a port notifies: [`BindVcpu`].
    BIND_VCPU = 8, "bind_vcpu";
    /// Unmask a port (and deliver it if pending): [`Unmask`].
    UNMASK = 9, "unmask";
    /// Close every port of a domain: [`Reset`].
    RESET = 10, "reset";
    /// FIFO ABI: per-vCPU control block: [`InitControl`].
    INIT_CONTROL = 11, "init_control";
    /// FIFO ABI: add an event-array page: [`ExpandArray`].
    EXPAND_ARRAY = 12, "expand_array";
    /// FIFO ABI: a port's priority: [`SetPriority`].
    SET_PRIORITY = 13, "set_priority";
}

/// `EVTCHNOP_bind_pirq`: physical IRQs (PV dom0 only). Warden has no PIRQs:
/// not an operation of the table, answered -ENOSYS.
pub const BIND_PIRQ: u32 = 2;

/// `EVTCHNSTAT_*` values of [`Status::status`].
pub const STAT_CLOSED: u32 = 0;
pub const STAT_UNBOUND: u32 = 1;
pub const STAT_INTERDOMAIN: u32 = 2;
pub const STAT_PIRQ: u32 = 3;
pub const STAT_VIRQ: u32 = 4;
pub const STAT_IPI: u32 = 5;

/// A port number.
pub type Port = u32;

crate::pod! {
    /// `evtchn_alloc_unbound` (8 bytes): a port in `dom` that `remote_dom` may bind.
    pub struct AllocUnbound { pub dom: DomId, pub remote_dom: DomId, pub port: Port }
    /// `evtchn_bind_interdomain` (12 bytes).
    pub struct BindInterdomain { pub remote_dom: DomId, pub pad: u16, pub remote_port: Port, pub local_port: Port }
    /// `evtchn_bind_virq` (12 bytes).
    pub struct BindVirq { pub virq: u32, pub vcpu: u32, pub port: Port }
    /// `evtchn_bind_pirq` (12 bytes).
    pub struct BindPirq { pub pirq: u32, pub flags: u32, pub port: Port }
    /// `evtchn_bind_ipi` (8 bytes).
    pub struct BindIpi { pub vcpu: u32, pub port: Port }
    /// `evtchn_close` (4 bytes).
    pub struct Close { pub port: Port }
    /// `evtchn_send` (4 bytes).
    pub struct Send { pub port: Port }
    /// `evtchn_status` (24 bytes). `u` is the union: unbound.dom (u16 @16);
    /// interdomain.dom (u16 @16) and .port (u32 @20); pirq or virq (u32 @16).
    pub struct Status {
        pub dom: DomId,
        pub pad: u16,
        pub port: Port,
        pub status: u32,
        pub vcpu: u32,
        pub u: [u32; 2],
    }
    /// `evtchn_bind_vcpu` (8 bytes).
    pub struct BindVcpu { pub port: Port, pub vcpu: u32 }
    /// `evtchn_unmask` (4 bytes).
    pub struct Unmask { pub port: Port }
    /// `evtchn_reset` (2 bytes).
    pub struct Reset { pub dom: DomId }
    /// `evtchn_init_control` (24 bytes).
    pub struct InitControl {
        pub control_gfn: u64,
        pub offset: u32,
        pub vcpu: u32,
        pub link_bits: u8,
        pub pad: [u8; 7],
    }
    /// `evtchn_expand_array` (8 bytes).
    pub struct ExpandArray { pub array_gfn: u64 }
    /// `evtchn_set_priority` (8 bytes).
    pub struct SetPriority { pub port: Port, pub priority: u32 }
}

impl Status {
    /// The unbound or interdomain remote domain (the union's u16 @16).
    pub fn remote_dom(&self) -> DomId {
        self.u[0] as u16
    }
}

/// Size of the FIFO ABI's per-vCPU control block (`evtchn_fifo_control_block`).
pub const FIFO_CONTROL_BLOCK_SIZE: u32 = 72;

const _: () = assert!(core::mem::size_of::<AllocUnbound>() == 8);
const _: () = assert!(core::mem::size_of::<BindInterdomain>() == 12);
const _: () = assert!(core::mem::size_of::<BindVirq>() == 12);
const _: () = assert!(core::mem::size_of::<BindPirq>() == 12);
const _: () = assert!(core::mem::size_of::<BindIpi>() == 8);
const _: () = assert!(core::mem::size_of::<Close>() == 4);
const _: () = assert!(core::mem::size_of::<Send>() == 4);
const _: () = assert!(core::mem::size_of::<Status>() == 24);
const _: () = assert!(core::mem::size_of::<BindVcpu>() == 8);
const _: () = assert!(core::mem::size_of::<Unmask>() == 4);
const _: () = assert!(core::mem::size_of::<Reset>() == 2);
const _: () = assert!(core::mem::size_of::<InitControl>() == 24);
const _: () = assert!(core::mem::size_of::<ExpandArray>() == 8);
const _: () = assert!(core::mem::size_of::<SetPriority>() == 8);
