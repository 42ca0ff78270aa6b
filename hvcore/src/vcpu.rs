//! The vendor-neutral vCPU interface. The VMRUN loop (AMD SVM, in the image's
//! `arch::svm` module) implements [`Vcpu`]; domain and scheduling code above
//! it sees only this trait and [`VmExit`], so a VMX backend can be added
//! behind the same interface.

use crate::Result;

/// Why a guest stopped running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmExit {
    /// The guest executed a hypercall instruction (VMMCALL).
    Hypercall,
    /// The guest executed HLT.
    Halt,
    /// Port I/O.
    Io { port: u16, size: u8, write: bool },
    /// A nested page fault at a guest-physical address.
    NestedPageFault { gpa: u64, error_code: u64 },
    /// An interrupt arrived for the host.
    ExternalInterrupt,
    /// The guest shut down (triple fault).
    Shutdown,
    /// Any other exit, by its vendor exit code.
    Other(u64),
}

/// A virtual CPU that can be entered.
pub trait Vcpu {
    /// Enter the guest until it exits, and say why it exited.
    fn run(&mut self) -> Result<VmExit>;
}
