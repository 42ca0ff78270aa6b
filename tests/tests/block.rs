//! Issue 12, block: a guest disk through Linux's split block driver on
//! Warden. Debian's Linux is the PVH dom0 (the dom0 image of
//! `xtask::dom0img`, FLASK enforcing with the default policy) with Debian
//! 12's Xen 4.17 toolstack; `xl create` builds the demo domU with
//! `disk=['format=raw, vdev=xvda, access=rw, target=/root/disk.img']`:
//! xl runs Debian's hotplug script (`/etc/xen/scripts/block`: a loop
//! device on the file), dom0's xen-blkback serves it, the domU's
//! xen-blkfront is its `/dev/xvda` (grant maps of the domU's pages into
//! dom0's physmap, interdomain event channels).
//!
//! One boot serves every check. dom0 creates a 64 MiB zero-filled image file
//! and the domU (2 vCPUs: blkfront asks for one queue per vCPU, blkback
//! offers one per dom0 vCPU, so two rings and two event channels; each ring
//! 4 pages, `xen_blkfront.max_ring_page_order=2`, checked in xenstore); the
//! domU's init runs `/etc/demo/disk-test`
//! (`demo.run=disk-test` in xl's `extra=`: mke2fs, mount, 16 MiB of random
//! data written, sync, umount, mount again and read back, umount, the
//! device's SHA-256) and powers off (`demo.poweroff`); libxl destroys it
//! (`on_poweroff = "destroy"`), the hotplug script frees the loop device,
//! and dom0 hashes the image file: the same SHA-256 as the domU's device.
//! Then a second domU (`demo2`) runs `/etc/demo/disk-bench` on the same file
//! and is `xl destroy`ed once its first round is done: dom0 stays up, the
//! domain and its loop device go. Then parallel VBD plug (as XenServer 7
//! did): a third domU (`plug`, no disk, idle) gets one disk with `xl
//! block-attach` and loses it with `xl block-detach`, then 8 disks at once
//! (8 `xl block-attach` in the background) and loses them at once
//! (`vbd-plug`, `xtask/src/vbd-plug.sh`, in dom0's image): every command
//! exits 0 (none stuck on xenstore: each runs under a 300 s `timeout`), the
//! domU's blkfront has written Connected (4) for each of the 8 frontends
//! (and printed each disk), 8 distinct loop devices back them, and after the
//! detach no frontend, backend or loop device is left and xenstored still
//! answers. The times (one vs 8) are printed, not asserted: they are
//! `cargo xtask bench-plug`'s (BENCHMARKS.md). At the end the free memory
//! is what it was before the first domU.

use std::sync::OnceLock;
use std::time::Duration;
use warden_tests::Outcome;

/// What dom0 runs once the toolstack is up. The domU's console log is
/// copied with a `demo| ` prefix; dom0's results are `blk:` lines.
const SCRIPT: &str = r#"
free() { xl info | sed -n 's/^free_memory *: //p'; }
gone() {
    # gone: wait until xl lists Domain-0 alone and no loop device is left
    # (at most 120 s each)
    n=0
    while [ "$(xl list | wc -l)" != 2 ] && [ $n -lt 1200 ]; do sleep 0.1; n=$((n + 1)); done
    n=0
    while [ -n "$(losetup -a)" ] && [ $n -lt 1200 ]; do sleep 0.1; n=$((n + 1)); done
}
echo "blk: free before $(free)"
dd if=/dev/zero of=/root/disk.img bs=1M count=64 2>/dev/null
echo "blk: image before $(sha256sum /root/disk.img | cut -d ' ' -f 1)"
cat >/root/disk.cfg <<CFG
name = "demo"
type = "pvh"
kernel = "/boot/demo-vmlinux"
ramdisk = "/boot/demo-initrd"
memory = 128
vcpus = 2
extra = "console=hvc0 demo.run=disk-test demo.poweroff xen_blkfront.max_ring_page_order=2"
on_poweroff = "destroy"
disk = [ 'format=raw, vdev=xvda, access=rw, target=/root/disk.img' ]
CFG
xl create /root/disk.cfg && echo "blk: xl create ok"
# The rings blkfront set up (it connects before the init runs disk-test):
# multi-page rings of order 2, four grant references per queue.
wait-log /var/log/xen/console/guest-demo.log "demo: running /etc/demo/disk-test" 600 >/dev/null
fe=/local/domain/$(xl domid demo)/device/vbd/51712
echo "blk: ring-page-order $(xenstore-read $fe/ring-page-order 2>&1)"
for q in 0 1; do
    echo "blk: queue-$q ring-refs $(xenstore-list $fe/queue-$q 2>/dev/null | grep -c '^ring-ref')"
done
wait-log /var/log/xen/console/guest-demo.log "demo: disk-test status" 600 >/dev/null
# The domain powers itself off; libxl destroys it (its name leaves
# xenstore, then the hypervisor frees it once dom0's blkback has unmapped its
# grants) and runs the hotplug script's remove (losetup -d). Wait for all
# (at most 120 s each).
n=0
while xl domid demo >/dev/null 2>&1 && [ $n -lt 1200 ]; do sleep 0.1; n=$((n + 1)); done
xl domid demo >/dev/null 2>&1 && { echo "blk: demo still exists: xl destroy"; xl destroy demo; }
gone
sed 's/^/demo| /' /var/log/xen/console/guest-demo.log
echo "blk: domains: $(xl list | tail -n +2 | cut -d ' ' -f 1 | tr '\n' ' ')"
echo "blk: loop devices: [$(losetup -a)]"
echo "blk: hotplug errors: [$(xenstore-ls -f /local/domain/0/backend 2>/dev/null | grep hotplug-error)]"
echo "blk: image after $(sha256sum /root/disk.img | cut -d ' ' -f 1)"
# A second domU, destroyed while it writes to the same file (disk-bench's
# O_DIRECT writes; the destroy comes once its first round is done).
if xl create /etc/xen/demo-disk.cfg 'name="demo2"' vcpus=2 'extra="console=hvc0 demo.run=disk-bench"'; then
    echo "blk: demo2 created"
    wait-log /var/log/xen/console/guest-demo2.log "disk-bench: round 1:" 600 >/dev/null
    xl destroy demo2 && echo "blk: demo2 destroyed"
    gone
fi
sed 's/^/demo2| /' /var/log/xen/console/guest-demo2.log
echo "blk: after demo2: domains: $(xl list | tail -n +2 | cut -d ' ' -f 1 | tr '\n' ' ')"
echo "blk: after demo2: loop devices: [$(losetup -a)]"
# Parallel VBD plug: an idle domU (no disk at creation; its init has loaded
# xen-blkfront once it says "demo: idle"), one disk attached and detached,
# then 8 at once (vbd-plug, xtask/src/vbd-plug.sh: `plug: ` lines). Its
# images go where disk.img was (dom0's initramfs, half of its memory).
rm -f /root/disk.img
if xl create /etc/xen/demo.cfg 'name="plug"'; then
    echo "blk: plug created"
    wait-log /var/log/xen/console/guest-plug.log "demo: idle" 600 >/dev/null
    vbd-plug plug 8 4
    echo "blk: vbd-plug status $?"
    xl destroy plug && echo "blk: plug destroyed"
    gone
fi
sed 's/^/plug| /' /var/log/xen/console/guest-plug.log
echo "blk: after plug: domains: $(xl list | tail -n +2 | cut -d ' ' -f 1 | tr '\n' ' ')"
echo "blk: after plug: loop devices: [$(losetup -a)]"
echo "blk: free after $(free)"
"#;

fn boot() -> &'static Outcome {
    static O: OnceLock<Outcome> = OnceLock::new();
    O.get_or_init(|| {
        let initrd = warden_tests::dom0_initrd_with_script(SCRIPT);
        warden_tests::linux_dom0(&initrd, Duration::from_secs(1200)).run()
    })
}

/// The rest of the line after `prefix` (its first occurrence), `\r` trimmed.
fn after<'a>(o: &'a Outcome, prefix: &str) -> &'a str {
    o.serial
        .lines()
        .find_map(|l| {
            l.split_once(prefix)
                .map(|(_, r)| r.trim_end_matches('\r').trim())
        })
        .unwrap_or_else(|| panic!("no line with {prefix:?}:\n{}", o.serial))
}

#[test]
fn the_domus_disk_is_served_by_dom0s_blkback_from_a_loop_device_with_two_queues() {
    let o = boot();
    o.expect_dom0_poweroff()
        .contains("dom0: exec status 0")
        .contains("blk: xl create ok")
        // libxl ran Debian's hotplug script; the backend connected.
        .contains("loop0: detected capacity change from 0 to 131072")
        .line_with_all(&[
            "xen-blkback: backend/vbd/1/51712: using 2 queues",
            "persistent grants",
        ])
        // The frontend negotiated what Xen 4.17's blkback offers.
        .line_with_all(&[
            "demo| ",
            "blkfront: xvda:",
            "persistent grants: enabled",
            "indirect descriptors: enabled",
        ])
        .line_with_all(&["demo| demo: kernel ", ", 2 vCPU, "])
        .contains("demo| disk-test: /dev/xvda: 131072 sectors")
        .lacks("avc:  denied");
    assert_eq!(after(o, "blk: hotplug errors: "), "[]");
    // Multi-page rings: blkback offers order 4, the domU's blkfront asked
    // for order 2 (its module parameter): 4 pages a queue, each granted to
    // dom0 and mapped by its blkback (the disk test's data went through them).
    assert_eq!(after(o, "blk: ring-page-order "), "2");
    assert_eq!(after(o, "blk: queue-0 ring-refs "), "4");
    assert_eq!(after(o, "blk: queue-1 ring-refs "), "4");
}

#[test]
fn the_domu_writes_an_ext2_file_system_and_reads_it_back() {
    let o = boot();
    o.expect_dom0_poweroff()
        .contains("demo| disk-test: wrote 16 MiB, sha256 ")
        .contains("demo| disk-test: read back 16 MiB, same sha256")
        .contains("demo| demo: disk-test status 0")
        .lacks("disk-test: FAILED")
        .lacks("demo: insmod");
}

#[test]
fn dom0s_image_file_holds_what_the_domu_wrote_after_it_is_gone() {
    let o = boot();
    o.expect_dom0_poweroff()
        .contains("Domain 1 shut down: reason 0 (poweroff)")
        .contains("Domain 1 destroyed: ")
        .lacks("blk: demo still exists");
    // The domain, its backend and its loop device are gone.
    assert_eq!(after(o, "blk: domains: "), "Domain-0");
    assert_eq!(after(o, "blk: loop devices: "), "[]");
    let device = after(o, "demo| disk-test: device sha256 ");
    let before = after(o, "blk: image before ");
    let image = after(o, "blk: image after ");
    assert_eq!(device.len(), 64, "a SHA-256: {device:?}");
    assert_ne!(image, before, "the domU's writes reached the image file");
    assert_eq!(
        image, device,
        "dom0's file is the domU's disk byte for byte"
    );
}

#[test]
fn a_domu_destroyed_while_it_writes_leaves_dom0_up_and_its_memory_free() {
    let o = boot();
    o.expect_dom0_poweroff()
        .contains("blk: demo2 created")
        .contains("demo2| disk-bench: round 1: write 64 MiB")
        .contains("blk: demo2 destroyed")
        .contains("Domain 2 destroyed: ")
        .contains("dom0: exec status 0");
    // Its backend let go of the grants (the domain is gone, not a zombie),
    // the hotplug script freed the loop device, and every page came back.
    assert_eq!(after(o, "blk: after demo2: domains: "), "Domain-0");
    assert_eq!(after(o, "blk: after demo2: loop devices: "), "[]");
    let free_before = after(o, "blk: free before ");
    assert!(
        free_before.parse::<u32>().is_ok_and(|m| m > 128),
        "{free_before}"
    );
    // Every page of the three domUs is back; what may stay taken is dom0's own:
    // frames of its nested page tables, allocated as blkback and the
    // toolstack map guests' pages at new frames of its physmap, and kept
    // (`xl info` rounds down to MiB: a few frames show as 1).
    let (b, a) = (
        free_before.parse::<u32>().unwrap(),
        after(o, "blk: free after ").parse::<u32>().unwrap(),
    );
    assert!(
        a <= b && a + 1 >= b,
        "free_memory {a} MiB after, {b} MiB before"
    );
}

/// The vbd ids of the 8 extra disks, xvdb..xvdi: Linux's xvd major 202,
/// 16 minors per disk.
fn plug_devids() -> String {
    (1..=8)
        .map(|i| (202 * 256 + 16 * i).to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn eight_disks_plugged_at_once_all_connect_in_the_domu_and_all_unplug() {
    let o = boot();
    o.expect_dom0_poweroff()
        .contains("blk: plug created")
        .contains("plug: domain plug (id 3), 8 images of 4 MiB")
        .contains("plug: done")
        .contains("blk: vbd-plug status 0")
        .contains("blk: plug destroyed")
        .contains("Domain 3 destroyed: ")
        .lacks("plug: timed out")
        .lacks("plug: FAILED");
    // One disk alone: attached, connected by the domU's blkfront, then gone.
    let one = after(o, "plug: one: attach status ");
    assert!(
        one.starts_with("0, frontends [51728], connected 1 (backends 1), loop devices [/dev/loop")
            && one.ends_with("hotplug errors []"),
        "{one}"
    );
    assert_eq!(
        after(o, "plug: one: detach status "),
        "0, left: frontends [], backends [], loop devices []"
    );
    // Eight at once: every xl command exited 0 (a command stuck on a
    // xenstore transaction would have ended with timeout's 143), the domU
    // wrote Connected for all 8 frontends, each on its own loop device.
    assert_eq!(after(o, "plug: 8: attach statuses "), "0 0 0 0 0 0 0 0");
    assert_eq!(
        after(o, "plug: 8: frontends "),
        format!("[{}], connected 8 (backends 8)", plug_devids())
    );
    let loops = after(o, "plug: 8: loop devices ");
    assert!(loops.ends_with("distinct 8, images 8"), "{loops}");
    assert_eq!(after(o, "plug: 8: hotplug errors "), "[]");
    // The domU's kernel saw each disk.
    for v in "bcdefghi".chars() {
        o.line_with_all(&["plug| ", &format!("blkfront: xvd{v}: ")]);
    }
    // All 8 detached at once: nothing left, xenstored still answers.
    assert_eq!(after(o, "plug: 8: detach statuses "), "0 0 0 0 0 0 0 0");
    assert_eq!(
        after(o, "plug: 8: left: "),
        "frontends [], backends [], loop devices []"
    );
    assert_eq!(after(o, "plug: xenstored answers: "), "name plug");
    assert_eq!(after(o, "blk: after plug: domains: "), "Domain-0");
    assert_eq!(after(o, "blk: after plug: loop devices: "), "[]");
    eprintln!("{}", after(o, "plug: times: "));
}
