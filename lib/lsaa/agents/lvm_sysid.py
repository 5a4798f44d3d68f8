"""ocf:lsaa:lvm-sysid — an LVM volume group that moves between nodes by system ID.

The VG's metadata names its owner (``vg_systemid``); LVM refuses to touch a VG
owned by another host.  start takes the VG over from whoever owned it (a failed
node: Pacemaker starts us only once the previous owner stopped or was fenced),
**verifies** the takeover by re-reading the VG, switches auto-activation off and
activates the LVs; stop deactivates them (and optionally clears the ID).

Beyond ocf:heartbeat:LVM-activate (vg_access_mode=system_id):

* the result of ``vgchange --systemid`` is checked and the VG re-read (the anchor
  ignores the exit status and goes on to activate);
* monitor runs no command at all: active LVs are read from
  ``/sys/block/dm-*/dm/name`` (names demangled, so VG ``a`` never matches VG
  ``a-b``); every LV activated at start must still be there, a partially active
  VG is a failure;
* ``OCF_CHECK_LEVEL=10`` re-reads the owner (a VG stolen behind our back is a
  failure) and reads one block of each LV with O_DIRECT;
* no udev (containers, the UML lab) is detected and handled;
* missing PVs refuse the start unless ``partial_activation`` says otherwise.

Exit codes: a node whose lvm.conf gives no system ID (``system_id_source``
unset or ``none``), or whose ``volume_list`` would block activation, is a
node-local problem: lvm.conf is a per-node file, so start and validate-all
(level 10) exit 2 (OCF_ERR_ARGS: Pacemaker bans this node and tries another),
not 6, which would stop the resource everywhere for one node's mistake
(ocf-contract §4, §14; LVM-activate also exits 2).  A VG without a system ID or
with a lock type (lvmlockd/clvm) is wrong on every node — its metadata lives on
the shared disks — so that is 6.
"""

from __future__ import annotations

from lsaa.ocf.agent import Agent
from lsaa.ocf.spec import Action, AgentSpec, Param

TYPE_CHECKING = False  # see lsaa.errors
if TYPE_CHECKING:
    from collections.abc import Iterable

    from lsaa.ocf.agent import Context
    from lsaa.run import Result

NO_UDEV = ("activation { udev_sync=0 udev_rules=0 monitoring=0 } "
           "devices { obtain_device_list_from_udev=0 }")
UDEV_CONTROL = "/run/udev/control"
SYS_BLOCK = "/sys/block"


def _vgname(raw: str) -> str:
    from lsaa.backends.lvm import check_name

    return check_name(raw, "volume group name")


def _lv_list(raw: str) -> str:
    from lsaa.backends.lvm import check_name

    names = raw.replace(",", " ").split()
    for n in names:
        check_name(n, "logical volume name")
    if len(set(names)) != len(names):
        raise ValueError("a logical volume is listed twice")
    return " ".join(names)


def _lvm_config(raw: str) -> str:
    if "\n" in raw or "\r" in raw:
        raise ValueError("must be one line of lvm.conf settings")
    if raw.count("{") != raw.count("}"):
        raise ValueError("unbalanced braces")
    return raw.strip()


SPEC = AgentSpec(
    name="lvm-sysid",
    shortdesc="LVM volume group moved between nodes by its system ID",
    longdesc=(
        "Activates an LVM volume group owned through LVM's system ID "
        "(lvmsystemid(7)). start takes the VG over from its previous owner "
        "(vgchange --systemid with that owner granted through "
        "local/extra_system_ids for this one command), verifies the new owner by "
        "re-reading the VG, disables auto-activation and activates the LVs; stop "
        "deactivates them. Every node needs global/system_id_source set (not none) "
        "in lvm.conf and no activation/volume_list that excludes the VG. LVM does "
        "not lock against a live previous owner: fencing is what makes the takeover "
        "safe. Without udev (no /run/udev/control) LVM commands get udev_sync=0, "
        "udev_rules=0 and obtain_device_list_from_udev=0."
    ),
    params=[
        Param("vgname", "Volume group name", "The volume group to activate.",
              required=True, unique_group="vg", check=_vgname),
        Param("lvs", "Logical volumes to activate",
              "Space- or comma-separated LV names of the VG to activate. Empty: all "
              "LVs. Monitor checks exactly the LVs start activated.",
              default="", check=_lv_list),
        Param("activation_mode", "Activation mode",
              "exclusive: the LVs are active on this node only. A VG with a system ID "
              "can only be active on its owner, so this is the only mode.",
              choices=("exclusive",), default="exclusive"),
        Param("clear_systemid_on_stop", "Clear the system ID on stop",
              "After deactivating, remove the VG's system ID. A VG without a system "
              "ID is accessible to every host, so this is off by default; the next "
              "start takes the VG over either way.",
              type="boolean", default="false"),
        Param("partial_activation", "Activate with missing PVs",
              "Activate even when physical volumes are missing (lvchange "
              "--activationmode partial). Off: start refuses a VG with missing PVs.",
              type="boolean", default="false"),
        Param("lvm_config", "Extra LVM configuration",
              "lvm.conf settings added to every LVM command with --config, e.g. "
              "'devices { filter=[\"a|/dev/sd.*|\",\"r|.*|\"] }'.",
              default="", check=_lvm_config, advanced=True),
    ],
    actions=[
        Action("start", 90),
        Action("stop", 90),
        Action("monitor", 90, interval=30),
        Action("monitor", 90, interval=60, depth=10),
        Action("validate-all", 30),
        Action("meta-data", 5),
    ],
)


class LvmSysid(Agent):
    spec = SPEC

    # -- helpers ------------------------------------------------------------
    def _vg(self, ctx: Context) -> str:
        return str(ctx.p("vgname"))

    def _lvs_param(self, ctx: Context) -> list[str]:
        return str(ctx.p("lvs") or "").split()

    def _config(self, ctx: Context, extra: str = "") -> list[str]:
        import os

        parts = []
        if not os.path.exists(UDEV_CONTROL):
            parts.append(NO_UDEV)
        if ctx.p("lvm_config"):
            parts.append(str(ctx.p("lvm_config")))
        if extra:
            parts.append(extra)
        return ["--config", " ".join(parts)] if parts else []

    def _lvm(self, ctx: Context, cmd: str, *args: str, ok: Iterable[int] = (0,),
             extra: str = "", timeout: float = 60) -> Result:
        head = [cmd, args[0]] if cmd == "lvm" else [cmd]  # lvm <subcommand> --config ...
        rest = args[1:] if cmd == "lvm" else args
        return ctx.runner.run([*head, *self._config(ctx, extra), *rest], ok=ok,
                              timeout=timeout)

    def _read_vg(self, ctx: Context) -> dict[str, str] | None:
        from lsaa.backends.lvm import LVM_ECMD_FAILED, parse_vgs
        from lsaa.errors import GenericError

        res = self._lvm(ctx, "vgs", "--foreign", "--reportformat", "json", "-o",
                        "vg_name,vg_systemid,vg_lock_type,vg_missing_pv_count,lv_count,"
                        "vg_autoactivation", self._vg(ctx), ok=(0, LVM_ECMD_FAILED))
        try:
            rows = parse_vgs(res.stdout)
        except ValueError as e:
            raise GenericError(f"vgs: {e}") from None
        for row in rows:
            if row.get("vg_name") == self._vg(ctx):
                return row
        return None

    def _local_id(self, ctx: Context) -> str:
        from lsaa.backends.lvm import parse_systemid
        from lsaa.errors import LocalConfigError

        sid = parse_systemid(self._lvm(ctx, "lvm", "systemid").stdout)
        if not sid:
            raise LocalConfigError("this node has no LVM system ID: set global/"
                                   "system_id_source (not none) in lvm.conf")
        return sid

    def _check_volume_list(self, ctx: Context) -> None:
        from lsaa.backends.lvm import LVM_ECMD_FAILED, parse_config_list, volume_list_allows
        from lsaa.errors import LocalConfigError

        res = self._lvm(ctx, "lvmconfig", "activation/volume_list", ok=(0, LVM_ECMD_FAILED))
        entries = parse_config_list(res.stdout, "volume_list") if res.rc == 0 else None
        if entries is None:
            return
        allowed = volume_list_allows(entries, self._vg(ctx), self._lvs_param(ctx))
        if allowed is False:
            raise LocalConfigError(f"activation/volume_list in lvm.conf does not include "
                                   f"{self._vg(ctx)}: activation would silently do nothing")
        if allowed is None:
            ctx.log.warning("activation/volume_list has only tag entries: activation "
                            "depends on the VG's tags")

    def _dm_names(self) -> list[str]:
        import os

        names = []
        try:
            entries = os.listdir(SYS_BLOCK)
        except OSError:
            return []
        for entry in entries:
            if not entry.startswith("dm-"):
                continue
            try:
                with open(os.path.join(SYS_BLOCK, entry, "dm", "name"), encoding="utf-8") as f:
                    names.append(f.read().strip())
            except OSError:
                continue  # removed while we looked
        return names

    def _active(self, ctx: Context) -> dict[str, list[str]]:
        from lsaa.backends.lvm import active_lvs

        return active_lvs(self._dm_names(), self._vg(ctx))

    def _expected(self, ctx: Context) -> list[str] | None:
        """LVs this instance activated: the parameter, else what start recorded."""
        listed = self._lvs_param(ctx)
        if listed:
            return listed
        try:
            with open(ctx.state_file("lvs"), encoding="utf-8") as f:
                return f.read().split()
        except OSError:
            return None

    def _record(self, ctx: Context, lvs: list[str]) -> None:
        import os

        path = ctx.state_file("lvs")
        try:
            os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
            with open(path + ".tmp", "w", encoding="utf-8") as f:
                f.write("\n".join(lvs) + "\n")
            os.replace(path + ".tmp", path)
        except OSError as e:
            ctx.log.warning(f"cannot record the activated LVs in {path}: {e.strerror}")

    def _forget(self, ctx: Context) -> None:
        import os

        try:
            os.unlink(ctx.state_file("lvs"))
        except OSError:
            pass

    # -- validation -----------------------------------------------------------
    def check_local(self, ctx: Context) -> None:
        import shutil

        from lsaa.errors import NotInstalledError

        for tool in ("lvm", "vgs", "vgchange", "lvchange"):
            if shutil.which(tool, path="/usr/sbin:/usr/bin:/sbin:/bin") is None:
                raise NotInstalledError(f"{tool} not found: install lvm2")
        self._local_id(ctx)
        self._check_volume_list(ctx)

    # -- actions --------------------------------------------------------------
    def start(self, ctx: Context) -> int:
        from lsaa.errors import ConfigError, GenericError

        vg = self._vg(ctx)
        me = self._local_id(ctx)
        self._check_volume_list(ctx)
        row = self._read_vg(ctx)
        if row is None:
            raise GenericError(f"volume group {vg} not found on this node")
        if row.get("vg_lock_type"):
            raise ConfigError(f"volume group {vg} has lock type {row['vg_lock_type']}, "
                              "not a system ID")
        owner = row.get("vg_systemid", "")
        if not owner:
            raise ConfigError(f"volume group {vg} has no system ID: set one with "
                              f"vgchange --systemid (see lvmsystemid(7))")
        missing = int(row.get("vg_missing_pv_count") or 0)
        if missing and not ctx.p("partial_activation"):
            raise GenericError(f"volume group {vg} has {missing} missing PV(s); "
                               "set partial_activation=true to activate anyway")
        if owner != me:
            self._take_over(ctx, owner, me)
            row = self._read_vg(ctx) or row
        if row.get("vg_autoactivation") == "enabled":
            # otherwise a reboot or pvscan could activate it here behind the cluster
            self._lvm(ctx, "vgchange", "--setautoactivation", "n", vg)
        lvs = self._activate(ctx)
        self._record(ctx, lvs)
        rc = self.monitor(ctx)
        if rc != 0:
            raise GenericError(f"{vg}: LVs not active after activation")
        return rc

    def _take_over(self, ctx: Context, owner: str, me: str) -> None:
        from lsaa.errors import GenericError

        vg = self._vg(ctx)
        if '"' in owner or "\\" in owner:
            raise GenericError(f"{vg}: cannot quote system ID {owner!r} for --config")
        ctx.log.info(f"taking over volume group {vg} from system ID {owner!r}")
        res = self._lvm(ctx, "vgchange", "-y", "--systemid", me, vg, ok=(0, 5),
                        extra=f'local {{ extra_system_ids=["{owner}"] }}')
        after = self._read_vg(ctx)
        now = after.get("vg_systemid") if after else None
        if now != me:
            detail = (res.stderr.strip().splitlines() or [f"rc {res.rc}"])[-1].strip()
            raise GenericError(f"takeover of {vg} from {owner} failed (system ID now "
                               f"{now!r}): {detail}")
        if res.rc != 0:
            ctx.log.warning(f"vgchange --systemid exited {res.rc} but {vg} is ours")

    def _activate(self, ctx: Context) -> list[str]:
        from lsaa.backends.lvm import parse_lvs
        from lsaa.errors import ConfigError, GenericError

        vg = self._vg(ctx)
        res = self._lvm(ctx, "lvs", "--reportformat", "json", "-o", "lv_name", vg)
        try:
            names = [r["lv_name"] for r in parse_lvs(res.stdout)]
        except (ValueError, KeyError) as e:
            raise GenericError(f"lvs: {e}") from None
        wanted = self._lvs_param(ctx)
        missing = [lv for lv in wanted if lv not in names]
        if missing:
            raise ConfigError(f"volume group {vg} has no LV {', '.join(missing)}")
        targets = wanted or names
        if not targets:
            raise ConfigError(f"volume group {vg} has no logical volumes")
        mode = ["--activationmode", "partial"] if ctx.p("partial_activation") else []
        self._lvm(ctx, "lvchange", "-ay", *mode,
                  *([f"{vg}/{lv}" for lv in wanted] if wanted else [vg]))
        return targets

    def stop(self, ctx: Context) -> int:
        from lsaa.errors import GenericError

        vg = self._vg(ctx)
        wanted = self._lvs_param(ctx)
        targets = [f"{vg}/{lv}" for lv in wanted] if wanted else [vg]
        for attempt in range(3):
            active = self._active(ctx)
            left = [lv for lv in active if not wanted or lv in wanted]
            if not left:
                break
            if attempt:
                ctx.deadline.sleep(1.0, "deactivation")
            res = self._lvm(ctx, "lvchange", "-an", *targets, ok=range(256))
            if res.rc != 0:
                ctx.log.warning("lvchange -an: " + " ".join(res.stderr.split())[-200:])
        else:
            active = self._active(ctx)
            left = [lv for lv in active if not wanted or lv in wanted]
            if left:
                raise GenericError(f"{vg}: still active: {self._holders(ctx, active, left)}")
        self._forget(ctx)
        if ctx.p("clear_systemid_on_stop"):
            self._clear(ctx)
        return 0

    def _holders(self, ctx: Context, active: dict[str, list[str]], left: list[str]) -> str:
        """"lv (open N, held by dm-3)" for each LV still active."""
        import os

        by_name = {}
        for entry in os.listdir(SYS_BLOCK) if os.path.isdir(SYS_BLOCK) else []:
            try:
                with open(os.path.join(SYS_BLOCK, entry, "dm", "name"), encoding="utf-8") as f:
                    by_name[f.read().strip()] = entry
            except OSError:
                continue
        out = []
        for lv in left:
            held = []
            for dm in active.get(lv, []):
                dev = by_name.get(dm)
                if dev:
                    try:
                        held += os.listdir(os.path.join(SYS_BLOCK, dev, "holders"))
                    except OSError:
                        pass
            out.append(lv + (f" (held by {','.join(held)})" if held else " (in use)"))
        return ", ".join(out)

    def _clear(self, ctx: Context) -> None:
        from lsaa.errors import GenericError

        vg = self._vg(ctx)
        row = self._read_vg(ctx)
        if row is None:
            return
        me = self._local_id(ctx)
        if row.get("vg_systemid") != me:
            ctx.log.info(f"{vg} is owned by {row.get('vg_systemid')!r}: system ID left alone")
            return
        self._lvm(ctx, "vgchange", "-y", "--systemid", "", vg, ok=(0, 5))
        after = self._read_vg(ctx)
        if after is not None and after.get("vg_systemid"):
            raise GenericError(f"{vg}: could not clear system ID {after['vg_systemid']}")

    def monitor(self, ctx: Context) -> int:
        from lsaa.errors import GenericError

        vg = self._vg(ctx)
        active = self._active(ctx)
        if not active:
            return 7
        expected = self._expected(ctx)
        if expected is not None:
            down = [lv for lv in expected if lv not in active]
            if down:
                if len(down) == len(expected):
                    return 7
                raise GenericError(f"{vg}: LV(s) {', '.join(down)} no longer active")
        if ctx.check_level >= 10 and not ctx.is_probe:
            self._deep_check(ctx, expected or sorted(active))
        return 0

    def _deep_check(self, ctx: Context, lvs: list[str]) -> None:
        """Level 10: the VG is still ours, and each LV answers a 4 KiB direct read."""
        from lsaa.errors import GenericError

        vg = self._vg(ctx)
        row = self._read_vg(ctx)
        me = self._local_id(ctx)
        if row is None or row.get("vg_systemid") != me:
            owner = row.get("vg_systemid") if row else None
            raise GenericError(f"{vg} is active here but owned by system ID {owner!r}")
        from lsaa.backends.lvm import dm_mangle

        for lv in lvs:
            path = f"/dev/mapper/{dm_mangle(vg)}-{dm_mangle(lv)}"
            ctx.runner.run(["dd", f"if={path}", "of=/dev/null", "bs=4096", "count=1",
                            "iflag=direct", "status=none"], timeout=10)


AGENT = LvmSysid()


def main() -> None:
    from lsaa.ocf.main import main as run_main

    run_main(AGENT)
