"""IPMI over LAN (RMCP+) through pyghmi: one session, raw chassis commands, bounded waits.

What this adapter adds to pyghmi (fence-contract.md §9), without patching it:

* **Cipher suite choice.** pyghmi's client proposes suite 17 (SHA-256) and
  falls back to suite 3 (SHA-1) only when the BMC refuses 17; it has no option
  to choose.  :class:`Rmcp` is a subclass of pyghmi's ``Session`` that
  proposes the suite asked for (``cipher=3`` or ``17``), or 17 then 3.
* **BMCs built on pyghmi** (VirtualBMC, ``pyghmi.ipmi.bmc.Bmc``) answer "OK,
  suite 3" to any proposal and sign RAKP2 with HMAC-SHA1 (20 bytes) where the
  client expects HMAC-SHA256 (32 bytes); pyghmi's client then dies in
  ``_got_rakp2`` with ``struct.error`` (1.5.34 and 1.6.19 alike).  We check
  the HMAC's length first and start the login over with SHA-1.
* **No lost wake-ups.** pyghmi's synchronous ``raw_command`` can miss a reply
  that arrives before it starts waiting and then sleeps until its retransmit
  timer (0.5-1.5 s stalls).  We send with a callback and pump pyghmi's event
  loop in short slices ourselves, so a missed wake-up costs at most one slice,
  and every wait ends at our own limit (pyghmi's retransmit schedule alone can
  take ~20 s to give up in 1.5.34).
* **Retransmits until our limit.** pyghmi waits 1 s longer before each
  retransmit and gives up after a few; under packet loss a login (six round
  trips) then rarely completes.  We resend at a steady pace until our own
  limit (``login_timeout``, ``shell_timeout``) ends the wait.
* **Raw chassis commands** (Get Chassis Status, Chassis Control), exactly what
  ``ipmitool chassis power`` sends, instead of ``Command.set_power``, which
  first runs OEM detection (Get Device ID, vendor handlers) and skips the
  command when it believes the state is reached.
* **Never a shared session.** pyghmi caches sessions class-wide by
  credentials; a retry after a failure must not be handed the session that
  just failed, so every :class:`Rmcp` is new, on a UDP socket of its own.

pyghmi versions: written against Debian 12's 1.5.34 and checked against the
1.6.19 sdist (the RHEL 9 package stream).  The login state machine we hook
(``_open_rmcpplus_request``, ``_got_rmcp_response``, ``_got_rakp2``,
``attemptedhash``) is the same in both; they differ in recovery: 1.6.19
re-logs-in once after a timeout of an established session and replays the
command (``logontries``), 1.5.34 marks the session broken.  Both end up as a
reply or an error in our callback, so no branch on the version is needed
there; :func:`check_pyghmi` refuses a pyghmi that lacks the hooks.

IPMI 1.5 ("lan", ``lanplus=0``) is not offered: pyghmi's 1.5 login mixes str
and bytes and fails on Python 3 (``_get_session_challenge``), and 1.5's MD5
authentication without encryption should not guard a fence device anyway.
"""

from __future__ import annotations

import hashlib
import time

from pyghmi.ipmi.private import session as pyghmi_session

from lsaa.fencing.errors import FenceError, TransientFenceError

TYPE_CHECKING = False  # see lsaa.errors
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

# IPMI 2.0 spec, table G-1: network functions and commands we send.
NETFN_CHASSIS = 0x00
CMD_GET_CHASSIS_STATUS = 0x01
CMD_CHASSIS_CONTROL = 0x02
CHASSIS_POWER_DOWN = 0
CHASSIS_POWER_UP = 1
CHASSIS_POWER_CYCLE = 2

# Privilege levels (IPMI 2.0 table 22-19), by fence_ipmilan's ``privlvl`` names.
PRIVILEGES = {"callback": 1, "user": 2, "operator": 3, "administrator": 4}

# Cipher suites pyghmi can speak: both with AES-CBC-128 confidentiality.
SUITE_SHA1 = 3    # RAKP-HMAC-SHA1, HMAC-SHA1-96
SUITE_SHA256 = 17  # RAKP-HMAC-SHA256, HMAC-SHA256-128
CIPHER_SUITES = (SUITE_SHA1, SUITE_SHA256)
# pyghmi's ``attemptedhash`` values for those suites
_HASH_OF_SUITE = {SUITE_SHA1: 1, SUITE_SHA256: 256}
_SHA256_HMAC_LEN = 32
_RAKP2_HMAC_OFFSET = 40  # tag, status, 2 reserved, client SID, BMC random, GUID

# Seconds per pass of pyghmi's event loop: the longest a missed wake-up can cost.
SLICE = 0.02
# Seconds between retransmits (see Rmcp._timedout).  A BMC computes a login reply
# at once; a command such as Chassis Control may take it longer (and a repeat of
# one is harmless: IPMI requests carry sequence numbers, and power on/off are
# idempotent anyway).
RETRANSMIT_LOGIN = 0.5
RETRANSMIT = 1.0

# IPMI completion codes (IPMI 2.0 table 5-2).  Those a retry can cure are transient.
COMPLETION_CODES = {
    0xC0: "node busy",
    0xC1: "invalid command",
    0xC2: "command invalid for given LUN",
    0xC3: "timeout while processing command",
    0xC4: "out of space",
    0xC5: "reservation cancelled",
    0xC6: "request data truncated",
    0xC7: "request data length invalid",
    0xC8: "request data field length limit exceeded",
    0xC9: "parameter out of range",
    0xCA: "cannot return number of requested data bytes",
    0xCB: "requested sensor, data, or record not present",
    0xCC: "invalid data field in request",
    0xCD: "command illegal for specified sensor or record type",
    0xCE: "command response could not be provided",
    0xCF: "cannot execute duplicated request",
    0xD0: "SDR repository in update mode",
    0xD1: "device in firmware update mode",
    0xD2: "BMC initialization in progress",
    0xD3: "destination unavailable",
    0xD4: "insufficient privilege level",
    0xD5: "command not supported in present state",
    0xD6: "parameter is illegal because sub-function is disabled",
    0xFF: "unspecified error",
}
TRANSIENT_CODES = frozenset((0xC0, 0xC3, 0xCE, 0xCF, 0xD0, 0xD1, 0xD2, 0xD3, 0xFF))

# Login failures (pyghmi's error texts) that a retry cannot cure.  Anything else
# -- a timeout, "Insufficient resources" (session slots used up, e.g. by agents
# SIGKILLed mid-session), a stale session id -- is worth another attempt.
PERMANENT_LOGIN_ERRORS = (
    "Incorrect password",
    "Unauthorized name",
    "Invalid role",
    "Unauthorized role",
    "Invalid username length",
    "Invalid integrity check value",
    "wrong Kg",
    "No Cipher suite match",
    "Invalid authentication algorithm",
    "Invalid integrity algorithm",
    "Invalid confidentiality algorithm",
    "cipher suite",  # our own negotiation messages
    "while requesting privelege level",  # sic (pyghmi)
)


# Where a login that timed out got stuck, by how far it got (Rmcp.lsaa_stage).
LOGIN_STALLS = (
    "no answer at all (wrong address or port, a firewall, or not an IPMI 2.0 BMC)",
    "no answer to Open Session",
    "no RAKP message 2 after Open Session (some BMCs ignore an unknown user name)",
    "no RAKP message 4",
    "no answer to Set Session Privilege Level",
)


def describe_code(code: int) -> str:
    """``0xd4 (insufficient privilege level)``."""
    return f"0x{code:02x} ({COMPLETION_CODES.get(code, 'unknown completion code')})"


def check_pyghmi() -> None:
    """Refuse a pyghmi whose login state machine lacks the methods we hook."""
    missing = [name for name in ("_open_rmcpplus_request", "_got_rmcp_response", "_got_rakp2",
                                 "_initsession", "_mark_broken", "raw_command", "wait_for_rsp")
               if not hasattr(pyghmi_session.Session, name)]
    if missing:
        raise FenceError(f"unsupported pyghmi (no Session.{', '.join(missing)}); "
                         "tested with 1.5.34 and 1.6.19")


def pump(done: Callable[[], bool], limit: float) -> bool:
    """Run pyghmi's event loop until ``done()`` or ``limit`` seconds; False on time-out.

    Replies, retransmits and pyghmi's own time-outs are all processed inside
    ``wait_for_rsp``, in this thread.  A reply that slipped past pyghmi's I/O
    thread is picked up by the next slice.
    """
    end = time.monotonic() + limit
    while not done():
        left = end - time.monotonic()
        if left <= 0:
            return False
        pyghmi_session.Session.wait_for_rsp(min(left, SLICE))
    return True


class Rmcp(pyghmi_session.Session):  # type: ignore[misc]
    """One RMCP+ login, proposing the cipher suite asked for.

    Created in pyghmi's asynchronous mode (``onlogon``): the constructor sends
    the first packet and returns; :meth:`login` pumps the event loop until the
    login ends.  ``suite`` is 3, 17, or None for "17, else 3".
    """

    # pyghmi's attributes that we read or reset (set by pyghmi's own code)
    lastpayload: Any
    incommand: Any

    def __new__(cls, *args: object, **kwargs: object) -> Rmcp:
        # pyghmi's __new__ returns a cached session for the same credentials;
        # ours is always new, on a socket no other session uses.
        self = object.__new__(cls)
        self.forbidsock = list(pyghmi_session.Session.socketpool)
        return self

    def __init__(self, bmc: str, userid: str, password: str, port: int,
                 kg: bytes | None, privlevel: int, suite: int | None, limit: float) -> None:
        self.lsaa_end = time.monotonic() + limit  # no wait of ours goes past this
        self.lsaa_suite = suite
        self.lsaa_sha1 = suite == SUITE_SHA1  # learnt or asked: propose SHA-1 only
        self.lsaa_result: dict[str, Any] | None = None
        self.lsaa_notes: list[str] = []
        self.lsaa_stage = 0  # how far a login got: an index into LOGIN_STALLS
        super().__init__(bmc, userid, password, port=port, kg=kg, onlogon=self._lsaa_logon,
                         privlevel=privlevel, keepalive=True)

    def _lsaa_logon(self, result: dict[str, Any]) -> None:
        if self.lsaa_result is None:  # 1.6.19 reports a failure twice; keep the first
            self.lsaa_result = result

    def _lsaa_fail(self, reason: str) -> None:
        self.sessioncontext = "FAILED"
        self.onlogon({"error": reason})

    # -- negotiation hooks (pyghmi private API; see the module docstring) --

    def _open_rmcpplus_request(self) -> None:
        # _initsession resets attemptedhash to SHA-256 on every (re)login.
        if self.lsaa_sha1:
            self.attemptedhash = _HASH_OF_SUITE[SUITE_SHA1]
        elif self.lsaa_suite == SUITE_SHA256:
            self.attemptedhash = _HASH_OF_SUITE[SUITE_SHA256]
        elif self.attemptedhash == _HASH_OF_SUITE[SUITE_SHA1]:
            # pyghmi's own fallback: the BMC refused suite 17.  Stay on 3.
            self.lsaa_sha1 = True
            self.lsaa_notes.append("the BMC refused cipher suite 17; using suite 3")
        super()._open_rmcpplus_request()

    def _got_rmcp_response(self, data: bytearray) -> object:
        if len(data) > 1 and data[0] == self.rmcptag and data[1] == 0:
            self.lsaa_stage = max(self.lsaa_stage, 2)
        if (self.lsaa_suite == SUITE_SHA256 and self.sessioncontext == "OPENSESSION"
                and len(data) > 1 and data[0] == self.rmcptag and data[1] != 0):
            # pyghmi would silently fall back to suite 3: cipher=17 means 17.
            self._lsaa_fail(f"the BMC refused cipher suite 17 (RMCP+ status {data[1]})")
            return -9
        return super()._got_rmcp_response(data)

    def _got_rakp2(self, data: bytearray) -> object:
        if (self.sessioncontext == "EXPECTINGRAKP2" and len(data) > 1
                and data[0] == self.rmcptag and data[1] == 0
                and self.attemptedhash == _HASH_OF_SUITE[SUITE_SHA256]
                and len(data) - _RAKP2_HMAC_OFFSET < _SHA256_HMAC_LEN):
            # "OK, suite 17", then an HMAC-SHA1 key exchange code: a pyghmi-based BMC.
            if self.lsaa_suite == SUITE_SHA256:
                self._lsaa_fail("the BMC accepted cipher suite 17 but answered with SHA-1 "
                                "(a pyghmi-based BMC such as VirtualBMC): use cipher=3")
                return -9
            self.lsaa_sha1 = True
            self.lsaa_notes.append("the BMC accepted cipher suite 17 but answered RAKP2 with "
                                   "HMAC-SHA1; logging in again with suite 3")
            self.lastpayload = None  # new tag and session id: the BMC drops the half-open one
            self._open_rmcpplus_request()
            return None
        result = super()._got_rakp2(data)
        if self.sessioncontext == "EXPECTINGRAKP4":
            self.lsaa_stage = max(self.lsaa_stage, 3)
        return result

    def _got_channel_auth_cap(self, response: dict[str, Any]) -> object:
        result = super()._got_channel_auth_cap(response)
        if "error" not in response:
            self.lsaa_stage = max(self.lsaa_stage, 1)
        if self.ipmiversion == 2.0:
            self.lsaa_rmcpplus = True  # this BMC speaks RMCP+: a re-login can skip asking
        return result

    def _relog(self) -> object:
        # pyghmi starts every re-login (after a lost RAKP message) by asking for the
        # channel's authentication capabilities again; the answer cannot have
        # changed, so go straight to Open Session: one round trip fewer per retry.
        # The body is pyghmi's _relog (identical in 1.5.34 and 1.6.19) but for the
        # last call, and _got_channel_auth_cap's two assignments.
        if not getattr(self, "lsaa_rmcpplus", False):
            return super()._relog()
        self.logging = True
        self._initsession()
        self.logontries -= 1
        self.ipmiversion = 2.0
        self._open_rmcpplus_request()
        return None

    def _timedout(self) -> None:
        # pyghmi waits 1 s longer before each retransmit and gives up after a few
        # (2-5, depending on version and phase): under packet loss a login then
        # rarely completes.  Here a datagram is sent again every RETRANSMIT_LOGIN
        # (login) or RETRANSMIT (commands) seconds until *our* limit ends the wait
        # (pump + abandon).  pyghmi adds 1 to ``timeout`` before using it.
        if self.lastpayload and time.monotonic() < self.lsaa_end:
            interval = RETRANSMIT if self.sessioncontext == "ESTABLISHED" else RETRANSMIT_LOGIN
            self.timeout = interval - 1
        super()._timedout()

    def raw_command(self, netfn: int, command: int, bridge_request: object = None,
                    data: Sequence[int] = (), retry: bool = True, delay_xmit: object = None,
                    timeout: object = None, callback: object = None,
                    rslun: int = 0) -> dict[str, Any] | None:
        """pyghmi's raw_command, with the synchronous case waiting our way.

        pyghmi's login sends Set Session Privilege Level synchronously, and its
        wait can sleep through a reply that came back fast (0.5-1.5 s stalls,
        every few logins).  Sent with a callback and waited for with
        :func:`pump` until ``lsaa_end``, the reply is seen within a slice.
        A time-out returns the response pyghmi itself gives for one.
        """
        if callback is not None or not retry:
            return super().raw_command(  # type: ignore[no-any-return]
                netfn, command, bridge_request=bridge_request, data=data, retry=retry,
                delay_xmit=delay_xmit, timeout=timeout, callback=callback, rslun=rslun)
        box: list[dict[str, Any]] = []
        super().raw_command(netfn, command, bridge_request=bridge_request, data=data,
                            retry=retry, delay_xmit=delay_xmit, timeout=timeout,
                            callback=box.append, rslun=rslun)
        try:
            pump(lambda: bool(box) or self.broken, self.lsaa_end - time.monotonic())
        finally:
            self.incommand = False  # raw_command's contract in callback mode
            while self.evq:
                self.evq.popleft().set()
        if box:
            return box[0]
        return {"error": "timeout", "code": 0xFFFF, "netfn": netfn + 1, "command": command,
                "data": bytearray()}

    # -- our interface --

    def call(self, netfn: int, command: int, data: Sequence[int],
             limit: float) -> dict[str, Any]:
        """One request and its response (``code``, ``data``), or ``error`` on time-out."""
        self.lsaa_end = time.monotonic() + limit
        response = self.raw_command(netfn, command, data=list(data))
        return response if response is not None else {"error": "no response"}

    def stall(self) -> str:
        """Where a login that timed out got stuck, for the error message."""
        stage = 4 if self.sessioncontext == "ESTABLISHED" else self.lsaa_stage
        return LOGIN_STALLS[stage]

    @property
    def suite(self) -> int:
        """The cipher suite of the established session."""
        return SUITE_SHA1 if self.currhashlib is hashlib.sha1 else SUITE_SHA256

    def abandon(self) -> None:
        """Forget this session without waiting for anything (never raises).

        Sends Close Session once, unacknowledged, if logged in; a lost close
        only leaves a slot on the BMC until its inactivity timeout.
        """
        try:
            self.incommand = False  # logout would first wait for a stuck command
            self.lastpayload = None
            if self.logged:
                self.logout()
            else:
                self._mark_broken("closed")
        except Exception:  # noqa: S110 - a dying session has nothing left to say
            pass


class Bmc:
    """A logged-in RMCP+ session to one BMC.  Every call takes a time limit in seconds."""

    def __init__(self, session: Rmcp, where: str) -> None:
        self.session = session
        self.where = where  # "host:port", for messages
        self.dead = False

    @classmethod
    def login(cls, host: str, port: int, username: str, password: str, *,
              kg: bytes | None, privilege: str, suite: int | None, limit: float) -> Bmc:
        """Log in; TransientFenceError if a retry may help, FenceError otherwise."""
        check_pyghmi()
        where = f"{host}:{port}"
        try:
            session = Rmcp(host, username, password, port, kg, PRIVILEGES[privilege], suite,
                           limit)
        except Exception as e:  # pyghmi raises for an unresolvable name, among others
            raise TransientFenceError(f"cannot reach BMC {where}: {_text(e)}") from None
        try:
            answered = pump(lambda: session.lsaa_result is not None, limit)
        except Exception as e:
            session.abandon()
            raise TransientFenceError(f"login to BMC {where} failed: {_text(e)}") from None
        if not answered:
            session.abandon()
            raise TransientFenceError(f"BMC {where} did not complete the login within "
                                      f"{limit:g}s: {session.stall()}")
        result = session.lsaa_result or {}
        error = result.get("error")
        if error:
            session.abandon()
            error = str(error)
            if error.startswith("timeout"):
                raise TransientFenceError(f"BMC {where} stopped answering the login: "
                                          f"{session.stall()}")
            if any(p in error for p in PERMANENT_LOGIN_ERRORS):
                raise FenceError(f"login to BMC {where} as {username!r} failed: {error}")
            raise TransientFenceError(f"login to BMC {where} failed: {error}")
        return cls(session, where)

    @property
    def notes(self) -> list[str]:
        """What negotiation had to do (for the debug log)."""
        return list(self.session.lsaa_notes)

    def command(self, netfn: int, cmd: int, data: Sequence[int], limit: float,
                what: str) -> bytes:
        """Send one request; its response data.  Non-zero completion codes raise."""
        if self.dead:
            raise TransientFenceError(f"session to BMC {self.where} was lost")
        try:
            response = self.session.call(netfn, cmd, data, limit)
        except Exception as e:  # "Session no longer connected" and the like
            self.dead = True
            raise TransientFenceError(f"{what}: BMC {self.where}: {_text(e)}") from None
        if "error" in response:
            self.dead = True
            error = "no answer" if response["error"] == "timeout" else response["error"]
            raise TransientFenceError(f"{what}: BMC {self.where}: {error} (within {limit:g}s)")
        code = int(response.get("code", 0))
        if code:
            text = f"{what}: BMC {self.where} answered {describe_code(code)}"
            raise (TransientFenceError if code in TRANSIENT_CODES else FenceError)(text)
        return bytes(response.get("data", b""))

    def power_is_on(self, limit: float) -> bool:
        """Get Chassis Status, byte 1 bit 0: "power is on" (IPMI 2.0 table 28-3)."""
        data = self.command(NETFN_CHASSIS, CMD_GET_CHASSIS_STATUS, (), limit,
                            "get chassis status")
        if not data:
            raise TransientFenceError(f"get chassis status: BMC {self.where} returned no data")
        return bool(data[0] & 0x01)

    def chassis_control(self, action: int, limit: float) -> None:
        """Chassis Control: 0 power down (hard), 1 power up, 2 power cycle."""
        names = {CHASSIS_POWER_DOWN: "power down", CHASSIS_POWER_UP: "power up",
                 CHASSIS_POWER_CYCLE: "power cycle"}
        self.command(NETFN_CHASSIS, CMD_CHASSIS_CONTROL, (action,), limit,
                     f"chassis control ({names.get(action, action)})")

    def close(self) -> None:
        self.session.abandon()


def _text(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text}" if text else type(e).__name__
