//! Xen 4.17's public interface, one file per public header it mirrors (the
//! header's path is the first line of each file).

pub mod start_info;
