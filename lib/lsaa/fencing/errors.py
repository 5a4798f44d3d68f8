"""Errors a power backend raises; the framework turns each into exit code 1.

The distinction that matters is whether trying again can help: a dropped
packet or a restarting daemon can; a wrong password or an unknown target
cannot, and retrying those only burns the fencer's timeout.
"""

from __future__ import annotations

from lsaa.errors import AgentError


class FenceError(AgentError):
    """The device did not do or confirm what was asked; do not retry."""


class TransientFenceError(FenceError):
    """The device could not be reached or answered oddly; a retry may succeed."""


class UnknownTarget(FenceError):
    """The plug/domain does not exist: an error, never "off" (a typo must not fence)."""
