"""Whole-process timings, side by side.

Every command of a comparison runs in the same rounds, interleaved, so load
from the rest of the machine hits lsaa and its anchor alike; the result is the
median wall time per command.  Ratios between commands of one run are the only
numbers the benchmarks report as results.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from collections.abc import Mapping, Sequence
from typing import NamedTuple


class Cmd(NamedTuple):
    argv: Sequence[str]
    env: Mapping[str, str] | None = None
    stdin: bytes | None = None
    ok: tuple[int, ...] = (0,)


class Row(NamedTuple):
    """One line of the benchmark table: lsaa against its anchor."""

    name: str
    lsaa_s: float
    anchor_name: str
    anchor_s: float
    target: float | None  # the ratio lsaa/anchor must not exceed; None: shown only

    @property
    def ratio(self) -> float:
        return self.lsaa_s / self.anchor_s if self.anchor_s else float("inf")


def once(cmd: Cmd) -> float:
    env = dict(cmd.env) if cmd.env is not None else dict(os.environ)
    started = time.perf_counter()
    res = subprocess.run(list(cmd.argv), env=env, input=cmd.stdin, capture_output=True,
                         check=False, timeout=120)
    elapsed = time.perf_counter() - started
    if res.returncode not in cmd.ok:
        raise RuntimeError(f"{' '.join(cmd.argv)} exited {res.returncode}: "
                           f"{res.stderr.decode(errors='replace')[-300:]}")
    return elapsed


def medians(cmds: Mapping[str, Cmd], rounds: int = 30, warmup: int = 3) -> dict[str, float]:
    """Median seconds per named command, run interleaved for ``rounds`` rounds."""
    samples: dict[str, list[float]] = {name: [] for name in cmds}
    for i in range(warmup + rounds):
        for name, cmd in cmds.items():
            t = once(cmd)
            if i >= warmup:
                samples[name].append(t)
    return {name: statistics.median(ts) for name, ts in samples.items()}
