#!/bin/sh
# Stage-1 init of a lab guest (PID 1 of the User-Mode Linux kernel).
#
# The kernel booted with the host's / as a hostfs root.  Everything the guest
# writes must stay in guest RAM, so this script stacks an overlay (lower: the
# hostfs root, upper: a guest tmpfs) and moves into it with pivot_root.  It uses
# pivot_root rather than chroot because kernel usermode helpers (modprobe, DRBD's
# drbdadm handler) run in the *original* root: after chroot they would read the
# host's /etc and find no /lib/modules/<uml version>.
#
# Settings arrive as environment variables (unknown KEY=value kernel arguments):
#   LAB_SHARE     host directory mounted read-write via hostfs at the same path
#                 (the command spool and the results); the only host-writable place
#   LAB_REPO      repository checkout, bind-mounted read-only at the same path
#   LAB_HOSTNAME  guest hostname
#   LAB_TMP_SIZE  size of the guest /tmp tmpfs
#   LAB_NICS      comma list of IP/prefix for eth0, eth1, ... ("-" = leave down)
# Each command here is a fork+exec under ptrace (~40 ms), so keep this short.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
fail() { echo "LAB-INIT: $*"; exec /bin/busybox poweroff -f; }
mount -t proc proc /proc
K=$(uname -r)
mount -t tmpfs -o mode=755 labroot /mnt || fail "tmpfs on /mnt"
insmod /usr/lib/uml/modules/$K/kernel/fs/overlayfs/overlay.ko || fail "insmod overlay"
mkdir -p /mnt/upper /mnt/work /mnt/root
R=/mnt/root
mount -t overlay overlay -o lowerdir=/,upperdir=/mnt/upper,workdir=/mnt/work $R || fail "overlay"
mount -t proc proc $R/proc
mount -t sysfs sysfs $R/sys
mount -t devtmpfs devtmpfs $R/dev
mkdir -p $R/dev/pts $R/dev/shm
mount -t devpts devpts $R/dev/pts
mount -t tmpfs -o mode=1777 shm $R/dev/shm
mount -t tmpfs -o mode=755 run $R/run
mkdir -p $R/run/lock && chmod 1777 $R/run/lock
mount -t tmpfs -o mode=1777,size=${LAB_TMP_SIZE:-128m} tmp $R/tmp
mkdir -p $R/lib/modules/$K && mount --bind /usr/lib/uml/modules/$K $R/lib/modules/$K &&
    mount -o remount,bind,ro $R/lib/modules/$K
mkdir -p "$R$LAB_SHARE" && mount -t hostfs -o "$LAB_SHARE" hostfs "$R$LAB_SHARE" || fail "hostfs share $LAB_SHARE"
# The overlay already keeps guest writes off the host; read-only makes an agent
# that writes into the checkout fail loudly instead of silently diverging.
# Bound from the host's root (still / here), not from the overlay: there, a checkout
# under /tmp is hidden by the guest's own /tmp tmpfs.
mkdir -p "$R$LAB_REPO" && mount --bind "$LAB_REPO" "$R$LAB_REPO" &&
    mount -o remount,bind,ro "$R$LAB_REPO" || fail "read-only repo at $LAB_REPO"
mkdir -p $R/.oldroot
cd $R && pivot_root . .oldroot || fail "pivot_root"
# pivot_root moved every task (kernel threads too) to the new root, so the old
# root is unused; detaching it leaves no writable path to the host's files.
umount -l /.oldroot
# Networking and hostname, before anything else runs.
ip link set lo up
i=0
for a in $(echo "${LAB_NICS:-}" | tr , ' '); do
    [ "$a" = - ] || { ip addr add "$a" dev eth$i; ip link set eth$i up; }
    i=$((i+1))
done
exec chroot . /usr/bin/python3 -S -u "$LAB_REPO/tests/lab/guest/server.py"
