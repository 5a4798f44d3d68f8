"""What a process tree exposes to other users of the machine: argv and environment."""

from __future__ import annotations


def process_texts(pid: int) -> list[bytes]:
    """argv and environment of ``pid`` and all its descendants, read from /proc now.

    Secrets-handling tests poll this while an agent runs and assert a password
    is in none of the returned texts.
    """
    texts = []
    todo = [pid]
    while todo:
        p = todo.pop()
        for name in ("cmdline", "environ"):
            try:
                with open(f"/proc/{p}/{name}", "rb") as f:
                    texts.append(f.read())
            except OSError:
                pass
        try:
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return texts
