//! Issue 12 (network): `vif=['bridge=xenbr0']` in the Linux dom0 on Warden.
//!
//! One boot of the dom0 image (`xtask::dom0img`, Debian's Linux and Xen
//! 4.17 toolstack, FLASK enforcing with the default policy): dom0's init
//! makes the bridge xenbr0 (192.0.2.1/24); the script below creates the demo
//! domU from `/etc/xen/demo-net.cfg` with 2 vCPUs (netfront asks for one
//! queue per vCPU, each with its own event channels), xl runs Debian's
//! vif-bridge, which puts xen-netback's vif on the bridge; the domU's init
//! loads xen-netfront, takes 192.0.2.2 and starts its side of the test
//! (`demo.net-test`). dom0 pings it, sends it 16 MiB over TCP (busybox nc)
//! and fetches 16 MiB from it; each side prints the SHA-256 of what it sent
//! and received, and the test compares them. Then the domain is destroyed.

use std::sync::OnceLock;
use std::time::Duration;
use warden_tests::{Boot, Outcome};

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

/// What dom0 runs once the toolstack is up; each step's output after a
/// `== NAME` line. The domU's console log lines are printed with a
/// `guest| ` prefix.
const SCRIPT: &str = "\
L=/var/log/xen/console/guest-demo.log
L2=/var/log/xen/console/guest-peer.log
echo '== bridge'; ip -4 addr show dev xenbr0 | grep inet
echo '== xl create peer'
xl create /etc/xen/demo-net.cfg 'name=\"peer\"' 'extra=\"console=hvc0 demo.net=192.0.2.3/24 demo.net-test\"' && echo 'xl create peer: done'
wait-log $L2 'demo: net-test listening' 600 >/dev/null && echo 'peer: listening'
echo '== xl create'
xl create /etc/xen/demo-net.cfg 'vcpus=2' 'extra=\"console=hvc0 demo.net=192.0.2.2/24 demo.net-test demo.net-send=192.0.2.3\"' && echo 'xl create: done'
wait-log $L 'demo: net-test listening' 600 >/dev/null && echo 'demo: listening'
echo '== ports'; ls -1 /sys/class/net/xenbr0/brif
echo '== backend'; xenstore-read /local/domain/0/backend/vif/2/0/hotplug-status /local/domain/0/backend/vif/2/0/state
echo '== frontend'; xenstore-ls /local/domain/2/device/vif/0 | grep -e multi-queue -e event-channel -e '^state'
echo '== domU to domU'
wait-log $L 'demo: net-send to' 300 | sed 's/^/guest| /'
grep -e 'packets transmitted' -e 'net-test out sha256' $L | sed 's/^/guest| /'
wait-log $L2 'demo: net-test in sha256' 120 | sed 's/^/peer| /'
echo '== ping'; ping -c 3 192.0.2.2; echo \"ping status $?\"
echo '== to domU'
dd if=/dev/urandom of=/tmp/in bs=1M count=16 2>/dev/null
echo \"dom0 sent sha256 $(sha256sum </tmp/in | cut -d' ' -f1) bytes $(wc -c </tmp/in)\"
nc 192.0.2.2 5000 </tmp/in; echo \"nc status $?\"
wait-log $L 'demo: net-test in sha256' 300 | sed 's/^/guest| /'
echo '== from domU'
mkfifo /tmp/hold; sleep 100000 >/tmp/hold & h=$!
nc 192.0.2.2 5001 </tmp/hold >/tmp/out; echo \"nc status $?\"
kill $h
echo \"dom0 received sha256 $(sha256sum </tmp/out | cut -d' ' -f1) bytes $(wc -c </tmp/out)\"
grep 'demo: net-test out sha256' $L | sed 's/^/guest| /'
echo '== guest fatal'; grep -e 'BUG:' -e 'Kernel panic' -e 'Oops' $L | sed 's/^/guest| /'
echo '== destroy'; xl destroy demo && echo 'xl destroy: done'
echo '== ports after'; ls -1 /sys/class/net/xenbr0/brif
echo '== peer fatal'; grep -e 'BUG:' -e 'Kernel panic' -e 'Oops' $L2 | sed 's/^/peer| /'
xl destroy peer
echo '== xl dmesg avc'; xl dmesg | grep 'avc:' | sed 's/^/dmesg| /'
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
            .timeout(Duration::from_secs(1200))
            .stop_on(FATAL)
            .cmdline(CMDLINE)
            .module(&img.vmlinux, xtask::dom0img::DOM0_CMDLINE)
            .module(&initrd, "initrd")
            .run()
    })
}

/// The lines between `== NAME` and the next `== ` line, less the kernel's
/// and Warden's log lines (`[ seconds] ...`) that the serial console
/// interleaves with them.
fn section<'a>(o: &'a Outcome, name: &str) -> Vec<&'a str> {
    let start = format!("== {name}");
    o.lines
        .iter()
        .map(|(_, l)| l.trim_end_matches('\r'))
        .skip_while(|l| *l != start)
        .skip(1)
        .take_while(|l| !l.starts_with("== "))
        .filter(|l| !l.starts_with('['))
        .collect()
}

/// The word after `key` on the section's line that has it.
fn word_after<'a>(o: &'a Outcome, name: &str, key: &str) -> &'a str {
    section(o, name)
        .into_iter()
        .find_map(|l| l.split_once(key).map(|(_, r)| r.split_whitespace().next()))
        .flatten()
        .unwrap_or_else(|| panic!("no '{key}' in section {name}: {:#?}", section(o, name)))
}

#[test]
fn the_demo_domu_on_xenbr0_answers_pings_and_16_mib_cross_intact_both_ways() {
    let o = boot();
    o.expect_dom0_poweroff()
        .contains("dom0: bridge xenbr0 192.0.2.1/24")
        .contains("xl create: done")
        .contains("demo: listening")
        .contains("== end")
        .contains("dom0: exec status 0");
    // vif-bridge put netback's interfaces on the bridge and reported it.
    assert!(section(o, "xl create peer").contains(&"peer: listening"));
    assert_eq!(section(o, "ports"), ["vif1.0", "vif2.0"]);
    assert_eq!(section(o, "backend"), ["connected", "4"]);
    // Two vCPUs: netfront asked for two queues, each with its own event
    // channels (split: one for tx, one for rx), and connected.
    let fe = section(o, "frontend");
    let has = |k: &str| fe.iter().any(|l| l.trim_start().starts_with(k));
    assert!(has("multi-queue-num-queues = \"2\""), "frontend: {fe:#?}");
    let ports: Vec<&str> = fe
        .iter()
        .filter(|l| l.contains("event-channel"))
        .filter_map(|l| l.split('"').nth(1))
        .collect();
    let mut distinct = ports.clone();
    distinct.sort();
    distinct.dedup();
    assert!(
        distinct.len() >= 2 && distinct.len() == ports.len(),
        "one event channel (or a tx/rx pair) per queue: {fe:#?}"
    );
    assert!(has("state = \"4\""), "frontend connected: {fe:#?}");
    // dom0 reaches the domU.
    assert!(
        section(o, "ping")
            .iter()
            .any(|l| l.contains("3 packets transmitted, 3 packets received")),
        "ping: {:#?}",
        section(o, "ping")
    );
    // 16 MiB dom0 -> domU, as sent.
    let sent = word_after(o, "to domU", "dom0 sent sha256 ");
    assert_eq!(word_after(o, "to domU", " bytes "), "16777216");
    assert_eq!(word_after(o, "to domU", "nc status "), "0");
    assert_eq!(word_after(o, "to domU", "demo: net-test in sha256 "), sent);
    // 16 MiB domU -> dom0, as sent.
    let got = word_after(o, "from domU", "dom0 received sha256 ");
    assert_eq!(word_after(o, "from domU", " bytes "), "16777216");
    assert_eq!(
        word_after(o, "from domU", "demo: net-test out sha256 "),
        got
    );
    // domU -> domU through the bridge (netback copies from the first
    // domU's grants to the second's): ping answered, 16 MiB as sent.
    let d2d = section(o, "domU to domU");
    assert!(
        d2d.iter()
            .any(|l| l.contains("3 packets transmitted, 3 packets received")),
        "{d2d:#?}"
    );
    assert_eq!(
        word_after(o, "domU to domU", "net-send to 192.0.2.3 status "),
        "0"
    );
    assert_eq!(
        word_after(o, "domU to domU", "net-test in sha256 "),
        word_after(o, "domU to domU", "net-test out sha256 ")
    );
    // The domUs' kernels did not oops; destroy took the first one's vif
    // off the bridge; nothing was denied.
    assert!(
        section(o, "guest fatal").is_empty(),
        "{:#?}",
        section(o, "guest fatal")
    );
    assert!(
        section(o, "peer fatal").is_empty(),
        "{:#?}",
        section(o, "peer fatal")
    );
    assert!(section(o, "destroy").contains(&"xl destroy: done"));
    assert_eq!(section(o, "ports after"), ["vif1.0"]);
    assert!(
        section(o, "xl dmesg avc").is_empty(),
        "{:#?}",
        section(o, "xl dmesg avc")
    );
}
