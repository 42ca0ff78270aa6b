//! grant_table_op (hypercall 20) from a test guest: thin wrappers over the
//! raw hypercall, each entry's GNTST_* status read back.

use warden_abi::hypercall::GRANT_TABLE_OP;
use warden_abi::xen::grant_table::{self as gt, *};
use warden_abi::{DomId, Pod};
use warden_guest::hypercall::{self as hc, HResult};

fn op<T: Pod>(cmd: u32, ops: &mut [T]) -> HResult {
    hc::call(
        GRANT_TABLE_OP,
        [cmd as u64, ops.as_mut_ptr() as u64, ops.len() as u64, 0, 0],
    )
}

/// map_grant_ref of `dom`'s `gref` at guest-physical `gpa`: (status, handle).
pub fn map(dom: DomId, gref: u32, gpa: u64, readonly: bool) -> Result<(i16, u32), hc::Errno> {
    let mut m = [MapGrantRef {
        host_addr: gpa,
        flags: GNTMAP_HOST_MAP | if readonly { GNTMAP_READONLY } else { 0 },
        ref_: gref,
        dom,
        ..Default::default()
    }];
    op(gt::MAP_GRANT_REF, &mut m)?;
    Ok((m[0].status, m[0].handle))
}

/// unmap_grant_ref: the status.
#[allow(dead_code)] // used by the two-guest scenario once guests can map their table
pub fn unmap(handle: u32, gpa: u64) -> Result<i16, hc::Errno> {
    let mut u = [UnmapGrantRef {
        host_addr: gpa,
        handle,
        ..Default::default()
    }];
    op(gt::UNMAP_GRANT_REF, &mut u)?;
    Ok(u[0].status)
}

/// One copy: the status.
pub fn copy(source: CopyPtr, dest: CopyPtr, len: u16, flags: u16) -> Result<i16, hc::Errno> {
    let mut c = [gt::Copy {
        source,
        dest,
        len,
        flags,
        ..Default::default()
    }];
    op(gt::COPY, &mut c)?;
    Ok(c[0].status)
}

/// setup_table of `dom` for `frames.len()` frames: the status.
pub fn setup_table(dom: DomId, frames: &mut [u64]) -> Result<i16, hc::Errno> {
    let mut s = [SetupTable {
        dom,
        nr_frames: frames.len() as u32,
        frame_list: frames.as_mut_ptr() as u64,
        ..Default::default()
    }];
    op(gt::SETUP_TABLE, &mut s)?;
    Ok(s[0].status)
}

/// query_size of `dom`: (status, frames, max frames).
pub fn query_size(dom: DomId) -> Result<(i16, u32, u32), hc::Errno> {
    let mut q = [QuerySize {
        dom,
        ..Default::default()
    }];
    op(gt::QUERY_SIZE, &mut q)?;
    Ok((q[0].status, q[0].nr_frames, q[0].max_nr_frames))
}

/// set_version: the hypercall's result and the version written back.
pub fn set_version(version: u32) -> (HResult, u32) {
    let mut v = [SetVersion { version }];
    let r = op(gt::SET_VERSION, &mut v);
    (r, v[0].version)
}

/// get_version of `dom`.
pub fn get_version(dom: DomId) -> Result<u32, hc::Errno> {
    let mut v = [GetVersion {
        dom,
        ..Default::default()
    }];
    op(gt::GET_VERSION, &mut v)?;
    Ok(v[0].version)
}

/// A copy side: a grant reference of `domid` or (DOMID_SELF) a frame.
pub fn ptr(u: u64, domid: DomId, offset: u16) -> CopyPtr {
    CopyPtr {
        u,
        domid,
        offset,
        pad: 0,
    }
}
