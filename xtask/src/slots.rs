//! A limit on the QEMU machines the tests run at once, across test
//! processes: `cargo xtask test` starts every QEMU test binary together, and
//! each boot first takes one of N slots (a lock file in
//! `<bare-metal target dir>/qemu-slots/`), so the CPUs stay busy from the
//! first boot to the last without running more machines than CPUs (TCG is
//! one thread per machine here). N is `WARDEN_QEMU_SLOTS` if set (0: no
//! limit), else the number of CPUs. A boot's timeout starts when it has its
//! slot and QEMU starts.

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

/// Wait for a free slot (polling every 50 ms).
pub fn acquire() -> Slot {
    let n = count();
    if n == 0 {
        return Slot { _file: None };
    }
    let dir = bare_metal_target_dir().join("qemu-slots");
    if std::fs::create_dir_all(&dir).is_err() {
        return Slot { _file: None };
    }
    loop {
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
}
