"""A lossy UDP relay on loopback, for fault tests.

    udp_relay.py LISTEN_PORT TARGET_PORT LOSS SEED LIFETIME [in|both]

Forwards datagrams between clients and 127.0.0.1:TARGET_PORT, dropping each
one with probability LOSS (seeded, so a run can be replayed): only those on
their way to the target ("in", the default: a BMC that drops 30 % of what it
receives), or those in both directions ("both").  Each client address gets
its own upstream socket, so replies find their way back.  ``kill -STOP`` and
``-CONT`` of this process make a BMC that stops answering and comes back.
It stops by itself after LIFETIME seconds and when its parent dies; it only
ever talks to 127.0.0.1.
"""

from __future__ import annotations

import ctypes
import random
import select
import signal
import socket
import sys
import time


def main() -> None:
    listen_port, target_port = int(sys.argv[1]), int(sys.argv[2])
    loss, seed, lifetime = float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    both = len(sys.argv) > 6 and sys.argv[6] == "both"
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    rng = random.Random(seed)
    front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    front.bind(("127.0.0.1", listen_port))
    target = ("127.0.0.1", target_port)
    upstream: dict[tuple[str, int], socket.socket] = {}
    client_of: dict[socket.socket, tuple[str, int]] = {}
    counts = {"in": 0, "out": 0, "dropped": 0}
    print("ready", flush=True)
    end = time.monotonic() + lifetime
    while time.monotonic() < end:
        ready, _, _ = select.select([front, *client_of], [], [], 0.5)
        for sock in ready:
            data, addr = sock.recvfrom(65535)
            if sock is front:
                counts["in"] += 1
                up = upstream.get(addr)
                if up is None:
                    up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    up.bind(("127.0.0.1", 0))
                    upstream[addr] = up
                    client_of[up] = addr
                dest, via = target, up
            else:
                counts["out"] += 1
                dest, via = client_of[sock], front
            if (sock is front or both) and rng.random() < loss:
                counts["dropped"] += 1
                continue
            via.sendto(data, dest)
    print(f"done {counts}", flush=True)


if __name__ == "__main__":
    main()
