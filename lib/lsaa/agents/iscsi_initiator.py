"""ocf:lsaa:iscsi-initiator — an open-iscsi session to one target through one portal.

CHAP secrets go into the node record file, never on iscsiadm's command line
(see lsaa.backends.iscsiadm).  Monitor matches the target AND the portal in
``iscsiadm -m session`` and reads the session state from sysfs.
"""

from __future__ import annotations

import os

from lsaa.backends import iscsiadm as ia
from lsaa.backends.iscsiname import check_name, parse_portal
from lsaa.errors import CommandError, GenericError, NotInstalledError
from lsaa.ocf import OCF_NOT_RUNNING, OCF_SUCCESS
from lsaa.ocf.agent import Agent, Context
from lsaa.ocf.spec import Action, AgentSpec, Param

TYPE_CHECKING = False  # see lsaa.errors
if TYPE_CHECKING:
    from lsaa.backends.iscsiname import Portal


def _portal(raw: str) -> Portal:
    return parse_portal(raw)


def _secret_word(raw: str) -> str:
    if len(raw) > 255 or any(c.isspace() or not c.isprintable() for c in raw):
        raise ValueError("at most 255 characters, no blanks or control characters")
    return raw


SPEC = AgentSpec(
    name="iscsi-initiator",
    shortdesc="iSCSI initiator session (open-iscsi)",
    longdesc=(
        "Logs this node in to one iSCSI target through one portal with open-iscsi, with "
        "optional CHAP and mutual CHAP, and waits for the target's disks to appear. The "
        "node record is discovered (sendtargets) only when none exists, and kept at "
        "node.startup=manual so the boot scripts never log in outside cluster control. "
        "CHAP secrets are written into the node record file (mode 0600) and never passed "
        "on a command line. Start publishes the disks' /dev names and udev by-path names "
        "in the log and in the state file. iscsid must be running."
    ),
    params=[
        Param("portal", "Target portal", "ip[:port]; IPv6 as [addr]:port (port 3260 by "
              "default). An address, not a host name: sessions are listed by address.",
              required=True, unique_group="session", check=_portal),
        Param("target", "Target name", "The target's iSCSI name.", required=True,
              unique_group="session", check=check_name),
        Param("username", "CHAP user name", "node.session.auth.username.",
              check=_secret_word),
        Param("password", "CHAP password", "node.session.auth.password (secret: written "
              "to the node record file, never on a command line).", secret=True,
              check=_secret_word),
        Param("username_in", "Mutual CHAP: the target's user name",
              "node.session.auth.username_in.", check=_secret_word),
        Param("password_in", "Mutual CHAP: the target's password",
              "node.session.auth.password_in (secret).", secret=True, check=_secret_word),
        Param("wait_for_disks", "Disks to wait for",
              "Start waits until the session has at least this many disks (0: do not wait).",
              type="integer", default="1", minimum=0, maximum=4096),
    ],
    actions=[
        Action("start", 120),
        Action("stop", 120),
        Action("monitor", 30, interval=120, depth=0),
        Action("validate-all", 20),
        Action("meta-data", 5),
    ],
)


class ISCSIInitiator(Agent):
    spec = SPEC

    def validate(self, ctx: Context) -> list[str]:
        problems = []
        for suffix in ("", "_in"):
            if bool(ctx.p("username" + suffix)) != bool(ctx.p("password" + suffix)):
                problems.append(f"username{suffix}: needs password{suffix} too (and vice versa)")
        if ctx.p("username_in") and not ctx.p("username"):
            problems.append("username_in: mutual CHAP needs username/password")
        return problems

    def check_local(self, ctx: Context) -> None:
        import shutil

        if shutil.which(ia.ISCSIADM, path="/usr/sbin:/usr/bin:/sbin:/bin") is None:
            raise NotInstalledError("iscsiadm is not installed (open-iscsi)")

    def _find(self, ctx: Context) -> ia.Session | None:
        res = ctx.runner.run([ia.ISCSIADM, "-m", "session"], ok=(0, ia.ISCSI_ERR_NO_OBJS_FOUND))
        return ia.find_session(ia.parse_sessions(res.stdout), str(ctx.p("target")),
                               self._portal(ctx))

    def _portal(self, ctx: Context) -> Portal:
        return ctx.p("portal")  # type: ignore[return-value]

    def monitor(self, ctx: Context) -> int:
        session = self._find(ctx)
        if session is None:
            return OCF_NOT_RUNNING
        state = ia.session_state(session.sid, ia.SYSFS)
        if state != "LOGGED_IN":
            raise GenericError(f"session {session.sid} to {session.target} at {session.portal} "
                               f"is {state or 'in an unknown state'}")
        return OCF_SUCCESS

    def start(self, ctx: Context) -> int:
        target, portal = str(ctx.p("target")), self._portal(ctx)
        session = self._find(ctx)
        if session is None:
            self._prepare_record(ctx, target, portal)
            self._login(ctx, target, portal)
        while True:
            session = self._find(ctx)
            if session is not None and ia.session_state(session.sid, ia.SYSFS) == "LOGGED_IN":
                disks = ia.session_disks(session.sid, ia.SYSFS)
                if len(disks) >= int(str(ctx.p("wait_for_disks"))):
                    self._publish(ctx, portal, target, disks)
                    return OCF_SUCCESS
            ctx.deadline.sleep(0.2, f"waiting for the disks of {target}")

    def stop(self, ctx: Context) -> int:
        target, portal = str(ctx.p("target")), self._portal(ctx)
        try:
            session = self._find(ctx)
        except NotInstalledError as e:
            ctx.log.info(f"{e.reason}: nothing to stop")
            return OCF_SUCCESS
        if session is not None:
            ctx.runner.run([ia.ISCSIADM, "-m", "node", "-T", target, "-p", str(portal),
                            "--logout"], ok=(0, ia.ISCSI_ERR_NO_OBJS_FOUND))
            if self._find(ctx) is not None:
                raise GenericError(f"still logged in to {target} at {portal} after logout")
        try:
            os.unlink(ctx.state_file("disks"))
        except OSError:
            pass
        return OCF_SUCCESS

    # --- start's steps ------------------------------------------------------------------

    def _prepare_record(self, ctx: Context, target: str, portal: Portal) -> None:
        records = ia.record_files(target, portal, ia.NODES_DIR)
        if not records:
            res = ctx.runner.run([ia.ISCSIADM, "-m", "discovery", "-t", "sendtargets",
                                  "-p", str(portal)])
            offered = ia.parse_nodes(res.stdout)
            if not any(t == target for _, _, t in offered):
                names = sorted({t for _, _, t in offered})
                raise GenericError(f"{portal} does not offer {target} (offers: "
                                   f"{', '.join(names)[:50] or 'nothing'})")
            records = ia.record_files(target, portal, ia.NODES_DIR)
            if not records:
                # offered only through other portals: make the record for ours
                ctx.runner.run([ia.ISCSIADM, "-m", "node", "-o", "new", "-T", target,
                                "-p", str(portal)])
                records = ia.record_files(target, portal, ia.NODES_DIR)
            if not records:
                raise GenericError(f"no node record for {target} at {portal} in "
                                   f"{ia.NODES_DIR} after discovery")
        chap = ctx.p("username")
        values = {
            "node.startup": "manual",
            "node.session.auth.authmethod": "CHAP" if chap else "None",
            "node.session.auth.username": str(chap or ""),
            "node.session.auth.password": str(ctx.p("password") or ""),
            "node.session.auth.username_in": str(ctx.p("username_in") or ""),
            "node.session.auth.password_in": str(ctx.p("password_in") or ""),
        }
        for path in records:
            try:
                if ia.update_record(path, values):
                    ctx.log.info(f"updated node record {path} (startup manual, auth)")
            except OSError as e:
                raise GenericError(f"cannot update node record {path}: {e.strerror}") from None

    def _login(self, ctx: Context, target: str, portal: Portal) -> None:
        try:
            ctx.runner.run([ia.ISCSIADM, "-m", "node", "-T", target, "-p", str(portal),
                            "--login"], ok=(0, ia.ISCSI_ERR_SESS_EXISTS))
        except CommandError as e:
            if e.returncode == ia.ISCSI_ERR_LOGIN_AUTH_FAILED:
                raise GenericError(f"CHAP authentication to {target} at {portal} "
                                   "failed") from None
            if e.returncode in (ia.ISCSI_ERR_ISCSID_NOTCONN, ia.ISCSI_ERR_INITIATOR_TIMEOUT):
                raise GenericError("iscsid is not running (iscsiadm cannot reach it)") from None
            raise

    def _publish(self, ctx: Context, portal: Portal, target: str,
                 disks: list[tuple[int, str]]) -> None:
        import json

        entries = [{"lun": lun, "dev": f"/dev/{dev}",
                    "by_path": ia.by_path_name(portal, target, lun)} for lun, dev in disks]
        for e in entries:
            ctx.log.info(f"LUN {e['lun']} of {target} is {e['dev']} ({e['by_path']})")
        path = ctx.state_file("disks")
        try:
            os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
            with open(path + ".tmp", "w", encoding="utf-8") as f:
                json.dump({"target": target, "portal": str(portal), "disks": entries}, f)
            os.replace(path + ".tmp", path)
        except OSError as e:
            ctx.log.warning(f"cannot write {path}: {e.strerror}")


AGENT = ISCSIInitiator()


def main() -> None:
    from lsaa.ocf.main import main as run_main

    run_main(AGENT)
