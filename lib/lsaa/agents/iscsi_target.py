"""ocf:lsaa:iscsi-target — an iSCSI target (LIO or tgt) with its portals, ACLs and CHAP.

LIO is driven in process through rtslib-fb (configfs writes: no targetcli, no
D-Bus, passwords never on a command line); tgt through tgtd's control socket
(lsaa.backends.tgtd_socket: tgtadm's requests without a tgtadm process, so
CHAP passwords never reach a command line there either).  Monitor
checks what an initiator depends on: the target, its TPG enabled, every
portal and ACL, the CHAP settings (LIO: the secrets themselves are compared
in memory).
"""

from __future__ import annotations

from lsaa.agents.iscsi_common import ACTIONS, TGT_CONTROL_PORT, control_port, implementation
from lsaa.backends.iscsiname import check_name, check_names, check_portals, only, split_list
from lsaa.errors import GenericError, LocalConfigError, NotInstalledError
from lsaa.ocf import OCF_NOT_RUNNING, OCF_SUCCESS
from lsaa.ocf.agent import Agent, Context
from lsaa.ocf.spec import AgentSpec, Param

TYPE_CHECKING = False  # see lsaa.errors
if TYPE_CHECKING:
    from lsaa.backends.iscsiname import Portal
    from lsaa.backends.lio import TargetState
    from lsaa.backends.tgt import TgtTarget
    from lsaa.backends.tgtd_socket import Tgtd


def check_secret_word(raw: str) -> str:
    if len(raw) > 255:
        raise ValueError("at most 255 characters")
    if any(c.isspace() or not c.isprintable() for c in raw):
        raise ValueError("must not contain blanks or control characters")
    return raw


_LETTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_NAME_CHARS = _LETTERS | frozenset("0123456789_")


def check_attributes(raw: str) -> list[tuple[str, str]]:
    out = []
    for word in split_list(raw):
        name, eq, value = word.partition("=")
        # [A-Za-z][A-Za-z0-9_]*, without importing re
        if not eq or not name or name[0] not in _LETTERS or not only(name, _NAME_CHARS) \
                or not value:
            raise ValueError(f"{word[:40]!r} is not name=value")
        out.append((name, value))
    return out


CHAP_PARAMS = ("incoming_username", "incoming_password", "outgoing_username",
               "outgoing_password")
CHAP_LONGDESC = (
    " With implementation=tgt lsaa sends it to tgtd over tgtd's control socket (the "
    "request tgtadm would send, without running tgtadm), so it never appears on a command "
    "line; tgtd cannot take a comma in it. With LIO it is written to configfs directly and "
    "never appears on a command line either."
)

SPEC = AgentSpec(
    name="iscsi-target",
    shortdesc="iSCSI target (LIO or tgt) with portals, ACLs and CHAP",
    longdesc=(
        "Manages one iSCSI target and its TPG 1: exactly the configured portals (LIO's "
        "0.0.0.0:3260 default portal is removed unless configured), access control by "
        "initiator name (or open access only when open_access=true), incoming and mutual "
        "CHAP. LIO is configured in process through rtslib-fb (configfs); tgt through "
        "tgtd's control socket. Pair it with ocf:lsaa:iscsi-lun resources, ordered after "
        "it. Monitor fails (1) when the TPG is disabled or a portal, ACL or CHAP setting "
        "is missing. Stop removes exactly this target; active sessions are closed, or with "
        "on_active_sessions=refuse the stop fails and names them."
    ),
    params=[
        Param("implementation", "Target implementation",
              "lio (kernel target, through rtslib-fb) or tgt (tgtd, through its control socket). "
              "Unset: "
              "lio when /sys/kernel/config/target exists, tgt when tgtd's control socket "
              "exists.", choices=("lio", "tgt")),
        Param("iqn", "Target name", "The target's iSCSI name (iqn., eui. or naa.).",
              required=True, unique_group="iqn", check=check_name),
        Param("portals", "Portals", "Blank-separated ip:port list; IPv6 as [addr]:port. "
              "0.0.0.0 is every IPv4 address, [::] every address. With tgt portals are "
              "global to tgtd: missing ones are added, none is removed on stop.",
              default="0.0.0.0:3260", check=check_portals),
        Param("allowed_initiators", "Allowed initiator names",
              "Blank-separated initiator names that may log in. Empty is refused unless "
              "open_access=true.", check=check_names),
        Param("open_access", "Let any initiator in",
              "Must be set explicitly to allow an empty allowed_initiators (LIO demo mode "
              "with write access; tgt binds ALL).", type="boolean", default="false"),
        Param("incoming_username", "CHAP user name initiators log in with",
              "With tgt, accounts are global to tgtd: use a name per target.",
              check=check_secret_word),
        Param("incoming_password", "CHAP password initiators log in with",
              "Secret." + CHAP_LONGDESC, secret=True, check=check_secret_word),
        Param("outgoing_username", "Mutual CHAP user name of the target",
              "The target authenticates itself with it (mutual CHAP). Needs the incoming "
              "CHAP pair.", check=check_secret_word),
        Param("outgoing_password", "Mutual CHAP password of the target",
              "Secret." + CHAP_LONGDESC, secret=True, check=check_secret_word),
        Param("tid", "tgt target id", "The numeric tgt target id (required with "
              "implementation=tgt).", type="integer", minimum=1, maximum=65535),
        Param("additional_parameters", "Extra target settings",
              "Blank-separated name=value list: LIO TPG attributes or parameters "
              "(e.g. default_cmdsn_depth=64, MaxRecvDataSegmentLength=65536); tgt target "
              "parameters (tgtadm --op update --name --value).", check=check_attributes),
        Param("on_active_sessions", "What stop does with logged-in initiators",
              "close: end the sessions and delete the target. refuse: fail the stop, "
              "naming the initiators.", choices=("close", "refuse"), default="close"),
        TGT_CONTROL_PORT,
    ],
    actions=ACTIONS,
)


class Config:
    """The parameters, typed, as the backends need them."""

    def __init__(self, ctx: Context) -> None:
        self.iqn = str(ctx.p("iqn"))
        portals = ctx.p("portals")
        self.portals: list[Portal] = list(portals) if isinstance(portals, list) else []
        names = ctx.p("allowed_initiators")
        self.initiators: list[str] = list(names) if isinstance(names, list) else []
        self.open = bool(ctx.p("open_access"))
        user, pw = ctx.p("incoming_username"), ctx.p("incoming_password")
        self.chap = (str(user), str(pw)) if user and pw else None
        muser, mpw = ctx.p("outgoing_username"), ctx.p("outgoing_password")
        self.mutual = (str(muser), str(mpw)) if muser and mpw else None
        attrs = ctx.p("additional_parameters")
        self.attributes: list[tuple[str, str]] = list(attrs) if isinstance(attrs, list) else []
        tid = ctx.p("tid")
        self.tid = int(tid) if isinstance(tid, int) else None
        self.refuse = ctx.p("on_active_sessions") == "refuse"
        self.control_port = control_port(ctx)


class ISCSITarget(Agent):
    spec = SPEC

    def validate(self, ctx: Context) -> list[str]:
        problems = []
        initiators = ctx.p("allowed_initiators")
        if not initiators and not ctx.p("open_access"):
            problems.append("allowed_initiators: empty; list the initiators, or set "
                            "open_access=true to let any initiator in")
        if initiators and ctx.p("open_access"):
            problems.append("open_access: true contradicts allowed_initiators")
        for kind in ("incoming", "outgoing"):
            if bool(ctx.p(f"{kind}_username")) != bool(ctx.p(f"{kind}_password")):
                problems.append(f"{kind}_username: needs {kind}_password too (and vice versa)")
        if ctx.p("outgoing_username") and not ctx.p("incoming_username"):
            problems.append("outgoing_username: mutual CHAP needs incoming_username/password")
        if ctx.p("implementation") == "tgt":
            if ctx.p("tid") is None:
                problems.append("tid: required with implementation=tgt")
            # tgtd splits its request parameters at commas (the values are never shown)
            problems += [f"{name}: tgtd cannot take a ','" for name in CHAP_PARAMS
                         if "," in str(ctx.p(name) or "")]
        return problems

    def check_local(self, ctx: Context) -> None:
        impl = implementation(ctx)
        if impl == "lio":
            import importlib.util

            if importlib.util.find_spec("rtslib_fb") is None:
                raise NotInstalledError("python3-rtslib-fb is not installed")
        elif ctx.p("tid") is None:
            raise LocalConfigError("tid: required with tgt (tgtd found on this node)")

    # --- actions ------------------------------------------------------------------------

    def start(self, ctx: Context) -> int:
        cfg = Config(ctx)
        impl = implementation(ctx)
        if impl == "lio":
            self._start_lio(ctx, cfg)
        else:
            self._start_tgt(ctx, cfg)
        if self.monitor(ctx) != OCF_SUCCESS:
            raise GenericError(f"target {cfg.iqn} is not there after start")
        return OCF_SUCCESS

    def stop(self, ctx: Context) -> int:
        cfg = Config(ctx)
        try:
            impl = implementation(ctx)
        except NotInstalledError as e:
            ctx.log.info(f"{e.reason}: nothing to stop")
            return OCF_SUCCESS
        if impl == "lio":
            return self._stop_lio(ctx, cfg)
        return self._stop_tgt(ctx, cfg)

    def monitor(self, ctx: Context) -> int:
        cfg = Config(ctx)
        impl = implementation(ctx)
        problems = self._problems_lio(cfg) if impl == "lio" else self._problems_tgt(ctx, cfg)
        if problems is None:
            return OCF_NOT_RUNNING
        if problems:
            for p in problems:
                ctx.log.warning(p)
            raise GenericError(f"target {cfg.iqn}: " + "; ".join(problems))
        return OCF_SUCCESS

    # --- LIO ----------------------------------------------------------------------------

    def _problems_lio(self, cfg: Config) -> list[str] | None:
        from lsaa.backends import lio

        st = lio.inspect_target(lio.ROOT, cfg.iqn,
                                [n for n, _ in cfg.attributes], [n for n, _ in cfg.attributes])
        if not st.exists:
            return None
        return lio_problems(st, cfg)

    def _start_lio(self, ctx: Context, cfg: Config) -> None:
        from lsaa.backends import lio
        from lsaa.lock import Lock

        lio.prepare(ctx.runner)
        with Lock(ctx.state_dir, "lio", ctx.deadline):
            lio.ensure_target(cfg.iqn, cfg.portals, cfg.initiators, cfg.chap, cfg.mutual,
                              cfg.attributes)

    def _stop_lio(self, ctx: Context, cfg: Config) -> int:
        from lsaa.backends import lio
        from lsaa.lock import Lock

        with Lock(ctx.state_dir, "lio", ctx.deadline):
            st = lio.inspect_target(lio.ROOT, cfg.iqn)
            if not st.exists:
                return OCF_SUCCESS
            if st.sessions:
                if cfg.refuse:
                    raise GenericError(f"{len(st.sessions)} session(s) active "
                                       f"({', '.join(st.sessions)[:60]}); on_active_sessions="
                                       "refuse")
                ctx.log.info(f"closing sessions of {', '.join(st.sessions)}")
            lio.remove_target(cfg.iqn)
            if lio.inspect_target(lio.ROOT, cfg.iqn).exists:
                raise GenericError(f"target {cfg.iqn} is still in configfs after delete")
        return OCF_SUCCESS

    # --- tgt ----------------------------------------------------------------------------

    def _tgtd(self, ctx: Context, cfg: Config) -> Tgtd:
        from lsaa.backends.tgtd_socket import Tgtd

        return Tgtd(cfg.control_port, ctx.deadline)

    def _show(self, ctx: Context, cfg: Config) -> dict[int, TgtTarget] | None:
        """tgtd's targets; None when tgtd is not running (then no target exists)."""
        import os

        from lsaa.backends.tgt import socket_path

        if not os.path.exists(socket_path(cfg.control_port)):
            ctx.log.info(f"tgtd is not running ({socket_path(cfg.control_port)} is absent)")
            return None
        return self._tgtd(ctx, cfg).show()

    def _problems_tgt(self, ctx: Context, cfg: Config) -> list[str] | None:
        from lsaa.backends.tgt import find_by_iqn

        targets = self._show(ctx, cfg)
        if targets is None:
            return None
        t = find_by_iqn(targets, cfg.iqn)
        if t is None:
            return None
        problems = tgt_problems(t, cfg)
        have = set(self._tgtd(ctx, cfg).portals())
        problems += [f"portal {p} missing" for p in cfg.portals if p not in have]
        return problems

    def _start_tgt(self, ctx: Context, cfg: Config) -> None:  # noqa: PLR0912 - tgtd order
        from lsaa.backends.tgt import find_by_iqn, socket_path
        from lsaa.lock import Lock

        if cfg.tid is None:
            raise LocalConfigError("tid: required with tgt")
        adm = self._tgtd(ctx, cfg)
        with Lock(ctx.state_dir, "tgt", ctx.deadline):
            targets = self._show(ctx, cfg)
            if targets is None:
                raise LocalConfigError(f"tgtd is not running ({socket_path(cfg.control_port)})")
            t = find_by_iqn(targets, cfg.iqn)
            if t is not None and t.tid != cfg.tid:
                raise GenericError(f"{cfg.iqn} already exists in tgtd as tid {t.tid}, "
                                   f"not {cfg.tid}")
            other = targets.get(cfg.tid)
            if other is not None and other.iqn != cfg.iqn:
                raise GenericError(f"tid {cfg.tid} is taken by {other.iqn}")
            have = set(adm.portals())
            for p in cfg.portals:
                if p not in have:
                    adm.new_portal(p)
            if t is None:
                adm.new_target(cfg.tid, cfg.iqn)
                acls: list[str] = []
            else:
                acls = t.acls
            wanted = cfg.initiators or ["ALL"]
            for name in acls:
                if name not in wanted:
                    adm.unbind_initiator(cfg.tid, name)
            for name in wanted:
                if name not in acls:
                    adm.bind_initiator(cfg.tid, name)
            for pair, out in ((cfg.chap, False), (cfg.mutual, True)):
                if pair is None:
                    continue
                user, password = pair
                # the password may have changed: always re-create our account
                adm.delete_account(user)
                adm.new_account(user, password)
                adm.bind_account(cfg.tid, user, out)
            for name, value in cfg.attributes:
                adm.update_target(cfg.tid, name, value)

    def _stop_tgt(self, ctx: Context, cfg: Config) -> int:
        from lsaa.backends.tgt import find_by_iqn
        from lsaa.lock import Lock

        adm = self._tgtd(ctx, cfg)
        with Lock(ctx.state_dir, "tgt", ctx.deadline):
            targets = self._show(ctx, cfg)
            t = find_by_iqn(targets or {}, cfg.iqn)
            if t is not None:
                initiators = sorted({name for _, name, _ in t.connections})
                if initiators and cfg.refuse:
                    raise GenericError(f"{len(initiators)} initiator(s) logged in "
                                       f"({', '.join(initiators)[:60]}); on_active_sessions="
                                       "refuse")
                if initiators:
                    # tgtd refuses even a forced delete while commands are in flight
                    # (an initiator doing I/O always has some): close the connections,
                    # with the ACLs gone first so the initiators cannot log in again
                    ctx.log.info(f"closing sessions of {', '.join(initiators)}")
                    for name in t.acls:
                        adm.unbind_initiator(t.tid, name)
                    adm.close_connections(t)
                adm.delete_target(t.tid, force=bool(initiators))
                targets = adm.show()
                if find_by_iqn(targets, cfg.iqn) is not None:
                    raise GenericError(f"tgtd still has {cfg.iqn} after delete")
                # accounts are global: delete ours unless another target uses them
                ours = [pair[0] for pair in (cfg.chap, cfg.mutual) if pair is not None]
                for user in ours:
                    if not any(user in o.users + o.outgoing for o in targets.values()):
                        adm.delete_account(user)
        return OCF_SUCCESS


def lio_problems(st: TargetState, cfg: Config) -> list[str]:
    """Why a LIO target that exists is not what the configuration asks for."""
    problems = []
    if not st.enabled:
        problems.append("TPG 1 is not enabled")
    wanted = {str(p) for p in cfg.portals}
    problems += [f"portal {p} missing" for p in sorted(wanted - set(st.portals))]
    problems += [f"unexpected portal {p}" for p in sorted(set(st.portals) - wanted)]
    want_gen = "1" if not cfg.initiators else "0"
    if st.attrib.get("generate_node_acls") != want_gen:
        problems.append("open access is " + ("off" if want_gen == "1" else "on"))
    problems += [f"ACL {a} missing" for a in cfg.initiators if a not in st.acls]
    problems += [f"unexpected ACL {a}" for a in st.acls if a not in cfg.initiators]
    if st.attrib.get("authentication") != ("1" if cfg.chap else "0"):
        problems.append("CHAP authentication is " + ("off" if cfg.chap else "on"))
    user, password = cfg.chap or ("", "")
    muser, mpassword = cfg.mutual or ("", "")
    want = {"userid": user, "password": password, "userid_mutual": muser,
            "password_mutual": mpassword}
    auths = {a: st.acl_auth.get(a, {}) for a in cfg.initiators if a in st.acls}
    if not cfg.initiators:
        auths = {"TPG": st.tpg_auth}
    for who, auth in auths.items():
        wrong = [k for k, v in want.items() if auth.get(k, "") != v]
        if wrong:
            # names of the fields only: never the values
            problems.append(f"CHAP {'/'.join(wrong)} of {who} differ")
    for name, value in cfg.attributes:
        have = st.attrib.get(name, st.param.get(name))
        if have is not None and have != value:
            problems.append(f"{name} is {have}, not {value}")
    return problems


def tgt_problems(t: TgtTarget, cfg: Config) -> list[str]:
    problems = []
    if cfg.tid is not None and t.tid != cfg.tid:
        problems.append(f"has tid {t.tid}, not {cfg.tid}")
    if t.state and t.state != "ready":
        problems.append(f"state is {t.state}")
    wanted = cfg.initiators or ["ALL"]
    problems += [f"ACL {a} missing" for a in wanted if a not in t.acls]
    problems += [f"unexpected ACL {a}" for a in t.acls if a not in wanted]
    if cfg.chap and cfg.chap[0] not in t.users:
        problems.append(f"CHAP account {cfg.chap[0]} not bound")
    if not cfg.chap and t.users:
        problems.append("CHAP accounts bound, none configured")
    if cfg.mutual and cfg.mutual[0] not in t.outgoing:
        problems.append(f"outgoing account {cfg.mutual[0]} not bound")
    return problems


AGENT = ISCSITarget()


def main() -> None:
    from lsaa.ocf.main import main as run_main

    run_main(AGENT)
