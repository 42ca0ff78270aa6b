//! console_io.

use super::{Call, HcResult};
use crate::gate::Permit;
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
            let p = c.check::<ConsoleWrite>()?;
            if count > MAX_WRITE as u64 {
                return Err(errno::EINVAL);
            }
            write(c, &p, count as usize, buf)
        }
        x if x == READ as u64 => {
            let p = c.check::<ConsoleRead>()?;
            // Xen's count is an unsigned int, and a count above INT_MAX
            // could not be told from an error: -E2BIG.
            let count = count as u32;
            if count > i32::MAX as u32 {
                return Err(errno::E2BIG);
            }
            let n = (count as u64).min(MAX_READ) as usize;
            let mut tmp = alloc::vec![0u8; n];
            let got = c.global(&p).serial_input(&mut tmp);
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
fn write(c: &Call<'_>, p: &Permit<ConsoleWrite>, count: usize, buf: u64) -> HcResult {
    let out = c.global(p);
    let mut done = 0usize;
    let mut chunk = [0u8; CHUNK];
    while done < count {
        let n = CHUNK.min(count - done);
        let va = buf.checked_add(done as u64).ok_or(errno::EFAULT)?;
        c.guest(|g| g.read(va, &mut chunk[..n]))?
            .map_err(|_| errno::EFAULT)?;
        out.console_write(&chunk[..n]);
        done += n;
    }
    Ok(0)
}
