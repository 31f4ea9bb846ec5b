"""Every assumption the PAMELA loader makes about the published files, in one place.

What is confirmed (the dataset card of hub dataset `bethgelab/PAMELA`, read
through a stored copy; arXiv 2604.07427): ratings of AI-generated images by
199 participants, 69,904 ratings on 5,077 images, in five splits —
`pamela_train` 50,222, `pamela_val_unseen` 926, `pamela_val_seen` 6,551,
`pamela_test_unseen` 2,470, `pamela_test_seen` 9,735 — where `_seen` splits
hold known users rating new images and `_unseen` splits users never seen in
training; the hub lists it as an image dataset ("imagefolder" format on one
branch).

What could NOT be confirmed offline (the card's "Dataset Structure" section
was not readable here), and is therefore assumed below:

- a split is one table file named after it (`pamela_test_seen.csv`,
  `.parquet`, `.jsonl` or `.json`) anywhere under the source folder, or a
  folder named after it holding `metadata.csv` / `metadata.jsonl` /
  `metadata.parquet` (the hub's imagefolder convention);
- a row is one rating; its columns are found by the names in
  `USER_COLUMNS`, `IMAGE_COLUMNS`, `RATING_COLUMNS` and (optional)
  `PROMPT_COLUMNS`, first match wins;
- the image column holds a path (relative to the table's folder, the source
  folder or its `images/` folder) or an embedded image (`{"bytes": ...}`, as
  the hub's Image feature stores it in parquet);
- ratings are numbers (a Likert step); their scale is recorded as observed.

A file that does not match says so in one line, naming the file, the
columns it has and the names accepted, so the one list to extend is here.
"""

from __future__ import annotations

import os
from pathlib import Path

from prefcli.errors import DataError
from prefcli.paths import is_inside

HUB_REPO = "bethgelab/PAMELA"
PAPER = "arXiv 2604.07427"

# split name in the published files -> (prefcli split, seen flag for val/test users)
SPLITS: dict[str, tuple[str, bool | None]] = {
    "pamela_train": ("train", None),
    "pamela_val_seen": ("val", True),
    "pamela_val_unseen": ("val", False),
    "pamela_test_seen": ("test", True),
    "pamela_test_unseen": ("test", False),
}
PUBLISHED_RATINGS = {
    "pamela_train": 50_222,
    "pamela_val_unseen": 926,
    "pamela_val_seen": 6_551,
    "pamela_test_unseen": 2_470,
    "pamela_test_seen": 9_735,
}
PUBLISHED_TOTALS = {"ratings": 69_904, "images": 5_077, "participants": 199}

TABLE_EXTENSIONS = (".parquet", ".csv", ".jsonl", ".json")
METADATA_NAMES = tuple(f"metadata{ext}" for ext in (".csv", ".jsonl", ".parquet"))

USER_COLUMNS = (
    "user_id",
    "participant_id",
    "participant",
    "rater_id",
    "worker_id",
    "subject_id",
    "annotator_id",
    "user",
)
IMAGE_COLUMNS = (
    "file_name",
    "image",
    "image_path",
    "image_file",
    "img_path",
    "image_name",
    "filename",
    "image_id",
    "path",
)
RATING_COLUMNS = ("rating", "score", "aesthetic_rating", "aesthetic_score", "likert", "response")
PROMPT_COLUMNS = ("prompt", "caption", "text")


def find_split_files(root: Path) -> dict[str, Path]:
    """{published split name: its table file}; DataError when the folder holds none of them."""
    found: dict[str, Path] = {}
    files = sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )
    for split in SPLITS:
        for p in files:
            if (p.stem == split or p.parent.name == split) and not is_inside(root, p):
                raise DataError(f"{p}: a link that leads outside {root} (to {os.path.realpath(p)}); refused")
            if p.suffix in TABLE_EXTENSIONS and p.stem == split:
                found.setdefault(split, p)
            elif p.name in METADATA_NAMES and p.parent.name == split:
                found.setdefault(split, p)
    if not found:
        names = ", ".join(SPLITS)
        raise DataError(
            f"{root}: no PAMELA split files (looked for {names} as .parquet/.csv/.jsonl/.json files, or as folders with metadata.csv/.jsonl/.parquet); "
            "the published layout could not be confirmed offline: see prefcli/data/pamela_format.py"
        )
    return found


def read_table(path: Path) -> list[dict]:
    """The rows of one split file as dicts (DataError naming the file when it cannot be read)."""
    try:
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path).to_pylist()
        if path.suffix == ".csv":
            import csv

            with open(path, newline="", encoding="utf-8") as f:
                return list(csv.DictReader(f))
        from prefcli import jsonio

        if path.suffix == ".jsonl":
            return _rows(path, jsonio.read_json_lines(path))
        data = jsonio.read_json(path)
        if isinstance(data, dict):
            data = next((v for v in data.values() if isinstance(v, list)), None)
        if not isinstance(data, list):
            raise DataError(f"{path}: expected a JSON list of rating rows")
        return _rows(path, data)
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001 - csv, json and parquet raise many types
        raise DataError(f"{path}: unreadable ({type(e).__name__}: {e})") from None


def _rows(path: Path, rows: list) -> list[dict]:
    for i, r in enumerate(rows):
        if not isinstance(r, dict):
            from prefcli.jsonio import type_name

            raise DataError(f"{path}: row {i} is {type_name(r)}, not a JSON object of columns")
    return rows


def columns_of(path: Path, rows: list[dict]) -> dict[str, str | None]:
    """Which column holds the user, the image, the rating and the prompt; DataError when one is missing."""
    have = list(rows[0].keys()) if rows else []

    def pick(options: tuple[str, ...]) -> str | None:
        lower = {c.lower(): c for c in have}
        return next((lower[o] for o in options if o in lower), None)

    cols = {
        "user": pick(USER_COLUMNS),
        "image": pick(IMAGE_COLUMNS),
        "rating": pick(RATING_COLUMNS),
        "prompt": pick(PROMPT_COLUMNS),
    }
    for what, options in (("user", USER_COLUMNS), ("image", IMAGE_COLUMNS), ("rating", RATING_COLUMNS)):
        if cols[what] is None:
            raise DataError(
                f"{path}: no {what} column (it has {', '.join(have) or 'no columns'}; accepted: {', '.join(options)}); "
                "the published layout could not be confirmed offline: extend prefcli/data/pamela_format.py"
            )
    return cols


def image_candidates(root: Path, table: Path, ref: str) -> list[Path]:
    """Where an image path of a row may live, in the order tried, each resolved and checked to stay
    inside the source folder (DataError for a name that leaves it, or a link that leads out)."""
    from prefcli.paths import inside_root

    rel = Path(ref)
    where = table.parent.relative_to(root) if table.parent != root else Path()

    def ok(name: Path) -> Path:
        return inside_root(root, name, "image path", root_name="the dataset folder")

    return [ok(where / rel), ok(rel), ok(Path("images") / rel), ok(Path("images") / rel.name)]
