"""A fence agent's options and actions, declared once.

Option names follow fence-agents (``ip``, ``username``, ``password``, ``plug``,
``power_timeout``...), with their deprecated aliases (``ipaddr``, ``login``,
``passwd``, ``port``...), so an administrator can switch from fence_ipmilan or
fence_virsh by changing only the agent's name.  From the declaration come the
metadata (fence-agents' format), stdin and command-line parsing, validation,
and the man page.
"""

from __future__ import annotations

from lsaa.ocf.spec import FALSE_WORDS, TRUE_WORDS, check_text

TYPE_CHECKING = False  # see lsaa.errors
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence
    from typing import Any

OPTION_TYPES = ("string", "integer", "second", "boolean", "select")


class Option:
    """One agent option: stdin ``name=value`` or command-line ``--name value``.

    ``aliases`` are deprecated names accepted everywhere and shown in the
    metadata with ``deprecated="1"``.  ``short`` is the one-letter command-line
    flag.  ``default`` is written as the administrator would type it.
    """

    __slots__ = ("advanced", "aliases", "check", "choices", "default", "longdesc", "name",
                 "required", "secret", "short", "shortdesc", "type")

    def __init__(
        self,
        name: str,
        shortdesc: str,
        longdesc: str = "",
        *,
        type: str = "string",
        default: str | None = None,
        required: bool = False,
        aliases: Sequence[str] = (),
        short: str | None = None,
        choices: Sequence[str] = (),
        secret: bool = False,
        advanced: bool = False,
        check: Callable[[Any], object] | None = None,
    ) -> None:
        if choices:
            type = "select"
        if type not in OPTION_TYPES:
            raise ValueError(f"option {name}: unknown type {type}")
        self.name = name
        self.shortdesc = shortdesc
        self.longdesc = longdesc or shortdesc
        self.type = type
        self.default = default
        self.required = required
        self.aliases = tuple(aliases)
        self.short = short
        self.choices = tuple(choices)
        self.secret = secret
        self.advanced = advanced
        self.check = check

    def replace(self, **changes: object) -> Option:
        """A copy with some attributes changed, e.g. ``IP.replace(required=True)``."""
        new = object.__new__(Option)
        for slot in Option.__slots__:
            object.__setattr__(new, slot, changes.get(slot, getattr(self, slot)))
        return new

    @property
    def long(self) -> str:
        """The command-line spelling: ``power_timeout`` -> ``--power-timeout``."""
        return "--" + self.name.replace("_", "-")

    def getopt(self) -> str:
        """fence-agents' ``getopt mixed`` string, e.g. ``-a, --ip=[ip]``."""
        flag = f"-{self.short}, {self.long}" if self.short else self.long
        return flag if self.type == "boolean" else f"{flag}=[{self.name}]"

    def parse(self, raw: str) -> object:
        """Typed value; ValueError says what is wrong."""
        check_text(raw, 4096)
        value: object = raw
        if self.type == "boolean":
            word = raw.strip().lower()
            if word in TRUE_WORDS or word == "":
                value = True  # a bare command-line flag, or "name=" on stdin
            elif word in FALSE_WORDS:
                value = False
            else:
                raise ValueError(f"{raw[:40]!r} is not a boolean")
        elif self.type == "integer":
            try:
                value = int(raw.strip(), 10)
            except ValueError:
                raise ValueError(f"{raw[:40]!r} is not an integer") from None
        elif self.type == "second":
            try:
                value = float(raw.strip())
            except ValueError:
                raise ValueError(f"{raw[:40]!r} is not a number of seconds") from None
            if not 0 <= value < 86400:  # also rejects nan and inf
                raise ValueError(f"{raw[:40]!r} is not between 0 and 86400 seconds")
        elif self.type == "select" and raw not in self.choices:
            raise ValueError(f"{raw[:40]!r} is not one of {', '.join(self.choices)}")
        if self.check is not None:
            value = self.check(value)
        return value


# The options every lsaa fence agent understands (fence-agents' names).
ACTION = Option("action", "Fencing action", type="string", default="reboot", short="o",
                aliases=("option",))
PLUG = Option("plug", "Physical plug number on device, UUID or identification of machine",
              short="n", aliases=("port",))
IP = Option("ip", "IP address or hostname of fencing device", short="a", aliases=("ipaddr",))
IPPORT = Option("ipport", "TCP/UDP port to use for connection with device", type="integer",
                short="u")
USERNAME = Option("username", "Login name", short="l", aliases=("login",))
PASSWORD = Option("password", "Login password or passphrase", short="p", aliases=("passwd",),
                  secret=True)
PASSWORD_SCRIPT = Option(
    "password_script", "Script to run to retrieve password",
    "A command (words separated by blanks; no shell) whose first output line is the "
    "password. Keeps the password out of the CIB.", short="S", aliases=("passwd_script",))
METHOD = Option("method", "Method to fence",
                "onoff: power off, confirm off by reading the state back, then power on. "
                "cycle: one power-cycle command; the device never shows the off state, so "
                "the fence cannot be confirmed (use onoff unless the device needs cycle).",
                short="m", choices=("onoff", "cycle"), default="onoff")
DELAY = Option("delay", "Wait X seconds before fencing is started",
               "Seconds to wait before off or reboot, to let one node of a pair win a "
               "fencing race.", type="second", default="0")
POWER_TIMEOUT = Option("power_timeout", "Test X seconds for status change after ON/OFF",
                       type="second", default="20")
POWER_WAIT = Option("power_wait", "Wait X seconds after issuing ON/OFF", type="second",
                    default="0")
LOGIN_TIMEOUT = Option("login_timeout", "Wait X seconds for the device to answer a login",
                       type="second", default="5")
RETRY_ON = Option("retry_on", "Count of attempts to retry power on", type="integer",
                  default="1")
VERBOSE = Option("verbose", "Verbose mode: debug messages on stderr", type="boolean",
                 short="v")
DEBUG_FILE = Option("debug_file", "Write debug information to given file", short="D",
                    aliases=("debug",))
VERSION = Option("version", "Display version information and exit", type="boolean",
                 short="V")
HELP = Option("help", "Display help and exit", type="boolean", short="h")

COMMON = (ACTION, DELAY, POWER_TIMEOUT, POWER_WAIT, LOGIN_TIMEOUT, RETRY_ON, VERBOSE,
          DEBUG_FILE, VERSION, HELP)

ACTIONS = ("on", "off", "reboot", "status", "list", "list-status", "monitor", "metadata",
           "manpage", "validate-all")
ACTION_ALIASES = {"meta-data": "metadata", "enable": "on", "disable": "off"}


class FenceSpec:
    """Everything the fencer, pcs and administrators can know about an agent."""

    __slots__ = ("longdesc", "multi_plug", "name", "options", "shortdesc", "vendor_url")

    def __init__(
        self,
        name: str,
        shortdesc: str,
        longdesc: str,
        options: Iterable[Option],
        *,
        vendor_url: str,
        multi_plug: bool = False,
    ) -> None:
        self.name = name
        self.shortdesc = shortdesc
        self.longdesc = longdesc
        self.vendor_url = vendor_url
        self.multi_plug = multi_plug
        own = list(options)
        names = {o.name for o in own}
        self.options = tuple(own + [o for o in COMMON if o.name not in names])
        seen: set[str] = set()
        for o in self.options:
            for n in (o.name, *o.aliases):
                if n in seen:
                    raise ValueError(f"{name}: option name {n} declared twice")
                seen.add(n)

    @property
    def actions(self) -> tuple[str, ...]:
        if self.multi_plug:
            return ACTIONS
        return tuple(a for a in ACTIONS if a not in ("list", "list-status"))

    def option(self, name: str) -> Option:
        for o in self.options:
            if o.name == name:
                return o
        raise KeyError(name)
