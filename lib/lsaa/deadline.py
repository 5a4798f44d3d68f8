"""The operation deadline every wait and every command is bounded by.

Pacemaker SIGKILLs an agent's whole process group when the operation timeout
expires (no SIGTERM, no cleanup).  An agent that gives up a little earlier can
say why, so each action runs against a Deadline set slightly inside
``OCF_RESKEY_CRM_meta_timeout``.
"""

from __future__ import annotations

import time

from lsaa.errors import DeadlineExceeded

DEFAULT_TIMEOUT_MS = 20000  # Pacemaker's default op timeout; crm_resource once sent none


def margin_for(total: float) -> float:
    """Seconds kept in reserve to report a timeout before being killed.

    10 % of the timeout, at least 1 s and at most 5 s; half of very short ones.
    """
    if total <= 2.0:
        return total / 2
    return min(max(1.0, total * 0.1), 5.0)


class Deadline:
    """A point in monotonic time after which work must stop."""

    __slots__ = ("end", "reserve", "total")

    def __init__(self, seconds: float, start: float | None = None, reserve: float = 0.0) -> None:
        self.total = seconds
        self.reserve = reserve  # seconds between this deadline and Pacemaker's kill
        self.end = (time.monotonic() if start is None else start) + seconds

    @classmethod
    def from_timeout_ms(cls, raw: str | None, start: float | None = None) -> Deadline:
        """Deadline for an operation whose Pacemaker timeout is ``raw`` ms.

        Unset, empty or garbage values fall back to Pacemaker's 20 s default.
        """
        try:
            ms = int(raw) if raw else DEFAULT_TIMEOUT_MS
        except ValueError:
            ms = DEFAULT_TIMEOUT_MS
        if ms <= 0:
            ms = DEFAULT_TIMEOUT_MS
        total = ms / 1000.0
        margin = margin_for(total)
        return cls(total - margin, start, margin)

    def remaining(self) -> float:
        """Seconds left; never negative."""
        return max(0.0, self.end - time.monotonic())

    def expired(self) -> bool:
        return time.monotonic() >= self.end

    def cap(self, seconds: float | None, what: str = "operation") -> float:
        """``seconds`` shortened to what is left; raises if nothing is left."""
        left = self.end - time.monotonic()
        if left <= 0:
            raise DeadlineExceeded(f"{what}: operation timeout used up")
        return left if seconds is None else min(seconds, left)

    def sleep(self, seconds: float, what: str = "wait") -> None:
        """Sleep, but raise instead of sleeping past the deadline."""
        left = self.end - time.monotonic()
        if left <= seconds:
            raise DeadlineExceeded(f"{what}: operation timeout used up")
        time.sleep(seconds)


class AlarmExpired(BaseException):
    """Raised in the main thread by :func:`arm_alarm`'s SIGALRM.

    A BaseException, so that no ``except Exception`` in library code can
    swallow it: only the framework's entry point catches it.
    """


def _raise_alarm(_signum: int, _frame: object) -> None:
    raise AlarmExpired


def arm_alarm(deadline: Deadline) -> None:
    """SIGALRM half-way into the deadline's reserve.

    Commands time out first (their timeouts are capped by the deadline); the
    alarm catches hangs in Python code: a stuck configfs write, a library call
    that never returns.  Outside the main thread (tests) there is no alarm.
    """
    # _signal, not signal: the signal module imports enum (~2 ms per agent run).
    import _signal  # type: ignore[import-not-found,unused-ignore]

    left = deadline.remaining() + deadline.reserve / 2
    try:
        _signal.signal(_signal.SIGALRM, _raise_alarm)
        _signal.setitimer(_signal.ITIMER_REAL, max(left, 0.01))
    except ValueError:
        pass


def disarm_alarm() -> None:
    import _signal  # type: ignore[import-not-found,unused-ignore]

    try:
        _signal.setitimer(_signal.ITIMER_REAL, 0)
    except ValueError:
        pass
