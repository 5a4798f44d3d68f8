"""Reading what the fencer (stdin) or an administrator (command line) says.

stdin follows FenceAgentAPI: ``name=value`` lines, ``#`` comments, the last
occurrence wins, the value runs from the first ``=`` to the end of the line
(only the newline is stripped: a password may end in a blank), and unknown
names are ignored silently, because every stderr line becomes a WARNING in
Pacemaker's log.  The command line (for debugging) takes ``-o off``,
``--action=off``, ``--action off`` and boolean flags; an unknown option there
is an error, since a human is reading.  Deprecated aliases map to the current
name; ``-`` and ``_`` are the same in names.
"""

from __future__ import annotations

TYPE_CHECKING = False  # see lsaa.errors
if TYPE_CHECKING:
    from collections.abc import Sequence

    from lsaa.fencing.spec import FenceSpec, Option


class UsageError(ValueError):
    """The command line is malformed."""


def _index(spec: FenceSpec) -> dict[str, Option]:
    names: dict[str, Option] = {}
    for o in spec.options:
        for n in (o.name, *o.aliases):
            names[n] = o
    return names


def parse_stdin(spec: FenceSpec, data: bytes) -> tuple[dict[str, str], list[str]]:
    """Raw values by canonical name, and the unknown names seen (for a debug log)."""
    names = _index(spec)
    raw: dict[str, str] = {}
    via_alias: dict[str, str] = {}
    unknown: list[str] = []
    # surrogateescape keeps undecodable bytes, so validation can name the option
    text = data.decode("utf-8", "surrogateescape")
    for full in text.split("\n"):
        line = full.rstrip("\r")
        if not line.strip() or line.lstrip().startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        key = key.strip().replace("-", "_")
        opt = names.get(key)
        if opt is None:
            unknown.append(key)
            continue
        if key != opt.name:
            via_alias[opt.name] = value
        else:
            raw[opt.name] = value
    for name, value in via_alias.items():
        raw.setdefault(name, value)  # the current name wins over its deprecated alias
    return raw, unknown


def parse_argv(spec: FenceSpec, argv: Sequence[str]) -> dict[str, str]:
    """Raw values by canonical name from ``argv[1:]``; UsageError on bad usage."""
    longs: dict[str, Option] = {}
    shorts: dict[str, Option] = {}
    for o in spec.options:
        for n in (o.name, *o.aliases):
            longs[n.replace("_", "-")] = o
        if o.short:
            shorts[o.short] = o
    raw: dict[str, str] = {}
    args = list(argv[1:])
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            opt = longs.get(name.replace("_", "-"))
            if opt is None:
                raise UsageError(f"unknown option --{name}")
        elif arg.startswith("-") and len(arg) >= 2:
            opt = shorts.get(arg[1])
            if opt is None:
                raise UsageError(f"unknown option -{arg[1]}")
            value = arg[2:]
            eq = "=" if value else ""
        else:
            raise UsageError(f"unexpected argument {arg!r}")
        if opt.type == "boolean":
            raw[opt.name] = value if eq else "1"
            continue
        if not eq:
            if i >= len(args):
                raise UsageError(f"option {arg} needs a value")
            value = args[i]
            i += 1
        raw[opt.name] = value
    return raw


def typed(
    spec: FenceSpec, raw: dict[str, str], optional: Sequence[str] = ()
) -> tuple[dict[str, object], list[str]]:
    """Typed values for every option (defaults filled in) and every problem found.

    Options named in ``optional`` are not required this time (``plug`` for
    actions that address the device rather than a target).
    """
    values: dict[str, object] = {}
    problems: list[str] = []
    for o in spec.options:
        given = raw.get(o.name) or None  # "name=" on stdin means unset
        if given is None and o.required and o.name not in optional:
            problems.append(f"{o.name}: required option is not set")
        text = given if given is not None else o.default
        if text is None:
            values[o.name] = None
            continue
        try:
            values[o.name] = o.parse(text)
        except ValueError as e:
            problems.append(f"{o.name}: {e}")
            values[o.name] = None
    return values, problems
