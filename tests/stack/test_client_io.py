"""The stack client's writer and verifier (client_io.py) on a plain file.

The lab test trusts ``verify`` to find a lost acknowledged write; these cases show it
does (an older version, zeros, a damaged record, a record of another block) and that it
accepts what a failover may legitimately leave (a newer record whose write failed and
was retried).  The file lives under tmp_path: O_DIRECT needs a disk filesystem (ext4
here), not tmpfs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import pytest
from tests.stack import client_io as cio

if TYPE_CHECKING:
    from pathlib import Path

BLOCKS = 8


def disk(tmp_path: Path, records: dict[int, tuple[int, int]]) -> str:
    """A file of BLOCKS blocks; ``records``: block -> (seq, block written in the record)."""
    path = tmp_path / "lun.img"
    with open(path, "wb") as f:
        f.truncate(BLOCKS * cio.BS)
        for block, (seq, inner) in records.items():
            f.seek(block * cio.BS)
            f.write(cio.record(seq, inner, 1.0))
    return str(path)


def log(tmp_path: Path, lines: list[str]) -> str:
    path = tmp_path / "writes.log"
    path.write_text("".join(line + "\n" for line in lines))
    return str(path)


def verify(dev: str, logfile: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict]:
    rc = cio.verify(dev, logfile, BLOCKS)
    return rc, json.loads(capsys.readouterr().out)


ACKED = ["A 1 0 1.0 1.1", "A 2 1 1.2 1.3", "A 3 2 1.4 1.5", "A 4 0 1.6 1.7"]


@pytest.fixture(autouse=True)
def _direct_io(tmp_path: Path) -> None:
    try:
        fd = os.open(tmp_path / "probe", os.O_CREAT | os.O_RDWR | os.O_DIRECT)
        os.close(fd)
    except OSError:
        pytest.skip("no O_DIRECT on this filesystem")


def test_every_newest_acknowledged_record_present(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    dev = disk(tmp_path, {0: (4, 0), 1: (2, 1), 2: (3, 2)})
    rc, out = verify(dev, log(tmp_path, ACKED), capsys)
    assert rc == 0
    assert out == {"acknowledged": 4, "blocks": 3, "verified": 3, "lost": 0, "examples": []}


@pytest.mark.parametrize(("on_disk", "found"), [
    ((1, 0), "seq 1 of block 0"),  # the older version, as if seq 4 never reached the disk
    (None, "no intact record"),  # zeros: nothing written at all
    ((4, 1), "seq 4 of block 1"),  # a record of another block (misdirected write)
])
def test_a_lost_acknowledged_write_is_found(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            on_disk: tuple[int, int] | None, found: str) -> None:
    records = {1: (2, 1), 2: (3, 2)}
    if on_disk is not None:
        records[0] = on_disk
    dev = disk(tmp_path, records)
    rc, out = verify(dev, log(tmp_path, ACKED), capsys)
    assert rc == 1 and out["lost"] == 1 and out["verified"] == 2
    assert out["examples"] == [f"block 0: want seq 4, found {found}"]


def test_a_damaged_record_is_lost(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dev = disk(tmp_path, {0: (4, 0), 1: (2, 1), 2: (3, 2)})
    with open(dev, "r+b") as f:
        f.seek(2 * cio.BS + 100)
        f.write(b"\xff")
    rc, out = verify(dev, log(tmp_path, ACKED), capsys)
    assert rc == 1 and out["examples"] == ["block 2: want seq 3, found no intact record"]


def test_a_newer_record_only_if_it_was_attempted(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    # seq 5 for block 1 failed (E) and was never acknowledged, but may have reached the disk
    dev = disk(tmp_path, {0: (4, 0), 1: (5, 1), 2: (3, 2)})
    rc, out = verify(dev, log(tmp_path, [*ACKED, "E 5 1 1.8 9.0 5"]), capsys)
    assert rc == 0 and out["lost"] == 0
    # the same record, never attempted by this writer: not what was acknowledged
    rc, out = verify(dev, log(tmp_path, ACKED), capsys)
    assert rc == 1 and out["examples"] == ["block 1: want seq 2, found seq 5 of block 1"]


def test_writer_logs_acknowledged_writes_and_continues_its_numbering(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dev = str(tmp_path / "lun.img")
    with open(dev, "wb") as f:
        f.truncate(64 * cio.BS)
    logfile = str(tmp_path / "writes.log")
    for _ in range(2):
        p = subprocess.Popen([sys.executable, cio.__file__, "write", dev, logfile, "16"])
        before = cio.read_log(logfile)[3]
        deadline = time.monotonic() + 30
        while cio.read_log(logfile)[3] < before + 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        p.send_signal(signal.SIGTERM)
        assert p.wait(30) == 0
    acked, _tried, last, n = cio.read_log(logfile)
    seqs = [int(line.split()[1]) for line in (tmp_path / "writes.log").read_text()
            .splitlines() if line.startswith("A ")]
    assert seqs == list(range(1, last + 1)) and n == last >= 6  # no gap, no reuse
    assert sorted(acked) == list(range(min(last, 16)))
    assert cio.verify(dev, logfile, 16) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["lost"] == 0 and out["verified"] == out["blocks"] == len(acked)
