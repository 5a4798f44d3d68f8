"""Pacemaker's command-line tools: node name and promotion scores.

The promotion score is the transient node attribute ``master-<instance>``
(the name Pacemaker's scheduler reads).  We call ``crm_attribute`` with the
node and attribute named explicitly rather than ``crm_master`` or ``-p``: the
same argv then works on Pacemaker 2.0 through 3.0 and does not depend on
environment variables our runner deliberately does not pass on.
"""

from __future__ import annotations

TYPE_CHECKING = False  # see lsaa.errors
if TYPE_CHECKING:
    from lsaa.run import Runner

# crm_attribute -G exits with 105 (ENXIO-based CRM_EX_NOSUCH) when the attribute is unset
CRM_EX_NOSUCH = 105


def local_node_name(runner: Runner) -> str:
    """This node's name as the cluster knows it (``crm_node -n``)."""
    return runner.run(["crm_node", "-n"], timeout=10).stdout.strip()


def score_attribute(instance: str) -> str:
    return f"master-{instance}"


def set_promotion_score(runner: Runner, node: str, instance: str, score: int) -> None:
    """Set this node's promotion score for ``instance`` (lifetime: until reboot)."""
    runner.run(["crm_attribute", "--node", node, "--name", score_attribute(instance),
                "--lifetime", "reboot", "--update", str(score)], timeout=10)


def delete_promotion_score(runner: Runner, node: str, instance: str) -> None:
    """Remove the score: the instance must not be promoted here."""
    runner.run(["crm_attribute", "--node", node, "--name", score_attribute(instance),
                "--lifetime", "reboot", "--delete"], timeout=10)


def get_promotion_score(runner: Runner, node: str, instance: str) -> int | None:
    """The current score, or None when unset."""
    res = runner.run(["crm_attribute", "--node", node, "--name", score_attribute(instance),
                      "--lifetime", "reboot", "--query", "--quiet"],
                     ok=(0, CRM_EX_NOSUCH, 6), timeout=10)
    text = res.stdout.strip()
    if res.rc != 0 or not text:
        return None
    try:
        return int(text)
    except ValueError:
        return None
