"""lvm2 and device-mapper: pure parsers for what ocf:lsaa:lvm-sysid reads.

Everything here is a pure function of a command's output (or of names read
from sysfs); the agent runs the commands.  Samples are lvm2 2.03.16 in the
kernel lab (tests/fixtures/lvm/, recorded by tests/lab/capture_storage.py).

``vgs --foreign --reportformat json -o vg_name,vg_systemid,... VG``::

      {
          "report": [
              {
                  "vg": [
                      {"vg_name":"vgha", "vg_systemid":"node1", "vg_lock_type":"",
                       "vg_missing_pv_count":"0", "lv_count":"2", "vg_autoactivation":"enabled"}
                  ]
              }
          ]
      }

All values are strings; ``vg_autoactivation`` is ``"enabled"`` or ``""`` (disabled).
A missing VG exits 5 with an empty ``"vg": []`` on stdout.  Exit code 5
(ECMD_FAILED) means foreign, not found, "already set" and "declined" alike:
re-read the state to tell them apart.

``lvm systemid``: ``  system ID: node1`` (empty after the colon when
``global/system_id_source`` is unset or ``none``).

``lvmconfig activation/volume_list``: ``volume_list="vgx"`` for one entry,
``volume_list=["a","b"]`` for several; exit 5 "Configuration node ... not found"
when unset.

device-mapper names: ``<vg>-<lv>[-<layer>]`` with every ``-`` inside a VG or LV
name doubled (``my-vg``/``lv-0`` -> ``my--vg-lv--0``); read from
``/sys/block/dm-*/dm/name`` without any command.
"""

from __future__ import annotations

import json
import re

LVM_ECMD_FAILED = 5  # lvm2 errors.h: ECMD_FAILED (also "not found", "foreign", "already")

# lvm2's name rules (lib/misc/lvm-string.c: _validate_name): [a-zA-Z0-9+_.-], not
# starting with '-', not "." or "..", at most 127 characters.
_NAME = re.compile(r"[A-Za-z0-9+_.][A-Za-z0-9+_.-]{0,126}")
_RESERVED_LV_PREFIXES = ("snapshot", "pvmove")


def check_name(name: str, what: str = "name") -> str:
    """``name`` if it is a valid VG/LV name, else ValueError."""
    if not _NAME.fullmatch(name) or name in (".", ".."):
        raise ValueError(f"{name!r} is not a valid LVM {what} "
                         "(letters, digits, + _ . -, not starting with -)")
    return name


def _report(stdout: str, kind: str) -> list[dict[str, str]]:
    try:
        data = json.loads(stdout) if stdout.strip() else {"report": [{kind: []}]}
        rows: list[dict[str, str]] = []
        for section in data["report"]:
            rows.extend(section.get(kind, []))
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"unexpected {kind}s JSON output: {e}") from None
    return rows


def parse_vgs(stdout: str) -> list[dict[str, str]]:
    """Rows of ``vgs --reportformat json``; ValueError when it is not that format."""
    return _report(stdout, "vg")


def parse_lvs(stdout: str) -> list[dict[str, str]]:
    """Rows of ``lvs --reportformat json``."""
    return _report(stdout, "lv")


def parse_systemid(stdout: str) -> str:
    """The local system ID from ``lvm systemid`` ("" when there is none)."""
    for line in stdout.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "system ID":
            return value.strip()
    return ""


def parse_config_list(stdout: str, key: str) -> list[str] | None:
    """The value of list setting ``key`` from ``lvmconfig``'s output (None if absent)."""
    for line in stdout.splitlines():
        name, sep, value = line.strip().partition("=")
        if sep and name.strip() == key:
            value = value.strip()
            if value.startswith("["):
                return re.findall(r'"((?:[^"\\]|\\.)*)"', value)
            return [value.strip('"')]
    return None


def volume_list_allows(entries: list[str], vg: str, lvs: list[str]) -> bool | None:
    """Whether ``activation/volume_list`` lets this VG's LVs activate.

    True: an entry names the VG or every LV; False: nothing can match; None: only
    tag entries (``@tag``, ``@*``) could match, which depends on metadata tags.
    """
    if vg in entries:
        return True
    if lvs and all(f"{vg}/{lv}" in entries for lv in lvs):
        return True
    if any(e.startswith("@") for e in entries):
        return None
    return False


def dm_mangle(name: str) -> str:
    """A VG or LV name as it appears inside a device-mapper name."""
    return name.replace("-", "--")


def split_dm_name(dm_name: str) -> tuple[str, str, str] | None:
    """(vg, lv, layer) from a dm name ``vg-lv[-layer]``; None for non-LVM names."""
    parts: list[str] = []
    cur: list[str] = []
    i = 0
    while i < len(dm_name):
        c = dm_name[i]
        if c == "-":
            if i + 1 < len(dm_name) and dm_name[i + 1] == "-":
                cur.append("-")
                i += 2
                continue
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    parts.append("".join(cur))
    if len(parts) < 2 or not parts[0] or not parts[1]:
        return None
    return parts[0], parts[1], "-".join(parts[2:])


def active_lvs(dm_names: list[str], vg: str) -> dict[str, list[str]]:
    """LV name -> its dm devices (top-level and layers) for VG ``vg``."""
    out: dict[str, list[str]] = {}
    for name in dm_names:
        split = split_dm_name(name)
        if split is not None and split[0] == vg:
            out.setdefault(split[1], []).append(name)
    return out


def parse_dmsetup_info(stdout: str) -> dict[str, int]:
    """``dmsetup info -c --noheadings -o name,open``: dm name -> open count."""
    out: dict[str, int] = {}
    for line in stdout.splitlines():
        name, sep, count = line.strip().rpartition(":")
        if sep and name and count.strip().isdigit():
            out[name] = int(count)
    return out
