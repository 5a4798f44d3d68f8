"""What ocf:lsaa:iscsi-target and ocf:lsaa:iscsi-lun share: the tgtd control port
parameter, the action list and the choice of target implementation.

Kept apart from both agents so that an iscsi-lun run does not load the
iscsi-target module (and its spec) just to detect the implementation.
"""

from __future__ import annotations

from lsaa.ocf.spec import Action, Param

TYPE_CHECKING = False  # see lsaa.errors
if TYPE_CHECKING:
    from lsaa.ocf.agent import Context

TGT_CONTROL_PORT = Param(
    "tgt_control_port", "tgtd control port",
    "Which tgtd instance (tgtd -C, tgtadm -C): lsaa talks to /var/run/tgtd/socket.<port>.",
    type="integer", default="0", minimum=0, maximum=65535, advanced=True)

ACTIONS = [
    Action("start", 30),
    Action("stop", 30),
    Action("monitor", 20, interval=10, depth=0),
    Action("validate-all", 20),
    Action("meta-data", 5),
]


def control_port(ctx: Context) -> int:
    return int(str(ctx.p("tgt_control_port") or 0))


def implementation(ctx: Context) -> str:
    """The ``implementation`` parameter, or what this node has (lio or tgt)."""
    chosen = ctx.p("implementation")
    if chosen:
        return str(chosen)
    from lsaa.backends.tgt import detect_implementation

    return detect_implementation(control_port(ctx))
