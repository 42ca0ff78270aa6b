//! The live-patch operator commands, as `xen-livepatch` has them:
//! `upload NAME FILE`, `list`, `apply NAME [--nodeps]`, `revert NAME`,
//! `replace NAME`, `unload NAME`, `load FILE` (upload and apply, the name
//! taken from the file name), with Xen's messages ("Uploading X...
//! completed", "Applying X... completed", "Error N: ..."). Actions are
//! asynchronous in the hypervisor: the command polls GET while the
//! payload's rc is `-EAGAIN`, as `xen-livepatch` does.
//!
//! The caller provides the files (a guest has no file system: dom0 test
//! guests take them from their boot modules, by name).

use crate::hypercall::{self as hc, Errno};
use crate::println;
use alloc::string::String;
use alloc::vec::Vec;
use warden_abi::errno::{EAGAIN, EINVAL, ETIMEDOUT};
use warden_abi::sysctl::{LpStatus, livepatch as lp};

/// How long a command waits for an action to finish (Xen's tool waits a
/// few times the hypervisor's 30 ms timeout; TCG is slow, so longer).
pub const WAIT_NS: u64 = 10_000_000_000;

static TIMEOUT_NS: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

/// The rendezvous timeout actions ask for, in ns (0: the hypervisor's
/// default, 30 ms, as Xen).
pub fn timeout_ns() -> u32 {
    TIMEOUT_NS.load(core::sync::atomic::Ordering::Relaxed)
}

/// Set the rendezvous timeout of later actions (0: the default 30 ms).
pub fn set_timeout_ns(ns: u32) {
    TIMEOUT_NS.store(ns, core::sync::atomic::Ordering::Relaxed);
}

/// The outcome of a command: `Ok` or the errno it failed with.
pub type CmdResult = Result<(), Errno>;

/// The state name Xen's tool prints.
pub fn state_name(state: u32) -> &'static str {
    match state {
        lp::STATE_CHECKED => "CHECKED",
        lp::STATE_APPLIED => "APPLIED",
        _ => "unknown",
    }
}

fn fail(what: &str, e: Errno) -> CmdResult {
    println!("{what}... failed");
    println!("Error {}: {}", e.0, e.name());
    Err(e)
}

/// `upload NAME FILE`.
pub fn upload(name: &str, file: &[u8]) -> CmdResult {
    match hc::lp_upload(name, file) {
        Ok(_) => {
            println!("Uploading {name}... completed");
            Ok(())
        }
        Err(e) => fail(&alloc::format!("Uploading {name}"), e),
    }
}

/// Every payload: (name, status), in upload order, and the list version.
pub fn entries() -> Result<(Vec<(String, LpStatus)>, u32), Errno> {
    const BATCH: usize = 8;
    let mut out = Vec::new();
    let mut version;
    let mut idx = 0u32;
    loop {
        let mut st = [LpStatus::default(); BATCH];
        let mut names = [[0u8; lp::NAME_SIZE]; BATCH];
        let mut lens = [0u32; BATCH];
        let (n, v, left) = hc::lp_list(idx, &mut st, &mut names, &mut lens)?;
        version = v;
        for i in 0..n as usize {
            let len = (lens[i] as usize).saturating_sub(1).min(lp::NAME_SIZE);
            out.push((
                String::from_utf8_lossy(&names[i][..len]).into_owned(),
                st[i],
            ));
        }
        idx += n;
        if left == 0 || n == 0 {
            break;
        }
    }
    Ok((out, version))
}

/// `list`.
pub fn list() -> CmdResult {
    let (all, _) = match entries() {
        Ok(x) => x,
        Err(e) => {
            println!("Failed to list payloads");
            println!("Error {}: {}", e.0, e.name());
            return Err(e);
        }
    };
    println!(" {:<39}| {:<11}| metadata", "ID", "status");
    println!("----------------------------------------+------------+---------");
    for (name, st) in &all {
        if st.rc != 0 {
            println!(
                "{name:<40}| {:<11}| (rc {} {})",
                state_name(st.state),
                st.rc,
                Errno(-st.rc).name()
            );
        } else {
            println!("{name:<40}| {:<11}|", state_name(st.state));
        }
    }
    Ok(())
}

/// Wait until `name`'s pending action has finished: its final status.
pub fn wait(name: &str) -> Result<LpStatus, Errno> {
    let until = crate::time::now_ns() + WAIT_NS;
    loop {
        match hc::lp_get(name) {
            Ok(st) if st.rc != -EAGAIN => return Ok(st),
            // EAGAIN from the hypercall itself: a rendezvous holds the lock.
            Ok(_) | Err(Errno(EAGAIN)) => {}
            Err(e) => return Err(e),
        }
        if crate::time::now_ns() > until {
            return Err(Errno(ETIMEDOUT));
        }
        crate::time::sleep_ns(1_000_000);
    }
}

/// An ACTION and its wait; `verb` is what Xen's tool prints.
fn action(name: &str, cmd: u32, flags: u32, verb: &str, want: Option<u32>) -> CmdResult {
    let what = alloc::format!("{verb} {name}");
    if let Err(e) = hc::lp_action(name, cmd, timeout_ns(), flags) {
        return fail(&what, e);
    }
    let Some(want) = want else {
        // UNLOAD is immediate.
        println!("{what}... completed");
        return Ok(());
    };
    match wait(name) {
        Ok(st) if st.rc == 0 && st.state == want => {
            println!("{what}... completed");
            Ok(())
        }
        Ok(st) => {
            let e = Errno(if st.rc < 0 { -st.rc } else { EINVAL });
            println!(
                "{what}... failed: operation returned {} ({})",
                st.rc,
                e.name()
            );
            println!("Error {}: {}", e.0, e.name());
            Err(e)
        }
        Err(e) => fail(&what, e),
    }
}

/// `apply NAME [--nodeps]`.
pub fn apply(name: &str, nodeps: bool) -> CmdResult {
    let flags = if nodeps { lp::ACTION_APPLY_NODEPS } else { 0 };
    action(
        name,
        lp::ACTION_APPLY,
        flags,
        "Applying",
        Some(lp::STATE_APPLIED),
    )
}

/// `revert NAME`.
pub fn revert(name: &str) -> CmdResult {
    action(
        name,
        lp::ACTION_REVERT,
        0,
        "Reverting",
        Some(lp::STATE_CHECKED),
    )
}

/// `replace NAME`.
pub fn replace(name: &str) -> CmdResult {
    action(
        name,
        lp::ACTION_REPLACE,
        0,
        "Replacing",
        Some(lp::STATE_APPLIED),
    )
}

/// `unload NAME`.
pub fn unload(name: &str) -> CmdResult {
    action(name, lp::ACTION_UNLOAD, 0, "Unloading", None)
}

/// The payload name `load` derives from a file name: the base name
/// without its extension (`/x/hello.livepatch` -> `hello`).
pub fn name_of(file: &str) -> &str {
    let base = file.rsplit('/').next().unwrap_or(file);
    match base.rfind('.') {
        Some(i) if i > 0 => &base[..i],
        _ => base,
    }
}

/// `load FILE`: upload as the file's base name, then apply.
pub fn load(file_name: &str, file: &[u8]) -> CmdResult {
    let name = name_of(file_name);
    upload(name, file)?;
    apply(name, false)
}

/// Run one command line (`upload hello hello.livepatch`, `list`, ...);
/// `files` maps a file name to its bytes.
pub fn run<'f>(line: &str, files: &dyn Fn(&str) -> Option<&'f [u8]>) -> CmdResult {
    let w: Vec<&str> = line.split_whitespace().collect();
    let file = |n: &str| {
        files(n).ok_or_else(|| {
            println!("{n}: no such file");
            Errno(warden_abi::errno::ENOENT)
        })
    };
    match w.as_slice() {
        ["upload", name, f] => upload(name, file(f)?),
        ["list"] => list(),
        ["apply", name] => apply(name, false),
        ["apply", name, "--nodeps"] => apply(name, true),
        ["revert", name] => revert(name),
        ["replace", name] => replace(name),
        ["unload", name] => unload(name),
        ["load", f] => load(f, file(f)?),
        _ => {
            println!(
                "usage: upload <name> <file> | list | apply <name> [--nodeps] | revert <name> | replace <name> | unload <name> | load <file>"
            );
            Err(Errno(EINVAL))
        }
    }
}
