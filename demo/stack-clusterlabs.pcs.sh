#!/bin/sh
# The same HA stack as demo/stack.pcs.sh, built with the ClusterLabs/LINBIT agents instead of
# lsaa's: the yardstick for lsaa's failover time (python -m tests.stack compare).  Same
# resource names, order, constraints, monitor intervals, timeouts and stickiness; each
# agent configured the way its own meta-data and documentation recommend.
#
#   fence-NODE  fence_ipmilan (fence-agents), one per node, same BMCs, lanplus, cipher 3
#   data        ocf:linbit:drbd, promotable, notify=true (the agent requires it)
#   service     a group that runs where data is Promoted, after the promotion:
#     vg          ocf:heartbeat:LVM-activate, vg_access_mode=system_id (exclusive
#                 activation; the VG carries the owner's system ID, like lsaa's lvm-sysid)
#     fs          ocf:heartbeat:Filesystem (the same resource in both stacks)
#     target      ocf:heartbeat:iSCSITarget, implementation=lio-t (targetcli), CHAP
#     lun0        ocf:heartbeat:iSCSILogicalUnit, lio-t, the LUN file as a fileio backstore
#     vip         ocf:heartbeat:IPaddr2 (the same resource in both stacks)
#     web         ocf:heartbeat:ldirectord: the LVS virtual service VIP:WEB_PORT by direct
#                 routing to both nodes' HTTP servers, from LDIRECTORD_CF
#
# What the nodes need for these agents (tests/stack/clusterlabs.sh does it at every boot
# in the lab; on a real RHEL node it is packages and one config file):
#   * targetcli (iSCSITarget/iSCSILogicalUnit lio-t) talks to the system D-Bus: dbus must
#     run (systemd starts it on RHEL; the lab guests have no systemd).
#   * ldirectord reads its own configuration file, LDIRECTORD_CF, identical on both nodes:
#     the virtual service, the real servers (gate = direct routing), HTTP negotiate checks
#     of CHECK_PATH with the same cadence as lsaa's ipvs resource (checkinterval 5 s =
#     its monitor interval, 1 s timeouts, failurecount 1), quiescent=yes (a dead server
#     keeps its entry with weight 0, as lsaa's on_failure=quiesce).  It needs perl's
#     libwww for the http check (a dependency of the ldirectord package).
#   * iSCSITarget lio-t creates no network portal for its default portals=0.0.0.0:3260
#     (it turns targetcli's auto_add_default_portal off and skips the default value:
#     the target exists but nobody can log in; the maintainers' answer is to set
#     portals).  So portals is the VIP, which clients use, and since the VIP comes up
#     after the target (the group's order, as in lsaa's stack), the nodes allow binding
#     to an address they do not have yet: net.ipv4.ip_nonlocal_bind=1 (sysctl.d).
#     lsaa's iscsi-target listens on every address, so it needs neither.
#   * iSCSILogicalUnit lio-t creates the fileio backstore with targetcli's default, a
#     write-back cache (acknowledged writes can be lost with the node), and offers no
#     parameter to change it; lsaa's iscsi-lun exports the file write-through.  That is a
#     difference in safety, not in failover time.
#   * LVM-activate's system_id mode needs system_id_source set in lvm.conf (the lab sets
#     "uname" in lvmlocal.conf for both stacks) and the VG created with a system ID.
#   * ocf:linbit:drbd: the DRBD resource in /etc/drbd.conf on both nodes (shared with the
#     lsaa stack: same resource, same options).
#
# Timeouts: iSCSITarget and iSCSILogicalUnit advertise 10 s for start and stop, but lio-t
# runs targetcli 2-6 times per action (a Python process each, ~1 s in a UML guest), so an
# administrator gives them 30 s, the same as lsaa's iscsi agents advertise; ldirectord's
# advertised 15 s start (it forks a Perl daemon) become 30 s, as lsaa's ipvs.  Timeouts
# only bound an action; they do not make it slower or faster.
#
# Parameters: the same as demo/stack.pcs.sh, plus ISCSI_PORT and LDIRECTORD_CF.
set -e
NODE1=${NODE1:-node1}
NODE2=${NODE2:-node2}
BMC1_IP=${BMC1_IP:-${BMC_IP:-192.168.77.254}}     # node1's BMC
BMC1_PORT=${BMC1_PORT:-6231}
BMC2_IP=${BMC2_IP:-${BMC_IP:-192.168.77.254}}     # node2's BMC
BMC2_PORT=${BMC2_PORT:-6232}
BMC_USER=${BMC_USER:-admin}
BMC_PASSWORD=${BMC_PASSWORD:-change-me}
VIP=${VIP:-192.168.77.100}
VIP_CIDR=${VIP_CIDR:-24}
VIP_NIC=${VIP_NIC:-eth0}
DRBD_RESOURCE=${DRBD_RESOURCE:-r0}                # in /etc/drbd.conf on both nodes
VG=${VG:-vg0}                                     # on /dev/drbd0, system ID from uname
LV=${LV:-data}
MOUNTPOINT=${MOUNTPOINT:-/srv/stack}
FSTYPE=${FSTYPE:-ext4}
IQN=${IQN:-iqn.2024-01.lsaa.stack:data}            # the exported target
INITIATORS=${INITIATORS:-iqn.2024-01.lsaa.stack:client}   # who may log in (blank-separated)
CHAP_USER=${CHAP_USER:-stackuser}
CHAP_PASSWORD=${CHAP_PASSWORD:-change-me-12}
LUN_FILE=${LUN_FILE:-lun0.img}                    # in MOUNTPOINT, created beforehand
ISCSI_PORT=${ISCSI_PORT:-3260}                    # the portal: VIP:ISCSI_PORT
LDIRECTORD_CF=${LDIRECTORD_CF:-/etc/ha.d/ldirectord.cf}   # on both nodes

if [ -n "$CIB" ]; then
    PUSH=
else
    PUSH=yes
    CIB=$(mktemp /tmp/stack-cib.XXXXXX)
    trap 'rm -f "$CIB"' EXIT
    pcs cluster cib "$CIB"
fi

# Fencing: each node's BMC through fence_ipmilan; a node never runs the device that
# fences itself.  pcmk_host_list: each device fences one node, by name.
for n in 1 2; do
    eval node=\$NODE$n ip=\$BMC${n}_IP port=\$BMC${n}_PORT
    pcs -f "$CIB" stonith create "fence-$node" fence_ipmilan \
        ip="$ip" ipport="$port" username="$BMC_USER" password="$BMC_PASSWORD" \
        lanplus=1 cipher=3 pcmk_host_list="$node" \
        op monitor interval=60s
    pcs -f "$CIB" constraint location "fence-$node" avoids "$node"
done
pcs -f "$CIB" property set stonith-enabled=true
pcs -f "$CIB" resource defaults update resource-stickiness=100

# The replicated disk: ocf:linbit:drbd with LINBIT's documented monitor pair (a different
# interval per role) and notifications.
pcs -f "$CIB" resource create data ocf:linbit:drbd drbd_resource="$DRBD_RESOURCE" \
    op monitor interval=10s role=Promoted timeout=20s \
    op monitor interval=20s role=Unpromoted timeout=20s \
    promotable promoted-max=1 promoted-node-max=1 clone-max=2 clone-node-max=1 notify=true

# What runs on the Primary, in this order (a group: each after the previous, same node):
pcs -f "$CIB" resource create vg ocf:heartbeat:LVM-activate vgname="$VG" \
    vg_access_mode=system_id \
    op monitor interval=10s timeout=30s --group service
pcs -f "$CIB" resource create fs ocf:heartbeat:Filesystem \
    device="/dev/$VG/$LV" directory="$MOUNTPOINT" fstype="$FSTYPE" \
    op monitor interval=10s timeout=40s --group service
pcs -f "$CIB" resource create target ocf:heartbeat:iSCSITarget implementation=lio-t \
    iqn="$IQN" portals="$VIP:$ISCSI_PORT" allowed_initiators="$INITIATORS" \
    incoming_username="$CHAP_USER" incoming_password="$CHAP_PASSWORD" \
    op start timeout=30s op stop timeout=30s \
    op monitor interval=10s timeout=30s --group service
pcs -f "$CIB" resource create lun0 ocf:heartbeat:iSCSILogicalUnit implementation=lio-t \
    target_iqn="$IQN" lun=0 path="$MOUNTPOINT/$LUN_FILE" liot_bstype=fileio \
    op start timeout=30s op stop timeout=30s \
    op monitor interval=10s timeout=30s --group service
pcs -f "$CIB" resource create vip ocf:heartbeat:IPaddr2 \
    ip="$VIP" cidr_netmask="$VIP_CIDR" nic="$VIP_NIC" \
    op monitor interval=10s timeout=20s --group service
pcs -f "$CIB" resource create web ocf:heartbeat:ldirectord configfile="$LDIRECTORD_CF" \
    op start timeout=30s op stop timeout=30s \
    op monitor interval=5s timeout=30s --group service
pcs -f "$CIB" constraint colocation add service with Promoted data-clone INFINITY
pcs -f "$CIB" constraint order promote data-clone then start service

[ -z "$PUSH" ] || pcs cluster cib-push "$CIB" --config
