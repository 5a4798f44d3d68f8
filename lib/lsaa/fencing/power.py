"""The interface every fence agent's power backend implements.

The framework drives the backend; the backend only talks to the device.  The
contract of each method: return only what the device itself reported, and
raise :class:`~lsaa.fencing.errors.FenceError` (or a subclass) for anything
else.  A backend never guesses a power state, and never reports a missing
target as "off".
"""

from __future__ import annotations

from lsaa.errors import UnimplementedError

TYPE_CHECKING = False  # see lsaa.errors
if TYPE_CHECKING:
    from lsaa.deadline import Deadline
    from lsaa.log import Log

ON = "on"
OFF = "off"


class PowerBackend:
    """Base class; agents subclass it and override what their device can do."""

    #: True when the device controls several targets, selected by ``plug``.
    multi_plug = False
    #: True when the device can power-cycle in one command (method=cycle).
    can_cycle = False

    def __init__(self, options: dict[str, object], log: Log, deadline: Deadline) -> None:
        self.options = options
        self.log = log
        self.deadline = deadline

    def connect(self) -> None:
        """Open the session; raise FenceError (Transient if a retry may help)."""

    def close(self) -> None:
        """Release the session; must not raise."""

    def get_power(self, plug: str | None) -> str:
        """The power state the device reports for ``plug``: ON or OFF."""
        raise NotImplementedError

    def set_power(self, plug: str | None, state: str) -> None:
        """Ask the device for ``state``; the framework confirms it by reading back."""
        raise NotImplementedError

    def cycle(self, plug: str | None) -> None:
        """One power-cycle command (unconfirmable: the off phase is never seen)."""
        raise UnimplementedError("this device cannot power-cycle in one command")

    def list_plugs(self) -> list[tuple[str, str]]:
        """(plug, alias) for every target the device controls."""
        raise UnimplementedError("this device controls a single target: no list")

    def list_status(self) -> list[tuple[str, str, str]]:
        """(plug, alias, ON|OFF|UNKNOWN) for every target; one bad target is UNKNOWN."""
        from lsaa.fencing.errors import FenceError

        rows = []
        for plug, alias in self.list_plugs():
            try:
                state = self.get_power(plug).upper()
            except FenceError:
                state = "UNKNOWN"
            rows.append((plug, alias, state))
        return rows

    def monitor(self) -> None:
        """Check the device answers (session works); raise FenceError if not."""
        if self.multi_plug:
            self.list_plugs()
