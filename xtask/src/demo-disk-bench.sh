#!/bin/sh
# /etc/demo/disk-bench [DEVICE] in the demo domU (demo.run=disk-bench):
# sequential write then read of the whole of DEVICE (default /dev/xvda), 1 MiB
# blocks with O_DIRECT (busybox dd oflag=direct / iflag=direct: no page
# cache), 3 rounds; one "disk-bench: write|read MiB/s" line per transfer,
# timed with /proc/uptime (10 ms), then the medians. It overwrites DEVICE.
dev=${1:-/dev/xvda}
say() { echo "disk-bench: $*"; }
n=600
until [ -b "$dev" ]; do
    n=$((n - 1))
    [ "$n" -gt 0 ] || { say "FAILED: no $dev after 60 s"; exit 1; }
    sleep 0.1
done
mib=$(($(cat "/sys/block/${dev##*/}/size") / 2048))
now() { cut -d ' ' -f 1 /proc/uptime; }
rate() { awk -v a="$1" -v b="$2" -v m="$mib" 'BEGIN { d = b - a; if (d < 0.01) d = 0.01; printf "%.1f", m / d }'; }
median() { tr ' ' '\n' | grep . | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
writes= reads=
for round in 1 2 3; do
    t0=$(now)
    dd if=/dev/zero of="$dev" bs=1M count="$mib" oflag=direct 2>/dev/null || { say "FAILED: write"; exit 1; }
    t1=$(now)
    dd if="$dev" of=/dev/null bs=1M count="$mib" iflag=direct 2>/dev/null || { say "FAILED: read"; exit 1; }
    t2=$(now)
    w=$(rate "$t0" "$t1") r=$(rate "$t1" "$t2")
    say "round $round: write $mib MiB in $(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}') s: $w MiB/s; read in $(awk -v a="$t1" -v b="$t2" 'BEGIN{print b-a}') s: $r MiB/s"
    writes="$writes $w" reads="$reads $r"
done
say "median: write $(echo "$writes" | median) MiB/s, read $(echo "$reads" | median) MiB/s"
