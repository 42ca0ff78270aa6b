//! `role=probe`: one operation whose outcome depends on the FLASK mode and
//! policy — sysctl physinfo, which the default policy refuses to domU_t —
//! printed as `probe: physinfo rc=<rc>` for the host test to judge; then
//! the domain powers off.

use warden_guest::hypercall as hc;
use warden_guest::println;

pub fn probe() -> ! {
    let r = match hc::physinfo() {
        Ok(_) => 0,
        Err(e) => -(e.0 as i64),
    };
    println!("probe: physinfo rc={r}");
    warden_guest::exit::poweroff()
}
