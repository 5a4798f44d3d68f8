"""LIO (the kernel iSCSI target) through configfs: inspection and rtslib-fb changes.

Two halves, on purpose:

* ``inspect_*`` read configfs directly with ``os`` calls.  Monitors use only
  these: reading a few files costs microseconds, imports nothing, and the
  same code runs against a plain directory tree in unit tests (a tree shaped
  like ``/sys/kernel/config/target``).
* ``ensure_*`` / ``remove_*`` change configfs through rtslib-fb, in process
  (no targetcli child, no D-Bus).  rtslib's constructors have kernel side
  effects (mkdir in configfs makes the kernel create default groups such as
  ``tpgt_1/np``, ``acls``, ``attrib``), so they cannot run against a plain
  tree: they are exercised in the kernel lab (tests/lab/test_agent_iscsi.py).

Callers hold ``Lock(state_dir, "lio", deadline)`` around every change.
Layout (``<root>`` is ``/sys/kernel/config/target``)::

    <root>/iscsi/<iqn>/tpgt_1/{enable,attrib/*,param/*,auth/*,np/<ip>:<port>}
    <root>/iscsi/<iqn>/tpgt_1/lun/lun_<L>/<link to ../core/<hba>/<name>>
    <root>/iscsi/<iqn>/tpgt_1/acls/<initiator>/{info,auth/*,lun_<M>/{<link>,write_protect}}
    <root>/core/{iblock,fileio}_<N>/<name>/{udev_path,enable,wwn/vpd_unit_serial,wwn/vendor_id}
"""

from __future__ import annotations

import os

from lsaa.errors import ConfigError, GenericError, NotInstalledError

TYPE_CHECKING = False  # see lsaa.errors
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from typing import Any

    from lsaa.backends.iscsiname import Portal
    from lsaa.run import Runner

CONFIGFS = "/sys/kernel/config"
ROOT = CONFIGFS + "/target"
TPG_TAG = 1
HBA_PREFIX = {"block": "iblock", "fileio": "fileio"}
BACKSTORE_MODULE = {"block": "target_core_iblock", "fileio": "target_core_file"}
CHAP_FILES = ("userid", "password", "userid_mutual", "password_mutual")
NO_SESSION = "No active iSCSI Session"


def _read(path: str) -> str | None:
    # os.open/os.read: 4 system calls where open() makes 7 (fstat, isatty ioctl, lseek).
    # A monitor reads 5 files per ACL, and each system call is a context switch under
    # UML (and costly in VMs): this halves the 256-ACL target monitor.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        chunks = []
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    except OSError:  # EISDIR, or the object went away meanwhile
        return None
    finally:
        os.close(fd)
    return b"".join(chunks).decode("utf-8", errors="replace").strip()


def _auth_value(raw: str | None) -> str:
    # configfs prints an unset CHAP field as "" (new kernels) or "NULL" (rtslib's word)
    return "" if raw in (None, "NULL") else str(raw)


# --- inspection (plain os calls; unit-testable on a tmp tree) ----------------------------

class TargetState:
    """What configfs says about one target's TPG 1."""

    __slots__ = ("acl_auth", "acl_sessions", "acls", "attrib", "dynamic_sessions", "enabled",
                 "exists", "luns", "param", "portals", "tpg_auth")

    def __init__(self) -> None:
        self.exists = False
        self.enabled = False
        self.portals: list[str] = []
        self.acls: list[str] = []
        self.attrib: dict[str, str] = {}
        self.param: dict[str, str] = {}
        self.tpg_auth: dict[str, str] = {}
        self.acl_auth: dict[str, dict[str, str]] = {}
        self.acl_sessions: list[str] = []     # initiators with a session through their ACL
        self.dynamic_sessions: list[str] = []  # demo-mode sessions
        self.luns: list[int] = []

    @property
    def sessions(self) -> list[str]:
        return self.acl_sessions + self.dynamic_sessions


def tpg_path(root: str, iqn: str) -> str:
    return os.path.join(root, "iscsi", iqn, f"tpgt_{TPG_TAG}")


def inspect_target(root: str, iqn: str, attribs: Iterable[str] = (),
                   params: Iterable[str] = ()) -> TargetState:
    """Read ``iqn``'s TPG: enable, portals, ACLs with their CHAP fields and sessions."""
    st = TargetState()
    tpg = tpg_path(root, iqn)
    if not os.path.isdir(os.path.dirname(tpg)):
        return st
    st.exists = True
    st.enabled = _read(os.path.join(tpg, "enable")) == "1"
    st.portals = _listdir(os.path.join(tpg, "np"))
    st.acls = _listdir(os.path.join(tpg, "acls"))
    wanted = {"authentication", "generate_node_acls", "demo_mode_write_protect"}
    wanted.update(attribs)
    for name in wanted:
        value = _read(os.path.join(tpg, "attrib", name))
        if value is not None:
            st.attrib[name] = value
    for name in params:
        value = _read(os.path.join(tpg, "param", name))
        if value is not None:
            st.param[name] = value
    st.tpg_auth = {k: _auth_value(_read(os.path.join(tpg, "auth", k))) for k in CHAP_FILES}
    for acl in st.acls:
        base = os.path.join(tpg, "acls", acl)
        st.acl_auth[acl] = {k: _auth_value(_read(os.path.join(base, "auth", k)))
                            for k in CHAP_FILES}
        info = _read(os.path.join(base, "info")) or ""
        if info and not info.startswith(NO_SESSION):
            st.acl_sessions.append(acl)
    dyn = _read(os.path.join(tpg, "dynamic_sessions")) or ""
    st.dynamic_sessions = [w for w in dyn.split() if w]
    st.luns = sorted(int(n[4:]) for n in _listdir(os.path.join(tpg, "lun"))
                     if n.startswith("lun_") and n[4:].isdigit())
    return st


class LunState:
    """What configfs says about one backstore and its LUN in a TPG."""

    __slots__ = ("enabled", "lun_exists", "lun_so", "mapped", "product", "readonly", "serial",
                 "so_path", "target_exists", "udev_path", "vendor", "write_protect")

    def __init__(self) -> None:
        self.so_path = ""          # configfs dir of the storage object, "" when absent
        self.udev_path = ""
        self.serial = ""
        self.vendor = ""
        self.product = ""
        self.enabled = False
        self.readonly = False
        self.target_exists = False
        self.lun_exists = False
        self.lun_so = ""           # configfs dir the LUN links to
        self.mapped: dict[str, bool] = {}  # ACL -> the LUN is mapped at the same number
        self.write_protect: dict[str, bool] = {}


def _so_readonly(so_dir: str) -> bool:
    """An iblock backstore opened read-only (its ``info`` says ``readonly: 1``)."""
    return "readonly: 1" in (_read(os.path.join(so_dir, "info")) or "")


def find_storage_object(root: str, name: str, backstore: str | None = None) -> str:
    """The configfs directory of storage object ``name`` (any HBA of the type), or ""."""
    kinds = [HBA_PREFIX[backstore]] if backstore else list(HBA_PREFIX.values())
    core = os.path.join(root, "core")
    hbas = _listdir(core)  # not glob: it imports re (with enum), 4 ms per monitor in UML
    for kind in kinds:
        for hba in hbas:
            path = os.path.join(core, hba, name)
            if hba.startswith(f"{kind}_") and os.path.isdir(path):
                return path
    return ""


def inspect_lun(root: str, name: str, iqn: str, lun: int) -> LunState:
    st = LunState()
    so = find_storage_object(root, name)
    if so:
        st.so_path = so
        st.udev_path = _read(os.path.join(so, "udev_path")) or ""
        serial = _read(os.path.join(so, "wwn", "vpd_unit_serial")) or ""
        st.serial = serial.rpartition(": ")[2] if ": " in serial else serial
        st.vendor = _read(os.path.join(so, "wwn", "vendor_id")) or ""
        st.product = _read(os.path.join(so, "wwn", "product_id")) or ""
        enable = _read(os.path.join(so, "enable"))
        st.enabled = enable is None or enable == "1"
        st.readonly = _so_readonly(so)
    tpg = tpg_path(root, iqn)
    st.target_exists = os.path.isdir(tpg)
    lun_dir = os.path.join(tpg, "lun", f"lun_{lun}")
    if os.path.isdir(lun_dir):
        st.lun_exists = True
        for entry in _listdir(lun_dir):
            full = os.path.join(lun_dir, entry)
            if os.path.islink(full):
                st.lun_so = os.path.realpath(full)
    for acl in _listdir(os.path.join(tpg, "acls")):
        mdir = os.path.join(tpg, "acls", acl, f"lun_{lun}")
        st.mapped[acl] = _has_link(mdir)
        st.write_protect[acl] = _read(os.path.join(mdir, "write_protect")) == "1"
    return st


def _has_link(path: str) -> bool:
    """``path`` is a directory with a symlink in it (scandir: d_type, no lstat per entry)."""
    try:
        with os.scandir(path) as it:
            return any(e.is_symlink() for e in it)
    except OSError:
        return False


def _listdir(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


# --- setup: modules and configfs, through the runner ---------------------------------------

def loaded_modules() -> set[str]:
    text = _read("/proc/modules") or ""
    return {line.split(" ", 1)[0] for line in text.splitlines() if line}


def prepare(runner: Runner, modules: Sequence[str] = ()) -> None:
    """configfs mounted, target_core_mod, iscsi_target_mod and ``modules`` loaded.

    Raises NotInstalledError naming the module that cannot be loaded.
    """
    loaded = loaded_modules()

    def load(module: str) -> None:
        if module in loaded:
            return
        from lsaa.errors import CommandError

        try:
            runner.run(["modprobe", module])
        except CommandError as e:
            raise NotInstalledError(f"kernel module {module} cannot be loaded: "
                                    f"{e.reason.rpartition(': ')[2]}") from None
    if not os.path.isdir(CONFIGFS):
        load("configfs")
    if not os.path.ismount(CONFIGFS):
        runner.run(["mount", "-t", "configfs", "configfs", CONFIGFS])
    if not os.path.isdir(ROOT):
        load("target_core_mod")
    if not os.path.isdir(os.path.join(ROOT, "iscsi")):
        load("iscsi_target_mod")
        if not os.path.isdir(os.path.join(ROOT, "iscsi")):
            os.mkdir(os.path.join(ROOT, "iscsi"))  # the fabric dir is made on demand
    for module in modules:
        load(module)


def _rtslib() -> Any:
    try:
        import rtslib_fb
    except ImportError:
        raise NotInstalledError("python3-rtslib-fb is not installed") from None
    return rtslib_fb


def _so_from_path(path: str) -> Any:
    from rtslib_fb.tcm import StorageObject

    return StorageObject.so_from_path(path)


def _err(what: str, e: Exception) -> GenericError:
    return GenericError(f"{what}: {e}")


# --- changes through rtslib ---------------------------------------------------------------

def _tpg(rts: Any, iqn: str, mode: str) -> Any:
    fabric = rts.FabricModule("iscsi")
    target = rts.Target(fabric, iqn, mode)
    return rts.TPG(target, TPG_TAG, mode)


def ensure_target(  # noqa: PLR0912 - one pass over the TPG, in kernel order
    iqn: str,
    portals: Sequence[Portal],
    initiators: Sequence[str],
    chap: tuple[str, str] | None,
    mutual: tuple[str, str] | None,
    attributes: Sequence[tuple[str, str]],
) -> None:
    """Target ``iqn`` with TPG 1 exactly as asked, enabled last.

    Auth attributes and ACLs are set before the TPG is enabled; portals and
    ACLs not asked for (such as targetcli's default 0.0.0.0:3260) are removed.
    An empty ``initiators`` means open access (generate_node_acls=1).
    """
    rts = _rtslib()
    try:
        tpg = _tpg(rts, iqn, "any")
        open_access = not initiators
        tpg.set_attribute("authentication", "1" if chap else "0")
        tpg.set_attribute("generate_node_acls", "1" if open_access else "0")
        if open_access:
            tpg.set_attribute("cache_dynamic_acls", "1")
            tpg.set_attribute("demo_mode_write_protect", "0")
        _set_chap(tpg, chap, mutual if open_access else None)
        wanted = {str(p) for p in portals}
        for np in list(tpg.network_portals):
            if os.path.basename(np.path) not in wanted:
                np.delete()
        have = set(_listdir(os.path.join(tpg.path, "np")))
        for p in portals:
            if str(p) not in have:
                rts.NetworkPortal(tpg, p.bracketed_host, p.port, "create")
        for acl in list(tpg.node_acls):
            if acl.node_wwn not in initiators:
                acl.delete()
        luns = list(tpg.luns)
        for name in initiators:
            acl = rts.NodeACL(tpg, name, "any")
            _set_chap(acl, chap, mutual)
            for lun in luns:
                if not os.path.isdir(os.path.join(acl.path, f"lun_{lun.lun}")):
                    rts.MappedLUN(acl, lun.lun, lun)
        for name, value in attributes:
            if os.path.exists(os.path.join(tpg.path, "attrib", name)):
                tpg.set_attribute(name, value)
            else:
                tpg.set_parameter(name, value)
        tpg.enable = True
    except rts.RTSLibError as e:
        raise _err(f"LIO target {iqn}", e) from None
    except OSError as e:
        raise GenericError(f"LIO target {iqn}: {e.strerror or e}") from None


def _set_chap(node: Any, chap: tuple[str, str] | None, mutual: tuple[str, str] | None) -> None:
    user, password = chap or ("", "")
    muser, mpassword = mutual or ("", "")
    node.chap_userid = user
    node.chap_password = password
    node.chap_mutual_userid = muser
    node.chap_mutual_password = mpassword


def remove_target(iqn: str) -> None:
    """Delete target ``iqn`` (its TPGs, portals, ACLs and LUN links; not backstores)."""
    rts = _rtslib()
    try:
        target = rts.Target(rts.FabricModule("iscsi"), iqn, "lookup")
    except rts.RTSLibNotInCFS:
        return
    except rts.RTSLibError as e:
        raise _err(f"LIO target {iqn}", e) from None
    try:
        for tpg in target.tpgs:
            tpg.enable = False  # ends the sessions before the objects go
        target.delete()
    except rts.RTSLibError as e:
        raise _err(f"cannot delete LIO target {iqn}", e) from None


def ensure_lun(  # noqa: PLR0912 - one pass: backstore, identity, LUN, mapped LUNs
    iqn: str,
    lun: int,
    name: str,
    path: str,
    backstore: str,
    serial: str,
    vendor: str,
    product: str,
    readonly: bool,
) -> None:
    """Backstore ``name`` on ``path`` with the given identity, exported as LUN ``lun``
    of ``iqn`` and mapped at the same number in every ACL of the TPG."""
    rts = _rtslib()
    root = ROOT
    try:
        tpg = _tpg(rts, iqn, "lookup")
    except rts.RTSLibNotInCFS:
        raise GenericError(f"target {iqn} does not exist (start its iscsi-target first)") from None
    if readonly and _read(os.path.join(tpg.path, "attrib", "generate_node_acls")) == "1":
        # LIO write-protects a LUN per ACL; open access (demo mode) has a TPG-wide switch
        # only, which would also protect every other LUN of the target
        raise ConfigError(f"readonly: target {iqn} has open access (no allowed_initiators), "
                          "where LIO cannot write-protect one LUN; list the initiators on "
                          "its iscsi-target")
    try:
        so_dir = find_storage_object(root, name)
        so = _so_from_path(so_dir) if so_dir else None
        if so is not None and (so.udev_path != path or so.plugin != HBA_PREFIX[backstore]
                               or not so.is_configured()
                               or (backstore == "block" and _so_readonly(so.path) != readonly)):
            so.delete()  # ours by name but stale: rebuild it
            so = None
        if so is None:
            if backstore == "block":
                so = rts.BlockStorageObject(name, dev=path, wwn=serial, readonly=readonly)
            else:
                so = rts.FileIOStorageObject(name, dev=path, size=os.path.getsize(path),
                                             wwn=serial, write_back=False)
        if so.wwn != serial:
            so.wwn = serial
        for field, value in (("vendor_id", vendor), ("product_id", product)):
            fpath = os.path.join(so.path, "wwn", field)
            if value and os.path.exists(fpath) and _read(fpath) != value:
                with open(fpath, "w", encoding="ascii") as f:
                    f.write(value)
        lun_dir = os.path.join(tpg.path, "lun", f"lun_{lun}")
        if os.path.isdir(lun_dir):
            tpg_lun = rts.LUN(tpg, lun)
            if tpg_lun.storage_object != so:
                raise GenericError(f"LUN {lun} of {iqn} already exports "
                                   f"{tpg_lun.storage_object.name}")
        else:
            tpg_lun = rts.LUN(tpg, lun, so)
        for acl in tpg.node_acls:
            mdir = os.path.join(acl.path, f"lun_{lun}")
            if not os.path.isdir(mdir):
                rts.MappedLUN(acl, lun, tpg_lun, readonly)
            elif _read(os.path.join(mdir, "write_protect")) != ("1" if readonly else "0"):
                rts.MappedLUN(acl, lun).write_protect = readonly
    except rts.RTSLibError as e:
        raise _err(f"LIO LUN {lun} of {iqn}", e) from None
    except OSError as e:
        raise GenericError(f"LIO LUN {lun} of {iqn}: {e.strerror or e}") from None


def remove_lun(iqn: str, lun: int, name: str) -> None:
    """Remove LUN ``lun`` of ``iqn`` if it exports ``name``, then backstore ``name``."""
    rts = _rtslib()
    root = ROOT
    so_dir = find_storage_object(root, name)
    try:
        lun_dir = os.path.join(tpg_path(root, iqn), "lun", f"lun_{lun}")
        if os.path.isdir(lun_dir):
            tpg = _tpg(rts, iqn, "lookup")
            tpg_lun = rts.LUN(tpg, lun)
            linked = inspect_lun(root, name, iqn, lun).lun_so
            if so_dir and linked == os.path.realpath(so_dir):
                tpg_lun.delete()
        if so_dir:
            _so_from_path(so_dir).delete()
    except rts.RTSLibError as e:
        raise _err(f"cannot remove LIO LUN {lun} of {iqn}", e) from None
    except OSError as e:
        raise GenericError(f"cannot remove LIO LUN {lun} of {iqn}: {e.strerror or e}") from None
