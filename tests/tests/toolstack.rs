//! Issue 11: Debian's Linux as Warden's PVH dom0 with Debian 12's own Xen
//! 4.17 toolstack (the dom0 image of `xtask::dom0img`, unchanged binaries),
//! FLASK enforcing with the default policy.
//!
//! One boot serves every check: dom0's init loads the Xen modules, mounts
//! xenfs, starts xenstored, runs xen-init-dom0 and xenconsoled and prints
//! `dom0: toolstack up`; then it runs the script below (`/etc/warden-exec`,
//! appended to the initramfs as `cargo xtask run --dom0 linux --exec` does)
//! and powers off, which powers the machine off.

use std::sync::OnceLock;
use std::time::Duration;
use warden_tests::{Boot, Outcome, test_image};

/// Linux's and Warden's messages that fail the boot at once.
const FATAL: &[&str] = &[
    "Kernel panic",
    "BUG:",
    "stack guard page",
    "Fatal exception",
    "dom0: FAILED",
];

/// Warden's command line (the harness puts `test_exit` first).
const CMDLINE: &str = "dom0_mem=512M dom0_max_vcpus=2";

/// What dom0 runs once the toolstack is up. Each command's output is
/// framed by `== NAME` lines; `xl dmesg`'s lines are prefixed so they are
/// told apart from the same lines on the serial console.
const SCRIPT: &str = "\
echo '== xl info'; xl info
echo '== xl list'; xl list
echo '== xl list -Z'; xl list -Z
echo '== xenstore'; xenstore-read /local/domain/0/name /local/domain/0/domid
echo '== xl getenforce'; xl getenforce
xl setenforce 0 && echo \"after setenforce 0: $(xl getenforce)\"
xl setenforce 1 && echo \"after setenforce 1: $(xl getenforce)\"
echo '== xl dmesg'; xl dmesg | sed 's/^/dmesg| /'
echo '== xl debug-keys'; xl debug-keys q && xl dmesg | grep -e \"'q' pressed\" -e 'General information' | sed 's/^/keys| /'
echo '== end'
";

fn boot() -> &'static Outcome {
    static O: OnceLock<Outcome> = OnceLock::new();
    O.get_or_init(|| {
        let img = xtask::dom0img::image(false).unwrap_or_else(|e| {
            panic!("cannot build the dom0 image (cargo xtask dom0-image): {e}")
        });
        let initrd = xtask::dom0img::initrd_for(&img, Some(SCRIPT))
            .unwrap_or_else(|e| panic!("dom0's initramfs with the script: {e}"));
        Boot::new()
            .smp(2)
            .memory(1024)
            .timeout(Duration::from_secs(900))
            .stop_on(FATAL)
            .cmdline(CMDLINE)
            .module(&img.vmlinux, xtask::dom0img::DOM0_CMDLINE)
            .module(&initrd, "initrd")
            .run()
    })
}

/// The text between `== NAME` and the next `== ` line.
fn section<'a>(o: &'a Outcome, name: &str) -> Vec<&'a str> {
    let start = format!("== {name}");
    o.lines
        .iter()
        .map(|(_, l)| l.trim_end_matches('\r'))
        .skip_while(|l| *l != start)
        .skip(1)
        .take_while(|l| !l.starts_with("== "))
        .collect()
}

/// `xl info`'s value of `field` (`field : value`).
fn info<'a>(o: &'a Outcome, field: &str) -> &'a str {
    section(o, "xl info")
        .into_iter()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == field).then(|| v.trim())
        })
        .unwrap_or_else(|| {
            panic!(
                "xl info has no {field}:\n{}",
                section(o, "xl info").join("\n")
            )
        })
}

#[test]
fn the_toolstack_starts_in_the_linux_dom0_enforcing_and_powers_off() {
    let o = boot();
    o.expect_dom0_poweroff()
        .contains("Flask:  Starting in enforcing mode.")
        .contains("Domain 0: 512 MiB, 2 vCPUs")
        .contains("dom0: modules: xen-privcmd xen-evtchn xen-gntdev xen-gntalloc xenfs")
        .contains("Done setting up Dom0")
        .contains("dom0: toolstack up")
        .contains("== end")
        .contains("dom0: exec status 0")
        .contains("Domain 0 shut down: reason 0 (poweroff)")
        .lacks("dom0: insmod")
        .lacks("avc:  denied");
    // xenstored answers and xen-init-dom0 wrote Domain-0's entries.
    assert_eq!(section(o, "xenstore"), ["Domain-0", "0"]);
    // Every hypercall the toolstack made was known but Linux's probe of
    // XENPF_get_dom0_console (Xen 4.18's), which Xen 4.17's FLASK hook
    // refuses as unknown.
    let unknown = o.lines_with("xsm: unknown");
    assert!(
        unknown
            .iter()
            .all(|l| l.contains("xsm: unknown platform_op 64 ")),
        "unknown operations: {unknown:#?}"
    );
}

#[test]
fn xl_info_reports_wardens_version_cpus_memory_caps_and_command_line() {
    let o = boot();
    o.expect_dom0_poweroff();
    assert_eq!(info(o, "nr_cpus"), "2");
    assert_eq!(info(o, "max_cpu_id"), "1");
    assert_eq!(info(o, "nr_nodes"), "1");
    // physinfo's capabilities: PVH guests with nested paging and v1 grant
    // tables; no PV, no shadow paging, no IOMMU.
    assert_eq!(info(o, "virt_caps"), "hvm hap gnttab-v1");
    // QEMU's 1024 MiB less the firmware's reserved ranges.
    assert_eq!(info(o, "total_memory"), "1023");
    // What dom0's 512 MiB leave, less Warden's own (image, heap, pools:
    // ~45 MiB; Xen 4.17 keeps ~18): the boot modules (~150 MiB) were
    // given back once dom0 was built, as Xen discards its initial images.
    let free: u32 = info(o, "free_memory").parse().unwrap();
    assert!(
        (450..=1023 - 512).contains(&free),
        "free_memory {free}: not what dom0's 512 MiB leave once the boot modules are freed"
    );
    // hw_caps: the boot CPU's feature words (QEMU's CPU: FPU and TSC in
    // 1.EDX, LM in 0x80000001.EDX, SVM in 0x80000001.ECX).
    let caps: Vec<u32> = info(o, "hw_caps")
        .split(':')
        .map(|w| u32::from_str_radix(w, 16).unwrap())
        .collect();
    assert_eq!(caps.len(), 8, "{caps:x?}");
    assert_eq!(caps[0] & 0x11, 0x11, "FPU, TSC: {caps:x?}");
    assert_ne!(caps[2] & (1 << 29), 0, "LM: {caps:x?}");
    assert_ne!(caps[3] & (1 << 2), 0, "SVM: {caps:x?}");
    assert_eq!(info(o, "sharing_freed_memory"), "0");
    // Xen 4.17's interface, Warden's extraversion.
    assert_eq!(info(o, "xen_major"), "4");
    assert_eq!(info(o, "xen_minor"), "17");
    assert_eq!(info(o, "xen_extra"), "-warden");
    assert_eq!(info(o, "xen_version"), "4.17-warden");
    assert_eq!(
        info(o, "xen_caps"),
        "hvm-3.0-x86_32 hvm-3.0-x86_32p hvm-3.0-x86_64"
    );
    assert_eq!(info(o, "xen_scheduler"), "credit2");
    assert_eq!(info(o, "xen_pagesize"), "4096");
    assert_eq!(info(o, "xen_commandline"), format!("test_exit {CMDLINE}"));
    let id = xtask::build::build_id(&test_image()).expect("the test image's build-id");
    assert_eq!(info(o, "build_id"), id);
    assert_eq!(info(o, "xend_config_format"), "4");
}

#[test]
fn xl_list_shows_domain_0_with_its_label() {
    let o = boot();
    o.expect_dom0_poweroff();
    let cols = |name: &str| -> Vec<String> {
        section(o, name)
            .iter()
            .find(|l| l.starts_with("Domain-0 "))
            .unwrap_or_else(|| panic!("{name} lists no Domain-0: {:?}", section(o, name)))
            .split_whitespace()
            .map(String::from)
            .collect()
    };
    // Name ID Mem VCPUs State Time(s)
    let l = cols("xl list");
    assert_eq!(l[1..4], ["0", "512", "2"], "{l:?}");
    assert!(l[4].starts_with('r'), "running: {l:?}");
    let z = cols("xl list -Z");
    assert_eq!(z.last().unwrap(), "system_u:system_r:dom0_t", "{z:?}");
}

#[test]
fn xl_getenforce_and_setenforce_switch_flask_from_dom0() {
    let o = boot();
    o.expect_dom0_poweroff()
        .contains("after setenforce 0: Permissive")
        .contains("after setenforce 1: Enforcing")
        .contains("Flask: d0 switched to permissive mode")
        .contains("Flask: d0 switched to enforcing mode");
    assert_eq!(section(o, "xl getenforce")[0], "Enforcing");
}

#[test]
fn xl_dmesg_shows_wardens_console_ring() {
    let o = boot();
    o.expect_dom0_poweroff();
    let d = section(o, "xl dmesg");
    let has = |s: &str| d.iter().any(|l| l.starts_with("dmesg| ") && l.contains(s));
    for s in [
        "INFO  Warden 0.1.0 (build-id",
        "INFO  Flask:  Starting in enforcing mode.",
        "INFO  Warden ready: 2/2 CPUs online",
        "INFO  Domain 0: 512 MiB, 2 vCPUs",
        "INFO  dom0 label system_u:system_r:dom0_t",
        "Flask: d0 switched to enforcing mode",
    ] {
        assert!(has(s), "xl dmesg lacks '{s}':\n{}", d.join("\n"));
    }
    assert!(
        !d.iter().any(|l| l.contains("avc:")),
        "an avc line in the ring"
    );
}

#[test]
fn xl_debug_keys_runs_the_key_and_xl_dmesg_shows_its_output() {
    let o = boot();
    o.expect_dom0_poweroff();
    let k = section(o, "xl debug-keys");
    let has = |s: &str| k.iter().any(|l| l.starts_with("keys| ") && l.contains(s));
    assert!(
        has("'q' pressed -> dumping domain info"),
        "{}",
        k.join("\n")
    );
    assert!(
        has("General information for domain 0 ('dom0'), hardware domain"),
        "{}",
        k.join("\n")
    );
}
