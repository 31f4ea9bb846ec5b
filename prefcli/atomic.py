"""Write files so that a crash never leaves a half-written output behind."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

_UMASK: int | None = None


def _umask() -> int:
    global _UMASK
    if _UMASK is None:  # os.umask can only be read by setting it; do it once
        _UMASK = os.umask(0o022)
        os.umask(_UMASK)
    return _UMASK


def use_default_mode(path: str | os.PathLike) -> None:
    """Give a temporary file or folder the mode a plain open()/mkdir() would.

    mkstemp/mkdtemp create 0600/0700 entries; renamed into place as outputs they
    would be unreadable to anyone else sharing the dataset, results or model.
    """
    mode = 0o777 if os.path.isdir(path) else 0o666
    os.chmod(path, mode & ~_umask())


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it over `path` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        if os.path.exists(tmp):
            use_default_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def replace_dir(tmp: str | os.PathLike, out: str | os.PathLike) -> None:
    """Move a finished temporary directory to `out`, replacing an older `out`.

    The old directory is moved aside first and deleted only once the new one
    is in place, so `out` is never half-written: it is the old or the new one.
    """
    import shutil

    tmp, out = Path(tmp), Path(out)
    use_default_mode(tmp)
    if out.exists():
        old = out.with_name(f".{out.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)
