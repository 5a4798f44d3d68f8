"""tgt (the userspace SCSI target daemon): what tgtd shows, parsed; where it listens.

tgtd keeps all state in the daemon and answers management requests on the
unix socket ``/var/run/tgtd/socket.<control port>``.  lsaa sends them itself
(lsaa.backends.tgtd_socket, no tgtadm process); the answers are the text
``tgtadm`` would print, parsed here.  Samples in tests/fixtures/tgtadm.
"""

from __future__ import annotations

import os

from lsaa.backends.iscsiname import Portal, portal_of_listing


class TgtLun:
    """One ``LUN: N`` block of ``--op show``."""

    __slots__ = ("lun", "path", "readonly", "scsi_id", "scsi_sn", "type")

    def __init__(self, lun: int) -> None:
        self.lun = lun
        self.type = ""
        self.scsi_id = ""
        self.scsi_sn = ""
        self.path = ""
        self.readonly = False


class TgtTarget:
    """One ``Target N: <iqn>`` block of ``--op show``."""

    __slots__ = ("acls", "connections", "iqn", "luns", "outgoing", "state", "tid", "users")

    def __init__(self, tid: int, iqn: str) -> None:
        self.tid = tid
        self.iqn = iqn
        self.state = ""
        self.luns: dict[int, TgtLun] = {}
        self.users: list[str] = []       # incoming accounts
        self.outgoing: list[str] = []    # outgoing (mutual) accounts
        self.acls: list[str] = []        # addresses, "ALL" or initiator names
        # (I_T nexus id, initiator name, connection id) per connection
        self.connections: list[tuple[int, str, int]] = []


def parse_show(text: str) -> dict[int, TgtTarget]:  # noqa: PLR0912, PLR0915 - one pass
    """Targets by tid from ``tgtadm --lld iscsi --mode target --op show``.

    Sample (indentation is significant: 0 target, 4 section, 8 item, 12 field)::

        Target 1: iqn.2024-01.org.example:tgt1
            System information:
                State: ready
            I_T nexus information:
                I_T nexus: 2
                    Initiator: iqn.1994-05.com.example:client1 alias: none
                    Connection: 0
            LUN information:
                LUN: 1
                    SCSI SN: 1a2b3c4d
                    Backing store path: /srv/lun1.img
            Account information:
                chapuser
                mutualu (outgoing)
            ACL information:
                iqn.1994-05.com.example:client1
    """
    targets: dict[int, TgtTarget] = {}
    cur: TgtTarget | None = None
    section = ""
    lun: TgtLun | None = None
    nexus, initiator = -1, ""
    for line in text.splitlines():
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip(" "))
        body = line.strip()
        if indent == 0:
            cur, section, lun = None, "", None
            if body.startswith("Target ") and ":" in body:
                head, _, iqn = body.partition(": ")
                tid = head[len("Target "):]
                if tid.isdigit():
                    cur = TgtTarget(int(tid), iqn.strip())
                    targets[cur.tid] = cur
            continue
        if cur is None:
            continue
        if indent == 4:
            section, lun = body, None
            continue
        key, _, value = body.partition(": ")
        if section == "System information:" and key == "State":
            cur.state = value
        elif section == "I_T nexus information:":
            if key == "I_T nexus" and value.isdigit():
                nexus, initiator = int(value), ""
            elif key == "Initiator":
                initiator = value.split(" alias:")[0].strip()
            elif key == "Connection" and value.isdigit():
                cur.connections.append((nexus, initiator, int(value)))
        elif section == "LUN information:":
            if key == "LUN" and value.isdigit():
                lun = TgtLun(int(value))
                cur.luns[lun.lun] = lun
            elif lun is not None:
                if key == "Type":
                    lun.type = value
                elif key == "SCSI ID":
                    lun.scsi_id = value
                elif key == "SCSI SN":
                    lun.scsi_sn = value
                elif key == "Backing store path":
                    lun.path = value
                elif key == "Readonly":
                    lun.readonly = value == "Yes"
        elif section == "Account information:":
            if body.endswith(" (outgoing)"):
                cur.outgoing.append(body[: -len(" (outgoing)")])
            else:
                cur.users.append(body)
        elif section == "ACL information:":
            cur.acls.append(body)
    return targets


def parse_portals(text: str) -> list[Portal]:
    """Portals from ``tgtadm --lld iscsi --mode portal --op show``.

    Sample::

        Portal: [::1]:3261,1
        Portal: 127.0.0.1:3260,1
    """
    out = []
    for line in text.splitlines():
        if line.startswith("Portal: "):
            try:
                out.append(portal_of_listing(line[len("Portal: "):].strip())[0])
            except ValueError:
                continue
    return out


def parse_accounts(text: str) -> list[str]:
    """Account names from ``--mode account --op show``::

        Account list:
            mutualu
            chapuser
    """
    return [ln.strip() for ln in text.splitlines()[1:] if ln.startswith(" ") and ln.strip()]


def find_by_iqn(targets: dict[int, TgtTarget], iqn: str) -> TgtTarget | None:
    for t in targets.values():
        if t.iqn == iqn:
            return t
    return None


def socket_path(control_port: int = 0) -> str:
    return f"/var/run/tgtd/socket.{control_port}"


def detect_implementation(control_port: int = 0) -> str:
    """``lio`` when configfs has a target directory, ``tgt`` when tgtd's socket exists.

    Raises NotInstalledError when neither or both are present (then the
    ``implementation`` parameter must say which).
    """
    from lsaa.backends.lio import ROOT
    from lsaa.errors import NotInstalledError

    lio = os.path.isdir(ROOT)
    tgt = os.path.exists(socket_path(control_port))
    if lio and tgt:
        raise NotInstalledError("both LIO (configfs) and tgtd are present: "
                                "set implementation=lio or implementation=tgt")
    if lio:
        return "lio"
    if tgt:
        return "tgt"
    raise NotInstalledError("no iSCSI target found: LIO (configfs target dir) absent and tgtd "
                            f"not running ({socket_path(control_port)}); set implementation")
