"""Fixtures that give functional tests a real Pacemaker (tests/cluster).

- ``pcmk_host``: skips unless this machine can run nodes (for tests that build their own).
- ``pcmk_cluster``: a one-node cluster, booted once per module (a node is online in ~5 s);
  its teardown stops Pacemaker gracefully and fails the module's last test if anything is left
  behind (processes, mounts, /run/crm).
- ``pcmk_node``: that cluster's only node.
- ``resources``: creates resources with pcs and deletes them (and their history) after the
  test, so tests sharing the node do not see each other's resources or fail-counts.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `tests.cluster` is imported from the checkout
    sys.path.insert(0, str(ROOT))

from tests.cluster import Cluster, Node  # noqa: E402
from tests.cluster.resources import Resources  # noqa: E402

AGENT_DIR = Path("/usr/lib/ocf/resource.d/lsaa")
TOOLS = ("corosync", "pacemakerd", "pcs", "crm_mon", "crm_resource", "unshare", "nsenter", "ip")


def _missing() -> str | None:
    """Why this machine cannot run a real cluster, or None."""
    if os.geteuid() != 0:
        return "needs root (namespaces, corosync)"
    for tool in TOOLS:
        if not shutil.which(tool, path="/usr/sbin:/usr/bin:/sbin:/bin"):
            return f"{tool} is not installed (make setup)"
    if not (AGENT_DIR / "dummy").exists():
        return f"{AGENT_DIR}/dummy is missing (make dev-install)"
    return None


@pytest.fixture(scope="session")
def pcmk_host() -> None:
    """Skip unless this machine can run real cluster nodes (root, the tools, our agents)."""
    reason = _missing()
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def pcmk_cluster(pcmk_host: None) -> Iterator[Cluster]:
    cluster = Cluster(["node1"], cluster_name="lsaa-func")
    try:
        cluster.start()
    except BaseException:
        cluster.teardown(graceful=False)
        raise
    yield cluster
    left = cluster.teardown()
    assert left == [], f"the cluster left things behind: {left}"


@pytest.fixture(scope="module")
def pcmk_node(pcmk_cluster: Cluster) -> Node:
    return pcmk_cluster.nodes[0]


@pytest.fixture
def resources(pcmk_cluster: Cluster, pcmk_node: Node) -> Iterator[Resources]:
    res = Resources(pcmk_cluster, pcmk_node)
    yield res
    res.delete_all()
