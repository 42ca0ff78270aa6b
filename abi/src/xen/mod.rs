//! Xen 4.17's public interface, one file per public header it mirrors (the
//! header's path is the first line of each file).

pub mod console;
pub mod event_channel;
pub mod grant_table;
pub mod hvm_params;
pub mod hvm_save;
pub mod platform;
pub mod start_info;
// xen.h's mirror keeps the header's name.
#[allow(clippy::module_inception)]
pub mod xen;
