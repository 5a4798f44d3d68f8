"""open-iscsi's iscsiadm: exit codes, output parsers, node records, sysfs.

Exit codes carry their upstream names (open-iscsi ``include/iscsi_err.h``).

CHAP secrets: ``iscsiadm -m node -o update -n node.session.auth.password -v
<secret>`` is the only command-line way to set one, and it puts the secret in
argv (visible in /proc/<pid>/cmdline to every local user).  iscsiadm keeps a
node's settings in a plain ``name = value`` record file,
``/etc/iscsi/nodes/<target>/<address>,<port>,<tpgt>/<iface>`` (mode 0600),
which it rereads on every login.  :func:`update_record` rewrites the auth lines
of that file in place (atomically, keeping its mode), so the secret never
appears on any command line; ``node.startup`` is kept ``manual`` the same way.
"""

from __future__ import annotations

import os

from lsaa.backends.iscsiname import Portal, portal_of_listing

# include/iscsi_err.h
ISCSI_SUCCESS = 0
ISCSI_ERR = 1
ISCSI_ERR_SESS_NOT_FOUND = 2
ISCSI_ERR_LOGIN = 5
ISCSI_ERR_IDBM = 6
ISCSI_ERR_INVAL = 7
ISCSI_ERR_TRANS_TIMEOUT = 8
ISCSI_ERR_TRANS_NOT_FOUND = 12
ISCSI_ERR_SESS_EXISTS = 15
ISCSI_ERR_ISCSID_NOTCONN = 20
ISCSI_ERR_INITIATOR_TIMEOUT = 18  # (also "cannot reach iscsid" in practice)
ISCSI_ERR_FATAL_LOGIN = 19
ISCSI_ERR_NO_OBJS_FOUND = 21
ISCSI_ERR_LOGIN_AUTH_FAILED = 24
ISCSI_ERR_AGAIN = 29

ISCSIADM = "iscsiadm"
NODES_DIR = "/etc/iscsi/nodes"
SYSFS = "/sys"


class Session:
    """One line of ``iscsiadm -m session``."""

    __slots__ = ("portal", "sid", "target", "tpgt", "transport")

    def __init__(self, transport: str, sid: int, portal: Portal, tpgt: int, target: str) -> None:
        self.transport = transport
        self.sid = sid
        self.portal = portal
        self.tpgt = tpgt
        self.target = target

    def __repr__(self) -> str:
        return f"Session({self.sid}, {self.portal}, {self.target})"


def parse_sessions(text: str) -> list[Session]:
    """Sessions from ``iscsiadm -m session`` (rc 21 and "No active sessions." = none).

    Samples::

        tcp: [3] 192.0.2.20:3260,1 iqn.2024-01.org.example:tgt1 (non-flash)
        tcp: [4] [fe80::1]:3260,1 iqn.2024-01.org.example:tgt1 (non-flash)
    """
    out = []
    for line in text.splitlines():
        words = line.split()
        if len(words) < 4 or not words[0].endswith(":") or not words[1].startswith("["):
            continue
        sid = words[1].strip("[]")
        if not sid.isdigit():
            continue
        try:
            portal, tpgt = portal_of_listing(words[2])
        except ValueError:
            continue
        out.append(Session(words[0][:-1], int(sid), portal, tpgt, words[3]))
    return out


def parse_nodes(text: str) -> list[tuple[Portal, int, str]]:
    """(portal, tpgt, target) from ``iscsiadm -m node`` or a sendtargets discovery.

    Sample::

        192.0.2.20:3260,1 iqn.2024-01.org.example:tgt1
        [fd00::20]:3260,1 iqn.2024-01.org.example:tgt1
    """
    out = []
    for line in text.splitlines():
        words = line.split()
        if len(words) != 2:
            continue
        try:
            portal, tpgt = portal_of_listing(words[0])
        except ValueError:
            continue
        out.append((portal, tpgt, words[1]))
    return out


def find_session(sessions: list[Session], target: str, portal: Portal) -> Session | None:
    for s in sessions:
        if s.target == target and s.portal == portal:
            return s
    return None


def record_files(target: str, portal: Portal, nodes_dir: str = NODES_DIR) -> list[str]:
    """Node record files of ``target`` at ``portal`` (any TPG tag, any iface).

    iscsiadm names the directory ``<address>,<port>,<tpgt>`` with the address
    unbracketed (``fe80::1,3260,1``); old versions used a plain file there.
    """
    base = os.path.join(nodes_dir, target)
    out: list[str] = []
    try:
        entries = sorted(os.listdir(base))
    except OSError:
        return []
    prefix = f"{portal.host},{portal.port},"
    for entry in entries:
        if not entry.startswith(prefix):
            continue
        full = os.path.join(base, entry)
        if os.path.isdir(full):
            out.extend(os.path.join(full, f) for f in sorted(os.listdir(full))
                       if not f.startswith("."))
        elif os.path.isfile(full):
            out.append(full)
    return out


def read_record(path: str) -> dict[str, str]:
    values = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("#") or " = " not in line:
                continue
            key, _, value = line.rstrip("\n").partition(" = ")
            values[key.strip()] = value
    return values


def update_record(path: str, values: dict[str, str]) -> bool:
    """Set ``values`` in record file ``path`` (an empty value removes the line).

    Writes a temporary file with the original's mode (0600) and renames it over
    the record.  Returns whether anything changed.
    """
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.read().splitlines()
    todo = dict(values)
    out = []
    for line in lines:
        key = line.partition(" = ")[0].strip() if " = " in line else None
        if key is not None and key in todo:
            value = todo.pop(key)
            if value:
                out.append(f"{key} = {value}")
            continue
        out.append(line)
    for key, value in todo.items():
        if value:
            # iscsiadm's own files end with "# END RECORD"; keep that last
            at = len(out) - 1 if out and out[-1].startswith("# END RECORD") else len(out)
            out.insert(at, f"{key} = {value}")
    if out == lines:
        return False
    mode = os.stat(path).st_mode & 0o7777
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.lsaa-tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode & 0o600 or 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("\n".join(out) + "\n")
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return True


def session_state(sid: int, sysfs: str = SYSFS) -> str:
    """``LOGGED_IN``, ``FAILED``, ``FREE`` from sysfs, or "" when the session is gone."""
    try:
        with open(f"{sysfs}/class/iscsi_session/session{sid}/state", encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return ""


def session_disks(sid: int, sysfs: str = SYSFS) -> list[tuple[int, str]]:
    """(LUN, block device name) of the disks the session has, from sysfs.

    ``/sys/class/iscsi_session/session3/device`` is ``.../hostN/session3``;
    its disks are ``target*/H:C:T:L/block/<sdX>``.
    """
    import glob

    out = []
    base = f"{sysfs}/class/iscsi_session/session{sid}/device"
    for path in glob.glob(f"{base}/target*/*:*:*:*/block/*"):
        hctl = path.split("/")[-3]
        lun = hctl.rsplit(":", 1)[-1]
        if lun.isdigit():
            out.append((int(lun), os.path.basename(path)))
    return sorted(out)


def by_path_name(portal: Portal, target: str, lun: int) -> str:
    """The udev by-path link name open-iscsi's rules publish for a LUN."""
    return f"/dev/disk/by-path/ip-{portal}-iscsi-{target}-lun-{lun}"
