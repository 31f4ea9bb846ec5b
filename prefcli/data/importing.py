"""What every dataset builder shares: a resumable build folder.

A build works in OUT.partial (journal, image store, finished parts) and ends
by renaming it to OUT: that rename is the commit. The Pick-a-Pic, PAMELA and
PreferImg builders hold OUT's lock while they work (`build_locked`). The Pick-a-Pic builder
(prefcli.data.pickapic) uses the journal, the image store and the clean-up of
half-written files; the benchmark importers (PreferImg-Bench, PAMELA) and the
label dataset use the whole `Workspace`, where each chunk of records is written
under a temporary name and then recorded in the journal, so a rerun with the
same options skips what is done and gives the same dataset as an uninterrupted
build.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from prefcli.data.dataset import INFO_FILE, PAIRS_FILE, image_relpath, pairs_schema, read_info
from prefcli.errors import DataError, ImageError

WORK_DIR = ".work"
JOURNAL = "progress.json"
JOURNAL_VERSION = 1
MAX_PROBLEMS_RECORDED = 1000

# Tests set this to simulate a crash: called as hook(chunk_index) after a chunk is journaled.
_after_chunk: Callable[[int], None] | None = None


@dataclass
class ImportResult:
    path: Path
    info: dict
    already_built: bool = False
    problems: list[dict] = field(default_factory=list)


class Journal:
    """OUT.partial/.work/progress.json: what is done, under the fingerprint of the options that started the build."""

    def __init__(self, path: Path, data: dict):
        self.path, self.data = path, data

    @classmethod
    def load_or_new(cls, path: Path, fingerprint: dict, fresh: dict) -> Journal:
        """The journal at `path`, or a new one holding `fresh` (the builder's empty records).

        A journal written under another fingerprint is an error: resuming it would mix two builds.
        """
        if path.is_file():
            try:
                data = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError) as e:
                raise DataError(
                    f"{path}: unreadable build journal ({e}); delete {path.parent.parent} to start over"
                ) from None
            if data.get("fingerprint") != fingerprint:
                old = data.get("fingerprint", {})
                diff = sorted(k for k in set(old) | set(fingerprint) if old.get(k) != fingerprint.get(k))
                raise DataError(
                    f"{path.parent.parent}: an unfinished build with other settings is there (differs in: {', '.join(diff)}); "
                    f"rerun with the same options to resume, or delete {path.parent.parent} to start over"
                )
            return cls(path, data)
        return cls(path, {"version": JOURNAL_VERSION, "fingerprint": fingerprint, **fresh})

    def save(self) -> None:
        from prefcli.atomic import write_text

        write_text(self.path, json.dumps(self.data, indent=1, sort_keys=True, allow_nan=False))


class ImageStore:
    """images/ab/<sha256>: original bytes, written once, each decoded once to prove it is an image."""

    def __init__(self, root: Path):
        self.root = root
        self.bad: dict[str, str] = {}  # content id -> reason (the same bytes fail the same way)

    def check(self, data: bytes | None, label: str) -> tuple[str | None, str | None]:
        from prefcli.images import content_id, decode_image

        if not data:
            return None, "no image bytes"
        cid = content_id(data)
        if cid in self.bad:
            return cid, self.bad[cid]
        if (self.root / image_relpath(cid)).exists():
            return cid, None
        try:
            decode_image(data, name=label)
        except ImageError as e:
            self.bad[cid] = getattr(e, "reason", str(e))
            return cid, self.bad[cid]
        return cid, None

    def put(self, cid: str, data: bytes) -> bool:
        from prefcli.atomic import write_bytes

        path = self.root / image_relpath(cid)
        if path.exists():
            return False
        write_bytes(path, data)
        return True


def remove_stale_temporaries(root: Path, recursive: bool = True) -> None:
    """Half-written files of a killed run (atomic_path's `.name.*.tmp`): never part of the dataset.

    `recursive`: the image store's two levels (images/ab/.cid.*.tmp); else `root` itself.
    """
    if not root.is_dir():
        return
    dirs = [d.path for d in os.scandir(root) if d.is_dir(follow_symlinks=False)] if recursive else [str(root)]
    for d in dirs:
        for e in os.scandir(d):
            if e.name.startswith(".") and e.name.endswith(".tmp") and e.is_file(follow_symlinks=False):
                os.unlink(e.path)


class Workspace:
    """OUT.partial with its journal and content-addressed image store."""

    def __init__(self, out: Path, fingerprint: dict):
        self.out = out
        self.root = out.with_name(out.name + ".partial")
        self.work = self.root / WORK_DIR
        (self.work / "parts").mkdir(parents=True, exist_ok=True)
        self.journal = Journal.load_or_new(self.work / JOURNAL, fingerprint, {"chunks": {}})
        remove_stale_temporaries(self.root / "images")
        self.store = ImageStore(self.root)

    def done(self, chunk: int) -> dict | None:
        return self.journal.data["chunks"].get(str(chunk))

    def part_path(self, chunk: int) -> Path:
        return self.work / "parts" / f"{chunk:05d}.parquet"

    def record_chunk(self, chunk: int, table, entry: dict) -> None:
        import pyarrow.parquet as pq

        from prefcli.atomic import atomic_path

        with atomic_path(self.part_path(chunk)) as tmp:
            pq.write_table(table, tmp)
        self.journal.data["chunks"][str(chunk)] = entry
        self.journal.save()
        if _after_chunk:
            _after_chunk(chunk)

    def store_file(self, path: Path, label: str) -> tuple[str | None, str | None]:
        """(content id, None) for a stored image, or (None, reason) when it cannot be one."""
        from prefcli.images import read_image_file

        try:
            # Checked before it is read: a FIFO, a device or a 3 GB file is refused, not read.
            data = read_image_file(path)
        except ImageError as e:
            return None, f"{label}: {getattr(e, 'reason', e)}"
        cid, reason = self.store.check(data, label)
        if reason:
            return None, f"{label}: {reason}"
        self.store.put(cid, data)
        return cid, None

    def commit(self, info: dict) -> None:
        """Write an empty pairs.parquet if none, dataset.json, and rename OUT.partial to OUT."""
        import pyarrow.parquet as pq

        from prefcli.atomic import atomic_path, write_text

        if not (self.root / PAIRS_FILE).is_file():
            with atomic_path(self.root / PAIRS_FILE) as tmp:
                pq.write_table(pairs_schema().empty_table(), tmp)
        write_text(self.root / INFO_FILE, json.dumps(info, indent=2, sort_keys=False, allow_nan=False) + "\n")
        if self.out.exists():
            if not self.out.is_dir() or any(self.out.iterdir()):  # filled while the import ran: never replaced
                raise DataError(
                    f"{self.out}: --out appeared or was filled while the import ran; the finished import "
                    f"is kept in {self.root}: move {self.out} away (or choose another --out) and rerun to finish"
                )
            self.out.rmdir()  # an empty folder the user made: replaced by the dataset
        os.replace(self.root, self.out)  # the commit
        shutil.rmtree(self.out / WORK_DIR, ignore_errors=True)


def build_locked(out: str | os.PathLike, build: Callable[[Path], ImportResult]) -> ImportResult:
    """`build(out)` while holding --out's lock: a second importer into one --out would share OUT.partial and its commit."""
    from prefcli.lock import output_lock

    out = Path(out)
    with output_lock(out):
        return build(out)


def already_built(out: Path) -> ImportResult | None:
    """The finished dataset at `out` (a rerun reports it), or None; refuses a foreign folder."""
    if (out / INFO_FILE).is_file():
        shutil.rmtree(out / WORK_DIR, ignore_errors=True)  # a crash after the commit rename
        return ImportResult(out, read_info(out), already_built=True)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"{out}: exists and is not a prefcli dataset; choose another --out or remove it")
    return None


def image_store_counts(root: Path) -> dict:
    n_files, n_bytes = 0, 0
    images_root = root / "images"
    if images_root.is_dir():
        for d in os.scandir(images_root):
            if d.is_dir():
                for e in os.scandir(d.path):
                    if e.is_file() and not e.name.startswith("."):
                        n_files += 1
                        n_bytes += e.stat().st_size
    return {
        "layout": "images/<first 2 hex digits>/<sha256 hex of the original bytes>",
        "images": n_files,
        "bytes": n_bytes,
    }


def confined(root: Path, rel: str, what: str) -> Path:
    """`rel` under `root`, resolved, or DataError when it is absolute, climbs out, or links out of `root`."""
    from prefcli.paths import inside_root

    return inside_root(root, rel, what, root_name="the image root")
