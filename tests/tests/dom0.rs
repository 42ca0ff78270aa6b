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
        .contains("dom0: xen_version: Warden 4.17-warden, capabilities 'hvm-3.0-x86_32 hvm-3.0-x86_32p hvm-3.0-x86_64'")
        .contains("dom0: physinfo: 2 CPUs")
        .contains("dom0:   0   running")
        .contains("system_u:system_r:dom0_t")
        .contains("dom0: FLASK Enforcing (policy version 30); booleans: guest_writeconsole=1 dom0_livepatch=0 guest_argo=0")
        .contains("dom0: console ring (readconsole): ")
        .contains("dom0: | ")
        .contains("dom0: commands: list, dmesg")
        .lacks("avc:  denied");
    // The build-id dom0 read through xen_version is the image's.
    let id = xtask::build::build_id(&warden_tests::test_image()).expect("build-id");
    o.contains(&format!("dom0: build-id {id}"));
    // `list` and `getenforce` ran twice: at start and from the shell.
    assert!(
        o.lines_with("dom0: FLASK Enforcing").len() >= 2,
        "{}",
        o.serial
    );
}

/// Issue 13: the shell takes exactly Xen's mode and boolean values and
/// refuses the rest (nothing changes), lists the policy's booleans, prints
/// Xen's error messages, shows a prompt and echoes; `dmesg -c` reads the
/// whole ring before clearing it, and dom0's own output (what it printed
/// of the ring included) never goes back into the ring.
#[test]
fn dom0_shell_refuses_wrong_values_and_dmesg_never_reads_its_own_echo() {
    let o = Boot::new()
        .module(dom0(), "")
        .input(
            "type 'help' on the serial console",
            b"setenforce enforcing\ngetenforce\nsetenforce bogus\nsetenforce\nsetbool guest_argo on\nsetbool guest_argo\nsetbool guest_argo maybe\ngetbool\npause 42\ndmesg -c\ndmesg\npoweroff\n",
        )
        .run();
    o.expect_dom0_poweroff()
        // Prompt and echo.
        .contains("warden-dom0# setenforce enforcing")
        // `enforcing` means enforcing: the mode did not change.
        .contains("dom0: setenforce enforcing: done")
        .lacks("switched to permissive mode")
        .contains("dom0: setenforce: invalid mode 'bogus': expected 0, 1, permissive or enforcing; nothing changed")
        .contains("dom0: setenforce: usage: setenforce 0|1|permissive|enforcing")
        .contains("dom0: setbool guest_argo=1: done")
        .contains("dom0: setbool guest_argo: a value is required: 0, 1, true, false, on or off; nothing changed")
        .contains("dom0: setbool guest_argo: invalid value 'maybe': expected 0, 1, true, false, on or off; nothing changed")
        // Every boolean of the loaded policy; guest_argo stayed on.
        .contains("dom0: guest_writeconsole: 1")
        .contains("dom0: dom0_livepatch: 0")
        .contains("dom0: guest_argo: 1")
        .lacks("dom0: guest_argo: 0")
        // Xen's messages, not Rust's Debug form.
        .contains("dom0: pause d42: No such process")
        .lacks("Err(Errno")
        .contains("dom0: console ring (readconsole, cleared): ");
    assert!(
        o.lines_with("FLASK Enforcing").len() >= 2,
        "getenforce after `setenforce enforcing`: {}",
        o.serial
    );
    // What dom0 printed of the ring never went back into the ring.
    assert!(
        !o.serial.contains("dom0: | dom0:") && !o.serial.contains("dom0: | (d0)"),
        "dom0's output was read back from the ring: {}",
        o.serial
    );
    // The ring was read whole before it was cleared: the first `dmesg -c`
    // returned the boot's first line, the `dmesg` after it none of the old lines.
    let cleared = o
        .serial
        .split("dom0: console ring (readconsole, cleared)")
        .nth(1)
        .expect("dmesg -c ran");
    let (during, after) = cleared
        .split_once("dom0: console ring (readconsole): ")
        .expect("dmesg ran after dmesg -c");
    assert!(
        o.serial.contains("Warden ready:") && !after.contains("Warden ready:"),
        "the clear emptied the ring: {after}"
    );
    let _ = during;
}

/// Issue 13: under flask=late with no policy loaded, dom0 says so (Xen's
/// getenforce answers 1 there, as if it enforced).
#[test]
fn dom0_reports_flask_late_without_a_policy() {
    Boot::new()
        .cmdline("flask=late")
        .module(dom0(), "")
        .input("type 'help' on the serial console", b"poweroff\n")
        .run()
        .expect_dom0_poweroff()
        .contains(
            "dom0: FLASK No policy loaded: everything is allowed until one is (then enforcing)",
        )
        .lacks("dom0: FLASK Enforcing");
}
