//! Xen 4.17's public interface, one file per public header it mirrors (the
//! header's path is each file's first line).

pub mod console;
pub mod hvm_params;
/// `xen.h` itself (named after the header, like the other files).
#[allow(clippy::module_inception)]
pub mod xen;
