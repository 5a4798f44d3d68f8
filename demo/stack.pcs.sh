#!/bin/sh
# The lsaa stack on a two-node RHEL 9 cluster: fencing, then the resources, created with pcs
# exactly as an administrator would.  Run it on any one node of a running cluster (pcs talks
# to the local Pacemaker; no pcsd is needed).  All changes are made in a copy of the CIB
# (pcs -f) and pushed at once, so the cluster never acts on half a configuration.
#
#   fence-NODE  fence_lsaa_ipmi, one per node: powers that node off and on through its BMC
#   data        ocf:lsaa:drbd, promotable: the replicated disk, Primary on one node
#   service     a group that runs where data is Promoted, after the promotion:
#     vg          ocf:lsaa:lvm-sysid, the volume group on the DRBD device (system ID)
#     fs          ocf:heartbeat:Filesystem, its logical volume mounted
#     target      ocf:lsaa:iscsi-target, an iSCSI target (LIO) with CHAP
#     lun0        ocf:lsaa:iscsi-lun, a file on that filesystem exported as its LUN 0
#     vip         ocf:heartbeat:IPaddr2, the address clients use
#     web         ocf:lsaa:ipvs, the LVS virtual service VIP:WEB_PORT, balanced by direct
#                 routing to the HTTP servers of both nodes (REAL_SERVERS), health-checked
#                 with HTTP GETs: a dead server is quiesced (weight 0) until it answers again
#
# Real servers (direct routing): each one accepts packets for the VIP without answering ARP
# for it (VIP as a local route on lo, arp_ignore=1, arp_announce=2) and replies to the client
# directly; the active node reaches its own server as a local one.  tests/stack/node.sh web
# does this at every boot.
#
# iSCSI clients log in to VIP:3260 (the target listens on every address) as one of the
# INITIATORS, with CHAP; nothing else in the cluster is needed for them.  After a failover
# their sessions reconnect to the VIP (open-iscsi's replacement_timeout, 120 s by default,
# must exceed the failover time).  tests/stack/client.py is such a client.
#
# DRBD's resource-level fencing is set in drbd.conf, not here: "fencing resource-only" with
# the fence-peer handler /usr/lib/drbd/crm-fence-peer.sh and the after-resync-target
# handler /usr/lib/drbd/crm-unfence-peer.sh (DRBD 8.4; crm-fence-peer.9.sh for DRBD 9).
# They find the promotable clone below by its drbd_resource parameter, and add and remove
# the location constraint drbd-fence-by-handler-<resource>-data-clone themselves.
#
# Parameters: edit here, or set them in the environment.
set -e
NODE1=${NODE1:-node1}
NODE2=${NODE2:-node2}
BMC1_IP=${BMC1_IP:-${BMC_IP:-192.168.77.254}}     # node1's BMC
BMC1_PORT=${BMC1_PORT:-6231}
BMC2_IP=${BMC2_IP:-${BMC_IP:-192.168.77.254}}     # node2's BMC
BMC2_PORT=${BMC2_PORT:-6232}
BMC_USER=${BMC_USER:-admin}
BMC_PASSWORD=${BMC_PASSWORD:-change-me}
FENCE_AGENT=${FENCE_AGENT:-fence_lsaa_ipmi}
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
WEB_PORT=${WEB_PORT:-80}                          # the LVS virtual service VIP:WEB_PORT
REAL_SERVERS=${REAL_SERVERS:-"192.168.77.1 192.168.77.2"}   # ADDR[:PORT][/weight=N,method=..]
LVS_SCHEDULER=${LVS_SCHEDULER:-rr}
LVS_METHOD=${LVS_METHOD:-dr}                      # real servers on the VIP's subnet
CHECK_PATH=${CHECK_PATH:-/}                       # HTTP health check: GET, status 200

if [ -n "$CIB" ]; then
    PUSH=
else
    PUSH=yes
    CIB=$(mktemp /tmp/stack-cib.XXXXXX)
    trap 'rm -f "$CIB"' EXIT
    pcs cluster cib "$CIB"
fi

# Fencing: each node's BMC; a node never runs the device that fences itself.
for n in 1 2; do
    eval node=\$NODE$n ip=\$BMC${n}_IP port=\$BMC${n}_PORT
    pcs -f "$CIB" stonith create "fence-$node" "$FENCE_AGENT" \
        ip="$ip" ipport="$port" username="$BMC_USER" password="$BMC_PASSWORD" \
        lanplus=1 cipher=3 pcmk_host_list="$node" \
        op monitor interval=60s
    pcs -f "$CIB" constraint location "fence-$node" avoids "$node"
done
pcs -f "$CIB" property set stonith-enabled=true
# A service that moved stays where it is when the failed node comes back.
pcs -f "$CIB" resource defaults update resource-stickiness=100

# The replicated disk: DRBD, Primary on one node.
pcs -f "$CIB" resource create data ocf:lsaa:drbd drbd_resource="$DRBD_RESOURCE" \
    op monitor interval=10s role=Promoted timeout=20s \
    op monitor interval=20s role=Unpromoted timeout=20s \
    promotable promoted-max=1 promoted-node-max=1 clone-max=2 clone-node-max=1 notify=true

# What runs on the Primary, in this order (a group: each after the previous, same node):
pcs -f "$CIB" resource create vg ocf:lsaa:lvm-sysid vgname="$VG" \
    op monitor interval=10s timeout=30s --group service
pcs -f "$CIB" resource create fs ocf:heartbeat:Filesystem \
    device="/dev/$VG/$LV" directory="$MOUNTPOINT" fstype="$FSTYPE" \
    op monitor interval=10s timeout=40s --group service
pcs -f "$CIB" resource create target ocf:lsaa:iscsi-target implementation=lio iqn="$IQN" \
    allowed_initiators="$INITIATORS" \
    incoming_username="$CHAP_USER" incoming_password="$CHAP_PASSWORD" \
    op monitor interval=10s timeout=30s --group service
pcs -f "$CIB" resource create lun0 ocf:lsaa:iscsi-lun implementation=lio target_iqn="$IQN" \
    lun=0 path="$MOUNTPOINT/$LUN_FILE" backstore=fileio \
    op monitor interval=10s timeout=30s --group service
pcs -f "$CIB" resource create vip ocf:heartbeat:IPaddr2 \
    ip="$VIP" cidr_netmask="$VIP_CIDR" nic="$VIP_NIC" \
    op monitor interval=10s timeout=20s --group service
pcs -f "$CIB" resource create web ocf:lsaa:ipvs vip="$VIP" port="$WEB_PORT" \
    scheduler="$LVS_SCHEDULER" method="$LVS_METHOD" real_servers="$REAL_SERVERS" \
    check_type=http check_path="$CHECK_PATH" check_timeout=1 failure_count=1 \
    recovery_count=2 on_failure=quiesce \
    op monitor interval=5s timeout=30s --group service
pcs -f "$CIB" constraint colocation add service with Promoted data-clone INFINITY
pcs -f "$CIB" constraint order promote data-clone then start service

[ -z "$PUSH" ] || pcs cluster cib-push "$CIB" --config
