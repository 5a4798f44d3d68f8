"""tgt (the userspace SCSI target daemon) through tgtadm: parsers and commands.

tgtd keeps all state in the daemon; ``tgtadm`` talks to it over the unix
socket ``/var/run/tgtd/socket.<control port>``.  tgtadm exits 22 (EINVAL) for
"can't find the target", "this target already exists" and most other
refusals, so callers decide from a fresh ``show`` rather than from exit codes.

CHAP passwords: tgtadm has no other way to take an account password than
``--password`` on its command line.  :meth:`Tgtadm.new_account` is the only
call that carries one, it runs once per account, and the runner masks it in
every log line and error message.
"""

from __future__ import annotations

import os

from lsaa.backends.iscsiname import Portal, portal_of_listing

TYPE_CHECKING = False  # see lsaa.errors
if TYPE_CHECKING:
    from lsaa.run import Result, Runner

TGTADM = "tgtadm"
EINVAL = 22  # tgtadm's exit code for almost every refusal


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


class Tgtadm:
    """tgtadm commands for one tgtd instance (``--control-port``)."""

    def __init__(self, runner: Runner, control_port: int = 0) -> None:
        self.runner = runner
        self.base = [TGTADM] + (["-C", str(control_port)] if control_port else []) + \
            ["--lld", "iscsi"]

    def run(self, *args: str, ok: tuple[int, ...] = (0,), secrets: tuple[str, ...] = ()) -> Result:
        return self.runner.run(self.base + list(args), ok=ok, secrets=secrets)

    def show(self) -> dict[int, TgtTarget]:
        return parse_show(self.run("--mode", "target", "--op", "show").stdout)

    def portals(self) -> list[Portal]:
        return parse_portals(self.run("--mode", "portal", "--op", "show").stdout)

    def accounts(self) -> list[str]:
        return parse_accounts(self.run("--mode", "account", "--op", "show").stdout)

    def new_portal(self, portal: Portal) -> None:
        self.run("--mode", "portal", "--op", "new", "--param", f"portal={portal}")

    def new_target(self, tid: int, iqn: str) -> None:
        self.run("--mode", "target", "--op", "new", "--tid", str(tid), "--targetname", iqn)

    def delete_target(self, tid: int, force: bool) -> Result:
        extra = ["--force"] if force else []
        return self.run("--mode", "target", "--op", "delete", *extra, "--tid", str(tid),
                        ok=(0, EINVAL))

    def update_target(self, tid: int, name: str, value: str) -> None:
        self.run("--mode", "target", "--op", "update", "--tid", str(tid),
                 "--name", name, "--value", value)

    def bind_initiator(self, tid: int, name: str) -> None:
        opt = "--initiator-name" if name.startswith(("iqn.", "eui.", "naa.")) \
            else "--initiator-address"
        self.run("--mode", "target", "--op", "bind", "--tid", str(tid), opt, name)

    def unbind_initiator(self, tid: int, name: str) -> None:
        opt = "--initiator-name" if name.startswith(("iqn.", "eui.", "naa.")) \
            else "--initiator-address"
        self.run("--mode", "target", "--op", "unbind", "--tid", str(tid), opt, name,
                 ok=(0, EINVAL))

    def new_account(self, user: str, password: str) -> None:
        """The one tgtadm call that carries a password on its argv (masked in logs)."""
        self.run("--mode", "account", "--op", "new", "--user", user, "--password", password,
                 secrets=(password,))

    def delete_account(self, user: str) -> None:
        self.run("--mode", "account", "--op", "delete", "--user", user, ok=(0, EINVAL))

    def bind_account(self, tid: int, user: str, outgoing: bool) -> None:
        extra = ["--outgoing"] if outgoing else []
        self.run("--mode", "account", "--op", "bind", "--tid", str(tid), "--user", user, *extra)

    def new_lun(self, tid: int, lun: int, path: str, bstype: str) -> None:
        self.run("--mode", "logicalunit", "--op", "new", "--tid", str(tid), "--lun", str(lun),
                 "--backing-store", path, "--bstype", bstype)

    def update_lun(self, tid: int, lun: int, params: str) -> None:
        self.run("--mode", "logicalunit", "--op", "update", "--tid", str(tid),
                 "--lun", str(lun), "--params", params)

    def delete_lun(self, tid: int, lun: int) -> Result:
        return self.run("--mode", "logicalunit", "--op", "delete", "--tid", str(tid),
                        "--lun", str(lun), ok=(0, EINVAL))


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
