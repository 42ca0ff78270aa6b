#!/bin/sh
# /etc/demo/disk-test [DEVICE] in the demo domU (demo.run=disk-test on its
# command line): make an ext2 file system on DEVICE (default /dev/xvda, the
# xl.cfg disk with vdev=xvda), mount it, write 16 MiB of random data to a
# file, sync, unmount, mount again and read the file back, unmount, then
# print the SHA-256 of the whole device: dom0 compares it with its image
# file once the domain is gone. Each step prints a "disk-test:" line; the
# status is 0 only if every step succeeded.
dev=${1:-/dev/xvda}
say() { echo "disk-test: $*"; }
fail() { say "FAILED: $*"; exit 1; }

# blkfront connects to the backend after its module is loaded: wait for
# the device node (at most 60 s).
n=600
until [ -b "$dev" ]; do
    n=$((n - 1))
    [ "$n" -gt 0 ] || fail "no $dev after 60 s"
    sleep 0.1
done
say "$dev: $(cat /sys/block/${dev##*/}/size) sectors"
mke2fs -F "$dev" >/dev/null || fail "mke2fs $dev"
mkdir -p /mnt
mount -t ext2 "$dev" /mnt || fail "mount $dev"
dd if=/dev/urandom of=/mnt/data bs=1M count=16 2>/dev/null || fail "writing /mnt/data"
written=$(sha256sum /mnt/data | cut -d ' ' -f 1)
sync
umount /mnt || fail "umount"
say "wrote 16 MiB, sha256 $written"
mount -t ext2 -o ro "$dev" /mnt || fail "mount again"
read=$(sha256sum /mnt/data | cut -d ' ' -f 1)
size=$(stat -c %s /mnt/data)
umount /mnt || fail "umount after reading"
[ "$read" = "$written" ] && [ "$size" = 16777216 ] ||
    fail "read back $size bytes, sha256 $read"
say "read back 16 MiB, same sha256"
say "device sha256 $(sha256sum "$dev" | cut -d ' ' -f 1)"
