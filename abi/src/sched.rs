//! `sched_op(cmd, arg)` (hypercall 29).

crate::subops! {
    /// Give up the CPU; `arg` unused.
    YIELD = 0, "yield";
    /// Block until an event is pending (enables event delivery first); `arg` unused.
    BLOCK = 1, "block";
    /// Shut the caller down: `arg` points to [`Shutdown`].
    SHUTDOWN = 2, "shutdown";
    /// Block until an event channel in the list is pending or the timeout
    /// passes: `arg` points to [`Poll`].
    POLL = 3, "poll";
    /// Shut another domain down: `arg` points to [`RemoteShutdown`].
    REMOTE_SHUTDOWN = 4, "remote_shutdown";
}

/// Shutdown reason: power off.
pub const SHUTDOWN_POWEROFF: u32 = 0;
/// Shutdown reason: reboot.
pub const SHUTDOWN_REBOOT: u32 = 1;
/// Shutdown reason: suspend.
pub const SHUTDOWN_SUSPEND: u32 = 2;
/// Shutdown reason: crash.
pub const SHUTDOWN_CRASH: u32 = 3;
/// Shutdown reason: watchdog.
pub const SHUTDOWN_WATCHDOG: u32 = 4;
/// Shutdown reason: soft reset.
pub const SHUTDOWN_SOFT_RESET: u32 = 5;
/// Highest valid reason.
pub const SHUTDOWN_MAX: u32 = 5;

/// Most ports a poll may name.
pub const POLL_MAX_PORTS: u32 = 128;

crate::pod! {
    /// `SCHEDOP_shutdown`.
    pub struct Shutdown { pub reason: u32 }
    /// `SCHEDOP_poll`: `ports` is a guest array of `nr_ports` u32 event
    /// channel ports; `timeout` is absolute system time in ns (0 = none).
    pub struct Poll { pub ports: u64, pub nr_ports: u32, pub pad: u32, pub timeout: u64 }
    /// `SCHEDOP_remote_shutdown`.
    pub struct RemoteShutdown { pub domain_id: u16, pub pad: u16, pub reason: u32 }
}

/// Name of a shutdown reason.
pub fn reason_name(r: u32) -> &'static str {
    match r {
        SHUTDOWN_POWEROFF => "poweroff",
        SHUTDOWN_REBOOT => "reboot",
        SHUTDOWN_SUSPEND => "suspend",
        SHUTDOWN_CRASH => "crash",
        SHUTDOWN_WATCHDOG => "watchdog",
        SHUTDOWN_SOFT_RESET => "soft_reset",
        _ => "unknown",
    }
}
