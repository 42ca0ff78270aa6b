//! Reference decisions from Debian's libsepol 3.x.
//!
//! Warden's differential tests compare every decision of the `xsm` security
//! server and every policy written by `policy-compiler` with what libsepol —
//! the library behind `checkpolicy` and setools — computes for the same
//! binary policy. libsepol keeps its loaded policy in process-global state, so
//! an [`Oracle`] holds a process-wide lock for as long as it lives.
//!
//! The text formats of [`Av`] and the command-line tool match those of
//! `flask compute-av` / `flask compute-create`, so outputs can be diffed.

use std::ffi::{CStr, CString, c_char, c_int, c_uint, c_void};
use std::fmt;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

unsafe extern "C" {
    fn oracle_load(
        path: *const c_char,
        names: *const *const c_char,
        vals: *const c_int,
        n: c_int,
        err: *mut c_char,
        errlen: usize,
    ) -> c_int;
    fn oracle_compute_av(
        s: *const c_char,
        t: *const c_char,
        c: *const c_char,
        allowed: *mut c_uint,
        auditallow: *mut c_uint,
        auditdeny: *mut c_uint,
        err: *mut c_char,
        errlen: usize,
    ) -> c_int;
    fn oracle_compute_sid(
        kind: c_int,
        s: *const c_char,
        t: *const c_char,
        c: *const c_char,
        out: *mut c_char,
        outlen: usize,
        err: *mut c_char,
        errlen: usize,
    ) -> c_int;
    fn oracle_info(cb: extern "C" fn(*mut c_void, *const c_char), arg: *mut c_void);
    fn oracle_ocontexts(cb: extern "C" fn(*mut c_void, *const c_char), arg: *mut c_void);
    fn oracle_read_mem(data: *const c_void, len: usize) -> c_int;
    fn oracle_context_sid(ctx: *const c_char, sid: *mut c_uint) -> c_int;
    fn oracle_av_sid(ssid: c_uint, tsid: c_uint, cls: u16, allowed: *mut c_uint) -> c_int;
    fn oracle_class(name: *const c_char, cls: *mut u16) -> c_int;
    fn oracle_decide(
        ssid: c_uint,
        tsid: c_uint,
        cls: u16,
        av: *mut c_uint,
        sids: *mut c_uint,
        rc: *mut c_int,
    );
    fn oracle_sid_context(sid: c_uint, out: *mut c_char, outlen: usize) -> c_int;
}

/// Every decision for one (source SID, target SID, class): what
/// [`Oracle::compute_av`] and the three [`Oracle::compute_sid`] kinds answer,
/// on SIDs ([`Oracle::sid`], [`Oracle::class`]) and without string parsing.
/// A computation libsepol refused is `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub av: Option<Av>,
    /// The new SIDs of create, member and relabel ([`SidKind`] order).
    pub sids: [Option<u32>; 3],
}

/// libsepol's `policydb_read` of an in-memory image into a fresh policydb
/// (destroyed afterwards): the peer of Warden's loader in benchmarks.
pub fn read_policy_mem(data: &[u8]) -> Result<(), String> {
    let _guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    // SAFETY: `data` is valid for `len` bytes; libsepol only reads it; serialised by the lock.
    let rc = unsafe { oracle_read_mem(data.as_ptr().cast(), data.len()) };
    if rc == 0 {
        Ok(())
    } else {
        Err("libsepol cannot read the policy".into())
    }
}

static LOCK: Mutex<()> = Mutex::new(());

/// An access vector decision as libsepol reports it (bit n-1 = permission value n).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Av {
    pub allowed: u32,
    pub auditallow: u32,
    /// The complement of dontaudit, as libsepol reports it.
    pub auditdeny: u32,
}

impl fmt::Display for Av {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "allowed=0x{:08x} auditallow=0x{:08x} auditdeny=0x{:08x}",
            self.allowed, self.auditallow, self.auditdeny
        )
    }
}

/// Which new-SID computation to ask libsepol for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SidKind {
    /// type_transition (`security_compute_create`).
    Create = 0,
    /// type_member (`security_compute_member`).
    Member = 1,
    /// type_change (`security_compute_relabel`).
    Relabel = 2,
}

/// A policy loaded into libsepol. Holds the process-wide oracle lock.
pub struct Oracle {
    _guard: MutexGuard<'static, ()>,
}

fn cstr(s: &str) -> Result<CString, String> {
    CString::new(s).map_err(|_| format!("NUL byte in {s:?}"))
}

fn err_string(buf: &[u8]) -> String {
    CStr::from_bytes_until_nul(buf)
        .map(|c| c.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "unknown libsepol error".to_string())
}

impl Oracle {
    /// Loads `policy` and sets `bools` (name, value) before evaluating conditionals.
    pub fn load(policy: &Path, bools: &[(String, bool)]) -> Result<Oracle, String> {
        let guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let path = cstr(&policy.to_string_lossy())?;
        let names: Vec<CString> = bools
            .iter()
            .map(|(n, _)| cstr(n))
            .collect::<Result<_, _>>()?;
        let ptrs: Vec<*const c_char> = names.iter().map(|n| n.as_ptr()).collect();
        let vals: Vec<c_int> = bools.iter().map(|(_, v)| c_int::from(*v)).collect();
        let mut err = [0u8; 512];
        let n = c_int::try_from(bools.len()).map_err(|_| "too many booleans".to_string())?;
        // SAFETY: every pointer is valid for the call; the C side copies nothing it keeps
        // beyond the policy it reads itself, and the global lock serialises all callers.
        let rc = unsafe {
            oracle_load(
                path.as_ptr(),
                ptrs.as_ptr(),
                vals.as_ptr(),
                n,
                err.as_mut_ptr().cast(),
                err.len(),
            )
        };
        if rc != 0 {
            return Err(err_string(&err));
        }
        Ok(Oracle { _guard: guard })
    }

    /// `security_compute_av` for (scontext, tcontext, class).
    pub fn compute_av(&self, scon: &str, tcon: &str, class: &str) -> Result<Av, String> {
        let (s, t, c) = (cstr(scon)?, cstr(tcon)?, cstr(class)?);
        let (mut a, mut aa, mut ad) = (0, 0, 0);
        let mut err = [0u8; 512];
        // SAFETY: valid NUL-terminated strings and out-pointers; serialised by the lock `self` holds.
        let rc = unsafe {
            oracle_compute_av(
                s.as_ptr(),
                t.as_ptr(),
                c.as_ptr(),
                &mut a,
                &mut aa,
                &mut ad,
                err.as_mut_ptr().cast(),
                err.len(),
            )
        };
        if rc != 0 {
            return Err(err_string(&err));
        }
        Ok(Av {
            allowed: a,
            auditallow: aa,
            auditdeny: ad,
        })
    }

    /// The context libsepol computes for a new object (type_transition / member / change).
    pub fn compute_sid(
        &self,
        kind: SidKind,
        scon: &str,
        tcon: &str,
        class: &str,
    ) -> Result<String, String> {
        let (s, t, c) = (cstr(scon)?, cstr(tcon)?, cstr(class)?);
        let mut out = [0u8; 1024];
        let mut err = [0u8; 512];
        // SAFETY: valid NUL-terminated strings and buffers with their lengths; serialised by the lock.
        let rc = unsafe {
            oracle_compute_sid(
                kind as c_int,
                s.as_ptr(),
                t.as_ptr(),
                c.as_ptr(),
                out.as_mut_ptr().cast(),
                out.len(),
                err.as_mut_ptr().cast(),
                err.len(),
            )
        };
        if rc != 0 {
            return Err(err_string(&err));
        }
        Ok(err_string(&out))
    }

    /// The SID libsepol gives a context (for [`Oracle::compute_av_sid`]).
    pub fn sid(&self, ctx: &str) -> Result<u32, String> {
        let c = cstr(ctx)?;
        let mut sid = 0;
        // SAFETY: valid NUL-terminated string and out-pointer; serialised by the lock `self` holds.
        let rc = unsafe { oracle_context_sid(c.as_ptr(), &mut sid) };
        if rc == 0 {
            Ok(sid)
        } else {
            Err(format!("invalid context {ctx}"))
        }
    }

    /// The value of class `name` in the loaded policy.
    pub fn class(&self, name: &str) -> Result<u16, String> {
        let c = cstr(name)?;
        let mut cls = 0;
        // SAFETY: a valid NUL-terminated string and out-pointer; serialised by the lock `self` holds.
        let rc = unsafe { oracle_class(c.as_ptr(), &mut cls) };
        if rc == 0 {
            Ok(cls)
        } else {
            Err(format!("unknown class {name}"))
        }
    }

    /// Every decision for (ssid, tsid, class) at once: see [`Decision`].
    pub fn decide(&self, ssid: u32, tsid: u32, class: u16) -> Decision {
        let (mut av, mut sids, mut rc) = ([0; 3], [0; 3], [0; 4]);
        // SAFETY: plain values and three arrays of the lengths the C side
        // writes (3, 3, 4); serialised by the lock `self` holds.
        unsafe {
            oracle_decide(
                ssid,
                tsid,
                class,
                av.as_mut_ptr(),
                sids.as_mut_ptr(),
                rc.as_mut_ptr(),
            )
        };
        let sid = |i: usize| (rc[i + 1] == 0).then_some(sids[i]);
        Decision {
            av: (rc[0] == 0).then_some(Av {
                allowed: av[0],
                auditallow: av[1],
                auditdeny: av[2],
            }),
            sids: [sid(0), sid(1), sid(2)],
        }
    }

    /// The context string of a SID (as [`Oracle::compute_sid`] prints it).
    pub fn context(&self, sid: u32) -> Result<String, String> {
        let mut out = [0u8; 1024];
        // SAFETY: a buffer with its length; the C side NUL-terminates within it; serialised by the lock.
        let rc = unsafe { oracle_sid_context(sid, out.as_mut_ptr().cast(), out.len()) };
        if rc == 0 {
            Ok(err_string(&out))
        } else {
            Err(format!("cannot convert SID {sid} to a context"))
        }
    }

    /// `sepol_compute_av` on SIDs: the allowed vector (benchmarks: no string parsing per call).
    #[inline]
    pub fn compute_av_sid(&self, ssid: u32, tsid: u32, class: u16) -> Result<u32, String> {
        let mut a = 0;
        // SAFETY: plain values and an out-pointer; serialised by the lock `self` holds.
        let rc = unsafe { oracle_av_sid(ssid, tsid, class, &mut a) };
        if rc == 0 {
            Ok(a)
        } else {
            Err("sepol_compute_av failed".into())
        }
    }

    /// The policy's symbols, one per line:
    /// `policyvers V mls M handle_unknown H`, then `type T` / `attribute A`, `role R`,
    /// `user U`, `bool B 0|1`, `class C VALUE perm=value...`.
    pub fn info(&self) -> Vec<String> {
        extern "C" fn push(arg: *mut c_void, line: *const c_char) {
            // SAFETY: `arg` is the `&mut Vec<String>` passed below and `line` a NUL-terminated
            // string valid for the duration of this callback.
            unsafe {
                let v = &mut *arg.cast::<Vec<String>>();
                v.push(CStr::from_ptr(line).to_string_lossy().into_owned());
            }
        }
        let mut lines: Vec<String> = Vec::new();
        // SAFETY: the callback only touches `lines`, which outlives the call; serialised by the lock.
        unsafe { oracle_info(push, (&raw mut lines).cast()) };
        lines
    }

    /// The policy's Xen object contexts, one per line, in the policy's order:
    /// `isid N CTX`, `pirq N CTX`, `ioport LO-HI CTX`, `iomem LO-HI CTX`,
    /// `pcidevice N CTX`, `devicetree PATH CTX` (numbers in hex; with MLS, CTX ends
    /// in `:LOW-HIGH` with every category listed).
    pub fn ocontexts(&self) -> Vec<String> {
        extern "C" fn push(arg: *mut c_void, line: *const c_char) {
            // SAFETY: `arg` is the `&mut Vec<String>` passed below and `line` a NUL-terminated
            // string valid for the duration of this callback.
            unsafe {
                let v = &mut *arg.cast::<Vec<String>>();
                v.push(CStr::from_ptr(line).to_string_lossy().into_owned());
            }
        }
        let mut lines: Vec<String> = Vec::new();
        // SAFETY: the callback only touches `lines`, which outlives the call; serialised by the lock.
        unsafe { oracle_ocontexts(push, (&raw mut lines).cast()) };
        lines
    }
}
