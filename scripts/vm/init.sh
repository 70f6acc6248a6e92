#!/bin/busybox sh
# SPDX-License-Identifier: MIT
#
# PID 1 of the test VM's initramfs. Loads the few modules needed to reach the host's root (virtio, 9p, overlay),
# mounts it read-only with a tmpfs overlay on top (so tests may write anywhere and nothing reaches the host), mounts
# what a fresh systemd host mounts — proc, sysfs, devtmpfs, devpts, /dev/shm, a pure cgroup v2 tree with the usual
# controllers enabled — and nothing else (no tracefs, no debugfs, no bpffs), then runs the job the host wrote into
# the shared output directory and powers off. The job's exit code is left in <out>/rc.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

arg() { tr ' ' '\n' </proc/cmdline | sed -n "s/^$1=//p" | tail -n 1; }
OUT=$(arg vm.out)
KMODS=$(arg vm.kmods)
say() { echo "vm-init: $*" >/dev/console; }
fail() {
	say "$*"
	[ -d /root$OUT ] && echo 99 >/root$OUT/rc
	poweroff -f
}

for m in $(cat /modules.order); do
	insmod "/modules/$m" 2>/dev/null || say "insmod $m failed (built in?)"
done

mkdir -p /lower /rw /root
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=loose host /lower || fail "mount the host root over 9p"
mount -t tmpfs -o mode=755 tmpfs /rw
mkdir -p /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work /root || fail "mount the overlay root"

mount -t proc proc /root/proc
mount -t sysfs sysfs /root/sys
mount -t devtmpfs devtmpfs /root/dev
mkdir -p /root/dev/pts /root/dev/shm
mount -t devpts -o mode=600,ptmxmode=000 devpts /root/dev/pts
mount -t tmpfs tmpfs /root/dev/shm
# /tmp stays the host's (read-only below the overlay, writable on top): the checkout under test may live there.
mount -t tmpfs -o mode=755 tmpfs /root/run
mount -t cgroup2 cgroup2 /root/sys/fs/cgroup || fail "mount cgroup2"
# What systemd does on every v2 host: every controller the kernel offers is enabled for the root's children.
for c in $(cat /root/sys/fs/cgroup/cgroup.controllers); do
	echo "+$c" >/root/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || say "enable controller $c failed"
done

mkdir -p "/root$OUT"
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 out "/root$OUT" || fail "mount the output directory"
# The kernel's own modules (veth, nf_tables, ...) where modprobe looks for them.
KV=$(uname -r)
if [ -n "$KMODS" ] && [ -d "/root$KMODS" ]; then
	mkdir -p "/root/lib/modules/$KV"
	mount --bind "/root$KMODS" "/root/lib/modules/$KV"
fi
ip link set lo up 2>/dev/null
hostname ebpf-tuner-vm

say "running $OUT/job.sh"
chroot /root /bin/bash "$OUT/job.sh" </dev/null >/dev/console 2>&1
echo $? >"/root$OUT/rc"
sync
poweroff -f
