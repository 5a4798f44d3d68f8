"""``make bench``: every bench/bench_*.py module's rows in one table.

Each row is lsaa against its anchor, measured side by side in this run; the
verdict compares the ratio with the target the issue set.  ``--only NAME``
runs the modules whose name contains NAME.
"""

from __future__ import annotations

import argparse
import glob
import importlib
import os
import sys
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from timing import Row  # noqa: E402


def print_table(rows: list[Row]) -> int:
    """Print rows; return how many missed their target."""
    missed = 0
    width = max([len(r.name) for r in rows] + [10])
    print(f"{'benchmark':{width}}  {'lsaa':>9}  {'anchor':>9}  {'ratio':>6}  target  "
          "verdict  anchor")
    for r in rows:
        verdict = "-"
        if r.target is not None:
            verdict = "ok" if r.ratio <= r.target else "MISSED"
            missed += verdict == "MISSED"
        target = f"{r.target:.2f}" if r.target is not None else "  -"
        print(f"{r.name:{width}}  {r.lsaa_s * 1000:7.1f}ms  {r.anchor_s * 1000:7.1f}ms  "
              f"{r.ratio:6.2f}  {target:>6}  {verdict:7}  {r.anchor_name}")
    return missed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--only", default="", help="run only modules whose name contains this")
    args = ap.parse_args()
    rows: list[Row] = []
    failed = []
    for path in sorted(glob.glob(os.path.join(HERE, "bench_*.py"))):
        name = os.path.basename(path)[:-3]
        if args.only not in name:
            continue
        print(f"# {name} ...", file=sys.stderr, flush=True)
        try:
            rows += [Row(*r) for r in importlib.import_module(name).rows()]
        except Exception:  # one broken peer must not hide the other measurements
            traceback.print_exc()
            failed.append(name)
    missed = print_table(rows)
    print(f"\n{len(rows)} rows, {missed} missed their target"
          + (f"; could not run: {', '.join(failed)}" if failed else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
