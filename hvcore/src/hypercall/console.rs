//! console_io.

use super::{Call, HcResult};
use crate::gate::table::{ConsoleRead, ConsoleWrite};
use warden_abi::console::{MAX_WRITE, READ, WRITE};
use warden_abi::errno;

/// Bytes copied from a guest per step of a console write.
const CHUNK: usize = 256;
/// Most input bytes returned by one read.
const MAX_READ: u64 = 4096;

pub fn console_io(c: &mut Call<'_>, cmd: u64, count: u64, buf: u64) -> HcResult {
    match cmd {
        x if x == WRITE as u64 => {
            let _p = c.check::<ConsoleWrite>()?;
            if count > MAX_WRITE as u64 {
                return Err(errno::EINVAL);
            }
            write(c, count as usize, buf)
        }
        x if x == READ as u64 => {
            let _p = c.check::<ConsoleRead>()?;
            let n = count.min(MAX_READ) as usize;
            let mut tmp = alloc::vec![0u8; n];
            let got = c.hv.platform.serial_input(&mut tmp);
            c.write_bytes(buf, &tmp[..got])?;
            Ok(got as u64)
        }
        n => c.unknown("console_io sub-op", n),
    }
}

/// CONSOLEIO_write (see `guestcons`): a domU's output becomes rate-limited
/// `(dN) ` lines in the ring's guest region and on the serial console; the
/// hardware domain's goes to the serial console as it is, and into the ring
/// only with `console_to_ring`.
fn write(c: &Call<'_>, count: usize, buf: u64) -> HcResult {
    let id = c.caller.id;
    let p = c.hv.platform;
    let hwdom = c.caller.privileged;
    let to_ring = !hwdom || p.console_to_ring();
    let limit = if hwdom {
        (0, 1)
    } else {
        p.guest_console_ratelimit()
    };
    let mut done = 0usize;
    let mut chunk = [0u8; CHUNK];
    while done < count {
        let n = CHUNK.min(count - done);
        let va = buf.checked_add(done as u64).ok_or(errno::EFAULT)?;
        c.guest(|g| g.read(va, &mut chunk[..n]))?
            .map_err(|_| errno::EFAULT)?;
        if hwdom {
            p.console_hwdom_raw(&chunk[..n]);
        }
        if to_ring {
            let now_ms = p.now_ns() / 1_000_000;
            c.dom().console.lock().push(&chunk[..n], |line, rl| {
                if let Some(suppressed) = rl.admit(now_ms, limit) {
                    p.console_guest_line(id, line, suppressed);
                }
            });
        }
        done += n;
    }
    Ok(0)
}
