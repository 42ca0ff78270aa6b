//! Issue 10: the emulated local APIC and MMIO. One test guest (dom0, two
//! vCPUs, role `lapic`) programs its LAPIC timer through the xAPIC page
//! (one-shot and periodic, taken while halted, EOIed), reads and writes
//! unclaimed MMIO (all-ones, ignored), switches to x2APIC and uses the
//! TSC-deadline timer, sends IPIs to its other vCPU, and restarts that vCPU
//! with INIT-SIPI-SIPI at a real-mode trampoline that goes on in 32-bit
//! protected mode (MMIO decoded in 16-, 32- and 64-bit code).

use warden_tests::Boot;

#[test]
fn lapic_timer_ipis_unclaimed_mmio_and_init_sipi_sipi() {
    let o = Boot::new().smp(2).guest("role=lapic").run();
    o.expect_dom0_poweroff()
        .contains("RESULT lapic: PASS")
        .lacks("CHECK FAIL")
        .lacks("crashed")
        .contains("CHECK ok the AP ran the trampoline to its end")
        .contains("CHECK ok 4 fixed IPIs to APIC id 2 arrived");
}
