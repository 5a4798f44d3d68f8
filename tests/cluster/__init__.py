"""Real Corosync + Pacemaker clusters for tests and the demo, one node per set of namespaces.

See :mod:`tests.cluster.cluster` for the driver; the public names are re-exported here::

    from tests.cluster import Cluster

    with Cluster(["node1", "node2"]) as c:      # boots, waits until every node is online
        n1 = c.node("node1")
        n1.run(["pcs", "resource", "create", "d1", "ocf:lsaa:dummy", "state_dir=/run/d"])
        c.wait_resource("d1", ["node1"])       # polls crm_mon with a deadline
        c.wait_for(lambda st: st.fail_count("d1") == 0, "no failures")
        n1.kill()                               # power cut: SIGKILL of the node's init
        n1.boot()                               # and back, with its CIB kept
    # leaving the block tears everything down and checks that nothing is left
"""

from __future__ import annotations

from .cluster import (
    CLEAN_ENV,
    Cluster,
    ClusterError,
    ClusterStatus,
    CommandError,
    Node,
    ResourceState,
)

__all__ = [
    "CLEAN_ENV",
    "Cluster",
    "ClusterError",
    "ClusterStatus",
    "CommandError",
    "Node",
    "ResourceState",
]
