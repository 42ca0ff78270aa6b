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
//! and received, and the test compares them. Then, in the same boot, grants
//! between the domUs and a third, isolated one ([`GRANTS`], issue 12 item
//! 4: mapped when the policy allows it, refused with its avc line and
//! nothing mapped when it does not); then the domains are destroyed.

use std::sync::OnceLock;
use std::time::Duration;
use warden_tests::Outcome;

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
";

/// The script's end, after [`GRANTS`]: the domUs' kernels did not oops,
/// destroy, every avc line.
const TAIL: &str = "\
echo '== guest fatal'; grep -e 'BUG:' -e 'Kernel panic' -e 'Oops' $L | sed 's/^/guest| /'
echo '== destroy'; xl destroy demo && echo 'xl destroy: done'
echo '== ports after'; ls -1 /sys/class/net/xenbr0/brif
echo '== peer fatal'; grep -e 'BUG:' -e 'Kernel panic' -e 'Oops' $L2 | sed 's/^/peer| /'
xl destroy peer
echo '== xl dmesg avc'; xl dmesg | grep 'avc:' | sed 's/^/dmesg| /'
echo '== end'
";

/// Issue 12 item 4, grants between domUs as the policy allows them (after
/// the network checks, both domUs up, both `domU_t`): a third domU `gntc`
/// labelled `isolated_domU_t` (`seclabel=`). dom0 types commands into the
/// domUs' console shells (the pty xenconsoled gives each console, its path
/// in xenstore's `console/tty`); `gnttool` (`tests/gnttool`, in the demo's
/// initramfs) shares pages through gntalloc and maps them through gntdev.
/// The peer grants one page to the demo and one to gntc; the demo maps its
/// page and reads the peer's pattern (the policy allows `domU_t` ->
/// `domU_t`); gntc's map is refused (`isolated_domU_t` may map no other
/// guest's grants). The peer then revokes both while the demo still maps
/// its page: its kernel defers that one (the grant entry still has the
/// hypervisor's GTF_reading) and revokes gntc's at once (nothing mapped
/// it), which its grant-table debug messages show (enabled at run time,
/// printed at console log level 8). Then the other way: gntc grants a page
/// to the demo, whose map is refused (no guest maps an isolated guest's
/// grants).
const GRANTS: &str = r#"
echo '== grants'
GL=/var/log/xen/console/guest-gntc.log
ttyof() { xenstore-read "/local/domain/$(xl domid "$1")/console/tty"; }
typein() { printf '%s\n' "$2" >"$(ttyof "$1")"; }
debug() {
    # debug DOMAIN LOG: the grant table's debug messages on its console
    typein "$1" "echo 8 >/proc/sys/kernel/printk; echo 'module grant_table +p' >/proc/dynamic_debug/control; echo grants-debug-\$((40+2))"
    wait-log "$2" 'grants-debug-42' 60 >/dev/null || echo "grants: no debug on $1"
}
xl create /etc/xen/demo.cfg 'name="gntc"' 'seclabel="user_1:vm_r:isolated_domU_t"' && echo 'grants: xl create gntc: done'
wait-log $GL 'demo: idle; a shell on the console' 600 >/dev/null || echo 'grants: gntc has no shell'
wait-log $L 'demo: idle; a shell on the console' 60 >/dev/null || echo 'grants: demo has no shell'
wait-log $L2 'demo: idle; a shell on the console' 60 >/dev/null || echo 'grants: peer has no shell'
A=$(xl domid peer); B=$(xl domid demo); C=$(xl domid gntc)
echo "grants: domids peer $A demo $B gntc $C"
xl list -Z | grep -e peer -e demo -e gntc
debug peer $L2
debug gntc $GL
typein peer "gnttool share $B $C"
wait-log $L2 'gnttool: holding' 120 >/dev/null || echo 'grants: peer shares nothing'
GB=$(sed -n "s/.*gnttool: shared gref \([0-9]*\) with domain $B .*/\1/p" $L2)
GC=$(sed -n "s/.*gnttool: shared gref \([0-9]*\) with domain $C .*/\1/p" $L2)
typein demo "gnttool map $A $GB"
wait-log $L 'gnttool: holding' 120 >/dev/null || echo 'grants: demo maps nothing'
typein gntc "gnttool map $A $GC"
wait-log $GL 'gnttool: map of' 120 >/dev/null || echo 'grants: gntc reports nothing'
typein peer ''
wait-log $L2 "gnttool: released gref $GC" 120 >/dev/null || echo 'grants: peer releases nothing'
typein demo ''
wait-log $L 'gnttool: unmapped' 120 >/dev/null || echo 'grants: demo does not unmap'
wait-log $L2 'freeing g.e.' 60 >/dev/null || echo 'grants: peer frees nothing'
typein gntc "gnttool share $B"
wait-log $GL 'gnttool: holding' 120 >/dev/null || echo 'grants: gntc shares nothing'
GX=$(sed -n "s/.*gnttool: shared gref \([0-9]*\) with domain $B .*/\1/p" $GL)
typein demo "gnttool map $C $GX"
wait-log $L 'gnttool: map of' 120 >/dev/null || echo 'grants: demo reports nothing'
typein gntc ''
wait-log $GL "gnttool: released gref $GX" 120 >/dev/null || echo 'grants: gntc releases nothing'
echo "grants: grefs $GB $GC $GX"
for d in peer:$L2 demo:$L gntc:$GL; do
    grep -e 'gnttool: ' -e 'g\.e\.' "${d#*:}" | tr -d '\r' | sed "s/^/${d%%:*}| /"
done
echo '== gntc fatal'; grep -e 'BUG:' -e 'Kernel panic' -e 'Oops' $GL | sed 's/^/gntc| /'
xl destroy gntc
"#;

fn boot() -> &'static Outcome {
    static O: OnceLock<Outcome> = OnceLock::new();
    O.get_or_init(|| {
        let initrd = warden_tests::dom0_initrd_with_script(&format!("{SCRIPT}{GRANTS}{TAIL}"));
        warden_tests::linux_dom0(&initrd, Duration::from_secs(1200)).run()
    })
}

/// The lines between `== NAME` and the next `== ` line, less the kernel's
/// and Warden's log lines (`[ seconds] ...`) that the serial console
/// interleaves with them.
fn section<'a>(o: &'a Outcome, name: &str) -> Vec<&'a str> {
    let mut lines = o.section(name);
    lines.retain(|l| !l.starts_with('['));
    lines
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
    // Nothing was denied but the grant maps the policy refuses (checked
    // in the test below).
    assert!(
        section(o, "xl dmesg avc")
            .iter()
            .all(|l| l.contains(" denied  { map_read } ") && l.contains(" tclass=grant ")),
        "{:#?}",
        section(o, "xl dmesg avc")
    );
}

/// Issue 12 item 4 ([`GRANTS`]): a domU maps another's grant when the
/// policy allows it (`domU_t` -> `domU_t`: the mapper reads the granter's
/// pattern) and not when it does not (`isolated_domU_t` -> `domU_t`,
/// `domU_t` -> `isolated_domU_t`): the map is refused with the avc line of
/// Xen's check (`grant { map_read }`, mapper -> granter), nothing is
/// mapped, and the granter revokes the refused grant at once while it must
/// defer the one that is mapped.
#[test]
fn domus_map_each_others_grants_only_as_the_policy_allows() {
    let o = boot();
    o.expect_dom0_poweroff()
        .contains("grants: xl create gntc: done")
        .contains("== end")
        .contains("dom0: exec status 0");
    let g = section(o, "grants");
    let has = |l: &str| g.contains(&l);
    let after = |key: &str| word_after(o, "grants", key).to_string();
    let nums = |key: &str| -> Vec<u32> {
        let l = g
            .iter()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("no '{key}' in {g:#?}"));
        l.split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect()
    };
    let (a, b, c) = match nums("grants: domids ")[..] {
        [a, b, c] => (a, b, c),
        ref v => panic!("domids {v:?}: {g:#?}"),
    };
    let (gb, gc, gx) = match nums("grants: grefs ")[..] {
        [gb, gc, gx] => (gb, gc, gx),
        ref v => panic!("grefs {v:?}: {g:#?}"),
    };
    assert!(
        g.iter()
            .any(|l| l.starts_with("gntc ") && l.ends_with("user_1:vm_r:isolated_domU_t")),
        "gntc labelled isolated_domU_t: {g:#?}"
    );
    // Allowed: the demo maps the page the peer granted it and reads the
    // peer's pattern, before and after the peer revoked it.
    let sum = after(&format!(
        "peer| gnttool: shared gref {gb} with domain {b} checksum "
    ));
    let other = after(&format!(
        "peer| gnttool: shared gref {gc} with domain {c} checksum "
    ));
    assert_ne!(sum, other, "each page its own pattern");
    assert_eq!(
        after(&format!(
            "demo| gnttool: mapped domain {a} gref {gb} checksum "
        )),
        sum
    );
    assert_eq!(
        after(&format!(
            "demo| gnttool: unmapping domain {a} gref {gb}: checksum "
        )),
        sum
    );
    assert!(has(&format!(
        "demo| gnttool: unmapped domain {a} gref {gb}"
    )));
    // Refused: isolated_domU_t -> domU_t. gntdev's mmap fails (the
    // hypervisor's GNTST_permission_denied), nothing is read.
    assert!(
        has(&format!(
            "gntc| gnttool: map of domain {a} gref {gc} refused: mmap: Invalid argument (os error 22)"
        )),
        "{g:#?}"
    );
    assert!(!g.iter().any(|l| l.starts_with("gntc| gnttool: mapped")));
    // Nothing mapped: the peer revoked gntc's grant at once, and had to
    // defer the demo's (GTF_reading set while the demo mapped it) until the
    // demo unmapped it.
    let peer_kernel = |what: &str, gref: u32| {
        g.iter().any(|l| {
            l.starts_with("peer| ")
                && l.contains(&format!("xen:grant_table: {what} g.e. {gref:#x} "))
        })
    };
    assert!(has(&format!("peer| gnttool: released gref {gb}")));
    assert!(has(&format!("peer| gnttool: released gref {gc}")));
    assert!(peer_kernel("deferring", gb), "mapped: deferred: {g:#?}");
    assert!(peer_kernel("freeing", gb), "freed once unmapped: {g:#?}");
    assert!(!peer_kernel("deferring", gc), "never mapped: {g:#?}");
    // Refused the other way: domU_t -> isolated_domU_t.
    assert!(
        g.iter().any(|l| l.starts_with(&format!(
            "gntc| gnttool: shared gref {gx} with domain {b} checksum "
        ))),
        "{g:#?}"
    );
    assert!(
        has(&format!(
            "demo| gnttool: map of domain {c} gref {gx} refused: mmap: Invalid argument (os error 22)"
        )),
        "{g:#?}"
    );
    assert!(has(&format!("gntc| gnttool: released gref {gx}")));
    assert!(
        !g.iter()
            .any(|l| l.starts_with("gntc| ") && l.contains(&format!("deferring g.e. {gx:#x} "))),
        "{g:#?}"
    );
    assert!(
        !g.iter().any(|l| l.starts_with("grants: ")
            && (l.contains(" no ") || l.contains(" nothing") || l.contains("does not"))),
        "every step answered: {g:#?}"
    );
    // The two refusals are audited as Xen's flask_grant_mapref (mapper ->
    // granter, grant { map_read } for a read-only map), and nothing else is.
    let denials: Vec<&str> = section(o, "xl dmesg avc")
        .into_iter()
        .filter_map(|l| l.split_once("avc:  ").map(|(_, r)| r))
        .collect();
    assert_eq!(
        denials,
        [
            format!(
                "denied  {{ map_read }} for source=d{c} target=d{a} scontext=user_1:vm_r:isolated_domU_t tcontext=user_1:vm_r:domU_t tclass=grant permissive=0"
            ),
            format!(
                "denied  {{ map_read }} for source=d{b} target=d{c} scontext=user_1:vm_r:domU_t tcontext=user_1:vm_r:isolated_domU_t tclass=grant permissive=0"
            ),
        ],
        "{:#?}",
        section(o, "xl dmesg avc")
    );
    assert!(
        section(o, "gntc fatal").is_empty(),
        "{:#?}",
        section(o, "gntc fatal")
    );
}
