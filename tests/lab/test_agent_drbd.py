"""ocf:lsaa:drbd against DRBD 8.4.11 between two lab guests.

There is no Pacemaker in the guests: ``crm_attribute`` and ``cibadmin`` are
replaced (in the guest's overlay /usr/sbin only) by stubs that keep node
attributes in /run/fake-attrs and answer "no such object" for the CIB, so the
promotion scores the agent publishes can be read back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .test_smoke_util import wait_until

if TYPE_CHECKING:
    from .labctl import Guest, Result

CONF = """\
global {{ usage-count no; }}
common {{
  net {{ protocol C; ping-int 1; ping-timeout 5; }}
  disk {{ c-plan-ahead 0; resync-rate 300M; }}
}}
resource r0 {{
  on {n1} {{ device /dev/drbd0; disk {d1}; address {a1}:7788; meta-disk internal; }}
  on {n2} {{ device /dev/drbd0; disk {d2}; address {a2}:7788; meta-disk internal; }}
}}
"""

FAKE_CRM_ATTRIBUTE = """#!/bin/sh
# test stub: crm_attribute --node N --name A --lifetime reboot --update V|--delete|--query
mkdir -p /run/fake-attrs; name=; op=; val=
while [ $# -gt 0 ]; do case $1 in
  --name) name=$2; shift;; --update) op=set; val=$2; shift;; --delete) op=del;;
  --query) op=get;; esac; shift; done
case $op in
  set) echo "$val" > /run/fake-attrs/$name;; del) rm -f /run/fake-attrs/$name;;
  get) [ -f /run/fake-attrs/$name ] || exit 105; cat /run/fake-attrs/$name;; esac
"""
FAKE_CIBADMIN = "#!/bin/sh\nexit 105\n"
SCORE = "/run/fake-attrs/master-drbd"
SIZE_MB = 8
META = {"OCF_RESKEY_CRM_meta_clone_max": "2", "OCF_RESKEY_CRM_meta_clone_node_max": "1",
        "OCF_RESKEY_CRM_meta_promoted_max": "1", "OCF_RESKEY_CRM_meta_promoted_node_max": "1",
        "OCF_RESKEY_CRM_meta_notify": "true"}


def _prepare(g: Guest, conf: str) -> None:
    path = g.put_file("drbd.conf", conf)
    stub = g.put_file("crm_attribute", FAKE_CRM_ATTRIBUTE, mode=0o755)
    cib = g.put_file("cibadmin", FAKE_CIBADMIN, mode=0o755)
    g.sh(f"cp {path} /etc/drbd.conf; cp {stub} /usr/sbin/crm_attribute; "
         f"cp {cib} /usr/sbin/cibadmin; modprobe drbd; "
         "drbdadm -- --force create-md r0 >/dev/null 2>&1", check=True, timeout=60)


def agent(g: Guest, action: str, interval: int = 0, **params: str) -> Result:
    env = {**META, "OCF_RESKEY_CRM_meta_on_node": g.name,
           "OCF_RESKEY_CRM_meta_interval": str(interval)}
    return g.agent("drbd", action, {"drbd_resource": "r0", **params}, env=env)


def score(g: Guest) -> str:
    return g.run(["cat", SCORE]).stdout.strip()


def _pair(pair: tuple[Guest, Guest]) -> tuple[Guest, Guest]:
    n1, n2 = pair
    conf = CONF.format(n1="node1", n2="node2", d1="/dev/ubda", d2="/dev/ubda",
                       a1=n1.ip(), a2=n2.ip())
    for g in pair:
        _prepare(g, conf)
    r = agent(n1, "start", wfc_timeout="0")
    assert r.rc == 0, r.stderr
    r = agent(n2, "start")
    assert r.rc == 0, r.stderr
    wait_until(lambda: n1.run(["drbdadm", "cstate", "r0"]).stdout.strip() == "Connected",
               30, "connection")
    return n1, n2


def test_failover_keeps_data_and_inconsistent_is_never_promoted(
        guest_pair: tuple[Guest, Guest]) -> None:
    n1, n2 = _pair(guest_pair)
    # fresh metadata on both sides: Inconsistent/Inconsistent
    r = agent(n1, "promote")
    assert r.rc == 1
    assert "Inconsistent" in r.stderr
    assert agent(n1, "monitor", 20000).rc == 0
    assert score(n1) == ""  # Inconsistent: no promotion score at all
    # test setup only: both disks blank, skip the initial sync
    n1.run(["drbdadm", "--", "--clear-bitmap", "new-current-uuid", "r0"], check=True)
    wait_until(lambda: n2.run(["drbdadm", "dstate", "r0"]).stdout.strip()
               == "UpToDate/UpToDate", 30, "UpToDate on both")
    for g in (n1, n2):
        assert agent(g, "monitor", 20000).rc == 0
        assert score(g) == "10000"
    r = agent(n1, "promote")
    assert r.rc == 0, r.stderr
    assert agent(n1, "monitor", 10000).rc == 8
    assert agent(n1, "monitor").rc == 8  # probe of a Primary
    written = n1.sh(f"head -c {SIZE_MB}M /dev/urandom > /tmp/data\n"
                    "dd if=/tmp/data of=/dev/drbd0 bs=1M oflag=direct status=none\n"
                    "md5sum < /tmp/data", check=True).stdout.split()[0]
    # demote refused while held open: the holder is named
    pid = n1.spawn(["python3", "-c",
                    "import time; f=open('/dev/drbd0','rb'); time.sleep(3)"])
    r = n1.agent("drbd", "demote", {"drbd_resource": "r0"}, timeout=2,
                 env={**META, "OCF_RESKEY_CRM_meta_on_node": "node1"})
    assert r.rc == 1
    assert f"pid {pid} (python3)" in r.stderr
    wait_until(lambda: not n1.run(["test", "-d", f"/proc/{pid}"]).ok, 20, "holder exit")

    n1.kill()  # the primary's node dies
    wait_until(lambda: n2.run(["drbdadm", "cstate", "r0"]).stdout.strip() != "Connected",
               30, "node2 to notice")
    assert agent(n2, "monitor", 20000).rc == 0
    assert score(n2) == "1000"  # lone UpToDate ranks below a pair
    r = agent(n2, "promote")
    assert r.rc == 0, r.stderr
    assert agent(n2, "monitor", 10000).rc == 8
    read = n2.sh(f"dd if=/dev/drbd0 bs=1M count={SIZE_MB} iflag=direct status=none | md5sum",
                 check=True).stdout.split()[0]
    assert read == written
    assert agent(n2, "demote").rc == 0
    assert agent(n2, "stop").rc == 0
    assert score(n2) == ""
    assert agent(n2, "monitor").rc == 7


def test_split_brain_is_reported_not_resolved(guest_pair: tuple[Guest, Guest]) -> None:
    n1, n2 = _pair(guest_pair)
    n1.run(["drbdadm", "--", "--clear-bitmap", "new-current-uuid", "r0"], check=True)
    wait_until(lambda: n2.run(["drbdadm", "dstate", "r0"]).stdout.strip()
               == "UpToDate/UpToDate", 30, "UpToDate on both")
    for g in (n1, n2):
        g.run(["drbdadm", "disconnect", "r0"], check=True)
    for g in (n1, n2):
        assert agent(g, "promote").rc == 0
        g.sh("dd if=/dev/urandom of=/dev/drbd0 bs=4k count=8 oflag=direct status=none",
             check=True)
    assert agent(n2, "demote").rc == 0
    for g in (n1, n2):
        g.run(["drbdadm", "connect", "r0"], check=True)
    wait_until(lambda: n2.run(["drbdadm", "cstate", "r0"]).stdout.strip() == "StandAlone"
               and n1.run(["drbdadm", "cstate", "r0"]).stdout.strip() == "StandAlone",
               30, "split brain to drop the connection")
    r1 = agent(n1, "monitor", 10000)
    assert r1.rc == 191, r1.stderr  # OCF_DEGRADED_PROMOTED: kept, reported
    assert "split brain" in r1.stderr
    r2 = agent(n2, "monitor", 20000)
    assert r2.rc == 190, r2.stderr
    assert "split brain" in r2.stderr
    assert score(n2) == ""  # the diverged Secondary is never promoted
    r = agent(n2, "promote")
    assert r.rc == 1
    assert "split brain" in r.stderr
    # still StandAlone: the agent resolved nothing
    assert n2.run(["drbdadm", "cstate", "r0"]).stdout.strip() == "StandAlone"
    # a post-start notification must not reconnect a split-brained resource
    r = n2.agent("drbd", "notify", {"drbd_resource": "r0"},
                 env={**META, "OCF_RESKEY_CRM_meta_on_node": "node2",
                      "OCF_RESKEY_CRM_meta_notify_type": "post",
                      "OCF_RESKEY_CRM_meta_notify_operation": "start"})
    assert r.rc == 0
    assert n2.run(["drbdadm", "cstate", "r0"]).stdout.strip() == "StandAlone"


def test_conformance_harness_lone_node(guest: Guest) -> None:
    g = guest
    conf = CONF.format(n1="node1", n2="ghost", d1="/dev/ubda", d2="/dev/ubda",
                       a1="127.0.0.1", a2="127.0.0.2")
    g.run(["ip", "link", "set", "lo", "up"])
    _prepare(g, conf)
    # test setup only: make the lone node's data UpToDate (never done by the agent)
    g.sh("drbdadm up r0 && drbdadm primary --force r0 && drbdadm secondary r0 && "
         "drbdadm down r0", check=True)
    r = g.run(["python3", "-m", "lsaa.tester", "ocf", "-o", "drbd_resource=r0",
               "-o", "wfc_timeout=0", "-n", "drbd",
               "-e", "OCF_RESKEY_CRM_meta_on_node=node1",
               "--invalid", "drbd_resource=-x", "--invalid", "adjust_master_score=1 2",
               "--hostile", "/work/main/ocf/drbd"], timeout=300,
              env={"PYTHONPATH": "/work/main/lib"})
    assert r.rc == 0, r.stdout[-3000:] + r.stderr[-2000:]
