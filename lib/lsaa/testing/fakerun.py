"""A strict fake of :class:`lsaa.run.Runner` that replays recorded commands.

Each expected :class:`Call` names the exact argv (and stdin, when given) and
what the real tool printed.  The fake fails on a call it did not expect, on a
call out of order, and (``assert_done``) on expected calls never made, so a
test proves an agent ran exactly the commands it should, no more.

Mismatches raise :class:`FakeRunnerError`, a BaseException: the frameworks'
catch-all for bugs (``except Exception``) must not turn a broken test
expectation into an ordinary exit code.
"""

from __future__ import annotations

from lsaa.deadline import Deadline
from lsaa.run import CommandTimeout, Result, Runner

TYPE_CHECKING = False  # see lsaa.errors
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence


class FakeRunnerError(BaseException):
    """The agent ran something the test did not expect."""


class Call:
    """One expected command and its recorded outcome.

    ``timeout=True`` simulates a command that never returns (the runner then
    raises CommandTimeout, as the real one would after killing it).
    """

    __slots__ = ("argv", "input", "rc", "stderr", "stdout", "timeout")

    def __init__(
        self,
        argv: Sequence[str],
        rc: int = 0,
        stdout: str = "",
        stderr: str = "",
        *,
        input: str | None = None,
        timeout: bool = False,
    ) -> None:
        self.argv = list(argv)
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr
        self.input = input
        self.timeout = timeout


class FakeRunner(Runner):
    """Replays ``calls`` in order; everything else behaves like the real Runner
    (exit-code checks, masking, deadline capping, error messages)."""

    def __init__(self, calls: Iterable[Call], deadline: Deadline | None = None) -> None:
        super().__init__(deadline or Deadline(60.0))
        self.expected = list(calls)
        self.made: list[list[str]] = []

    def _execute(
        self,
        argv: list[str],
        input: str | None,
        timeout: float,
        env: dict[str, str],
        shown: str,
    ) -> Result:
        if env.get("LC_ALL") != "C":
            raise FakeRunnerError(f"{shown}: run without LC_ALL=C")
        index = len(self.made)
        self.made.append(argv)
        if not self.expected:
            raise FakeRunnerError(f"unexpected call #{index}: {argv}")
        call = self.expected.pop(0)
        if argv != call.argv:
            raise FakeRunnerError(f"call #{index}: expected {call.argv}, got {argv}")
        if call.input is not None and input != call.input:
            raise FakeRunnerError(f"call #{index} {argv}: expected stdin {call.input!r}, "
                                  f"got {input!r}")
        if call.timeout:
            raise CommandTimeout(f"{shown} did not finish within {timeout:.1f}s")
        return Result(argv, call.rc, call.stdout, call.stderr)

    def assert_done(self) -> None:
        """Fail if any expected call was never made."""
        if self.expected:
            raise FakeRunnerError(f"expected calls never made: {[c.argv for c in self.expected]}")


def env_for(params: Mapping[str, str], **meta: str) -> dict[str, str]:
    """An OCF environment as Pacemaker builds it: OCF_RESKEY_* plus CRM_meta_*."""
    env = {"OCF_ROOT": "/usr/lib/ocf", "OCF_RA_VERSION_MAJOR": "1", "OCF_RA_VERSION_MINOR": "1",
           "OCF_RESOURCE_INSTANCE": "test", "HA_LOGFACILITY": "none"}
    env.update({"OCF_RESKEY_" + k: v for k, v in params.items()})
    env.update({"OCF_RESKEY_CRM_meta_" + k: v for k, v in meta.items()})
    return env
