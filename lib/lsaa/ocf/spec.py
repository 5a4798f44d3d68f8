"""An agent's interface, declared once as data.

From an :class:`AgentSpec` the framework derives the OCF 1.1 meta-data, the
typed parsing of ``OCF_RESKEY_*`` values, validation that reports every problem
at once, and the man page.  Nothing here imports more than the standard
library's core, because every agent run (meta-data included) loads it.
"""

from __future__ import annotations

TYPE_CHECKING = False  # see lsaa.errors
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence
    from typing import Any

    # str for string/select parameters, the parsed int/bool for the others
    Checker = Callable[[Any], object]

PARAM_TYPES = ("string", "integer", "boolean", "select")
TRUE_WORDS = ("1", "yes", "true", "on", "y")
FALSE_WORDS = ("0", "no", "false", "off", "n")
MAX_VALUE_LENGTH = 1 << 16


def parse_bool(raw: str) -> bool:
    """OCF boolean: the words ocf-shellfuncs' ocf_is_true accepts, case-insensitively."""
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError(f"{raw!r} is not a boolean (use 1/0, yes/no, true/false)")


def check_text(raw: str, limit: int) -> None:
    """Raise ValueError unless ``raw`` is UTF-8 text of at most ``limit`` characters.

    Environment values and fencer stdin arrive undecoded: bytes that are not
    UTF-8 reach us as surrogates, and are refused here rather than deeper down.
    """
    if len(raw) > limit:
        raise ValueError(f"value is {len(raw)} characters long (at most {limit})")
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("value is not valid UTF-8") from None
    if "\x00" in raw:
        raise ValueError("value contains a NUL character")


def absolute_path(raw: str) -> str:
    """A ``Param(check=...)`` for parameters that must be absolute paths."""
    if not raw.startswith("/"):
        raise ValueError(f"{raw!r} is not an absolute path")
    return raw


class Param:
    """One instance attribute (``OCF_RESKEY_<name>``).

    ``default`` is written as the administrator would type it; it goes into the
    meta-data verbatim and is parsed exactly like a given value, so the two
    cannot drift.  ``check`` converts and validates a raw string (raising
    ValueError with a message that makes sense after "<name>: ").  ``secret``
    values are masked in every log line and exit reason.
    """

    __slots__ = (
        "advanced",
        "check",
        "choices",
        "default",
        "deprecated",
        "longdesc",
        "maximum",
        "minimum",
        "name",
        "reloadable",
        "replaced_by",
        "required",
        "secret",
        "shortdesc",
        "type",
        "unique_group",
    )

    def __init__(
        self,
        name: str,
        shortdesc: str,
        longdesc: str = "",
        *,
        type: str = "string",
        required: bool = False,
        default: str | None = None,
        choices: Sequence[str] = (),
        unique_group: str | None = None,
        reloadable: bool = False,
        deprecated: str | None = None,
        replaced_by: str | None = None,
        check: Checker | None = None,
        minimum: int | None = None,
        maximum: int | None = None,
        secret: bool = False,
        advanced: bool = False,
    ) -> None:
        if choices:
            type = "select"
        if type not in PARAM_TYPES:
            raise ValueError(f"parameter {name}: unknown type {type}")
        self.name = name
        self.shortdesc = shortdesc
        self.longdesc = longdesc or shortdesc
        self.type = type
        self.required = required
        self.default = default
        self.choices = tuple(choices)
        self.unique_group = unique_group
        self.reloadable = reloadable
        self.deprecated = deprecated
        self.replaced_by = replaced_by
        self.check = check
        self.minimum = minimum
        self.maximum = maximum
        self.secret = secret
        self.advanced = advanced

    def parse(self, raw: str) -> object:
        """The typed value of ``raw``; ValueError says what is wrong with it."""
        check_text(raw, MAX_VALUE_LENGTH)
        value: object
        if self.type == "boolean":
            value = parse_bool(raw)
        elif self.type == "integer":
            try:
                number = int(raw.strip(), 10)
            except ValueError:
                raise ValueError(f"{_show(raw)} is not an integer") from None
            if self.minimum is not None and number < self.minimum:
                raise ValueError(f"{number} is below the minimum {self.minimum}")
            if self.maximum is not None and number > self.maximum:
                raise ValueError(f"{number} is above the maximum {self.maximum}")
            value = number
        elif self.type == "select":
            if raw not in self.choices:
                raise ValueError(f"{_show(raw)} is not one of {', '.join(self.choices)}")
            value = raw
        else:
            value = raw
        if self.check is not None:
            value = self.check(value)
        return value


def _show(raw: str, limit: int = 40) -> str:
    """A value quoted for a message, shortened so an exit reason stays readable."""
    text = raw if len(raw) <= limit else raw[: limit - 3] + "..."
    return repr(text)


class Action:
    """One advertised action with its advised timeout (seconds) and schedule."""

    __slots__ = ("depth", "interval", "name", "role", "start_delay", "timeout")

    def __init__(
        self,
        name: str,
        timeout: int,
        *,
        interval: int | None = None,
        depth: int | None = None,
        role: str | None = None,
        start_delay: int | None = None,
    ) -> None:
        if role not in (None, "Promoted", "Unpromoted"):
            raise ValueError(f"action {name}: role must be Promoted or Unpromoted")
        self.name = name
        self.timeout = timeout
        self.interval = interval
        self.depth = depth
        self.role = role
        self.start_delay = start_delay


class AgentSpec:
    """Everything the outside world can know about an agent."""

    __slots__ = ("actions", "longdesc", "name", "params", "shortdesc", "version")

    def __init__(
        self,
        name: str,
        shortdesc: str,
        longdesc: str,
        params: Iterable[Param],
        actions: Iterable[Action],
        version: str | None = None,
    ) -> None:
        from lsaa import __version__

        self.name = name
        self.shortdesc = shortdesc
        self.longdesc = longdesc
        self.params = tuple(params)
        self.actions = tuple(actions)
        self.version = version or __version__
        names = [p.name for p in self.params]
        if len(set(names)) != len(names):
            raise ValueError(f"agent {name}: duplicate parameter names")

    @property
    def action_names(self) -> frozenset[str]:
        return frozenset(a.name for a in self.actions)

    @property
    def promotable(self) -> bool:
        return {"promote", "demote"} <= self.action_names

    def secret_values(self, env: Mapping[str, str]) -> list[str]:
        """Raw values of secret parameters present in ``env``, for masking."""
        return [env["OCF_RESKEY_" + p.name] for p in self.params
                if p.secret and env.get("OCF_RESKEY_" + p.name)]

    def parse(self, env: Mapping[str, str]) -> tuple[dict[str, object], list[str]]:
        """Typed values of every declared parameter, and every problem found.

        An unset or empty value takes the default (or None).  A deprecated
        parameter fills in for its replacement when only the old one is set.
        Problems read ``"<name>: <what is wrong>"``; nothing stops at the first.
        """
        values: dict[str, object] = {}
        problems: list[str] = []
        raw_of: dict[str, str] = {}
        for p in self.params:
            found = env.get("OCF_RESKEY_" + p.name, "")
            if found != "":
                raw_of[p.name] = found
        for p in self.params:
            if p.deprecated and p.replaced_by and p.name in raw_of and p.replaced_by not in raw_of:
                raw_of[p.replaced_by] = raw_of[p.name]
        for p in self.params:
            given = raw_of.get(p.name)
            if given is None and p.required:
                problems.append(f"{p.name}: required parameter is not set")
            raw = given if given is not None else p.default
            if raw is None:
                values[p.name] = None
                continue
            try:
                values[p.name] = p.parse(raw)
            except ValueError as e:
                problems.append(f"{p.name}: {e}")
                values[p.name] = None
        return values, problems
