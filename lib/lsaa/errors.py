"""Typed errors raised by library code.

Only the frameworks' entry points (lsaa.ocf.main, lsaa.fencing.main) turn them
into exit codes and messages; nothing below them calls sys.exit().  Each class
carries the OCF exit code it stands for, so the mapping lives in one place.
"""

from __future__ import annotations

# Not typing.TYPE_CHECKING: importing typing costs an agent ~4 ms per run.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable


MASK = "******"


def mask(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every non-empty secret replaced by a fixed mask.

    Applied to every log line, exit reason and error message that could carry
    a password (DESIGN principle 7).
    """
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return text


class AgentError(Exception):
    """An action failed; ``reason`` is one line an administrator can act on."""

    rc = 1  # OCF_ERR_GENERIC: Pacemaker recovers in place

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class GenericError(AgentError):
    """Failure that may go away on retry or restart (OCF_ERR_GENERIC)."""


class LocalConfigError(AgentError):
    """Configuration wrong on this node only, e.g. a missing device (OCF_ERR_ARGS)."""

    rc = 2


class UnimplementedError(AgentError):
    """The action is not supported (OCF_ERR_UNIMPLEMENTED)."""

    rc = 3


class PermissionDenied(AgentError):
    """Insufficient privilege (OCF_ERR_PERM)."""

    rc = 4


class NotInstalledError(AgentError):
    """Software or kernel support missing on this node (OCF_ERR_INSTALLED)."""

    rc = 5


class ConfigError(AgentError):
    """Configuration inherently invalid, wrong on every node (OCF_ERR_CONFIGURED).

    Holds every problem found, so an administrator fixes them in one go.
    """

    rc = 6

    def __init__(self, problems: Iterable[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))


class CommandError(GenericError):
    """An external command exited with a code the caller did not allow."""

    def __init__(self, reason: str, rc: int, stdout: str, stderr: str) -> None:
        super().__init__(reason)
        self.returncode = rc
        self.stdout = stdout
        self.stderr = stderr


class DeadlineExceeded(GenericError):
    """The operation's time is used up: give up before Pacemaker kills us."""
