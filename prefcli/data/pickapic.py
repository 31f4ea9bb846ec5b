"""Build a dataset from Pick-a-Pic v2 parquet shards: local, or streamed from the hub.

The real data is ~335 GB of parquet with the JPEG bytes inline, so the build
never holds more than one batch of images, and it survives being killed:

  pass 1  each shard, light columns only (user, uids, labels, flags, caption)
          -> .work/meta/NNNNN.parquet (the valid pairs of that shard)
  plan    all metas' (pair id, user, liked/disliked uid keys) -> eligible
          users, the user-level split, seen/unseen test users
          -> .work/plan/NNNNN.parquet (the kept rows of each shard, with split)
  pass 2  each shard again, image columns only, only row groups holding kept
          rows; every image decoded once to prove it is an image, stored under
          its sha256 (deduplicated) -> .work/parts/NNNNN.parquet
  final   pairs.parquet (hold-out filter), tasks.parquet, dataset.json, then
          DIR.partial is renamed to DIR: that rename is the commit.

Every step writes its output under a temporary name and records the finished
shard in .work/progress.json; a rerun skips what is done. Each shard's
output is a pure function of the shard and the plan, so a resumed build is
byte-identical to an uninterrupted one. A shard that cannot be read, and a
row whose image bytes do not decode, are reported and skipped.
docs/data.md states the selection and split rules.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import math
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import IO

from prefcli.data.dataset import (
    FORMAT_VERSION,
    IMAGES_DIR,
    INFO_FILE,
    PAIRS_FILE,
    TASKS_FILE,
    image_relpath,
    pairs_schema,
    tasks_schema,
)
from prefcli.data.importing import (
    JOURNAL,
    MAX_PROBLEMS_RECORDED,
    WORK_DIR,
    ImageStore,
    ImportResult,
    Journal,
    already_built,
    build_locked,
    image_store_counts,
    remove_stale_temporaries,
)
from prefcli.errors import DataError
from prefcli.weights import is_offline, sha256_file

HUB_REPO = "yuvalkirstain/pickapic_v2"
HUB_DEFAULT_INCLUDE = "data/*.parquet"
# `hf download --include` patterns that fetch exactly what the default hub build streams
# (train, validation, test; not the *_unique copies); docs/data.md uses them.
HUB_DOWNLOAD_INCLUDES = ("data/train-*", "data/validation-*", "data/test-*")

LIGHT_COLUMNS = ("user_id", "caption", "image_0_uid", "image_1_uid", "label_0", "label_1", "has_label", "are_different")
IMAGE_COLUMNS = ("jpg_0", "jpg_1")
REQUIRED_COLUMNS = LIGHT_COLUMNS + IMAGE_COLUMNS

LIGHT_BATCH_ROWS = 65536
IMAGE_BATCH_ROWS = 64
READ_BUFFER_BYTES = 8 << 20  # buffered column reads: memory per batch, not per column chunk
TASK_CHUNK_ROWS = 20000
HOLD_OUT_SCOPES = ("seen", "all", "user")

# Tests set this to simulate a crash: called as hook(phase, shard_index) after
# each shard's result is committed to the journal ("pass1" / "pass2").
_after_shard: Callable[[str, int], None] | None = None


@dataclass
class BuildParams:
    """Everything that decides the content of a build (recorded in dataset.json)."""

    n_ref: int = 8
    min_liked: int = 11
    seed: int = 0
    limit_shards: int | None = None
    val_users: int | None = None
    test_users: int | None = None
    val_frac: float = 0.0367  # 89 of the paper's 2,426 eligible users
    test_frac: float = 0.0289  # 70 of 2,426
    seen_frac: float = 0.5
    seen_test_frac: float = 0.25
    # Which images training pairs may not contain. "seen": any seen test user's test
    # image; "all": any val/test image; "user": a seen user's test images stay out
    # of that user's own training pairs only (for worlds whose image pool is shared).
    # None: "user" for a synthetic world (its folder has world.json), else "seen".
    hold_out: str | None = None
    include: str | None = None
    name: str | None = None

    def validate(self) -> None:
        def bad(msg: str) -> DataError:
            return DataError(f"pickapic build: {msg}")

        if self.n_ref < 1:
            raise bad(f"--n-ref must be at least 1, got {self.n_ref}")
        if self.min_liked < 1:
            raise bad(f"--min-liked must be at least 1, got {self.min_liked}")
        if self.limit_shards is not None and self.limit_shards < 1:
            raise bad(f"--limit-shards must be at least 1, got {self.limit_shards}")
        for k in ("val_users", "test_users"):
            v = getattr(self, k)
            if v is not None and v < 1:
                raise bad(f"--{k.replace('_', '-')} must be at least 1, got {v}")
        for k in ("val_frac", "test_frac", "seen_frac", "seen_test_frac"):
            v = getattr(self, k)
            if not 0.0 <= v <= 1.0:
                raise bad(f"--{k.replace('_', '-')} must be between 0 and 1, got {v}")
        if self.hold_out is not None and self.hold_out not in HOLD_OUT_SCOPES:
            raise bad(f"--hold-out must be one of {', '.join(HOLD_OUT_SCOPES)}, got {self.hold_out!r}")


# One result type for every dataset build (this builder and the benchmark importers).
BuildResult = ImportResult


# ---------------------------------------------------------------- sources


class LocalSource:
    """A folder of parquet shards (searched recursively, sorted by relative path)."""

    kind = "local"

    def __init__(self, root: Path, include: str | None = None):
        self.root = root
        self.include = include
        self.location = str(root.resolve())
        self.revision = None

        self.ignored: list[str] = []

    def shards(self) -> list[str]:
        import pyarrow.parquet as pq

        names = sorted(p.relative_to(self.root).as_posix() for p in self.root.rglob("*.parquet") if p.is_file())
        names = [n for n in names if not any(part.startswith(".") for part in n.split("/"))]
        if self.include:
            names = [n for n in names if fnmatch.fnmatch(n, self.include)]
        # Readable parquet files of another schema (the synthetic world's users.parquet,
        # images.parquet) are not shards; unreadable ones stay, to be reported as corrupt.
        shards = []
        for n in names:
            try:
                cols = pq.read_schema(self.root / n).names
            except Exception:  # noqa: BLE001 - a truncated shard: pass 1 reports it
                shards.append(n)
                continue
            present = [c for c in REQUIRED_COLUMNS if c in cols]
            if any(c in cols for c in IMAGE_COLUMNS) or 2 * len(present) >= len(REQUIRED_COLUMNS):
                shards.append(n)  # a Pick-a-Pic shard missing a column: pass 1 reports it, with the column
            else:
                self.ignored.append(n)
        return shards

    def open(self, name: str) -> IO[bytes]:
        return open(self.root / name, "rb")


class HubSource:
    """A hub dataset's parquet files, read with HTTP range requests (only the columns a pass needs)."""

    kind = "hub"

    def __init__(self, repo_id: str, include: str | None = None, revision: str | None = None):
        self.repo_id = repo_id
        self.include = include
        self.location = repo_id
        self.revision = revision
        self.ignored: list[str] = []

    def _hint(self) -> str:
        return (
            f"download the shards first (hf download {self.repo_id} --repo-type dataset "
            f"{' '.join(f'--include {p!r}' for p in HUB_DOWNLOAD_INCLUDES)} --local-dir DIR) and pass --source DIR/data"
        )

    def shards(self) -> list[str]:
        if is_offline():
            raise DataError(
                f"{self.repo_id}: cannot stream from the Hugging Face hub in offline mode (HF_HUB_OFFLINE is set); {self._hint()}"
            )
        try:
            from huggingface_hub import HfApi

            api = HfApi()
            if self.revision is None:
                # Pin the commit, so a resumed build reads the same files.
                self.revision = api.dataset_info(self.repo_id).sha
            files = api.list_repo_files(self.repo_id, repo_type="dataset", revision=self.revision)
        except Exception as e:  # noqa: BLE001 - network errors come in many types
            raise DataError(
                f"{self.repo_id}: cannot list the dataset on the Hugging Face hub ({type(e).__name__}: {e}); {self._hint()}"
            ) from None
        names = sorted(f for f in files if f.endswith(".parquet"))
        if self.include:
            return [n for n in names if fnmatch.fnmatch(n, self.include)]
        # The *_unique splits repeat rows of validation/test: leave them out by default.
        return [n for n in names if fnmatch.fnmatch(n, HUB_DEFAULT_INCLUDE) and "_unique" not in n]

    def open(self, name: str) -> IO[bytes]:
        if is_offline():
            raise DataError(f"{self.repo_id}: offline mode is set; cannot read {name}")
        from huggingface_hub import HfFileSystem

        rev = f"@{self.revision}" if self.revision else ""
        return HfFileSystem().open(f"datasets/{self.repo_id}{rev}/{name}", "rb", block_size=READ_BUFFER_BYTES)


def resolve_source(src: str, include: str | None = None) -> LocalSource | HubSource:
    """A local folder (or one .parquet file) or a hub dataset id (`owner/name` or `hf-hub:owner/name[@rev]`)."""
    if src.startswith("hf-hub:"):
        repo, _, rev = src[len("hf-hub:") :].partition("@")
        return HubSource(repo, include, rev or None)
    p = Path(src).expanduser()
    if p.exists():
        if p.is_dir():
            return LocalSource(p, include)
        if p.suffix == ".parquet":
            return LocalSource(p.parent, p.name)
        raise DataError(f"{src}: not a folder of parquet shards")
    if re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", src) and not src.startswith("."):
        return HubSource(src, include)
    raise DataError(
        f"{src}: source not found (give a folder of Pick-a-Pic parquet shards or a hub dataset id such as {HUB_REPO})"
    )


# ---------------------------------------------------------------- shard identity

IDENTITY_TAIL_BYTES = 1 << 20


def _head_tail_sha256(path: Path, size: int) -> str:
    """sha256 of the first and last MiB: the parquet footer (every row group's offsets, sizes,
    statistics) and the first pages; cheap enough to check every read shard on each resume."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read(IDENTITY_TAIL_BYTES))
        if size > IDENTITY_TAIL_BYTES:
            f.seek(max(IDENTITY_TAIL_BYTES, size - IDENTITY_TAIL_BYTES))
            h.update(f.read())
    return h.hexdigest()


def _shard_identity(source, name: str, full: bool = True) -> dict:
    """Size and content hashes of a local shard, recorded in the journal when pass 1 reads it.

    ``sha256`` covers the whole file, so any rewrite is caught, even one that keeps the size
    and the footer; it is checked right before pass 2 uses the shard's rows. A resume first
    checks every shard pass 1 read by size and ``sha256_head_tail`` only (`full=False`),
    so it need not read the whole source again before it can start. Hub shards are pinned by
    the commit recorded in the fingerprint.
    """
    if getattr(source, "kind", None) != "local":
        return {}
    path = source.root / name
    try:
        size = path.stat().st_size
        ident = {"size": size, "sha256_head_tail": _head_tail_sha256(path, size)}
        if full:
            ident["sha256"] = sha256_file(path)  # bench/bench_shard_hash.py: a few % of building from the shard
    except OSError as e:
        raise _io_failure(e, f"the journal entry of {name}") from None
    return ident


def _check_unchanged(source, name: str, entry: dict, full: bool = True) -> None:
    if "size" not in entry:
        return  # hub sources, and journals written before identities were recorded
    if not (source.root / name).is_file():
        raise DataError(
            f"{source.root / name}: the shard was removed since the unfinished build read it; "
            f"put it back to resume, or delete the .partial folder to start over"
        )
    full = full and "sha256" in entry  # journals from before the whole-file hash: head and tail only
    now = _shard_identity(source, name, full=full)
    changed = now["size"] != entry["size"] or now["sha256_head_tail"] != entry.get("sha256_head_tail")
    if changed or (full and now["sha256"] != entry["sha256"]):
        what = (
            f"size {entry['size']} -> {now['size']} bytes"
            if now["size"] != entry["size"]
            else "its content hash differs"
        )
        raise DataError(
            f"{source.root / name}: the shard changed since the unfinished build read it ({what}); "
            f"a resume would mix its rows with other images: restore it, or delete the .partial "
            f"folder to start over"
        )


# ---------------------------------------------------------------- pass 1


class _ShardError(Exception):
    pass


def _is_io_error(e: BaseException) -> bool:
    """A failure of the machine (disk full, I/O error, permissions), not of the shard's content.

    The operating system sets errno on those; pyarrow's own OSErrors about a
    damaged file carry none. Such a failure stops the build, to be rerun;
    it never marks the shard bad (a resumed build would silently leave it out).
    """
    return isinstance(e, OSError) and e.errno is not None


def _io_failure(e: OSError, what: str) -> DataError:
    where = e.filename if e.filename is not None else what
    return DataError(
        f"{where}: {e.strerror or e} while building {what}; nothing was marked bad: "
        f"fix it (free space?) and rerun the same command to resume"
    )


def _uid_keys(values: list) -> list[int]:
    # 64-bit keys stand in for uid and pair id strings in the plan (1M ids: 8 MB instead of ~100 MB).
    return [int.from_bytes(hashlib.blake2b(v.encode(), digest_size=8).digest(), "little", signed=True) for v in values]


def _open_parquet(f):
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(f, buffer_size=READ_BUFFER_BYTES, pre_buffer=False)
    names = pf.schema_arrow.names
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise _ShardError(f"not a Pick-a-Pic shard: missing column(s) {', '.join(missing)}")
    return pf


def _light_batch(batch, offset: int, shard: str, stats: dict):
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    def col(name):
        return batch.column(batch.schema.get_field_index(name))

    n = batch.num_rows
    f = lambda a: pc.fill_null(a, False)  # noqa: E731
    has_label = f(pc.cast(col("has_label"), pa.bool_()))
    different = f(pc.cast(col("are_different"), pa.bool_()))
    l0 = pc.cast(col("label_0"), pa.float64())
    l1 = pc.cast(col("label_1"), pa.float64())
    uid0 = pc.cast(col("image_0_uid"), pa.string())
    uid1 = pc.cast(col("image_1_uid"), pa.string())
    user = pc.cast(col("user_id"), pa.string())
    labelled = pc.and_(has_label, pc.and_(pc.is_valid(l0), pc.is_valid(l1)))
    tie = pc.and_(labelled, f(pc.equal(l0, l1)))
    ok = pc.and_(labelled, different)
    ok = pc.and_(ok, f(pc.not_equal(l0, l1)))
    ok = pc.and_(ok, pc.and_(pc.is_valid(user), pc.and_(pc.is_valid(uid0), pc.is_valid(uid1))))
    ok = pc.and_(ok, f(pc.not_equal(uid0, uid1)))
    stats["rows"] += n
    stats["labelled"] += pc.sum(labelled).as_py() or 0
    stats["ties"] += pc.sum(tie).as_py() or 0
    stats["not_different"] += pc.sum(pc.and_(labelled, pc.invert(different))).as_py() or 0
    stats["valid"] += pc.sum(ok).as_py() or 0

    rows = pa.array(np.arange(offset, offset + n, dtype=np.int64))
    fallback = pc.binary_join_element_wise(pa.array([shard] * n, pa.string()), pc.cast(rows, pa.string()), ":")
    if "ranking_id" in batch.schema.names:
        pair_id = pc.coalesce(pc.cast(col("ranking_id"), pa.string()), fallback)
    else:
        pair_id = fallback
    side0 = f(pc.greater(l0, l1))  # True: image 0 is the liked one
    caption = pc.fill_null(pc.cast(col("caption"), pa.string()), "")
    t = pa.table(
        {
            "row": rows,
            "pair_id": pair_id,
            "user_id": user,
            "caption": caption,
            "liked_side": pc.cast(pc.if_else(side0, 0, 1), pa.int8()),
            "liked_uid": pc.if_else(side0, uid0, uid1),
            "disliked_uid": pc.if_else(side0, uid1, uid0),
        }
    ).filter(ok)
    t = t.append_column("pair_key", pa.array(_uid_keys(t["pair_id"].to_pylist()), pa.int64()))
    t = t.append_column("liked_key", pa.array(_uid_keys(t["liked_uid"].to_pylist()), pa.int64()))
    t = t.append_column("disliked_key", pa.array(_uid_keys(t["disliked_uid"].to_pylist()), pa.int64()))
    return t


def _read_light(source, name: str, on_rows: Callable[[int], None]):
    """The valid pairs of one shard (light columns only) and the shard's counts."""
    import pyarrow as pa

    stats = {"rows": 0, "labelled": 0, "ties": 0, "not_different": 0, "valid": 0}
    tables = []
    with source.open(name) as f:
        pf = _open_parquet(f)
        cols = list(LIGHT_COLUMNS) + (["ranking_id"] if "ranking_id" in pf.schema_arrow.names else [])
        offset = 0
        for batch in pf.iter_batches(batch_size=LIGHT_BATCH_ROWS, columns=cols):
            tables.append(_light_batch(batch, offset, name, stats))
            offset += batch.num_rows
            on_rows(batch.num_rows)
    if not tables:
        return None, stats
    return pa.concat_tables(tables).combine_chunks(), stats


# ---------------------------------------------------------------- plan


def _round(x: float) -> int:
    return int(math.floor(x + 0.5))  # half up: round(0.5) would give 0 seen users of 1


def _order_key(seed: int, key: str) -> str:
    return hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()


def _components(pairs: list[tuple[int, int, int]]) -> dict[int, int]:
    """pair id -> component id, where pairs sharing an image are connected."""
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for _, a, b in pairs:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return {pid: find(a) for pid, a, _ in pairs}


def _seen_test_part(pairs: list[tuple[int, int, int]], params: BuildParams) -> set[int] | None:
    """Pair keys of a seen user's test part: whole image-components, in seeded order, until the target size."""
    comp = _components(pairs)
    ordered = sorted(pairs, key=lambda p: _order_key(params.seed, str(p[0])))
    comp_order: list[int] = []
    size: dict[int, int] = {}
    for pid, _, _ in ordered:
        c = comp[pid]
        if c not in size:
            comp_order.append(c)
            size[c] = 0
        size[c] += 1
    if len(comp_order) < 2:
        return None
    target = max(math.ceil(params.seen_test_frac * len(pairs)), params.n_ref + 4)
    test_comps: set[int] = set()
    n = 0
    for i, c in enumerate(comp_order):
        if n >= target or i == len(comp_order) - 1:  # always leave one component for training
            break
        test_comps.add(c)
        n += size[c]
    return {pid for pid, _, _ in pairs if comp[pid] in test_comps}


def _make_plan(work: Path, ok_shards: list[int], params: BuildParams) -> dict:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from prefcli.atomic import atomic_path

    tables, sizes = [], []
    for i in ok_shards:
        t = pq.read_table(
            work / "meta" / f"{i:05d}.parquet", columns=["pair_key", "user_id", "liked_key", "disliked_key"]
        )
        tables.append(t)
        sizes.append(t.num_rows)
    total = sum(sizes)
    if total == 0:
        raise DataError("pickapic build: no labelled, different, non-tie pairs in the readable shards")
    T = pa.concat_tables(tables)
    del tables
    pair_key = T["pair_key"].to_numpy()
    _, first = np.unique(pair_key, return_index=True)
    keep = np.zeros(total, dtype=bool)
    keep[first] = True  # first occurrence of a ranking id, in shard order
    del first
    users = T["user_id"].combine_chunks().dictionary_encode()
    ucodes = users.indices.to_numpy().astype(np.int64)
    unames = users.dictionary.to_pylist()
    del users
    liked = T["liked_key"].to_numpy()
    disliked = T["disliked_key"].to_numpy()
    del T
    # Unique liked images per user: sort by (user, liked key), count the changes.
    uk, lk = ucodes[keep], liked[keep]
    order = np.lexsort((lk, uk))
    uk, lk = uk[order], lk[order]
    new = np.ones(len(uk), dtype=bool)
    new[1:] = (uk[1:] != uk[:-1]) | (lk[1:] != lk[:-1])
    liked_count = np.bincount(uk[new], minlength=len(unames))
    del uk, lk, order, new
    eligible = [unames[u] for u in np.nonzero(liked_count >= params.min_liked)[0]]
    n = len(eligible)
    if n < 3:
        raise DataError(
            f"pickapic build: only {n} user(s) have at least {params.min_liked} unique liked images; "
            "need 3 or more for train/val/test (lower --min-liked or add shards)"
        )
    order = sorted(eligible, key=lambda u: _order_key(params.seed, u))
    n_test = params.test_users if params.test_users is not None else max(1, _round(params.test_frac * n))
    n_val = params.val_users if params.val_users is not None else max(1, _round(params.val_frac * n))
    if n_test + n_val >= n:
        raise DataError(
            f"pickapic build: {n} eligible users cannot hold {n_val} val + {n_test} test users and leave any for training"
        )
    test_users, val_users = order[:n_test], order[n_test : n_test + n_val]
    split_of = {u: "test" for u in test_users} | {u: "val" for u in val_users}
    split_of.update({u: "train" for u in order[n_test + n_val :]})

    # Seen test users: the first (in seeded order) whose pairs form >= 2 image-components.
    code_of = {name: i for i, name in enumerate(unames)}
    test_codes = np.array([code_of[u] for u in test_users], dtype=np.int64)
    sel = np.nonzero(keep & np.isin(ucodes, test_codes))[0]
    by_user: dict[str, list[tuple[int, int, int]]] = {}
    for idx in sel:
        by_user.setdefault(unames[ucodes[idx]], []).append((int(pair_key[idx]), int(liked[idx]), int(disliked[idx])))
    del pair_key, liked, disliked, ucodes
    n_seen_target = _round(params.seen_frac * n_test)
    pair_split: dict[int, str] = {}
    seen_users: list[str] = []
    for u in test_users:
        if len(seen_users) >= n_seen_target:
            break
        part = _seen_test_part(by_user.get(u, []), params)
        if part is None:
            continue
        seen_users.append(u)
        for pid, _, _ in by_user[u]:
            pair_split[pid] = "test" if pid in part else "train"
    seen_set = set(seen_users)

    planned = {"train": 0, "val": 0, "test": 0}
    offset = 0
    for i, size in zip(ok_shards, sizes):
        k = keep[offset : offset + size]
        offset += size
        meta = pq.read_table(work / "meta" / f"{i:05d}.parquet").filter(pa.array(k))
        splits, seen = [], []
        for key, u in zip(meta["pair_key"].to_pylist(), meta["user_id"].to_pylist()):
            s = split_of.get(u)
            if s is not None and u in seen_set:
                s = pair_split[key]
            splits.append(s)
            seen.append((u in seen_set) if s == "test" else None)
        meta = meta.append_column("split", pa.array(splits, pa.string())).append_column(
            "seen", pa.array(seen, pa.bool_())
        )
        meta = meta.filter(pc.is_valid(meta["split"])).drop_columns(["pair_key", "liked_key", "disliked_key"])
        for s in planned:
            planned[s] += int(pc.sum(pc.equal(meta["split"], s)).as_py() or 0)
        with atomic_path(work / "plan" / f"{i:05d}.parquet") as tmp:
            pq.write_table(meta, tmp)
    return {
        "valid_pairs": total,
        "duplicate_pairs": int(total - keep.sum()),
        "users_with_valid_pairs": len(unames),
        "eligible_users": n,
        "train_users": n - n_test - n_val,
        "val_users": n_val,
        "test_users": n_test,
        "seen_test_users": len(seen_users),
        "seen_test_users_wanted": n_seen_target,
        "planned_pairs": planned,
    }


# ---------------------------------------------------------------- pass 2


def _process_shard(source, name: str, plan_path: Path, store: ImageStore, on_progress: Callable[[int, int], None]):
    """Kept pairs of one shard with content ids, and the problems met (rows skipped)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    plan = pq.read_table(plan_path).to_pylist()
    plan.sort(key=lambda r: r["row"])
    out: list[dict] = []
    problems: list[dict] = []
    stats = {"kept": 0, "broken_rows": 0, "identical_images": 0, "new_images": 0}
    if not plan:
        return pa.Table.from_pylist([], schema=pairs_schema()), problems, stats
    with source.open(name) as f:
        pf = _open_parquet(f)
        md = pf.metadata
        starts = [0]
        for g in range(md.num_row_groups):
            starts.append(starts[-1] + md.row_group(g).num_rows)
        k = 0
        for g in range(md.num_row_groups):
            if k >= len(plan):
                break
            if plan[k]["row"] >= starts[g + 1]:
                continue  # no kept row in this row group: its images are never read
            base = starts[g]
            for batch in pf.iter_batches(batch_size=IMAGE_BATCH_ROWS, row_groups=[g], columns=list(IMAGE_COLUMNS)):
                end = base + batch.num_rows
                c0, c1 = batch.column(0), batch.column(1)
                while k < len(plan) and plan[k]["row"] < end:
                    r = plan[k]
                    k += 1
                    j = r["row"] - base
                    sides = (c0[j].as_py(), c1[j].as_py())
                    side = int(r["liked_side"])
                    liked_b, disliked_b = sides[side], sides[1 - side]
                    where = f"{name} row {r['row']}"
                    reasons = []
                    ids = []
                    for role, col, uid, data in (
                        ("liked", side, r["liked_uid"], liked_b),
                        ("disliked", 1 - side, r["disliked_uid"], disliked_b),
                    ):
                        cid, reason = store.check(data, f"{where} jpg_{col}")
                        ids.append(cid)
                        if reason:
                            reasons.append(f"jpg_{col} ({role} image {uid}): {reason}")
                    if reasons:
                        stats["broken_rows"] += 1
                        problems.append(
                            {"shard": name, "row": r["row"], "pair_id": r["pair_id"], "reason": "; ".join(reasons)}
                        )
                        continue
                    if ids[0] == ids[1]:
                        stats["identical_images"] += 1  # two uids, the same bytes: not a comparison
                        continue
                    stats["new_images"] += store.put(ids[0], liked_b) + store.put(ids[1], disliked_b)
                    out.append(
                        {
                            "pair_id": r["pair_id"],
                            "user_id": r["user_id"],
                            "prompt": r["caption"],
                            "liked_image_id": ids[0],
                            "disliked_image_id": ids[1],
                            "split": r["split"],
                            "seen": r["seen"],
                        }
                    )
                on_progress(batch.num_rows, len(out))
                base = end
    stats["kept"] = len(out)
    return pa.Table.from_pylist(out, schema=pairs_schema()), problems, stats


# ---------------------------------------------------------------- finalize


def _id_keys(ids: list[str]):
    import numpy as np

    return np.array([int(i[:16], 16) for i in ids], dtype=np.uint64)


def _finalize(work_root: Path, work: Path, parts: list[Path], params: BuildParams) -> tuple[dict, dict]:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from prefcli.atomic import atomic_path
    from prefcli.data.tasks import iter_tasks

    # The hold-out images: never in a training pair (of anyone, or of the same user).
    hold: set = set()
    for p in parts:
        t = pq.read_table(p, columns=["user_id", "split", "seen", "liked_image_id", "disliked_image_id"])
        if params.hold_out == "all":
            mask = pc.not_equal(t["split"], "train")
        else:
            mask = pc.and_(pc.equal(t["split"], "test"), pc.fill_null(t["seen"], False))
        t = t.filter(mask)
        for u, a, b in zip(
            t["user_id"].to_pylist(), t["liked_image_id"].to_pylist(), t["disliked_image_id"].to_pylist()
        ):
            if params.hold_out == "user":
                hold.update(((u, a), (u, b)))
            else:
                hold.update((a, b))
    hold_users = {u for u, _ in hold} if params.hold_out == "user" else set()
    hold_arr = pa.array(sorted(hold), pa.string()) if params.hold_out != "user" else None

    def leak_mask(t):
        train = pc.equal(t["split"], "train")
        if hold_arr is not None:
            hit = pc.or_(
                pc.is_in(t["liked_image_id"], value_set=hold_arr), pc.is_in(t["disliked_image_id"], value_set=hold_arr)
            )
            return pc.and_(train, hit)
        flags = [
            s == "train" and u in hold_users and ((u, a) in hold or (u, b) in hold)
            for s, u, a, b in zip(
                t["split"].to_pylist(),
                t["user_id"].to_pylist(),
                t["liked_image_id"].to_pylist(),
                t["disliked_image_id"].to_pylist(),
            )
        ]
        return pa.array(flags, pa.bool_())

    held_images = {x if isinstance(x, str) else x[1] for x in hold}
    users: dict[str, set[str]] = {"train": set(), "val": set(), "test": set()}
    keys: dict[str, list] = {"train": [], "val": [], "test": []}
    n_pairs = {"train": 0, "val": 0, "test": 0}
    eval_rows: list[dict] = []
    dropped_ids: set[str] = set()
    dropped = 0
    with atomic_path(work_root / PAIRS_FILE) as tmp:
        writer = pq.ParquetWriter(tmp, pairs_schema())
        try:
            for p in parts:
                t = pq.read_table(p, schema=pairs_schema())
                if hold:
                    leak = leak_mask(t)
                    gone = t.filter(leak)
                    if gone.num_rows:
                        dropped += gone.num_rows
                        dropped_ids.update(gone["liked_image_id"].to_pylist())
                        dropped_ids.update(gone["disliked_image_id"].to_pylist())
                        t = t.filter(pc.invert(leak))
                writer.write_table(t)
                for s in n_pairs:
                    ts = t.filter(pc.equal(t["split"], s))
                    n_pairs[s] += ts.num_rows
                    users[s].update(ts["user_id"].to_pylist())
                    keys[s].append(_id_keys(ts["liked_image_id"].to_pylist() + ts["disliked_image_id"].to_pylist()))
                    if s != "train":
                        eval_rows.extend(ts.to_pylist())
        finally:
            writer.close()

    # Images only a dropped pair used are removed, so the store holds exactly what pairs reference.
    orphans_removed = 0
    if dropped_ids:
        cand = pa.array(sorted(dropped_ids - held_images), pa.string())
        referenced: set[str] = set()
        pf = pq.ParquetFile(work_root / PAIRS_FILE)
        for b in pf.iter_batches(columns=["liked_image_id", "disliked_image_id"]):
            for c in (b.column(0), b.column(1)):
                referenced.update(c.filter(pc.is_in(c, value_set=cand)).to_pylist())
        for cid in cand.to_pylist():
            if cid not in referenced:
                # Counted whether or not the file is still there: a finalize redone after a
                # crash must report what an uninterrupted one reports.
                orphans_removed += 1
                (work_root / image_relpath(cid)).unlink(missing_ok=True)

    # Task rows are written in chunks: ~8 rows per val/test pair would otherwise sit in memory as dicts.
    task_stats: dict = {}
    task_counts: dict[str, int] = {}
    with atomic_path(work_root / TASKS_FILE) as tmp:
        writer = pq.ParquetWriter(tmp, tasks_schema())
        try:
            chunk: list[dict] = []
            for row in iter_tasks(eval_rows, params.n_ref, params.seed, task_stats):
                task_counts[row["split"]] = task_counts.get(row["split"], 0) + 1
                chunk.append(row)
                if len(chunk) >= TASK_CHUNK_ROWS:
                    writer.write_table(pa.Table.from_pylist(chunk, schema=tasks_schema()))
                    chunk = []
            writer.write_table(pa.Table.from_pylist(chunk, schema=tasks_schema()))
        finally:
            writer.close()

    def n_images(s: str) -> int:
        return int(len(np.unique(np.concatenate(keys[s])))) if keys[s] else 0

    splits = {s: {"users": len(users[s]), "pairs": n_pairs[s], "images": n_images(s)} for s in n_pairs}
    test = [r for r in eval_rows if r["split"] == "test"]
    for flag, label in ((True, "seen"), (False, "unseen")):
        rows = [r for r in test if r["seen"] is flag]
        splits["test"][f"{label}_users"] = len({r["user_id"] for r in rows})
        splits["test"][f"{label}_pairs"] = len(rows)
        splits["test"][f"{label}_images"] = len(
            {i for r in rows for i in (r["liked_image_id"], r["disliked_image_id"])}
        )
    tasks: dict = {}
    for s in ("val", "test"):
        st = task_stats.get(s, {})
        tasks[s] = {
            "1v1": st.get("1v1_targets", 0),
            "1v3": st.get("1v3_targets", 0),
            "1v1_skipped": st.get("1v1_skipped", 0),
            "1v3_skipped": st.get("1v3_skipped", 0),
            "rows": task_counts.get(s, 0),
        }
    counts = {"splits": splits, "tasks": tasks}
    extra = {
        "train_pairs_dropped_hold_out": dropped,
        "orphan_images_removed": orphans_removed,
        "image_store": image_store_counts(work_root),
    }
    return counts, extra


# ---------------------------------------------------------------- the build


def _progress_bar(enabled: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

    from prefcli.progress import progress_bar

    return progress_bar(
        enabled,
        [
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("shards · rows {task.fields[rows]:,} · {task.fields[what]} {task.fields[n]:,}"),
            TimeElapsedColumn(),
        ],
        fields={"rows": "rows", "n": "{what}"},
    )


def build(source: str, out: str | os.PathLike, params: BuildParams | None = None, progress: bool = True) -> BuildResult:
    """Build (or resume building) a dataset at `out` from Pick-a-Pic-schema parquet shards."""
    import pyarrow as pa

    # The system allocator returns freed batches to the OS; Arrow's default
    # (mimalloc/jemalloc) keeps them cached, and the resident set then creeps
    # up with every shard. Restored afterwards: the caller's process is its own.
    previous = pa.default_memory_pool()
    pa.set_memory_pool(pa.system_memory_pool())
    try:
        return build_locked(out, lambda out: _build(source, out, params, progress))
    finally:
        pa.set_memory_pool(previous)


def _build(source: str, out: str | os.PathLike, params: BuildParams | None, progress: bool) -> BuildResult:
    import pyarrow.parquet as pq

    from prefcli import __version__ as version
    from prefcli.atomic import atomic_path, write_text

    params = params or BuildParams()
    params.validate()
    out = Path(out)
    done = already_built(out)
    if done is not None:
        return done
    work_root = out.with_name(out.name + ".partial")
    work = work_root / WORK_DIR

    src = resolve_source(source, params.include)
    if params.hold_out is None:
        synthetic = isinstance(src, LocalSource) and (src.root / "world.json").is_file()
        params = replace(params, hold_out="user" if synthetic else "seen")
    shards = src.shards()
    if params.limit_shards:
        shards = shards[: params.limit_shards]
    if not shards:
        raise DataError(
            f"{source}: no parquet shards found" + (f" matching {params.include!r}" if params.include else "")
        )
    fingerprint = {
        "params": asdict(params),
        "source_kind": src.kind,
        "source": src.location,
        "revision": src.revision,
        "shards": shards,
    }
    for d in ("meta", "plan", "parts"):
        (work / d).mkdir(parents=True, exist_ok=True)
    journal = Journal.load_or_new(work / JOURNAL, fingerprint, {"pass1": {}, "plan": None, "pass2": {}})
    j = journal.data
    for name, entry in j["pass1"].items():  # a resume over changed sources would mix rows and images
        _check_unchanged(src, name, entry, full=False)  # the whole file is hashed again before pass 2 reads it
    remove_stale_temporaries(work_root / IMAGES_DIR)
    remove_stale_temporaries(work_root, recursive=False)
    store = ImageStore(work_root)

    with _progress_bar(progress) as bar:

        def shard_done(phase: str, i: int, entry: dict, task: int, counted: str) -> None:
            """A shard's entry into the journal, saved (a killed build resumes after it); the bar moves on."""
            j[phase][shards[i]] = entry
            journal.save()
            _release_memory()
            bar.update(task, advance=1, n=bar.tasks[task].fields["n"] + entry.get(counted, 0))
            if _after_shard:
                _after_shard(phase, i)

        t1 = bar.add_task("reading metadata (pass 1)", total=len(shards), rows=0, what="valid pairs", n=0)
        done1 = [j["pass1"][s] for s in shards if s in j["pass1"]]
        bar.update(
            t1, completed=len(done1), rows=sum(d.get("rows", 0) for d in done1), n=sum(d.get("valid", 0) for d in done1)
        )
        for i, name in enumerate(shards):
            if name in j["pass1"]:
                continue
            ident = _shard_identity(src, name)  # before reading: a change during the pass is caught later
            try:
                table, stats = _read_light(src, name, lambda n: bar.update(t1, rows=bar.tasks[t1].fields["rows"] + n))
                if table is not None:
                    with atomic_path(work / "meta" / f"{i:05d}.parquet") as tmp:
                        pq.write_table(table, tmp)
                entry = {"status": "ok" if table is not None else "empty", **stats, **ident}
            except DataError:
                raise
            except Exception as e:  # noqa: BLE001 - a truncated or corrupt shard: report, skip
                if _is_io_error(e):
                    raise _io_failure(e, f"{out} (pass 1, shard {name})") from None
                entry = {"status": "error", "reason": _reason(e), **ident}
            shard_done("pass1", i, entry, t1, "valid")

        ok = [i for i, s in enumerate(shards) if j["pass1"][s]["status"] == "ok"]
        if j["plan"] is None:
            j["plan"] = _make_plan(work, ok, params)
            journal.save()

        t2 = bar.add_task("storing images (pass 2)  ", total=len(ok), rows=0, what="images", n=0)
        done2 = [j["pass2"][shards[i]] for i in ok if shards[i] in j["pass2"]]
        bar.update(t2, completed=len(done2), n=sum(d.get("new_images", 0) for d in done2))
        for i in ok:
            name = shards[i]
            if name in j["pass2"]:
                continue
            part = work / "parts" / f"{i:05d}.parquet"

            def tick(n_rows: int, n_kept: int) -> None:
                bar.update(t2, rows=bar.tasks[t2].fields["rows"] + n_rows)

            _check_unchanged(src, name, j["pass1"][name])  # the plan's rows must be this shard's rows
            try:
                table, problems, stats = _process_shard(src, name, work / "plan" / f"{i:05d}.parquet", store, tick)
                with atomic_path(part) as tmp:
                    pq.write_table(table, tmp)
                entry = {"status": "ok", **stats, "problems": problems}
            except DataError:
                raise
            except Exception as e:  # noqa: BLE001 - the shard went bad between the passes
                if _is_io_error(e):
                    raise _io_failure(e, f"{out} (pass 2, shard {name})") from None
                entry = {"status": "error", "reason": _reason(e), "problems": []}
            shard_done("pass2", i, entry, t2, "new_images")

    parts = [work / "parts" / f"{i:05d}.parquet" for i in ok if j["pass2"][shards[i]]["status"] == "ok"]
    counts, extra = _finalize(work_root, work, parts, params)

    problems: list[dict] = []
    for name in shards:
        e1 = j["pass1"][name]
        if e1["status"] == "error":
            problems.append({"shard": name, "row": None, "pair_id": None, "reason": f"shard skipped: {e1['reason']}"})
            continue
        e2 = j["pass2"].get(name)
        if e2 is None:
            continue
        if e2["status"] == "error":
            problems.append(
                {"shard": name, "row": None, "pair_id": None, "reason": f"shard skipped in pass 2: {e2['reason']}"}
            )
        problems.extend(e2.get("problems", []))
    p1 = [j["pass1"][s] for s in shards]
    p2 = [j["pass2"][shards[i]] for i in ok]
    plan = j["plan"]
    counts["eligible_users"] = plan["eligible_users"]
    info = {
        "name": params.name or out.name,
        "format_version": FORMAT_VERSION,
        "created_by": f"prefcli {version}",
        "source": {
            "kind": src.kind,
            "location": src.location,
            "revision": src.revision,
            "shards": shards,
            "ignored_files": src.ignored,
        },
        "build": asdict(params),
        "seed": params.seed,
        "counts": counts,
        "source_stats": {
            "shards": len(shards),
            "shards_read": len(ok),
            "shards_skipped": sum(1 for e in p1 if e["status"] == "error")
            + sum(1 for e in p2 if e["status"] == "error"),
            "rows": sum(e.get("rows", 0) for e in p1),
            "labelled": sum(e.get("labelled", 0) for e in p1),
            "ties": sum(e.get("ties", 0) for e in p1),
            "not_different": sum(e.get("not_different", 0) for e in p1),
            "valid_pairs": plan["valid_pairs"],
            "duplicate_pairs": plan["duplicate_pairs"],
            "users_with_valid_pairs": plan["users_with_valid_pairs"],
            "seen_test_users_wanted": plan["seen_test_users_wanted"],
            "rows_with_broken_images": sum(e.get("broken_rows", 0) for e in p2),
            "pairs_with_identical_images": sum(e.get("identical_images", 0) for e in p2),
            "train_pairs_dropped_hold_out": extra["train_pairs_dropped_hold_out"],
            "orphan_images_removed": extra["orphan_images_removed"],
        },
        "image_store": extra["image_store"],
        "problems_total": len(problems),
        "problems": problems[:MAX_PROBLEMS_RECORDED],
    }
    write_text(work_root / INFO_FILE, json.dumps(info, indent=2, sort_keys=False, allow_nan=False) + "\n")
    # Nothing half-written goes into the finished dataset (a killed finalize's .pairs.parquet.*.tmp).
    remove_stale_temporaries(work_root / IMAGES_DIR)
    remove_stale_temporaries(work_root, recursive=False)
    if out.exists():
        out.rmdir()  # an empty folder the user made: replaced by the dataset
    os.replace(work_root, out)  # the commit
    shutil.rmtree(out / WORK_DIR, ignore_errors=True)
    return BuildResult(out, info, problems=problems)


def _release_memory() -> None:
    # Arrow's allocator keeps freed pages for reuse; handing them back after each
    # shard keeps the resident set flat instead of creeping up shard by shard.
    import pyarrow as pa

    pa.default_memory_pool().release_unused()


def _reason(e: BaseException) -> str:
    msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {msg}" if msg else type(e).__name__
