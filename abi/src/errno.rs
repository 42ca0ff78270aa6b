//! Xen's errno values (xen/include/public/errno.h). Hypercalls return `-value`.

/// Operation not permitted (also what the no-XSM default policy returns on a refusal).
pub const EPERM: i32 = 1;
/// No such file or directory (no such entry: boolean, ocontext, ...).
pub const ENOENT: i32 = 2;
/// No such domain.
pub const ESRCH: i32 = 3;
/// Interrupted.
pub const EINTR: i32 = 4;
/// I/O error.
pub const EIO: i32 = 5;
/// No such device or address (a page that is not the domain's to remove).
pub const ENXIO: i32 = 6;
/// Argument list too long.
pub const E2BIG: i32 = 7;
/// Bad file number (bad event channel port).
pub const EBADF: i32 = 9;
/// Try again.
pub const EAGAIN: i32 = 11;
/// Out of memory.
pub const ENOMEM: i32 = 12;
/// Permission denied (a FLASK denial).
pub const EACCES: i32 = 13;
/// Bad address (a guest pointer that does not translate, or crosses a bound).
pub const EFAULT: i32 = 14;
/// Device or resource busy.
pub const EBUSY: i32 = 16;
/// Exists.
pub const EEXIST: i32 = 17;
/// Cross-device link.
pub const EXDEV: i32 = 18;
/// No such device.
pub const ENODEV: i32 = 19;
/// Invalid argument.
pub const EINVAL: i32 = 22;
/// No space left.
pub const ENOSPC: i32 = 28;
/// Result out of range (a buffer too small).
pub const ERANGE: i32 = 34;
/// Math argument out of domain (a continuation index that cannot be one).
pub const EDOM: i32 = 33;
/// Value too large for its type.
pub const EOVERFLOW: i32 = 75;
/// Function not implemented (unknown hypercall or sub-operation).
pub const ENOSYS: i32 = 38;
/// Timer expired (a single-shot timer set in the past with the "future" flag).
pub const ETIME: i32 = 62;
/// Executable format error (a malformed live-patch payload).
pub const ENOEXEC: i32 = 8;
/// No data (a live-patch payload without a signature).
pub const ENODATA: i32 = 61;
/// Link has been severed (a live patch's dependency is missing).
pub const ENOLINK: i32 = 67;
/// Bad message (a malformed signature trailer).
pub const EBADMSG: i32 = 74;
/// Name not unique (an ambiguous symbol).
pub const ENOTUNIQ: i32 = 76;
/// Illegal byte sequence (a live patch's expected old bytes differ).
pub const EILSEQ: i32 = 84;
/// Operation not supported.
pub const EOPNOTSUPP: i32 = 95;
/// Required key not available (signed by a key that is not trusted).
pub const ENOKEY: i32 = 126;
/// Key was rejected (a signature that does not verify).
pub const EKEYREJECTED: i32 = 129;
/// No buffer space (a result does not fit the caller's buffer).
pub const ENOBUFS: i32 = 105;
/// Timed out.
pub const ETIMEDOUT: i32 = 110;

/// The name of an errno value (for logs and test output).
pub fn name(e: i32) -> &'static str {
    match e {
        EPERM => "EPERM",
        ENOENT => "ENOENT",
        ESRCH => "ESRCH",
        EINTR => "EINTR",
        EIO => "EIO",
        ENXIO => "ENXIO",
        E2BIG => "E2BIG",
        EBADF => "EBADF",
        EAGAIN => "EAGAIN",
        ENOMEM => "ENOMEM",
        EACCES => "EACCES",
        EFAULT => "EFAULT",
        EBUSY => "EBUSY",
        EEXIST => "EEXIST",
        EXDEV => "EXDEV",
        ENODEV => "ENODEV",
        EINVAL => "EINVAL",
        ENOSPC => "ENOSPC",
        ERANGE => "ERANGE",
        EDOM => "EDOM",
        EOVERFLOW => "EOVERFLOW",
        ENOSYS => "ENOSYS",
        ETIME => "ETIME",
        EOPNOTSUPP => "EOPNOTSUPP",
        ENOBUFS => "ENOBUFS",
        ETIMEDOUT => "ETIMEDOUT",
        ENOEXEC => "ENOEXEC",
        ENODATA => "ENODATA",
        ENOLINK => "ENOLINK",
        EBADMSG => "EBADMSG",
        ENOTUNIQ => "ENOTUNIQ",
        EILSEQ => "EILSEQ",
        ENOKEY => "ENOKEY",
        EKEYREJECTED => "EKEYREJECTED",
        _ => "E?",
    }
}

/// The message of an errno value, as Xen's tools print it (the C library's
/// `strerror` text for Linux errno values, which Xen's errno.h uses).
pub fn message(e: i32) -> &'static str {
    match e {
        EPERM => "Operation not permitted",
        ENOENT => "No such file or directory",
        ESRCH => "No such process",
        EINTR => "Interrupted system call",
        EIO => "Input/output error",
        ENXIO => "No such device or address",
        E2BIG => "Argument list too long",
        ENOEXEC => "Exec format error",
        EBADF => "Bad file descriptor",
        EAGAIN => "Resource temporarily unavailable",
        ENOMEM => "Cannot allocate memory",
        EACCES => "Permission denied",
        EFAULT => "Bad address",
        EBUSY => "Device or resource busy",
        EEXIST => "File exists",
        EXDEV => "Invalid cross-device link",
        ENODEV => "No such device",
        EINVAL => "Invalid argument",
        ENOSPC => "No space left on device",
        ERANGE => "Numerical result out of range",
        EDOM => "Numerical argument out of domain",
        EOVERFLOW => "Value too large for defined data type",
        ENOSYS => "Function not implemented",
        ENODATA => "No data available",
        ETIME => "Timer expired",
        ENOLINK => "Link has been severed",
        EBADMSG => "Bad message",
        ENOTUNIQ => "Name not unique on network",
        EILSEQ => "Invalid or incomplete multibyte or wide character",
        EOPNOTSUPP => "Operation not supported",
        ENOBUFS => "No buffer space available",
        ETIMEDOUT => "Connection timed out",
        ENOKEY => "Required key not available",
        EKEYREJECTED => "Key was rejected by service",
        _ => "Unknown error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_errno_has_a_message() {
        for e in 1..200 {
            if name(e) != "E?" {
                assert_ne!(message(e), "Unknown error", "{}", name(e));
            }
        }
        assert_eq!(message(EACCES), "Permission denied");
        assert_eq!(message(EPERM), "Operation not permitted");
    }
}
