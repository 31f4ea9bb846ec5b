"""The preference dataset format and its reader.

A dataset is a directory:

    dataset.json     name, format version, source, build parameters, seed, counts
    pairs.parquet    one labelled pair per row (liked and disliked image ids, split, seen)
    tasks.parquet    materialized val/test tasks (1v1, 1v3; one row per N_ref variant)
    images/ab/<id>   content-addressed store: <id> is the sha256 hex of the original
                     bytes, stored unchanged and without an extension (the format is
                     in the bytes); `ab` is the first two hex digits of the id.

Everything that trains or evaluates reads it through `Dataset`, so every
scorer and every run sees exactly the same pairs, tasks and images.
pyarrow is imported inside functions: `prefcli --help` imports this module's
callers without paying for it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

from prefcli.errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa
    from PIL import Image

    from prefcli.types import Candidate, RankTask, UserHistory

FORMAT_VERSION = 1
INFO_FILE = "dataset.json"
PAIRS_FILE = "pairs.parquet"
TASKS_FILE = "tasks.parquet"
IMAGES_DIR = "images"
SPLITS = ("train", "val", "test")
EVAL_SPLITS = ("val", "test")
PROTOCOLS = ("1v1", "1v3")
N_REF_SWEEP = (1, 2, 4, 8)


def pairs_schema() -> "pa.Schema":
    import pyarrow as pa

    return pa.schema(
        [
            ("pair_id", pa.string()),
            ("user_id", pa.string()),
            ("prompt", pa.string()),
            ("liked_image_id", pa.string()),
            ("disliked_image_id", pa.string()),
            ("split", pa.string()),
            ("seen", pa.bool_()),  # test users only: True = also has training pairs; null elsewhere
        ]
    )


def tasks_schema() -> "pa.Schema":
    import pyarrow as pa

    return pa.schema(
        [
            ("task_id", pa.string()),
            ("target_id", pa.string()),  # shared by the N_ref variants of one target
            ("split", pa.string()),
            ("protocol", pa.string()),
            ("n_ref", pa.int32()),
            ("user_id", pa.string()),
            ("seen", pa.bool_()),
            ("target_pair_id", pa.string()),
            ("history_pair_ids", pa.list_(pa.string())),
            ("candidate_image_ids", pa.list_(pa.string())),
            ("candidate_prompts", pa.list_(pa.string())),
            ("liked_index", pa.int32()),
        ]
    )


def image_relpath(image_id: str) -> str:
    """Where an image lives inside a dataset directory."""
    return f"{IMAGES_DIR}/{image_id[:2]}/{image_id}"


def n_ref_variants(n_ref: int) -> tuple[int, ...]:
    """The N_ref values materialized for a build with `n_ref` history pairs."""
    return tuple(sorted({k for k in N_REF_SWEEP if k < n_ref} | {n_ref}))


@dataclass(frozen=True)
class PairRow:
    """One labelled pair: `user_id` preferred `liked_image_id` over `disliked_image_id`."""

    pair_id: str
    user_id: str
    prompt: str
    liked_image_id: str
    disliked_image_id: str
    split: str
    seen: bool | None = None


def count_rows(info: dict) -> list[dict]:
    """The counts of a dataset.json as one row per split (what `data info` and the build print)."""
    counts = info.get("counts", {})
    splits = counts.get("splits", {})
    tasks = counts.get("tasks", {})
    rows = []
    for split in SPLITS:
        s = splits.get(split, {})
        t = tasks.get(split, {})
        rows.append(
            {
                "split": split,
                "users": s.get("users", 0),
                "pairs": s.get("pairs", 0),
                "images": s.get("images", 0),
                "seen_users": s.get("seen_users"),
                "unseen_users": s.get("unseen_users"),
                "seen_images": s.get("seen_images"),
                "unseen_images": s.get("unseen_images"),
                "tasks_1v1": t.get("1v1") if split != "train" else None,
                "tasks_1v3": t.get("1v3") if split != "train" else None,
            }
        )
    return rows


def read_info(path: str | os.PathLike) -> dict:
    """dataset.json of a dataset directory, or DataError saying why it is not one."""
    root = Path(path)
    if not root.exists():
        raise DataError(f"{root}: dataset not found")
    if not root.is_dir():
        raise DataError(f"{root}: not a dataset directory (a dataset is a folder with {INFO_FILE})")
    info_path = root / INFO_FILE
    if not info_path.is_file():
        partial = root.with_name(root.name + ".partial")
        hint = f"; an unfinished build is in {partial} (run the build again to resume)" if partial.exists() else ""
        if not hint and (any(root.glob("*.parquet")) or (root / "world.json").is_file()):
            hint = f"; it holds Pick-a-Pic-style shards: build a dataset from them with `prefcli data pickapic --source {root} --out DIR`"
        raise DataError(f"{root}: not a prefcli dataset (no {INFO_FILE}){hint}")
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{info_path}: unreadable ({e})") from None
    if not isinstance(info, dict) or "format_version" not in info:
        raise DataError(f"{info_path}: not a prefcli dataset description (no format_version)")
    if int(info["format_version"]) > FORMAT_VERSION:
        raise DataError(
            f"{info_path}: format version {info['format_version']} is newer than this prefcli reads ({FORMAT_VERSION}); upgrade prefcli"
        )
    return info


class Dataset:
    """Read access to a built dataset: pairs, users, tasks, histories and images."""

    def __init__(self, root: Path, info: dict):
        self.root = root
        self.info = info
        self._pairs: "pa.Table | None" = None
        self._tasks: "pa.Table | None" = None

    @classmethod
    def open(cls, path: str | os.PathLike) -> "Dataset":
        root = Path(path)
        info = read_info(root)
        for name in (PAIRS_FILE, TASKS_FILE):
            if not (root / name).is_file():
                raise DataError(f"{root}: incomplete dataset ({name} is missing)")
        return cls(root, info)

    @property
    def name(self) -> str:
        return str(self.info.get("name", self.root.name))

    @property
    def n_ref(self) -> int:
        return int(self.info.get("build", {}).get("n_ref", 8))

    def __repr__(self) -> str:
        return f"Dataset({str(self.root)!r})"

    # ------------------------------------------------------------ tables

    def _read(self, name: str, schema: "pa.Schema") -> "pa.Table":
        import pyarrow.parquet as pq

        path = self.root / name
        try:
            table = pq.read_table(path)
        except Exception as e:  # noqa: BLE001 - pyarrow raises several types for a bad file
            raise DataError(f"{path}: unreadable parquet ({e})") from None
        missing = [f.name for f in schema if f.name not in table.column_names]
        if missing:
            raise DataError(f"{path}: missing column(s) {', '.join(missing)}")
        return table

    def pairs_table(self, split: str | None = None) -> "pa.Table":
        """pairs.parquet as a pyarrow Table (cached), optionally one split."""
        import pyarrow.compute as pc

        if self._pairs is None:
            self._pairs = self._read(PAIRS_FILE, pairs_schema())
        if split is None:
            return self._pairs
        _check_split(split)
        return self._pairs.filter(pc.equal(self._pairs["split"], split))

    def tasks_table(self) -> "pa.Table":
        if self._tasks is None:
            self._tasks = self._read(TASKS_FILE, tasks_schema())
        return self._tasks

    def pairs(self, split: str | None = None) -> list[PairRow]:
        """Every pair (or one split's) as PairRow objects, in stored order."""
        return [PairRow(**r) for r in self.pairs_table(split).select([f.name for f in pairs_schema()]).to_pylist()]

    def iter_pairs(self, split: str | None = None, batch_size: int = 65536) -> Iterator[PairRow]:
        """Stream pairs without building them all at once (for large training splits)."""
        table = self.pairs_table(split).select([f.name for f in pairs_schema()])
        for batch in table.to_batches(max_chunksize=batch_size):
            for r in batch.to_pylist():
                yield PairRow(**r)

    def pairs_by_user(self, split: str | None = None) -> dict[str, list[PairRow]]:
        out: dict[str, list[PairRow]] = {}
        for p in self.pairs(split):
            out.setdefault(p.user_id, []).append(p)
        return out

    def users(self, split: str | None = None, seen: bool | None = None) -> list[str]:
        """Sorted user ids with pairs in `split`; `seen` filters test users."""
        import pyarrow.compute as pc

        t = self.pairs_table(split)
        if seen is not None:
            t = t.filter(pc.equal(t["seen"], seen))
        return sorted(set(t["user_id"].to_pylist()))

    # ------------------------------------------------------------ images

    def image_path(self, image_id: str) -> Path:
        return self.root / image_relpath(image_id)

    def open_image(self, image_id: str) -> "Image.Image":
        """Decode one stored image to RGB (ImageError naming the file if it is missing or broken)."""
        from prefcli import images

        return images.load_image(self.image_path(image_id))

    def candidate(self, image_id: str, prompt: str | None = None) -> "Candidate":
        from prefcli import images
        from prefcli.types import Candidate

        path = self.image_path(image_id)
        # The image in its own mode: each scorer converts it as its upstream does.
        return Candidate(image_id=image_id, prompt=prompt, path=str(path), loader=lambda: images.load_image(path, keep_mode=True))

    # ------------------------------------------------------------ histories and tasks

    def _pair_lookup(self, pair_ids: Sequence[str]) -> dict[str, dict]:
        import pyarrow as pa
        import pyarrow.compute as pc

        t = self.pairs_table()
        sel = t.filter(pc.is_in(t["pair_id"], value_set=pa.array(list(set(pair_ids)), pa.string())))
        return {r["pair_id"]: r for r in sel.to_pylist()}

    def history(self, user_id: str | None, pair_ids: Sequence[str]) -> "UserHistory":
        """A UserHistory of the given pairs, in the given order (lazy image loading)."""
        lookup = self._pair_lookup(pair_ids)
        return self._history(user_id, pair_ids, lookup)

    def _history(self, user_id: str | None, pair_ids: Sequence[str], lookup: dict[str, dict]) -> "UserHistory":
        from prefcli.types import HistoryPair, UserHistory

        pairs = []
        for pid in pair_ids:
            r = lookup.get(pid)
            if r is None:
                raise DataError(f"{self.root / PAIRS_FILE}: no pair with id {pid!r}")
            if user_id is not None and r["user_id"] != user_id:
                raise DataError(f"{self.root / PAIRS_FILE}: pair {pid!r} belongs to user {r['user_id']!r}, not {user_id!r}")
            pairs.append(
                HistoryPair(
                    liked=self.candidate(r["liked_image_id"], r["prompt"]),
                    disliked=self.candidate(r["disliked_image_id"], r["prompt"]),
                    prompt=r["prompt"],
                    pair_id=pid,
                )
            )
        return UserHistory(pairs=tuple(pairs), user_id=user_id)

    def task_rows(self, split: str = "test", protocol: str = "1v1", n_ref: int | None = None, seen: bool | None = None) -> list[dict]:
        """Raw rows of tasks.parquet for one split / protocol / N_ref (default: the build's N_ref)."""
        import pyarrow.compute as pc

        if split not in EVAL_SPLITS:
            raise DataError(f"tasks exist for {', '.join(EVAL_SPLITS)}, not {split!r}")
        if protocol not in PROTOCOLS:
            raise DataError(f"unknown protocol {protocol!r}; choose from {', '.join(PROTOCOLS)}")
        n_ref = self.n_ref if n_ref is None else int(n_ref)
        variants = n_ref_variants(self.n_ref)
        if n_ref not in variants:
            raise DataError(f"{self.root}: no tasks with N_ref={n_ref}; this dataset has N_ref in {list(variants)}")
        t = self.tasks_table()
        mask = pc.and_(pc.and_(pc.equal(t["split"], split), pc.equal(t["protocol"], protocol)), pc.equal(t["n_ref"], n_ref))
        if seen is not None:
            mask = pc.and_(mask, pc.equal(t["seen"], seen))
        return t.filter(mask).to_pylist()

    def tasks(self, split: str = "test", protocol: str = "1v1", n_ref: int | None = None, seen: bool | None = None) -> list["RankTask"]:
        """Materialized evaluation tasks as RankTasks with lazily loaded candidates and history."""
        from prefcli.types import RankTask

        rows = self.task_rows(split, protocol, n_ref, seen)
        lookup = self._pair_lookup([pid for r in rows for pid in r["history_pair_ids"]])
        out = []
        for r in rows:
            cands = [self.candidate(i, p) for i, p in zip(r["candidate_image_ids"], r["candidate_prompts"])]
            out.append(
                RankTask(
                    task_id=r["task_id"],
                    candidates=cands,
                    liked_index=int(r["liked_index"]),
                    history=self._history(r["user_id"], r["history_pair_ids"], lookup),
                    user_id=r["user_id"],
                    protocol=r["protocol"],
                    seen=r["seen"],
                    n_ref=int(r["n_ref"]),
                )
            )
        return out

    def summary_rows(self) -> list[dict]:
        return count_rows(self.info)


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
