"""Import a PreferImg-Bench subset (PreferThinker, ICLR 2026) as a prefcli dataset.

The benchmark (hub dataset `ZhouSimple/PreferImg-Bench`; subsets TEST_SP_ID,
TEST_SP_OD, TEST_MP_ID, TEST_MP_OD and TEST_PICKAPIC) is a JSON list of
records per subset plus an image folder. What a record holds and how it is
read follows the authors' evaluation script, `eval_PreferThinker.py` in
github.com/Shengqi77/PreferThinker (commit 4cdc1ef):

- `prefered_images`, `non_prefered_images`: the user's history, image paths
  relative to the image root; the script keeps the first `--num_history`
  (default 5) of each, `x.get(...)[:num_history]`, so the two lists are not
  paired and may differ in length;
- `imageA`, `imageB`: the two candidates, shown in that order;
- `conversations[0]['value']`: the answer, "Image A" or "Image B", compared
  with the model's `<answer>` string for equality.

The README's example run reads `data/PICKAPIC/PICKAPIC.json` with
`--image_root data/PICKAPIC/images`; the layout of the other subsets is not
documented (the dataset card is only a license line), so a source folder is
searched for `<name>.json` under `data/<name>/`, `<name>/` and the folder
itself, with and without the `TEST_` prefix (`--image-root` overrides the
image folder, default `images/` beside the JSON file).

Every record becomes one 1-vs-1 test task: candidates [imageA, imageB] in the
benchmark's order, the liked index from the answer, a history of unpaired
liked and disliked images (prefcli dataset format 2), and N_ref variants that
keep the first k of each side (k in 1, 2, 4, ... --num-history). A record
that is malformed, or whose candidate image is missing or not an image, is
reported and skipped; a broken history image is reported and left out of
that history. Records are processed in chunks journaled in OUT.partial, so
an interrupted import resumes (prefcli.data.importing).
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from prefcli.bounds import check_int
from prefcli.data.dataset import FORMAT_VERSION, TASKS_FILE, n_ref_variants, tasks_schema
from prefcli.data.importing import (
    MAX_PROBLEMS_RECORDED,
    ImportResult,
    Workspace,
    already_built,
    build_locked,
    confined,
    image_store_counts,
)
from prefcli.errors import DataError
from prefcli.weights import sha256_file

HUB_REPO = "ZhouSimple/PreferImg-Bench"
SUBSETS = ("TEST_SP_ID", "TEST_SP_OD", "TEST_MP_ID", "TEST_MP_OD", "TEST_PICKAPIC")
SUBSET_SIZES = {"TEST_SP_ID": 500, "TEST_SP_OD": 500, "TEST_MP_ID": 250, "TEST_MP_OD": 250, "TEST_PICKAPIC": 894}
ANSWERS = {"Image A": 0, "Image B": 1}
NUM_HISTORY = 5  # eval_PreferThinker.py's --num_history default
NUM_HISTORY_MAX = 1000
CHUNK_RECORDS = 64
PROMPT_FIELDS = ("prompt", "caption")  # not in the script; used for both candidates when a record has one


@dataclass
class PreferImgParams:
    subset: str = "TEST_PICKAPIC"
    num_history: int = NUM_HISTORY
    image_root: str | None = None
    name: str | None = None

    def validate(self) -> None:
        if self.num_history < 1:
            raise DataError(f"preferimg import: --num-history must be at least 1, got {self.num_history}")
        # An n_ref column is int64 and every task lists its history: 10^30 overflowed there, late.
        check_int(self.num_history, "preferimg import: --num-history", low=1, high=NUM_HISTORY_MAX, error=DataError)
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", self.subset or ""):
            raise DataError(
                f"preferimg import: --subset {self.subset!r} is not a subset name (e.g. {', '.join(SUBSETS)})"
            )


# ---------------------------------------------------------------- source


def _names(subset: str) -> list[str]:
    names = [subset]
    if subset.upper().startswith("TEST_"):
        names.append(subset[5:])  # the README's example folder is data/PICKAPIC/PICKAPIC.json
    return names


def find_subset_file(root: Path, subset: str) -> Path:
    """The records file of `subset` inside a local copy of the benchmark."""
    tried = []
    for n in _names(subset):
        for rel in (f"data/{n}/{n}", f"{n}/{n}", n):
            for ext in (".json", ".jsonl"):
                p = root / f"{rel}{ext}"
                tried.append(p.relative_to(root).as_posix())
                if p.is_file():
                    return p
    found = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.json*") if p.is_file())[:10]
    raise DataError(
        f"{root}: no records file for subset {subset!r} (looked for {', '.join(tried[:6])}, ...)"
        + (f"; JSON files there: {', '.join(found)}" if found else "; the folder holds no JSON files")
    )


def _download(repo: str, revision: str | None, subset: str, dest: Path) -> Path:
    from prefcli.weights import is_offline

    if is_offline():
        raise DataError(
            f"{repo}: cannot download from the Hugging Face hub in offline mode (HF_HUB_OFFLINE is set); "
            f"download it first (hf download {repo} --repo-type dataset --local-dir DIR) and pass --source DIR"
        )
    try:
        from huggingface_hub import snapshot_download

        patterns = [f"data/{n}/**" for n in _names(subset)] + [f"{n}/**" for n in _names(subset)] + ["*.json"]
        path = snapshot_download(
            repo, repo_type="dataset", revision=revision, allow_patterns=patterns, local_dir=str(dest)
        )
    except Exception as e:  # noqa: BLE001 - network errors come in many types
        raise DataError(
            f"{repo}: cannot download subset {subset} from the Hugging Face hub ({type(e).__name__}: {e})"
        ) from None
    return Path(path)


def resolve(source: str, params: PreferImgParams, work: Path) -> tuple[Path, Path, dict]:
    """(records file, image root, source description) for a folder, a JSON file or a hub id."""
    p = Path(source).expanduser()
    desc: dict = {"kind": "local", "location": None, "revision": None}
    if p.is_file():
        records = p
    elif p.is_dir():
        records = find_subset_file(p, params.subset)
    elif re.fullmatch(r"(hf-hub:)?[A-Za-z0-9][\w.-]*/[\w.-]+(@[\w.-]+)?", source) and not source.startswith("."):
        repo, _, rev = source.removeprefix("hf-hub:").partition("@")
        local = _download(repo, rev or None, params.subset, work / "source")
        records = find_subset_file(local, params.subset)
        desc = {"kind": "hub", "location": repo, "revision": rev or None}
    else:
        raise DataError(
            f"{source}: source not found (give a folder holding the benchmark, a subset's JSON file, or the hub id {HUB_REPO})"
        )
    if desc["kind"] == "local":
        desc["location"] = str(records.resolve())
    image_root = Path(params.image_root).expanduser() if params.image_root else records.parent / "images"
    if not image_root.is_dir():
        raise DataError(
            f"{image_root}: image root not found (the images of {records.name} live there; give --image-root DIR)"
        )
    return records, image_root, desc


def load_records(path: Path) -> list:
    """A JSON list (as the script's json.load reads it), or one JSON object per line."""
    from prefcli import jsonio

    text = jsonio.read_text(path)
    try:
        data = jsonio.loads(text, str(path))
    except DataError as first:
        lines = [(i, line) for i, line in enumerate(text.splitlines(), 1) if line.strip()]
        if len(lines) < 2:
            raise first from None
        try:
            data = [jsonio.loads(line, f"{path} line {i}") for i, line in lines]
        except DataError:
            raise first from None
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"]
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of records, got {type(data).__name__}")
    return data


# ---------------------------------------------------------------- records


def parse_record(x: object) -> dict:
    """The fields the protocol reads, or DataError saying what is wrong with the record."""
    if not isinstance(x, dict):
        raise DataError(f"not a JSON object ({type(x).__name__})")
    for k in ("imageA", "imageB"):
        if not isinstance(x.get(k), str) or not x[k].strip():
            raise DataError(f"no {k} path")
    conv = x.get("conversations")
    try:
        answer = conv[0]["value"]
    except (TypeError, KeyError, IndexError):
        raise DataError("no answer (conversations[0].value)") from None
    if not isinstance(answer, str) or answer.strip() not in ANSWERS:
        raise DataError(f"answer {answer!r} is neither 'Image A' nor 'Image B'")
    hist = {}
    for k in ("prefered_images", "non_prefered_images"):
        v = x.get(k, [])
        if v is None:
            v = []
        if not isinstance(v, list) or not all(isinstance(s, str) for s in v):
            raise DataError(f"{k} is not a list of paths")
        hist[k] = v
    prompt = next((x[k] for k in PROMPT_FIELDS if isinstance(x.get(k), str) and x[k].strip()), None)
    user = x.get("user_id")
    return {
        "imageA": x["imageA"],
        "imageB": x["imageB"],
        "liked_index": ANSWERS[answer.strip()],
        "liked": hist["prefered_images"],
        "disliked": hist["non_prefered_images"],
        "prompt": prompt,
        "user_id": None if user is None else str(user),
    }


def _part_schema():
    import pyarrow as pa

    return pa.schema(
        [
            ("index", pa.int64()),
            ("user_id", pa.string()),
            ("candidate_image_ids", pa.list_(pa.string())),
            ("candidate_prompts", pa.list_(pa.string())),
            ("liked_index", pa.int32()),
            ("history_liked_ids", pa.list_(pa.string())),
            ("history_disliked_ids", pa.list_(pa.string())),
        ]
    )


def _process_chunk(ws: Workspace, records: list, start: int, image_root: Path, params: PreferImgParams, ids: dict):
    rows, problems = [], []
    stats = {"records": 0, "kept": 0, "skipped": 0, "history_images_dropped": 0}

    def stored(rel: str, what: str) -> tuple[str | None, str | None]:
        # Cached by path alone: the reason must not carry the field name of the record that met it first.
        if rel not in ids:
            try:
                path = confined(image_root, rel, "path")
            except DataError as e:
                ids[rel] = (None, str(e))
            else:
                ids[rel] = ws.store_file(path, rel)
        cid, why = ids[rel]
        return cid, None if why is None else f"{what} {why}"

    for i, x in enumerate(records):
        idx = start + i
        stats["records"] += 1
        try:
            r = parse_record(x)
        except DataError as e:
            problems.append({"record": idx, "reason": str(e)})
            stats["skipped"] += 1
            continue
        cands, reasons = [], []
        for k in ("imageA", "imageB"):
            cid, why = stored(r[k], k)
            cands.append(cid)
            if why:
                reasons.append(why)
        if reasons:
            problems.append({"record": idx, "reason": "; ".join(reasons)})
            stats["skipped"] += 1
            continue
        if cands[0] == cands[1]:
            problems.append({"record": idx, "reason": "imageA and imageB are the same image"})
            stats["skipped"] += 1
            continue
        hist = {}
        for side, what in (("liked", "prefered_images"), ("disliked", "non_prefered_images")):
            kept = []
            for rel in r[side][: params.num_history]:
                cid, why = stored(rel, what)
                if why:
                    problems.append({"record": idx, "reason": f"history image left out: {why}"})
                    stats["history_images_dropped"] += 1
                    continue
                kept.append(cid)
            hist[side] = kept
        rows.append(
            {
                "index": idx,
                "user_id": r["user_id"] or f"{params.subset}-{idx:05d}",
                "candidate_image_ids": cands,
                "candidate_prompts": [r["prompt"], r["prompt"]],
                "liked_index": r["liked_index"],
                "history_liked_ids": hist["liked"],
                "history_disliked_ids": hist["disliked"],
            }
        )
        stats["kept"] += 1
    import pyarrow as pa

    return pa.Table.from_pylist(rows, schema=_part_schema()), problems, stats


# ---------------------------------------------------------------- the build


def build(
    source: str, out: str | os.PathLike, params: PreferImgParams | None = None, progress: bool = True
) -> ImportResult:
    """Import (or resume importing) one PreferImg-Bench subset into a dataset at `out`."""
    params = params or PreferImgParams()
    params.validate()
    return build_locked(out, lambda out: _build(source, out, params, progress))


def _build(source: str, out: Path, params: PreferImgParams, progress: bool) -> ImportResult:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from prefcli import __version__ as version
    from prefcli.atomic import atomic_path
    from prefcli.progress import progress_bar

    done = already_built(out)
    if done is not None:
        return done
    work = out.with_name(out.name + ".partial") / ".work"
    records_path, image_root, desc = resolve(source, params, work)
    records = load_records(records_path)
    if not records:
        raise DataError(f"{records_path}: holds no records")
    fingerprint = {
        "importer": "preferimg",
        "params": asdict(params),
        "records_file": desc["location"] if desc["kind"] == "hub" else str(records_path.resolve()),
        "records_sha256": sha256_file(records_path),
        "image_root": str(image_root.resolve()),
    }
    ws = Workspace(out, fingerprint)
    ids: dict = {}
    n_chunks = (len(records) + CHUNK_RECORDS - 1) // CHUNK_RECORDS
    with progress_bar(progress) as bar:
        task = bar.add_task(f"importing {params.subset} records", total=len(records))
        for c in range(n_chunks):
            start = c * CHUNK_RECORDS
            chunk = records[start : start + CHUNK_RECORDS]
            if ws.done(c) is None:
                table, problems, stats = _process_chunk(ws, chunk, start, image_root, params, ids)
                ws.record_chunk(c, table, {"problems": problems, **stats})
            bar.update(task, advance=len(chunk))

    entries = [ws.done(c) for c in range(n_chunks)]
    parts = pa.concat_tables([pq.read_table(ws.part_path(c), schema=_part_schema()) for c in range(n_chunks)])
    targets = parts.to_pylist()
    variants = n_ref_variants(params.num_history)
    task_rows = []
    for t in targets:
        target_id = f"test-1v1-{params.subset}-{t['index']:05d}"
        for k in variants:
            task_rows.append(
                {
                    "task_id": f"{target_id}-n{k}",
                    "target_id": target_id,
                    "split": "test",
                    "protocol": "1v1",
                    "n_ref": k,
                    "user_id": t["user_id"],
                    "seen": None,
                    "target_pair_id": None,
                    "history_pair_ids": [],
                    "candidate_image_ids": t["candidate_image_ids"],
                    "candidate_prompts": t["candidate_prompts"],
                    "liked_index": t["liked_index"],
                    "history_liked_ids": t["history_liked_ids"][:k],
                    "history_disliked_ids": t["history_disliked_ids"][:k],
                }
            )
    with atomic_path(ws.root / TASKS_FILE) as tmp:
        pq.write_table(pa.Table.from_pylist(task_rows, schema=tasks_schema()), tmp)

    problems = [p for e in entries for p in e["problems"]]
    if not targets:
        # Nothing to evaluate: no dataset is committed, and the work folder goes, so that a rerun
        # (e.g. with the right --image-root) starts afresh instead of resuming this failure.
        import shutil

        shutil.rmtree(ws.root, ignore_errors=True)
        first = problems[0] if problems else None
        raise DataError(
            f"{records_path}: none of its {len(records)} records could be imported"
            + (f" (record {first['record']}: {first['reason']})" if first else "")
            + f"; image paths are read relative to the image root {image_root}"
            + (
                " (--image-root)"
                if params.image_root
                else f" (images/ beside {records_path.name}; give --image-root DIR if they live elsewhere)"
            )
            + "; nothing was written"
        )
    images = {i for t in targets for i in t["candidate_image_ids"] + t["history_liked_ids"] + t["history_disliked_ids"]}
    users = {t["user_id"] for t in targets}
    with_prompts = sum(1 for t in targets if t["candidate_prompts"][0] is not None)
    info = {
        "name": params.name or out.name,
        "format_version": FORMAT_VERSION,
        "created_by": f"prefcli {version}",
        "kind": "preferimg",
        "benchmark": {
            "name": "PreferImg-Bench",
            "subset": params.subset,
            "hub": HUB_REPO,
            "protocol": "eval_PreferThinker.py (github.com/Shengqi77/PreferThinker): first num_history preferred "
            "and non-preferred images, candidates Image A then Image B, answer in conversations[0].value",
        },
        "source": {**desc, "records_file": records_path.name, "image_root": str(image_root.resolve())},
        "build": {**asdict(params), "n_ref": params.num_history},
        "seed": None,
        "counts": {
            "splits": {
                "train": {"users": 0, "pairs": 0, "images": 0},
                "val": {"users": 0, "pairs": 0, "images": 0},
                "test": {"users": len(users), "pairs": 0, "images": len(images), "targets": len(targets)},
            },
            "tasks": {
                "val": {"1v1": 0, "1v3": 0, "rows": 0},
                "test": {"1v1": len(targets), "1v3": 0, "rows": len(task_rows)},
            },
        },
        "source_stats": {
            "records": len(records),
            "records_kept": len(targets),
            "records_skipped": sum(e["skipped"] for e in entries),
            "history_images_dropped": sum(e["history_images_dropped"] for e in entries),
            "targets_with_prompts": with_prompts,
            "published_size": SUBSET_SIZES.get(params.subset),
        },
        "image_store": image_store_counts(ws.root),
        "problems_total": len(problems),
        "problems": problems[:MAX_PROBLEMS_RECORDED],
    }
    ws.commit(info)
    return ImportResult(out, info, problems=problems)
