#!/bin/sh
# /init of the demo domU's initramfs (built by xtask::dom0img; busybox-static).
# Its first line is the marker "demo: userspace up", on the domain's console
# (hvc0: xenconsoled logs it to /var/log/xen/console/guest-demo.log in dom0).
# It loads the kernel modules of /etc/demo/modules (the block frontend, ext4),
# each with the parameters the command line gives it (`MODULE.PARAM=VALUE`).
# `demo.run=NAME` on the command line runs the script /etc/demo/NAME
# (disk-test: mkfs, write, read back the xvda disk) and prints
# "demo: NAME status N". `demo.poweroff` (e.g. `xl create /etc/xen/demo.cfg
# 'extra="console=hvc0 demo.poweroff"'`) powers the domain off after that;
# otherwise it idles with a shell on its console (`xl console demo`).
echo "demo: userspace up"
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
# Network (a block of its own): `demo.net=ADDR/LEN` loads the network
# frontend (/etc/demo/net-modules), gives eth0 the address and brings it up;
# `demo.net-test` then runs the domU's side of the network test: a 16 MiB
# file served once on TCP port 5001 and a listener on port 5000 whose data's
# SHA-256 goes to the console ("demo: net-test in sha256 HASH");
# `demo.net-send=PEER` then pings another domU's address and sends it that
# file (the other domU's demo.net-test receives it).
for arg in $(cat /proc/cmdline); do
    case "$arg" in
    demo.net=*)
        while read -r m; do
            [ -n "$m" ] && { insmod "/lib/modules/$(uname -r)/$m" || echo "demo: insmod $m failed"; }
        done </etc/demo/net-modules
        n=0
        until [ -e /sys/class/net/eth0 ] || [ "$n" -ge 300 ]; do
            sleep 0.1
            n=$((n + 1))
        done
        ip addr add "${arg#demo.net=}" dev eth0 && ip link set eth0 up &&
            echo "demo: net eth0 ${arg#demo.net=} up" || echo "demo: net eth0 failed"
        ;;
    demo.net-test)
        dd if=/dev/urandom of=/tmp/net-out bs=1M count=16 2>/dev/null
        echo "demo: net-test out sha256 $(sha256sum </tmp/net-out | cut -d' ' -f1)"
        nc -l -p 5001 </tmp/net-out &
        mkfifo /tmp/net-hold
        sleep 100000 >/tmp/net-hold &
        (
            nc -l -p 5000 </tmp/net-hold | sha256sum | cut -d' ' -f1 >/tmp/net-in
            echo "demo: net-test in sha256 $(cat /tmp/net-in)"
        ) &
        echo "demo: net-test listening"
        ;;
    demo.net-send=*)
        # Another domU's net-test (after demo.net-test here): ping it, then
        # send it this domain's 16 MiB file.
        peer=${arg#demo.net-send=}
        ping -c 3 "$peer" | grep -e transmitted -e loss
        nc "$peer" 5000 </tmp/net-out
        echo "demo: net-send to $peer status $?"
        ;;
    esac
done
echo "demo: kernel $(uname -r), $(grep -c ^processor /proc/cpuinfo) vCPU, $(sed -n 's/^MemTotal: *//p' /proc/meminfo), $(cat /sys/hypervisor/guest_type 2>/dev/null) guest"
# A module's parameters from the command line, as modprobe takes them:
# `MODULE.PARAM=VALUE` (the module's name with `_` for `-`), e.g.
# `xen_blkfront.max_ring_page_order=2`.
params() {
    mod=$(basename "$1" .ko | tr - _)
    for a in $(cat /proc/cmdline); do
        case "$a" in "$mod".*=*) echo "${a#"$mod".}" ;; esac
    done
}
while read -r m; do
    [ -n "$m" ] || continue
    # shellcheck disable=SC2046
    insmod "/lib/modules/$(uname -r)/$m" $(params "$m") || echo "demo: insmod $m failed"
done </etc/demo/modules
for arg in $(cat /proc/cmdline); do
    case "$arg" in
    demo.run=*)
        name=${arg#demo.run=}
        echo "demo: running /etc/demo/$name"
        sh "/etc/demo/$name"
        echo "demo: $name status $?"
        ;;
    esac
done
if tr ' ' '\n' </proc/cmdline | grep -qx demo.poweroff; then
    echo "demo: powering off"
    poweroff -f
fi
# `xl shutdown` asks the kernel (xenstore control/shutdown), which runs
# /sbin/poweroff; busybox's poweroff signals init (this script, PID 1):
# USR2 is poweroff, USR1 halt, TERM reboot. A script only runs its traps
# between commands, so the shell runs in the background and init waits
# (a trapped signal ends `wait`).
off() {
    echo "demo: $1"
    sync
    poweroff -f
}
trap 'off "powering off (signal)"' USR2 USR1
trap 'off "rebooting (signal): powering off"' TERM
echo "demo: idle; a shell on the console"
(
    trap - USR1 USR2 TERM
    while true; do
        setsid cttyhack sh -l
    done
) </dev/console >/dev/console 2>&1 &
while true; do
    wait
    sleep 1
done
