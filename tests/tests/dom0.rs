//! Issue 5: the dom0 that `cargo xtask run` boots shows Warden working — its
//! console output, a readconsole of the ring — and its operator shell works
//! over the serial console (console_io read).

use warden_tests::{Boot, dom0};

#[test]
fn dom0_demo_shows_the_system_and_its_shell_answers_on_the_serial_console() {
    let o = Boot::new()
        .module(dom0(), "")
        .input(
            "type 'help' on the serial console",
            b"help\nlist\ngetenforce\npoweroff\n",
        )
        .run();
    o.expect_dom0_poweroff()
        .contains("Flask:  Starting in enforcing mode.")
        .contains("dom0: Warden's dom0 is up: domain 0, 2 vCPUs, 64 MiB")
        .contains("dom0: xen_version: Warden 0.1-warden, capabilities 'hvm-3.0-x86_64'")
        .contains("dom0: physinfo: 2 CPUs")
        .contains("dom0:   0   running")
        .contains("system_u:system_r:dom0_t")
        .contains("dom0: FLASK enforcing (policy version 30); booleans: guest_writeconsole=1 dom0_livepatch=0 guest_argo=0")
        .contains("dom0: console ring (readconsole): ")
        .contains("dom0: | ")
        .contains("dom0: commands: list, dmesg")
        .lacks("avc:  denied");
    // The build-id dom0 read through xen_version is the image's.
    let id = xtask::build::build_id(&warden_tests::test_image()).expect("build-id");
    o.contains(&format!("dom0: build-id {id}"));
    // `list` and `getenforce` ran twice: at start and from the shell.
    assert!(
        o.lines_with("dom0: FLASK enforcing").len() >= 2,
        "{}",
        o.serial
    );
}
