//! Ending the domain.

use warden_abi::sched::{SHUTDOWN_CRASH, SHUTDOWN_POWEROFF};

/// Shut the domain down with `reason` (never returns; if the shutdown is
/// refused, the vCPU takes itself down, then spins).
pub fn shutdown(reason: u32) -> ! {
    let _ = crate::hypercall::sched_shutdown(reason);
    let _ = crate::hypercall::vcpu_down(0);
    loop {
        let _ = crate::hypercall::sched_block();
        core::hint::spin_loop();
    }
}

/// Power off (a test dom0: every check passed).
pub fn poweroff() -> ! {
    shutdown(SHUTDOWN_POWEROFF)
}

/// Crash (a test dom0: a check failed).
pub fn crash() -> ! {
    shutdown(SHUTDOWN_CRASH)
}
