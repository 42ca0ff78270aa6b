//! # warden-abi — the hypercall ABI shared by Warden and its guests
//!
//! One definition of everything the hypervisor and guests must agree on:
//! hypercall numbers and their sub-operations (Xen's numbers), the argument
//! structures (`#[repr(C)]`, explicit padding, every field an integer), the
//! errno values (Xen's), the domain ids with special meanings, and the start
//! information a domain finds at boot.
//!
//! ## Calling convention (Xen's, x86_64)
//! A guest running in ring 0 executes `VMMCALL` with the hypercall number in
//! `RAX` and up to five arguments in `RDI`, `RSI`, `RDX`, `R10`, `R8`. The
//! result comes back in `RAX`: zero or a positive value on success, `-errno`
//! on failure. Every other register is preserved. Pointers ("guest handles")
//! are guest virtual addresses in the caller's current address space. A
//! hypercall from ring 1-3 fails with `-EPERM`.
//!
//! ## The catalogue
//! [`HYPERCALLS`] lists every hypercall and every sub-operation Warden
//! implements. The hypervisor's dispatcher maps each of them to its FLASK
//! check(s) at build time; a test enumerates this catalogue against that
//! table (every operation has a check, no check lacks an operation). Anything
//! not in the catalogue is refused with `-ENOSYS` and an audit line.
#![no_std]

pub mod console;
pub mod domctl;
pub mod errno;
pub mod hvm;
pub mod memory;
pub mod pod;
pub mod sched;
pub mod sysctl;
pub mod vcpu;
pub mod version;
pub mod xen;
pub mod xsm;

pub use pod::{Pod, PodField};

/// Version of this ABI (changes whenever a structure or number changes meaning).
pub const ABI_VERSION: u32 = 1;

/// A domain id.
pub type DomId = u16;

/// The calling domain (in any `domid` argument).
pub const DOMID_SELF: DomId = 0x7FF0;
/// First domain id with a special meaning; real domains are below it.
pub const DOMID_FIRST_RESERVED: DomId = 0x7FF0;
/// The pseudo-domain owning I/O memory.
pub const DOMID_IO: DomId = 0x7FF1;
/// The pseudo-domain owning the hypervisor's own pages.
pub const DOMID_XEN: DomId = 0x7FF2;
/// An invalid domain id ("allocate one" in createdomain).
pub const DOMID_INVALID: DomId = 0x7FF4;
/// The idle domain.
pub const DOMID_IDLE: DomId = 0x7FFF;

/// Guest page size.
pub const PAGE_SIZE: u64 = 4096;

/// Hypercall numbers (Xen's `__HYPERVISOR_*`), the ones Warden implements.
pub mod hypercall {
    /// `platform_op(op)`: the hardware domain's platform operations
    /// (`xen::platform`).
    pub const PLATFORM_OP: u32 = 7;
    /// `memory_op(cmd, arg)`: populate/decrease reservations, memory facts.
    pub const MEMORY_OP: u32 = 12;
    /// `multicall(call_list, nr_calls)`: a batch of hypercalls
    /// (`xen::xen::multicall`).
    pub const MULTICALL: u32 = 13;
    /// `set_timer_op(timeout_abs_ns)`: the calling vCPU's single-shot timer.
    pub const SET_TIMER_OP: u32 = 15;
    /// `event_channel_op(cmd, arg)`: event channels (`xen::event_channel`).
    pub const EVENT_CHANNEL_OP: u32 = 32;
    /// `xen_version(cmd, arg)`: version information.
    pub const XEN_VERSION: u32 = 17;
    /// `console_io(cmd, count, buffer)`: the hypervisor console.
    pub const CONSOLE_IO: u32 = 18;
    /// `vm_assist(cmd, type)`: the calling domain's assists.
    pub const VM_ASSIST: u32 = 21;
    /// `vcpu_op(cmd, vcpuid, arg)`: the caller's own vCPUs.
    pub const VCPU_OP: u32 = 24;
    /// `grant_table_op(cmd, uop, count)`: grant tables (v1).
    pub const GRANT_TABLE_OP: u32 = 20;
    /// `xsm_op(op)`: the FLASK security server.
    pub const XSM_OP: u32 = 27;
    /// `sched_op(cmd, arg)`: yield, block, shutdown, poll.
    pub const SCHED_OP: u32 = 29;
    /// `hvm_op(cmd, arg)`: HVM-specific controls.
    pub const HVM_OP: u32 = 34;
    /// `sysctl(op)`: system-wide control (console ring, physical info, domain list).
    pub const SYSCTL: u32 = 35;
    /// `domctl(op)`: domain control (create, destroy, pause, ...).
    pub const DOMCTL: u32 = 36;

    /// `physdev_op(cmd, arg)`: not implemented (no physical devices; Xen
    /// refuses most of it to HVM callers with -ENOSYS).
    pub const PHYSDEV_OP: u32 = 33;
    /// `mca(op)` (`__HYPERVISOR_arch_0`): PV only in Xen 4.17 (an HVM/PVH
    /// caller gets -ENOSYS).
    pub const MCA: u32 = 48;
}

/// One sub-operation of a hypercall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubOp {
    /// Its number (the `cmd` argument, or the `cmd` field of the argument structure).
    pub number: u32,
    /// Xen's name, lower case without prefix (`pausedomain`, `readconsole`).
    pub name: &'static str,
}

/// One hypercall and its sub-operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hypercall {
    /// Its number.
    pub number: u32,
    /// Xen's name.
    pub name: &'static str,
    /// Every sub-operation Warden implements.
    pub subops: &'static [SubOp],
}

/// Every hypercall and sub-operation Warden implements.
pub const HYPERCALLS: &[Hypercall] = &[
    Hypercall {
        number: hypercall::MEMORY_OP,
        name: "memory_op",
        subops: memory::SUBOPS,
    },
    Hypercall {
        number: hypercall::MULTICALL,
        name: "multicall",
        subops: xen::xen::multicall::SUBOPS,
    },
    Hypercall {
        number: hypercall::SET_TIMER_OP,
        name: "set_timer_op",
        subops: xen::xen::set_timer_op::SUBOPS,
    },
    Hypercall {
        number: hypercall::VM_ASSIST,
        name: "vm_assist",
        subops: xen::xen::vm_assist::SUBOPS,
    },
    Hypercall {
        number: hypercall::XEN_VERSION,
        name: "xen_version",
        subops: version::SUBOPS,
    },
    Hypercall {
        number: hypercall::CONSOLE_IO,
        name: "console_io",
        subops: console::SUBOPS,
    },
    Hypercall {
        number: hypercall::VCPU_OP,
        name: "vcpu_op",
        subops: vcpu::SUBOPS,
    },
    Hypercall {
        number: hypercall::XSM_OP,
        name: "xsm_op",
        subops: xsm::SUBOPS,
    },
    Hypercall {
        number: hypercall::SCHED_OP,
        name: "sched_op",
        subops: sched::SUBOPS,
    },
    Hypercall {
        number: hypercall::EVENT_CHANNEL_OP,
        name: "event_channel_op",
        subops: xen::event_channel::SUBOPS,
    },
    Hypercall {
        number: hypercall::HVM_OP,
        name: "hvm_op",
        subops: hvm::SUBOPS,
    },
    Hypercall {
        number: hypercall::SYSCTL,
        name: "sysctl",
        subops: sysctl::SUBOPS,
    },
    Hypercall {
        number: hypercall::DOMCTL,
        name: "domctl",
        subops: domctl::SUBOPS,
    },
    Hypercall {
        number: hypercall::GRANT_TABLE_OP,
        name: "grant_table_op",
        subops: xen::grant_table::SUBOPS,
    },
    Hypercall {
        number: hypercall::PLATFORM_OP,
        name: "platform_op",
        subops: xen::platform::SUBOPS,
    },
];

/// The hypercall with number `n`, if Warden implements it.
pub fn hypercall_by_number(n: u32) -> Option<&'static Hypercall> {
    HYPERCALLS.iter().find(|h| h.number == n)
}

/// The name of sub-operation `sub` of hypercall `hc`, if both exist.
pub fn subop_name(hc: u32, sub: u32) -> Option<&'static str> {
    hypercall_by_number(hc)?
        .subops
        .iter()
        .find(|s| s.number == sub)
        .map(|s| s.name)
}

/// Declares sub-operation constants and the `SUBOPS` table of a hypercall in one go.
macro_rules! subops {
    ($( $(#[$m:meta])* $name:ident = $num:expr, $text:literal; )*) => {
        $( $(#[$m])* pub const $name: u32 = $num; )*
        /// Every sub-operation of this hypercall that Warden implements.
        pub const SUBOPS: &[$crate::SubOp] = &[
            $( $crate::SubOp { number: $num, name: $text }, )*
        ];
    };
}
pub(crate) use subops;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_unique() {
        for (i, h) in HYPERCALLS.iter().enumerate() {
            assert!(
                HYPERCALLS[i + 1..].iter().all(|o| o.number != h.number),
                "{}",
                h.name
            );
            for (j, s) in h.subops.iter().enumerate() {
                assert!(
                    h.subops[j + 1..]
                        .iter()
                        .all(|o| o.number != s.number && o.name != s.name),
                    "{}:{}",
                    h.name,
                    s.name
                );
            }
        }
    }

    #[test]
    fn lookups() {
        assert_eq!(subop_name(hypercall::DOMCTL, 3), Some("pausedomain"));
        assert_eq!(subop_name(hypercall::DOMCTL, 9999), None);
        assert_eq!(subop_name(99, 0), None);
    }
}
