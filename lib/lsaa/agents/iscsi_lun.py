"""ocf:lsaa:iscsi-lun — one logical unit of an iSCSI target (LIO or tgt).

The unit's identity (unit serial, which LIO also turns into the NAA WWN, and
vendor/product) is computed from the resource name when not given, so every
node exports the same disk and initiators' multipath sees one device after a
failover.  Stop deletes the backstore, which closes the backing device so
DRBD or LVM below can be demoted.
"""

from __future__ import annotations

import os

from lsaa.agents.iscsi_common import ACTIONS, TGT_CONTROL_PORT, control_port, implementation
from lsaa.backends.iscsiname import check_name, only
from lsaa.errors import GenericError, LocalConfigError, NotInstalledError
from lsaa.ocf import OCF_NOT_RUNNING, OCF_SUCCESS
from lsaa.ocf.agent import Agent, Context
from lsaa.ocf.spec import AgentSpec, Param

TYPE_CHECKING = False  # see lsaa.errors
if TYPE_CHECKING:
    from collections.abc import Callable

    from lsaa.backends.lio import LunState
    from lsaa.backends.tgt import TgtTarget


def _absolute(raw: str) -> str:
    if not raw.startswith("/") or "\n" in raw or "," in raw:
        raise ValueError(f"{raw[:40]!r} is not an absolute path (without commas)")
    return raw


# Character sets, not regular expressions: importing re costs every monitor 4-10 ms.
_ALNUM = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_SERIAL_CHARS = _ALNUM | frozenset("._:-")
_ASCII_FIELD_CHARS = _ALNUM | frozenset(" ._-")
_BACKSTORE_CHARS = _ALNUM | frozenset("_.:-")


def _replace_others(text: str, allowed: frozenset[str]) -> str:
    """``text`` with every character not in ``allowed`` replaced by ``_``."""
    return "".join(c if c in allowed else "_" for c in text)


def _serial(raw: str) -> str:
    if not 1 <= len(raw) <= 36 or not only(raw, _SERIAL_CHARS):
        raise ValueError("1-36 characters of A-Z a-z 0-9 . _ : -")
    return raw


def _ascii_field(limit: int) -> Callable[[str], str]:
    def check(raw: str) -> str:
        if len(raw) > limit or not only(raw, _ASCII_FIELD_CHARS):
            raise ValueError(f"at most {limit} characters of A-Z a-z 0-9 space . _ -")
        return raw
    return check


def default_serial(resource: str) -> str:
    """A UUID-shaped unit serial from the resource name: the same on every node.

    Every monitor computes it, so it avoids ``uuid`` (which imports ``platform``)
    and, where CPython has its builtin SHA-256, OpenSSL's libcrypto: together
    ~40 ms per monitor in the UML lab.  The text is ``str(uuid.UUID(bytes=...))``.
    """
    try:
        from _sha256 import sha256  # type: ignore[import-not-found,unused-ignore]  # <= 3.11
    except ImportError:
        try:
            from _sha2 import sha256  # type: ignore[import-not-found,no-redef,unused-ignore]
        except ImportError:  # built without the builtin hashes (FIPS builds)
            from hashlib import sha256  # type: ignore[assignment,unused-ignore]

    h = sha256(b"lsaa-iscsi-lun\0" + resource.encode()).hexdigest()[:32]
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def backstore_name(resource: str) -> str:
    return _replace_others(resource, _BACKSTORE_CHARS)[:64] or "lsaa"


SPEC = AgentSpec(
    name="iscsi-lun",
    shortdesc="iSCSI logical unit (LIO or tgt) with a stable identity",
    longdesc=(
        "Exports a block device or file as LUN number lun of an iSCSI target managed by "
        "ocf:lsaa:iscsi-target (order this resource after it). The unit serial number "
        "(scsi_sn; LIO derives the NAA WWN from it) and the vendor and product "
        "identifiers default to values computed from the resource name, identical on "
        "every node, so initiators and multipath see the same disk after a failover. "
        "LIO: backstore named after the resource, created through rtslib-fb and mapped "
        "into every ACL of the target. tgt: logical unit with scsi_sn and scsi_id, created "
        "through tgtd's control socket. "
        "Stop deletes the LUN and its backstore, which releases the device."
    ),
    params=[
        Param("implementation", "Target implementation", "lio or tgt; unset: as detected "
              "by ocf:lsaa:iscsi-target.", choices=("lio", "tgt")),
        Param("target_iqn", "Target name", "The iSCSI name of the target to add the LUN to.",
              required=True, unique_group="lun", check=check_name),
        Param("lun", "LUN number", "The logical unit number (tgt reserves 0).",
              type="integer", required=True, unique_group="lun", minimum=0, maximum=16383),
        Param("path", "Backing device or file", "Absolute path of the block device "
              "(e.g. /dev/drbd0) or file to export.", required=True, check=_absolute),
        Param("backstore", "LIO backstore type", "block (iblock, for block devices) or "
              "fileio (files). Ignored by tgt.", choices=("block", "fileio"), default="block"),
        Param("scsi_sn", "Unit serial number",
              "VPD page 0x80 serial (LIO: also the source of the NAA WWN in page 0x83). "
              "Default: a UUID computed from the resource name, the same on every node.",
              check=_serial),
        Param("vendor_id", "SCSI vendor identification", "At most 8 characters.",
              default="LSAA", check=_ascii_field(8)),
        Param("product_id", "SCSI product identification",
              "At most 16 characters. Default: the resource name (first 16 characters).",
              check=_ascii_field(16)),
        Param("readonly", "Export read-only", "LIO: write-protected mapped LUNs (and a "
              "read-only iblock); tgt: readonly=1.", type="boolean", default="false"),
        Param("tgt_bstype", "tgt backing store type", "tgtd's backing store type (tgtadm's "
              "--bstype: rdwr, aio).",
              choices=("rdwr", "aio"), default="rdwr", advanced=True),
        TGT_CONTROL_PORT,
    ],
    actions=ACTIONS,
)


class LunConfig:
    def __init__(self, ctx: Context) -> None:
        self.iqn = str(ctx.p("target_iqn"))
        self.lun = int(str(ctx.p("lun")))
        self.path = str(ctx.p("path"))
        self.backstore = str(ctx.p("backstore"))
        self.name = backstore_name(ctx.instance_base)
        self.serial = str(ctx.p("scsi_sn") or default_serial(ctx.instance_base))
        self.vendor = str(ctx.p("vendor_id") or "")
        self.product = str(ctx.p("product_id") or
                           _replace_others(ctx.instance_base, _ASCII_FIELD_CHARS)[:16])
        self.readonly = bool(ctx.p("readonly"))
        self.bstype = str(ctx.p("tgt_bstype"))
        self.control_port = control_port(ctx)

    @property
    def scsi_id(self) -> str:
        """tgt's VPD 0x83 identifier (at most 24 characters)."""
        return self.serial.replace("-", "")[:24]


class ISCSILun(Agent):
    spec = SPEC

    def validate(self, ctx: Context) -> list[str]:
        if ctx.p("implementation") == "tgt" and ctx.p("lun") == 0:
            return ["lun: tgt reserves LUN 0 for its controller; use 1 or more"]
        return []

    def check_local(self, ctx: Context) -> None:
        path = str(ctx.p("path"))
        if not os.path.exists(path):
            raise LocalConfigError(f"path: {path} does not exist on this node")
        implementation(ctx)

    def start(self, ctx: Context) -> int:
        cfg = LunConfig(ctx)
        if not os.path.exists(cfg.path):
            raise LocalConfigError(f"{cfg.path} does not exist on this node")
        if implementation(ctx) == "lio":
            self._start_lio(ctx, cfg)
        else:
            self._start_tgt(ctx, cfg)
        if self.monitor(ctx) != OCF_SUCCESS:
            raise GenericError(f"LUN {cfg.lun} of {cfg.iqn} is not there after start")
        return OCF_SUCCESS

    def stop(self, ctx: Context) -> int:
        cfg = LunConfig(ctx)
        try:
            impl = implementation(ctx)
        except NotInstalledError as e:
            ctx.log.info(f"{e.reason}: nothing to stop")
            return OCF_SUCCESS
        if impl == "lio":
            self._stop_lio(ctx, cfg)
        else:
            self._stop_tgt(ctx, cfg)
        return OCF_SUCCESS

    def monitor(self, ctx: Context) -> int:
        cfg = LunConfig(ctx)
        if implementation(ctx) == "lio":
            from lsaa.backends import lio

            problems = lio_lun_problems(lio.inspect_lun(lio.ROOT, cfg.name, cfg.iqn, cfg.lun),
                                        cfg)
        else:
            problems = self._problems_tgt(ctx, cfg)
        if problems is None:
            return OCF_NOT_RUNNING
        if problems:
            raise GenericError(f"LUN {cfg.lun} of {cfg.iqn}: " + "; ".join(problems))
        return OCF_SUCCESS

    # --- LIO ----------------------------------------------------------------------------

    def _start_lio(self, ctx: Context, cfg: LunConfig) -> None:
        from lsaa.backends import lio
        from lsaa.lock import Lock

        lio.prepare(ctx.runner, [lio.BACKSTORE_MODULE[cfg.backstore]])
        with Lock(ctx.state_dir, "lio", ctx.deadline):
            lio.ensure_lun(cfg.iqn, cfg.lun, cfg.name, cfg.path, cfg.backstore, cfg.serial,
                           cfg.vendor, cfg.product, cfg.readonly)

    def _stop_lio(self, ctx: Context, cfg: LunConfig) -> None:
        from lsaa.backends import lio
        from lsaa.lock import Lock

        if not os.path.isdir(lio.ROOT):
            return
        with Lock(ctx.state_dir, "lio", ctx.deadline):
            lio.remove_lun(cfg.iqn, cfg.lun, cfg.name)
            if lio.find_storage_object(lio.ROOT, cfg.name):
                raise GenericError(f"backstore {cfg.name} is still in configfs")
        _check_released(ctx, cfg.path)

    # --- tgt ----------------------------------------------------------------------------

    def _show_target(self, ctx: Context, cfg: LunConfig) -> TgtTarget | None:
        from lsaa.backends.tgt import find_by_iqn, socket_path
        from lsaa.backends.tgtd_socket import Tgtd

        if not os.path.exists(socket_path(cfg.control_port)):
            return None
        return find_by_iqn(Tgtd(cfg.control_port, ctx.deadline).show(), cfg.iqn)

    def _problems_tgt(self, ctx: Context, cfg: LunConfig) -> list[str] | None:
        found = self._show_target(ctx, cfg)
        if found is None or cfg.lun not in found.luns:
            return None
        lu = found.luns[cfg.lun]
        if lu.path != cfg.path:
            return None if lu.path in ("", "None") else [f"exports {lu.path}, not {cfg.path}"]
        problems = []
        if lu.scsi_sn != cfg.serial:
            problems.append(f"serial is {lu.scsi_sn}, not {cfg.serial}")
        if lu.readonly != cfg.readonly:
            problems.append("is " + ("read-write" if cfg.readonly else "read-only"))
        return problems

    def _start_tgt(self, ctx: Context, cfg: LunConfig) -> None:
        from lsaa.backends.tgtd_socket import Tgtd
        from lsaa.lock import Lock

        if cfg.lun == 0:
            raise LocalConfigError("lun: tgt reserves LUN 0; use 1 or more")
        adm = Tgtd(cfg.control_port, ctx.deadline)
        with Lock(ctx.state_dir, "tgt", ctx.deadline):
            found = self._show_target(ctx, cfg)
            if found is None:
                raise GenericError(f"target {cfg.iqn} does not exist in tgtd "
                                   "(start its iscsi-target first)")
            tid = found.tid
            lu = found.luns.get(cfg.lun)
            if lu is not None and lu.path != cfg.path:
                raise GenericError(f"LUN {cfg.lun} of {cfg.iqn} already exports {lu.path}")
            if lu is None:
                adm.new_lun(tid, cfg.lun, cfg.path, cfg.bstype)
            params = [("scsi_sn", cfg.serial), ("scsi_id", cfg.scsi_id),
                      ("readonly", str(int(cfg.readonly)))]
            if cfg.vendor:
                params.append(("vendor_id", cfg.vendor))
            if cfg.product:
                params.append(("product_id", cfg.product))
            adm.update_lun(tid, cfg.lun, params)

    def _stop_tgt(self, ctx: Context, cfg: LunConfig) -> None:
        from lsaa.backends.tgtd_socket import LUN_ACTIVE, Tgtd, strerror
        from lsaa.lock import Lock

        adm = Tgtd(cfg.control_port, ctx.deadline)
        with Lock(ctx.state_dir, "tgt", ctx.deadline):
            while True:
                found = self._show_target(ctx, cfg)
                if found is None or cfg.lun not in found.luns:
                    return
                if found.luns[cfg.lun].path != cfg.path:
                    ctx.log.info(f"LUN {cfg.lun} exports {found.luns[cfg.lun].path}: not ours")
                    return
                err = adm.delete_lun(found.tid, cfg.lun)
                if not err:
                    continue  # the next show confirms
                ctx.log.info(f"tgtd refused to delete LUN {cfg.lun}: {strerror(err)}")
                if err == LUN_ACTIVE and found.connections:
                    # An initiator doing I/O always has commands in flight, so tgtd would
                    # refuse for as long as it runs: close the target's connections (the
                    # initiators log in again) and delete before they are back, as LIO
                    # deletes a LUN under I/O.
                    ctx.log.info(f"closing {len(found.connections)} connection(s) of "
                                 f"{cfg.iqn} to end the commands in flight")
                    adm.close_connections(found)
                    if not adm.delete_lun(found.tid, cfg.lun):
                        continue
                ctx.deadline.sleep(0.5, f"deleting LUN {cfg.lun} of {cfg.iqn}")


def _check_released(ctx: Context, path: str) -> None:
    """Log whether the block device can be opened exclusively (nobody holds it)."""
    import stat

    try:
        if not stat.S_ISBLK(os.stat(path).st_mode):
            return
        fd = os.open(path, os.O_RDONLY | os.O_EXCL)
    except OSError as e:
        ctx.log.warning(f"{path} is still held after the backstore was deleted: {e.strerror}")
        return
    os.close(fd)
    ctx.log.debug(f"{path} is released")


def lio_lun_problems(st: LunState, cfg: LunConfig) -> list[str] | None:
    """None when the LUN is absent; otherwise what differs from the configuration."""
    if not st.so_path:
        return None
    if not st.target_exists:
        return [f"backstore {cfg.name} left without its target"]
    if not st.lun_exists or st.lun_so != os.path.realpath(st.so_path):
        return [f"backstore {cfg.name} left without its LUN"]
    problems = []
    if st.udev_path != cfg.path:
        problems.append(f"backstore is on {st.udev_path or '?'}, not {cfg.path}")
    if st.serial != cfg.serial:
        problems.append(f"serial is {st.serial or '?'}, not {cfg.serial}")
    if cfg.vendor and st.vendor and st.vendor != cfg.vendor:
        problems.append(f"vendor is {st.vendor}, not {cfg.vendor}")
    if cfg.product and st.product and st.product != cfg.product:
        problems.append(f"product is {st.product}, not {cfg.product}")
    if cfg.backstore == "block" and st.readonly != cfg.readonly:
        problems.append("block backstore is " + ("read-write" if cfg.readonly else "read-only"))
    if not st.enabled:
        problems.append("backstore not enabled")
    problems += [f"not mapped for {acl}" for acl, ok in st.mapped.items() if not ok]
    problems += [f"write protection wrong for {acl}" for acl, wp in st.write_protect.items()
                 if st.mapped.get(acl) and wp != cfg.readonly]
    return problems


AGENT = ISCSILun()


def main() -> None:
    from lsaa.ocf.main import main as run_main

    run_main(AGENT)
