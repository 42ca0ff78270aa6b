#!/bin/sh
# /init of the dom0 image (built by xtask::dom0img; busybox-static plus
# Debian 12's Xen 4.17 toolstack). It starts the toolstack in the order that
# works on Xen 4.17 (shared/reference/linux-on-xen.md), prints
# "dom0: toolstack up", then runs a command or gives a root shell.
#
# /etc/warden-exec (added to the initramfs as a second cpio archive by
# `cargo xtask run --exec CMD`, `cargo xtask run-xen --exec CMD`: any text, no
# quoting, no length limit): once the toolstack is up, run its text with
# `sh -c`, print "dom0: exec status N" and power off. Without it, a root
# shell on the console (hvc0).
export PATH=/usr/lib/xen-4.17/bin:/usr/local/bin:/bin:/sbin:/usr/bin:/usr/sbin
export HOME=/root TERM=vt100

say() { echo "dom0: $*"; }

shell() {
    say "root shell on the console; 'poweroff -f' powers the machine off"
    while true; do
        setsid cttyhack sh -l
        say "shell exited: powering off"
        poweroff -f
    done
}

stop() {
    # stop TEXT: the toolstack did not come up
    say "FAILED: $*"
    if [ -f /etc/warden-exec ]; then
        say "exec status 125"
        poweroff -f
    fi
    shell
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm /run/lock /run/xen /run/xenstored /var/log/xen/console \
    /var/lib/xen /tmp
mount -t devpts devpts /dev/pts
# What udev adds to a Debian system's /dev and devtmpfs lacks: the hotplug
# scripts' locking (locking.sh) stats /dev/stdin and loops until it can.
ln -sf /proc/self/fd /dev/fd
ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout
ln -sf /proc/self/fd/2 /dev/stderr
say "kernel $(uname -r) on $(cat /sys/hypervisor/type 2>/dev/null || echo '?') $(cat /sys/hypervisor/guest_type 2>/dev/null), command line: $(cat /proc/cmdline)"

# 1. The kernel modules, dependencies first (the order xtask wrote).
loaded=
while read -r m; do
    [ -n "$m" ] || continue
    if insmod "/lib/modules/$(uname -r)/$m"; then
        m=${m##*/}
        loaded="$loaded ${m%.ko}"
    else
        say "insmod $m failed"
    fi
done </etc/warden/modules
say "modules:$loaded"

# Guest networks: the bridge xenbr0 with dom0's address (TEST-NET-1, no
# uplink); Debian's vif-bridge (run by xl for vif=['bridge=xenbr0']) adds
# each guest's vif to it.
# busybox's brctl (Debian's build) has no stp/setfd: STP is off on a new
# bridge, the forwarding delay is set through sysfs.
if brctl addbr xenbr0 && echo 0 >/sys/class/net/xenbr0/bridge/forward_delay &&
    ip addr add 192.0.2.1/24 dev xenbr0 && ip link set xenbr0 up; then
    say "bridge xenbr0 192.0.2.1/24"
else
    say "bridge xenbr0 not set up"
fi

# 2. xenfs, then xenstored (its files in /run/xenstored; /var/run -> /run).
mount -t xenfs xenfs /proc/xen || stop "mount -t xenfs xenfs /proc/xen"
caps=$(cat /proc/xen/capabilities)
[ "$caps" = control_d ] || say "warning: /proc/xen/capabilities is '$caps', not control_d"
XENSTORED_ROOTDIR=/run/xenstored xenstored --pid-file=/run/xenstored.pid ||
    stop "xenstored did not start"
n=0
until xenstore-read -s / >/dev/null 2>&1; do
    n=$((n + 1))
    [ "$n" -le 600 ] || stop "xenstored does not answer (xenstore-read -s /) after 60 s"
    sleep 0.1
done

# 3. Domain-0's entries in xenstore, then the console daemon (guest consoles
#    logged to /var/log/xen/console/guest-NAME.log).
xen-init-dom0 || stop "xen-init-dom0"
xenconsoled --log=guest --log-dir=/var/log/xen/console --pid-file=/run/xenconsoled.pid ||
    stop "xenconsoled did not start"
say "toolstack up"

if [ -f /etc/warden-exec ]; then
    cd /root || true
    sh -c "$(cat /etc/warden-exec)"
    status=$?
    cd / || true
    say "exec status $status"
    poweroff -f
fi
shell
