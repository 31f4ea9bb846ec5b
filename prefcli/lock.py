"""One writer per output: a lock file beside `--out`, naming who holds it.

Two builds of one dataset, or two trainings into one run folder, would each
take the other's half-written files for their own. ``output_lock(out)``
creates ``.NAME.lock`` beside `out` with ``O_CREAT | O_EXCL`` (atomic on
local file systems), holding the owner's pid, host, start time and command.
A second process is refused with one line saying who holds it. A lock whose
pid is gone on this host (the holder was killed) is stale: it is taken over,
and the next run goes on.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

from prefcli.errors import PrefcliError


class LockedError(PrefcliError):
    """Another live process is writing the same output."""


def lock_path(out: str | os.PathLike) -> Path:
    out = Path(os.path.abspath(out))
    return out.with_name(f".{out.name}.lock")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    except OSError:
        return False
    return True


def _read(path: Path) -> dict | None:
    from prefcli.errors import DataError
    from prefcli.jsonio import read_json

    try:  # the bounded reader: a lock file planted nested 100k deep is "unreadable", not a RecursionError
        data = read_json(path, limit=1 << 16)
        return data if isinstance(data, dict) else None
    except DataError:
        return None


def _stale(holder: dict | None, path: Path) -> bool:
    if holder is None:
        # Half-written by a process killed while creating it (it is written in one call,
        # so only a very young file may legitimately be empty).
        try:
            age = dt.datetime.now().timestamp() - path.stat().st_mtime
        except OSError:
            return True
        return age > 10
    pid = holder.get("pid")
    if holder.get("host") != socket.gethostname() or not isinstance(pid, int):
        return False  # another machine's process: cannot tell, never steal
    return pid != os.getpid() and not _alive(pid)


@contextlib.contextmanager
def output_lock(out: str | os.PathLike, command: str | None = None) -> Iterator[Path]:
    """Hold the lock of `out` for the block; LockedError if a live process holds it."""
    out = Path(out)
    path = lock_path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    me = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": command or " ".join(["prefcli", *sys.argv[1:]])[:300],
    }
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _read(path)
            if _stale(holder, path):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                continue
            h = holder or {}
            raise LockedError(
                f"{out}: another prefcli is writing it (pid {h.get('pid', '?')} on {h.get('host', '?')}, "
                f"since {h.get('started', '?')}: {h.get('command', '?')}); wait for it to finish, or, if that "
                f"process is gone, remove {path}"
            ) from None
        try:
            with os.fdopen(fd, "w") as f:
                f.write(json.dumps(me, allow_nan=False))
        except OSError as e:  # a full disk: no empty lock left behind, and the message names the file
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise OSError(e.errno, e.strerror or str(e), str(path)) from e
        break
    else:  # pragma: no cover - three stale takeovers lost to other processes in a row
        raise LockedError(f"{out}: could not take the lock {path}; another process keeps taking it")
    try:
        yield path
    finally:
        if (_read(path) or {}).get("pid") == os.getpid():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
