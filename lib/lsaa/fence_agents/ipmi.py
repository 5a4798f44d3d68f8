"""fence_lsaa_ipmi — IPMI power fencing over LAN (RMCP+), through pyghmi.

A drop-in for fence_ipmilan: the same option names (``ip``, ``ipport``,
``username``, ``password``, ``lanplus``, ``cipher``, ``privlvl``,
``hexadecimal_kg``, ``method``, ``power_wait``...), so switching agents is a
change of name.  What differs:

* no ipmitool process: the password never appears on a command line, and
  one IPMI session serves the whole action (a reboot is one login);
* ``lanplus`` defaults to 1 and ``lanplus=0`` (IPMI 1.5) is refused: pyghmi's
  IPMI 1.5 login does not work on Python 3 (see lsaa.backends.ipmi);
* ``cipher`` accepts the suites pyghmi speaks, 3 and 17; unset means "17,
  else 3", which also works against BMCs built on pyghmi (VirtualBMC) that
  break pyghmi's own client;
* every BMC exchange is bounded (``login_timeout`` for the login,
  ``shell_timeout`` per command) and transient faults are retried inside the
  action's deadline; a wrong password or a refused privilege is not retried.

The BMC controls one machine: there is no ``plug`` to choose and no ``list``;
tell Pacemaker which node it fences with ``pcmk_host_list``.  ``plug``/``port``
are accepted (Pacemaker sends them) and ignored, as fence_ipmilan does.
"""

from __future__ import annotations

from lsaa.fencing.errors import FenceError
from lsaa.fencing.power import OFF, ON, PowerBackend
from lsaa.fencing.spec import (
    IP,
    IPPORT,
    LOGIN_TIMEOUT,
    METHOD,
    PASSWORD,
    PASSWORD_SCRIPT,
    PLUG,
    POWER_WAIT,
    USERNAME,
    FenceSpec,
    Option,
)

TYPE_CHECKING = False  # see lsaa.errors
if TYPE_CHECKING:
    from lsaa.backends.ipmi import Bmc
    from lsaa.deadline import Deadline
    from lsaa.log import Log

DEFAULT_PORT = 623
SUITES = ("3", "17")  # what pyghmi can speak; lsaa.backends.ipmi.CIPHER_SUITES
IPMI_USER_MAX = 16  # bytes (IPMI 2.0 table 13-11)
IPMI_PASSWORD_MAX = 20  # bytes (IPMI 2.0 RAKP: 20-byte keys)
KG_MAX = 20  # bytes


def _cipher(value: object) -> object:
    text = str(value).strip()
    if text not in SUITES:
        raise ValueError(f"{text[:20]!r} is not a cipher suite this agent speaks "
                         f"({' or '.join(SUITES)}; pyghmi has no others)")
    return text


def _kg(value: object) -> object:
    text = str(value).strip()
    if text.lower().startswith("0x"):
        text = text[2:]
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise ValueError("is not a hexadecimal string") from None
    if not key or len(key) > KG_MAX:
        raise ValueError(f"must be 1 to {KG_MAX} bytes ({2 * KG_MAX} hex digits)")
    return text


def _ignored(*options: tuple[str, str, str | None, str]) -> list[Option]:
    """fence_ipmilan's options that mean nothing here (no ipmitool, no sudo; this
    agent's own bounds and logging), accepted so that its configuration works as it
    is.  ``use_sudo`` keeps fence_ipmilan's old name ``sudo``."""
    return [Option(name, shortdesc, "Accepted for fence_ipmilan compatibility and "
                   "without effect: this agent runs no ipmitool, and bounds and logs every "
                   "exchange itself.", type=type_, default=default, advanced=True,
                   short="q" if name == "quiet" else None,
                   aliases=("sudo",) if name == "use_sudo" else ())
            for name, shortdesc, default, type_ in options]


SPEC = FenceSpec(
    "fence_lsaa_ipmi",
    "Fence agent for IPMI over LAN (pyghmi)",
    "fence_lsaa_ipmi powers a machine off and on through its BMC with IPMI 2.0 over LAN "
    "(RMCP+), using the pyghmi library: Chassis Control to act, Get Chassis Status to "
    "confirm. It takes fence_ipmilan's option names. One IPMI session serves a whole "
    "action, the password never appears on a command line, and every exchange with the "
    "BMC is bounded by the action's deadline. The BMC controls one machine: name it with "
    "pcmk_host_list. method=cycle sends one power-cycle command whose off phase cannot be "
    "confirmed; the default, onoff, confirms off before powering on.",
    [
        IP.replace(required=True),
        IPPORT.replace(default=str(DEFAULT_PORT)),
        USERNAME,
        PASSWORD,
        PASSWORD_SCRIPT,
        Option("lanplus", "Use Lanplus to improve security of connection",
               "IPMI 2.0 (RMCP+), the only protocol this agent speaks; lanplus=0 (IPMI "
               "1.5) is refused. Unlike fence_ipmilan, the default is 1.",
               type="boolean", default="1", short="P"),
        Option("cipher", "Ciphersuite to use (same as ipmitool -C parameter)",
               "3 (SHA-1) or 17 (SHA-256). Unset: propose 17 and fall back to 3 when the "
               "BMC refuses it or answers with SHA-1.", short="C", check=_cipher),
        Option("privlvl", "Privilege level on IPMI device",
               "Operator is enough to power a machine off and on.",
               choices=("callback", "user", "operator", "administrator"),
               default="administrator", short="L"),
        Option("hexadecimal_kg", "Hexadecimal-encoded Kg key for IPMIv2 authentication",
               "The BMC key (Kg), when the BMC has one set; up to 20 bytes as hex digits.",
               short="y", secret=True, check=_kg),
        Option("auth", "IPMI Lan Auth type.",
               "IPMI 1.5 authentication type; accepted for fence_ipmilan compatibility and "
               "without effect: RMCP+ authenticates with RAKP.",
               choices=("md5", "password", "none"), short="A"),
        Option("target", "Bridge IPMI requests to the remote target address",
               "Not supported: any value is refused, so a configuration meant for a bridged "
               "controller can never power off the BMC's own machine instead."),
        METHOD,
        PLUG.replace(shortdesc="Ignored: the BMC controls one machine (see pcmk_host_list)",
                     longdesc="Ignored: the BMC controls one machine. Pacemaker sends the "
                              "target's name here; pcmk_host_list says which node this "
                              "device fences."),
        POWER_WAIT.replace(default="2"),
        LOGIN_TIMEOUT,
        Option("shell_timeout", "Wait X seconds for the BMC to answer a command",
               "pyghmi retransmits within this time; then the attempt counts as failed and "
               "is retried in a new session while the action's deadline allows.",
               type="second", default="5"),
        Option("port_as_ip", "Make \"port/plug\" to be an alias to IP address",
               "Not supported: any true value is refused (ip names the BMC; one stonith "
               "device per BMC), so a host map meant for it can never power off the "
               "machine named by ip instead.", type="boolean", advanced=True),
        *_ignored(("ipmitool_path", "Path to ipmitool binary", "/usr/bin/ipmitool", "string"),
                  ("ipmitool_timeout", "Timeout (sec) for IPMI operation", "2", "string"),
                  ("use_sudo", "Use sudo (without password) when calling 3rd party software",
                   None, "boolean"),
                  ("sudo_path", "Path to sudo binary", "/usr/bin/sudo", "string"),
                  ("disable_timeout", "Disable timeout (true/false)", None, "string"),
                  ("stonith_status_sleep", "Sleep X seconds between status calls during a "
                   "STONITH action", "1", "second"),
                  ("verbose_level", "Level of debugging detail in output", None, "integer"),
                  ("quiet", "Disable logging to stderr", None, "boolean"),
                  ("plug_separator", "Separator for plug parameter when specifying more "
                   "than 1 plug", ",", "string")),
    ],
    vendor_url="https://www.intel.com/content/www/us/en/products/docs/servers/ipmi/"
               "ipmi-home.html",
    multi_plug=False,
)


def validate(options: dict[str, object], action: str) -> list[str]:
    """Every problem with the options, as fence-agents would say it."""
    problems = []
    if options.get("lanplus") is False:
        problems.append("lanplus: IPMI 1.5 (lanplus=0) is not supported; use lanplus=1")
    if options.get("target"):
        problems.append("target: IPMI bridging is not supported")
    if options.get("port_as_ip"):
        problems.append("port_as_ip: not supported; configure one stonith device per BMC")
    username = str(options.get("username") or "")
    if len(username.encode("utf-8")) > IPMI_USER_MAX:
        problems.append(f"username: longer than {IPMI_USER_MAX} bytes (the IPMI limit)")
    password = options.get("password")
    if password is not None and len(str(password).encode("utf-8")) > IPMI_PASSWORD_MAX:
        problems.append(f"password: longer than {IPMI_PASSWORD_MAX} bytes (the IPMI 2.0 limit)")
    port = options.get("ipport")
    if isinstance(port, int) and not 0 < port < 65536:
        problems.append(f"ipport: {port} is not a UDP port")
    return problems


class IpmiBackend(PowerBackend):
    """One BMC, one machine; one IPMI session from connect() to close()."""

    multi_plug = False
    can_cycle = True

    def __init__(self, options: dict[str, object], log: Log, deadline: Deadline) -> None:
        super().__init__(options, log, deadline)
        self.bmc: Bmc | None = None
        self.host = str(options["ip"])
        self.port = int(str(options.get("ipport") or DEFAULT_PORT))
        kg = options.get("hexadecimal_kg")
        self.kg = bytes.fromhex(str(kg)) if kg else None
        if kg:
            log.add_secret(str(kg))
        cipher = options.get("cipher")
        self.suite = int(str(cipher)) if cipher else None
        self.login_timeout = _seconds(options, "login_timeout", 5.0)
        self.command_timeout = _seconds(options, "shell_timeout", 5.0)

    def connect(self) -> None:
        if self.bmc is not None and not self.bmc.dead:
            return
        self.close()
        try:
            from lsaa.backends.ipmi import Bmc
        except ImportError as e:  # the RPM requires python3-pyghmi; a by-hand install may not
            raise FenceError(f"cannot load pyghmi ({e}): install python3-pyghmi") from None

        limit = self.deadline.cap(self.login_timeout, "IPMI login")
        self.bmc = Bmc.login(
            self.host, self.port, str(self.options.get("username") or ""),
            str(self.options.get("password") or ""), kg=self.kg,
            privilege=str(self.options.get("privlvl") or "administrator"),
            suite=self.suite, limit=limit)
        for note in self.bmc.notes:
            self.log.debug(note)
        self.log.debug(f"logged in to {self.bmc.where} with cipher suite {self.bmc.session.suite}")

    def close(self) -> None:
        if self.bmc is not None:
            self.bmc.close()
            self.bmc = None

    def _bmc(self) -> Bmc:
        if self.bmc is None or self.bmc.dead:
            self.connect()
        assert self.bmc is not None
        return self.bmc

    def _limit(self, what: str) -> float:
        return self.deadline.cap(self.command_timeout, what)

    def get_power(self, plug: str | None) -> str:
        bmc = self._bmc()
        return ON if bmc.power_is_on(self._limit("get chassis status")) else OFF

    def set_power(self, plug: str | None, state: str) -> None:
        from lsaa.backends.ipmi import CHASSIS_POWER_DOWN, CHASSIS_POWER_UP

        if state not in (ON, OFF):
            raise FenceError(f"cannot set power state {state!r}")
        bmc = self._bmc()
        bmc.chassis_control(CHASSIS_POWER_UP if state == ON else CHASSIS_POWER_DOWN,
                            self._limit("chassis control"))

    def cycle(self, plug: str | None) -> None:
        from lsaa.backends.ipmi import CHASSIS_POWER_CYCLE

        bmc = self._bmc()
        bmc.chassis_control(CHASSIS_POWER_CYCLE, self._limit("chassis control"))

    def monitor(self) -> None:
        """The BMC answers a login and a Get Chassis Status (the power state may be either)."""
        self.get_power(None)


def _seconds(options: dict[str, object], name: str, default: float) -> float:
    v = options.get(name)
    if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0:
        return float(v)
    return default


def factory(options: dict[str, object], log: Log, deadline: Deadline) -> PowerBackend:
    return IpmiBackend(options, log, deadline)


def main() -> None:
    from lsaa.fencing.main import main as run_main

    run_main(SPEC, factory, validate)
