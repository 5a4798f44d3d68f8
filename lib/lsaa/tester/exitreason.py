"""Find and judge the ``ocf-exit-reason:`` line of an agent's stderr.

Pacemaker (``parse_exit_reason_from_stderr``) takes the text after the LAST
occurrence of the prefix up to the end of that line, and 2.x to 3.0.1 truncate it
to 128 characters (``EXIT_REASON_MAX_LEN``). So a reason must be one line of at
most 128 characters; anything the agent meant to say on following lines is lost.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_PREFIX = "ocf-exit-reason:"
MAX_LEN = 128

# Lines an agent may legitimately write after its reason: log records.
# ocf_log's stderr form is "Dummy(rsc)[123]: ERROR: text"; Python's logging
# default is "ERROR:root:text"; many agents print "ERROR: text" or a
# timestamped "2024-01-01 12:00:00,000 ERROR: text".
_LOG_LINE = re.compile(
    r"""^(?:
        \S+\(\S*\)\[\d+\]:                                   # ocf_log tag
      | (?:\S+\s+){0,3}?(?:DEBUG|INFO|NOTICE|WARNING|WARN|ERROR|ERR|CRIT|CRITICAL)\b[:\s]
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class ExitReason:
    """The last exit reason of a run and the stderr lines that follow it."""

    text: str
    trailing: tuple[str, ...]


def find(stderr: str, prefix: str = DEFAULT_PREFIX) -> ExitReason | None:
    """Return the last exit reason in ``stderr``, or None if there is none.

    >>> find("x\\nocf-exit-reason:a\\nocf-exit-reason:b\\nmore\\n")
    ExitReason(text='b', trailing=('more',))
    """
    lines = stderr.splitlines()
    for index in range(len(lines) - 1, -1, -1):
        position = lines[index].find(prefix)
        if position >= 0:
            text = lines[index][position + len(prefix):]
            return ExitReason(text, tuple(lines[index + 1:]))
    return None


def problems(reason: ExitReason) -> list[str]:
    """Everything wrong with a reason that exists; empty when it is fine."""
    found = []
    if not reason.text.strip():
        found.append("the exit reason is empty")
    if len(reason.text) > MAX_LEN:
        found.append(
            f"the exit reason is {len(reason.text)} characters; Pacemaker 2.x keeps {MAX_LEN}"
        )
    continuation = [line for line in reason.trailing
                    if line.strip() and not _LOG_LINE.match(line)]
    if continuation:
        found.append(
            f"{len(continuation)} non-log stderr line(s) follow the exit reason "
            f"(first: {continuation[0].strip()[:60]!r}); Pacemaker keeps only the reason's "
            "first line, so a multi-line reason loses its end"
        )
    return found
