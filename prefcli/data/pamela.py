"""Import PAMELA (personalized aesthetic ratings, arXiv 2604.07427) as a rated prefcli dataset.

The published splits map onto prefcli's: `pamela_train` -> train,
`pamela_{val,test}_seen` -> val/test users who also rate training images,
`pamela_{val,test}_unseen` -> val/test users never in training. Every rating
becomes a row of ratings.parquet (dataset format 2) and every image is
stored once under its sha256; the tasks follow prefcli.data.rating_tasks
(`rating` tasks: predict each eval user's ratings; `1v1` tasks: pairs of
their targets with different ratings), each with a history of N_ref of the
user's ratings.

What the loader assumes of the files lives in prefcli.data.pamela_format
(one place; the published layout could not be confirmed offline). A row
whose rating is not a number or whose image is missing or broken is reported
and skipped. Images are checked and stored in journaled chunks in
OUT.partial, so an interrupted import resumes.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from prefcli.data import pamela_format as fmt
from prefcli.data.dataset import (
    FORMAT_VERSION,
    RATING_PROTOCOL,
    RATINGS_FILE,
    SPLITS,
    TASKS_FILE,
    ratings_schema,
    tasks_schema,
)
from prefcli.data.importing import (
    MAX_PROBLEMS_RECORDED,
    ImportResult,
    Workspace,
    already_built,
    build_locked,
    image_store_counts,
)
from prefcli.errors import DataError
from prefcli.weights import sha256_file

CHUNK_IMAGES = 256


@dataclass
class PamelaParams:
    n_ref: int = 16
    pairs_per_user: int = 20
    seed: int = 0
    name: str | None = None

    def validate(self) -> None:
        if self.n_ref < 1:
            raise DataError(f"pamela import: --n-ref must be at least 1, got {self.n_ref}")
        if self.pairs_per_user < 0:
            raise DataError(f"pamela import: --pairs-per-user must be at least 0, got {self.pairs_per_user}")


def resolve(source: str, work: Path) -> tuple[Path, dict]:
    p = Path(source).expanduser()
    if p.is_dir():
        return p, {"kind": "local", "location": str(p.resolve()), "revision": None}
    if re.fullmatch(r"(hf-hub:)?[A-Za-z0-9][\w.-]*/[\w.-]+(@[\w.-]+)?", source) and not source.startswith("."):
        from prefcli.weights import is_offline

        repo, _, rev = source.removeprefix("hf-hub:").partition("@")
        if is_offline():
            raise DataError(
                f"{repo}: cannot download from the Hugging Face hub in offline mode (HF_HUB_OFFLINE is set); "
                f"download it first (hf download {repo} --repo-type dataset --local-dir DIR) and pass --source DIR"
            )
        try:
            from huggingface_hub import snapshot_download

            local = snapshot_download(repo, repo_type="dataset", revision=rev or None, local_dir=str(work / "source"))
        except Exception as e:  # noqa: BLE001 - network errors come in many types
            raise DataError(f"{repo}: cannot download from the Hugging Face hub ({type(e).__name__}: {e})") from None
        return Path(local), {"kind": "hub", "location": repo, "revision": rev or None}
    raise DataError(
        f"{source}: source not found (give a folder holding PAMELA's split files, or the hub id {fmt.HUB_REPO})"
    )


def _image_key(table: Path, value) -> tuple[str, object]:
    """A stable key for a row's image and what to read it from: a path string or embedded bytes."""
    if isinstance(value, dict) and value.get("bytes"):
        data = value["bytes"]
        return "bytes:" + hashlib.sha256(data).hexdigest(), data
    if isinstance(value, dict) and value.get("path"):
        value = value["path"]
    if isinstance(value, (bytes, bytearray)) and value:
        return "bytes:" + hashlib.sha256(value).hexdigest(), bytes(value)
    if isinstance(value, str) and value.strip():
        return f"path:{table.parent}|{value}", value
    raise DataError(f"no image in the image column ({type(value).__name__})")


def read_rows(root: Path) -> tuple[list[dict], list[dict], dict]:
    """(rating rows with an image key, problems, per-split file info)."""
    files = fmt.find_split_files(root)
    rows, problems, file_info = [], [], {}
    for split_name, path in files.items():
        table = fmt.read_table(path)
        cols = fmt.columns_of(path, table)
        split, seen = fmt.SPLITS[split_name]
        file_info[split_name] = {
            "file": path.relative_to(root).as_posix(),
            "rows": len(table),
            "columns": cols,
            "sha256": sha256_file(path),
        }
        for i, r in enumerate(table):
            where = f"{path.name} row {i}"
            try:
                user = r.get(cols["user"])
                if user is None or str(user).strip() == "":
                    raise DataError("no user id")
                try:
                    rating = float(r.get(cols["rating"]))
                except (TypeError, ValueError, OverflowError):
                    raise DataError(f"rating {r.get(cols['rating'])!r} is not a number") from None
                if math.isnan(rating):
                    raise DataError("rating is missing")
                if math.isinf(rating):  # would reach dataset.json's rating scale as Infinity, which is not JSON
                    raise DataError(f"rating {r.get(cols['rating'])!r} is not a finite number")
                key, ref = _image_key(path, r.get(cols["image"]))
            except DataError as e:
                problems.append({"where": where, "reason": str(e)})
                continue
            prompt = r.get(cols["prompt"]) if cols["prompt"] else None
            rows.append(
                {
                    "rating_id": f"{split_name}:{i}",
                    "user_id": str(user).strip(),
                    "rating": rating,
                    "prompt": None if prompt in (None, "") else str(prompt),
                    "split": split,
                    "seen": seen,
                    "key": key,
                    "ref": ref,
                    "table": path,
                    "where": where,
                }
            )
    return rows, problems, file_info


def _store_chunk(ws: Workspace, root: Path, items: list[tuple[str, object, Path]]):
    import pyarrow as pa

    out = []
    for key, ref, table in items:
        if isinstance(ref, bytes):
            cid, reason = ws.store.check(ref, key)
            if not reason:
                ws.store.put(cid, ref)
            else:
                cid = None
        else:
            cid, reason = None, None
            try:
                found = [c for c in fmt.image_candidates(root, table, ref) if c.is_file()]
            except DataError as e:
                reason = str(e)
            else:
                if not found:
                    reason = f"image {ref!r} not found (looked beside {table.name}, in {root} and in {root / 'images'})"
                else:
                    cid, reason = ws.store_file(found[0], f"image {ref}")
        out.append({"key": key, "image_id": cid, "reason": reason})
    return pa.Table.from_pylist(
        out, schema=pa.schema([("key", pa.string()), ("image_id", pa.string()), ("reason", pa.string())])
    )


def build(
    source: str, out: str | os.PathLike, params: PamelaParams | None = None, progress: bool = True
) -> ImportResult:
    """Import (or resume importing) PAMELA's ratings into a dataset at `out`."""
    params = params or PamelaParams()
    params.validate()
    return build_locked(out, lambda out: _build(source, out, params, progress))


def _build(source: str, out: Path, params: PamelaParams, progress: bool) -> ImportResult:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from prefcli import __version__ as version
    from prefcli.atomic import atomic_path
    from prefcli.data.rating_tasks import iter_rating_tasks

    done = already_built(out)
    if done is not None:
        return done
    root, desc = resolve(source, out.with_name(out.name + ".partial") / ".work")
    rows, problems, file_info = read_rows(root)
    if not rows:
        raise DataError(f"{root}: no usable rating rows in {', '.join(i['file'] for i in file_info.values())}")
    fingerprint = {
        "importer": "pamela",
        "params": asdict(params),
        "source": desc,
        "files": {k: [v["file"], v["sha256"]] for k, v in file_info.items()},
    }
    ws = Workspace(out, fingerprint)
    unique: dict[str, tuple[str, object, Path]] = {}
    for r in rows:
        unique.setdefault(r["key"], (r["key"], r["ref"], r["table"]))
    items = list(unique.values())
    n_chunks = (len(items) + CHUNK_IMAGES - 1) // CHUNK_IMAGES
    from prefcli.progress import progress_bar

    with progress_bar(progress) as bar:
        t = bar.add_task("importing PAMELA images", total=len(items))
        for c in range(n_chunks):
            chunk = items[c * CHUNK_IMAGES : (c + 1) * CHUNK_IMAGES]
            if ws.done(c) is None:
                ws.record_chunk(c, _store_chunk(ws, root, chunk), {"images": len(chunk)})
            bar.update(t, advance=len(chunk))
    image_of: dict[str, tuple[str | None, str | None]] = {}
    for c in range(n_chunks):
        for r in pq.read_table(ws.part_path(c)).to_pylist():
            image_of[r["key"]] = (r["image_id"], r["reason"])

    kept, seen_pairs, duplicates = [], set(), 0
    for r in rows:
        cid, reason = image_of[r["key"]]
        if cid is None:
            problems.append({"where": r["where"], "reason": reason})
            continue
        if (r["user_id"], cid, r["split"]) in seen_pairs:
            duplicates += 1  # the same person rating the same image twice in a split: the first counts
            continue
        seen_pairs.add((r["user_id"], cid, r["split"]))
        kept.append(
            {k: r[k] for k in ("rating_id", "user_id", "prompt", "rating", "split", "seen")} | {"image_id": cid}
        )
    with atomic_path(ws.root / RATINGS_FILE) as tmp:
        pq.write_table(pa.Table.from_pylist(kept, schema=ratings_schema()), tmp)
    stats: dict = {}
    task_rows = list(iter_rating_tasks(kept, params.n_ref, params.pairs_per_user, params.seed, stats))
    with atomic_path(ws.root / TASKS_FILE) as tmp:
        pq.write_table(pa.Table.from_pylist(task_rows, schema=tasks_schema()), tmp)

    splits: dict = {}
    for s in SPLITS:
        rs = [r for r in kept if r["split"] == s]
        entry = {
            "users": len({r["user_id"] for r in rs}),
            "pairs": 0,
            "ratings": len(rs),
            "images": len({r["image_id"] for r in rs}),
        }
        if s != "train":
            for flag, label in ((True, "seen"), (False, "unseen")):
                sub = [r for r in rs if r["seen"] is flag]
                entry[f"{label}_users"] = len({r["user_id"] for r in sub})
                entry[f"{label}_ratings"] = len(sub)
                entry[f"{label}_images"] = len({r["image_id"] for r in sub})
        splits[s] = entry
    tasks = {
        s: {
            "1v1": stats.get(s, {}).get("1v1", 0),
            "1v3": 0,
            RATING_PROTOCOL: stats.get(s, {}).get(RATING_PROTOCOL, 0),
            "users_skipped": stats.get(s, {}).get("users_skipped", 0),
            "rows": stats.get(s, {}).get("rows", 0),
        }
        for s in ("val", "test")
    }
    values = sorted({r["rating"] for r in kept})
    info = {
        "name": params.name or out.name,
        "format_version": FORMAT_VERSION,
        "created_by": f"prefcli {version}",
        "kind": "pamela",
        "benchmark": {
            "name": "PAMELA",
            "hub": fmt.HUB_REPO,
            "paper": fmt.PAPER,
            "subset": None,
            "format_assumptions": "prefcli/data/pamela_format.py (the published layout could not be confirmed offline)",
        },
        "source": {**desc, "files": file_info},
        "build": asdict(params),
        "seed": params.seed,
        "rating_scale": {"min": values[0], "max": values[-1], "values": values if len(values) <= 21 else None},
        "counts": {"splits": splits, "tasks": tasks},
        "source_stats": {
            "rating_rows_read": sum(v["rows"] for v in file_info.values()),
            "ratings_kept": len(kept),
            "duplicate_ratings": duplicates,
            "published_ratings": fmt.PUBLISHED_RATINGS,
            "published_totals": fmt.PUBLISHED_TOTALS,
        },
        "image_store": image_store_counts(ws.root),
        "problems_total": len(problems),
        "problems": problems[:MAX_PROBLEMS_RECORDED],
    }
    ws.commit(info)
    return ImportResult(out, info, problems=problems)
