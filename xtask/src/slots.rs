//! A limit on the QEMU machines the tests run at once, across test
//! processes: `cargo xtask test` starts every QEMU test binary together, and
//! each boot first takes one of N slots (a lock file in
//! `<bare-metal target dir>/qemu-slots/`), so the CPUs stay busy from the
//! first boot to the last without running more machines than CPUs (TCG is
//! one thread per machine here). N is `WARDEN_QEMU_SLOTS` if set (0: no
//! limit), else the number of CPUs. A boot's timeout starts when it has its
//! slot and QEMU starts.
//!
//! Long boots (Linux's, tens of seconds to minutes) go first: one waiting
//! with [`Priority::Long`] leaves a marker file (`long-PID-N`) while it
//! waits, and a [`Priority::Normal`] boot takes no slot while a live marker
//! is there. The suite's longest boots then start as early as they can and
//! the short ones fill the gaps, instead of a long boot starting last and
//! running on one CPU while the other idles.

use crate::bare_metal_target_dir;
use std::fs::{File, OpenOptions};
use std::time::Duration;

/// A held slot; dropping it frees the slot.
#[derive(Debug)]
pub struct Slot {
    _file: Option<File>,
}

/// How many QEMU machines may run at once.
pub fn count() -> usize {
    match std::env::var("WARDEN_QEMU_SLOTS") {
        Ok(v) => v.trim().parse().unwrap_or(1),
        Err(_) => std::thread::available_parallelism().map_or(2, |n| n.get()),
    }
}

/// Which boots take a free slot first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// Seconds: waits while a long boot waits.
    Normal,
    /// Tens of seconds or more (a Linux boot): before every normal one.
    Long,
}

/// Wait for a free slot (polling every 50 ms), as a normal boot.
pub fn acquire() -> Slot {
    acquire_with(Priority::Normal)
}

/// A waiting long boot's marker; removed when dropped.
struct Marker(std::path::PathBuf);

impl Drop for Marker {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Is a long boot waiting? (Markers of processes that are gone are removed.)
fn long_waiting(dir: &std::path::Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    let mut any = false;
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("long-"))
            .and_then(|r| r.split('-').next())
        else {
            continue;
        };
        if std::path::Path::new("/proc").join(pid).exists() {
            any = true;
        } else {
            let _ = std::fs::remove_file(e.path());
        }
    }
    any
}

/// Wait for a free slot with priority `p`.
pub fn acquire_with(p: Priority) -> Slot {
    let n = count();
    if n == 0 {
        return Slot { _file: None };
    }
    let dir = bare_metal_target_dir().join("qemu-slots");
    if std::fs::create_dir_all(&dir).is_err() {
        return Slot { _file: None };
    }
    let _marker = (p == Priority::Long).then(|| {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let k = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let m = dir.join(format!("long-{}-{k}", std::process::id()));
        let _ = std::fs::write(&m, b"");
        Marker(m)
    });
    loop {
        if p == Priority::Normal && long_waiting(&dir) {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        for i in 0..n {
            let Ok(f) = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(dir.join(format!("slot-{i}")))
            else {
                // No lock file, no limit: never block a test on it.
                return Slot { _file: None };
            };
            if f.try_lock().is_ok() {
                return Slot { _file: Some(f) };
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_exclude_each_other_across_open_files() {
        // Two opens of one lock file (as two processes would have): the
        // second cannot take it while the first holds it.
        let dir = std::env::temp_dir().join(format!("qemu-slots-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let open = || {
            OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(dir.join("slot-0"))
                .unwrap()
        };
        let a = open();
        a.try_lock().unwrap();
        assert!(open().try_lock().is_err());
        drop(a);
        assert!(open().try_lock().is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_live_long_waiters_marker_holds_normal_boots_back_and_a_dead_ones_is_removed() {
        let dir = std::env::temp_dir().join(format!("qemu-slots-long-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(!long_waiting(&dir));
        let live = dir.join(format!("long-{}-0", std::process::id()));
        std::fs::write(&live, b"").unwrap();
        assert!(long_waiting(&dir));
        drop(Marker(live.clone()));
        assert!(!live.exists() && !long_waiting(&dir));
        // PIDs are below 2^22 on Linux: this one is no process.
        let dead = dir.join("long-4294967-0");
        std::fs::write(&dead, b"").unwrap();
        assert!(!long_waiting(&dir));
        assert!(!dead.exists(), "a dead waiter's marker is removed");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
