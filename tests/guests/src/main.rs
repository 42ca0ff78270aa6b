//! The test guest: one kernel whose `role=` command-line argument selects
//! what it does.
#![no_std]
#![no_main]

extern crate alloc;

use warden_guest::println;
use warden_guest::start::Boot;

warden_guest::entry!(main);

fn main(boot: &'static Boot) -> ! {
    let role = boot.arg("role").unwrap_or("hello");
    match role {
        "hello" => {
            println!(
                "tguest: hello from d{} ({} vCPUs)",
                boot.domid(),
                boot.vcpus()
            );
            for (i, (data, args)) in boot.modules().enumerate() {
                println!(
                    "tguest: module {i}: {} bytes, command line '{args}'",
                    data.len()
                );
            }
            warden_guest::exit::poweroff()
        }
        r => {
            println!("tguest: unknown role '{r}'");
            warden_guest::exit::crash()
        }
    }
}
