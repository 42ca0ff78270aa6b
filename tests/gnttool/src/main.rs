//! `gnttool`: grants between Linux domains from user space, for the demo
//! domU (`xtask::dom0img` puts it at `/usr/bin/gnttool` in the demo's
//! initramfs: a static binary, built for x86_64-unknown-linux-gnu with
//! `crt-static`). The cross-guest grant test (`tests/tests/network.rs`, its `GRANTS`)
//! types its commands into the domUs' console shells.
//!
//! - `gnttool share DOMID...`: one page per DOMID, granted read-only to it
//!   through `/dev/xen/gntalloc` (`IOCTL_GNTALLOC_ALLOC_GREF`: the kernel
//!   writes the grant entry), filled with a pattern of its own; prints
//!   `gnttool: shared gref G with domain D checksum C` for each, then waits
//!   for a line on stdin and releases them (`IOCTL_GNTALLOC_DEALLOC_GREF`;
//!   the kernel revokes the entry, or defers it while the grantee still
//!   has it mapped), printing `gnttool: released gref G`.
//! - `gnttool map DOMID GREF`: maps that grant read-only through
//!   `/dev/xen/gntdev` (`IOCTL_GNTDEV_MAP_GRANT_REF` records it; the
//!   `mmap` is where the kernel asks the hypervisor, GNTTABOP_map_grant_ref,
//!   and fails with EINVAL when the hypervisor refuses). Prints `gnttool:
//!   mapped domain D gref G checksum C` and, after a line on stdin, unmaps
//!   (`gnttool: unmapped ...`); or `gnttool: map of domain D gref G refused:
//!   ERROR` and exits with status 1.
//!
//! The structures and ioctl numbers are Linux's `include/uapi/xen/gntalloc.h`
//! and `gntdev.h`.

use std::io::{BufRead, Write};
use std::process::ExitCode;

const PAGE: usize = 4096;

/// `_IOC(_IOC_NONE, 'G', nr, size)`.
const fn ioc_none_g(nr: u32, size: usize) -> u32 {
    ((size as u32) << 16) | ((b'G' as u32) << 8) | nr
}

/// `struct ioctl_gntalloc_alloc_gref` with one reference.
#[repr(C)]
#[derive(Default)]
struct AllocGref {
    domid: u16,
    flags: u16,
    count: u32,
    index: u64,
    gref_ids: [u32; 1],
}

/// `struct ioctl_gntalloc_dealloc_gref`.
#[repr(C)]
#[derive(Default)]
struct DeallocGref {
    index: u64,
    count: u32,
}

/// `struct ioctl_gntdev_grant_ref`.
#[repr(C)]
#[derive(Default)]
struct GrantRef {
    domid: u32,
    gref: u32,
}

/// `struct ioctl_gntdev_map_grant_ref` with one reference.
#[repr(C)]
#[derive(Default)]
struct MapGrantRef {
    count: u32,
    pad: u32,
    index: u64,
    refs: [GrantRef; 1],
}

/// `struct ioctl_gntdev_unmap_grant_ref`.
#[repr(C)]
#[derive(Default)]
struct UnmapGrantRef {
    index: u64,
    count: u32,
    pad: u32,
}

const _: () = assert!(std::mem::size_of::<AllocGref>() == 24);
const _: () = assert!(std::mem::size_of::<DeallocGref>() == 16);
const _: () = assert!(std::mem::size_of::<MapGrantRef>() == 24);
const _: () = assert!(std::mem::size_of::<UnmapGrantRef>() == 16);

const IOCTL_GNTALLOC_ALLOC_GREF: u32 = ioc_none_g(5, std::mem::size_of::<AllocGref>());
const IOCTL_GNTALLOC_DEALLOC_GREF: u32 = ioc_none_g(6, std::mem::size_of::<DeallocGref>());
const IOCTL_GNTDEV_MAP_GRANT_REF: u32 = ioc_none_g(0, std::mem::size_of::<MapGrantRef>());
const IOCTL_GNTDEV_UNMAP_GRANT_REF: u32 = ioc_none_g(1, std::mem::size_of::<UnmapGrantRef>());

/// The page's pattern: a function of the byte's offset, the reference and
/// the grantee, so no two shared pages are alike.
fn pattern(gref: u32, domid: u16) -> Vec<u8> {
    (0..PAGE)
        .map(|i| {
            (i as u32)
                .wrapping_mul(131)
                .wrapping_add(gref.wrapping_mul(7)) as u8
                ^ domid as u8
        })
        .collect()
}

/// FNV-1a (64 bits) of the bytes, as 16 hex digits.
fn checksum(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// A device of /dev/xen, opened read-write.
struct Dev(libc::c_int);

impl Dev {
    fn open(path: &str) -> Result<Dev, String> {
        let c = std::ffi::CString::new(path).map_err(|e| e.to_string())?;
        // SAFETY: `c` is a NUL-terminated path that outlives the call.
        let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(format!("open {path}: {}", std::io::Error::last_os_error()));
        }
        Ok(Dev(fd))
    }

    /// The ioctl `req` with `arg` (its structure, read and written).
    fn ioctl<T>(&self, req: u32, arg: &mut T, what: &str) -> Result<(), String> {
        // SAFETY: `arg` is the structure of the size encoded in `req`
        // (checked above), exclusively borrowed for the call.
        let r = unsafe { libc::ioctl(self.0, req as libc::Ioctl, arg as *mut T) };
        if r < 0 {
            return Err(format!("{what}: {}", std::io::Error::last_os_error()));
        }
        Ok(())
    }

    /// One page of the device at `offset`, shared, with `prot`.
    fn mmap(&self, offset: u64, prot: libc::c_int) -> Result<Mapping, String> {
        // SAFETY: a new mapping chosen by the kernel; nothing existing is
        // replaced. The result is checked before use.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                PAGE,
                prot,
                libc::MAP_SHARED,
                self.0,
                offset as libc::off_t,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(format!("mmap: {}", std::io::Error::last_os_error()));
        }
        Ok(Mapping(p.cast()))
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        // SAFETY: the descriptor is ours and closed once.
        unsafe { libc::close(self.0) };
    }
}

/// One mapped page.
struct Mapping(*mut u8);

impl Mapping {
    fn bytes(&self) -> &[u8] {
        // SAFETY: the mapping is one readable page and lives as long as self.
        unsafe { std::slice::from_raw_parts(self.0, PAGE) }
    }
    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as `bytes`; only called on writable mappings, and `&mut
        // self` makes the slice the only reference.
        unsafe { std::slice::from_raw_parts_mut(self.0, PAGE) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the page was mapped by `Dev::mmap` and is unmapped once.
        unsafe { libc::munmap(self.0.cast(), PAGE) };
    }
}

fn say(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "gnttool: {text}");
    let _ = out.flush();
}

/// Wait for a line (or the end) of stdin.
fn wait_for_line() {
    let mut l = String::new();
    let _ = std::io::stdin().lock().read_line(&mut l);
}

fn share(domids: &[u16]) -> Result<(), String> {
    let dev = Dev::open("/dev/xen/gntalloc")?;
    let mut held = Vec::new();
    for &domid in domids {
        let mut a = AllocGref {
            domid,
            flags: 0, // read-only: no GNTALLOC_FLAG_WRITABLE
            count: 1,
            ..Default::default()
        };
        dev.ioctl(
            IOCTL_GNTALLOC_ALLOC_GREF,
            &mut a,
            "IOCTL_GNTALLOC_ALLOC_GREF",
        )?;
        let gref = a.gref_ids[0];
        let mut m = dev.mmap(a.index, libc::PROT_READ | libc::PROT_WRITE)?;
        m.bytes_mut().copy_from_slice(&pattern(gref, domid));
        say(&format!(
            "shared gref {gref} with domain {domid} checksum {}",
            checksum(m.bytes())
        ));
        held.push((gref, a.index, m));
    }
    say("holding; a line on stdin releases");
    wait_for_line();
    for (gref, index, m) in held {
        drop(m);
        let mut d = DeallocGref { index, count: 1 };
        dev.ioctl(
            IOCTL_GNTALLOC_DEALLOC_GREF,
            &mut d,
            "IOCTL_GNTALLOC_DEALLOC_GREF",
        )?;
        say(&format!("released gref {gref}"));
    }
    Ok(())
}

/// Map (Ok(true)) or refused (Ok(false), reported).
fn map(domid: u16, gref: u32) -> Result<bool, String> {
    let dev = Dev::open("/dev/xen/gntdev")?;
    let mut op = MapGrantRef {
        count: 1,
        refs: [GrantRef {
            domid: domid as u32,
            gref,
        }],
        ..Default::default()
    };
    dev.ioctl(
        IOCTL_GNTDEV_MAP_GRANT_REF,
        &mut op,
        "IOCTL_GNTDEV_MAP_GRANT_REF",
    )?;
    // Read-only (no PROT_WRITE): gntdev asks for GNTMAP_readonly.
    let r = match dev.mmap(op.index, libc::PROT_READ) {
        Ok(m) => {
            say(&format!(
                "mapped domain {domid} gref {gref} checksum {}",
                checksum(m.bytes())
            ));
            say("holding; a line on stdin unmaps");
            wait_for_line();
            let again = checksum(m.bytes());
            drop(m);
            say(&format!(
                "unmapping domain {domid} gref {gref}: checksum {again} before munmap"
            ));
            Ok(true)
        }
        Err(e) => {
            say(&format!("map of domain {domid} gref {gref} refused: {e}"));
            Ok(false)
        }
    };
    let mut u = UnmapGrantRef {
        index: op.index,
        count: 1,
        pad: 0,
    };
    dev.ioctl(
        IOCTL_GNTDEV_UNMAP_GRANT_REF,
        &mut u,
        "IOCTL_GNTDEV_UNMAP_GRANT_REF",
    )?;
    if r == Ok(true) {
        say(&format!("unmapped domain {domid} gref {gref}"));
    }
    r
}

const USAGE: &str = "usage: gnttool share DOMID... | gnttool map DOMID GREF";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |s: &str| s.parse::<u32>().map_err(|e| format!("{s}: {e}"));
    let domid = |s: &str| s.parse::<u16>().map_err(|e| format!("{s}: {e}"));
    let r = match args.first().map(String::as_str) {
        Some("share") if args.len() > 1 => args[1..]
            .iter()
            .map(|a| domid(a))
            .collect::<Result<Vec<u16>, String>>()
            .and_then(|d| share(&d))
            .map(|()| true),
        Some("map") if args.len() == 3 => {
            domid(&args[1]).and_then(|d| num(&args[2]).and_then(|g| map(d, g)))
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match r {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            say(&format!("error: {e}"));
            ExitCode::from(3)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_are_linuxs() {
        // _IOC(_IOC_NONE, 'G', nr, size) as the C headers compute them.
        assert_eq!(IOCTL_GNTALLOC_ALLOC_GREF, 0x0018_4705);
        assert_eq!(IOCTL_GNTALLOC_DEALLOC_GREF, 0x0010_4706);
        assert_eq!(IOCTL_GNTDEV_MAP_GRANT_REF, 0x0018_4700);
        assert_eq!(IOCTL_GNTDEV_UNMAP_GRANT_REF, 0x0010_4701);
    }

    #[test]
    fn patterns_differ_per_grant_and_grantee() {
        let a = checksum(&pattern(8, 2));
        assert_ne!(a, checksum(&pattern(9, 2)));
        assert_ne!(a, checksum(&pattern(8, 3)));
        assert_eq!(a, checksum(&pattern(8, 2)));
        assert_eq!(checksum(b""), "cbf29ce484222325");
    }
}
