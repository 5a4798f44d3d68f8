#!/bin/sh
# Guest side of a stack node for the ClusterLabs/LINBIT variant (demo/stack-clusterlabs.pcs.sh):
# what those agents need on a node beyond what node.sh sets up for both stacks.  Run at
# every boot, after node.sh start and node.sh web (the guest's root is an overlay in RAM:
# nothing written here survives a power cut, as nothing in /run survives on a real node).
#
#   clusterlabs.sh start VIP REAL_SERVER...
#
# * the system D-Bus: targetcli (iSCSITarget/iSCSILogicalUnit implementation=lio-t) fails
#   without it ("Could not connect to D-Bus"); on RHEL systemd runs it, the guests have no
#   systemd.  /etc/dbus-1 of the host is read, never written (the root is an overlay).
# * net.ipv4.ip_nonlocal_bind=1: iSCSITarget's portal is the VIP (lio-t creates none for
#   its default 0.0.0.0), bound when the target starts, before IPaddr2 brings the VIP up.
# * /etc/ha.d/ldirectord.cf, the same file on both nodes, as an administrator installs it:
#   the virtual service VIP:80 (rr) by direct routing ("gate") to port 80 of every real
#   server, checked with an HTTP GET of / (success = a 2xx status, as lsaa's check_type=http)
#   every 5 s (lsaa's ipvs monitor interval), 1 s timeouts (lsaa's check_timeout=1), a
#   server down after 1 failed check (failure_count=1) and kept with weight 0 while it is
#   down (quiescent=yes, lsaa's on_failure=quiesce).
set -e
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
CLEAN="env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8"

case "$1" in
start)
    VIP=$2; shift 2
    mkdir -p /run/dbus /etc/ha.d
    echo 1 > /proc/sys/net/ipv4/ip_nonlocal_bind
    if [ ! -S /run/dbus/system_bus_socket ]; then
        $CLEAN setsid dbus-daemon --system --nofork --nopidfile </dev/null >/dev/null 2>&1 &
        i=0
        until [ -S /run/dbus/system_bus_socket ]; do
            i=$((i+1)); [ $i -lt 200 ] || { echo "dbus-daemon did not start" >&2; exit 1; }
            sleep 0.05
        done
    fi
    {
        echo "checkinterval=5"
        echo "checktimeout=1"
        echo "negotiatetimeout=1"
        echo "failurecount=1"
        echo "quiescent=yes"
        echo "logfile=\"/var/log/ldirectord.log\""
        echo "virtual=$VIP:80"
        for rs in "$@"; do printf '\treal=%s:80 gate\n' "$rs"; done
        printf '\tservice=http\n\tchecktype=negotiate\n\trequest="/"\n\thttpmethod=GET\n'
        printf '\tscheduler=rr\n\tprotocol=tcp\n'
    } > /etc/ha.d/ldirectord.cf
    ;;
*)
    echo "usage: clusterlabs.sh start VIP REAL_SERVER..." >&2; exit 2;;
esac
