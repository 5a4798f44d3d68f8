"""A test's pcs resources, deleted again afterwards (used by the ``resources`` fixture)."""

from __future__ import annotations

from collections.abc import Callable

from .cluster import Cluster, ClusterStatus, Node


class Resources:
    """Create resources through pcs on one node and remember them for deletion."""

    def __init__(self, cluster: Cluster, node: Node) -> None:
        self.cluster = cluster
        self.node = node
        self.names: list[str] = []

    def create(self, name: str, agent: str, *args: str) -> None:
        """``pcs resource create NAME AGENT ARGS...`` (raises CommandError if pcs refuses)."""
        self.names.append(name)
        self.node.run(["pcs", "resource", "create", name, agent, *args])

    def wait(self, what: str, predicate: Callable[[ClusterStatus], bool],
             timeout: float = 30) -> ClusterStatus:
        """Poll crm_mon until ``predicate(status)`` is true; return that status."""
        return self.cluster.wait_for(lambda st: st if predicate(st) else None, what, timeout,
                                     via=self.node)

    def delete_all(self) -> None:
        """Delete every resource created here, wait until crm_mon shows none of them, and
        clear the fail-counts and operation history they left."""
        for name in reversed(self.names):
            # pcs stops the resource (and waits for it) before removing it from the CIB
            self.node.run(["pcs", "resource", "delete", name], check=False)
        self.cluster.wait_for(
            lambda st: not any(r.id in self.names for r in st.resources),
            f"{self.names} removed", 60, via=self.node)
        self.node.run(["crm_resource", "--cleanup"], check=False)
        self.names.clear()
