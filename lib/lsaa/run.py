"""The one command runner: every external command an agent runs goes through here.

Contract of :meth:`Runner.run`:

* argv is a list of strings, never a string: nothing is parsed by a shell;
* the environment is minimal (fixed PATH, ``LC_ALL=C``): daemons pass their own
  environment to agents, and localized or PATH-dependent output breaks parsers;
* every call has a timeout no longer than what is left of the operation
  deadline; on expiry the child is killed and :class:`CommandTimeout` raised;
* the exit codes a caller accepts are explicit (``ok=(0,)`` by default); any
  other raises :class:`~lsaa.errors.CommandError` naming the command and the
  last line of its stderr;
* values passed as ``secrets`` are masked in logs and error messages;
* output is read with ``communicate()``, so a chatty child cannot deadlock us.

The child stays in the agent's process group on purpose: if our own deadline
handling ever failed, Pacemaker's SIGKILL of the group still reaches it.
"""

from __future__ import annotations

import os
import time

from lsaa.deadline import Deadline
from lsaa.errors import CommandError, DeadlineExceeded, NotInstalledError, mask

TYPE_CHECKING = False  # typing costs ~4 ms at import; see lsaa.errors
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from lsaa.log import Log

PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


class CommandTimeout(DeadlineExceeded):
    """A command did not finish within its timeout and was killed."""


class Result:
    """What a finished command left behind (immutable by convention)."""

    __slots__ = ("argv", "rc", "stderr", "stdout")

    def __init__(self, argv: Sequence[str], rc: int, stdout: str, stderr: str) -> None:
        self.argv = tuple(argv)
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr

    def __repr__(self) -> str:
        return f"Result(argv={self.argv!r}, rc={self.rc})"


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


class Runner:
    """Runs commands under a deadline; see the module docstring for the contract."""

    def __init__(
        self,
        deadline: Deadline,
        log: Log | None = None,
        secrets: Iterable[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.deadline = deadline
        self.log = log
        self.secrets = [s for s in secrets if s]
        self.base_env = {"PATH": PATH, "LC_ALL": "C"}
        if env:
            self.base_env.update(env)

    def run(
        self,
        argv: Sequence[str],
        *,
        ok: Iterable[int] = (0,),
        timeout: float | None = None,
        input: str | None = None,
        env: Mapping[str, str] | None = None,
        secrets: Iterable[str] = (),
    ) -> Result:
        """Run ``argv`` and return its Result; raise unless its rc is in ``ok``."""
        if isinstance(argv, (str, bytes)) or not argv:
            raise TypeError("argv must be a non-empty list of strings")
        argv = [os.fspath(a) for a in argv]
        if not all(isinstance(a, str) for a in argv):
            raise TypeError("argv must be a list of strings")
        hidden = self.secrets + [s for s in secrets if s]
        shown = mask(" ".join(argv), hidden)
        limit = self.deadline.cap(timeout, shown)
        full_env = dict(self.base_env)
        if env:
            full_env.update(env)
        started = time.monotonic()
        result = self._execute(argv, input, limit, full_env, shown)
        elapsed = time.monotonic() - started
        if self.log:
            self.log.debug(f"ran {shown}: rc={result.rc} in {elapsed:.3f}s")
        if result.rc not in tuple(ok):
            detail = mask(_last_line(result.stderr) or _last_line(result.stdout), hidden)
            reason = f"{shown} exited {result.rc}" + (f": {detail}" if detail else "")
            raise CommandError(reason, result.rc, result.stdout, result.stderr)
        return result

    def _execute(
        self,
        argv: list[str],
        input: str | None,
        timeout: float,
        env: dict[str, str],
        shown: str,
    ) -> Result:
        """Start the child, feed ``input``, collect output; kill it on timeout."""
        import subprocess  # 7 ms: only agents that run commands pay for it

        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                close_fds=True,
            )
        except FileNotFoundError as e:
            raise NotInstalledError(f"{argv[0]} not found") from e
        except PermissionError as e:
            raise NotInstalledError(f"{argv[0]} is not executable") from e
        data = input.encode() if input is not None else None
        try:
            out, err = proc.communicate(data, timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            try:
                # Grandchildren may hold the pipes open: do not wait for EOF.
                proc.communicate(timeout=1)
            except subprocess.TimeoutExpired:
                pass
            raise CommandTimeout(f"{shown} did not finish within {timeout:.1f}s") from None
        except BaseException:
            # The deadline alarm or an interrupt: never leave the child behind.
            proc.kill()
            proc.wait()
            raise
        return Result(
            argv,
            proc.returncode,
            out.decode("utf-8", "replace"),
            err.decode("utf-8", "replace"),
        )
