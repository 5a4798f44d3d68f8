"""Logging the way cluster administrators already read it.

Follows resource-agents' conventions: syslog under ``HA_LOGFACILITY`` (default
``daemon``; ``none`` turns it off) with the tag ``<type>(<instance>)[<pid>]``,
every message also appended to ``HA_LOGFILE``, debug messages only when
``HA_debug`` (or ``PCMK_debug``) is set to something other than ``0``/``no``/
empty, and then also to ``HA_DEBUGLOG``.  ``OCF_TRACE_RA`` turns on debug and
writes it to ``OCF_TRACE_FILE`` (``crm_resource -VV`` sets ``/dev/stderr``).
Messages go to stderr only when it is a terminal: under Pacemaker, stderr is
reserved for the exit reason.

Every message passes through the secret mask first; the ``syslog`` module is
imported on the first message, so a quiet monitor costs nothing here.
"""

from __future__ import annotations

import os
import sys
import time

from lsaa.errors import mask

TYPE_CHECKING = False  # see lsaa.errors
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

_OFF = ("", "0", "no", "false", "off", "n")
_FACILITIES = (
    "kern user mail daemon auth syslog lpr news uucp cron authpriv local0 local1 local2 "
    "local3 local4 local5 local6 local7"
).split()


def is_on(value: str | None) -> bool:
    """True for a set HA_debug-style flag; compared as strings (ocf.py got this wrong)."""
    return value is not None and value.strip().lower() not in _OFF


class Log:
    """A logger bound to one agent run.  Never raises: logging must not fail an action."""

    LEVELS = ("debug", "info", "notice", "warning", "error")

    def __init__(self, tag: str, env: Mapping[str, str], secrets: Iterable[str] = ()) -> None:
        self.tag = tag
        self.secrets = [s for s in secrets if s]
        self.trace = is_on(env.get("OCF_TRACE_RA"))
        self.debug_on = self.trace or is_on(env.get("HA_debug")) or is_on(env.get("PCMK_debug"))
        facility = env.get("HA_LOGFACILITY", "daemon").strip().lower()
        self.facility = facility if facility in _FACILITIES else None
        self.logfile = env.get("HA_LOGFILE") or None
        self.debuglog = env.get("HA_DEBUGLOG") or None
        self.tracefile = (env.get("OCF_TRACE_FILE") or "/dev/stderr") if self.trace else None
        self._syslog_open = False
        self.lines: list[str] = []  # what this run logged, for tests and the exit path

    def add_secret(self, secret: str) -> None:
        if secret:
            self.secrets.append(secret)

    def debug(self, msg: str) -> None:
        if self.debug_on:
            self._emit("debug", msg)

    def info(self, msg: str) -> None:
        self._emit("info", msg)

    def notice(self, msg: str) -> None:
        self._emit("notice", msg)

    def warning(self, msg: str) -> None:
        self._emit("warning", msg)

    def error(self, msg: str) -> None:
        self._emit("error", msg)

    def _emit(self, level: str, msg: str) -> None:
        # Mask before folding blanks: a password with blanks in it must not
        # survive in folded form.
        text = " ".join(mask(str(msg), self.secrets).split())
        stamp = time.strftime("%b %d %H:%M:%S")
        line = f"{stamp} {self.tag}[{os.getpid()}]: {level.upper()}: {text}\n"
        self.lines.append(line)
        try:
            self._syslog(level, f"{level.upper()}: {text}")
        except (OSError, ValueError):
            pass
        targets = []
        if self.logfile:
            targets.append(self.logfile)
        if level == "debug" and self.debuglog and self.debuglog != self.logfile:
            targets.append(self.debuglog)
        if self.tracefile and level == "debug":
            targets.append(self.tracefile)
        for path in targets:
            try:
                with open(path, "a", encoding="utf-8", errors="replace") as f:
                    f.write(line)
            except OSError:
                pass
        if not self.tracefile and sys.stderr is not None and sys.stderr.isatty():
            sys.stderr.write(line)

    def _syslog(self, level: str, text: str) -> None:
        if self.facility is None:
            return
        import syslog

        if not self._syslog_open:
            fac = getattr(syslog, "LOG_" + self.facility.upper(), syslog.LOG_DAEMON)
            syslog.openlog(self.tag, syslog.LOG_PID, fac)
            self._syslog_open = True
        prio = {
            "debug": syslog.LOG_DEBUG,
            "info": syslog.LOG_INFO,
            "notice": syslog.LOG_NOTICE,
            "warning": syslog.LOG_WARNING,
            "error": syslog.LOG_ERR,
        }[level]
        syslog.syslog(prio, text)
