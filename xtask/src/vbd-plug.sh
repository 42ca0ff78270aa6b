#!/bin/sh
# vbd-plug DOMAIN [N] [MIB]: parallel VBD plug (issue 12, as XenServer 7
# did: attach a guest's disks at once, not one after another), in dom0 of
# the dom0 image (xtask::dom0img puts it in /usr/local/bin).
#
# DOMAIN is a running domU whose kernel has xen-blkfront loaded (the demo
# domU once it prints "demo: idle"). N image files of MIB MiB (default 8 of
# 4 MiB) are made in /root/plug. Then:
#  1. one disk alone: `xl block-attach` (Debian's hotplug script puts a loop
#     device under it), timed until the domU's blkfront has written state 4
#     (Connected) under /local/domain/ID/device/vbd/DEVID/state; then
#     `xl block-detach` of it, timed until its frontend and backend
#     directories and its loop device are gone;
#  2. N disks at once: N `xl block-attach` in the background, `wait`, timed
#     until every frontend is Connected; then N `xl block-detach` at once,
#     timed until all are gone.
# Each xl command runs under `timeout` (300 s): a command stuck on xenstore
# (a transaction livelock) ends with status 143 instead of hanging dom0.
# A wait that ends without its condition prints "plug: timed out ...".
# Times are dom0's /proc/uptime (10 ms). Every result line starts with
# "plug: "; the last is "plug: done" (the results are the caller's to
# check), or "plug: FAILED: why" (status 1) if it could not start. N is at
# most 25 (the vdevs xvdb..xvdz).
dom=${1:?usage: vbd-plug DOMAIN [N [MIB]]}
n=${2:-8}
mib=${3:-4}
T=300
dir=/root/plug
fail() {
    echo "plug: FAILED: $*"
    exit 1
}
[ "$n" -ge 1 ] && [ "$n" -le 25 ] || fail "N must be 1..25"
domid=$(xl domid "$dom") || fail "no domain $dom"
fe=/local/domain/$domid/device/vbd
be=/local/domain/0/backend/vbd/$domid
now() { cut -d ' ' -f 1 /proc/uptime; }
# idle: dom0's idle and iowait time of all its vCPUs (USER_HZ ticks)
idle() { awk '/^cpu / { print $5 + $6 }' /proc/stat; }
# busy T0 T1 IDLE0 IDLE1: how busy dom0's vCPUs were between T0 and T1, in
# percent of all of them
busy() {
    awk -v a="$1" -v b="$2" -v i="$3" -v j="$4" -v c="$(nproc)" \
        'BEGIN { t = (b - a) * 100 * c; v = 0; if (t > 0) v = 100 * (1 - (j - i) / t); printf "%.0f", v }'
}
# sub A B: B - A, seconds with 2 decimals
sub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
# vdev I: the I-th extra disk's name (1: xvdb)
vdev() { echo "xvd$(echo bcdefghijklmnopqrstuvwxyz | cut -c "$1")"; }
# state_count DIR S: how many devices under DIR have state S
state_count() { xenstore-ls -f "$1" 2>/dev/null | grep -c "^$1/[0-9]*/state = \"$2\"\$"; }
# entries DIR: the devices under DIR, in numeric order
entries() { xenstore-list "$1" 2>/dev/null | sort -n | tr '\n' ' ' | sed 's/ $//'; }
# loops: the loop devices on this script's images
loops() { losetup -a | grep -F "$dir/" | cut -d : -f 1 | sort | tr '\n' ' ' | sed 's/ $//'; }
# until_ok SECONDS CMD...: poll CMD every 0.05 s until it succeeds; status 1
# after SECONDS
until_ok() {
    w=0
    lim=$(($1 * 20))
    shift
    until "$@"; do
        w=$((w + 1))
        [ "$w" -lt "$lim" ] || {
            echo "plug: timed out after $T s waiting for: $*"
            return 1
        }
        sleep 0.05
    done
}
connected() { [ "$(state_count "$fe" 4)" -ge "$1" ]; }
gone() { [ -z "$(entries "$fe")" ] && [ -z "$(entries "$be")" ] && [ -z "$(loops)" ]; }
attach() {
    timeout $T xl block-attach "$dom" "format=raw, vdev=$(vdev "$1"), access=rw, target=$dir/d$1.img" \
        >"$dir/attach-$1.out" 2>&1
    echo $? >"$dir/attach-$1.rc"
    now >"$dir/attach-$1.end"
}
detach() {
    timeout $T xl block-detach "$dom" "$(vdev "$1")" >"$dir/detach-$1.out" 2>&1
    echo $? >"$dir/detach-$1.rc"
    now >"$dir/detach-$1.end"
}
# statuses WHAT: the exit statuses of the N commands, in order; their
# output too where one failed
statuses() {
    s=
    i=1
    while [ "$i" -le "$n" ]; do
        rc=$(cat "$dir/$1-$i.rc" 2>/dev/null || echo none)
        s="$s $rc"
        [ "$rc" = 0 ] || sed "s/^/plug: $1 $i: /" "$dir/$1-$i.out"
        i=$((i + 1))
    done
    echo "${s# }"
}
# ends WHAT T0: when each of the N commands returned, seconds after T0, in
# order of return
ends() {
    for f in "$dir/$1"-*.end; do
        sub "$2" "$(cat "$f")"
        echo
    done | sort -n | tr '\n' ' ' | sed 's/ $//'
}
hotplug_errors() { xenstore-ls -f "$be" 2>/dev/null | grep hotplug-error | tr '\n' ' '; }

rm -rf "$dir"
mkdir -p "$dir"
i=1
while [ "$i" -le "$n" ]; do
    dd if=/dev/zero of="$dir/d$i.img" bs=1M count="$mib" 2>/dev/null || fail "dd $dir/d$i.img"
    i=$((i + 1))
done
echo "plug: domain $dom (id $domid), $n images of $mib MiB"
gone || fail "the domain already has vbds or loop devices: [$(entries "$fe")] [$(entries "$be")] [$(loops)]"

# 1. One disk.
i0=$(idle)
t0=$(now)
attach 1
until_ok $T connected 1
t1=$(now)
i1=$(idle)
one_busy=$(busy "$t0" "$t1" "$i0" "$i1")
echo "plug: one: attach command returned after $(sub "$t0" "$(cat "$dir/attach-1.end")") s"
echo "plug: one: attach status $(cat "$dir/attach-1.rc"), frontends [$(entries "$fe")], connected $(state_count "$fe" 4) (backends $(state_count "$be" 4)), loop devices [$(loops)], hotplug errors [$(hotplug_errors)]"
[ "$(cat "$dir/attach-1.rc")" = 0 ] || sed 's/^/plug: attach 1: /' "$dir/attach-1.out"
t2=$(now)
detach 1
until_ok $T gone
t3=$(now)
echo "plug: one: detach status $(cat "$dir/detach-1.rc"), left: frontends [$(entries "$fe")], backends [$(entries "$be")], loop devices [$(loops)]"
one_a=$(sub "$t0" "$t1")
one_d=$(sub "$t2" "$t3")

# 2. N disks at once.
rm -f "$dir"/*.rc "$dir"/*.end
i0=$(idle)
t0=$(now)
i=1
while [ "$i" -le "$n" ]; do
    attach "$i" &
    i=$((i + 1))
done
wait
tw=$(now)
until_ok $T connected "$n"
t1=$(now)
i1=$(idle)
echo "plug: $n: attach statuses $(statuses attach)"
echo "plug: $n: attach commands returned after (s): $(ends attach "$t0")"
echo "plug: $n: frontends [$(entries "$fe")], connected $(state_count "$fe" 4) (backends $(state_count "$be" 4))"
echo "plug: $n: loop devices [$(loops)], distinct $(loops | tr ' ' '\n' | grep -c .), images $(losetup -a | grep -F "$dir/" | sed 's/.*(\(.*\)).*/\1/' | sort -u | grep -c .)"
echo "plug: $n: hotplug errors [$(hotplug_errors)]"
t2=$(now)
i=1
while [ "$i" -le "$n" ]; do
    detach "$i" &
    i=$((i + 1))
done
wait
until_ok $T gone
t3=$(now)
echo "plug: $n: detach statuses $(statuses detach)"
echo "plug: $n: detach commands returned after (s): $(ends detach "$t2")"
echo "plug: $n: left: frontends [$(entries "$fe")], backends [$(entries "$be")], loop devices [$(loops)]"
echo "plug: xenstored answers: name $(xenstore-read "/local/domain/$domid/name")"
echo "plug: dom0's $(nproc) vCPUs busy while attaching: one $one_busy %, $n at once $(busy "$t0" "$t1" "$i0" "$i1") %"
echo "plug: times: attach one $one_a s, $n at once $(sub "$t0" "$t1") s (commands returned after $(sub "$t0" "$tw") s); detach one $one_d s, $n at once $(sub "$t2" "$t3") s"
rm -rf "$dir"
echo "plug: done"
