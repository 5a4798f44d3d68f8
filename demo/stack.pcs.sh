#!/bin/sh
# The lsaa stack on a two-node RHEL 9 cluster: fencing, then the resources, created with pcs
# exactly as an administrator would.  Run it on any one node of a running cluster (pcs talks
# to the local Pacemaker; no pcsd is needed).  All changes are made in a copy of the CIB
# (pcs -f) and pushed at once, so the cluster never acts on half a configuration.
#
#   fence-NODE  fence_lsaa_ipmi, one per node: powers that node off and on through its BMC
#   db          ocf:lsaa:stateful, promotable: one Promoted instance (the "primary")
#   service     a group that runs where db is Promoted, after the promotion:
#     app         ocf:lsaa:dummy, the service
#     vip         ocf:heartbeat:IPaddr2, the address clients use
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
STATE_DIR=${STATE_DIR:-/run/lsaa-stack}           # emptied at boot, as after a power cut

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

# The replicated "data": one primary.
pcs -f "$CIB" resource create db ocf:lsaa:stateful state_dir="$STATE_DIR" \
    op monitor interval=5s role=Promoted timeout=20s \
    op monitor interval=6s role=Unpromoted timeout=20s \
    promotable promoted-max=1 promoted-node-max=1 clone-max=2 clone-node-max=1

# The service on the primary, and its address.
pcs -f "$CIB" resource create app ocf:lsaa:dummy state_dir="$STATE_DIR" \
    op monitor interval=5s timeout=20s --group service
pcs -f "$CIB" resource create vip ocf:heartbeat:IPaddr2 \
    ip="$VIP" cidr_netmask="$VIP_CIDR" nic="$VIP_NIC" \
    op monitor interval=5s timeout=20s --group service
pcs -f "$CIB" constraint colocation add service with Promoted db-clone INFINITY
pcs -f "$CIB" constraint order promote db-clone then start service

[ -z "$PUSH" ] || pcs cluster cib-push "$CIB" --config
