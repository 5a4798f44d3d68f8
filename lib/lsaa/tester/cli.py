"""``lsaa-tester``: command line of the conformance harness.

    lsaa-tester ocf [-n NAME] [-o name=value]... [options] AGENT
    lsaa-tester fence [-o name=value]... [--plug PLUG] [options] AGENT

Prints one line per check and a summary; exits 0 only when no check FAILed,
1 when one did, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _pair(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected name=value, got {text!r}")
    return name, value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lsaa-tester",
        description="Check an OCF resource agent or a fence agent against the contracts "
                    "Pacemaker and pcs apply. Runs against the real system: point the agent "
                    "at something disposable.",
    )
    sub = parser.add_subparsers(dest="kind", required=True)

    ocf = sub.add_parser("ocf", help="check an OCF resource agent")
    ocf.add_argument("agent",
                     help="path of the agent, e.g. /usr/lib/ocf/resource.d/heartbeat/Dummy")
    ocf.add_argument("-o", dest="params", action="append", type=_pair, default=[],
                     metavar="NAME=VALUE", help="instance parameter (OCF_RESKEY_NAME)")
    ocf.add_argument("-n", dest="instance", default="lsaa-tester",
                     help="resource id (OCF_RESOURCE_INSTANCE)")
    ocf.add_argument("-t", "--timeout", type=float, default=20.0,
                     help="op timeout in seconds (CRM_meta_timeout, kill deadline)")
    ocf.add_argument("--provider", help="OCF_RESOURCE_PROVIDER (default: parent directory)")
    ocf.add_argument("--type", dest="rtype", help="OCF_RESOURCE_TYPE (default: file name)")
    ocf.add_argument("-e", "--env", dest="env", action="append", type=_pair, default=[],
                     metavar="NAME=VALUE", help="extra environment variable (e.g. HA_debug=1)")
    ocf.add_argument("--invalid", action="append", default=[], metavar="NAME[=VALUE]",
                     help="an invalid configuration to test: override NAME (or remove it "
                          "when no =VALUE); repeat to combine")
    ocf.add_argument("--hostile", action="store_true",
                     help="also give every parameter a hostile value (shell metacharacters)")
    ocf.add_argument("--hang-command", dest="hang_commands", action="append", default=[],
                     metavar="NAME", help="put a never-returning NAME first in PATH and check "
                     "start/monitor give up within --hang-timeout")
    ocf.add_argument("--hang-param", dest="hang_params", action="append", type=_pair,
                     default=[], metavar="NAME=VALUE",
                     help="parameter override for the hang runs; {hang_bin} is a blocking stub")
    ocf.add_argument("--hang-timeout", type=int, default=3000, metavar="MS",
                     help="CRM_meta_timeout of the hang runs, in ms (default 3000)")

    fence = sub.add_parser("fence", help="check a fence agent")
    fence.add_argument("agent", help="path of the fence agent, e.g. /usr/sbin/fence_dummy")
    fence.add_argument("-o", dest="params", action="append", type=_pair, default=[],
                       metavar="NAME=VALUE", help="device parameter (stdin name=value)")
    fence.add_argument("--plug", help="target to power on and off (plug/port)")
    fence.add_argument("--unknown-plug", help="a target that does not exist: status must be 1")
    fence.add_argument("-t", "--timeout", type=float, default=20.0,
                       help="per-action timeout in seconds")
    fence.add_argument("--delay", type=int, default=2,
                       help="delay=N used by the delay check (0 skips it)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the harness; the exit code is 0 only when no check FAILed."""
    args = _parser().parse_args(argv)
    if args.kind == "ocf":
        from lsaa.tester.ocf import run_ocf_checks

        invalid: dict[str, str | None] = {}
        for item in args.invalid:
            name, sep, value = item.partition("=")
            invalid[name] = value if sep else None
        report = run_ocf_checks(
            args.agent,
            dict(args.params),
            timeout=args.timeout,
            instance=args.instance,
            provider=args.provider,
            rtype=args.rtype,
            extra_env=dict(args.env),
            invalid=invalid or None,
            hostile=args.hostile,
            hang_commands=args.hang_commands,
            hang_params=dict(args.hang_params),
            hang_timeout_ms=args.hang_timeout,
        )
    else:
        from lsaa.tester.fence import run_fence_checks

        report = run_fence_checks(
            args.agent,
            dict(args.params),
            plug=args.plug,
            unknown_plug=args.unknown_plug,
            timeout=args.timeout,
            delay=args.delay,
        )
    sys.stdout.write(report.render() + "\n")
    return 0 if report.ok else 1
