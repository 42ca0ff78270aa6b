//! The guest-visible Xen services (docs/ARCHITECTURE.md, "hvcore"): each
//! takes the domain or the resolved target a permit unlocked, never the
//! whole hypervisor.

pub mod evtchn;
pub mod gnttab;
pub mod shared_info;
