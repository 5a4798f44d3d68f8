"""Clone notification variables (``OCF_RESKEY_CRM_meta_notify_*``) as sets.

Pacemaker passes whitespace-separated lists that may repeat or hold several
entries even with promoted-max=1; agents get sets of node names.
"""

from __future__ import annotations

TYPE_CHECKING = False  # see lsaa.errors
if TYPE_CHECKING:
    from collections.abc import Mapping

SETS = ("start", "stop", "active", "inactive", "promote", "demote", "promoted",
        "unpromoted", "available", "all")
# Pacemaker 2.0 spelled the role sets master/slave; 2.1 sends both.
LEGACY = {"promoted": "master", "unpromoted": "slave"}


class Notify:
    """One notification: ``type`` pre|post, ``operation`` start|stop|promote|demote."""

    __slots__ = ("operation", "resources", "type", "unames")

    def __init__(self, meta: Mapping[str, str]) -> None:
        self.type = meta.get("notify_type", "")
        self.operation = meta.get("notify_operation", "")
        self.unames: dict[str, frozenset[str]] = {}
        self.resources: dict[str, frozenset[str]] = {}
        for name in SETS:
            for kind, store in (("uname", self.unames), ("resource", self.resources)):
                raw = meta.get(f"notify_{name}_{kind}")
                if raw is None and name in LEGACY:
                    raw = meta.get(f"notify_{LEGACY[name]}_{kind}")
                store[name] = frozenset((raw or "").split())

    def nodes(self, name: str) -> frozenset[str]:
        """Node names in set ``name`` (e.g. "promote", "active", "unpromoted")."""
        return self.unames.get(name, frozenset())
