"""ocf:lsaa:drbd — a DRBD resource as a promotable clone (single primary by default).

Roles: DRBD Secondary = unpromoted (monitor 0), Primary = promoted (8); a
Primary whose own disk is gone (Diskless, Failed, Inconsistent...) is 9
(promoted but failed: Pacemaker demotes it and promotes the peer with the good
disk); a Secondary without its disk is 1.  An unresolved split brain is never
resolved here: monitor returns 190/191 (OCF_DEGRADED / _PROMOTED: still running,
shown as degraded) with the split brain in the exit reason, and the Secondary's
promotion score is removed so the cluster never promotes the diverged copy.

State comes from one read of /proc/drbd on DRBD 8.4 (the resource's minors
are cached at start and probe from ``drbdadm sh-minor``) and from
``drbdsetup events2 --now <res>`` on DRBD 9; split brains from /dev/kmsg.

Promotion scores (transient node attribute ``master-<instance>``), computed by
:func:`lsaa.backends.drbd.promotion_score` from ``adjust_master_score``
(default "0 10 1000 10000"), first match wins:

====================================================  ==================
not running (unconfigured)                            delete
quorum lost on some volume (DRBD 9)                   delete
split brain detected, this node Secondary             delete
a local disk Attaching/Negotiating                    unchanged
a local disk neither UpToDate nor Consistent          delete
local disks Consistent (not all UpToDate)             1st value (0: delete)
all local UpToDate, Primary                           4th value (10000)
all local UpToDate, every peer's disk known           4th value (10000)
all local UpToDate, a peer unreachable (DUnknown)     3rd value (1000)
====================================================  ==================

The 2nd value (LINBIT: "my data is not UpToDate but a peer's is") is never
used: such a node is not promotable.  Scores are refreshed by every monitor
(probes included, which also delete a stale score when DRBD is down) and every
post notification, and removed on stop.

Resource-level fencing: with ``fencing resource-only`` and LINBIT's
crm-fence-peer handler, a ``drbd-fence-by-handler-<res>-<clone>`` location
constraint keeps the promoted role on the node with good data.  promote refuses
when such a constraint names another node; once this node sees every disk
UpToDate and connected after having seen otherwise, it deletes the constraint
(what crm-unfence-peer does after a resync).

Dual primary needs promoted-max=2 *and* ``allow-two-primaries yes`` *and*
protocol C in the DRBD configuration; otherwise start refuses.
"""

from __future__ import annotations

from lsaa.errors import AgentError
from lsaa.ocf.agent import Agent
from lsaa.ocf.spec import Action, AgentSpec, Param

TYPE_CHECKING = False  # see lsaa.errors
if TYPE_CHECKING:
    from lsaa.backends.drbd import DrbdState
    from lsaa.ocf.agent import Context

PROC_DRBD = "/proc/drbd"
KMSG = "/dev/kmsg"
SYS_BLOCK = "/sys/block"
REPUBLISH_S = 300  # recurring monitors re-send an unchanged score this often
FENCE_PREFIX = "drbd-fence-by-handler-"
CIB_EX_NOSUCH = 105


class FailedPromoted(AgentError):
    """Promoted but failed (OCF_FAILED_PROMOTED)."""

    rc = 9


class Degraded(AgentError):
    """Running but degraded (OCF_DEGRADED); the promoted variant is 191."""

    rc = 190


class DegradedPromoted(AgentError):
    rc = 191


def _resource(raw: str) -> str:
    import re

    if not re.fullmatch(r"[-%+./0-9:=@A-Z_a-z]{1,128}", raw) or raw.startswith("-"):
        raise ValueError(f"{raw!r} is not a DRBD resource name")
    return raw


def _scores(raw: str) -> str:
    from lsaa.backends.drbd import parse_scores

    parse_scores(raw)
    return raw


SPEC = AgentSpec(
    name="drbd",
    shortdesc="DRBD resource as a promotable clone",
    longdesc=(
        "Manages a DRBD resource (DRBD 8.4 or 9, drbd-utils 9) as a promotable "
        "clone: start attaches and connects it (drbdadm adjust, converging an "
        "existing configuration), promote makes it Primary, demote Secondary, stop "
        "takes it down. Create it with promotable promoted-max=1 promoted-node-max=1 "
        "clone-max=2 clone-node-max=1 notify=true. "
        "Promotion scores (first match wins): not running, DRBD 9 quorum lost, or "
        "Secondary in an unresolved split brain: no score; a local disk Attaching or "
        "Negotiating: unchanged; a local disk Outdated, Inconsistent, Diskless or "
        "Failed: no score (such data is never promoted); local disks only "
        "Consistent: 1st adjust_master_score value; all local disks UpToDate and "
        "Primary, or every peer's disk known: 4th value; all local disks UpToDate but "
        "a peer unreachable: 3rd value (a lone UpToDate node ranks below one whose "
        "peer is UpToDate too). The 2nd value is accepted for compatibility with "
        "ocf:linbit:drbd and not used. Values <= 0 remove the score. "
        "Monitor: 0 Secondary, 8 Primary, 9 Primary without a good local disk, "
        "1 Secondary without its disk, 190/191 (degraded) for an unresolved split "
        "brain, which is reported and never resolved by the agent. "
        "Resource-level fencing (fencing resource-only with crm-fence-peer.9.sh): "
        "promote refuses against a drbd-fence-by-handler-<res>-* constraint naming "
        "another node, and the constraint is removed once all disks are UpToDate and "
        "connected again. Dual primary (promoted-max=2) requires allow-two-primaries "
        "and protocol C."
    ),
    params=[
        Param("drbd_resource", "DRBD resource name", "The resource name in drbd.conf.",
              required=True, unique_group="drbd", check=_resource),
        Param("adjust_master_score", "Promotion scores",
              "Four non-decreasing integers: consistent-only, (unused), lone UpToDate, "
              "UpToDate with every peer known. See the score table above.",
              default="0 10 1000 10000", check=_scores),
        Param("wfc_timeout", "Seconds start waits for the peer",
              "How long start waits for the connection before succeeding "
              "unconnected (a lone node still starts); 0: no wait. Unlike "
              "ocf:linbit:drbd, whose 0 is DRBD's wait-forever.",
              type="integer", default="5", minimum=0, maximum=600),
        Param("unfence", "Remove the fencing handler's constraint after resync",
              "Delete drbd-fence-by-handler-<res>-* location constraints once every "
              "disk is UpToDate and connected (as crm-unfence-peer.9.sh does).",
              type="boolean", default="true"),
    ],
    actions=[
        Action("start", 240),
        Action("stop", 100),
        Action("promote", 90),
        Action("demote", 90),
        Action("notify", 90),
        Action("monitor", 20, interval=10, role="Promoted"),
        Action("monitor", 20, interval=20, role="Unpromoted"),
        Action("reload", 30),
        Action("validate-all", 30),
        Action("meta-data", 5),
    ],
)


class Drbd(Agent):
    spec = SPEC
    _saved: str | None = None  # the state file's text as _load read it

    # -- validation -------------------------------------------------------------
    def validate(self, ctx: Context) -> list[str]:
        problems = []
        meta = ctx.meta
        for key in ("clone_node_max", "promoted_node_max", "master_node_max"):
            if meta.get(key, "1").strip() not in ("", "1"):
                problems.append(f"{key.replace('_', '-')} must be 1")
        for key in ("promoted_max", "master_max"):
            try:
                if int(meta.get(key, "1") or "1") > 2:
                    problems.append(f"{key.replace('_', '-')} must be at most 2")
            except ValueError:
                problems.append(f"{key.replace('_', '-')} is not a number")
        return problems

    def check_local(self, ctx: Context) -> None:
        import shutil

        from lsaa.errors import LocalConfigError, NotInstalledError

        if shutil.which("drbdadm", path="/usr/sbin:/usr/bin:/sbin:/bin") is None:
            raise NotInstalledError("drbdadm not found: install drbd-utils")
        res = ctx.runner.run(["drbdadm", "sh-minor", self._res(ctx)], ok=(0, 1, 10))
        if res.rc != 0:
            raise LocalConfigError(f"resource {self._res(ctx)} is not defined for this node "
                                   "in drbd.conf")
        self._check_dual_primary(ctx)

    def _check_dual_primary(self, ctx: Context) -> None:
        """promoted-max=2 needs allow-two-primaries and protocol C; allow-two-primaries
        with protocol A/B is refused outright."""
        from lsaa.backends.drbd import dump_settings
        from lsaa.errors import LocalConfigError

        res = self._res(ctx)
        out = ctx.runner.run(["drbdadm", "-d", "up", res], timeout=20).stdout
        protocol, two = dump_settings(out)
        wanted = int(ctx.meta.get("promoted_max") or ctx.meta.get("master_max") or "1")
        if two and protocol != "C":
            raise LocalConfigError(f"{res}: allow-two-primaries with protocol {protocol} "
                                   "(dual primary needs protocol C)")
        if wanted > 1 and not two:
            raise LocalConfigError(f"{res}: promoted-max={wanted} but drbd.conf does not "
                                   "set allow-two-primaries yes")

    # -- state ---------------------------------------------------------------------
    def _res(self, ctx: Context) -> str:
        return str(ctx.p("drbd_resource"))

    def _load(self, ctx: Context) -> dict[str, object]:
        import json

        try:
            with open(ctx.state_file("json"), encoding="utf-8") as f:
                self._saved = f.read()
            data = json.loads(self._saved)
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            self._saved = None
            return {}

    def _save(self, ctx: Context, data: dict[str, object]) -> None:
        """Write the state file, unless it already says exactly this (a recurring
        monitor usually changes nothing: no directory, temporary file and rename)."""
        import json
        import os

        text = json.dumps(data)
        if text == self._saved:
            return
        path = ctx.state_file("json")
        try:
            os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
            with open(path + ".tmp", "w", encoding="utf-8") as f:
                f.write(text)
            os.replace(path + ".tmp", path)
            self._saved = text
        except OSError as e:
            ctx.log.warning(f"cannot write {path}: {e.strerror}")

    def _minors(self, ctx: Context, cache: dict[str, object], refresh: bool) -> list[int]:
        from lsaa.errors import LocalConfigError

        cached = cache.get("minors")
        if not refresh and isinstance(cached, list) and cached:
            return [int(m) for m in cached]
        res = ctx.runner.run(["drbdadm", "sh-minor", self._res(ctx)], ok=(0, 1, 10))
        if res.rc != 0:
            raise LocalConfigError(f"resource {self._res(ctx)} is not defined for this node")
        minors = [int(x) for x in res.stdout.split() if x.isdigit()]
        cache["minors"] = minors
        return minors

    def _state(self, ctx: Context, cache: dict[str, object],
               refresh: bool = False) -> DrbdState | None:
        """The resource's kernel state, None when it is not configured (down)."""
        from lsaa.backends import drbd

        try:
            with open(PROC_DRBD, encoding="utf-8") as f:
                text = f.read()
        except OSError:
            return None  # module not loaded: nothing can be running
        version = drbd.proc_version(text)
        if version.startswith("8."):
            procs = drbd.parse_proc_drbd(text)
            if not any(r["cs"] != "Unconfigured" for r in procs.values()):
                return None  # no minor configured: cheap answer, no command
            return drbd.state_from_proc(procs, self._res(ctx),
                                        self._minors(ctx, cache, refresh))
        out = ctx.runner.run(["drbdsetup", "events2", "--now", self._res(ctx)],
                             ok=(0, drbd.DRBD_EXIT_FAILURE), timeout=10)
        return drbd.parse_events2(out.stdout, self._res(ctx))

    def _split_brain(self, ctx: Context, state: DrbdState, cache: dict[str, object]) -> bool:
        """Split brain: seen in kernel messages while StandAlone; remembered until the
        resource connects again (kmsg may have wrapped by then)."""
        from lsaa.backends.drbd import parse_kmsg_record, split_brain_in_kmsg

        if not state.standalone:
            cache.pop("split_brain", None)
            return False
        if cache.get("split_brain"):
            return True
        records = _read_kmsg()
        found = split_brain_in_kmsg([parse_kmsg_record(r) for r in records],
                                    state.name, state.minors)
        if found:
            cache["split_brain"] = True
        return found

    # -- scores ----------------------------------------------------------------------
    def _publish(self, ctx: Context, state: DrbdState | None, cache: dict[str, object],
                 split_brain: bool, force: bool) -> None:
        import time

        from lsaa.backends import crm
        from lsaa.backends.drbd import UNCHANGED, parse_scores, promotion_score

        score = promotion_score(state, parse_scores(str(ctx.p("adjust_master_score"))),
                                split_brain)
        if score == UNCHANGED:
            return
        now = time.time()
        last = cache.get("score", "unset")
        stamp = cache.get("score_at", 0)
        fresh = isinstance(stamp, (int, float)) and now - stamp < REPUBLISH_S
        if not force and last == score and fresh:
            return
        try:
            if score is None:
                crm.delete_promotion_score(ctx.runner, ctx.node_name, ctx.instance)
            else:
                crm.set_promotion_score(ctx.runner, ctx.node_name, ctx.instance, int(score))
        except AgentError as e:
            ctx.log.warning(f"promotion score not updated: {e.reason}")
            cache.pop("score", None)
            return
        if last != score:
            ctx.log.info(f"promotion score {'removed' if score is None else score}")
        cache["score"] = score
        cache["score_at"] = now

    def _unfence(self, ctx: Context, state: DrbdState | None, cache: dict[str, object]) -> None:
        """After a resync, remove the fencing handler's constraint (once per episode)."""
        if state is None or not ctx.p("unfence"):
            return
        if not state.synced():
            cache["dirty"] = True
            return
        if not cache.get("dirty"):
            return
        xpath = f"//rsc_location[starts-with(@id,'{FENCE_PREFIX}{state.name}-')]"
        try:
            res = ctx.runner.run(["cibadmin", "--delete-all", "--force", "--xpath", xpath],
                                 ok=(0, CIB_EX_NOSUCH), timeout=10)
        except AgentError as e:
            ctx.log.warning(f"fencing constraint not checked: {e.reason}")
            return
        if res.rc == 0:
            ctx.log.info(f"all disks UpToDate and connected: removed {FENCE_PREFIX}"
                         f"{state.name}-* constraint(s)")
        cache["dirty"] = False

    def _fenced_by(self, ctx: Context) -> str | None:
        """The node a fencing-handler constraint reserves promotion for, if not us."""
        import re

        xpath = f"//rsc_location[starts-with(@id,'{FENCE_PREFIX}{self._res(ctx)}-')]"
        try:
            res = ctx.runner.run(["cibadmin", "--query", "--xpath", xpath],
                                 ok=(0, CIB_EX_NOSUCH), timeout=10)
        except AgentError as e:
            ctx.log.warning(f"fencing constraints not checked: {e.reason}")
            return None
        if res.rc != 0:
            return None
        for m in re.finditer(r"<expression\b[^>]*>", res.stdout):
            attrs = dict(re.findall(r'(\w[\w-]*)="([^"]*)"', m.group(0)))
            if (attrs.get("attribute") == "#uname" and attrs.get("operation") == "ne"
                    and attrs.get("value") != ctx.node_name):
                return attrs.get("value")
        return None

    # -- actions ------------------------------------------------------------------
    def start(self, ctx: Context) -> int:
        import os
        import time

        from lsaa.backends.drbd import REPLICATING
        from lsaa.errors import GenericError, NotInstalledError

        res = self._res(ctx)
        cache = self._load(ctx)
        self.check_local(ctx)

        if not os.path.exists(PROC_DRBD):
            try:
                ctx.runner.run(["modprobe", "-s", "drbd"], timeout=30)
            except AgentError as e:
                raise NotInstalledError(f"cannot load the drbd module: {e.reason}") from None
        state = self._state(ctx, cache, refresh=True)
        if state is not None and state.primary:
            self._secondary(ctx, state)
        ctx.runner.run(["drbdadm", "adjust", res], timeout=60)
        deadline = time.monotonic() + min(int(str(ctx.p("wfc_timeout"))),
                                          max(0.0, ctx.deadline.remaining() - 5))
        while True:
            state = self._state(ctx, cache)
            if state is None:
                raise GenericError(f"{res} is not configured after drbdadm adjust")
            if all(p.connection in REPLICATING or p.connected for p in state.peers) and \
                    not any(d in ("Attaching", "Negotiating") for d in state.disks):
                break
            if state.standalone or time.monotonic() >= deadline:
                break
            ctx.deadline.sleep(0.2, "waiting for the peer")
        if any(d in ("Diskless", "Failed") for d in state.disks):
            raise GenericError(f"{res}: local disk is {'/'.join(state.disks)} after attach")
        cache["dirty"] = True
        self._refresh(ctx, state, cache, force=True)
        return 0

    def _refresh(self, ctx: Context, state: DrbdState | None, cache: dict[str, object],
                 force: bool) -> bool:
        """Scores, unfencing, state file; returns the split-brain flag."""
        split = self._split_brain(ctx, state, cache) if state is not None else False
        if split:
            ctx.log.error(f"{self._res(ctx)}: split brain detected (StandAlone); resolve it "
                          "by hand (drbdadm connect --discard-my-data on the victim)")
        self._publish(ctx, state, cache, split, force)
        self._unfence(ctx, state, cache)
        self._save(ctx, cache)
        return split

    def stop(self, ctx: Context) -> int:
        import os

        from lsaa.errors import GenericError

        res = self._res(ctx)
        cache = self._load(ctx)
        try:
            state = self._state(ctx, cache)
        except AgentError:
            state = None
            cache["minors"] = []
        if state is not None:
            if state.primary:
                self._secondary(ctx, state)
            ctx.runner.run(["drbdadm", "down", res], timeout=60)
            after = self._state(ctx, cache)
            if after is not None:
                raise GenericError(f"{res} is still configured after drbdadm down")
        self._publish(ctx, None, cache, False, force=True)
        try:
            os.unlink(ctx.state_file("json"))
        except OSError:
            pass
        return 0

    def _secondary(self, ctx: Context, state: DrbdState) -> None:
        """drbdadm secondary, retried while the device is held open."""
        from lsaa.backends.drbd import DRBD_EXIT_STATE_CHANGE_FAILED
        from lsaa.errors import GenericError

        res = self._res(ctx)
        delay = 0.5
        while True:
            out = ctx.runner.run(["drbdadm", "secondary", res],
                                 ok=(0, DRBD_EXIT_STATE_CHANGE_FAILED), timeout=30)
            if out.rc == 0:
                return
            who = holders(state.minors)
            msg = f"{res} cannot be demoted: held open by {who or 'someone'}"
            ctx.log.warning(msg)
            if ctx.deadline.remaining() <= delay + 1:
                raise GenericError(msg)
            ctx.deadline.sleep(delay, "demote")
            delay = min(delay * 2, 4.0)

    def promote(self, ctx: Context) -> int:
        from lsaa.backends.drbd import DRBD_SS_NO_UP_TO_DATE_DISK
        from lsaa.errors import GenericError

        res = self._res(ctx)
        cache = self._load(ctx)
        state = self._state(ctx, cache)
        if state is None:
            raise GenericError(f"cannot promote {res}: not started")
        if state.primary:
            return 0  # idempotent
        if self._split_brain(ctx, state, cache):
            raise GenericError(f"refusing to promote {res}: unresolved split brain")
        if not state.uptodate:
            raise GenericError(f"refusing to promote {res}: local data is "
                               f"{'/'.join(state.disks)}, not UpToDate")
        good = self._fenced_by(ctx)
        if good is not None:
            raise GenericError(f"refusing to promote {res}: fencing constraint reserves "
                               f"the promoted role for {good}")
        delay = 0.5
        while True:
            out = ctx.runner.run(["drbdadm", "primary", res], ok=range(256), timeout=30)
            if out.rc == 0:
                break
            if out.rc == DRBD_SS_NO_UP_TO_DATE_DISK:
                raise GenericError(f"refusing to promote {res}: no access to UpToDate data")
            detail = (out.stderr.strip().splitlines() or [f"exit {out.rc}"])[0]
            ctx.log.warning(f"drbdadm primary {res}: {detail}; retrying")
            if ctx.deadline.remaining() <= delay + 1:
                raise GenericError(f"cannot promote {res}: {detail}")
            ctx.deadline.sleep(delay, "promote")
            delay = min(delay * 2, 4.0)
        state = self._state(ctx, cache)
        if state is None or not state.primary:
            raise GenericError(f"{res} is not Primary after drbdadm primary")
        self._refresh(ctx, state, cache, force=True)
        return 0

    def demote(self, ctx: Context) -> int:
        cache = self._load(ctx)
        state = self._state(ctx, cache)
        if state is None:
            return 7
        if state.primary:
            self._secondary(ctx, state)
            state = self._state(ctx, cache)
        self._refresh(ctx, state, cache, force=True)
        return 0

    def reload(self, ctx: Context) -> int:
        cache = self._load(ctx)
        if self._state(ctx, cache) is not None:
            ctx.runner.run(["drbdadm", "adjust", self._res(ctx)], timeout=60)
            self._refresh(ctx, self._state(ctx, cache, refresh=True), cache, force=True)
        return 0

    def notify(self, ctx: Context) -> int:
        n = ctx.notify
        ctx.log.info(f"notify {n.type}-{n.operation}: start={sorted(n.nodes('start'))} "
                     f"stop={sorted(n.nodes('stop'))} promote={sorted(n.nodes('promote'))} "
                     f"demote={sorted(n.nodes('demote'))}")
        if n.type != "post":
            return 0
        try:
            cache = self._load(ctx)
            state = self._state(ctx, cache)
            if state is None:
                return 0
            if (n.operation == "start" and state.standalone
                    and not self._split_brain(ctx, state, cache)):
                # a peer (re)started: reconnect a resource left StandAlone
                ctx.runner.run(["drbdadm", "adjust", self._res(ctx)], timeout=60)
                state = self._state(ctx, cache)
            self._refresh(ctx, state, cache, force=True)
        except AgentError as e:
            ctx.log.warning(f"notify: {e.reason}")
        return 0

    def monitor(self, ctx: Context) -> int:
        from lsaa.errors import GenericError

        res = self._res(ctx)
        cache = self._load(ctx)
        state = self._state(ctx, cache, refresh=ctx.is_probe)
        if state is None:
            if ctx.is_probe:
                self._publish(ctx, None, cache, False, force=True)  # stale after a crash
            return 7
        split = self._refresh(ctx, state, cache, force=ctx.is_probe)
        disks = "/".join(state.disks)
        if state.primary:
            if not state.uptodate:
                raise FailedPromoted(f"{res} is Primary but its local disk is {disks}")
            if split:
                raise DegradedPromoted(f"{res}: split brain (StandAlone); Primary kept, "
                                       "resolve by hand")
            return 8
        if any(d in ("Diskless", "Failed", "Detaching") for d in state.disks):
            raise GenericError(f"{res} is Secondary without its disk ({disks})")
        if split:
            raise Degraded(f"{res}: split brain (StandAlone); not promotable until "
                           "resolved by hand")
        return 0


def _read_kmsg() -> list[str]:
    """All records in the kernel ring buffer, without blocking (root only)."""
    import os

    records: list[str] = []
    try:
        fd = os.open(KMSG, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return records
    try:
        while True:
            try:
                data = os.read(fd, 8192)
            except BlockingIOError:
                break
            except OSError:  # EPIPE: a record was overwritten while we read; go on
                continue
            if not data:
                break
            records.append(data.decode("utf-8", "replace"))
    finally:
        os.close(fd)
    return records


def holders(minors: list[int]) -> str:
    """Who holds /dev/drbdN open: stacked devices, mounts, processes."""
    devs = {f"/dev/drbd{m}" for m in minors}
    return ", ".join(_stacked(minors) + _mounts(devs) + _processes(devs))


def _stacked(minors: list[int]) -> list[str]:
    import os

    found = []
    for m in minors:
        try:
            entries = os.listdir(os.path.join(SYS_BLOCK, f"drbd{m}", "holders"))
        except OSError:
            continue
        for h in entries:
            try:
                with open(os.path.join(SYS_BLOCK, h, "dm", "name"), encoding="utf-8") as f:
                    found.append(f"{h} ({f.read().strip()})")
            except OSError:
                found.append(h)
    return found


def _mounts(devs: set[str]) -> list[str]:
    try:
        with open("/proc/self/mounts", encoding="utf-8") as f:
            return [f"mount {p[1]}" for p in (ln.split() for ln in f)
                    if len(p) > 1 and p[0] in devs]
    except OSError:
        return []


def _processes(devs: set[str]) -> list[str]:
    import os

    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target in devs:
                try:
                    with open(f"/proc/{pid}/comm", encoding="utf-8") as f:
                        comm = f.read().strip()
                except OSError:
                    comm = "?"
                found.append(f"pid {pid} ({comm})")
                break
    return found


AGENT = Drbd()


def main() -> None:
    from lsaa.ocf.main import main as run_main

    run_main(AGENT)
