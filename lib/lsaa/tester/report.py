"""Check results and the text report the harness prints.

A report is a flat, ordered list of checks. Each check has a stable dotted name
(``probe.after-stop``, ``invalid-config.missing-state.start.exit-reason``) so
that tests can assert *which* rule an agent broke, not just that it broke one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Check statuses (S105: a status word, not a password).
PASS = "PASS"  # noqa: S105
FAIL = "FAIL"
WARN = "WARN"
SKIP = "SKIP"
STATUSES = (PASS, FAIL, WARN, SKIP)


@dataclass(frozen=True)
class Check:
    """One verdict: ``status`` is one of PASS, FAIL, WARN, SKIP."""

    name: str
    status: str
    detail: str = ""

    def line(self) -> str:
        """The report line: status, name and detail, tab-free and single-line."""
        detail = " ".join(self.detail.split())
        return f"{self.status:<4}  {self.name:<44} {detail}".rstrip()


@dataclass
class Report:
    """Ordered checks for one agent. ``ok`` is true when nothing FAILed."""

    subject: str
    checks: list[Check] = field(default_factory=list)

    def add(self, name: str, status: str, detail: str = "") -> Check:
        """Append a check and return it. Raises ValueError for an unknown status."""
        if status not in STATUSES:
            raise ValueError(f"unknown check status {status!r}")
        check = Check(name, status, detail)
        self.checks.append(check)
        return check

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.status == FAIL]

    @property
    def warnings(self) -> list[Check]:
        return [c for c in self.checks if c.status == WARN]

    def failed_names(self) -> list[str]:
        """Names of the FAILed checks, in order (what tests usually assert on)."""
        return [c.name for c in self.failures]

    def get(self, name: str) -> Check | None:
        """The first check called ``name``, or None if it never ran."""
        for check in self.checks:
            if check.name == name:
                return check
        return None

    def status_of(self, name: str) -> str | None:
        """Status of the check called ``name``, or None if it never ran."""
        check = self.get(name)
        return check.status if check else None

    def counts(self) -> dict[str, int]:
        result = dict.fromkeys(STATUSES, 0)
        for check in self.checks:
            result[check.status] += 1
        return result

    def summary(self) -> str:
        counts = self.counts()
        verdict = "OK" if self.ok else "FAILED"
        return (
            f"SUMMARY {verdict}: {self.subject}: {len(self.checks)} checks, "
            f"{counts[PASS]} passed, {counts[FAIL]} failed, "
            f"{counts[WARN]} warnings, {counts[SKIP]} skipped"
        )

    def render(self) -> str:
        """One line per check, then the summary line."""
        return "\n".join([c.line() for c in self.checks] + [self.summary()])
