//! # warden-guest — the runtime of Warden guests
//!
//! Used by dom0 and the test guests (and later by the real dom0):
//!
//! - [`hypercall`]: the raw VMMCALL and a typed wrapper for every operation
//!   of the ABI (`warden-abi`), returning `Result<u64, Errno>`;
//! - [`console`]: `print!`/`println!` through `console_io`;
//! - [`flask`]: FLASK commands as Xen's tools do them (accepted mode and
//!   boolean values, every boolean of the loaded policy, the mode with
//!   "no policy loaded");
//! - [`start`]: the start information the hypervisor passes at entry;
//! - [`time`]: system time from the vCPU's `vcpu_info` and sleeping;
//! - [`events`] (with `rt`): GDT/IDT, exception reports, the event upcall;
//! - [`smp`] (with `rt`): starting secondary vCPUs;
//! - [`livepatch`] (with `rt`): the `xen-livepatch` commands (upload, list,
//!   apply, revert, replace, unload, load) with Xen's messages;
//! - with the `rt` feature: the `_start` entry (stack, .bss, GDT/IDT, then
//!   the program's [`entry!`] function), the panic handler (prints, then
//!   shuts the domain down with reason crash), a heap, and the `memcpy`
//!   family the prebuilt `core` needs.
//!
//! A guest program:
//!
//! ```ignore
//! #![no_std]
//! #![no_main]
//! warden_guest::entry!(main);
//! fn main(boot: &warden_guest::start::Boot) -> ! {
//!     warden_guest::println!("hello from d{}", boot.domid());
//!     warden_guest::exit::poweroff()
//! }
//! ```
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod console;
pub mod evtchn;
pub mod exit;
pub mod flask;
pub mod hypercall;
pub mod start;
pub mod time;
pub mod util;

// The runtime (entry, panic handler, allocator, upcalls) is bare-metal code:
// left out of the host unit tests, where `std` provides its own.
#[cfg(all(feature = "rt", not(test)))]
pub mod events;
#[cfg(all(feature = "rt", not(test)))]
pub mod livepatch;
#[cfg(all(feature = "rt", not(test)))]
pub mod rt;
#[cfg(all(feature = "rt", not(test)))]
pub mod smp;

pub use hypercall::Errno;

/// Declare the guest's main function: `fn(&start::Boot) -> !`.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        #[unsafe(no_mangle)]
        extern "C" fn warden_guest_main(boot: &'static $crate::start::Boot) -> ! {
            let f: fn(&'static $crate::start::Boot) -> ! = $main;
            f(boot)
        }
    };
}
