"""Where the harness gets its tasks: a dataset directory (prefcli.data.dataset)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from prefcli.errors import DataError


def open_dataset(path: str | os.PathLike) -> Any:
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: no such dataset directory")
    if not (p / "dataset.json").is_file():
        raise DataError(
            f"{p}: not a prefcli dataset (no dataset.json); build one with `prefcli data pickapic` or `prefcli data synthetic`"
        )
    try:
        from prefcli.data.dataset import Dataset
    except ImportError as e:  # pragma: no cover - only while the data package is incomplete
        raise DataError(f"{p}: this prefcli cannot read datasets ({e})") from e
    return Dataset.open(p)


def default_n_ref(ds: Any) -> int:
    """The N_ref the dataset was built with (8 unless it says otherwise)."""
    return int(getattr(ds, "n_ref", None) or 8)


def n_ref_values(ds: Any) -> list[int]:
    """Every N_ref the dataset materialized tasks for (the sweep)."""
    n = default_n_ref(ds)
    try:
        from prefcli.data.dataset import n_ref_variants
    except ImportError:  # pragma: no cover
        return sorted({k for k in (1, 2, 4, 8) if k < n} | {n})
    return list(n_ref_variants(n))


def protocol_values(ds: Any, split: str = "test") -> list[str]:
    """The protocols a dataset has tasks for (1v1 and 1v3 for one that cannot say)."""
    found = getattr(ds, "protocols", None)
    return list(found(split)) if callable(found) else ["1v1", "1v3"]


def load_tasks(ds: Any, split: str, protocol: str, n_ref: int, limit: int | None = None) -> list:
    tasks = list(ds.tasks(split=split, protocol=protocol, n_ref=n_ref))
    if not tasks:
        where = getattr(ds, "root", None) or getattr(ds, "path", "dataset")
        raise DataError(f"{where}: no {protocol} tasks in split {split!r} at N_ref {n_ref}")
    return tasks[:limit] if limit else tasks
