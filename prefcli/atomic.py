"""Write files so that a crash never leaves a half-written output behind."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

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
def writing(target: str | os.PathLike, work: str | os.PathLike | None = None) -> Iterator[None]:
    """A failed write in the block names `target`: a full disk raises OSError without a file
    name (and safetensors raises its own error type), so the one-line message the CLI prints
    would not say what could not be written. An error naming a file inside `work` (the
    temporary folder the output is assembled in, removed on failure) names `target` too."""
    import re

    try:
        yield
    except OSError as e:
        inside = work is not None and e.filename is not None and str(e.filename).startswith(str(work))
        if e.filename is None or inside:
            raise OSError(e.errno, e.strerror or str(e), str(target)) from e
        raise
    except Exception as e:
        m = re.search(r"os error (\d+)", str(e))
        if type(e).__name__ == "SafetensorError" and m:
            code = int(m.group(1))
            raise OSError(code, os.strerror(code), str(target)) from e
        raise


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it over `path` on success."""
    import errno

    path = Path(path)
    if os.path.isdir(path):  # os.replace would name the temporary file, not the user's path
        raise IsADirectoryError(errno.EISDIR, "is a folder, not a file (give a file name)", str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:  # a read-only folder: the error names the temporary name it tried
        raise OSError(e.errno, e.strerror or str(e), str(path)) from e
    os.close(fd)
    try:
        with writing(path, tmp):
            yield Path(tmp)
            if os.path.exists(tmp):
                use_default_mode(tmp)
            os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def check_output_files(**named: str | os.PathLike | None) -> None:
    """Before any work: refuse output files (by option name, e.g. out=..., log_samples=...) that are
    folders, or two options naming the same file (the second write would silently replace the first)."""
    from prefcli.errors import PrefcliError

    seen: dict[str, str] = {}
    for name, path in named.items():
        if path is None:
            continue
        option = "--" + name.replace("_", "-")
        if os.path.isdir(path):
            raise PrefcliError(f"{path}: {option} is a folder; give a file name")
        key = os.path.realpath(path)
        if key in seen:
            raise PrefcliError(
                f"{path}: {seen[key]} and {option} name the same file; the one would replace the other: "
                f"give them different names"
            )
        seen[key] = option


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


#: Written into every folder prefcli replaces as a whole: the entries it wrote there, so that a
#: later run replaces only prefcli's own output and never deletes anything else.
MARKER = ".prefcli-written.json"


def _old_name(out: Path) -> Path:
    return out.with_name(f".{out.name}.old")


def recover_dir(out: str | os.PathLike) -> None:
    """Finish a replace_dir that a kill interrupted: between its two renames `out` is missing and
    `.out.old` holds the previous output (put it back); after the second, `.out.old` is garbage."""
    import shutil

    out = Path(os.path.abspath(out))
    old = _old_name(out)
    if not os.path.lexists(old):
        return
    if os.path.lexists(out):
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(old, out)


def tmp_dir_beside(out: str | os.PathLike) -> Path:
    """A fresh hidden work folder beside `out` (`.NAME.PID.XXXX.tmp`), cleaned by a later run once PID is gone."""
    import tempfile

    out = Path(os.path.abspath(out))  # "--out ." has no name to put beside
    out.parent.mkdir(parents=True, exist_ok=True)
    clean_leftovers(out)
    return Path(tempfile.mkdtemp(prefix=f".{out.name}.{os.getpid()}.", suffix=".tmp", dir=out.parent))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_leftovers(out: str | os.PathLike) -> list[Path]:
    """Remove the work folders/files of killed runs beside `out` (ours by name, their process gone)."""
    import re
    import shutil

    out = Path(os.path.abspath(out))
    removed: list[Path] = []
    pat = re.compile(rf"^\.{re.escape(out.name)}\.(\d+)\.[^/]*\.tmp$")
    try:
        entries = list(os.scandir(out.parent))
    except OSError:
        return removed
    for e in entries:
        m = pat.match(e.name)
        if not m or int(m.group(1)) == os.getpid() or _pid_alive(int(m.group(1))):
            continue
        p = Path(e.path)
        if e.is_dir(follow_symlinks=False):
            shutil.rmtree(p, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                p.unlink()
        removed.append(p)
    return removed


def _walk_files(root: Path) -> set[str]:
    files: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        for n in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            files.add((rel / n).as_posix())
    files.discard(MARKER)
    return files


def written_by_prefcli(out: str | os.PathLike) -> set[str] | None:
    """The files the marker in `out` lists, or None when there is no readable marker."""
    from prefcli.errors import DataError
    from prefcli.jsonio import read_json

    if not os.path.lexists(Path(out) / MARKER):
        return None
    try:  # the bounded reader: a marker planted nested 100k deep is no marker, not a RecursionError
        data = read_json(Path(out) / MARKER)
        files = data.get("files") if isinstance(data, dict) else None
        if isinstance(files, list) and all(isinstance(f, str) for f in files):
            return set(files)
    except DataError:
        pass
    return None


def foreign_entries(out: str | os.PathLike) -> list[str]:
    """Files under `out` that prefcli did not write there (all of them when it has no marker)."""
    out = Path(out)
    if not out.is_dir():
        return [out.name] if os.path.lexists(out) else []
    ours = written_by_prefcli(out) or set()
    return sorted(_walk_files(out) - ours)


def check_output_dir(out: str | os.PathLike, *, overwrite: bool = False, option: str = "--out") -> None:
    """Refuse early an output folder that holds files prefcli did not write (unless `overwrite`)."""
    from prefcli.errors import PrefcliError

    out = Path(out)
    recover_dir(out)
    if os.path.lexists(out) and not out.is_dir():
        raise PrefcliError(f"{out}: {option} exists and is not a folder")
    foreign = foreign_entries(out)
    if foreign and not overwrite:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise PrefcliError(
            f"{out}: {option} is not empty and holds files prefcli did not write ({shown}); "
            f"refusing to replace it: choose an empty or new folder, or pass --overwrite "
            f"to write into it (its other files are kept)"
        )


def write_marker(folder: str | os.PathLike, by: str) -> None:
    """Record every file now under `folder` as written by prefcli (`by` names the command)."""
    import json

    folder = Path(folder)
    write_text(
        folder / MARKER, json.dumps({"by": by, "files": sorted(_walk_files(folder))}, indent=1, allow_nan=False) + "\n"
    )


def replace_dir(
    tmp: str | os.PathLike, out: str | os.PathLike, *, by: str | None = None, overwrite: bool = False
) -> None:
    """Move a finished temporary directory to `out`, replacing an older `out`.

    The old directory is moved aside first and deleted only once the new one
    is in place, so `out` is never half-written: it is the old or the new one
    (a kill between the two renames is undone by :func:`recover_dir`, which
    every later call runs first).

    With `by` (the command writing it) the folder is claimed: a marker lists
    what prefcli wrote, and an existing `out` holding anything else is
    refused, or with `overwrite` written into file by file, its other
    files kept.
    """
    import shutil

    tmp, out = Path(tmp), Path(os.path.abspath(out))
    recover_dir(out)
    if by is not None:
        write_marker(tmp, by)
        foreign = foreign_entries(out) if out.exists() else []
        if foreign:
            check_output_dir(out, overwrite=overwrite)
            # With consent, files the new output replaces by name go either way; any other file
            # prefcli did not write is kept, so the folder is written into instead of swapped.
            if set(foreign) - _walk_files(tmp):
                _merge_into(tmp, out)
                return
    use_default_mode(tmp)
    if out.exists():
        old = _old_name(out)
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


def _merge_into(tmp: Path, out: Path) -> None:
    """--overwrite over a folder with others' files: move ours in entry by entry, keep theirs."""
    import shutil

    before = written_by_prefcli(out) or set()
    new = _walk_files(tmp)
    for rel in sorted(new):
        dst = out / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if dst.is_dir() and not dst.is_symlink():
            shutil.rmtree(dst)
        os.replace(tmp / rel, dst)
    for rel in sorted(before - new):  # prefcli's own stale files only
        with contextlib.suppress(OSError):
            (out / rel).unlink()
    os.replace(tmp / MARKER, out / MARKER)  # lists exactly `new`: the files prefcli now owns there
    shutil.rmtree(tmp, ignore_errors=True)


def claim_folder(
    out: str | os.PathLike, planned: list[str], by: str, *, overwrite: bool = False, option: str = "--out"
) -> None:
    """Before writing `planned` files (relative paths) into `out`, one by one.

    A folder holding files prefcli did not write is refused (unless
    `overwrite`, which keeps them); prefcli's own files of an earlier run are
    removed. The marker is written first, listing what is about to be
    written, so a run killed half-way leaves files the next run knows as its
    own.
    """
    import json

    out = Path(out)
    check_output_dir(out, overwrite=overwrite, option=option)
    for rel in sorted(written_by_prefcli(out) or ()):
        with contextlib.suppress(OSError):
            (out / rel).unlink()
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / MARKER, json.dumps({"by": by, "files": sorted(set(planned))}, indent=1, allow_nan=False) + "\n")
