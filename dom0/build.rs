//! Link settings for a Warden guest kernel (see guest/guest.ld).
include!("../guest/build-guest.rs");

fn main() {
    link_guest();
}
