//! The test guest: one kernel whose `role=` command-line argument selects
//! what it does. Roles ending in `-dom0` orchestrate a scenario as dom0 and
//! power the machine off when every check passed (the harness's success
//! code) or crash it when one failed; the others are the domUs the
//! scenarios observe. See `tests/tests/*.rs` for how each is booted.
#![no_std]
#![no_main]

extern crate alloc;

mod console;
mod evtchn;
mod gnttab;
mod hostile;
mod lapic;
mod livepatch;
mod matrix;
mod probe;
mod report;
mod ring3;
mod scenarios;
mod workers;
mod xenabi;
mod xlbuild;

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
        "matrix" => scenarios::matrix_guest(boot),
        "matrix-dom0" => scenarios::matrix_dom0(boot),
        "victim" => workers::victim(),
        "mute" => workers::mute(),
        "relabel-self" => scenarios::relabel_self(boot),
        "labels-dom0" => scenarios::labels_dom0(boot),
        "runtime-dom0" => scenarios::runtime_dom0(boot),
        "lifecycle-dom0" => scenarios::lifecycle_dom0(boot),
        "built" => xlbuild::built(boot),
        "wait-dom0" => scenarios::wait_dom0(boot),
        "sched-dom0" => scenarios::sched_dom0(boot),
        "dummy-guest" => scenarios::dummy_guest(boot),
        "dummy-dom0" => scenarios::dummy_dom0(boot),
        "late-guest" => scenarios::late_guest(boot),
        "late-dom0" => scenarios::late_dom0(boot),
        "livepatch-dom0" => livepatch::dom0(boot),
        "lp-load" => livepatch::load(boot),
        "hostile" => hostile::hostile(boot),
        "gnttab-dom0" => gnttab::dom0(boot),
        "gnttab-granter" => gnttab::granter(boot),
        "evtchn-front" => evtchn::front(boot),
        "evtchn-back" => evtchn::back(boot),
        "evtchn-deny" => evtchn::deny(boot),
        "evtchn-hostile" => evtchn::hostile(boot),
        "hostile-dom0" => hostile::hostile_dom0(boot),
        "canary" => workers::canary(),
        "ring3" => ring3::ring3(),
        "probe" => probe::probe(),
        "flooder" => console::flooder(boot),
        "console-dom0" => console::dom0(boot),
        "burner" => workers::burner(),
        "worker" => workers::worker(boot),
        "smp" => workers::smp(boot),
        "timer" => workers::timer(boot),
        "xen-abi" => xenabi::xen_abi(),
        "xen-time" => xenabi::xen_time(boot),
        "pvh-cpu" => workers::pvh_cpu(boot),
        "crash" => workers::crash(boot),
        "lapic" => lapic::lapic(boot),
        "bench" => workers::bench(boot),
        r => {
            println!("tguest: unknown role '{r}'");
            warden_guest::exit::crash()
        }
    }
}
