"""fence_lsaa_libvirt — fence virtual machines through libvirt (libvirt-python).

One device is one libvirt connection (``uri``); each target is a domain,
named by ``plug`` (domain name or UUID).  ``off`` is ``virDomainDestroy``
(a hard power-off: never the ACPI ``shutdown``), confirmed by reading the
domain's state back; ``on`` is ``virDomainCreate`` on a defined domain.
``list``/``list-status`` serve ``pcmk_host_check=dynamic-list``.

Rules this backend keeps (fence-contract.md §10):

* always an explicit URI: ``LIBVIRT_DEFAULT_URI`` and ``uri_aliases`` never
  decide which hypervisor gets fenced;
* an unknown domain is an error (UnknownTarget), never "off", unless the
  administrator opted in with ``missing_as_off``; a dead or lost connection is
  a TransientFenceError (retried by the framework), never "no such domain":
  the two are told apart by ``get_error_code()``;
* a domain that disappears after *our own* successful destroy is off
  (libvirt removes transient domains when they stop; a persistent one may be
  undefined meanwhile): destroy returned only once QEMU was gone.  A domain
  that disappears *before* we destroyed it is an error (it may have migrated);
* libvirt's error handler is replaced by a no-op before connecting, and its
  log outputs go to syslog (``LIBVIRT_LOG_OUTPUTS``, unless already set), so
  libvirt prints nothing on stderr (each stderr line is a WARNING in
  Pacemaker's log); errors are reported once, by the framework;
* every libvirt call runs in a worker thread and is waited for with a
  timeout: a hung libvirtd (or ssh tunnel) cannot block the agent until the
  fencer's SIGKILL.  A connection with a call still stuck is never closed
  (closing would block on the same lock); it is left to the process exit.
* the password is handed to libvirt only through the auth callback (SASL or
  libssh ``VIR_CRED_PASSPHRASE``); it is never part of the URI, argv or a log.

libvirt-python is imported only inside the backend, so metadata, manpage and
validate-all work without it.
"""

from __future__ import annotations

import contextlib
import re
import threading

from lsaa.fencing.errors import FenceError, TransientFenceError, UnknownTarget
from lsaa.fencing.power import OFF, ON, PowerBackend
from lsaa.fencing.spec import (
    LOGIN_TIMEOUT,
    PASSWORD,
    PASSWORD_SCRIPT,
    PLUG,
    USERNAME,
    FenceSpec,
    Option,
)

TYPE_CHECKING = False  # see lsaa.errors
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from lsaa.deadline import Deadline
    from lsaa.log import Log

URI_RE = re.compile(r"^[a-z][a-z0-9.-]*(\+[a-z0-9.-]+)?://[^\s]*$")
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?"
                     r"[0-9a-fA-F]{12}$")

# virDomainState values (libvirt's include/libvirt/libvirt-domain.h).
DOMAIN_STATES = {0: "nostate", 1: "running", 2: "blocked", 3: "paused", 4: "shutdown",
                 5: "shutoff", 6: "crashed", 7: "pmsuspended"}
SHUTOFF = 5

# virErrorNumber values (virterror.h) that a retry cannot cure.
ERR_NO_DOMAIN = 42
ERR_OPERATION_INVALID = 55
PERMANENT_ERRORS = {
    3: "not supported",            # VIR_ERR_NO_SUPPORT
    5: "no driver for this URI",   # VIR_ERR_NO_CONNECT (also "unsupported URI")
    8: "invalid argument",         # VIR_ERR_INVALID_ARG
    45: "authentication failed",   # VIR_ERR_AUTH_FAILED
    79: "authentication cancelled",  # VIR_ERR_AUTH_CANCELLED
    88: "access denied",           # VIR_ERR_ACCESS_DENIED
    94: "authentication unavailable",  # VIR_ERR_AUTH_UNAVAILABLE
}
# Connection-level failures worth a reconnect, named for the log.
ERR_NAMES = {1: "internal error", 6: "invalid connection", 9: "operation failed",
             38: "system error", 39: "RPC error", 40: "TLS error", 68: "operation timeout",
             85: "ssh error", 86: "agent unresponsive", 87: "resource busy", 98: "libssh error"}

URI_DOC = (
    "libvirt connection URI of the hypervisor, always explicit (LIBVIRT_DEFAULT_URI and "
    "uri_aliases are never used). Examples: qemu:///system (local), "
    "qemu+ssh://root@hv1/system?keyfile=/etc/cluster/hv1_key&no_tty=1 (ssh with a key; "
    "no_tty=1 makes ssh fail instead of prompting, known_hosts must already hold the "
    "host key, or add no_verify=1), qemu+tls://hv1/system?pkipath=/etc/pki/lsaa, "
    "qemu+tcp://hv1/system (SASL: give username and password)."
)

SPEC = FenceSpec(
    "fence_lsaa_libvirt",
    "Fence agent for libvirt virtual machines (libvirt-python)",
    "fence_lsaa_libvirt fences virtual machines managed by libvirt, talking to libvirtd "
    "through libvirt-python over any libvirt URI (qemu:///system, qemu+ssh://, qemu+tls://, "
    "qemu+tcp://). The target (plug) is a domain name or UUID. Off destroys the domain "
    "(a hard power-off, never an ACPI shutdown) and succeeds only once libvirt reports it "
    "shut off; on starts the defined domain. An unknown domain is an error, never 'off', "
    "and a lost connection is retried, never mistaken for a missing domain. list and "
    "list-status show every domain (name and UUID) for pcmk_host_check=dynamic-list. "
    "Authentication: ssh keys through the URI (keyfile=, no_tty=1), or username and "
    "password given to libvirt's authentication callback (SASL on qemu+tcp/qemu+tls, "
    "password auth of qemu+libssh); the password never appears in a URI or command line.",
    [
        Option("uri", "libvirt connection URI", URI_DOC, required=True),
        PLUG.replace(required=True,
                     shortdesc="Name or UUID of the domain (virtual machine) to fence"),
        USERNAME.replace(
            longdesc="Login name for libvirt's authentication callback (SASL, libssh). "
                     "For qemu+ssh put the user in the URI (qemu+ssh://root@hv1/system)."),
        PASSWORD.replace(
            longdesc="Password for libvirt's authentication callback (SASL, libssh "
                     "password auth). Prefer password_script to keep it out of the CIB."),
        PASSWORD_SCRIPT,
        Option("missing_as_off", "Missing domain is reported as OFF",
               "Opt-in, dangerous: report a domain that libvirt does not know as off "
               "instead of failing. Only for hypervisors where deleting a VM is the same "
               "as fencing it; a typo in plug or pcmk_host_map then 'fences' nothing "
               "successfully.", type="boolean", default="0", advanced=True),
        LOGIN_TIMEOUT.replace(
            longdesc="Seconds to wait for the connection to libvirt (including ssh or "
                     "TLS set-up), and for each quick libvirt call (state, lookup, list) "
                     "before the call counts as failed and is retried."),
    ],
    vendor_url="https://libvirt.org",
    multi_plug=True,
)


class LibvirtBackend(PowerBackend):
    """Power control of libvirt domains over one connection."""

    multi_plug = True
    can_cycle = False

    def __init__(self, options: dict[str, object], log: Log, deadline: Deadline,
                 lib: Any = None) -> None:
        super().__init__(options, log, deadline)
        if lib is None:
            import os

            # libvirt's own log (certificate warnings...) goes to stderr, where each line
            # is a WARNING in Pacemaker's log, unless told otherwise before it starts
            os.environ.setdefault("LIBVIRT_LOG_OUTPUTS", "3:syslog:fence_lsaa_libvirt")
            import libvirt

            lib = libvirt
        self.lib = lib
        self.uri = str(options["uri"])
        self.username = _str_or_none(options.get("username"))
        self.password = _str_or_none(options.get("password"))
        self.missing_as_off = bool(options.get("missing_as_off"))
        self.call_timeout = _positive(options.get("login_timeout"), 5.0)
        self.power_timeout = _positive(options.get("power_timeout"), 20.0)
        self.conn: Any = None
        self.stuck = False  # a call on self.conn never returned
        self.asked_password = False  # libvirt's auth callback wanted a passphrase
        # plug -> UUID of the domain we destroyed successfully (for transient domains)
        self.destroyed: dict[str, str] = {}
        # plug -> UUID first resolved; a different UUID later means the domain was replaced
        self.uuids: dict[str, str] = {}
        # libvirt prints every error on stderr unless a handler is installed.
        lib.registerErrorHandler(_silent, None)

    # --- plumbing -------------------------------------------------------------

    def call(self, what: str, fn: Callable[..., Any], *args: Any,
             timeout: float | None = None) -> Any:
        """``fn(*args)`` in a worker thread, waited for at most ``timeout`` seconds
        (capped by the deadline).  libvirt errors come back classified."""
        limit = self.deadline.cap(timeout if timeout is not None else self.call_timeout, what)
        box: dict[str, Any] = {}

        def work() -> None:
            try:
                box["value"] = fn(*args)
            except BaseException as e:  # handed to the caller's thread
                box["error"] = e

        worker = threading.Thread(target=work, name=f"libvirt {what}", daemon=True)
        worker.start()
        worker.join(limit)
        if worker.is_alive():
            self.stuck = True
            self._drop()
            raise TransientFenceError(f"{what}: no answer from libvirt within {limit:.1f}s")
        if "error" in box:
            err = self.classify(what, box["error"])
            if isinstance(err, TransientFenceError) and fn is not self.lib.openAuth:
                self._drop()
            raise err from None
        return box.get("value")

    def classify(self, what: str, e: BaseException) -> FenceError:
        """A FenceError subclass for a libvirt exception, by its error code."""
        if not isinstance(e, self.lib.libvirtError):
            if isinstance(e, FenceError):
                return e
            return FenceError(f"{what}: {type(e).__name__}: {e}")
        code = e.get_error_code()
        message = self._masked(str(e.get_error_message() or e))[:300]
        err: FenceError

        def said(kind: str) -> str:  # libvirt's message often starts with the kind already
            return message if message.lower().startswith(kind) else f"{kind}: {message}"

        if code == ERR_NO_DOMAIN:
            err = UnknownTarget(f"{what}: no such domain ({message})")
        elif code == ERR_OPERATION_INVALID:
            err = FenceError(f"{what}: {message}")
        elif code in PERMANENT_ERRORS:
            err = FenceError(f"{what}: {said(PERMANENT_ERRORS[code])}")
        else:
            kind = ERR_NAMES.get(code, f"libvirt error {code}")
            err = TransientFenceError(f"{what}: {said(kind)}")
        err.libvirt_code = code  # type: ignore[attr-defined]
        return err

    def _masked(self, text: str) -> str:
        """``text`` on one line, without the password.  Masked here, before the
        blanks are squeezed: the framework's log squeezes blanks first and then
        misses a password that contains a run of blanks or ends with one."""
        if self.password:
            text = text.replace(self.password, "****")
            squeezed = " ".join(self.password.split())
            text = " ".join(text.split())
            if squeezed:
                text = text.replace(squeezed, "****")
        return " ".join(text.split())

    def _auth(self, creds: list[list[Any]], _opaque: object) -> int:
        """libvirt's authentication callback: fill in each requested credential."""
        lib = self.lib
        for cred in creds:
            if cred[0] == lib.VIR_CRED_AUTHNAME:
                cred[4] = self.username if self.username is not None else (cred[3] or "")
            elif cred[0] == lib.VIR_CRED_PASSPHRASE:
                self.asked_password = True
                if self.password is None:
                    return -1  # libvirt then fails with "authentication failed"
                cred[4] = self.password
            else:
                return -1
        return 0

    def connect(self) -> None:
        if self.conn is not None:
            return
        lib = self.lib
        auth = [[lib.VIR_CRED_AUTHNAME, lib.VIR_CRED_PASSPHRASE], self._auth, None]
        self.log.debug(f"connecting to {self.uri}")
        try:
            self.conn = self.call(f"connect to {self.uri}", lib.openAuth, self.uri, auth, 0)
        except FenceError as e:
            if isinstance(e, UnknownTarget):  # cannot happen, but never a missing domain
                raise TransientFenceError(e.reason) from None
            if "authentication" in e.reason and self.asked_password \
                    and self.password is None and self.options.get("password_script") is None:
                raise FenceError(f"{e.reason} (no password is configured)") from None
            raise
        if self.conn is None:
            raise TransientFenceError(f"connect to {self.uri}: libvirt returned no connection")

    def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is None:
            return
        if not self.stuck:
            # close must not raise; a close that gets stuck is kept below
            with contextlib.suppress(Exception):
                self.call("close", conn.close, timeout=2.0)
        if self.stuck:
            # A call is still blocked on this connection: closing (or freeing it)
            # would block too.
            _keep_forever(conn)
            self.stuck = False

    def _conn(self) -> Any:
        """The connection, reopened if a transient failure dropped it (the
        framework's read-back loop does not reconnect by itself)."""
        if self.conn is None:
            self.connect()
        return self.conn

    def _drop(self) -> None:
        """Forget a connection that failed: the next call reconnects."""
        if self.conn is not None:
            self.log.debug("dropping the libvirt connection after a failure")
            self.close()

    # --- domains --------------------------------------------------------------

    def lookup(self, plug: str | None) -> Any:
        """The domain named ``plug`` (a UUID is tried as UUID first, then as name)."""
        if not plug:
            raise UnknownTarget("no domain given (plug)")
        conn = self._conn()
        dom = None
        if UUID_RE.match(plug):
            try:
                dom = self.call(f"look up domain {plug}", conn.lookupByUUIDString, plug)
            except UnknownTarget:
                dom = None
        if dom is None:
            dom = self.call(f"look up domain {plug}", conn.lookupByName, plug)
        uuid = str(dom.UUIDString())
        first = self.uuids.setdefault(plug, uuid)
        if first != uuid:
            raise FenceError(f"domain {plug} was replaced during the fence "
                             f"(UUID {first} became {uuid})")
        return dom

    def get_power(self, plug: str | None) -> str:
        name = plug or ""
        try:
            dom = self.lookup(plug)
            state = self.call(f"read state of {name}", dom.state)
        except UnknownTarget:
            if name in self.destroyed:
                # Our own destroy succeeded and the domain is gone: a transient
                # domain vanishes when it stops.  Off, for certain.
                self.log.info(f"domain {name} vanished after our destroy (transient): off")
                return OFF
            if self.missing_as_off:
                self.log.warning(f"domain {name} does not exist; reporting off "
                                 "(missing_as_off)")
                return OFF
            raise UnknownTarget(f"no such domain {name!r} on {self.uri}") from None
        code = int(state[0])
        self.log.debug(f"domain {name} is {DOMAIN_STATES.get(code, code)}")
        # Only SHUTOFF is off: crashed may still hold a QEMU process, paused
        # and pmsuspended still hold guest memory and devices.
        return OFF if code == SHUTOFF else ON

    def set_power(self, plug: str | None, state: str) -> None:
        name = plug or ""
        dom = self.lookup(plug)
        if state == OFF:
            try:
                # destroy, never shutdown: shutdown is an ACPI request a guest may ignore.
                self.call(f"destroy {name}", dom.destroy, timeout=self.power_timeout)
            except TransientFenceError:
                raise
            except FenceError as e:
                if not self._idempotent(e):
                    raise
                self.log.debug(f"destroy {name}: {e.reason}; reading the state back")
                return
            # libvirt killed the QEMU process: if the domain disappears now
            # (transient domains do when they stop), it is off.
            self.destroyed[name] = str(dom.UUIDString())
            return
        try:
            self.call(f"start {name}", dom.create, timeout=self.power_timeout)
        except TransientFenceError:
            raise
        except FenceError as e:
            if isinstance(e, UnknownTarget) and name in self.destroyed:
                raise FenceError(f"domain {name} vanished when destroyed (a transient "
                                 "domain, or undefined meanwhile); it cannot be started "
                                 "again") from None
            if not self._idempotent(e):
                raise
            self.log.debug(f"start {name}: {e.reason}; reading the state back")

    @staticmethod
    def _idempotent(e: FenceError) -> bool:
        # VIR_ERR_OPERATION_INVALID: "domain is not running" / "already running";
        # the framework reads the state back either way.
        return getattr(e, "libvirt_code", None) == ERR_OPERATION_INVALID

    def list_plugs(self) -> list[tuple[str, str]]:
        return [(name, uuid) for name, uuid, _state in self._all()]

    def list_status(self) -> list[tuple[str, str, str]]:
        return [(name, uuid, state) for name, uuid, state in self._all()]

    def _all(self) -> list[tuple[str, str, str]]:
        """(name, uuid, ON|OFF) for every domain: two calls, whatever the count."""
        lib = self.lib
        conn = self._conn()
        rows: dict[str, tuple[str, str, str]] = {}
        for flag, state in ((lib.VIR_CONNECT_LIST_DOMAINS_INACTIVE, "OFF"),
                            (lib.VIR_CONNECT_LIST_DOMAINS_ACTIVE, "ON")):
            for dom in self.call("list domains", conn.listAllDomains, flag) or []:
                # name and UUID are cached in the handle: no call per domain
                uuid = str(dom.UUIDString())
                rows[uuid] = (str(dom.name()), uuid, state)  # active wins over a race
        return sorted(rows.values())

    def monitor(self) -> None:
        conn = self._conn()
        self.call("check the connection", conn.getLibVersion)


def _silent(_ctx: object, _err: object) -> None:
    """libvirt's error handler: say nothing (errors are reported by the framework)."""


_KEPT: list[object] = []


def _keep_forever(obj: object) -> None:
    """Never deallocate ``obj``: its destructor would block on a stuck call.

    A module-level list is cleared at interpreter shutdown, so the reference
    count is raised in C as well (the object outlives the process).
    """
    _KEPT.append(obj)
    try:
        import ctypes

        ctypes.pythonapi.Py_IncRef(ctypes.py_object(obj))
    except (ImportError, AttributeError, OSError):
        pass


def _str_or_none(value: object) -> str | None:
    return None if value is None or value == "" else str(value)


def _positive(value: object, default: float) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    return default


def factory(options: dict[str, object], log: Log, deadline: Deadline) -> PowerBackend:
    try:
        return LibvirtBackend(options, log, deadline)
    except ImportError:
        raise FenceError("libvirt-python is not installed (python3-libvirt)") from None


def validate(options: dict[str, object], action: str) -> list[str]:
    problems = []
    uri = str(options.get("uri") or "")
    if not URI_RE.match(uri):
        problems.append(f"uri: {uri[:60]!r} is not an explicit libvirt URI "
                        "(driver[+transport]://[user@host]/path, e.g. qemu:///system)")
    else:
        authority = uri.split("://", 1)[1].split("/", 1)[0]
        if ":" in authority.rpartition("@")[0] or re.search(r"[?&]pass", uri, re.I):
            problems.append("uri: must not contain a password; use password or "
                            "password_script")
    return problems


def main() -> None:
    from lsaa.fencing.main import main as run_main

    run_main(SPEC, factory, validate)
