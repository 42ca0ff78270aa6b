//! The guest-visible Xen services (see ../shared/design/growing-hvcore.md).

pub mod gnttab;
