//! Warden's dom0 (the test dom0 for now). Without `test=` on its command
//! line it shows that the system works — version, host, domains, FLASK state,
//! the console ring read with `readconsole` — then offers a small operator
//! shell on the serial console. With `test=NAME` it runs a test scenario and
//! powers off when every check passed (the harness's success code), or
//! crashes when one failed.
#![no_std]
#![no_main]

extern crate alloc;

mod demo;

use warden_guest::start::Boot;

warden_guest::entry!(main);

fn main(boot: &'static Boot) -> ! {
    match boot.arg("test") {
        None => demo::run(boot),
        Some(name) => {
            warden_guest::println!("dom0: unknown test scenario '{name}'");
            warden_guest::exit::crash()
        }
    }
}
