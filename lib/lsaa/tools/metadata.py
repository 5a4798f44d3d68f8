"""``python -m lsaa.tools.metadata write|check DIR``: the golden meta-data files.

``write`` renders every agent's meta-data (OCF and fence) into DIR/<name>.xml;
``check`` fails, naming each file, when DIR differs from what the code renders.
"""

from __future__ import annotations

import importlib
import os
import sys

from lsaa.agents import AGENTS


def rendered() -> dict[str, bytes]:
    """File name -> meta-data bytes for every agent, built from the specs."""
    from lsaa.ocf.metadata import build_xml

    out: dict[str, bytes] = {}
    for module in AGENTS.values():
        spec = importlib.import_module(module).SPEC
        out[spec.name + ".xml"] = build_xml(spec)
    try:
        from lsaa.fence_agents import FENCE_AGENTS
        from lsaa.fencing.metadata import build_xml as build_fence_xml
    except ImportError:
        return out
    for module in FENCE_AGENTS.values():
        spec = importlib.import_module(module).SPEC
        out[spec.name + ".xml"] = build_fence_xml(spec)
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[1] not in ("write", "check"):
        sys.stderr.write("usage: python -m lsaa.tools.metadata write|check DIR\n")
        return 2
    directory = argv[2]
    files = rendered()
    if argv[1] == "write":
        os.makedirs(directory, exist_ok=True)
        for name, data in files.items():
            with open(os.path.join(directory, name), "wb") as f:
                f.write(data)
        print(f"wrote {len(files)} meta-data files to {directory}")
        return 0
    bad = []
    for name, data in files.items():
        try:
            with open(os.path.join(directory, name), "rb") as f:
                if f.read() != data:
                    bad.append(f"{name}: differs from the code (run make metadata)")
        except FileNotFoundError:
            bad.append(f"{name}: missing (run make metadata)")
    extra = set(os.listdir(directory)) - set(files) if os.path.isdir(directory) else set()
    bad += [f"{name}: no agent renders it" for name in sorted(extra) if name.endswith(".xml")]
    for line in bad:
        print(line)
    if not bad:
        print(f"{len(files)} meta-data files match the code")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
