"""The preference dataset format and its reader.

A dataset is a directory:

    dataset.json     name, format version, source, build parameters, seed, counts
    pairs.parquet    one labelled pair per row (liked and disliked image ids, split, seen)
    ratings.parquet  (format 2, optional) one rating per row: user, image, rating, split, seen
    tasks.parquet    materialized val/test tasks (1v1, 1v3, rating; one row per N_ref variant)
    images/ab/<id>   content-addressed store: <id> is the sha256 hex of the original
                     bytes, stored unchanged and without an extension (the format is
                     in the bytes); `ab` is the first two hex digits of the id.

Format 2 (docs/data.md) adds, without changing anything format 1 had:
unpaired history images per task (`history_liked_ids`, `history_disliked_ids`,
for PreferImg-Bench), rated histories (`history_rating_ids` into
ratings.parquet) and rating tasks (protocol "rating", `candidate_ratings`).
A format-1 dataset reads as before: the new columns are absent and empty.

Everything that trains or evaluates reads it through `Dataset`, so every
scorer and every run sees exactly the same pairs, tasks and images.
pyarrow is imported inside functions: `prefcli --help` imports this module's
callers without paying for it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from prefcli.errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa
    from PIL import Image

    from prefcli.types import Candidate, RankTask, UserHistory

FORMAT_VERSION = 2
INFO_FILE = "dataset.json"
PAIRS_FILE = "pairs.parquet"
TASKS_FILE = "tasks.parquet"
RATINGS_FILE = "ratings.parquet"
IMAGES_DIR = "images"
SPLITS = ("train", "val", "test")
EVAL_SPLITS = ("val", "test")
PROTOCOLS = ("1v1", "1v3")  # what the pair builders materialize
RATING_PROTOCOL = "rating"
ALL_PROTOCOLS = PROTOCOLS + (RATING_PROTOCOL,)  # what a dataset may hold
N_REF_SWEEP = (1, 2, 4, 8)


def pairs_schema() -> pa.Schema:
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


def tasks_schema() -> pa.Schema:
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
        + [(name, typ) for name, typ in _tasks_v2_columns()]
    )


def _tasks_v2_columns() -> list:
    """Format-2 task columns: optional when reading (null or absent = empty)."""
    import pyarrow as pa

    return [
        ("history_liked_ids", pa.list_(pa.string())),  # unpaired liked images, stored order
        ("history_disliked_ids", pa.list_(pa.string())),  # unpaired disliked images
        ("history_rating_ids", pa.list_(pa.string())),  # rows of ratings.parquet
        ("candidate_ratings", pa.list_(pa.float64())),  # rating tasks: the true rating per candidate
    ]


TASKS_V2_COLUMNS = ("history_liked_ids", "history_disliked_ids", "history_rating_ids", "candidate_ratings")


def ratings_schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema(
        [
            ("rating_id", pa.string()),
            ("user_id", pa.string()),
            ("image_id", pa.string()),
            ("prompt", pa.string()),
            ("rating", pa.float64()),
            ("split", pa.string()),
            ("seen", pa.bool_()),
        ]
    )


# An image id names one file of the store, never a path: a crafted tasks.parquet must not make
# prefcli open ../../etc/passwd. Content ids are sha256 hex; other builders' ids stay plain names.
_IMAGE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{1,254}$")


def check_image_id(image_id: object, where: str | os.PathLike = "dataset") -> str:
    """`image_id` when it is a plain file name for the image store, else DataError naming `where`."""
    if not isinstance(image_id, str) or not _IMAGE_ID.match(image_id) or ".." in image_id:
        raise DataError(
            f"{where}: image id {str(image_id)[:80]!r} is not a plain name inside the image store "
            f"(a path outside the dataset?); refused"
        )
    return image_id


def image_relpath(image_id: str) -> str:
    """Where an image lives inside a dataset directory (the id checked to stay inside it)."""
    check_image_id(image_id)
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
                "ratings": s.get("ratings"),
                "tasks_rating": t.get(RATING_PROTOCOL) if split != "train" else None,
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
    from prefcli.jsonio import read_json

    info = read_json(info_path)
    if not isinstance(info, dict) or "format_version" not in info:
        raise DataError(f"{info_path}: not a prefcli dataset description (no format_version)")
    _check_info(info, info_path)
    return info


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _check_info(info: dict, info_path: Path) -> None:
    """The types every reader of dataset.json relies on; a hand-edited or crafted file fails here, in one line."""
    version = info["format_version"]
    if not _is_int(version) or version < 1:
        raise DataError(f"{info_path}: format_version must be a positive integer, got {version!r}")
    if version > FORMAT_VERSION:
        raise DataError(
            f"{info_path}: format version {version} is newer than this prefcli reads ({FORMAT_VERSION}); upgrade prefcli"
        )
    if "name" in info and not isinstance(info["name"], str):
        raise DataError(f"{info_path}: name must be a string, got {_shown(info['name'])}")
    for key in ("build", "counts", "source", "source_stats"):
        if key in info and not isinstance(info[key], dict):
            raise DataError(f"{info_path}: {key} must be an object, got {_shown(info[key])}")
    counts = info.get("counts") or {}
    for key in ("splits", "tasks"):
        part = counts.get(key)
        if part is None:
            continue
        if not isinstance(part, dict) or not all(isinstance(v, dict) for v in part.values()):
            raise DataError(f"{info_path}: counts.{key} must map each split to an object, got {_shown(part)}")
    build = info.get("build") or {}
    if "n_ref" in build and (not _is_int(build["n_ref"]) or build["n_ref"] < 1):
        raise DataError(f"{info_path}: build.n_ref must be a positive integer, got {_shown(build['n_ref'])}")


def _shown(value: object) -> str:
    """A value as an error message shows it: short, and the type for containers."""
    if isinstance(value, (dict, list)):
        return f"{type(value).__name__} {json.dumps(value, default=str)[:60]}"
    return repr(value)[:80]


class Dataset:
    """Read access to a built dataset: pairs, users, tasks, histories and images."""

    def __init__(self, root: Path, info: dict):
        self.root = root
        self.info = info
        self._pairs: pa.Table | None = None
        self._tasks: pa.Table | None = None
        self._ratings: pa.Table | None = None

    @classmethod
    def open(cls, path: str | os.PathLike) -> Dataset:
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

    def _read(self, name: str, schema: pa.Schema, optional: Sequence[str] = ()) -> pa.Table:
        import pyarrow.parquet as pq

        path = self.root / name
        try:
            table = pq.read_table(path)
        except Exception as e:  # noqa: BLE001 - pyarrow raises several types for a bad file
            raise DataError(f"{path}: unreadable parquet ({e})") from None
        missing = [f.name for f in schema if f.name not in table.column_names and f.name not in optional]
        if missing:
            raise DataError(f"{path}: missing column(s) {', '.join(missing)}")
        return _cast_columns(path, table, schema)

    def pairs_table(self, split: str | None = None) -> pa.Table:
        """pairs.parquet as a pyarrow Table (cached), optionally one split."""
        import pyarrow.compute as pc

        if self._pairs is None:
            self._pairs = _check_ids(
                self.root / PAIRS_FILE,
                self._read(PAIRS_FILE, pairs_schema()),
                "pair_id",
                ("pair_id", "user_id", "liked_image_id", "disliked_image_id", "split"),
                ("liked_image_id", "disliked_image_id"),
            )
        if split is None:
            return self._pairs
        _check_split(split)
        return self._pairs.filter(pc.equal(self._pairs["split"], split))

    def tasks_table(self) -> pa.Table:
        if self._tasks is None:
            self._tasks = self._read(TASKS_FILE, tasks_schema(), optional=TASKS_V2_COLUMNS)
        return self._tasks

    @property
    def has_ratings(self) -> bool:
        return (self.root / RATINGS_FILE).is_file()

    def ratings_table(self, split: str | None = None) -> pa.Table:
        """ratings.parquet (format 2); an empty table for a dataset without ratings."""
        import pyarrow.compute as pc

        if self._ratings is None:
            if self.has_ratings:
                self._ratings = _check_ids(
                    self.root / RATINGS_FILE,
                    self._read(RATINGS_FILE, ratings_schema()),
                    "rating_id",
                    ("rating_id", "user_id", "image_id", "split"),
                    ("image_id",),
                )
            else:
                self._ratings = ratings_schema().empty_table()
        if split is None:
            return self._ratings
        _check_split(split)
        return self._ratings.filter(pc.equal(self._ratings["split"], split))

    def protocols(self, split: str = "test") -> list[str]:
        """The protocols this dataset has tasks for in `split`, in the canonical order."""
        import pyarrow.compute as pc

        t = self.tasks_table()
        have = set(pc.unique(t.filter(pc.equal(t["split"], split))["protocol"]).to_pylist())
        return [p for p in ALL_PROTOCOLS if p in have]

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
        check_image_id(image_id, self.root)
        return self.root / image_relpath(image_id)

    def open_image(self, image_id: str) -> Image.Image:
        """Decode one stored image to RGB (ImageError naming the file if it is missing, broken or outside)."""
        from prefcli import images

        return images.load_image(self._stored_file(image_id))

    def _stored_file(self, image_id: str) -> Path:
        """The image's file, resolved; ImageError when a link planted in images/ leads out of the store."""
        from prefcli import images
        from prefcli.errors import DataError
        from prefcli.paths import inside_root

        path = self.image_path(image_id)
        try:
            return inside_root(self.root / IMAGES_DIR, Path(image_relpath(image_id)).relative_to(IMAGES_DIR), "image")
        except DataError:
            real = os.path.realpath(path)
            raise images.image_error(str(path), f"links outside the dataset's image store ({real}); refused") from None

    def candidate(self, image_id: str, prompt: str | None = None) -> Candidate:
        from prefcli import images
        from prefcli.types import Candidate

        path = self.image_path(image_id)
        # The image in its own mode: each scorer converts it as its upstream does. The link check is made
        # when it is loaded, so one planted link is one image skipped and reported, not the whole run.
        return Candidate(
            image_id=image_id,
            prompt=prompt,
            path=str(path),
            loader=lambda: images.load_image(self._stored_file(image_id), keep_mode=True),
        )

    # ------------------------------------------------------------ histories and tasks

    def _pair_lookup(self, pair_ids: Sequence[str]) -> dict[str, dict]:
        import pyarrow as pa
        import pyarrow.compute as pc

        t = self.pairs_table()
        sel = t.filter(pc.is_in(t["pair_id"], value_set=pa.array(list(set(pair_ids)), pa.string())))
        return {r["pair_id"]: r for r in sel.to_pylist()}

    def history(self, user_id: str | None, pair_ids: Sequence[str]) -> UserHistory:
        """A UserHistory of the given pairs, in the given order (lazy image loading)."""
        lookup = self._pair_lookup(pair_ids)
        return self._history(user_id, pair_ids, lookup)

    def _history(self, user_id: str | None, pair_ids: Sequence[str], lookup: dict[str, dict]) -> UserHistory:
        from prefcli.types import HistoryPair, UserHistory

        pairs = []
        for pid in pair_ids:
            r = lookup.get(pid)
            if r is None:
                raise DataError(f"{self.root / PAIRS_FILE}: no pair with id {pid!r}")
            if user_id is not None and r["user_id"] != user_id:
                raise DataError(
                    f"{self.root / PAIRS_FILE}: pair {pid!r} belongs to user {r['user_id']!r}, not {user_id!r}"
                )
            pairs.append(
                HistoryPair(
                    liked=self.candidate(r["liked_image_id"], r["prompt"]),
                    disliked=self.candidate(r["disliked_image_id"], r["prompt"]),
                    prompt=r["prompt"],
                    pair_id=pid,
                )
            )
        return UserHistory(pairs=tuple(pairs), user_id=user_id)

    def task_rows(
        self, split: str = "test", protocol: str = "1v1", n_ref: int | None = None, seen: bool | None = None
    ) -> list[dict]:
        """Raw rows of tasks.parquet for one split / protocol / N_ref (default: the build's N_ref)."""
        import pyarrow.compute as pc

        if split not in EVAL_SPLITS:
            raise DataError(f"tasks exist for {', '.join(EVAL_SPLITS)}, not {split!r}")
        if protocol not in ALL_PROTOCOLS:
            raise DataError(f"unknown protocol {protocol!r}; choose from {', '.join(ALL_PROTOCOLS)}")
        n_ref = self.n_ref if n_ref is None else int(n_ref)
        variants = n_ref_variants(self.n_ref)
        if n_ref not in variants:
            raise DataError(f"{self.root}: no tasks with N_ref={n_ref}; this dataset has N_ref in {list(variants)}")
        t = self.tasks_table()
        mask = pc.and_(
            pc.and_(pc.equal(t["split"], split), pc.equal(t["protocol"], protocol)), pc.equal(t["n_ref"], n_ref)
        )
        if seen is not None:
            mask = pc.and_(mask, pc.equal(t["seen"], seen))
        rows = t.filter(mask).to_pylist()
        for r in rows:
            _check_task_row(self.root / TASKS_FILE, r)
        return rows

    def tasks(
        self, split: str = "test", protocol: str = "1v1", n_ref: int | None = None, seen: bool | None = None
    ) -> list[RankTask]:
        """Materialized evaluation tasks as RankTasks with lazily loaded candidates and history."""
        from prefcli.types import RankTask

        rows = self.task_rows(split, protocol, n_ref, seen)
        lookup = self._pair_lookup([pid for r in rows for pid in r["history_pair_ids"] or ()])
        rating_lookup = self._rating_lookup([rid for r in rows for rid in r.get("history_rating_ids") or ()])
        out = []
        for r in rows:
            cands = [self.candidate(i, p) for i, p in zip(r["candidate_image_ids"], r["candidate_prompts"])]
            history = self._history(r["user_id"], r["history_pair_ids"] or (), lookup)
            extra = self._unpaired(r, rating_lookup)
            if extra:
                history = dataclasses.replace(history, **extra)
            ratings = r.get("candidate_ratings")
            out.append(
                RankTask(
                    task_id=r["task_id"],
                    candidates=cands,
                    liked_index=int(r["liked_index"]),
                    history=history,
                    user_id=r["user_id"],
                    protocol=r["protocol"],
                    seen=r["seen"],
                    n_ref=int(r["n_ref"]),
                    ratings=tuple(float(x) for x in ratings) if ratings is not None else None,
                )
            )
        return out

    def _rating_lookup(self, rating_ids: Sequence[str]) -> dict[str, dict]:
        import pyarrow as pa
        import pyarrow.compute as pc

        if not rating_ids:
            return {}
        t = self.ratings_table()
        sel = t.filter(pc.is_in(t["rating_id"], value_set=pa.array(list(set(rating_ids)), pa.string())))
        return {r["rating_id"]: r for r in sel.to_pylist()}

    def _unpaired(self, row: dict, rating_lookup: dict[str, dict]) -> dict:
        """The format-2 parts of a task's history: unpaired liked/disliked images and ratings."""
        from prefcli.types import RatedImage

        extra: dict = {}
        liked, disliked = row.get("history_liked_ids") or (), row.get("history_disliked_ids") or ()
        if liked or disliked:
            extra["liked"] = tuple(self.candidate(i) for i in liked)
            extra["disliked"] = tuple(self.candidate(i) for i in disliked)
        rids = row.get("history_rating_ids") or ()
        if rids:
            rated = []
            for rid in rids:
                rr = rating_lookup.get(rid)
                if rr is None:
                    raise DataError(f"{self.root / RATINGS_FILE}: no rating with id {rid!r}")
                if rr["user_id"] != row["user_id"]:
                    raise DataError(
                        f"{self.root / RATINGS_FILE}: rating {rid!r} belongs to user {rr['user_id']!r}, not {row['user_id']!r}"
                    )
                rated.append(RatedImage(self.candidate(rr["image_id"], rr["prompt"]), float(rr["rating"]), rid))
            extra["ratings"] = tuple(rated)
        return extra

    def summary_rows(self) -> list[dict]:
        return count_rows(self.info)


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")


def _same_kind(actual: pa.DataType, expected: pa.DataType) -> bool:
    """Whether a column written with `actual` can be read as `expected` without changing its meaning
    (int64 for int32, large_string for string, an all-null column); a string n_ref cannot."""
    import pyarrow as pa

    t = pa.types
    if actual == expected or t.is_null(actual):
        return True
    if t.is_integer(expected):
        return t.is_integer(actual)
    if t.is_floating(expected):
        return t.is_floating(actual) or t.is_integer(actual)
    if t.is_string(expected) or t.is_large_string(expected):
        return t.is_string(actual) or t.is_large_string(actual)
    if t.is_list(expected) or t.is_large_list(expected):
        return (t.is_list(actual) or t.is_large_list(actual)) and _same_kind(actual.value_type, expected.value_type)
    return False


def _cast_columns(path: Path, table: pa.Table, schema: pa.Schema) -> pa.Table:
    """`table` with each known column in the schema's type; a column of another kind is a DataError
    naming the file and the column (a string n_ref, a float liked_index would mislead every reader)."""
    import pyarrow as pa

    for f in schema:
        if f.name not in table.column_names:
            continue
        actual = table.schema.field(f.name).type
        if actual == f.type:
            continue
        if not _same_kind(actual, f.type):
            raise DataError(f"{path}: column {f.name} holds {actual}, expected {f.type}")
        try:
            column = table[f.name].cast(f.type, safe=True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
            raise DataError(f"{path}: column {f.name} does not fit {f.type} ({str(e).splitlines()[0]})") from None
        table = table.set_column(table.schema.get_field_index(f.name), f.name, column)
    return table


def _check_ids(
    path: Path, table: pa.Table, id_column: str, required: Sequence[str], image_columns: Sequence[str]
) -> pa.Table:
    """No nulls where every reader needs a value, and image ids that are plain names of the store
    (vectorized: a crafted row fails here, naming its row id, before any image is opened)."""
    import pyarrow.compute as pc

    def first(mask) -> str:
        row = table.filter(mask).slice(0, 1).to_pylist()[0]
        return f"{id_column} {str(row.get(id_column))[:80]!r}"

    for col in required:
        if table[col].null_count:
            raise DataError(f"{path}: column {col} is null in row {first(pc.is_null(table[col]))}")
    for col in image_columns:
        plain = pc.and_(
            pc.match_substring_regex(table[col], _IMAGE_ID.pattern), pc.invert(pc.match_substring(table[col], ".."))
        )
        if table.filter(pc.invert(plain)).num_rows:
            bad = table.filter(pc.invert(plain))[col][0].as_py()
            raise DataError(
                f"{path}: {col} {str(bad)[:80]!r} in row {first(pc.invert(plain))} is not a plain name "
                f"inside the image store (a path outside the dataset?); refused"
            )
    return table


_TASK_REQUIRED = ("task_id", "split", "protocol", "n_ref", "user_id", "candidate_image_ids", "liked_index")


def _check_task_row(path: Path, row: dict) -> None:
    """One task's values: what the scorers and metrics index with must be in range (checked per row read)."""
    tid = row.get("task_id")
    where = f"{path}: task {str(tid)[:80]!r}"
    for key in _TASK_REQUIRED:
        if row.get(key) is None:
            raise DataError(f"{where}: {key} is null")
    cands = row["candidate_image_ids"]
    n = len(cands)
    if n < 1:
        raise DataError(f"{where}: no candidate images")
    prompts = row.get("candidate_prompts")
    if prompts is None:
        row["candidate_prompts"] = [None] * n
    elif len(prompts) != n:
        raise DataError(f"{where}: {len(prompts)} candidate prompts for {n} candidate images")
    if row["n_ref"] < 0:
        raise DataError(f"{where}: n_ref {row['n_ref']} is negative")
    li = row["liked_index"]
    if row["protocol"] == RATING_PROTOCOL:
        ratings = row.get("candidate_ratings")
        if ratings is None or len(ratings) != n:
            raise DataError(
                f"{where}: a rating task needs one candidate rating per candidate ({n}), "
                f"got {'none' if ratings is None else len(ratings)}"
            )
        if any(x is None or x != x for x in ratings):
            raise DataError(f"{where}: a candidate rating is null or NaN")
    elif not 0 <= li < n:
        raise DataError(f"{where}: liked_index {li} is out of range for {n} candidates (0..{n - 1})")
