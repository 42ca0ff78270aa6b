//! Hypervisor logic that needs no hardware, tested on the host with plain
//! `cargo test`: boot-information parsing (Multiboot 1 and 2), the memory map
//! and the physical frame allocator, the Xen-syntax command line, the console
//! ring, log-line formatting, the embedded symbol table, frame-pointer
//! backtraces, SVM feature decoding; and the hypervisor proper: the XSM gate
//! and its operation table ([`gate`]), the hypercall dispatcher and handlers
//! ([`hypercall`]), domains and their lifecycle ([`domain`], [`hv`]), the
//! scheduler ([`sched`]), guest memory access ([`guestmem`], [`p2m`]), the
//! ELF loader and domain builder ([`elf`], [`builder`]), and the vCPU
//! interface the VMRUN loop implements ([`vcpu`]).
//!
//! The bare-metal image (`hypervisor/`, package `warden`) does the hardware
//! access and calls into this crate; `xtask` uses it to write the symbol table.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod asid;
pub mod backtrace;
pub mod bootinfo;
pub mod bootplan;
pub mod builder;
pub mod cmdline;
pub mod conring;
pub mod cpu;
pub mod domain;
pub mod elf;
pub mod emul;
pub mod error;
pub mod frameref;
pub mod frames;
pub mod gate;
pub mod guestcons;
pub mod guestcpu;
pub mod guestmem;
pub mod hv;
pub mod hypercall;
pub mod keys;
pub mod lent;
pub mod logfmt;
pub mod memmap;
pub mod multiboot1;
pub mod multiboot2;
pub mod p2m;
pub mod platform;
pub mod ratelimit;
pub mod sched;
/// The embedded symbol table: the `warden-symbols` crate (shared with the
/// live-patch engine, which needs nothing else from hvcore).
pub use warden_symbols as symbols;
pub mod testexit;
pub mod vcpu;
pub mod version;
pub mod xen;

pub use error::{Error, ErrorKind, Result};

/// Size of a page / physical frame.
pub const PAGE_SIZE: u64 = 4096;

/// Round `x` up to a multiple of `align` (a power of two); `None` on overflow.
pub const fn align_up(x: u64, align: u64) -> Option<u64> {
    match x.checked_add(align - 1) {
        Some(v) => Some(v & !(align - 1)),
        None => None,
    }
}

/// Round `x` down to a multiple of `align` (a power of two).
pub const fn align_down(x: u64, align: u64) -> u64 {
    x & !(align - 1)
}
