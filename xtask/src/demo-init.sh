#!/bin/sh
# /init of the demo domU's initramfs (built by xtask::dom0img; busybox-static).
# Its first line is the marker "demo: userspace up", on the domain's console
# (hvc0: xenconsoled logs it to /var/log/xen/console/guest-demo.log in dom0).
# It loads the kernel modules of /etc/demo/modules (the block frontend, ext4).
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
echo "demo: kernel $(uname -r), $(grep -c ^processor /proc/cpuinfo) vCPU, $(sed -n 's/^MemTotal: *//p' /proc/meminfo), $(cat /sys/hypervisor/guest_type 2>/dev/null) guest"
while read -r m; do
    [ -n "$m" ] || continue
    insmod "/lib/modules/$(uname -r)/$m" || echo "demo: insmod $m failed"
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
