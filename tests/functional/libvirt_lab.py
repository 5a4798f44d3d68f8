"""A root libvirtd run by hand, for fence_lsaa_libvirt's tests and benchmark.

lab-recipes.md C.1-C.3: libvirtd runs in its own mount namespace, where a
scratch directory stands in for /run/libvirt, /var, /etc/libvirt and where
passwd/group have a ``libvirt-qemu`` user (the QEMU driver refuses to start
without one), under a child subreaper so that destroyed QEMUs are reaped at
once.  It listens on a unix socket (no auth) and on 127.0.0.1:<port> with SASL
DIGEST-MD5 (a user/password in a private sasldb), so the agent's password path
is tested against a real libvirtd; and on 127.0.0.1:<tls_port> with TLS
(a CA, server and client certificates made here with openssl; the client
certificate authenticates).  QEMU domains use TCG and no disk.

Every process started here is recorded by PID and stopped by PID.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid as uuidlib
from pathlib import Path

LIBVIRTD = "/usr/sbin/libvirtd"
VIRSH = "/usr/bin/virsh"
QEMU = "/usr/bin/qemu-system-x86_64"
SASLPASSWD = "/usr/sbin/saslpasswd2"
PATH = "/usr/sbin:/usr/bin:/sbin:/bin"

SUBREAPER = '''\
import ctypes, os, signal, sys
ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
child = os.fork()
if child == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
alive = True
def kids():
    me = str(os.getpid())
    for p in os.listdir('/proc'):
        if p.isdigit():
            try:
                with open('/proc/%s/stat' % p) as f:
                    if f.read().rsplit(')', 1)[1].split()[1] == me:
                        yield int(p)
            except (OSError, IndexError):
                pass
def fwd(sig, _frame):
    for pid in ([child] if alive else list(kids())):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(s, fwd)
rc = 0
while True:
    try:
        pid, st = os.wait()
    except ChildProcessError:
        break
    if pid == child:
        alive = False
        rc = os.waitstatus_to_exitcode(st)
sys.exit(rc if rc >= 0 else 128 - rc)
'''

LIBVIRTD_CONF = '''\
listen_tls = 1
tls_port = "{tls_port}"
key_file = "{pki}/serverkey.pem"
cert_file = "{pki}/servercert.pem"
ca_file = "{pki}/cacert.pem"
auth_tls = "none"
listen_tcp = 1
listen_addr = "127.0.0.1"
tcp_port = "{port}"
auth_tcp = "sasl"
unix_sock_group = "root"
unix_sock_ro_perms = "0777"
unix_sock_rw_perms = "0770"
auth_unix_ro = "none"
auth_unix_rw = "none"
keepalive_interval = 2
keepalive_count = 3
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
'''

QEMU_CONF = '''\
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
cgroup_controllers = [ ]
namespaces = [ ]
stdio_handler = "file"
'''

SASL_CONF = '''\
mech_list: digest-md5
sasldb_path: {db}
'''

DOMAIN_XML = '''\
<domain type='qemu'>
  <name>{name}</name>
  <uuid>{uuid}</uuid>
  <memory unit='MiB'>16</memory><vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <on_poweroff>destroy</on_poweroff><on_reboot>restart</on_reboot><on_crash>destroy</on_crash>
  <devices><emulator>{qemu}</emulator><memballoon model='none'/>
    <video><model type='none'/></video></devices>
</domain>
'''

TEST_DOMAIN_XML = '''\
<domain type='test'><name>{name}</name><memory>8192</memory><os><type>hvm</type></os></domain>
'''


def missing() -> str | None:
    """Why this machine cannot run the lab, or None."""
    if os.geteuid() != 0:
        return "needs root (mount namespace, libvirtd)"
    for tool in (LIBVIRTD, VIRSH, QEMU, SASLPASSWD, "/usr/bin/unshare"):
        if not os.path.exists(tool):
            return f"{tool} is not installed (scripts/setup/apt-libvirt.txt)"
    try:
        import libvirt  # noqa: F401
    except ImportError:
        return "python3-libvirt is not installed"
    if not os.path.exists("/usr/sbin/fence_lsaa_libvirt"):
        return "/usr/sbin/fence_lsaa_libvirt is missing (make dev-install)"
    return None


def make_pki(d: Path, ca_name: str = "lsaa-lab-ca") -> None:
    """In ``d``: a CA (cacert.pem, ca.key), libvirtd's certificate for 127.0.0.1
    (servercert.pem, serverkey.pem) and, in ``d/client``, what a client's pkipath
    holds (cacert.pem, clientcert.pem, clientkey.pem).  Keys never leave ``d``."""
    client = d / "client"
    client.mkdir(parents=True)

    def ssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, timeout=60, cwd=d,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
        "cacert.pem", "-days", "2", "-subj", f"/CN={ca_name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    for name, cn, ext in (
            ("server", "127.0.0.1", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth"),
            ("client", "fencer", "extendedKeyUsage=clientAuth")):
        (d / f"{name}.ext").write_text(
            f"basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n{ext}\n")
        ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}key.pem", "-out",
            f"{name}.csr", "-subj", f"/O=lsaa lab/CN={cn}")
        ssl("x509", "-req", "-in", f"{name}.csr", "-CA", "cacert.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext",
            "-out", f"{name}cert.pem")
    for f in ("cacert.pem", "clientcert.pem", "clientkey.pem"):
        shutil.copy(d / f, client / f)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LibvirtLab:
    """One libvirtd with its own state directory; ``stop()`` removes everything."""

    def __init__(self, prefix: str = "lsaa-libvirt-", sasl_user: str = "fencer",
                 sasl_password: str = "s3cret pass#word") -> None:
        self.base = Path(tempfile.mkdtemp(prefix=prefix))
        self.base.chmod(0o755)
        self.port = free_port()
        self.tls_port = free_port()
        self.sasl_user = sasl_user
        self.sasl_password = sasl_password
        self.pids: list[int] = []  # subreapers, newest last
        self.anchors: list[subprocess.Popen[bytes]] = []
        self._prepare()

    # --- URIs ---------------------------------------------------------------

    @property
    def socket(self) -> str:
        return str(self.base / "run" / "libvirt-sock")

    @property
    def uri(self) -> str:
        """The QEMU driver through the unix socket (no auth)."""
        return f"qemu+unix:///system?socket={self.socket}"

    @property
    def tcp_uri(self) -> str:
        """The QEMU driver over TCP with SASL (username/password)."""
        return f"qemu+tcp://127.0.0.1:{self.port}/system"

    def tls_uri(self, pki: str | None = None) -> str:
        """The QEMU driver over TLS, the client's CA and certificate in ``pki`` (the
        lab's client directory by default)."""
        return (f"qemu+tls://127.0.0.1:{self.tls_port}/system"
                f"?pkipath={pki or self.base / 'pki' / 'client'}")

    @property
    def test_uri(self) -> str:
        """libvirt's test driver, shared through this libvirtd (needs an anchor)."""
        return f"test+unix:///default?socket={self.socket}"

    # --- set-up -------------------------------------------------------------

    def _prepare(self) -> None:
        b = self.base
        for d in ("run", "var/lib/libvirt", "var/cache/libvirt", "var/log/libvirt", "var/tmp",
                  "etc", "sasl2"):
            (b / d).mkdir(parents=True, exist_ok=True)
        os.symlink("/run", b / "var" / "run")
        make_pki(b / "pki")
        (b / "etc" / "libvirtd.conf").write_text(LIBVIRTD_CONF.format(
            port=self.port, tls_port=self.tls_port, pki=b / "pki"))
        (b / "etc" / "qemu.conf").write_text(QEMU_CONF)
        (b / "subreaper.py").write_text(SUBREAPER)
        passwd = Path("/etc/passwd").read_text()
        group = Path("/etc/group").read_text()
        if "\nlibvirt-qemu:" not in "\n" + passwd:
            passwd += "libvirt-qemu:x:64055:64055:Libvirt Qemu:/var/lib/libvirt:/usr/sbin/nologin\n"
        if "\nlibvirt-qemu:" not in "\n" + group:
            group += "libvirt-qemu:x:64055:\n"
        (b / "passwd").write_text(passwd)
        (b / "group").write_text(group)
        db = b / "sasl2" / "passwd.db"
        (b / "sasl2" / "libvirt.conf").write_text(SASL_CONF.format(db=db))
        # The password goes through stdin (-p), never argv.
        subprocess.run([SASLPASSWD, "-a", "libvirt", "-f", str(db), "-p", "-c", self.sasl_user],
                       input=self.sasl_password.encode(), check=True, timeout=10,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def env(self) -> dict[str, str]:
        """A clean environment for clients: never LIBVIRT_DEFAULT_URI from outside."""
        return {"PATH": PATH, "LC_ALL": "C", "HOME": str(self.base)}

    def start(self, wait: float = 60.0) -> None:
        """Start libvirtd (again, after a kill: the state directory persists)."""
        b = self.base
        script = (
            "mount -t tmpfs tmpfs /run && mkdir -p /run/libvirt && "
            f"mount --bind {b}/run /run/libvirt && mount --bind {b}/var /var && "
            f"mount --bind {b}/etc /etc/libvirt && mount --bind {b}/passwd /etc/passwd && "
            f"mount --bind {b}/group /etc/group && "
            f"exec {LIBVIRTD} --listen -f /etc/libvirt/libvirtd.conf")
        env = {**self.env(), "SASL_CONF_PATH": str(b / "sasl2")}
        with open(b / "stdout.log", "ab") as out:
            proc = subprocess.Popen(
                [sys.executable, str(b / "subreaper.py"), "unshare", "-m", "--propagation",
                 "private", "sh", "-c", script],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                start_new_session=True)
        self.pids.append(proc.pid)
        self._procs = getattr(self, "_procs", [])
        self._procs.append(proc)
        end = time.monotonic() + wait
        while time.monotonic() < end:
            if proc.poll() is not None:
                raise RuntimeError(f"libvirtd exited with {proc.returncode}: "
                                   + self.log_tail())
            if self.virsh("version", check=False, timeout=10).returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError("libvirtd did not answer in time: " + self.log_tail())

    def log_tail(self) -> str:
        text = ""
        for name in ("stdout.log", "var/log/libvirt/libvirtd.log"):
            try:
                text += (self.base / name).read_text(errors="replace")[-1500:]
            except OSError:
                pass
        return text

    def libvirtd_pid(self) -> int:
        """PID of the running libvirtd (the subreaper's child)."""
        me = str(self.pids[-1])
        for p in os.listdir("/proc"):
            if not p.isdigit():
                continue
            try:
                with open(f"/proc/{p}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                with open(f"/proc/{p}/comm") as f:
                    comm = f.read().strip()
            except OSError:
                continue
            if fields[1] == me and comm == "libvirtd":
                return int(p)
        raise RuntimeError("libvirtd is not running")

    def kill_libvirtd(self) -> None:
        """SIGKILL libvirtd (QEMUs survive, as after a crash); its subreaper
        keeps reaping them."""
        pid = self.libvirtd_pid()
        os.kill(pid, signal.SIGKILL)
        end = time.monotonic() + 10
        while time.monotonic() < end and os.path.exists(f"/proc/{pid}/stat"):
            try:
                with open(f"/proc/{pid}/stat") as f:
                    if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                        break
            except OSError:
                break
            time.sleep(0.02)
        # the unix socket file stays behind; the next libvirtd replaces it

    # --- clients ------------------------------------------------------------

    def virsh(self, *args: str, uri: str | None = None, check: bool = True,
              timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run([VIRSH, "-q", "-c", uri or self.uri, *args], env=self.env(),
                              capture_output=True, text=True, timeout=timeout, check=check)

    def domstate(self, name: str, uri: str | None = None) -> str:
        """The state libvirt reports, read independently of the agent: ``running``,
        ``shut off``... or ``missing``."""
        r = self.virsh("domstate", name, uri=uri, check=False)
        if r.returncode != 0:
            if "ailed to get domain" in r.stderr or "not found" in r.stderr:
                return "missing"
            raise RuntimeError(f"virsh domstate {name}: {r.stderr.strip()}")
        return r.stdout.strip()

    def define(self, name: str, *, start: bool = True, transient: bool = False) -> str:
        """A diskless TCG domain; returns its UUID."""
        uuid = str(uuidlib.uuid4())
        xml = self.base / f"{name}.xml"
        xml.write_text(DOMAIN_XML.format(name=name, uuid=uuid, qemu=QEMU))
        if transient:
            self.virsh("create", str(xml))
        else:
            self.virsh("define", str(xml))
            if start:
                self.virsh("start", name)
        return uuid

    def remove(self, name: str) -> None:
        """Destroy and undefine ``name``, whatever its state."""
        self.virsh("destroy", name, check=False)
        self.virsh("undefine", name, check=False)

    def anchor(self, uri: str) -> None:
        """Hold a connection open so the shared test driver keeps its state (C.3)."""
        code = ("import libvirt, sys, time\n"
                "libvirt.registerErrorHandler(lambda c, e: None, None)\n"
                f"c = libvirt.open({uri!r})\n"
                "sys.stdout.write('ready\\n'); sys.stdout.flush()\n"
                "sys.stdin.read()\n")
        proc = subprocess.Popen(["/usr/bin/python3", "-c", code], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, env=self.env())
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != b"ready":
            proc.kill()
            proc.wait()
            raise RuntimeError(f"anchor connection to {uri} failed")
        self.anchors.append(proc)

    def define_test_domains(self, names: list[str], running: set[str] | None = None) -> None:
        """Define domains in the shared test driver, in one client process."""
        running = running or set()
        code = (
            "import json, sys, libvirt\n"
            "libvirt.registerErrorHandler(lambda c, e: None, None)\n"
            "uri, names, running, xml = json.load(sys.stdin)\n"
            "c = libvirt.open(uri)\n"
            "for n in names:\n"
            "    d = c.defineXML(xml.format(name=n))\n"
            "    if n in running: d.create()\n"
            "    elif d.isActive(): d.destroy()\n")
        import json

        subprocess.run(["/usr/bin/python3", "-c", code], check=True, timeout=120,
                       env=self.env(), input=json.dumps(
                           [self.test_uri, names, sorted(running), TEST_DOMAIN_XML]).encode())

    # --- teardown -----------------------------------------------------------

    def qemu_pids(self) -> list[int]:
        pids = []
        qdir = self.base / "run" / "qemu"
        for pidfile in qdir.glob("*.pid") if qdir.is_dir() else []:
            try:
                pid = int(pidfile.read_text().strip())
            except (OSError, ValueError):
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if b"qemu" in f.read():
                        pids.append(pid)
            except OSError:
                pass
        return pids

    def stop(self) -> list[str]:
        """Stop everything; return what could not be stopped (empty when clean)."""
        left: list[str] = []
        for a in self.anchors:
            if a.stdin:
                a.stdin.close()
            try:
                a.wait(5)
            except subprocess.TimeoutExpired:
                a.kill()
                a.wait()
        self.anchors.clear()
        try:
            for name in self.virsh("list", "--all", "--name", check=False,
                                   timeout=10).stdout.split():
                self.virsh("destroy", name, check=False, timeout=10)
        except (subprocess.TimeoutExpired, OSError):
            pass
        for pid in self.qemu_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for proc in getattr(self, "_procs", []):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in getattr(self, "_procs", []):
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                left.append(f"subreaper {proc.pid} ignored SIGTERM; killed")
                proc.kill()
                proc.wait()
        left += [f"qemu {pid} still running" for pid in self.qemu_pids()]
        if not left:
            shutil.rmtree(self.base, ignore_errors=True)
        return left
