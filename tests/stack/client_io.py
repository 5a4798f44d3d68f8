"""Guest side of the stack's iSCSI client: numbered, checksummed writes and their check.

Runs in the client guest under the system Python (stdlib only)::

    client_io.py write DEV LOG [BLOCKS]   write records until SIGTERM
    client_io.py verify DEV LOG [BLOCKS]  read the device back, check every acknowledged
                                          record; one JSON line on stdout

The writer writes one 4 KiB record at a time, round robin over the first BLOCKS blocks
of DEV, with O_DIRECT | O_SYNC (no page cache on the client; the call returns only once
the target has acknowledged the write as stable).  A record holds a magic, its sequence
number, its block, and a SHA-256 of the whole.  Only AFTER the write call has returned
is the line ``A SEQ BLOCK START END`` appended to LOG (wall-clock seconds); a write that
fails is logged ``E SEQ BLOCK START END ERRNO`` and retried with the same record, so a
write that stalls through a failover simply returns late.  SIGTERM stops the writer
after the write in progress.  A new writer continues the numbering found in LOG.

The verifier replays LOG: for every block, the newest acknowledged record must be on
the device intact, or a newer record that was attempted for that block (a write that
failed may still have reached the disk).  Anything else is a lost acknowledged write.
"""

from __future__ import annotations

import errno
import hashlib
import json
import mmap
import os
import signal
import struct
import sys
import time

BS = 4096
MAGIC = b"LSAAREC1"
HEAD = struct.Struct("<8sQQd")  # magic, seq, block, time written
BLOCKS = 256  # 1 MiB: every block is rewritten every 15-30 s at the writer's pace
PACE = 0.05  # seconds between writes: ~20 per second, little CPU in a UML guest


def record(seq: int, block: int, t: float) -> bytes:
    head = HEAD.pack(MAGIC, seq, block, t)
    fill = hashlib.sha256(head).digest() * ((BS - len(head) - 32) // 32)
    body = head + fill + bytes(BS - len(head) - len(fill) - 32)
    return body + hashlib.sha256(body).digest()


def parse(data: bytes) -> tuple[int, int] | None:
    """(seq, block) of an intact record, None for anything else (zeros, torn, garbage)."""
    body, digest = data[:-32], data[-32:]
    if data[:8] != MAGIC or hashlib.sha256(body).digest() != digest:
        return None
    _magic, seq, block, _t = HEAD.unpack_from(data)
    return seq, block


def read_log(path: str) -> tuple[dict[int, int], dict[int, set[int]], int, int]:
    """From LOG: block -> newest acknowledged seq, block -> attempted seqs, last seq,
    number of acknowledged writes."""
    acked: dict[int, int] = {}
    tried: dict[int, set[int]] = {}
    last = n_acked = 0
    try:
        with open(path, encoding="ascii") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        lines = []
    for line in lines:
        w = line.split()
        if len(w) < 5 or w[0] not in ("A", "E"):
            continue  # a line cut by a guest that died while writing it
        seq, block = int(w[1]), int(w[2])
        last = max(last, seq)
        tried.setdefault(block, set()).add(seq)
        if w[0] == "A":
            n_acked += 1
            acked[block] = max(seq, acked.get(block, -1))
    return acked, tried, last, n_acked


def write(dev: str, log: str, blocks: int) -> int:
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    _acked, _tried, seq, _n = read_log(log)
    buf = mmap.mmap(-1, BS)  # page-aligned, as O_DIRECT needs
    fd = os.open(dev, os.O_RDWR | os.O_DIRECT | os.O_SYNC)
    out = open(log, "a", encoding="ascii")  # noqa: SIM115 - lives as long as the loop
    while not stop:
        seq += 1
        block = (seq - 1) % blocks
        buf.seek(0)
        buf.write(record(seq, block, time.time()))
        while True:
            t0 = time.time()
            try:
                n = os.pwritev(fd, [buf], block * BS)
                if n != BS:
                    raise OSError(errno.EIO, f"short write {n}")
            except OSError as e:
                out.write(f"E {seq} {block} {t0:.3f} {time.time():.3f} {e.errno}\n")
                out.flush()
                time.sleep(0.5)
                continue
            out.write(f"A {seq} {block} {t0:.3f} {time.time():.3f}\n")
            out.flush()
            break
        time.sleep(PACE)
    os.close(fd)
    out.close()
    return 0


def verify(dev: str, log: str, blocks: int) -> int:
    acked, tried, _last, n_acked = read_log(log)
    buf = mmap.mmap(-1, BS * 64)
    fd = os.open(dev, os.O_RDONLY | os.O_DIRECT)
    lost: list[str] = []
    verified = 0
    for first in range(0, blocks, 64):
        n = os.preadv(fd, [buf], first * BS)
        for i in range(n // BS):
            block = first + i
            want = acked.get(block)
            if want is None:
                continue
            got = parse(buf[i * BS:(i + 1) * BS])
            if got is not None and got[1] == block and (
                    got[0] == want or (got[0] > want and got[0] in tried[block])):
                verified += 1
            else:
                lost.append(f"block {block}: want seq {want}, found "
                            + ("no intact record" if got is None else f"seq {got[0]}"
                               f" of block {got[1]}"))
    os.close(fd)
    print(json.dumps({"acknowledged": n_acked, "blocks": len(acked), "verified": verified,
                      "lost": len(lost), "examples": lost[:5]}))
    return 0 if not lost and verified == len(acked) else 1


def main(argv: list[str]) -> int:
    if len(argv) not in (3, 4) or argv[0] not in ("write", "verify"):
        print(__doc__, file=sys.stderr)
        return 2
    blocks = int(argv[3]) if len(argv) == 4 else BLOCKS
    return (write if argv[0] == "write" else verify)(argv[1], argv[2], blocks)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
