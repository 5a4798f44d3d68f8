"""ocf:lsaa:haproxy: monitor at depth 0 and 10 against a bare interpreter start, and a
reload-agent against a plain ``haproxy -c`` of the same configuration (what a reload costs on
top of the check it always makes).  Information only: no targets."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import Cmd, Row, medians

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AGENT = os.path.join(ROOT, "ocf", "haproxy")
PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(gen: int, fe: int, be: int) -> str:
    return (f"defaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n"
            f"    timeout server 5s\nfrontend fe\n    bind 127.0.0.1:{fe}\n"
            f"    http-response set-header X-Gen {gen}\n    default_backend web\n"
            f"backend web\n    server s1 127.0.0.1:{be} check inter 1s\n")


def rows(rounds: int = 30) -> list[Row]:
    if shutil.which("haproxy", path=PATH) is None:
        return []
    state = tempfile.mkdtemp(prefix="lsaa-bench-haproxy-")
    fe, be = _port(), _port()
    text = _config(1, fe, be)
    cfg = os.path.join(state, "check.cfg")
    with open(cfg, "w", encoding="utf-8") as f:
        f.write(text)
    env = {"PATH": PATH, "OCF_ROOT": "/usr/lib/ocf", "OCF_RESOURCE_INSTANCE": "bench",
           "HA_RSCTMP": state, "HA_LOGFACILITY": "none", "OCF_RESKEY_config_text": text,
           "OCF_RESKEY_backends": "web", "OCF_RESKEY_CRM_meta_interval": "10000",
           "OCF_RESKEY_CRM_meta_timeout": "20000"}
    deep = {**env, "OCF_CHECK_LEVEL": "10"}
    reload_env = {**env, "OCF_RESKEY_CRM_meta_interval": "0"}
    subprocess.run([AGENT, "start"], env=env, check=True, capture_output=True)
    try:
        m = medians({
            "bare": Cmd(["/usr/bin/python3", "-c", "pass"], env),
            # the backend's only server is down: depth 10 answers 1 after the full check
            "mon0": Cmd([AGENT, "monitor"], env),
            "mon10": Cmd([AGENT, "monitor"], deep, ok=(0, 1)),
            "reload": Cmd([AGENT, "reload-agent"], reload_env),
            "check": Cmd(["haproxy", "-c", "-f", cfg], env),
        }, rounds)
    finally:
        subprocess.run([AGENT, "stop"], env=env, check=False, capture_output=True)
        shutil.rmtree(state, ignore_errors=True)
    return [
        Row("haproxy monitor depth 0 vs bare python3", m["mon0"], "python3 -c pass",
            m["bare"], None),
        Row("haproxy monitor depth 10 vs bare python3", m["mon10"], "python3 -c pass",
            m["bare"], None),
        Row("haproxy reload-agent vs haproxy -c", m["reload"], "haproxy -c (same config)",
            m["check"], None),
    ]


if __name__ == "__main__":
    from run import print_table

    print_table(rows())
