#!/bin/sh
# Guest side of a stack node: what a real node's init would do (there is no systemd).
#
#   node.sh install PROVISION_DIR   first boot: format the system disk, copy corosync.conf,
#                                   the authkey and the seeded cib.xml onto it
#                                   (and drbd.conf, lvmlocal.conf if there are any)
#   node.sh start LOG_DIR           every boot: mount the system disk, bind its directories
#                                   over /etc/corosync, /var/lib/{corosync,pacemaker}, start
#                                   a syslog daemon (LOG_DIR/messages), corosync, then
#                                   pacemakerd; logs go to LOG_DIR (the share)
#   node.sh web VIP                 every boot: this node as a real server of the LVS-DR
#                                   service VIP:80 (ocf:lsaa:ipvs on the active node): an HTTP
#                                   server on port 80 serving a page naming the node, the VIP
#                                   accepted as a local address (a local route on lo, no ARP
#                                   for it: arp_ignore=1, arp_announce=2), so a request the
#                                   director forwards by MAC is answered straight to the client;
#                                   the server's PID in /run/lsaa-www.pid
#
# The system disk (/dev/ubda) is the node's "root disk": it survives a power cut, so a node
# that the BMC powers on again has its configuration and CIB, like a real machine.  The rest
# of the guest's root is an overlay in RAM and starts empty at every boot.
# Every command is a fork+exec under UML's ptrace (~40 ms): keep this short.
set -e
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
SYS=/dev/ubda
M=/var/lib/lsaa-node
CLEAN="env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8"

mount_sys() {
    mkdir -p $M
    mountpoint -q $M || mount -t ext4 -o noatime $SYS $M
}

bind_dirs() {
    for d in etc/corosync var/lib/corosync var/lib/pacemaker; do
        mountpoint -q /$d || mount --bind $M/$(echo $d | tr / -) /$d
    done
}

case "$1" in
install)
    P=$2
    mkfs.ext4 -q -F -E lazy_itable_init=1,lazy_journal_init=1 $SYS
    mount_sys
    mkdir -p $M/etc-corosync $M/var-lib-corosync
    for d in cib pengine blackbox cores; do mkdir -p $M/var-lib-pacemaker/$d; done
    chown -R hacluster:haclient $M/var-lib-pacemaker; chmod 750 $M/var-lib-pacemaker/*
    install -m 644 $P/corosync.conf $M/etc-corosync/corosync.conf
    install -m 400 $P/authkey $M/etc-corosync/authkey
    install -o hacluster -g haclient -m 600 $P/cib.xml $M/var-lib-pacemaker/cib/cib.xml
    mkdir -p $M/etc
    for f in drbd.conf lvmlocal.conf; do [ ! -f $P/$f ] || install -m 644 $P/$f $M/etc/$f; done
    rm -f $M/var-lib-pacemaker/cib/cib.xml.sig
    umount $M
    ;;
start)
    L=$2
    mount_sys
    bind_dirs
    mkdir -p /var/log/corosync /var/log/pacemaker /run/resource-agents /run/fence-agents
    mount --bind $L/corosync /var/log/corosync
    mount --bind $L/pacemaker /var/log/pacemaker
    # /dev/log and /dev/fd, as on any real node (syslog, udev): DRBD's fence handlers
    # (crm-fence-peer.sh) send their output to logger through a bash process substitution
    # and fail without them; the agents log to syslog too.
    [ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd
    busybox syslogd -O $L/messages
    # the storage stack's configuration (kept on the system disk, like /etc on a real node)
    [ ! -f $M/etc/drbd.conf ] || { cp $M/etc/drbd.conf /etc/drbd.conf; modprobe drbd; }
    [ ! -f $M/etc/lvmlocal.conf ] || { cp $M/etc/lvmlocal.conf /etc/lvm/lvmlocal.conf; modprobe dm-mod; }
    $CLEAN corosync
    i=0
    until corosync-cfgtool -s >/dev/null 2>&1; do
        i=$((i+1)); [ $i -lt 200 ] || { echo "corosync did not answer" >&2; exit 1; }
        sleep 0.05
    done
    # pacemakerd stays in the foreground: detach it; PID 1 (the lab server) reaps it.
    $CLEAN PCMK_logfile=/var/log/pacemaker/pacemaker.log setsid pacemakerd </dev/null >/dev/null 2>&1 &
    echo "pacemakerd $!"
    ;;
web)
    VIP=$2
    # DR real server: never answer ARP for the VIP unless IPaddr2 put it on eth0 (then this
    # node is the director and must answer), never use it as an ARP source
    for c in all eth0; do
        echo 1 > /proc/sys/net/ipv4/conf/$c/arp_ignore
        echo 2 > /proc/sys/net/ipv4/conf/$c/arp_announce
    done
    # packets for the VIP are delivered locally; a route, not an address, so that IPaddr2
    # (which looks for the address) adds and removes the VIP on eth0 as usual
    ip route replace local $VIP/32 dev lo table local
    mkdir -p /run/www
    uname -n > /run/www/index.html
    $CLEAN setsid python3 -m http.server 80 --directory /run/www </dev/null >/dev/null 2>&1 &
    echo $! > /run/lsaa-www.pid
    python3 -c "
import socket, sys, time
for _ in range(200):
    try:
        socket.create_connection(('127.0.0.1', 80), 1).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit('http.server did not answer')"
    ;;
*)
    echo "usage: node.sh install PROVISION_DIR | start LOG_DIR | web VIP" >&2; exit 2;;
esac
