"""What the benchmark importers (PreferImg-Bench, PAMELA) share: a resumable build folder.

A build works in OUT.partial (journal, image store, finished chunks) and ends
by renaming it to OUT, like the Pick-a-Pic builder, whose journal and image
store these importers reuse rather than copy (prefcli.data.pickapic). Each
chunk of records is written under a temporary name and then recorded in the
journal, so a rerun with the same options skips what is done and gives the
same dataset as an uninterrupted build.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from prefcli.data.dataset import INFO_FILE, PAIRS_FILE, pairs_schema, read_info
from prefcli.errors import DataError, ImageError

WORK_DIR = ".work"
JOURNAL = "progress.json"
MAX_PROBLEMS_RECORDED = 1000

# Tests set this to simulate a crash: called as hook(chunk_index) after a chunk is journaled.
_after_chunk: Callable[[int], None] | None = None


@dataclass
class ImportResult:
    path: Path
    info: dict
    already_built: bool = False
    problems: list[dict] = field(default_factory=list)


class Workspace:
    """OUT.partial with its journal and content-addressed image store."""

    def __init__(self, out: Path, fingerprint: dict):
        from prefcli.data.pickapic import _ImageStore, _Journal, _remove_stale_temporaries

        self.out = out
        self.root = out.with_name(out.name + ".partial")
        self.work = self.root / WORK_DIR
        (self.work / "parts").mkdir(parents=True, exist_ok=True)
        self.journal = _Journal.load_or_new(self.work / JOURNAL, fingerprint)
        self.journal.data.setdefault("chunks", {})
        _remove_stale_temporaries(self.root / "images")
        self.store = _ImageStore(self.root)

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
                raise DataError(f"{self.out}: --out appeared or was filled while the import ran; the finished import "
                                f"is kept in {self.root}: move {self.out} away (or choose another --out) and rerun to finish")
            self.out.rmdir()  # an empty folder the user made: replaced by the dataset
        os.replace(self.root, self.out)  # the commit
        shutil.rmtree(self.out / WORK_DIR, ignore_errors=True)


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
    return {"layout": "images/<first 2 hex digits>/<sha256 hex of the original bytes>", "images": n_files, "bytes": n_bytes}


def confined(root: Path, rel: str, what: str) -> Path:
    """`rel` under `root`, resolved, or DataError when it is absolute, climbs out, or links out of `root`."""
    from prefcli.paths import inside_root

    return inside_root(root, rel, what, root_name="the image root")
