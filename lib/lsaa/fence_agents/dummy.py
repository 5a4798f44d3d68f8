"""fence_lsaa_dummy — a fence device whose targets are files.

The fence framework's reference agent, for testing the framework, the fencer
integration and cluster configurations without hardware: each plug is a file
``<state_dir>/<plug>`` holding ``on`` or ``off``.  A plug without a file does
not exist (an error, never "off").  When ``<state_dir>/.password`` exists, the
device demands that password, like a real one, so credential handling (stdin,
password_script, masking) can be tested end to end.  Not for production: it
fences nothing.
"""

from __future__ import annotations

import os

from lsaa.fencing.errors import FenceError, UnknownTarget
from lsaa.fencing.power import OFF, ON, PowerBackend
from lsaa.fencing.spec import PASSWORD, PASSWORD_SCRIPT, PLUG, USERNAME, FenceSpec, Option

TYPE_CHECKING = False  # see lsaa.errors
if TYPE_CHECKING:
    from lsaa.deadline import Deadline
    from lsaa.log import Log

SPEC = FenceSpec(
    "fence_lsaa_dummy",
    "Test fence agent whose targets are files",
    "fence_lsaa_dummy powers 'targets' that are files in a directory: each file holds "
    "on or off. It exists to test fencing configuration and the lsaa fence framework; "
    "it fences nothing.",
    [
        PLUG.replace(required=True),
        Option("state_dir", "Directory holding one file per target", required=True),
        USERNAME,
        PASSWORD,
        PASSWORD_SCRIPT,
    ],
    vendor_url="https://clusterlabs.org",
    multi_plug=True,
)


class FileBackend(PowerBackend):
    multi_plug = True
    can_cycle = True

    def __init__(self, options: dict[str, object], log: Log, deadline: Deadline) -> None:
        super().__init__(options, log, deadline)
        self.dir = str(options["state_dir"])

    def _path(self, plug: str | None) -> str:
        if not plug or "/" in plug or plug.startswith("."):
            raise UnknownTarget(f"invalid plug {plug!r}")
        return os.path.join(self.dir, plug)

    def connect(self) -> None:
        if not os.path.isdir(self.dir):
            raise FenceError(f"state_dir {self.dir} is not a directory")
        try:
            with open(os.path.join(self.dir, ".password"), encoding="utf-8") as f:
                wanted = f.read().rstrip("\n")
        except FileNotFoundError:
            return
        given = self.options.get("password")
        if given != wanted:
            # The given password goes into the message on purpose: the framework
            # must mask it (a test checks), as it must for any device's error text.
            raise FenceError(f"authentication failed for password {given}")

    def get_power(self, plug: str | None) -> str:
        try:
            with open(self._path(plug), encoding="utf-8") as f:
                state = f.read().strip()
        except FileNotFoundError:
            raise UnknownTarget(f"no such target {plug!r}") from None
        except OSError as e:
            raise FenceError(f"cannot read {plug}: {e.strerror}") from None
        if state not in (ON, OFF):
            raise FenceError(f"target {plug} is in unknown state {state[:20]!r}")
        return state

    def set_power(self, plug: str | None, state: str) -> None:
        path = self._path(plug)
        self.get_power(plug)  # the target must exist: never create one by fencing it
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            f.write(state + "\n")
        os.replace(path + ".tmp", path)

    def cycle(self, plug: str | None) -> None:
        self.set_power(plug, ON)

    def list_plugs(self) -> list[tuple[str, str]]:
        return [(n, n) for n in sorted(os.listdir(self.dir))
                if not n.startswith(".") and not n.endswith(".tmp")]


def factory(options: dict[str, object], log: Log, deadline: Deadline) -> PowerBackend:
    return FileBackend(options, log, deadline)


def validate(options: dict[str, object], action: str) -> list[str]:
    state_dir = str(options.get("state_dir") or "")
    if not state_dir.startswith("/"):
        return [f"state_dir: {state_dir[:40]!r} is not an absolute path"]
    return []


def main() -> None:
    from lsaa.fencing.main import main as run_main

    run_main(SPEC, factory, validate)
