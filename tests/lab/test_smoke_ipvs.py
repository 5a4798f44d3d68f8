"""ip_vs in the lab: a host-side client reaches a real HTTP server through a NAT VIP.

front 192.168.77.0/24: client (host side, .254) and director node1 (.1, VIP .100)
back  192.168.78.0/24: director node1 (.1) and real server node2 (.2, gateway .1)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .test_smoke_util import wait_until

if TYPE_CHECKING:
    from .labctl import Lab

VIP = "192.168.77.100"
CLIENT = f"""
import urllib.request
for _ in range(3):
    print(urllib.request.urlopen("http://{VIP}/who.txt", timeout=10).read().decode().strip())
"""


def test_nat_vip_carries_real_http_traffic(lab: Lab) -> None:
    front, back = lab.network("front"), lab.network("back")
    director, real = lab.boot({"name": "node1", "nics": [(front, 1), (back, 1)]},
                              {"name": "node2", "nics": [(back, 2)]})
    real.sh(f"ip route add default via {back.addr(1)}\n"
            "mkdir -p /tmp/www && echo served-by-node2 > /tmp/www/who.txt")
    real.spawn(["python3", "-m", "http.server", "8080", "--bind", real.ip(), "--directory",
                "/tmp/www"])
    director.sh(
        "modprobe ip_vs; modprobe ip_vs_rr\n"
        "sysctl -qw net.ipv4.ip_forward=1\n"
        f"ip addr add {VIP}/24 dev eth0\n"
        f"ipvsadm -A -t {VIP}:80 -s rr\n"
        f"ipvsadm -a -t {VIP}:80 -r {real.ip()}:8080 -m\n", check=True)
    wait_until(lambda: director.run(["python3", "-c", "import socket; socket.create_connection("
                                     f"('{real.ip()}', 8080), 1)"]).ok, 30, "real server up")

    r = lab.host_run(["python3", "-c", CLIENT], timeout=60)
    assert r.ok, r.stderr
    assert r.stdout.split() == ["served-by-node2"] * 3

    # One connection entry per request (TIME_WAIT after the close).  The --stats
    # counters would lag: the kernel sums them in its 2 s rate estimator.
    conns = director.run(["ipvsadm", "-Lnc"], check=True).stdout.splitlines()
    through_vip = [c for c in conns if f"{VIP}:80" in c and f"{real.ip()}:8080" in c]
    assert len(through_vip) >= 3, conns
